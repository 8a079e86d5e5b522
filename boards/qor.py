"""Quality-of-results measurement with a 4-pin harness, the one the peer arrays of ``docs/benchmarks.md`` were
measured in.

Every core is wrapped into the same top: ``clk``, ``din``, ``rst`` (Amaranth's synchronous reset) and
``dout``.

* All core inputs come from one serial-in shift register of WIN bits that advances every other cycle
  (a toggle FF is its clock enable). Without that enable a core's own input registers have the same D
  input as the next shift-register stage and Yosys merges them into the harness.
* All core outputs are XOR-reduced in two registered stages: ``xor_group``-bit groups into FFs, then one
  XOR of the group FFs into the ``dout`` FF.
* The harness overhead is measured by the same harness around a :class:`TrivialCore` with identical port
  widths, whose outputs are a WOUT-bit shift register continuing the input chain (WOUT FFs, no LUTs):
  harness FFs = its FFs - WOUT, harness LUTs = its LUTs (ECP5) or LCs - WOUT (iCE40).

Flow commands are those of that peer measurement: ``synth_ecp5`` / ``synth_ice40 [-dsp]``, nextpnr with
``--freq 200`` (ECP5-85F, CABGA381, speed 6) or ``--freq 48`` (UP5K SG48), ``--timing-allow-fail``, seeds
1, 2, 3, run one after another; Fmax is the median of the seeds' post-route figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.boards.bist import input_ports, output_ports
from wavecore.boards.report import parse_nextpnr_log, parse_nextpnr_report, parse_yosys_stat, resources_from
from wavecore.boards.targets import get_target, tool_environment

__all__ = ["FAMILY_SETTINGS", "QorHarness", "QorResult", "TrivialCore", "measure"]

#: Per family: target whose tools are used, nextpnr device options, the --freq goal (MHz).
FAMILY_SETTINGS = {
    "ecp5": {
        "target": "ulx3s-85f",
        "device": ["--85k", "--package", "CABGA381", "--speed", "6"],
        "freq": 200,
    },
    "ice40": {"target": "icebreaker", "device": ["--up5k", "--package", "sg48"], "freq": 48},
}


class TrivialCore(wiring.Component):
    """The I/O widths of ``like`` with no logic: outputs are a shift register fed by the last input bit.

    Parameters
    ----------
    like : wiring.Component
        The core whose signature is copied (it is not elaborated).
    """

    def __init__(self, like):
        self._signature = like.signature
        super().__init__(like.signature)

    def elaborate(self, platform):
        m = Module()
        inputs = Cat(*input_ports(self))
        outputs = Cat(*output_ports(self))
        chain = Signal(len(outputs))
        m.d.sync += chain.eq(Cat(inputs[-1], chain[:-1]))
        m.d.comb += outputs.eq(chain)
        return m


class QorHarness(wiring.Component):
    """4-pin wrapper around ``core`` (see the module docstring).

    Parameters
    ----------
    core : wiring.Component
        Design under measurement, ``sync`` domain.
    xor_group : int
        Output bits per first-stage XOR FF (64 as in the peer measurement; 16 lifts the harness ceiling).

    Attributes
    ----------
    din : In(1)
        Serial input of the input shift register.
    dout : Out(1)
        Registered XOR of every core output bit (two register stages).
    """

    def __init__(self, core, *, xor_group: int = 64):
        if not isinstance(xor_group, int) or isinstance(xor_group, bool) or xor_group < 2:
            raise ValueError(f"xor_group must be an integer >= 2, not {xor_group!r}")
        self.core = core
        self.xor_group = xor_group
        super().__init__({"din": In(1), "dout": Out(1)})

    @property
    def widths(self) -> tuple[int, int]:
        """``(WIN, WOUT)``: the core's input and output bits."""
        return (sum(len(p) for p in input_ports(self.core)), sum(len(p) for p in output_ports(self.core)))

    def elaborate(self, platform):
        m = Module()
        m.submodules.u_core = core = self.core
        win, wout = self.widths
        shift = Signal(win)
        advance = Signal()
        m.d.sync += advance.eq(~advance)
        with m.If(advance):
            m.d.sync += shift.eq(Cat(self.din, shift[:-1]))
        offset = 0
        for port in input_ports(core):
            m.d.comb += port.eq(shift[offset : offset + len(port)])
            offset += len(port)
        outputs = Cat(*(Value.cast(p) for p in output_ports(core)))
        groups = Signal((wout + self.xor_group - 1) // self.xor_group)
        for index in range(len(groups)):
            m.d.sync += groups[index].eq(outputs[index * self.xor_group : (index + 1) * self.xor_group].xor())
        m.d.sync += self.dout.eq(groups.xor())
        return m


@dataclass
class QorResult:
    """One design on one family: resources (seed 1), Fmax per seed, times."""

    family: str
    design: str
    resources: dict
    cells: dict
    fmax_mhz: list[float] = field(default_factory=list)
    synth_seconds: float = 0.0
    pnr_seconds: list[float] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None
    widths: tuple[int, int] = (0, 0)

    @property
    def fmax_median(self) -> float | None:
        return statistics.median(self.fmax_mhz) if self.fmax_mhz else None

    def to_dict(self) -> dict:
        return {**self.__dict__, "fmax_median": self.fmax_median}


def measure(
    harness: QorHarness,
    family: str,
    work: Path,
    *,
    seeds=(1, 2, 3),
    dsp: bool = True,
    max_ice40_dsps: int = 8,
    design: str = "core",
) -> QorResult:
    """Synthesise ``harness`` for ``family`` and place-and-route it once per seed, one run at a time.

    iCE40 place-and-route is skipped (status ``does_not_fit``) when Yosys maps more than
    ``max_ice40_dsps`` SB_MAC16 or more than 1.05 x 5280 LUTs/FFs, as in the peer measurement.
    """
    from amaranth.back import verilog

    if family not in FAMILY_SETTINGS:
        raise ValueError(f"family must be one of {', '.join(FAMILY_SETTINGS)}, not {family!r}")
    settings = FAMILY_SETTINGS[family]
    target = get_target(settings["target"])
    environment = tool_environment(target)
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    widths = harness.widths
    saved = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        text = verilog.convert(harness, name="harness", emit_src=False)
    finally:
        if saved is None:
            os.environ.pop("AMARANTH_USE_YOSYS", None)
        else:
            os.environ["AMARANTH_USE_YOSYS"] = saved
    (work / "harness.v").write_text(text)
    synth = f"synth_{family}" + (" -dsp" if family == "ice40" and dsp else "")
    began = time.monotonic()
    _run(
        [
            environment["YOSYS"],
            "-q",
            "-l",
            "synth.log",
            "-p",
            f"read_verilog -sv harness.v; {synth} -top harness -json net.json; "
            "tee -q -o stat.json stat -json",
        ],
        work,
        environment,
    )
    synth_seconds = round(time.monotonic() - began, 2)
    cells = parse_yosys_stat(work / "stat.json")
    result = QorResult(
        family=family, design=design, resources={}, cells=cells, synth_seconds=synth_seconds, widths=widths
    )
    if family == "ice40":
        luts = cells.get("SB_LUT4", 0)
        flip_flops = sum(count for cell, count in cells.items() if cell.startswith("SB_DFF"))
        if cells.get("SB_MAC16", 0) > max_ice40_dsps or max(luts, flip_flops) > 1.05 * target.luts:
            result.status = "does_not_fit"
            result.error = (
                f"{cells.get('SB_MAC16', 0)} SB_MAC16 (of {max_ice40_dsps}), {luts} SB_LUT4, "
                f"{flip_flops} FF (of {target.luts})"
            )
            return result
    nextpnr = environment["NEXTPNR_ECP5" if family == "ecp5" else "NEXTPNR_ICE40"]
    for seed in seeds:
        began = time.monotonic()
        argv = [
            nextpnr,
            "--quiet",
            *settings["device"],
            "--json",
            "net.json",
            "--freq",
            str(settings["freq"]),
            "--timing-allow-fail",
            "--seed",
            str(seed),
            "--report",
            f"report_{seed}.json",
            "--log",
            f"pnr_{seed}.log",
        ]
        argv.append("--lpf-allow-unconstrained" if family == "ecp5" else "--pcf-allow-unconstrained")
        completed = subprocess.run(argv, cwd=work, env=environment, capture_output=True, text=True)
        result.pnr_seconds.append(round(time.monotonic() - began, 2))
        if completed.returncode != 0:
            _, utilisation = parse_nextpnr_log((work / f"pnr_{seed}.log").read_text(errors="replace"))
            result.resources = resources_from(family, utilisation, cells)
            result.status = "does_not_fit" if any(u > a for u, a in utilisation.values()) else "failed"
            result.error = (
                completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "nextpnr failed"
            )
            return result
        fmax, utilisation = parse_nextpnr_report(work / f"report_{seed}.json")
        if seed == seeds[0]:
            result.resources = resources_from(family, utilisation, cells)
        result.fmax_mhz.append(round(min(value.achieved_mhz for value in fmax.values()), 2))
    (work / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _run(argv, cwd, environment):
    completed = subprocess.run(argv, cwd=cwd, env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed in {cwd}: {completed.stderr.strip()[-500:]}")
