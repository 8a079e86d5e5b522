"""Occam: closures, the chain/DAG DP against brute force, a VGG-16 regression table, STAP, partition API."""

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from wavecore.golden.network import NetworkBuilder, load_network
from wavecore.golden.plan.occam import (
    OccamModel,
    brute_force_partition,
    dp_partition,
    layer_by_layer_traffic,
    partition,
    stap,
)

MIB = 1 << 20


@pytest.fixture(scope="module")
def vgg16():
    return load_network("vgg16")


# VGG-16 conv/pool part, 224x224, fp16, filters on chip, from an independent implementation of the same DP (not
# figures of the Occam paper): interior traffic (MB, write + read per cut) and partition count
VGG_TABLE = [
    (8, "line_buffer", 3.45, 6),
    (8, "closure", 3.45, 6),
    (16, "line_buffer", 0.38, 2),
    (16, "closure", 1.15, 3),
    (32, "line_buffer", 0.00, 1),
    (32, "closure", 0.38, 2),
]


@pytest.mark.parametrize(("mib", "memory_model", "traffic_mb", "partitions"), VGG_TABLE)
def test_vgg16_occam_regression_table(vgg16, mib, memory_model, traffic_mb, partitions):
    model = OccamModel(vgg16, memory_model=memory_model, last_layer="pool5")
    cost, cuts = dp_partition(model, mib * MIB)
    assert round(cost / MIB, 2) == traffic_mb
    assert len(cuts) + 1 == partitions


def test_vgg16_layer_by_layer_and_infeasible_capacity(vgg16):
    model = OccamModel(vgg16, last_layer="pool5")
    assert round((layer_by_layer_traffic(model) - model.endpoint_bytes()) / MIB, 2) == 57.42
    assert dp_partition(model, 4 * MIB) is None  # conv5 filters alone are ~4.5 MB in fp16


@pytest.mark.parametrize(("memory_model", "mib"), [("closure", 16), ("line_buffer", 8)])
def test_dp_matches_brute_force_on_vgg16_conv_part(vgg16, memory_model, mib):
    model = OccamModel(vgg16, memory_model=memory_model, last_layer="pool5")
    assert model.count == 18
    assert dp_partition(model, mib * MIB)[0] == brute_force_partition(model, mib * MIB)[0]


@pytest.mark.parametrize(("memory_model", "mib", "stages"), [("closure", 20, 2), ("line_buffer", 12, 3)])
def test_stage_budget_dp_matches_brute_force_on_vgg16_conv_part(vgg16, memory_model, mib, stages):
    # one stage fewer than the unbounded optimum: the 2-D DP must find the cheapest cover within the budget
    model = OccamModel(vgg16, memory_model=memory_model, last_layer="pool5")
    bounded = dp_partition(model, mib * MIB, max_stages=stages)
    assert bounded == brute_force_partition(model, mib * MIB, max_stages=stages)
    assert bounded[0] > dp_partition(model, mib * MIB)[0]


