"""Occam multi-FPGA pipelines of DAG networks: partition, golden boundaries, the RTL chain on Verilator."""

import json

import numpy as np
import pytest

from wavecore.boards.pipeline import (
    PipelineError,
    golden_activations,
    golden_boundaries,
    load_pipeline_network,
    plan_pipeline,
    stage_component,
    usable_capacity,
)
from wavecore.boards.pipeline_sim import PipelineChain, StapGroup, stage_params
from wavecore.boards.targets import get_target
from wavecore.verif.runner import build
from wavecore.verif.seed import rng

#: Per-chip capacity (bytes) that splits each tiny zoo net into 2-4 stages, and the stages' boundary layers.
ZOO_PIPELINES = {
    "tiny_resnet": (6000, ["input", "res1_relu", "pool", "fc"]),
    "tiny_concat": (1500, ["input", "stem_relu", "dense_concat", "fc"]),
    "tiny_mobilenet": (1500, ["input", "block_add", "fc"]),
}


def _plan(name, chips=None):
    capacity, boundaries = ZOO_PIPELINES[name]
    chips = len(boundaries) - 1 if chips is None else chips
    return plan_pipeline(load_pipeline_network(name), get_target("ulx3s-85f"), chips=chips, capacity_bytes=capacity)


def test_partition_follows_the_occam_dp_for_the_capacity():
    network = load_pipeline_network("tiny_chain")
    target = get_target("ulx3s-85f")
    # whole network fits one ULX3S: one stage, the other chips replicate it (STAP)
    assert len(plan_pipeline(network, target, chips=2).stages) == 1
    plan = plan_pipeline(network, target, chips=3, capacity_bytes=800)
    assert [stage.layer_names for stage in plan.stages] == [
        ("input", "conv1", "relu1"),
        ("conv2", "relu2"),
        ("conv3", "relu3", "conv4"),
    ]
    assert all(stage.footprint_bytes <= 800 for stage in plan.stages)
    assert usable_capacity(target) == (208 - 2) * 2048


@pytest.mark.parametrize("name", sorted(ZOO_PIPELINES))
def test_zoo_nets_are_cut_only_where_one_tensor_is_live(name):
    capacity, boundaries = ZOO_PIPELINES[name]
    plan = _plan(name)
    network = load_pipeline_network(name)
    assert 2 <= len(plan.stages) <= 4
    assert [plan.stages[0].input_layer] + [stage.output_layer for stage in plan.stages] == boundaries
    for stage in plan.stages:
        assert stage.footprint_bytes <= capacity
        later = {layer for s in plan.stages[stage.index + 1 :] for layer in s.layer_names}
        # the stage's output is the only tensor any later stage reads from it or from before it
        earlier = {layer for s in plan.stages[: stage.index + 1] for layer in s.layer_names}
        crossing = {src for layer in later for src in network.layer(layer).inputs if src in earlier}
        assert crossing <= {stage.output_layer}
    # the whole net fits one ULX3S: with the target's real capacity it is one stage (STAP replicates it)
    single = plan_pipeline(network, get_target("ulx3s-85f"), chips=2)
    assert len(single.stages) == 1 and single.stages[0].replicas == 2


def test_stage_engines_are_the_dag_with_relus_and_flatten_fused():
    plan = _plan("tiny_resnet")
    engines = [[(node.kind, node.name, node.sources) for node in stage.nodes] for stage in plan.stages]
    assert engines == [
        [
            ("conv", "stem", ("link",)),
            ("conv", "res1a", ("stem",)),
            ("conv", "res1b", ("res1a",)),
            ("add", "res1_add", ("res1b", "stem")),
        ],
        [
            ("conv", "res2a", ("link",)),
            ("conv", "res2b", ("res2a",)),
            ("conv", "res2_down", ("link",)),
            ("add", "res2_add", ("res2b", "res2_down")),
            ("maxpool", "pool", ("res2_add",)),
        ],
        [("global_avgpool", "gap", ("link",)), ("conv", "fc", ("gap",))],
    ]
    assert plan.stages[0].nodes[3].layers == ("res1_add", "res1_relu")
    assert plan.stages[2].nodes[0].layers == ("gap", "flatten")
    mobilenet = _plan("tiny_mobilenet").stages[0].nodes
    assert mobilenet[2].params["groups"] == 16 and mobilenet[2].params["relu_max"] == 96  # ReLU6 at Q.4
    concat = _plan("tiny_concat").stages[1].nodes
    assert [node.kind for node in concat].count("relu") == 1  # dense_relu reads a concat: its own engine


