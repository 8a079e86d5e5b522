"""Stage-to-stage links of an Occam multi-FPGA pipeline (Gondimalla et al., arXiv 2106.14138: one partition per
chip, the chips in a pipeline, off-chip traffic only at partition boundaries).

Between two pipeline stages travels a *row stream* of pixels in raster order. A pixel beat
(:func:`pixel_layout`) carries all ``channels`` elements of one position plus sideband markers: ``first``
(first pixel of a frame), ``row_end`` (last pixel of a row), ``frame_end`` (last pixel of the frame) and
``batch`` (the mini-batch id, so a STAP merger can restore the order). Inside a chip that is a plain
``lib.stream`` of the pixel layout.

Between chips the pixel goes over a narrow valid/ready link of ``lane_width`` data bits:
:class:`LinkTransmitter` cuts each pixel into ``words`` lane words (least significant first) and
:class:`LinkReceiver` puts them back together. Both are full-throughput elastic stages (one lane word per
cycle, no bubble between pixels) and hold their data while the other side is not ready, so a link of any
latency that keeps the valid/ready contract loses and reorders nothing.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int

__all__ = ["BATCH_BITS", "LinkReceiver", "LinkTransmitter", "link_words", "pixel_layout"]

#: Width of the mini-batch id carried with every pixel.
BATCH_BITS = 8


def pixel_layout(channels: int, element_width: int = 8, signed_elements: bool = True) -> data.StructLayout:
    """A row-stream beat: ``data`` (``channels`` elements), ``first``, ``row_end``, ``frame_end``, ``batch``.
    """
    check_int("channels", channels, 1, 4096)
    check_int("element_width", element_width, 1, 32)
    element = signed(element_width) if signed_elements else unsigned(element_width)
    return data.StructLayout(
        {
            "data": data.ArrayLayout(element, channels),
            "first": 1,
            "row_end": 1,
            "frame_end": 1,
            "batch": BATCH_BITS,
        }
    )


def link_words(layout: data.StructLayout, lane_width: int) -> int:
    """Lane words per pixel."""
    return -(-layout.size // lane_width)


class LinkTransmitter(wiring.Component):
    """Serialise a pixel stream onto a ``lane_width``-bit valid/ready link.

    Parameters
    ----------
    layout : data.StructLayout
        The pixel layout (see :func:`pixel_layout`).
    lane_width : int
        Data bits per link transfer, 1 to 256.

    Attributes
    ----------
    i : In(stream.Signature(layout))
        Pixels. A pixel is taken (``i.ready``) in the cycle its last word leaves, or at once when the
        transmitter is empty; from then on one word leaves per cycle while ``o.ready`` is high.
    o : Out(stream.Signature(lane_width))
        Lane words, least significant part of the pixel first; ``valid`` stays high and the word stable
        until ``ready``.
    """

    def __init__(self, *, layout, lane_width: int):
        check_int("lane_width", lane_width, 1, 256)
        self.layout = layout
        self.lane_width = lane_width
        self.words = link_words(layout, lane_width)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(lane_width))})

    def elaborate(self, platform):
        m = Module()
        bits = self.words * self.lane_width
        shift = Signal(bits)
        remaining = Signal(range(self.words + 1))
        last_word = (remaining == 1) & self.o.ready
        m.d.comb += [
            self.o.valid.eq(remaining != 0),
            self.o.payload.eq(shift[: self.lane_width]),
            self.i.ready.eq((remaining == 0) | last_word),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq(self.i.payload.as_value()), remaining.eq(self.words)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += [shift.eq(shift >> self.lane_width), remaining.eq(remaining - 1)]
        return m


class LinkReceiver(wiring.Component):
    """Reassemble pixels from a ``lane_width``-bit valid/ready link (inverse of :class:`LinkTransmitter`).

    Parameters
    ----------
    layout : data.StructLayout
        The pixel layout.
    lane_width : int
        Data bits per link transfer.

    Attributes
    ----------
    i : In(stream.Signature(lane_width))
        Lane words. While a complete pixel waits for ``o.ready`` the receiver still accepts the next
        pixel's words into its assembly register (``i.ready`` drops only when both are full).
    o : Out(stream.Signature(layout))
        Pixels, one cycle after their last word arrived.
    """

    def __init__(self, *, layout, lane_width: int):
        check_int("lane_width", lane_width, 1, 256)
        self.layout = layout
        self.lane_width = lane_width
        self.words = link_words(layout, lane_width)
        super().__init__({"i": In(stream.Signature(lane_width)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        bits = self.words * self.lane_width
        assembly = Signal(bits)
        received = Signal(range(self.words + 1))
        output = Signal(self.layout.size)
        full = Signal()
        # The assembly register is free unless it holds a complete pixel that cannot move to the output.
        output_free = ~full | self.o.ready
        assembling = received < self.words
        m.d.comb += [
            self.i.ready.eq(assembling | output_free),
            self.o.valid.eq(full),
            self.o.payload.eq(output),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        with m.If((received == self.words) & output_free):
            m.d.sync += [output.eq(assembly[: self.layout.size]), full.eq(1), received.eq(0)]
            with m.If(self.i.valid):
                m.d.sync += [assembly.eq(self.i.payload << (bits - self.lane_width)), received.eq(1)]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [
                assembly.eq((assembly >> self.lane_width) | (self.i.payload << (bits - self.lane_width))),
                received.eq(received + 1),
            ]
        return m
