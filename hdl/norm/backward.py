"""Backward reductions on the backward-data drain (the backward half of BN fission-fusion, Jung et al., arXiv
1807.01702; the split into ``r1``/``r2`` and a dx pass is derived in :mod:`wavecore.golden.numerics`).

While the next layer's backward-data GEMM produces dz, x is streamed alongside; this unit recomputes the
ReLU mask from x and the forward constants (A, C) -- no mask is ever stored -- emits ``dy = dz * mask``
(the tensor written back) and accumulates per (set, lane) ``r1 = sum dy`` and ``r2 = sum dy*x``, exactly
:meth:`wavecore.golden.numerics.NormArithmetic.backward_reductions`. The accumulators are in one memory per lane
(:class:`wavecore.hdl.norm.common.AccumulatorStore`: read-modify-write with forwarding at one beat per cycle, a valid
bit per set for a one-cycle clear), as in :class:`wavecore.hdl.norm.stats.NormStatistics`.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.norm.common import (
    AccumulatorStore,
    affine_coefficient_layout,
    check_unit,
    coefficient_pipeline,
    coefficient_port,
    gradient_x_layout,
    reduction_ports,
    requantize_value,
)

__all__ = ["NormBackwardReduce"]


class NormBackwardReduce(wiring.Component):
    """dy = dz * [requantize(A*x + C) > 0]; r1 += dy; r2 += dy*x per (set, lane).

    Parameters
    ----------
    arithmetic : wavecore.golden.numerics.NormArithmetic
    lanes : int
        Elements per beat (1 to 64).
    sets : int
        Coefficient and accumulator sets (1 to 256).

    Attributes
    ----------
    coefficients : In(stream.Signature(StructLayout({"set", "lane", "value": {"a", "c"}})))
        The forward constants (same as :class:`wavecore.hdl.norm.affine.NormAffine`'s); always ready.
    input : In(stream.Signature(StructLayout({"set", "dz": ArrayLayout(gradient, lanes),
    "x": ArrayLayout(activation, lanes)})))
        dz and the x it belongs to, element-aligned (same layout and tiling).
    output : Out(stream.Signature(ArrayLayout(gradient, lanes)))
        dy, 3 cycles after the input under no backpressure.
    clear : In(1)
        Zeroes r1 and r2 at the next edge (a beat leaving in the same cycle is not counted), in one cycle
        whatever ``sets`` is.
    read_set : In(stream.Signature(index_shape(sets)))
    sums : Out(stream.Signature(StructLayout({"r1": ArrayLayout(grad_sum, lanes), "r2": ArrayLayout(
    grad_product_sum, lanes)})))
        Per-lane sums of the requested set, one cycle later. A beat is counted when its dy leaves; a read
        includes every beat counted before its request's cycle (since the last clear before it).
    """

    def __init__(self, *, arithmetic, lanes: int, sets: int):
        self.arithmetic, self.lanes, self.sets = check_unit(arithmetic, lanes, sets, 256)
        gradient = signed(arithmetic.gradient.width)
        self.coefficient_layout = affine_coefficient_layout(arithmetic)
        self.input_layout = gradient_x_layout(arithmetic, lanes=lanes, sets=sets, gradient="dz")
        self.accumulator_layout = data.StructLayout(
            {
                "r1": signed(arithmetic.grad_sum_format.width),
                "r2": signed(arithmetic.grad_product_sum_format.width),
            }
        )
        self.sums_layout = data.StructLayout(
            {
                "r1": data.ArrayLayout(signed(arithmetic.grad_sum_format.width), lanes),
                "r2": data.ArrayLayout(signed(arithmetic.grad_product_sum_format.width), lanes),
            }
        )
        super().__init__(
            {
                "coefficients": coefficient_port(lanes=lanes, sets=sets, layout=self.coefficient_layout),
                "input": In(stream.Signature(self.input_layout)),
                "output": Out(stream.Signature(data.ArrayLayout(gradient, lanes))),
                **reduction_ports(sets=sets, sums_layout=self.sums_layout),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arithmetic = self.arithmetic
        pipeline, coefficients = coefficient_pipeline(m, self, 3, "backward")

        beat = [Signal(self.input_layout, name=f"beat{stage}") for stage in range(3)]
        products = [
            Signal(signed(arithmetic.coefficient_width + arithmetic.activation.width), name=f"product{lane}")
            for lane in range(self.lanes)
        ]
        biases = [Signal(signed(arithmetic.bias_width), name=f"bias{lane}") for lane in range(self.lanes)]
        with m.If(pipeline.advance):
            m.d.sync += [beat[0].eq(self.input.payload), beat[1].eq(beat[0])]
            for lane in range(self.lanes):
                m.d.sync += [
                    products[lane].eq(coefficients[lane].a * beat[0].x[lane]),
                    biases[lane].eq(coefficients[lane].c),
                ]
            for lane in range(self.lanes):
                y = requantize_value(
                    products[lane] + biases[lane],
                    arithmetic.scalar_frac,
                    arithmetic.activation,
                    arithmetic.rounding,
                )
                m.d.sync += self.output.payload[lane].eq(Mux(y > 0, beat[1].dz[lane], 0))
            m.d.sync += [beat[2].set.eq(beat[1].set), beat[2].x.eq(beat[1].x)]

        # Accumulate the beat that leaves (dy and beat[2].x are registers, so is the product after it).
        store = AccumulatorStore(lanes=self.lanes, sets=self.sets, layout=self.accumulator_layout, name="reduce")
        increments = [
            {"r1": self.output.payload[lane], "r2": self.output.payload[lane] * beat[2].x[lane]}
            for lane in range(self.lanes)
        ]
        accumulators = store.elaborate(
            m,
            count=self.output.valid & self.output.ready,
            set_index=beat[2].set,
            increments=increments,
            clear=self.clear,
            read_stream=self.read_set,
            sums_stream=self.sums,
        )
        for lane in range(self.lanes):
            m.d.comb += [
                self.sums.payload.r1[lane].eq(accumulators[lane].r1),
                self.sums.payload.r2[lane].eq(accumulators[lane].r2),
            ]
        return m
