"""Occam multi-FPGA pipeline: partition, golden boundaries, and the RTL chain simulated on Verilator."""

import json

import numpy as np
import pytest

from boards.pipeline import (
    PipelineError,
    golden_boundaries,
    load_pipeline_network,
    plan_pipeline,
    stage_component,
    usable_capacity,
)
from boards.pipeline_sim import PipelineChain, StapGroup, stage_params
from boards.targets import get_target
from verif.runner import build
from verif.seed import rng


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


def test_stap_replicates_the_bottleneck_stage():
    network = load_pipeline_network("tiny_chain")
    plan = plan_pipeline(network, get_target("ulx3s-85f"), chips=3, capacity_bytes=1200)
    assert len(plan.stages) == 2
    cycles = [stage.cycles_per_frame for stage in plan.stages]
    slow = int(np.argmax(cycles))
    assert plan.stages[slow].replicas == 2 and plan.chips == 3


def test_unsupported_ops_are_refused_with_the_layer_name():
    with pytest.raises(
        PipelineError, match="layer 'res1_add': op add is not supported by the streaming engine"
    ):
        plan_pipeline(load_pipeline_network("tiny_resnet"), get_target("ulx3s-85f"), chips=2)
    with pytest.raises(PipelineError, match="chips must be a positive integer, not 0"):
        plan_pipeline(load_pipeline_network("tiny_chain"), get_target("ulx3s-85f"), chips=0)


@pytest.mark.parametrize(
    ("capacity", "stall"),
    [
        pytest.param(800, 0.3, id="3stages-stalls"),
        pytest.param(1200, 0.0, id="2stages", marks=pytest.mark.slow),
    ],
)
def test_rtl_chain_matches_golden_at_every_stage_boundary(capacity, stall):
    network = load_pipeline_network("tiny_chain")
    plan = plan_pipeline(network, get_target("ulx3s-85f"), chips=len(network.layers), capacity_bytes=capacity)
    random = rng("pipeline_images")
    images = plan.arithmetic.operand.random(random, (2, *plan.stages[0].in_shape))
    boundaries = golden_boundaries(plan, images)
    # the golden reference must exercise the arithmetic: outputs are neither all zero nor all saturated
    assert all(np.mean((b != 0) & (np.abs(b) < 127)) > 0.2 for b in boundaries)
    design = build(
        PipelineChain([stage_component(stage, plan) for stage in plan.stages]),
        toplevel="pipeline_chain",
        simulator="verilator",
    )
    design.run(
        "tb_pipeline",
        testcase="chain_matches_golden_at_every_boundary",
        params={
            "lane_width": plan.lane_width,
            "stages": stage_params(plan),
            "images": images.tolist(),
            "batches": [3, 4],
            "expected": [b.tolist() for b in boundaries],
            "idle": stall,
            "backpressure": stall,
            "timeout_cycles": 200_000,
        },
    )


@pytest.mark.parametrize("replicas", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_stap_replicas_keep_frame_order_and_multiply_throughput(replicas):
    network = load_pipeline_network("tiny_chain")
    plan = plan_pipeline(network, get_target("ulx3s-85f"), chips=3, capacity_bytes=1200)
    stage = max(plan.stages, key=lambda s: s.cycles_per_frame)  # the bottleneck STAP replicates
    assert stage.index == 0 and stage.replicas == 2
    frames = 4
    random = rng("stap_images")
    images = plan.arithmetic.operand.random(random, (frames, *stage.in_shape))
    expected = golden_boundaries(plan, images)[0]
    per_frame = stage.cycles_per_frame
    # r replicas finish N frames in about N/r frame times (+ one frame of fill); one replica needs N of them
    bounds = (
        (frames * per_frame, int(1.1 * frames * per_frame) + 500)
        if replicas == 1
        else (0, int((frames / 2 + 1) * per_frame) + 500)
    )
    params = stage_params(plan)[:1]
    design = build(
        PipelineChain([StapGroup(lambda: stage_component(stage, plan), replicas)]),
        toplevel="stap_chain",
        simulator="verilator",
    )
    design.run(
        "tb_pipeline",
        testcase="chain_matches_golden_at_every_boundary",
        params={
            "lane_width": plan.lane_width,
            "stages": params,
            "images": images.tolist(),
            "batches": [10, 11, 12, 13],
            "expected": [expected.tolist()],
            "idle": 0.0,
            "backpressure": 0.0,
            "timeout_cycles": 200_000,
            "cycle_bounds": bounds,
        },
    )


@pytest.mark.fpga
def test_pipeline_cli_builds_one_bitstream_per_stage_with_a_report(tmp_path):
    from scripts.cli import main

    out = tmp_path / "pipe"
    assert (
        main(
            [
                "pipeline",
                "--network",
                "tiny_chain",
                "--target",
                "ulx3s-85f",
                "--chips",
                "3",
                "--capacity",
                "800",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "pipeline.json").read_text())
    assert summary["distinct_bitstreams"] == 3
    for row in summary["stages"]:
        assert row["status"] in ("ok", "timing_failed")
        assert (out / row["bitstream"]).exists()
        assert row["fmax_mhz"] > 0 and row["images_per_second"] > 0
        assert row["link_available_mbit_s"] == pytest.approx(16 * row["fmax_mhz"], rel=1e-2)
    assert summary["images_per_second"] == min(row["images_per_second"] for row in summary["stages"])


def test_link_budget_is_pixels_times_words_times_lane_at_the_stage_rate():
    from boards.pipeline import link_budget

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
