"""The NORM unit (hdl/core/norm_unit.py) against the instruction-level simulator, element for element, and its
cycle formula against the measured cycles.

Data are realistic: x on the activation grid, gamma/beta on the parameter grid, and the constants come from
the unit's own statistics/constants instructions (as ``wavecore compile`` emits them) or, to keep the scalar
unit's sequential runs few, from the simulator running those instructions first (``prepare``). Every test that
runs the unit runs it at each read latency (the ``read_latency`` fixture).
"""

import dataclasses

import numpy as np
import pytest

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.hdl.core.norm_unit import NormUnit, unit_cycles
from wavecore.verif.compute_bench import check_unit, idle_outputs, numerics_for, run_golden

P8 = CoreParameters(scratchpad_elements=1024, accumulator_elements=256)
P16 = CoreParameters(in_width=16, acc_width=32, scratchpad_elements=1024, accumulator_elements=256)

X, GAMMA, DZ, Y, Z, DY, DX = 3, 200, 250, 401, 500, 600, 700  # scratchpad (odd places on purpose)
BLOCK, GRADS = 5, 161  # accumulator


@pytest.fixture(params=[1, 2, 3], ids=lambda latency: f"latency{latency}")
def read_latency(request):
    """The unit's read latency (cycles from a read to its data)."""
    return request.param


def shape_of(n, c, h, w, g=1):
    return dict(samples=n, channels=c, height=h, width=w, groups=g)


def norm(funct, **fields):
    return isa.Instruction("NORM", funct, fields)


def memories(rng, parameters, n, c, h, w, *, spread=100, gamma=(32, 96)):
    """Scratchpad with x at X, gamma/beta at GAMMA and dz at DZ; an accumulator of noise (never read
    before written)."""
    scratch = np.zeros(parameters.scratchpad_elements, dtype=np.int64)
    size = n * c * h * w
    scratch[X : X + size] = rng.integers(-spread, spread + 1, size)
    scratch[GAMMA : GAMMA + c] = rng.integers(*gamma, c) * rng.choice([-1, 1, 1, 1], c)
    scratch[GAMMA + c : GAMMA + 2 * c] = rng.integers(-40, 41, c)
    scratch[DZ : DZ + size] = rng.integers(-spread, spread + 1, size)
    accumulator = rng.integers(-1000, 1000, parameters.accumulator_elements)
    return scratch, accumulator


def run(parameters, instructions, scratch, accumulator, *, read_latency, prepare=(), numerics=None):
    """check_unit on ``instructions`` (after the simulator ran ``prepare``) on a unit of ``read_latency`` and the
    cycle formula."""
    numerics = numerics or numerics_for(parameters)
    if prepare:
        scratch, accumulator = run_golden(parameters, numerics, prepare, scratch, accumulator)
    unit = NormUnit(parameters, numerics, read_latency=read_latency)
    cycles = check_unit(unit, parameters, numerics, instructions, scratch, accumulator)
    expected, shape = [], Shape()
    for instruction in instructions:
        if instruction.opcode == "SHAPE":
            shape = Shape(instruction.fields)
        else:
            expected.append(unit_cycles(instruction, shape, parameters, numerics, read_latency=read_latency))
    assert cycles == expected
    return cycles


def forward(kind, eps, *, relu_limit=0):
    return [
        norm(f"statistics_{kind}", dst=BLOCK, src0=X),
        norm(f"constants_{kind}", dst=BLOCK, src0=BLOCK, src1=GAMMA, imm=eps),
        norm(f"affine_{kind}", dst=Y, src0=X, src1=BLOCK),
        norm(f"affine_relu_{kind}", dst=Z, src0=X, src1=BLOCK, imm=relu_limit),
    ]


@pytest.mark.parametrize(("dims", "eps", "limit"), [((2, 3, 2, 3), 1, 0), ((3, 2, 1, 1), 40, 9),
                                                      ((1, 2, 3, 3), 0, 0)])