def test_stage_fifos_hold_the_long_branch_of_every_fork():
    stage = stage_component(_plan("tiny_resnet").stages[0], _plan("tiny_resnet"))
    # stem (16 wide) forks to res1a and to the add; the add's skip FIFO waits for res1a + res1b (3x3, pad 1):
    # 16 * ((3 - 1) + (3 - 1) + 1) + 2 + 2 pixels (wavecore.hdl.stream.fork.skip_fifo_depth)
    assert stage.fifo_depths[(0, 3, 1)] == 16 * 5 + 4
    # into a 3x3 pad-1 conv: the 3 - 1 rows its first output row takes (one row would make res1a wait one
    # res1b row per frame: +5.6 % cycles/frame, see wavecore.hdl.stream.pipeline_stage)
    assert stage.fifo_depths[(1, 2, 0)] == stage.fifo_depths[(0, 1, 0)] == 2 * 16
    assert stage.fifo_depths[(-1, 0, 0)] == 2 * 16  # the link into the stem conv


def test_stage_graph_errors_name_the_engine():
    from wavecore.hdl.stream.add import StreamAdd
    from wavecore.hdl.stream.pipeline_stage import PipelineStage
    from wavecore.hdl.stream.relu import StreamReLU

    relu, add = StreamReLU(channels=4), StreamAdd(channels=4)
    with pytest.raises(TypeError, match="engines must be a non-empty list of stream engines"):
        PipelineStage(engines=[], lane_width=16)
    with pytest.raises(ValueError, match="engine layer1 has 2 inputs, sources gives 1"):
        PipelineStage(engines=[relu, add], lane_width=16, frame=(2, 2))
    with pytest.raises(ValueError, match="engine layer0: source 1 is not an earlier engine"):
        PipelineStage(engines=[relu, add], sources=[(1,), (-1, 0)], lane_width=16, frame=(2, 2))
    with pytest.raises(ValueError, match="engine layer0 is read by no engine"):
        PipelineStage(engines=[relu, add], sources=[(-1,), (-1, -1)], lane_width=16, frame=(2, 2))
    with pytest.raises(ValueError, match="frame must be given when no engine reading the link knows"):
        PipelineStage(engines=[relu, add], sources=[(-1,), (-1, 0)], lane_width=16)
    stage = PipelineStage(engines=[relu, add], sources=[(-1,), (-1, 0)], lane_width=16, frame=(2, 3))
    assert (stage.out_height, stage.out_width) == (2, 3)
    # fork at the link: each reader gets one row (3) + 2 + 2 pixels of skip_fifo_depth; relu -> add: one row
    assert stage.fifo_depths == {(-1, 0, 0): 3 + 2 + 2, (-1, 1, 0): 3 + 2 + 2, (0, 1, 1): 3}


def test_network_errors_name_the_layer_or_the_option():
    target = get_target("ulx3s-85f")
    from wavecore.golden.network import load_network

    with pytest.raises(PipelineError, match=r"network 'tiny_resnet' has norm layers \(stem_norm, "):
        plan_pipeline(load_network("tiny_resnet", norm="gn"), target, chips=2)
    with pytest.raises(PipelineError, match="layer 'flatten': flatten needs a 1x1 frame"):
        plan_pipeline(load_pipeline_network("vgg16"), target, chips=2)
    with pytest.raises(PipelineError, match="chips must be a positive integer, not 0"):
        plan_pipeline(load_pipeline_network("tiny_chain"), target, chips=0)
    with pytest.raises(PipelineError) as error:
        plan_pipeline(load_pipeline_network("tiny_resnet"), target, chips=3, capacity_bytes=600)
    assert str(error.value) == (
        "600 B per chip is too small for 'tiny_resnet' in at most 3 stage(s) (cuts only where one tensor is live)"
    )
    assert error.value.option == "capacity"
    from wavecore.golden.plan.occam import OccamModel, dp_partition

    with pytest.raises(ValueError, match="cuts must be one of any, single_tensor, not 'some'"):
        dp_partition(OccamModel(load_pipeline_network("tiny_chain")), 10_000, cuts="some")


