"""A digit-serial multiplier for wide operands: one ``digit x digit`` product per cycle on one hardware multiplier,
summed column by column into a narrow accumulator, so a 96 x 94-bit product costs one DSP and short carry chains
instead of tens of DSPs and a wide adder tree in one cycle.

**Interface**: ``start`` (in, 1): one-cycle pulse; ``a``, ``b`` (in, signed ``a_width`` / ``b_width`` bits) are
read in that cycle only; ``a_digits``, ``b_digits`` (in) are how many ``digit``-bit digits of ``|a|`` and ``|b|``
to use in that product (1 to the maximum; the magnitudes must fit them), so narrow products take few cycles on a
multiplier built for the widest. ``product`` (out, signed ``a_width + b_width``) is valid and ``done`` (out, 1)
high in the cycle :func:`cycles` after ``start``; ``product`` holds until the next ``start``.

**Method**: magnitudes ``|a| = sum A_i 2**(digit*i)``, ``|b| = sum B_j 2**(digit*j)``; for each column
``w = i + j`` in increasing order, every ``A_i * B_j`` of the column is formed (registered) and added to the
accumulator; at the column's end its low ``digit`` bits are the product's digit ``w`` and the accumulator shifts
right by ``digit``. After the last column the accumulator is the top of the product, and the sign is applied.

**Timing**: ``cycles(a_digits, b_digits) = a_digits * b_digits + 3`` (one product per cycle, the product
register, the accumulation of the last one, the sign).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int

__all__ = ["SerialMultiplier", "cycles"]


def cycles(a_digits: int, b_digits: int) -> int:
    """Cycles from ``start`` to ``done`` of a product of ``a_digits`` x ``b_digits`` digits."""
    return a_digits * b_digits + 3


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
        with m.If(self.start):
            m.d.sync += [magnitude_a.eq(Mux(self.a < 0, -self.a, self.a)),
                         magnitude_b.eq(Mux(self.b < 0, -self.b, self.b)),
                         negative.eq((self.a < 0) ^ (self.b < 0)),
                         a_count.eq(self.a_digits), b_count.eq(self.b_digits)]

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
        with m.If(self.start):
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

        digit_a = Signal(d)
        digit_b = Signal(d)
        m.d.comb += [digit_a.eq(magnitude_a.word_select(index, d)),
                     digit_b.eq(magnitude_b.word_select((column - index)[: len(Signal(range(b_max)))], d))]
        # stage 1: the digit product, registered with the column's flags
        partial = Signal(2 * d)
        p_valid, p_column_end, p_final = Signal(), Signal(), Signal()
        p_column = Signal.like(column)
        m.d.sync += [partial.eq(digit_a * digit_b), p_valid.eq(running), p_column_end.eq(running & column_end),
                     p_final.eq(running & final), p_column.eq(column)]
        # stage 2: the column sums (the accumulator holds the carry of the columns before, shifted)
        accumulator = Signal(2 * d + (a_max + b_max).bit_length() + 1)
        total = Signal(len(accumulator))
        m.d.comb += total.eq(accumulator + partial)
        result = Signal(unsigned((a_max + b_max) * d))
        finished = Signal()
        m.d.sync += finished.eq(0)
        with m.If(self.start):
            m.d.sync += [accumulator.eq(0), result.eq(0)]
        with m.Elif(p_valid):
            with m.If(p_final):  # the last column and the carry above it: the product's top digits
                m.d.sync += [result.eq(result | (total << (d * p_column))), finished.eq(1)]
            with m.Elif(p_column_end):
                m.d.sync += [accumulator.eq(total >> d), result.word_select(p_column, d).eq(total[:d])]
            with m.Else():
                m.d.sync += accumulator.eq(total)
        # stage 3: the sign
        m.d.sync += self.done.eq(finished)
        with m.If(finished):
            m.d.sync += self.product.eq(Mux(negative, -Cat(result), Cat(result)))
        return m
