"""One compiled training step on the generated WaveCore RTL, compared with the golden model and the predictions.

:func:`run_step_on_core` compiles the configured workload (:func:`wavecore.golden.core.build.compile_workload`),
draws a reproducible batch and runs the golden integer step and the instruction-level simulator
(:func:`~wavecore.golden.core.build.training_data`), generates the core for the configuration, builds it for a
simulator (cached), runs the program on it with the HDL DRAM model (random latency and stalls from the seed,
Python idle while the core runs: ``verif/tb_training_step.py``), and returns a :class:`CoreStepReport`:

* **bit-exact** — every DRAM byte after the step equals the simulator's (parameters, velocities, stored
  activations, losses: the whole image), and the simulator's tensors equal the golden step's;
* **traffic** — the bytes per traffic class the core's counters measured, the compiler's prediction
  (``expected.json``), and the planner's;
* **cycles** — measured cycles, the compiler's predicted cycles (:func:`wavecore.golden.core.semantics.makespan`)
  and the GEMM unit's busy cycles;
* **first wrong instruction** — when the DRAM differs (and ``locate``, the default): the instruction whose
  result on the core first differs from the simulator's, its listing line and the first differing element
  (:func:`wavecore.verif.instruction_bisect.first_wrong_instruction`: a bisection over truncated programs that
  store the on-chip state, about log2(instructions) further runs on the same build).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavecore.golden.core import isa
from wavecore.golden.core.build import CompiledWorkload, compile_workload, training_data
from wavecore.golden.core.simulator import Simulator
from wavecore.verif.instruction_bisect import FirstWrongInstruction, dump_room, first_wrong_instruction

__all__ = ["CoreStepReport", "build_core", "bus_width", "golden_differences", "run_step_on_core", "step_parameters"]


def golden_differences(workload: CompiledWorkload, data) -> list[str]:
    """DRAM regions of the simulator's image after the step that differ from the golden integer step."""
    golden, mm, image, bad = data.golden, workload.step.memory_map, data.final, []
    for layer, entry in golden.params.items():
        for key, value in entry.items():
            if not np.array_equal(mm.read(image, f"param.{layer}.{key}"), value):
                bad.append(f"param.{layer}.{key}")
            if not np.array_equal(mm.read(image, f"velocity.{layer}.{key}"),
                                  golden.state["velocity"][f"{layer}.{key}"]):
                bad.append(f"velocity.{layer}.{key}")
    if int(mm.read(image, "loss_mean")[0]) != golden.loss_q:
        bad.append("loss_mean")
    for tensor, region in workload.step.stored.items():
        if not np.array_equal(mm.read(image, region), golden.activations[tensor]):
            bad.append(region)
    return bad


@dataclass
class CoreStepReport:
    schedule: str
    network: str
    batch: int
    groups: list
    instructions: int
    fault: dict | None
    wrong_regions: list  # DRAM regions where the core differs from the simulator
    golden_wrong: list  # regions where the simulator differs from the golden step
    measured_bytes: dict  # class -> bytes read + written (counters)
    predicted_bytes: dict  # class -> the compiler's prediction
    planner_bytes: dict  # class -> planner + named terms
    measured_cycles: int
    predicted_cycles: int
    gemm_busy_cycles: int
    build_seconds: float
    run_seconds: float
    directory: str
    counters: dict = field(default_factory=dict)
    simulation: str = ""  # the simulation's working directory (sim.log; waveforms with WAVES=1)
    waveforms: list = field(default_factory=list)
    # on a DRAM difference (``locate``): the instruction whose result on the core first differs
    first_wrong_instruction: FirstWrongInstruction | None = None

    @property
    def bit_exact(self) -> bool:
        return self.fault is None and not self.wrong_regions and not self.golden_wrong

    @property
    def traffic_matches(self) -> bool:
        return self.fault is None and self.measured_bytes == self.predicted_bytes

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), bit_exact=self.bit_exact, traffic_matches=self.traffic_matches)


