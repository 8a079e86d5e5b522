"""Position-major im2col feeder: the backward-weight orientation of the array's operands.

The third training GEMM of a WaveCore-style accelerator (Lym et al., "Mini-batch Serialization: CNN Training
with Inter-layer Data Reuse", arXiv 1810.00307), whose long reduction is accumulated in place. Backward-weight is
``dW[Cout x K] = dY[Cout x P] · Xcol^T[P x K]``, a GEMM whose reduction runs over the output positions
P = N·Ho·Wo of the (sub-)batch. On the output-stationary array a tile is ``rows`` output channels by
``cols`` values of k, and its beats are the positions: beat p carries ``dY[co0 .. co0+rows-1, p]`` on one
operand and ``Xcol^T[p, k0 .. k0+cols-1]`` on the other, ``last`` on the last position. This feeder
produces both streams:

* ``Xcol^T``: the conv's input ``x`` with the conv's kernel, stride and padding; lane l of beat p is
  ``Xcol[k0 + l, p]`` = ``x[n, c, oh*s + i - pad, ow*s + j - pad]`` for ``k0 + l = (c, i, j)``;
* ``dY``: the same feeder on ``dy`` with a 1x1 kernel, stride 1, padding 0 (then k = the channel).

Layout (as ``hdl/memory/feeder.py``, plus samples): ``x[n, c, h, w]`` is at element address ``a = base * banks +
n * sample_pitch + c * channel_pitch + h * row_pitch + w`` (bank ``a mod banks``, word ``a // banks``).
The lanes of a beat are one position and ``lanes`` consecutive k, whose addresses differ by
``c * channel_pitch + i * row_pitch + j``; with ``row_pitch = kw`` and ``channel_pitch = kh*kw`` modulo
``banks`` that is ``k`` modulo ``banks``, so every beat is one conflict-free parallel read
(:meth:`PositionFeeder.skewed_pitches` gives the smallest such pitches, :meth:`PositionFeeder.check_command`
refuses pitches with a conflict). Rows stay contiguous, so the forward im2col feeder reads the same tensor
(its lanes are columns of one row) and the DMA writes it with 3-D descriptors.

Accumulation across sub-batches (the reduction over P spans the mini-batch, so under mini-batch
serialization it spans the sub-batches) is the result writer's
(``hdl/memory/writer.py``): with the tiles ordered (output-channel block outer, k block inner) the array's result
rows arrive as ``dW[co0 + r, k0 .. k0 + cols - 1]`` in the order (co block, k block, r), i.e. writer address
``(co_block * k_blocks + k_block) * rows + r``; the first sub-batch is written with ``accumulate = 0``,
every later one with ``accumulate = 1`` (one writer pass per sub-batch).
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data

from wavecore.hdl.memory.bank_reader import BankedFeeder
from wavecore.hdl.norm.common import check_int

__all__ = ["PositionFeeder"]


class PositionFeeder(BankedFeeder):
    """Stream ``Xcol^T`` of one (sub-)batch, one output position and ``lanes`` consecutive k per beat.

    Beat order: for each block of ``lanes`` values of k (k = (c, i, j) row-major), the block's tile is
    streamed ``repeat`` times in a row, each time one beat per output position in the order
    (n, oh, ow) ascending, with ``last`` on the last position (the output-stationary tile protocol of
    ``hdl/array/systolic.py``; the reduction of that tile is over all positions). Lanes past k = K - 1, padding
    taps and taps outside the input are ``pad`` lanes (0, not read).

    Parameters
    ----------
    lanes : int
        k values per beat, 1 to 64.
    banks : int
        Scratchpad banks read in parallel, a power of two >= lanes (up to 128).
    bank_depth : int
        Words per bank region, 2 to 2**20.
    width : int
        Bits per element (2 to 32), signed.
    dimension_width : int
        Bits of the shape fields, 2 to 16.
    repeat_width : int
        Bits of the ``repeat`` field, 1 to 24 (default 16).

    Attributes
    ----------
    command : In(stream.Signature(StructLayout({"base", "row_pitch", "channel_pitch", "sample_pitch",
    "samples", "channels", "height", "width", "kernel_h", "kernel_w", "stride", "padding", "out_height",
    "out_width", "repeat"})))
        One stream; accepted when idle or together with the previous command's final
        beat request (back-to-back commands run without a bubble). Build it with :meth:`check_command`.
    read_address : list of Out(stream.Signature(range(bank_depth)))
        Per-bank read requests (``Scratchpad.read_address``).
    read_data : list of In(stream.Signature(width))
        Per-bank responses in request order, any latency (``Scratchpad.read_data``).
    operand : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(width), lanes), "pad": lanes,
    "last": 1})))
        The beats. Under no stalls the first is valid three cycles after the command is accepted, then
        one per cycle (tile and k-block changes included).
    idle : Out(1)
        No command active and every beat delivered.
    """

    def __init__(self, *, lanes: int, banks: int, bank_depth: int, width: int, dimension_width: int = 10,
                 repeat_width: int = 16):
        self._check_feeder(
            lanes=lanes, banks=banks, bank_depth=bank_depth, width=width, dimension_width=dimension_width
        )
        self.repeat_width = check_int("repeat_width", repeat_width, 1, 24)
        dimension = dimension_width
        command_layout = data.StructLayout(
            {
                "base": range(bank_depth),
                "row_pitch": range(self.elements),
                "channel_pitch": range(self.elements),
                "sample_pitch": range(self.elements),
                "samples": dimension,
                "channels": dimension,
                "height": dimension,
                "width": dimension,
                "kernel_h": dimension,
                "kernel_w": dimension,
                "stride": dimension,
                "padding": dimension,
                "out_height": dimension,
                "out_width": dimension,
                "repeat": repeat_width,
            }
        )
        super().__init__(command_layout, {"last": 1})

    # -- host side --------------------------------------------------------------------------------------
    @staticmethod
    def skewed_pitches(*, channels, height, width, kernel_h, kernel_w, banks):
        """The smallest ``(row_pitch, channel_pitch, sample_pitch)`` with ``row_pitch = kernel_w`` and
        ``channel_pitch = kernel_h * kernel_w`` modulo ``banks``: conflict-free for every k block."""

        def at_least(least, residue):
            return least + (residue - least) % banks

        row_pitch = at_least(width, kernel_w)
        channel_pitch = at_least((height - 1) * row_pitch + width, kernel_h * kernel_w)
        sample_pitch = (channels - 1) * channel_pitch + (height - 1) * row_pitch + width
        return row_pitch, channel_pitch, sample_pitch

    def check_command(self, *, samples, channels, height, width, kernel_h, kernel_w, stride, padding, base,
                      row_pitch, channel_pitch, sample_pitch, repeat=1):
        """Host-side check of one stream; returns the command fields (with Ho, Wo)."""
        if row_pitch < width:
            raise ValueError(f"row_pitch must be at least width ({width}), not {row_pitch}")
        if channel_pitch < (height - 1) * row_pitch + width:
            raise ValueError(
                f"channel_pitch must be at least (height - 1) * row_pitch + width = "
                f"{(height - 1) * row_pitch + width}, not {channel_pitch}"
            )
        extent = (channels - 1) * channel_pitch + (height - 1) * row_pitch + width
        if samples > 1 and sample_pitch < extent:
            raise ValueError(f"sample_pitch must be at least the sample's extent ({extent}), not {sample_pitch}")
        k_total = channels * kernel_h * kernel_w
        for k0 in range(0, k_total, self.lanes):
            offsets = set()
            for k in range(k0, min(k0 + self.lanes, k_total)):
                c, i, j = k // (kernel_h * kernel_w), k // kernel_w % kernel_h, k % kernel_w
                offsets.add((c * channel_pitch + i * row_pitch + j) % self.banks)
            if len(offsets) != min(self.lanes, k_total - k0):
                raise ValueError(
                    f"row_pitch and channel_pitch must put the lanes of every k block in distinct banks "
                    f"(e.g. {kernel_w} and {kernel_h * kernel_w} modulo {self.banks}), not {row_pitch} and "
                    f"{channel_pitch}"
                )
        out_height = (height + 2 * padding - kernel_h) // stride + 1
        out_width = (width + 2 * padding - kernel_w) // stride + 1
        if out_height < 1 or out_width < 1:
            raise ValueError("kernel_h/kernel_w must not exceed the padded input")
        end = base * self.banks + (samples - 1) * sample_pitch + extent
        if -(-end // self.banks) > self.bank_depth:
            raise ValueError(
                f"the tensor needs {-(-end // self.banks)} words per bank, bank_depth is {self.bank_depth}"
            )
        fields = {
            "base": base,
            "row_pitch": row_pitch,
            "channel_pitch": channel_pitch,
            "sample_pitch": sample_pitch,
            "samples": samples,
            "channels": channels,
            "height": height,
            "width": width,
            "kernel_h": kernel_h,
            "kernel_w": kernel_w,
            "stride": stride,
            "padding": padding,
            "out_height": out_height,
            "out_width": out_width,
            "repeat": repeat,
        }
        positive = ("samples", "channels", "height", "width", "kernel_h", "kernel_w", "stride", "repeat")
        for key, value in fields.items():
            if key == "base":
                limit = self.bank_depth
            elif key.endswith("_pitch"):
                limit = self.elements
            elif key == "repeat":
                limit = 1 << self.repeat_width
            else:
                limit = 1 << self.dimension_width
            low = 1 if key in positive else 0
            if not low <= value < limit:
                raise ValueError(f"{key} must be in [{low}, {limit}), not {value}")
        return fields

    # -- gateware ---------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        reader = self._reader(m)

        command = self.command.payload
        dimension = self.dimension_width
        coordinate = signed(2 * dimension + 2)
        address = signed(len(Signal(range(self.elements))) + 2 * dimension + 4)
        layer = Signal(self.command_layout)
        active = Signal()
        # Constants of the command, derived once when it is accepted.
        row_step = Signal(address)  # koff change from (c, i, kw-1) to (c, i+1, 0)
        channel_step = Signal(address)  # koff change from (c, kh-1, kw-1) to (c+1, 0, 0)
        row_stride = Signal(address)  # stride * row_pitch
        origin = Signal(address)  # address of (n=0, h=-padding, w=-padding)
        # Lane 0's k = (c, i, j) and its address offset c*channel_pitch + i*row_pitch + j; the other lanes
        # follow combinationally (k + 1 per lane).
        lane_c = Signal(dimension + 1)
        lane_i = Signal(dimension)
        lane_j = Signal(dimension)
        lane_offset = Signal(address)
        repetition = Signal(self.repeat_width)
        # The position (n, oh, ow), its top-left input coordinate and the matching addresses.
        sample = Signal(dimension)
        out_row = Signal(dimension)
        out_column = Signal(dimension)
        top = Signal(coordinate)  # oh * stride - padding
        left = Signal(coordinate)  # ow * stride - padding
        sample_address = Signal(address)  # address of (n, -padding, -padding)
        row_address = Signal(address)  # address of (n, top, -padding)
        position_address = Signal(address)  # address of (n, top, left)

        def restart_positions(first_address):
            return [
                sample.eq(0),
                out_row.eq(0),
                out_column.eq(0),
                top.eq(-layer.padding),
                left.eq(-layer.padding),
                sample_address.eq(first_address),
                row_address.eq(first_address),
                position_address.eq(first_address),
            ]


        def step(c, i, j, offset):
            """k + 1: the next (c, i, j) and its address offset."""
            next_c, next_i, next_j = Signal.like(c), Signal.like(i), Signal.like(j)
            next_offset = Signal.like(offset)
            m.d.comb += [next_c.eq(c), next_i.eq(i), next_j.eq(j + 1), next_offset.eq(offset + 1)]
            with m.If(j + 1 == layer.kernel_w):
                m.d.comb += [next_j.eq(0), next_i.eq(i + 1), next_offset.eq(offset + row_step)]
                with m.If(i + 1 == layer.kernel_h):
                    m.d.comb += [next_i.eq(0), next_c.eq(c + 1), next_offset.eq(offset + channel_step)]
            return next_c, next_i, next_j, next_offset

        request = reader.request.payload
        lane_state = (lane_c, lane_i, lane_j, lane_offset)
        for lane in range(lanes):
            c, i, j, offset = lane_state
            row = Signal(coordinate, name=f"input_row{lane}")
            column = Signal(coordinate, name=f"input_column{lane}")
            element = Signal(address, name=f"address{lane}")
            m.d.comb += [
                row.eq(top + i),
                column.eq(left + j),
                element.eq(position_address + offset),
                request.pad[lane].eq(
                    (c >= layer.channels)
                    | (row < 0)
                    | (row >= layer.height)
                    | (column < 0)
                    | (column >= layer.width)
                ),
                request.bank[lane].eq(element.as_unsigned()[: self.bank_bits] if self.bank_bits else 0),
                request.word[lane].eq(element.as_unsigned() >> self.bank_bits),
            ]
            lane_state = step(c, i, j, offset)
        next_block = lane_state  # k of lane 0 in the next k block

        last_column = out_column + 1 == layer.out_width
        last_row = out_row + 1 == layer.out_height
        last_sample = sample + 1 == layer.samples
        m.d.comb += [
            reader.request.valid.eq(active),
            request.tag.last.eq(last_column & last_row & last_sample),
        ]
        with m.If(reader.request.valid & reader.request.ready):
            with m.If(~last_column):
                m.d.sync += [
                    out_column.eq(out_column + 1),
                    left.eq(left + layer.stride),
                    position_address.eq(position_address + layer.stride),
                ]
            with m.Elif(~last_row):
                m.d.sync += [
                    out_column.eq(0),
                    left.eq(-layer.padding),
                    out_row.eq(out_row + 1),
                    top.eq(top + layer.stride),
                    row_address.eq(row_address + row_stride),
                    position_address.eq(row_address + row_stride),
                ]
            with m.Elif(~last_sample):
                following = sample_address + layer.sample_pitch
                m.d.sync += [
                    out_column.eq(0),
                    left.eq(-layer.padding),
                    out_row.eq(0),
                    top.eq(-layer.padding),
                    sample.eq(sample + 1),
                    sample_address.eq(following),
                    row_address.eq(following),
                    position_address.eq(following),
                ]
            with m.Else():
                m.d.sync += restart_positions(origin)
                with m.If(repetition + 1 < layer.repeat):
                    m.d.sync += repetition.eq(repetition + 1)
                with m.Else():
                    c, i, j, offset = next_block
                    m.d.sync += [
                        repetition.eq(0),
                        lane_c.eq(c),
                        lane_i.eq(i),
                        lane_j.eq(j),
                        lane_offset.eq(offset),
                    ]
                    with m.If(c >= layer.channels):
                        m.d.sync += active.eq(0)

        # The next command is taken with the final beat's request, so back-to-back commands (one per
        # block of the other operand) leave no bubble; its assignments come last and win.
        final = (
            last_column & last_row & last_sample & (repetition + 1 >= layer.repeat) & (next_block[0] >= layer.channels)
        )
        m.d.comb += self.command.ready.eq(~active | (reader.request.valid & reader.request.ready & final))
        with m.If(self.command.valid & self.command.ready):
            start = (command.base << self.bank_bits) - command.padding * command.row_pitch - command.padding
            m.d.sync += [
                layer.eq(command),
                active.eq(1),
                row_step.eq(command.row_pitch - (command.kernel_w - 1)),
                channel_step.eq(
                    command.channel_pitch - (command.kernel_h - 1) * command.row_pitch - (command.kernel_w - 1)
                ),
                row_stride.eq(command.stride * command.row_pitch),
                origin.eq(start),
                lane_c.eq(0),
                lane_i.eq(0),
                lane_j.eq(0),
                lane_offset.eq(0),
                repetition.eq(0),
                sample.eq(0),
                out_row.eq(0),
                out_column.eq(0),
                top.eq(-command.padding),
                left.eq(-command.padding),
                sample_address.eq(start),
                row_address.eq(start),
                position_address.eq(start),
            ]

        self._deliver(m, reader, active)
        return m
