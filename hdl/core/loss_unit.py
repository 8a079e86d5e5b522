"""The loss unit of the WaveCore: ``LOSS.cross_entropy`` and ``LOSS.mean``, bit-exact with the instruction-level
simulator (:meth:`wavecore.golden.core.simulator.Simulator._op_loss`, i.e.
:class:`wavecore.golden.numerics.LossArithmetic` of ``numerics.loss_arithmetic``; formulas in the comment above
that class).

**Interface**: :class:`~wavecore.hdl.core.compute_unit.ComputeUnitSignature` (read that module's docstring).

* ``LOSS.cross_entropy``: ``N = samples`` rows of ``C = channels`` logits at ``src0`` (scratchpad, row-major),
  the labels at ``src1`` (scratchpad, ``N``), ``imm`` = the mini-batch size the gradient divides by; writes
  ``dlogits`` at ``dst`` (scratchpad, ``N * C``) and the per-sample losses at ``src2`` (accumulator, ``N``).
* ``LOSS.mean``: ``dst`` (accumulator, one element) = ``divide_round(sum of the N losses at src0, N)``.

**Datapath** (one row at a time, one logit per cycle in each of three passes over the row, on read port 0):

1. *max* pass: ``m = max z_j`` (the label is read on port 1 with the row's first logit);
2. *exponent* pass: ``d_j = m - z_j``; ``K`` exponent tables ``T_i`` (ROMs, :class:`amaranth.lib.memory.Memory`,
   synchronous read, indexed by the ``table_bits``-bit chunks of ``d_j``) and ``K - 1`` chained round-half-up
   products give ``e_j`` (0 from ``exp_cutoff`` on); ``S = sum e_j``; ``d_y`` is kept;
3. a restoring divider, one quotient bit per cycle, gives ``q = floor(2**(R+1) / (S * imm))`` in ``Q =
   reciprocal_width + 1`` cycles (its partial remainder starts at ``2**(exp_frac-1)``, which is below
   ``S * imm >= 2**exp_frac``), so ``r = (q + 1) >> 1 = divide_round(2**R, S * imm)``. Meanwhile ``S`` is
   normalised (shifted left until its top bit is set, ``k`` counting down: at most ``sum_width - 1 - exp_frac``
   cycles), the logarithm table (a ROM of ``2**table_bits + 1`` entries, two read ports) is read at the top
   ``table_bits`` bits below the leading one, interpolated with the remaining bits, and the loss
   ``sat(round((ln S + d_y << (log_frac - logit_frac)) / 16))`` is written to the accumulator;
4. *gradient* pass: ``e_j`` again from the same tables, ``g_j = sat(round((e_j - [j == y] S) * r /
   2**(R - grad_frac)))`` written to ``dst`` (the product is registered, the write follows it).

``LOSS.mean`` sums the accumulator elements (one read per cycle) and divides ``2 |sum|`` by ``N`` on the same
divider (``mean_bits = loss_width + 12`` quotient bits, the samples field being 12 bits), rounding half away
from zero as ``divide_round``.

**Timing** (cycle 0 is the ``start`` cycle; ``Q = reciprocal_width + 1``)::

    cross_entropy: cycles = N * (3 * C + Q + 1) + 3
    mean:          cycles = N + mean_bits + 3

(each row: ``C`` cycles per pass, 2 cycles for the last exponentials to reach ``S``, one to load the divider,
``Q - 2`` more before the gradient pass may start: its first products need ``r`` two cycles after their read.)
The int16 preset has ``Q = 28``, the int8 preset ``Q = 23``; ``mean_bits`` is 44 for both.

**Assumptions**: ``dst`` and ``src0`` of ``LOSS.cross_entropy`` are equal (in place) or their ranges disjoint
(a row's gradient is written while the next row is read); ``imm >= N`` and the labels are in ``0 .. C - 1``
(the simulator refuses anything else); ``C <= max_classes``.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import IntegerTraining
from wavecore.hdl.core import decoder
from wavecore.hdl.core.compute_unit import ComputeUnitSignature, element_widths, shape_field
from wavecore.hdl.norm.common import requantize_value

__all__ = ["LossUnit", "unit_cycles"]

#: Bits of the SHAPE samples field (the largest N of LOSS.mean).
_SAMPLES_BITS = next(spec.width for spec in isa.FORMATS["shape"] if spec.name == "samples")
_LOG_GUARD = 4  # golden.numerics: guard bits of the logarithm below the loss grid

# passes of a logit read
_MAX, _EXP, _GRAD = 0, 1, 2


def divide_cycles(numerics: IntegerTraining) -> int:
    """``Q``: quotient bits (cycles) of the cross-entropy's reciprocal ``floor(2**(R+1) / (S * imm))``."""
    return numerics.loss_arithmetic.reciprocal_width + 1


