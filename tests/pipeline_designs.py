"""Simulation top for chaining pipeline stages through link models (not a board top)."""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class PipelineChain(wiring.Component):
    """All ``stages`` side by side; stage ``k``'s links are the top-level streams ``s{k}_in`` / ``s{k}_out``.

    The testbench is the wire between chips: it moves lane words from ``s{k}_out`` to ``s{k+1}_in``
    (with random stalls), so every stage-boundary tensor is visible to it.
    """

    def __init__(self, stages):
        self.stages = list(stages)
        members = {}
        for index, stage in enumerate(self.stages):
            members[f"s{index}_in"] = In(stream.Signature(stage.lane_width))
            members[f"s{index}_out"] = Out(stream.Signature(stage.lane_width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for index, stage in enumerate(self.stages):
            m.submodules[f"stage{index}"] = stage
            wiring.connect(m, wiring.flipped(getattr(self, f"s{index}_in")), stage.link_in)
            wiring.connect(m, stage.link_out, wiring.flipped(getattr(self, f"s{index}_out")))
        return m