def random_chain(kernels, channels, size):
    builder = NetworkBuilder("chain", (2, size, size), num_classes=2, norm="none")
    for i, (kernel, width) in enumerate(zip(kernels, channels)):
        if kernel == 0:
            builder.maxpool(f"pool{i}", 2, 2)
        else:
            builder.conv(f"conv{i}", width, kernel, padding=kernel // 2)
            builder.relu(f"relu{i}")
    return builder.build()


@settings(max_examples=30, deadline=None)
@given(
    layers=st.lists(st.tuples(st.sampled_from([0, 1, 3, 5]), st.integers(1, 8)), min_size=2, max_size=9),
    capacity=st.integers(200, 6000),
    memory_model=st.sampled_from(["closure", "line_buffer"]),
    oversized=st.sampled_from(["error", "stream_filters"]),
)
# found by mutation testing: a stage-budget choice that ignores the cut's cost, and equal-traffic covers
# where the tie must go to fewer stages
@example(layers=[(0, 5), (0, 8), (5, 8), (5, 4)], capacity=968, memory_model="closure", oversized="error")
@example(
    layers=[(3, 2), (5, 6), (5, 4), (0, 1), (0, 3)],
    capacity=1590,
    memory_model="line_buffer",
    oversized="error",
)
@example(
    layers=[(5, 1), (3, 8), (5, 6), (1, 4), (5, 4), (1, 3), (5, 4), (3, 8)],
    capacity=2066,
    memory_model="closure",
    oversized="error",
)
def test_dp_matches_brute_force_on_random_chains(layers, capacity, memory_model, oversized):
    pools = sum(1 for k, _ in layers if k == 0)
    assume(pools <= 4)  # the map (2**pools * 4 rows) must stay at least 2 rows high for the last pool
    network = random_chain([k for k, _ in layers], [c for _, c in layers], 2**pools * 4)
    model = OccamModel(network, memory_model=memory_model, dtype_bytes=1)
    # unbounded (the 1-D DP) and with a stage budget (the 2-D DP); ties go to fewer stages in both
    for max_stages in (None, 1, 2, 3):
        dp = dp_partition(model, capacity, max_stages=max_stages, oversized=oversized)
        brute = brute_force_partition(model, capacity, max_stages=max_stages, oversized=oversized)
        assert (dp is None) == (brute is None), max_stages
        if dp is not None:
            assert dp[0] == brute[0], max_stages
            assert len(dp[1]) == len(brute[1]), max_stages


def test_closure_rows_of_a_residual_merge_by_hand():
    # c1 -> c2 -> add(c2, c1) -> c3, all 3x3 pad 1: one row of c3 needs 3 rows of the add, so 3 rows of
    # both add inputs (a row-aligned merge); c2's 3 rows need 5 rows of c1, and c1's 5 rows 7 input rows
    builder = NetworkBuilder("merge", (2, 16, 16), num_classes=2, norm="none")
    builder.conv("c1", 2, 3, padding=1)
    builder.conv("c2", 2, 3, padding=1)
    builder.add("sum", ["c2", "c1"])
    builder.conv("c3", 2, 3, padding=1)
    model = OccamModel(builder.build())
    assert model.closure_rows(0, model.count - 1) == {"sum": 3, "c2": 3, "c1": 5, "input": 7}


def test_dag_cut_inside_a_residual_block_carries_both_tensors():
    network = load_network("resnet18", norm="none")
    model = OccamModel(network)
    inside = model.op_index[
        "conv2_1b"
    ]  # cut between the block's two convs: conv2_1a's output and pool1 cross
    assert model.cut_bytes[inside] == model.tensor_bytes["conv2_1a"] + model.tensor_bytes["pool1"]
    after = model.op_index["conv2_2a"]  # cut at the block boundary: only the block output crosses
    assert model.cut_bytes[after] == model.tensor_bytes["conv2_1_add"]


def test_residual_partitions_fit_their_capacity_and_beat_layer_by_layer():
    for name in ("resnet18", "resnet50"):
        network = load_network(name, norm="none")
        found = partition(network, 8 * MIB)
        assert all(stage.footprint_bytes <= 8 * MIB for stage in found.stages)
        assert found.reduction > 5
        covered = [name for stage in found.stages for name in stage.layers]
        assert covered == [layer.name for layer in network.layers]


def test_stap_replicates_the_bottleneck():
    result = stap([4, 1, 2], period=1)
    assert result.replicas == (4, 1, 2)
    assert result.throughput == 1.0
    assert result.chips == 7
    budget = stap([4, 1, 2], chips=5)
    assert budget.chips <= 5
    assert budget.replicas == (2, 1, 1) or budget.throughput >= 0.5
    assert budget.throughput == pytest.approx(1 / 2)


def test_partition_with_a_chip_budget_uses_at_most_that_many_chips(vgg16):
    found = partition(vgg16, 16 * MIB, chips=8, last_layer="pool5")
    assert found.chips <= 8
    assert len(found.stages) <= 8
    assert sum(stage.replicas for stage in found.stages) == found.chips


def test_partition_too_small_message(vgg16):
    with pytest.raises(ValueError, match="capacity_bytes 1024 is too small to partition 'vgg16'"):
        partition(vgg16, 1024, oversized="error")
