"""``wavecore sweep FILE -o DIR [--scheduler tcp://host:8786] [--workers N] [--retry-failed]``.

Only parses arguments and calls :mod:`wavecore.sweep`: every point of the sweep file is a Dask task, results go to
``DIR/results.csv`` as they finish (a second run resumes), and ``DIR/report.md`` lists the Pareto-optimal points
with plots. Format and examples: ``docs/sweeps.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

NAME = "sweep"
HELP = "evaluate a grid of accelerator/workload points on Dask (planner, RTL, synthesis) with a Pareto report"


def add_arguments(parser):
    parser.add_argument("file", type=Path, help="sweep YAML file (docs/sweeps.md; examples in configs/sweeps/)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="directory for results.csv, report.md and plots (default build/sweeps/NAME)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local cluster: worker processes (default: one per CPU core)")
    parser.add_argument("--retry-failed", action="store_true", help="evaluate the failed points of the table again")


def run(args) -> int:
    from wavecore.cli import UsageError
    from wavecore.paths import build_root
    from wavecore.sweep import SweepError, load_sweep, run_sweep

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be a positive integer, not {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        raise UsageError("--workers sizes the local cluster; it cannot be combined with --scheduler")
    if args.scheduler is not None and "://" not in args.scheduler:
        raise UsageError(f"--scheduler must be an address such as tcp://host:8786, not {args.scheduler!r}")
    try:
        spec = load_sweep(args.file)
    except SweepError as error:
        raise UsageError(f"{args.file}: {error}") from None
    output = args.output if args.output is not None else build_root() / "sweeps" / spec.name
    try:
        result = run_sweep(spec, output, scheduler=args.scheduler, workers=args.workers,
                           retry_failed=args.retry_failed,
                           progress=(lambda line: None) if args.quiet else (lambda line: print(line, flush=True)))
    except KeyboardInterrupt:
        print(f"interrupted: the finished points are in {output / 'results.csv'}; run the same command again to "
              "evaluate the others", file=sys.stderr)
        return 130
    except ConnectionError as error:
        raise UsageError(f"--scheduler: {error}") from None
    except ValueError as error:  # an output directory holding another sweep's table
        raise UsageError(f"--output: {error}") from None
    print(f"report: {result.report}")
    return 0