def bus_width(parameters) -> int:
    """The AXI data width that carries the configured DRAM bandwidth (``dram_bytes_per_cycle`` 4, 8 or 16)."""
    width = 8 * parameters.dram_bytes_per_cycle
    if width not in (32, 64, 128):
        raise ValueError(f"memory.dram_bytes_per_cycle must be 4, 8 or 16 for the core's AXI4 port, not "
                         f"{parameters.dram_bytes_per_cycle}")
    return width


def build_core(parameters, numerics, *, simulator: str = "verilator", toplevel: str = "wavecore_step", units=None):
    """The core with every unit (or ``units``, :class:`~wavecore.hdl.core.wavecore.WaveCore`'s) and the HDL DRAM
    model (:class:`~wavecore.verif.core_system.CoreSystem`, AXI width from :func:`bus_width`), built for
    ``simulator`` (cached: the same parameters reuse the build)."""
    from wavecore.hdl.core.dram_model import verilog_source
    from wavecore.hdl.core.ports import convert
    from wavecore.verif.core_system import CoreSystem
    from wavecore.verif.runner import build

    system = CoreSystem(parameters=parameters, numerics=numerics, data_width=bus_width(parameters), units=units)
    return build(convert(system, name=toplevel), toplevel=toplevel, simulator=simulator,
                 extra_sources=[verilog_source()])


def step_parameters(config, image_bytes: int = 0):
    """The core parameters of the configured core as the step runner builds it: the configuration's
    (:func:`~wavecore.golden.core.build.core_setup`) with a DRAM of 4 MiB, or the next power of two that holds
    ``image_bytes`` (one build serves every workload that fits), and its numerics."""
    from wavecore.golden.core.build import core_setup

    parameters, numerics = core_setup(config)
    dram_bytes = 1 << max(22, (max(1, image_bytes) - 1).bit_length())
    return dataclasses.replace(parameters, dram_bytes=dram_bytes), numerics


def _wrong_regions(workload, got: bytes, want: bytes) -> list[str]:
    wrong = []
    for region in workload.step.memory_map.regions.values():
        if got[region.offset : region.stop] != want[region.offset : region.stop]:
            wrong.append(region.name)
    return wrong


