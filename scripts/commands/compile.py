"""``wavecore compile``: one training step of a network as a WaveCore program (``docs/core.md``).

Only parses arguments and calls :mod:`golden.core.compiler`. Writes ``program.bin`` (the instruction words),
``program.lst`` (the listing), ``memory_map.json`` (the DRAM regions) and ``expected.json`` (bytes per
traffic class, instruction counts, predicted cycles, the planner's prediction for the same groups) into
``-o DIR``; any error is one line, exit 2, and nothing is written.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["HELP", "NAME", "SCHEDULES", "add_arguments", "run"]

NAME = "compile"
HELP = "compile one training step of a network into a WaveCore program (ISA, memory map, expected figures)"

SCHEDULES = ("baseline", "bnff", "mbs", "mbs-bnff")


def add_arguments(parser):
    parser.add_argument("--network", default=None,
                        help="zoo name or network YAML path (default: the config's workload.network)")
    parser.add_argument("--batch", type=int, default=None,
                        help="mini-batch size (default: the config's workload.batch)")
    parser.add_argument("--schedule", default="mbs", help="one of " + ", ".join(SCHEDULES) + " (default mbs)")
    parser.add_argument("--norm", default=None, help="bn, gn or none (default: the config's workload.norm)")
    parser.add_argument("--config", default=None, help="accelerator YAML (default: the embedded default)")
    parser.add_argument("-o", "--out", default="build/prog", help="output directory (default build/prog)")


def run(args) -> int:
    from wavecore.cli import UsageError

    if args.schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {args.schedule!r}")
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch must be a positive integer, not {args.batch}")
    if args.norm is not None and args.norm not in ("bn", "gn", "none"):
        raise UsageError(f"--norm must be one of bn, gn, none, not {args.norm!r}")

    from wavecore.golden.config import ConfigError, load_config
    from wavecore.golden.core.build import compile_workload
    from wavecore.golden.network import NetworkError

    try:
        config = load_config(args.config)
    except (ConfigError, OSError) as error:
        raise UsageError(f"--config: {error}") from None
    try:
        workload = compile_workload(config, network=args.network, batch=args.batch, schedule=args.schedule,
                                    norm=args.norm)
    except (NetworkError, OSError) as error:
        raise UsageError(f"--network: {error}") from None
    except ValueError as error:
        raise UsageError(f"--network/--schedule/--config: {error}") from None
    network, step, expected = workload.network, workload.step, workload.expected
    image, groups, args.batch = step.image, step.groups, workload.batch
    out = Path(args.out)
    staging = Path(tempfile.mkdtemp(prefix=".compile-", dir=out.parent if out.parent.exists() else None))
    try:
        (staging / "program.bin").write_bytes(image)
        (staging / "program.lst").write_text(step.listing())
        (staging / "memory_map.json").write_text(step.memory_map.to_json() + "\n")
        (staging / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        for path in staging.iterdir():
            shutil.move(str(path), out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = step.expected["instructions"]
    moved = step.expected["bytes"]
    terms = expected["planner_terms"].values()
    predicted = {cls: expected["planner_bytes"].get(cls, 0) + sum(term.get(cls, 0) for term in terms) for cls in moved}
    differing = {cls: moved[cls] - predicted[cls] for cls in moved if moved[cls] != predicted[cls]}
    sys.stdout.write(
        f"{network.name} batch {args.batch} {args.schedule}: {len(step.program)} instructions "
        f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}), {len(groups)} groups, "
        f"{sum(step.expected['bytes'].values()):,} DRAM bytes, {step.expected['cycles']:,} cycles predicted -> {out}\n"
    )
    sys.stdout.write("traffic per class = planner + named terms\n" if not differing else
                     f"traffic differs from planner + named terms by {differing} (not reconciled: docs/core.md)\n")
    return 0

