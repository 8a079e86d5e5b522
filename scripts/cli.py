"""The ``wavecore`` command line.

Each command is a module in :mod:`wavecore.commands` defining ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. The CLI only parses arguments and calls the library.

Errors in the user's input are one line on stderr and exit status 2: argparse errors, and any
:class:`UsageError` a command raises after parsing (a bad value that argparse cannot check alone).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from wavecore import __version__, commands

__all__ = ["UsageError", "build_parser", "main"]


class UsageError(Exception):
    """A bad command-line value; the message names the option and what is allowed."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2, nothing written
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            yield module


def _add_quiet(parser, default=False) -> None:
    """``--quiet`` on a command and on each of its sub-commands (``wavecore generate systolic --quiet``)."""
    parser.add_argument("--quiet", action="store_true", default=default,
                        help="no progress bars or progress lines (results are still printed)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                # SUPPRESS: an unset --quiet below must not reset one given above
                _add_quiet(sub, default=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wavecore",
        description="RTL generator and verification framework for CNN training accelerators.",
    )
    parser.add_argument("--version", action="version", version=f"wavecore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        _add_quiet(command)
        command.set_defaults(_run=module.run, _prog=command.prog)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from wavecore import progress

    progress.configure(quiet=bool(getattr(args, "quiet", False)))
    try:
        return int(args._run(args) or 0)
    except UsageError as error:
        sys.stderr.write(f"{args._prog}: error: {error}\n")
        return 2
    except BrokenPipeError:  # `wavecore plan ... | head`: the reader left; stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0


if __name__ == "__main__":
    sys.exit(main())
