"""The VECTOR unit against the instruction-level simulator (verif.compute_bench.check_unit): every function
code, pools with padding/stride/ceil_mode, limits, saturation, rounding modes, unaligned addresses, int8 and
int16 operands, each at read latency 1, 2 and 3; unit_cycles equals the measured cycles."""

import dataclasses

import numpy as np
import pytest

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.layers import conv_output_size
from wavecore.golden.numerics import ROUNDING_MODES
from wavecore.hdl.core.compute_unit import READ_LATENCY
from wavecore.hdl.core.vector_unit import VectorUnit, unit_cycles
from wavecore.verif.compute_bench import check_unit, numerics_for

SCRATCH, ACC = 2048, 256


def parameters(in_width=8):
    return CoreParameters(in_width=in_width, acc_width=32 if in_width == 8 else 48, scratchpad_elements=SCRATCH,
                          accumulator_elements=ACC)


def memories(rng, p, numerics, low=None, high=None, acc_range=1 << 20):
    fmt = numerics.operand
    low = fmt.min if low is None else low
    high = fmt.max if high is None else high
    return rng.integers(low, high + 1, SCRATCH), rng.integers(-acc_range, acc_range + 1, ACC)


@pytest.fixture(params=[1, 2, 3])
def read_latency(request):
    """The memories' read latency (the unit's): every test that runs the unit runs at each."""
    return request.param


def run(p, numerics, scratch, acc, steps, read_latency):
    """Run ``steps`` (``(shape, funct, fields)``) in one bench; each instruction's cycles equal unit_cycles."""
    instructions, expected = [], []
    for shape, funct, fields in steps:
        shape = Shape(shape)
        instruction = isa.Instruction("VECTOR", funct, fields)
        instructions += [isa.Instruction("SHAPE", fields=dict(shape)), instruction]
        expected.append(unit_cycles(instruction, shape, p, numerics, read_latency=read_latency))
    cycles = check_unit(VectorUnit(p, numerics, read_latency=read_latency), p, numerics, instructions, scratch, acc)
    assert cycles == expected
    return cycles


def regions(start, sizes):
    """Consecutive destination addresses (odd, so unaligned) for outputs of ``sizes`` elements."""
    addresses = []
    for size in sizes:
        addresses.append(start | 1)
        start = (start | 1) + size + 2
    assert start <= SCRATCH
    return addresses


def pool_shape(n, c, h, w, kernel, stride, padding, ceil_mode=False):
    oh, ow = (conv_output_size(size, k, s, pad, ceil_mode) for size, k, s, pad in
              zip((h, w), kernel, stride, padding))
    return dict(samples=n, channels=c, height=h, width=w, out_channels=c, out_height=oh, out_width=ow,
                kernel_height=kernel[0], kernel_width=kernel[1], stride_height=stride[0], stride_width=stride[1],
                padding_height=padding[0], padding_width=padding[1], ceil_mode=int(ceil_mode))


SMALL = dict(samples=2, channels=3, height=5, width=3)
ELEMENTWISE = [("add_saturate", 0), ("add_exact", 0), ("relu", 0), ("relu", 37), ("relu_mask", 0), ("relu_mask", 41),
               ("relu", 300), ("relu_mask", 300)]


