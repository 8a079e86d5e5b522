"""Streaming max / average pooling engine for Occam pipeline stages (Gondimalla et al., arXiv 2106.14138).

The same line buffer and schedule as :class:`hdl.stream.conv.StreamConv2d` (:func:`hdl.stream.window.window_scan`:
``kernel_height`` rows of ``width x channels`` elements; FILL, COMPUTE, FINISH, EMIT, DRAIN), with one window
tap per cycle and all channels in parallel (``channels`` comparators or adders, no multiplier except the
reciprocal of a non-power-of-two average).

Arithmetic, as the golden model:

* ``max``: :func:`golden.layers.maxpool_forward` (``golden.integer.ExactKernels.maxpool_forward``): the
  maximum of the window's elements inside the frame (padding is -infinity, never chosen).
* ``avg``: ``wavecore.golden.integer.IntegerKernels.avgpool_forward``: the exact sum of the window (zero padding
  counts in the divisor, ``count_include_pad``), then ``_divide(sum, kh * kw)``: a right shift by
  ``log2(count)`` for power-of-two windows, else ``sum * round(2**reciprocal_frac / count)`` shifted right by
  ``reciprocal_frac``; both with :func:`wavecore.golden.numerics.requantize`'s rounding and saturation to ``fmt``.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import ROUNDING_MODES, IntFormat, check_int
from wavecore.hdl.stream.conv import conv_output_size
from wavecore.hdl.stream.link import pixel_layout
from wavecore.hdl.stream.window import divide, window_scan, windowed_cycles

__all__ = ["POOL_MODES", "PixelPool", "StreamPool2d", "check_average", "check_pool_frame", "stream_pool_cycles"]

#: Pooling modes of :class:`StreamPool2d`.
POOL_MODES = ("max", "avg")


def check_pool_frame(fmt: IntFormat | None, channels: int, height: int, width: int) -> IntFormat:
    """Check a pool's frame parameters and return ``fmt`` (default int8): ``fmt`` an
    :class:`wavecore.golden.numerics.IntFormat`, ``channels`` 1 to 4096, ``height`` and ``width`` >= 1."""
    fmt = IntFormat(8) if fmt is None else fmt
    if not isinstance(fmt, IntFormat):
        raise TypeError(f"fmt must be a wavecore.golden.numerics.IntFormat, not {fmt!r}")
    check_int("channels", channels, 1, 4096)
    check_int("height", height, 1)
    check_int("width", width, 1)
    return fmt


def check_average(reciprocal_frac: int, rounding: str) -> None:
    """Check the average's ``reciprocal_frac`` (0 to 30) and ``rounding`` (:data:`golden.numerics.ROUNDING_MODES`)."""
    check_int("reciprocal_frac", reciprocal_frac, 0, 30)
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {rounding!r}")


class PixelPool(wiring.Component):
    """Common base of the pools (:class:`StreamPool2d`, :class:`wavecore.hdl.stream.global_pool.StreamGlobalAvgPool`):
    stores the (already checked) frame and average parameters and declares the channel-preserving interface
    ``i`` / ``o``: stream.Signature(pixel_layout(channels, fmt.width, fmt.signed)), ``in_channels ==
    out_channels == channels``."""

    def __init__(self, *, channels: int, height: int, width: int, fmt: IntFormat, reciprocal_frac: int, rounding: str):
        self.channels, self.height, self.width = channels, height, width
        self.fmt, self.reciprocal_frac, self.rounding = fmt, reciprocal_frac, rounding
        self.in_layout = self.out_layout = pixel_layout(channels, fmt.width, fmt.signed)
        super().__init__({"i": In(stream.Signature(self.in_layout)), "o": Out(stream.Signature(self.out_layout))})

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels


def _kernel_pair(kernel) -> tuple[int, int]:
    if isinstance(kernel, tuple | list) and len(kernel) == 2:
        kernel_height, kernel_width = kernel
    else:
        kernel_height = kernel_width = kernel
    for value in (kernel_height, kernel_width):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"kernel must be an integer >= 1 or a pair of them, not {kernel!r}")
    return kernel_height, kernel_width


def stream_pool_cycles(*, height: int, width: int, kernel, stride: int | None = None, padding: int = 0) -> int:
    """Cycles per frame of one :class:`StreamPool2d` with input always available and output always ready:
    ``H*W + out_h * (out_w * (kh*kw + 2) + 1) + 1``."""
    kernel_height, kernel_width = _kernel_pair(kernel)
    if stride is None:
        stride = kernel_height
    return windowed_cycles(
        height=height,
        width=width,
        out_height=conv_output_size(height, kernel_height, stride, padding),
        out_width=conv_output_size(width, kernel_width, stride, padding),
        taps=kernel_height * kernel_width,
    )


