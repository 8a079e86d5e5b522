"""A line of identical cells, built as a binary tree of half lines so its Verilog stays small.

A systolic array is a line of rows, a row a line of PEs, a delay line a line of registers. Writing such a
line of ``count`` cells as one module with ``count`` instances still puts ``count`` times the cell's ports
into that module (for a 128x128 array, 128 rows of 5,000-bit buses: about 2 million nets for Amaranth to
build, a minute of conversion). :class:`Chain` instead holds two half chains (or single cells), so each of
its modules wires just two children: a chain of ``count`` cells is at most ``2 * ceil(log2(count))``
distinct modules (the halves of a level differ by at most one cell), each wiring ``O(count)`` lane bits
plus the cell's through ports once.

How a cell's ports are wired is given by role, by name:

``forward``: pairs ``(in, out)``; cell ``i + 1``'s ``in`` is cell ``i``'s ``out`` (``a`` travelling east).
    The chain has ``In(in)`` into cell 0 and ``Out(out)`` from the last cell.
``backward``: pairs ``(in, out)``; cell ``i``'s ``in`` is cell ``i + 1``'s ``out`` (a shadow weight
    travelling west). The chain has ``In(in)`` into the last cell and, unless ``out`` is also a lane,
    ``Out(out)`` from cell 0.
``lanes``: one per cell: the chain's port of that name is an ``ArrayLayout(shape, count)`` whose element
    ``i`` is cell ``i``'s port (either direction).
``broadcast``: inputs every cell shares (the clock enable).
``last``: outputs taken from the last cell only (the cell that finishes last).

Every input of the cell has exactly one role (checked at construction); outputs without a role are left
unconnected. Timing: none added; a chain is wires only, so cell ``i`` sees exactly what it would in a flat
line of cells.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from amaranth import Module, Shape, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.hierarchy import add_cells

__all__ = ["Chain", "chain_cells"]


class Chain(wiring.Component):
    """``count`` cells from ``cell()`` wired in a line by the roles above.

    Parameters
    ----------
    cell : callable
        Builds one cell component (plain ports only); called for every cell in the flat form and once per
        design in the hierarchical form.
    count : int
        Cells in the line, at least 1.
    forward, backward : sequence of (str, str)
        ``(in, out)`` port pairs of the cell.
    lanes, broadcast, last : sequence of str
        Port names of the cell.
    kind : str
        Module name stem of the cell (``pe``); half chains are ``<kind>_x<count>`` (see
        :mod:`hdl.hierarchy` for the full names).
    key : hashable
        Everything ``cell`` depends on (two cells with equal ``kind`` and ``key`` share one module).
    hierarchical : bool
        Children are instances of modules written once (:func:`hdl.hierarchy.add_cells`).

    Attributes
    ----------
    The ports named by the roles, as described in the module docstring.
    """

    def __init__(self, *, cell: Callable, count: int, forward: Sequence = (), backward: Sequence = (),
                 lanes: Sequence[str] = (), broadcast: Sequence[str] = (), last: Sequence[str] = (),
                 kind: str, key: Hashable, hierarchical: bool = False):
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a positive integer, not {count!r}")
        self._cell, self.count, self.kind, self.key = cell, count, kind, key
        self.hierarchical = hierarchical
        self.forward, self.backward = tuple(map(tuple, forward)), tuple(map(tuple, backward))
        self.lanes, self.broadcast, self.last = tuple(lanes), tuple(broadcast), tuple(last)
        prototype = cell()
        prototype._MustUse__silence = True  # built only for its signature
        cell_members = prototype.signature.members
        inputs = [name for name, member in cell_members.items() if member.flow == In]
        roled = ([pair[0] for pair in self.forward + self.backward] + list(self.broadcast)
                 + [name for name in self.lanes if cell_members[name].flow == In])
        for name in inputs:
            if roled.count(name) != 1:
                raise ValueError(f"input {name!r} of the cell needs exactly one role, has {roled.count(name)}")

        def shape(name):
            return cell_members[name].shape

        self._lane_widths = {name: Shape.cast(shape(name)).width for name in self.lanes}
        members = {}
        for name in self.broadcast:
            members[name] = In(shape(name))
        for name in self.lanes:
            members[name] = cell_members[name].flow(data.ArrayLayout(shape(name), count))
        for in_name, out_name in self.forward:
            members[in_name] = In(shape(in_name))
            members[out_name] = Out(shape(out_name))
        for in_name, out_name in self.backward:
            members[in_name] = In(shape(in_name))
            if out_name not in self.lanes:
                members[out_name] = Out(shape(out_name))
        for name in self.last:
            members[name] = Out(shape(name))
        super().__init__(members)

    def _child(self, count: int):
        """``(factory, kind, key)`` of a child of ``count`` cells (see :func:`chain_cells`)."""
        roles = {"forward": self.forward, "backward": self.backward, "lanes": self.lanes,
                 "broadcast": self.broadcast, "last": self.last}
        return chain_cells(self._cell, count=count, kind=self.kind, key=self.key, hierarchical=self.hierarchical,
                           **roles)

    def elaborate(self, platform):
        m = Module()
        sizes = [1] if self.count == 1 else [self.count // 2, self.count - self.count // 2]
        children = []
        for index, size in enumerate(sizes):
            factory, kind, key = self._child(size)
            children.append(add_cells(m, [f"part_{index}"], factory, kind=kind, key=key,
                                      hierarchical=self.hierarchical)[0])

        def first_of(child, size, name):
            """A child's cell 0 output ``name`` (its lane 0 when ``name`` is a lane of a chain)."""
            port = getattr(child, name)
            return port[0] if size > 1 and name in self.lanes else port

        for name in self.broadcast:
            m.d.comb += [getattr(child, name).eq(getattr(self, name)) for child in children]
        for name in self.lanes:
            whole = Value.cast(getattr(self, name))
            width = self._lane_widths[name]
            offset = 0
            for child, size in zip(children, sizes):
                part = whole[offset * width:(offset + size) * width]
                if self.signature.members[name].flow == In:
                    m.d.comb += getattr(child, name).eq(part)
                else:
                    m.d.comb += part.eq(Value.cast(getattr(child, name)))
                offset += size
        for in_name, out_name in self.forward:
            m.d.comb += getattr(children[0], in_name).eq(getattr(self, in_name))
            for west, east in zip(children, children[1:]):
                m.d.comb += getattr(east, in_name).eq(getattr(west, out_name))
            m.d.comb += getattr(self, out_name).eq(getattr(children[-1], out_name))
        for in_name, out_name in self.backward:
            m.d.comb += getattr(children[-1], in_name).eq(getattr(self, in_name))
            for west, east, east_size in zip(children, children[1:], sizes[1:]):
                m.d.comb += getattr(west, in_name).eq(first_of(east, east_size, out_name))
            if out_name not in self.lanes:
                m.d.comb += getattr(self, out_name).eq(getattr(children[0], out_name))
        for name in self.last:
            m.d.comb += getattr(self, name).eq(getattr(children[-1], name))
        return m


def chain_cells(cell: Callable, *, count: int, kind: str, key: Hashable, hierarchical: bool, **roles):
    """``(factory, kind, key)`` for :func:`hdl.hierarchy.add_cells` placing ``count`` cells in a line: the cell
    itself for one, else a :class:`Chain` (``<kind>_x<count>``). Chains of one cell kind and count share one
    module wherever they appear (a delay line of the same length in two skews)."""
    if count == 1:
        return cell, kind, key
    frozen = {name: tuple(map(tuple, value)) if name in ("forward", "backward") else tuple(value)
              for name, value in sorted(roles.items())}

    def factory():
        return Chain(cell=cell, count=count, kind=kind, key=key, hierarchical=hierarchical, **frozen)

    return factory, f"{kind}_x{count}", (key, count, tuple(frozen.items()))