def test_bn_forward(dims, eps, limit, read_latency):
    rng = np.random.default_rng(sum(dims) + eps)
    scratch, accumulator = memories(rng, P8, *dims)
    run(P8, [isa.Instruction("SHAPE", fields=shape_of(*dims)), *forward("bn", eps, relu_limit=limit)],
        scratch, accumulator, read_latency=read_latency)


@pytest.mark.parametrize(("dims", "eps"), [((2, 4, 2, 2, 2), 3), ((1, 3, 3, 1, 1), 0), ((2, 2, 1, 3, 2), 1000)])
def test_gn_forward(dims, eps, read_latency):
    rng = np.random.default_rng(sum(dims) * 7 + eps)
    scratch, accumulator = memories(rng, P8, *dims[:4])
    run(P8, [isa.Instruction("SHAPE", fields=shape_of(*dims)), *forward("gn", eps, relu_limit=7)],
        scratch, accumulator, read_latency=read_latency)


@pytest.mark.parametrize("kind", ["bn", "gn"])
def test_statistics_accumulate(kind, read_latency):
    """imm bit 0 adds to the block's sums (BN streamed over sub-batches); the first half overwrites."""
    rng = np.random.default_rng(5)
    scratch, accumulator = memories(rng, P8, 4, 3, 2, 1)
    half = 2 * 3 * 2 * 1
    run(P8, [isa.Instruction("SHAPE", fields=shape_of(2, 3, 2, 1, 3 if kind == "gn" else 1)),
             norm(f"statistics_{kind}", dst=BLOCK, src0=X, imm=0),
             norm(f"statistics_{kind}", dst=BLOCK, src0=X + half, imm=1)], scratch, accumulator,
        read_latency=read_latency)


def test_affine_saturates(read_latency):
    """One outlier per channel in a narrow spread (5.5 standard deviations) and gamma near 2: y saturates at
    both ends of the operand format."""
    rng = np.random.default_rng(11)
    dims = (2, 2, 4, 4)
    scratch, accumulator = memories(rng, P8, *dims, spread=2, gamma=(124, 127))
    scratch[GAMMA : GAMMA + 2] = 126
    scratch[X + 5], scratch[X + 16 + 9] = 100, -100
    shape = isa.Instruction("SHAPE", fields=shape_of(*dims))
    instructions = [shape, *forward("bn", 1)[2:]]
    prepare = [shape, *forward("bn", 1)[:2]]
    run(P8, instructions, scratch, accumulator, prepare=prepare, read_latency=read_latency)
    got, _ = run_golden(P8, numerics_for(P8), prepare + instructions, scratch, accumulator)
    assert {127, -128} <= set(got[Y : Y + 64].tolist())


def backward(kind, *, accumulate=True):
    instructions = [
        norm(f"relu_mask_{kind}", dst=DY, src0=DZ, src1=X, src2=BLOCK, imm=0),
        norm(f"backward_{kind}", dst=DX, src0=DY, src1=X, src2=BLOCK),
        norm(f"param_grads_{kind}", dst=GRADS, src0=BLOCK),
    ]
    if accumulate:
        instructions.append(norm(f"param_grads_accumulate_{kind}", dst=GRADS, src0=BLOCK))
    return instructions


@pytest.mark.parametrize(("dims", "accumulate"), [((2, 3, 2, 2, 1), True), ((3, 1, 1, 2, 1), False)])
def test_bn_backward(dims, accumulate, read_latency):
    rng = np.random.default_rng(sum(dims))
    scratch, accumulator = memories(rng, P8, *dims[:4])
    shape = isa.Instruction("SHAPE", fields=shape_of(*dims))
    run(P8, [shape, *backward("bn", accumulate=accumulate)], scratch, accumulator,
        prepare=[shape, *forward("bn", 2)], read_latency=read_latency)


