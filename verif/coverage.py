"""Functional coverage of the testbenches: coverpoints on cocotb-coverage, a merged report of every run.

The coverpoints are defined once here (``cocotb_coverage.coverage.CoverPoint``/``CoverCross`` on sampling
functions) and sampled by the shared drivers and monitors, so every testbench that uses them contributes:

* **stream protocol** (:class:`wavecore.verif.stream` endpoints, every transfer): the idle gap before it
  (``stream.gap``), the run of backpressured cycles (valid high, ready low) that preceded it
  (``stream.backpressure``), and, on streams whose payload has a ``last``/``switch`` flag, the beats per flagged
  group (``stream.group``: 1 is back-to-back flags, i.e. K = 1);
* **DMA / AXI4** (:class:`wavecore.verif.axi.AxiMonitor`, every AR/AW and response): why each burst ended
  (``axi.burst_end``: at a 4 KiB page, at ``max_burst``, or at the row's end), the outstanding limit reached per
  channel (``axi.outstanding_limit``), and the response latency per channel (``axi.latency``: 0, 1-4, 5-15,
  16+ cycles from the address handshake to the first R beat, or from the last W beat to B, minus one);
* **norm units** (``tests/hdl/norm/tb_norm.py``, from the golden model's operands of every beat and command):
  saturation and exact rounding ties of the affine and dx units' requantization, per unit
  (``norm.requantize``), and zero-variance statistic sets of the scalar unit (``norm.variance``);
* **WaveCore** (:class:`wavecore.verif.host.Host`, after every program the core finished, from the program words
  it read back from DRAM; and every fault the core reported): each compute-queue opcode and function code
  (``core.instruction``), LOAD/STORE per side and per traffic class (``core.memory``), each dependency-token
  bit per queue (``core.tokens.queue_x_token``), compute instructions that wait on no, one or both neighbouring
  queues (``core.tokens.compute_waits``), and each error code the RTL raises (``core.fault``).

Each simulation writes the hits it sampled to ``$WAVECORE_COVERAGE_FILE`` (set by
:meth:`wavecore.verif.runner.Build.run`) when the simulator's Python exits; the runner then adds them to
``<build root>/coverage/coverage.json`` under a file lock (pytest-xdist workers run simulations in parallel)
and rewrites ``coverage.md``. ``python -m wavecore.verif.coverage`` prints the report: per coverpoint, bins hit
and total, and the holes.
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path

from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db

__all__ = [
    "COVERPOINTS",
    "merge_file",
    "reset_report",
    "report_markdown",
    "requantize_outcome",
    "sample_axi_burst",
    "sample_axi_latency",
    "sample_axi_outstanding",
    "sample_core_fault",
    "sample_core_instruction",
    "sample_stream_group",
    "sample_stream_transfer",
    "sample_requantize",
    "sample_variance",
]

FILE_VARIABLE = "WAVECORE_COVERAGE_FILE"
ROOT = "wavecore"

RUN_BINS = ["0", "1", "2-7", "8+"]
GROUP_BINS = ["1", "2", "3-7", "8+"]
LATENCY_BINS = ["0", "1-4", "5-15", "16+"]
CHANNELS = ["read", "write"]
BURST_ENDS = ["page", "max_burst", "row_end"]
NORM_UNITS = ["affine", "dx"]
RANGE_BINS = ["in_range", "saturated_high", "saturated_low"]
TIE_BINS = ["tie_positive", "tie_negative", "no_tie"]


def _bucket(value: int, bins: list[str]) -> str:
    """The label of ``bins`` (``"a"``, ``"a-b"`` or ``"a+"`` ranges, ascending) that holds ``value``."""
    for label in bins:
        if label.endswith("+"):
            if value >= int(label[:-1]):
                return label
        elif "-" in label:
            low, high = map(int, label.split("-"))
            if low <= value <= high:
                return label
        elif value == int(label):
            return label
    raise ValueError(f"{value} falls in none of the bins {bins}")


# -- stream protocol -----------------------------------------------------------------------------------------
@CoverPoint(f"{ROOT}.stream.gap", xf=lambda gap, stall: _bucket(gap, RUN_BINS), bins=RUN_BINS)
@CoverPoint(f"{ROOT}.stream.backpressure", xf=lambda gap, stall: _bucket(stall, RUN_BINS), bins=RUN_BINS)
def sample_stream_transfer(gap: int, stall: int) -> None:
    """One transfer after ``gap`` cycles without valid and ``stall`` cycles of valid held against ready low."""


@CoverPoint(f"{ROOT}.stream.group.flag", xf=lambda flag, beats: flag, bins=["last", "switch"])
@CoverPoint(f"{ROOT}.stream.group.beats", xf=lambda flag, beats: _bucket(beats, GROUP_BINS), bins=GROUP_BINS)
@CoverCross(f"{ROOT}.stream.group.flag_x_beats", items=[f"{ROOT}.stream.group.flag", f"{ROOT}.stream.group.beats"])
def sample_stream_group(flag: str, beats: int) -> None:
    """A group of ``beats`` transfers closed by the payload flag ``flag`` (``beats == 1``: back-to-back flags)."""


# -- DMA / AXI4 ----------------------------------------------------------------------------------------------
@CoverPoint(f"{ROOT}.axi.burst.channel", xf=lambda channel, end: channel, bins=CHANNELS)
@CoverPoint(f"{ROOT}.axi.burst.end", xf=lambda channel, end: end, bins=BURST_ENDS)
@CoverCross(f"{ROOT}.axi.burst.channel_x_end", items=[f"{ROOT}.axi.burst.channel", f"{ROOT}.axi.burst.end"])
def sample_axi_burst(channel: str, end: str) -> None:
    """A burst on ``channel`` that ended at a 4 KiB ``page``, at ``max_burst`` beats, or at its ``row_end``."""


@CoverPoint(f"{ROOT}.axi.outstanding_limit", xf=lambda channel: channel, bins=CHANNELS)
def sample_axi_outstanding(channel: str) -> None:
    """``channel`` has as many bursts in flight as the design's outstanding limit allows."""


