"""LR-CNN row cuts, activation-memory estimates and row-block execution (Wang et al., arXiv 2401.11471)."""

import numpy as np
import pytest

from wavecore.golden.network import NetworkBuilder, load_network
from wavecore.golden.plan.lrcnn import (
    activation_memory,
    overlap_cuts,
    required_rows,
    row_block_backward,
    row_block_forward,
    two_phase_sharing_cuts,
)
from wavecore.golden.train import init_params, init_state, train_step

FULL_DEPTH = [(0, 0), (1, 1), (2, 2), (3, 6)]
TWO_PHASE = [(0, 2), (3, 7), (8, 12), (13, 17), (18, 22), (23, 27)]
OVERL = [(0, 13), (14, 27), (28, 41), (42, 55)]
VGG_PLAN = [
    ("conv1_1", 64),
    ("conv1_2", 64),
    ("pool1", 0),
    ("conv2_1", 128),
    ("conv2_2", 128),
    ("pool2", 0),
    ("conv3_1", 256),
    ("conv3_2", 256),
    ("conv3_3", 256),
    ("pool3", 0),
    ("conv4_1", 512),
    ("conv4_2", 512),
    ("conv4_3", 512),
    ("pool4", 0),
    ("conv5_1", 512),
    ("conv5_2", 512),
    ("conv5_3", 512),
    ("pool5", 0),
]


@pytest.fixture(scope="module")
def vgg16():
    return load_network("vgg16")


def narrow_vgg(width=32, channels=2):
    """VGG-16's row geometry (224 rows, 3x3/1 pad-1 convs, 2x2/2 pools) with few channels and columns."""
    builder = NetworkBuilder("narrow_vgg", (channels, 224, width), num_classes=3, norm="none")
    for name, _ in VGG_PLAN:
        if name.startswith("conv"):
            builder.conv(name, channels, 3, padding=1, bias=True)
            builder.relu(name.replace("conv", "relu"))
        else:
            builder.maxpool(name, 2, 2)
    builder.flatten("flatten")
    builder.linear("fc", 3)
    builder.loss("loss")
    return builder.build()


def test_2ps_full_depth_cuts_match_the_authors_code(vgg16):
    assert two_phase_sharing_cuts(vgg16, "pool5", FULL_DEPTH) == [
        (0, 122),
        (120, 154),
        (152, 186),
        (184, 224),
    ]


def test_2ps_two_phase_cuts_match_the_authors_code(vgg16):
    assert two_phase_sharing_cuts(vgg16, "pool3", TWO_PHASE) == [
        (0, 42),
        (40, 82),
        (80, 122),
        (120, 162),
        (160, 202),
        (200, 224),
    ]


def test_overl_cuts_match_the_authors_code(vgg16):
    assert overlap_cuts(vgg16, "pool2", OVERL) == [(0, 62), (50, 118), (106, 174), (162, 224)]


def test_one_sided_receptive_field_of_pool5_rows(vgg16):
    # receptive-field inversion: input rows needed for pool5 rows 0..2 end at 121, 153, 185 (head block = 122 rows)
    ends = [required_rows(vgg16, "pool5", r, r, one_sided=True)["input"][1] for r in range(3)]
    assert ends == [121, 153, 185]
    # one-sided: every tensor below the region end from its first row (a 2PS block holds what earlier
    # blocks computed)
    one_sided = required_rows(vgg16, "pool5", 2, 2, one_sided=True)
    assert one_sided.pop("pool5") == (2, 2)
    assert {lo for lo, _ in one_sided.values()} == {0}
    two_sided = required_rows(vgg16, "pool5", 2, 2)
    assert two_sided["relu5_3"] == (4, 5)  # the 2x2/2 pool reads rows 4..5
    assert two_sided["conv5_2"] == (3, 6)  # which the 3x3/1 pad-1 conv5_3 computes from rows 3..6