@pytest.mark.parametrize(("dims", "accumulate"), [((2, 4, 1, 2, 2), True), ((1, 3, 2, 2, 1), False),
                                                   ((2, 2, 2, 1, 1), True), ((2, 3, 1, 1, 3), True)])
def test_gn_backward(dims, accumulate, read_latency):
    rng = np.random.default_rng(sum(dims) * 3)
    scratch, accumulator = memories(rng, P8, *dims[:4])
    shape = isa.Instruction("SHAPE", fields=shape_of(*dims))
    run(P8, [shape, *backward("gn", accumulate=accumulate)], scratch, accumulator,
        prepare=[shape, *forward("gn", 2)], read_latency=read_latency)


@pytest.mark.parametrize(("kind", "dims"), [("bn", (2, 3, 2, 2, 1)), ("gn", (2, 4, 2, 1, 2))])
def test_training_step(kind, dims, read_latency):
    """The whole forward and backward of one norm layer on the unit, constants included."""
    rng = np.random.default_rng(77 + len(kind))
    scratch, accumulator = memories(rng, P8, *dims[:4])
    run(P8, [isa.Instruction("SHAPE", fields=shape_of(*dims)), *forward(kind, 3), *backward(kind)], scratch,
        accumulator, read_latency=read_latency)


def test_relu_mask_limit(read_latency):
    rng = np.random.default_rng(21)
    scratch, accumulator = memories(rng, P8, 2, 2, 2, 2)
    shape = isa.Instruction("SHAPE", fields=shape_of(2, 2, 2, 2))
    run(P8, [shape, norm("relu_mask_bn", dst=DY, src0=DZ, src1=X, src2=BLOCK, imm=20)], scratch, accumulator,
        prepare=[shape, *forward("bn", 1)], read_latency=read_latency)


def test_bn_backward_streamed(read_latency):
    """A batch of 4 in two sub-batches of 2: streamed statistics, then reductions (mode 1, then 3 adding to the
    block's), dx per sub-batch from the block's r1, r2 (mode 4, imm[15:3] = 4) and the parameter gradients."""
    rng = np.random.default_rng(8)
    n, c, h, w = 4, 2, 1, 3
    scratch, accumulator = memories(rng, P8, n, c, h, w)
    half = 2 * c * h * w
    sub = isa.Instruction("SHAPE", fields=shape_of(2, c, h, w))
    whole = isa.Instruction("SHAPE", fields=shape_of(n, c, h, w))
    prepare = [sub, norm("statistics_bn", dst=BLOCK, src0=X), norm("statistics_bn", dst=BLOCK, src0=X + half, imm=1),
               whole, norm("constants_bn", dst=BLOCK, src0=BLOCK, src1=GAMMA, imm=1), sub]
    prepare += [norm("relu_mask_bn", dst=DY + b * half, src0=DZ + b * half, src1=X + b * half, src2=BLOCK)
                for b in range(2)]
    run(P8, [sub,
             norm("backward_bn", dst=DX, src0=DY, src1=X, src2=BLOCK, imm=1),
             norm("backward_bn", dst=DX, src0=DY + half, src1=X + half, src2=BLOCK, imm=3),
             norm("backward_bn", dst=DX, src0=DY, src1=X, src2=BLOCK, imm=4 << 3 | 4),
             norm("backward_bn", dst=DX + half, src0=DY + half, src1=X + half, src2=BLOCK, imm=4 << 3 | 4),
             whole, norm("param_grads_bn", dst=GRADS, src0=BLOCK)],
        scratch, accumulator, prepare=prepare, read_latency=read_latency)


