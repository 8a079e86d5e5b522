"""Simulation tops for Occam pipelines: stages chained through link models, STAP replica groups.

:func:`simulate_pipeline` runs the cocotb testbench ``verif/tb_pipeline.py`` (Verilator) on a
:class:`PipelineChain` of all stages of a plan and compares every stage-boundary tensor with
:func:`wavecore.boards.pipeline.golden_boundaries`, bit for bit.
"""

from amaranth import Cat, Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.stream.link import LinkReceiver, LinkTransmitter, link_words, pixel_layout
from wavecore.hdl.stream.stap import StapDispatcher, StapMerger

__all__ = ["PipelineChain", "StapGroup", "simulate_pipeline", "stage_params"]


class PipelineChain(wiring.Component):
    """All ``stages`` side by side; stage ``k``'s links are the top-level streams ``s{k}_in`` / ``s{k}_out``,
    ``error`` the OR of the stages' sticky join errors.

    The testbench is the wire between chips: it moves lane words from ``s{k}_out`` to ``s{k+1}_in``
    (with random stalls), so every stage-boundary tensor is visible to it.
    """

    def __init__(self, stages):
        self.stages = list(stages)
        members = {}
        for index, stage in enumerate(self.stages):
            members[f"s{index}_in"] = In(stream.Signature(stage.lane_width))
            members[f"s{index}_out"] = Out(stream.Signature(stage.lane_width))
        members["error"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for index, stage in enumerate(self.stages):
            m.submodules[f"stage{index}"] = stage
            wiring.connect(m, wiring.flipped(getattr(self, f"s{index}_in")), stage.link_in)
            wiring.connect(m, stage.link_out, wiring.flipped(getattr(self, f"s{index}_out")))
        m.d.comb += self.error.eq(Cat(*(stage.error for stage in self.stages)).any())
        return m


class StapGroup(wiring.Component):
    """``replicas`` copies of one stage behind a STAP dispatcher and merger, with links in between.

    ``link_in`` -> receiver -> dispatcher -> per replica (one-frame queue -> transmitter -> stage ->
    receiver -> one-frame queue) -> merger -> transmitter -> ``link_out``: the chips up- and downstream
    of the replicated stage as one simulation unit. The queues are STAP's asynchronous decoupling
    (depth >= one mini-batch per replica, occam notes 1.2): a line-buffer stage takes its input only as
    fast as it computes and the merger takes frames in order, so without them replica 1 would wait for
    replica 0. Has the ``link_in``/``link_out``/``lane_width`` of a stage, so :class:`PipelineChain`
    takes it as a stage.
    """

    def __init__(self, stage_factory, replicas: int):
        self.replicas = [stage_factory() for _ in range(replicas)]
        first = self.replicas[0]
        self.lane_width = first.lane_width
        self.in_layout = first.in_layout
        self.out_layout = first.out_layout
        super().__init__(
            {
                "link_in": In(stream.Signature(self.lane_width)),
                "link_out": Out(stream.Signature(self.lane_width)),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        lane, count = self.lane_width, len(self.replicas)
        m.submodules.receiver = receiver = LinkReceiver(layout=self.in_layout, lane_width=lane)
        m.submodules.dispatcher = dispatcher = StapDispatcher(layout=self.in_layout, replicas=count)
        m.submodules.merger = merger = StapMerger(layout=self.out_layout, replicas=count)
        m.submodules.transmitter = transmitter = LinkTransmitter(layout=self.out_layout, lane_width=lane)
        wiring.connect(m, wiring.flipped(self.link_in), receiver.i)
        wiring.connect(m, receiver.o, dispatcher.i)
        for index, stage in enumerate(self.replicas):
            m.submodules[f"replica{index}"] = stage
            m.submodules[f"to_replica{index}"] = to_replica = LinkTransmitter(
                layout=self.in_layout, lane_width=lane
            )
            m.submodules[f"from_replica{index}"] = from_replica = LinkReceiver(
                layout=self.out_layout, lane_width=lane
            )
            queue = fifo.SyncFIFOBuffered(width=self.in_layout.size, depth=stage.in_height * stage.in_width)
            m.submodules[f"queue{index}"] = queue
            m.d.comb += [
                queue.w_data.eq(dispatcher.o[index].payload.as_value()),
                queue.w_en.eq(dispatcher.o[index].valid),
                dispatcher.o[index].ready.eq(queue.w_rdy),
                to_replica.i.payload.as_value().eq(queue.r_data),
                to_replica.i.valid.eq(queue.r_rdy),
                queue.r_en.eq(to_replica.i.ready),
            ]
            wiring.connect(m, to_replica.o, stage.link_in)
            wiring.connect(m, stage.link_out, from_replica.i)
            out_queue = fifo.SyncFIFOBuffered(
                width=self.out_layout.size, depth=max(3, stage.out_height * stage.out_width)
            )
            m.submodules[f"out_queue{index}"] = out_queue
            m.d.comb += [
                out_queue.w_data.eq(from_replica.o.payload.as_value()),
                out_queue.w_en.eq(from_replica.o.valid),
                from_replica.o.ready.eq(out_queue.w_rdy),
                merger.i[index].payload.as_value().eq(out_queue.r_data),
                merger.i[index].valid.eq(out_queue.r_rdy),
                out_queue.r_en.eq(merger.i[index].ready),
            ]
        m.d.comb += self.error.eq(Cat(*(stage.error for stage in self.replicas)).any())
        wiring.connect(m, merger.o, transmitter.i)
        wiring.connect(m, transmitter.o, wiring.flipped(self.link_out))
        return m


def stage_params(plan, stages=None) -> list[dict]:
    """What the testbench needs to know about each stage's links."""
    params = []
    for stage in plan.stages if stages is None else stages:
        out_channels, out_height, out_width = stage.out_shape
        params.append(
            {
                "in_words": link_words(pixel_layout(stage.in_shape[0]), plan.lane_width),
                "out_words": link_words(pixel_layout(out_channels), plan.lane_width),
                "out_channels": out_channels,
                "out_pixels": out_height * out_width,
            }
        )
    return params


def simulate_pipeline(
    plan, *, frames: int = 2, seed: int = 0, stall: float = 0.3, simulator: str = "verilator"
):
    """Chain every stage of ``plan`` in RTL simulation, random images, random link stalls.

    Raises :class:`wavecore.verif.runner.SimulationFailed` when any boundary tensor differs from the golden model.
    Returns ``{"frames": N, "cycles": C, "frame_ends": [...]}``: cycles from the first input word to the last
    output word, and the cycle each frame's last word left the last stage (their differences are the
    steady-state cycles per frame, :attr:`wavecore.boards.pipeline.StagePlan.cycles_per_frame` of the slowest stage).
    """
    import json
    import tempfile
    from pathlib import Path

    import numpy as np

    from wavecore.boards.pipeline import golden_boundaries, stage_component
    from wavecore.verif.runner import build

    random = np.random.default_rng(seed)
    images = plan.arithmetic.operand.random(random, (frames, *plan.stages[0].in_shape))
    boundaries = golden_boundaries(plan, images)
    design = build(
        PipelineChain([stage_component(stage, plan) for stage in plan.stages]),
        toplevel="pipeline_chain",
        simulator=simulator,
    )
    with tempfile.TemporaryDirectory(prefix="pipeline_sim_") as directory:
        report = Path(directory) / "cycles.json"
        design.run(
            "wavecore.verif.tb_pipeline",
            testcase="chain_matches_golden_at_every_boundary",
            test_name="pipeline_cli",
            seed=seed,
            params={
                "lane_width": plan.lane_width,
                "stages": stage_params(plan),
                "images": images.tolist(),
                "batches": list(range(frames)),
                "expected": [b.tolist() for b in boundaries],
                "idle": stall,
                "backpressure": stall,
                "timeout_cycles": 400_000 * frames,
                "report": str(report),
            },
        )
        return json.loads(report.read_text())
