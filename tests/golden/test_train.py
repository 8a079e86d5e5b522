"""wavecore.golden.train: whole SGD steps against PyTorch autograd, and every schedule against the baseline."""

from __future__ import annotations

import numpy as np
import pytest
from golden_helpers import (
    OPTIMIZER,
    assert_all_bits_equal,
    assert_bit_identical_activations,
    assert_gradient_vectors_close,
    assert_weight_grads_close,
    bn_boundary_schedule,
    data,
    dense_block,
    mbs_schedules,
    mobilenet_block,
    relative,
    run_step,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wavecore.golden.network import NetworkBuilder, load_network
from wavecore.golden.schedule import Group, Schedule
from wavecore.golden.train import init_params, init_state, train_step


# ------------------------------------------------------------------------------------------------------------
# PyTorch oracle: whole training steps
# ------------------------------------------------------------------------------------------------------------
def check_against_torch(net, batch, tolerance, dtype=np.float64):
    torch = pytest.importorskip("torch")
    from wavecore.golden.torch_export import torch_step

    x, labels = data(net, batch)
    params = init_params(net, seed=1, dtype=dtype)
    state = init_state(net, dtype=dtype)
    x = x.astype(dtype)
    result = train_step(
        net,
        params,
        state,
        x,
        labels,
        optimizer=OPTIMIZER,
        numerics="float64" if dtype == np.float64 else "float32",
    )
    reference = torch_step(
        net,
        params,
        state,
        x,
        labels,
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        dtype=torch.float64 if dtype == np.float64 else torch.float32,
    )
    assert abs(result.loss - reference["loss"]) <= tolerance * abs(reference["loss"])
    for name, value in reference["activations"].items():
        if name in result.activations and net.layer(name).op != "loss":
            assert relative(result.activations[name], value) <= tolerance, name
    for name, value in reference["input_grads"].items():
        assert relative(result.input_grads[name], value) <= tolerance, name
    for name, entry in reference["grads"].items():
        for key, value in entry.items():
            assert relative(result.grads[name][key], value) <= tolerance, (name, key)
            assert relative(result.params[name][key], reference["params"][name][key]) <= tolerance, (
                name,
                key,
            )
    for name, entry in reference["running"].items():
        for key, value in entry.items():
            assert relative(result.state["running"][name][key], value) <= tolerance, (name, key)


@pytest.mark.torch
@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_resnet18_32x32_step_matches_torch_float64(norm):
    check_against_torch(load_network("resnet18", norm=norm, input_size=32), batch=2, tolerance=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("builder", [dense_block, mobilenet_block], ids=["densenet_block", "mobilenet_block"])
@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_block_networks_step_match_torch_float64(builder, norm):
    check_against_torch(builder(norm), batch=4, tolerance=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_concat", "tiny_mobilenet"])
def test_tiny_networks_step_match_torch_float64(name):
    check_against_torch(load_network(name, norm="bn"), batch=4, tolerance=1e-10)


@pytest.mark.torch
def test_input_gradient_is_computed_only_when_asked_and_matches_torch():
    from wavecore.golden.torch_export import torch_step

    net = load_network("tiny_resnet", norm="bn")
    x, labels = data(net, 4)
    params, state = init_params(net, seed=1), init_state(net)
    plain = train_step(net, params, state, x, labels, optimizer=OPTIMIZER)
    assert "input" not in plain.input_grads  # training never needs it: not computed, not stored
    asked = train_step(net, params, state, x, labels, optimizer=OPTIMIZER, input_grad=True)
    reference = torch_step(
        net, params, state, x, labels, lr=0.1, momentum=0.9, weight_decay=1e-4, input_grad=True
    )
    assert relative(asked.input_grads["input"], reference["input_grads"]["input"]) <= 1e-10


@pytest.mark.torch
def test_float32_step_matches_torch_float32():
    # Both sides round differently (im2col GEMM vs torch's kernels); 1e-4 relative per tensor allows
    # ~40 chained ops each contributing a few ulps amplified by BN's 1/sigma (measured: ~1e-5).
    check_against_torch(load_network("tiny_resnet", norm="bn"), batch=4, tolerance=1e-4, dtype=np.float32)


# ------------------------------------------------------------------------------------------------------------
# Schedules against the baseline
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("numerics,tolerance", [("float64", 1e-13), ("float32", 1e-5)])
@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_concat", "tiny_mobilenet"])
def test_mbs_with_groupnorm_is_bit_identical_to_baseline(name, numerics, tolerance):
    net = load_network(name, norm="gn")
    baseline = run_step(net, None, numerics=numerics)
    for schedule in mbs_schedules(net, 6):
        result = run_step(net, schedule, numerics=numerics)
        assert_bit_identical_activations(result, baseline)
        assert_weight_grads_close(result, baseline, tolerance)
        assert abs(result.loss - baseline.loss) <= tolerance * abs(baseline.loss)


@pytest.mark.parametrize("numerics", ["float64", "float32"])
def test_mbs_with_batchnorm_boundaries_is_bit_identical_to_baseline(numerics):
    b = NetworkBuilder("bn_chain", (3, 12, 12), num_classes=5, norm="bn")
    for index in range(3):
        b.conv(f"conv{index}", 8, 3, 1, 1)
        b.norm_layer(f"bn{index}")
        b.relu(f"relu{index}")
    b.maxpool("pool", 2, 2)
    b.global_avgpool("gap")
    b.flatten("flatten")
    b.linear("fc", 5)
    b.loss()
    net = b.build()
    baseline = run_step(net, None, numerics=numerics)
    schedule = bn_boundary_schedule(net, 6, 2).validate(net, 6)
    assert all(g.sub_batch == 2 for g in schedule.groups)
    result = run_step(net, schedule, numerics=numerics)
    assert_bit_identical_activations(result, baseline)
    assert_weight_grads_close(result, baseline, 1e-13 if numerics == "float64" else 1e-5)
    for name, entry in baseline.state["running"].items():
        for key, value in entry.items():
            assert np.array_equal(result.state["running"][name][key], value)
    # ResNet-style: residual blocks (BN inside) stay whole-batch, the rest is serialised.
    net = load_network("tiny_resnet", norm="bn")
    baseline = run_step(net, None, numerics=numerics)
    result = run_step(net, bn_boundary_schedule(net, 6, 3).validate(net, 6), numerics=numerics)
    assert_bit_identical_activations(result, baseline)


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_concat", "tiny_mobilenet"])
def test_norm_fusion_equals_baseline_within_1e_12(name, norm):
    net = load_network(name, norm=norm)
    baseline = run_step(net, None)
    fused = run_step(net, Schedule.baseline(net, 6, norm_fusion=True, stash="minimal"))
    for name_, value in baseline.activations.items():
        assert relative(fused.activations[name_], value) <= 1e-12, name_
    for name_, value in baseline.input_grads.items():
        assert relative(fused.input_grads[name_], value) <= 1e-12, name_
    # Parameter gradients normwise over the whole gradient vector: a few gamma gradients are sums with
    # heavy cancellation (|dgamma| ~ 1e-6 against terms ~ 1e-3), where any two summation orders differ by
    # ~1e-11 of the tensor itself.
    assert_gradient_vectors_close(fused, baseline, 1e-12)
    # The fused run does not store normalised or ReLU outputs that a fused read recomputes.
    assert fused.stash_bytes < baseline.stash_bytes


def test_norm_fusion_with_mbs_and_groupnorm_equals_baseline():
    net = load_network("tiny_concat", norm="gn")
    baseline = run_step(net, None)
    result = run_step(net, Schedule.per_block(net, 4, norm_fusion=True))
    for name, value in baseline.input_grads.items():
        assert relative(result.input_grads[name], value) <= 1e-12, name
    assert_gradient_vectors_close(result, baseline, 1e-12)


# ------------------------------------------------------------------------------------------------------------
# Property test: random small DAGs and random schedules
# ------------------------------------------------------------------------------------------------------------
@st.composite
def _random_network_and_schedule(draw):
    channels = draw(st.sampled_from([2, 4]))
    size = draw(st.sampled_from([6, 8]))
    norm = draw(st.sampled_from(["gn", "bn"]))
    b = NetworkBuilder("random", (channels, size, size), num_classes=3, norm=norm, gn_groups=2)
    width = draw(st.sampled_from([4, 6]))
    b.conv("stem", width, 3, 1, 1)
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "residual", "concat", "pool"]))
        prefix = f"m{index}"
        if kind == "conv":
            b.norm_layer(f"{prefix}_norm")
            b.relu(f"{prefix}_relu")
            kernel = draw(st.sampled_from([1, 3]))
            b.conv(
                f"{prefix}_conv",
                width,
                kernel,
                draw(st.sampled_from([1, 2])),
                kernel // 2,
                groups=draw(st.sampled_from([1, 2])),
            )
        elif kind == "residual":
            start = b.last
            b.conv(f"{prefix}_a", width, 3, 1, 1)
            b.norm_layer(f"{prefix}_a_norm")
            b.relu(f"{prefix}_a_relu")
            b.conv(f"{prefix}_b", width, 3, 1, 1, groups=width)
            b.norm_layer(f"{prefix}_b_norm")
            b.add(f"{prefix}_add", [b.last, start])
        elif kind == "concat":
            start = b.last
            left = b.conv(f"{prefix}_left", 2, 1, inputs=start)
            b.maxpool(f"{prefix}_pool", 3, 1, 1, inputs=start)
            right = b.conv(f"{prefix}_right", 2, 1)
            b.concat(f"{prefix}_cat", [left, right, start])
            b.conv(f"{prefix}_mix", width, 1)
        else:
            b.avgpool(f"{prefix}_avg", 3, 1, 1)
    b.global_avgpool("gap")
    b.flatten("flatten")
    b.linear("fc", 3)
    b.loss()
    net = b.build()
    batch = draw(st.integers(2, 5))
    blocks = len(net.blocks())
    cuts = draw(st.sets(st.integers(1, blocks - 1), max_size=4))
    sub_batches = [draw(st.integers(1, batch)) for _ in range(len(cuts) + 1)]
    fusion = draw(st.booleans())
    schedule = Schedule.from_boundaries(net, batch, sorted(cuts), sub_batches, norm_fusion=fusion)
    # With BN a group may only be serialised if each of its BNs opens it (a boundary at every BN).
    groups = []
    for group in schedule.groups:
        inner_bn = any(net.layer(name).op == "batchnorm" for name in group.layers[1:])
        groups.append(Group(group.layers, batch if inner_bn else group.sub_batch))
    numerics = draw(st.sampled_from(["float64", "float32", "int8"]))
    return net, batch, Schedule(tuple(groups), norm_fusion=fusion), numerics


