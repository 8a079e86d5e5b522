"""Streaming global average pooling for Occam pipeline stages (Gondimalla et al., arXiv 2106.14138).

``wavecore.golden.integer.IntegerKernels.global_avgpool_forward``: per channel, the exact sum over the ``H x W``
frame, then ``_divide(sum, H * W)`` (:func:`wavecore.hdl.stream.window.divide`: a shift for a power-of-two count, else
a multiply by ``round(2**reciprocal_frac / count)`` and a shift by ``reciprocal_frac``, rounding and
saturating as :func:`wavecore.golden.numerics.requantize`). The result is a ``1 x 1`` frame, so a following
``flatten`` costs nothing and a ``linear`` layer is a 1x1 :class:`wavecore.hdl.stream.conv.StreamConv2d` on it.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed

from wavecore.golden.numerics import IntFormat
from wavecore.hdl.stream.pool import PixelPool, check_average, check_pool_frame
from wavecore.hdl.stream.window import divide

__all__ = ["StreamGlobalAvgPool", "stream_global_pool_cycles"]


def stream_global_pool_cycles(*, height: int, width: int) -> int:
    """Cycles per frame with input always available and output always ready: ``H*W`` accepts + 1 emit."""
    return height * width + 1


class StreamGlobalAvgPool(PixelPool):
    """Per-channel average over each frame; one ``1 x 1`` output pixel per frame.

    Parameters
    ----------
    channels : int
        Channels of every pixel (in and out).
    height, width : int
        Input frame size (``count = height * width``).
    fmt : wavecore.golden.numerics.IntFormat or None
        Element format in and out (default int8): golden's ``numerics.operand``.
    reciprocal_frac : int
        ``numerics.reciprocal_frac`` (0 to 30), used when ``count`` is not a power of two.
    rounding : str
        ``numerics.rounding``.

    Attributes
    ----------
    i : In(stream.Signature(pixel_layout(channels, fmt.width, fmt.signed)))
        Input pixels in raster order. ``ready`` is high except in the cycles the frame's result waits
        for ``o.ready``. The engine counts pixels itself (``height * width`` per frame); the ``batch`` of
        each frame's ``first`` pixel goes to its result.
    o : Out(stream.Signature(pixel_layout(channels, fmt.width, fmt.signed)))
        One pixel per frame with ``first = row_end = frame_end = 1``, valid from the cycle after the
        frame's last input pixel until ``ready``.

    Timing: ``H*W + 1`` cycles per frame (:func:`stream_global_pool_cycles`); ``channels`` adders and, for
    a non-power-of-two count, ``channels`` constant multipliers.
    """

    def __init__(
        self,
        *,
        channels: int,
        height: int,
        width: int,
        fmt: IntFormat | None = None,
        reciprocal_frac: int = 16,
        rounding: str = "half_even",
    ):
        fmt = check_pool_frame(fmt, channels, height, width)
        check_average(reciprocal_frac, rounding)
        self.out_height = self.out_width = 1
        super().__init__(
            channels=channels, height=height, width=width, fmt=fmt, reciprocal_frac=reciprocal_frac, rounding=rounding
        )

    def cycles_per_frame(self) -> int:
        return stream_global_pool_cycles(height=self.height, width=self.width)

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        count = self.height * self.width
        sum_shape = signed(fmt.width + count.bit_length() + 1)
        position = Signal(range(max(count, 2)))
        batch = Signal.like(self.i.payload.batch)
        full = Signal()  # the sums hold a finished frame waiting for o.ready
        sums = [Signal(sum_shape, name=f"sum_{c}") for c in range(self.channels)]

        m.d.comb += [
            self.i.ready.eq(~full),
            self.o.valid.eq(full),
            self.o.payload.first.eq(1),
            self.o.payload.row_end.eq(1),
            self.o.payload.frame_end.eq(1),
            self.o.payload.batch.eq(batch),
        ]
        for c, total in enumerate(sums):
            m.d.comb += self.o.payload.data[c].eq(divide(total, count, self.reciprocal_frac, self.rounding, fmt))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            first = position == 0
            for c, total in enumerate(sums):
                element = self.i.payload.data[c]
                m.d.sync += total.eq(Mux(first, 0, total) + element)
            with m.If(first):
                m.d.sync += batch.eq(self.i.payload.batch)
            with m.If(position == count - 1):
                m.d.sync += [position.eq(0), full.eq(1)]
            with m.Else():
                m.d.sync += position.eq(position + 1)
        return m
