"""Reproducible random seeds for every random test.

A seed comes from ``WAVECORE_SEED`` when it is set (or cocotb's ``COCOTB_RANDOM_SEED``/``RANDOM_SEED``;
``WAVECORE_SEED`` wins when several are set), otherwise it is drawn fresh; either way it is
printed (pytest side) or logged (cocotb side), and the failure message of a simulation names it, so
``WAVECORE_SEED=<seed> pytest ...`` replays a failing run exactly.
"""

from __future__ import annotations

import logging
import secrets

import numpy as np

from wavecore import environment

__all__ = ["SEED_VARIABLE", "choose_seed", "rng"]

SEED_VARIABLE = "WAVECORE_SEED"
_log = logging.getLogger("wavecore.seed")


def choose_seed() -> int:
    """The seed to use for a new run: ``WAVECORE_SEED``, else cocotb's ``COCOTB_RANDOM_SEED`` or
    ``RANDOM_SEED`` (the first one set wins, see :mod:`wavecore.environment`), else a fresh 31-bit value."""
    found = environment.lookup("seed")
    if found is not None:
        variable, text = found
        try:
            return int(text, 0)
        except ValueError:
            raise ValueError(f"{variable} must be an integer, not {text!r}") from None
    return secrets.randbits(31)


def rng(purpose: str = "") -> np.random.Generator:
    """A NumPy generator seeded from :func:`choose_seed`, with the seed logged and printed.

    Inside a cocotb testbench the pytest side has already chosen the seed and passed it in
    ``WAVECORE_SEED``, so the testbench and the failure message agree. ``purpose`` separates
    independent streams drawn from one seed (e.g. data vs. stall pattern).
    """
    seed = choose_seed()
    message = f"random seed {seed}{f' ({purpose})' if purpose else ''}; replay with {SEED_VARIABLE}={seed}"
    _log.info(message)
    print(message)
    entropy = [seed] + [ord(character) for character in purpose]
    return np.random.default_rng(entropy)
