"""The WaveCore GEMM unit: every ``GEMM`` function code as a sequential multiply-accumulate loop, bit-exact with
:meth:`wavecore.golden.core.simulator.Simulator._op_gemm` (``golden/integer.py`` ``conv_forward`` /
``conv_backward`` through :class:`~wavecore.golden.numerics.MacArithmetic` and
:func:`~wavecore.golden.numerics.requantize`).

**Interface**: :class:`~wavecore.hdl.core.compute_unit.ComputeUnitSignature` (read its docstring). Geometry from
the SHAPE word: x is (N, C, H, W), the weight (O, C/G, KH, KW), y / dy (N, O, OH, OW), all dense NCHW at element
addresses; a linear layer is a 1x1 convolution on 1x1 maps. ``scratch_read0`` reads the activation-side operand
(x for ``forward``, dy otherwise), ``scratch_read1`` the other one (weight for ``forward*`` and
``backward_data``, x for ``backward_weight*``; also the bias), ``acc_read`` the weight-gradient carry.

**Function codes** (``k`` is the golden GEMM's reduction index, summed in ascending order; every addition
wraps or saturates to ``acc_width`` bits as ``numerics.mac.overflow`` says):

* ``forward`` / ``forward_bias``: y[n, o, oh, ow] = requantize(start + sum over (c, i, j) of
  w[o, c, i, j] * x[n, g*C/G + c, oh*SH + i - PH, ow*SW + j - PW]), start = bias[o] << activation_frac
  (``forward_bias``, bias at src2) or 0. A padded tap adds a zero product (no change in either overflow mode).
* ``backward_data``: dx[n, c, h, w] = requantize(exact sum over the taps (i, j) with h + PH - i = oh*SH,
  w + PW - j = ow*SW, 0 <= oh < OH, 0 <= ow < OW of T(i, j)), T = sum over the group's output channels o
  (ascending) of w[o, c', i, j] * dy[n, o, oh, ow] with the overflow rule (the golden ``W^T dY`` GEMM, then
  ``col2im`` summing exactly in ``acc_width + 8`` bits).
* ``backward_weight`` / ``backward_weight_accumulate``: dW[o, c, i, j] (accumulator memory at dst) = start +
  sum over (n, oh, ow) ascending of dy[n, o, oh, ow] * x[n, g*C/G + c, oh*SH + i - PH, ow*SW + j - PW],
  start = the accumulator's dW (``_accumulate``, the carried sub-batch sum) or 0.

Requantization (``forward*``, ``backward_data``): shift by ``imm`` bits [4:0] (the simulator accepts only
``imm = weight_frac``) with ``numerics.rounding``, then saturate to the operand format.

**Timing** (cycles from ``start`` to ``done``, as :func:`~wavecore.verif.compute_bench.check_unit` counts them;
:func:`unit_cycles`): ``SETUP_CYCLES`` (= 15: a 12-step restoring division of C/G, O/G, PH/SH, PW/SW, one cycle
to prime the counters, two pipeline cycles) plus one cycle per step:

* ``forward``: N*O*OH*OW*(C/G)*KH*KW steps (one MAC each, padded taps included), ``forward_bias`` N*O more
  (one bias read per output plane);
* ``backward_weight*``: O*(C/G)*KH*KW*N*OH*OW steps;
* ``backward_data``: N*C*(H*W*KH*KW + (O/G - 1)*VH*VW) steps, VH = number of pairs (h, i) with a valid tap
  (likewise VW): a tap that hits no output takes one cycle, a valid one O/G cycles.

Pipeline: issue (addresses from the loop counters, reads presented) -> MAC (read data, product, overflow rule)
-> write (requantize; ``done`` in the cycle of the last write). One MAC per cycle.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import enum, wiring

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import IntegerTraining
from wavecore.hdl.core import decoder
from wavecore.hdl.core.compute_unit import ComputeUnitSignature, element_widths, shape_field

__all__ = ["SETUP_CYCLES", "GemmUnit", "unit_cycles"]

#: Bits of the restoring divider (the widest shape field divided: channels, out_channels).
_DIVIDER_BITS = 12
#: Extra accumulator bits of the backward-data col2im sum (up to 15 x 15 taps).
_TAP_BITS = 8
#: Fixed cycles of every instruction: division, priming, pipeline.
SETUP_CYCLES = _DIVIDER_BITS + 3

_FUNCTS = isa.FUNCTS["GEMM"]


def _taps_hit(size: int, out_size: int, kernel: int, stride: int, padding: int) -> int:
    """Pairs (position, tap) of one axis where the tap reaches an output: position + padding - tap =
    stride * out with 0 <= out < out_size."""
    count = 0
    for position in range(size):
        for tap in range(kernel):
            t = position + padding - tap
            if t >= 0 and t % stride == 0 and t // stride < out_size:
                count += 1
    return count


def unit_cycles(instruction: isa.Instruction, shape: Shape, parameters: CoreParameters) -> int:
    """Cycles from ``start`` to ``done`` of one GEMM instruction (the formula of the module docstring)."""
    s = shape
    n, c, h, w = s["samples"], s["channels"], s["height"], s["width"]
    o, oh, ow = s["out_channels"], s["out_height"], s["out_width"]
    kh, kw, groups = s["kernel_height"], s["kernel_width"], s["groups"]
    funct = instruction.funct
    if funct.startswith("forward"):
        steps = n * o * oh * ow * (c // groups) * kh * kw + (n * o if funct == "forward_bias" else 0)
    elif funct == "backward_data":
        vh = _taps_hit(h, oh, kh, s["stride_height"], s["padding_height"])
        vw = _taps_hit(w, ow, kw, s["stride_width"], s["padding_width"])
        steps = n * c * (h * w * kh * kw + (o // groups - 1) * vh * vw)
    else:
        steps = o * (c // groups) * kh * kw * n * oh * ow
    return SETUP_CYCLES + steps


class _State(enum.Enum, shape=3):
    IDLE = 0
    SETUP = 1
    PRIME = 2
    BIAS = 3
    RUN = 4
    DRAIN = 5


class GemmUnit(wiring.Component):
    """The GEMM compute unit (see the module docstring).

    Parameters
    ----------
    parameters : CoreParameters
        ``in_width`` and ``acc_width`` must be the numerics' MAC widths.
    numerics : IntegerTraining
        Overflow rule, rounding, ``activation_frac`` (the bias shift).
    """

    def __init__(self, parameters: CoreParameters, numerics: IntegerTraining):
        if not isinstance(parameters, CoreParameters):
            raise TypeError(f"parameters must be a CoreParameters, not {parameters!r}")
        if not isinstance(numerics, IntegerTraining):
            raise TypeError(f"numerics must be an IntegerTraining, not {numerics!r}")
        mac = numerics.mac
        if (mac.in_width, mac.acc_width) != (parameters.in_width, parameters.acc_width):
            raise ValueError(f"numerics MAC widths {mac.in_width}/{mac.acc_width} must equal the parameters' "
                             f"in_width/acc_width {parameters.in_width}/{parameters.acc_width}")
        widths = element_widths(parameters)
        if mac.in_width > widths["scratchpad"] or mac.acc_width > widths["accumulator"]:
            raise ValueError("the MAC widths must fit the scratchpad and accumulator elements")
        self.parameters, self.numerics = parameters, numerics
        super().__init__(ComputeUnitSignature(parameters))

    def elaborate(self, platform):
        m = Module()
        numerics, mac = self.numerics, self.numerics.mac
        in_width, acc_width = mac.in_width, mac.acc_width
        wide = acc_width + _TAP_BITS
        ins, shp = self.instruction, self.shape

        def fld(name):
            return decoder.field(ins, name, "compute")

        def geo(name):
            return shape_field(shp, name)

        funct = decoder.field(ins, "funct")
        is_fwd = (funct == _FUNCTS["forward"][0]) | (funct == _FUNCTS["forward_bias"][0])
        is_bias = funct == _FUNCTS["forward_bias"][0]
        is_data = funct == _FUNCTS["backward_data"][0]
        is_weight = (funct == _FUNCTS["backward_weight"][0]) | (funct == _FUNCTS["backward_weight_accumulate"][0])
        is_carry = funct == _FUNCTS["backward_weight_accumulate"][0]

        N, C, H, W = geo("samples"), geo("channels"), geo("height"), geo("width")
        O, OH, OW = geo("out_channels"), geo("out_height"), geo("out_width")
        KH, KW, SH, SW = geo("kernel_height"), geo("kernel_width"), geo("stride_height"), geo("stride_width")
        PH, PW, G = geo("padding_height"), geo("padding_width"), geo("groups")

        state = Signal(_State)
        step_count = Signal(range(_DIVIDER_BITS + 1))

        # -- restoring dividers: C/G, O/G, PH/SH, PW/SW -----------------------------------------------------
        divisions = []
        for name, numerator, denominator in (("cg", C, G), ("og", O, G), ("ph", PH, SH), ("pw", PW, SW)):
            quotient = Signal(_DIVIDER_BITS, name=f"{name}_quotient")
            remainder = Signal(_DIVIDER_BITS + 1, name=f"{name}_remainder")
            divisions.append((quotient, remainder, numerator, denominator))
        (cg, _, _, _), (og, _, _, _), (ph_q, ph_r, _, _), (pw_q, pw_r, _, _) = divisions

        # -- loop counters ----------------------------------------------------------------------------------
        limits = {"n": N, "g": G, "ol": og, "cl": cg, "oh": OH, "ow": OW, "h": H, "w": W, "i": KH, "j": KW}
        counters = {name: Signal(len(limit), name=f"{name}_count") for name, limit in limits.items()}
        at_last = {name: Signal(name=f"{name}_last") for name in limits}
        inc = {name: Signal(name=f"{name}_inc") for name in limits}
        for name in limits:
            m.d.comb += at_last[name].eq(counters[name] == limits[name] - 1)
        c_base = Signal(12)  # g * C/G
        o_base = Signal(12)  # g * O/G
        # backward_data: h + PH - i = tap_h_q * SH + tap_h_r (base pair for i = 0), likewise for w
        pair_bits = 10
        base_h_q, base_w_q, tap_h_q, tap_w_q = (Signal(signed(pair_bits), name=nm)
                                                 for nm in ("base_h_q", "base_w_q", "tap_h_q", "tap_w_q"))
        base_h_r, base_w_r, tap_h_r, tap_w_r = (Signal(4, name=nm)
                                                 for nm in ("base_h_r", "base_w_r", "tap_h_r", "tap_w_r"))
        tap_valid = Signal()
        m.d.comb += tap_valid.eq((tap_h_r == 0) & (tap_w_r == 0) & (tap_h_q >= 0) & (tap_h_q < OH)
                                 & (tap_w_q >= 0) & (tap_w_q < OW))
        ol_last = Signal()  # the ol loop's end (backward_data: an invalid tap is one step)
        m.d.comb += ol_last.eq(at_last["ol"] | (is_data & ~tap_valid))

        final = Signal()
        red_first, red_last, tap_first, tap_last = Signal(), Signal(), Signal(), Signal()
        c = counters

        def nest(names):
            """Carry chain of the loop nest ``names`` (outermost first) into ``inc``; returns the final flag."""
            carry = Const(1, 1)
            for name in reversed(names):
                m.d.comb += inc[name].eq(carry)
                carry = carry & (ol_last if name == "ol" else at_last[name])
            return carry

        with m.If(is_fwd):
            m.d.comb += [final.eq(nest(["n", "g", "ol", "oh", "ow", "cl", "i", "j"])),
                         red_first.eq((c["cl"] == 0) & (c["i"] == 0) & (c["j"] == 0)),
                         red_last.eq(at_last["cl"] & at_last["i"] & at_last["j"])]
        with m.Elif(is_weight):
            m.d.comb += [final.eq(nest(["g", "ol", "cl", "i", "j", "n", "oh", "ow"])),
                         red_first.eq((c["n"] == 0) & (c["oh"] == 0) & (c["ow"] == 0)),
                         red_last.eq(at_last["n"] & at_last["oh"] & at_last["ow"])]
        with m.Else():
            m.d.comb += [final.eq(nest(["n", "g", "cl", "h", "w", "i", "j", "ol"])),
                         red_first.eq(c["ol"] == 0), red_last.eq(ol_last),
                         tap_first.eq((c["i"] == 0) & (c["j"] == 0)), tap_last.eq(at_last["i"] & at_last["j"])]

        # -- issue stage: addresses of the current step -----------------------------------------------------
        channel = Signal(12)
        out_channel = Signal(12)
        m.d.comb += [channel.eq(c_base + c["cl"]), out_channel.eq(o_base + c["ol"])]
        pixel_h = Signal(signed(14))
        pixel_w = Signal(signed(14))
        m.d.comb += [pixel_h.eq(c["oh"] * SH + c["i"] - PH), pixel_w.eq(c["ow"] * SW + c["j"] - PW)]
        pixel_valid = Signal()
        m.d.comb += pixel_valid.eq((pixel_h >= 0) & (pixel_h < H) & (pixel_w >= 0) & (pixel_w < W))
        dy_h = Mux(is_data, tap_h_q, c["oh"])[:8]
        dy_w = Mux(is_data, tap_w_q, c["ow"])[:8]

        address_bits = len(self.scratch_read0.addr)
        x_address = Signal(address_bits)
        w_address = Signal(address_bits)
        dy_address = Signal(address_bits)
        m.d.comb += [
            x_address.eq(((c["n"] * C + channel) * H + pixel_h[:8]) * W + pixel_w[:8]),
            w_address.eq(((out_channel * cg + c["cl"]) * KH + c["i"]) * KW + c["j"]),
            dy_address.eq(((c["n"] * O + out_channel) * OH + dy_h) * OW + dy_w),
        ]
        zero = Signal()
        m.d.comb += zero.eq(Mux(is_data, ~tap_valid, ~pixel_valid))

        issue = Signal()
        read0, read1, acc_read = self.scratch_read0, self.scratch_read1, self.acc_read
        with m.If(state == _State.RUN):
            m.d.comb += issue.eq(1)
            m.d.comb += [read0.en.eq(~zero), read1.en.eq(~zero)]
            with m.If(is_fwd):
                m.d.comb += [read0.addr.eq(fld("src0") + x_address), read1.addr.eq(fld("src1") + w_address)]
            with m.Elif(is_weight):
                m.d.comb += [read0.addr.eq(fld("src0") + dy_address), read1.addr.eq(fld("src1") + x_address),
                             acc_read.en.eq(is_carry & red_first),
                             acc_read.addr.eq(fld("dst") + ((out_channel * cg + c["cl"]) * KH + c["i"]) * KW
                                              + c["j"])]
            with m.Else():
                m.d.comb += [read0.addr.eq(fld("src0") + dy_address), read1.addr.eq(fld("src1") + w_address)]
        with m.Elif(state == _State.BIAS):
            m.d.comb += [read1.en.eq(1), read1.addr.eq(fld("src2") + out_channel)]

        # -- control: setup, counters ----------------------------------------------------------------------
        def pair_up(q, r, stride):
            return Mux(r == stride - 1, q + 1, q), Mux(r == stride - 1, 0, r + 1)

        def pair_down(q, r, stride):
            return Mux(r == 0, q - 1, q), Mux(r == 0, stride - 1, r - 1)

        with m.Switch(state):
            with m.Case(_State.IDLE), m.If(self.start):
                m.d.sync += [state.eq(_State.SETUP), step_count.eq(0), c_base.eq(0), o_base.eq(0)]
                m.d.sync += [counter.eq(0) for counter in counters.values()]
                for quotient, remainder, numerator, _ in divisions:
                    m.d.sync += [quotient.eq(numerator), remainder.eq(0)]
            with m.Case(_State.SETUP):
                for quotient, remainder, _, denominator in divisions:
                    shifted = Signal(_DIVIDER_BITS + 1)
                    m.d.comb += shifted.eq((remainder << 1) | quotient[-1])
                    with m.If(shifted >= denominator):
                        m.d.sync += [remainder.eq(shifted - denominator), quotient.eq((quotient << 1) | 1)]
                    with m.Else():
                        m.d.sync += [remainder.eq(shifted), quotient.eq(quotient << 1)]
                m.d.sync += step_count.eq(step_count + 1)
                with m.If(step_count == _DIVIDER_BITS - 1):
                    m.d.sync += state.eq(_State.PRIME)
            with m.Case(_State.PRIME):
                m.d.sync += [base_h_q.eq(ph_q), base_h_r.eq(ph_r), tap_h_q.eq(ph_q), tap_h_r.eq(ph_r),
                             base_w_q.eq(pw_q), base_w_r.eq(pw_r), tap_w_q.eq(pw_q), tap_w_r.eq(pw_r),
                             state.eq(Mux(is_bias, _State.BIAS, _State.RUN))]
            with m.Case(_State.BIAS):
                m.d.sync += state.eq(_State.RUN)
            with m.Case(_State.RUN):
                for name, counter in counters.items():
                    last = ol_last if name == "ol" else at_last[name]
                    with m.If(inc[name]):
                        m.d.sync += counter.eq(Mux(last, 0, counter + 1))
                with m.If(inc["g"]):
                    m.d.sync += [c_base.eq(Mux(at_last["g"], 0, c_base + cg)),
                                 o_base.eq(Mux(at_last["g"], 0, o_base + og))]
                # backward_data tap pairs
                next_bh_q, next_bh_r = Signal.like(base_h_q), Signal.like(base_h_r)
                next_bw_q, next_bw_r = Signal.like(base_w_q), Signal.like(base_w_r)
                up_h, up_w = pair_up(base_h_q, base_h_r, SH), pair_up(base_w_q, base_w_r, SW)
                m.d.comb += [next_bh_q.eq(base_h_q), next_bh_r.eq(base_h_r),
                             next_bw_q.eq(base_w_q), next_bw_r.eq(base_w_r)]
                with m.If(inc["h"]):
                    m.d.comb += [next_bh_q.eq(Mux(at_last["h"], ph_q, up_h[0])),
                                 next_bh_r.eq(Mux(at_last["h"], ph_r, up_h[1]))]
                with m.If(inc["w"]):
                    m.d.comb += [next_bw_q.eq(Mux(at_last["w"], pw_q, up_w[0])),
                                 next_bw_r.eq(Mux(at_last["w"], pw_r, up_w[1]))]
                m.d.sync += [base_h_q.eq(next_bh_q), base_h_r.eq(next_bh_r),
                             base_w_q.eq(next_bw_q), base_w_r.eq(next_bw_r)]
                down_h, down_w = pair_down(tap_h_q, tap_h_r, SH), pair_down(tap_w_q, tap_w_r, SW)
                with m.If(inc["i"]):
                    m.d.sync += [tap_h_q.eq(Mux(at_last["i"], next_bh_q, down_h[0])),
                                 tap_h_r.eq(Mux(at_last["i"], next_bh_r, down_h[1]))]
                with m.If(inc["j"]):
                    m.d.sync += [tap_w_q.eq(Mux(at_last["j"], next_bw_q, down_w[0])),
                                 tap_w_r.eq(Mux(at_last["j"], next_bw_r, down_w[1]))]
                with m.If(final):
                    m.d.sync += state.eq(_State.DRAIN)
                with m.Elif(is_bias & inc["ol"]):
                    m.d.sync += state.eq(_State.BIAS)
            with m.Case(_State.DRAIN), m.If(self.done):
                m.d.sync += state.eq(_State.IDLE)

        # -- MAC stage ------------------------------------------------------------------------------------
        s1_valid, s1_zero, s1_first, s1_last = Signal(), Signal(), Signal(), Signal()
        s1_tap_first, s1_tap_last, s1_final, s1_bias = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [s1_valid.eq(issue), s1_zero.eq(zero), s1_first.eq(red_first), s1_last.eq(red_last),
                     s1_tap_first.eq(tap_first), s1_tap_last.eq(tap_last), s1_final.eq(issue & final),
                     s1_bias.eq(state == _State.BIAS)]
        bias = Signal(signed(acc_width))
        with m.If(s1_bias):
            m.d.sync += bias.eq(read1.data << numerics.activation_frac)
        accumulator = Signal(signed(acc_width))
        outer = Signal(signed(wide))
        start_value = Signal(signed(acc_width))
        with m.If(is_bias):
            m.d.comb += start_value.eq(bias)
        with m.Elif(is_carry):
            m.d.comb += start_value.eq(acc_read.data[:acc_width].as_signed())
        product = Signal(signed(2 * in_width))
        m.d.comb += product.eq(Mux(s1_zero, 0, read0.data * read1.data))
        total = Signal(signed(acc_width + 1))
        m.d.comb += total.eq(Mux(s1_first, start_value, accumulator) + product)
        updated = Signal(signed(acc_width))
        if mac.overflow == "wrap":
            m.d.comb += updated.eq(total[:acc_width].as_signed())
        else:
            low, high = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
            m.d.comb += updated.eq(Mux(total > high, high, Mux(total < low, low, total)))
        outer_sum = Signal(signed(wide))
        m.d.comb += outer_sum.eq(Mux(s1_tap_first, 0, outer) + updated)

        s2_valid, s2_final = Signal(), Signal()
        result = Signal(signed(wide))
        m.d.sync += [s2_valid.eq(0), s2_final.eq(0)]
        with m.If(s1_valid):
            m.d.sync += accumulator.eq(updated)
            with m.If(s1_last):
                m.d.sync += outer.eq(outer_sum)
                with m.If(~is_data | s1_tap_last):
                    m.d.sync += [result.eq(Mux(is_data, outer_sum, updated)), s2_valid.eq(1), s2_final.eq(s1_final)]

        # -- write stage: requantize --------------------------------------------------------------------
        shift = Signal(5)
        m.d.comb += shift.eq(fld("imm")[:5])
        extended = Signal(signed(wide + 32))
        m.d.comb += extended.eq(result)
        floor = Signal(signed(wide))
        m.d.comb += floor.eq(result >> shift)
        remainder = Signal(32)
        m.d.comb += remainder.eq(extended.as_unsigned() & ((Const(1, 33) << shift) - 1))
        half = Signal(32)
        m.d.comb += half.eq((Const(1, 33) << shift) >> 1)
        rounding = numerics.rounding
        if rounding == "floor":
            up = Const(0, 1)
        elif rounding == "half_up":
            up = remainder >= half
        elif rounding == "half_even":
            up = (remainder > half) | ((remainder == half) & floor[0])
        else:
            up = (remainder > half) | ((remainder == half) & (result >= 0))
        rounded = Signal(signed(wide + 1))
        m.d.comb += rounded.eq(floor + Mux(shift == 0, 0, up))
        low, high = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
        requantized = Signal(signed(in_width))
        m.d.comb += requantized.eq(Mux(rounded > high, high, Mux(rounded < low, low, rounded)))

        out_index = Signal(unsigned(address_bits))
        with m.If(state == _State.IDLE):
            m.d.sync += out_index.eq(0)
        with m.If(s2_valid):
            m.d.sync += out_index.eq(out_index + 1)
            with m.If(is_weight):
                m.d.comb += [self.acc_write.en.eq(1), self.acc_write.addr.eq(fld("dst") + out_index),
                             self.acc_write.data.eq(result)]
            with m.Else():
                m.d.comb += [self.scratch_write.en.eq(1), self.scratch_write.addr.eq(fld("dst") + out_index),
                             self.scratch_write.data.eq(requantized)]
        m.d.comb += self.done.eq(s2_valid & s2_final)
        return m
