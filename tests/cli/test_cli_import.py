"""``wavecore import``/``export`` and ``train --weights`` (scripts/commands/import_model.py, export.py, train.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from wavecore.cli import main
from wavecore.golden.network import load_network
from wavecore.golden.train import init_params, init_state
from wavecore.golden.weights import save_weights

MODELS = Path(__file__).resolve().parents[1] / "support" / "torch_models.py"


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.torch
def test_import_writes_yaml_and_weights_that_train_starts_from(tmp_path, capsys):
    pytest.importorskip("torch")
    output = tmp_path / "net.yaml"
    assert main(["import", f"{MODELS}:ResNetBlockNet", "--input", "3x8x8", "-o", str(output)]) == 0
    assert f"wrote {output} and {tmp_path / 'net.weights.npz'}" in capsys.readouterr().out
    network = load_network(output)
    assert network.name == "net" and network.has_loss and network.num_classes == 10
    # Zero classifier weights: every logit is 0, so the first loss is ln(10) whatever the features are.
    weights = dict(np.load(tmp_path / "net.weights.npz"))
    weights["fc.weight"][:] = 0
    weights["fc.bias"][:] = 0
    np.savez(tmp_path / "zero.npz", **weights)
    status = main(["train", "--network", str(output), "--weights", str(tmp_path / "zero.npz"), "--numerics", "float64"])
    assert status == 0
    assert f"step 1: loss {math.log(10):.6f}" in capsys.readouterr().out


@pytest.mark.torch
def test_export_writes_a_module_file_that_imports_back(tmp_path, capsys):
    pytest.importorskip("torch")
    assert main(["export", "tiny_concat", "--torch", "-o", str(tmp_path / "model.py")]) == 0
    assert "class TinyConcat" in capsys.readouterr().out
    output = tmp_path / "tiny_concat.yaml"
    assert main(["import", f"{tmp_path / 'model.py'}:TinyConcat", "-o", str(output)]) == 0  # its input_shape
    assert output.read_text() == load_network("tiny_concat").to_yaml()


@pytest.mark.torch
@pytest.mark.parametrize(
    "arguments,message",
    [
        (
            [f"{MODELS}:WithSigmoid", "--input", "3x4x4"],
            "wavecore import: error: MODEL: node 'act' (Sigmoid) is not supported; wavecore imports Conv2d,",
        ),
        ([f"{MODELS}:ResNetBlockNet"], "wavecore import: error: --input CxHxW is required to trace ResNetBlockNet"),
        ([f"{MODELS}:Missing", "--input", "3x8x8"], "wavecore import: error: MODEL: model file"),
        ([f"{MODELS}:ResNetBlockNet", "--input", "3x8"], "wavecore import: error: MODEL: input shape must be CxHxW"),
        (["model.pt", "--input", "3x8x8"], "wavecore import: error: MODEL must be FILE.py:ClassName or FILE.onnx"),
    ],
    ids=["unsupported", "no_input", "no_class", "bad_input", "bad_model"],
)
def test_import_errors_are_one_line_and_write_nothing(arguments, message, tmp_path, capsys):
    pytest.importorskip("torch")
    assert main(["import", *arguments, "-o", str(tmp_path / "net.yaml")]) == 2
    assert _error_line(capsys).startswith(message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("package,model", [("onnx", "model.onnx"), ("torch", f"{MODELS}:ResNetBlockNet")])
def test_import_without_the_optional_package_says_what_to_install(package, model, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # import of it now fails as if it were not installed
    assert main(["import", model, "--input", "3x8x8", "-o", str(tmp_path / "net.yaml")]) == 2
    assert _error_line(capsys) == (
        f"wavecore import: error: {package} is not installed: "
        f"pip install 'wavecore[{package}]' (or pip install {package})"
    )


def test_export_refuses_other_file_types(tmp_path, capsys):
    assert main(["export", "tiny_resnet", "--torch", "-o", str(tmp_path / "model.txt")]) == 2
    target = str(tmp_path / "model.txt")
    assert _error_line(capsys) == f"wavecore export: error: -o must name a .py file, not {target!r}"


def _weights(tmp_path, change):
    network = load_network("tiny_resnet")
    params, state = init_params(network), init_state(network)
    save_weights(tmp_path / "good.npz", network, params, state)
    arrays = dict(np.load(tmp_path / "good.npz"))
    change(arrays)
    np.savez(tmp_path / "w.npz", **arrays)
    return str(tmp_path / "w.npz")


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda a: a.pop("fc.bias"), "parameter 'fc.bias' is missing"),
        (lambda a: a.update({"fc.gain": a["fc.bias"]}), "key 'fc.gain' is not a parameter of network 'tiny_resnet'"),
        (lambda a: a.update({"fc.bias": a["fc.bias"][:3]}), "'fc.bias' has shape (3,), the network needs (10,)"),
    ],
    ids=["missing", "unknown", "shape"],
)
def test_train_weights_are_validated_in_one_line(change, message, tmp_path, capsys):
    path = _weights(tmp_path, change)
    assert main(["train", "--network", "tiny_resnet", "--weights", path]) == 2
    assert _error_line(capsys).startswith(f"wavecore train: error: --weights: weights file {path!r}: {message}")


def test_train_from_saved_weights_equals_train_from_the_same_initialisation(tmp_path, capsys):
    network = load_network("tiny_resnet")
    save_weights(tmp_path / "w.npz", network, init_params(network, seed=0), init_state(network))
    common = ["train", "--network", "tiny_resnet", "--numerics", "float64", "--steps", "2"]
    assert main(common) == 0
    seeded = capsys.readouterr().out
    assert main([*common, "--weights", str(tmp_path / "w.npz")]) == 0
    assert capsys.readouterr().out == seeded
