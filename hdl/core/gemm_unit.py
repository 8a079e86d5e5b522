"""The WaveCore GEMM unit: every ``GEMM`` function code as multiply-accumulate loops over ``lanes`` channels at
once, bit-exact with :meth:`wavecore.golden.core.simulator.Simulator._op_gemm` (``golden/integer.py``
``conv_forward`` / ``conv_backward`` through :class:`~wavecore.golden.numerics.MacArithmetic` and
:func:`~wavecore.golden.numerics.requantize`).

**Interface**: :class:`~wavecore.hdl.core.compute_unit.ComputeUnitSignature` (read its docstring). Geometry from
the SHAPE word: x is (N, C, H, W), the weight (O, C/G, KH, KW), y / dy (N, O, OH, OW), all dense NCHW at element
addresses; a linear layer is a 1x1 convolution on 1x1 maps.

**Function codes** (every addition wraps or saturates to ``acc_width`` bits as ``numerics.mac.overflow`` says,
in the golden GEMM's order: its reduction index ascending):

* ``forward`` / ``forward_bias``: y[n, o, oh, ow] = requantize(start + sum over (c, i, j) ascending of
  w[o, c, i, j] * x[n, g*C/G + c, oh*SH + i - PH, ow*SW + j - PW]), start = bias[o] << activation_frac
  (``forward_bias``, bias at src2) or 0. The taps in the padding are skipped: their products are zero and adding
  zero changes nothing in either overflow mode.
* ``backward_data``: dx[n, g*C/G + c, h, w] = requantize(exact sum over the taps (i, j) with h + PH - i = oh*SH,
  w + PW - j = ow*SW, 0 <= oh < OH, 0 <= ow < OW of T(i, j)), T = sum over the group's output channels o
  ascending of w[o, c, i, j] * dy[n, o, oh, ow] with the overflow rule (the golden ``W^T dY`` GEMM, then
  ``col2im`` summing exactly, here in ``acc_width + 8`` bits).
* ``backward_weight`` / ``backward_weight_accumulate``: dW[o, c, i, j] (accumulator memory at dst) = start +
  sum over (n, oh, ow) ascending of dy[n, o, oh, ow] * x[n, g*C/G + c, oh*SH + i - PH, ow*SW + j - PW],
  start = the accumulator's dW (``_accumulate``: the sum carried from the previous sub-batch) or 0.

Requantization (``forward*``, ``backward_data``): shift by ``imm`` bits [4:0] (the simulator accepts only
``imm = weight_frac``) with ``numerics.rounding``, then saturate to the operand format.

**Lanes**: the unit computes up to ``lanes`` (default ``parameters.cols``) channels of one group in parallel,
one MAC per lane per cycle: output channels for ``forward*`` and ``backward_weight*``, input channels for
``backward_data``. Per tile of lanes it first copies each lane's *slice* of the operand that does not change
along the outputs it computes into a local buffer of ``buffer_depth`` elements per lane (FILL, one element per
cycle on ``scratch_read1``): the weights w[o, :, :, :] (S = C/G*KH*KW) for ``forward*``, w[:, c, :, :]
(S = O/G*KH*KW) for ``backward_data``, dy[:, o, :, :] (S = N*OH*OW) for ``backward_weight*``. Then one read of
the shared operand on ``scratch_read0`` (x, dy, x) feeds every lane. When S > ``buffer_depth`` the unit runs
*direct*: one lane, both operands read from the scratchpad each cycle (no FILL). When a reduction ends, its
lanes' results are written one per cycle while the next reduction runs.

**Timing** (cycles from ``start`` to ``done``, as :func:`~wavecore.verif.compute_bench.check_unit` counts them;
:func:`unit_cycles` computes it): ``SETUP_CYCLES`` (= 24: a 12-step restoring division for C/G, O/G, PH/SH, PW/SW, one
cycle for the instruction's products, one to prime the counters, and the pipeline's 10 stages) + ``read_latency`` - 1
(the pipeline's fill: the reads' data comes that much later) + the issue cycles + the lanes of the last tile (its last
writes). With P = lanes (1 when direct), Cg = C/G, Og = O/G, K = Cg*KH*KW, Q = N*OH*OW, tiles of L = min(P, channels
left) lanes (T = ceil(Og / P) tiles, ``backward_data``: ceil(Cg / P)), the issue cycles are, per tile: FILL L*S (not
when direct), BIAS L (``forward_bias``), and per output position: CARRY L (``backward_weight_accumulate``) + the
reduction's steps (``forward*``: Cg*th*tw, th = the taps of the window of row oh inside the input, likewise tw; Cg when
th*tw = 0; ``backward_weight*``: Q; ``backward_data``: KH*KW + (Og - 1)*vh*vw at pixel (h, w), vh = the taps i that
reach an output row from h, likewise vw: a tap that reaches no output takes one cycle, a valid one Og). The last step of
a reduction is issued at least L' cycles after the previous reduction's last step (L' = its lanes, whose writes must be
done first). Without such stalls (every reduction at least as long as its lanes), in closed form (R = ``read_latency``):

* ``forward*``: 23 + R + G * (Og*K [FILL] + Og [``forward_bias``] + T*N*Cg*TH*TW) + L_last, TH = sum of th over the
  output rows (likewise TW), when no window lies wholly in the padding;
* ``backward_weight*``: 23 + R + G * (Og*Q [FILL] + T*K*Q + K*Og [``_accumulate``]) + L_last;
* ``backward_data``: 23 + R + G * (Cg*Og*KH*KW [FILL] + T*N*(H*W*KH*KW + (Og - 1)*VH*VW)) + L_last, VH = sum of vh over
  the rows (likewise VW).

Pipeline (built for a fast clock: at most one multiplier between two registers): issue (the loop counters -> the terms
of each address) -> ``ADDRESS_STAGES`` (= 4) stages computing every element address ((t0 * f1 + t1) * f2 + t2) * f3 + t3
as t0 * F1 + t1 * F2 + t2 * F3 + t3 (modulo the address width; F1 = f1*f2*f3, F2 = f2*f3, F3 = f3 registered per
instruction; t3 is a counter plus the tensor's base address, an instruction field): the terms registered; the products
(one 18x18 multiplier each: F2 and F3 are as wide as their values, t0 * F1 is two: F1's low 17 bits and the rest) and
t3's sum; two sums; the address (the reads are presented from these registers); the step's zero flag (a tap in the
padding: no read) is computed in the first of these stages from the pixel and tap pair registered at issue ->
``read_latency`` - 1 stages that delay what travels beside the reads (the step's flags, the buffer and output addresses;
none at ``read_latency`` 1), ending where the local buffers are read -> ``MAC_STAGES`` (= 3): read data (the
scratchpad's and the buffers'); operands registered (FILL writes the buffer); products registered; accumulate (the
overflow rule) -> ``OUTER_STAGES`` (= 1): the outer sum and the lanes' results registered from the accumulator
registers -> ``WRITE_STAGES`` (= 2): shift and rounding decision registered (the shift's mask and half are
registered per instruction); add, saturate, write (``done`` in the cycle of the last write). The read latency moves
every stage after the reads by the same cycles, so the distances between steps stay those of the issue: a buffer read
issued after the FILL write of its element still sees it (the buffers' read port is transparent), the lanes of a
reduction are written before the next reduction's results replace them (the stall above), and a CARRY reads its
accumulator element before the reduction writes it. An instruction reads no element it has written (each output element
is written once, after its reduction's reads and its CARRY), and the previous instruction's writes were all presented by
its ``done``. The loop control never multiplies and keeps carry chains off the loop ends: the decoded function code is
registered, and so are the states it tests (FILL, BIAS or CARRY, COMPUTE: one-hot flags beside the state); the window
origin oh*SH - PH (likewise for ow) is a running register in a queue of registers that holds the next origin's window
(first tap, empty, taps, taps - 1) computed in advance from the origin after it (registered with its first tap, its last
tap + 1 and its first tap's pixel, computed from the origin after that, kept with its negation and its distance to the
input's end: one carry chain per register), so a loop end only moves the queue (the first tap's pixel, max(origin, 0),
is kept in it too: a forward pixel is one addition); ``forward``'s tap loops (ri, rj) have their ends registered, set at
a wrap from the window they wrap to; the tile's remaining channels and whether it is the last are registered with the
tile, the lane's channel (tile + lane) is a running register and the lane loop ends at lane P - 1 or the group's last
channel; the backward_data tap pairs are counted, whether a pair reaches an output is registered beside it (computed
from the pairs it is updated from) and stride - 1 per instruction; whether the last reduction's writes are still more
than one cycle away is registered with their count; the ends of the reduction, of the output position and of the tile
are flat ANDs of registered loop ends (the function class is one-hot); KH*KW, OH*OW, H*W, C*H*W, O*OH*OW and the slice
lengths are computed once per instruction. Ports: ``scratch_read0`` and ``scratch_read1`` (operands, bias), ``acc_read``
(the carry), ``scratch_write`` (``forward*``, ``backward_data``), ``acc_write`` (``backward_weight*``). Hardware:
``lanes`` multipliers and accumulators, ``lanes`` buffer memories of ``buffer_depth`` operands, 14 address multipliers,
a 12-bit restoring divider per quotient.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import enum, wiring
from amaranth.lib.memory import Memory

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import IntegerTraining
from wavecore.hdl.core import decoder
from wavecore.hdl.core.compute_unit import (
    READ_LATENCY,
    ComputeUnitSignature,
    check_read_latency,
    check_unit_arguments,
    delay,
    element_widths,
    shape_field,
)

__all__ = ["ADDRESS_STAGES", "BUFFER_DEPTH", "MAC_STAGES", "OUTER_STAGES", "SETUP_CYCLES", "WRITE_STAGES", "GemmUnit",
           "unit_cycles"]

#: Bits of the restoring divider (the widest shape field divided: channels, out_channels).
_DIVIDER_BITS = 12
#: Extra accumulator bits of the backward-data col2im sum (up to 15 x 15 taps).
_TAP_BITS = 8
#: Pipeline stages that compute a step's element addresses from the loop counters (operands, then three
#: multiply-adds in Horner form, one multiplier between registers each).
ADDRESS_STAGES = 4
#: Pipeline stages from the read data to the accumulators (operands registered, product registered, add).
MAC_STAGES = 3
#: Pipeline stages after the accumulate: the outer sum (``backward_data``'s sum over output channels) and the
#: lanes' results registered from the accumulator registers.
OUTER_STAGES = 1
#: Pipeline stages of the write (requantization: shift and round registered, then add and saturate).
WRITE_STAGES = 2
#: Fixed cycles of every instruction: division, the instruction's products, priming, pipeline.
SETUP_CYCLES = _DIVIDER_BITS + 2 + ADDRESS_STAGES + MAC_STAGES + OUTER_STAGES + WRITE_STAGES
#: Default local buffer elements per lane.
BUFFER_DEPTH = 2048

_FUNCTS = isa.FUNCTS["GEMM"]


def _taps_hit_at(position: int, out_size: int, kernel: int, stride: int, padding: int) -> int:
    """Taps of one axis that reach an output from ``position``: position + padding - tap = stride * out with
    0 <= out < out_size."""
    count = 0
    for tap in range(kernel):
        t = position + padding - tap
        if t >= 0 and t % stride == 0 and t // stride < out_size:
            count += 1
    return count


def _window_taps(out: int, size: int, kernel: int, stride: int, padding: int) -> int:
    """Taps of one axis of output ``out``'s window that fall inside the input (not in the padding)."""
    first = out * stride - padding
    return max(0, min(kernel, size - first) - max(0, -first))