def test_read_back_soonest(read_latency):
    """One element per plane and one channel: every instruction reads right after its start the sums, constants
    or gradients the one before wrote last (statistics adding, constants, reductions adding, dx from them,
    gradients accumulating), and the streams run in place (dst = src0: an element written ELEMENT_STAGES +
    read_latency - 1 cycles after its read, no later element reading it)."""
    rng = np.random.default_rng(13)
    scratch, accumulator = memories(rng, P8, 2, 1, 1, 1)
    sub, whole = (isa.Instruction("SHAPE", fields=shape_of(n, 1, 1, 1)) for n in (1, 2))
    run(P8, [sub, norm("statistics_bn", dst=BLOCK, src0=X), norm("statistics_bn", dst=BLOCK, src0=X + 1, imm=1),
             whole, norm("constants_bn", dst=BLOCK, src0=BLOCK, src1=GAMMA, imm=5),
             norm("relu_mask_bn", dst=DZ, src0=DZ, src1=X, src2=BLOCK), sub,
             norm("backward_bn", dst=DX, src0=DZ, src1=X, src2=BLOCK, imm=1),
             norm("backward_bn", dst=DX, src0=DZ + 1, src1=X + 1, src2=BLOCK, imm=3),
             norm("backward_bn", dst=DZ + 1, src0=DZ + 1, src1=X + 1, src2=BLOCK, imm=2 << 3 | 4),
             whole, norm("param_grads_bn", dst=GRADS, src0=BLOCK),
             norm("param_grads_accumulate_bn", dst=GRADS, src0=BLOCK),
             norm("affine_relu_bn", dst=X, src0=X, src1=BLOCK)], scratch, accumulator, read_latency=read_latency)


def test_gn_in_place(read_latency):
    """GN on one-element planes: relu_mask, backward (reductions then dx) and affine in place, the parameter
    gradients accumulating at once."""
    rng = np.random.default_rng(17)
    dims = (1, 2, 1, 1, 1)
    scratch, accumulator = memories(rng, P8, *dims[:4])
    run(P8, [isa.Instruction("SHAPE", fields=shape_of(*dims)),
             norm("statistics_gn", dst=BLOCK, src0=X), norm("constants_gn", dst=BLOCK, src0=BLOCK, src1=GAMMA, imm=5),
             norm("relu_mask_gn", dst=DZ, src0=DZ, src1=X, src2=BLOCK),
             norm("backward_gn", dst=DZ, src0=DZ, src1=X, src2=BLOCK),
             norm("param_grads_gn", dst=GRADS, src0=BLOCK), norm("param_grads_accumulate_gn", dst=GRADS, src0=BLOCK),
             norm("affine_gn", dst=X, src0=X, src1=BLOCK)], scratch, accumulator, read_latency=read_latency)


@pytest.mark.parametrize("acc_width", [32, 48])
def test_int16(acc_width, read_latency):
    """The int16 preset: 16-bit scratchpad elements, other grids; 32- and 64-bit accumulator elements. The whole
    layer on the unit (GN forward, then BN forward and backward with the parameter gradients)."""
    parameters = dataclasses.replace(P16, acc_width=acc_width)
    rng = np.random.default_rng(acc_width)
    dims = (2, 2, 1, 3, 2)
    scratch, accumulator = memories(rng, parameters, *dims[:4], spread=3000, gamma=(2000, 6000))
    shape = isa.Instruction("SHAPE", fields=shape_of(*dims))
    run(parameters, [shape, *forward("gn", 1), norm("backward_gn", dst=DX, src0=DZ, src1=X, src2=BLOCK),
                     *forward("bn", 9), *backward("bn")], scratch, accumulator, read_latency=read_latency)


@pytest.mark.parametrize("rounding", ["floor", "half_up", "half_away_from_zero"])
def test_rounding_modes(rounding, read_latency):
    """y and dx requantize with the mode's rounding (the scalar unit's divisions round half away from zero)."""
    numerics = dataclasses.replace(numerics_for(P8), rounding=rounding)
    rng = np.random.default_rng(len(rounding))
    dims = (2, 2, 1, 3)
    scratch, accumulator = memories(rng, P8, *dims)
    shape = isa.Instruction("SHAPE", fields=shape_of(*dims))
    run(P8, [shape, norm("affine_bn", dst=Y, src0=X, src1=BLOCK),
             norm("backward_bn", dst=DX, src0=DZ, src1=X, src2=BLOCK)],
        scratch, accumulator, prepare=[shape, *forward("bn", 1)[:2]], numerics=numerics,
        read_latency=read_latency)


