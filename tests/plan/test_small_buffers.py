"""The weight-tile reserve sized from the network and the array, and MBS plans at FPGA-size buffers."""

from __future__ import annotations

import pytest

from wavecore.cli import main
from wavecore.golden.network import load_network
from wavecore.golden.plan.mbs import plan_baseline, plan_optimal
from wavecore.golden.plan.traffic import NetworkModel, TrafficOptions, weight_tile_bytes

KIB = 1024


@pytest.fixture(scope="module")
def tiny_resnet():
    return load_network("tiny_resnet")


def _tile(network, name, rows=8, cols=8, dataflow="os", dtype_bytes=1):
    return weight_tile_bytes(network.layer(name), rows=rows, cols=cols, dataflow=dataflow, dtype_bytes=dtype_bytes)


def test_reserve_of_stated_layers(tiny_resnet):
    # res2a: 3x3 conv 8 -> 16, no bias: K = 8*3*3 = 72, N = 16.
    # os 8x8: forward slab 72 x min(8, 16) = 576, backward-data W^T 16 x min(8, 72) = 128 -> 2 * 576 int8 bytes
    assert _tile(tiny_resnet, "res2a") == 2 * 72 * 8
    # ws 8x8: an 8 x 8 stationary block in both passes -> 2 * 64
    assert _tile(tiny_resnet, "res2a", dataflow="ws") == 2 * 64
    # bf16 doubles it
    assert _tile(tiny_resnet, "res2a", dtype_bytes=2) == 2 * 2 * 576
    # fc: linear 16 -> 10 with bias: forward (16 + 1 bias) x min(8, 10) = 136, backward-data 10 x 8 = 80
    assert _tile(tiny_resnet, "fc") == 2 * 136
    # a layer without weights reserves nothing
    assert _tile(tiny_resnet, "pool") == 0 and _tile(tiny_resnet, "stem_norm") == 0


def test_reserve_of_large_and_depthwise_layers():
    resnet50 = load_network("resnet50", norm="gn")
    # conv5_1b: 3x3 conv 512 -> 512 on 128x128 os, bf16: 2 * (4608 * 128) * 2 bytes = 2.25 MiB (> the old 512 KiB)
    assert _tile(resnet50, "conv5_1b", rows=128, cols=128, dtype_bytes=2) == 2 * 4608 * 128 * 2
    mobilenet = load_network("tiny_mobilenet")
    # depthwise 3x3 (16 groups): per group K = 9, N = 1 -> forward 9 x 1, backward-data 1 x min(8, 9) = 8
    assert _tile(mobilenet, "block_dw") == 2 * 9


