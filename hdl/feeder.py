"""im2col feeder: turns a tensor in the banked scratchpad into the array's activation operand stream.

Implements implication (ii) of ``research/mbs_bn.md`` §1.8: the lowered matrix ``Xcol[K x P]`` (K = Cin*kh*kw
ordered (c, i, j), P = output positions) is never stored; the feeder computes, per beat, the addresses of
``lanes`` output positions of one row of ``Xcol`` and reads them from ``banks`` scratchpad banks in parallel.

Layout in the scratchpad (one sample): element ``x[c, h, w]`` lives in bank ``w mod banks`` at word
``base + (c * height + h) * row_words + w // banks``. The lanes of a beat are consecutive output columns
``ow0 .. ow0 + lanes - 1`` of one output row, so their input columns ``ow * stride + j - padding`` are
``stride`` apart and fall into distinct banks whenever ``stride * lanes <= banks``: every beat is one
conflict-free parallel read and the feeder issues one beat per cycle.

Padding taps (and lanes past the last output column) are not read: they are flagged in ``pad`` and carry
0, and the affine+ReLU unit downstream (``hdl/norm_affine.py``) zeroes them *after* the affine transform
(§2.3, "padding subtlety").
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.norm_common import check_int, index_shape

__all__ = ["Im2colFeeder"]

_IN_FLIGHT = 6  # beats whose reads are issued but not yet delivered


class Im2colFeeder(wiring.Component):
    """Stream the rows of ``Xcol`` for one conv layer, ``lanes`` output positions per beat.

    Beat order: for each output row ``oh``, for each block of ``lanes`` output columns, for ``k`` in
    (c, i, j) row-major: one beat with ``Xcol[k, oh*Wo + ow0 : +lanes]``; ``last`` marks ``k = K - 1``
    (the end of one output-stationary tile, ``a.payload.last`` of ``hdl/systolic.py``).

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
    command : In(stream.Signature(StructLayout({"base", "row_words", "channels", "height", "width",
    "kernel_h", "kernel_w", "stride", "padding", "out_height", "out_width"})))
        One layer; accepted when idle.
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
        self.lanes = check_int("lanes", lanes, 1, 64)
        self.banks = check_int("banks", banks, 1, 128)
        if banks & (banks - 1) or banks < lanes:
            raise ValueError(f"banks must be a power of two at least lanes ({lanes}), not {banks}")
        self.bank_depth = check_int("bank_depth", bank_depth, 2, 1 << 20)
        self.width = check_int("width", width, 2, 32)
        self.dimension_width = check_int("dimension_width", dimension_width, 2, 16)
        self.bank_bits = banks.bit_length() - 1
        address = range(bank_depth)
        dimension = dimension_width
        self.command_layout = data.StructLayout(
            {
                "base": address,
                "row_words": address,
                "channels": dimension,
                "height": dimension,
                "width": dimension,
                "kernel_h": dimension,
                "kernel_w": dimension,
                "stride": dimension,
                "padding": dimension,
                "out_height": dimension,
                "out_width": dimension,
            }
        )
        self.operand_layout = data.StructLayout(
            {
                "data": data.ArrayLayout(signed(width), lanes),
                "pad": lanes,
                "last": 1,
                "channel": dimension_width,
            }
        )
        super().__init__(
            {
                "command": In(stream.Signature(self.command_layout)),
                "read_address": Out(stream.Signature(address)).array(banks),
                "read_data": In(stream.Signature(width)).array(banks),
                "operand": Out(stream.Signature(self.operand_layout)),
                "idle": Out(1),
            }
        )

    def check_command(self, *, channels, height, width, kernel_h, kernel_w, stride, padding, base, row_words):
        """Host-side check of a layer before it is sent; returns the command fields (with Ho, Wo)."""
        out_height = (height + 2 * padding - kernel_h) // stride + 1
        out_width = (width + 2 * padding - kernel_w) // stride + 1
        if stride * self.lanes > self.banks:
            raise ValueError(
                f"stride must be at most banks / lanes = {self.banks // self.lanes}, not {stride}"
            )
        if row_words * self.banks < width:
            raise ValueError(
                f"row_words must be at least ceil(width / banks) = {-(-width // self.banks)}, not {row_words}"
            )
        if base + channels * height * row_words > self.bank_depth:
            raise ValueError(
                f"the tensor needs {base + channels * height * row_words} words per bank, "
                f"bank_depth is {self.bank_depth}"
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
            "out_height": out_height,
            "out_width": out_width,
            "base": base,
            "row_words": row_words,
        }
        for name, value in fields.items():
            limit = self.bank_depth if name in ("base", "row_words") else 1 << self.dimension_width
            if not 0 <= value < limit:
                raise ValueError(f"{name} must be in [0, {limit}), not {value}")
        return fields

    def elaborate(self, platform):
        m = Module()
        lanes, banks = self.lanes, self.banks
        bank_index = index_shape(banks)
        entry_layout = data.StructLayout(
            {
                "bank": data.ArrayLayout(bank_index, lanes),
                "pad": lanes,
                "last": 1,
                "channel": self.dimension_width,
            }
        )
        m.submodules.in_flight = in_flight = fifo.SyncFIFOBuffered(width=entry_layout.size, depth=_IN_FLIGHT)
        # Every response is taken at once into a per-bank queue, so a bank's read port never waits for the
        # beat that needs its word (with stride > 1 consecutive beats use different banks, and a held
        # response would block the bank's next request). A bank has at most one request per beat in flight.
        queues = []
        for bank in range(banks):
            queue = fifo.SyncFIFO(width=self.width, depth=_IN_FLIGHT + 2)
            m.submodules[f"responses{bank}"] = queue
            m.d.comb += [
                queue.w_data.eq(self.read_data[bank].payload),
                queue.w_en.eq(self.read_data[bank].valid),
                self.read_data[bank].ready.eq(queue.w_rdy),
            ]
            queues.append(queue)

        # -- address generation -------------------------------------------------------------------------
        layer = Signal(self.command_layout)
        active = Signal()
        out_row = Signal(self.dimension_width)
        out_column = Signal(self.dimension_width)  # ow0 of the current block
        channel = Signal(self.dimension_width)
        kernel_row = Signal(self.dimension_width)
        kernel_column = Signal(self.dimension_width)
        accepted = Signal(banks)
        m.d.comb += self.command.ready.eq(~active)
        with m.If(self.command.valid & self.command.ready):
            m.d.sync += [
                layer.eq(self.command.payload),
                out_row.eq(0),
                out_column.eq(0),
                channel.eq(0),
                kernel_row.eq(0),
                kernel_column.eq(0),
                accepted.eq(0),
                active.eq(
                    (self.command.payload.out_height != 0)
                    & (self.command.payload.out_width != 0)
                    & (self.command.payload.channels != 0)
                ),
            ]

        coordinate = signed(2 * self.dimension_width + 2)
        input_row = Signal(coordinate)
        m.d.comb += input_row.eq(out_row * layer.stride + kernel_row - layer.padding)
        row_word = Signal(range(self.bank_depth * 2))
        m.d.comb += row_word.eq(layer.base + (channel * layer.height + input_row) * layer.row_words)
        lane_bank = []
        lane_pad = []
        lane_word = []
        for lane in range(lanes):
            column = Signal(coordinate, name=f"out_column{lane}")
            input_column = Signal(coordinate, name=f"input_column{lane}")
            m.d.comb += [
                column.eq(out_column + lane),
                input_column.eq(column * layer.stride + kernel_column - layer.padding),
            ]
            pad = (
                (column >= layer.out_width)
                | (input_row < 0)
                | (input_row >= layer.height)
                | (input_column < 0)
                | (input_column >= layer.width)
            )
            lane_pad.append(pad)
            lane_bank.append(input_column.as_unsigned()[: self.bank_bits] if self.bank_bits else 0)
            lane_word.append(row_word + (input_column >> self.bank_bits))

        issuing = active & in_flight.w_rdy
        done_banks = []
        for bank in range(banks):
            request = self.read_address[bank]
            wanted = 0
            address = 0
            for lane in range(lanes):
                hit = ~lane_pad[lane] & (lane_bank[lane] == bank)
                wanted = wanted | hit
                address = Mux(hit, lane_word[lane], address)
            m.d.comb += [request.valid.eq(issuing & wanted & ~accepted[bank]), request.payload.eq(address)]
            done_banks.append(~wanted | accepted[bank] | (request.valid & request.ready))
        beat_issued = Signal()
        all_done = 1
        for done in done_banks:
            all_done = all_done & done
        m.d.comb += beat_issued.eq(issuing & all_done)
        for bank in range(banks):
            request = self.read_address[bank]
            with m.If(beat_issued):
                m.d.sync += accepted[bank].eq(0)
            with m.Elif(request.valid & request.ready):
                m.d.sync += accepted[bank].eq(1)

        last_kernel = (
            (kernel_column + 1 == layer.kernel_w)
            & (kernel_row + 1 == layer.kernel_h)
            & (channel + 1 == layer.channels)
        )
        entry = data.View(entry_layout, in_flight.w_data)
        for lane in range(lanes):
            m.d.comb += [entry.bank[lane].eq(lane_bank[lane]), entry.pad[lane].eq(lane_pad[lane])]
        m.d.comb += [entry.last.eq(last_kernel), entry.channel.eq(channel), in_flight.w_en.eq(beat_issued)]
        with m.If(beat_issued):
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

        # -- response collection --------------------------------------------------------------------------
        head = data.View(entry_layout, in_flight.r_data)
        captured = Signal(lanes)
        held = [Signal(signed(self.width), name=f"held{lane}") for lane in range(lanes)]
        have_all = in_flight.r_rdy
        for lane in range(lanes):
            response_valid = 0
            response_data = 0
            for bank in range(banks):
                here = head.bank[lane] == bank
                response_valid = response_valid | (here & queues[bank].r_rdy)
                response_data = Mux(here, queues[bank].r_data, response_data)
            have_all = have_all & (head.pad[lane] | captured[lane] | response_valid)
            m.d.comb += self.operand.payload.data[lane].eq(
                Mux(head.pad[lane], 0, Mux(captured[lane], held[lane], response_data))
            )
            with m.If(self.operand.valid & self.operand.ready):
                m.d.sync += captured[lane].eq(0)
            with m.Elif(in_flight.r_rdy & ~head.pad[lane] & ~captured[lane] & response_valid):
                m.d.sync += [captured[lane].eq(1), held[lane].eq(response_data)]
        for bank in range(banks):
            needed = 0
            for lane in range(lanes):
                needed = needed | (~head.pad[lane] & ~captured[lane] & (head.bank[lane] == bank))
            m.d.comb += queues[bank].r_en.eq(in_flight.r_rdy & needed)
        m.d.comb += [
            self.operand.valid.eq(have_all),
            self.operand.payload.pad.eq(head.pad),
            self.operand.payload.last.eq(head.last),
            self.operand.payload.channel.eq(head.channel),
            in_flight.r_en.eq(self.operand.valid & self.operand.ready),
            self.idle.eq(~active & (in_flight.level == 0)),
        ]
        return m
