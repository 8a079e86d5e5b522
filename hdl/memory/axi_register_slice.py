"""A full register slice on every channel of an AXI4 port: each valid, ready and payload crossing it is a flop.

Sits between a manager (``s_axi``, the manager-facing side) and the bus (``m_axi``) so no combinational path
crosses the port: the manager's AW, W and AR outputs and its R and B inputs each go through one two-entry slice
(the "skid buffer" of AMBA register slices): an output register that holds the beat on the bus, and a skid
register that catches the one beat accepted while the output stalled, so ``ready`` on the input side is a
register too.

Ports: ``s_axi`` (``In(axi4_signature(...))``: the manager connects its ``Out`` port here) and ``m_axi``
(``Out(axi4_signature(...))``: to the subordinate), the same fields on both (see
:func:`wavecore.hdl.memory.dma.axi4_signature`).

Timing: every channel passes a beat one cycle after it is accepted (one more cycle per direction: a read burst's
first R beat reaches the manager two cycles later than without the slice, a write's B one cycle later, W beats
one cycle later); one beat per cycle per channel at full throughput, under any stall pattern; at most two beats
held per channel. The channels are independent (AXI orders nothing between them; a B still follows its burst's
last W on the subordinate's side, so the manager never sees a B before its W left the slice).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.memory.dma import axi4_signature

__all__ = ["AxiRegisterSlice", "CHANNELS"]

# (channel, direction, payload fields): "out" channels go from the manager to the subordinate
CHANNELS = (
    ("aw", "out", ("awid", "awaddr", "awlen", "awsize", "awburst")),
    ("w", "out", ("wdata", "wstrb", "wlast")),
    ("b", "in", ("bid", "bresp")),
    ("ar", "out", ("arid", "araddr", "arlen", "arsize", "arburst")),
    ("r", "in", ("rid", "rdata", "rresp", "rlast")),
)


class AxiRegisterSlice(wiring.Component):
    """Registers on every AXI4 channel between ``s_axi`` (the manager's side) and ``m_axi`` (the bus).

    Parameters
    ----------
    address_width, data_width, id_width
        As :func:`wavecore.hdl.memory.dma.axi4_signature` (``data_width`` a power of two of at least 8).
    """

    def __init__(self, *, address_width: int, data_width: int, id_width: int = 1):
        for name, value in (("address_width", address_width), ("data_width", data_width), ("id_width", id_width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if data_width < 8 or data_width & (data_width - 1):
            raise ValueError(f"data_width must be a power of two of at least 8, not {data_width}")
        self.address_width, self.data_width, self.id_width = address_width, data_width, id_width
        signature = axi4_signature(address_width=address_width, data_width=data_width, id_width=id_width)
        super().__init__({"s_axi": In(signature), "m_axi": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        for channel, direction, fields in CHANNELS:
            manager_side, bus_side = self.s_axi, self.m_axi
            source, sink = (manager_side, bus_side) if direction == "out" else (bus_side, manager_side)
            _slice(m, channel, source, sink, fields)
        return m


def _slice(m, channel, source, sink, fields):
    """One two-entry slice from ``source``'s ``<channel>valid``/payload to ``sink``'s, ``ready`` back."""
    valid_in, ready_out = getattr(source, f"{channel}valid"), getattr(source, f"{channel}ready")
    valid_out, ready_in = getattr(sink, f"{channel}valid"), getattr(sink, f"{channel}ready")
    payload_in = [getattr(source, name) for name in fields]
    payload_out = [getattr(sink, name) for name in fields]
    held = Signal(name=f"{channel}_valid")
    data = [Signal.like(value, name=f"{channel}_{name}") for name, value in zip(fields, payload_out)]
    skid_held = Signal(name=f"{channel}_skid_valid")
    skid = [Signal.like(value, name=f"{channel}_skid_{name}") for name, value in zip(fields, payload_in)]
    m.d.comb += [valid_out.eq(held), ready_out.eq(~skid_held)]
    m.d.comb += [port.eq(value) for port, value in zip(payload_out, data)]
    with m.If(ready_in | ~held):  # the output register is free (or leaves now): it takes the oldest beat
        with m.If(skid_held):
            m.d.sync += [held.eq(1), skid_held.eq(0)]
            m.d.sync += [value.eq(saved) for value, saved in zip(data, skid)]
        with m.Else():
            m.d.sync += held.eq(valid_in)
            m.d.sync += [value.eq(incoming) for value, incoming in zip(data, payload_in)]
    with m.Elif(valid_in & ~skid_held):  # the output stalls: the beat accepted now waits in the skid register
        m.d.sync += skid_held.eq(1)
        m.d.sync += [saved.eq(incoming) for saved, incoming in zip(skid, payload_in)]
