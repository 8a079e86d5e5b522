"""Skew and delay lines for the systolic array's edges, built from one register cell.

Row ``i`` of a systolic array's input is delayed ``i`` cycles (and its output deskewed the other way):
``rows * (rows - 1) / 2`` registers of ``width`` bits. :class:`Skew` builds that triangle recursively,
lanes ``[0, h)`` as a skew of ``h`` lanes and lanes ``[h, n)`` as a skew of ``n - h`` lanes behind a delay
line of ``h`` stages, every stage a :class:`DelayStage`; in the hierarchical form (:mod:`hdl.hierarchy`)
each size is one module, so the Verilog and Amaranth's work grow as ``n log n`` bits instead of ``n^2``.
The flip-flops are the same as one delay line per lane.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.array.chain import chain_cells
from wavecore.hdl.hierarchy import add_cells

__all__ = ["DelayStage", "Skew", "skew_cell"]


def _check_positive(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, not {value!r}")
    return value


class DelayStage(wiring.Component):
    """One register: ``data_out`` is ``data_in`` one edge where ``advance`` is high later.

    Parameters
    ----------
    width : int
        Bits.
    reset_less : bool
        Data registers are reset-less (their value only matters under a valid tag); tags reset to 0.

    Attributes
    ----------
    advance : In(1)
        Clock enable.
    data_in : In(width)
    data_out : Out(width)
    """

    def __init__(self, *, width, reset_less=True):
        self.width = _check_positive("width", width)
        self.reset_less = bool(reset_less)
        super().__init__({"advance": In(1), "data_in": In(width), "data_out": Out(width)})

    def elaborate(self, platform):
        m = Module()
        delayed = Signal(self.width, name="delayed", reset_less=self.reset_less)
        with m.If(self.advance):
            m.d.sync += delayed.eq(self.data_in)
        m.d.comb += self.data_out.eq(delayed)
        return m


def _delay_line(m, name: str, *, width: int, stages: int, reset_less: bool, hierarchical: bool):
    """A line of ``stages`` :class:`DelayStage` of ``width`` bits added to ``m`` (its ports returned)."""
    factory, kind, key = chain_cells(
        lambda: DelayStage(width=width, reset_less=reset_less), count=stages,
        kind=f"stage{width}" + ("" if reset_less else "r"), key=(width, reset_less), hierarchical=hierarchical,
        forward=[("data_in", "data_out")], broadcast=["advance"])
    return add_cells(m, [name], factory, kind=kind, key=key, hierarchical=hierarchical)[0]


class Skew(wiring.Component):
    """Lane ``i`` of ``data_in`` appears on ``data_out`` ``offset + i`` enabled edges later.

    Parameters
    ----------
    lanes, width : int
        Lanes and bits per lane (``data_in`` and ``data_out`` are ``lanes * width`` bits, lane ``i`` at
        bits ``[i * width, (i + 1) * width)``).
    offset : int
        Delay of lane 0 (default 0).
    reset_less : bool
        As for :class:`DelayStage`.
    hierarchical : bool
        Sub-skews and delay lines are instances of modules written once (:mod:`hdl.hierarchy`).

    Attributes
    ----------
    advance : In(1)
        Clock enable of every register.
    data_in : In(lanes * width)
    data_out : Out(lanes * width)
    """

    def __init__(self, *, lanes, width, offset=0, reset_less=True, hierarchical=False):
        self.lanes = _check_positive("lanes", lanes)
        self.width = _check_positive("width", width)
        self.offset = _check_positive("offset", offset, 0)
        self.reset_less = bool(reset_less)
        self.hierarchical = hierarchical
        super().__init__({"advance": In(1), "data_in": In(lanes * width), "data_out": Out(lanes * width)})

    def elaborate(self, platform):
        m = Module()
        lanes, width = self.lanes, self.width
        if self.offset:
            delay = _delay_line(m, "delay", width=lanes * width, stages=self.offset, reset_less=self.reset_less,
                                hierarchical=self.hierarchical)
            m.d.comb += [delay.advance.eq(self.advance), delay.data_in.eq(self.data_in)]
            source = delay.data_out
        else:
            source = self.data_in
        if lanes == 1:
            m.d.comb += self.data_out.eq(source)
            return m
        # Lanes [0, half) need delays 0..half-1, lanes [half, lanes) need half more than that.
        half = lanes // 2
        for name, first, count, offset in (("low", 0, half, 0), ("high", half, lanes - half, half)):
            if count == 1 and offset == 0:
                m.d.comb += self.data_out[first * width:(first + count) * width].eq(
                    source[first * width:(first + count) * width])
                continue
            cell = skew_cell(m, name, lanes=count, width=width, offset=offset, reset_less=self.reset_less,
                             hierarchical=self.hierarchical)
            m.d.comb += [
                cell.advance.eq(self.advance),
                cell.data_in.eq(source[first * width:(first + count) * width]),
                self.data_out[first * width:(first + count) * width].eq(cell.data_out),
            ]
        return m


def skew_cell(m, name: str, *, lanes: int, width: int, offset: int = 0, reset_less: bool = True,
              hierarchical: bool):
    """Add a :class:`Skew` called ``name`` to ``m`` (an instance of a module named ``skew<lanes>x<width>``,
    ``d<offset>`` and ``r`` (with reset) appended, in the hierarchical form) and return its ports."""
    kind = f"skew{lanes}x{width}" + (f"d{offset}" if offset else "") + ("" if reset_less else "r")
    return add_cells(
        m, [name],
        lambda: Skew(lanes=lanes, width=width, offset=offset, reset_less=reset_less, hierarchical=hierarchical),
        kind=kind, key=(lanes, width, offset, reset_less), hierarchical=hierarchical)[0]
