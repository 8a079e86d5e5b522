"""MBS planning: greedy vs optimal vs brute force, executable schedules, BN rules, sub-batch growth."""

import itertools

import numpy as np
import pytest

from wavecore.golden.network import load_network
from wavecore.golden.plan.mbs import plan_baseline, plan_greedy, plan_optimal, units
from wavecore.golden.plan.traffic import NetworkModel, TrafficOptions
from wavecore.golden.train import init_params, init_state, train_step

MIB = 1 << 20


@pytest.fixture(scope="module")
def resnet50():
    return load_network("resnet50", norm="gn")


def brute_force(network, batch, capacity, model):
    """Cheapest grouping over every contiguous cut set of the units (each unit may also run tiled)."""
    from wavecore.golden.plan.mbs import _Coster

    coster = _Coster(network, model, batch, capacity)
    count = len(coster.units)
    best = None
    for mask in range(1 << (count - 1)):
        cuts = [c for c in range(1, count) if mask >> (c - 1) & 1]
        total = 0
        for a, b in itertools.pairwise([0, *cuts, count]):
            group = coster.cost(a, b - 1)
            options = [group.total] if group is not None else []
            if b - a == 1:
                options.append(coster.tiled_cost(a))
            if not options:
                break
            total += min(options)
        else:
            best = total if best is None else min(best, total)
    return best


@pytest.mark.parametrize("kib", [6, 12, 24, 48])
def test_dp_equals_brute_force_on_tiny_resnet(kib):
    network = load_network("tiny_resnet")
    model = NetworkModel(network, TrafficOptions(weight_buffer_bytes=1024))
    capacity = kib * 1024
    assert plan_optimal(network, 8, capacity, model=model).traffic.total == brute_force(
        network, 8, capacity, model
    )


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "googlenet"])
@pytest.mark.parametrize("mib", [2, 10, 32])
def test_optimal_is_never_worse_than_greedy(name, mib):
    network = load_network(name, norm="gn")
    model = NetworkModel(network)
    greedy = plan_greedy(network, 32, mib * MIB, model=model)
    optimal = plan_optimal(network, 32, mib * MIB, model=model)
    baseline = plan_baseline(network, 32, model=model)
    assert optimal.traffic.total <= greedy.traffic.total <= baseline.traffic.total


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_concat", "tiny_mobilenet"])
def test_greedy_merges_everything_when_the_whole_network_fits(name):
    # the greedy rule: a group grows while that costs less than running the next unit apart; with a
    # buffer holding the whole batch of every layer, one group at full batch is optimal
    network = load_network(name, norm="gn")
    greedy = plan_greedy(network, 8, 1 << 30)
    assert [len(names) for names, _ in greedy.groups] == [len(network.layers)]
    assert greedy.groups[0][1] == 8 and not greedy.tiled
    assert greedy.traffic.total == plan_optimal(network, 8, 1 << 30).traffic.total
    assert greedy.traffic.total < plan_baseline(network, 8).traffic.total


def test_sub_batch_grows_with_depth_on_resnet50(resnet50):
    # ResNet-50: the per-sample live set halves per stage, so the feasible sub-batch roughly doubles
    plan = plan_optimal(resnet50, 32, 10 * MIB)
    serial = [b for i, (_, b) in enumerate(plan.groups) if i not in plan.tiled]
    assert serial == sorted(serial)
    assert serial[0] <= 2 and serial[-1] >= 16


def test_modules_are_never_split(resnet50):
    plan = plan_optimal(resnet50, 32, 4 * MIB)
    starts = {block.layers[0] for block in resnet50.blocks()}
    assert all(names[0] in starts for names, _ in plan.groups)
    plan.to_schedule().validate(resnet50, 32)


def test_batchnorm_forces_a_group_boundary():
    network = load_network("resnet50", norm="bn")
    plan = plan_optimal(network, 32, 10 * MIB)
    for index, (names, sub_batch) in enumerate(plan.groups):
        if sub_batch < 32:
            inner = [n for n in names[1:] if network.layer(n).op == "batchnorm"]
            assert not inner, index
    plan.to_schedule().validate(network, 32)


def test_units_are_the_blocks(resnet50):
    model = NetworkModel(resnet50)
    assert len(units(resnet50, model)) == len(resnet50.blocks()) - 1  # the input block is not a unit


def _run(network, schedule, batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *network.input_shape))
    labels = rng.integers(0, network.num_classes, batch)
    params = init_params(network, seed=seed)
    return train_step(network, params, init_state(network), x, labels, schedule=schedule)


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_concat", "tiny_mobilenet"])
@pytest.mark.parametrize("kib", [6, 16, 64])
def test_planned_schedules_run_and_match_the_baseline(name, kib):
    network = load_network(name, norm="gn")
    options = TrafficOptions(weight_buffer_bytes=1024)
    batch = 6
    reference = _run(network, None, batch)
    for planner in (plan_greedy, plan_optimal):
        plan = planner(network, batch, kib * 1024, options=options)
        result = _run(network, plan.to_schedule(), batch)
        assert result.loss == pytest.approx(reference.loss, rel=1e-12)
        for layer, grads in reference.grads.items():
            np.testing.assert_allclose(result.grads[layer]["weight"], grads["weight"], rtol=1e-10, atol=1e-12)
        for layer, value in reference.activations.items():
            assert np.array_equal(result.activations[layer], value), layer  # GN: serialisation is exact


def test_fused_plan_runs_with_norm_fusion_and_matches_the_baseline():
    network = load_network("tiny_resnet", norm="gn")
    options = TrafficOptions(weight_buffer_bytes=1024, norm_variant="fused", weight_grad_accumulation="dram")
    plan = plan_optimal(network, 6, 16 * 1024, options=options)
    schedule = plan.to_schedule()
    assert schedule.norm_fusion and schedule.weight_grad_accumulation == "dram"
    reference = _run(network, None, 6)
    result = _run(network, schedule, 6)
    assert result.loss == pytest.approx(reference.loss, rel=1e-10)
    for layer, grads in reference.grads.items():
        np.testing.assert_allclose(result.grads[layer]["weight"], grads["weight"], rtol=1e-8, atol=1e-10)


def test_planned_bn_schedule_runs_and_matches_the_baseline():
    network = load_network("tiny_resnet", norm="bn")
    plan = plan_optimal(network, 6, 16 * 1024, options=TrafficOptions(weight_buffer_bytes=1024))
    reference = _run(network, None, 6)
    result = _run(network, plan.to_schedule(), 6)
    assert result.loss == pytest.approx(reference.loss, rel=1e-12)
    for layer, grads in reference.grads.items():
        np.testing.assert_allclose(result.grads[layer]["weight"], grads["weight"], rtol=1e-10, atol=1e-12)


def test_bad_capacity_message(resnet50):
    with pytest.raises(ValueError, match="capacity must be a positive number of bytes, not 0"):
        plan_optimal(resnet50, 32, 0)
