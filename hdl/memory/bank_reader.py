"""Parallel banked read for the feeders: one beat of ``lanes`` words from distinct scratchpad banks.

The address generators of ``hdl/memory/feeder.py`` (im2col), ``hdl/memory/weight_feeder.py`` (conv weights, forward and
transposed) and ``hdl/memory/position_feeder.py`` (backward-weight orientation) compute, per beat, one (bank, word)
address per lane; this block issues those reads to the banks in parallel, collects the responses in order
and emits the beat (the forward, backward-data and backward-weight GEMMs of training all read through it; the
generators only differ in the
order of addresses they produce). Lanes flagged ``pad`` are not read and carry 0.

:func:`check_geometry` validates the banked-read parameters shared by this block and the feeders, and
:class:`BankedFeeder` is the feeders' common base: parameter checks, interface, the embedded
:class:`BankReader` and its wiring, so each generator only adds its command layout and address walk.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.norm.common import check_int, index_shape

__all__ = ["BankReader", "BankedFeeder", "check_geometry"]


def check_geometry(owner, *, lanes: int, banks: int, bank_depth: int, width: int) -> None:
    """Check the banked-read geometry and store it on ``owner`` (``lanes``, ``banks``, ``bank_depth``, ``width``).

    ``lanes`` 1 to 64; ``banks`` a power of two >= lanes, up to 128; ``bank_depth`` 2 to 2**20; ``width`` 2 to 32.
    Raises ``ValueError`` naming the first parameter out of range.
    """
    owner.lanes = check_int("lanes", lanes, 1, 64)
    owner.banks = check_int("banks", banks, 1, 128)
    if banks & (banks - 1) or banks < lanes:
        raise ValueError(f"banks must be a power of two at least lanes ({lanes}), not {banks}")
    owner.bank_depth = check_int("bank_depth", bank_depth, 2, 1 << 20)
    owner.width = check_int("width", width, 2, 32)


class BankReader(wiring.Component):
    """Read one word per lane from ``banks`` banks in parallel and deliver the beats in order.

    Parameters
    ----------
    lanes : int
        Words per beat (1 to 64).
    banks : int
        Banks, a power of two >= lanes (up to 128).
    bank_depth : int
        Words per bank (2 to 2**20).
    width : int
        Bits per word (2 to 32); delivered as signed.
    tag_layout : Layout
        Side information carried from the request to the beat unchanged (e.g. ``last``).
    in_flight : int
        Beats whose reads may be issued before their data leaves (2 to 16, default 6): enough to cover the
        scratchpad's one-cycle read latency plus backpressure jitter at one beat per cycle.

    Attributes
    ----------
    request : In(stream.Signature(StructLayout({"bank": ArrayLayout(range(banks), lanes), "word":
    ArrayLayout(range(bank_depth), lanes), "pad": lanes, "tag": tag_layout})))
        One beat's addresses. The non-``pad`` lanes must name distinct banks (the generators guarantee it
        and their ``check_command`` refuses layouts that would not). Accepted in the cycle the last of its
        bank requests is accepted (the same cycle when every bank is ready: one beat per cycle).
    read_address : list of Out(stream.Signature(range(bank_depth)))
        Per-bank read requests (``Scratchpad.read_address``); a bank's request of a beat stays valid until
        accepted, requests of the other banks of that beat may be accepted earlier.
    read_data : list of In(stream.Signature(width))
        Per-bank responses in request order, any latency (``Scratchpad.read_data``); always taken at once
        into a per-bank queue, so a held response never blocks the bank's next request.
    beat : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(width), lanes), "pad": lanes,
    "tag": tag_layout})))
        The beats in request order; ``data`` is 0 on ``pad`` lanes. The first beat is valid two cycles
        after its request is accepted with a one-cycle-latency bank, then one per cycle.
    empty : Out(1)
        No beat in flight.
    """

    def __init__(self, *, lanes: int, banks: int, bank_depth: int, width: int, tag_layout, in_flight: int = 6):
        check_geometry(self, lanes=lanes, banks=banks, bank_depth=bank_depth, width=width)
        self.in_flight = check_int("in_flight", in_flight, 2, 16)
        self.tag_layout = tag_layout
        self.request_layout = data.StructLayout(
            {
                "bank": data.ArrayLayout(index_shape(banks), lanes),
                "word": data.ArrayLayout(range(bank_depth), lanes),
                "pad": lanes,
                "tag": tag_layout,
            }
        )
        self.beat_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(width), lanes), "pad": lanes, "tag": tag_layout}
        )
        super().__init__(
            {
                "request": In(stream.Signature(self.request_layout)),
                "read_address": Out(stream.Signature(range(bank_depth))).array(banks),
                "read_data": In(stream.Signature(width)).array(banks),
                "beat": Out(stream.Signature(self.beat_layout)),
                "empty": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        lanes, banks = self.lanes, self.banks
        entry_layout = data.StructLayout(
            {"bank": data.ArrayLayout(index_shape(banks), lanes), "pad": lanes, "tag": self.tag_layout}
        )
        m.submodules.in_flight = in_flight = fifo.SyncFIFOBuffered(width=entry_layout.size, depth=self.in_flight)
        # A bank has at most one request per beat in flight, so in_flight + 2 entries never overflow.
        queues = []
        for bank in range(banks):
            queue = fifo.SyncFIFO(width=self.width, depth=self.in_flight + 2)
            m.submodules[f"responses{bank}"] = queue
            m.d.comb += [
                queue.w_data.eq(self.read_data[bank].payload),
                queue.w_en.eq(self.read_data[bank].valid),
                self.read_data[bank].ready.eq(queue.w_rdy),
            ]
            queues.append(queue)

        # -- issue ----------------------------------------------------------------------------------------
        request = self.request.payload
        issuing = self.request.valid & in_flight.w_rdy
        accepted = Signal(banks)  # banks whose request of the current beat was taken in an earlier cycle
        all_done = 1
        for bank in range(banks):
            port = self.read_address[bank]
            wanted = 0
            address = 0
            for lane in range(lanes):
                hit = ~request.pad[lane] & (request.bank[lane] == bank)
                wanted = wanted | hit
                address = Mux(hit, request.word[lane], address)
            m.d.comb += [port.valid.eq(issuing & wanted & ~accepted[bank]), port.payload.eq(address)]
            all_done = all_done & (~wanted | accepted[bank] | (port.valid & port.ready))
        m.d.comb += self.request.ready.eq(in_flight.w_rdy & all_done)
        taken = self.request.valid & self.request.ready
        for bank in range(banks):
            port = self.read_address[bank]
            with m.If(taken):
                m.d.sync += accepted[bank].eq(0)
            with m.Elif(port.valid & port.ready):
                m.d.sync += accepted[bank].eq(1)
        entry = data.View(entry_layout, in_flight.w_data)
        m.d.comb += [
            entry.bank.eq(request.bank),
            entry.pad.eq(request.pad),
            entry.tag.eq(request.tag),
            in_flight.w_en.eq(taken),
        ]

        # -- collect --------------------------------------------------------------------------------------
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
            m.d.comb += self.beat.payload.data[lane].eq(
                Mux(head.pad[lane], 0, Mux(captured[lane], held[lane], response_data))
            )
            with m.If(self.beat.valid & self.beat.ready):
                m.d.sync += captured[lane].eq(0)
            with m.Elif(in_flight.r_rdy & ~head.pad[lane] & ~captured[lane] & response_valid):
                m.d.sync += [captured[lane].eq(1), held[lane].eq(response_data)]
        for bank in range(banks):
            needed = 0
            for lane in range(lanes):
                needed = needed | (~head.pad[lane] & ~captured[lane] & (head.bank[lane] == bank))
            m.d.comb += queues[bank].r_en.eq(in_flight.r_rdy & needed)
        m.d.comb += [
            self.beat.valid.eq(have_all),
            self.beat.payload.pad.eq(head.pad),
            self.beat.payload.tag.eq(head.tag),
            in_flight.r_en.eq(self.beat.valid & self.beat.ready),
            self.empty.eq(in_flight.level == 0),
        ]
        return m


class BankedFeeder(wiring.Component):
    """Common base of the feeders (``feeder.py``, ``weight_feeder.py``, ``position_feeder.py`` here).

    A subclass calls :meth:`_check_feeder` first (validates ``lanes``, ``banks``, ``bank_depth``, ``width``
    as :func:`check_geometry` and ``dimension_width`` 2 to 16; sets ``bank_bits = log2(banks)`` and
    ``elements = bank_depth * banks``), builds its command layout, then calls ``super().__init__`` with the
    command layout and the tag fields beside ``data`` and ``pad`` in the operand (e.g. ``{"last": 1}``).
    In ``elaborate`` it calls :meth:`_reader` to get the wired :class:`BankReader`, drives
    ``reader.request`` itself and ends with :meth:`_deliver`.

    Interface: ``command`` In(stream.Signature(command_layout)); ``read_address`` / ``read_data`` per bank
    (``Scratchpad.read_address`` / ``read_data``); ``operand`` Out(stream.Signature(StructLayout({"data":
    ArrayLayout(signed(width), lanes), "pad": lanes, **tag_fields}))); ``idle`` Out(1). Timing as
    :class:`BankReader` (the beat is passed through combinationally).
    """

    def _check_feeder(self, *, lanes: int, banks: int, bank_depth: int, width: int, dimension_width: int) -> None:
        check_geometry(self, lanes=lanes, banks=banks, bank_depth=bank_depth, width=width)
        self.dimension_width = check_int("dimension_width", dimension_width, 2, 16)
        self.bank_bits = banks.bit_length() - 1
        self.elements = bank_depth * banks

    def __init__(self, command_layout, tag_fields: dict):
        self.command_layout = command_layout
        self.operand_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(self.width), self.lanes), "pad": self.lanes, **tag_fields}
        )
        self._tag_layout = data.StructLayout(tag_fields)
        super().__init__(
            {
                "command": In(stream.Signature(command_layout)),
                "read_address": Out(stream.Signature(range(self.bank_depth))).array(self.banks),
                "read_data": In(stream.Signature(self.width)).array(self.banks),
                "operand": Out(stream.Signature(self.operand_layout)),
                "idle": Out(1),
            }
        )

    def _reader(self, m: Module) -> BankReader:
        """Add the :class:`BankReader` to ``m`` and connect its bank ports to this feeder's."""
        m.submodules.reader = reader = BankReader(
            lanes=self.lanes, banks=self.banks, bank_depth=self.bank_depth, width=self.width,
            tag_layout=self._tag_layout,
        )
        for bank in range(self.banks):
            wiring.connect(m, reader.read_address[bank], wiring.flipped(self.read_address[bank]))
            wiring.connect(m, wiring.flipped(self.read_data[bank]), reader.read_data[bank])
        return reader

    def _deliver(self, m: Module, reader: BankReader, active) -> None:
        """Pass the reader's beats to ``operand`` (tag fields by name); ``idle`` when not ``active`` and empty."""
        beat = reader.beat
        m.d.comb += [
            self.operand.valid.eq(beat.valid),
            self.operand.payload.data.eq(beat.payload.data),
            self.operand.payload.pad.eq(beat.payload.pad),
            reader.beat.ready.eq(self.operand.ready),
            self.idle.eq(~active & reader.empty),
        ]
        for name, _ in self._tag_layout:
            m.d.comb += self.operand.payload[name].eq(beat.payload.tag[name])
