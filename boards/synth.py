"""Single-chip build of any generated block: BIST board top, bitstream, ``report.json`` / ``report.md``.

``synth_block`` is what ``wavecore synth`` calls: it wraps the block in :class:`wavecore.boards.bist.BistBoardTop`
with the signature a correct block gives (computed by :func:`wavecore.boards.bist.reference_signature`), runs the
flow of :mod:`wavecore.boards.flow` for the target and returns the report. On ECP5 targets a systolic array uses
the DSP-register multiplier of :mod:`wavecore.hdl.array.ecp5_mult` (a ``MULT18X18D`` per PE while they fit the chip,
else as many as it has and LUT multipliers for the rest) and on the iCE40UP5K the 8 ``SB_MAC16`` + LUT
multipliers of :mod:`wavecore.hdl.array.ice40_mult`, unless the caller gives its own factory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wavecore.boards.bist import BistBoardTop, reference_signature
from wavecore.boards.flow import build
from wavecore.boards.report import BuildReport
from wavecore.boards.targets import Target

__all__ = ["DEFAULT_BIST_CYCLES", "MULTIPLIERS", "multiplier_factory", "registry_factories", "resolve_multiplier",
           "synth_block"]

DEFAULT_BIST_CYCLES = 512


MULTIPLIERS = ("auto", "generic", "ecp5_dsp", "ecp5_mixed", "ice40_mixed")


def resolve_multiplier(choice: str, target: Target, multipliers: int | None = None) -> str:
    """``auto`` on ``target`` for an array of ``multipliers`` PEs: ``ecp5_dsp`` on ECP5 while the PEs fit the
    chip's ``MULT18X18D`` (or the count is unknown), else ``ecp5_mixed``; ``ice40_mixed`` on iCE40. Any other
    choice is returned as it is."""
    if choice != "auto":
        return choice
    if target.family != "ecp5":
        return "ice40_mixed"
    return "ecp5_mixed" if multipliers is not None and multipliers > target.dsps else "ecp5_dsp"


def multiplier_factory(choice: str, target: Target, *, simulation: bool = False, multipliers: int | None = None):
    """The systolic multiplier factory for ``choice`` on ``target`` (see the module docstring).

    ``auto``: :func:`resolve_multiplier` (``multipliers``: the array's PEs). ``ecp5_mixed`` gives the first
    ``target.dsps`` PEs a ``MULT18X18D`` and the rest LUT multipliers (for arrays larger than the chip's DSP
    count). With ``simulation`` the ECP5 DSP is its behavioural twin (Amaranth's simulator cannot run the
    ``MULT18X18D`` instance; the netlist runs on Icarus with wavecore's model of it,
    :mod:`wavecore.boards.gatelevel`).
    """
    from wavecore.hdl.array.ecp5_mult import ecp5_mixed_multipliers, ecp5_multiplier
    from wavecore.hdl.array.ice40_mult import ice40_multipliers
    from wavecore.hdl.array.multiplier import RegisteredMultiplier

    if choice not in MULTIPLIERS:
        raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {choice!r}")
    choice = resolve_multiplier(choice, target, multipliers)
    implementation = "behavioural" if simulation else "primitive"
    if choice in ("ecp5_dsp", "ecp5_mixed") and target.family != "ecp5":
        raise ValueError(f"multiplier {choice} needs an ECP5 target, not {target.name}")
    if choice == "ecp5_dsp":
        return ecp5_multiplier(implementation)
    if choice == "ecp5_mixed":
        return ecp5_mixed_multipliers(target.dsps, implementation)
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
    pes = full["rows"] * full["cols"] if takes_multiplier and {"rows", "cols"} <= full.keys() else None

    def make(simulation: bool):
        def factory():
            extra = {}
            if takes_multiplier:
                extra["multiplier"] = multiplier_factory(multiplier, target, simulation=simulation, multipliers=pes)
            return spec.build(**full, **extra)  # through the block's adapter (norm units: preset -> arithmetic)

        return factory

    make(True)()  # raises on a bad parameter before any file is written
    parameters = {"block": name, **full}
    if takes_multiplier:
        parameters["multiplier"] = resolve_multiplier(multiplier, target, pes)
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
    router: str | None = None,
    netlist: bool = False,
    synth_only: bool = False,
) -> BuildReport:
    """Build ``factory()`` for ``target`` into ``out_dir``.

    ``reference_factory()`` (default ``factory``) builds the instance that is simulated for the expected
    signature; give a behavioural twin when ``factory`` instantiates vendor primitives. ``netlist`` and
    ``synth_only`` are passed to :func:`wavecore.boards.flow.build` (the gate-level netlist), as are ``seed``
    and ``router`` (nextpnr's placer seed and router).
    """
    expected = reference_signature(reference_factory or factory, cycles)
    top = BistBoardTop(factory(), target=target, cycles=cycles, expected=expected)
    report = build(top, target, Path(out_dir), design=design, parameters=parameters, seed=seed, router=router,
                   netlist=netlist, synth_only=synth_only)
    report.extra["bist"] = f"{cycles} cycles, expected signature 0x{expected:08x}"
    report.write(Path(out_dir))
    return report
