"""AXI4 DMA engine moving tiles between DRAM and the scratchpad, with byte counters.

The DRAM interface of a WaveCore-style accelerator running mini-batch serialization (Lym et al., arXiv
1810.00307): one transfer per (group, sub-batch, tensor). Two independent channels run concurrently:

* the *read* channel (DRAM -> scratchpad) issues AR bursts and streams the R beats out as
  ``(scratch address, word)`` writes;
* the *write* channel (scratchpad -> DRAM) issues AW bursts, fetches the words from the scratchpad and
  sends them as W beats.

A descriptor describes a 3-D box in DRAM: ``count2`` planes ``stride2`` bytes apart, each of ``count1``
rows ``stride1`` bytes apart, each row ``length`` contiguous bus words. On the scratchpad side the words
are consecutive from ``scratch``. Rows are split into INCR bursts of at most ``max_burst`` beats that
never cross a 4 KiB boundary (AXI4 rule, ARM IHI 0022 §A3.4.1), and at most ``max_outstanding`` bursts
per channel are in flight (AR issued and last R beat not yet received; AW issued and B not yet
received). Both rules are proved with SymbiYosys in ``tests/hdl/memory/test_formal_dma.py``. A channel issues
its first burst two cycles after accepting a descriptor and at most one burst every two cycles (the burst length
is registered). With ``command_register=True`` each channel keeps an accepted descriptor in a register for a cycle
before its walk starts from it (the first burst three cycles after the acceptance; the next descriptor may be
accepted meanwhile), so the user's logic in front of ``read_command``/``write_command`` does not run on into the
walk's first-row arithmetic.

With ``byte_granular=True`` rows are byte ranges instead: ``address``, the strides and ``length`` count bytes,
a row covers the bus words from the one holding its first byte to the one holding its last, and every beat
carries the byte strobe of the row's bytes in it (``read_data.payload.strobe`` on the read channel, ``wstrb``
on the write channel; only a row's first and last beats are partial). The scratchpad side is then the user's:
the read channel's ``address`` and the write channel's fetches still count words from ``scratch`` but the
user realigns the bytes (``wavecore.hdl.memory.row_packer``/``row_unpacker``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import Shape
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int

__all__ = ["Dma", "axi4_signature", "descriptor_layout"]

_PAGE_BYTES = 4096
_BURST_INCR = 1


def axi4_signature(*, address_width: int, data_width: int, id_width: int = 1) -> wiring.Signature:
    """An AXI4 manager port (flat AMBA names, seen from the manager: ``Out`` = driven by the manager).

    Flattened into Verilog as ``<port>__awaddr`` etc., which ``cocotbext-axi`` finds with
    ``AxiBus.from_prefix(dut, "<port>_")``.
    """
    return wiring.Signature(
        {
            "awid": Out(id_width),
            "awaddr": Out(address_width),
            "awlen": Out(8),
            "awsize": Out(3),
            "awburst": Out(2),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "wlast": Out(1),
            "wvalid": Out(1),
            "wready": In(1),
            "bid": In(id_width),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
            "arid": Out(id_width),
            "araddr": Out(address_width),
            "arlen": Out(8),
            "arsize": Out(3),
            "arburst": Out(2),
            "arvalid": Out(1),
            "arready": In(1),
            "rid": In(id_width),
            "rdata": In(data_width),
            "rresp": In(2),
            "rlast": In(1),
            "rvalid": In(1),
            "rready": Out(1),
        }
    )


def descriptor_layout(*, address_width: int, count_width: int, scratch_width: int) -> data.StructLayout:
    """Fields of a transfer descriptor (low bits first, in this order).

    ``address``, ``stride1`` and ``stride2`` are byte values; their bits below the bus word size are
    ignored (transfers are whole bus words) unless the DMA is byte-granular, where ``length`` counts bytes
    too. A descriptor with any count equal to zero moves nothing.
    """
    return data.StructLayout(
        {
            "address": address_width,
            "stride1": address_width,
            "stride2": address_width,
            "length": count_width,
            "count1": count_width,
            "count2": count_width,
            "scratch": scratch_width,
        }
    )


class _BurstWalker:
    """Walks a descriptor, presenting one burst (address, length, scratch address) at a time.

    Not a component: it is elaborated into the channel that owns it, so the AR/AW valid/address/length
    are functions of its registers (which keeps the 4 KiB property inductive). ``burst_length`` is a register
    recomputed every cycle from the walker's registers (the row's rest capped by ``max_burst`` and the 4 KiB
    boundary: two comparisons, too long a path in front of the walk's next-state logic); it is valid
    (``settled``) one cycle after each walker update (a descriptor accepted or a burst issued), so the channel
    issues at most one burst every two cycles.
    """

    def __init__(self, dma: Dma, name: str):
        word_bits = dma.address_width - dma.word_shift
        stride_bits = dma.address_width if dma.byte_granular else word_bits
        self.dma = dma
        self.active = Signal(name=f"{name}_active")
        self.word_address = Signal(word_bits, name=f"{name}_word_address")  # current burst start
        self.row_start = Signal(word_bits, name=f"{name}_row_start")
        self.plane_start = Signal(word_bits, name=f"{name}_plane_start")
        self.row_remaining = Signal(dma.count_width, name=f"{name}_row_remaining")
        self.rows_left = Signal(dma.count_width, name=f"{name}_rows_left")
        self.planes_left = Signal(dma.count_width, name=f"{name}_planes_left")
        self.length = Signal(dma.count_width, name=f"{name}_length")
        self.count1 = Signal(dma.count_width, name=f"{name}_count1")
        self.stride1 = Signal(stride_bits, name=f"{name}_stride1")
        self.stride2 = Signal(stride_bits, name=f"{name}_stride2")
        self.scratch = Signal(dma.scratch_width, name=f"{name}_scratch")
        self.burst_length = Signal(range(dma.max_burst + 1), name=f"{name}_burst_length")
        self.settled = Signal(name=f"{name}_settled")  # burst_length is that of the current registers
        # Byte-granular rows: the byte address of the row and the plane, the lanes of the row's first and last
        # byte in their words, and whether the next burst starts the row (head) / this burst ends it (tail).
        lanes = range(dma.beat_bytes)
        self.row_byte = Signal(dma.address_width, name=f"{name}_row_byte")
        self.plane_byte = Signal(dma.address_width, name=f"{name}_plane_byte")
        self.row_head = Signal(lanes, name=f"{name}_row_head")
        self.row_tail = Signal(lanes, name=f"{name}_row_tail")
        self.row_first = Signal(name=f"{name}_row_first")
        self.burst_head = Signal(lanes, name=f"{name}_burst_head")  # first lane of the burst's first beat
        self.burst_tail = Signal(lanes, name=f"{name}_burst_tail")  # last lane of the burst's last beat

    def elaborate(self, m: Module, command: stream.Interface, advance) -> None:
        dma = self.dma
        words_per_page = _PAGE_BYTES >> dma.word_shift
        page_bits = Shape.cast(range(words_per_page)).width
        offset_in_page = self.word_address[:page_bits] if page_bits else 0
        to_boundary = Signal(range(words_per_page + 1))
        m.d.comb += to_boundary.eq(words_per_page - offset_in_page)
        m.d.sync += [self.burst_length.eq(dma._burst_limit(self.row_remaining, to_boundary)),
                     self.settled.eq(~(command.valid & command.ready) & ~advance)]

        m.d.comb += command.ready.eq(~self.active)
        descriptor = command.payload
        if dma.byte_granular:
            self._elaborate_bytes(m, command, advance)
            return
        with m.If(command.valid & command.ready):
            start = descriptor.address[dma.word_shift :]
            m.d.sync += [
                self.active.eq(
                    (descriptor.length != 0) & (descriptor.count1 != 0) & (descriptor.count2 != 0)
                ),
                self.word_address.eq(start),
                self.row_start.eq(start),
                self.plane_start.eq(start),
                self.row_remaining.eq(descriptor.length),
                self.rows_left.eq(descriptor.count1),
                self.planes_left.eq(descriptor.count2),
                self.length.eq(descriptor.length),
                self.count1.eq(descriptor.count1),
                self.stride1.eq(descriptor.stride1[dma.word_shift :]),
                self.stride2.eq(descriptor.stride2[dma.word_shift :]),
                self.scratch.eq(descriptor.scratch),
            ]
        with m.If(advance):
            m.d.sync += self.scratch.eq(self.scratch + self.burst_length)
            with m.If(self.row_remaining != self.burst_length):
                m.d.sync += [
                    self.word_address.eq(self.word_address + self.burst_length),
                    self.row_remaining.eq(self.row_remaining - self.burst_length),
                ]
            with m.Elif(self.rows_left != 1):
                next_row = self.row_start + self.stride1
                m.d.sync += [
                    self.word_address.eq(next_row),
                    self.row_start.eq(next_row),
                    self.row_remaining.eq(self.length),
                    self.rows_left.eq(self.rows_left - 1),
                ]
            with m.Elif(self.planes_left != 1):
                next_plane = self.plane_start + self.stride2
                m.d.sync += [
                    self.word_address.eq(next_plane),
                    self.row_start.eq(next_plane),
                    self.plane_start.eq(next_plane),
                    self.row_remaining.eq(self.length),
                    self.rows_left.eq(self.count1),
                    self.planes_left.eq(self.planes_left - 1),
                ]
            with m.Else():
                m.d.sync += self.active.eq(0)

    def _elaborate_bytes(self, m: Module, command: stream.Interface, advance) -> None:
        """The byte-granular walk: each row's word count follows from its first byte's lane."""
        dma = self.dma
        shift, last_lane = dma.word_shift, dma.beat_bytes - 1
        descriptor = command.payload

        def row_start(byte_address, length):
            """Register the row at ``byte_address`` (``length`` bytes) as the next burst's row."""
            head = byte_address[:shift]
            return [
                self.row_byte.eq(byte_address),
                self.word_address.eq(byte_address[shift:]),
                self.row_head.eq(head),
                self.row_tail.eq(head + length - 1),
                self.row_remaining.eq((head + length + last_lane) >> shift),
                self.row_first.eq(1),
            ]

        m.d.comb += [
            self.burst_head.eq(Mux(self.row_first, self.row_head, 0)),
            self.burst_tail.eq(Mux(self.row_remaining == self.burst_length, self.row_tail, last_lane)),
        ]
        with m.If(command.valid & command.ready):
            m.d.sync += [
                self.active.eq(
                    (descriptor.length != 0) & (descriptor.count1 != 0) & (descriptor.count2 != 0)
                ),
                self.plane_byte.eq(descriptor.address),
                self.rows_left.eq(descriptor.count1),
                self.planes_left.eq(descriptor.count2),
                self.length.eq(descriptor.length),
                self.count1.eq(descriptor.count1),
                self.stride1.eq(descriptor.stride1),
                self.stride2.eq(descriptor.stride2),
                self.scratch.eq(descriptor.scratch),
                *row_start(descriptor.address, descriptor.length),
            ]
        with m.If(advance):
            m.d.sync += [self.scratch.eq(self.scratch + self.burst_length), self.row_first.eq(0)]
            with m.If(self.row_remaining != self.burst_length):
                m.d.sync += [
                    self.word_address.eq(self.word_address + self.burst_length),
                    self.row_remaining.eq(self.row_remaining - self.burst_length),
                ]
            with m.Elif(self.rows_left != 1):
                m.d.sync += [*row_start(self.row_byte + self.stride1, self.length),
                             self.rows_left.eq(self.rows_left - 1)]
            with m.Elif(self.planes_left != 1):
                next_plane = self.plane_byte + self.stride2
                m.d.sync += [
                    *row_start(next_plane, self.length),
                    self.plane_byte.eq(next_plane),
                    self.rows_left.eq(self.count1),
                    self.planes_left.eq(self.planes_left - 1),
                ]
            with m.Else():
                m.d.sync += self.active.eq(0)