def test_group_reserve_is_the_largest_tile_of_its_layers(tiny_resnet):
    model = NetworkModel(tiny_resnet, TrafficOptions(dtype_bytes=1, array_rows=8, array_cols=8))
    position = model.position
    # stem .. res1_relu holds stem (3 -> 8, K = 27), res1a and res1b (8 -> 8, K = 72): 2 * 72 * 8
    assert model.profile(position["stem"], position["res1_relu"] + 1).weight_buffer == 2 * 72 * 8
    # res2 block adds res2b (16 -> 16, K = 144): 2 * 144 * 8
    assert model.profile(position["res2a"], position["res2_relu"] + 1).weight_buffer == 2 * 144 * 8
    # the head: only fc has weights
    assert model.profile(position["gap"], position["loss"] + 1).weight_buffer == 2 * 136
    fixed = NetworkModel(tiny_resnet, TrafficOptions(weight_buffer_bytes=4096))
    assert fixed.profile(position["gap"], position["loss"] + 1).weight_buffer == 4096


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"weight_buffer_bytes": "big"}, "weight_buffer_bytes must be 'auto' or an integer >= 0, not 'big'"),
        ({"weight_buffer_bytes": -1}, "weight_buffer_bytes must be 'auto' or an integer >= 0, not -1"),
        ({"array_rows": 0}, "array_rows must be an integer >= 1, not 0"),
        ({"dataflow": "rs"}, "dataflow must be one of os, ws, not 'rs'"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        TrafficOptions(**options)


def _small_plan(network, kib, **options):
    options = TrafficOptions(dtype_bytes=1, array_rows=8, array_cols=8, **options)
    model = NetworkModel(network, options)
    return plan_baseline(network, 8, model=model), plan_optimal(network, 8, kib * KIB, model=model)


@pytest.mark.parametrize("kib", [16, 32])
def test_fpga_buffers_give_several_groups_and_small_sub_batches(tiny_resnet, kib):
    baseline, plan = _small_plan(tiny_resnet, kib)
    serialised = [b for i, (_, b) in enumerate(plan.groups) if i not in plan.tiled]
    assert len(plan.groups) > 1 and serialised and min(serialised) < 8
    assert plan.traffic.total < baseline.traffic.total
    plan.to_schedule().validate(tiny_resnet, 8)  # the golden executor accepts it


def test_sub_batch_below_the_batch_at_64kib(tiny_resnet):
    # the whole network fits as one group at sub-batch 4, not at 8 (8 x 8 KiB live + reserve > 64 KiB)
    baseline, plan = _small_plan(tiny_resnet, 64)
    assert plan.groups[0][1] == 4 and len(plan.groups) == 1 and not plan.tiled
    assert plan.traffic.total < baseline.traffic.total


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_concat", "tiny_mobilenet"])
@pytest.mark.parametrize("kib", [16, 32, 64, 128, 256, 512])
def test_footprints_fit_and_traffic_falls(name, kib):
    network = load_network(name)
    baseline, plan = _small_plan(network, kib)
    groups = [g for g in plan.traffic.groups if not g.tiled]
    assert groups, "all-tiled plan"
    assert all(g.footprint <= kib * KIB for g in groups)
    assert all(g.footprint >= g.sub_batch + g.weight_buffer for g in groups)
    assert plan.traffic.total < baseline.traffic.total


@pytest.mark.parametrize("kib", [8, 16, 32])
def test_dp_stays_exact_with_per_group_reserves(tiny_resnet, kib):
    # the DP stops extending a group once it is infeasible; per-group reserves only grow with the group, so the
    # optimum over every cut set is still found
    from test_mbs import brute_force

    model = NetworkModel(tiny_resnet, TrafficOptions(dtype_bytes=1, array_rows=8, array_cols=8))
    optimal = plan_optimal(tiny_resnet, 8, kib * KIB, model=model)
    assert optimal.traffic.total == brute_force(tiny_resnet, 8, kib * KIB, model)


def test_the_old_fixed_reserve_gives_an_all_tiled_plan(tiny_resnet):
    # the 512 KiB reserve of before leaves nothing of a 256 KiB buffer: MBS degenerates to the baseline
    baseline, plan = _small_plan(tiny_resnet, 256, weight_buffer_bytes=512 * KIB)
    assert len(plan.tiled) == len(plan.groups) and plan.traffic.total == baseline.traffic.total


def test_cli_plans_small_buffers(capsys, tmp_path):
    import json

    argv = ["plan", "--network", "tiny_resnet", "--batch", "8", "--buffer", "32KiB", "--dtype", "int8"]
    argv += ["--array", "8x8", "--schedule", "mbs", "--json", "--no-report"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    optimal = {row["schedule"]: row for row in document["schedules"]}["mbs_optimal"]
    assert optimal["reduction_vs_baseline"] > 0 and optimal["groups"] > 1 and min(optimal["sub_batches"]) < 8
    assert all(g["footprint_bytes"] <= 32 * KIB for g in optimal["per_group"])
    assert {g["weight_buffer_bytes"] for g in optimal["per_group"]} == {2 * 72 * 8, 2 * 144 * 8}


def test_cli_bad_weight_buffer(capsys, tmp_path):
    out = tmp_path / "plan"
    assert main(["plan", "--network", "tiny_resnet", "--weight-buffer", "lots", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "wavecore plan: error: --weight-buffer must be auto or a size such as 512KiB, not 'lots'\n"
    )
    assert captured.out == "" and not out.exists()
