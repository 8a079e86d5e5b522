"""Streaming convolution engine for Occam pipeline stages (Gondimalla et al., "Occam: Optimal Data Reuse for
Convolutional Neural Networks", arXiv 2106.14138).

One conv2d layer (grouped or depthwise, with an optional bias, optionally followed by ReLU or a clamped
ReLU such as ReLU6) on a row stream of pixels (:func:`wavecore.hdl.stream.link.pixel_layout`):
the filters are held on chip (a ROM initialised from the layer's integer weights: Occam's full reuse,
filters read from off-chip once), and the input is kept in a *line buffer* of ``kernel_height`` rows of
``width x in_channels`` elements, the dependence closure of one output row under the wavefront model M2
(a window of ``k`` input rows per output row; rows are overwritten once no later output row needs them).

Schedule per frame, in order: accept input rows until every row the next output row needs has arrived
(``FILL``), then compute that output row pixel by pixel (``COMPUTE``: issue the taps; ``FINISH``: two
cycles, the last tap's multiply, then its accumulate; ``EMIT``: hand the requantized pixel out). A pixel is
``kernel_height * kernel_width * in_channels / groups`` taps, one per cycle; a tap reads one input pixel
(all channels) from the line buffer and multiplies, for every output channel in parallel
(``out_channels`` multipliers), the element of that channel's group with the tap's weight, into a product
register that the accumulator adds one cycle later (a two-stage MAC pipeline: the operand select, the
multiplier and the 32-bit saturating add were one 21 ns path on ECP5). Input rows that
no output needs (bottom rows of a strided layer) are consumed and dropped (``DRAIN``). The line buffer and
this schedule are :func:`hdl.stream.window.window_scan`, shared with :class:`hdl.stream.pool.StreamPool2d`.

Arithmetic is :class:`wavecore.golden.numerics.MacArithmetic`: the accumulator starts at the bias (0 without one)
and the products are added in golden's im2col order ``(ci, ky, kx)`` ascending (``ci`` the channel within
the group, slowest) with the overflow rule after every addition, so even a saturating accumulator gives
the bits of :func:`golden.integer.conv2d_forward_int`. Then :func:`golden.numerics.requantize` (arithmetic
shift with the named rounding, saturation to the output format) and ReLU (clamped at ``relu_max`` if
given), the same operations the golden model applies.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import ROUNDING_MODES, IntFormat, MacArithmetic
from wavecore.hdl.array.pe import accumulate
from wavecore.hdl.stream.link import pixel_layout
from wavecore.hdl.stream.window import requantize, select_element, window_scan, windowed_cycles

__all__ = ["MAC_LATENCY", "StreamConv2d", "conv_output_size", "stream_conv_cycles"]

#: Cycles from a tap's operands (line buffer and ROM read data) to its accumulator: multiply, accumulate.
MAC_LATENCY = 2


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def stream_conv_cycles(
    *,
    height: int,
    width: int,
    kernel: tuple[int, int],
    stride: int,
    padding: int,
    in_channels: int,
    groups: int = 1,
) -> int:
    """Cycles per frame of one :class:`StreamConv2d` with input always available and output always ready.

    Each input pixel takes one cycle, each output pixel ``taps + 3`` (issue, last multiply, last
    accumulate, emit) with ``taps = kh * kw * in_channels / groups``, each output row one more cycle for
    the FILL decision, each frame one for the DRAIN decision (:func:`wavecore.hdl.stream.window.windowed_cycles`
    with ``latency`` :data:`MAC_LATENCY`).
    """
    out_h = conv_output_size(height, kernel[0], stride, padding)
    out_w = conv_output_size(width, kernel[1], stride, padding)
    taps = kernel[0] * kernel[1] * (in_channels // groups)
    return windowed_cycles(
        height=height, width=width, out_height=out_h, out_width=out_w, taps=taps, latency=MAC_LATENCY
    )


class StreamConv2d(wiring.Component):
    """A conv2d (+ ReLU) layer on a pixel row stream, filters on chip, ``kernel_height``-row line buffer.

    Parameters
    ----------
    weights : array of int, shape (out_channels, in_channels // groups, kernel_height, kernel_width)
        The filters (``arithmetic.operand`` range), golden's layout.
    height, width : int
        Input frame size.
    stride, padding : int
        As in ``torch.nn.Conv2d`` (same value for both axes; zero padding).
    shift : int
        Requantization right shift, 0 to ``acc_width - 1``.
    rounding : str
        A :data:`wavecore.golden.numerics.ROUNDING_MODES` mode for the shift.
    relu : bool
        Clamp negative outputs to 0 after requantization.
    arithmetic : MacArithmetic
        Operand/accumulator arithmetic (default int8 x int8 -> int32, wrap).
    out_width : int
        Bits of the requantized output elements (signed when ``arithmetic.signed``).
    groups : int
        Channel groups as in ``torch.nn.Conv2d``: 1 to ``in_channels``, dividing ``out_channels``
        (``groups = in_channels`` is a depthwise conv). Output channel ``co`` reads input channels
        ``g * in_channels // groups`` onward of its group ``g = co // (out_channels // groups)``.
    bias : array of int, shape (out_channels,), or None
        The accumulators' start values (``arithmetic.accumulator`` range): golden's ``bias_q <<
        activation_frac``.
    relu_max : int or None
        Upper clamp of the ReLU (e.g. ReLU6's limit on the output grid), 0 to the output format's maximum;
        needs ``relu=True``.

    Attributes
    ----------
    i : In(stream.Signature(pixel_layout(in_channels, in_width)))
        Input pixels in raster order; ``first`` marks a frame's first pixel and its ``batch`` id is
        carried to every output pixel of the frame. ``ready`` is high in the FILL and DRAIN phases.
    o : Out(stream.Signature(pixel_layout(out_channels, out_width)))
        Output pixels in raster order with ``first``, ``row_end``, ``frame_end`` and ``batch`` set.
        ``valid`` holds until ``ready``; the engine waits (no data is lost) while ``ready`` is low.
    """

    def __init__(
        self,
        *,
        weights,
        height: int,
        width: int,
        stride: int = 1,
        padding: int = 0,
        shift: int = 0,
        rounding: str = "half_even",
        relu: bool = False,
        arithmetic: MacArithmetic | None = None,
        out_width: int = 8,
        groups: int = 1,
        bias=None,
        relu_max: int | None = None,
    ):
        arithmetic = MacArithmetic() if arithmetic is None else arithmetic
        if not isinstance(arithmetic, MacArithmetic):
            raise TypeError(f"arithmetic must be a wavecore.golden.numerics.MacArithmetic, not {arithmetic!r}")
        weights = np.asarray(weights)
        if weights.ndim != 4 or weights.dtype.kind not in "iu":
            raise ValueError(
                f"weights must be an integer array of shape (out, in, kh, kw), not {weights.shape}"
            )
        arithmetic.operand.check(weights, "weights")
        for name, value, minimum in (
            ("height", height, 1),
            ("width", width, 1),
            ("stride", stride, 1),
            ("padding", padding, 0),
            ("out_width", out_width, 2),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
        if not isinstance(shift, int) or isinstance(shift, bool) or not 0 <= shift < arithmetic.acc_width:
            raise ValueError(
                f"shift must be an integer between 0 and {arithmetic.acc_width - 1}, not {shift!r}"
            )
        if rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {rounding!r}")
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise ValueError(f"groups must be an integer >= 1, not {groups!r}")
        self.out_channels, group_channels, self.kernel_height, self.kernel_width = weights.shape
        if self.out_channels % groups:
            raise ValueError(f"groups must divide out_channels {self.out_channels}, not {groups}")
        self.groups = groups
        self.group_channels = group_channels
        self.in_channels = group_channels * groups
        if bias is not None:
            bias = np.asarray(bias)
            if bias.shape != (self.out_channels,) or bias.dtype.kind not in "iu":
                raise ValueError(
                    f"bias must be an integer array of shape ({self.out_channels},), not {bias.shape}"
                )
            bias = arithmetic.accumulator.check(bias, "bias")
        self.bias = bias
        out_format = IntFormat(out_width, arithmetic.signed)
        if relu_max is not None:
            if not relu:
                raise ValueError("relu_max needs relu=True")
            if not isinstance(relu_max, int | np.integer) or isinstance(relu_max, bool) or not (
                0 <= relu_max <= out_format.max
            ):
                raise ValueError(f"relu_max must be an integer between 0 and {out_format.max}, not {relu_max!r}")
            relu_max = int(relu_max)
        self.relu_max = relu_max
        if self.kernel_height > height + 2 * padding or self.kernel_width > width + 2 * padding:
            raise ValueError(f"kernel {weights.shape[2:]} is larger than the padded input {height}x{width}")
        self.weights = weights.astype(np.int64)
        self.height, self.width = height, width
        self.stride, self.padding = stride, padding
        self.shift, self.rounding, self.relu = shift, rounding, bool(relu)
        self.arithmetic = arithmetic
        self.out_format = out_format
        self.out_height = conv_output_size(height, self.kernel_height, stride, padding)
        self.out_width = conv_output_size(width, self.kernel_width, stride, padding)
        self.in_layout = pixel_layout(self.in_channels, arithmetic.in_width, arithmetic.signed)
        self.out_layout = pixel_layout(self.out_channels, out_width, arithmetic.signed)
        super().__init__(
            {"i": In(stream.Signature(self.in_layout)), "o": Out(stream.Signature(self.out_layout))}
        )

    @property
    def taps(self) -> int:
        return self.kernel_height * self.kernel_width * self.group_channels

    @property
    def line_buffer_bytes(self) -> int:
        return self.kernel_height * self.width * self.in_channels * self.arithmetic.in_width // 8

    @property
    def filter_bytes(self) -> int:
        return self.weights.size * self.arithmetic.in_width // 8

    def cycles_per_frame(self) -> int:
        return stream_conv_cycles(
            height=self.height,
            width=self.width,
            kernel=(self.kernel_height, self.kernel_width),
            stride=self.stride,
            padding=self.padding,
            in_channels=self.in_channels,
            groups=self.groups,
        )

    def elaborate(self, platform):
        m = Module()
        arithmetic = self.arithmetic
        in_width = arithmetic.in_width
        operand = signed(in_width) if arithmetic.signed else unsigned(in_width)
        kh, kw, cout = self.kernel_height, self.kernel_width, self.out_channels
        cgroup, per_group = self.group_channels, self.out_channels // self.groups

        # --- the filter ROM: one word = all out channels' weights of a tap, in golden's im2col order
        # (ci within the group, ky, kx), kx fastest
        tap_words = []
        for ci in range(cgroup):
            for ky in range(kh):
                for kx in range(kw):
                    word = 0
                    for co in range(cout):
                        word |= (int(self.weights[co, ci, ky, kx]) & ((1 << in_width) - 1)) << (co * in_width)
                    tap_words.append(word)
        tap_words += [0] * (2 - len(tap_words))  # no one-entry ROM (zero-width address, see window_scan)
        rom = Memory(shape=unsigned(cout * in_width), depth=len(tap_words), init=tap_words)
        m.submodules.rom = rom
        rom_read = rom.read_port()

        scan = window_scan(
            m,
            i=self.i,
            o=self.o,
            height=self.height,
            width=self.width,
            kernel=(kh, kw),
            stride=self.stride,
            padding=self.padding,
            steps=cgroup,
            element_bits=self.in_channels * in_width,
            out_height=self.out_height,
            out_width=self.out_width,
            latency=MAC_LATENCY,
        )
        m.d.comb += rom_read.addr.eq(scan.tap)

        # MAC stage 1 (multiply): data from the read ports is for the tap issued in the previous cycle; one
        # element per group (channel stage_step of the group; a plain wire for a depthwise conv) times the
        # tap's weight of every output channel, into the product registers. Stage 2 (accumulate) adds them.
        accumulators = [
            Signal(
                signed(arithmetic.acc_width) if arithmetic.signed else unsigned(arithmetic.acc_width),
                name=f"acc_{co}",
            )
            for co in range(cout)
        ]
        elements = []
        for g in range(self.groups):
            element = Signal(operand, name=f"element_{g}")
            group_word = scan.pixel[g * cgroup * in_width : (g + 1) * cgroup * in_width]
            selected = select_element(group_word, scan.stage_step, cgroup, in_width)
            m.d.comb += element.eq(
                Mux(scan.stage_pad, 0, selected.as_signed() if arithmetic.signed else selected)
            )
            elements.append(element)
        product_shape = signed(2 * in_width) if arithmetic.signed else unsigned(2 * in_width)
        products = [Signal(product_shape, name=f"product_{co}") for co in range(cout)]
        product_valid = Signal()
        product_first = Signal()
        m.d.sync += [product_valid.eq(scan.stage_valid), product_first.eq(scan.stage_first)]
        with m.If(scan.stage_valid):
            for co in range(cout):
                weight = rom_read.data[co * in_width : (co + 1) * in_width]
                weight = weight.as_signed() if arithmetic.signed else weight
                m.d.sync += products[co].eq(elements[co // per_group] * weight)
        with m.If(product_valid):
            for co in range(cout):
                start = 0 if self.bias is None else int(self.bias[co])
                base = Mux(product_first, start, accumulators[co])
                m.d.sync += accumulators[co].eq(accumulate(arithmetic, base, products[co]))

        # --- requantization + ReLU of the finished pixel (combinational from the accumulators)
        low = 0 if self.relu else None
        for co in range(cout):
            m.d.comb += self.o.payload.data[co].eq(
                requantize(accumulators[co], self.shift, self.rounding, self.out_format, low=low, high=self.relu_max)
            )
        return m


