"""Hierarchical Verilog: a cell written once as its own module and instantiated many times.

Amaranth 0.5 writes every submodule *instance* as a Verilog module of its own, so a ``rows x cols`` array
of identical processing elements becomes ``rows x cols`` copies of the same module (a 64x64 systolic array:
8,193 modules, 26 MB). A component that builds many identical cells can instead place them with
:func:`add_cells` and ``hierarchical=True``: every cell becomes an ``Instance`` of one module, and the
cell's component (still the one Amaranth source of its logic) is converted **once**, by :func:`convert`,
into a module appended to the same file. With ``hierarchical=False`` the same call adds ordinary Amaranth
submodules (the *flat* form, which amaranth.sim can simulate and any ``verilog.convert`` can write).

Rules for a hierarchical cell:

* it is a :class:`amaranth.lib.wiring.Component` whose members are plain ports (``In``/``Out`` signals or
  views), so the instance's port list is its signature;
* its clocked logic is in the ``sync`` domain with Amaranth's default synchronous reset: the module gets
  the ports ``clk`` and ``rst``, and every instance receives its parent's ``ClockSignal()`` and
  ``ResetSignal()`` (a constant 0 if the parent's ``sync`` domain is reset-less, as for a flat cell);
* the design holding it is written by :func:`convert` (amaranth.sim and a bare ``verilog.convert`` cannot
  see inside an ``Instance``; they get a one-line error telling to use the flat form).

Modules are named ``<toplevel>_<kind>`` (``systolic_pe``, ``systolic_row``, ``systolic_pe_x16``), with
``_2``, ``_3``, ... for further variants of a kind in the same design, so files generated under different
top-level names can be linked together.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Hashable, Sequence
from types import SimpleNamespace

from amaranth import ClockSignal, Const, Instance, ResetSignal, Shape, ShapeCastable, Signal
from amaranth.lib import wiring

__all__ = ["add_cells", "convert", "convert_rtlil", "module_names"]

_TOP_ATTRIBUTE = re.compile(r"^attribute \\top 1\n", re.MULTILINE)
_LIBRARY: contextvars.ContextVar[_Library | None] = contextvars.ContextVar("wavecore_hierarchy", default=None)


class _Definition:
    """One module written once: its name, the component and its RTLIL (converted when first defined, so
    an instance connects the clock and reset only if the module has them: a cell of wires has neither)."""

    def __init__(self, name: str, component: wiring.Component, *, emit_src: bool):
        from amaranth.back import rtlil

        for member_name, member in component.signature.members.items():
            if not member.is_port:
                raise TypeError(f"a hierarchical cell has plain ports only; {member_name!r} of "
                                f"{type(component).__name__} is an interface")
        self.name = name
        self.component = component
        # Only the real top level keeps the `top` attribute (tools pick the top module by it).
        self.rtlil = _TOP_ATTRIBUTE.sub("", rtlil.convert(component, name=name, emit_src=emit_src), count=1)
        self.domain_ports = [port for port in ("clk", "rst")
                             if re.search(rf"^\s*wire width 1 input \d+\s+\\{port}\s*$", self.rtlil, re.MULTILINE)]

    def instance(self, path: str):
        """``(Instance, ports)``: the instance, and an interface with the cell's ports as signals named
        ``<path>__<port>`` (inputs driven by the parent, outputs by the instance)."""
        ports = SimpleNamespace()
        connections = []
        for name, member in self.component.signature.members.items():
            # A plain signal per port even for a layout (wrapped in a view for the caller): Amaranth writes
            # a named wire for every field of a signal *declared* with a layout, which for an array of
            # rows x cols cells would put rows x cols wires back into the parent module.
            shape = Shape.cast(member.shape)
            init = Const.cast(member.shape.const(member.init)).value if isinstance(member.shape, ShapeCastable) \
                else member.init
            signal = Signal(shape, name=f"{path}__{name}", init=init)
            setattr(ports, name, member.shape(signal) if isinstance(member.shape, ShapeCastable) else signal)
            connections.append(("i" if member.flow == wiring.In else "o", name, signal))
        domain = {"clk": ClockSignal("sync"), "rst": ResetSignal("sync", allow_reset_less=True)}
        connections += [("i", port, domain[port]) for port in self.domain_ports]
        instance = Instance(self.name, *connections)
        return instance, ports


class _Library:
    """The modules a :func:`convert` call has to write besides the top level, one per distinct key."""

    def __init__(self, toplevel: str, *, emit_src: bool):
        self.toplevel = toplevel
        self.emit_src = emit_src
        self.by_key: dict = {}
        self.taken = {toplevel}
        self.definitions: list[_Definition] = []  # in the order their conversion finished

    def define(self, kind: str, key: Hashable, factory: Callable) -> _Definition:
        if (kind, key) not in self.by_key:
            name = f"{self.toplevel}_{kind}"
            variant = 1
            while name in self.taken:
                variant += 1
                name = f"{self.toplevel}_{kind}_{variant}"
            self.taken.add(name)
            # Converting it may define the cells it holds first (a chain's halves), which is fine: their
            # names are taken and their keys recorded before this returns.
            definition = _Definition(name, factory(), emit_src=self.emit_src)
            self.by_key[(kind, key)] = definition
            self.definitions.append(definition)
        return self.by_key[(kind, key)]


def add_cells(m, names: Sequence[str], factory: Callable, *, kind: str, key: Hashable, hierarchical: bool) -> list:
    """Add one cell per name in ``names`` to module ``m`` and return their ports, in order.

    ``factory()`` builds the cell's component. Flat (``hierarchical=False``): one component per cell, each an
    Amaranth submodule, returned as is. Hierarchical: ``factory()`` is called once per distinct ``(kind,
    key)`` in the design being converted; each cell is an ``Instance`` of that module, and what is returned
    for it is an interface with the same port names, so the code wiring the cells is the same in both forms.
    ``key`` must identify everything ``factory`` depends on (two calls with equal keys share one module).
    """
    if not hierarchical:
        cells = []
        for name in names:
            cell = factory()
            m.submodules[name] = cell
            cells.append(cell)
        return cells
    library = _LIBRARY.get()
    if library is None:
        raise RuntimeError("a hierarchical design is written by hdl.hierarchy.convert, which writes its cells' "
                           "modules too; simulate or convert it with hierarchical=False instead")
    definition = library.define(kind, key, factory)
    cells = []
    for name in names:
        instance, ports = definition.instance(name)
        m.submodules[name] = instance
        cells.append(ports)
    return cells


def convert_rtlil(design, *, name: str, emit_src: bool = False) -> str:
    """RTLIL of ``design`` (top module ``name``) followed by every module its hierarchical cells need."""
    from amaranth.back import rtlil

    library = _Library(name, emit_src=emit_src)
    token = _LIBRARY.set(library)
    try:
        texts = [rtlil.convert(design, name=name, emit_src=emit_src)]
    finally:
        _LIBRARY.reset(token)
    return "\n".join(texts + [definition.rtlil for definition in library.definitions])


def convert(design, *, name: str, emit_src: bool = False) -> str:
    """Verilog of ``design`` (top module ``name``) followed by every module its hierarchical cells need.

    Every module is converted to RTLIL by Amaranth (:func:`convert_rtlil`) and the lot goes through one
    Yosys run, the ``proc``/``write_verilog`` script of :func:`amaranth.back.verilog.convert` (whose text a
    design without hierarchical cells gets exactly). ``emit_src`` is off by default so the text does not
    depend on where the sources are.
    """
    from amaranth.back import verilog

    return verilog._convert_rtlil_text(convert_rtlil(design, name=name, emit_src=emit_src))


def module_names(text: str) -> list[str]:
    """The modules defined in Verilog ``text`` (escaped names without their backslash)."""
    return [found.group(1) for found in re.finditer(r"^module\s+\\?([^\s(]+)", text, re.MULTILINE)]
