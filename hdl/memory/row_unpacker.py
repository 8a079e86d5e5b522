"""Unpacks a dense on-chip region into the byte-granular DMA's DRAM row beats (the STORE side of the realignment).

A STORE scatters one dense on-chip region, starting at any byte of its first word, into DRAM rows that start
at any byte of their words. The DMA (:class:`wavecore.hdl.memory.dma.Dma` with ``byte_granular=True``) frames
each W beat with the row's lanes in ``wstrb`` before it asks for the beat's word; the unpacker reads the
region's words in order into a ring of four word slots (each word written whole into the next slot) and answers
each beat with the region's next ``count`` bytes, read out of the ring by one rotation (by the ring position of
the next byte minus the beat's first lane) so that they sit at the beat's lanes. Taking a beat moves the ring
position and the byte count only, so no data shift lies in the loop from one beat to the next; the first word's
bytes below the region's first byte are skipped by starting the position there. A beat's lanes outside its run
hold other bytes of the ring (the strobe masks them).

Ports (``lanes = data_width // 8``):

* ``start`` (1 cycle) with ``chip_byte``: a new transfer reading from on-chip byte ``chip_byte``; empties
  the ring. ``active`` high lets the unpacker read ahead (at most three words past what the beats consumed,
  four with ``register_read_data`` or ``read_latency=2``; the extra words' bytes are never sent).
* ``read_ready`` (default high): the memory takes a read this cycle; while it is low the unpacker does not read.
* ``read_enable``/``read_address`` -> ``read_data``: the on-chip read port (data ``read_latency`` cycles after
  the read: 1, the next cycle, by default).
* ``beat_first_lane``/``beat_lane_count`` (the lanes of the beat the DMA frames, one run of lanes: the DMA's
  ``write_first_lane``/``write_lane_count`` registers), ``beat_valid``/``beat_data`` (the beat's word, valid
  once the ring holds its bytes), ``beat_ready`` (the DMA takes it).

Timing: with ``beat_ready`` always high it sustains one full beat per cycle after a three-cycle fill (a read
each cycle while the bytes held plus the word in flight leave room for one more word).

With ``register_read_data`` the read word is registered before it is written into the ring (the path from the
memory's output is cut in two, at the cost of one more cycle of fill), and the unpacker reads one word further
ahead so that the two words then in flight still let it sustain one beat per cycle. The read port's timing is
the same either way.

With ``read_latency=2`` the read port's memory delivers the word two cycles after the read (it registers the
word itself, e.g. :class:`wavecore.hdl.core.core_memory.CoreMemory` with ``dma_read_latency=2``) and the
unpacker writes ``read_data`` into the ring directly: the same fill, read-ahead and beat timing as
``register_read_data`` with a one-cycle memory (the two options are not combined).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.memory.row_packer import check_bus

__all__ = ["RowUnpacker"]


class RowUnpacker(wiring.Component):
    """Dense on-chip words -> DRAM row beats (see the module docstring).

    Parameters
    ----------
    data_width : int
        Bits of a DRAM beat and of an on-chip word (a power of two, 16 to 1024).
    address_width : int
        Bits of an on-chip word address (1 to 32).
    register_read_data : bool
        Register the read word before the realignment (see the module docstring); only with ``read_latency=1``.
    read_latency : int
        Cycles from a read to its word on ``read_data``: 1 or 2 (see the module docstring).
    """

    def __init__(self, *, data_width: int = 64, address_width: int = 16, register_read_data: bool = False,
                 read_latency: int = 1):
        self.data_width, self.address_width = check_bus(data_width, address_width)
        if not isinstance(register_read_data, bool):
            raise TypeError(f"register_read_data must be a bool, not {register_read_data!r}")
        if read_latency not in (1, 2) or isinstance(read_latency, bool):
            raise ValueError(f"read_latency must be 1 or 2, not {read_latency!r}")
        if register_read_data and read_latency != 1:
            raise ValueError("register_read_data needs read_latency 1")
        self.register_read_data = register_read_data
        self.read_latency = read_latency
        self.lanes = data_width // 8
        self.lane_shift = self.lanes.bit_length() - 1
        super().__init__({
            "start": In(1),
            "chip_byte": In(address_width + self.lane_shift),
            "active": In(1),
            "read_ready": In(1, init=1),
            "read_enable": Out(1),
            "read_address": Out(address_width),
            "read_data": In(data_width),
            "beat_first_lane": In(range(self.lanes)),
            "beat_lane_count": In(range(self.lanes + 1)),
            "beat_valid": Out(1),
            "beat_data": Out(data_width),
            "beat_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, width = self.lanes, self.data_width
        # cycles from a read to its word's merge into the ring
        stages = self.read_latency + (1 if self.register_read_data else 0)
        capacity = (2 + stages) * lanes  # bytes held or in flight at most (the read-ahead limit)
        # The words are kept in a ring of four word slots, written whole (no byte shift on the way in); the
        # bytes still to send are [position, position + fill) of the ring (modulo its size), so taking a beat
        # moves `position` and `fill` only, and a beat's lanes are read out of the ring by one rotation.
        slots = 4
        ring_bytes = slots * lanes
        ring = Signal(ring_bytes * 8)
        slot = Signal(range(slots))  # where the next word merged goes
        position = Signal(range(ring_bytes))  # the ring byte of the region's next byte to send
        fill = Signal(range(capacity + 1))
        pending = Signal()  # a read's word is merged this cycle (on read_data, or in `word` when registered)
        word = self.read_data
        in_flight = Mux(pending, lanes, 0)  # bytes read and not yet in the ring
        if stages == 2:
            read_last = Signal()  # a read issued last cycle (its word is on read_data now when registered here)
            in_flight = in_flight + Mux(read_last, lanes, 0)
        if self.register_read_data:
            word = Signal(width, name="read_word")
            m.d.sync += word.eq(self.read_data)
        first = Signal()  # the next word merged is the region's first: its bytes below `skip` are not sent
        skip = Signal(range(lanes))
        address = Signal(self.address_width)

        count = self.beat_lane_count
        # beat lane L carries ring byte position - first_lane + L
        rotation = Signal(range(ring_bytes))
        m.d.comb += rotation.eq(position - self.beat_first_lane)
        m.d.comb += [
            self.beat_valid.eq(self.active & (fill >= count)),
            self.beat_data.eq(Cat(ring, ring[: width - 8]).bit_select(rotation * 8, width)),
        ]
        taken = Signal(range(lanes + 1))
        m.d.comb += taken.eq(Mux(self.beat_valid & self.beat_ready, count, 0))
        drop = Mux(first, skip, 0)

        issue = self.active & self.read_ready & (fill + in_flight + lanes <= capacity)
        m.d.comb += [self.read_enable.eq(issue), self.read_address.eq(address)]
        read_issued = issue
        if stages == 2:
            read_issued = read_last
        with m.If(self.start):
            m.d.sync += [fill.eq(0), pending.eq(0), first.eq(1), slot.eq(0),
                         skip.eq(self.chip_byte[: self.lane_shift]),
                         position.eq(self.chip_byte[: self.lane_shift]),
                         address.eq(self.chip_byte[self.lane_shift :])]
            if stages == 2:
                m.d.sync += read_last.eq(0)
        with m.Else():
            m.d.sync += [pending.eq(read_issued), position.eq(position + taken)]
            if stages == 2:
                m.d.sync += read_last.eq(issue)
            with m.If(issue):
                m.d.sync += address.eq(address + 1)
            with m.If(pending):
                m.d.sync += [ring.word_select(slot, width).eq(word), slot.eq(slot + 1),
                             fill.eq(fill - taken + lanes - drop), first.eq(0)]
            with m.Else():
                m.d.sync += fill.eq(fill - taken)
        return m
