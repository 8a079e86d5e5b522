"""Glue for the backward integration test (tests/test_integration_conv.py): one BN/GN backward step.

    (dz, x) --> NormBackwardReduce (ReLU mask recomputed from x and the forward (A, C); dy out; r1, r2)
    r1, r2 --> NormScalar (backward: K2, K3 per statistic set; dgamma per channel)
    (dy, x) --> NormDx (dx = requantize(K1*dy + K2*x + K3), K1 = A)

Not a wavecore block: it puts the three units behind one top level so one testbench runs the step in
order through their real interfaces. The dy stream leaves the chip (in the accelerator it is written to
the scratchpad) and comes back beside x for the dx pass; the testbench moves it unchanged.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from hdl.norm_backward import NormBackwardReduce
from hdl.norm_dx import NormDx
from hdl.norm_scalar import NormScalar

__all__ = ["NormBackwardChain"]


class NormBackwardChain(wiring.Component):
    """NormBackwardReduce, NormScalar and NormDx with their ports exported under prefixes.

    Parameters
    ----------
    arithmetic : golden.numerics.NormArithmetic
    lanes : int
        Elements per beat of the two stream units.
    sets : int
        Reduction and coefficient sets: BN one per channel; GN one per (sample, channel) (the scalar unit
        combines a group's channels through W1, W2).
    param_width : int
        Width of gamma.

    Attributes
    ----------
    reduce_coefficients, reduce_input, reduce_output, reduce_clear, reduce_read_set, reduce_sums :
        :class:`hdl.norm_backward.NormBackwardReduce`'s ports.
    scalar_command, scalar_result : :class:`hdl.norm_scalar.NormScalar`'s.
    dx_coefficients, dx_input, dx_output : :class:`hdl.norm_dx.NormDx`'s.
    """

    def __init__(self, *, arithmetic, lanes: int, sets: int, param_width: int = 16):
        self.reduce = NormBackwardReduce(arithmetic=arithmetic, lanes=lanes, sets=sets)
        self.scalar = NormScalar(
            arithmetic=arithmetic,
            param_width=param_width,
            weighted_width=arithmetic.grad_product_sum_format.width + param_width + 3,
        )
        self.dx = NormDx(arithmetic=arithmetic, lanes=lanes, sets=sets)
        members = {}
        for prefix, unit in (("reduce", self.reduce), ("scalar", self.scalar), ("dx", self.dx)):
            for name, member in unit.signature.members.items():
                members[f"{prefix}_{name}"] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for prefix, unit in (("reduce", self.reduce), ("scalar", self.scalar), ("dx", self.dx)):
            m.submodules[prefix] = unit
            for name, member in unit.signature.members.items():
                outer = getattr(self, f"{prefix}_{name}")
                inner = getattr(unit, name)
                if member.is_port:
                    if member.flow == In:
                        m.d.comb += inner.eq(outer)
                    else:
                        m.d.comb += outer.eq(inner)
                elif member.flow == In:
                    wiring.connect(m, wiring.flipped(outer), inner)
                else:
                    wiring.connect(m, inner, wiring.flipped(outer))
        return m

