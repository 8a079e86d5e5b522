"""Single-chip build of any generated block: BIST board top, bitstream, ``report.json`` / ``report.md``.

``synth_block`` is what ``wavecore synth`` calls: it wraps the block in :class:`wavecore.boards.bist.BistBoardTop`
with the signature a correct block gives (computed by :func:`wavecore.boards.bist.reference_signature`), runs the
flow of :mod:`wavecore.boards.flow` for the target and returns the report. On ECP5 targets a systolic array uses
the DSP-register multiplier of :mod:`wavecore.hdl.array.ecp5_mult` and on the iCE40UP5K the 8 ``SB_MAC16`` + LUT
multipliers of :mod:`wavecore.hdl.array.ice40_mult`, unless the caller gives its own factory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wavecore.boards.bist import BistBoardTop, reference_signature
from wavecore.boards.flow import build
from wavecore.boards.report import BuildReport
from wavecore.boards.targets import Target

__all__ = ["DEFAULT_BIST_CYCLES", "MULTIPLIERS", "multiplier_factory", "registry_factories", "synth_block"]

DEFAULT_BIST_CYCLES = 512


MULTIPLIERS = ("auto", "generic", "ecp5_dsp", "ice40_mixed")


def multiplier_factory(choice: str, target: Target, *, simulation: bool = False):
    """The systolic multiplier factory for ``choice`` on ``target`` (see the module docstring).

    ``auto`` is ``ecp5_dsp`` on ECP5 and ``ice40_mixed`` on iCE40. With ``simulation`` the ECP5 DSP is its
    behavioural twin (Amaranth's simulator cannot run the ``MULT18X18D`` instance; the netlist runs on Icarus
    with wavecore's model of it, :mod:`wavecore.boards.gatelevel`).
    """
    from wavecore.hdl.array.ecp5_mult import ecp5_multiplier
    from wavecore.hdl.array.ice40_mult import ice40_multipliers
    from wavecore.hdl.array.multiplier import RegisteredMultiplier

    if choice not in MULTIPLIERS:
        raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {choice!r}")
    if choice == "auto":
        choice = "ecp5_dsp" if target.family == "ecp5" else "ice40_mixed"
    if choice == "ecp5_dsp":
        if target.family != "ecp5":
            raise ValueError(f"multiplier ecp5_dsp needs an ECP5 target, not {target.name}")
        return ecp5_multiplier("behavioural" if simulation else "primitive")
    if choice == "ice40_mixed":
        return ice40_multipliers(target.dsps)
    return RegisteredMultiplier


def registry_factories(config: dict, target: Target, multiplier: str = "auto"):
    """``(factory, reference_factory, parameters)`` for a registry configuration ``{"block": ..., ...}``.

    Every parameter is checked (``TypeError``/``ValueError`` naming it) before anything is returned.
    ``parameters`` is the full configuration plus the resolved multiplier choice, for the report.
    """
    import inspect

    from wavecore.hdl.registry import BLOCKS, full_config

    full = full_config(config["block"], {key: value for key, value in config.items() if key != "block"})
    name = full.pop("block")
    spec = BLOCKS[name]
    component = spec.component
    takes_multiplier = "multiplier" in inspect.signature(component).parameters

    def make(simulation: bool):
        def factory():
            extra = {}
            if takes_multiplier:
                extra["multiplier"] = multiplier_factory(multiplier, target, simulation=simulation)
            return spec.build(**full, **extra)  # through the block's adapter (norm units: preset -> arithmetic)

        return factory

    make(True)()  # raises on a bad parameter before any file is written
    parameters = {"block": name, **full}
    if takes_multiplier:
        resolved = (
            multiplier if multiplier != "auto" else ("ecp5_dsp" if target.family == "ecp5" else "ice40_mixed")
        )
        parameters["multiplier"] = resolved
    return make(False), make(True), parameters


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
    netlist: bool = False,
    synth_only: bool = False,
) -> BuildReport:
    """Build ``factory()`` for ``target`` into ``out_dir``.

    ``reference_factory()`` (default ``factory``) builds the instance that is simulated for the expected
    signature; give a behavioural twin when ``factory`` instantiates vendor primitives. ``netlist`` and
    ``synth_only`` are passed to :func:`wavecore.boards.flow.build` (the gate-level netlist).
    """
    expected = reference_signature(reference_factory or factory, cycles)
    top = BistBoardTop(factory(), target=target, cycles=cycles, expected=expected)
    report = build(top, target, Path(out_dir), design=design, parameters=parameters, seed=seed,
                   netlist=netlist, synth_only=synth_only)
    report.extra["bist"] = f"{cycles} cycles, expected signature 0x{expected:08x}"
    report.write(Path(out_dir))
    return report