@CoverPoint(f"{ROOT}.axi.latency.channel", xf=lambda channel, cycles: channel, bins=CHANNELS)
@CoverPoint(f"{ROOT}.axi.latency.cycles", xf=lambda channel, cycles: _bucket(cycles, LATENCY_BINS),
            bins=LATENCY_BINS)
@CoverCross(f"{ROOT}.axi.latency.channel_x_cycles",
            items=[f"{ROOT}.axi.latency.channel", f"{ROOT}.axi.latency.cycles"])
def sample_axi_latency(channel: str, cycles: int) -> None:
    """A response ``cycles`` after the earliest cycle it could have come (0: zero-latency subordinate)."""


# -- norm units ----------------------------------------------------------------------------------------------
@CoverPoint(f"{ROOT}.norm.requantize.unit", xf=lambda unit, outcome, tie: unit, bins=NORM_UNITS)
@CoverPoint(f"{ROOT}.norm.requantize.range", xf=lambda unit, outcome, tie: outcome, bins=RANGE_BINS)
@CoverPoint(f"{ROOT}.norm.requantize.rounding", xf=lambda unit, outcome, tie: tie, bins=TIE_BINS)
@CoverCross(f"{ROOT}.norm.requantize.unit_x_range",
            items=[f"{ROOT}.norm.requantize.unit", f"{ROOT}.norm.requantize.range"])
@CoverCross(f"{ROOT}.norm.requantize.unit_x_rounding",
            items=[f"{ROOT}.norm.requantize.unit", f"{ROOT}.norm.requantize.rounding"])
def sample_requantize(unit: str, outcome: str, tie: str) -> None:
    """One lane of a norm unit's requantization (``affine``: A*x + C; ``dx``: K1*dy + K2*x + K3): saturated or
    not, and whether the discarded bits were an exact tie (classified with :func:`requantize_outcome`)."""


@CoverPoint(f"{ROOT}.norm.variance", xf=lambda zero: "zero" if zero else "positive", bins=["zero", "positive"])
def sample_variance(zero: bool) -> None:
    """A statistic set of the scalar unit whose variance is zero (constant data) or positive."""