@pytest.mark.parametrize("name", sorted(ZOO_PIPELINES))
def test_golden_forward_is_the_integer_training_forward(name):
    from wavecore.golden.train import train_step

    plan = _plan(name)
    network = load_pipeline_network(name)
    images = plan.numerics.operand.random(rng("pipeline_golden"), (2, *network.input_shape))
    activations = golden_activations(network, plan.params, images, plan.numerics)
    step = train_step(
        network, plan.params, {}, images, np.zeros(2, dtype=np.int64), numerics=plan.numerics
    )
    for layer, value in activations.items():
        assert np.array_equal(step.activations[layer], value), layer


def _run_chain(plan, *, stall, frames=2, report=None):
    # the frames plus one frame of fill per stage, each at the slowest stage's modelled cycles, at the stall rate
    from wavecore.verif.waits import cycle_limit, stalled

    slowest = max(stage.cycles_per_frame for stage in plan.stages)
    timeout = cycle_limit(stalled((frames + len(plan.stages)) * slowest, stall))
    random = rng("pipeline_images")
    images = plan.numerics.operand.random(random, (frames, *plan.stages[0].in_shape))
    boundaries = golden_boundaries(plan, images)
    # the golden reference must exercise the arithmetic: outputs are neither all zero nor all saturated
    assert all(np.mean((b != 0) & (np.abs(b) < 127)) > 0.2 for b in boundaries)
    design = build(
        PipelineChain([stage_component(stage, plan) for stage in plan.stages]),
        toplevel="pipeline_chain",
        simulator="verilator",
    )
    design.run(
        "wavecore.verif.tb_pipeline",
        testcase="chain_matches_golden_at_every_boundary",
        params={
            "lane_width": plan.lane_width,
            "stages": stage_params(plan),
            "images": images.tolist(),
            "batches": [3 + k for k in range(frames)],
            "expected": [b.tolist() for b in boundaries],
            "idle": stall,
            "backpressure": stall,
            "timeout_cycles": timeout,
            **({} if report is None else {"report": str(report)}),
        },
    )
    return None if report is None else json.loads(report.read_text())


@pytest.mark.parametrize(
    "name",
    [
        "tiny_resnet",
        pytest.param("tiny_mobilenet", marks=pytest.mark.slow),
        pytest.param("tiny_concat", marks=pytest.mark.slow),
    ],
)
def test_rtl_zoo_pipeline_matches_golden_at_every_stage_boundary(name):
    _run_chain(_plan(name), stall=0.3)


def test_rtl_steady_state_cycles_per_frame_match_the_stage_model(tmp_path):
    # the Verilator build of the tiny_resnet chain above, without stalls: the cycles between the last
    # stage's frame ends must be the slowest stage's model (engine cycle functions, link words), within 1 %
    plan = _plan("tiny_resnet")
    model = max(stage.cycles_per_frame for stage in plan.stages)
    assert model == 16 * 16 + 16 * (16 * (3 * 3 * 8 + 3) + 1) + 1  # res1a / res1b (stage 0): taps + 3 per pixel
    report = _run_chain(plan, stall=0.0, frames=3, report=tmp_path / "cycles.json")
    periods = np.diff(report["frame_ends"])
    assert len(periods) == 2
    for period in periods:
        assert period == pytest.approx(model, rel=0.01), f"measured {period} cycles/frame, model {model}"


@pytest.mark.slow
@pytest.mark.parametrize("capacity", [800, 1200])
def test_rtl_conv_chain_matches_golden_at_every_stage_boundary(capacity):
    network = load_pipeline_network("tiny_chain")
    plan = plan_pipeline(network, get_target("ulx3s-85f"), chips=3, capacity_bytes=capacity)
    _run_chain(plan, stall=0.3 if capacity == 800 else 0.0)


def test_stap_replicates_the_bottleneck_stage():
    network = load_pipeline_network("tiny_chain")
    plan = plan_pipeline(network, get_target("ulx3s-85f"), chips=3, capacity_bytes=1200)
    assert len(plan.stages) == 2
    cycles = [stage.cycles_per_frame for stage in plan.stages]
    slow = int(np.argmax(cycles))
    assert plan.stages[slow].replicas == 2 and plan.chips == 3