def _runs(steps: list) -> list:
    """``[(steps, count)]``: runs of equal consecutive values."""
    runs = []
    for value in steps:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return runs


def _slice_length(funct: str, shape: Shape) -> int:
    s = shape
    if funct.startswith("forward"):
        return s["channels"] // s["groups"] * s["kernel_height"] * s["kernel_width"]
    if funct == "backward_data":
        return s["out_channels"] // s["groups"] * s["kernel_height"] * s["kernel_width"]
    return s["samples"] * s["out_height"] * s["out_width"]


def unit_cycles(instruction: isa.Instruction, shape: Shape, parameters: CoreParameters, *, lanes: int | None = None,
                buffer_depth: int = BUFFER_DEPTH, read_latency: int = READ_LATENCY) -> int:
    """Cycles from ``start`` to ``done`` of one GEMM instruction (the model of the module docstring) on a
    unit built with ``lanes`` (default ``parameters.cols``), ``buffer_depth`` and ``read_latency``."""
    s = shape
    n, c, h, w = s["samples"], s["channels"], s["height"], s["width"]
    o, oh, ow = s["out_channels"], s["out_height"], s["out_width"]
    kh, kw, groups = s["kernel_height"], s["kernel_width"], s["groups"]
    cg, og = c // groups, o // groups
    k, q = cg * kh * kw, n * oh * ow
    funct = instruction.funct
    length = _slice_length(funct, shape)
    direct = length > buffer_depth
    lanes = 1 if direct else (lanes or parameters.cols)
    channels = cg if funct == "backward_data" else og
    tiles = [min(lanes, channels - first) for first in range(0, channels, lanes)]
    if funct.startswith("forward"):
        rows = [_window_taps(y, h, kh, s["stride_height"], s["padding_height"]) for y in range(oh)]
        columns = [_window_taps(x, w, kw, s["stride_width"], s["padding_width"]) for x in range(ow)]
        reductions = _runs([cg * (rows[y] * columns[x] or 1) for y in range(oh) for x in range(ow)] * n)
    elif funct == "backward_data":
        rows = [_taps_hit_at(y, oh, kh, s["stride_height"], s["padding_height"]) for y in range(h)]
        columns = [_taps_hit_at(x, ow, kw, s["stride_width"], s["padding_width"]) for x in range(w)]
        steps = [kh * kw + (og - 1) * rows[y] * columns[x] for y in range(h) for x in range(w)]
        reductions = _runs(steps * n)
    else:
        reductions = [(q, k)]
    issued, last_end, last_lanes = 0, None, 0
    for _ in range(groups):
        for active in tiles:
            issued += active * length * (not direct) + active * (funct == "forward_bias")  # FILL, BIAS
            for steps, count in reductions:
                steps += active * (funct == "backward_weight_accumulate")  # CARRY
                issued += steps
                if last_end is not None:  # a reduction's last step waits for the previous lanes' writes
                    issued = max(issued, last_end + last_lanes)
                issued += (count - 1) * max(steps, active)
                last_end, last_lanes = issued, active
    return SETUP_CYCLES + check_read_latency(read_latency) - 1 + issued + last_lanes


class _State(enum.Enum, shape=4):
    IDLE = 0
    SETUP = 1
    PRODUCTS = 2
    PRIME = 3
    FILL = 4
    BIAS = 5
    CARRY = 6
    COMPUTE = 7
    DRAIN = 8


class _Kind(enum.Enum, shape=3):
    """What a step in the pipeline does."""

    NONE = 0
    FILL = 1
    START = 2  # a lane's starting value: bias (forward_bias) or carry (backward_weight_accumulate)
    MAC = 3