def test_compiler_sequence(read_latency):
    """statistics, constants (simulated first), affine as ``wavecore compile --norm bn`` emits them (imm = 1),
    on a sub-batch of 8 samples with 4x4 planes."""
    rng = np.random.default_rng(88)
    dims = (8, 3, 4, 4)
    scratch, accumulator = memories(rng, P8, *dims)
    shape = isa.Instruction("SHAPE", fields=shape_of(*dims))
    x, y, block, parameters = 0x60, 0x260, 0xC, 0x50
    scratch[parameters : parameters + 6] = scratch[GAMMA : GAMMA + 6]
    scratch[x : x + 384] = scratch[X : X + 384]
    run(P8, [shape, norm("statistics_bn", dst=block, src0=x), norm("affine_bn", dst=y, src0=x, src1=block)],
        scratch, accumulator,
        prepare=[shape, norm("statistics_bn", dst=block, src0=x),
                 norm("constants_bn", dst=block, src0=block, src1=parameters, imm=1)], read_latency=read_latency)


def test_unit_cycles_shapes():
    """The formula on shapes too large to simulate: monotone in the elements, and the streamed modes."""
    shape = Shape(shape_of(8, 16, 8, 8))
    small = Shape(shape_of(8, 16, 4, 4))
    for funct in ("statistics_bn", "affine_gn", "relu_mask_bn", "backward_bn", "backward_gn"):
        assert unit_cycles(norm(funct), shape, P8) > unit_cycles(norm(funct), small, P8)
    for funct in ("constants_bn", "param_grads_gn"):  # per channel: independent of H*W
        assert unit_cycles(norm(funct), shape, P8) == unit_cycles(norm(funct), small, P8)
    # S = planes*HW + 9 + L (ELEMENT_STAGES 7): statistics 3 + C * (1 + S + 4)
    assert unit_cycles(norm("statistics_bn"), shape, P8, read_latency=1) == 3 + 16 * (1 + 8 * 64 + 10 + 4)
    # read_latency 2: one more cycle a set (its drain; the old sums are read in it)
    assert unit_cycles(norm("statistics_bn"), shape, P8, read_latency=2) == 3 + 16 * (1 + 8 * 64 + 11 + 4)
    # constants: 3 + C * (3 + (1 + L + L_f + 4)), L_f = 254 + 1 for the int8 preset
    assert unit_cycles(norm("constants_bn"), shape, P8, read_latency=1) == 3 + 16 * (3 + (1 + 1 + 255 + 4))
    assert unit_cycles(norm("constants_bn"), shape, P8, read_latency=3) == 3 + 16 * (3 + (1 + 3 + 255 + 4))


def test_parameters_validated():
    with pytest.raises(TypeError, match="parameters must be a CoreParameters"):
        NormUnit(None, numerics_for(P8))
    with pytest.raises(TypeError, match="numerics must be an IntegerTraining"):
        NormUnit(P8, "int8")
    with pytest.raises(ValueError, match="does not fit the 8-bit scratchpad elements"):
        NormUnit(P8, numerics_for(dataclasses.replace(P8, in_width=16)))
    with pytest.raises(ValueError, match="read_latency must be 1, 2 or 3, not 4"):
        NormUnit(P8, numerics_for(P8), read_latency=4)
    with pytest.raises(ValueError, match="read_latency must be 1, 2 or 3, not 0"):
        unit_cycles(norm("statistics_bn"), Shape(), P8, read_latency=0)


def test_idle_ports_low(read_latency):
    """Without start every enable and done stay low (the core ORs the units' ports)."""
    assert idle_outputs(NormUnit(P8, numerics_for(P8), read_latency=read_latency)) == []
