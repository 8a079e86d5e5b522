"""Glue for the backward integration test (test_integration_conv.py): one BN/GN backward step.

    (dz, x) --> NormBackwardReduce (ReLU mask recomputed from x and the forward (A, C); dy out; r1, r2)
    r1, r2 --> NormGroupWeighting (reads the sums through the reduction unit's read port: W1, W2 per
               statistic set, and every channel's r1, r2 passed on)
    W1, W2 / r1, r2 --> NormScalar (backward: K2, K3 per statistic set; dgamma per channel)
    (dy, x) --> NormDx (dx = requantize(K1*dy + K2*x + K3), K1 = A)

Not a wavecore block: it puts the four units behind one top level so one testbench runs the step in
order through their real interfaces. The dy stream leaves the chip (in the accelerator it is written to
the scratchpad) and comes back beside x for the dx pass; the testbench moves it unchanged, and moves the
numbers (W1, W2, r1, r2, S1, rstd) into the scalar unit's commands without computing any.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from wavecore.hdl.norm.backward import NormBackwardReduce
from wavecore.hdl.norm.dx import NormDx
from wavecore.hdl.norm.scalar import NormScalar
from wavecore.hdl.norm.weighting import NormGroupWeighting

__all__ = ["NormBackwardChain"]


class NormBackwardChain(wiring.Component):
    """NormBackwardReduce, NormGroupWeighting, NormScalar and NormDx with their ports exported under prefixes.

    Parameters
    ----------
    arithmetic : wavecore.golden.numerics.NormArithmetic
    lanes : int
        Elements per beat of the two stream units.
    sets : int
        Reduction and coefficient sets: BN one per channel; GN one per (sample, channel) (the weighting unit
        combines a group's channels into W1, W2).
    channels : int
        Channels of the layer (the weighting unit's gamma entries).
    param_width : int
        Width of gamma.

    Attributes
    ----------
    reduce_coefficients, reduce_input, reduce_output, reduce_clear :
        :class:`wavecore.hdl.norm.backward.NormBackwardReduce`'s ports (its ``read_set``/``sums`` go to the weighting
        unit).
    weighting_gamma, weighting_command, weighting_channel_sums, weighting_weighted :
        :class:`wavecore.hdl.norm.weighting.NormGroupWeighting`'s (W1, W2 in the scalar unit's ``weighted_width``).
    scalar_command, scalar_result : :class:`wavecore.hdl.norm.scalar.NormScalar`'s.
    dx_coefficients, dx_input, dx_output : :class:`wavecore.hdl.norm.dx.NormDx`'s.
    """

    _INTERNAL = {("reduce", "read_set"), ("reduce", "sums"), ("weighting", "read_set"), ("weighting", "sums")}

    def __init__(self, *, arithmetic, lanes: int, sets: int, channels: int, param_width: int = 16):
        self.reduce = NormBackwardReduce(arithmetic=arithmetic, lanes=lanes, sets=sets)
        self.weighting = NormGroupWeighting(
            arithmetic=arithmetic, lanes=lanes, sets=sets, channels=channels, param_width=param_width
        )
        self.scalar = NormScalar(
            arithmetic=arithmetic, param_width=param_width, weighted_width=self.weighting.weighted_width
        )
        self.dx = NormDx(arithmetic=arithmetic, lanes=lanes, sets=sets)
        members = {}
        for prefix, unit in self._units():
            for name, member in unit.signature.members.items():
                if (prefix, name) not in self._INTERNAL:
                    members[f"{prefix}_{name}"] = member
        super().__init__(members)

    def _units(self):
        return (("reduce", self.reduce), ("weighting", self.weighting), ("scalar", self.scalar), ("dx", self.dx))

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, self.weighting.read_set, self.reduce.read_set)
        wiring.connect(m, self.reduce.sums, self.weighting.sums)
        for prefix, unit in self._units():
            m.submodules[prefix] = unit
            for name, member in unit.signature.members.items():
                if (prefix, name) in self._INTERNAL:
                    continue
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

