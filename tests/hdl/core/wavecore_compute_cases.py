"""Bodies of compute instructions with their on-chip data, run inside the whole core by tb_wavecore_compute.

``CASES[name](parameters)`` returns ``(body, scratchpad, accumulator)``: the SHAPE and compute instructions and
the initial element values of the first scratchpad and accumulator elements (the rest is not loaded).
"""

from __future__ import annotations

import numpy as np

from wavecore.golden.core import isa
from wavecore.golden.core.memory_map import MemoryMap
from wavecore.verif.seed import rng

__all__ = ["CASES", "case_data"]


def _operands(parameters, name, count):
    bits = parameters.in_width
    return rng(name).integers(-(1 << (bits - 1)), 1 << (bits - 1), count)


def vector_relu(parameters):
    shape = isa.Instruction("SHAPE", fields=dict(samples=2, channels=3, height=5, width=3))
    body = [shape, isa.Instruction("VECTOR", "relu", dict(dst=101, src0=7)),
            isa.Instruction("VECTOR", "relu", dict(dst=203, src0=9, imm=20))]
    return body, _operands(parameters, "vector_relu", 320), np.zeros(16, dtype=np.int64)


CASES = {"vector_relu": vector_relu}


def case_data(parameters, scratchpad, accumulator, source: int, dram_bytes: int) -> bytearray:
    """A DRAM image of random bytes with the case's elements at ``source`` (the layout of
    :func:`wavecore.verif.core_programs.wrapped_program`)."""
    image = bytearray(rng("wavecore_compute_image").bytes(dram_bytes))
    data = MemoryMap.encode(np.asarray(scratchpad), parameters.operand_bytes, "case")
    image[source : source + len(data)] = data
    at = source + -(-len(data) // 64) * 64
    data = MemoryMap.encode(np.asarray(accumulator), parameters.accumulator_bytes, "case")
    image[at : at + len(data)] = data
    return image
