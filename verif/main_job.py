"""The main job (``make run`` / ``wavecore run``): one accelerator configuration, one training step on the RTL.

Steps, each reported as it finishes:

1. **compile** the configured workload (``workload.network``, ``batch``, ``norm``) into WaveCore programs: the
   optimal MBS grouping the planner finds for the configured buffer, and the layer-by-layer baseline
   (:func:`wavecore.golden.core.build.compile_workload`);
2. **generate** the WaveCore RTL for the configuration (Verilog, JSON with ports and register map, FuseSoC core);
3. **mbs** and 4. **baseline**: run each program for one full training step on the generated core on a simulator
   (:func:`wavecore.verif.training_step.run_step_on_core`: HDL DRAM model with random latency and stalls, Python
   idle while the core runs), and check every byte of DRAM after the step (parameters, velocities, stored
   tensors, losses) against the instruction-level simulator, the simulator's tensors against the golden integer
   step, and the bytes per traffic class the core's counters measured against the compiler's and the planner's
   prediction; report measured vs predicted cycles and the GEMM unit's share of them.

The summary ends with the measured DRAM traffic of both schedules per traffic class (MBS's cut). The result is
a :class:`MainJobSummary` whose :meth:`~MainJobSummary.text` is what the CLI prints and which is also written to
``summary.txt`` and, with every step's figures, ``summary.json`` in the output directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wavecore.golden.config import AcceleratorConfig

__all__ = ["MainJobSummary", "StepResult", "run_main_job"]



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
    traffic: dict = field(default_factory=dict)  # class -> (baseline bytes, MBS bytes), measured on the core

    def to_dict(self) -> dict:
        """``summary.json``: the configuration, every step with its figures, the files by kind, the verdict."""
        return {"config": self.config.name, "norm": self.norm, "ok": self.ok, "output": str(self.output),
                "steps": [{"name": step.name, "ok": step.ok, "seconds": round(step.seconds, 3),
                           "detail": step.detail, **step.values} for step in self.steps],
                "files": self.files,
                "traffic": {cls: {"baseline": base, "mbs": mbs} for cls, (base, mbs) in self.traffic.items()}}

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
            f"({arithmetic.overflow}), buffer {config.memory.buffer / 1024:g} KiB, {config.clock_mhz:g} MHz",
            f"  workload {config.workload.network}, batch {config.workload.batch}, "
            f"norm {self.norm or config.workload.norm or 'as in the network file'}, "
            f"dtype {config.workload.dtype}",
            "",
            f"  {'step':<10}{'result':<8}{'time':>8}  detail",
        ]
        for step in self.steps:
            lines.append(f"  {step.name:<10}{'ok' if step.ok else 'FAILED':<8}{step.seconds:>7.1f}s  {step.detail}")
        if self.traffic:
            lines += ["", f"  {'DRAM bytes measured':<22}{'baseline':>12}{'MBS':>12}{'cut':>8}"]
            rows = [(cls, base, mbs) for cls, (base, mbs) in self.traffic.items() if base or mbs]
            total = ("total", sum(b for _, b, _ in rows), sum(m for _, _, m in rows))
            for cls, base, mbs in [*rows, total]:
                cut = f"{1 - mbs / base:.0%}" if base else "-"
                lines.append(f"  {cls:<22}{base:>12,}{mbs:>12,}{cut:>8}")
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


def run_main_job(
    config: AcceleratorConfig,
    output: Path,
    *,
    simulator: str = "verilator",
    progress: Callable[[str], None] = print,
) -> MainJobSummary:
    """Run the steps for ``config``, writing into ``output`` (simulator builds into ``output/sim`` unless
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
    from wavecore.golden.core.build import compile_workload, core_setup
    from wavecore.hdl.registry import generate_files
    from wavecore.verif.training_step import bus_width, run_step_on_core

    summary = MainJobSummary(config=config, output=output)
    workloads, reports = {}, {}

    def compile_step() -> tuple[str, dict]:
        from wavecore.files import write_atomic_many

        for schedule in ("mbs", "baseline"):
            workloads[schedule] = workload = compile_workload(config, schedule=schedule)
            directory = output / "programs" / schedule
            write_atomic_many([(directory / "program.lst", workload.step.listing()),
                               (directory / "expected.json", json.dumps(workload.expected, indent=1) + "\n")])
            summary.files.setdefault("programs", []).append(str(directory))
        mbs, base = workloads["mbs"], workloads["baseline"]
        summary.norm = mbs.network.norm
        groups = mbs.expected["groups"]
        sub_batches = sorted({group["sub_batch"] for group in groups})
        return (f"{mbs.network.name} batch {mbs.batch}: MBS {len(groups)} group(s), sub-batches {sub_batches}, "
                f"{len(mbs.step.program)} instructions; baseline {len(base.expected['groups'])} groups, "
                f"{len(base.step.program)} instructions",
                {"network": mbs.network.name, "groups": len(groups), "sub_batches": sub_batches,
                 "instructions": {"mbs": len(mbs.step.program), "baseline": len(base.step.program)}})

    summary.steps.append(_timed("compile", compile_step, progress))

    def generate() -> tuple[str, dict]:
        parameters, numerics = core_setup(config)
        block = {"block": "core", "rows": parameters.rows, "cols": parameters.cols,
                 "in_width": parameters.in_width, "acc_width": parameters.acc_width,
                 "scratchpad_elements": parameters.scratchpad_elements,
                 "overflow": numerics.mac.overflow, "data_width": bus_width(parameters)}
        files = generate_files(block, output / "core", toplevel="wavecore")
        verilog = files.paths[0]
        summary.files["verilog"] = [str(path) for path in files.paths]
        lines = Path(verilog).read_text().count("\n")
        return f"{Path(verilog).name} ({lines:,} lines) and its JSON, FuseSoC core and filelist", {
            "verilog_lines": lines}

    summary.steps.append(_timed("generate", generate, progress))

    def core_run(schedule):
        def run() -> tuple[str, dict]:
            if schedule not in workloads:
                raise AssertionError("nothing to run (the compile step failed)")
            report = run_step_on_core(config, schedule=schedule, simulator=simulator, seed=config.workload.seed,
                                      directory=output / "runs" / schedule)
            reports[schedule] = report
            summary.files.setdefault("simulation", []).extend(
                [report.directory, str(Path(report.simulation) / "sim.log")])
            summary.files.setdefault("waveforms", []).extend(report.waveforms)
            values = report.to_dict()
            if report.fault:
                raise AssertionError(f"the core stopped with error {report.fault['code']} at "
                                     f"{report.fault['address']:#x}")
            if report.golden_wrong:
                raise AssertionError(f"the simulator differs from the golden step in {report.golden_wrong[:3]}")
            if report.wrong_regions:
                located = report.first_wrong_instruction
                raise AssertionError(f"DRAM after the step differs from the simulator's in "
                                     f"{len(report.wrong_regions)} regions, first {report.wrong_regions[0]}"
                                     + (f"; first wrong instruction #{located.text} ({located.difference})"
                                        if located else ""))
            if not report.traffic_matches:
                raise AssertionError(f"measured bytes {report.measured_bytes} != predicted {report.predicted_bytes}")
            moved = sum(report.measured_bytes.values())
            error = report.measured_cycles / report.predicted_cycles - 1
            return (f"{simulator}: bit-exact DRAM after the step; {moved:,} bytes moved = predicted; "
                    f"{report.measured_cycles:,} cycles ({error:+.1%} vs {report.predicted_cycles:,} predicted), "
                    f"GEMM unit busy {report.gemm_busy_cycles / max(1, report.measured_cycles):.0%}; "
                    f"build {report.build_seconds:.0f}s, run {report.run_seconds:.0f}s", values)
        return run

    for schedule in ("mbs", "baseline"):
        summary.steps.append(_timed(schedule, core_run(schedule), progress))
    if len(reports) == 2:
        summary.traffic = {cls: (reports["baseline"].measured_bytes[cls], reports["mbs"].measured_bytes[cls])
                           for cls in reports["mbs"].measured_bytes}
    return summary
