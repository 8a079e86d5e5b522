# amaranth: UnusedElaboratable=no
"""GemmUnit (hdl/core/gemm_unit.py) in amaranth.sim against the instruction-level simulator (verif/compute_bench):
every GEMM funct over kernels 1 and 3, strides 1 and 2, padding 0 and 1, groups 1, 2 and depthwise, a linear
layer, the int8 and int16 presets, saturating and wrapping accumulators narrow enough to overflow, every
rounding mode, the weight-gradient carry, at every read latency; the measured cycles equal unit_cycles."""

import dataclasses

import numpy as np
import pytest

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import INTEGER_PRESETS, MacArithmetic
from wavecore.hdl.core.compute_unit import READ_LATENCY
from wavecore.hdl.core.gemm_unit import BUFFER_DEPTH, GemmUnit, unit_cycles
from wavecore.verif.compute_bench import check_unit, idle_outputs, numerics_for, run_golden

FUNCTS = tuple(isa.FUNCTS["GEMM"])
INT8 = CoreParameters(in_width=8, acc_width=32)
INT16 = CoreParameters(in_width=16, acc_width=48)


@pytest.fixture(params=[1, 2, 3], ids=lambda latency: f"latency{latency}")
def read_latency(request):
    """The memories' read latency the unit is built for (every test that runs the unit runs at each)."""
    return request.param


def geometry(n, c, h, w, o, kernel, stride=1, padding=0, groups=1):
    """A SHAPE's fields; ``kernel``, ``stride``, ``padding`` are ints or (height, width) pairs."""
    (kh, kw), (sh, sw), (ph, pw) = (v if isinstance(v, tuple) else (v, v) for v in (kernel, stride, padding))
    return dict(samples=n, channels=c, height=h, width=w, out_channels=o,
                out_height=(h + 2 * ph - kh) // sh + 1, out_width=(w + 2 * pw - kw) // sw + 1,
                kernel_height=kh, kernel_width=kw, stride_height=sh, stride_width=sw, padding_height=ph,
                padding_width=pw, groups=groups)


