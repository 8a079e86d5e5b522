"""The main job (``make run`` / ``wavecore run``): one accelerator configuration, end to end.

Steps, each reported as it finishes:

1. **generate** the configured systolic array (Verilog + JSON configuration, written atomically);
2. **verify** it with cocotb on a simulator: random GEMMs (``K = 1``, ragged edges, several tiles, extreme
   operands) under random input gaps and output backpressure, bit-exact against
   :meth:`wavecore.golden.numerics.MacArithmetic.matmul`, then an unstalled GEMM whose cycles give the utilization;
3. **plan** the configured workload: DRAM traffic of the layer-by-layer baseline and of the optimal MBS
   grouping for the configured buffer (``wavecore.golden.plan``);
4. **train** one step of the workload in the golden model under that planned MBS schedule and under the
   baseline, and report their largest difference (zero in the hardware-exact integer mode).

The result is a :class:`MainJobSummary` whose :meth:`~MainJobSummary.text` is what the CLI prints (with where
the Verilog, simulation logs, waveforms and reports are) and which is also written to ``summary.txt`` and, with
every step's figures, ``summary.json`` in the output directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavecore.golden.config import DATAFLOW_SHORT, AcceleratorConfig

__all__ = ["MainJobSummary", "StepResult", "run_main_job"]

_MIB = 1 << 20


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str
    values: dict = field(default_factory=dict)  # the step's figures, for summary.json


@dataclass
class MainJobSummary:
    config: AcceleratorConfig
    output: Path
    steps: list[StepResult] = field(default_factory=list)
    norm: str | None = None  # the norm the loaded network actually has (workload.norm null: its own)
    files: dict[str, list[str]] = field(default_factory=dict)  # what was written where, by kind

    def to_dict(self) -> dict:
        """``summary.json``: the configuration, every step with its figures, the files by kind, the verdict."""
        return {"config": self.config.name, "norm": self.norm, "ok": self.ok, "output": str(self.output),
                "steps": [{"name": step.name, "ok": step.ok, "seconds": round(step.seconds, 3),
                           "detail": step.detail, **step.values} for step in self.steps],
                "files": self.files}

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def text(self) -> str:
        config = self.config
        arithmetic = config.arithmetic
        kind = "int" if arithmetic.signed else "uint"
        lines = [
            f"wavecore run: {config.name}",
            f"  array {config.array.rows}x{config.array.cols} {config.array.dataflow}, "
            f"{kind}{arithmetic.in_width} x {kind}{arithmetic.in_width} -> {kind}{arithmetic.acc_width} "
            f"({arithmetic.overflow}), buffer {config.memory.buffer / _MIB:g} MiB, {config.clock_mhz:g} MHz",
            f"  workload {config.workload.network}, batch {config.workload.batch}, "
            f"norm {self.norm or config.workload.norm or 'as in the network file'}, "
            f"dtype {config.workload.dtype}",
            "",
            f"  {'step':<10}{'result':<8}{'time':>8}  detail",
        ]
        for step in self.steps:
            lines.append(f"  {step.name:<10}{'ok' if step.ok else 'FAILED':<8}{step.seconds:>7.1f}s  {step.detail}")
        lines += ["", f"  outputs in {self.output}"]
        for kind, paths in self.files.items():
            listed = ", ".join(paths) if paths else ("none (WAVES=1 records them)" if kind == "waveforms" else "-")
            lines.append(f"  {kind + ':':<12}{listed}")
        lines.append(f"  overall: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def _timed(name: str, function: Callable[[], tuple[str, dict]], progress: Callable[[str], None]) -> StepResult:
    progress(f"[{name}] running")
    start = time.perf_counter()
    values = {}
    try:
        detail, values = function()
        ok = True
    except AssertionError as failure:  # a verification failure: report it, keep going
        detail = str(failure).splitlines()[0]
        ok = False
    result = StepResult(name, ok, time.perf_counter() - start, detail, values)
    progress(f"[{name}] {'ok' if ok else 'FAILED'} in {result.seconds:.1f}s: {detail}")
    return result


def _gemm_shapes(rows: int, cols: int) -> list[list[int]]:
    """K = 1, ragged edges (not a multiple of the array), several tiles in every direction."""
    return [[rows, 1, cols], [2 * rows + 1, 3, cols + 2], [rows + 3, 2 * (rows + cols) + 1, 2 * cols - 1],
            [3 * rows, rows + 5, 3 * cols]]


def run_main_job(
    config: AcceleratorConfig,
    output: Path,
    *,
    simulator: str = "verilator",
    progress: Callable[[str], None] = print,
) -> MainJobSummary:
    """Run the four steps for ``config``, writing into ``output`` (simulator builds into ``output/sim`` unless
    ``WAVECORE_BUILD_DIR`` is set); never raises on a failed check."""
    from wavecore.paths import builds_under

    output = Path(output).resolve()  # the simulator runs in its own directory
    output.mkdir(parents=True, exist_ok=True)
    from wavecore import progress as progress_display

    with builds_under(output), progress_display.task(f"wavecore run {config.name}", total=4, unit="steps") as bar:
        def report(message: str) -> None:
            progress(message)
            if message.endswith("running"):
                bar.advance(0, detail=message)
            else:
                bar.advance(detail=message.split(":")[0])

        summary = _run_main_job(config, output, simulator=simulator, progress=report)
    summary.files["reports"] = [*summary.files.get("reports", []), str(output / "summary.txt"),
                                str(output / "summary.json")]
    from wavecore.files import write_atomic

    write_atomic(output / "summary.txt", summary.text() + "\n")
    write_atomic(output / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _run_main_job(config: AcceleratorConfig, output: Path, *, simulator: str,
                  progress: Callable[[str], None]) -> MainJobSummary:
    from wavecore.hdl.registry import generate_files
    from wavecore.verif.runner import build

    summary = MainJobSummary(config=config, output=output)
    parameters = config.systolic_parameters()
    block = {"block": "systolic", **parameters}

    def generate() -> tuple[str, dict]:
        files = generate_files(block, output, toplevel="systolic")
        verilog, configuration = files
        summary.files["verilog"] = [str(path) for path in files.paths]
        lines = Path(verilog).read_text().count("\n")
        return f"{Path(verilog).name} ({lines:,} lines) and {Path(configuration).name}", {"verilog_lines": lines}

    summary.steps.append(_timed("generate", generate, progress))

    def verify() -> str:
        from wavecore.hdl.array.systolic import SystolicArray

        # The form `generate` wrote (hierarchical), so the regression runs on the Verilog a user gets.
        design = build(SystolicArray(**parameters, hierarchical=True), toplevel="systolic", simulator=simulator)
        shapes = _gemm_shapes(config.array.rows, config.array.cols)
        summary.files["simulation"] = [str(design.build_dir)]
        summary.files["waveforms"] = []
        results = []
        try:
            results.append(design.run("wavecore.verif.tb_systolic", testcase="random_gemms",
                                      test_name="main_job_random_gemms",
                                      params={"config": parameters, "shapes": shapes, "idle": 0.3,
                                              "backpressure": 0.4}))
            size = 8 * max(config.array.rows, config.array.cols)
            cycles_file = output / "cycles.json"
            results.append(design.run("wavecore.verif.tb_systolic", testcase="measure_cycles",
                                      test_name="main_job_cycles",
                                      params={"config": parameters, "shapes": [[size, size, size]],
                                              "output": str(cycles_file)}))
        finally:
            # the logs and (with WAVES=1) waveforms of the tests that ran, passed or failed
            names = ("main_job_random_gemms", "main_job_cycles")
            for directory in (design.build_dir / "tests" / name for name in names):
                summary.files["simulation"] += [str(path) for path in sorted(directory.glob("sim.log"))]
                summary.files["waveforms"] += [str(path) for path in sorted(directory.glob("*.vcd"))
                                               + sorted(directory.glob("*.fst"))]
        summary.files["reports"] = [str(cycles_file)]
        cycles = json.loads(cycles_file.read_text())[f"{size},{size},{size}"]["cycles"]
        ideal = size**3 / (config.array.rows * config.array.cols)
        return (f"{simulator}: {len(shapes)} random GEMMs under stalls bit-exact; "
                f"GEMM {size}^3 in {cycles:,} cycles, utilization {ideal / cycles:.3f}",
                {"simulator": simulator, "random_gemms": len(shapes), "gemm": [size, size, size],
                 "cycles": cycles, "utilization": ideal / cycles})

    summary.steps.append(_timed("verify", verify, progress))

    plans = {}

    def plan() -> str:
        from wavecore.golden.network import load_network
        from wavecore.golden.plan.report import plan_mbs_family
        from wavecore.golden.plan.traffic import TrafficOptions

        workload = config.workload
        network = load_network(workload.network, norm=workload.norm, input_size=workload.input_size)
        options = TrafficOptions(dtype_bytes=config.element_bytes, array_rows=config.array.rows,
                                 array_cols=config.array.cols, dataflow=DATAFLOW_SHORT[config.array.dataflow])
        plans.update(plan_mbs_family(network, workload.batch, config.memory.buffer, options,
                                     schedules=("baseline", "mbs_optimal")))
        plans["network"] = network
        summary.norm = network.norm
        base, best = plans["baseline"].traffic.total, plans["mbs_optimal"].traffic.total
        sub_batches = sorted({b for _, b in plans["mbs_optimal"].groups})
        return (f"{network.name}: baseline {base / _MIB:,.2f} MiB, MBS {best / _MIB:,.2f} MiB "
                f"({1 - best / base:.1%} less), {len(plans['mbs_optimal'].groups)} groups, "
                f"sub-batches {sub_batches}",
                {"network": network.name, "baseline_bytes": base, "mbs_bytes": best,
                 "groups": len(plans["mbs_optimal"].groups), "sub_batches": sub_batches})

    summary.steps.append(_timed("plan", plan, progress))

    def train() -> str:
        from wavecore.golden.numerics import INTEGER_PRESETS
        from wavecore.golden.schedule import Schedule
        from wavecore.golden.train import SGD, Trainer, init_params, init_state

        if "network" not in plans:
            raise AssertionError("no plan to run (the plan step failed)")
        network = plans["network"]
        workload = config.workload
        numerics_name = f"int{config.numerics.in_width}"
        numerics = INTEGER_PRESETS.get(numerics_name, "float64")
        if numerics == "float64":
            numerics_name = "float64"
        random = np.random.default_rng(workload.seed)
        x = random.standard_normal((workload.batch, *network.input_shape))
        labels = random.integers(0, network.num_classes, workload.batch)
        params, state = init_params(network, seed=workload.seed), init_state(network)
        optimizer = SGD(lr=0.01, momentum=0.9, weight_decay=1e-4)
        schedule = plans["mbs_optimal"].to_schedule()
        planned = Trainer(network, schedule=schedule, numerics=numerics, optimizer=optimizer).step(
            params, state, x, labels)
        baseline = Trainer(network, schedule=Schedule.baseline(network, workload.batch), numerics=numerics,
                           optimizer=optimizer).step(params, state, x, labels)
        difference = max(
            float(np.max(np.abs(np.asarray(planned.activations[name], dtype=np.float64)
                                - np.asarray(value, dtype=np.float64))))
            for name, value in baseline.activations.items() if name in planned.activations
        )
        parameters_difference = max(
            float(np.max(np.abs(np.asarray(planned.params[layer][key], dtype=np.float64)
                                - np.asarray(value, dtype=np.float64))))
            for layer, entries in baseline.params.items() for key, value in entries.items()
        )
        if numerics_name != "float64" and (difference or parameters_difference):
            raise AssertionError(f"planned MBS schedule differs from the baseline in integer mode: "
                                 f"activations {difference}, parameters {parameters_difference}")
        return (f"{numerics_name} step, loss {planned.loss:.4f}; planned MBS vs baseline max|diff| "
                f"activations {difference:.3g}, updated parameters {parameters_difference:.3g}",
                {"numerics": numerics_name, "loss": float(planned.loss), "activation_difference": difference,
                 "parameter_difference": parameters_difference})

    summary.steps.append(_timed("train", train, progress))
    return summary