@pytest.mark.parametrize("in_width", [8, 16])
def test_elementwise(in_width, read_latency):
    p = parameters(in_width)
    numerics = numerics_for(p)
    fmt = numerics.operand
    rng = np.random.default_rng(in_width)
    scratch, acc = memories(rng, p, numerics)
    scratch[7:12], scratch[301:306] = fmt.max - 3, 5  # add_saturate: both ends
    scratch[12:17], scratch[306:311] = fmt.min + 2, -9
    scratch[20:26] = scratch[314:320] = [37, 36, 38, 41, 40, 42]  # at the limits
    scratch[120:210] = rng.integers(fmt.min // 2, fmt.max // 2 + 1, 90)  # add_exact: the sum fits
    scratch[220:310] = rng.integers(fmt.min // 2, fmt.max // 2 + 1, 90)
    steps = []
    for index, (funct, imm) in enumerate(ELEMENTWISE):
        sources = dict(src0=120, src1=220) if funct == "add_exact" else dict(src0=7, src1=301)
        steps.append((SMALL, funct, dict(dst=403 + 91 * index, imm=imm, **sources)))
    cycles = run(p, numerics, scratch, acc, steps, read_latency)
    assert cycles == [{1: 10 + 90, 2: 11 + 90, 3: 12 + 90}[read_latency]] * len(ELEMENTWISE)


def test_elementwise_in_place(read_latency):
    p = parameters(8)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(3), p, numerics)
    run(p, numerics, scratch, acc, [
        (dict(samples=1, channels=7, height=3, width=5), "add_saturate", dict(dst=11, src0=11, src1=200)),
        (dict(samples=3, channels=1, height=1, width=1), "relu", dict(dst=5, src0=5)),
        (dict(samples=1, channels=1, height=2, width=2), "relu_mask", dict(dst=300, src0=300, src1=9))],
        read_latency)


@pytest.mark.parametrize("in_width", [8, 16])
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_requantize(in_width, rounding, read_latency):
    p = parameters(in_width)
    numerics = dataclasses.replace(numerics_for(p), rounding=rounding)
    rng = np.random.default_rng([in_width, len(rounding)])
    scratch, acc = memories(rng, p, numerics, acc_range=1 << (in_width + 6))
    acc[:16] = [8, 24, -8, -24, 9, -9, 7, -7, 40, -40, 0, 1, -1, 16, -16, 56]  # ties of shift 4
    acc[16] = -(1 << (p.acc_width - 1))  # the accumulator format's ends: saturate
    acc[17] = (1 << (p.acc_width - 1)) - 1
    shape = dict(samples=2, channels=2, height=3, width=3)
    steps = [(shape, "requantize", dict(dst=101 + 40 * k, src0=shift * 3, imm=shift))
             for k, shift in enumerate((0, 4, 1, 7))]
    steps += [(dict(samples=1, channels=1, height=3, width=6), "requantize", dict(dst=301 + 20 * k, src0=1, imm=shift))
              for k, shift in enumerate((p.acc_width - 1, p.acc_width, p.acc_width + 1, 60, 63, 64, 100, 65535))]
    run(p, numerics, scratch, acc, steps, read_latency)


@pytest.mark.parametrize("in_width", [8, 16])
def test_channel_sum(in_width, read_latency):
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(in_width), p, numerics)
    run(p, numerics, scratch, acc, [
        (dict(samples=3, channels=4, height=3, width=5), "channel_sum", dict(dst=13, src0=17)),
        (dict(samples=1, channels=5, height=1, width=1), "channel_sum", dict(dst=200, src0=3)),
        (dict(samples=3, channels=4, height=3, width=5), "channel_sum_accumulate", dict(dst=33, src0=17)),
        (dict(samples=2, channels=3, height=2, width=1), "channel_sum_accumulate", dict(dst=13, src0=501)),
        (dict(samples=1, channels=5, height=1, width=1), "channel_sum_accumulate", dict(dst=201, src0=3)),
        # reads dst[0] = the previous instruction's last write (in its done cycle)
        (dict(samples=1, channels=2, height=1, width=2), "channel_sum_accumulate", dict(dst=205, src0=40))],
        read_latency)


@pytest.mark.parametrize("in_width", [8, 16])
def test_channel_insert_extract(in_width, read_latency):
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(in_width), p, numerics)
    insert = dict(samples=2, channels=3, height=3, width=5, out_channels=7, out_height=3, out_width=5)
    extract = dict(samples=2, channels=7, height=3, width=5, out_channels=2, out_height=3, out_width=5)
    run(p, numerics, scratch, acc,
        [(insert, "channel_insert", dict(dst=301, src0=5, imm=offset)) for offset in (0, 2, 4)]
        + [(extract, "channel_extract", dict(dst=521 + 61 * k, src0=9, imm=offset))
           for k, offset in enumerate((0, 3, 5))], read_latency)


@pytest.mark.parametrize("in_width", [8, 16])
def test_global_pool(in_width, read_latency):
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(in_width), p, numerics)
    steps = []
    for k, (h, w) in enumerate([(2, 2), (3, 3), (1, 1), (3, 5), (1, 2)]):
        shape = dict(samples=2, channels=3, height=h, width=w, out_channels=3, out_height=1, out_width=1)
        steps += [(shape, "global_pool_forward", dict(dst=401 + 7 * k, src0=7 + k)),
                  (shape, "global_pool_backward", dict(dst=501 + 91 * k, src0=113 + k))]
    run(p, numerics, scratch, acc, steps, read_latency)


