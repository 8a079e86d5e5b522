"""Bodies of compute instructions with their on-chip data, run inside the whole core by tb_wavecore_compute.

``CASES[name](parameters, numerics)`` returns ``(body, scratchpad, accumulator)``: the SHAPE and compute
instructions and the initial values of the first scratchpad and accumulator elements (the rest is not loaded).
:func:`fault_bodies` lists compute instructions whose regions leave their memory. ``random_gemm`` scales with the
core: its channels span more than one tile of the GEMM unit's ``cols`` lanes, so a large core uses every lane.
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


def vector_pooling(parameters, numerics):
    """2x2 average pooling forward and backward, then a channel insert into a wider tensor and an extract."""
    pool = isa.Instruction("SHAPE", fields=dict(samples=2, channels=3, height=4, width=4, out_channels=3,
                                                out_height=2, out_width=2,
                                                kernel_height=2, kernel_width=2, stride_height=2, stride_width=2))
    channels = isa.Instruction("SHAPE", fields=dict(samples=2, channels=3, height=2, width=2, out_channels=5))
    slice_ = isa.Instruction("SHAPE", fields=dict(samples=2, channels=5, height=2, width=2, out_channels=2))
    body = [pool, isa.Instruction("VECTOR", "avgpool_forward", dict(dst=101, src0=5)),
            isa.Instruction("VECTOR", "avgpool_backward", dict(dst=131, src0=200)),
            channels, isa.Instruction("VECTOR", "channel_insert", dict(dst=240, src0=5, imm=1)),
            slice_, isa.Instruction("VECTOR", "channel_extract", dict(dst=300, src0=240, imm=2))]
    return body, _operands(parameters, "vector_pooling", 384), np.zeros(16, dtype=np.int64)


def norm_chain(parameters, numerics):
    """BatchNorm forward with ReLU and its backward with the parameter gradients accumulated, then GroupNorm
    forward with a ReLU limit (x, gamma/beta and dz on the activation and parameter grids' scale)."""
    generator = rng("norm_chain")
    x, gamma, dz, block, grads = 3, 200, 250, 5, 161
    scratchpad = np.zeros(1024, dtype=np.int64)
    scratchpad[x : x + 48] = generator.integers(-100, 101, 48)
    scratchpad[gamma : gamma + 4] = generator.integers(32, 96, 4) * generator.choice([-1, 1, 1, 1], 4)
    scratchpad[gamma + 4 : gamma + 8] = generator.integers(-40, 41, 4)
    scratchpad[dz : dz + 48] = generator.integers(-100, 101, 48)
    accumulator = generator.integers(-1000, 1000, 256)

    def norm(funct, **fields):
        return isa.Instruction("NORM", funct, fields)

    body = [isa.Instruction("SHAPE", fields=dict(samples=2, channels=4, height=2, width=3)),
            norm("statistics_bn", dst=block, src0=x), norm("constants_bn", dst=block, src0=block, src1=gamma, imm=1),
            norm("affine_relu_bn", dst=401, src0=x, src1=block, imm=0),
            norm("relu_mask_bn", dst=600, src0=dz, src1=x, src2=block, imm=0),
            norm("backward_bn", dst=700, src0=600, src1=x, src2=block),
            norm("param_grads_bn", dst=grads, src0=block), norm("param_grads_accumulate_bn", dst=grads, src0=block),
            isa.Instruction("SHAPE", fields=dict(samples=2, channels=4, height=2, width=3, groups=2)),
            norm("statistics_gn", dst=block, src0=x), norm("constants_gn", dst=block, src0=block, src1=gamma, imm=3),
            norm("affine_relu_gn", dst=800, src0=x, src1=block, imm=7)]
    return body, scratchpad, accumulator


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


def random_gemm(parameters, numerics):
    """A random convolution (from the run's seed) whose input and output channels are both more than one tile
    of ``cols`` lanes with a ragged last tile; the forward pass with and without bias, the data gradient and the
    weight gradient onto a random carry, each into its own region. 3x3 windows (stride 1 or 2, padding 0 or 1)
    while the weights stay under 16,384 elements, else 1x1."""
    generator = rng("random_gemm")
    lanes = parameters.cols

    def channels():
        return lanes + 1 + int(generator.integers(0, max(1, lanes // 4)))

    c, o = channels(), channels()
    h, w = (int(v) for v in generator.integers(4, 8, 2))
    kernel = 3 if o * c * 9 <= 16384 else 1
    stride = int(generator.integers(1, 3)) if kernel == 3 else 1
    padding = int(generator.integers(0, 2)) if kernel == 3 else 0
    fields = dict(samples=2, channels=c, height=h, width=w, out_channels=o,
                  out_height=(h + 2 * padding - kernel) // stride + 1,
                  out_width=(w + 2 * padding - kernel) // stride + 1,
                  kernel_height=kernel, kernel_width=kernel, stride_height=stride, stride_width=stride,
                  padding_height=padding, padding_width=padding)
    x = 2 * c * h * w
    y = 2 * o * fields["out_height"] * fields["out_width"]
    weights = o * c * kernel * kernel
    regions, free = {}, 5
    for name, size in (("x", x), ("w", weights), ("bias", o), ("dy", y), ("forward", y), ("forward_bias", y),
                       ("backward_data", x)):
        regions[name], free = free, free + size + 3
    shift = numerics.weight_frac
    body = [isa.Instruction("SHAPE", fields=fields),
            isa.Instruction("GEMM", "forward", dict(dst=regions["forward"], src0=regions["x"], src1=regions["w"],
                                                    imm=shift)),
            isa.Instruction("GEMM", "forward_bias", dict(dst=regions["forward_bias"], src0=regions["x"],
                                                         src1=regions["w"], src2=regions["bias"], imm=shift)),
            isa.Instruction("GEMM", "backward_data", dict(dst=regions["backward_data"], src0=regions["dy"],
                                                          src1=regions["w"], imm=shift)),
            isa.Instruction("GEMM", "backward_weight_accumulate", dict(dst=1, src0=regions["dy"], src1=regions["x"]))]
    whole = lambda elements: -(-elements // 64) * 64  # noqa: E731  (rows of one dense LOAD/STORE)
    carry = generator.integers(-(1 << 20), 1 << 20, whole(weights + 1))
    return body, _operands(parameters, "random_gemm operands", whole(free)), carry


CASES = {"vector_ops": vector_ops, "vector_pooling": vector_pooling, "norm_chain": norm_chain,
         "gemm_forward": gemm_forward, "sgd_update": sgd_update, "random_gemm": random_gemm}


def fault_bodies(parameters, numerics):
    """``(name, body)``: a SHAPE and one compute instruction with a region outside its memory."""
    spad, acc = parameters.scratchpad_elements, parameters.accumulator_elements
    small = isa.Instruction("SHAPE", fields=dict(samples=1, channels=4, height=4, width=4))
    conv = isa.Instruction("SHAPE", fields=dict(samples=1, channels=4, height=4, width=4, out_channels=4,
                                                out_height=4, out_width=4))
    return [
        ("vector destination", [small, isa.Instruction("VECTOR", "relu", dict(dst=spad - 8, src0=0))]),
        # only the last element is outside: the unit's last write, presented with its done
        ("vector last element", [small, isa.Instruction("VECTOR", "relu", dict(dst=spad - 63, src0=0))]),
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
