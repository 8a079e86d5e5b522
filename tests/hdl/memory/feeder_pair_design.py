"""Glue for the operand-feeder GEMM tests (test_weight_feeder.py, test_position_feeder.py).

Two feeders side by side, one per operand port of the output-stationary array (``hdl/array/systolic.py``: ``a``
carries a column of A with ``last``, ``b`` a row of B), each with its own banks, so one testbench collects
both operand streams of a training GEMM and multiplies them. Not a wavecore block: every port of feeder
``a`` appears as ``a_<port>``, every port of ``b`` as ``b_<port>``.
"""

from amaranth import Module
from amaranth.lib import wiring

from wavecore.verif.runner import build


class FeederPair(wiring.Component):
    """Feeders ``a`` and ``b`` with their ports re-exported under the prefixes ``a_`` and ``b_``."""

    def __init__(self, *, a, b):
        self.a, self.b = a, b
        members = {}
        for prefix, feeder in (("a", a), ("b", b)):
            for name, member in feeder.signature.members.items():
                members[f"{prefix}_{name}"] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.a, m.submodules.b = self.a, self.b
        for prefix, feeder in (("a", self.a), ("b", self.b)):
            for name, member in feeder.signature.members.items():
                outer, inner = getattr(self, f"{prefix}_{name}"), getattr(feeder, name)
                if member.is_port:
                    if member.flow == wiring.Out:
                        m.d.comb += outer.eq(inner)
                    else:
                        m.d.comb += inner.eq(outer)
                elif member.dimensions:
                    for index in range(member.dimensions[0]):
                        wiring.connect(m, wiring.flipped(outer[index]), inner[index])
                else:
                    wiring.connect(m, wiring.flipped(outer), inner)
        return m


def run_feeder_pair(simulator, *, a, b, settings, toplevel, testcase, params):
    """Build ``FeederPair(a=a(**settings), b=b(**settings))`` and run ``testcase`` of tb_weight_feeder.py
    with the feeders' settings as ``params["a"]`` and ``params["b"]`` beside ``params``."""
    feeders = {"a": settings, "b": settings}
    design = FeederPair(a=a(**settings), b=b(**settings))
    build(design, toplevel=toplevel, simulator=simulator).run(
        "tb_weight_feeder", testcase=testcase, params={**feeders, **params}
    )
