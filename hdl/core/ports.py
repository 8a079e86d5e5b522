"""Verilog port names of SoC-facing interfaces, as Vivado-style IP spells them.

Amaranth 0.5's ``verilog.convert`` names the port of a nested signature member by joining its path with two
underscores (``amaranth/back/verilog.py``: ``"__".join(map(str, path))``), so a member ``s_axil`` with an
``awaddr`` field becomes ``s_axil__awaddr``. SoC integration tools (Vivado's IP packager, LiteX, cocotbext-axi's
``AxiLiteBus.from_prefix(dut, "s_axil")``) expect ``s_axil_awaddr``. :func:`convert` passes ``verilog.convert``
an explicit ``ports=`` dictionary that joins the path of the listed *bus members* with one underscore and keeps
Amaranth's double underscore everywhere else, so the core top gets ``m_axi_*`` and ``s_axil_*`` while its other
ports keep the names every other generated block has.
"""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import Value, ValueCastable
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring

__all__ = ["BUS_MEMBERS", "convert", "port_names"]

#: Top-level members whose fields are named ``<member>_<field>`` in Verilog.
BUS_MEMBERS = ("s_axil", "m_axi", "s_axi")


def port_names(component: wiring.Component, *, bus_members=BUS_MEMBERS) -> dict:
    """``{verilog name: (value, direction)}`` for every port of ``component``."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if not isinstance(value, Value):
            continue
        if len(path) == 2 and path[0] in bus_members:
            name = f"{path[0]}_{path[1]}"
        else:
            name = "__".join(map(str, path))
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports[name] = (value, direction)
    return ports


def convert(component: wiring.Component, *, name: str, bus_members=BUS_MEMBERS) -> str:
    """Verilog of ``component`` with bus members named Vivado-style (see the module docstring)."""
    return verilog.convert(component, name=name, ports=port_names(component, bus_members=bus_members),
                           emit_src=False)