class StreamPool2d(PixelPool):
    """Max or average pooling on a pixel row stream with a ``kernel_height``-row line buffer.

    Parameters
    ----------
    mode : str
        ``"max"`` or ``"avg"``.
    channels : int
        Channels of every pixel (in and out).
    height, width : int
        Input frame size.
    kernel : int or (int, int)
        Window ``(kernel_height, kernel_width)``.
    stride : int or None
        Same for both axes; ``None`` = the kernel (which must then be square).
    padding : int
        Same for both axes, 0 to half the smaller kernel side (as PyTorch).
    fmt : wavecore.golden.numerics.IntFormat or None
        Element format in and out (default int8): golden's ``numerics.operand``.
    reciprocal_frac : int
        Fractional bits of the reciprocal for a non-power-of-two average (``numerics.reciprocal_frac``),
        0 to 30.
    rounding : str
        A :data:`wavecore.golden.numerics.ROUNDING_MODES` mode (``numerics.rounding``) for the average's shift.

    Attributes
    ----------
    i : In(stream.Signature(pixel_layout(channels, fmt.width, fmt.signed)))
        Input pixels in raster order; ``ready`` is high in the FILL and DRAIN phases. The ``batch`` of a
        frame's ``first`` pixel is carried to every output pixel of the frame.
    o : Out(stream.Signature(pixel_layout(channels, fmt.width, fmt.signed)))
        Output pixels in raster order with ``first``, ``row_end``, ``frame_end`` and ``batch`` set; the
        engine waits without loss while ``ready`` is low.

    Timing: one cycle per input pixel and ``kh * kw + 2`` per output pixel, plus one per output row
    (:func:`stream_pool_cycles`).
    """

    def __init__(
        self,
        *,
        mode: str,
        channels: int,
        height: int,
        width: int,
        kernel,
        stride: int | None = None,
        padding: int = 0,
        fmt: IntFormat | None = None,
        reciprocal_frac: int = 16,
        rounding: str = "half_even",
    ):
        if mode not in POOL_MODES:
            raise ValueError(f"mode must be one of {', '.join(POOL_MODES)}, not {mode!r}")
        fmt = check_pool_frame(fmt, channels, height, width)
        self.kernel_height, self.kernel_width = _kernel_pair(kernel)
        if stride is None:
            if self.kernel_height != self.kernel_width:
                raise ValueError(f"stride must be given for the non-square kernel {kernel!r}")
            stride = self.kernel_height
        check_int("stride", stride, 1)
        check_int("padding", padding, 0, min(self.kernel_height, self.kernel_width) // 2)
        check_average(reciprocal_frac, rounding)
        if self.kernel_height > height + 2 * padding or self.kernel_width > width + 2 * padding:
            raise ValueError(
                f"kernel {(self.kernel_height, self.kernel_width)} is larger than the padded input {height}x{width}"
            )
        self.mode, self.stride, self.padding = mode, stride, padding
        self.out_height = conv_output_size(height, self.kernel_height, stride, padding)
        self.out_width = conv_output_size(width, self.kernel_width, stride, padding)
        super().__init__(
            channels=channels, height=height, width=width, fmt=fmt, reciprocal_frac=reciprocal_frac, rounding=rounding
        )

    @property
    def taps(self) -> int:
        return self.kernel_height * self.kernel_width

    @property
    def line_buffer_bytes(self) -> int:
        return self.kernel_height * self.width * self.channels * self.fmt.width // 8

    def cycles_per_frame(self) -> int:
        return stream_pool_cycles(
            height=self.height,
            width=self.width,
            kernel=(self.kernel_height, self.kernel_width),
            stride=self.stride,
            padding=self.padding,
        )

    def elaborate(self, platform):
        m = Module()
        fmt, channels = self.fmt, self.channels
        element_shape = signed(fmt.width) if fmt.signed else unsigned(fmt.width)
        scan = window_scan(
            m,
            i=self.i,
            o=self.o,
            height=self.height,
            width=self.width,
            kernel=(self.kernel_height, self.kernel_width),
            stride=self.stride,
            padding=self.padding,
            steps=1,
            element_bits=channels * fmt.width,
            out_height=self.out_height,
            out_width=self.out_width,
        )
        if self.mode == "max":
            # Padding taps leave the running maximum alone; the first tap starts it at the format's minimum
            # (every window holds at least one element of the frame: padding <= kernel // 2).
            acc_shape = element_shape
        else:
            # Exact window sum: |sum| <= taps * 2**(width-1).
            acc_shape = signed(fmt.width + self.taps.bit_length() + 1)
        for c in range(channels):
            acc = Signal(acc_shape, name=f"acc_{c}")
            element = scan.pixel[c * fmt.width : (c + 1) * fmt.width]
            element = element.as_signed() if fmt.signed else element
            with m.If(scan.stage_valid):
                if self.mode == "max":
                    base = Mux(scan.stage_first, fmt.min, acc)
                    m.d.sync += acc.eq(Mux(~scan.stage_pad & (element > base), element, base))
                else:
                    base = Mux(scan.stage_first, 0, acc)
                    m.d.sync += acc.eq(base + Mux(scan.stage_pad, 0, element))
            if self.mode == "max":
                m.d.comb += self.o.payload.data[c].eq(acc)
            else:
                m.d.comb += self.o.payload.data[c].eq(
                    divide(acc, self.taps, self.reciprocal_frac, self.rounding, fmt)
                )
        return m