POOLS = [  # (n, c, h, w), kernel, stride, padding, ceil_mode
    ((1, 2, 5, 6), (2, 2), (2, 2), (0, 0), False),
    ((2, 1, 5, 5), (3, 3), (2, 2), (1, 1), False),
    ((1, 2, 5, 6), (3, 3), (2, 2), (1, 1), True),
    ((1, 1, 7, 6), (2, 3), (2, 1), (1, 1), True),
    ((1, 2, 4, 5), (3, 2), (1, 2), (0, 1), False),
    ((1, 1, 5, 7), (1, 1), (2, 3), (0, 0), False),
    ((1, 1, 6, 6), (2, 2), (3, 3), (1, 0), True),
    ((1, 1, 5, 5), (5, 3), (2, 1), (2, 1), False),  # padding >= stride
]


@pytest.mark.parametrize("in_width", [8, 16])
def test_maxpool(in_width, read_latency):
    p = parameters(in_width)
    numerics = numerics_for(p)
    rng = np.random.default_rng(in_width)
    scratch, acc = memories(rng, p, numerics, -4, 3)  # few values: ties in most windows
    scratch[100:200] = rng.integers(numerics.operand.min, numerics.operand.max + 1, 100)
    scratch[200:300] = rng.integers(-9, 10, 100)  # dy: overlapping windows add up within an element
    shapes = [pool_shape(*dims, kernel, stride, padding, ceil_mode)
              for dims, kernel, stride, padding, ceil_mode in POOLS]
    sizes = [size for shape in shapes for size in (Shape(shape).output_elements, *[Shape(shape).input_elements] * 2)]
    dst = iter(regions(300, sizes))
    steps = []
    for case, shape in enumerate(shapes):
        steps += [(shape, "maxpool_forward", dict(dst=next(dst), src0=3 + case)),
                  (shape, "maxpool_backward", dict(dst=next(dst), src0=201 + case, src1=3 + case)),
                  (shape, "maxpool_backward", dict(dst=next(dst), src0=201 + case, src1=101 + case))]
    run(p, numerics, scratch, acc, steps, read_latency)


def test_maxpool_backward_shared_maximum(read_latency):
    """Read-after-write in maxpool_backward's scatter-add: consecutive windows of 1 or 2 positions (stride 1) whose
    maximum is the same x, so a window's dx read follows the previous window's dx + dy write as closely as the
    read latency allows (K = 2 at L = 3: the last position waits); the zeroing's last write just before the first
    window's dx read (1x1 inputs)."""
    p = parameters(8)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(5), p, numerics, -9, 9)
    scratch[1:15] = [0, 9, 1, 9, 9, 2, 8, 8, 8, 7, 3, 9, 6, 9]  # x: 2 rows of 7, maxima shared by windows
    scratch[21:35] = [-5, 0, 3, 0, 0, 2, 0, 0, 0, 0, 9, 0, 0, 0]  # x of the 1x3 kernel (ties: the first)
    steps = [
        (pool_shape(1, 2, 1, 7, (1, 2), (1, 1), (0, 0)), "maxpool_backward", dict(dst=301, src0=101, src1=1)),
        (pool_shape(2, 1, 1, 7, (1, 2), (1, 1), (0, 1), ceil_mode=True), "maxpool_backward",
         dict(dst=321, src0=111, src1=1)),
        (pool_shape(1, 1, 2, 7, (1, 3), (1, 1), (0, 1)), "maxpool_backward", dict(dst=341, src0=121, src1=21)),
        (pool_shape(1, 1, 2, 7, (2, 1), (1, 1), (0, 0)), "maxpool_backward", dict(dst=361, src0=131, src1=1)),
        (pool_shape(1, 2, 1, 7, (1, 1), (1, 1), (0, 0)), "maxpool_backward", dict(dst=381, src0=141, src1=1)),
        (pool_shape(1, 1, 1, 1, (1, 1), (1, 1), (0, 0)), "maxpool_backward", dict(dst=401, src0=151, src1=2)),
        (pool_shape(2, 1, 1, 1, (1, 1), (1, 1), (0, 0)), "maxpool_backward", dict(dst=403, src0=152, src1=3)),
        # a dx written just before by the previous instruction, read (x) at once
        (pool_shape(1, 1, 1, 2, (1, 2), (1, 1), (0, 0)), "maxpool_backward", dict(dst=405, src0=153, src1=403)),
    ]
    run(p, numerics, scratch, acc, steps, read_latency)


