"""The loss unit of the WaveCore: ``LOSS.cross_entropy`` and ``LOSS.mean``, bit-exact with the instruction-level
simulator (:meth:`wavecore.golden.core.simulator.Simulator._op_loss`, i.e.
:class:`wavecore.golden.numerics.LossArithmetic` of ``numerics.loss_arithmetic``; formulas in the comment above
that class).

**Interface**: :class:`~wavecore.hdl.core.compute_unit.ComputeUnitSignature` (read that module's docstring);
``read_latency`` (1 to 3) is the cycles from a read to its data on the port. The read data is registered as it
arrives (:func:`~wavecore.hdl.core.compute_unit.arrived`: no subtraction, comparison or sum between the core's lane
select and the unit's registers), so ``L = read_latency + 1`` is the cycles from a read to its data in the unit:
what travels beside a read (valid bits, pass, column, write address) goes through ``L`` register stages to meet
the data, and each engine waits ``L - 1`` cycles more per row for its last read's data.

* ``LOSS.cross_entropy``: ``N = samples`` rows of ``C = channels`` logits at ``src0`` (scratchpad, row-major),
  the labels at ``src1`` (scratchpad, ``N``), ``imm`` = the mini-batch size the gradient divides by; writes
  ``dlogits`` at ``dst`` (scratchpad, ``N * C``) and the per-sample losses at ``src2`` (accumulator, ``N``).
* ``LOSS.mean``: ``dst`` (accumulator, one element) = ``divide_round(sum of the N losses at src0, N)``.

**Datapath**: three engines work on consecutive rows at once (a row is handed on when the next engine is free;
each keeps its own copy of the row's ``m, S, label, d_y``, addresses):

* **F** (read port 0): reads the label, then the row twice: the *max* pass gives ``m = max z_j``; the
  *exponent* pass gives ``d_j = m - z_j``, ``e_j`` from ``K`` exponent tables ``T_i`` (ROMs,
  :class:`amaranth.lib.memory.Memory`, synchronous read, indexed by the ``table_bits``-bit chunks of ``d_j``)
  and ``K - 1`` chained round-half-up products (0 from ``exp_cutoff`` on), registered (stage C),
  ``S = sum e_j`` and ``d_y``;
* **D**: ``S * imm`` as registered partial products (one 18x18 multiplier each) when it takes the row, their sum
  (the divisor) in the next cycle; then a restoring divider, one quotient bit per cycle, computes
  ``q = floor(2**(R+1) / (S * imm))`` in ``Q = reciprocal_width + 1`` cycles (its partial remainder starts at
  ``2**(exp_frac-1)``, below ``S * imm >= 2**exp_frac``), so ``r = (q + 1) >> 1 = divide_round(2**R, S * imm)``.
  Meanwhile ``S`` is normalised
  (shifted left until its top bit is set, ``k`` counting down: at most ``sum_width - 1 - exp_frac`` cycles),
  the logarithm table (a ROM of ``2**table_bits + 1`` entries, two read ports) is read at the ``table_bits``
  bits below the leading one and interpolated with the remaining bits (``(k - exp_frac) ln 2`` from a table of
  constants, no multiplier); the loss ``sat(round((ln S + d_y << (log_frac - logit_frac)) / 16))``, computed in
  six registered stages after the table read (table data; interpolation product and table sum; rounded
  interpolation and ``d_y`` added; the total; the requantizer's floor and rounding/saturation: final while the
  divider still runs), is written from its register to the accumulator when D hands the row to G;
* **G** (read port 1, the scratchpad write port): reads the row a third time, ``e_j`` from the same ROMs
  (second read ports), ``g_j = sat(round((e_j - [j == y] S) * r / 2**(R - grad_frac)))`` to ``dst``: after the
  table read (stage B) ``e_j``, the label's ``S`` and ``r`` are registered (C), then the numerator (N), the
  partial products (P, one 18x18 multiplier each, at most four), their sums (S1, S2, pairwise), the
  requantizer's floor, guard and sticky bits (R1), the rounded and saturated gradient (R2, saturation by bit
  tests), written from that register.

``LOSS.mean`` sums the accumulator elements (one read per cycle) and divides ``2 |sum|`` by ``N`` on the same
divider (``mean_bits = loss_width + 12`` quotient bits, the samples field being 12 bits), rounding half away
from zero as ``divide_round``: the rounded magnitude registered (ROUND), the signed mean saturated by bit tests
registered (SIGN), written from that register (WRITE).

**Timing** (cycle 0 is the ``start`` cycle; ``Q = reciprocal_width + 1``, ``L = read_latency + 1``)::

    cross_entropy: cycles = 3 * C + Q + 14 + 2 * L + (N - 1) * max(2 * C + 4 + L, Q + 2)
    mean:          cycles = N + mean_bits + 4 + L

F takes ``2 * C + 4 + L`` cycles per row (label, two passes, ``L + 2`` cycles for the last logit to arrive and
its registered exponential to reach ``S``, the hand-over), D ``Q + 2`` (the divisor's sum, the division), G
``C + 1 + L`` (it hands its registers on once its last logit's data has passed stage B); the slowest (F or D)
sets the rate. The last row's gradient is written 6 cycles after its stage C (N, P, S1, S2, R1, R2), and the
first row's stage A waits ``L - 1`` cycles for the data. LOSS.mean waits ``L`` cycles for the last loss before
the division, then ROUND and SIGN before the write. At ``read_latency = 1`` (``L = 2``): ``3 * C + Q + 18 +
(N - 1) * max(2 * C + 6, Q + 2)`` and ``N + mean_bits + 6``. The int16 preset has ``Q = 28``, the int8 preset
``Q = 23``; ``mean_bits`` is 44 for both.

**Assumptions**: ``dst`` and ``src0`` of ``LOSS.cross_entropy`` are equal (in place) or their ranges disjoint
(a row's gradient is written while later rows are read; in place, G writes a column ``L + 8`` cycles after
reading it and F reads a row only before D hands it to G, so no read meets a pending write at any ``L``);
``imm >= N`` and the labels are in ``0 .. C - 1`` (the simulator refuses anything else); ``C <= max_classes``.
"""

