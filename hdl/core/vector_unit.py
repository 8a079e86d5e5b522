"""The WaveCore vector unit: every function code of the VECTOR opcode (:data:`wavecore.golden.core.isa.FUNCTS`),
bit-exact with :meth:`wavecore.golden.core.simulator.Simulator._op_vector` and the kernels it calls
(:class:`wavecore.golden.integer.IntegerKernels`).

**Interface**: :class:`~wavecore.hdl.core.compute_unit.ComputeUnitSignature` (start/instruction/shape/done and
the element ports). ``instruction`` and ``shape`` are read combinationally while the instruction runs (the
interface holds them until ``done``).

**Read data** is registered as it arrives (:func:`~wavecore.hdl.core.compute_unit.arrived`): no logic (the
factor's multiplier, the read-modify-write's adder) sits between the core's lane select and the unit's registers,
and the unit works as one at read latency ``read_latency + 1``: ``L = read_latency + 1`` below is the cycles from
a read to its data in those registers.

**Structure**: a sequencer issues one *slot* per cycle: the reads of one element (``scratch_read0``,
``scratch_read1``, ``acc_read``) with tags (first/last of a group, write address), presented ``PRESENT_STAGES``
cycles later. The operand stage (the cycle the data arrives, ``L`` cycles after the reads are presented:
the tags wait ``L - 1`` registers more) registers the read data and the product of ``scratch_read0``'s
element with a factor; the result stage (one cycle later) combines them with a running register (sum, maximum and
its position); the requantizer stage (one cycle later) has the write of the last slot of a group, which the write
registers present in the next cycle (``WRITE_STAGES`` = 2: a write comes two cycles after the result stage, from
registers). One requantizer (shift with the numerics' rounding, saturation to the operand format) serves
``requantize`` (shift = imm) and the divisions of the average pools; its inputs are registers and it works in two
halves: the shifted value with its guard and sticky bits registered, then the rounding and the saturation (to the
write registers). A window of ``count`` elements is divided by a shift when ``count`` is a power of two, else by the
product with ``r = round(2**reciprocal_frac / count)`` shifted by ``reciprocal_frac`` (``IntegerKernels._divide``).
The factor is ``r`` (else 1), so a forward average sums ``x * r`` (exactly ``r * sum(x)``) in the result stage and
divides the registered sum (its shift registered in the late stage, one cycle after the requantizer stage); the
backward divides each dy (from the result stage: its share in the requantizer stage) and sums the registered shares
in the late stage. ``r`` comes from a restoring divider in a set-up phase (``reciprocal_frac + 2`` cycles).

Slots per function (X = N*C*H*W, Y = N*C*OH*OW, K = kernel_height*kernel_width):

* ``add_saturate``, ``add_exact``, ``relu`` (imm = limit, 0: none), ``relu_mask``, ``requantize``,
  ``channel_insert``, ``global_pool_backward``, ``channel_sum(_accumulate)``, ``global_pool_forward``: X;
  ``channel_extract``: N*out_channels*H*W.
* ``maxpool_forward``, ``avgpool_forward``: Y*K (one slot per window position; positions in the padding or
  beyond the input (ceil mode) are not read: -inf for the max, 0 for the average).
* ``maxpool_backward``: X (zero dx) + Y*(K+1) (+ (Y-1)*(L-K) when 1 < K < L, that is K = 2 or 3
  at L = 4): each window reads its K positions of x and its dy, finds the first maximum (row-major, as
  ``argmax``), then reads dx at that position and writes dx + dy (scatter-add in the scratchpad, modulo the
  element width, so only the final values must fit). The dx reads of consecutive windows are K + 1 cycles
  apart and a write comes L cycles after its read: for K < L the last position waits (empty slots) until L + 1
  cycles after the previous window's, so its dx read sees that write when both maxima are the same x (windows
  of K = 1 never share an x: no wait).
* ``avgpool_backward``: gather per input element: the windows covering it, one slot each (for each input
  element with ``ry = (iy+ph) mod sh``, ``rx = (ix+pw) mod sw``: ``ny*nx`` slots with ``ny = #{ky = ry,
  ry+sh, ... < kh}``, ``nx`` likewise, or 1 slot when there is none); the sum of the windows' shares is
  saturated once (col2im, then saturate).

**Ports**: ``scratch_read0`` reads the first source (x of ``maxpool_backward``, dy of the other backward pools);
``maxpool_backward`` reads its dy on ``scratch_read0`` too (in the gap slot after a window's K positions);
``scratch_read1`` reads the second source of ``add_*``/``relu_mask`` and, for ``maxpool_backward``, dx at the
window's maximum (read-modify-write: read two cycles after the result stage of the window's last position, the
address from a register, dx + dy written ``L`` cycles later, dy delayed to it); ``acc_read`` the
accumulator source of ``requantize`` and, for ``channel_sum_accumulate``, ``dst[c]`` with the first element of
channel c; ``acc_write`` only channel sums. A write is presented ``L + 3`` cycles after its last read
(``L + 4`` for ``avgpool_*`` and ``global_pool_forward``; ``maxpool_backward``: ``L``
after its dx read, ``2 * L + 2`` after its dy read), from registers (``maxpool_backward``'s dx + dy:
the read data plus a register); the last write in the ``done`` cycle, so ``instruction`` and ``shape`` must be
held through it. The function code, the sizes (products of shape fields) and the counters' bounds are registered
from the held words before the slots run (constant while an instruction runs), so every path runs from
registers: the longest are the requantizer's shift and the issue's window and gather counters. ``channel_insert``
writes only its channel slice (the rest of ``dst`` is untouched, as the simulator's result).

**Timing** (cycles from ``start`` to ``done`` as :func:`wavecore.verif.compute_bench.check_unit` counts them):
``9 + drain + late + setup + slots`` (:func:`unit_cycles`; 2 of the 9 are ``PREP_CYCLES``, in which the sizes,
products of the SHAPE fields, are registered: no multiplier chain from the SHAPE word; 3 are ``PRESENT_STAGES``,
the registers between the issue's counters and the ports: the counters' values, then the window or gather
offset's product (one multiplier) beside the source address plus the column, then the addresses; 2 are
``WRITE_STAGES``, the requantizer stage and the write registers between the result stage and the write), where
``drain`` is ``L - 1`` (the pipeline's fill: the read data comes that much later), twice that for
``maxpool_backward`` (its last write follows a second read, of dx), ``slots`` as above,
``late`` is 1 for ``avgpool_forward``, ``avgpool_backward`` and ``global_pool_forward`` (else 0) and ``setup`` is
0 except for the average pools (``avgpool_*``, ``global_pool_*``): ``1 + max(divider, divmod)`` with
``divider = reciprocal_frac + 2`` when the window size is not a power of two (else 0) and
``divmod = max(ph // sh, pw // sw)`` for ``avgpool_backward`` (else 0).

**Assumptions** (as the compiler emits): pools have out_channels = channels and out_height/out_width equal to
the golden output size (``conv_output_size``, floor for the average pool, ``ceil_mode`` for the max pool);
global pools have out_height = out_width = 1; ``dst`` does not overlap the sources except element for element
(element-wise functions); sums fit the accumulator format (the golden model's results fit their elements,
which :func:`check_unit` asserts). ``requantize`` takes any shift (imm): from 64 on it rounds down in every
mode, as the simulator's int64 arithmetic does.
"""