def _lanes_between(first, last, lanes: int):
    """A ``lanes``-bit strobe with bits ``first`` to ``last`` (inclusive) set (``first``/``last`` lane indices)."""
    bits = []
    for lane in range(lanes):  # no comparison a lane index makes constant (Verilator's CMPCONST)
        after = (first <= lane) if lane < lanes - 1 else Const(1)
        before = (last >= lane) if lane > 0 else Const(1)
        bits.append(after & before)
    return Cat(*bits)


class Dma(wiring.Component):
    """Two-channel AXI4 DMA (DRAM <-> scratchpad) with 2-D/3-D descriptors and byte counters.

    Parameters
    ----------
    address_width : int
        AXI address width in bits (12 to 64).
    data_width : int
        AXI data width in bits: a power of two from 8 to 1024. One bus word = one scratchpad word.
    max_burst : int
        Longest burst in beats (1 to 256; AXI4 INCR allows 256).
    max_outstanding : int
        Bursts in flight per channel (1 to 64).
    count_width : int
        Bits of the descriptor's ``length``, ``count1`` and ``count2`` fields (1 to 32).
    scratch_width : int
        Bits of a scratchpad word address (1 to 32).
    counter_width : int
        Bits of each byte counter (8 to 64); counters wrap.
    byte_granular : bool
        Rows of ``length`` bytes at any byte address and byte strides (module docstring); the read channel's
        ``read_data.payload`` gets a ``strobe`` field (the lanes of the beat inside its row) and the write
        channel drives ``wstrb`` with the row's lanes. Off: whole bus words, every strobe set.
    command_register : bool
        A register stage between each command stream and its walk (module docstring): one cycle more from a
        descriptor's acceptance to its first burst; ``ready`` is high when the stage is empty or passes its
        descriptor on in the same cycle. The channel is not idle while the stage holds a descriptor.

    Attributes
    ----------
    read_command : In(stream.Signature(descriptor_layout(...)))
        DRAM -> scratchpad descriptors. Accepted (``ready``) only when the read channel has no descriptor
        left to split into bursts; bursts of the previous descriptor may still be in flight.
    read_data : Out(stream.Signature(StructLayout({"address": scratch_width, "data": data_width})))
        One scratchpad write per R beat, in address order; ``ready`` low stalls the R channel. Byte-granular:
        a third field ``strobe`` (``data_width // 8`` bits) marks the beat's bytes that belong to the row.
    read_idle : Out(1)
        High when no read descriptor is active and no read burst is outstanding.
    write_command : In(stream.Signature(descriptor_layout(...)))
        Scratchpad -> DRAM descriptors, accepted like ``read_command``.
    write_fetch : Out(stream.Signature(scratch_width))
        Scratchpad read requests, in order.
    write_fetched : In(stream.Signature(data_width))
        The words of ``write_fetch``, in the same order (any latency, any stalls).
    write_idle : Out(1)
        High when no write descriptor is active and every write burst has its B response.
    write_first_lane, write_lane_count : Out(range(data_width // 8)), Out(range(data_width // 8 + 1))
        Byte-granular: the lowest set lane of ``wstrb`` and the number of set lanes (the strobe is one run of
        lanes), registers valid with ``wstrb``; otherwise 0 and ``data_width // 8``.
    axi : Out(axi4_signature(...))
        The AXI4 manager port; ID 0 for every transaction, INCR bursts of full bus words, all strobes set
        (byte-granular: ``wstrb`` set on the row's bytes; it is valid from the cycle the beat's burst is framed,
        before ``write_fetched.valid``, so the user may compute the beat's word from it).
    bytes_read, bytes_written : Out(counter_width)
        Bytes moved on R and W beats since reset or ``clear_counters``.
    clear_counters : In(1)
        Zeroes both byte counters at the next edge (a beat in the same cycle is not counted).
    read_outstanding, write_outstanding : Out(range(max_outstanding + 1))
        Bursts in flight per channel.
    """

    def __init__(
        self,
        *,
        address_width: int = 32,
        data_width: int = 64,
        max_burst: int = 16,
        max_outstanding: int = 4,
        count_width: int = 16,
        scratch_width: int = 16,
        counter_width: int = 48,
        byte_granular: bool = False,
        command_register: bool = False,
    ):
        self.address_width = check_int("address_width", address_width, 12, 64)
        self.data_width = check_int("data_width", data_width, 8, 1024)
        if data_width & (data_width - 1):
            raise ValueError(f"data_width must be a power of two between 8 and 1024, not {data_width}")
        self.max_burst = check_int("max_burst", max_burst, 1, 256)
        self.max_outstanding = check_int("max_outstanding", max_outstanding, 1, 64)
        self.count_width = check_int("count_width", count_width, 1, 32)
        self.scratch_width = check_int("scratch_width", scratch_width, 1, 32)
        self.counter_width = check_int("counter_width", counter_width, 8, 64)
        if not isinstance(byte_granular, bool):
            raise TypeError(f"byte_granular must be a bool, not {byte_granular!r}")
        self.byte_granular = byte_granular
        if not isinstance(command_register, bool):
            raise TypeError(f"command_register must be a bool, not {command_register!r}")
        self.command_register = command_register
        self.beat_bytes = data_width // 8
        self.word_shift = self.beat_bytes.bit_length() - 1
        self.descriptor = descriptor_layout(
            address_width=address_width, count_width=count_width, scratch_width=scratch_width
        )
        fields = {"address": scratch_width, "data": data_width}
        if byte_granular:
            fields["strobe"] = self.beat_bytes
        self.scratch_write_layout = data.StructLayout(fields)
        outstanding = range(max_outstanding + 1)
        super().__init__(
            {
                "read_command": In(stream.Signature(self.descriptor)),
                "read_data": Out(stream.Signature(self.scratch_write_layout)),
                "read_idle": Out(1),
                "write_command": In(stream.Signature(self.descriptor)),
                "write_fetch": Out(stream.Signature(scratch_width)),
                "write_fetched": In(stream.Signature(data_width)),
                "write_idle": Out(1),
                "write_first_lane": Out(range(self.beat_bytes)),
                "write_lane_count": Out(range(self.beat_bytes + 1)),
                "axi": Out(axi4_signature(address_width=address_width, data_width=data_width)),
                "bytes_read": Out(counter_width),
                "bytes_written": Out(counter_width),
                "clear_counters": In(1),
                "read_outstanding": Out(outstanding),
                "write_outstanding": Out(outstanding),
            }
        )
        self.read_walker = _BurstWalker(self, "read")
        self.write_walker = _BurstWalker(self, "write")

    def pack_descriptor(self, **fields) -> int:
        """The bit pattern of a descriptor (for testbenches and host drivers); missing fields are 0."""
        unknown = set(fields) - {name for name, _ in self.descriptor}
        if unknown:
            raise ValueError(f"descriptor has no field {sorted(unknown)[0]!r}")
        word = 0
        for name, field in self.descriptor:
            width = Shape.cast(field.shape).width
            word |= (int(fields.get(name, 0)) & ((1 << width) - 1)) << field.offset
        return word

    def _burst_limit(self, row_remaining, to_boundary):
        """Beats in the next burst: the row's rest, capped by ``max_burst`` and the 4 KiB boundary.

        (A seeded-bug test overrides this to drop the boundary term.)
        """
        capped = Mux(row_remaining > self.max_burst, self.max_burst, row_remaining)
        return Mux(capped > to_boundary, to_boundary, capped)

    def _command_stage(self, m, command, name):
        """``(commands, pending)``: the stream the walker accepts from (``command`` itself, or a register stage
        in front of it with ``command_register``) and whether the stage holds a descriptor (else 0)."""
        if not self.command_register:
            return command, Const(0)
        staged = stream.Signature(self.descriptor).create(path=(f"{name}_staged",))
        held = Signal(name=f"{name}_staged_held")
        m.d.comb += [command.ready.eq(~held | staged.ready), staged.valid.eq(held)]
        with m.If(command.ready):
            m.d.sync += [held.eq(command.valid), staged.payload.eq(command.payload)]
        return staged, held

    def _may_issue(self, outstanding):
        """Whether another burst may be issued (a seeded-bug test overrides this)."""
        return outstanding < self.max_outstanding

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        size = self.word_shift
        m.d.comb += [
            axi.arsize.eq(size),
            axi.awsize.eq(size),
            axi.arburst.eq(_BURST_INCR),
            axi.awburst.eq(_BURST_INCR),
            axi.arid.eq(0),
            axi.awid.eq(0),
        ]
        if not self.byte_granular:
            m.d.comb += [axi.wstrb.eq((1 << self.beat_bytes) - 1), self.write_lane_count.eq(self.beat_bytes)]
        self._elaborate_read(m)
        self._elaborate_write(m)

        with m.If(self.clear_counters):
            m.d.sync += [self.bytes_read.eq(0), self.bytes_written.eq(0)]
        with m.Else():
            with m.If(axi.rvalid & axi.rready):
                m.d.sync += self.bytes_read.eq(self.bytes_read + self.beat_bytes)
            with m.If(axi.wvalid & axi.wready):
                m.d.sync += self.bytes_written.eq(self.bytes_written + self.beat_bytes)
        return m

    def _elaborate_read(self, m):
        axi = self.axi
        walker = self.read_walker
        # One entry per burst in flight: where its beats go in the scratchpad. R beats of one ID return
        # in order, so the head entry always belongs to the beats arriving now.
        entry = data.StructLayout({"scratch": self.scratch_width, "head": range(self.beat_bytes),
                                   "tail": range(self.beat_bytes)})
        m.submodules.read_bursts = bursts = fifo.SyncFIFO(
            width=entry.size if self.byte_granular else self.scratch_width, depth=max(2, self.max_outstanding)
        )
        issue = axi.arvalid & axi.arready
        commands, pending = self._command_stage(m, self.read_command, "read")
        walker.elaborate(m, commands, issue)
        m.d.comb += [
            axi.arvalid.eq(walker.active & walker.settled & self._may_issue(self.read_outstanding) & bursts.w_rdy),
            axi.araddr.eq(walker.word_address << self.word_shift),
            axi.arlen.eq(walker.burst_length - 1),
            bursts.w_en.eq(issue),
        ]
        beat = Signal(8)
        if self.byte_granular:
            head = data.View(entry, bursts.r_data)
            m.d.comb += [
                bursts.w_data.eq(Cat(walker.scratch, walker.burst_head, walker.burst_tail)),
                self.read_data.payload.strobe.eq(_lanes_between(
                    Mux(beat == 0, head.head, 0), Mux(axi.rlast, head.tail, self.beat_bytes - 1), self.beat_bytes)),
            ]
            scratch = head.scratch
        else:
            m.d.comb += bursts.w_data.eq(walker.scratch)
            scratch = bursts.r_data
        m.d.comb += [
            self.read_data.valid.eq(axi.rvalid & bursts.r_rdy),
            self.read_data.payload.address.eq(scratch + beat),
            self.read_data.payload.data.eq(axi.rdata),
            axi.rready.eq(self.read_data.ready & bursts.r_rdy),
        ]
        accepted = axi.rvalid & axi.rready
        finished = accepted & axi.rlast
        m.d.comb += bursts.r_en.eq(finished)
        with m.If(accepted):
            m.d.sync += beat.eq(Mux(axi.rlast, 0, beat + 1))
        m.d.sync += self.read_outstanding.eq(self.read_outstanding + issue - finished)
        m.d.comb += self.read_idle.eq(~pending & ~walker.active & (self.read_outstanding == 0))

    def _elaborate_write(self, m):
        axi = self.axi
        walker = self.write_walker
        fetch_entry = data.StructLayout({"scratch": self.scratch_width, "beats": range(self.max_burst + 1)})
        # Two queues of the bursts issued on AW: one drives the scratchpad fetches, the other frames the W
        # beats (WLAST); the fetched words arrive in between, in order, with any latency.
        m.submodules.fetch_bursts = fetch_bursts = fifo.SyncFIFO(
            width=fetch_entry.size, depth=max(2, self.max_outstanding)
        )
        beat_entry = data.StructLayout({"beats": range(self.max_burst + 1), "head": range(self.beat_bytes),
                                        "tail": range(self.beat_bytes)})
        m.submodules.beat_bursts = beat_bursts = fifo.SyncFIFO(
            width=beat_entry.size if self.byte_granular else Shape.cast(range(self.max_burst + 1)).width,
            depth=max(2, self.max_outstanding),
        )
        issue = axi.awvalid & axi.awready
        commands, pending = self._command_stage(m, self.write_command, "write")
        walker.elaborate(m, commands, issue)
        m.d.comb += [
            axi.awvalid.eq(
                walker.active
                & walker.settled
                & self._may_issue(self.write_outstanding)
                & fetch_bursts.w_rdy
                & beat_bursts.w_rdy
            ),
            axi.awaddr.eq(walker.word_address << self.word_shift),
            axi.awlen.eq(walker.burst_length - 1),
            fetch_bursts.w_data.eq(walker.scratch | (walker.burst_length << self.scratch_width)),
            fetch_bursts.w_en.eq(issue),
            beat_bursts.w_data.eq(
                Cat(walker.burst_length, walker.burst_head, walker.burst_tail)
                if self.byte_granular
                else walker.burst_length
            ),
            beat_bursts.w_en.eq(issue),
        ]

        # Scratchpad fetch addresses, burst after burst without a bubble.
        fetching = Signal()
        fetch_address = Signal(self.scratch_width)
        fetch_left = Signal(range(self.max_burst + 1))
        head = data.View(fetch_entry, fetch_bursts.r_data)
        m.d.comb += [self.write_fetch.valid.eq(fetching), self.write_fetch.payload.eq(fetch_address)]
        fetch_sent = self.write_fetch.valid & self.write_fetch.ready
        fetch_free = ~fetching | (fetch_sent & (fetch_left == 1))
        m.d.comb += fetch_bursts.r_en.eq(fetch_free)
        with m.If(fetch_free):
            with m.If(fetch_bursts.r_rdy):
                m.d.sync += [fetching.eq(1), fetch_address.eq(head.scratch), fetch_left.eq(head.beats)]
            with m.Else():
                m.d.sync += fetching.eq(0)
        with m.Elif(fetch_sent):
            m.d.sync += [fetch_address.eq(fetch_address + 1), fetch_left.eq(fetch_left - 1)]

        # W beats framed by burst length.
        framing = Signal()
        beats_left = Signal(range(self.max_burst + 1))
        m.d.comb += [
            axi.wvalid.eq(framing & self.write_fetched.valid),
            axi.wdata.eq(self.write_fetched.payload),
            axi.wlast.eq(beats_left == 1),
            self.write_fetched.ready.eq(framing & axi.wready),
        ]
        beat_sent = axi.wvalid & axi.wready
        frame_free = ~framing | (beat_sent & (beats_left == 1))
        m.d.comb += beat_bursts.r_en.eq(frame_free)
        frame = data.View(beat_entry, beat_bursts.r_data) if self.byte_granular else None
        with m.If(frame_free):
            with m.If(beat_bursts.r_rdy):
                m.d.sync += [framing.eq(1), beats_left.eq(frame.beats if frame is not None else beat_bursts.r_data)]
            with m.Else():
                m.d.sync += framing.eq(0)
        with m.Elif(beat_sent):
            m.d.sync += beats_left.eq(beats_left - 1)
        if self.byte_granular:
            # The framed burst's first/last lanes: the first beat starts at the burst's head lane, the last ends
            # at its tail lane. ``wstrb`` is a register holding the strobe of the beat on the bus, computed one
            # cycle ahead (at a burst's load, and at each beat sent for the next one), so the beat's consumer
            # (the row unpacker, which sizes its shift from the strobe) starts from a register, not from the
            # burst counters.
            # The same run of lanes as a first lane and a count (``write_first_lane``, ``write_lane_count``),
            # registers too, for a consumer that shifts by them.
            frame_tail, strobe = Signal(range(self.beat_bytes)), Signal(self.beat_bytes)
            first_lane, lane_count = Signal.like(self.write_first_lane), Signal.like(self.write_lane_count)
            last_lane = self.beat_bytes - 1
            with m.If(frame_free & beat_bursts.r_rdy):
                last = Mux(frame.beats == 1, frame.tail, last_lane)
                m.d.sync += [frame_tail.eq(frame.tail), strobe.eq(_lanes_between(frame.head, last, self.beat_bytes)),
                             first_lane.eq(frame.head), lane_count.eq(last - frame.head + 1)]
            with m.Elif(beat_sent):
                last = Mux(beats_left == 2, frame_tail, last_lane)
                m.d.sync += [strobe.eq(_lanes_between(0, last, self.beat_bytes)), first_lane.eq(0),
                             lane_count.eq(last + 1)]
            m.d.comb += [axi.wstrb.eq(strobe), self.write_first_lane.eq(first_lane),
                         self.write_lane_count.eq(lane_count)]

        m.d.comb += axi.bready.eq(1)
        finished = axi.bvalid & axi.bready
        m.d.sync += self.write_outstanding.eq(self.write_outstanding + issue - finished)
        m.d.comb += self.write_idle.eq(~pending & ~walker.active & (self.write_outstanding == 0))
