"""The compute units of WaveCore: which class executes which opcode.

Every unit implements :class:`wavecore.hdl.core.compute_unit.ComputeUnitSignature` and is constructed as
``Unit(parameters, numerics)``. :data:`UNITS` names them by opcode (module, class); :func:`unit_classes`
imports them; :func:`unit_cycles` is the cycles a unit takes for one instruction, from the unit's own
``unit_cycles`` (the model :mod:`wavecore.golden.core.semantics` states for the compute queue).
"""

from __future__ import annotations

import importlib

from wavecore.hdl.core.compute_unit import READ_LATENCY

__all__ = ["UNITS", "unit_classes", "unit_cycles"]

#: opcode -> (module, class)
UNITS = {
    "GEMM": ("wavecore.hdl.core.gemm_unit", "GemmUnit"),
    "VECTOR": ("wavecore.hdl.core.vector_unit", "VectorUnit"),
    "NORM": ("wavecore.hdl.core.norm_unit", "NormUnit"),
    "LOSS": ("wavecore.hdl.core.loss_unit", "LossUnit"),
    "SGD": ("wavecore.hdl.core.sgd_unit", "SgdUnit"),
}


def _module(opcode: str):
    return importlib.import_module(UNITS[opcode][0])


def unit_classes(opcodes=None) -> dict:
    """``opcode -> class`` of the units for ``opcodes`` (default: all of :data:`UNITS`)."""
    opcodes = tuple(UNITS) if opcodes is None else tuple(opcodes)
    unknown = [name for name in opcodes if name not in UNITS]
    if unknown:
        raise ValueError(f"units must be among {', '.join(UNITS)}, not {unknown[0]!r}")
    return {name: getattr(_module(name), UNITS[name][1]) for name in opcodes}


def unit_cycles(instruction, shape, parameters, *, read_latency: int = READ_LATENCY) -> int:
    """Cycles of one compute-unit instruction from its start to its done (the unit module's model) on element
    ports of ``read_latency`` (default the core's)."""
    return _module(instruction.opcode).unit_cycles(instruction, shape, parameters, read_latency=read_latency)
