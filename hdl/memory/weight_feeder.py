"""Weight feeder: conv weights from the banked scratchpad as the array's weight operand, forward or transposed.

Backward-data needs ``W`` transposed, so the feeder transposes on the fly instead of storing both layouts, and
serves the transposed-convolution form of backward-data:

* forward (``transpose = 0``): the weight matrix ``W[Cout x K]`` of ``Y = W · Xcol``, K = (ci, i, j)
  row-major; beat k carries ``W[co0 .. co0 + lanes - 1, k]``;
* transposed (``transpose = 1``): the weights of the transposed convolution that computes backward-data,
  ``W'[ci, co, i, j] = W[co, ci, kh-1-i, kw-1-j]`` (channels swapped, kernel rotated 180°), as the matrix
  ``W'[Cin x K']`` with K' = (co, i, j) row-major; beat k' carries ``W'[ci0 .. ci0 + lanes - 1, k']``.
  ``dx = conv(dilate(dy, s), W', stride 1, padding k-1-p)``, with ``dy`` read by ``hdl/memory/feeder.py`` with
  ``dilation = s``, so backward-data runs as a forward conv through the same im2col feeder and no col2im
  (scatter-add) is needed.

Layout: ``W[co, ci, i, j]`` has the element address ``a = base * banks + co * out_pitch + ci * in_pitch +
i * kw + j`` (bank ``a mod banks``, word ``a // banks``), i.e. the DRAM order [Cout][Cin][kh][kw] with
pitches chosen by the host. The lanes of a forward beat are ``out_pitch`` apart, those of a transposed beat
``in_pitch`` apart, so both orientations are one conflict-free parallel read per beat when both pitches
are odd (more generally: when ``lanes * 2**t <= banks`` for the power of two ``2**t`` dividing the pitch);
:meth:`WeightFeeder.check_command` refuses pitches that are not. The dense layout ``in_pitch = kh*kw`` and
``out_pitch = Cin*kh*kw`` is odd for odd kernels and odd ``Cin``; otherwise the host pads ``out_pitch`` by
one element per output channel (e.g. 577 instead of 576 for Cin = 64, 3x3).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data

from wavecore.hdl.memory.bank_reader import BankedFeeder
from wavecore.hdl.norm.common import check_int

__all__ = ["WeightFeeder"]


def _conflict_free(pitch: int, lanes: int, banks: int) -> bool:
    """Whether ``lanes`` addresses ``pitch`` apart fall into distinct banks of ``banks`` (power of two)."""
    return len({(lane * pitch) % banks for lane in range(lanes)}) == lanes


class WeightFeeder(BankedFeeder):
    """Stream a conv layer's weight matrix, forward or transposed, ``lanes`` matrix rows per beat.

    Beat order: for each block of ``lanes`` rows (output channels forward, input channels transposed), the
    block's tile is streamed ``repeat`` times in a row (once per output-position tile of the im2col feeder
    it is paired with), each time ``K`` beats in ascending ``k`` with ``last`` on ``k = K - 1`` (the
    output-stationary tile protocol of ``hdl/array/systolic.py``). Rows past the last one are ``pad`` lanes (0,
    not read).

    Parameters
    ----------
    lanes : int
        Matrix rows per beat (the array dimension the weights enter), 1 to 64.
    banks : int
        Scratchpad banks read in parallel, a power of two >= lanes (up to 128).
    bank_depth : int
        Words per bank region, 2 to 2**20.
    width : int
        Bits per weight (2 to 32), signed.
    dimension_width : int
        Bits of the channel and kernel fields, 2 to 16.
    repeat_width : int
        Bits of the ``repeat`` field, 1 to 24 (default 16).

    Attributes
    ----------
    command : In(stream.Signature(StructLayout({"base", "out_pitch", "in_pitch", "out_channels",
    "in_channels", "kernel_h", "kernel_w", "transpose", "repeat"})))
        One weight stream; accepted when idle or together with the previous command's final
        beat request (back-to-back commands run without a bubble). Build it with :meth:`check_command`.
    read_address : list of Out(stream.Signature(range(bank_depth)))
        Per-bank read requests (``Scratchpad.read_address``).
    read_data : list of In(stream.Signature(width))
        Per-bank responses in request order, any latency (``Scratchpad.read_data``).
    operand : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(width), lanes), "pad": lanes,
    "last": 1})))
        The beats. Under no stalls the first is valid three cycles after the command is accepted, then
        one per cycle (tile boundaries and row-block changes included).
    idle : Out(1)
        No command active and every beat delivered.
    """

    def __init__(self, *, lanes: int, banks: int, bank_depth: int, width: int, dimension_width: int = 10,
                 repeat_width: int = 16):
        self._check_feeder(
            lanes=lanes, banks=banks, bank_depth=bank_depth, width=width, dimension_width=dimension_width
        )
        self.repeat_width = check_int("repeat_width", repeat_width, 1, 24)
        command_layout = data.StructLayout(
            {
                "base": range(bank_depth),
                "out_pitch": range(self.elements),
                "in_pitch": range(self.elements),
                "out_channels": dimension_width,
                "in_channels": dimension_width,
                "kernel_h": dimension_width,
                "kernel_w": dimension_width,
                "transpose": 1,
                "repeat": repeat_width,
            }
        )
        super().__init__(command_layout, {"last": 1})

    # -- host side --------------------------------------------------------------------------------------
    def check_command(self, *, out_channels, in_channels, kernel_h, kernel_w, base, in_pitch, out_pitch,
                      transpose, repeat=1):
        """Host-side check of one weight stream; returns the command fields.

        ``transpose`` selects the backward-data orientation; ``repeat`` is the number of output-position
        tiles each row block is used for.
        """
        if not isinstance(transpose, bool):
            raise TypeError(f"transpose must be a bool, not {transpose!r}")
        if in_pitch < kernel_h * kernel_w:
            raise ValueError(f"in_pitch must be at least kernel_h * kernel_w = {kernel_h * kernel_w}, not {in_pitch}")
        least = (in_channels - 1) * in_pitch + kernel_h * kernel_w
        if out_pitch < least:
            raise ValueError(
                f"out_pitch must be at least (in_channels - 1) * in_pitch + kernel_h * kernel_w = {least}, "
                f"not {out_pitch}"
            )
        rows = in_channels if transpose else out_channels
        name, pitch = ("in_pitch", in_pitch) if transpose else ("out_pitch", out_pitch)
        if rows > 1 and not _conflict_free(pitch, min(self.lanes, rows), self.banks):
            raise ValueError(
                f"{name} must put {min(self.lanes, rows)} lanes in distinct banks of {self.banks} (e.g. odd), "
                f"not {pitch}"
            )
        end = base * self.banks + (out_channels - 1) * out_pitch + least
        if -(-end // self.banks) > self.bank_depth:
            raise ValueError(
                f"the weights need {-(-end // self.banks)} words per bank, bank_depth is {self.bank_depth}"
            )
        fields = {
            "base": base,
            "out_pitch": out_pitch,
            "in_pitch": in_pitch,
            "out_channels": out_channels,
            "in_channels": in_channels,
            "kernel_h": kernel_h,
            "kernel_w": kernel_w,
            "transpose": int(transpose),
            "repeat": repeat,
        }
        limits = {"base": self.bank_depth, "out_pitch": self.elements, "in_pitch": self.elements,
                  "transpose": 2, "repeat": 1 << self.repeat_width}
        for key, value in fields.items():
            limit = limits.get(key, 1 << self.dimension_width)
            low = 1 if key in ("out_channels", "in_channels", "kernel_h", "kernel_w", "repeat") else 0
            if not low <= value < limit:
                raise ValueError(f"{key} must be in [{low}, {limit}), not {value}")
        return fields

    @staticmethod
    def dense_pitches(in_channels: int, kernel_h: int, kernel_w: int) -> tuple[int, int]:
        """``(in_pitch, out_pitch)`` of the densest conflict-free layout: odd pitches (see the module docstring)."""
        in_pitch = kernel_h * kernel_w | 1
        out_pitch = (in_channels - 1) * in_pitch + kernel_h * kernel_w
        return in_pitch, out_pitch | 1

    # -- gateware ---------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        reader = self._reader(m)

        command = self.command.payload
        address_bits = len(Signal(range(self.elements)))
        address = range(2 * self.elements)
        dimension = self.dimension_width
        # The two orientations differ only in which channel runs along the lanes ("row") and which along
        # the reduction, and in the kernel walk: forward reads kernel index kk = i*kw + j, transposed reads
        # kh*kw - 1 - kk (the 180° rotation), so both are counters.
        active = Signal()
        transpose = Signal()
        rows = Signal(dimension)  # matrix rows: Cout forward, Cin transposed
        reductions = Signal(dimension)  # channels along K: Cin forward, Cout transposed
        row_pitch = Signal(range(self.elements))
        reduction_pitch = Signal(range(self.elements))
        kernel_size = Signal(2 * dimension)
        repeat = Signal(self.repeat_width)
        block_row = Signal(dimension + 1)  # first row of the current block
        block_address = Signal(address)  # base + block_row * row_pitch
        repetition = Signal(self.repeat_width)
        reduction = Signal(dimension)
        reduction_address = Signal(address)  # reduction * reduction_pitch
        kernel_step = Signal(2 * dimension)


        kernel_index = Signal(2 * dimension)
        m.d.comb += kernel_index.eq(Mux(transpose, kernel_size - 1 - kernel_step, kernel_step))
        request = reader.request.payload
        beat_address = Signal(range(2 * self.elements + (1 << (2 * dimension))))
        m.d.comb += beat_address.eq(block_address + reduction_address + kernel_index)
        for lane in range(lanes):
            lane_address = Signal(signed(address_bits + 2 * dimension + 10), name=f"address{lane}")
            m.d.comb += [
                lane_address.eq(beat_address + lane * row_pitch),
                request.pad[lane].eq(block_row + lane >= rows),
                request.bank[lane].eq(lane_address.as_unsigned()[: self.bank_bits] if self.bank_bits else 0),
                request.word[lane].eq(lane_address.as_unsigned() >> self.bank_bits),
            ]
        last_kernel = kernel_step + 1 == kernel_size
        last_reduction = reduction + 1 == reductions
        m.d.comb += [
            reader.request.valid.eq(active),
            request.tag.last.eq(last_kernel & last_reduction),
        ]
        with m.If(reader.request.valid & reader.request.ready):
            with m.If(~last_kernel):
                m.d.sync += kernel_step.eq(kernel_step + 1)
            with m.Else():
                m.d.sync += kernel_step.eq(0)
                with m.If(~last_reduction):
                    m.d.sync += [reduction.eq(reduction + 1), reduction_address.eq(reduction_address + reduction_pitch)]
                with m.Else():
                    m.d.sync += [reduction.eq(0), reduction_address.eq(0)]
                    with m.If(repetition + 1 < repeat):
                        m.d.sync += repetition.eq(repetition + 1)
                    with m.Else():
                        m.d.sync += [
                            repetition.eq(0),
                            block_row.eq(block_row + lanes),
                            block_address.eq(block_address + lanes * row_pitch),
                        ]
                        with m.If(block_row + lanes >= rows):
                            m.d.sync += active.eq(0)

        # The next command is taken with the final beat's request, so back-to-back commands (one per
        # block of the other operand) leave no bubble; its assignments come last and win.
        final = last_kernel & last_reduction & (repetition + 1 >= repeat) & (block_row + lanes >= rows)
        m.d.comb += self.command.ready.eq(~active | (reader.request.valid & reader.request.ready & final))
        with m.If(self.command.valid & self.command.ready):
            base = command.base << self.bank_bits
            m.d.sync += [
                active.eq(1),
                transpose.eq(command.transpose),
                rows.eq(Mux(command.transpose, command.in_channels, command.out_channels)),
                reductions.eq(Mux(command.transpose, command.out_channels, command.in_channels)),
                row_pitch.eq(Mux(command.transpose, command.in_pitch, command.out_pitch)),
                reduction_pitch.eq(Mux(command.transpose, command.out_pitch, command.in_pitch)),
                kernel_size.eq(command.kernel_h * command.kernel_w),
                repeat.eq(command.repeat),
                block_row.eq(0),
                block_address.eq(base),
                repetition.eq(0),
                reduction.eq(0),
                reduction_address.eq(0),
                kernel_step.eq(0),
            ]

        self._deliver(m, reader, active)
        return m
