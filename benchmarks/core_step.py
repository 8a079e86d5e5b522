"""Benchmark: one compiled training step on the WaveCore RTL, MBS vs the layer-by-layer baseline.

For the embedded default configuration (tiny_resnet, batch 8, int8, 128 KiB on-chip buffer, 8x8, 16 bytes per
cycle of DRAM bandwidth) and each schedule: compile, build the configured core with every unit and the HDL DRAM
model (Verilator, cached), run the step with random DRAM stalls and latency, check the DRAM image after it
bit for bit, and report the DRAM bytes per traffic class the core's counters measured (next to the compiler's
prediction and planner + named terms), measured vs predicted cycles, the GEMM unit's share of the cycles and
the simulation speed.

    .venv/bin/python benchmarks/core_step.py [--simulator verilator] [--norm gn|bn] [--config FILE]

Writes build/benchmarks/core_step.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from wavecore.files import write_atomic  # noqa: E402
from wavecore.golden.config import load_config  # noqa: E402
from wavecore.golden.core import isa  # noqa: E402
from wavecore.verif.training_step import run_step_on_core  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="verilator")
    parser.add_argument("--norm", default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--schedules", default="mbs,baseline")
    args = parser.parse_args()
    config = load_config(args.config)
    reports = {}
    for schedule in args.schedules.split(","):
        reports[schedule] = run_step_on_core(config, schedule=schedule, norm=args.norm, simulator=args.simulator)
    first = next(iter(reports.values()))
    print(f"{first.network}, batch {first.batch}, {args.norm or 'network norm'}, {config.memory.buffer // 1024} KiB "
          f"buffer, {args.simulator}")
    print("| schedule | groups (sub-batch) | instructions | bit-exact | DRAM bytes measured | = predicted | "
          "cycles measured | predicted | error | GEMM busy | run s | cycles / s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for schedule, report in reports.items():
        sub_batches = sorted({group["sub_batch"] for group in report.groups})
        moved = sum(report.measured_bytes.values())
        error = report.measured_cycles / report.predicted_cycles - 1
        print(f"| {schedule} | {len(report.groups)} ({', '.join(map(str, sub_batches))}) | {report.instructions} | "
              f"{'yes' if report.bit_exact else 'NO'} | {moved:,} | "
              f"{'yes' if report.traffic_matches else 'NO'} | {report.measured_cycles:,} | "
              f"{report.predicted_cycles:,} | {error:+.2%} | "
              f"{report.gemm_busy_cycles / max(1, report.measured_cycles):.0%} | {report.run_seconds:.1f} | "
              f"{report.measured_cycles / report.run_seconds:,.0f} |")
    print()
    names = list(reports)
    print("| class | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for cls in isa.TRAFFIC_CLASSES:
        print(f"| {cls} | " + " | ".join(f"{reports[name].measured_bytes[cls]:,}" for name in names) + " |")
    print("| total | " + " | ".join(f"{sum(reports[name].measured_bytes.values()):,}" for name in names) + " |")
    out = ROOT / "build" / "benchmarks" / "core_step.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps({name: report.to_dict() for name, report in reports.items()}, indent=1) + "\n")
    return 0 if all(report.bit_exact and report.traffic_matches for report in reports.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
