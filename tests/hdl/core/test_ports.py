# amaranth: UnusedElaboratable=no
"""Vivado-style port names (hdl/core/ports.py): a core-like top with an AXI4 manager, an AXI4-Lite subordinate and
other members gets m_axi_* and s_axil_* ports and keeps Amaranth's names elsewhere."""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.core.ports import convert, port_names
from wavecore.hdl.core.register_block import axi4_lite_signature
from wavecore.hdl.memory.dma import axi4_signature


class _Top(wiring.Component):
    def __init__(self):
        super().__init__({
            "m_axi": Out(axi4_signature(address_width=32, data_width=64)),
            "s_axil": In(axi4_lite_signature(address_width=12)),
            "irq": Out(1),
            "trace": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.m_axi.arvalid.eq(self.s_axil.arvalid), self.irq.eq(self.m_axi.rvalid)]
        return m


def _ports(text):
    return {line.split()[-1].rstrip(";"): line.split()[0] for line in text.splitlines()
            if line.strip().startswith(("input", "output"))}


def test_bus_members_are_joined_with_one_underscore():
    ports = _ports(convert(_Top(), name="top"))
    assert ports["m_axi_awaddr"] == "output" and ports["m_axi_rdata"] == "input"
    assert ports["s_axil_awaddr"] == "input" and ports["s_axil_rdata"] == "output"
    assert ports["irq"] == "output"
    assert ports["trace__payload"] == "output" and ports["trace__ready"] == "input"
    assert not [name for name in ports if name.startswith(("m_axi__", "s_axil__"))]


def test_port_names_cover_every_signature_member():
    top = _Top()
    names = port_names(top)
    assert len(names) == len(list(top.signature.flatten(top)))