@pytest.mark.parametrize("in_width", [8, 16])
def test_avgpool(in_width, read_latency):
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng([in_width, 1]), p, numerics)
    shapes = [pool_shape(*dims, kernel, stride, padding) for dims, kernel, stride, padding, _ in POOLS]
    sizes = [size for shape in shapes for size in (Shape(shape).output_elements, Shape(shape).input_elements)]
    dst = iter(regions(300, sizes))
    steps = []
    for case, shape in enumerate(shapes):
        steps += [(shape, "avgpool_forward", dict(dst=next(dst), src0=3 + case)),
                  (shape, "avgpool_backward", dict(dst=next(dst), src0=201 + case))]
    run(p, numerics, scratch, acc, steps, read_latency)


@pytest.mark.parametrize("in_width", [8, 16])
def test_random_pools(in_width, read_latency):
    """Seeded random pool geometries (PyTorch's limits: padding at most half the kernel)."""
    p = parameters(in_width)
    numerics = numerics_for(p)
    rng = np.random.default_rng([in_width, 7])
    scratch, acc = memories(rng, p, numerics)
    scratch[:600] = rng.integers(-3, 3, 600)  # ties
    scratch[600:900] = rng.integers(-6, 7, 300)  # dy of maxpool_backward
    steps, dst = [], 1001
    for funct in ("maxpool_forward", "maxpool_backward", "avgpool_forward", "avgpool_backward") * 2:
        while True:
            h, w, kh, kw, sh, sw = (int(v) for v in (*rng.integers(1, 8, 2), *rng.integers(1, 5, 4)))
            ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
            if h + 2 * ph >= kh and w + 2 * pw >= kw:
                break
        ceil_mode = funct.startswith("max") and bool(rng.integers(0, 2))
        shape = pool_shape(int(rng.integers(1, 3)), int(rng.integers(1, 3)), h, w, (kh, kw), (sh, sw), (ph, pw),
                           ceil_mode)
        sources = dict(src0=601 + len(steps), src1=1 + len(steps)) if funct == "maxpool_backward" else dict(
            src0=1 + len(steps))
        steps.append((shape, funct, dict(dst=dst, **sources)))
        dst += max(Shape(shape).input_elements, Shape(shape).output_elements) + 1
    assert dst <= SCRATCH
    run(p, numerics, scratch, acc, steps, read_latency)


def test_operand_narrower_than_element(read_latency):
    """in_width 12 in 16-bit elements: saturation at the operand format, not the element."""
    p = parameters(12)
    numerics = numerics_for(p)
    fmt = numerics.operand
    rng = np.random.default_rng(12)
    scratch, acc = memories(rng, p, numerics, acc_range=1 << 20)
    scratch[7:12], scratch[301:306] = fmt.max - 3, 5
    scratch[12:17], scratch[306:311] = fmt.min + 2, -9
    run(p, numerics, scratch, acc, [
        (SMALL, "add_saturate", dict(dst=403, src0=7, src1=301)),
        (SMALL, "requantize", dict(dst=503, src0=5, imm=3)),
        (pool_shape(1, 2, 4, 4, (2, 2), (1, 1), (0, 0)), "avgpool_backward", dict(dst=603, src0=7)),
        (dict(samples=2, channels=3, height=3, width=3, out_channels=3), "global_pool_forward", dict(dst=703, src0=7))],
        read_latency)