from __future__ import annotations

from amaranth import Array, C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import IntegerTraining
from wavecore.hdl.core import decoder
from wavecore.hdl.core.compute_unit import (
    READ_LATENCY,
    ComputeUnitSignature,
    arrived,
    check_unit_arguments,
    delay,
    element_widths,
    shape_field,
)
from wavecore.hdl.stream.window import round_up

__all__ = ["LossUnit", "unit_cycles"]

#: Bits of the SHAPE samples field (the largest N of LOSS.mean).
_SAMPLES_BITS = next(spec.width for spec in isa.FORMATS["shape"] if spec.name == "samples")
_LOG_GUARD = 4  # golden.numerics: guard bits of the logarithm below the loss grid
_LOSS_STAGES = 6  # registered stages of the loss after the logarithm table read
_CHUNK = 17  # bits of an unsigned operand chunk of one 18x18 multiplier
_GRADIENT_STAGES = 6  # stages of the gradient after stage C: numerator, partial products, two sums, requantizer

# passes of a logit read
_LABEL, _MAX, _EXP = 0, 1, 2


def divide_cycles(numerics: IntegerTraining) -> int:
    """``Q``: quotient bits (cycles) of the cross-entropy's reciprocal ``floor(2**(R+1) / (S * imm))``."""
    return numerics.loss_arithmetic.reciprocal_width + 1


def mean_bits(numerics: IntegerTraining) -> int:
    """Quotient bits (cycles) of LOSS.mean's division of ``2 |sum|`` by ``N``."""
    return numerics.loss_arithmetic.loss_width + _SAMPLES_BITS


def _chunks(value, signed_value: bool):
    """``[(chunk, shift)]``: ``value`` in ``_CHUNK``-bit unsigned pieces, the top one signed when ``signed_value``
    (each fits one 18x18 multiplier input)."""
    pieces = []
    for low in range(0, len(value), _CHUNK):
        piece = value[low : low + _CHUNK]
        if signed_value and low + _CHUNK >= len(value):
            piece = piece.as_signed()
        pieces.append((piece, low))
    return pieces


