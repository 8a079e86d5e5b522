"""wavecore.golden.importer: PyTorch (torch.fx) and ONNX models as networks, checked by training them in PyTorch.

The oracle is PyTorch itself: the original module, given the imported weights, takes one SGD step in float64;
the golden model's step on the imported network must give the same loss and the same parameters and BN
running statistics (1e-9 relative). The ONNX export of each module must import to the identical YAML.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch
import torch_models
from golden_helpers import relative

from wavecore.golden.importer import (
    ONNX_SUPPORTED,
    TORCH_SUPPORTED,
    ModelImportError,
    from_onnx,
    from_torch,
    parse_input_shape,
)
from wavecore.golden.train import SGD, train_step

pytestmark = pytest.mark.torch

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


def _model(name, seed=0):
    torch.manual_seed(seed)
    model = torch_models.MODELS[name]()
    with torch.no_grad():  # BN starts from non-trivial running statistics and affine parameters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.GroupNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    return model


def _export_onnx(model, input_shape, path):
    # optimize=False: the exporter's optimizer folds BatchNorm into the convolution (nothing left to train)
    torch.onnx.export(model, (torch.zeros(2, *input_shape),), str(path), dynamo=True, optimize=False, verbose=False)


@pytest.mark.parametrize("name", sorted(torch_models.MODELS))
def test_imported_network_trains_like_the_original_module(name):
    model = _model(name).double()
    imported = from_torch(model, model.INPUT, name=name)
    network = imported.network
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, *model.INPUT))
    labels = rng.integers(0, network.num_classes, 4)

    result = train_step(
        network,
        imported.params,
        imported.state,
        x,
        labels,
        numerics="float64",
        optimizer=SGD(lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY),
    )

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(labels))
    loss.backward()
    optimizer.step()

    assert abs(result.loss - loss.item()) <= 1e-9 * abs(loss.item())
    torch_tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    compared = set()
    for layer, entry in result.params.items():
        for key, value in entry.items():
            reference = torch_tensors[f"{imported.origins[layer]}.{key}"].detach().numpy()
            assert relative(value, reference) <= 1e-9, (layer, key)
            compared.add(f"{imported.origins[layer]}.{key}")
    for layer, entry in result.state["running"].items():
        for key in ("running_mean", "running_var"):
            reference = torch_tensors[f"{imported.origins[layer]}.{key}"].numpy()
            assert relative(entry[key], reference) <= 1e-9, (layer, key)
    assert compared == set(dict(model.named_parameters()))  # every parameter of the module was imported


@pytest.mark.parametrize("name", sorted(torch_models.MODELS))
def test_onnx_export_imports_to_the_identical_yaml_and_weights(name, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    model = _model(name)
    imported = from_torch(model, model.INPUT, name=name)
    path = tmp_path / f"{name}.onnx"
    _export_onnx(model.train(), model.INPUT, path)
    from_file = from_onnx(path, name=name)
    assert from_file.network.to_yaml() == imported.network.to_yaml()
    assert from_file.params.keys() == imported.params.keys()
    for layer, entry in imported.params.items():
        for key, value in entry.items():
            np.testing.assert_array_equal(from_file.params[layer][key], value, err_msg=f"{layer}.{key}")
    for layer, entry in imported.state["running"].items():
        for key in ("running_mean", "running_var"):
            np.testing.assert_array_equal(from_file.state["running"][layer][key], entry[key])


def test_layer_names_follow_module_paths():
    imported = from_torch(_model("resnet_block"), (3, 8, 8), name="resnet_block")
    names = [layer.name for layer in imported.network.layers]
    assert names[:5] == ["x", "conv1", "bn1", "relu", "maxpool"]
    # the block's ReLU module is called twice; `out += identity` is the block's only op of its own
    assert names[7:12] == ["layer1_0_relu", "layer1_0_conv2", "layer1_0_bn2", "layer1_0", "layer1_0_relu_1"]
    assert imported.network.layer("layer1_0").op == "add"
    assert names[-4:] == ["avgpool", "flatten", "fc", "loss"]
    assert imported.origins["layer1_1_downsample_0"] == "layer1.1.downsample.0"


def test_unsupported_module_is_refused_in_one_line():
    with pytest.raises(ModelImportError) as error:
        from_torch(torch_models.WithSigmoid(), (3, 4, 4))
    assert str(error.value) == f"node 'act' (Sigmoid) is not supported; wavecore imports {TORCH_SUPPORTED}"


@pytest.mark.parametrize(
    "forward,features,message",
    [
        (lambda x: torch.sigmoid(x), 48, "node 'sigmoid' (torch.sigmoid) is not supported"),
        (lambda x: x * 2, 48, "node 'mul' (operator.mul) is not supported"),
        (lambda x: torch.cat([x, x], 2), 96, "node 'cat' (torch.cat) is not supported (only along the channels"),
        (lambda x: x.mean(1), 16, "node 'mean' (Tensor.mean) is not supported (only the mean over H and W"),
    ],
    ids=["sigmoid", "scale", "cat_height", "mean_channels"],
)
def test_unsupported_functions_are_refused_naming_node_and_op(forward, features, message):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(features, 10)

        def forward(self, x):
            return self.fc(torch.flatten(forward(x), 1))

    with pytest.raises(ModelImportError) as error:
        from_torch(Model(), "3x4x4")
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_unsupported_onnx_node_is_refused_in_one_line(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    path = tmp_path / "sigmoid.onnx"
    _export_onnx(torch_models.WithSigmoid(), (3, 4, 4), path)
    with pytest.raises(ModelImportError) as error:
        from_onnx(path)
    assert str(error.value) == f"node 'node_sigmoid' (Sigmoid) is not supported; wavecore imports {ONNX_SUPPORTED}"


def test_output_must_be_logits_and_input_shape_is_checked():
    with pytest.raises(ModelImportError, match=r"output 'conv' has per-sample shape \(4, 4, 4\); the cross-entropy"):
        from_torch(torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(3, 4, 3, padding=1))), (3, 4, 4))
    for bad in ("3x32", "0x4x4", "axbxc", (3, 4)):
        with pytest.raises(ModelImportError, match="input shape must be CxHxW"):
            parse_input_shape(bad)
    assert parse_input_shape("3X32x16") == (3, 32, 16)


def test_docs_python_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    text = (Path(__file__).resolve().parents[2] / "docs" / "import.md").read_text()
    section = text[text.index("## From Python") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    printed = section.split("prints\n\n```\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/import.md", "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out == printed + "\n"
    assert (tmp_path / "build" / "import" / "net.weights.npz").is_file()


def test_dead_branches_are_dropped_and_do_not_change_names():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.unused = torch.nn.Conv2d(3, 4, 1)
            self.fc = torch.nn.Linear(64, 10)

        def forward(self, x):
            self.unused(x)  # computed, never used: not a layer of the network
            return self.fc(torch.relu(torch.flatten(self.conv(x), 1)))

    imported = from_torch(Model(), (3, 4, 4), name="dead")
    assert [layer.name for layer in imported.network.layers] == ["x", "conv", "flatten", "relu", "fc", "loss"]
    assert set(imported.params) == {"conv", "fc"}


def _hand_written_onnx(path, *, dilation=1, batch=2):
    """An ONNX graph written with onnx.helper (no PyTorch metadata), float64, opset 21."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    initializers = {
        "conv.weight": rng.standard_normal((6, 3, 3, 3)),
        "conv.bias": rng.standard_normal(6),
        "gn.weight": rng.uniform(0.5, 1.5, 6),
        "gn.bias": rng.standard_normal(6),
        "zero": np.array(0.0),
        "six": np.array(6.0),
        "axes": np.array([2, 3], dtype=np.int64),
        "fc.weight": rng.standard_normal((12, 5)),
        "fc.bias": rng.standard_normal(5),
    }
    make = helper.make_node
    nodes = [
        make("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1] * 4, strides=[2, 2], dilations=[dilation] * 2),
        # stash_type 11: the reference computes the statistics in float64 (its default is float32)
        make("GroupNormalization", ["c", "gn.weight", "gn.bias"], ["g"], num_groups=3, epsilon=1e-5, stash_type=11),
        make("Clip", ["g", "zero", "six"], ["r"]),
        make("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
        make("AveragePool", ["m"], ["a"], kernel_shape=[3, 3], pads=[1] * 4, count_include_pad=1),
        make("Concat", ["m", "a"], ["cat"], axis=1),
        make("ReduceMean", ["cat", "axes"], ["mean"], keepdims=0),
        make("MatMul", ["mean", "fc.weight"], ["mm"]),
        make("Add", ["mm", "fc.bias"], ["logits"], name="fc_bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.DOUBLE, [batch, 5])],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    path.write_bytes(model.SerializeToString())
    return model


@pytest.mark.parametrize("batch", [2, "N"], ids=["static_batch", "symbolic_batch"])
def test_hand_written_onnx_graph_computes_what_the_onnx_reference_computes(batch, tmp_path):
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    model = _hand_written_onnx(tmp_path / "hand.onnx", batch=batch)
    imported = from_onnx(tmp_path / "hand.onnx")
    network = imported.network
    assert [(layer.name, layer.op) for layer in network.layers] == [
        ("x", "input"), ("conv", "conv2d"), ("gn", "groupnorm"), ("relu", "relu"), ("maxpool", "maxpool"),
        ("avgpool", "avgpool"), ("concat", "concat"), ("global_avgpool", "global_avgpool"), ("flatten", "flatten"),
        ("fc", "linear"), ("loss", "loss"),
    ]  # fmt: skip
    assert network.name == "hand" and network.layer("gn").params["groups"] == 3
    assert network.layer("relu").params["max_value"] == 6.0 and network.layer("conv").params["stride"] == (2, 2)
    x = np.random.default_rng(6).standard_normal((2, 3, 8, 8))
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
    result = train_step(network, imported.params, imported.state, x, np.array([0, 3]), numerics="float64")
    assert relative(result.activations["fc"], expected) <= 1e-10


def test_unsupported_onnx_setting_names_it(tmp_path):
    pytest.importorskip("onnx")
    _hand_written_onnx(tmp_path / "dilated.onnx", dilation=2)
    with pytest.raises(ModelImportError) as error:
        from_onnx(tmp_path / "dilated.onnx")
    assert str(error.value) == f"node 'c' (Conv) is not supported (only dilation 1); wavecore imports {ONNX_SUPPORTED}"


def test_legacy_onnx_exporter_imports_the_same_network_under_initializer_names(tmp_path):
    pytest.importorskip("onnx")
    model = _model("resnet_block")
    imported = from_torch(model, model.INPUT, name="legacy")
    path = tmp_path / "legacy.onnx"
    torch.onnx.export(
        model.train(), (torch.zeros(2, *model.INPUT),), str(path), dynamo=False,
        training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
    )  # fmt: skip
    legacy = from_onnx(path, name="legacy")
    assert [(layer.op, layer.params, layer.out_shape) for layer in legacy.network.layers[1:]] == [
        (layer.op, layer.params, layer.out_shape) for layer in imported.network.layers[1:]
    ]
    for ours, theirs in zip(legacy.network.layers, imported.network.layers):
        for key, value in imported.params.get(theirs.name, {}).items():
            np.testing.assert_array_equal(legacy.params[ours.name][key], value)
    assert legacy.network.layer("layer1_0_conv1").op == "conv2d"  # from the initializer layer1.0.conv1.weight


def test_dropout_is_refused_unless_skipped():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = torch.nn.Dropout(0.5)
            self.fc = torch.nn.Linear(48, 10)

        def forward(self, x):
            return self.fc(torch.nn.functional.dropout(self.drop(torch.flatten(x, 1)), 0.2))

    with pytest.raises(ModelImportError, match=r"^node 'drop' \(Dropout\) is not supported \(the golden model has no"):
        from_torch(Model(), (3, 4, 4))
    imported = from_torch(Model(), (3, 4, 4), skip_dropout=True)
    assert [layer.op for layer in imported.network.layers] == ["input", "flatten", "linear", "loss"]
