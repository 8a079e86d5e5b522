"""One row of the systolic array: ``cols`` processing elements chained east (issue 14; ``docs/hardware.md``).

:class:`hdl.systolic.SystolicArray` is a column of these rows, so its hierarchical Verilog is three modules
(array, row, PE) whatever the size. Within a row the ``a`` operand and its tags hop east from PE to PE;
everything that travels north to south (``b`` and the drain chain for output-stationary; partial sums and
the shadow weights, which travel south to north, for weight-stationary) is a row-wide port whose element
``j`` belongs to PE ``j``. The PE's ports and timing are documented in :class:`hdl.pe.ProcessingElement`;
a row adds no logic of its own, only wires.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.hierarchy import add_cells
from hdl.multiplier import RegisteredMultiplier
from hdl.pe import ProcessingElement, accumulator_shape, check_arithmetic, check_dataflow, operand_shape

__all__ = ["SystolicRow"]


class SystolicRow(wiring.Component):
    """``cols`` :class:`hdl.pe.ProcessingElement` cells, PE ``j`` feeding PE ``j + 1`` to its east.

    Parameters
    ----------
    cols : int
        PEs in the row (checked by the array).
    arithmetic, dataflow, multiplier :
        As for :class:`hdl.pe.ProcessingElement`.
    hierarchical : bool
        The PEs are instances of one PE module (written by :func:`hdl.hierarchy.convert`) instead of
        Amaranth submodules (see :mod:`hdl.hierarchy`).

    Attributes
    ----------
    advance : In(1)
        Every PE's clock enable.
    a_in, a_valid_in : In(operand), In(1)
        Into PE 0 (the west edge); PE ``j`` passes them to PE ``j + 1``.
    a_last_in : In(1)
        *Output-stationary.* The ``last`` tag, into PE 0.
    b_in, b_out : In/Out(ArrayLayout(operand, cols))
        *Output-stationary.* Element ``j``: PE ``j``'s ``b_in`` / ``b_out``.
    drain_shift : In(1)
        *Output-stationary.* Every PE's ``drain_shift`` (the drain moves whole rows).
    result_in, result : In/Out(ArrayLayout(accumulator, cols))
        *Output-stationary.* Element ``j``: PE ``j``'s ``result_in`` / ``result``.
    capture : Out(1)
        *Output-stationary.* PE ``cols - 1``'s ``capture`` (the last PE of the row to finish a tile).
    a_switch_in : In(1)
        *Weight-stationary.* The ``switch`` tag, into PE 0.
    psum_in, psum_out : In/Out(ArrayLayout(accumulator, cols))
        *Weight-stationary.* Element ``j``: PE ``j``'s ``psum_in`` / ``psum_out``.
    psum_valid_out, psum_valid_next : Out(1)
        *Weight-stationary.* PE ``cols - 1``'s (the last PE of the row to finish a beat).
    weight_load, weight_transpose : In(1)
        *Weight-stationary.* Every PE's.
    weight_from_below : In(ArrayLayout(operand, cols))
        *Weight-stationary.* Element ``j``: PE ``j``'s ``weight_from_below``.
    weight_east : In(operand)
        *Weight-stationary.* PE ``cols - 1``'s ``weight_from_right`` (PE ``j < cols - 1`` takes PE
        ``j + 1``'s shadow weight).
    weight_shadow : Out(ArrayLayout(operand, cols))
        *Weight-stationary.* Element ``j``: PE ``j``'s ``weight_shadow``.
    """

    def __init__(self, *, cols, arithmetic, dataflow, multiplier=RegisteredMultiplier, hierarchical=False):
        self.cols = cols
        self.arithmetic = check_arithmetic(arithmetic)
        self.dataflow = check_dataflow(dataflow)
        self._multiplier = multiplier
        self.hierarchical = hierarchical
        operand = operand_shape(arithmetic)
        accumulator = accumulator_shape(arithmetic)
        operands = data.ArrayLayout(operand, cols)
        accumulators = data.ArrayLayout(accumulator, cols)
        members = {"advance": In(1), "a_in": In(operand), "a_valid_in": In(1)}
        if dataflow == "output_stationary":
            members.update({
                "a_last_in": In(1), "b_in": In(operands), "b_out": Out(operands), "drain_shift": In(1),
                "result_in": In(accumulators), "result": Out(accumulators), "capture": Out(1),
            })
        else:
            members.update({
                "a_switch_in": In(1), "psum_in": In(accumulators), "psum_out": Out(accumulators),
                "psum_valid_out": Out(1), "psum_valid_next": Out(1),
                "weight_load": In(1), "weight_transpose": In(1),
                "weight_from_below": In(operands), "weight_east": In(operand), "weight_shadow": Out(operands),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cols = self.cols
        arithmetic, dataflow, multiplier = self.arithmetic, self.dataflow, self._multiplier
        pes = add_cells(
            m, [f"pe_{j}" for j in range(cols)],
            lambda: ProcessingElement(arithmetic=arithmetic, dataflow=dataflow, multiplier=multiplier),
            kind="pe", key=(arithmetic, dataflow, multiplier), hierarchical=self.hierarchical)

        tags = ("a_valid", "a_last") if dataflow == "output_stationary" else ("a_valid", "a_switch")
        m.d.comb += [pes[0].a_in.eq(self.a_in)] + [getattr(pes[0], f"{tag}_in").eq(getattr(self, f"{tag}_in"))
                                                   for tag in tags]
        for west, east in zip(pes, pes[1:]):
            m.d.comb += [east.a_in.eq(west.a_out)] + [getattr(east, f"{tag}_in").eq(getattr(west, f"{tag}_out"))
                                                      for tag in tags]
        for pe in pes:
            m.d.comb += pe.advance.eq(self.advance)

        if dataflow == "output_stationary":
            for j, pe in enumerate(pes):
                m.d.comb += [
                    pe.b_in.eq(self.b_in[j]), self.b_out[j].eq(pe.b_out),
                    pe.result_in.eq(self.result_in[j]), self.result[j].eq(pe.result),
                    pe.drain_shift.eq(self.drain_shift),
                ]
            m.d.comb += self.capture.eq(pes[-1].capture)
        else:
            for j, pe in enumerate(pes):
                m.d.comb += [
                    pe.psum_in.eq(self.psum_in[j]), self.psum_out[j].eq(pe.psum_out),
                    pe.weight_load.eq(self.weight_load), pe.weight_transpose.eq(self.weight_transpose),
                    pe.weight_from_below.eq(self.weight_from_below[j]),
                    pe.weight_from_right.eq(pes[j + 1].weight_shadow if j + 1 < cols else self.weight_east),
                    self.weight_shadow[j].eq(pe.weight_shadow),
                ]
            m.d.comb += [self.psum_valid_out.eq(pes[-1].psum_valid_out),
                         self.psum_valid_next.eq(pes[-1].psum_valid_next)]
        return m
