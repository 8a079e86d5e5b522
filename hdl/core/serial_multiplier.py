"""A digit-serial multiplier for wide operands: one ``digit x digit`` product per cycle on one hardware multiplier,
summed column by column into a narrow accumulator, so a 96 x 94-bit product costs one DSP and short carry chains
instead of tens of DSPs and a wide adder tree in one cycle.

**Interface**: ``start`` (in, 1): one-cycle pulse; ``a``, ``b`` (in, signed ``a_width`` / ``b_width`` bits) are read
in that cycle only (registered; their magnitudes are formed in the next cycle); ``a_digits``, ``b_digits`` (in) are
how many ``digit``-bit digits of ``|a|`` and ``|b|`` to use in that product (1 to the maximum; the magnitudes must
fit them), so narrow products take few cycles on a multiplier built for the widest. ``product`` (out, signed
``a_width + b_width``) is valid and ``done`` (out, 1) high in the cycle :func:`cycles` after ``start``; ``product``
holds until the next ``start``.

**Method**: magnitudes ``|a| = sum A_i 2**(digit*i)``, ``|b| = sum B_j 2**(digit*j)``; for each column
``w = i + j`` in increasing order, every ``A_i * B_j`` of the column is formed (registered) and added to the
accumulator; at the column's end its low ``digit`` bits are the product's digit ``w`` and the accumulator shifts
right by ``digit``. After the last column the accumulator is the top of the product, and the sign is applied
in two cycles (the low half's negation, then the high half's with its carry), so no cycle holds a carry chain
longer than about half the product.

**Timing**: ``cycles(a_digits, b_digits) = a_digits * b_digits + 6`` (the operands' register, one product per
cycle, the digits' register, the product register, the accumulation of the last one, the sign in two halves;
it was ``+ 3`` without the operands', the digits' and the second sign register).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int

__all__ = ["SerialMultiplier", "cycles"]


def cycles(a_digits: int, b_digits: int) -> int:
    """Cycles from ``start`` to ``done`` of a product of ``a_digits`` x ``b_digits`` digits."""
    return a_digits * b_digits + 6


class SerialMultiplier(wiring.Component):
    """Signed ``a_width`` x ``b_width``-bit products, ``digit`` bits per step (see the module docstring).

    Parameters
    ----------
    a_width, b_width : int
        Operand widths (2 to 256), two's complement.
    digit : int
        Bits of a digit (2 to 17: a digit product fits an 18 x 18 signed multiplier).
    """

    def __init__(self, *, a_width: int, b_width: int, digit: int = 17):
        self.a_width = check_int("a_width", a_width, 2, 256)
        self.b_width = check_int("b_width", b_width, 2, 256)
        self.digit = check_int("digit", digit, 2, 17)
        self.a_max = -(-a_width // digit)  # digits of the largest magnitude (a_width bits)
        self.b_max = -(-b_width // digit)
        super().__init__({
            "start": In(1),
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "a_digits": In(range(1, self.a_max + 1)),
            "b_digits": In(range(1, self.b_max + 1)),
            "product": Out(signed(a_width + b_width)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.digit
        a_max, b_max = self.a_max, self.b_max
        magnitude_a = Signal(unsigned(a_max * d))
        magnitude_b = Signal(unsigned(b_max * d))
        negative = Signal()
        a_count, b_count = Signal.like(self.a_digits), Signal.like(self.b_digits)
        # stage 0: the inputs registered in every cycle (no enable: start drives one register, not the operands'
        # enables), so in the cycle after start (loading) they hold start's; their magnitudes taken then
        operand_a, operand_b = Signal.like(self.a), Signal.like(self.b)
        digits_a, digits_b = Signal.like(self.a_digits), Signal.like(self.b_digits)
        loading = Signal()
        m.d.sync += [loading.eq(self.start), operand_a.eq(self.a), operand_b.eq(self.b),
                     digits_a.eq(self.a_digits), digits_b.eq(self.b_digits)]
        with m.If(loading):
            m.d.sync += [magnitude_a.eq(Mux(operand_a < 0, -operand_a, operand_a)),
                         magnitude_b.eq(Mux(operand_b < 0, -operand_b, operand_b)),
                         negative.eq((operand_a < 0) ^ (operand_b < 0)), a_count.eq(digits_a), b_count.eq(digits_b)]

        # the schedule: column w, its digit i of a (j = w - i), one product per cycle
        running = Signal()
        column = Signal(range(a_max + b_max))
        index = Signal(range(a_max))
        first = Signal(range(a_max))  # the column's first i: max(0, w - (b_count - 1))
        last = Signal(range(a_max))  # the column's last i: min(w, a_count - 1)
        m.d.comb += [first.eq(Mux(column > b_count - 1, column - (b_count - 1), 0)),
                     last.eq(Mux(column < a_count - 1, column, a_count - 1))]
        column_end = Signal()
        final = Signal()
        m.d.comb += [column_end.eq(index == last), final.eq(column_end & (column == a_count + b_count - 2))]
        with m.If(loading):
            m.d.sync += [running.eq(1), column.eq(0), index.eq(0)]
        with m.Elif(running):
            with m.If(final):
                m.d.sync += running.eq(0)
            with m.Elif(column_end):
                following = column + 1
                m.d.sync += [column.eq(following),
                             index.eq(Mux(following > b_count - 1, following - (b_count - 1), 0))]
            with m.Else():
                m.d.sync += index.eq(index + 1)

        # stage 1: the digits selected, registered with the column's flags (the multiplier's inputs come from
        # registers, not from the digit multiplexers)
        digit_a = Signal(d)
        digit_b = Signal(d)
        d_valid, d_column_end, d_final = Signal(), Signal(), Signal()
        d_column = Signal.like(column)
        m.d.sync += [digit_a.eq(magnitude_a.word_select(index, d)),
                     digit_b.eq(magnitude_b.word_select((column - index)[: len(Signal(range(b_max)))], d)),
                     d_valid.eq(running), d_column_end.eq(running & column_end), d_final.eq(running & final),
                     d_column.eq(column)]
        # stage 2: the digit product, registered with the column's flags
        partial = Signal(2 * d)
        p_valid, p_column_end, p_final = Signal(), Signal(), Signal()
        p_column = Signal.like(column)
        m.d.sync += [partial.eq(digit_a * digit_b), p_valid.eq(d_valid), p_column_end.eq(d_column_end),
                     p_final.eq(d_final), p_column.eq(d_column)]
        # stage 3: the column sums (the accumulator holds the carry of the columns before, shifted)
        accumulator = Signal(2 * d + (a_max + b_max).bit_length() + 1)
        total = Signal(len(accumulator))
        m.d.comb += total.eq(accumulator + partial)
        result = Signal(unsigned((a_max + b_max) * d))
        finished = Signal()
        m.d.sync += finished.eq(0)
        with m.If(loading):
            m.d.sync += [accumulator.eq(0), result.eq(0)]
        with m.Elif(p_valid):
            with m.If(p_final):  # the last column and the carry above it: the product's top digits
                m.d.sync += finished.eq(1)
                with m.Switch(p_column):  # constant slices per column: no shifter (nor a multiply by d)
                    for column_index in range(a_max + b_max - 1):
                        with m.Case(column_index):
                            low = d * column_index
                            top = min(low + len(total), len(result))
                            m.d.sync += result[low:top].eq(total[: top - low])
            with m.Elif(p_column_end):
                m.d.sync += [accumulator.eq(total >> d), result.word_select(p_column, d).eq(total[:d])]
            with m.Else():
                m.d.sync += accumulator.eq(total)
        # stages 4 and 5: the sign, -r = ~r + 1, the low half's carry into the high half one cycle later
        width = len(self.product)
        half = width // 2
        inverted = Mux(negative, ~result[:width], result[:width])
        low_sum = Signal(half + 1)  # the low half and its carry
        high_bits = Signal(width - half)  # the high half, inverted for a negative product
        signing = Signal()
        m.d.sync += [signing.eq(finished), self.done.eq(signing)]
        with m.If(finished):  # (x + c) as one carry chain: (Cat(1, x) + Cat(c, 0)) >> 1
            m.d.sync += [low_sum.eq((Cat(Const(1, 1), inverted[:half]) + Cat(negative, Const(0, half)))[1:]),
                         high_bits.eq(inverted[half:])]
        with m.If(signing):
            m.d.sync += self.product.eq(Cat(low_sum[:half], high_bits + low_sum[half]))
        return m