def _property_check(case):
    net, batch, schedule, numerics = case
    schedule.validate(net, batch)
    baseline_schedule = Schedule.baseline(net, batch, norm_fusion=schedule.norm_fusion)
    baseline = run_step(net, baseline_schedule, batch=batch, numerics=numerics)
    result = run_step(net, schedule, batch=batch, numerics=numerics)
    if numerics == "int8":
        assert_all_bits_equal(result, baseline)
    else:
        assert_bit_identical_activations(result, baseline)
        assert_weight_grads_close(result, baseline, 1e-12 if numerics == "float64" else 1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_network_and_schedule())
def test_any_valid_schedule_equals_the_baseline(case):
    _property_check(case)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_network_and_schedule())
def test_any_valid_schedule_equals_the_baseline_long(case):
    _property_check(case)


def test_resnet18_32x32_mbs_with_groupnorm_is_bit_identical_in_float32():
    net = load_network("resnet18", norm="gn", input_size=32)
    blocks = len(net.blocks())
    schedule = Schedule.from_boundaries(net, 4, [blocks // 3, 2 * blocks // 3], [1, 3, 2])
    baseline = run_step(net, None, batch=4, numerics="float32")
    result = run_step(net, schedule, batch=4, numerics="float32")
    assert_bit_identical_activations(result, baseline)
    assert_weight_grads_close(result, baseline, 1e-5)


@pytest.mark.slow
@pytest.mark.torch
def test_resnet50_64x64_step_matches_torch_float64():
    check_against_torch(load_network("resnet50", norm="gn", input_size=64), batch=2, tolerance=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet121", "googlenet", "mobilenet_v2"])
def test_zoo_networks_mbs_with_groupnorm_are_bit_identical(name):
    net = load_network(name, norm="gn", input_size=64)
    baseline = run_step(net, None, batch=4, numerics="float32")
    result = run_step(net, Schedule.per_block(net, 3, norm_fusion=False), batch=4, numerics="float32")
    assert_bit_identical_activations(result, baseline)
    assert_weight_grads_close(result, baseline, 1e-5)