from __future__ import annotations

import contextlib

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import INTEGER_PRESETS, IntegerTraining
from wavecore.hdl.core.compute_unit import (
    ADDRESS_WIDTH,
    READ_LATENCY,
    ComputeUnitSignature,
    arrived,
    check_read_latency,
    check_unit_arguments,
    delay,
    element_widths,
    shape_field,
)
from wavecore.hdl.core.decoder import field
from wavecore.hdl.stream.window import round_up

__all__ = ["PREP_CYCLES", "PRESENT_STAGES", "WRITE_STAGES", "VectorUnit", "unit_cycles"]

#: Cycles after ``start`` in which the sizes (products of the SHAPE fields) are registered.
PREP_CYCLES = 2
#: Registered stages between the issue (counters -> addresses) and the ports.
PRESENT_STAGES = 3
#: Registered stages between the result stage and the write: the requantizer's shift, the write registers.
WRITE_STAGES = 2

FUNCT = {name: number for name, (number, _) in isa.FUNCTS["VECTOR"].items()}
_AVERAGE = ("avgpool_forward", "avgpool_backward", "global_pool_forward", "global_pool_backward")


def _conv_count(kh, sh, ry):
    """Window offsets ``ky = ry, ry + sh, ... < kh``."""
    return 0 if ry >= kh else (kh - 1 - ry) // sh + 1