def run_step_on_core(config, *, schedule: str = "mbs", network=None, batch=None, norm=None, seed: int = 0,
                     simulator: str = "verilator", stall: int = 32, latency: tuple = (0, 24), steps: int = 1,
                     directory=None, units=None, locate: bool = True, log=None) -> CoreStepReport:
    """Run one training step (``steps`` > 1: the same program again on the image it left) on the core; see the
    module docstring. ``stall`` (0..255, out of 256) and ``latency`` (cycles, min and max) randomise the DRAM
    model from ``seed``. ``units`` is :class:`~wavecore.hdl.core.wavecore.WaveCore`'s (e.g. a test's broken
    unit). ``locate``: when the DRAM differs, bisect for the first wrong instruction (about log2 of the
    instruction count further runs, each at most a step long; ``log`` gets one line per run)."""
    from wavecore.hdl.core.dram_model import plusargs
    from wavecore.verif.runner import SimulationFailed, _safe, build_dir_root

    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    workload = compile_workload(config, network=network, batch=batch, schedule=schedule, norm=norm)
    data = training_data(workload, seed=seed)
    expected_final = bytearray(data.final)
    for _ in range(steps - 1):  # further steps on the image the previous one left
        again = Simulator(parameters=workload.parameters, numerics=workload.numerics)
        again.run(workload.step.program, expected_final)
    # room for the probes of the bisection after the image
    room = dump_room(workload.parameters, len(workload.step.program))
    parameters, _ = step_parameters(config, len(data.initial) + room)
    if parameters != dataclasses.replace(workload.parameters, dram_bytes=parameters.dram_bytes):
        raise AssertionError("the compiled workload's core parameters differ from the configured core's")
    started = time.perf_counter()
    design = build_core(parameters, workload.numerics, simulator=simulator, units=units)
    data_width, toplevel = bus_width(parameters), design.toplevel
    built = time.perf_counter()
    directory = Path(directory) if directory else build_dir_root() / "step" / f"{workload.network.name}-{schedule}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "program.lst").write_text(workload.step.listing())

    simulations = []  # the simulator's working directories (sim.log, waveforms with WAVES=1)

    def run_core(image: bytes, program_base: int, cycles: int, *, runs: int = 1, name: str = ""):
        """Run the program at ``program_base`` ``runs`` times on the core from ``image``: the DRAM image after
        and the testbench's result (counters per run, fault)."""
        where = directory / name if name else directory
        where.mkdir(parents=True, exist_ok=True)
        (where / "result.json").unlink(missing_ok=True)
        (where / "image.bin").write_bytes(image)
        test_name = "-".join(filter(None, (toplevel, workload.network.name, schedule, name)))
        simulations.append(design.build_dir / "tests" / _safe(test_name))
        try:
            design.run("wavecore.verif.tb_training_step", test_name=test_name,
                       params={"data_width": data_width, "image": str(where / "image.bin"),
                               "program_base": program_base, "cycle_bound": 50 * cycles * runs + 100_000,
                               "steps": runs, "dram": str(where / "dram_after.bin"),
                               "result": str(where / "result.json")},
                       plusargs=plusargs(seed=seed + 1, stall=stall, latency_min=latency[0],
                                         latency_max=latency[1], load="dram_load.hex", dump="dram_dump.hex"))
        except SimulationFailed:
            if not (where / "result.json").exists():
                raise  # a hang or a crash, not a core fault: the simulation log says what happened
        return (where / "dram_after.bin").read_bytes(), json.loads((where / "result.json").read_text())

    predicted = workload.expected["cycles"]
    after, result = run_core(data.initial, workload.step.memory_map["program"].offset, predicted, runs=steps)
    finished = time.perf_counter()
    counters = result["steps"][-1] if result["steps"] else (result["fault"] or {}).get("counters", {})
    measured = {cls: counters.get(f"bytes_read_{cls}", 0) + counters.get(f"bytes_written_{cls}", 0)
                for cls in isa.TRAFFIC_CLASSES}
    predicted_bytes = {cls: workload.expected["bytes"].get(cls, 0) for cls in isa.TRAFFIC_CLASSES}
    terms = workload.expected["planner_terms"].values()
    planner = {cls: workload.expected["planner_bytes"].get(cls, 0) + sum(term.get(cls, 0) for term in terms)
               for cls in isa.TRAFFIC_CLASSES}
    wrong_regions = _wrong_regions(workload, after, bytes(expected_final))
    located = None
    if wrong_regions and locate:
        before_last = bytearray(data.initial)  # the simulator's image before the last step
        for _ in range(steps - 1):
            Simulator(parameters=workload.parameters, numerics=workload.numerics).run(workload.step.program,
                                                                                      before_last)

        def run_probe(image, program_base, cycles):
            got, outcome = run_core(image, program_base, cycles, name="probe")
            return got, outcome["fault"]

        located = first_wrong_instruction(workload, bytes(before_last), run_probe, log=log)
    return CoreStepReport(
        schedule=schedule, network=workload.network.name, batch=workload.batch,
        groups=workload.expected["groups"], instructions=len(workload.step.program), fault=result["fault"],
        wrong_regions=wrong_regions,
        golden_wrong=golden_differences(workload, data), measured_bytes=measured, predicted_bytes=predicted_bytes,
        planner_bytes=planner, measured_cycles=counters.get("cycles", 0), predicted_cycles=predicted,
        gemm_busy_cycles=counters.get("array_busy", 0), build_seconds=built - started,
        run_seconds=finished - built, directory=str(directory), counters=counters, first_wrong_instruction=located,
        simulation=str(simulations[0]),
        waveforms=sorted(str(path) for path in (*simulations[0].glob("*.vcd"), *simulations[0].glob("*.fst"))))
