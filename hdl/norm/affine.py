"""Affine + ReLU on read: the BN/GN "sub-BN2" unit in the feeder path (BN fission-fusion of Jung et al.,
"Restructuring Batch Normalization to Accelerate CNN Training", arXiv 1807.01702: normalise + ReLU fused into
the next convolution's input read).

Whenever the next layer's feeder reads x, this unit returns ``z = max(0, requantize(A*x + C))`` per lane
with per-(set, lane) constants (A, C) from the scalar unit, exactly as
:meth:`wavecore.golden.numerics.NormArithmetic.affine_relu` defines it. Padding taps are zero *after* the affine
unit, i.e. padding is zero in z-space, not in x-space: the feeder marks them with ``pad`` and they come out
as 0 whatever x is.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.norm.common import (
    affine_coefficient_layout,
    check_unit,
    coefficient_pipeline,
    coefficient_port,
    index_shape,
    requantize_value,
)

__all__ = ["NormAffine"]


class NormAffine(wiring.Component):
    """``z = relu(requantize(A*x + C))`` on ``lanes`` elements per beat, padding inserted after.

    Parameters
    ----------
    arithmetic : wavecore.golden.numerics.NormArithmetic
        Formats: x and z are ``arithmetic.activation``, A is ``coefficient``, C is ``bias``; rounding and
        the shift ``scalar_frac`` come from it too.
    lanes : int
        Elements per beat (1 to 64) = the array's operand vector length.
    sets : int
        Coefficient sets per lane (1 to 4096): channel blocks for BN, (sample, channel block) for GN.

    Attributes
    ----------
    coefficients : In(stream.Signature(StructLayout({"set", "lane", "value": {"a", "c"}})))
        Loads A and C of one (set, lane); always ready; takes effect for beats entering one cycle later.
    input : In(stream.Signature(StructLayout({"set", "pad": lanes, "data": ArrayLayout(activation, lanes)})))
        x values of one set; lane ``i`` of ``pad`` set means "padding tap": output 0.
    output : Out(stream.Signature(ArrayLayout(activation, lanes)))
        z values, 3 cycles after the input under no backpressure; one beat per cycle.
    """

    def __init__(self, *, arithmetic, lanes: int, sets: int):
        self.arithmetic, self.lanes, self.sets = check_unit(arithmetic, lanes, sets, 4096)
        activation = signed(arithmetic.activation.width)
        self.coefficient_layout = affine_coefficient_layout(arithmetic)
        self.input_layout = data.StructLayout(
            {"set": index_shape(sets), "pad": lanes, "data": data.ArrayLayout(activation, lanes)}
        )
        super().__init__(
            {
                "coefficients": coefficient_port(lanes=lanes, sets=sets, layout=self.coefficient_layout),
                "input": In(stream.Signature(self.input_layout)),
                "output": Out(stream.Signature(data.ArrayLayout(activation, lanes))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arithmetic = self.arithmetic
        pipeline, coefficients = coefficient_pipeline(m, self, 3, "affine")

        # Stage 1: coefficients read (memory), x and pad registered alongside.
        x = Signal(data.ArrayLayout(signed(arithmetic.activation.width), self.lanes))
        pad = Signal(self.lanes)
        with m.If(pipeline.advance):
            m.d.sync += [x.eq(self.input.payload.data), pad.eq(self.input.payload.pad)]
        # Stage 2: products.
        product_width = arithmetic.coefficient_width + arithmetic.activation.width
        products = [Signal(signed(product_width), name=f"product{lane}") for lane in range(self.lanes)]
        biases = [Signal(signed(arithmetic.bias_width), name=f"bias{lane}") for lane in range(self.lanes)]
        pad_late = Signal(self.lanes)
        with m.If(pipeline.advance):
            m.d.sync += pad_late.eq(pad)
            for lane in range(self.lanes):
                m.d.sync += [
                    products[lane].eq(coefficients[lane].a * x[lane]),
                    biases[lane].eq(coefficients[lane].c),
                ]
        # Stage 3: add, round, saturate, ReLU, padding.
        with m.If(pipeline.advance):
            for lane in range(self.lanes):
                total = Signal(signed(arithmetic.affine_width), name=f"affine{lane}")
                m.d.comb += total.eq(products[lane] + biases[lane])
                y = requantize_value(
                    total, arithmetic.scalar_frac, arithmetic.activation, arithmetic.rounding
                )
                m.d.sync += self.output.payload[lane].eq(Mux(pad_late[lane] | (y < 0), 0, y))
        return m
