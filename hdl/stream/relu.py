"""Streaming ReLU (``wavecore.golden.integer.IntegerKernels.relu_forward``) for a relu that cannot be fused.

A ReLU right after a conv is fused into :class:`wavecore.hdl.stream.conv.StreamConv2d` (``relu``/``relu_max``) and one
right after an add into :class:`wavecore.hdl.stream.add.StreamAdd`; this engine is for the rest (e.g. tiny_concat's
``dense_relu`` on one consumer of a concat). Combinational: ``o.valid = i.valid``, ``i.ready = o.ready``.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import IntFormat, check_int
from wavecore.hdl.stream.add import check_relu
from wavecore.hdl.stream.link import pixel_layout
from wavecore.hdl.stream.window import requantize

__all__ = ["StreamReLU"]


class StreamReLU(wiring.Component):
    """``clip(x, 0, relu_max)`` (``max(x, 0)`` without ``relu_max``) of every element, one pixel per cycle.

    Parameters
    ----------
    channels : int
        Channels of every pixel.
    fmt : wavecore.golden.numerics.IntFormat or None
        Element format (default int8).
    relu_max : int or None
        Upper clamp (ReLU6: ``IntegerKernels._relu_limit(6)``), 0 to ``fmt.max``.

    Attributes
    ----------
    i, o : In/Out(stream.Signature(pixel_layout(channels, fmt.width, fmt.signed)))
        Pixels pass through with their markers; no storage, no latency.
    """

    def __init__(self, *, channels: int, fmt: IntFormat | None = None, relu_max: int | None = None):
        fmt = IntFormat(8) if fmt is None else fmt
        if not isinstance(fmt, IntFormat):
            raise TypeError(f"fmt must be a wavecore.golden.numerics.IntFormat, not {fmt!r}")
        check_int("channels", channels, 1, 4096)
        self.relu_max = check_relu(True, relu_max, fmt)
        self.channels, self.fmt = channels, fmt
        self.in_layout = self.out_layout = pixel_layout(channels, fmt.width, fmt.signed)
        super().__init__({"i": In(stream.Signature(self.in_layout)), "o": Out(stream.Signature(self.out_layout))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready),
            self.o.payload.eq(self.i.payload),
        ]
        for c in range(self.channels):
            m.d.comb += self.o.payload.data[c].eq(
                requantize(self.i.payload.data[c], 0, "floor", self.fmt, low=0, high=self.relu_max)
            )
        return m
