"""The VECTOR unit against the instruction-level simulator (verif.compute_bench.check_unit): every function
code, pools with padding/stride/ceil_mode, limits, saturation, rounding modes, unaligned addresses, int8 and
int16 operands; unit_cycles equals the measured cycles."""

import dataclasses

import numpy as np
import pytest

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.layers import conv_output_size
from wavecore.golden.numerics import ROUNDING_MODES
from wavecore.hdl.core.vector_unit import VectorUnit, unit_cycles
from wavecore.verif.compute_bench import check_unit, numerics_for

SCRATCH, ACC = 1024, 256


def parameters(in_width=8):
    return CoreParameters(in_width=in_width, acc_width=32 if in_width == 8 else 48, scratchpad_elements=SCRATCH,
                          accumulator_elements=ACC)


def memories(rng, p, numerics, low=None, high=None, acc_range=1 << 20):
    fmt = numerics.operand
    low = fmt.min if low is None else low
    high = fmt.max if high is None else high
    return rng.integers(low, high + 1, SCRATCH), rng.integers(-acc_range, acc_range + 1, ACC)


def run(p, numerics, shape, funct, scratch, acc, **fields):
    shape = Shape(shape)
    instruction = isa.Instruction("VECTOR", funct, fields)
    cycles = check_unit(VectorUnit(p, numerics), p, numerics,
                        [isa.Instruction("SHAPE", fields=dict(shape)), instruction], scratch, acc)
    assert cycles == [unit_cycles(instruction, shape, p, numerics)]
    return cycles[0]


def pool_shape(n, c, h, w, kernel, stride, padding, ceil_mode=False):
    oh, ow = (conv_output_size(size, k, s, pad, ceil_mode) for size, k, s, pad in
              zip((h, w), kernel, stride, padding))
    return dict(samples=n, channels=c, height=h, width=w, out_channels=c, out_height=oh, out_width=ow,
                kernel_height=kernel[0], kernel_width=kernel[1], stride_height=stride[0], stride_width=stride[1],
                padding_height=padding[0], padding_width=padding[1], ceil_mode=int(ceil_mode))


SMALL = dict(samples=2, channels=3, height=5, width=3)


@pytest.mark.parametrize("in_width", [8, 16])
@pytest.mark.parametrize("funct,imm", [("add_saturate", 0), ("add_exact", 0), ("relu", 0), ("relu", 37),
                                       ("relu_mask", 0), ("relu_mask", 41)])
def test_elementwise(in_width, funct, imm):
    p = parameters(in_width)
    numerics = numerics_for(p)
    rng = np.random.default_rng([in_width, imm, len(funct)])
    half = funct == "add_exact"  # the exact sum must fit an element
    fmt = numerics.operand
    scratch, acc = memories(rng, p, numerics, fmt.min // 2 if half else None, fmt.max // 2 if half else None)
    if funct == "add_saturate":  # both ends saturate
        scratch[7:12], scratch[301:306] = fmt.max - 3, 5
        scratch[12:17], scratch[306:311] = fmt.min + 2, -9
    if imm:
        scratch[7:10] = [imm, imm - 1, imm + 1]
        scratch[301:304] = [imm, imm - 1, imm + 1]
    cycles = run(p, numerics, SMALL, funct, scratch, acc, dst=403, src0=7, src1=301, imm=imm)
    assert cycles == 1 + 90


def test_elementwise_in_place():
    p = parameters(8)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(3), p, numerics)
    run(p, numerics, dict(samples=1, channels=7, height=3, width=5), "add_saturate", scratch, acc,
        dst=11, src0=11, src1=200)
    run(p, numerics, dict(samples=3, channels=1, height=1, width=1), "relu", scratch, acc, dst=5, src0=5)


@pytest.mark.parametrize("in_width", [8, 16])
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_requantize(in_width, rounding):
    p = parameters(in_width)
    numerics = dataclasses.replace(numerics_for(p), rounding=rounding)
    rng = np.random.default_rng([in_width, len(rounding)])
    scratch, acc = memories(rng, p, numerics, acc_range=1 << (in_width + 6))
    acc[:16] = [8, 24, -8, -24, 9, -9, 7, -7, 40, -40, 0, 1, -1, 16, -16, 56]  # ties of shift 4
    acc[16] = -(1 << (p.acc_width - 1))
    acc[17] = (1 << (p.acc_width - 1)) - 1
    shape = dict(samples=2, channels=2, height=3, width=3)
    for shift in (0, 4, 1, 7):
        run(p, numerics, shape, "requantize", scratch, acc, dst=101, src0=shift * 3, imm=shift)
    for shift in (p.acc_width - 1, p.acc_width, p.acc_width + 1, 60):
        run(p, numerics, dict(samples=1, channels=1, height=3, width=6), "requantize", scratch, acc, dst=33,
            src0=1, imm=shift)


@pytest.mark.parametrize("in_width", [8, 16])
@pytest.mark.parametrize("funct", ["channel_sum", "channel_sum_accumulate"])
def test_channel_sum(in_width, funct):
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng([in_width, len(funct)]), p, numerics)
    run(p, numerics, dict(samples=3, channels=4, height=3, width=5), funct, scratch, acc, dst=13, src0=17)
    run(p, numerics, dict(samples=1, channels=5, height=1, width=1), funct, scratch, acc, dst=200, src0=3)


