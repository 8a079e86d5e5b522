"""Streaming element-wise addition (residual joins) for Occam pipeline stages.

``wavecore.golden.integer.IntegerKernels.add_forward``: the exact sum of ``count`` pixel streams of the same shape,
saturated once to the element format, optionally followed by a fused ReLU (``relu``, clamped at
``relu_max``: ``IntegerKernels.relu_forward`` of the next layer). Combinational join (:mod:`wavecore.hdl.stream.join`):
no latency, one pixel per cycle when every input is valid and the output ready.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import IntFormat, check_int
from wavecore.hdl.stream.join import join_streams
from wavecore.hdl.stream.link import pixel_layout
from wavecore.hdl.stream.window import requantize

__all__ = ["StreamAdd", "stream_add_cycles"]


def stream_add_cycles(*, height: int, width: int) -> int:
    """Cycles per frame with inputs always valid and output always ready: one per pixel."""
    return height * width


def check_relu(relu, relu_max, fmt: IntFormat):
    """Validate a ``relu`` / ``relu_max`` pair (``relu_max`` needs ``relu``; 0 to ``fmt.max``)."""
    if relu_max is None:
        return None
    if not relu:
        raise ValueError("relu_max needs relu=True")
    if not isinstance(relu_max, int | np.integer) or isinstance(relu_max, bool) or not 0 <= relu_max <= fmt.max:
        raise ValueError(f"relu_max must be an integer between 0 and {fmt.max}, not {relu_max!r}")
    return int(relu_max)


class StreamAdd(wiring.Component):
    """Saturating element-wise sum of ``count`` pixel streams (+ optional ReLU / clamped ReLU).

    Parameters
    ----------
    channels : int
        Channels of every pixel (all inputs and the output).
    count : int
        Number of inputs, 2 to 8.
    fmt : wavecore.golden.numerics.IntFormat or None
        Element format in and out (default int8): golden's ``numerics.operand``.
    relu : bool
        Clamp negative sums to 0 (a ``relu`` layer right after the add, as in ResNet blocks).
    relu_max : int or None
        Upper clamp of that ReLU (e.g. ReLU6 on the activation grid), 0 to ``fmt.max``; needs ``relu``.

    Attributes
    ----------
    inputs : In(stream.Signature(pixel_layout(channels, fmt.width, fmt.signed))).array(count)
        The summands, pixel for pixel in the same raster order.
    o : Out(stream.Signature(pixel_layout(channels, fmt.width, fmt.signed)))
        The sums; markers copied from ``inputs[0]``. Valid when every input is valid; every input's
        ``ready`` is ``o.ready`` and all inputs valid (no latency, no storage).
    error : Out(1)
        Sticky: a transfer joined pixels whose markers (``first``, ``row_end``, ``frame_end``, ``batch``)
        differ, i.e. the inputs are out of step. Cleared only by reset.

    Timing: one pixel per cycle (:func:`stream_add_cycles`); ``channels`` adders of ``count`` terms.
    """

    def __init__(
        self,
        *,
        channels: int,
        count: int = 2,
        fmt: IntFormat | None = None,
        relu: bool = False,
        relu_max: int | None = None,
    ):
        fmt = IntFormat(8) if fmt is None else fmt
        if not isinstance(fmt, IntFormat):
            raise TypeError(f"fmt must be a wavecore.golden.numerics.IntFormat, not {fmt!r}")
        check_int("channels", channels, 1, 4096)
        check_int("count", count, 2, 8)
        self.relu_max = check_relu(relu, relu_max, fmt)
        self.channels, self.count, self.fmt, self.relu = channels, count, fmt, bool(relu)
        self.in_layout = self.out_layout = pixel_layout(channels, fmt.width, fmt.signed)
        super().__init__(
            {
                "inputs": In(stream.Signature(self.in_layout)).array(count),
                "o": Out(stream.Signature(self.out_layout)),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        error = Signal()
        m.d.comb += self.error.eq(error)
        join_streams(m, list(self.inputs), self.o, error)
        low = 0 if self.relu else None
        for c in range(self.channels):
            total = sum((port.payload.data[c] for port in self.inputs[1:]), self.inputs[0].payload.data[c])
            m.d.comb += self.o.payload.data[c].eq(requantize(total, 0, "floor", self.fmt, low=low, high=self.relu_max))
        return m