def mean_bits(numerics: IntegerTraining) -> int:
    """Quotient bits (cycles) of LOSS.mean's division of ``2 |sum|`` by ``N``."""
    return numerics.loss_arithmetic.loss_width + _SAMPLES_BITS


def unit_cycles(instruction: isa.Instruction, shape: Shape, parameters: CoreParameters,
                numerics: IntegerTraining | None = None) -> int:
    """Cycles from ``start`` to ``done`` (module docstring); ``numerics`` defaults to the compiler's
    (:func:`wavecore.verif.compute_bench.numerics_for`)."""
    if numerics is None:
        from wavecore.verif.compute_bench import numerics_for

        numerics = numerics_for(parameters)
    n, classes = shape["samples"], shape["channels"]
    if instruction.funct == "mean":
        return n + mean_bits(numerics) + 3
    return n * (3 * classes + divide_cycles(numerics) + 1) + 3


class LossUnit(wiring.Component):
    """LOSS.cross_entropy and LOSS.mean (see the module docstring).

    Parameters
    ----------
    parameters : CoreParameters
    numerics : IntegerTraining
        Its ``loss_arithmetic`` gives the formats, grids, tables and rounding.
    """

    def __init__(self, parameters: CoreParameters, numerics: IntegerTraining):
        if not isinstance(parameters, CoreParameters):
            raise TypeError(f"parameters must be a CoreParameters, not {parameters!r}")
        if not isinstance(numerics, IntegerTraining):
            raise TypeError(f"numerics must be an IntegerTraining, not {numerics!r}")
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
        if normalise > divide_cycles(numerics) - 3:
            raise ValueError(f"the divider's {divide_cycles(numerics)} cycles do not cover the logarithm's "
                             f"{normalise} normalisation steps plus 3")
        self.parameters, self.numerics, self.arithmetic = parameters, numerics, a
        super().__init__(ComputeUnitSignature(parameters))

    def elaborate(self, platform):
        m = Module()
        a = self.arithmetic
        tb, ef = a.table_bits, a.exp_frac
        word, shape = self.instruction, self.shape
        dst, src0, src1, src2, imm = (decoder.field(word, name, "compute")
                                      for name in ("dst", "src0", "src1", "src2", "imm"))
        is_mean = decoder.field(word, "funct") == isa.FUNCTS["LOSS"]["mean"][0]
        samples, classes = shape_field(shape, "samples"), shape_field(shape, "channels")
        q_bits, w_bits = divide_cycles(self.numerics), mean_bits(self.numerics)

        # -- sequencer state ------------------------------------------------------------------------------------
        column = Signal(len(classes))  # j of the next read (cross-entropy), i (mean)
        row = Signal(len(samples))
        logit_base, grad_base, label_address, loss_address = (Signal(len(dst), name=n) for n in (
            "logit_base", "grad_base", "label_address", "loss_address"))
        wait = Signal(2)
        last_column = column == classes - 1
        last_row = row == samples - 1

        # read tokens: stage A (data on the port), B (tables out), C (gradient product registered)
        issue, issue_pass = Signal(), Signal(2)
        a_valid, a_pass, a_first, a_last = Signal(), Signal(2), Signal(), Signal()
        a_column, a_address = Signal.like(column), Signal.like(dst)
        b_valid, b_first, b_last, b_label, b_cutoff = (Signal(name=f"b_{n}") for n in (
            "valid", "first", "last", "label", "cutoff"))
        b_pass = Signal(2)
        b_address = Signal.like(dst)
        c_valid, c_last = Signal(), Signal()
        c_address = Signal.like(dst)
        m.d.sync += [a_valid.eq(issue), a_pass.eq(issue_pass), a_first.eq(column == 0), a_column.eq(column),
                     a_address.eq(grad_base + column), a_last.eq(last_column & last_row)]

        # -- divider (restoring, one quotient bit per cycle) -----------------------------------------------------
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
        reciprocal = Signal(a.reciprocal_width)
        m.d.comb += reciprocal.eq((quotient[:q_bits] + 1) >> 1)

        # -- stage A: max, differences, table addresses --------------------------------------------------------
        logit = self.scratch_read0.data
        maximum = Signal(signed(len(logit)))
        label = Signal(unsigned(len(self.scratch_read1.data)))
        label_arrives = Signal()
        with m.If(label_arrives):
            m.d.sync += label.eq(self.scratch_read1.data.as_unsigned())
        with m.If(a_valid & (a_pass == _MAX)):
            m.d.sync += maximum.eq(Mux(a_first | (logit > maximum), logit, maximum))
        difference = Signal(a.difference_width)
        m.d.comb += difference.eq(maximum - logit)
        tables = []
        for index, table in enumerate(a.exp_tables):
            memory = Memory(shape=unsigned(ef + 1), depth=1 << tb, init=table)
            m.submodules[f"exp_table{index}"] = memory
            port = memory.read_port()
            m.d.comb += port.addr.eq(difference[index * tb : (index + 1) * tb])
            tables.append(port.data)
        a_label = a_column == label
        d_label = Signal(a.difference_width)
        with m.If(a_valid & (a_pass == _EXP) & a_label):
            m.d.sync += d_label.eq(difference)
        m.d.sync += [b_valid.eq(a_valid & (a_pass != _MAX)), b_pass.eq(a_pass), b_first.eq(a_first),
                     b_last.eq(a_last), b_label.eq(a_label), b_cutoff.eq(difference >= a.exp_cutoff),
                     b_address.eq(a_address)]

        # -- stage B: exponential, sum, gradient product -------------------------------------------------------
        exponential = tables[0]
        for table in tables[1:]:
            exponential = ((exponential * table + (1 << (ef - 1))) >> ef)[: ef + 1]
        e = Signal(ef + 1)
        m.d.comb += e.eq(Mux(b_cutoff, 0, exponential))
        total = Signal(a.sum_width)
        with m.If(b_valid & (b_pass == _EXP)):
            m.d.sync += total.eq(Mux(b_first, e, total + e))
        numerator = Signal(signed(a.sum_width + 1))
        m.d.comb += numerator.eq(e - Mux(b_label, total, 0))
        product = Signal(signed(a.product_width))
        m.d.sync += [c_valid.eq(b_valid & (b_pass == _GRAD)), c_last.eq(b_last), c_address.eq(b_address),
                     product.eq(numerator * reciprocal)]

        # -- stage C: the gradient -------------------------------------------------------------------------------
        with m.If(c_valid):
            m.d.comb += [self.scratch_write.en.eq(1), self.scratch_write.addr.eq(c_address),
                         self.scratch_write.data.eq(requantize_value(product, a.reciprocal_frac - a.grad_frac,
                                                                     a.gradient, a.rounding))]

        # -- logarithm and loss ------------------------------------------------------------------------------------
        sw = a.sum_width
        normalised = Signal(sw)
        leading = Signal(range(sw))
        normalise = Signal()
        with m.If(normalise):
            m.d.sync += [normalised.eq(total), leading.eq(sw - 1)]
        with m.Elif(~normalised[-1]):
            m.d.sync += [normalised.eq(normalised << 1), leading.eq(leading - 1)]
        rest_bits = sw - 1 - tb
        index = normalised[rest_bits : sw - 1]
        log_memory = Memory(shape=unsigned(max(a.log_table).bit_length()), depth=len(a.log_table),
                            init=a.log_table)
        m.submodules.log_table = log_memory
        low, high = log_memory.read_port(), log_memory.read_port()
        m.d.comb += [low.addr.eq(index), high.addr.eq(index + 1)]
        if rest_bits:
            step = high.data.as_signed() - low.data.as_signed()
            interpolated = (step * normalised[:rest_bits] + (1 << (rest_bits - 1))) >> rest_bits
        else:
            interpolated = Const(0)
        logarithm = ((leading - ef) * a.log_table[-1] + low.data + interpolated)
        loss = Signal(signed(a.loss_width))
        m.d.comb += loss.eq(requantize_value(logarithm + (d_label << (a.log_frac - a.logit_frac)), _LOG_GUARD,
                                             a.loss_format, a.rounding))

        # -- LOSS.mean ----------------------------------------------------------------------------------------------
        mean_total = Signal(signed(a.loss_width + _SAMPLES_BITS + 1))
        mean_arrives, mean_first = Signal(), Signal()
        with m.If(mean_arrives):
            m.d.sync += mean_total.eq(Mux(mean_first, self.acc_read.data, mean_total + self.acc_read.data))
        negative = mean_total < 0
        magnitude = Mux(negative, -mean_total, mean_total)
        rounded = (quotient[:w_bits] + 1) >> 1
        mean = Signal(signed(a.loss_width))
        m.d.comb += mean.eq(requantize_value(Mux(negative, -rounded, rounded), 0, a.loss_format, a.rounding))
        m.d.sync += [label_arrives.eq(0), mean_arrives.eq(0)]

        # -- sequencer ---------------------------------------------------------------------------------------------
        def read_logit(pass_):
            m.d.comb += [issue.eq(1), issue_pass.eq(pass_), self.scratch_read0.en.eq(1),
                         self.scratch_read0.addr.eq(logit_base + column)]
            m.d.sync += column.eq(Mux(last_column, 0, column + 1))

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [column.eq(0), row.eq(0), logit_base.eq(src0), grad_base.eq(dst),
                             label_address.eq(src1), loss_address.eq(src2)]
                with m.If(self.start):
                    with m.If(is_mean):
                        m.next = "MEAN_READ"
                    with m.Else():
                        m.next = "MAX"
            with m.State("MAX"):
                read_logit(_MAX)
                with m.If(column == 0):
                    m.d.comb += [self.scratch_read1.en.eq(1), self.scratch_read1.addr.eq(label_address)]
                    m.d.sync += label_arrives.eq(1)
                with m.If(last_column):
                    m.next = "EXP"
            with m.State("EXP"):
                read_logit(_EXP)
                with m.If(last_column):
                    m.d.sync += wait.eq(1)
                    m.next = "SUM"
            with m.State("SUM"):  # the last exponentials reach the sum
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 0):
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.sync += [divisor.eq(total * imm), remainder.eq(1 << (ef - 1)), dividend.eq(0),
                             quotient.eq(0), divide_count.eq(q_bits)]
                m.d.comb += normalise.eq(1)
                m.next = "DIVIDE"
            with m.State("DIVIDE"), m.If(divide_count == 3):
                m.next = "GRAD"
            with m.State("GRAD"):
                read_logit(_GRAD)
                with m.If(column == 0):
                    m.d.comb += [self.acc_write.en.eq(1), self.acc_write.addr.eq(loss_address),
                                 self.acc_write.data.eq(loss)]
                with m.If(last_column):
                    m.d.sync += [row.eq(row + 1), logit_base.eq(logit_base + classes),
                                 grad_base.eq(grad_base + classes), label_address.eq(label_address + 1),
                                 loss_address.eq(loss_address + 1)]
                    with m.If(last_row):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "MAX"
            with m.State("DRAIN"), m.If(self.done):
                m.next = "IDLE"
            with m.State("MEAN_READ"):
                m.d.comb += [self.acc_read.en.eq(1), self.acc_read.addr.eq(src0 + column)]
                m.d.sync += [column.eq(column + 1), mean_arrives.eq(1), mean_first.eq(column == 0)]
                with m.If(column == samples - 1):
                    m.next = "MEAN_SUM"
            with m.State("MEAN_SUM"):
                m.next = "MEAN_SETUP"
            with m.State("MEAN_SETUP"):
                m.d.sync += [divisor.eq(samples), remainder.eq(0), dividend.eq(magnitude << 1), quotient.eq(0),
                             divide_count.eq(w_bits)]
                m.next = "MEAN_DIVIDE"
            with m.State("MEAN_DIVIDE"), m.If(divide_count == 1):
                m.next = "MEAN_WRITE"
            with m.State("MEAN_WRITE"):
                m.d.comb += [self.acc_write.en.eq(1), self.acc_write.addr.eq(dst), self.acc_write.data.eq(mean)]
                m.next = "IDLE"
        m.d.comb += self.done.eq((c_valid & c_last) | (self.acc_write.en & is_mean))
        return m