def _requantizer(m: Module, value, shift: int, fmt, rounding: str, name: str):
    """``sat(round(value / 2**shift))`` to the two's complement ``fmt`` with the golden rounding
    (:func:`wavecore.hdl.norm.common.requantize_value`), ``shift >= 1``, in two registered stages: the floor, guard
    and sticky bits, then the rounding and the saturation (bit tests on the rounded value, no compares). Returns
    the result register (valid two cycles after ``value``)."""
    assert shift >= 1 and fmt.signed
    value = value.as_signed() if not value.shape().signed else value
    floor = Signal(signed(len(value) - shift), name=f"{name}_floor")
    guard, sticky, negative = (Signal(name=f"{name}_{n}") for n in ("guard", "sticky", "negative"))
    m.d.sync += [floor.eq(value >> shift), guard.eq(value[shift - 1]), negative.eq(value[-1]),
                 sticky.eq(value[: shift - 1].any() if shift > 1 else 0)]
    up = round_up(rounding, guard, sticky, floor[0], negative)
    rounded = Signal(signed(len(floor) + 1), name=f"{name}_rounded")
    m.d.comb += rounded.eq(floor + up)
    result = Signal(signed(fmt.width), name=name)
    k = fmt.width - 1
    if len(rounded) <= fmt.width:
        m.d.sync += result.eq(rounded)
    else:  # within the format: the bits from the format's sign up all equal the sign
        over = ~rounded[-1] & rounded[k:].any()
        under = rounded[-1] & ~rounded[k:].all()
        m.d.sync += result.eq(Mux(over, fmt.max, Mux(under, fmt.min, rounded[: fmt.width])))
    return result


def unit_cycles(instruction: isa.Instruction, shape: Shape, parameters: CoreParameters,
                numerics: IntegerTraining | None = None, *, read_latency: int = READ_LATENCY) -> int:
    """Cycles from ``start`` to ``done`` (module docstring) at ``read_latency``; ``numerics`` defaults to the
    compiler's (:func:`wavecore.verif.compute_bench.numerics_for`)."""
    if numerics is None:
        from wavecore.verif.compute_bench import numerics_for

        numerics = numerics_for(parameters)
    n, classes, latency = shape["samples"], shape["channels"], read_latency + 1  # to the arrival registers
    if instruction.funct == "mean":
        return n + mean_bits(numerics) + 4 + latency
    q_bits = divide_cycles(numerics)
    return 3 * classes + q_bits + 14 + 2 * latency + (n - 1) * max(2 * classes + 4 + latency, q_bits + 2)



