"""The two-stream dx unit on the backward read path (BN/GN input gradient as an affine map of dy and x, fused
into the previous layer's backward read; derivation in :mod:`wavecore.golden.numerics`).

CONV1's backward reads dy and x element-aligned; this unit returns
``dx = requantize(K1*dy + K2*x + K3, scalar_frac, gradient)`` per lane with per-(set, lane) constants from
the scalar unit, exactly :meth:`wavecore.golden.numerics.NormArithmetic.dx`.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.norm.common import (
    check_unit,
    coefficient_pipeline,
    coefficient_port,
    gradient_x_layout,
    requantize_value,
)

__all__ = ["NormDx"]


class NormDx(wiring.Component):
    """dx = requantize(K1*dy + K2*x + K3) on ``lanes`` aligned (dy, x) pairs per beat.

    Parameters
    ----------
    arithmetic : wavecore.golden.numerics.NormArithmetic
        K1, K2 are ``coefficient``, K3 is ``bias``; dy, dx ``gradient``; x ``activation``.
    lanes : int
        Elements per beat (1 to 64).
    sets : int
        Coefficient sets per lane (1 to 4096).

    Attributes
    ----------
    coefficients : In(stream.Signature(StructLayout({"set", "lane", "value": {"k1", "k2", "k3"}})))
        Always ready; takes effect for beats entering one cycle later.
    input : In(stream.Signature(StructLayout({"set", "dy": ArrayLayout(gradient, lanes),
    "x": ArrayLayout(activation, lanes)})))
    output : Out(stream.Signature(ArrayLayout(gradient, lanes)))
        dx, 3 cycles after the input under no backpressure; one beat per cycle.
    """

    def __init__(self, *, arithmetic, lanes: int, sets: int):
        self.arithmetic, self.lanes, self.sets = check_unit(arithmetic, lanes, sets, 4096)
        gradient = signed(arithmetic.gradient.width)
        self.coefficient_layout = data.StructLayout(
            {
                "k1": signed(arithmetic.coefficient_width),
                "k2": signed(arithmetic.coefficient_width),
                "k3": signed(arithmetic.bias_width),
            }
        )
        self.input_layout = gradient_x_layout(arithmetic, lanes=lanes, sets=sets, gradient="dy")
        super().__init__(
            {
                "coefficients": coefficient_port(lanes=lanes, sets=sets, layout=self.coefficient_layout),
                "input": In(stream.Signature(self.input_layout)),
                "output": Out(stream.Signature(data.ArrayLayout(gradient, lanes))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arithmetic = self.arithmetic
        pipeline, coefficients = coefficient_pipeline(m, self, 3, "dx")

        beat = Signal(self.input_layout)
        width = arithmetic.coefficient_width + max(arithmetic.gradient.width, arithmetic.activation.width)
        dy_terms = [Signal(signed(width), name=f"dy_term{lane}") for lane in range(self.lanes)]
        x_terms = [Signal(signed(width), name=f"x_term{lane}") for lane in range(self.lanes)]
        offsets = [Signal(signed(arithmetic.bias_width), name=f"offset{lane}") for lane in range(self.lanes)]
        with m.If(pipeline.advance):
            m.d.sync += beat.eq(self.input.payload)
            for lane in range(self.lanes):
                m.d.sync += [
                    dy_terms[lane].eq(coefficients[lane].k1 * beat.dy[lane]),
                    x_terms[lane].eq(coefficients[lane].k2 * beat.x[lane]),
                    offsets[lane].eq(coefficients[lane].k3),
                ]
                total = Signal(signed(arithmetic.dx_width), name=f"dx_total{lane}")
                m.d.comb += total.eq(dy_terms[lane] + x_terms[lane] + offsets[lane])
                m.d.sync += self.output.payload[lane].eq(
                    requantize_value(total, arithmetic.scalar_frac, arithmetic.gradient, arithmetic.rounding)
                )
        return m
