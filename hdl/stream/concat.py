"""Streaming channel concatenation (Inception / DenseNet joins) for Occam pipeline stages.

``wavecore.golden.layers.concat_forward`` (the integer mode shares it: no rounding): the output pixel holds input 0's
channels first, then input 1's, and so on. Combinational join (:mod:`wavecore.hdl.stream.join`): no latency, one
pixel per cycle when every input is valid and the output ready.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import IntFormat, check_int
from wavecore.hdl.stream.join import join_streams
from wavecore.hdl.stream.link import pixel_layout

__all__ = ["StreamConcat", "stream_concat_cycles"]


def stream_concat_cycles(*, height: int, width: int) -> int:
    """Cycles per frame with inputs always valid and output always ready: one per pixel."""
    return height * width


class StreamConcat(wiring.Component):
    """Channel concatenation of ``len(channels)`` pixel streams of the same ``H x W``.

    Parameters
    ----------
    channels : sequence of int
        Channels of each input, 2 to 8 inputs.
    fmt : wavecore.golden.numerics.IntFormat or None
        Element format (default int8).

    Attributes
    ----------
    i0, i1, ... : In(stream.Signature(pixel_layout(channels[k], fmt.width, fmt.signed)))
        The inputs (also as the list :attr:`inputs`), pixel for pixel in the same raster order.
    o : Out(stream.Signature(pixel_layout(sum(channels), fmt.width, fmt.signed)))
        Concatenated pixels; markers copied from ``i0``. Valid when every input is valid; every input's
        ``ready`` is ``o.ready`` and all inputs valid.
    error : Out(1)
        Sticky: a transfer joined pixels with different markers (inputs out of step).

    Timing: one pixel per cycle (:func:`stream_concat_cycles`); wiring only, no logic on the data.
    """

    def __init__(self, *, channels, fmt: IntFormat | None = None):
        fmt = IntFormat(8) if fmt is None else fmt
        if not isinstance(fmt, IntFormat):
            raise TypeError(f"fmt must be a wavecore.golden.numerics.IntFormat, not {fmt!r}")
        if not isinstance(channels, list | tuple) or not 2 <= len(channels) <= 8:
            raise ValueError(f"channels must be a list of 2 to 8 channel counts, not {channels!r}")
        for count in channels:
            check_int("channels", count, 1, 4096)
        self.channels, self.fmt = tuple(channels), fmt
        self.in_layouts = [pixel_layout(count, fmt.width, fmt.signed) for count in channels]
        self.out_channels = sum(channels)
        self.out_layout = pixel_layout(self.out_channels, fmt.width, fmt.signed)
        members = {f"i{k}": In(stream.Signature(layout)) for k, layout in enumerate(self.in_layouts)}
        super().__init__({**members, "o": Out(stream.Signature(self.out_layout)), "error": Out(1)})

    @property
    def inputs(self) -> list:
        return [getattr(self, f"i{k}") for k in range(len(self.channels))]

    def elaborate(self, platform):
        m = Module()
        error = Signal()
        m.d.comb += self.error.eq(error)
        join_streams(m, self.inputs, self.o, error)
        offset = 0
        for port, count in zip(self.inputs, self.channels):
            for c in range(count):
                m.d.comb += self.o.payload.data[offset + c].eq(port.payload.data[c])
            offset += count
        return m