def unit_cycles(instruction: isa.Instruction, shape: Shape, parameters: CoreParameters,
                numerics: IntegerTraining | None = None, *, read_latency: int = READ_LATENCY) -> int:
    """Cycles from ``start`` to ``done`` of one VECTOR instruction (the formula of the module docstring).

    ``numerics`` gives ``reciprocal_frac`` (default: the preset of ``parameters.in_width``, as
    :func:`wavecore.verif.compute_bench.numerics_for`); ``read_latency`` is the unit's.
    """
    latency = check_read_latency(read_latency) + 1  # the read data registered as it arrives
    wait = latency - 1
    if numerics is None:
        numerics = INTEGER_PRESETS["int8" if parameters.in_width <= 8 else "int16"]
    funct = instruction.funct
    n, c, h, w = shape["samples"], shape["channels"], shape["height"], shape["width"]
    oh, ow = shape["out_height"], shape["out_width"]
    kh, kw, sh, sw = shape["kernel_height"], shape["kernel_width"], shape["stride_height"], shape["stride_width"]
    ph, pw = shape["padding_height"], shape["padding_width"]
    x, y, k = n * c * h * w, n * c * oh * ow, kh * kw
    if funct == "channel_extract":
        slots = n * shape["out_channels"] * h * w
    elif funct in ("maxpool_forward", "avgpool_forward"):
        slots = y * k
    elif funct == "maxpool_backward":
        slots = x + y * (k + 1) + (max(y - 1, 0) * max(latency - k, 0) if k > 1 else 0)
    elif funct == "avgpool_backward":
        rows = [_conv_count(kh, sh, (iy + ph) % sh) for iy in range(h)]
        cols = [_conv_count(kw, sw, (ix + pw) % sw) for ix in range(w)]
        slots = n * c * sum(ny * nx if ny and nx else 1 for ny in rows for nx in cols)
    else:
        slots = x
    setup = 0
    if funct in _AVERAGE:
        count = k if funct.startswith("avgpool") else h * w
        divider = 0 if count & (count - 1) == 0 else numerics.reciprocal_frac + 2
        divmod_steps = max(ph // sh, pw // sw) if funct == "avgpool_backward" else 0
        setup = 1 + max(divider, divmod_steps)
    late = funct in ("avgpool_forward", "global_pool_forward", "avgpool_backward")
    drain = 2 * wait if funct == "maxpool_backward" else wait
    return 2 + PREP_CYCLES + PRESENT_STAGES + WRITE_STAGES + drain + late + setup + slots



def _requantizer(m: Module, value, shift, truncate, rounding: str, low: int, high: int, name: str):
    """``clip(round(value / 2**shift), low, high)`` with the golden rounding modes (``numerics._round_shift``);
    ``shift`` (unsigned) at most ``len(value) + 1``; ``truncate`` high: rounding down whatever the mode.

    Two halves: the shift (floor, guard and sticky bits) is registered (``<name>_floor``, ...: one cycle after
    ``value``, ``shift`` and ``truncate``); the rounding and saturation are combinational from those registers
    (the result: the cycle after its inputs). The saturation compares the floor with the limits (the rounding
    adds at most 1) and the rounding adds only the result's low bits."""
    width = len(value) + 2
    wide = Signal(signed(width), name=f"{name}_wide")
    m.d.comb += wide.eq(value)
    floor = Signal(signed(width), name=f"{name}_floor")
    guard = Signal(name=f"{name}_guard")
    sticky = Signal(name=f"{name}_sticky")
    negative = Signal(name=f"{name}_negative")
    down = Signal(name=f"{name}_truncate")
    m.d.sync += [
        floor.eq(wide >> shift),
        guard.eq((shift != 0) & wide.as_unsigned().bit_select((shift - 1)[: len(shift)], 1)),
        sticky.eq((wide.as_unsigned() & Cat(*(Const(k + 1) < shift for k in range(width)))).any()),
        negative.eq(wide[-1]),
        down.eq(truncate),
    ]
    up = round_up(rounding, guard, sticky, floor[0], negative)
    rounds_up = Signal(name=f"{name}_up")
    m.d.comb += rounds_up.eq(up & ~down)
    bits = max(low.bit_length(), high.bit_length()) + 1
    # floor + up > high (< low): floor above high (below low), or at high (low - 1) and rounded up
    k = high.bit_length()
    if high == 2**k - 1 and low == -(2**k):  # a two's complement format: bit tests, no carry chains
        negative_floor, upper_zero = floor[-1], ~floor[k:].any()
        low_ones = floor[:k].all()
        over = (~negative_floor & ~upper_zero) | (rounds_up & upper_zero & low_ones)
        under = (negative_floor & ~floor[k:].all()) & ~(rounds_up & floor[k + 1:].all() & ~floor[k] & low_ones)
    else:
        over = (floor > high) | (rounds_up & (floor == high))
        under = (floor < low) & ~(rounds_up & (floor == low - 1))
    rounded = Signal(signed(bits), name=f"{name}_rounded")  # floor + up, only its low bits (within the limits)
    m.d.comb += rounded.eq(floor[:bits] + rounds_up)
    result = Signal(signed(bits), name=name)
    m.d.comb += result.eq(Mux(over, high, Mux(under, low, rounded)))
    return result


class VectorUnit(wiring.Component):
    """The VECTOR unit (see the module docstring).

    Parameters
    ----------
    parameters : CoreParameters
        Element sizes (operand and accumulator bytes) of the ports.
    numerics : IntegerTraining
        The operand format (saturation), the rounding mode of every requantization and ``reciprocal_frac``.
    read_latency : int
        Cycles from a read's ``en`` to its ``data`` (1, 2 or 3; see the module docstring).
    """

    def __init__(self, parameters: CoreParameters, numerics: IntegerTraining, *,
                 read_latency: int = READ_LATENCY):
        check_unit_arguments(parameters, numerics, read_latency)
        widths = element_widths(parameters)
        if numerics.operand.width > widths["scratchpad"]:
            raise ValueError(f"the operand format ({numerics.operand.width} bits) must fit a scratchpad element "
                             f"({widths['scratchpad']} bits)")
        if numerics.mac.acc_width > widths["accumulator"]:
            raise ValueError(f"the accumulator format ({numerics.mac.acc_width} bits) must fit an accumulator "
                             f"element ({widths['accumulator']} bits)")
        self.parameters, self.numerics, self.read_latency = parameters, numerics, read_latency
        super().__init__(ComputeUnitSignature(parameters))

    def elaborate(self, platform):
        m = Module()
        widths = element_widths(self.parameters)
        op_bits, acc_bits = widths["scratchpad"], widths["accumulator"]
        fmt, rounding, recip_frac = self.numerics.operand, self.numerics.rounding, self.numerics.reciprocal_frac
        aw, cw = ADDRESS_WIDTH, ADDRESS_WIDTH + 2
        latency = self.read_latency + 1  # to the read data's registers (arrived)
        wait = latency - 1  # the read data's cycles beyond the first: registers beside every read
        read0, read1, read_acc = (arrived(m, port, name) for port, name in (
            (self.scratch_read0, "read0_data"), (self.scratch_read1, "read1_data"), (self.acc_read, "acc_data")))

        ins, shp = self.instruction, self.shape
        # the function code decoded into registered flags, one per function: valid from the cycle after start (the
        # first PREP cycle), so the decode of the held instruction is off every datapath
        funct_flags = {name: Signal(name=f"is_{name}") for name in FUNCT}
        m.d.sync += [flag.eq(field(ins, "funct") == FUNCT[name]) for name, flag in funct_flags.items()]

        def is_(*names):
            return funct_flags[names[0]] if len(names) == 1 else Cat(*(funct_flags[name] for name in names)).any()

        imm = field(ins, "imm", "compute")
        dst, src0, src1 = (field(ins, name, "compute") for name in ("dst", "src0", "src1"))
        n, c, h, w = (shape_field(shp, name) for name in ("samples", "channels", "height", "width"))
        oc, oh, ow = (shape_field(shp, name) for name in ("out_channels", "out_height", "out_width"))
        kh, kw, sh, sw, ph, pw = (shape_field(shp, name) for name in (
            "kernel_height", "kernel_width", "stride_height", "stride_width", "padding_height", "padding_width"))

        # -- sizes: registered products of the held shape word, one multiplier between registers; the first
        # row is valid one cycle after ``start``, the second two (the PREP states wait for them) -------------
        hw, chw, ochw, nc, ohw, x_all, window = (Signal(cw, name=name) for name in (
            "hw", "chw", "ochw", "nc", "ohw", "x_all", "window"))
        m.d.sync += [hw.eq(h * w), nc.eq(n * c), ohw.eq(oh * ow), window.eq(kh * kw)]
        m.d.sync += [chw.eq(c * hw), ochw.eq(oc * hw), x_all.eq(nc * hw)]

        is_add = is_("add_saturate", "add_exact")
        is_chsum = is_("channel_sum", "channel_sum_accumulate")
        is_window_fwd = is_("maxpool_forward", "avgpool_forward")
        is_maxbwd = is_("maxpool_backward")
        is_avgbwd = is_("avgpool_backward")
        is_average = is_(*_AVERAGE)
        is_sum_divided = is_("avgpool_forward", "global_pool_forward")
        is_late = is_sum_divided | is_avgbwd  # written from the late stage

        # -- divisor of the average pools: shift or reciprocal ------------------------------------------------
        # (count and pow2 registered: valid from the second PREP cycle, which takes pow2; the sizes and flags are
        # valid in the first; log2 from the count register)
        count_select = Signal(17)
        m.d.comb += count_select.eq(Mux(is_("avgpool_forward", "avgpool_backward"), window, hw))
        count, pow2 = Signal(17), Signal()
        m.d.sync += [count.eq(count_select), pow2.eq((count_select & (count_select - 1)) == 0)]
        log2 = Signal(range(18))
        for bit in range(17):
            with m.If(count[bit]):
                m.d.comb += log2.eq(bit)
        div_steps = recip_frac + 2
        div_left = Signal(range(div_steps + 1))
        div_rem = Signal(18)
        div_q = Signal(div_steps)
        reciprocal = Signal(recip_frac + 1)
        m.d.comb += reciprocal.eq((div_q + 1) >> 1)

        # ph // sh and pw // sw for the gather of avgpool_backward
        qy0, qx0 = Signal(5), Signal(5)
        ry0, rx0 = Signal(5), Signal(5)

        # -- state -------------------------------------------------------------------------------------------
        state = Signal(range(9))
        # PRESENT: the last issue's presentation, then the read latency's extra cycles (twice for
        # maxpool_backward, whose last write adds the dx read at the last window's maximum)
        present_wait = Signal(range(PRESENT_STAGES + WRITE_STAGES + 2 * wait))
        IDLE, SETUP, RUN, DRAIN, LATE, DONE, PREP_A, PREP_B, PRESENT = range(9)
        phase = Signal()  # maxpool_backward: 0 zeroing dx, 1 windows
        NEST, WINDOW, GATHER = range(3)
        # the counters that run (a register: set with the counters before the run, WINDOW when maxpool_backward's
        # windows begin)
        family = Signal(range(3))

        # nest (element streams and reductions): outer o, middle mi, inner i; offsets of reads and writes. The
        # counts and strides are selected from the sizes (valid in the second PREP cycle) and registered, the
        # counts as their last values (valid from the first RUN or SETUP cycle)
        n_o, n_m, n_i = Signal(cw, name="count_o"), Signal(cw, name="count_m"), Signal(cw, name="count_i")
        s_ro, s_rm, s_ri, s_wo, s_wm, s_wi = (Signal(cw, name=f"select_{name}") for name in (
            "ro", "rm", "ri", "wo", "wm", "wi"))
        roff0, woff0, channel_offset = Signal(cw), Signal(cw), Signal(cw)
        m.d.sync += channel_offset.eq(imm * hw)
        select_reduce = Signal()
        m.d.comb += [n_o.eq(1), n_m.eq(1), n_i.eq(x_all), s_ri.eq(1), s_wi.eq(1)]
        with m.If(is_("channel_insert")):
            m.d.comb += [n_o.eq(n), n_i.eq(chw), s_ro.eq(chw), s_wo.eq(ochw), woff0.eq(channel_offset)]
        with m.If(is_("channel_extract")):
            m.d.comb += [n_o.eq(n), n_i.eq(ochw), s_ro.eq(chw), s_wo.eq(ochw), roff0.eq(channel_offset)]
        with m.If(is_("global_pool_backward")):
            m.d.comb += [n_o.eq(nc), n_i.eq(hw), s_ro.eq(1), s_ri.eq(0), s_wo.eq(hw)]
        with m.If(is_chsum):
            m.d.comb += [n_o.eq(c), n_m.eq(n), n_i.eq(hw), s_ro.eq(hw), s_rm.eq(chw), s_wo.eq(1), s_wi.eq(0),
                         select_reduce.eq(1)]
        with m.If(is_("global_pool_forward")):
            m.d.comb += [n_o.eq(nc), n_i.eq(hw), s_ro.eq(hw), s_wo.eq(1), s_wi.eq(0), select_reduce.eq(1)]
        last_o, last_m, last_i = (Signal(cw, name=f"last_{name}") for name in ("o", "m", "i"))
        r_o, r_m, r_i, w_o, w_m, w_i = (Signal(cw, name=f"stride_{name}") for name in (
            "ro", "rm", "ri", "wo", "wm", "wi"))
        reduce = Signal()
        m.d.sync += [last_o.eq(n_o - 1), last_m.eq(n_m - 1), last_i.eq(n_i - 1), reduce.eq(select_reduce),
                     r_o.eq(s_ro), r_m.eq(s_rm), r_i.eq(s_ri), w_o.eq(s_wo), w_m.eq(s_wm), w_i.eq(s_wi)]
        # the last values of the window and gather counters, registered from the held shape (valid from the
        # second PREP cycle)
        last_kx, last_ky, last_ox, last_oy, last_ix, last_iy = (Signal(8, name=f"last_{name}") for name in (
            "kx", "ky", "ox", "oy", "ix", "iy"))
        last_plane = Signal(cw)
        # (gather: the next window offset ck + s is within the kernel while ck < k - s)
        kernel_x_less_stride, kernel_y_less_stride = Signal(signed(6)), Signal(signed(6))
        last_rx, last_ry = Signal(4), Signal(4)
        m.d.sync += [last_kx.eq(kw - 1), last_ky.eq(kh - 1), last_ox.eq(ow - 1), last_oy.eq(oh - 1),
                     last_ix.eq(w - 1), last_iy.eq(h - 1), last_plane.eq(nc - 1), last_rx.eq(sw - 1),
                     last_ry.eq(sh - 1),
                     kernel_x_less_stride.eq(kw - sw), kernel_y_less_stride.eq(kh - sh)]
        o, mi, i = Signal(cw), Signal(cw), Signal(cw)
        rd_outer, rd_mid, rd_cur = Signal(cw), Signal(cw), Signal(cw)
        wr_outer, wr_mid, wr_cur = Signal(cw), Signal(cw), Signal(cw)

        # window (pool forward, maxpool backward): plane, oy, ox, ky, kx, the gap slot of maxpool_backward
        plane, out_idx, plane_base = Signal(cw), Signal(cw), Signal(cw)
        oy, ox, ky, kx = Signal(8), Signal(8), Signal(4), Signal(4)
        gap = Signal()
        iy0, ix0 = Signal(signed(10)), Signal(signed(10))
        # the window's kernel offsets inside the input: -iy0 <= ky < h - iy0 (bounds counted beside iy0), likewise x
        ky_low, ky_high, kx_low, kx_high = (Signal(signed(12), name=name) for name in (
            "ky_low", "ky_high", "kx_low", "kx_high"))

        # gather (avgpool backward): plane, iy, ix with (q, r) = divmod(i + p, s); candidates (k, o)
        iy, ix = Signal(8), Signal(8)
        qy, qx = Signal(signed(11)), Signal(signed(11))
        ry, rx = Signal(5), Signal(5)
        cky, ckx = Signal(6), Signal(6)
        coy, cox = Signal(signed(11)), Signal(signed(11))
        # some window covers the input element: ry < kh and rx < kw, registered beside ry and rx (first_*: of
        # ry0, rx0, constant while the gather runs)
        has_y, has_x, first_has_y, first_has_x = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [first_has_y.eq(ry0 < kh), first_has_x.eq(rx0 < kw)]

        def init_run():
            return [o.eq(0), mi.eq(0), i.eq(0),
                    rd_outer.eq(roff0), rd_mid.eq(roff0), rd_cur.eq(roff0),
                    wr_outer.eq(woff0), wr_mid.eq(woff0), wr_cur.eq(woff0),
                    plane.eq(0), out_idx.eq(0), plane_base.eq(0), oy.eq(0), ox.eq(0), ky.eq(0), kx.eq(0),
                    gap.eq(0), iy0.eq(-ph), ix0.eq(-pw), phase.eq(0),
                    ky_low.eq(ph), ky_high.eq(h + ph), kx_low.eq(pw), kx_high.eq(w + pw),
                    family.eq(Mux(is_window_fwd, WINDOW, Mux(is_avgbwd, GATHER, NEST))),
                    iy.eq(0), ix.eq(0), qy.eq(qy0), ry.eq(ry0), qx.eq(qx0), rx.eq(rx0),
                    cky.eq(ry0), coy.eq(qy0), ckx.eq(rx0), cox.eq(qx0), has_y.eq(ry0 < kh), has_x.eq(rx0 < kw)]

        # -- issue stage (combinational from the counters) -------------------------------------------------
        i_active, i_rd0, i_rd1, i_acc = Signal(), Signal(), Signal(), Signal()
        i_rd0_addr, i_rd1_addr, i_acc_addr, i_wr_addr = (Signal(aw, name=name) for name in (
            "i_rd0_addr", "i_rd1_addr", "i_acc_addr", "i_wr_addr"))
        i_first, i_last, i_ws, i_wa, i_dx, i_final = (Signal(name=name) for name in (
            "i_first", "i_last", "i_ws", "i_wa", "i_dx", "i_final"))
        # window and gather reads: x's offset = row * (W or OW) + (plane base + column), formed a stage later
        i_row, i_column = Signal(signed(11)), Signal(cw)

        # maxpool_backward at read latency L: a window's dx read (the result stage of its last position) comes
        # L + 1 cycles or more after the previous window's (whose dx + dy is written L cycles after its read), so
        # it sees that write when both windows' maximum is the same x: the last position stalls (issues
        # nothing) while ``dx_hold`` (L after a dx issue, counting down) is not 0; only when 1 < K < L (windows
        # of one position never share an x)
        stall = None
        if wait:
            stall, dx_hold = Signal(), Signal(range(latency + 1))
        running = state == RUN if stall is None else (state == RUN) & ~stall
        m.d.comb += i_active.eq(running)
        with m.Switch(family):
            with m.Case(NEST):
                zeroing = is_maxbwd
                last_group = (mi == last_m) & (i == last_i)
                m.d.comb += [
                    i_first.eq(~reduce | ((mi == 0) & (i == 0))),
                    i_last.eq(~reduce | last_group),
                    i_final.eq(last_group & (o == last_o)),
                    i_rd0.eq(running & ~zeroing & ~is_("requantize")),
                    i_rd0_addr.eq(src0 + rd_cur),
                    i_rd1.eq(running & is_("add_saturate", "add_exact", "relu_mask")),
                    i_rd1_addr.eq(src1 + rd_cur),
                    i_acc.eq(running & (is_("requantize")
                                        | (is_("channel_sum_accumulate") & (mi == 0) & (i == 0)))),
                    i_acc_addr.eq(Mux(is_chsum, dst + wr_cur, src0 + rd_cur)),
                    i_wr_addr.eq(dst + wr_cur),
                ]
                m.d.comb += [i_ws.eq(i_last & ~is_chsum), i_wa.eq(i_last & is_chsum)]
            with m.Case(WINDOW):
                win_iy = Signal(signed(11))
                win_ix = Signal(signed(11))
                m.d.comb += [win_iy.eq(iy0 + ky), win_ix.eq(ix0 + kx)]
                inside = (ky >= ky_low) & (ky < ky_high) & (kx >= kx_low) & (kx < kx_high)
                last_pos = (kx == last_kx) & (ky == last_ky)
                if stall is not None:
                    m.d.comb += stall.eq((state == RUN) & is_maxbwd & last_pos & ~gap & (dx_hold != 0)
                                         & (window != 1))
                m.d.comb += [
                    i_row.eq(win_iy), i_column.eq(plane_base + win_ix),
                    i_rd0.eq(running & Mux(gap, is_maxbwd, inside)),  # the gap slot reads dy
                    i_rd0_addr.eq(src0 + out_idx),  # the gap slot's; the window's is formed a stage later
                    i_first.eq((kx == 0) & (ky == 0) & ~gap),
                    i_last.eq(last_pos & ~gap),
                    i_ws.eq(last_pos & ~gap & ~is_maxbwd),
                    i_dx.eq(last_pos & ~gap & is_maxbwd),
                    i_wr_addr.eq(dst + out_idx),
                    i_final.eq(last_pos & (gap | ~is_maxbwd) & (ox == last_ox) & (oy == last_oy)
                               & (plane == last_plane)),
                ]
            with m.Case(GATHER):
                has = has_y & has_x
                valid = has & (coy >= 0) & (coy < oh) & (cox >= 0) & (cox < ow)
                x_more = has & (ckx < kernel_x_less_stride)  # ckx + sw < kw
                y_more = has & (cky < kernel_y_less_stride)
                m.d.comb += [
                    i_rd0.eq(running & valid),
                    i_row.eq(coy), i_column.eq(plane_base + cox),
                    i_first.eq((cky == ry) & (ckx == rx)),
                    i_last.eq(~x_more & ~y_more),
                    i_ws.eq(~x_more & ~y_more),
                    i_wr_addr.eq(dst + out_idx),
                    i_final.eq(~x_more & ~y_more & (ix == last_ix) & (iy == last_iy) & (plane == last_plane)),
                ]

        if stall is not None:
            with m.If(running & i_dx):
                m.d.sync += dx_hold.eq(latency)
            with m.Elif(dx_hold != 0):
                m.d.sync += dx_hold.eq(dx_hold - 1)

        # -- the step as presented: the issue registered (reads and everything after them PRESENT_STAGES cycles
        # later). Stage 1: the values registered (the window/gather offset's terms too); stage 2: the
        # offset's product (one multiplier: row times the row length) and its sum of the source address and the
        # column; stage 3: their sum, the read address (and the window position's offset) --------------------------
        staged = {}
        for name, signal in (("active", i_active), ("rd0", i_rd0), ("rd1", i_rd1), ("acc", i_acc),
                             ("rd0_addr", i_rd0_addr), ("rd1_addr", i_rd1_addr), ("acc_addr", i_acc_addr),
                             ("wr_addr", i_wr_addr), ("first", i_first), ("last", i_last), ("ws", i_ws),
                             ("wa", i_wa), ("dx", i_dx), ("row", i_row), ("column", i_column), ("family", family),
                             ("gap", gap)):
            staged[name] = Signal.like(signal, name=f"s_{name}")
            m.d.sync += staged[name].eq(signal)
        row_length = Signal(8)  # the rows of the offset: the input's (window) or the output's (gather)
        m.d.sync += row_length.eq(Mux(is_avgbwd, ow, w))
        s_window, s_gather = staged["family"] == WINDOW, staged["family"] == GATHER
        q_product, q_column, q_source_column = Signal(cw), Signal(cw), Signal(aw)
        q_rd0_addr = Signal(aw)
        q_window, q_offset_read = Signal(), Signal()
        m.d.sync += [
            q_product.eq(staged["row"] * row_length), q_column.eq(staged["column"]),
            q_source_column.eq(Mux(is_maxbwd, src1, src0) + staged["column"]),  # src0 for the gather
            q_rd0_addr.eq(staged["rd0_addr"]),
            q_window.eq(s_window), q_offset_read.eq((s_window & ~staged["gap"]) | s_gather),
        ]
        presented = {}
        for name in ("active", "rd0", "rd1", "acc", "rd1_addr", "acc_addr", "wr_addr", "first", "last", "ws",
                     "wa", "dx"):
            presented[name] = delay(m, staged[name], PRESENT_STAGES - 1, f"p_{name}")
        presented["rd0_addr"], presented["xoff"] = Signal(aw, name="p_rd0_addr"), Signal(cw, name="p_xoff")
        m.d.sync += [
            presented["rd0_addr"].eq(Mux(q_offset_read, q_source_column + q_product, q_rd0_addr)),
            presented["xoff"].eq(Mux(q_window, q_column + q_product, 0)),
        ]
        p_active, p_rd0, p_rd1, p_acc = (presented[name] for name in ("active", "rd0", "rd1", "acc"))
        p_rd0_addr, p_rd1_addr, p_acc_addr, p_wr_addr = (presented[name] for name in (
            "rd0_addr", "rd1_addr", "acc_addr", "wr_addr"))
        p_first, p_last, p_ws, p_wa, p_dx, p_xoff = (presented[name] for name in (
            "first", "last", "ws", "wa", "dx", "xoff"))

        # -- sequencer -------------------------------------------------------------------------------------
        with m.Switch(state):
            with m.Case(IDLE), m.If(self.start):
                m.d.sync += state.eq(PREP_A)
            with m.Case(PREP_A):
                m.d.sync += state.eq(PREP_B)
            with m.Case(PREP_B):
                m.d.sync += init_run()
                m.d.sync += [div_left.eq(Mux(pow2, 0, div_steps)),
                             div_rem.eq(0), div_q.eq(0), qy0.eq(0), ry0.eq(ph), qx0.eq(0), rx0.eq(pw)]
                m.d.sync += state.eq(Mux(is_average, SETUP, RUN))
            with m.Case(SETUP):
                # the counters loaded in every set-up cycle (from the current ry0, rx0, ...: the last load is the
                # final one), so only the state waits for the set-up's end
                m.d.sync += init_run()
                with m.If(div_left != 0):
                    partial = Cat(div_left == div_steps, div_rem)
                    with m.If(partial >= count):
                        m.d.sync += [div_rem.eq(partial - count), div_q.eq(Cat(1, div_q))]
                    with m.Else():
                        m.d.sync += [div_rem.eq(partial), div_q.eq(Cat(0, div_q))]
                    m.d.sync += div_left.eq(div_left - 1)
                with m.If(is_avgbwd & (ry0 >= sh)):
                    m.d.sync += [ry0.eq(ry0 - sh), qy0.eq(qy0 + 1)]
                with m.If(is_avgbwd & (rx0 >= sw)):
                    m.d.sync += [rx0.eq(rx0 - sw), qx0.eq(qx0 + 1)]
                with m.If((div_left == 0) & ~(is_avgbwd & ((ry0 >= sh) | (rx0 >= sw)))):
                    m.d.sync += state.eq(RUN)
            with m.Case(RUN), m.If(~stall) if stall is not None else contextlib.nullcontext():
                with m.If(i_final):
                    with m.If(is_maxbwd & ~phase):
                        m.d.sync += [phase.eq(1), family.eq(WINDOW)]
                    with m.Else():
                        m.d.sync += state.eq(PRESENT)
                with m.Switch(family):
                    with m.Case(NEST):
                        with m.If(i != last_i):
                            m.d.sync += [i.eq(i + 1), rd_cur.eq(rd_cur + r_i), wr_cur.eq(wr_cur + w_i)]
                        with m.Elif(mi != last_m):
                            m.d.sync += [i.eq(0), mi.eq(mi + 1), rd_mid.eq(rd_mid + r_m), rd_cur.eq(rd_mid + r_m),
                                         wr_mid.eq(wr_mid + w_m), wr_cur.eq(wr_mid + w_m)]
                        with m.Else():
                            m.d.sync += [i.eq(0), mi.eq(0), o.eq(o + 1),
                                         rd_outer.eq(rd_outer + r_o), rd_mid.eq(rd_outer + r_o),
                                         rd_cur.eq(rd_outer + r_o),
                                         wr_outer.eq(wr_outer + w_o), wr_mid.eq(wr_outer + w_o),
                                         wr_cur.eq(wr_outer + w_o)]
                    with m.Case(WINDOW):
                        with m.If(kx != last_kx):
                            m.d.sync += kx.eq(kx + 1)
                        with m.Elif(ky != last_ky):
                            m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                        with m.Elif(is_maxbwd & ~gap):
                            m.d.sync += gap.eq(1)
                        with m.Else():
                            m.d.sync += [gap.eq(0), kx.eq(0), ky.eq(0), out_idx.eq(out_idx + 1)]
                            with m.If(ox != last_ox):
                                m.d.sync += [ox.eq(ox + 1), ix0.eq(ix0 + sw), kx_low.eq(kx_low - sw),
                                             kx_high.eq(kx_high - sw)]
                            with m.Elif(oy != last_oy):
                                m.d.sync += [ox.eq(0), ix0.eq(-pw), oy.eq(oy + 1), iy0.eq(iy0 + sh),
                                             kx_low.eq(pw), kx_high.eq(w + pw), ky_low.eq(ky_low - sh),
                                             ky_high.eq(ky_high - sh)]
                            with m.Else():
                                m.d.sync += [ox.eq(0), ix0.eq(-pw), oy.eq(0), iy0.eq(-ph), plane.eq(plane + 1),
                                             kx_low.eq(pw), kx_high.eq(w + pw), ky_low.eq(ph), ky_high.eq(h + ph),
                                             plane_base.eq(plane_base + hw)]
                    with m.Case(GATHER):
                        with m.If(x_more):
                            m.d.sync += [ckx.eq(ckx + sw), cox.eq(cox - 1)]
                        with m.Elif(y_more):
                            m.d.sync += [ckx.eq(rx), cox.eq(qx), cky.eq(cky + sh), coy.eq(coy - 1)]
                        with m.Else():
                            m.d.sync += out_idx.eq(out_idx + 1)
                            nqy, nqx = Signal(signed(11)), Signal(signed(11))
                            nry, nrx = Signal(5), Signal(5)
                            m.d.comb += [nqy.eq(qy), nry.eq(ry), nqx.eq(qx), nrx.eq(rx)]
                            # the next (q, r): r + 1 wraps to 0 at s (q + 1); has_* for the next r beside it (0 < k;
                            # r + 1 < k: r < k - 1)
                            wrap_x, wrap_y = rx == last_rx, ry == last_ry
                            step_x = Mux(wrap_x, Cat(Const(0, 5), (qx + 1)[:11]), Cat((rx + 1)[:5], qx))
                            step_y = Mux(wrap_y, Cat(Const(0, 5), (qy + 1)[:11]), Cat((ry + 1)[:5], qy))
                            with m.If(ix != last_ix):
                                m.d.comb += Cat(nrx, nqx).eq(step_x)
                                m.d.sync += [ix.eq(ix + 1), has_x.eq(wrap_x | (rx < last_kx))]
                            with m.Elif(iy != last_iy):
                                m.d.comb += [nrx.eq(rx0), nqx.eq(qx0), Cat(nry, nqy).eq(step_y)]
                                m.d.sync += [ix.eq(0), iy.eq(iy + 1), has_x.eq(first_has_x),
                                             has_y.eq(wrap_y | (ry < last_ky))]
                            with m.Else():
                                m.d.comb += [nrx.eq(rx0), nqx.eq(qx0), nry.eq(ry0), nqy.eq(qy0)]
                                m.d.sync += [ix.eq(0), iy.eq(0), plane.eq(plane + 1),
                                             plane_base.eq(plane_base + ohw), has_x.eq(first_has_x),
                                             has_y.eq(first_has_y)]
                            m.d.sync += [qx.eq(nqx), rx.eq(nrx), qy.eq(nqy), ry.eq(nry),
                                         ckx.eq(nrx), cox.eq(nqx), cky.eq(nry), coy.eq(nqy)]
            with m.Case(PRESENT):  # the last issue is presented (PRESENT_STAGES cycles), its data read
                m.d.sync += present_wait.eq(present_wait + 1)
                present_last = PRESENT_STAGES + WRITE_STAGES - 1 + wait
                with m.If(present_wait == (Mux(is_maxbwd, present_last + wait, present_last) if wait
                                           else present_last)):
                    m.d.sync += [state.eq(DRAIN), present_wait.eq(0)]
            with m.Case(DRAIN):
                m.d.sync += state.eq(Mux(is_late, LATE, DONE))
            with m.Case(LATE):
                m.d.sync += state.eq(DONE)
            with m.Case(DONE):
                m.d.sync += state.eq(IDLE)
        m.d.comb += self.done.eq(state == DONE)

        # -- operand stage (L = read_latency + 1 cycles after the reads are presented, the cycle their data reaches
        # the arrival registers: what travels beside the reads waits L - 1 registers more): the read data and its
        # product with the divisor's factor (the reciprocal for an average whose window is not a power of two,
        # else 1), registered ------------------------------------------------------------------------------
        w_active, w_rd0, w_first, w_last, w_ws, w_wa, w_dx, w_wr_addr, w_xoff = (
            delay(m, signal, wait, f"w_{name}") for name, signal in (
                ("active", p_active), ("rd0", p_rd0), ("first", p_first), ("last", p_last), ("ws", p_ws),
                ("wa", p_wa), ("dx", p_dx), ("wr_addr", p_wr_addr), ("xoff", p_xoff)))
        d_active, d_rd0, d_first, d_last, d_ws, d_wa, d_dx = (Signal(name=f"d_{name}") for name in (
            "active", "rd0", "first", "last", "ws", "wa", "dx"))
        d_wr_addr, d_xoff = Signal(aw), Signal(cw)
        m.d.sync += [d_active.eq(w_active), d_rd0.eq(w_rd0), d_first.eq(w_active & w_first),
                     d_last.eq(w_active & w_last), d_ws.eq(w_active & w_ws), d_wa.eq(w_active & w_wa),
                     d_dx.eq(w_active & w_dx), d_wr_addr.eq(w_wr_addr), d_xoff.eq(w_xoff)]
        factor = Signal(recip_frac + 1)  # registered: valid from the cycle after the set-up phase
        m.d.sync += factor.eq(Mux(is_average & ~pow2, reciprocal, 1))
        r_x0, r_x1, r_xa = Signal(signed(op_bits)), Signal(signed(op_bits)), Signal(signed(acc_bits))
        r_product = Signal(signed(op_bits + recip_frac + 2))
        m.d.sync += [r_x0.eq(read0), r_x1.eq(read1), r_xa.eq(read_acc), r_product.eq(read0 * factor)]

        # -- result stage (``L + 1`` cycles after the reads are presented): combine, start the
        # requantization ----------------------------------------------------------------------------------------
        e_active, e_rd0, e_first, e_last, e_ws, e_wa, e_dx = (Signal(name=f"e_{name}") for name in (
            "active", "rd0", "first", "last", "ws", "wa", "dx"))
        e_wr_addr, e_xoff = Signal(aw), Signal(cw)
        m.d.sync += [e_active.eq(d_active), e_rd0.eq(d_rd0), e_first.eq(d_first), e_last.eq(d_last),
                     e_ws.eq(d_ws), e_wa.eq(d_wa), e_dx.eq(d_dx), e_wr_addr.eq(d_wr_addr), e_xoff.eq(d_xoff)]

        # sums of products: channel sums (factor 1) and forward averages (sum(x * r) = r * sum(x))
        sum_bits = max(acc_bits, op_bits + recip_frac + 2 + 17) + 1
        running_sum = Signal(signed(sum_bits))
        total = Signal(signed(sum_bits))
        base = Mux(e_first, Mux(is_("channel_sum_accumulate"), r_xa, 0), running_sum)
        m.d.comb += total.eq(base + Mux(e_rd0, r_product, 0))

        # running maximum with its position (max pools): the first maximum in row-major order
        best, best_off, seen = Signal(signed(op_bits)), Signal(cw), Signal()
        seen_before = seen & ~e_first
        take = e_rd0 & (~seen_before | (r_x0 > best))
        best_now = Mux(take, r_x0, best)
        best_off_now = Mux(take, e_xoff, best_off)
        with m.If(e_active):
            m.d.sync += [running_sum.eq(total), best.eq(best_now), best_off.eq(best_off_now),
                         seen.eq(seen_before | e_rd0)]

        def saturate(value):
            """``value`` (signed) clipped to the operand format: bit tests (no carry chains) as the format is two's
            complement (the bits from the format's sign up all equal to the value's sign: within it)."""
            k = fmt.max.bit_length()
            assert fmt.max == 2**k - 1 and fmt.min == -(2**k) and len(value) > k and value.shape().signed
            over = ~value[-1] & value[k:].any()
            under = value[-1] & ~value[k:].all()
            return Mux(over, fmt.max, Mux(under, fmt.min, value))

        # the results that need no requantization (registered in the requantizer's stage)
        result = Signal(signed(op_bits + 2))
        add = r_x0 + r_x1
        # the limits of relu and relu_mask (imm; 0: none) registered within the element's range: relu clips
        # x > imm to imm, relu_mask keeps 0 < x < imm
        element_max = 2 ** (op_bits - 1) - 1
        no_limit = (imm == 0) | (imm > element_max)
        relu_limit, mask_bound = Signal(range(element_max + 1)), Signal(range(element_max + 2))
        m.d.sync += [relu_limit.eq(Mux(no_limit, element_max, imm)),
                     mask_bound.eq(Mux(no_limit, element_max + 1, imm))]
        keep = (r_x1 > 0) & (r_x1 < mask_bound)
        with m.If(is_("add_saturate")):
            m.d.comb += result.eq(saturate(add))
        with m.Elif(is_add):
            m.d.comb += result.eq(add)
        with m.Elif(is_("relu")):
            m.d.comb += result.eq(Mux(r_x0 < 0, 0, Mux(r_x0 > relu_limit, relu_limit, r_x0)))
        with m.Elif(is_("relu_mask")):
            m.d.comb += result.eq(Mux(keep, r_x0, 0))
        with m.Elif(is_("channel_insert", "channel_extract")):
            m.d.comb += result.eq(r_x0)
        # (else 0: maxpool_backward's zeroing; the requantized functions take the requantizer's result and
        # maxpool_forward the running maximum's register, both in the requantizer stage)

        # -- requantizer stage (one cycle after the result stage): the requantizer's shift registered, its
        # rounding and saturation from those registers; the result stage's values registered beside it ----------
        g_active, g_rd0, g_first, g_ws, g_wa, g_dx = (Signal(name=f"g_{name}") for name in (
            "active", "rd0", "first", "ws", "wa", "dx"))
        g_wr_addr, g_result = Signal(aw), Signal(signed(op_bits + 2))
        m.d.sync += [g_active.eq(e_active), g_rd0.eq(e_rd0), g_first.eq(e_first), g_ws.eq(e_ws), g_wa.eq(e_wa),
                     g_dx.eq(e_dx), g_wr_addr.eq(e_wr_addr), g_result.eq(result)]
        window_sum = Signal(signed(sum_bits))  # the result stage's total (a channel sum's write data)
        m.d.sync += window_sum.eq(total)
        rq_in = Signal(signed(sum_bits))
        rq_shift = Signal(range(sum_bits + 2))
        # the shift is the instruction's: registered (valid long before the first result stage)
        with m.If(is_("requantize")):
            m.d.comb += rq_in.eq(r_xa)
            m.d.sync += rq_shift.eq(Mux(imm > sum_bits + 1, sum_bits + 1, imm))
        with m.Else():
            m.d.comb += rq_in.eq(Mux(is_sum_divided, window_sum, r_product))
            m.d.sync += rq_shift.eq(Mux(pow2, log2, recip_frac))
        # the simulator's int64 arithmetic rounds a shift of 64 or more down (_round_shift: 1 << (shift - 1) is
        # beyond int64, so no remainder reaches half); the requantizer takes the result stage's registers
        # (requantize: the accumulator element; the backward average pools: the product) and its result comes
        # in the requantizer stage, or (forward averages) the registered window sum and its result comes in the
        # late stage
        rq_truncate = Signal()
        m.d.sync += rq_truncate.eq(is_("requantize") & (imm >= 64))
        rq_out = _requantizer(m, rq_in, rq_shift, rq_truncate, rounding, fmt.min, fmt.max, "rq")

        # -- late stage (two cycles after the result stage; average pools) ------------------------------------
        h_active, h_rd0, h_first, h_ws = (Signal(name=f"h_{name}") for name in ("active", "rd0", "first", "ws"))
        h_wr_addr = Signal(aw)
        # (gated while the instruction is held: the next one may be late while this one was not)
        m.d.sync += [h_active.eq(g_active & is_late), h_rd0.eq(g_rd0), h_first.eq(g_first),
                     h_ws.eq(g_ws & is_late), h_wr_addr.eq(g_wr_addr)]
        # avgpool_backward: each dy's share (requantized in the requantizer stage), summed in the late stage
        share, share_sum, share_total = Signal(signed(op_bits)), Signal(signed(op_bits + 9)), Signal(
            signed(op_bits + 9))
        m.d.sync += share.eq(rq_out)
        m.d.comb += share_total.eq(Mux(h_first, 0, share_sum) + Mux(h_rd0, share, 0))
        with m.If(h_active):
            m.d.sync += share_sum.eq(share_total)

        # -- write registers: the requantizer stage's write (or the late stage's: average pools) registered,
        # presented in the next cycle -----------------------------------------------------------------------------
        wr_en, wr_acc_en, wr_addr = Signal(), Signal(), Signal(aw)
        wr_data, wr_acc_data = Signal(signed(op_bits + 2)), Signal(signed(sum_bits))
        with m.If(is_late):
            m.d.sync += [wr_en.eq(h_ws), wr_addr.eq(h_wr_addr),
                         wr_data.eq(Mux(is_avgbwd, saturate(share_total), rq_out))]
        with m.Else():
            m.d.sync += [wr_en.eq(g_ws), wr_addr.eq(g_wr_addr),
                         wr_data.eq(Mux(is_("requantize", "global_pool_backward"), rq_out,
                                        Mux(is_("maxpool_forward"), best, g_result)))]
        m.d.sync += [wr_acc_en.eq(g_wa), wr_acc_data.eq(window_sum)]

        # maxpool_backward: dx read at the window's maximum two cycles after the result stage of its last position
        # (the address registered), written plus dy (read by the gap slot, in r_x0 one cycle after that result
        # stage, delayed to the dx) L cycles later
        h_dx, h_dx_addr = Signal(), Signal(aw)
        m.d.sync += [h_dx.eq(g_dx), h_dx_addr.eq(dst + best_off)]  # best_off: the window's, after its last position
        pending = Signal()
        pending_addr = Signal(aw)
        m.d.sync += [pending.eq(h_dx), pending_addr.eq(h_dx_addr)]
        dx_write, dx_write_addr = (delay(m, signal, wait, name) for signal, name in (
            (pending, "dx_write"), (pending_addr, "dx_write_addr")))
        dy = delay(m, r_x0, wait + 2, "dy")

        # -- ports ----------------------------------------------------------------------------------------
        m.d.comb += [
            self.scratch_read0.en.eq(p_rd0), self.scratch_read0.addr.eq(p_rd0_addr),
            self.acc_read.en.eq(p_acc), self.acc_read.addr.eq(p_acc_addr),
        ]
        with m.If(h_dx):
            m.d.comb += [self.scratch_read1.en.eq(1), self.scratch_read1.addr.eq(h_dx_addr)]
        with m.Else():
            m.d.comb += [self.scratch_read1.en.eq(p_rd1), self.scratch_read1.addr.eq(p_rd1_addr)]
        with m.If(dx_write):
            m.d.comb += [self.scratch_write.en.eq(1), self.scratch_write.addr.eq(dx_write_addr),
                         self.scratch_write.data.eq(read1 + dy)]
        with m.Else():
            m.d.comb += [self.scratch_write.en.eq(wr_en), self.scratch_write.addr.eq(wr_addr),
                         self.scratch_write.data.eq(wr_data)]
        m.d.comb += [self.acc_write.en.eq(wr_acc_en), self.acc_write.addr.eq(wr_addr),
                     self.acc_write.data.eq(wr_acc_data)]
        return m
