"""im2col feeder: turns a tensor in the banked scratchpad into the array's activation operand stream.

Convolutions run as im2col GEMMs, but the lowered matrix ``Xcol[K x P]``
(K = C*kh*kw ordered (c, i, j), P = output positions) is never stored; the feeder computes, per beat, the
addresses of ``lanes`` output positions of one row of ``Xcol`` and reads them from ``banks`` scratchpad
banks in parallel (:class:`wavecore.hdl.memory.bank_reader.BankReader`).

Layout in the scratchpad (one sample): element ``x[c, h, w]`` has the element address
``a = base * banks + c * channel_pitch + h * row_pitch + w``; it lives in bank ``a mod banks`` at word
``a // banks``. With ``row_pitch = row_words * banks`` and ``channel_pitch = height * row_pitch`` this is
the plain layout (bank ``w mod banks``, word ``base + (c*H + h)*row_words + w // banks``); pitches that are
not multiples of ``banks`` skew the rows so the same tensor can also be read position-major by
``hdl/memory/position_feeder.py`` (backward-weight) without bank conflicts. The lanes of a beat are consecutive
output columns of one output row, so their input columns are ``stride`` apart and fall into distinct banks
whenever ``stride * lanes <= banks``: every beat is one conflict-free parallel read, one beat per cycle.

Backward-data as a transposed convolution (180°-rotated filters, Cin and Cout swapped, so no col2im
scatter-add is needed): ``dx = conv(dilate(dy, s), W', stride 1, padding k-1-p)`` where
``dilate`` puts ``s - 1`` zeros between the elements of ``dy`` and ``W'`` comes from
``hdl/memory/weight_feeder.py`` (transposed). The feeder reads ``dy`` itself: with ``dilation = s`` the input is
the virtual ``((H-1)*s + 1) x ((W-1)*s + 1)`` dilated tensor, and a tap at a virtual row or column that is
not a multiple of ``s`` is a zero flagged like padding (not read). The output size is given by
``output_padding`` (the remainder ``(H_x + 2p - k) mod s`` of the forward conv, which the forward conv
dropped): :meth:`Im2colFeeder.check_backward_data_command` derives it from the forward geometry. ``s`` must
be a power of two (the hardware divides by shifting); other strides are refused.

Padding taps (and lanes past the last output column) are not read: they are flagged in ``pad`` and carry
0, and the affine+ReLU unit downstream (``hdl/norm/affine.py``) zeroes them *after* the affine transform
(a fused BN/GN pads the normalised tensor, so padding is zero in z-space, not in x-space).
"""

from __future__ import annotations

from amaranth import Const, Module, Signal, signed
from amaranth.lib import data

from wavecore.hdl.memory.bank_reader import BankedFeeder

__all__ = ["MAX_DILATION_SHIFT", "Im2colFeeder"]

MAX_DILATION_SHIFT = 7