@pytest.mark.parametrize("in_width", [8, 16])
def test_channel_insert_extract(in_width):
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(in_width), p, numerics)
    insert = dict(samples=2, channels=3, height=3, width=5, out_channels=7, out_height=3, out_width=5)
    for offset in (0, 2, 4):
        run(p, numerics, insert, "channel_insert", scratch, acc, dst=301, src0=5, imm=offset)
    extract = dict(samples=2, channels=7, height=3, width=5, out_channels=2, out_height=3, out_width=5)
    for offset in (0, 3, 5):
        run(p, numerics, extract, "channel_extract", scratch, acc, dst=401, src0=9, imm=offset)


@pytest.mark.parametrize("in_width", [8, 16])
@pytest.mark.parametrize("h,w", [(2, 2), (3, 3), (1, 1), (3, 5)])
def test_global_pool(in_width, h, w):
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng([in_width, h, w]), p, numerics)
    shape = dict(samples=2, channels=3, height=h, width=w, out_channels=3, out_height=1, out_width=1)
    run(p, numerics, shape, "global_pool_forward", scratch, acc, dst=501, src0=7)
    run(p, numerics, shape, "global_pool_backward", scratch, acc, dst=501, src0=7)


POOLS = [  # (n, c, h, w), kernel, stride, padding, ceil_mode
    ((1, 2, 5, 6), (2, 2), (2, 2), (0, 0), False),
    ((2, 1, 5, 5), (3, 3), (2, 2), (1, 1), False),
    ((1, 2, 5, 6), (3, 3), (2, 2), (1, 1), True),
    ((1, 1, 7, 6), (2, 3), (2, 1), (1, 1), True),
    ((1, 2, 4, 5), (3, 2), (1, 2), (0, 1), False),
    ((1, 1, 5, 7), (1, 1), (2, 3), (0, 0), False),
    ((1, 1, 6, 6), (2, 2), (3, 3), (1, 0), True),
]


@pytest.mark.parametrize("case", range(len(POOLS)))
@pytest.mark.parametrize("in_width", [8, 16])
def test_maxpool(case, in_width):
    dims, kernel, stride, padding, ceil_mode = POOLS[case]
    p = parameters(in_width)
    numerics = numerics_for(p)
    rng = np.random.default_rng([case, in_width])
    scratch, acc = memories(rng, p, numerics, -4, 3)  # few values: ties in most windows
    shape = pool_shape(*dims, kernel, stride, padding, ceil_mode)
    run(p, numerics, shape, "maxpool_forward", scratch, acc, dst=601, src0=3)
    scratch[300:400] = rng.integers(-9, 10, 100)  # dy: overlapping windows add up within an element
    run(p, numerics, shape, "maxpool_backward", scratch, acc, dst=601, src0=301, src1=3)
    scratch[3:200] = rng.integers(numerics.operand.min, numerics.operand.max + 1, 197)
    run(p, numerics, shape, "maxpool_backward", scratch, acc, dst=601, src0=301, src1=3)


@pytest.mark.parametrize("case", range(len(POOLS)))
@pytest.mark.parametrize("in_width", [8, 16])
def test_avgpool(case, in_width):
    dims, kernel, stride, padding, _ = POOLS[case]
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng([case, in_width, 1]), p, numerics)
    shape = pool_shape(*dims, kernel, stride, padding)
    run(p, numerics, shape, "avgpool_forward", scratch, acc, dst=601, src0=3)
    run(p, numerics, shape, "avgpool_backward", scratch, acc, dst=601, src0=301)


def test_avgpool_padding_above_stride():
    p = parameters(8)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(9), p, numerics)
    shape = pool_shape(1, 1, 5, 5, (5, 3), (2, 1), (2, 1))
    run(p, numerics, shape, "avgpool_forward", scratch, acc, dst=601, src0=3)
    run(p, numerics, shape, "avgpool_backward", scratch, acc, dst=601, src0=301)


def test_unit_cycles_formula():
    p = parameters(8)
    numerics = numerics_for(p)
    shape = Shape(pool_shape(2, 3, 6, 6, (3, 3), (2, 2), (1, 1)))
    y, x = 2 * 3 * 3 * 3, 2 * 3 * 36
    assert unit_cycles(isa.Instruction("VECTOR", "maxpool_forward"), shape, p, numerics) == 1 + y * 9
    assert unit_cycles(isa.Instruction("VECTOR", "maxpool_backward"), shape, p, numerics) == 1 + x + y * 10
    assert unit_cycles(isa.Instruction("VECTOR", "avgpool_forward"), shape, p, numerics) == (
        1 + 1 + numerics.reciprocal_frac + 2 + y * 9)
    assert unit_cycles(isa.Instruction("VECTOR", "relu"), shape, p, numerics) == 1 + x


def test_parameters_validated():
    p = parameters(16)
    with pytest.raises(ValueError, match="operand format"):
        VectorUnit(parameters(8), numerics_for(p))
    with pytest.raises(TypeError, match="numerics"):
        VectorUnit(p, "int16")


@pytest.mark.parametrize("in_width", [8, 16])
def test_avgpool_backward_saturates(in_width):
    """Shares rounded up add to more than the largest element (127/4 -> 32, four windows: 128)."""
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(in_width), p, numerics)
    scratch[301:320] = numerics.operand.max
    scratch[320:340] = numerics.operand.min
    for kernel in ((2, 2), (1, 2), (3, 3)):
        shape = pool_shape(1, 2, 4, 4, kernel, (1, 1), (0, 0))
        run(p, numerics, shape, "avgpool_backward", scratch, acc, dst=601, src0=301)