# -- WaveCore ------------------------------------------------------------------------------------------------
def _core_bins() -> dict[str, list[str]]:
    """The bins of the core's coverpoints, from the instruction set's one definition (``golden.core.isa``)."""
    from wavecore.golden.core import isa
    from wavecore.golden.core.errors import ErrorCode

    memory = ("LOAD", "STORE")
    classes = sorted({funct.split(".")[0] for funct in isa.FUNCTS["LOAD"]}, key=isa.TRAFFIC_CLASSES.index)
    spaces = sorted({funct.split(".")[1] for funct in isa.FUNCTS["LOAD"]})
    tokens = [f"{queue}.{bit}" for queue in ("load", "compute", "store") for bit in isa.TOKEN_BITS
              if not (queue == "load" and bit.endswith("prev")) and not (queue == "store" and bit.endswith("next"))]
    return {
        "instruction": [f"{opcode}.{funct}" for opcode, table in isa.FUNCTS.items() if opcode not in memory
                        for funct in table],
        "space": [f"{opcode}.{space}" for opcode in memory for space in spaces],
        "class": [f"{opcode}.{cls}" for opcode in memory for cls in classes],
        "token": tokens,
        "waits": ["none", "prev", "next", "both"],
        "fault": [code.name for code in ErrorCode if code != ErrorCode.NONE and "rtl" in code.raised_by],
    }


CORE_BINS = _core_bins()


def _is_memory(instruction) -> bool:
    return instruction.opcode in ("LOAD", "STORE")


def _core_token_bits(instruction) -> list[str]:
    from wavecore.golden.core import isa

    queue = isa.queue_of(instruction.opcode)
    return [f"{queue}.{bit}" for bit in isa.TOKEN_BITS if getattr(instruction, bit)]


def _core_waits(instruction) -> str | None:
    if _is_memory(instruction):
        return None
    return {(False, False): "none", (True, False): "prev", (False, True): "next", (True, True): "both"}[
        (instruction.pop_prev, instruction.pop_next)]


@CoverPoint(f"{ROOT}.core.instruction", xf=lambda ins: None if _is_memory(ins) else f"{ins.opcode}.{ins.funct}",
            bins=CORE_BINS["instruction"])
@CoverPoint(f"{ROOT}.core.memory.space",
            xf=lambda ins: f"{ins.opcode}.{ins.funct.split('.')[1]}" if _is_memory(ins) else None,
            bins=CORE_BINS["space"])
@CoverPoint(f"{ROOT}.core.memory.class",
            xf=lambda ins: f"{ins.opcode}.{ins.funct.split('.')[0]}" if _is_memory(ins) else None,
            bins=CORE_BINS["class"])
@CoverPoint(f"{ROOT}.core.tokens.queue_x_token", xf=_core_token_bits, bins=CORE_BINS["token"],
            rel=lambda value, label: label in value, inj=False)
@CoverPoint(f"{ROOT}.core.tokens.compute_waits", xf=_core_waits, bins=CORE_BINS["waits"])
def sample_core_instruction(instruction) -> None:
    """One instruction (``golden.core.isa.Instruction``) the core retired in a finished program."""


@CoverPoint(f"{ROOT}.core.fault", xf=lambda code: code.name, bins=CORE_BINS["fault"])
def sample_core_fault(code) -> None:
    """The error code (``golden.core.errors.ErrorCode``) the core stopped with."""


def requantize_outcome(total: int, *, shift: int, rounding: str, low: int, high: int) -> tuple[str, str]:
    """Classify one requantization of ``total`` by ``2**shift`` into ``[low, high]`` with the golden model's
    rounding (:func:`wavecore.golden.numerics.requantize` into a format wide enough not to saturate): the range
    outcome and whether the discarded bits were exactly one half (the only case where rounding modes differ)."""
    import numpy as np

    from wavecore.golden.numerics import IntFormat, requantize

    rounded = int(requantize(np.array([total], dtype=np.int64), shift, IntFormat(62), rounding)[0])
    outcome = "saturated_high" if rounded > high else "saturated_low" if rounded < low else "in_range"
    tie = "no_tie"
    if shift > 0 and total % (1 << shift) == 1 << (shift - 1):
        tie = "tie_negative" if total < 0 else "tie_positive"
    return outcome, tie


