"""``wavecore mutate [--subsystem NAME ...] [--module FILE ...] [--changed REVISION] [--sample N | --sample-each N]
[--seed S] [--jobs N] -o DIR``: mutation testing.

Lists mutants of the generators of the chosen subsystems, sets aside those that leave the Verilog unchanged or
that Yosys proves equivalent, runs each remaining mutant's tests with a time limit and writes
``DIR/report.md`` / ``DIR/report.json`` (per subsystem: mutants, unchanged, equivalent, killed, timeout,
survived, score; every survivor with its diff). Results are kept in ``DIR/results.jsonl``: run the same
command again to resume. The library is :mod:`wavecore.verif.mutate`.
"""

from __future__ import annotations

import random
import sys
import time

NAME = "mutate"
HELP = "mutation testing of the generators: how many wrong designs do the tests catch?"


def add_arguments(parser):
    from wavecore.verif.mutate import SUBSYSTEMS

    parser.add_argument("--subsystem", action="append", choices=tuple(SUBSYSTEMS), default=None,
                        help="subsystem to mutate (repeatable; default: all)")
    parser.add_argument("--module", action="append", default=None, metavar="FILE",
                        help="only this module, e.g. hdl/array/pe.py (repeatable)")
    parser.add_argument("--changed", default=None, metavar="REVISION",
                        help="only the modules that differ from git REVISION (e.g. HEAD~1: what a change touched)")
    parser.add_argument("--sample", type=int, default=None, help="run only N mutants drawn with --seed")
    parser.add_argument("--sample-each", type=int, default=None, metavar="N",
                        help="run only N mutants of each subsystem, drawn with --seed (the report gives each "
                        "subsystem's score with its 95 %% interval)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="mutants processed at once (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the sample (default: random, printed)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="start no new mutant after this many seconds (the run resumes later)")
    parser.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                        help="time limit of one mutant's tests (default 900)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("-o", "--output", default="build/mutation", help="output directory (default build/mutation)")


def run(args) -> int:
    from wavecore.cli import UsageError
    from wavecore.verif.mutate import SUBSYSTEMS, MutationRun

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    modules = args.module
    if args.changed is not None:
        from wavecore.verif.mutate import changed_modules

        try:
            touched = changed_modules(args.changed)
        except ValueError as error:
            raise UsageError(f"--{error}") from None
        modules = [module for module in touched if modules is None or module in modules]
        subsystems = [name for name in (args.subsystem or SUBSYSTEMS)
                      if any(module in SUBSYSTEMS[name].modules for module in modules)]
        if not subsystems:
            print(f"no generator module of the chosen subsystems differs from {args.changed}: nothing to mutate")
            return 0
        args.subsystem = subsystems
    try:
        mutation = MutationRun(
            output=args.output, subsystems=tuple(args.subsystem or SUBSYSTEMS), modules=modules,
            sample=args.sample, each=args.sample_each, jobs=args.jobs, seed=seed, budget=args.budget,
            timeout=args.timeout,
            progress=None if args.quiet else lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True))
    except ValueError as error:
        option, rest = str(error).split(" ", 1)
        option = {"each": "sample-each"}.get(option, option)
        raise UsageError(f"--{option} {rest}") from None
    mutants = mutation.mutants()
    if args.list:
        for mutant in mutants:
            print(f"{mutant.identifier}  {mutant.kind:9}  {mutant.describe()}")
        return 0
    print(f"{len(mutants)} mutants, seed {seed}; results in {mutation.results_file}", file=sys.stderr)
    records = mutation.run()
    from wavecore.verif.mutate import summarise

    for name, row in sorted(summarise(records, argued=mutation.argued()).items()):
        score = f"{100 * row['score']:.1f} %" if row["score"] is not None else "-"
        argued = f"{100 * row['argued_score']:.1f} %" if row["argued_score"] is not None else "-"
        print(f"{name}: {row['mutants']} mutants, {row['unchanged']} unchanged, {row['equivalent']} equivalent, "
              f"{row['killed']} killed, {row['timeout']} timeout, {row['survived']} survived "
              f"({row['argued']} argued equivalent), score {score}, {argued} with the argued set aside")
    print(f"report: {mutation.output / 'report.md'}")
    return 0