class LossUnit(wiring.Component):
    """LOSS.cross_entropy and LOSS.mean (see the module docstring).

    Parameters
    ----------
    parameters : CoreParameters
    numerics : IntegerTraining
        Its ``loss_arithmetic`` gives the formats, grids, tables and rounding.
    read_latency : int
        Cycles from a read's ``en`` to its ``data`` (1 to 3; see :mod:`wavecore.hdl.core.compute_unit`).
    """

    def __init__(self, parameters: CoreParameters, numerics: IntegerTraining, *, read_latency: int = READ_LATENCY):
        check_unit_arguments(parameters, numerics, read_latency)
        if numerics.loss != "integer":
            raise ValueError(f"numerics must use the on-chip loss (loss='integer'), not {numerics.loss!r}")
        a = numerics.loss_arithmetic
        widths = element_widths(parameters)
        for name in ("logits", "gradient"):
            if getattr(a, name).width > widths["scratchpad"]:
                raise ValueError(f"the {name} format ({getattr(a, name).width} bits) does not fit a "
                                 f"{widths['scratchpad']}-bit scratchpad element")
        if a.loss_width > widths["accumulator"]:
            raise ValueError(f"the loss format ({a.loss_width} bits) does not fit a {widths['accumulator']}-bit "
                             "accumulator element")
        if a.max_batch > 1 << 16:
            raise ValueError(f"max_batch must be at most 65536 (imm is 16 bits), not {a.max_batch}")
        normalise = a.sum_width - 1 - a.exp_frac
        if normalise + 1 + _LOSS_STAGES > divide_cycles(numerics):
            raise ValueError(f"the divider's {divide_cycles(numerics)} cycles do not cover the logarithm's "
                             f"{normalise} normalisation steps, its table read and its {_LOSS_STAGES} stages")
        if -(-(a.sum_width + 1) // _CHUNK) * -(-a.reciprocal_width // _CHUNK) > 4 or a.sum_width > 2 * _CHUNK:
            raise ValueError(f"the gradient's product ({a.sum_width + 1} x {a.reciprocal_width} bits) or the divisor "
                             f"({a.sum_width} x 16 bits) needs more multipliers than its stages add up")
        self.parameters, self.numerics, self.arithmetic = parameters, numerics, a
        self.read_latency = read_latency
        super().__init__(ComputeUnitSignature(parameters))

    def _exponential(self, m: Module, tables, difference, name: str):
        """``(e, cutoff)`` one cycle after ``difference``: table ROM read ports (one per table, on the shared
        ROMs) and the chained products; ``e`` is not yet zeroed at the cutoff, ``cutoff`` is registered."""
        a = self.arithmetic
        tb, ef = a.table_bits, a.exp_frac
        outputs = []
        for index, memory in enumerate(tables):
            port = memory.read_port()
            m.d.comb += port.addr.eq(difference[index * tb : (index + 1) * tb])
            outputs.append(port.data)
        value = outputs[0]
        for index, table in enumerate(outputs[1:], 1):
            chained = Signal(ef + 1, name=f"{name}_chain{index}")
            m.d.comb += chained.eq((value * table + (1 << (ef - 1))) >> ef)
            value = chained
        cutoff = Signal(name=f"{name}_cutoff")
        m.d.sync += cutoff.eq(difference >= a.exp_cutoff)
        e = Signal(ef + 1, name=f"{name}_e")
        m.d.comb += e.eq(Mux(cutoff, 0, value))
        return e

    def elaborate(self, platform):
        m = Module()
        a = self.arithmetic
        tb, ef, sw = a.table_bits, a.exp_frac, a.sum_width
        word, shape = self.instruction, self.shape
        dst, src0, src1, src2, imm = (decoder.field(word, name, "compute")
                                      for name in ("dst", "src0", "src1", "src2", "imm"))
        is_mean = decoder.field(word, "funct") == isa.FUNCTS["LOSS"]["mean"][0]
        samples, classes = shape_field(shape, "samples"), shape_field(shape, "channels")
        q_bits, w_bits = divide_cycles(self.numerics), mean_bits(self.numerics)
        tables = []
        for index, table in enumerate(a.exp_tables):
            memory = Memory(shape=unsigned(ef + 1), depth=1 << tb, init=table)
            m.submodules[f"exp_table{index}"] = memory
            tables.append(memory)
        address = len(dst)
        extra = self.read_latency  # register stages beside a read beyond the first (to the arrival registers)
        logit_width = len(self.scratch_read0.data)
        read0, read1, read_acc = (arrived(m, port, name) for port, name in (
            (self.scratch_read0, "read0_data"), (self.scratch_read1, "read1_data"), (self.acc_read, "acc_data")))

        # -- divider (restoring, one quotient bit per cycle), shared by the D engine and LOSS.mean ------------
        divisor = Signal(max(a.divisor_width, _SAMPLES_BITS))
        remainder = Signal(len(divisor) + 1)
        dividend = Signal(w_bits)
        quotient = Signal(max(q_bits, w_bits))
        divide_count = Signal(range(max(q_bits, w_bits) + 1))
        shifted = Cat(dividend[-1], remainder)
        fits = shifted >= divisor
        with m.If(divide_count != 0):
            m.d.sync += [remainder.eq(Mux(fits, shifted - divisor, shifted)), dividend.eq(dividend << 1),
                         quotient.eq(Cat(fits, quotient)), divide_count.eq(divide_count - 1)]

        # == F engine: label, max pass, exponent pass of one row on read port 0 ====================================
        f_row = Signal(len(samples))
        f_column = Signal(len(classes))
        f_logit_base, f_grad_base, f_label_address, f_loss_address = (Signal(address, name=f"f_{n}") for n in (
            "logit_base", "grad_base", "label_address", "loss_address"))
        f_wait = Signal()
        f_ready = Signal()  # the row's S, m, label, d_y are final (state HOLD)
        accept = Signal()  # the D engine takes them in this cycle
        f_last_column = f_column == classes - 1
        f_issue, f_pass = Signal(), Signal(2)
        f_issued_valid, f_issued_pass, f_issued_first = Signal(), Signal(2), Signal()
        f_issued_column = Signal.like(f_column)
        m.d.sync += [f_issued_valid.eq(f_issue), f_issued_pass.eq(f_pass), f_issued_first.eq(f_column == 0),
                     f_issued_column.eq(f_column)]
        # stage A: the read's data arrives (L = read_latency + 1 cycles after the issue)
        fa_valid, fa_pass, fa_first, fa_column = (delay(m, value, extra, f"fa_{n}") for value, n in (
            (f_issued_valid, "valid"), (f_issued_pass, "pass"), (f_issued_first, "first"),
            (f_issued_column, "column")))
        logit = read0
        f_max = Signal(signed(logit_width))
        f_label = Signal(logit_width)
        with m.If(fa_valid & (fa_pass == _LABEL)):
            m.d.sync += f_label.eq(logit.as_unsigned())
        with m.If(fa_valid & (fa_pass == _MAX)):
            m.d.sync += f_max.eq(Mux(fa_first | (logit > f_max), logit, f_max))
        f_difference = Signal(a.difference_width)
        m.d.comb += f_difference.eq(f_max - logit)
        f_dy = Signal(a.difference_width)
        with m.If(fa_valid & (fa_pass == _EXP) & (fa_column == f_label)):
            m.d.sync += f_dy.eq(f_difference)
        fb_valid, fb_first = Signal(), Signal()
        m.d.sync += [fb_valid.eq(fa_valid & (fa_pass == _EXP)), fb_first.eq(fa_first)]
        f_e = self._exponential(m, tables, f_difference, "f")
        # stage C: e_j registered (the table read's data goes to a register, not into the sum's carry chain)
        fc_valid, fc_first = Signal(), Signal()
        fc_e = Signal.like(f_e)
        m.d.sync += [fc_valid.eq(fb_valid), fc_first.eq(fb_first), fc_e.eq(f_e)]
        f_total = Signal(sw)
        with m.If(fc_valid):
            m.d.sync += f_total.eq(Mux(fc_first, fc_e, f_total + fc_e))

        with m.FSM(name="f"):
            with m.State("IDLE"):
                m.d.sync += [f_row.eq(0), f_column.eq(0), f_logit_base.eq(src0), f_grad_base.eq(dst),
                             f_label_address.eq(src1), f_loss_address.eq(src2)]
                with m.If(self.start & ~is_mean):
                    m.next = "LABEL"
            with m.State("LABEL"):
                m.d.comb += [f_issue.eq(1), f_pass.eq(_LABEL), self.scratch_read0.en.eq(1),
                             self.scratch_read0.addr.eq(f_label_address)]
                m.next = "MAX"
            for state, pass_, following in (("MAX", _MAX, "EXP"), ("EXP", _EXP, "DRAIN1")):
                with m.State(state):
                    m.d.comb += [f_issue.eq(1), f_pass.eq(pass_), self.scratch_read0.en.eq(1),
                                 self.scratch_read0.addr.eq(f_logit_base + f_column)]
                    m.d.sync += f_column.eq(Mux(f_last_column, 0, f_column + 1))
                    with m.If(f_last_column):
                        m.d.sync += f_wait.eq(1)
                        m.next = following
            for stage in range(1, extra + 2):  # the last logits are still on their way, the last exponential is
                with m.State(f"DRAIN{stage}"):  # registered in stage C (f_wait stays set)
                    m.next = f"DRAIN{stage + 1}" if stage <= extra else "SUM"
            with m.State("SUM"):  # the last exponentials reach the sum
                m.d.sync += f_wait.eq(0)
                with m.If(~f_wait):
                    m.next = "HOLD"
            with m.State("HOLD"):
                m.d.comb += f_ready.eq(1)
                with m.If(accept):
                    m.d.sync += [f_row.eq(f_row + 1), f_logit_base.eq(f_logit_base + classes),
                                 f_grad_base.eq(f_grad_base + classes), f_label_address.eq(f_label_address + 1),
                                 f_loss_address.eq(f_loss_address + 1)]
                    with m.If(f_row == samples - 1):
                        m.next = "FINISHED"
                    with m.Else():
                        m.next = "LABEL"
            with m.State("FINISHED"), m.If(self.done):
                m.next = "IDLE"

        # == D engine: divider (reciprocal) and logarithm (loss) of one row =========================================
        d_max = Signal.like(f_max)
        d_label = Signal.like(f_label)
        d_total = Signal.like(f_total)
        d_logit_base, d_grad_base, d_loss_address = (Signal(address, name=f"d_{n}") for n in (
            "logit_base", "grad_base", "loss_address"))
        d_last = Signal()
        d_dy = Signal.like(f_dy)
        handoff = Signal()  # to the G engine, in this cycle
        g_free = Signal()
        normalised = Signal(sw)
        leading = Signal(range(sw))
        scale_pieces = _chunks(f_total, False)
        scale_parts = [Signal(len(piece) + len(imm), name=f"scale_part{k}") for k, (piece, _) in
                       enumerate(scale_pieces)]
        with m.If(accept):
            m.d.sync += [d_max.eq(f_max), d_label.eq(f_label), d_total.eq(f_total), d_dy.eq(f_dy),
                         d_logit_base.eq(f_logit_base), d_grad_base.eq(f_grad_base),
                         d_loss_address.eq(f_loss_address), d_last.eq(f_row == samples - 1),
                         normalised.eq(f_total), leading.eq(sw - 1)]
            # the divisor S * imm: partial products of S's chunks registered here, their sum in SCALE
            m.d.sync += [part.eq(piece * imm) for part, (piece, _) in zip(scale_parts, scale_pieces, strict=True)]
        with m.Elif(~normalised[-1]):
            m.d.sync += [normalised.eq(normalised << 1), leading.eq(leading - 1)]
        rest_bits = sw - 1 - tb
        index = normalised[rest_bits : sw - 1]
        log_memory = Memory(shape=unsigned(max(a.log_table).bit_length()), depth=len(a.log_table),
                            init=a.log_table)
        m.submodules.log_table = log_memory
        low, high = log_memory.read_port(), log_memory.read_port()
        m.d.comb += [low.addr.eq(index), high.addr.eq(index + 1)]
        # the loss in _LOSS_STAGES registered stages (the table read data, the interpolation product, the sum,
        # the requantization): final long before the divider hands the row on (checked at construction)
        low_data, step_product = Signal.like(low.data), Signal(signed(len(low.data) + rest_bits + 2))
        log_step, log_rest = Signal(signed(len(low.data) + 1)), Signal(max(1, rest_bits))
        m.d.sync += low_data.eq(low.data)
        interpolated = Signal(signed(len(low.data) + 1))
        if rest_bits:
            m.d.sync += [log_step.eq(high.data.as_signed() - low.data.as_signed()),
                         log_rest.eq(normalised[:rest_bits])]
            m.d.sync += step_product.eq(log_step * log_rest)
            m.d.comb += interpolated.eq((step_product + (1 << (rest_bits - 1))) >> rest_bits)
        log_integer = Signal(signed(len(leading) + 1 + max(a.log_table).bit_length()))  # (k - exp_frac) * ln 2
        # a table of the sum_width multiples (no multiplier): looked up, registered
        multiples = Array(C((k - ef) * a.log_table[-1], signed(len(log_integer))) for k in range(sw))
        m.d.sync += log_integer.eq(multiples[leading])
        loss_bits = a.log_frac + a.difference_width + (sw - 1 - ef).bit_length() + 8
        # stage 2 (beside the product): the table value on the integer part; stage 3: the interpolation rounded,
        # d_y added; stage 4: their sum; stages 5, 6: the requantizer
        log_base, log_dy = Signal(signed(loss_bits)), Signal(signed(loss_bits))
        interpolated_step = Signal.like(interpolated)
        shifted_loss = Signal(signed(loss_bits))
        m.d.sync += [log_base.eq(log_integer + low_data), interpolated_step.eq(interpolated),
                     log_dy.eq(log_base + (d_dy << (a.log_frac - a.logit_frac))),
                     shifted_loss.eq(log_dy + interpolated_step)]
        loss = _requantizer(m, shifted_loss, _LOG_GUARD, a.loss_format, a.rounding, "loss")
        with m.If(handoff):
            m.d.comb += [self.acc_write.en.eq(1), self.acc_write.addr.eq(d_loss_address),
                         self.acc_write.data.eq(loss)]

        with m.FSM(name="d"):
            with m.State("IDLE"):
                m.d.comb += accept.eq(f_ready)
                with m.If(accept):
                    m.next = "SCALE"
            with m.State("SCALE"):  # the divisor S * imm from the registered partial products
                m.d.sync += [divisor.eq(sum(part << shift for part, (_, shift) in
                                            zip(scale_parts, scale_pieces, strict=True))),
                             remainder.eq(1 << (ef - 1)), dividend.eq(0), quotient.eq(0), divide_count.eq(q_bits)]
                m.next = "DIVIDE"
            with m.State("DIVIDE"), m.If(divide_count == 1):
                m.next = "READY"
            with m.State("READY"):  # quotient final: hand over to G when it is free, take the next row
                m.d.comb += [handoff.eq(g_free), accept.eq(g_free & f_ready)]
                with m.If(accept):
                    m.next = "SCALE"
                with m.Elif(handoff):
                    m.next = "IDLE"

        # == G engine: gradient pass of one row on read port 1, the write port ========================================
        g_max = Signal.like(f_max)
        g_label = Signal.like(f_label)
        g_total = Signal.like(f_total)
        g_reciprocal = Signal(a.reciprocal_width)
        g_logit_base, g_grad_base = Signal(address), Signal(address)
        g_last = Signal()
        g_column = Signal(len(classes))
        with m.If(handoff):
            m.d.sync += [g_max.eq(d_max), g_label.eq(d_label), g_total.eq(d_total),
                         g_reciprocal.eq((quotient[:q_bits] + 1) >> 1), g_logit_base.eq(d_logit_base),
                         g_grad_base.eq(d_grad_base), g_last.eq(d_last)]
        g_issue = Signal()
        g_last_column = g_column == classes - 1
        g_issued_valid, g_issued_last = Signal(), Signal()
        g_issued_column = Signal.like(g_column)
        g_issued_address = Signal(address)
        m.d.sync += [g_issued_valid.eq(g_issue), g_issued_column.eq(g_column),
                     g_issued_address.eq(g_grad_base + g_column), g_issued_last.eq(g_last & g_last_column)]
        # stage A: the read's data arrives
        ga_valid, ga_column, ga_address, ga_last = (delay(m, value, extra, f"ga_{n}") for value, n in (
            (g_issued_valid, "valid"), (g_issued_column, "column"), (g_issued_address, "address"),
            (g_issued_last, "last")))
        g_difference = Signal(a.difference_width)
        m.d.comb += g_difference.eq(g_max - read1)
        gb_valid, gb_last, gb_label = Signal(), Signal(), Signal()
        gb_address = Signal(address)
        m.d.sync += [gb_valid.eq(ga_valid), gb_last.eq(ga_last), gb_label.eq(ga_column == g_label),
                     gb_address.eq(ga_address)]
        g_e = self._exponential(m, tables, g_difference, "g")
        # stage C: e_j, the label's S and r registered (the row's registers may be the next row's from here on)
        gc_e, gc_subtrahend = Signal.like(g_e), Signal.like(g_total)
        gc_reciprocal = Signal.like(g_reciprocal)
        gc_valid, gc_last = Signal(), Signal()
        gc_address = Signal(address)
        m.d.sync += [gc_valid.eq(gb_valid), gc_last.eq(gb_last), gc_address.eq(gb_address), gc_e.eq(g_e),
                     gc_subtrahend.eq(Mux(gb_label, g_total, 0)), gc_reciprocal.eq(g_reciprocal)]
        # stage N: the numerator e_j - [j == y] S registered
        numerator = Signal(signed(sw + 1))
        m.d.sync += numerator.eq(gc_e - gc_subtrahend)
        numerator_reciprocal = Signal.like(gc_reciprocal)
        m.d.sync += numerator_reciprocal.eq(gc_reciprocal)
        # stage P: the partial products (one 18x18 multiplier each) registered; stages S1, S2: their sums, pairwise
        terms = []
        for a_piece, a_shift in _chunks(numerator, True):
            for b_piece, b_shift in _chunks(numerator_reciprocal, False):
                part = Signal(signed(len(a_piece) + len(b_piece) + 1), name=f"g_part{len(terms)}")
                m.d.sync += part.eq(a_piece * b_piece)
                terms.append((part, a_shift + b_shift))
        for level in range(2):
            pairs = [terms[k : k + 2] for k in range(0, len(terms), 2)]
            terms = []
            for pair in pairs:
                total = Signal(signed(a.product_width + 1), name=f"g_sum{level + 1}_{len(terms)}")
                low_shift = pair[0][1]
                m.d.sync += total.eq(sum(part << (shift - low_shift) for part, shift in pair))
                terms.append((total, low_shift))
        (product, product_shift), = terms  # at most four partial products (checked at construction)
        assert product_shift == 0
        # stages R1, R2: the requantizer; the write from its register
        gradient = _requantizer(m, product, a.reciprocal_frac - a.grad_frac, a.gradient, a.rounding, "gradient")
        gw_valid, gw_last, gw_address = (delay(m, value, _GRADIENT_STAGES, f"gw_{n}") for value, n in (
            (gc_valid, "valid"), (gc_last, "last"), (gc_address, "address")))
        with m.If(gw_valid):
            m.d.comb += [self.scratch_write.en.eq(1), self.scratch_write.addr.eq(gw_address),
                         self.scratch_write.data.eq(gradient)]

        with m.FSM(name="g"):
            with m.State("IDLE"):
                m.d.comb += g_free.eq(1)
                m.d.sync += g_column.eq(0)
                with m.If(handoff):
                    m.next = "GRADIENT"
            with m.State("GRADIENT"):
                m.d.comb += [g_issue.eq(1), self.scratch_read1.en.eq(1),
                             self.scratch_read1.addr.eq(g_logit_base + g_column)]
                m.d.sync += g_column.eq(g_column + 1)
                with m.If(g_last_column):
                    m.next = "TAIL"
            for stage in range(extra + 1):  # the last token's stages A and B still read the row's registers
                with m.State("TAIL" if stage == 0 else f"TAIL{stage}"):
                    m.next = f"TAIL{stage + 1}" if stage < extra else "IDLE"

        # == LOSS.mean ==================================================================================
        mean_total = Signal(signed(a.loss_width + _SAMPLES_BITS + 1))
        mean_column = Signal(_SAMPLES_BITS)
        mean_issued, mean_issued_first = Signal(), Signal()
        mean_arrives = delay(m, mean_issued, extra, "mean_arrives")
        mean_first = delay(m, mean_issued_first, extra, "mean_first")
        with m.If(mean_arrives):
            m.d.sync += mean_total.eq(Mux(mean_first, read_acc, mean_total + read_acc))
        negative = mean_total[-1]
        magnitude = Mux(negative, -mean_total, mean_total)
        # ROUND: |mean| = (q + 1) >> 1 registered; SIGN: the signed mean saturated to the loss format (bit tests
        # on |mean|: above 2**k - 1, or 2**k, for a negative mean) registered; WRITE from that register
        mean_magnitude = Signal(w_bits)
        mean = Signal(signed(a.loss_width))
        k = a.loss_format.max.bit_length()
        assert a.loss_format.max == 2**k - 1 and a.loss_format.min == -(2**k) and w_bits > k + 1
        over_positive = mean_magnitude[k:].any()
        over_negative = mean_magnitude[k + 1 :].any() | (mean_magnitude[k] & mean_magnitude[:k].any())
        negated = Signal(signed(k + 2))
        m.d.comb += negated.eq(-mean_magnitude[: k + 1])
        m.d.sync += mean_issued.eq(0)
        mean_write = Signal()
        with m.FSM(name="mean"):
            with m.State("IDLE"):
                m.d.sync += mean_column.eq(0)
                with m.If(self.start & is_mean):
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [self.acc_read.en.eq(1), self.acc_read.addr.eq(src0 + mean_column)]
                m.d.sync += [mean_column.eq(mean_column + 1), mean_issued.eq(1),
                             mean_issued_first.eq(mean_column == 0)]
                with m.If(mean_column == samples - 1):
                    m.next = "DRAIN1" if extra else "SUM"
            for stage in range(1, extra + 1):  # the last losses are still on their way
                with m.State(f"DRAIN{stage}"):
                    m.next = f"DRAIN{stage + 1}" if stage < extra else "SUM"
            with m.State("SUM"):
                m.next = "SETUP"
            with m.State("SETUP"):
                m.d.sync += [divisor.eq(samples), remainder.eq(0), dividend.eq(magnitude << 1), quotient.eq(0),
                             divide_count.eq(w_bits)]
                m.next = "DIVIDE"
            with m.State("DIVIDE"), m.If(divide_count == 1):
                m.next = "ROUND"
            with m.State("ROUND"):
                m.d.sync += mean_magnitude.eq((quotient[:w_bits] + 1) >> 1)
                m.next = "SIGN"
            with m.State("SIGN"):
                m.d.sync += mean.eq(Mux(negative, Mux(over_negative, a.loss_format.min, negated),
                                        Mux(over_positive, a.loss_format.max, mean_magnitude[:k])))
                m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [mean_write.eq(1), self.acc_write.en.eq(1), self.acc_write.addr.eq(dst),
                             self.acc_write.data.eq(mean)]
                m.next = "IDLE"
        m.d.comb += self.done.eq((gw_valid & gw_last) | mean_write)
        return m
