"""A small stream design used to test the verification harness itself (not a wavecore block)."""

from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out


class AffineFifo(wiring.Component):
    """``o = (3 * i + 1) mod 2**width`` through a 4-deep FIFO, with valid/ready on both sides."""

    def __init__(self, width: int = 16):
        self.width = width
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = fifo.SyncFIFOBuffered(width=self.width, depth=4)
        m.d.comb += [
            buffer.w_data.eq(self.i.payload * 3 + 1),
            buffer.w_en.eq(self.i.valid),
            self.i.ready.eq(buffer.w_rdy),
            self.o.payload.eq(buffer.r_data),
            self.o.valid.eq(buffer.r_rdy),
            buffer.r_en.eq(self.o.ready),
        ]
        return m
