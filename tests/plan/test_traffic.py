"""Traffic model: hand-computed bytes on a small chain, ResNet-50 v1.5 sizes, pass counts, bounds."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavecore.golden.network import NetworkBuilder, load_network
from wavecore.golden.plan.mbs import plan_baseline, plan_greedy, plan_optimal
from wavecore.golden.plan.traffic import SITE_PASSES, NetworkModel, TrafficOptions, compulsory_traffic, evaluate


def chain():
    """input(1x4x4) -> conv a (2ch, 3x3 pad 1) -> relu -> conv b (2ch, 1x1) -> flatten -> fc(3) -> loss."""
    builder = NetworkBuilder("chain", (1, 4, 4), num_classes=3, norm="none")
    builder.conv("a", 2, 3, padding=1)
    builder.relu("a_relu")
    builder.conv("b", 2, 1)
    builder.flatten("flat")
    builder.linear("fc", 3, bias=False)
    builder.loss("loss")
    return builder.build()


def test_baseline_bytes_of_a_small_chain_by_hand():
    network = chain()
    n = 4
    options = TrafficOptions(dtype_bytes=2, grad_bytes=4)
    traffic = plan_baseline(network, n, options=options).traffic
    x, a, b, logits = 16 * 2, 32 * 2, 32 * 2, 3 * 2  # bytes per sample
    # forward reads: a reads x, b reads a (through the relu view), fc reads b, loss reads logits;
    # writes: a, b, logits (each has a later consumer)
    assert traffic.per_class["activations"] == n * (x + a + b + logits + a + b + logits)
    # backward: consumer writes the input gradient, producer reads it (the image has no gradient)
    assert traffic.per_class["activation_grads"] == n * 2 * (a + b + logits)
    # backward reads of stashed inputs: conv a (x), conv b (a), fc (b), loss (logits)
    assert traffic.per_class["stash"] == n * (x + a + b + logits)
    weights = 9 * 2 + 2 * 2 + 32 * 3  # elements
    assert traffic.per_class["weights"] == 2 * weights * 2  # forward and backward, read once each
    assert traffic.per_class["weight_grads"] == weights * 4
    # the lone ReLU is a site: 5F unfused (fwd 1R+1W, bwd 2R+1W)
    assert traffic.per_class["norm_passes"] == 5 * n * a


def test_a_tensor_already_written_for_a_later_group_is_not_stashed_again():
    """input(1x4x4) -> conv a (2ch 3x3 pad 1) -> conv b (2ch 1x1) -> add(a, b) -> flatten -> fc(3) -> loss,
    run as the groups [input, a, b] and [add, flatten, fc, loss]: ``a`` is needed by b's backward and also
    crosses to the add, so its one DRAM write serves as the stash."""
    builder = NetworkBuilder("fork", (1, 4, 4), num_classes=3, norm="none")
    builder.conv("a", 2, 3, padding=1)
    builder.conv("b", 2, 1)
    builder.add("sum", ["a", "b"])
    builder.flatten("flat")
    builder.linear("fc", 3, bias=False)
    builder.loss("loss")
    network = builder.build()
    n = 4
    groups = [(("input", "a", "b"), n), (("sum", "flat", "fc", "loss"), n)]
    traffic = evaluate(network, groups, n, options=TrafficOptions(dtype_bytes=2))
    x, a, b, total, logits = 16 * 2, 32 * 2, 32 * 2, 32 * 2, 3 * 2  # bytes per sample
    # group 1 reads x, writes a and b for group 2, which reads them back
    assert traffic.per_class["activations"] == n * (x + 2 * a + 2 * b)
    # stash: group 1 writes nothing (x is the image, a is already in DRAM), reads x and a back; group 2
    # writes and reads the add's output (fc's input) and the logits (the loss's input)
    assert traffic.per_class["stash"] == n * (x + a + 2 * total + 2 * logits)
    assert traffic.per_class["activation_grads"] == n * 2 * (a + b)


def test_pass_table_matches_the_stated_counts():
    assert SITE_PASSES["norm_relu"] == {"two_pass": 14, "one_pass": 13, "fused": 2}


def test_resnet50_conv2_block_live_set_and_stage_weights_match_the_stated_sizes():
    network = load_network("resnet50", norm="none")
    model = NetworkModel(network, TrafficOptions(dtype_bytes=1))
    block = [layer.name for layer in network.layers if layer.name.startswith("conv2_2")]
    profile = model.profile(model.position[block[0]], model.position[block[-1]] + 1)
    assert profile.live_fwd == 1_806_336  # X + A + C = 802,816 + 200,704 + 802,816 elements per sample
    stage = [layer.name for layer in network.layers if layer.name.startswith("conv2_")]
    assert model.profile(model.position[stage[0]], model.position[stage[-1]] + 1).weights == 212_992
    stage5 = [layer.name for layer in network.layers if layer.name.startswith("conv5_")]
    assert model.profile(model.position[stage5[0]], model.position[stage5[-1]] + 1).weights == 14_942_208


def test_whole_batch_single_layer_groups_reproduce_the_baseline():
    network = load_network("tiny_resnet")
    model = NetworkModel(network)
    baseline = plan_baseline(network, 8, model=model).traffic
    groups = [((name,), 8) for name in model.names]
    assert evaluate(network, groups, 8, model=model).total == baseline.total


def test_full_serialization_pays_weights_once_per_sample():
    network = load_network("tiny_resnet")
    options = TrafficOptions(weight_grad_accumulation="dram", weight_buffer_bytes=0)
    model = NetworkModel(network, options)
    weights = sum(model.weight_bytes)
    one_group = [(tuple(model.names), 1)]
    capacity = 10**9  # weights resident: read once per pass
    assert evaluate(network, one_group, 8, model=model, capacity=capacity).per_class["weights"] == 2 * weights
    live = model.profile(1, len(model.names))
    tight = max(live.live_fwd, live.live_bwd)  # no room for weights: re-fetched per sub-batch
    traffic = evaluate(network, one_group, 8, model=model, capacity=tight)
    assert traffic.per_class["weights"] == 2 * 8 * weights
    assert traffic.per_class["weight_grads"] == (2 * 8 - 1) * sum(model.grad_bytes)


def test_compulsory_traffic_of_resnet50():
    network = load_network("resnet50")
    params = network.param_count()
    expected = 32 * 3 * 224 * 224 * 2 + params * 2 + params * 4 + 32 * 1000 * 2
    assert compulsory_traffic(network, 32, TrafficOptions()) == expected


def test_fusion_never_costs_more_than_two_pass():
    network = load_network("densenet121")
    unfused = plan_baseline(network, 32).traffic
    fused = plan_baseline(network, 32, options=TrafficOptions(norm_variant="fused")).traffic
    assert fused.per_class["norm_passes"] * 14 == unfused.per_class["norm_passes"] * 2
    assert fused.total < unfused.total


def test_option_errors_name_the_field():
    with pytest.raises(ValueError, match="stash must be one of minimal, all, not 'some'"):
        TrafficOptions(stash="some")
    with pytest.raises(ValueError, match="dtype_bytes must be an integer >= 1, not 0"):
        TrafficOptions(dtype_bytes=0)


_NETWORKS = {name: load_network(name) for name in ("tiny_resnet", "tiny_concat", "tiny_mobilenet")}


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(_NETWORKS)), kib=st.integers(2, 96), batch=st.sampled_from([2, 4, 8]))
def test_planned_footprint_fits_and_traffic_never_grows_with_the_buffer(name, kib, batch):
    network = _NETWORKS[name]
    options = TrafficOptions(weight_buffer_bytes=1024)
    model = NetworkModel(network, options)
    capacity = kib * 1024
    small = plan_optimal(network, batch, capacity, model=model)
    greedy = plan_greedy(network, batch, capacity, model=model)
    for group in small.traffic.groups + greedy.traffic.groups:
        if not group.tiled:
            assert group.footprint <= capacity
    large = plan_optimal(network, batch, 2 * capacity, model=model)
    assert large.traffic.total <= small.traffic.total
    # the greedy heuristic is not monotone in the buffer (docs/planner.md), but never beats the optimum
    assert small.traffic.total <= greedy.traffic.total
    assert math.isclose(small.traffic.total, sum(g.total for g in small.traffic.groups))


def test_sub_batch_is_sized_by_the_larger_backward_live_set():
    network = load_network("resnet50", norm="none")
    model = NetworkModel(network, TrafficOptions(dtype_bytes=1, weight_buffer_bytes=0))
    block = [layer.name for layer in network.layers if layer.name.startswith("conv2_2")]
    profile = model.profile(model.position[block[0]], model.position[block[-1]] + 1)
    assert profile.live_bwd > profile.live_fwd
    capacity = 4 * profile.live_fwd  # four samples fit forward, not backward
    assert not model.group_traffic(profile, 4, 32, capacity).feasible
    assert model.best_sub_batch(profile, 32, capacity).sub_batch == 2


def test_stash_all_and_dram_accumulation_only_add_traffic():
    network = load_network("tiny_resnet")
    base = TrafficOptions(weight_buffer_bytes=1024)
    groups = [(tuple(layer.name for layer in network.layers), 2)]
    minimal = evaluate(network, groups, 8, options=base, capacity=10**9)
    stash_all = evaluate(
        network, groups, 8, options=TrafficOptions(weight_buffer_bytes=1024, stash="all"), capacity=10**9
    )
    dram = evaluate(
        network,
        groups,
        8,
        capacity=10**9,
        options=TrafficOptions(weight_buffer_bytes=1024, weight_grad_accumulation="dram"),
    )
    assert stash_all.per_class["stash"] > minimal.per_class["stash"]
    assert dram.per_class["weight_grads"] == (2 * 4 - 1) * minimal.per_class["weight_grads"]


def test_transfer_bytes_is_elements_times_element_bytes_and_drives_the_model():
    import numpy as np

    from wavecore.golden.plan.traffic import transfer_bytes

    assert transfer_bytes((8, 64), 2) == 1024
    assert transfer_bytes((np.int64(2), 3, 4), 4) == 96
    assert transfer_bytes(10, 1) == 10
    assert transfer_bytes((), 2) == 2  # a scalar
    with pytest.raises(ValueError, match=r"^shape must be an integer >= 0, not -1$"):
        transfer_bytes((4, -1), 2)
    with pytest.raises(ValueError, match=r"^element_bytes must be an integer >= 1, not 0$"):
        transfer_bytes((4,), 0)
    network = chain()
    model = NetworkModel(network, TrafficOptions(dtype_bytes=2, grad_bytes=4))
    for layer, size, weights, grads in zip(network.layers, model.bytes, model.weight_bytes, model.grad_bytes):
        assert size == transfer_bytes(layer.out_elements, 2)
        assert weights == transfer_bytes(layer.param_count, 2) and grads == transfer_bytes(layer.param_count, 4)
