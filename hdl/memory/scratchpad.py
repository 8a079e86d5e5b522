"""Banked, double-buffered on-chip scratchpad with a ping-pong ownership controller.

The on-chip buffer of a WaveCore-style accelerator (Lym et al., arXiv 1810.00307), with double-buffered
regions so a DMA fill overlaps the array's drain of the previous tile. The address
space of every bank is split into ``regions`` equal regions; a producer (the DMA or the array's result
writer) fills one region while a consumer (the feeder or the DMA) drains another. The
:class:`PingPongController` hands regions out in a ring so that

* a region is never granted to the producer and the consumer at the same time,
* a filled region is never overwritten before it has been drained, and
* the consumer receives the filled regions exactly once each, in the order they were filled.

These three properties are proved with SymbiYosys in ``tests/hdl/memory/test_formal_scratchpad.py``.

The controller lives in this file, not in its own module, because it has no use outside the scratchpad
and its formal harness tests it as the scratchpad's ownership logic.
"""

from __future__ import annotations

from amaranth import Array, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int

__all__ = ["PingPongController", "RegionState", "Scratchpad"]


def _handshake_ports(regions: int) -> dict:
    """The producer/consumer region handshake, shared by the controller and the scratchpad that wraps it."""
    return {
        "fill_acquire": In(1),
        "fill_owned": Out(1),
        "fill_region": Out(range(regions)),
        "fill_release": In(1),
        "drain_acquire": In(1),
        "drain_owned": Out(1),
        "drain_region": Out(range(regions)),
        "drain_release": In(1),
        "filled": Out(range(regions + 1)),
    }


class RegionState(enum.Enum, shape=2):
    """Life cycle of one buffer region: EMPTY -> FILLING -> FULL -> DRAINING -> EMPTY."""

    EMPTY = 0
    FILLING = 1
    FULL = 2
    DRAINING = 3


class PingPongController(wiring.Component):
    """Ownership of ``regions`` buffer regions shared by one producer and one consumer.

    Regions are used in a ring: the producer fills region 0, 1, ..., the consumer drains them in the
    same order. Requests are levels: hold ``fill_acquire`` until ``fill_owned`` rises.

    Parameters
    ----------
    regions : int
        Number of regions (2 = classic ping-pong), 2 to 16.

    Attributes
    ----------
    fill_acquire : In(1)
        Producer asks for the next region. Granted at the next clock edge when that region is EMPTY.
    fill_owned : Out(1)
        The producer owns ``fill_region`` (registered state; stays high until released).
    fill_region : Out(range(regions))
        The region the producer owns or will be granted next.
    fill_release : In(1)
        Producer is done with ``fill_region``: at the next edge it becomes FULL. Ignored when not owned.
    drain_acquire, drain_owned, drain_region, drain_release
        The same handshake for the consumer, which is granted a FULL region and returns it EMPTY.
    filled : Out(range(regions + 1))
        Number of regions FULL or DRAINING (buffered tiles not yet consumed).
    """

    def __init__(self, *, regions: int = 2):
        self.regions = check_int("regions", regions, 2, 16)
        super().__init__(
            {
                **_handshake_ports(regions),
            }
        )
        # Exposed for the formal harness's strengthening invariants.
        self.state = Array(Signal(RegionState, name=f"state{index}") for index in range(regions))

    def _next(self, pointer):
        return Mux(pointer == self.regions - 1, 0, pointer + 1)

    def _may_grant_fill(self, m, state):
        """Condition to hand the producer region ``state`` (a seeded-bug test overrides this)."""
        return state == RegionState.EMPTY

    def elaborate(self, platform):
        m = Module()
        # Per-region decode rather than indexing by the pointer: plain assigns simulate identically on
        # Icarus from time 0 (an indexed read becomes an `always @*` that stays X until an input moves).
        fill_owned = 0
        drain_owned = 0
        full_count = 0
        for index, state in enumerate(self.state):
            fill_here = self.fill_region == index
            drain_here = self.drain_region == index
            fill_owned = fill_owned | (fill_here & (state == RegionState.FILLING))
            drain_owned = drain_owned | (drain_here & (state == RegionState.DRAINING))
            full_count = full_count + ((state == RegionState.FULL) | (state == RegionState.DRAINING))
        m.d.comb += [
            self.fill_owned.eq(fill_owned),
            self.drain_owned.eq(drain_owned),
            self.filled.eq(full_count),
        ]

        for index, state in enumerate(self.state):
            fill_here = self.fill_region == index
            drain_here = self.drain_region == index
            with m.If(fill_here & (state == RegionState.FILLING) & self.fill_release):
                m.d.sync += state.eq(RegionState.FULL)
            with m.Elif(
                fill_here
                & (state != RegionState.FILLING)
                & self.fill_acquire
                & self._may_grant_fill(m, state)
            ):
                m.d.sync += state.eq(RegionState.FILLING)
            # The consumer's transitions come second: when a seeded bug lets both sides act on one region
            # the proof must see it, not have one side silently win.
            with m.If(drain_here & (state == RegionState.DRAINING) & self.drain_release):
                m.d.sync += state.eq(RegionState.EMPTY)
            with m.Elif(drain_here & (state == RegionState.FULL) & self.drain_acquire):
                m.d.sync += state.eq(RegionState.DRAINING)
        with m.If(self.fill_owned & self.fill_release):
            m.d.sync += self.fill_region.eq(self._next(self.fill_region))
        with m.If(self.drain_owned & self.drain_release):
            m.d.sync += self.drain_region.eq(self._next(self.drain_region))
        return m