class Im2colFeeder(BankedFeeder):
    """Stream the rows of ``Xcol`` for one conv layer, ``lanes`` output positions per beat.

    Beat order: for each output row ``oh``, for each block of ``lanes`` output columns, for ``k`` in
    (c, i, j) row-major: one beat with ``Xcol[k, oh*Wo + ow0 : +lanes]``; ``last`` marks ``k = K - 1``
    (the end of one output-stationary tile, ``a.payload.last`` of ``hdl/array/systolic.py``).

    Parameters
    ----------
    lanes : int
        Output positions per beat (1 to 64).
    banks : int
        Scratchpad banks read in parallel, a power of two >= lanes (up to 128). Convolutions with
        ``stride * lanes <= banks`` run without bank conflicts (a command breaking this is refused by
        :meth:`check_command`).
    bank_depth : int
        Words per bank region (address range), 2 to 2**20.
    width : int
        Bits per element (2 to 32), signed.
    dimension_width : int
        Bits of the shape fields (channels, heights, widths), 2 to 16.

    Attributes
    ----------
    command : In(stream.Signature(StructLayout({"base", "row_pitch", "channel_pitch", "channels", "height",
    "width", "kernel_h", "kernel_w", "stride", "padding", "dilation_shift", "out_height", "out_width"})))
        One layer; accepted when idle or together with the previous command's final beat request
        (back-to-back commands run without a bubble). Build it with :meth:`check_command` (forward) or
        :meth:`check_backward_data_command`. ``base`` is a word address, the pitches are in elements,
        ``dilation_shift`` is log2 of the input dilation (0 for a forward conv).
    read_address : list of Out(stream.Signature(range(bank_depth)))
        Per-bank read requests (connect to ``Scratchpad.read_address``).
    read_data : list of In(stream.Signature(width))
        Per-bank read responses in request order, any latency (``Scratchpad.read_data``).
    operand : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(width), lanes), "pad": lanes,
    "last": 1, "channel": dimension_width})))
        The beats; ``channel`` is the input channel c of the beat's k (it selects the affine unit's
        per-channel constants). Under no stalls one per cycle after a start-up of three cycles.
    idle : Out(1)
        No command active and every beat delivered.
    """

    def __init__(self, *, lanes: int, banks: int, bank_depth: int, width: int, dimension_width: int = 10):
        self._check_feeder(
            lanes=lanes, banks=banks, bank_depth=bank_depth, width=width, dimension_width=dimension_width
        )
        dimension = dimension_width
        command_layout = data.StructLayout(
            {
                "base": range(bank_depth),
                "row_pitch": range(self.elements),
                "channel_pitch": range(self.elements),
                "channels": dimension,
                "height": dimension,
                "width": dimension,
                "kernel_h": dimension,
                "kernel_w": dimension,
                "stride": dimension,
                "padding": dimension,
                "dilation_shift": range(MAX_DILATION_SHIFT + 1),
                "out_height": dimension,
                "out_width": dimension,
            }
        )
        super().__init__(command_layout, {"last": 1, "channel": dimension_width})

    # -- host side --------------------------------------------------------------------------------------
    def check_command(
        self,
        *,
        channels,
        height,
        width,
        kernel_h,
        kernel_w,
        stride,
        padding,
        base,
        row_words=None,
        row_pitch=None,
        channel_pitch=None,
        dilation=1,
        output_padding=0,
    ):
        """Host-side check of a layer before it is sent; returns the command fields (with Ho, Wo).

        Give the layout either as ``row_words`` (plain layout) or as ``row_pitch`` and ``channel_pitch``
        (elements). With ``dilation`` > 1 the input is dilated (zeros between elements, not stored) and
        the output grows by ``output_padding`` (an int or (rows, columns), each 0 to dilation - 1).
        """
        if (row_words is None) == (row_pitch is None):
            raise ValueError("give either row_words or row_pitch (with channel_pitch)")
        if row_words is not None:
            if row_words * self.banks < width:
                raise ValueError(
                    f"row_words must be at least ceil(width / banks) = {-(-width // self.banks)}, not {row_words}"
                )
            row_pitch = row_words * self.banks
            channel_pitch = height * row_pitch
        elif channel_pitch is None:
            raise ValueError("channel_pitch must be given with row_pitch")
        if row_pitch < width:
            raise ValueError(f"row_pitch must be at least width ({width}), not {row_pitch}")
        if channel_pitch < (height - 1) * row_pitch + width:
            raise ValueError(
                f"channel_pitch must be at least (height - 1) * row_pitch + width = "
                f"{(height - 1) * row_pitch + width}, not {channel_pitch}"
            )
        if dilation < 1 or dilation & (dilation - 1) or dilation > 1 << MAX_DILATION_SHIFT:
            raise ValueError(f"dilation must be a power of two from 1 to {1 << MAX_DILATION_SHIFT}, not {dilation}")
        if dilation > 1 and stride != 1:
            raise ValueError(f"stride must be 1 with an input dilation, not {stride}")
        pad_h, pad_w = (output_padding, output_padding) if isinstance(output_padding, int) else output_padding
        for extra in (pad_h, pad_w):
            if not 0 <= extra < dilation:
                raise ValueError(f"output_padding must be in [0, dilation = {dilation}), not {extra}")
        if stride * self.lanes > self.banks:
            raise ValueError(
                f"stride must be at most banks / lanes = {self.banks // self.lanes}, not {stride}"
            )
        virtual_height, virtual_width = (height - 1) * dilation + 1, (width - 1) * dilation + 1
        out_height = (virtual_height + 2 * padding - kernel_h) // stride + 1 + pad_h
        out_width = (virtual_width + 2 * padding - kernel_w) // stride + 1 + pad_w
        end = base * self.banks + (channels - 1) * channel_pitch + (height - 1) * row_pitch + width
        if -(-end // self.banks) > self.bank_depth:
            raise ValueError(
                f"the tensor needs {-(-end // self.banks)} words per bank, bank_depth is {self.bank_depth}"
            )
        if out_height < 1 or out_width < 1:
            raise ValueError("kernel_h/kernel_w must not exceed the padded input")
        fields = {
            "channels": channels,
            "height": height,
            "width": width,
            "kernel_h": kernel_h,
            "kernel_w": kernel_w,
            "stride": stride,
            "padding": padding,
            "dilation_shift": dilation.bit_length() - 1,
            "out_height": out_height,
            "out_width": out_width,
            "base": base,
            "row_pitch": row_pitch,
            "channel_pitch": channel_pitch,
        }
        for name, value in fields.items():
            if name == "base":
                limit = self.bank_depth
            elif name in ("row_pitch", "channel_pitch"):
                limit = self.elements
            elif name == "dilation_shift":
                limit = MAX_DILATION_SHIFT + 1
            else:
                limit = 1 << self.dimension_width
            if not 0 <= value < limit:
                raise ValueError(f"{name} must be in [0, {limit}), not {value}")
        return fields

    def check_backward_data_command(
        self, *, out_channels, height, width, kernel_h, kernel_w, stride, padding, base, row_pitch, channel_pitch
    ):
        """The command reading ``dy`` (``out_channels`` x Ho x Wo) for the backward-data transposed conv of a
        forward conv of an ``height x width`` input with (kernel, ``stride``, ``padding``).

        The result has exactly ``height x width`` positions: dilation ``stride``, padding ``k - 1 - p``
        and ``output_padding = (height + 2p - k) mod stride`` (the rows and columns the forward conv did
        not reach, whose gradient comes only from the right/bottom taps).
        """
        if padding > min(kernel_h, kernel_w) - 1:
            raise ValueError(
                f"padding must be at most kernel - 1 = {min(kernel_h, kernel_w) - 1} for backward-data, "
                f"not {padding}"
            )
        out_h = (height + 2 * padding - kernel_h) // stride + 1
        out_w = (width + 2 * padding - kernel_w) // stride + 1
        if kernel_h != kernel_w:
            raise ValueError(f"kernel_w must equal kernel_h for backward-data (one padding field), not {kernel_w}")
        remainder = ((height + 2 * padding - kernel_h) % stride, (width + 2 * padding - kernel_w) % stride)
        fields = self.check_command(
            channels=out_channels,
            height=out_h,
            width=out_w,
            kernel_h=kernel_h,
            kernel_w=kernel_w,
            stride=1,
            padding=kernel_h - 1 - padding,
            base=base,
            row_pitch=row_pitch,
            channel_pitch=channel_pitch,
            dilation=stride,
            output_padding=remainder,
        )
        assert (fields["out_height"], fields["out_width"]) == (height, width)
        return fields

    # -- gateware ---------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        reader = self._reader(m)

        # -- address generation -------------------------------------------------------------------------
        layer = Signal(self.command_layout)
        active = Signal()
        out_row = Signal(self.dimension_width)
        out_column = Signal(self.dimension_width)  # ow0 of the current block
        channel = Signal(self.dimension_width)
        kernel_row = Signal(self.dimension_width)
        kernel_column = Signal(self.dimension_width)

        # Virtual coordinates index the (dilated, padded) input; a virtual coordinate that is not a multiple
        # of the dilation is one of the inserted zeros.
        coordinate = signed(2 * self.dimension_width + 2)
        dilation_mask = Signal(MAX_DILATION_SHIFT)
        m.d.comb += dilation_mask.eq((Const(1, MAX_DILATION_SHIFT + 1) << layer.dilation_shift) - 1)
        virtual_row = Signal(coordinate)
        input_row = Signal(coordinate)
        m.d.comb += [
            virtual_row.eq(out_row * layer.stride + kernel_row - layer.padding),
            input_row.eq(virtual_row >> layer.dilation_shift),
        ]
        row_pad = (
            (virtual_row < 0) | ((virtual_row.as_unsigned() & dilation_mask) != 0) | (input_row >= layer.height)
        )
        element = signed(len(Signal(range(self.elements))) + 2 * self.dimension_width + 4)
        row_address = Signal(element)
        m.d.comb += row_address.eq(
            (layer.base << self.bank_bits) + channel * layer.channel_pitch + input_row * layer.row_pitch
        )
        request = reader.request.payload
        for lane in range(lanes):
            column = Signal(coordinate, name=f"out_column{lane}")
            virtual_column = Signal(coordinate, name=f"virtual_column{lane}")
            input_column = Signal(coordinate, name=f"input_column{lane}")
            address = Signal(element, name=f"address{lane}")
            m.d.comb += [
                column.eq(out_column + lane),
                virtual_column.eq(column * layer.stride + kernel_column - layer.padding),
                input_column.eq(virtual_column >> layer.dilation_shift),
                address.eq(row_address + input_column),
                request.pad[lane].eq(
                    row_pad
                    | (column >= layer.out_width)
                    | (virtual_column < 0)
                    | ((virtual_column.as_unsigned() & dilation_mask) != 0)
                    | (input_column >= layer.width)
                ),
                request.bank[lane].eq(address.as_unsigned()[: self.bank_bits] if self.bank_bits else 0),
                request.word[lane].eq(address.as_unsigned() >> self.bank_bits),
            ]

        last_kernel = (
            (kernel_column + 1 == layer.kernel_w)
            & (kernel_row + 1 == layer.kernel_h)
            & (channel + 1 == layer.channels)
        )
        m.d.comb += [
            reader.request.valid.eq(active),
            request.tag.last.eq(last_kernel),
            request.tag.channel.eq(channel),
        ]
        with m.If(reader.request.valid & reader.request.ready):
            with m.If(kernel_column + 1 != layer.kernel_w):
                m.d.sync += kernel_column.eq(kernel_column + 1)
            with m.Else():
                m.d.sync += kernel_column.eq(0)
                with m.If(kernel_row + 1 != layer.kernel_h):
                    m.d.sync += kernel_row.eq(kernel_row + 1)
                with m.Else():
                    m.d.sync += kernel_row.eq(0)
                    with m.If(channel + 1 != layer.channels):
                        m.d.sync += channel.eq(channel + 1)
                    with m.Else():
                        m.d.sync += channel.eq(0)
                        with m.If(out_column + lanes < layer.out_width):
                            m.d.sync += out_column.eq(out_column + lanes)
                        with m.Else():
                            m.d.sync += out_column.eq(0)
                            with m.If(out_row + 1 != layer.out_height):
                                m.d.sync += out_row.eq(out_row + 1)
                            with m.Else():
                                m.d.sync += active.eq(0)

        # -- delivery -------------------------------------------------------------------------------------
        # The next command is taken with the final beat's request, so back-to-back commands (one per
        # block of the other operand) leave no bubble; its assignments come last and win.
        final = last_kernel & (out_column + lanes >= layer.out_width) & (out_row + 1 == layer.out_height)
        m.d.comb += self.command.ready.eq(~active | (reader.request.valid & reader.request.ready & final))
        with m.If(self.command.valid & self.command.ready):
            m.d.sync += [
                layer.eq(self.command.payload),
                out_row.eq(0),
                out_column.eq(0),
                channel.eq(0),
                kernel_row.eq(0),
                kernel_column.eq(0),
                active.eq(
                    (self.command.payload.out_height != 0)
                    & (self.command.payload.out_width != 0)
                    & (self.command.payload.channels != 0)
                ),
            ]

        self._deliver(m, reader, active)
        return m