def test_unit_cycles_formula(read_latency):
    p = parameters(8)
    numerics = numerics_for(p)

    def cycles(funct, shape):
        return unit_cycles(isa.Instruction("VECTOR", funct), Shape(shape), p, numerics, read_latency=read_latency)

    shape = pool_shape(2, 3, 6, 6, (3, 3), (2, 2), (1, 1))
    y, x = 2 * 3 * 3 * 3, 2 * 3 * 36
    fill = {1: 1, 2: 2, 3: 3}[read_latency]  # the read data's extra cycles (to the unit's arrival registers)
    assert cycles("maxpool_forward", shape) == 9 + fill + y * 9
    assert cycles("maxpool_backward", shape) == 9 + 2 * fill + x + y * 10  # K = 9 >= L: no stall
    assert cycles("avgpool_forward", shape) == 10 + fill + 1 + numerics.reciprocal_frac + 2 + y * 9
    assert cycles("relu", shape) == 9 + fill + x
    # maxpool_backward with 1 < K < L (L = read_latency + 1, to the arrival registers): a window's last position
    # waits until L + 1 cycles after the previous one's (X = 16, Y = 12, K = 2: L = 3 stalls once per window
    # after the first, L = 4 twice); K = 1 never waits
    assert cycles("maxpool_backward", pool_shape(1, 1, 4, 4, (1, 2), (1, 1), (0, 0))) == {
        1: 11 + 16 + 12 * 3, 2: 13 + 16 + 12 * 3 + 11, 3: 15 + 16 + 12 * 3 + 2 * 11}[read_latency]
    assert cycles("maxpool_backward", pool_shape(1, 1, 3, 3, (1, 1), (1, 1), (0, 0))) == {
        1: 11 + 9 + 9 * 2, 2: 13 + 9 + 9 * 2, 3: 15 + 9 + 9 * 2}[read_latency]


def test_parameters_validated():
    p = parameters(16)
    with pytest.raises(ValueError, match="operand format"):
        VectorUnit(parameters(8), numerics_for(p))
    with pytest.raises(TypeError, match="numerics"):
        VectorUnit(p, "int16")
    for latency in (0, 4, 2.0, True):
        with pytest.raises(ValueError, match="read_latency"):
            VectorUnit(p, numerics_for(p), read_latency=latency)
        with pytest.raises(ValueError, match="read_latency"):
            unit_cycles(isa.Instruction("VECTOR", "relu"), Shape(SMALL), p, read_latency=latency)
    assert VectorUnit(p, numerics_for(p)).read_latency == READ_LATENCY  # the core's by default
    assert VectorUnit(p, numerics_for(p), read_latency=3).read_latency == 3


@pytest.mark.parametrize("in_width", [8, 16])
def test_avgpool_backward_saturates(in_width, read_latency):
    """Shares rounded up add to more than the largest element (127/4 -> 32, four windows: 128)."""
    p = parameters(in_width)
    numerics = numerics_for(p)
    scratch, acc = memories(np.random.default_rng(in_width), p, numerics)
    scratch[301:320] = numerics.operand.max
    scratch[320:340] = numerics.operand.min
    run(p, numerics, scratch, acc, [
        (pool_shape(1, 2, 4, 4, kernel, (1, 1), (0, 0)), "avgpool_backward", dict(dst=601 + 40 * k, src0=301))
        for k, kernel in enumerate(((2, 2), (1, 2), (3, 3)))], read_latency)


def test_idle_ports_low(read_latency):
    """Every enable is low before start and after done, whatever instruction word is presented next (the core
    ORs the units' ports)."""
    from amaranth.sim import Simulator

    p = parameters(8)
    unit = VectorUnit(p, numerics_for(p), read_latency=read_latency)
    ports = [getattr(unit, name).en for name in ("scratch_read0", "scratch_read1", "scratch_write", "acc_read",
                                                 "acc_write")]
    shape = Shape(pool_shape(1, 1, 4, 4, (2, 2), (2, 2), (0, 0)))
    seen = {}

    async def bench(ctx):
        ctx.set(unit.shape, isa.encode(isa.Instruction("SHAPE", fields=dict(shape))))
        for funct in ("maxpool_backward", "avgpool_backward", "requantize", "avgpool_forward", "relu",
                      "global_pool_forward", "channel_sum_accumulate"):
            # the next instruction's word in the cycle after done, as the core may present it
            ctx.set(unit.instruction, isa.encode(isa.Instruction("VECTOR", funct, dict(dst=64, src0=0, src1=32))))
            for _ in range(3):
                assert not any(ctx.get(en) for en in ports) and not ctx.get(unit.done)
                await ctx.tick()
            ctx.set(unit.start, 1)
            await ctx.tick()
            ctx.set(unit.start, 0)
            cycles = 1
            while not ctx.get(unit.done):
                await ctx.tick()
                cycles += 1
            seen[funct] = cycles
            await ctx.tick()  # instruction and shape are held through the done cycle
        assert not any(ctx.get(en) for en in ports)

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    for funct, cycles in seen.items():
        assert cycles == unit_cycles(isa.Instruction("VECTOR", funct), shape, p, read_latency=read_latency)
