"""Single-chip build of any generated block: BIST board top, bitstream, ``report.json`` / ``report.md``.

``synth_block`` is what ``wavecore synth`` calls: it wraps the block in :class:`boards.bist.BistBoardTop`
with the signature a correct block gives (computed by :func:`boards.bist.reference_signature`), runs the
flow of :mod:`boards.flow` for the target and returns the report. On ECP5 targets a systolic array uses
the DSP-register multiplier of :mod:`hdl.ecp5_mult` and on the iCE40UP5K the 8 ``SB_MAC16`` + LUT
multipliers of :mod:`hdl.ice40_mult`, unless the caller gives its own factory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from boards.bist import BistBoardTop, reference_signature
from boards.flow import build
from boards.report import BuildReport
from boards.targets import Target

__all__ = ["DEFAULT_BIST_CYCLES", "multiplier_for", "synth_block"]

DEFAULT_BIST_CYCLES = 512


def multiplier_for(target: Target):
    """The multiplier factory that maps best on ``target`` (see the module docstring)."""
    if target.family == "ecp5":
        from hdl.ecp5_mult import ecp5_multiplier

        return ecp5_multiplier("primitive")
    from hdl.ice40_mult import ice40_multipliers

    return ice40_multipliers(target.dsps)


def synth_block(
    factory: Callable,
    target: Target,
    out_dir: Path,
    *,
    design: str,
    parameters: dict,
    reference_factory: Callable | None = None,
    cycles: int = DEFAULT_BIST_CYCLES,
    seed: int | None = None,
) -> BuildReport:
    """Build ``factory()`` for ``target`` into ``out_dir``.

    ``reference_factory()`` (default ``factory``) builds the instance that is simulated for the expected
    signature; give a behavioural twin when ``factory`` instantiates vendor primitives.
    """
    expected = reference_signature(reference_factory or factory, cycles)
    top = BistBoardTop(factory(), target=target, cycles=cycles, expected=expected)
    report = build(top, target, Path(out_dir), design=design, parameters=parameters, seed=seed)
    report.extra["bist"] = f"{cycles} cycles, expected signature 0x{expected:08x}"
    report.write(Path(out_dir))
    return report
