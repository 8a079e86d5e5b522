"""wavecore.golden.torch_export: a network as a PyTorch module; export -> import gives the same YAML and weights.

The module's numerics are checked against the golden training step in ``test_train.py`` (``torch_step`` runs
it); here: the written file stands alone, imports back to the identical network, and carries the weights.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from wavecore.golden.importer import from_torch, load_module_class
from wavecore.golden.network import NetworkBuilder, load_network
from wavecore.golden.torch_export import class_name, to_torch, torch_source
from wavecore.golden.train import init_params, init_state

pytestmark = pytest.mark.torch

ROUND_TRIP = [
    ("tiny_resnet", "bn", None),
    ("tiny_resnet", "gn", None),
    ("tiny_concat", "bn", None),
    ("tiny_mobilenet", "gn", None),
    ("resnet18", "bn", 32),
    ("mobilenet_v2", "bn", 32),
    ("googlenet", "bn", 32),
]


@pytest.mark.parametrize("name,norm,size", ROUND_TRIP, ids=[f"{n}-{m}" for n, m, _ in ROUND_TRIP])
def test_exported_file_imports_back_to_the_same_yaml_and_weights(name, norm, size, tmp_path):
    network = load_network(name, norm=norm, input_size=size)
    path = tmp_path / "model.py"
    path.write_text(torch_source(network))
    module = load_module_class(f"{path}:{class_name(network)}")()
    params, state = init_params(network, seed=3, dtype=np.float32), init_state(network, dtype=np.float32)
    state["running"] = {
        layer: {**entry, "running_mean": entry["running_mean"] + 0.25} for layer, entry in state["running"].items()
    }
    weights = {f"{layer}.{key}": torch.from_numpy(v) for layer, entry in params.items() for key, v in entry.items()}
    module.load_state_dict(weights, strict=False)
    for layer, entry in state["running"].items():
        getattr(module, layer).running_mean.copy_(torch.from_numpy(entry["running_mean"]))

    imported = from_torch(module, network.input_shape, name=network.name)

    assert imported.network.to_yaml() == network.to_yaml()
    assert imported.params.keys() == params.keys()
    for layer, entry in params.items():
        for key, value in entry.items():
            np.testing.assert_array_equal(imported.params[layer][key], value)
    for layer, entry in state["running"].items():
        np.testing.assert_array_equal(imported.state["running"][layer]["running_mean"], entry["running_mean"])


def test_to_torch_loads_golden_parameters_and_state_dict_keys_are_the_sidecar_keys():
    network = load_network("tiny_resnet", norm="bn")
    params, state = init_params(network, seed=1), init_state(network)
    module = to_torch(network, params, state, dtype=torch.float64)
    keys = {f"{layer}.{key}" for layer, entry in params.items() for key in entry}
    keys |= {f"{layer}.{key}" for layer in state["running"] for key in ("running_mean", "running_var")}
    assert keys == {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    for layer, entry in params.items():
        for key, value in entry.items():
            np.testing.assert_array_equal(getattr(getattr(module, layer), key).detach().numpy(), value)
    assert module(torch.zeros(2, *network.input_shape, dtype=torch.float64)).shape == (2, network.num_classes)


def test_relu_variants_and_pool_options_are_written():
    builder = NetworkBuilder("options", (3, 8, 8), num_classes=4, norm="gn")
    builder.conv("c", 8, 3, padding=1, bias=True)
    builder.norm_layer("n", groups=2)
    builder.relu("r6", max_value=6)
    builder.relu("r3", max_value=3.5)
    builder.maxpool("mp", 3, stride=2, padding=1, ceil_mode=True)
    builder.avgpool("ap", 2, stride=1)
    builder.flatten("f")
    builder.linear("fc", 4, bias=False)
    builder.loss()
    network = builder.build()
    source = torch_source(network)
    for text in (
        "nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=True)",
        "nn.GroupNorm(2, 8, eps=1e-05)",
        "nn.ReLU6()",
        "nn.Hardtanh(0.0, 3.5)",
        "nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)",
        "nn.AvgPool2d(2, stride=1, padding=0)",
        f"nn.Linear({network.layer('fc').in_shapes[0][0]}, 4, bias=False)",
    ):
        assert text in source


def test_layer_names_that_are_not_identifiers_are_refused():
    builder = NetworkBuilder("bad", (3, 4, 4), num_classes=2, norm="none")
    builder.conv("conv.1", 2, 4)
    builder.flatten("f")
    builder.loss()
    with pytest.raises(ValueError, match=r"^layer 'conv.1': name must be a Python identifier"):
        torch_source(builder.build())
