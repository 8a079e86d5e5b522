"""Shared helpers of the golden-model tests (test_golden_train/_schedule/_integer): data, one step under a
schedule, and the comparisons (bit-identical, normwise-relative) used against the baseline."""

from __future__ import annotations

import numpy as np

from golden.network import NetworkBuilder
from golden.numerics import IntegerTraining, MacArithmetic
from golden.schedule import Schedule
from golden.train import SGD, init_params, init_state, train_step

OPTIMIZER = SGD(lr=0.1, momentum=0.9, weight_decay=1e-4)


def data(net, batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *net.input_shape)), rng.integers(0, net.num_classes, batch)


def relative(golden, reference):
    """Normwise relative difference; tensors that are mathematically zero (e.g. the bias gradient of a BN
    feeding only another BN through a 1x1 conv) are measured against a floor of 1e-6."""
    reference = np.asarray(reference, dtype=np.float64)
    return np.abs(np.asarray(golden, dtype=np.float64) - reference).max() / max(np.abs(reference).max(), 1e-6)


def dense_block(norm):
    """DenseNet-style: stem, two pre-activation dense layers with concats, a transition."""
    b = NetworkBuilder("dense_block", (3, 16, 16), num_classes=10, norm=norm, gn_groups=4)
    b.conv("stem", 16, 3, 1, 1)
    features = b.last
    for index in (1, 2):
        b.norm_layer(f"l{index}_norm1", inputs=features)
        b.relu(f"l{index}_relu1")
        b.conv(f"l{index}_conv1", 32, 1)
        b.norm_layer(f"l{index}_norm2")
        b.relu(f"l{index}_relu2")
        b.conv(f"l{index}_conv2", 8, 3, 1, 1)
        features = b.concat(f"l{index}_concat", [features, b.last])
    b.norm_layer("t_norm")
    b.relu("t_relu")
    b.conv("t_conv", 16, 1)
    b.avgpool("t_pool", 2, 2)
    b.global_avgpool("gap")
    b.flatten("flatten")
    b.linear("fc", 10)
    b.loss()
    return b.build()


def mobilenet_block(norm):
    """MobileNet-v2-style: stem, an inverted residual with add, a strided one without."""
    b = NetworkBuilder("mobilenet_block", (3, 16, 16), num_classes=10, norm=norm, gn_groups=4)
    b.conv("stem", 16, 3, 1, 1)
    b.norm_layer("stem_norm")
    b.relu("stem_relu", max_value=6)
    block_input = b.last
    for name, stride, out in (("ir1", 1, 16), ("ir2", 2, 24)):
        b.conv(f"{name}_expand", 96 if name == "ir1" else 96, 1)
        b.norm_layer(f"{name}_expand_norm")
        b.relu(f"{name}_expand_relu", max_value=6)
        b.conv(f"{name}_dw", 96, 3, stride, 1, groups=96)
        b.norm_layer(f"{name}_dw_norm")
        b.relu(f"{name}_dw_relu", max_value=6)
        b.conv(f"{name}_project", out, 1)
        b.norm_layer(f"{name}_project_norm")
        if stride == 1:
            b.add(f"{name}_add", [b.last, block_input])
    b.global_avgpool("gap")
    b.flatten("flatten")
    b.linear("fc", 10)
    b.loss()
    return b.build()


def run_step(net, schedule, batch=6, numerics="float64", seed=0):
    x, labels = data(net, batch, seed)
    dtype = np.float32 if numerics == "float32" else np.float64
    return train_step(
        net,
        init_params(net, seed=3, dtype=dtype),
        init_state(net, dtype=dtype),
        x,
        labels,
        schedule=schedule,
        numerics=numerics,
        optimizer=OPTIMIZER,
    )


def assert_bit_identical_activations(result, baseline):
    assert result.activations.keys() == baseline.activations.keys()
    for name, value in baseline.activations.items():
        assert np.array_equal(result.activations[name], value), name
    assert result.input_grads.keys() == baseline.input_grads.keys()
    for name, value in baseline.input_grads.items():
        assert np.array_equal(result.input_grads[name], value), name


def assert_weight_grads_close(result, baseline, tolerance):
    for name, entry in baseline.grads.items():
        for key, value in entry.items():
            assert relative(result.grads[name][key], value) <= tolerance, (name, key)
            assert relative(result.params[name][key], baseline.params[name][key]) <= tolerance, (name, key)


def assert_gradient_vectors_close(result, baseline, tolerance):
    difference = max(
        np.abs(result.grads[n][k] - v).max() for n, e in baseline.grads.items() for k, v in e.items()
    )
    scale = max(np.abs(v).max() for e in baseline.grads.values() for v in e.values())
    assert difference <= tolerance * scale
    difference = max(
        np.abs(result.params[n][k] - v).max() for n, e in baseline.params.items() for k, v in e.items()
    )
    scale = max(np.abs(v).max() for e in baseline.params.values() for v in e.values())
    assert difference <= tolerance * scale


def mbs_schedules(net, batch):
    blocks = net.blocks()
    half = len(blocks) // 2
    return [
        Schedule.per_block(net, 1),
        Schedule.per_block(net, 4),  # ragged: 4 + 2
        Schedule.from_boundaries(net, batch, [half], [2, 3]),
        Schedule.from_boundaries(net, batch, [], [5]),  # one group, ragged 5 + 1
    ]


def bn_boundary_schedule(net, batch, sub_batch):
    """Serialise every block that does not hold a BN except as its first layer; others run whole-batch."""
    return Schedule.serialised(net, batch, sub_batch)


INTEGER_MODES = [
    IntegerTraining(),
    IntegerTraining(
        mac=MacArithmetic(in_width=8, acc_width=16, signed=True, overflow="wrap"),
        activation_frac=4,
        weight_frac=6,
        grad_frac=7,
        weight_grad_frac=7,
        rounding="half_up",
    ),
    IntegerTraining(
        mac=MacArithmetic(in_width=8, acc_width=18, signed=True, overflow="saturate"),
        activation_frac=4,
        weight_frac=6,
        grad_frac=7,
        weight_grad_frac=7,
        rounding="floor",
    ),
]


def assert_all_bits_equal(result, baseline):
    assert_bit_identical_activations(result, baseline)
    for name, entry in baseline.grads.items():
        for key, value in entry.items():
            assert np.array_equal(result.grads[name][key], value), (name, key)
            assert np.array_equal(result.params[name][key], baseline.params[name][key]), (name, key)
    assert result.state["velocity"].keys() == baseline.state["velocity"].keys()
    for slot, value in baseline.state["velocity"].items():
        assert np.array_equal(result.state["velocity"][slot], value), slot
    assert result.loss == baseline.loss
    assert result.loss_q == baseline.loss_q
