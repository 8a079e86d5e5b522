"""The WaveCore NORM unit: every ``NORM`` function code of :mod:`wavecore.golden.core.isa` for BatchNorm (``_bn``)
and GroupNorm (``_gn``), bit-exact with :meth:`wavecore.golden.core.simulator.Simulator._op_norm` (the kernels
of :class:`wavecore.golden.integer.IntegerKernels` and :class:`wavecore.golden.numerics.NormArithmetic`).

**Interface**: :class:`wavecore.hdl.core.compute_unit.ComputeUnitSignature` (start/instruction/shape/done, two
scratchpad read ports, one scratchpad write port, one accumulator read and one write port). ``read_latency``
(``L``, 1 to 3) is the cycles from a read to its data: the element stream delays what travels beside a read (its
valid bit, write address and phase) ``L - 1`` more stages, an accumulator read's tag (the register its data goes
to) arrives with its data, and the sequencer waits ``L - 1`` more cycles where it uses what it read (at ``L = 1``
none of these exist).

**Organisation.** One sequencer walks the NORM block (:func:`wavecore.golden.core.isa.norm_block`: BN one block,
GN one block per sample) and the NCHW tensors; the per-set scalar arithmetic (rstd by a digit-by-digit square
root, the divisions by the element count, saturation) is :class:`wavecore.hdl.core.norm_constants.NormConstants`
(multipliers, one sequential restoring divider, one sequential root; its latency does not depend on the
data). The element count (BN ``N*H*W`` or, streamed, ``imm[15:3]*H*W``; GN ``C/G*H*W``) is formed
at run time from the SHAPE word (``C/G`` by repeated addition, one cycle per quotient step), so nothing depends
on the shape at generation time. The address arithmetic has no multiplier: a set's first plane and its block
are counted along with the sets, a plane's channel along with the plane, and every address of a part of a
block is a register (base + block + the part's offset, registered in every cycle) plus the index. Iteration
terms:

* a *set* is a statistic set: BN a channel ``c`` (planes ``n*C + c`` for every sample), GN a (sample ``n``,
  group ``g``) pair (the ``P = C/G`` planes ``n*C + g*P + j``); a *plane* is ``H*W`` contiguous elements.
* ``statistics``: per set S1 = sum x, S2 = sum x*x over its planes (one element per cycle); imm bit 0 adds the
  block's old sums.
* ``constants``: per set read S1, S2; per channel of the set read gamma, beta (scratchpad ``src1``,
  ``src1 + C``), run the scalar unit's forward program (rstd, A, C) and write rstd, A, C, gamma.
* ``affine``/``affine_relu``/``relu_mask``: per plane read A, C, then one element per cycle.
* ``backward``: per set, the reduction pass (r1 = sum dy, r2 = sum dy*x per channel, written to the block; W1,
  W2 = sum gamma*r) then the scalar unit's backward program (K2, K3) and the dx pass (K1 = A per plane). imm
  modes (BN): 1 reductions only, 3 reductions added to the block's, 4 dx only from the block's r1, r2 with the
  count ``imm[15:3]*H*W`` (0: SHAPE samples).
* ``param_grads(_accumulate)``: per channel (GN: per channel and sample, summed) the scalar unit's dgamma
  program; dbeta = r1 (GN: summed); written to ``dst`` (``dst + C``), optionally added to the old values.

**Timing** (cycles from ``start`` to ``done``, as :func:`unit_cycles` computes them; ``HW = H*W``, ``P = C/G``,
``L = read_latency``, ``L_f``, ``L_b``, ``L_g`` = :meth:`NormConstants.worst_case_cycles` of forward, backward,
dgamma, plus 1 each (255, 245, 124 for the int8 preset; 217, 211, 111 before the scalar unit's pipelining);
``sets`` = BN ``C``, GN ``N*G``; ``planes`` per set = BN ``N``, GN ``P``): ``3 + [GN: P + 1] + body``. The planes
of a set stream one element per cycle; they take ``S = planes*HW + 9 + L`` cycles when they stream back to back
(BN, and GN statistics), else ``S = planes*(HW + 2) + 7 + L`` (GN: A, C and gamma change with the channel; two
cycles read them). The backward reduction pass takes ``R = N*HW + 11 + L`` (BN) or ``R = P*(HW + 11 + L)`` (GN:
r1, r2 written per channel). (With three element stages these were ``+ 5 + L``, ``+ 3 + L`` and ``+ 7 + L``.)
An element is read in cycle t, its data and the plane's constants are registered in t + L, the products of A
(K2) in 17-bit pieces (one DSP each) with it in t + L + 1, their sums (``A*x``, ``K1*dy``, ``K2*x + K3``) in
t + L + 2, the element's sums (``A*x + C``, ``K1*dy + K2*x + K3``) in t + L + 3, their rounding shifts in
t + L + 4 and their clamps in t + L + 5; its ReLU, running sums and write happen in t + L + 6
(``ELEMENT_STAGES`` after the data), so no cycle holds a multiplier after a block-RAM read or before an
addition, nor more than one carry chain of the requantization; a set's (a channel's) last element is waited for
``ELEMENT_STAGES - 1 + L - 1`` cycles, and the old sums that statistics and the reductions add to are read
``L - 1`` cycles earlier than at ``L = 1``, in those waits. Body:

* statistics: ``sets * (1 + S + 4)``;
* affine, affine_relu, relu_mask: ``sets * (1 + S)``;
* constants: ``sets * (3 + channels * (1 + L + L_f + 4))`` (BN: 1 channel per set, GN: ``P``; ``L - 1`` waits
  for gamma and beta);
* backward mode 0: ``sets * (1 + R + S + 2 + L + L_b)``; modes 1, 3: ``C * (1 + R)``; mode 4:
  ``C * (1 + 4 + 2 + L + L_b + S)`` (``L - 1`` waits for rstd);
* param_grads: ``C * (1 + loops * (4 + L + L_g) + 3 + L)`` (``loops``: BN 1, GN ``N``; ``L - 1`` waits for r2
  and for the old gradients).

The streaming functions run at one element per cycle plus a few cycles per set (GN: per plane); the
per-channel functions are bound by the scalar unit's divider and root (about 150 cycles a channel).

**Ports**: ``scratch_read0`` reads x (statistics, affine), dz (relu_mask), dy (backward) and gamma
(constants); ``scratch_read1`` reads x (relu_mask, backward) and beta (constants); ``scratch_write`` writes y,
z, dy and dx ``L + 6`` cycles after the element's read (a stream may run in place, ``dst = src0``: no later
element reads what it writes); ``acc_read``/``acc_write`` read and write the NORM blocks and the parameter
gradients. Every write is presented at least one cycle before ``done``; ``done`` is high in one
cycle and the unit is idle (every ``en`` low) from the next one. An address outside a memory is the core's to
detect (the unit does not check ranges).

**Assumptions**: the counts, sums and constants fit the formats of a :class:`NormArithmetic` with ``max_count``
(default ``2**30``, every count a SHAPE word can express); gamma/beta fit the operand width; the golden model's
error conditions (GN with imm modes, mode 2, ``C`` not a multiple of ``G``) are not detected.
"""