# every coverpoint (not the groups above them) with its bins, for the report
COVERPOINTS = (
    "stream.gap", "stream.backpressure", "stream.group.flag_x_beats",
    "axi.burst.channel_x_end", "axi.outstanding_limit", "axi.latency.channel_x_cycles",
    "norm.requantize.unit_x_range", "norm.requantize.unit_x_rounding", "norm.variance",
    "core.instruction", "core.memory.space", "core.memory.class", "core.tokens.queue_x_token",
    "core.tokens.compute_waits", "core.fault",
)


def enabled() -> bool:
    """Whether this process records coverage (a simulation started by :meth:`wavecore.verif.runner.Build.run`);
    samplers that cost extra bus traffic (the core's program read-back) run only then."""
    return bool(os.environ.get(FILE_VARIABLE))


# -- export, merge, report -----------------------------------------------------------------------------------
def _hits() -> dict[str, dict[str, int]]:
    hits = {}
    for name in COVERPOINTS:
        item = coverage_db.get(f"{ROOT}.{name}")
        if item is None:
            continue
        hits[name] = {_label(key): int(value) for key, value in item.detailed_coverage.items()}
    return hits


def _label(key) -> str:
    return " x ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _export() -> None:
    path = os.environ.get(FILE_VARIABLE)
    hits = _hits()
    if path and any(any(bins.values()) for bins in hits.values()):
        Path(path).write_text(json.dumps(hits, indent=1, sort_keys=True))


atexit.register(_export)


def merge_file(run_file: Path, directory: Path, *, test: str) -> None:
    """Add the hits of one simulation (``run_file``, written at its exit) to ``directory/coverage.json`` under a
    file lock, then rewrite ``directory/coverage.md``."""
    from filelock import FileLock

    from wavecore.files import write_atomic

    if not run_file.exists():
        return
    if os.environ.get("WAVECORE_MUTANT"):  # a mutant's simulation says nothing about the design's coverage
        run_file.unlink()
        return
    run = json.loads(run_file.read_text())
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / "coverage.lock")):
        merged_path = directory / "coverage.json"
        merged = json.loads(merged_path.read_text()) if merged_path.exists() else {"coverpoints": {}, "tests": []}
        for name in COVERPOINTS:
            bins = merged["coverpoints"].setdefault(name, {})
            for label in _all_bins(name):
                bins[label] = bins.get(label, 0) + run.get(name, {}).get(label, 0)
        if test not in merged["tests"]:
            merged["tests"].append(test)
        write_atomic(merged_path, json.dumps(merged, indent=1, sort_keys=True))
        write_atomic(directory / "coverage.md", report_markdown(merged))
    run_file.unlink()


def _all_bins(name: str) -> list[str]:
    return [_label(key) for key in coverage_db[f"{ROOT}.{name}"].detailed_coverage]


def report_markdown(merged: dict) -> str:
    """The report: per coverpoint, bins hit / total and the holes (bins never hit)."""
    lines = ["| coverpoint | bins hit | holes |", "|---|---|---|"]
    total_hit = total = 0
    for name in COVERPOINTS:
        bins = {label: merged["coverpoints"].get(name, {}).get(label, 0) for label in _all_bins(name)}
        hit = sum(1 for count in bins.values() if count)
        total_hit, total = total_hit + hit, total + len(bins)
        holes = ", ".join(label for label, count in bins.items() if not count) or "–"
        lines.append(f"| {name} | {hit}/{len(bins)} | {holes} |")
    lines.append(f"| all | {total_hit}/{total} | |")
    return "\n".join(lines) + f"\n\n{len(merged['tests'])} simulations merged.\n"


def reset_report() -> None:
    """Start a new report (pytest's session start): remove the merged files. Not during a mutation run, whose
    simulations test mutants and add nothing to the report."""
    if os.environ.get("WAVECORE_MUTANT"):
        return
    directory = coverage_directory()
    for name in ("coverage.json", "coverage.md"):
        (directory / name).unlink(missing_ok=True)


def coverage_directory() -> Path:
    from wavecore.paths import build_root

    return build_root() / "coverage"


def main() -> int:
    path = coverage_directory() / "coverage.json"
    if not path.exists():
        print(f"no coverage recorded yet ({path} does not exist): run the tests first")
        return 1
    print(report_markdown(json.loads(path.read_text())), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
