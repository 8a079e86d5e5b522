"""Where wavecore finds its shipped files and where it puts build products.

:func:`source_root` is the repository checkout wavecore runs from (editable install or the source tree),
or ``None`` for an installed wheel. :func:`build_root` is where simulator builds and caches go:
``WAVECORE_BUILD_DIR`` when set, else ``build/`` of the checkout, else ``build/`` of the working directory
(an installed package never writes into its own install location).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["build_root", "configs_dir", "source_root"]

_PACKAGE = Path(__file__).resolve().parent


def source_root() -> Path | None:
    """The checkout that holds this package (``scripts/`` is the ``wavecore`` package), or ``None``."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "hdl").is_dir() else None


def build_root() -> Path:
    """The directory for simulator builds and caches (see the module docstring)."""
    chosen = os.environ.get("WAVECORE_BUILD_DIR")
    if chosen:
        return Path(chosen).resolve()
    root = source_root()
    return (root if root is not None else Path.cwd()) / "build"


def configs_dir() -> Path:
    """The shipped configurations (``configs/``: the default accelerator, networks, pipelines)."""
    import wavecore.configs

    return Path(wavecore.configs.__file__).resolve().parent
