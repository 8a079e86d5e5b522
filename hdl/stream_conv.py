"""Streaming convolution engine for Occam pipeline stages (``research/occam_lrcnn_caterpillar.md`` 5(b)).

One conv2d layer (optionally followed by ReLU) on a row stream of pixels (:func:`hdl.link.pixel_layout`):
the filters are held on chip (a ROM initialised from the layer's integer weights: Occam's full reuse,
filters read from off-chip once), and the input is kept in a *line buffer* of ``kernel_height`` rows of
``width x in_channels`` elements, the dependence closure of one output row under the wavefront model M2
(a window of ``k`` input rows per output row; rows are overwritten once no later output row needs them).

Schedule per frame, in order: accept input rows until every row the next output row needs has arrived
(``FILL``), then compute that output row pixel by pixel (``COMPUTE``: issue the taps; ``FINISH``: the
last tap's multiply-accumulate; ``EMIT``: hand the requantized pixel out). A pixel is
``kernel_height * kernel_width * in_channels`` taps, one per cycle, each multiplying one input element with
the ``out_channels`` weights of that tap in parallel (``out_channels`` multipliers). Input rows that no
output needs (bottom rows of a strided layer) are consumed and dropped (``DRAIN``).

Arithmetic is :class:`golden.numerics.MacArithmetic` (products added in ascending tap order ``(ky, kx, ci)``
with the overflow rule after every addition) followed by :func:`golden.numerics.requantize` (arithmetic
shift with the named rounding, saturation to the output format) and ReLU, the same operations the
golden model applies.
"""

from __future__ import annotations

import numpy as np
from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.numerics import ROUNDING_MODES, IntFormat, MacArithmetic
from hdl.link import pixel_layout
from hdl.pe import accumulate

