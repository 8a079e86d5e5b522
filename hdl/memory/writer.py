"""Result writer: the systolic array's ``c`` rows into a memory bank, overwrite or accumulate.

The writer owns one ``lib.memory`` bank of ``depth`` rows, each ``cols`` elements wide. Rows arriving on
``c`` go to consecutive addresses ``0, 1, .., depth - 1, 0, ..`` (one *pass* is ``depth`` rows), so a
result matrix streamed by the array lands row-major in the bank, and the next pass lands on top of it.

* ``accumulate = 0``: the row overwrites the bank row.
* ``accumulate = 1``: read-modify-write, ``bank[row] = add(bank[row], c)`` with the
  :class:`wavecore.golden.numerics.MacArithmetic` overflow rule (``wrap`` or ``saturate``) applied once per
  element. Weight gradients of several sub-batches accumulate this way, one pass per sub-batch.
* ``requantize = True`` (activations): every element is stored as
  ``wavecore.golden.numerics.requantize(c, shift, IntFormat(out_width, signed), rounding)``; the bank is then
  ``out_width`` bits per element and there is no accumulate port (the sum of rounded values is not the
  rounded sum).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, unsigned
from amaranth import signed as signed_shape
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import OVERFLOW_MODES, ROUNDING_MODES, MacArithmetic, check_int

__all__ = ["MAX_DEPTH", "ResultWriter"]

MAX_DEPTH = 65536


class ResultWriter(wiring.Component):
    """Write (or accumulate, or requantize) the array's result rows into an owned memory bank.

    Parameters
    ----------
    cols : int
        Elements per row (the array's ``cols``), 1 to 256.
    depth : int
        Rows in the bank (= rows of one pass), 2 to 65536.
    acc_width, signed, overflow :
        Accumulator arithmetic, as :class:`wavecore.golden.numerics.MacArithmetic` (defaults 32, True, ``"wrap"``).
    requantize : bool
        Store ``requantize(c, shift, out_width, rounding)`` instead of the accumulator value.
    shift : int
        Requantize shift, -62 to 62 (negative is a left shift).
    out_width : int
        Requantized element width, 2 to 32.
    rounding : str
        One of :data:`wavecore.golden.numerics.ROUNDING_MODES`.

    Attributes
    ----------
    c : In(stream.Signature(ArrayLayout(accumulator, cols)))
        A result row. Always ready: one row per cycle is written.
    accumulate : In(1)
        *Only when ``requantize`` is false.* Sampled with each accepted row: add into the bank row.
    read_address : In(stream.Signature(range(depth)))
        Host read request.
    read_data : Out(stream.Signature(ArrayLayout(element, cols)))
        The bank row, one cycle after its request was accepted; obeys backpressure (the request port is
        not ready while a response waits).
    idle : Out(1)
        No row in the write pipeline (a row accepted in cycle ``t`` is in the bank, and visible to
        ``read_address``, from cycle ``t + 2``).
    write_pointer : Signal(range(depth))
        State, not a port: the bank row the next accepted ``c`` row goes to (read by the formal proof).

    Timing: a row is read from the bank the cycle it is accepted and written back the next cycle. With
    ``depth >= 2`` a row's address is read again at the earliest the cycle after its write-back; the RMW
    read port is also transparent to the write port, as a margin.
    """

    def __init__(self, *, cols, depth, acc_width=32, signed=True, overflow="wrap", requantize=False,
                 shift=0, out_width=8, rounding="half_even"):
        self.cols = check_int("cols", cols, 1, 256)
        self.depth = check_int("depth", depth, 2, MAX_DEPTH)
        if overflow not in OVERFLOW_MODES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_MODES)}, not {overflow!r}")
        self.arithmetic = MacArithmetic(in_width=2, acc_width=check_int("acc_width", acc_width, 4, 62),
                                        signed=signed, overflow=overflow)
        if not isinstance(requantize, bool):
            raise TypeError(f"requantize must be a bool, not {requantize!r}")
        self.requantize = requantize
        self.shift = check_int("shift", shift, -62, 62)
        self.out_width = check_int("out_width", out_width, 2, 32)
        if rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {rounding!r}")
        self.rounding = rounding
        def make(width):
            return signed_shape(width) if self.arithmetic.signed else unsigned(width)

        self.accumulator = make(self.arithmetic.acc_width)
        self.element = make(self.out_width) if requantize else self.accumulator
        self.c_layout = data.ArrayLayout(self.accumulator, self.cols)
        self.row_layout = data.ArrayLayout(self.element, self.cols)
        members = {
            "c": In(stream.Signature(self.c_layout)),
            "read_address": In(stream.Signature(range(self.depth))),
            "read_data": Out(stream.Signature(self.row_layout)),
            "idle": Out(1),
        }
        if not requantize:
            members["accumulate"] = In(1)
        super().__init__(members)
        self.write_pointer = Signal(range(self.depth))

    # -- element arithmetic (combinational) --------------------------------------------------------
    @staticmethod
    def _clamp(value, shape):
        """Saturate ``value`` (any width) to ``shape``."""
        low = Const(shape.signed and -(1 << (shape.width - 1)) or 0, signed_shape(shape.width + 1))
        high = Const((1 << (shape.width - (1 if shape.signed else 0))) - 1, signed_shape(shape.width + 1))
        return Mux(value < low, low, Mux(value > high, high, value))[:shape.width]

    def _next_address(self, address):
        """The bank row after ``address``, wrapping at ``depth``."""
        return Mux(address == self.depth - 1, 0, address + 1)

    def _add(self, old, new):
        total = old + new
        if self.arithmetic.overflow == "wrap":
            return total[:self.arithmetic.acc_width]
        return self._clamp(total, self.accumulator)

    def _requantize(self, value):
        shift, width = self.shift, self.arithmetic.acc_width
        if shift <= 0:
            return self._clamp(value << -shift, self.element)
        floor = value >> shift
        remainder = value.as_unsigned()[:shift]
        half = 1 << (shift - 1)
        if self.rounding == "floor":
            up = Const(0, 1)
        elif self.rounding == "half_up":
            up = remainder >= half
        elif self.rounding == "half_even":
            up = (remainder > half) | ((remainder == half) & floor[0])
        else:  # half_away_from_zero
            non_negative = Const(1, 1) if not self.arithmetic.signed else ~value[width - 1]
            up = (remainder > half) | ((remainder == half) & non_negative)
        rounded = floor + up
        return self._clamp(rounded, self.element)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = memory.Memory(shape=self.row_layout, depth=self.depth, init=[])
        write = bank.write_port()
        rmw = bank.read_port(transparent_for=(write,))
        host = bank.read_port()

        # Stage 0: accept a row, read its bank row. Stage 1: combine, write back.
        address = self.write_pointer
        m.d.comb += self.c.ready.eq(1)
        m.d.comb += [rmw.addr.eq(address), rmw.en.eq(1)]
        valid1 = Signal()
        address1 = Signal(range(self.depth))
        row1 = Signal(self.c_layout)
        accumulate1 = Signal()
        m.d.sync += valid1.eq(self.c.valid)
        with m.If(self.c.valid):
            m.d.sync += [address1.eq(address), row1.eq(self.c.payload)]
            if not self.requantize:
                m.d.sync += accumulate1.eq(self.accumulate)
            m.d.sync += address.eq(self._next_address(address))

        m.d.comb += [write.addr.eq(address1), write.en.eq(valid1)]
        for j in range(self.cols):
            new = row1[j]
            if self.requantize:
                m.d.comb += write.data[j].eq(self._requantize(new))
            else:
                summed = self._add(rmw.data[j], new)
                m.d.comb += write.data[j].eq(Mux(accumulate1, summed, new))
        m.d.comb += self.idle.eq(~valid1)

        # Host read port: one outstanding response, held while read_data is stalled.
        m.d.comb += self.read_address.ready.eq(~self.read_data.valid | self.read_data.ready)
        m.d.comb += [host.addr.eq(self.read_address.payload), host.en.eq(self.read_address.ready),
                     self.read_data.payload.eq(host.data)]
        with m.If(self.read_address.ready):
            m.d.sync += self.read_data.valid.eq(self.read_address.valid)
        return m
