"""wavecore.golden.network: zoo parameter counts and MACs against published figures, shapes, blocks, YAML errors."""

from __future__ import annotations

import pytest

from wavecore.golden import zoo
from wavecore.golden.network import ZOO, Network, NetworkBuilder, NetworkError, load_network, zoo_path

# Published parameter counts (torchvision model cards; GoogLeNet without the auxiliary classifiers).
PUBLISHED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "vgg16": 138_357_544,
    "densenet121": 7_978_856,
    "googlenet": 6_624_904,
    "mobilenet_v2": 3_504_872,
}
# Published forward GMACs at 224x224 (torchvision model cards' "GFLOPS", which count multiply-adds).
PUBLISHED_GMACS = {
    "resnet18": 1.81,
    "resnet50": 4.09,
    "vgg16": 15.47,
    "densenet121": 2.83,
    "googlenet": 1.50,
    "mobilenet_v2": 0.30,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_zoo_parameter_count_matches_published_figure(name, norm):
    net = load_network(name, norm=norm if name != "vgg16" else "none")
    assert net.param_count() == PUBLISHED_PARAMS[name]


def test_vgg16_with_batchnorm_matches_torchvision_vgg16_bn():
    assert load_network("vgg16", norm="bn").param_count() == 138_365_992


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_zoo_macs_match_published_figure(name):
    assert round(load_network(name).macs() / 1e9, 2) == PUBLISHED_GMACS[name]


def test_tiny_network_parameter_counts_by_hand():
    # tiny_resnet: convs 3*8*9 + 2*(8*8*9) + 8*16*9 + 16*16*9 + 8*16 ; 7 norms (2C each) ; fc 16*10+10
    convs = 3 * 8 * 9 + 2 * 8 * 8 * 9 + 8 * 16 * 9 + 16 * 16 * 9 + 8 * 16
    norms = 2 * (8 + 8 + 8 + 16 + 16 + 16)
    assert load_network("tiny_resnet").param_count() == convs + norms + 16 * 10 + 10
    # tiny_mobilenet: stem 3*8*9, expand 8*16, dw 16*9, project 16*8, down dw 8*9; norms; fc 8*10+10
    convs = 3 * 8 * 9 + 8 * 16 + 16 * 9 + 16 * 8 + 8 * 9
    norms = 2 * (8 + 16 + 16 + 8 + 8)
    assert load_network("tiny_mobilenet").param_count() == convs + norms + 8 * 10 + 10


def test_tiny_networks_have_residual_concat_and_groupnorm():
    ops = {name: {layer.op for layer in load_network(name).layers} for name in ZOO if name.startswith("tiny")}
    assert all("groupnorm" in found for found in ops.values())
    assert "add" in ops["tiny_resnet"] and "concat" in ops["tiny_concat"]
    for name in ops:
        c, h, w = load_network(name).input_shape
        assert h == w and h in (8, 16) and c <= 4


def test_shapes_of_known_layers():
    vgg = load_network("vgg16")
    assert vgg.layer("pool5").out_shape == (512, 7, 7)
    assert vgg.layer("fc6").weight_shape == (4096, 25088)
    assert [layer.name for layer in vgg.layers if layer.op == "conv2d"][:3] == [
        "conv1_1",
        "conv1_2",
        "conv2_1",
    ]
    resnet = load_network("resnet18", input_size=32)
    assert resnet.layer("conv5_2_relu").out_shape == (512, 1, 1)
    assert resnet.layer("pool1").out_shape == (64, 8, 8)
    google = load_network("googlenet")
    assert google.layer("pool1").out_shape == (64, 56, 56)  # ceil mode: 112 -> 56
    assert google.layer("inception5b_concat").out_shape == (1024, 7, 7)
    dense = load_network("densenet121")
    assert dense.layer("norm5").out_shape == (1024, 7, 7)
    mobile = load_network("mobilenet_v2")
    assert mobile.layer("block2_dw").params["groups"] == 96
    assert mobile.layer("conv_last").out_shape == (1280, 7, 7)


def test_groupnorm_groups_follow_gn_groups():
    net = load_network("mobilenet_v2", norm="gn", gn_groups=32)
    assert net.layer("conv0_norm").params["groups"] == 32
    assert net.layer("block2_project_norm").params["groups"] == 8  # gcd(32, 24)
    assert load_network("resnet18", norm="gn", gn_groups=16).layer("conv1_norm").params["groups"] == 16


def test_blocks_of_resnet_densenet_googlenet():
    resnet = load_network("resnet18")
    blocks = [block.layers for block in resnet.blocks()]
    assert (
        "conv2_1a",
        "conv2_1a_norm",
        "conv2_1a_relu",
        "conv2_1b",
        "conv2_1b_norm",
        "conv2_1_add",
    ) in blocks
    down = next(b for b in blocks if "conv3_1_down" in b)
    assert down[0] == "conv3_1a" and down[-1] == "conv3_1_add"
    assert sum(len(b) for b in blocks) == len(resnet.layers)
    dense = load_network("densenet121")
    layer1 = next(b for b in dense.blocks() if "block1_layer1_conv1" in b.layers)
    assert layer1.layers[0] == "block1_layer1_norm1" and layer1.layers[-1] == "block1_layer1_concat"
    google = load_network("googlenet")
    module = google.block_of("inception3a_3x3")
    assert module.layers[0] == "inception3a_1x1" and module.layers[-1] == "inception3a_concat"
    # Between two blocks exactly one tensor is live: the last layer's output.
    for net in (resnet, dense, google):
        position = -1
        for block in net.blocks()[:-1]:
            position += len(block.layers)
            assert net.live_after(position) == [block.layers[-1]]


def test_yaml_round_trip_and_builder():
    for name in ("resnet18", "tiny_concat", "googlenet"):
        net = load_network(name, norm="gn")
        again = Network.from_yaml(net.to_yaml())
        assert [(l.name, l.op, l.inputs, l.params, l.out_shape) for l in again.layers] == [
            (l.name, l.op, l.inputs, l.params, l.out_shape) for l in net.layers
        ]
    builder = NetworkBuilder("mini", (3, 8, 8), num_classes=4)
    builder.conv("c1", 4, 3, padding=1)
    builder.norm_layer("n1")
    builder.relu("r1")
    builder.global_avgpool("gap")
    builder.flatten("flat")
    builder.linear("fc", 4)
    builder.loss()
    net = builder.build(norm="gn", gn_groups=2)
    assert net.layer("n1").op == "groupnorm" and net.layer("n1").params["groups"] == 2
    assert net.param_count() == 3 * 4 * 9 + 8 + 4 * 4 + 4


def test_zoo_files_are_generated_from_the_builders():
    for name in ZOO:
        assert zoo_path(name).read_text() == zoo.yaml_text(name), f"run python -m wavecore.golden.zoo ({name})"


def test_norm_none_removes_norm_layers_and_rewires():
    net = load_network("tiny_resnet", norm="none")
    assert not net.norm_layers()
    assert net.layer("stem_relu").inputs == ("stem",)


def test_layer_properties_for_planner():
    net = load_network("resnet50")
    conv = net.layer("conv2_1b")
    assert conv.weight_shape == (64, 64, 3, 3)
    assert conv.macs == 64 * 56 * 56 * 64 * 9
    assert conv.param_count == 64 * 64 * 9
    assert net.consumers("pool1") == ["conv2_1a", "conv2_1_down"]


def test_input_rows_invert_the_window_along_the_height():
    # output row r of a k/s/p window reads input rows r*s - p .. r*s - p + k - 1 (padding unclipped)
    resnet = load_network("resnet50")
    assert resnet.layer("conv1").input_rows(0, 1) == (-3, 5)  # 7x7, stride 2, padding 3
    assert resnet.layer("pool1").input_rows(55, 55) == (109, 111)  # 3x3, stride 2, padding 1
    vgg = load_network("vgg16")
    assert vgg.layer("conv1_1").input_rows(0, 0) == (-1, 1)  # 3x3, stride 1, padding 1
    assert vgg.layer("pool1").input_rows(3, 4) == (6, 9)  # 2x2, stride 2
    message = "layer 'relu1_1': input_rows needs a conv2d or pool layer, not relu"
    with pytest.raises(ValueError, match=message):
        vgg.layer("relu1_1").input_rows(0, 0)


def test_base_tensors_resolve_views_to_the_stored_tensors():
    net = load_network("tiny_resnet", norm="bn")
    base = net.base_tensors(("batchnorm", "relu", "flatten"))
    assert base["stem_relu"] == ("stem",)
    assert base["res1_relu"] == ("res1_add",)  # the add is stored; the ReLU after it is a view
    assert base["res2_add"] == ("res2_add",)
    assert base["flatten"] == ("gap",)
    assert base["input"] == ("input",)
    with_add_as_view = net.base_tensors(("batchnorm", "relu", "add"))
    assert with_add_as_view["res1_relu"] == ("res1b", "stem")  # operand order, no repeats
    assert net.layer("loss").out_elements == 0 and net.layer("fc").out_elements == 10


_GOOD = """
name: t
input: {name: input, shape: [3, 8, 8]}
num_classes: 2
layers:
  - {name: c1, op: conv2d, out_channels: 4, kernel: 3, padding: 1}
  - {name: r1, op: relu}
  - {name: gap, op: global_avgpool}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out_features: num_classes}
  - {name: loss, op: loss}
"""


def test_good_yaml_loads():
    net = Network.from_yaml(_GOOD)
    assert net.output.name == "loss" and net.layer("fc").out_shape == (2,)


@pytest.mark.parametrize(
    "old,new,message",
    [
        ("op: relu}", "op: relux}", "layer 'r1': op must be one of"),
        ("kernel: 3, padding: 1}", "kernel: 3, padding: 1, groups: 3}", "layer 'c1': groups 3 must divide"),
        ("kernel: 3, padding: 1}", "kernel: -1}", "layer 'c1': kernel must be an integer >= 1"),
        (
            "kernel: 3, padding: 1}",
            "kernel: 3, padding: 1, dilation: 2}",
            "layer 'c1': dilation is not a parameter",
        ),
        (
            "{name: r1, op: relu}",
            "{name: r1, op: relu, inputs: [nowhere]}",
            "layer 'r1': inputs names unknown layer",
        ),
        ("{name: r1, op: relu}", "{name: r1, op: relu, inputs: [gap]}", "layer 'r1': inputs form a cycle"),
        (
            "{name: r1, op: relu}",
            "{name: r1, op: relu, inputs: [r1]}",
            "layer 'r1': inputs names the layer itself (cycle)",
        ),
        (
            "{name: gap, op: global_avgpool}",
            "{name: gap, op: add, inputs: [c1, input]}",
            "layer 'gap': inputs of add must have equal shapes",
        ),
        ("{name: flat, op: flatten}", "{name: flat, op: relu}", "layer 'fc': inputs linear needs a flat"),
        ("kernel: 3, padding: 1}", "kernel: 9}", "layer 'c1': kernel 9 is larger than the padded input"),
        (
            "{name: r1, op: relu}",
            "{name: r1, op: relu}\n  - {name: dead, op: relu, inputs: [c1]}",
            "layer 'r1': output is never used",
        ),
        (
            "{name: loss, op: loss}",
            "{name: loss, op: loss, inputs: [flat]}",
            "layer 'loss': inputs loss needs 2 logits (num_classes), not 4",
        ),
        ("{name: r1, op: relu}", "{name: c1, op: relu}", "layer 'c1': name is used by an earlier layer"),
        ("num_classes: 2", "num_classes: 0", "network: field 'num_classes' must be an integer >= 1"),
        ("num_classes: 2", "num_classes: 2\nnorm: ln", "network: field 'norm' must be one of bn, gn, none"),
        (
            "{name: r1, op: relu}",
            "{name: r1, op: relu, max_value: -1}",
            "layer 'r1': max_value must be a positive",
        ),
    ],
)
def test_invalid_yaml_gives_one_line_error_naming_layer_and_field(old, new, message):
    assert old in _GOOD
    with pytest.raises(NetworkError) as error:
        Network.from_yaml(_GOOD.replace(old, new, 1))
    text = str(error.value)
    assert message in text and "\n" not in text


def test_yaml_syntax_error_and_unknown_zoo_name():
    with pytest.raises(NetworkError, match="not valid YAML at line"):
        Network.from_yaml("name: [\nlayers: x\n")
    with pytest.raises(NetworkError, match="network must be one of resnet18"):
        load_network("resnet19")