@pytest.mark.parametrize(
    ("end", "rows", "kind", "fraction", "per_block"),
    [
        ("pool5", FULL_DEPTH, "2ps", 0.57, [7.68, 2.18, 2.18, 3.20]),
        ("pool3", TWO_PHASE, "2ps", 0.34, [2.25, 2.43, 2.43, 2.43, 2.43, 1.64]),
        ("pool2", OVERL, "overl", 0.52, [2.91, 3.07, 3.07, 2.91]),
    ],
)
def test_activation_memory_matches_the_stated_estimates(vgg16, end, rows, kind, fraction, per_block):
    memory = activation_memory(vgg16, end, rows, schedule=kind, last_layer="pool5")
    assert memory.baseline == 15_228_416  # VGG-16 conv/pool tensors at 224x224: 15.23 M elements per image
    assert round(memory.fraction, 2) == fraction
    assert [round(v / 1e6, 2) for v in memory.per_block] == per_block


def test_ranges_must_cover_the_output(vgg16):
    with pytest.raises(ValueError, match=r"output_rows must cover rows 0..6 of 'pool5', not 0..5"):
        two_phase_sharing_cuts(vgg16, "pool5", [(0, 5)])


@pytest.mark.parametrize(
    ("end", "rows", "kind"),
    [
        ("pool5", FULL_DEPTH, "2ps"),
        ("pool3", TWO_PHASE, "2ps"),
        ("pool2", OVERL, "overl"),
        ("pool5", FULL_DEPTH, "overl"),
    ],
)
def test_row_blocks_equal_the_whole_image_forward(end, rows, kind):
    network = narrow_vgg()
    params = init_params(network, seed=1)
    x = np.random.default_rng(2).standard_normal((2, *network.input_shape))
    reference = train_step(network, params, init_state(network), x, np.array([0, 1])).activations[end]
    cuts = (two_phase_sharing_cuts if kind == "2ps" else overlap_cuts)(network, end, rows)
    output, stats = row_block_forward(network, params, x, end, cuts, schedule=kind)
    assert output.shape == reference.shape
    assert np.array_equal(output, reference)
    if kind == "2ps":
        # every row computed exactly once; a 3x3 conv input carries k - 1 = 2 rows
        assert stats["computed_rows"]["conv1_1"] == 224
        assert stats["max_carried_rows"]["relu1_1"] == 2


def test_row_blocks_on_a_residual_network_equal_the_whole_forward():
    network = load_network("tiny_resnet", norm="none")
    params = init_params(network, seed=3)
    x = np.random.default_rng(4).standard_normal((2, *network.input_shape))
    reference = train_step(network, params, init_state(network), x, np.array([0, 1])).activations["res2_relu"]
    for kind, function in (("2ps", two_phase_sharing_cuts), ("overl", overlap_cuts)):
        cuts = function(network, "res2_relu", [(0, 1), (2, 4), (5, 7)])
        output, _ = row_block_forward(network, params, x, "res2_relu", cuts, schedule=kind)
        assert np.array_equal(output, reference), kind


def test_row_blocks_refuse_norm_layers():
    network = load_network("tiny_resnet", norm="gn")
    params = init_params(network)
    x = np.zeros((1, *network.input_shape))
    with pytest.raises(ValueError, match="row blocks cannot run groupnorm layer 'stem_norm' exactly"):
        row_block_forward(network, params, x, "stem_relu", [(0, 16)], schedule="overl")


@pytest.mark.parametrize(
    ("network_name", "end", "rows"),
    [
        ("narrow_vgg", "pool5", FULL_DEPTH),
        ("narrow_vgg", "pool3", TWO_PHASE),
        ("narrow_vgg", "pool2", OVERL),
        ("tiny_resnet", "res2_relu", [(0, 1), (2, 4), (5, 7)]),
    ],
)
def test_row_block_backward_equals_the_whole_image_gradients(network_name, end, rows):
    network = narrow_vgg() if network_name == "narrow_vgg" else load_network(network_name, norm="none")
    params = init_params(network, seed=5)
    x = np.random.default_rng(6).standard_normal((2, *network.input_shape))
    result = train_step(network, params, init_state(network), x, np.array([0, 1]), input_grad=True)
    grads, dx = row_block_backward(network, params, x, end, rows, result.input_grads[end])
    region = [layer.name for layer in network.layers[: network.index(end) + 1] if layer.op == "conv2d"]
    assert sorted(grads) == sorted(region)
    for name in region:
        np.testing.assert_allclose(grads[name]["weight"], result.grads[name]["weight"], rtol=1e-9, atol=1e-12)
        if "bias" in result.grads[name]:
            np.testing.assert_allclose(grads[name]["bias"], result.grads[name]["bias"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dx, result.input_grads["input"], rtol=1e-9, atol=1e-12)
