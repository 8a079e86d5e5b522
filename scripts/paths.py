"""Where wavecore finds its shipped files and where it puts build products.

:func:`source_root` is the repository checkout wavecore runs from (editable install or the source tree),
or ``None`` for an installed wheel. :func:`build_root` is where simulator builds and caches go:
``WAVECORE_BUILD_DIR`` when set, else the output directory of the command that is running (set with
:func:`builds_under`: ``wavecore run -o DIR`` and ``wavecore pipeline --simulate -o DIR`` build in ``DIR/sim``),
else ``build/`` of the checkout, else ``build/`` of the working directory (an installed package never writes
into its own install location).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["build_root", "builds_under", "configs_dir", "source_root"]

_PACKAGE = Path(__file__).resolve().parent
_COMMAND_OUTPUT: contextvars.ContextVar[Path | None] = contextvars.ContextVar("build_root", default=None)


@contextlib.contextmanager
def builds_under(directory) -> Iterator[Path]:
    """Within this block, :func:`build_root` is ``directory`` (unless ``WAVECORE_BUILD_DIR`` is set)."""
    token = _COMMAND_OUTPUT.set(Path(directory).resolve())
    try:
        yield build_root()
    finally:
        _COMMAND_OUTPUT.reset(token)


def source_root() -> Path | None:
    """The checkout that holds this package (``scripts/`` is the ``wavecore`` package), or ``None``."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "hdl").is_dir() else None


def build_root() -> Path:
    """The directory for simulator builds and caches (see the module docstring)."""
    chosen = os.environ.get("WAVECORE_BUILD_DIR")
    if chosen:
        return Path(chosen).resolve()
    if _COMMAND_OUTPUT.get() is not None:
        return _COMMAND_OUTPUT.get()
    root = source_root()
    return (root if root is not None else Path.cwd()) / "build"


def configs_dir() -> Path:
    """The shipped configurations (``configs/``: the default accelerator, networks, pipelines)."""
    import wavecore.configs

    return Path(wavecore.configs.__file__).resolve().parent
