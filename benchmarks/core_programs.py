"""Benchmark: WaveCore programs of one training step under each schedule, and the simulator's speed.

For a tiny net at batch 8 and each schedule (planned as ``wavecore compile`` does for a scratchpad of
``--buffer`` bytes of int8): instructions, DRAM bytes the program moves (total and per class), the planner's
prediction plus the named terms (``golden.core.terms``), predicted cycles (``golden.core.semantics``), and the
wall time of one run of the instruction-level simulator (checked bit-exact against ``golden.train`` on the
way).

    .venv/bin/python benchmarks/core_programs.py [--network tiny_resnet] [--norm gn] [--buffer 48KiB]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "golden" / "core"), str(ROOT / "tests" / "support")]

from core_cases import differences, run_step  # noqa: E402

from wavecore.golden.config import parse_size  # noqa: E402
from wavecore.golden.core.compiler import groups_from_plan  # noqa: E402
from wavecore.golden.core.isa import TRAFFIC_CLASSES  # noqa: E402
from wavecore.golden.core.semantics import CoreParameters  # noqa: E402
from wavecore.golden.core.terms import planner_terms  # noqa: E402
from wavecore.golden.plan.mbs import plan_baseline, plan_optimal  # noqa: E402
from wavecore.golden.plan.traffic import TrafficOptions  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="tiny_resnet")
    parser.add_argument("--norm", default="gn")
    parser.add_argument("--buffer", default="48KiB")
    args = parser.parse_args(argv)
    capacity = parse_size(args.buffer, "--buffer")
    parameters = CoreParameters(scratchpad_elements=min(capacity, 1 << 18))
    print(f"{args.network}, {args.norm}, batch 8, int8, scratchpad {args.buffer}")
    print("| schedule | groups (sub-batch) | instructions | DRAM bytes | planner + terms | predicted cycles | "
          "simulator s | bit-exact |")
    print("|---|---|---|---|---|---|---|---|")
    rows = {}
    for schedule in ("baseline", "bnff", "mbs", "mbs-bnff"):
        fused = schedule.endswith("bnff")
        options = TrafficOptions(dtype_bytes=1, grad_bytes=4, norm_variant="fused" if fused else "two_pass",
                                 weight_buffer_bytes=2 * 2304)

        def groups(network, schedule=schedule, options=options):
            if schedule.startswith("mbs"):
                return groups_from_plan(plan_optimal(network, 8, parameters.scratchpad_elements, options=options),
                                        network)
            return groups_from_plan(plan_baseline(network, 8, options=options), network)

        start = time.perf_counter()
        run = run_step(args.network, norm=args.norm, schedule="mbs-bnff" if fused else "mbs",
                       parameters=parameters, groups=groups)
        seconds = time.perf_counter() - start
        exact = differences(run) == []
        planned = (plan_optimal(run.network, 8, parameters.scratchpad_elements, options=options)
                   if schedule.startswith("mbs") else plan_baseline(run.network, 8, options=options))
        terms = planner_terms(run.network, groups(run.network), 8, operand_bytes=1, accumulator_bytes=4,
                              norm_fusion=fused)
        predicted = sum(planned.traffic.per_class.values()) + sum(sum(t.values()) for t in terms.values())
        expected = run.step.expected
        shape = ", ".join(f"{len(g.layers)}x{g.sub_batch}" for g in run.step.groups)
        if len(shape) > 40:
            shape = f"{len(run.step.groups)} groups"
        rows[schedule] = expected["bytes"]
        print(f"| {schedule} | {shape} | {len(run.step.program)} | {sum(expected['bytes'].values()):,} | "
              f"{predicted:,} | {expected['cycles']:,} | {seconds:.2f} | {'yes' if exact else 'NO'} |")
    print()
    print("| class | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for cls in TRAFFIC_CLASSES:
        print(f"| {cls} | " + " | ".join(f"{row[cls]:,}" for row in rows.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