__all__ = ["StreamConv2d", "conv_output_size", "stream_conv_cycles"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def stream_conv_cycles(
    *, height: int, width: int, kernel: tuple[int, int], stride: int, padding: int, in_channels: int
) -> int:
    """Cycles per frame of one :class:`StreamConv2d` with input always available and output always ready.

    Each input pixel takes one cycle, each output pixel ``taps + 2`` (issue, last MAC, emit), each output
    row one more cycle for the FILL decision.
    """
    out_h = conv_output_size(height, kernel[0], stride, padding)
    out_w = conv_output_size(width, kernel[1], stride, padding)
    taps = kernel[0] * kernel[1] * in_channels
    return height * width + out_h * (out_w * (taps + 2) + 1)


class StreamConv2d(wiring.Component):
    """A conv2d (+ ReLU) layer on a pixel row stream, filters on chip, ``kernel_height``-row line buffer.

    Parameters
    ----------
    weights : array of int, shape (out_channels, in_channels, kernel_height, kernel_width)
        The filters (``arithmetic.operand`` range). ``groups = 1``, no bias.
    height, width : int
        Input frame size.
    stride, padding : int
        As in ``torch.nn.Conv2d`` (same value for both axes; zero padding).
    shift : int
        Requantization right shift, 0 to ``acc_width - 1``.
    rounding : str
        A :data:`golden.numerics.ROUNDING_MODES` mode for the shift.
    relu : bool
        Clamp negative outputs to 0 after requantization.
    arithmetic : MacArithmetic
        Operand/accumulator arithmetic (default int8 x int8 -> int32, wrap).
    out_width : int
        Bits of the requantized output elements (signed when ``arithmetic.signed``).

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
    ):
        arithmetic = MacArithmetic() if arithmetic is None else arithmetic
        if not isinstance(arithmetic, MacArithmetic):
            raise TypeError(f"arithmetic must be a golden.numerics.MacArithmetic, not {arithmetic!r}")
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
        self.out_channels, self.in_channels, self.kernel_height, self.kernel_width = weights.shape
        if self.kernel_height > height + 2 * padding or self.kernel_width > width + 2 * padding:
            raise ValueError(f"kernel {weights.shape[2:]} is larger than the padded input {height}x{width}")
        self.weights = weights.astype(np.int64)
        self.height, self.width = height, width
        self.stride, self.padding = stride, padding
        self.shift, self.rounding, self.relu = shift, rounding, bool(relu)
        self.arithmetic = arithmetic
        self.out_format = IntFormat(out_width, arithmetic.signed)
        self.out_height = conv_output_size(height, self.kernel_height, stride, padding)
        self.out_width = conv_output_size(width, self.kernel_width, stride, padding)
        self.in_layout = pixel_layout(self.in_channels, arithmetic.in_width, arithmetic.signed)
        self.out_layout = pixel_layout(self.out_channels, out_width, arithmetic.signed)
        super().__init__(
            {"i": In(stream.Signature(self.in_layout)), "o": Out(stream.Signature(self.out_layout))}
        )

    @property
    def taps(self) -> int:
        return self.kernel_height * self.kernel_width * self.in_channels

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
        )

    def elaborate(self, platform):
        m = Module()
        arithmetic = self.arithmetic
        in_width = arithmetic.in_width
        operand = signed(in_width) if arithmetic.signed else unsigned(in_width)
        kh, kw, cin, cout = self.kernel_height, self.kernel_width, self.in_channels, self.out_channels
        height, width, stride, padding = self.height, self.width, self.stride, self.padding

        # --- storage: line buffer (kh rows) and the filter ROM (one word = all out channels of a tap)
        line = Memory(shape=unsigned(cin * in_width), depth=kh * width, init=[])
        tap_words = []
        for ky in range(kh):
            for kx in range(kw):
                for ci in range(cin):
                    word = 0
                    for co in range(cout):
                        word |= (int(self.weights[co, ci, ky, kx]) & ((1 << in_width) - 1)) << (co * in_width)
                    tap_words.append(word)
        rom = Memory(shape=unsigned(cout * in_width), depth=len(tap_words), init=tap_words)
        m.submodules.line = line
        m.submodules.rom = rom
        write = line.write_port()
        line_read = line.read_port()
        rom_read = rom.read_port()

        # --- input side
        in_x = Signal(range(max(width, 2)))
        rows_in = Signal(range(height + 1))
        write_base = Signal(range(kh * width))
        batch = Signal(8)

        # --- output position and window origin (may be negative: padding)
        out_x = Signal(range(max(self.out_width, 2)))
        out_y = Signal(range(max(self.out_height, 2)))
        initial_slot = (-padding) % kh
        origin_row = Signal(signed(max(height, padding).bit_length() + 3), init=-padding)
        origin_col = Signal(signed(max(width, padding).bit_length() + 3), init=-padding)
        origin_slot = Signal(
            range(max(kh, 2)), init=initial_slot
        )  # slot of origin_row: row r lives in slot r mod kh

        # rows of the input the current output row needs before it can start
        needed = Signal(range(height + 1))
        last_needed = origin_row + kh
        m.d.comb += needed.eq(Mux(last_needed > height, height, Mux(last_needed < 0, 0, last_needed)))

        # --- tap issue counters and the one-cycle pipeline to the MAC stage
        # (no zero-width counters: Verilator rejects the [-1:0] ranges they become)
        ky = Signal(range(max(kh, 2)))
        kx = Signal(range(max(kw, 2)))
        ci = Signal(range(max(cin, 2)))
        tap = Signal(range(max(self.taps, 2)))
        row = origin_row + ky
        col = origin_col + kx
        slot_sum = origin_slot + ky
        slot = Mux(slot_sum >= kh, slot_sum - kh, slot_sum)
        outside = (row < 0) | (row >= height) | (col < 0) | (col >= width)
        stage_valid = Signal()
        stage_pad = Signal()
        stage_ci = Signal(range(max(cin, 2)))
        stage_first = Signal()
        stage_last = Signal()

        accumulators = [
            Signal(
                signed(arithmetic.acc_width) if arithmetic.signed else unsigned(arithmetic.acc_width),
                name=f"acc_{co}",
            )
            for co in range(cout)
        ]
        result_ready = Signal()  # accumulators hold a finished pixel

        m.d.comb += [
            line_read.addr.eq(slot * width + col[: max(1, (width - 1).bit_length())]),
            rom_read.addr.eq(tap),
        ]

        # MAC stage: data from the read ports is for the tap issued in the previous cycle
        element = Signal(operand)
        channel_words = line_read.data
        m.d.comb += element.eq(
            Mux(
                stage_pad,
                0,
                _select(channel_words, stage_ci, cin, in_width).as_signed()
                if arithmetic.signed
                else _select(channel_words, stage_ci, cin, in_width),
            )
        )
        with m.If(stage_valid):
            for co in range(cout):
                weight = rom_read.data[co * in_width : (co + 1) * in_width]
                weight = weight.as_signed() if arithmetic.signed else weight
                base = Mux(stage_first, 0, accumulators[co])
                m.d.sync += accumulators[co].eq(accumulate(arithmetic, base, element * weight))
            with m.If(stage_last):
                m.d.sync += result_ready.eq(1)
        m.d.sync += stage_valid.eq(0)

        # --- requantization + ReLU of the finished pixel (combinational from the accumulators)
        out_pixel = Signal(self.out_layout)
        for co in range(cout):
            m.d.comb += out_pixel.data[co].eq(self._requantize(accumulators[co]))
        last_col = out_x == self.out_width - 1
        last_row = out_y == self.out_height - 1
        m.d.comb += [
            out_pixel.first.eq((out_x == 0) & (out_y == 0)),
            out_pixel.row_end.eq(last_col),
            out_pixel.frame_end.eq(last_col & last_row),
            out_pixel.batch.eq(batch),
            self.o.payload.eq(out_pixel),
        ]

        accept = self.i.valid & self.i.ready
        with m.If(accept):
            m.d.comb += [
                write.addr.eq(write_base + in_x),
                write.data.eq(self.i.payload.data.as_value()),
                write.en.eq(1),
            ]
            with m.If(self.i.payload.first):
                m.d.sync += batch.eq(self.i.payload.batch)
            with m.If(in_x == width - 1):
                m.d.sync += [
                    in_x.eq(0),
                    rows_in.eq(rows_in + 1),
                    write_base.eq(Mux(write_base == (kh - 1) * width, 0, write_base + width)),
                ]
            with m.Else():
                m.d.sync += in_x.eq(in_x + 1)

        with m.FSM(init="FILL"):
            with m.State("FILL"):
                m.d.comb += self.i.ready.eq(rows_in < needed)
                with m.If(rows_in >= needed):
                    m.next = "COMPUTE"
            with m.State("COMPUTE"):
                # issue one tap per cycle: (ky, kx, ci) ascending, ci fastest
                m.d.sync += [
                    stage_valid.eq(1),
                    stage_pad.eq(outside),
                    stage_ci.eq(ci),
                    stage_first.eq(tap == 0),
                    stage_last.eq(tap == self.taps - 1),
                    result_ready.eq(0),
                ]
                with m.If(tap == self.taps - 1):
                    m.d.sync += [tap.eq(0), ky.eq(0), kx.eq(0), ci.eq(0)]
                    m.next = "FINISH"
                with m.Else():
                    m.d.sync += tap.eq(tap + 1)
                    with m.If(ci == cin - 1):
                        m.d.sync += ci.eq(0)
                        with m.If(kx == kw - 1):
                            m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                        with m.Else():
                            m.d.sync += kx.eq(kx + 1)
                    with m.Else():
                        m.d.sync += ci.eq(ci + 1)
            with m.State("FINISH"):  # the last tap's MAC happens in this cycle
                m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += self.o.valid.eq(result_ready)
                with m.If(self.o.ready):
                    with m.If(~last_col):
                        m.d.sync += [out_x.eq(out_x + 1), origin_col.eq(origin_col + stride)]
                        m.next = "COMPUTE"
                    with m.Elif(~last_row):
                        next_slot = origin_slot + (stride % kh)
                        m.d.sync += [
                            out_x.eq(0),
                            origin_col.eq(-padding),
                            out_y.eq(out_y + 1),
                            origin_row.eq(origin_row + stride),
                            origin_slot.eq(Mux(next_slot >= kh, next_slot - kh, next_slot)),
                        ]
                        m.next = "FILL"
                    with m.Else():
                        m.d.sync += [
                            out_x.eq(0),
                            out_y.eq(0),
                            origin_col.eq(-padding),
                            origin_row.eq(-padding),
                            origin_slot.eq(initial_slot),
                        ]
                        m.next = "DRAIN"
            with m.State("DRAIN"):  # drop input rows no output needed, then start the next frame
                m.d.comb += self.i.ready.eq(rows_in < height)
                with m.If(rows_in == height):
                    m.d.sync += [rows_in.eq(0), in_x.eq(0), write_base.eq(0)]
                    m.next = "FILL"
        return m

    def _requantize(self, value):
        """:func:`golden.numerics.requantize` of one accumulator, then ReLU, in the output format."""
        shift = self.shift
        fmt = self.out_format
        if shift == 0:
            rounded = value
        else:
            floor = value >> shift  # arithmetic for signed values
            remainder = value[:shift]
            half = 1 << (shift - 1)
            if self.rounding == "floor":
                up = Const(0, 1)
            elif self.rounding == "half_up":
                up = remainder >= half
            elif self.rounding == "half_even":
                up = (remainder > half) | ((remainder == half) & floor[0])
            else:  # half_away_from_zero
                negative = value[-1] if self.arithmetic.signed else Const(0, 1)
                up = (remainder > half) | ((remainder == half) & ~negative)
            rounded = floor.as_signed() + up if self.arithmetic.signed else floor + up
        low, high = fmt.min, fmt.max
        if self.relu:
            low = max(low, 0)
        clamped = Mux(rounded > high, high, Mux(rounded < low, low, rounded))
        return clamped[: fmt.width]


def _select(word, index, count: int, width: int):
    """Element ``index`` of ``count`` ``width``-bit fields packed in ``word``."""
    if count == 1:
        return word[:width]
    return word.word_select(index, width)