class Scratchpad(wiring.Component):
    """Banked on-chip SRAM with ping-pong regions guarded by a :class:`PingPongController`.

    Every bank is an ``amaranth.lib.memory.Memory`` with one write port and one synchronous read port, so
    FPGA flows infer block RAM (one true-dual-port or simple-dual-port BRAM per bank). Each bank's
    ``depth`` words are split into ``regions`` regions of ``depth // regions`` words; ports address
    words *inside the owned region*, the controller supplies the region.

    Parameters
    ----------
    banks : int
        Number of independently addressed banks (1 to 64); each has its own read and write streams.
    depth : int
        Words per bank (a multiple of ``regions``, 2 to 2**20).
    width : int
        Bits per word (1 to 1024).
    regions : int
        Buffer regions per bank (2 = double buffering), 2 to 16.

    Attributes
    ----------
    fill_acquire, fill_owned, fill_region, fill_release, drain_acquire, drain_owned, drain_region,
    drain_release, filled
        The controller's ownership handshake, see :class:`PingPongController`.
    write : list of In(stream.Signature(StructLayout({"address": range(region_depth), "data": width})))
        One per bank. ``ready`` is high exactly while the producer owns a region (``fill_owned``); the
        word lands in the producer's region at the edge ending the transfer cycle.
    read_address : list of In(stream.Signature(range(region_depth)))
        One per bank; read requests into the consumer's region. ``ready`` is ``drain_owned`` and the
        response register being free or drained in the same cycle.
    read_data : list of Out(stream.Signature(width))
        One per bank; the word for each accepted request, one cycle after it (full throughput under
        no backpressure). ``payload`` is held while ``valid & ~ready``.
    """

    def __init__(self, *, banks: int, depth: int, width: int, regions: int = 2):
        self.banks = check_int("banks", banks, 1, 64)
        self.depth = check_int("depth", depth, 2, 1 << 20)
        self.width = check_int("width", width, 1, 1024)
        self.regions = check_int("regions", regions, 2, 16)
        if depth % regions:
            raise ValueError(f"depth must be a multiple of regions ({regions}), not {depth}")
        self.region_depth = depth // regions
        self.write_layout = data.StructLayout({"address": range(self.region_depth), "data": width})
        super().__init__(
            {
                **_handshake_ports(regions),
                "write": In(stream.Signature(self.write_layout)).array(banks),
                "read_address": In(stream.Signature(range(self.region_depth))).array(banks),
                "read_data": Out(stream.Signature(width)).array(banks),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.control = control = PingPongController(regions=self.regions)
        for name in ("fill_acquire", "fill_release", "drain_acquire", "drain_release"):
            m.d.comb += getattr(control, name).eq(getattr(self, name))
        for name in ("fill_owned", "fill_region", "drain_owned", "drain_region", "filled"):
            m.d.comb += getattr(self, name).eq(getattr(control, name))

        for index in range(self.banks):
            memory = Memory(shape=self.width, depth=self.depth, init=[])
            m.submodules[f"bank{index}"] = memory
            write_port = memory.write_port()
            read_port = memory.read_port(domain="sync")
            write, request, response = self.write[index], self.read_address[index], self.read_data[index]

            m.d.comb += [
                write.ready.eq(control.fill_owned),
                write_port.addr.eq(control.fill_region * self.region_depth + write.payload.address),
                write_port.data.eq(write.payload.data),
                write_port.en.eq(write.valid & write.ready),
            ]
            # The read port's data register doubles as the response buffer: a new request is taken only
            # when the previous word leaves (or has left), so no skid buffer is needed.
            m.d.comb += [
                request.ready.eq(control.drain_owned & (~response.valid | response.ready)),
                read_port.addr.eq(control.drain_region * self.region_depth + request.payload),
                read_port.en.eq(request.valid & request.ready),
                response.payload.eq(read_port.data),
            ]
            with m.If(read_port.en):
                m.d.sync += response.valid.eq(1)
            with m.Elif(response.ready):
                m.d.sync += response.valid.eq(0)
        return m