from __future__ import annotations

import functools

from amaranth import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters
from wavecore.golden.numerics import IntegerTraining, NormArithmetic, check_int
from wavecore.hdl.core import decoder
from wavecore.hdl.core.compute_unit import (
    ADDRESS_WIDTH,
    READ_LATENCY,
    ComputeUnitSignature,
    check_read_latency,
    check_unit_arguments,
    delay,
    element_widths,
    shape_field,
)
from wavecore.hdl.core.norm_constants import NormConstants
from wavecore.hdl.norm.scalar import ScalarMode
from wavecore.hdl.stream.window import requantize, round_shift

__all__ = ["ELEMENT_STAGES", "NormUnit", "unit_cycles"]

_OPS = {name[:-3]: number for name, (number, _) in isa.FUNCTS["NORM"].items() if name.endswith("_bn")}
_GN_BIT = isa.FUNCTS["NORM"]["statistics_gn"][0] - isa.FUNCTS["NORM"]["statistics_bn"][0]

#: Stages of an element from its read data to its write: read data, pieces' products, products, sums, rounding,
#: clamp and write (the waits before a set's end and before a channel's r1/r2 writes are
#: ELEMENT_STAGES - 1 + read_latency - 1 cycles).
ELEMENT_STAGES = 7

#: Bits of the pieces of a wide factor (A, K2, r) in a product with an operand (an operand times a piece fits an
#: 18 x 18 signed DSP).
_PIECE = 17

# tags of the accumulator reads: the register the returning word goes to
_TAGS = ("none", "a", "c", "gamma", "s1", "s2", "rstd", "r1", "r2", "old0", "old1")



def piecewise_product(m: Module, wide, narrow, name: str) -> list:
    """``wide * narrow`` (signed values; ``narrow`` at most 18 bits) as the products of ``narrow`` with the
    ``_PIECE``-bit pieces of ``wide`` (the top one signed), each registered in ``m``'s sync domain (one DSP each,
    no adder after it); returns them shifted into place (their sum, formed by the caller a cycle later, is the
    product)."""
    wide = Value.cast(wide)
    partials = []
    for low in range(0, len(wide), _PIECE):
        piece = wide[low : low + _PIECE]
        if low + _PIECE >= len(wide):
            piece = piece.as_signed()  # the top piece carries the sign
        product = narrow * piece
        partial = Signal(product.shape(), name=f"{name}_partial{low // _PIECE}")
        m.d.sync += partial.eq(product)
        partials.append(partial << low)
    return partials


def times(value, factor: int):
    """``value * factor`` (a small constant) as a sum of shifts: no multiplier (synthesis maps a product by a
    constant to a DSP, slower than the additions)."""
    terms = [Value.cast(value) << bit for bit in range(factor.bit_length()) if factor >> bit & 1]
    return sum(terms[1:], terms[0]) if terms else 0


def _arithmetic(numerics: IntegerTraining, max_count: int) -> NormArithmetic:
    return NormArithmetic.from_training(numerics, max_count=max_count)


def _scalar(numerics: IntegerTraining, max_count: int) -> NormConstants:
    arithmetic = _arithmetic(numerics, max_count)
    param_width = numerics.operand.width
    return NormConstants(arithmetic=arithmetic, param_width=param_width,
                         weighted_width=arithmetic.weighted_width(param_width))


@functools.lru_cache(maxsize=16)
def _scalar_latency(numerics: IntegerTraining, max_count: int) -> dict:
    """``mode -> cycles`` of a SCALAR step of the sequencer (the scalar unit's latency + the capture cycle)."""
    scalar = _scalar(numerics, max_count)
    scalar._MustUse__silence = True  # built only to read its latency
    return {mode: scalar.worst_case_cycles(mode) + 1 for mode in ScalarMode}


