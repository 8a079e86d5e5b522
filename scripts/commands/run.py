"""``wavecore run [--config FILE]``: the main job on one accelerator configuration (``wavecore.verif.main_job``)."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "run"
HELP = ("compile the configured workload (MBS and baseline), generate the core, run both training steps on it and "
        "check them bit for bit, print measured vs predicted traffic and cycles")
SIMULATORS = ("verilator", "icarus")


def add_arguments(parser):
    parser.add_argument("--config", default=None,
                        help="accelerator YAML (default: the embedded configs/default.yaml)")
    parser.add_argument("--simulator", default=None,
                        help="one of " + ", ".join(SIMULATORS) + " (default: $WAVECORE_SIM or $SIM, else verilator)")
    parser.add_argument("-o", "--output", default="build/run",
                        help="output directory; simulator builds go to its sim/ unless $WAVECORE_BUILD_DIR is set "
                             "(default build/run)")


def run(args) -> int:
    from wavecore.cli import UsageError
    from wavecore.golden.config import ConfigError, load_config
    from wavecore.verif.main_job import run_main_job
    from wavecore.verif.runner import chosen_simulator

    if args.simulator is None:
        try:
            args.simulator = chosen_simulator() or "verilator"
        except ValueError as error:
            raise UsageError(str(error)) from None
    if args.simulator not in SIMULATORS:
        raise UsageError(f"--simulator must be one of {', '.join(SIMULATORS)}, not {args.simulator!r}")
    try:
        config = load_config(args.config)
    except ConfigError as error:
        raise UsageError(f"--config: {error}") from None

    def progress(message: str) -> None:
        print(message, flush=True)

    summary = run_main_job(config, Path(args.output), simulator=args.simulator, progress=progress)
    sys.stdout.write("\n" + summary.text() + "\n")
    return 0 if summary.ok else 1
