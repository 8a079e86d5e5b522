"""The environment variables wavecore reads, with cocotb's names accepted beside its own.

Each setting has wavecore's variable first and the cocotb convention after it; the first one that is set to a
non-empty value wins, so a ``WAVECORE_*`` variable overrides the cocotb one when both are set:

============  ===================================================  ==========================================
setting       variables, highest precedence first                  meaning
============  ===================================================  ==========================================
simulator     ``WAVECORE_SIM``, ``SIM``                            run cocotb tests on this simulator only
                                                                   (``icarus`` or ``verilator``); also the
                                                                   default ``--simulator`` of ``wavecore run``
seed          ``WAVECORE_SEED``, ``COCOTB_RANDOM_SEED``,           the random seed of every test
              ``RANDOM_SEED``
waves         ``WAVECORE_WAVES``, ``WAVES``                        record a waveform per test (``1``/``0``)
build_dir     ``WAVECORE_BUILD_DIR``                               where simulator builds go
============  ===================================================  ==========================================
"""

from __future__ import annotations

import os

__all__ = ["VARIABLES", "flag", "lookup"]

VARIABLES: dict[str, tuple[str, ...]] = {
    "simulator": ("WAVECORE_SIM", "SIM"),
    "seed": ("WAVECORE_SEED", "COCOTB_RANDOM_SEED", "RANDOM_SEED"),
    "waves": ("WAVECORE_WAVES", "WAVES"),
    "build_dir": ("WAVECORE_BUILD_DIR",),
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def lookup(setting: str) -> tuple[str, str] | None:
    """``(variable, value)`` of the first variable of ``setting`` that is set and not empty, or ``None``."""
    for variable in VARIABLES[setting]:
        value = os.environ.get(variable, "").strip()
        if value:
            return variable, value
    return None


def flag(setting: str) -> bool:
    """A yes/no setting (``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``); unset is no."""
    found = lookup(setting)
    if found is None:
        return False
    variable, value = found
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"{variable} must be 1 or 0 (or true/false, yes/no, on/off), not {value!r}")