class NormUnit(wiring.Component):
    """The NORM compute unit (see the module docstring).

    Parameters
    ----------
    parameters : CoreParameters
        Element widths (operand and accumulator) of the core.
    numerics : IntegerTraining
        The integer mode (grids, rounding, operand format) of the simulator.
    max_count : int
        Largest element count of a statistic set the unit is built for (sizes the scalar unit).
    read_latency : int
        Cycles from a read's ``en`` to its ``data`` (1 to 3, default :data:`READ_LATENCY`): what travels beside
        the element reads is delayed ``read_latency - 1`` more stages, and the sequencer waits for its reads.
    """

    def __init__(self, parameters: CoreParameters, numerics: IntegerTraining, *, max_count: int = 1 << 30,
                 read_latency: int = READ_LATENCY):
        check_unit_arguments(parameters, numerics, read_latency)
        self.parameters, self.numerics = parameters, numerics
        self.read_latency = read_latency
        self.max_count = check_int("max_count", max_count, 1, 1 << 30)
        widths = element_widths(parameters)
        self.operand_bits, self.accumulator_bits = widths["scratchpad"], widths["accumulator"]
        if numerics.operand.width > self.operand_bits:
            raise ValueError(f"the operand format int{numerics.operand.width} does not fit the "
                             f"{self.operand_bits}-bit scratchpad elements")
        self.arithmetic = _arithmetic(numerics, self.max_count)
        super().__init__(ComputeUnitSignature(parameters))

    def elaborate(self, platform):
        m = Module()
        ar, numerics = self.arithmetic, self.numerics
        m.submodules.scalar = scalar = _scalar(numerics, self.max_count)
        acc_bits = self.accumulator_bits
        operand = numerics.operand
        sf = numerics.scalar_frac
        extra = self.read_latency - 1  # stages and waits a read takes beyond one cycle

        # -- instruction and shape registers --------------------------------------------------------------
        word, shape = self.instruction, self.shape
        funct = Signal(4)
        dst, src0, src1, src2 = (Signal(ADDRESS_WIDTH, name=name) for name in ("dst", "src0", "src1", "src2"))
        imm = Signal(16)
        samples = Signal(12)
        channels = Signal(12)
        height, width = Signal(8), Signal(8)
        groups = Signal(12)
        op = funct[:3]
        gn = funct[3]
        mode = imm[:3]
        streamed_samples = imm[3:]
        is_backward = op == _OPS["backward"]
        bn_backward = is_backward & ~gn
        reduce_only = bn_backward & mode[0]
        add_reductions = reduce_only & mode[1]
        dx_only = bn_backward & ~mode[0] & mode[2]

        hw = Signal(16)
        per_group = Signal(12)  # P = C/G (GN)
        per_group_sum = Signal(13)
        count = Signal(range(1 << 30))
        # count = count_factor * H*W (SETUP): count_factor registered in every cycle, so final in SETUP (its
        # operands are in INIT, and in DIVIDE's last cycle), and no multiplexer before the multiplier
        statistic_samples = Mux(bn_backward & (mode != 0) & (streamed_samples != 0), streamed_samples, samples)
        count_factor = Signal(12)
        m.d.sync += count_factor.eq(Mux(gn, per_group, statistic_samples))
        words = Signal(16)

        # iteration
        outer = Signal(12)  # BN: channel; GN: sample
        group = Signal(12)  # GN: group
        channel_base = Signal(12)  # GN: group * P
        k = Signal(12)  # plane (or channel) within the set
        element = Signal(16)
        plane_base = Signal(ADDRESS_WIDTH)  # the plane's first element: (n*C + c) * H*W
        # the set's first plane's: BN c*H*W, GN (n*C + g*P)*H*W, counted along with the sets (no multiplier)
        set_base = Signal(ADDRESS_WIDTH)
        plane_stride = Signal(ADDRESS_WIDTH)  # between the planes of a set: BN C*H*W, GN H*W
        phase_dx = Signal()
        planes = Mux(gn, per_group, samples)
        set_channels = Mux(gn, per_group, 1)
        # the channel of plane k (GN channel_base + k, BN outer): a register counted along with k (next_k, first_k)
        plane_channel = Signal(12)

        def first_k():
            return [k.eq(0), plane_channel.eq(Mux(gn, channel_base, outer))]

        def next_k():
            return [k.eq(k + 1), plane_channel.eq(Mux(gn, plane_channel + 1, plane_channel))]

        beta_base = Signal(ADDRESS_WIDTH)  # src1 + C: beta
        m.d.sync += beta_base.eq(src1 + channels)
        # the set's block (GN: one per sample, words apart): 0 from SETUP, advanced with the sample (next_set)
        block = Signal(ADDRESS_WIDTH)
        set_word = Mux(gn, group, outer)
        def minus_one(value, name):
            """``value - 1``, registered in every cycle (valid a cycle after ``value``: the loop bounds are set by
            SETUP, used later), so the loop tests are a compare, not a subtraction and a compare."""
            expression = value - 1
            register = Signal(expression.shape(), name=name)
            m.d.sync += register.eq(expression)
            return register

        hw_last, samples_last = minus_one(hw, "hw_last"), minus_one(samples, "samples_last")
        groups_last, channels_last = minus_one(groups, "groups_last"), minus_one(channels, "channels_last")
        per_group_last = minus_one(per_group, "per_group_last")
        last_k = k == minus_one(Mux(op == _OPS["constants"], set_channels, planes), "k_last")
        # planes of a set stream back to back unless their channel (constants, r1/r2) changes: BN, GN statistics
        continuous = ~gn | (op == _OPS["statistics"])
        last_set = Mux(gn, (outer == samples_last) & (group == groups_last), outer == channels_last)

        # of the parts in a block (isa.norm_block), registered from the SHAPE fields (valid from INIT on): the
        # constant products and their sum stay out of the address paths
        offsets = {}
        for index, part in enumerate(("s1", "s2", "rstd", "a", "c", "gamma", "r1", "r2")):
            offsets[part] = Signal(16, name=f"offset_{part}")
            m.d.sync += offsets[part].eq(times(Mux(gn, groups, channels), min(index, 2))
                                         + times(channels, max(index - 2, 0)))

        # the address of a part of the set's block = a register (base + block + offset, registered in every cycle:
        # valid two cycles after block changes, i.e. from the state after SET_BEGIN on) + the index, one adder
        # before the address multiplexer. The bases: the instruction's fields, "table" the constants' block of
        # affine, relu_mask and backward.
        bases = {"dst": dst, "src0": src0, "src2": src2,
                 "table": Mux(is_backward | (op == _OPS["relu_mask"]), src2, src1)}
        part_bases = {}
        for base, parts in (("dst", ("s1", "s2", "rstd", "a", "c", "gamma")), ("src0", ("s1", "s2")),
                            ("src2", ("s1", "rstd", "gamma", "r1", "r2")), ("table", ("a", "c"))):
            for part in parts:
                part_bases[base, part] = Signal(ADDRESS_WIDTH, name=f"address_{base}_{part}")
                m.d.sync += part_bases[base, part].eq(bases[base] + block + offsets[part])
        # param_grads (src0): the sample's block's parts, set in GRADS_CHANNEL, advanced with the sample
        grads_bases = {part: Signal(ADDRESS_WIDTH, name=f"address_grads_{part}") for part in ("s1", "rstd", "r1", "r2")}
        dbeta_base = Signal(ADDRESS_WIDTH)  # dst + C: dbeta
        m.d.sync += dbeta_base.eq(dst + channels)

        def block_address(base, part, index, grads=False):
            """The address of ``part`` number ``index`` of the block at ``base`` (a key of ``bases``)."""
            return ((grads_bases[part] if grads else part_bases[base, part]) + index)[:ADDRESS_WIDTH]

        # -- data registers --------------------------------------------------------------------------------
        acc_data = self.acc_read.data
        regs = {tag: Signal(signed(acc_bits), name=f"reg_{tag}") for tag in _TAGS[1:]}
        tag_pending = Signal(range(len(_TAGS)))  # the tag of the read presented in the cycle before
        # the old sums (old0, old1) are loaded as 0 unless the instruction adds its sums to them (statistics with
        # imm[0], backward's add_reductions, param_grads_accumulate): the write of a sum is then one adder of two
        # registers, with no decode of the instruction before it
        keep_old = Signal()
        m.d.sync += keep_old.eq(((op == _OPS["statistics"]) & imm[0]) | add_reductions
                                | (op == _OPS["param_grads_accumulate"]))
        with m.Switch(delay(m, tag_pending, extra, "tag")):  # the tag of the read whose data arrives
            for index, tag in enumerate(_TAGS[1:], start=1):
                with m.Case(index):
                    m.d.sync += regs[tag].eq(Mux(keep_old, acc_data, 0) if tag.startswith("old") else acc_data)
        m.d.sync += tag_pending.eq(0)

        def acc_read(address, tag):
            m.d.comb += [self.acc_read.en.eq(1), self.acc_read.addr.eq(address)]
            m.d.sync += tag_pending.eq(_TAGS.index(tag))

        def acc_write(address, value):
            m.d.comb += [self.acc_write.en.eq(1), self.acc_write.addr.eq(address), self.acc_write.data.eq(value)]

        sum_bits = 64
        s1_sum, s2_sum = Signal(signed(sum_bits)), Signal(signed(sum_bits))
        r1_sum, r2_sum = Signal(signed(sum_bits)), Signal(signed(sum_bits))
        weighted = scalar.weighted_width
        w1, w2 = Signal(signed(weighted)), Signal(signed(weighted))
        weighted1, weighted2 = Signal(signed(weighted)), Signal(signed(weighted))  # gamma * r1, gamma * r2
        # gamma * r in two cycles: the products of gamma (an operand) with the 17-bit pieces of r1_sum, r2_sum (one
        # DSP each, straight from the registers; mode 4 loads the block's r1, r2 into them) registered in every
        # cycle, their sums (weighed1, weighed2) formed in the next cycle
        gamma_operand = regs["gamma"][: operand.width].as_signed()
        weigh_r1 = Signal(signed(ar.grad_sum_format.width))
        weigh_r2 = Signal(signed(ar.grad_product_sum_format.width))
        weighed1 = sum(piecewise_product(m, weigh_r1, gamma_operand, "weigh_r1"))
        weighed2 = sum(piecewise_product(m, weigh_r2, gamma_operand, "weigh_r2"))
        gamma_in, beta_in = Signal(signed(operand.width)), Signal(signed(operand.width))
        k2 = Signal(signed(ar.coefficient_width))
        k3 = Signal(signed(ar.bias_width))
        out_rstd = Signal(unsigned(ar.rstd_width))
        out_a = Signal(signed(ar.coefficient_width))
        out_c = Signal(signed(ar.bias_width))
        dgamma_sum, dbeta_sum = Signal(signed(acc_bits)), Signal(signed(acc_bits))
        scalar_mode = Signal(ScalarMode)
        scalar_sent = Signal()

        # param_grads counters
        p_channel, p_sample, p_group, p_in_group = Signal(12), Signal(12), Signal(12), Signal(12)
        m.d.comb += [weigh_r1.eq(r1_sum), weigh_r2.eq(r2_sum)]

        # -- the element pipeline (at read_latency 1): reads in cycle t; t + 1 the read data and the plane's
        # constants registered; t + 2 the pieces' products; t + 3 the products; t + 4 the sums; t + 5 their
        # rounding shifts; t + 6 their clamps; t + 7 ReLU, the running sums and the write (ELEMENT_STAGES) -------
        stream_valid = Signal()  # stage 1
        write_address = Signal(ADDRESS_WIDTH)
        e1_first, e1_second = Signal(signed(operand.width)), Signal(signed(operand.width))
        e1_affine_in = Signal(signed(operand.width))  # x of A*x: dz (relu_mask), else x
        e1_a, e1_c = Signal.like(regs["a"]), Signal.like(regs["c"])
        e1_valid, e1_dx = Signal(), Signal()
        e1_address = Signal(ADDRESS_WIDTH)
        # what travels beside the read, read_latency - 1 more stages: to the cycle its data arrives
        beside_valid = delay(m, stream_valid, extra, "stream_valid")
        beside_dx = delay(m, phase_dx, extra, "phase_dx")
        beside_address = delay(m, write_address, extra, "write_address")
        m.d.sync += [e1_first.eq(self.scratch_read0.data),  # x (statistics, affine), dz (relu_mask), dy (backward)
                     e1_second.eq(self.scratch_read1.data),  # x (relu_mask, backward)
                     e1_affine_in.eq(Mux(op == _OPS["relu_mask"], self.scratch_read1.data, self.scratch_read0.data)),
                     e1_a.eq(regs["a"]), e1_c.eq(regs["c"]), e1_valid.eq(beside_valid), e1_dx.eq(beside_dx),
                     e1_address.eq(beside_address)]

        def beside(stage, signals):
            """``signals`` (``e<k>_<name>``) registered as ``e<stage>_<name>``: what travels beside an element's
            arithmetic to its last stage."""
            registers = []
            for signal in signals:
                register = Signal.like(signal, name=f"e{stage}_{signal.name[3:]}")
                m.d.sync += register.eq(signal)
                registers.append(register)
            return registers

        # stage 2: the products, A*x, K1*dy and K2*x as the registered products of the 17-bit pieces of A (K2)
        # (one DSP each, no adder after it)
        e2_affine = piecewise_product(m, e1_a, e1_affine_in, "affine")  # A*x
        e2_dy = piecewise_product(m, e1_a, e1_first, "dy")  # K1*dy
        e2_x = piecewise_product(m, k2, e1_second, "x")  # K2*x
        e2_square, e2_cross = Signal(signed(2 * operand.width)), Signal(signed(2 * operand.width))  # x*x, dy*x
        e2_first, e2_c = Signal.like(e1_first), Signal.like(e1_c)
        e2_valid, e2_dx = Signal(), Signal()
        e2_address = Signal(ADDRESS_WIDTH)
        m.d.sync += [e2_square.eq(e1_first * e1_first), e2_cross.eq(e1_first * e1_second), e2_first.eq(e1_first),
                     e2_c.eq(e1_c), e2_valid.eq(e1_valid), e2_dx.eq(e1_dx), e2_address.eq(e1_address)]
        # stage 3: the pieces' products summed (K3 added to K2*x)
        e3_affine = Signal(signed(acc_bits + operand.width + 1))
        e3_dy = Signal.like(e3_affine)
        e3_x = Signal(signed(max(ar.coefficient_width + operand.width, ar.bias_width) + 2))  # K2*x + K3
        m.d.sync += [e3_affine.eq(sum(e2_affine)), e3_dy.eq(sum(e2_dy)), e3_x.eq(sum(e2_x) + k3)]
        e3_first, e3_square, e3_cross, e3_c, e3_valid, e3_dx, e3_address = beside(
            3, [e2_first, e2_square, e2_cross, e2_c, e2_valid, e2_dx, e2_address])
        # stage 4: the sums registered
        affine_sum = Signal(signed(acc_bits + operand.width + 2))  # A*x + C, exact
        dx_sum = Signal(signed(max(acc_bits + operand.width, ar.coefficient_width + operand.width, ar.bias_width) + 3))
        m.d.sync += [affine_sum.eq(e3_affine + e3_c), dx_sum.eq(e3_dy + e3_x)]  # A*x + C, K1*dy + K2*x + K3
        travelling = beside(4, [e3_first, e3_square, e3_cross, e3_valid, e3_dx, e3_address])
        # stage 5: the sums' rounding shifts (requantize's rounding, registered before its clamp)
        rounded_affine = Signal(signed(len(affine_sum) - sf + 1))
        rounded_dx = Signal(signed(len(dx_sum) - sf + 1))
        m.d.sync += [rounded_affine.eq(round_shift(affine_sum, sf, numerics.rounding, signed=True)),
                     rounded_dx.eq(round_shift(dx_sum, sf, numerics.rounding, signed=True))]
        travelling = beside(5, travelling)
        # stage 6: the clamps to the operand format
        y, dx = Signal(signed(operand.width)), Signal(signed(operand.width))
        m.d.sync += [y.eq(requantize(rounded_affine, 0, numerics.rounding, operand)),
                     dx.eq(requantize(rounded_dx, 0, numerics.rounding, operand))]
        # the last stage (with stage 6's registers): ReLU and its mask, the running sums and the write
        first, e6_square, e6_cross, e6_valid, e6_dx, e6_address = beside(6, travelling)
        limit = imm
        relu_y = Mux(y < 0, 0, Mux((limit != 0) & (y > limit), limit, y))
        mask = (y > 0) & ((limit == 0) | (y < limit))
        with m.If(e6_valid):
            with m.Switch(op):
                with m.Case(_OPS["statistics"]):
                    m.d.sync += [s1_sum.eq(s1_sum + first), s2_sum.eq(s2_sum + e6_square)]
                with m.Case(_OPS["affine"]):
                    m.d.comb += self.scratch_write.data.eq(y)
                with m.Case(_OPS["affine_relu"]):
                    m.d.comb += self.scratch_write.data.eq(relu_y)
                with m.Case(_OPS["relu_mask"]):
                    m.d.comb += self.scratch_write.data.eq(Mux(mask, first, 0))
                with m.Case(_OPS["backward"]):
                    with m.If(e6_dx):
                        m.d.comb += self.scratch_write.data.eq(dx)
                    with m.Else():
                        m.d.sync += [r1_sum.eq(r1_sum + first), r2_sum.eq(r2_sum + e6_cross)]
            writes = (op == _OPS["affine"]) | (op == _OPS["affine_relu"]) | (op == _OPS["relu_mask"]) | (
                is_backward & e6_dx)
            m.d.comb += [self.scratch_write.en.eq(writes), self.scratch_write.addr.eq(e6_address)]
        m.d.sync += stream_valid.eq(0)

        # -- the scalar unit's command and result ---------------------------------------------------------------
        command = scalar.command.payload
        m.d.comb += [
            command.mode.eq(scalar_mode),
            command.s1.eq(regs["s1"]),
            command.s2.eq(regs["s2"]),
            command.count.eq(count),
            command.gamma.eq(gamma_in),
            command.beta.eq(beta_in),
            command.eps.eq(imm),
            command.rstd.eq(regs["rstd"]),
            command.w1.eq(w1),
            command.w2.eq(w2),
            command.r1.eq(regs["r1"]),
            command.r2.eq(regs["r2"]),
        ]
        result = scalar.result.payload

        # -- the sequencer -------------------------------------------------------------------------------------
        def next_set():
            with m.If(last_set):
                m.next = "DONE"
            with m.Else():
                m.next = "SET_BEGIN"
                m.d.sync += set_base.eq(set_base + Mux(gn, count, hw))  # GN: + P*H*W (the next group or sample)
                with m.If(gn):
                    with m.If(group == groups_last):
                        m.d.sync += [group.eq(0), channel_base.eq(0), outer.eq(outer + 1), block.eq(block + words)]
                    with m.Else():
                        m.d.sync += [group.eq(group + 1), channel_base.eq(channel_base + per_group)]
                with m.Else():
                    m.d.sync += outer.eq(outer + 1)

        def set_end():
            with m.If(op == _OPS["statistics"]):
                m.next = "STATS_WRITE0"
            with m.Elif(is_backward & ~phase_dx & ~reduce_only):
                m.next = "BACKWARD_SCALAR0"
            with m.Else():
                next_set()

        def next_plane():
            with m.If(last_k):
                set_end()
            with m.Else():
                m.d.sync += next_k()
                m.next = "PLANE"

        def start_scalar(mode_value):
            m.d.sync += [scalar_mode.eq(mode_value), scalar_sent.eq(0)]
            m.next = "SCALAR"

        def latency_waits(name, then):
            """The read_latency - 1 states ``name0``, ... that wait for a read's data, then ``then``; returns the
            first state's name (``then`` without waits)."""
            for index in reversed(range(extra)):
                with m.State(f"{name}{index}"):
                    m.next = then
                then = f"{name}{index}"
            return then

        # the states after a set's (or a channel's) last element read: the waits for its stages, then (DRAIN, and
        # R_WRITE0 of the reductions) its sums; the reads of the old sums go read_latency - 1 states before the
        # states they took at latency 1, into the waits, so their data arrives in time without an extra state
        drain_waits = ELEMENT_STAGES - 1 + extra
        drain = [f"DRAIN_WAIT{index}" for index in range(drain_waits)] + ["DRAIN", "PLANE_END"]
        stats_chain = drain + [f"STATS_WRITE{index}" for index in range(4)]
        first = stats_chain.index("STATS_WRITE0") - extra
        stats_reads = {stats_chain[first]: ("s1", "old0"), stats_chain[first + 1]: ("s2", "old1")}
        r_chain = [f"R_WAIT{index}" for index in range(drain_waits)] + [f"R_WRITE{index}" for index in range(4)]
        first = r_chain.index("R_WRITE0") - extra
        r_reads = {r_chain[first]: ("r1", "old0"), r_chain[first + 1]: ("r2", "old1")}

        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [
                    funct.eq(decoder.field(word, "funct")),
                    dst.eq(decoder.field(word, "dst", "compute")),
                    src0.eq(decoder.field(word, "src0", "compute")),
                    src1.eq(decoder.field(word, "src1", "compute")),
                    src2.eq(decoder.field(word, "src2", "compute")),
                    imm.eq(decoder.field(word, "imm", "compute")),
                    samples.eq(shape_field(shape, "samples")),
                    channels.eq(shape_field(shape, "channels")),
                    height.eq(shape_field(shape, "height")),
                    width.eq(shape_field(shape, "width")),
                    groups.eq(shape_field(shape, "groups")),
                ]
                m.next = "INIT"
            with m.State("INIT"):
                m.d.sync += [hw.eq(height * width), per_group.eq(0), per_group_sum.eq(0)]
                with m.If(gn):
                    m.next = "DIVIDE"
                with m.Else():
                    m.next = "SETUP"
            with m.State("DIVIDE"):  # P = C/G by repeated addition (final in its last cycle)
                with m.If(per_group_sum >= channels):
                    m.next = "SETUP"
                with m.Else():
                    m.d.sync += [per_group_sum.eq(per_group_sum + groups), per_group.eq(per_group + 1)]
            with m.State("SETUP"):
                set_words = Mux(gn, groups, channels)
                m.d.sync += [
                    count.eq(count_factor * hw), set_base.eq(0),
                    plane_stride.eq(Mux(gn, 1, channels) * hw),
                    words.eq(times(set_words, 2) + times(channels, 6)),
                    outer.eq(0), group.eq(0), channel_base.eq(0),
                    p_channel.eq(0), p_sample.eq(0), p_group.eq(0), p_in_group.eq(0), block.eq(0),
                ]
                with m.If((op == _OPS["param_grads"]) | (op == _OPS["param_grads_accumulate"])):
                    m.next = "GRADS_CHANNEL"
                with m.Else():
                    m.next = "SET_BEGIN"

            # ---- sets -----------------------------------------------------------------------------------------
            with m.State("SET_BEGIN"):
                m.d.sync += first_k()
                m.d.sync += [phase_dx.eq(0), s1_sum.eq(0), s2_sum.eq(0), r1_sum.eq(0), r2_sum.eq(0),
                             w1.eq(0), w2.eq(0)]
                with m.If(op == _OPS["constants"]):
                    m.next = "CONSTANTS_S1"
                with m.Elif(dx_only):
                    m.next = "STORED0"
                with m.Else():
                    m.next = "PLANE"

            # ---- planes ---------------------------------------------------------------------------------------
            with m.State("PLANE"):
                m.d.sync += element.eq(0)
                with m.If((op == _OPS["affine"]) | (op == _OPS["affine_relu"]) | (op == _OPS["relu_mask"])
                          | (is_backward & phase_dx)):
                    acc_read(block_address("table", "a", plane_channel), "a")
                with m.Elif(is_backward):
                    acc_read(block_address("src2", "gamma", plane_channel), "gamma")
                m.next = "PLANE_C"
            with m.State("PLANE_C"):
                # a set's first plane (BN: every PLANE) at set_base, a GN channel's next plane H*W further
                m.d.sync += plane_base.eq(Mux(k == 0, set_base, plane_base + plane_stride))
                with m.If((op == _OPS["affine"]) | (op == _OPS["affine_relu"]) | (op == _OPS["relu_mask"])):
                    acc_read(block_address("table", "c", plane_channel), "c")
                m.next = "STREAM"
            with m.State("STREAM"):
                offset = plane_base + element
                m.d.comb += [
                    self.scratch_read0.en.eq(1), self.scratch_read0.addr.eq((src0 + offset)[:ADDRESS_WIDTH]),
                    self.scratch_read1.en.eq((op == _OPS["relu_mask"]) | is_backward),
                    self.scratch_read1.addr.eq((src1 + offset)[:ADDRESS_WIDTH]),
                ]
                m.d.sync += [stream_valid.eq(1), write_address.eq((dst + offset)[:ADDRESS_WIDTH]),
                             element.eq(element + 1)]
                # The state after the last element's read computes it (the pipeline stage runs in any state).
                with m.If(element == hw_last):
                    with m.If(continuous & ~last_k):  # the set's next plane, without a break
                        m.d.sync += next_k()
                        m.d.sync += [element.eq(0), plane_base.eq(plane_base + plane_stride)]
                    with m.Elif(is_backward & ~phase_dx & (gn | last_k)):  # the channel's r1, r2 are complete
                        m.next = "R_WAIT0"
                    with m.Elif(~last_k):  # the next plane's constants (read after this one's last use)
                        m.d.sync += next_k()
                        m.next = "PLANE"
                    with m.Else():
                        m.next = "DRAIN_WAIT0"
            # the last element's stages (ELEMENT_STAGES - 1 + read_latency - 1 waits, then DRAIN: its sums and
            # write); statistics reads its old sums in the states of stats_reads
            for index, state in enumerate(drain):
                with m.State(state):
                    if state in stats_reads:
                        part, tag = stats_reads[state]
                        with m.If(op == _OPS["statistics"]):
                            acc_read(block_address("dst", part, set_word), tag)
                    if state == "PLANE_END":
                        set_end()
                    else:
                        m.next = drain[index + 1]

            # ---- r1, r2 of a channel (backward reductions; R_WRITE0 adds the last element's) -------------------
            for index, state in enumerate(r_chain[: r_chain.index("R_WRITE2")]):
                with m.State(state):
                    if state in r_reads:
                        part, tag = r_reads[state]
                        acc_read(block_address("src2", part, plane_channel), tag)
                    m.next = r_chain[index + 1]
            with m.State("R_WRITE2"):  # gamma * r1, gamma * r2: the pieces' products of R_WRITE1 summed
                m.d.sync += [weighted1.eq(weighed1), weighted2.eq(weighed2)]
                acc_write(block_address("src2", "r1", plane_channel), r1_sum + regs["old0"])
                m.next = "R_WRITE3"
            with m.State("R_WRITE3"):
                acc_write(block_address("src2", "r2", plane_channel), r2_sum + regs["old1"])
                m.d.sync += [r1_sum.eq(0), r2_sum.eq(0), w1.eq(w1 + weighted1), w2.eq(w2 + weighted2)]
                next_plane()

            # ---- statistics: write the sums ---------------------------------------------------------------------
            for state, following in (("STATS_WRITE0", "STATS_WRITE1"), ("STATS_WRITE1", "STATS_WRITE2")):
                with m.State(state):
                    if state in stats_reads:
                        part, tag = stats_reads[state]
                        acc_read(block_address("dst", part, set_word), tag)
                    m.next = following
            with m.State("STATS_WRITE2"):
                acc_write(block_address("dst", "s1", set_word), s1_sum + regs["old0"])
                m.next = "STATS_WRITE3"
            with m.State("STATS_WRITE3"):
                acc_write(block_address("dst", "s2", set_word), s2_sum + regs["old1"])
                next_set()

            # ---- backward: the set's constants K2, K3 ----------------------------------------------------------
            with m.State("STORED0"):  # mode 4: W1, W2 from the block's r1, r2
                acc_read(block_address("src2", "r1", outer), "r1")
                m.next = "STORED1"
            with m.State("STORED1"):
                acc_read(block_address("src2", "r2", outer), "r2")
                m.next = "STORED2"
            with m.State("STORED2"):
                acc_read(block_address("src2", "gamma", outer), "gamma")
                m.next = "STORED3"
            with m.State("STORED3"):  # at read_latency 1 gamma arrives (regs["gamma"] from the next cycle)
                m.next = "BACKWARD_SCALAR0"
            # BACKWARD_SCALAR0, BACKWARD_SCALAR1, the waits for rstd, BACKWARD_SCALAR2; mode 4 loads r1_sum, r2_sum
            # with the block's r1, r2 in the state read_latency - 1 after BACKWARD_SCALAR0 (when they and gamma, read
            # in STORED0-2, have arrived); their pieces' products are registered in the next state and W1, W2
            # formed from them in BACKWARD_SCALAR2
            backward_chain = ["BACKWARD_SCALAR0", "BACKWARD_SCALAR1"]
            backward_chain += [f"BACKWARD_WAIT{index}" for index in range(extra)] + ["BACKWARD_SCALAR2"]
            for index, state in enumerate(backward_chain):
                with m.State(state):
                    if index == extra:
                        with m.If(dx_only):  # mode 4: W1, W2 from the block's r1, r2 and gamma, read in STORED0-2
                            m.d.sync += [r1_sum.eq(regs["r1"]), r2_sum.eq(regs["r2"])]
                    if index == extra + 2:  # (BACKWARD_SCALAR2) the pieces' products of the state before, summed
                        with m.If(dx_only):
                            m.d.sync += [w1.eq(weighed1), w2.eq(weighed2)]
                    if state == "BACKWARD_SCALAR0":
                        acc_read(block_address("src2", "s1", set_word), "s1")
                    if state == "BACKWARD_SCALAR1":
                        acc_read(block_address("src2", "rstd", Mux(gn, channel_base, outer)), "rstd")
                    if state == "BACKWARD_SCALAR2":
                        start_scalar(ScalarMode.BACKWARD)
                    else:
                        m.next = backward_chain[index + 1]

            # ---- constants ------------------------------------------------------------------------------------
            with m.State("CONSTANTS_S1"):
                acc_read(block_address("src0", "s1", set_word), "s1")
                m.next = "CONSTANTS_S2"
            with m.State("CONSTANTS_S2"):
                acc_read(block_address("src0", "s2", set_word), "s2")
                m.next = "CONSTANTS_GAMMA"
            constants_beta = latency_waits("CONSTANTS_WAIT", "CONSTANTS_BETA")
            with m.State("CONSTANTS_GAMMA"):
                m.d.comb += [
                    self.scratch_read0.en.eq(1), self.scratch_read0.addr.eq((src1 + plane_channel)[:ADDRESS_WIDTH]),
                    self.scratch_read1.en.eq(1),
                    self.scratch_read1.addr.eq((beta_base + plane_channel)[:ADDRESS_WIDTH]),
                ]
                m.next = constants_beta
            with m.State("CONSTANTS_BETA"):  # gamma and beta arrive
                m.d.sync += [gamma_in.eq(self.scratch_read0.data), beta_in.eq(self.scratch_read1.data)]
                start_scalar(ScalarMode.FORWARD)
            with m.State("CONSTANTS_RSTD"):
                acc_write(block_address("dst", "rstd", plane_channel), out_rstd)
                m.next = "CONSTANTS_A"
            with m.State("CONSTANTS_A"):
                acc_write(block_address("dst", "a", plane_channel), out_a)
                m.next = "CONSTANTS_C"
            with m.State("CONSTANTS_C"):
                acc_write(block_address("dst", "c", plane_channel), out_c)
                m.next = "CONSTANTS_G"
            with m.State("CONSTANTS_G"):
                acc_write(block_address("dst", "gamma", plane_channel), gamma_in)
                with m.If(last_k):
                    next_set()
                with m.Else():
                    m.d.sync += next_k()
                    m.next = "CONSTANTS_GAMMA"

            # ---- param_grads ----------------------------------------------------------------------------------
            with m.State("GRADS_CHANNEL"):
                m.d.sync += [dgamma_sum.eq(0), dbeta_sum.eq(0), p_sample.eq(0)]
                m.d.sync += [grads_bases[part].eq(src0 + offsets[part]) for part in grads_bases]
                m.next = "GRADS_S1"
            with m.State("GRADS_S1"):
                acc_read(block_address("src0", "s1", Mux(gn, p_group, p_channel), grads=True), "s1")
                m.next = "GRADS_RSTD"
            with m.State("GRADS_RSTD"):
                acc_read(block_address("src0", "rstd", p_channel, grads=True), "rstd")
                m.next = "GRADS_R1"
            with m.State("GRADS_R1"):
                acc_read(block_address("src0", "r1", p_channel, grads=True), "r1")
                m.next = "GRADS_R2"
            grads_wait = latency_waits("GRADS_LATENCY", "GRADS_WAIT")
            with m.State("GRADS_R2"):
                acc_read(block_address("src0", "r2", p_channel, grads=True), "r2")
                m.next = grads_wait
            with m.State("GRADS_WAIT"):  # r2 arrives (regs["r2"] from the next cycle, the scalar unit's command)
                start_scalar(ScalarMode.DGAMMA)
            with m.State("GRADS_WRITE0"):
                acc_read((dst + p_channel)[:ADDRESS_WIDTH], "old0")
                m.next = "GRADS_WRITE1"
            grads_write = latency_waits("GRADS_WRITE_WAIT", "GRADS_WRITE2")
            with m.State("GRADS_WRITE1"):
                acc_read((dbeta_base + p_channel)[:ADDRESS_WIDTH], "old1")
                m.next = grads_write
            with m.State("GRADS_WRITE2"):
                acc_write((dst + p_channel)[:ADDRESS_WIDTH], dgamma_sum + regs["old0"])
                m.next = "GRADS_WRITE3"
            with m.State("GRADS_WRITE3"):
                acc_write((dbeta_base + p_channel)[:ADDRESS_WIDTH], dbeta_sum + regs["old1"])
                with m.If(p_channel == channels_last):
                    m.next = "DONE"
                with m.Else():
                    m.d.sync += p_channel.eq(p_channel + 1)
                    with m.If(p_in_group == per_group_last):
                        m.d.sync += [p_in_group.eq(0), p_group.eq(p_group + 1)]
                    with m.Else():
                        m.d.sync += p_in_group.eq(p_in_group + 1)
                    m.next = "GRADS_CHANNEL"

            # ---- the scalar unit --------------------------------------------------------------------------------
            with m.State("SCALAR"):
                m.d.comb += [scalar.command.valid.eq(~scalar_sent), scalar.result.ready.eq(1)]
                with m.If(scalar.command.ready):
                    m.d.sync += scalar_sent.eq(1)
                with m.If(scalar.result.valid), m.Switch(scalar_mode):
                    with m.Case(ScalarMode.FORWARD):
                        m.d.sync += [out_rstd.eq(result.rstd), out_a.eq(result.a), out_c.eq(result.c)]
                        m.next = "CONSTANTS_RSTD"
                    with m.Case(ScalarMode.BACKWARD):
                        m.d.sync += first_k()
                        m.d.sync += [k2.eq(result.k2), k3.eq(result.k3), phase_dx.eq(1)]
                        m.next = "PLANE"
                    with m.Case(ScalarMode.DGAMMA):
                        m.d.sync += [dgamma_sum.eq(dgamma_sum + result.dgamma),
                                     dbeta_sum.eq(dbeta_sum + regs["r1"])]
                        with m.If(~gn | (p_sample == samples_last)):
                            m.next = "GRADS_WRITE0"
                        with m.Else():
                            m.d.sync += [p_sample.eq(p_sample + 1)]  # (GN) the next sample's block
                            m.d.sync += [grads_bases[part].eq(grads_bases[part] + words) for part in grads_bases]
                            m.next = "GRADS_S1"

            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m


