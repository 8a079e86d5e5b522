"""Time planning all MBS schedules of a network (target: ResNet-50 under 2 s).

Run: ``.venv/bin/python benchmarks/plan_speed.py [--network resnet50] [--repeat 3]``. Prints the best wall
time of ``plan_mbs_family`` (baseline, baseline+BNFF, MBS greedy, MBS optimal, MBS optimal+BNFF, including
each plan's traffic evaluation), then of the same plus the per-schedule cycle model.
"""

from __future__ import annotations

import argparse
import time

from wavecore.golden.network import load_network
from wavecore.golden.plan.report import MBS_SCHEDULES, mbs_rows, plan_mbs_family
from wavecore.golden.plan.traffic import TrafficOptions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="resnet50")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--buffer-mib", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    network = load_network(args.network, norm="gn")
    options = TrafficOptions()
    best_plan = best_all = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        plans = plan_mbs_family(network, args.batch, args.buffer_mib << 20, options, MBS_SCHEDULES)
        middle = time.perf_counter()
        mbs_rows(network, plans, rows=128, cols=128, dataflow="os")
        end = time.perf_counter()
        best_plan = min(best_plan, middle - start)
        best_all = min(best_all, end - start)
    print(
        f"{args.network} batch {args.batch} buffer {args.buffer_mib} MiB: plan all {len(MBS_SCHEDULES)} "
        f"schedules {best_plan:.3f} s; with cycles {best_all:.3f} s (best of {args.repeat})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