def case(functs, fields, parameters=INT8, numerics=None, *, seed=0, operand_bits=None, carry_bits=None, skew=0,
         negate=()):
    """``(parameters, numerics, program, scratchpad, accumulator)``: random memories (operands of ``operand_bits``
    bits, default the full operand width, the lower bound raised by ``skew`` so sums drift upwards), one SHAPE
    and a GEMM of each of ``functs`` (a name or a tuple), every tensor at its own odd address: x, w, bias and dy
    are inputs, each instruction writes its own output (the carry of ``_accumulate`` is the random accumulator);
    the tensors named in ``negate`` are negated (so that with ``skew`` their products drift negative)."""
    functs = (functs,) if isinstance(functs, str) else functs
    numerics = numerics or numerics_for(parameters)
    shape = Shape(fields)
    x, y, wt, o = shape.input_elements, shape.output_elements, shape.weight_elements, shape["out_channels"]
    regions, free = {}, 3
    for name, size in (("x", x), ("w", wt), ("bias", o), ("dy", y), ("forward", y), ("forward_bias", y),
                       ("backward_data", x)):
        regions[name], free = free, free + size + 2
    spad_size, acc_size = -(-free // 8) * 8, -(-(2 * wt + 9) // 8) * 8  # whole memory words
    regions["backward_weight"], regions["backward_weight_accumulate"] = 1, 4 + wt
    parameters = dataclasses.replace(parameters, scratchpad_elements=spad_size, accumulator_elements=acc_size)
    rng = np.random.default_rng(seed)
    bits = operand_bits or parameters.in_width
    scratchpad = rng.integers(-(1 << (bits - 1)) + skew, 1 << (bits - 1), spad_size)
    sizes = {"x": x, "w": wt, "bias": o, "dy": y}
    for name in negate:
        start = regions[name]
        scratchpad[start : start + sizes[name]] = np.maximum(-scratchpad[start : start + sizes[name]],
                                                             -(1 << (bits - 1)))
    carry = carry_bits or min(parameters.acc_width - 2, 30)
    accumulator = rng.integers(-(1 << (carry - 1)), 1 << (carry - 1), acc_size)
    program = [isa.Instruction("SHAPE", fields=fields)]
    for funct in functs:
        sources = {"forward": ("x", "w"), "forward_bias": ("x", "w"), "backward_data": ("dy", "w")}.get(funct,
                                                                                                      ("dy", "x"))
        imm = numerics.weight_frac if funct in ("forward", "forward_bias", "backward_data") else 0
        program.append(isa.Instruction("GEMM", funct, dict(dst=regions[funct], src0=regions[sources[0]],
                                                           src1=regions[sources[1]], src2=regions["bias"], imm=imm)))
    return parameters, numerics, program, scratchpad, accumulator


def run(functs, fields, parameters=INT8, numerics=None, *, read_latency, lanes=None, buffer_depth=BUFFER_DEPTH,
        **data):
    """Checks the unit (built with ``read_latency``, ``lanes``, ``buffer_depth``) on :func:`case` against the
    simulator and its cycles against unit_cycles."""
    parameters, numerics, program, scratchpad, accumulator = case(functs, fields, parameters, numerics, **data)
    unit = dict(lanes=lanes, buffer_depth=buffer_depth, read_latency=read_latency)
    cycles = check_unit(GemmUnit(parameters, numerics, **unit), parameters, numerics, program, scratchpad,
                        accumulator)
    assert cycles == [unit_cycles(gemm, Shape(fields), parameters, **unit) for gemm in program[1:]]
    return cycles


@pytest.mark.parametrize(("kernel", "stride", "padding", "groups"),
                         [(3, 1, 1, 1), (3, 2, 1, 2), (1, 2, 0, 1), (3, 2, 0, 1), (1, 1, 0, 2)])
def test_conv_geometries_match_the_simulator(kernel, stride, padding, groups, read_latency):
    """Every funct (one program) on kernels 1 and 3, strides 1 and 2, padding 0 and 1, groups 1 and 2."""
    run(FUNCTS, geometry(1, 2 * groups, 4, 3, 2 * groups, kernel, stride, padding, groups),
        seed=kernel + 3 * stride + 7 * padding + groups, read_latency=read_latency)


def test_depthwise_and_odd_windows(read_latency):
    run(FUNCTS, geometry(2, 3, 4, 3, 3, 3, 1, 1, groups=3), seed=1, read_latency=read_latency)  # depthwise, 2 samples
    # non-square kernel, stride, padding
    run(FUNCTS, geometry(1, 2, 5, 3, 3, (3, 1), (2, 1), (1, 0)), seed=2, read_latency=read_latency)
    # windows wholly in the padding
    run(FUNCTS, geometry(1, 2, 2, 3, 3, (1, 2), 1, (1, 2)), seed=3, read_latency=read_latency)


def test_linear_layer(read_latency):
    """fc as the compiler emits it: a 1x1 convolution on 1x1 maps."""
    run(FUNCTS, geometry(3, 6, 1, 1, 5, 1), seed=4, read_latency=read_latency)


def test_int16_preset(read_latency):
    run(FUNCTS, geometry(1, 2, 3, 3, 2, 3, 1, 1), INT16, seed=5, read_latency=read_latency)


NARROW = dict(fields=geometry(2, 2, 3, 3, 8, 3, 1, 1), parameters=CoreParameters(in_width=8, acc_width=16),
              seed=6, carry_bits=16, skew=100)


@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_narrow_accumulator_overflows_in_golden_order(overflow, read_latency):
    """acc_width 16 with full-scale int8 operands drifting positive: many sums overflow (backward_data's
    per-tap sums over 8 output channels too), so a saturating unit must saturate after every addition in the
    golden order (k ascending) to match."""
    run(FUNCTS, numerics=narrow_numerics(overflow), **NARROW, read_latency=read_latency)


def test_narrow_accumulator_saturates_negative_sums_at_the_lower_bound(read_latency):
    """As above with the weights negated: the forward and backward-data sums drift negative, so a saturating
    unit must clamp at the accumulator's lowest value (backward_weight's dy * x still drifts positive)."""
    run(FUNCTS, numerics=narrow_numerics("saturate"), **NARROW, negate=("w",), read_latency=read_latency)


def narrow_numerics(overflow):
    return dataclasses.replace(INTEGER_PRESETS["int8"], mac=MacArithmetic(8, 16, True, overflow), weight_frac=12)


@pytest.mark.parametrize("funct", FUNCTS)
def test_narrow_data_tells_the_overflow_rule_and_the_order_apart(funct, monkeypatch):
    """On the data of the narrow-accumulator test the simulator gives other results with wrap instead of
    saturate and with the reduction summed in descending order, so that test can fail on either mistake."""
    parameters, numerics, program, scratchpad, accumulator = case(funct, numerics=narrow_numerics("saturate"),
                                                                  **NARROW)
    want = run_golden(parameters, numerics, program, scratchpad, accumulator)
    wrapped = run_golden(parameters, narrow_numerics("wrap"), program, scratchpad, accumulator)
    assert any(not np.array_equal(a, b) for a, b in zip(want, wrapped))
    ascending = MacArithmetic.matmul
    monkeypatch.setattr(MacArithmetic, "matmul",
                        lambda self, a, b, c=None: ascending(self, np.asarray(a)[:, ::-1], np.asarray(b)[::-1], c))
    descending = run_golden(parameters, numerics, program, scratchpad, accumulator)
    assert any(not np.array_equal(a, b) for a, b in zip(want, descending))


@pytest.mark.parametrize("rounding", ["floor", "half_up", "half_away_from_zero"])
def test_rounding_modes(rounding, read_latency):
    numerics = dataclasses.replace(numerics_for(INT8), rounding=rounding)
    run(("forward_bias", "backward_data"), geometry(1, 2, 3, 3, 2, 3, 1, 1), INT8, numerics, seed=7, operand_bits=5,
        read_latency=read_latency)


def test_weight_gradient_carry_over_two_sub_batches(read_latency):
    """backward_weight on one sub-batch then backward_weight_accumulate on the next, started the cycle after the
    first's done: the accumulator carries (the carry reads what the previous instruction wrote last)."""
    fields = geometry(1, 2, 3, 3, 2, 3, 1, 1)
    shape = Shape(fields)
    parameters = dataclasses.replace(INT8, scratchpad_elements=96, accumulator_elements=64)
    rng = np.random.default_rng(8)
    program = [isa.Instruction("SHAPE", fields=fields),
               isa.Instruction("GEMM", "backward_weight", dict(dst=1, src0=0, src1=20)),
               isa.Instruction("GEMM", "backward_weight_accumulate", dict(dst=1, src0=41, src1=67))]
    unit = dict(lanes=2, read_latency=read_latency)
    cycles = check_unit(GemmUnit(parameters, numerics_for(parameters), **unit), parameters, numerics_for(parameters),
                        program, rng.integers(-128, 128, 96), rng.integers(-999, 999, 64))
    assert cycles == [unit_cycles(ins, shape, parameters, **unit) for ins in program[1:]]


def test_tiles_of_lanes_and_direct_mode(read_latency):
    """Channels split into several tiles of 2 lanes (the last one partial); a buffer too small for the slice
    runs direct (one lane, both operands from the scratchpad)."""
    run(FUNCTS, geometry(1, 5, 3, 3, 5, 3, 2, 1), seed=9, lanes=2, read_latency=read_latency)
    run(FUNCTS, geometry(1, 4, 2, 3, 6, 3, 1, 1, groups=2), seed=10, lanes=4, buffer_depth=8,
        read_latency=read_latency)


def test_every_funct_back_to_back(read_latency):
    """One program of every funct (two groups, one lane: two tiles per group): the unit starts each instruction
    from a clean state, and backward_weight_accumulate carries what backward_weight wrote."""
    fields = geometry(1, 4, 3, 3, 4, 3, 1, 1, groups=2)
    shape = Shape(fields)
    parameters = dataclasses.replace(INT8, scratchpad_elements=256, accumulator_elements=80)
    numerics = numerics_for(parameters)
    shift = numerics.weight_frac
    program = [isa.Instruction("SHAPE", fields=fields),
               isa.Instruction("GEMM", "forward", dict(dst=130, src0=0, src1=40, imm=shift)),
               isa.Instruction("GEMM", "backward_weight", dict(dst=3, src0=130, src1=0)),
               isa.Instruction("GEMM", "forward_bias", dict(dst=170, src0=1, src1=41, src2=120, imm=shift)),
               isa.Instruction("GEMM", "backward_data", dict(dst=210, src0=170, src1=40, imm=shift)),
               isa.Instruction("GEMM", "backward_weight_accumulate", dict(dst=3, src0=170, src1=210))]
    rng = np.random.default_rng(12)
    unit = dict(lanes=1, read_latency=read_latency)
    cycles = check_unit(GemmUnit(parameters, numerics, **unit), parameters, numerics, program,
                        rng.integers(-128, 128, 256), rng.integers(-999, 999, 80))
    assert cycles == [unit_cycles(ins, shape, parameters, **unit) for ins in program[1:]]


def test_cycles_formula():
    """unit_cycles on a shape too big to simulate: the docstring's formula."""
    fields = geometry(8, 16, 8, 8, 32, 3, 1, 1, groups=2)  # Cg 8, Og 16, K 72, Q 512
    shape = Shape(fields)

    def cycles(funct, read_latency=1, **unit):
        return unit_cycles(isa.Instruction("GEMM", funct, {}), shape, INT8, read_latency=read_latency, **unit)

    # forward skips the taps in the padding: 8 * 3 - 2 per axis
    assert cycles("forward") == 24 + 2 * (16 * 72 + 2 * 8 * 8 * 22 * 22) + 8
    assert cycles("forward_bias") == 24 + 2 * (16 * 72 + 16 + 2 * 8 * 8 * 22 * 22) + 8
    assert cycles("forward", buffer_depth=71) == 24 + 2 * 16 * 8 * 8 * 22 * 22 + 1  # direct: one lane
    assert cycles("forward", lanes=16) == 24 + 2 * (16 * 72 + 8 * 8 * 22 * 22) + 16
    assert cycles("backward_weight", buffer_depth=512) == 24 + 2 * (16 * 512 + 2 * 72 * 512) + 8
    assert cycles("backward_weight_accumulate", lanes=16, buffer_depth=512) == \
        24 + 2 * (16 * 512 + 72 * (512 + 16)) + 16
    # backward_data, stride 1, padding 1, kernel 3 on 8: each axis has 8 * 3 - 2 valid (position, tap) pairs
    assert cycles("backward_data") == 24 + 2 * (8 * 16 * 9 + 8 * (8 * 8 * 9 + 15 * 22 * 22)) + 8
    # reductions shorter than the lanes: 2 steps each, but 8 lanes to write: the first output after the FILL,
    # then one every 8 cycles
    stalled = Shape(geometry(2, 2, 2, 2, 8, 1))
    assert unit_cycles(isa.Instruction("GEMM", "forward", {}), stalled, INT8, read_latency=1) == \
        24 + 8 * 2 + 2 + 7 * 8 + 8
    # read latency R: 23 + R fixed cycles (the pipeline's fill), the same issue cycles
    assert cycles("forward", read_latency=2) == 25 + 2 * (16 * 72 + 2 * 8 * 8 * 22 * 22) + 8
    assert cycles("forward_bias", read_latency=2) == 25 + 2 * (16 * 72 + 16 + 2 * 8 * 8 * 22 * 22) + 8
    assert cycles("forward", buffer_depth=71, read_latency=2) == 25 + 2 * 16 * 8 * 8 * 22 * 22 + 1
    assert cycles("backward_weight_accumulate", lanes=16, buffer_depth=512, read_latency=2) == \
        25 + 2 * (16 * 512 + 72 * (512 + 16)) + 16
    assert cycles("backward_data", read_latency=2) == 25 + 2 * (8 * 16 * 9 + 8 * (8 * 8 * 9 + 15 * 22 * 22)) + 8
    assert unit_cycles(isa.Instruction("GEMM", "forward", {}), stalled, INT8, read_latency=2) == \
        25 + 8 * 2 + 2 + 7 * 8 + 8
    assert cycles("backward_weight", buffer_depth=512, read_latency=3) == 26 + 2 * (16 * 512 + 2 * 72 * 512) + 8


def test_reductions_shorter_than_the_lanes(read_latency):
    """forward: one input channel (K = 1) for 4 lanes: each reduction waits for the previous lanes' writes, and
    the first MAC reads the buffer element in the cycle the FILL writes the last lane's (the buffers' read must
    see the write at every read latency); backward_data: 4 output channels for 1 lane."""
    run(FUNCTS, geometry(2, 1, 2, 2, 4, 1), seed=11, lanes=4, read_latency=read_latency)


def test_rejects_mismatched_numerics():
    with pytest.raises(ValueError, match=r"^numerics MAC widths 16/48 must equal the parameters' in_width/acc_wid"):
        GemmUnit(INT8, numerics_for(INT16))
    with pytest.raises(TypeError, match=r"^numerics must be an IntegerTraining"):
        GemmUnit(INT8, "int8")
    with pytest.raises(ValueError, match=r"^lanes must be an integer between 1 and 256, not 0$"):
        GemmUnit(INT8, numerics_for(INT8), lanes=0)
    with pytest.raises(ValueError, match=r"^lanes must be an integer between 1 and 256, not 257$"):
        GemmUnit(INT8, numerics_for(INT8), lanes=257)
    with pytest.raises(ValueError, match=r"^buffer_depth must be an integer between 1 and 65536, not 0$"):
        GemmUnit(INT8, numerics_for(INT8), buffer_depth=0)
    for latency in (0, 4, True):
        with pytest.raises(ValueError, match=rf"^read_latency must be 1, 2 or 3, not {latency!r}$"):
            GemmUnit(INT8, numerics_for(INT8), read_latency=latency)
    with pytest.raises(ValueError, match=r"^read_latency must be 1, 2 or 3, not 4$"):
        unit_cycles(isa.Instruction("GEMM", "forward", {}), Shape(geometry(1, 1, 1, 1, 1, 1)), INT8, read_latency=4)


def test_keeps_the_read_latency(read_latency):
    assert GemmUnit(INT8, numerics_for(INT8), read_latency=read_latency).read_latency == read_latency
    assert GemmUnit(INT8, numerics_for(INT8)).read_latency == READ_LATENCY  # the core's by default


def test_idle_ports_low(read_latency):
    """Without start every enable and done stay low (the core ORs the units' ports)."""
    assert idle_outputs(GemmUnit(INT8, numerics_for(INT8), read_latency=read_latency)) == []


@pytest.mark.parametrize("read_latency", [1, 2])  # the slowest test: not at latency 3 too
def test_channel_counts_beyond_eleven_bits(read_latency):
    """2,049 input channels (a linear layer on a 1x1 map): every channel counter and channel address needs all 12
    bits of the SHAPE field; the other tests stay below 64 channels."""
    run(FUNCTS, geometry(1, 2049, 1, 1, 2, 1), seed=12, read_latency=read_latency)
