"""Small designs used to test the board flow and the BIST top (not wavecore blocks)."""

from amaranth import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class Mac(wiring.Component):
    """``acc += a * b`` (registered product); ``clear`` zeroes the accumulator; ``bug`` adds 1 per step."""

    def __init__(self, bug: bool = False):
        self.bug = bug
        super().__init__({"a": In(signed(8)), "b": In(signed(8)), "clear": In(1), "acc": Out(signed(24))})

    def elaborate(self, platform):
        m = Module()
        product = Signal(signed(16))
        m.d.sync += product.eq(self.a * self.b)
        with m.If(self.clear):
            m.d.sync += self.acc.eq(0)
        with m.Else():
            m.d.sync += self.acc.eq(self.acc + product + int(self.bug))
        return m


class StreamDoubler(wiring.Component):
    """A one-register stream stage: ``o.payload = 2 * i.payload`` with valid/ready."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(signed(8))), "o": Out(stream.Signature(signed(9)))})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.o.ready | ~self.o.valid):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload * 2)]
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        return m