class GemmUnit(wiring.Component):
    """The GEMM compute unit (see the module docstring).

    Parameters
    ----------
    parameters : CoreParameters
        ``in_width`` and ``acc_width`` must be the numerics' MAC widths; ``cols`` is the default lane count.
    numerics : IntegerTraining
        Overflow rule, rounding, ``activation_frac`` (the bias shift).
    lanes : int
        Channels computed in parallel (1 to 256; default ``parameters.cols``).
    buffer_depth : int
        Local operand buffer elements per lane (1 to 65536; default 2048: every slice of tiny_resnet at
        sub-batch 8 fits).
    read_latency : int
        Cycles from a read's ``en`` to its ``data`` (1 to 3, default :data:`READ_LATENCY`): what travels beside
        the reads is delayed ``read_latency - 1`` more stages.
    """

    def __init__(self, parameters: CoreParameters, numerics: IntegerTraining, *, lanes: int | None = None,
                 buffer_depth: int = BUFFER_DEPTH, read_latency: int = READ_LATENCY):
        check_unit_arguments(parameters, numerics, read_latency)
        mac = numerics.mac
        if (mac.in_width, mac.acc_width) != (parameters.in_width, parameters.acc_width):
            raise ValueError(f"numerics MAC widths {mac.in_width}/{mac.acc_width} must equal the parameters' "
                             f"in_width/acc_width {parameters.in_width}/{parameters.acc_width}")
        widths = element_widths(parameters)
        if mac.in_width > widths["scratchpad"] or mac.acc_width > widths["accumulator"]:
            raise ValueError("the MAC widths must fit the scratchpad and accumulator elements")
        lanes = parameters.cols if lanes is None else lanes
        if not isinstance(lanes, int) or not 1 <= lanes <= 256:
            raise ValueError(f"lanes must be an integer between 1 and 256, not {lanes!r}")
        if not isinstance(buffer_depth, int) or not 1 <= buffer_depth <= 65536:
            raise ValueError(f"buffer_depth must be an integer between 1 and 65536, not {buffer_depth!r}")
        self.parameters, self.numerics, self.lanes, self.buffer_depth = parameters, numerics, lanes, buffer_depth
        self.read_latency = read_latency
        super().__init__(ComputeUnitSignature(parameters))

    def elaborate(self, platform):
        m = Module()
        numerics, mac = self.numerics, self.numerics.mac
        in_width, acc_width = mac.in_width, mac.acc_width
        wide = acc_width + _TAP_BITS
        P = self.lanes
        ins, shp = self.instruction, self.shape

        def fld(name):
            return decoder.field(ins, name, "compute")

        def geo(name):
            return shape_field(shp, name)

        funct = decoder.field(ins, "funct")
        # the decoded function code, registered (valid from the cycle after start; nothing reads it earlier)
        is_fwd, is_bias, is_data, is_weight, is_carry = (Signal(name=f"is_{n}") for n in (
            "fwd", "bias", "data", "weight", "carry"))
        m.d.sync += [is_fwd.eq((funct == _FUNCTS["forward"][0]) | (funct == _FUNCTS["forward_bias"][0])),
                     is_bias.eq(funct == _FUNCTS["forward_bias"][0]),
                     is_data.eq(funct == _FUNCTS["backward_data"][0]),
                     is_weight.eq((funct == _FUNCTS["backward_weight"][0])
                                  | (funct == _FUNCTS["backward_weight_accumulate"][0])),
                     is_carry.eq(funct == _FUNCTS["backward_weight_accumulate"][0])]

        N, C, H, W = geo("samples"), geo("channels"), geo("height"), geo("width")
        O, OH, OW = geo("out_channels"), geo("out_height"), geo("out_width")
        KH, KW, SH, SW = geo("kernel_height"), geo("kernel_width"), geo("stride_height"), geo("stride_width")
        PH, PW, G = geo("padding_height"), geo("padding_width"), geo("groups")

        state = Signal(_State)
        # the states the loop control tests, one-hot, registered with the state
        in_fill, in_lanes, in_compute = Signal(), Signal(), Signal()  # FILL; BIAS or CARRY; COMPUTE
        in_setup = Signal()  # SETUP: the divider steps (not behind the state's decode)

        def go(value):
            m.d.sync += [state.eq(value), in_fill.eq(value == _State.FILL), in_compute.eq(value == _State.COMPUTE),
                         in_lanes.eq((value == _State.BIAS) | (value == _State.CARRY)),
                         in_setup.eq(value == _State.SETUP)]
        step_count = Signal(range(_DIVIDER_BITS + 1))

        # -- restoring dividers: C/G, O/G, PH/SH, PW/SW -----------------------------------------------------
        divisions = []
        for name, numerator, denominator in (("cg", C, G), ("og", O, G), ("ph", PH, SH), ("pw", PW, SW)):
            quotient = Signal(_DIVIDER_BITS, name=f"{name}_quotient")
            remainder = Signal(_DIVIDER_BITS + 1, name=f"{name}_remainder")
            divisions.append((quotient, remainder, numerator, denominator))
        (cg, _, _, _), (og, _, _, _), (ph_q, ph_r, _, _), (pw_q, pw_r, _, _) = divisions

        # -- tiles and lanes --------------------------------------------------------------------------------
        direct = Signal()  # the slice does not fit the buffer: one lane, operands straight from the scratchpad
        tile = Signal(12)  # first channel (within the group) of the current tile of lanes
        tile_limit = Mux(is_data, cg, og)
        remaining = Signal(13)  # tile_limit - tile, registered with the tile (set in PRIME)
        active = Signal(range(P + 1))  # lanes of this tile
        m.d.comb += active.eq(Mux(direct, 1, Mux(remaining > P, P, remaining)))
        tile_last = Signal()  # remaining <= the lanes of a tile, registered with the tile
        single_tile = Signal()  # tile_last of the first tile (PRIME)
        lane_channel = Signal(13)  # the lane's channel within the group: tile + lane, a running register

        # -- loop counters ----------------------------------------------------------------------------------
        # forward: the taps of output (oh, ow) inside the input, i_lo <= i < i_hi (likewise j), counted by ri, rj
        # (a window wholly in the padding is one zero step)
        oh_count, ow_count = Signal(8), Signal(8)
        # oh*SH - PH, ow*SW - PW: running registers that follow the oh and ow counters (no multiplier); per axis,
        # registered with the origin (row0, col0) it follows: the first tap inside the input (i_lo), whether none
        # is (empty) and how many are (taps). See window_queue below: the next origin's values wait in registers.
        row0, col0 = Signal(signed(14)), Signal(signed(14))
        i_lo, j_lo = Signal(signed(14)), Signal(signed(14))
        row_first, col_first = Signal(13), Signal(13)  # the first tap's pixel: origin + first tap = max(origin, 0)
        row_empty, col_empty = Signal(), Signal()
        row_taps, col_taps = Signal(4), Signal(4)
        row_taps_last, col_taps_last = Signal(4), Signal(4)  # taps - 1 (the ri, rj loops' last values)
        # the next origin's empty and taps - 1 (the queue's second entry)
        row_next_empty, col_next_empty = Signal(), Signal()
        row_next_taps_last, col_next_taps_last = Signal(4), Signal(4)

        window_empty = Signal()
        m.d.comb += window_empty.eq(row_empty | col_empty)
        taps_h, taps_w = Signal(4), Signal(4)
        m.d.comb += [taps_h.eq(Mux(window_empty, 1, row_taps)), taps_w.eq(Mux(window_empty, 1, col_taps))]
        limits = {"g": G, "lane": active, "n": N, "ol": og, "cl": cg, "oh": OH, "ow": OW, "h": H, "w": W,
                  "i": KH, "j": KW, "ri": taps_h, "rj": taps_w}
        counters = {name: Signal(max(1, len(limit)), name=f"{name}_count") for name, limit in limits.items()}
        counters["oh"], counters["ow"] = oh_count, ow_count
        at_last = {name: Signal(name=f"{name}_last") for name in limits}
        last_values, before_lasts = {}, {}
        inc = {name: Signal(name=f"{name}_inc") for name in limits}
        for name, limit in limits.items():
            # lane: below, from the lane's channel (no carry chain on the tile's lanes); ri, rj: limits that change
            # with the window, at_last registered below
            if name in ("lane", "ri", "rj"):
                continue
            # the instruction's: limit - 1 and limit - 2 registered (valid from PRIME on; og, cg from the dividers);
            # at_last is a register set in PRIME and moved with the counter (below)
            last_value = Signal(len(limit), name=f"{name}_last_value")
            before_last = Signal(len(limit) + 1, name=f"{name}_before_last")
            m.d.sync += [last_value.eq(limit - 1), before_last.eq(limit - 2)]
            last_values[name], before_lasts[name] = last_value, before_last
        # the tile's last lane: lane P - 1 or the group's last channel (tile_limit - 1), one lane when direct
        m.d.comb += at_last["lane"].eq(direct | (counters["lane"] == P - 1)
                                       | (lane_channel == Mux(is_data, last_values["cl"], last_values["ol"])))
        c = counters
        c_base = Signal(12)  # g * C/G
        o_base = Signal(12)  # g * O/G
        # backward_data: h + PH - i = tap_h_q * SH + tap_h_r (base pair: i = 0), likewise for w
        pair_bits = 10
        base_h_q, base_w_q, tap_h_q, tap_w_q = (Signal(signed(pair_bits), name=nm)
                                                 for nm in ("base_h_q", "base_w_q", "tap_h_q", "tap_w_q"))
        base_h_r, base_w_r, tap_h_r, tap_w_r = (Signal(4, name=nm)
                                                 for nm in ("base_h_r", "base_w_r", "tap_h_r", "tap_w_r"))
        # whether a pair reaches an output (remainder 0, quotient inside the output): registered with the pairs
        # (tap_valid_h: of tap_h, likewise), computed from the registers the pair is updated from
        tap_valid_h, tap_valid_w, base_valid_h, base_valid_w = (Signal(name=nm) for nm in (
            "tap_valid_h", "tap_valid_w", "base_valid_h", "base_valid_w"))
        tap_valid = Signal()
        m.d.comb += tap_valid.eq(tap_valid_h & tap_valid_w)
        ol_last = Signal()  # the ol loop's end (backward_data's reduction: an invalid tap is one step)
        m.d.comb += ol_last.eq(at_last["ol"] | (is_data & in_compute & ~tap_valid))

        ol_end = Signal()  # ol_last in COMPUTE
        m.d.comb += ol_end.eq(at_last["ol"] | ~tap_valid)

        def nest(names, carry, ol_flag=ol_last):
            """Carry chain of the loop nest ``names`` (outermost first) into ``inc``; returns its end."""
            for name in reversed(names):
                m.d.comb += inc[name].eq(carry)
                carry = carry & (ol_flag if name == "ol" else at_last[name])
            return carry

        def all_of(names):
            value = Const(1, 1)
            for name in names:
                value = value & (ol_end if name == "ol" else at_last[name])
            return value

        fill_end, reduction_end, lanes_end, spatial_end, tile_end = (
            Signal(name=nm) for nm in ("fill_end", "reduction_end", "lanes_end", "spatial_end", "tile_end"))
        red_first, red_last, tap_first, tap_last = Signal(), Signal(), Signal(), Signal()
        stall = Signal()
        draining = Signal(range(P + 1))  # cycles until the lanes of the last reduction are written (+ 1)
        draining_more = Signal()  # draining > 1, registered with it
        m.d.comb += lanes_end.eq(at_last["lane"])
        with m.If(in_fill):
            with m.If(is_fwd):
                m.d.comb += fill_end.eq(nest(["lane", "cl", "i", "j"], 1))
            with m.Elif(is_weight):
                m.d.comb += fill_end.eq(nest(["lane", "n", "oh", "ow"], 1))
            with m.Else():
                m.d.comb += fill_end.eq(nest(["lane", "ol", "i", "j"], 1))
        with m.Elif(in_lanes):
            nest(["lane"], 1)
        with m.Elif(in_compute):
            # the last step of a reduction waits until the lanes of the previous one are written; the ends are
            # flat ANDs of the registered loop ends (the function class is one-hot), the nests give the incs
            classes = ((["cl", "ri", "rj"], ["n", "oh", "ow"], is_fwd),
                       (["n", "oh", "ow"], ["cl", "i", "j"], is_weight),
                       (["i", "j", "ol"], ["n", "h", "w"], is_data))
            red_all, spatial_all = Signal(), Signal()
            m.d.comb += [red_all.eq(Cat(*(cond & all_of(names) for names, _, cond in classes)).any()),
                         spatial_all.eq(Cat(*(cond & all_of(spatial) for _, spatial, cond in classes)).any())]
            m.d.comb += [stall.eq(red_all & draining_more), reduction_end.eq(red_all & ~draining_more),
                         spatial_end.eq(red_all & ~draining_more & spatial_all),
                         tile_end.eq(red_all & ~draining_more & spatial_all & tile_last & at_last["g"])]
            for names, spatial, condition in classes:
                with m.If(condition):
                    nest(names, ~stall, ol_end)
                    nest(spatial, reduction_end)
            nest(["g"], spatial_end & tile_last)
        with m.If(is_fwd):
            m.d.comb += [red_first.eq((c["cl"] == 0) & (c["ri"] == 0) & (c["rj"] == 0)),
                         red_last.eq(at_last["cl"] & at_last["ri"] & at_last["rj"])]
        with m.Elif(is_weight):
            m.d.comb += [red_first.eq((c["n"] == 0) & (c["oh"] == 0) & (c["ow"] == 0)),
                         red_last.eq(at_last["n"] & at_last["oh"] & at_last["ow"])]
        with m.Else():
            m.d.comb += [red_first.eq(c["ol"] == 0), red_last.eq(ol_end),
                         tap_first.eq((c["i"] == 0) & (c["j"] == 0)), tap_last.eq(at_last["i"] & at_last["j"])]

        # the instruction's products, one multiplier between registers: KH*KW, OH*OW, H*W while the dividers
        # run (and C*H*W, O*OH*OW from those), then the slice lengths in PRODUCTS
        kernel_taps, out_pixels, in_pixels = Signal(8), Signal(16), Signal(16)
        channel_pixels, out_channel_pixels = Signal(28), Signal(28)  # C*H*W, O*OH*OW
        slice_fwd, slice_data, slice_weight = Signal(20), Signal(20), Signal(24)
        m.d.sync += [kernel_taps.eq(KH * KW), out_pixels.eq(OH * OW), in_pixels.eq(H * W),
                     channel_pixels.eq(C * in_pixels), out_channel_pixels.eq(O * out_pixels)]
        with m.If(state == _State.PRODUCTS):
            m.d.sync += [slice_fwd.eq(cg * kernel_taps), slice_data.eq(og * kernel_taps),
                         slice_weight.eq(N * out_pixels)]

        # -- addresses of the current step: terms at issue, ADDRESS_STAGES registered stages ---------------------
        # Every element address is ((t0 * f1 + t1) * f2 + t2) * f3 + t3 = t0 * F1 + t1 * F2 + t2 * F3 + t3 (modulo
        # the address width) with F1 = f1 * f2 * f3, F2 = f2 * f3, F3 = f3: the terms t come from the loop counters
        # in the issue cycle, the factors F are the instruction's (registered in PRIME, from the products above).
        # The pipeline registers the terms, then the three products (one multiplier each), then two sums, then the
        # address; everything else the step carries is delayed alongside (``delay``).
        address_bits = len(self.scratch_read0.addr)
        channel = Signal(12)  # x's channel: g * C/G + cl
        out_channel = Signal(12)  # dy's channel in backward_data: g * O/G + ol
        group_lane = Signal(13)  # o_base + lane_channel
        m.d.comb += [channel.eq(c_base + c["cl"]), out_channel.eq(o_base + c["ol"]),
                     group_lane.eq(o_base + lane_channel)]
        tap_i, tap_j = Signal(5), Signal(5)  # the kernel tap of x's pixel (forward: within the input)
        pixel_h = Signal(signed(14))
        pixel_w = Signal(signed(14))
        with m.If(is_fwd & in_compute):  # (one adder each: the first tap's pixel registered)
            m.d.comb += [tap_i.eq(i_lo + c["ri"]), tap_j.eq(j_lo + c["rj"]),
                         pixel_h.eq(row_first + c["ri"]), pixel_w.eq(col_first + c["rj"])]
        with m.Else():
            m.d.comb += [tap_i.eq(c["i"]), tap_j.eq(c["j"]), pixel_h.eq(row0 + c["i"]), pixel_w.eq(col0 + c["j"])]
        buffer_bits = len(Signal(range(self.buffer_depth)))
        # name -> (bits, terms per funct class (forward*, backward_weight*, backward_data))
        addresses = {
            # scratch_read0 in COMPUTE: x[n, channel, pixel] (forward*, backward_weight*), dy (backward_data)
            "shared": (address_bits, (
                (c["n"], channel, pixel_h[:8], pixel_w[:8], fld("src0")),
                (c["n"], channel, pixel_h[:8], pixel_w[:8], fld("src1")),
                (c["n"], out_channel, tap_h_q[:8], tap_w_q[:8], fld("src0")))),
            # scratch_read1 in FILL (and COMPUTE when direct): the lane's slice
            "slice": (address_bits, (
                (group_lane, c["cl"], tap_i, tap_j, fld("src1")),
                (c["n"], group_lane, c["oh"], c["ow"], fld("src0")),
                (out_channel, lane_channel, c["i"], c["j"], fld("src1")))),
            # the local buffer: FILL writes it, COMPUTE reads it (the first factor is unused)
            "buffer": (buffer_bits, (
                (0, c["cl"], tap_i, tap_j, 0),
                (0, c["n"], c["oh"], c["ow"], 0),
                (0, c["ol"], c["i"], c["j"], 0))),
            # the lane's output (CARRY reads it; lane 0's in COMPUTE: where the write starts)
            "out": (address_bits, (
                (c["n"], group_lane, c["oh"], c["ow"], fld("dst")),
                (group_lane, c["cl"], c["i"], c["j"], fld("dst")),
                (c["n"], c_base + lane_channel, c["h"], c["w"], fld("dst")))),
        }
        # name -> factors (F1, F2, F3) per funct class, i.e. the products of (f1, f2, f3): (C, H, W), (O, OH, OW),
        # (C/G, KH, KW); the buffer's f1 is 0
        chw = (channel_pixels, in_pixels, W)
        ohw, khw = (out_channel_pixels, out_pixels, OW), (slice_fwd, kernel_taps, KW)
        factor_table = {
            "shared": (chw, chw, ohw),
            "slice": (khw, ohw, khw),
            "buffer": ((0, *khw[1:]), (0, *ohw[1:]), (0, *khw[1:])),
            "out": (ohw, khw, chw),
        }
        # F2 and F3 as wide as their values (one 18x18 multiplier each, no partial products to add)
        factors = {name: [Signal(bits if k == 0 else min(bits, max(len(Value.cast(values[k]))
                                                                    for values in factor_table[name])),
                                 name=f"{name}_f{k + 1}") for k in range(3)]
                   for name, (bits, _) in addresses.items()}
        # the terms t0..t3 are counters and channels (narrow: t0..t2 one multiplier input), t4 is the base address
        # (an instruction field), added to t3 in the products' stage
        terms = {name: [Signal(bits if k == 4 else min(bits, max(len(Value.cast(values[k])) for values in per_class)),
                               name=f"{name}_t{k}") for k in range(5)]
                 for name, (bits, per_class) in addresses.items()}
        for name, (_, per_class) in addresses.items():
            for condition, values in zip((is_fwd, is_weight, is_data), per_class, strict=True):
                with m.If(condition):
                    m.d.comb += [term.eq(value) for term, value in zip(terms[name], values, strict=True)]
        with m.If(state == _State.BIAS):  # the bias element of the lane: src2 + o_base + lane_channel
            m.d.comb += [terms["slice"][0].eq(0), terms["slice"][1].eq(0), terms["slice"][2].eq(0),
                         terms["slice"][3].eq(group_lane), terms["slice"][4].eq(fld("src2"))]

        def element_address(name):
            """The address ``name`` after ADDRESS_STAGES stages: terms; products (t0 * F1 as two, F1's low 17 bits
            and the rest: one 18x18 multiplier each) and t3 + t4; two sums; their sum."""
            bits = addresses[name][0]
            stage = [Signal.like(term, name=f"{name}_a0_t{k}") for k, term in enumerate(terms[name])]
            m.d.sync += [register.eq(term) for register, term in zip(stage, terms[name], strict=True)]
            f1, f2, f3 = factors[name]
            products = [Signal(bits, name=f"{name}_a1_p{k}") for k in range(4)]
            high = Signal(max(1, bits - 17), name=f"{name}_a1_high")  # t0 * F1[17:], to be shifted by 17
            delayed = Signal(bits, name=f"{name}_a1_t3")
            m.d.sync += [products[0].eq(stage[0] * f1[:17]), products[1].eq(stage[1] * f2),
                         products[2].eq(stage[2] * f3), high.eq(stage[0] * f1[17:]),
                         delayed.eq(stage[3] + stage[4])]
            sums = [Signal(bits, name=f"{name}_a2_s{k}") for k in range(3)]
            m.d.sync += [sums[0].eq(products[0] + products[1]), sums[1].eq(products[2] + delayed),
                         sums[2].eq(high << 17)]
            address = Signal(bits, name=f"{name}_a3")
            m.d.sync += address.eq(sums[0] + sums[1] + sums[2])
            return address

        shared_address, slice_address, buffer_address, out_address = (
            element_address(name) for name in ("shared", "slice", "buffer", "out"))
        out_stride = Signal(address_bits)  # from one lane's output to the next (registered in PRIME)
        # whether the step's product is zero (a tap in the padding): from the pixel and the tap pair registered
        # at issue (with the terms), one stage later
        issued_pixel_h, issued_pixel_w = Signal.like(pixel_h), Signal.like(pixel_w)
        issued_tap_valid, issued_window_empty = Signal(), Signal()
        m.d.sync += [issued_pixel_h.eq(pixel_h), issued_pixel_w.eq(pixel_w), issued_tap_valid.eq(tap_valid),
                     issued_window_empty.eq(window_empty)]
        issued_pixel_valid = ((issued_pixel_h >= 0) & (issued_pixel_h < H)
                              & (issued_pixel_w >= 0) & (issued_pixel_w < W))
        zero = Signal()
        m.d.comb += zero.eq(Mux(is_data, ~issued_tap_valid, ~issued_pixel_valid | (is_fwd & issued_window_empty)))

        # -- issue: what the step does; presented ADDRESS_STAGES cycles later ------------------------------
        kind = Signal(_Kind)
        enables = Signal(4)  # scratch_read0, scratch_read1, acc_read, the local buffers
        with m.Switch(state):
            with m.Case(_State.FILL):
                m.d.comb += [kind.eq(_Kind.FILL), enables.eq(0b0010)]
            with m.Case(_State.BIAS):
                m.d.comb += [kind.eq(_Kind.START), enables.eq(0b0010)]
            with m.Case(_State.CARRY):
                m.d.comb += [kind.eq(_Kind.START), enables.eq(0b0100)]
            with m.Case(_State.COMPUTE):
                with m.If(~stall):
                    m.d.comb += [kind.eq(_Kind.MAC), enables.eq(0b1011)]  # reads 0, 1 dropped below if zero
                with m.Else():
                    m.d.comb += enables.eq(0b1000)
        issued = delay(m, Cat(kind, c["lane"], red_first, red_last, tap_first, tap_last, active, tile_end, enables),
                       1, "issued")
        kind_bits = len(kind.as_value())
        issued_kind, issued_enables = issued[:kind_bits], issued[-len(enables):]
        scratch_enables = Mux(issued_kind == _Kind.MAC.value, Cat(~zero, direct & ~zero), issued_enables[:2])
        flags = Cat(issued_kind, issued[kind_bits : kind_bits + len(c["lane"])], zero,
                    issued[kind_bits + len(c["lane"]) : -len(enables)], scratch_enables, issued_enables[2:])
        presented = delay(m, flags, ADDRESS_STAGES - 1, "step")
        read_enables = presented[-len(enables):]  # the ports' enables, with the addresses of the last stage
        # the step beside its reads: read_latency - 1 more stages, to the cycle before its read data arrives (the
        # local buffers are read there, so that their data arrives with the scratchpad's)
        beside = delay(m, Cat(presented, buffer_address, out_address), self.read_latency - 1, "beside")
        p_kind, p_lane, p_zero, p_first, p_last, p_tap_first, p_tap_last, p_lanes, p_final, p_enables = (
            Signal.like(kind, name="p_kind"), Signal.like(c["lane"], name="p_lane"), Signal(name="p_zero"),
            Signal(name="p_first"), Signal(name="p_last"), Signal(name="p_tap_first"), Signal(name="p_tap_last"),
            Signal.like(active, name="p_lanes"), Signal(name="p_final"), Signal(4, name="p_enables"))
        p_buffer_address = Signal.like(buffer_address, name="p_buffer_address")
        p_out_address = Signal.like(out_address, name="p_out_address")
        m.d.comb += Cat(p_kind, p_lane, p_zero, p_first, p_last, p_tap_first, p_tap_last, p_lanes, p_final,
                        p_enables, p_buffer_address, p_out_address).eq(beside)

        # -- local operand buffers --------------------------------------------------------------------------
        buffer_data = []
        buffer_writes = []
        for lane in range(P):
            memory = Memory(shape=signed(in_width), depth=self.buffer_depth, init=[])
            m.submodules[f"buffer{lane}"] = memory
            write = memory.write_port()
            read = memory.read_port(transparent_for=(write,))
            m.d.comb += [read.addr.eq(p_buffer_address), read.en.eq(p_enables[3])]
            buffer_data.append(read.data)
            buffer_writes.append(write)

        read0, read1, acc_read = self.scratch_read0, self.scratch_read1, self.acc_read
        m.d.comb += [read0.en.eq(read_enables[0]), read0.addr.eq(shared_address),
                     read1.en.eq(read_enables[1]), read1.addr.eq(slice_address),
                     acc_read.en.eq(read_enables[2]), acc_read.addr.eq(out_address)]

        # -- control ----------------------------------------------------------------------------------------
        # the tap pairs (q, r): position = q * stride + r, 0 <= r < stride; stride - 1 registered per instruction
        stride_h_last, stride_w_last = Signal(4), Signal(4)
        m.d.sync += [stride_h_last.eq(SH - 1), stride_w_last.eq(SW - 1)]

        def pair_up(q, r, stride_last):
            return Mux(r == stride_last, q + 1, q), Mux(r == stride_last, 0, r + 1)

        def pair_down(q, r, stride_last):
            return Mux(r == 0, q - 1, q), Mux(r == 0, stride_last, r - 1)

        def pair_valid(q, r, out_size):
            """Whether the pair reaches an output: remainder 0, 0 <= q < out_size."""
            nonnegative = (q >= 0) if Value.cast(q).shape().signed else Const(1, 1)  # (no constant comparison)
            return (r == 0) & nonnegative & (q < out_size)

        def pair_valid_up(q, r, stride_last, out_last):
            """pair_valid of the pair after (q, r), without computing it."""
            return (r == stride_last) & (q >= -1) & (q < out_last)

        def pair_valid_down(q, r, stride_last, out_size):
            """pair_valid of the pair before (q, r), without computing it."""
            return Mux(r == 0, (stride_last == 0) & (q >= 1) & (q <= out_size), (r == 1) & (q >= 0) & (q < out_size))

        def begin_tile(skip_fill):
            with m.If(~skip_fill):
                go(_State.FILL)
            with m.Elif(is_bias):
                go(_State.BIAS)
            with m.Else():
                begin_output()

        def begin_output():
            go(Mux(is_carry, _State.CARRY, _State.COMPUTE))

        slice_length = Signal(24)
        m.d.comb += slice_length.eq(Mux(is_fwd, slice_fwd, Mux(is_data, slice_data, slice_weight)))
        for name, counter in counters.items():
            last = ol_last if name == "ol" else at_last[name]
            with m.If(inc[name]):
                m.d.sync += counter.eq(Mux(last, 0, counter + 1))
                if name in last_values:
                    m.d.sync += at_last[name].eq(Mux(last, last_values[name] == 0, counter == before_lasts[name]))
        # forward's ri, rj: at_last (window_empty | counter == taps - 1: an empty window's loop has one step) is a
        # register set in PRIME and moved with the counter; the window changes only when ri and rj wrap (the
        # reduction's end moves the ow queue, and the oh queue at ow's end), so a wrap takes the next window's
        # values when the queue moves, the current ones otherwise
        new_empty = (Mux(inc["oh"], row_next_empty, row_empty) | Mux(inc["ow"], col_next_empty, col_empty))
        for name, taps_last, next_taps_last, axis in (("ri", row_taps_last, row_next_taps_last, "oh"),
                                                       ("rj", col_taps_last, col_next_taps_last, "ow")):
            with m.If(state == _State.PRIME):
                m.d.sync += at_last[name].eq(window_empty | (taps_last == 0))
            with m.Elif(inc[name]):
                m.d.sync += at_last[name].eq(Mux(at_last[name],
                                                 new_empty | Mux(inc[axis], next_taps_last == 0, taps_last == 0),
                                                 counters[name] + 1 == taps_last))
        with m.If(inc["lane"]):  # (the tile does not change in a lane loop)
            m.d.sync += lane_channel.eq(Mux(at_last["lane"], tile, lane_channel + 1))

        def window_queue(axis, size, kernel, stride, padding, current):
            """The window origins of one axis (``oh``/``ow``) as a queue of registers: ``current`` (origin, first
            tap, empty, taps, taps - 1, the first tap's pixel: what the issue uses; then the next origin's empty and
            taps - 1, which the ri/rj loop ends read), the next origin's values, the origin after that with its
            first tap, its last tap + 1 and its first tap's pixel, and the origin after that with its negation, its
            distance to the input's end and its position, from which they are computed (no carry chain from the
            loop's end to the window's values; one carry chain per entry). The queue moves with the counter and three
            times in SETUP (priming it); an instruction starts it at -padding."""
            origin, low, empty, taps, taps_last, first_pixel, n_empty, n_taps_last = current
            n_origin, n_low, n_taps, n_first_pixel = (
                Signal.like(v, name=f"{axis}_next_{n}") for v, n in (
                    (origin, "origin"), (low, "low"), (taps, "taps"), (first_pixel, "first_pixel")))
            f_origin, f_negated, f_room = (Signal(signed(15), name=f"{axis}_far_{n}") for n in (
                "origin", "negated", "room"))
            f_position = Signal.like(counters[axis], name=f"{axis}_far_position")
            f_last = Signal(name=f"{axis}_far_last")
            m.d.comb += f_last.eq(f_position == last_values[axis])
            size_padded = Signal(15, name=f"{axis}_size_padded")
            m.d.sync += size_padded.eq(size + padding)
            m_origin, m_first, m_end = (Signal(signed(15), name=f"{axis}_mid_{n}") for n in ("origin", "first", "end"))
            m_first_pixel = Signal.like(first_pixel, name=f"{axis}_mid_first_pixel")
            advance = inc[axis] | ((state == _State.SETUP) & (step_count < 3))
            with m.If(advance):
                m.d.sync += [origin.eq(n_origin), low.eq(n_low), empty.eq(n_empty), taps.eq(n_taps),
                             taps_last.eq(n_taps_last), first_pixel.eq(n_first_pixel), n_origin.eq(m_origin),
                             n_first_pixel.eq(m_first_pixel), n_low.eq(m_first), n_empty.eq(m_end <= m_first),
                             n_taps.eq(m_end - m_first), n_taps_last.eq(m_end - m_first - 1),
                             m_origin.eq(f_origin), m_first_pixel.eq(Mux(f_origin[-1], 0, f_origin)),
                             m_first.eq(Mux(f_origin[-1], f_negated, 0)),
                             m_end.eq(Mux(f_room < kernel, f_room, kernel)),
                             f_origin.eq(Mux(f_last, -padding, f_origin + stride)),
                             f_negated.eq(Mux(f_last, padding, f_negated - stride)),
                             f_room.eq(Mux(f_last, size_padded, f_room - stride)),
                             f_position.eq(Mux(f_last, 0, f_position + 1))]
            with m.If((state == _State.IDLE) & self.start):
                m.d.sync += [f_origin.eq(-padding), f_negated.eq(padding), f_room.eq(size + padding),
                             f_position.eq(0)]

        window_queue("oh", H, KH, SH, PH, (row0, i_lo, row_empty, row_taps, row_taps_last, row_first, row_next_empty,
                                           row_next_taps_last))
        window_queue("ow", W, KW, SW, PW, (col0, j_lo, col_empty, col_taps, col_taps_last, col_first, col_next_empty,
                                           col_next_taps_last))
        with m.If(inc["g"]):
            m.d.sync += [c_base.eq(Mux(at_last["g"], 0, c_base + cg)), o_base.eq(Mux(at_last["g"], 0, o_base + og))]

        # backward_data tap pairs: base pairs follow h, w, tap pairs i, j
        next_bh_q, next_bh_r = Signal.like(base_h_q), Signal.like(base_h_r)
        next_bw_q, next_bw_r = Signal.like(base_w_q), Signal.like(base_w_r)
        up_h, up_w = pair_up(base_h_q, base_h_r, stride_h_last), pair_up(base_w_q, base_w_r, stride_w_last)
        m.d.comb += [next_bh_q.eq(base_h_q), next_bh_r.eq(base_h_r), next_bw_q.eq(base_w_q), next_bw_r.eq(base_w_r)]
        with m.If(inc["h"]):
            m.d.comb += [next_bh_q.eq(Mux(at_last["h"], ph_q, up_h[0])), next_bh_r.eq(Mux(at_last["h"], ph_r, up_h[1]))]
        with m.If(inc["w"]):
            m.d.comb += [next_bw_q.eq(Mux(at_last["w"], pw_q, up_w[0])), next_bw_r.eq(Mux(at_last["w"], pw_r, up_w[1]))]
        down_h, down_w = pair_down(tap_h_q, tap_h_r, stride_h_last), pair_down(tap_w_q, tap_w_r, stride_w_last)
        next_bh_valid, next_bw_valid = Signal(), Signal()
        m.d.comb += [next_bh_valid.eq(base_valid_h), next_bw_valid.eq(base_valid_w)]
        up_valid_h = pair_valid_up(base_h_q, base_h_r, stride_h_last, last_values["oh"])
        up_valid_w = pair_valid_up(base_w_q, base_w_r, stride_w_last, last_values["ow"])
        with m.If(inc["h"]):
            m.d.comb += next_bh_valid.eq(Mux(at_last["h"], pair_valid(ph_q, ph_r, OH), up_valid_h))
        with m.If(inc["w"]):
            m.d.comb += next_bw_valid.eq(Mux(at_last["w"], pair_valid(pw_q, pw_r, OW), up_valid_w))

        with m.Switch(state):
            with m.Case(_State.IDLE), m.If(self.start):
                go(_State.SETUP)
                m.d.sync += [step_count.eq(0), c_base.eq(0), o_base.eq(0), tile.eq(0),
                             lane_channel.eq(0)]
                m.d.sync += [counter.eq(0) for counter in counters.values()]
                for quotient, remainder, numerator, _ in divisions:
                    m.d.sync += [quotient.eq(numerator), remainder.eq(0)]
            with m.Case(_State.SETUP):  # the divider steps under in_setup (below)
                m.d.sync += step_count.eq(step_count + 1)
                with m.If(step_count == _DIVIDER_BITS - 1):
                    go(_State.PRODUCTS)
            with m.Case(_State.PRODUCTS):
                go(_State.PRIME)
        with m.If(in_setup):  # one restoring-division step per cycle of SETUP
            for quotient, remainder, _, denominator in divisions:
                shifted = Signal(_DIVIDER_BITS + 1)
                m.d.comb += shifted.eq((remainder << 1) | quotient[-1])
                with m.If(shifted >= denominator):
                    m.d.sync += [remainder.eq(shifted - denominator), quotient.eq((quotient << 1) | 1)]
                with m.Else():
                    m.d.sync += [remainder.eq(shifted), quotient.eq(quotient << 1)]
        with m.Switch(state):
            with m.Case(_State.PRIME):
                is_direct = slice_length > self.buffer_depth
                for name, per_class in factor_table.items():
                    for condition, values in zip((is_fwd, is_weight, is_data), per_class, strict=True):
                        with m.If(condition):
                            m.d.sync += [f.eq(v) for f, v in zip(factors[name], values, strict=True)]
                m.d.sync += out_stride.eq(Mux(is_fwd, out_pixels, Mux(is_data, in_pixels, slice_fwd)))
                m.d.sync += [base_h_q.eq(ph_q), base_h_r.eq(ph_r), tap_h_q.eq(ph_q), tap_h_r.eq(ph_r),
                             base_w_q.eq(pw_q), base_w_r.eq(pw_r), tap_w_q.eq(pw_q), tap_w_r.eq(pw_r),
                             direct.eq(is_direct)]
                m.d.sync += [base_valid_h.eq(pair_valid(ph_q, ph_r, OH)), tap_valid_h.eq(pair_valid(ph_q, ph_r, OH)),
                             base_valid_w.eq(pair_valid(pw_q, pw_r, OW)), tap_valid_w.eq(pair_valid(pw_q, pw_r, OW))]
                m.d.sync += [at_last[name].eq(last_values[name] == 0) for name in last_values]  # every counter at 0
                first_tile_last = Mux(is_direct, tile_limit <= 1, tile_limit <= P)
                m.d.sync += [remaining.eq(tile_limit), tile_last.eq(first_tile_last), single_tile.eq(first_tile_last)]
                begin_tile(is_direct)
            with m.Case(_State.FILL), m.If(fill_end):
                with m.If(is_bias):
                    go(_State.BIAS)
                with m.Else():
                    begin_output()
            with m.Case(_State.BIAS), m.If(lanes_end):
                begin_output()
            with m.Case(_State.CARRY), m.If(lanes_end):
                go(_State.COMPUTE)
            with m.Case(_State.COMPUTE):
                with m.If(inc["i"]):
                    m.d.sync += [tap_h_q.eq(Mux(at_last["i"], base_h_q, down_h[0])),
                                 tap_h_r.eq(Mux(at_last["i"], base_h_r, down_h[1])),
                                 tap_valid_h.eq(Mux(at_last["i"], base_valid_h,
                                                    pair_valid_down(tap_h_q, tap_h_r, stride_h_last, OH)))]
                with m.If(inc["j"]):
                    m.d.sync += [tap_w_q.eq(Mux(at_last["j"], base_w_q, down_w[0])),
                                 tap_w_r.eq(Mux(at_last["j"], base_w_r, down_w[1])),
                                 tap_valid_w.eq(Mux(at_last["j"], base_valid_w,
                                                    pair_valid_down(tap_w_q, tap_w_r, stride_w_last, OW)))]
                with m.If(reduction_end):
                    m.d.sync += [base_h_q.eq(next_bh_q), base_h_r.eq(next_bh_r), tap_h_q.eq(next_bh_q),
                                 tap_h_r.eq(next_bh_r), base_w_q.eq(next_bw_q), base_w_r.eq(next_bw_r),
                                 tap_w_q.eq(next_bw_q), tap_w_r.eq(next_bw_r), base_valid_h.eq(next_bh_valid),
                                 tap_valid_h.eq(next_bh_valid), base_valid_w.eq(next_bw_valid),
                                 tap_valid_w.eq(next_bw_valid)]
                    with m.If(tile_end):
                        go(_State.DRAIN)
                    with m.Elif(spatial_end):
                        next_tile = Mux(tile_last, 0, tile + Mux(direct, 1, P))
                        m.d.sync += [tile.eq(next_tile), lane_channel.eq(next_tile),
                                     remaining.eq(Mux(tile_last, tile_limit, remaining - Mux(direct, 1, P))),
                                     tile_last.eq(Mux(tile_last, single_tile,
                                                      Mux(direct, remaining <= 2, remaining <= 2 * P)))]
                        begin_tile(direct)
                    with m.Else():
                        begin_output()
            with m.Case(_State.DRAIN), m.If(self.done):
                go(_State.IDLE)

        # -- MAC pipeline: s1 (read data), s2 (operands registered), s3 (products registered), accumulate ----
        s1_kind = Signal(_Kind)
        s1_lane = Signal.like(c["lane"])
        s1_buffer_address = Signal.like(buffer_address)
        m.d.sync += [s1_kind.eq(p_kind), s1_lane.eq(p_lane), s1_buffer_address.eq(p_buffer_address)]
        for lane, write in enumerate(buffer_writes):
            m.d.comb += [write.addr.eq(s1_buffer_address), write.data.eq(read1.data),
                         write.en.eq((s1_kind == _Kind.FILL) & (s1_lane == lane))]
        has_start = Signal()  # forward_bias or backward_weight_accumulate, registered
        m.d.sync += has_start.eq((funct == _FUNCTS["forward_bias"][0])
                                 | (funct == _FUNCTS["backward_weight_accumulate"][0]))
        starts = Array(Signal(signed(acc_width), name=f"start{lane}") for lane in range(P))
        results = Array(Signal(signed(wide), name=f"result{lane}") for lane in range(P))
        # a lane's starting value is read in s1 and written at the accumulate stage, in step order with the MACs
        start_value = Signal(signed(acc_width))
        m.d.comb += start_value.eq(Mux(is_bias, read1.data << numerics.activation_frac,
                                       acc_read.data[:acc_width].as_signed()))
        start_step = delay(m, Cat(start_value, s1_lane, s1_kind == _Kind.START), MAC_STAGES - 1, "start")
        with m.If(start_step[-1]):
            m.d.sync += starts[start_step[acc_width:-1]].eq(start_step[:acc_width].as_signed())
        # the step's flags at the accumulate stage (MAC_STAGES after they were presented)
        step = Cat(p_kind, p_zero, p_first, p_last, p_tap_first, p_tap_last, p_lanes, p_final, p_out_address)
        mac_step = delay(m, step, MAC_STAGES, "mac")
        a_kind, a_zero, a_first, a_last, a_tap_first, a_tap_last, a_final = (
            Signal.like(kind, name="a_kind"), *(Signal(name=f"a_{nm}") for nm in (
                "zero", "first", "last", "tap_first", "tap_last")), Signal(name="a_final"))
        a_lanes = Signal.like(active, name="a_lanes")
        a_out_address = Signal(address_bits, name="a_out_address")
        m.d.comb += Cat(a_kind, a_zero, a_first, a_last, a_tap_first, a_tap_last, a_lanes, a_final,
                        a_out_address).eq(mac_step)
        # the outer-sum stage's flags: a reduction's last MAC (its accumulator register now holds the sum)
        o_last, o_tap_first, o_tap_last = Signal(name="o_last"), Signal(name="o_tap_first"), Signal(name="o_tap_last")
        m.d.sync += [o_last.eq((a_kind == _Kind.MAC) & a_last), o_tap_first.eq(a_tap_first),
                     o_tap_last.eq(a_tap_last)]
        s2_zero = Signal()
        m.d.sync += s2_zero.eq(delay(m, p_zero, 1, "s1_zero"))
        shared_operand = Signal(signed(in_width))
        m.d.sync += shared_operand.eq(read0.data)
        low, high = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
        for lane in range(P):
            operand = Signal(signed(in_width), name=f"operand{lane}")
            m.d.sync += operand.eq(Mux(direct, read1.data, buffer_data[lane]))
            product = Signal(signed(2 * in_width), name=f"product{lane}")
            m.d.sync += product.eq(Mux(s2_zero, 0, shared_operand * operand))
            accumulator = Signal(signed(acc_width), name=f"accumulator{lane}")
            outer = Signal(signed(wide), name=f"outer{lane}")
            total = Signal(signed(acc_width + 1), name=f"total{lane}")
            m.d.comb += total.eq(Mux(a_first, Mux(has_start, starts[lane], 0), accumulator) + product)
            updated = Signal(signed(acc_width), name=f"updated{lane}")
            if mac.overflow == "wrap":
                m.d.comb += updated.eq(total[:acc_width].as_signed())
            else:
                m.d.comb += updated.eq(Mux(total > high, high, Mux(total < low, low, total)))
            with m.If(a_kind == _Kind.MAC):
                m.d.sync += accumulator.eq(updated)
            # the outer sum (backward_data's sum over output channels) one stage later, from the accumulator
            # register: the accumulate's saturation and this adder are not chained in one cycle
            outer_sum = Signal(signed(wide), name=f"outer_sum{lane}")
            m.d.comb += outer_sum.eq(Mux(o_tap_first, 0, outer) + accumulator)
            with m.If(o_last):
                m.d.sync += outer.eq(outer_sum)
                with m.If(~is_data | o_tap_last):
                    m.d.sync += results[lane].eq(Mux(is_data, outer_sum, accumulator))

        # -- drain: the lanes' results of a finished reduction, one per cycle, while the next one runs ------
        drain_lane = Signal.like(active)
        drain_left = Signal.like(active)
        drain_address = Signal(address_bits)
        drain_final = Signal()
        w1_valid, w1_final = Signal(), Signal()
        w1_address = Signal(address_bits)
        result = Signal(signed(wide))
        m.d.sync += w1_valid.eq(0)
        with m.If(drain_left != 0):
            m.d.sync += [w1_valid.eq(1), w1_final.eq(drain_final & (drain_left == 1)), w1_address.eq(drain_address),
                         result.eq(results[drain_lane]), drain_lane.eq(drain_lane + 1), drain_left.eq(drain_left - 1),
                         drain_address.eq(drain_address + out_stride)]
        o_lanes = Signal.like(a_lanes, name="o_lanes")
        o_out_address = Signal.like(a_out_address, name="o_out_address")
        o_final = Signal(name="o_final")
        m.d.sync += [o_lanes.eq(a_lanes), o_out_address.eq(a_out_address), o_final.eq(a_final)]
        with m.If(o_last & (~is_data | o_tap_last)):
            m.d.sync += [drain_lane.eq(0), drain_left.eq(o_lanes), drain_address.eq(o_out_address),
                         drain_final.eq(o_final)]
        with m.If(state == _State.IDLE):
            m.d.sync += [draining.eq(0), draining_more.eq(0), drain_left.eq(0)]
        with m.Elif(reduction_end):
            m.d.sync += [draining.eq(active), draining_more.eq(active > 1)]
        with m.Elif(draining != 0):
            m.d.sync += [draining.eq(draining - 1), draining_more.eq(draining > 2)]

        # -- write stages: requantize (shift and rounding decision registered, then add and saturate) -------
        shift = Signal(5)
        m.d.comb += shift.eq(fld("imm")[:5])
        extended = Signal(signed(wide + 32))
        m.d.comb += extended.eq(result)
        floor = Signal(signed(wide))
        m.d.comb += floor.eq(result >> shift)
        # the shift's mask, half and zero test registered per instruction (imm is stable from start to done)
        mask, half, shift_zero = Signal(32), Signal(32), Signal()
        m.d.sync += [mask.eq((Const(1, 33) << shift) - 1), half.eq((Const(1, 33) << shift) >> 1),
                     shift_zero.eq(shift == 0)]
        remainder = Signal(32)
        m.d.comb += remainder.eq(extended.as_unsigned() & mask)
        rounding = numerics.rounding
        if rounding == "floor":
            up = Const(0, 1)
        elif rounding == "half_up":
            up = remainder >= half
        elif rounding == "half_even":  # (floor's bit 0: the result's bit at the shift)
            up = (remainder > half) | ((remainder == half) & result.as_unsigned().bit_select(shift, 1))
        else:
            up = (remainder > half) | ((remainder == half) & (result >= 0))
        w2_valid, w2_final, w2_up = Signal(), Signal(), Signal()
        w2_address = Signal(address_bits)
        w2_result, w2_floor = Signal(signed(wide)), Signal(signed(wide))
        m.d.sync += [w2_valid.eq(w1_valid), w2_final.eq(w1_final), w2_address.eq(w1_address),
                     w2_result.eq(result), w2_floor.eq(floor), w2_up.eq(Mux(shift_zero, 0, up))]
        rounded = Signal(signed(wide + 1))
        m.d.comb += rounded.eq(w2_floor + w2_up)
        low, high = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
        requantized = Signal(signed(in_width))
        m.d.comb += requantized.eq(Mux(rounded > high, high, Mux(rounded < low, low, rounded)))

        with m.If(w2_valid):
            with m.If(is_weight):
                m.d.comb += [self.acc_write.en.eq(1), self.acc_write.addr.eq(w2_address),
                             self.acc_write.data.eq(w2_result)]
            with m.Else():
                m.d.comb += [self.scratch_write.en.eq(1), self.scratch_write.addr.eq(w2_address),
                             self.scratch_write.data.eq(requantized)]
        m.d.comb += self.done.eq(w2_valid & w2_final)
        return m
