"""Bodies of compute instructions with their on-chip data, run inside the whole core by tb_wavecore_compute.

``CASES[name](parameters, numerics)`` returns ``(body, scratchpad, accumulator)``: the SHAPE and compute
instructions and the initial values of the first scratchpad and accumulator elements (the rest is not loaded).
:func:`fault_bodies` lists compute instructions whose regions leave their memory.
"""

from __future__ import annotations

import numpy as np

from wavecore.golden.core import isa
from wavecore.golden.core.compiler import sgd_constants
from wavecore.golden.core.memory_map import MemoryMap
from wavecore.golden.train import SGD
from wavecore.verif.seed import rng

__all__ = ["CASES", "case_data", "fault_bodies"]


def _operands(parameters, name, count, bits=None):
    bits = bits or parameters.in_width
    return rng(name).integers(-(1 << (bits - 1)), 1 << (bits - 1), count)


def vector_ops(parameters, numerics):
    """relu with and without a limit, a saturating add, a channel sum into the accumulator."""
    shape = isa.Instruction("SHAPE", fields=dict(samples=2, channels=3, height=5, width=3))
    body = [shape, isa.Instruction("VECTOR", "relu", dict(dst=101, src0=7)),
            isa.Instruction("VECTOR", "relu", dict(dst=203, src0=9, imm=20)),
            isa.Instruction("VECTOR", "add_saturate", dict(dst=301, src0=7, src1=97)),
            isa.Instruction("VECTOR", "channel_sum", dict(dst=3, src0=7))]
    return body, _operands(parameters, "vector_ops", 400), np.zeros(16, dtype=np.int64)


def gemm_forward(parameters, numerics):
    """A padded 3x3 convolution, 3 -> 4 channels, 2 samples of 5x5."""
    shape = isa.Instruction("SHAPE", fields=dict(samples=2, channels=3, height=5, width=5, out_channels=4,
                                                 out_height=5, out_width=5, kernel_height=3, kernel_width=3,
                                                 padding_height=1, padding_width=1))
    body = [shape, isa.Instruction("GEMM", "forward", dict(dst=400, src0=0, src1=200, imm=numerics.weight_frac))]
    return body, _operands(parameters, "gemm_forward", 600), np.zeros(16, dtype=np.int64)


def sgd_update(parameters, numerics):
    """SGD with momentum and weight decay on 37 weights (constants in the accumulator)."""
    shape = isa.Instruction("SHAPE", fields=dict(samples=1, channels=37, height=1, width=1))
    body = [shape, isa.Instruction("SGD", "momentum", dict(dst=4, src0=0, src1=64, src2=128))]
    constants = sgd_constants(numerics, SGD(lr=0.1, momentum=0.9, weight_decay=1e-4))
    accumulator = np.zeros(16, dtype=np.int64)
    accumulator[4:7] = constants
    return body, _operands(parameters, "sgd_update", 192), accumulator


CASES = {"vector_ops": vector_ops, "gemm_forward": gemm_forward, "sgd_update": sgd_update}


def fault_bodies(parameters, numerics):
    """``(name, body)``: a SHAPE and one compute instruction with a region outside its memory."""
    spad, acc = parameters.scratchpad_elements, parameters.accumulator_elements
    small = isa.Instruction("SHAPE", fields=dict(samples=1, channels=4, height=4, width=4))
    conv = isa.Instruction("SHAPE", fields=dict(samples=1, channels=4, height=4, width=4, out_channels=4,
                                                out_height=4, out_width=4))
    return [
        ("vector destination", [small, isa.Instruction("VECTOR", "relu", dict(dst=spad - 8, src0=0))]),
        ("gemm weights", [conv, isa.Instruction("GEMM", "forward", dict(dst=0, src0=64, src1=spad - 4,
                                                                        imm=numerics.weight_frac))]),
        ("norm block", [small, isa.Instruction("NORM", "statistics_bn", dict(dst=acc - 4, src0=0))]),
    ]


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