@pytest.mark.parametrize(
    ("name", "capacity", "replicas"),
    [
        pytest.param("tiny_chain", 1200, 1, marks=pytest.mark.slow),
        ("tiny_chain", 1200, 2),
        # a DAG stage (fork, depthwise conv with ReLU6, residual add) replicated
        pytest.param("tiny_mobilenet", 1500, 2, marks=pytest.mark.slow),
    ],
)
def test_stap_replicas_keep_frame_order_and_multiply_throughput(name, capacity, replicas):
    network = load_pipeline_network(name)
    plan = plan_pipeline(network, get_target("ulx3s-85f"), chips=3, capacity_bytes=capacity)
    stage = max(plan.stages, key=lambda s: s.cycles_per_frame)  # the bottleneck STAP replicates
    assert stage.index == 0 and stage.replicas == 2
    frames = 4
    random = rng("stap_images")
    images = plan.numerics.operand.random(random, (frames, *stage.in_shape))
    expected = golden_boundaries(plan, images)[0]
    per_frame = stage.cycles_per_frame
    # r replicas finish N frames in about N/r frame times (+ one frame of fill); one replica needs N of them
    bounds = (
        (frames * per_frame, int(1.1 * frames * per_frame) + 500)
        if replicas == 1
        else (0, int((frames / 2 + 1) * per_frame) + 500)
    )
    params = stage_params(plan)[:1]
    from wavecore.verif.waits import cycle_limit
    design = build(
        PipelineChain([StapGroup(lambda: stage_component(stage, plan), replicas)]),
        toplevel="stap_chain",
        simulator="verilator",
    )
    design.run(
        "wavecore.verif.tb_pipeline",
        testcase="chain_matches_golden_at_every_boundary",
        params={
            "lane_width": plan.lane_width,
            "stages": params,
            "images": images.tolist(),
            "batches": [10, 11, 12, 13],
            "expected": [expected.tolist()],
            "idle": 0.0,
            "backpressure": 0.0,
            "timeout_cycles": cycle_limit(bounds[1]),
            "cycle_bounds": bounds,
        },
    )


@pytest.mark.fpga
def test_pipeline_cli_builds_one_bitstream_per_stage_with_a_report(tmp_path):
    from wavecore.cli import main

    out = tmp_path / "pipe"
    capacity, boundaries = ZOO_PIPELINES["tiny_mobilenet"]
    arguments = ["pipeline", "--network", "tiny_mobilenet", "--norm", "none", "--target", "ulx3s-85f", "--chips"]
    assert main([*arguments, str(len(boundaries) - 1), "--capacity", str(capacity), "-o", str(out)]) == 0
    summary = json.loads((out / "pipeline.json").read_text())
    assert summary["distinct_bitstreams"] == len(boundaries) - 1
    for row in summary["stages"]:
        assert row["status"] in ("ok", "timing_failed")
        assert (out / row["bitstream"]).exists()
        assert row["fmax_mhz"] > 0 and row["images_per_second"] > 0
        assert row["link_available_mbit_s"] == pytest.approx(16 * row["fmax_mhz"], rel=1e-2)
    assert summary["images_per_second"] == min(row["images_per_second"] for row in summary["stages"])


def test_link_budget_is_pixels_times_words_times_lane_at_the_stage_rate():
    from wavecore.boards.pipeline import link_budget

    plan = plan_pipeline(
        load_pipeline_network("tiny_chain"), get_target("ulx3s-85f"), chips=3, capacity_bytes=800
    )
    stage = plan.stages[0]  # conv1: 8 channels of 8x8 out; a pixel is 8*8 + 3 + 8 = 75 bits = 5 words of 16
    budget = link_budget(plan, stage, fmax_mhz=80.0, link_mhz=80.0)
    images = 80e6 / stage.cycles_per_frame
    assert budget["images_per_second"] == pytest.approx(images, abs=0.1)
    assert budget["link_needed_mbit_s"] == pytest.approx(images * 64 * 5 * 16 / 1e6, abs=0.01)
    assert budget["link_available_mbit_s"] == pytest.approx(16 * 80.0)
    assert budget["link_ok"]