def unit_cycles(instruction: isa.Instruction, shape, parameters: CoreParameters,
                numerics: IntegerTraining | None = None, *, max_count: int = 1 << 30,
                read_latency: int = READ_LATENCY) -> int:
    """Cycles from ``start`` to ``done`` of ``instruction`` (a NORM instruction) under ``shape`` (the formula
    of the module docstring) on a unit built with ``read_latency``. ``numerics`` defaults to the preset of the
    operand width (what ``wavecore compile`` uses); the scalar unit's latency depends on its formats."""
    extra = check_read_latency(read_latency) - 1  # the waits a read takes beyond one cycle
    if numerics is None:
        from wavecore.verif.compute_bench import numerics_for

        numerics = numerics_for(parameters)
    latency = _scalar_latency(numerics, max_count)
    name, kind = instruction.funct[:-3], instruction.funct[-2:]
    gn = kind == "gn"
    n, c, h, w, g = (shape[key] for key in ("samples", "channels", "height", "width", "groups"))
    hw = h * w
    per_group = c // g if gn else 1
    cycles = 3 + (per_group + 1 if gn else 0) + 1  # IDLE->INIT, [DIVIDE], SETUP, DONE
    cycles -= 1  # the start cycle is not counted
    sets = n * g if gn else c
    planes = per_group if gn else n
    continuous = not gn or name == "statistics"
    # the planes of one set: without r1/r2 writes (a drain and an end cycle after the last plane), and the
    # backward reduction pass with them (4 cycles a channel, the first one draining)
    waits = ELEMENT_STAGES - 1 + extra  # for the last element's sums and write
    stream = planes * hw + 4 + waits if continuous else planes * (hw + 2) + 2 + waits
    reduction = n * hw + 2 + 4 + waits if not gn else planes * (hw + 2 + 4 + waits)
    imm = instruction.get("imm")
    if name == "statistics":
        return cycles + sets * (1 + stream + 4)
    if name in ("affine", "affine_relu", "relu_mask"):
        return cycles + sets * (1 + stream)
    if name == "constants":
        return cycles + sets * (1 + 2 + per_group * (2 + extra + latency[ScalarMode.FORWARD] + 4))
    if name == "backward":
        mode = imm & 7 if not gn else 0
        if mode in (1, 3):
            return cycles + c * (1 + reduction)
        if mode == 4:
            return cycles + c * (1 + 4 + 3 + extra + latency[ScalarMode.BACKWARD] + stream)
        return cycles + sets * (1 + reduction + stream + 3 + extra + latency[ScalarMode.BACKWARD])
    loops = n if gn else 1
    return cycles + c * (1 + loops * (5 + extra + latency[ScalarMode.DGAMMA]) + 4 + extra)
