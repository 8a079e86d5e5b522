"""A network as a PyTorch module: its Python source, the live ``nn.Module``, and one training step in PyTorch.

:func:`torch_source` writes a standalone Python file (needs only ``torch``) defining an ``nn.Module`` whose
attributes are the network's layers, named as in the YAML, so its ``state_dict`` keys are the keys of the
weight sidecar (:mod:`wavecore.golden.weights`). :func:`to_torch` executes that same source and returns the
module, optionally loaded with golden parameters; ``wavecore export net.yaml --torch -o model.py`` writes it.
Importing the written file with ``wavecore import model.py:ClassName`` gives back the same YAML.

Layer to module: ``conv2d`` -> ``nn.Conv2d``, ``linear`` -> ``nn.Linear``, ``batchnorm`` -> ``nn.BatchNorm2d``,
``groupnorm`` -> ``nn.GroupNorm``, ``relu`` -> ``nn.ReLU`` (``nn.ReLU6`` for ``max_value: 6``, else
``nn.Hardtanh(0, max_value)``), ``maxpool``/``avgpool`` -> ``nn.MaxPool2d``/``nn.AvgPool2d``,
``global_avgpool`` -> ``nn.AdaptiveAvgPool2d(1)``, ``flatten`` -> ``nn.Flatten``, ``add``/``concat`` -> the
file's ``Add``/``Concat`` modules. The ``loss`` layer is not a module: ``forward`` returns the logits it reads,
and :func:`torch_step` applies ``F.cross_entropy`` (mean over the batch) as the golden model does.

:func:`torch_step` is the PyTorch oracle the golden training step is tested against: torch's own layers
and autograd, ``torch.optim.SGD``, independent of :mod:`wavecore.golden.layers`.
"""

from __future__ import annotations

import keyword

import numpy as np
import torch
import torch.nn.functional as F

from wavecore.golden.network import Network

__all__ = ["class_name", "load_into", "to_torch", "torch_source", "torch_step"]

# Names the generated forward() uses itself; a layer may not take them.
_RESERVED = frozenset({"self", "torch", "nn", "Add", "Concat"})


def class_name(network: Network) -> str:
    """The generated class's name: the network name in CamelCase (``tiny_resnet`` -> ``TinyResnet``)."""
    words = "".join(c if c.isalnum() else " " for c in network.name).split()
    name = "".join(word[:1].upper() + word[1:] for word in words) or "Network"
    return name if name[0].isalpha() else f"Net{name}"


def _identifier(layer_name: str) -> str:
    if not layer_name.isidentifier() or keyword.iskeyword(layer_name) or layer_name in _RESERVED:
        raise ValueError(
            f"layer {layer_name!r}: name must be a Python identifier (not a keyword or one of "
            f"{', '.join(sorted(_RESERVED))}) to become a PyTorch module attribute"
        )
    return layer_name


def _pair(value) -> str:
    return str(value[0]) if value[0] == value[1] else f"({value[0]}, {value[1]})"


def _constructor(layer) -> str | None:
    """The ``nn`` expression building a layer's module (``None`` for the loss)."""
    p, op = layer.params, layer.op
    if op == "conv2d":
        extra = "" if p["groups"] == 1 else f", groups={p['groups']}"
        return (
            f"nn.Conv2d({layer.in_shapes[0][0]}, {p['out_channels']}, kernel_size={_pair(p['kernel'])}, "
            f"stride={_pair(p['stride'])}, padding={_pair(p['padding'])}{extra}, bias={p['bias']})"
        )
    if op == "linear":
        return f"nn.Linear({layer.in_shapes[0][0]}, {p['out_features']}, bias={p['bias']})"
    if op == "batchnorm":
        return f"nn.BatchNorm2d({layer.in_shapes[0][0]}, eps={p['eps']!r}, momentum={p['momentum']!r})"
    if op == "groupnorm":
        return f"nn.GroupNorm({p['groups']}, {layer.in_shapes[0][0]}, eps={p['eps']!r})"
    if op == "relu":
        if p["max_value"] is None:
            return "nn.ReLU()"
        return "nn.ReLU6()" if p["max_value"] == 6 else f"nn.Hardtanh(0.0, {p['max_value']!r})"
    if op == "maxpool":
        ceil = ", ceil_mode=True" if p["ceil_mode"] else ""
        return (
            f"nn.MaxPool2d({_pair(p['kernel'])}, stride={_pair(p['stride'])}, "
            f"padding={_pair(p['padding'])}{ceil})"
        )
    if op == "avgpool":
        return f"nn.AvgPool2d({_pair(p['kernel'])}, stride={_pair(p['stride'])}, padding={_pair(p['padding'])})"
    if op == "global_avgpool":
        return "nn.AdaptiveAvgPool2d(1)"
    if op == "flatten":
        return "nn.Flatten()"
    if op == "add":
        return "Add()"
    if op == "concat":
        return "Concat()"
    if op == "loss":
        return None
    raise AssertionError(op)


_PREAMBLE = '''\
import torch
from torch import nn


class Add(nn.Module):
    """The sum of the inputs (a golden ``add`` layer)."""

    def forward(self, *inputs):
        total = inputs[0]
        for other in inputs[1:]:
            total = total + other
        return total


class Concat(nn.Module):
    """The inputs stacked along the channels (a golden ``concat`` layer)."""

    def forward(self, *inputs):
        return torch.cat(inputs, 1)
'''


def torch_source(network: Network) -> str:
    """Python source of a standalone module defining :func:`class_name` ``(network)`` (needs only torch)."""
    input_name = _identifier(network.layers[0].name)
    lines = [
        f'"""PyTorch module of the wavecore network {network.name!r} (written by `wavecore export --torch`).',
        "",
        "Attributes are the network's layers by name, so the state_dict keys are the weight sidecar's keys;",
        "forward() takes (N, C, H, W) and returns the logits the network's cross-entropy loss reads.",
        '"""',
        "",
        _PREAMBLE,
        "",
        f"class {class_name(network)}(nn.Module):",
        f"    input_shape = {tuple(network.input_shape)}",
        f"    num_classes = {network.num_classes}",
        "",
        "    def __init__(self):",
        "        super().__init__()",
    ]
    body = []
    result = network.layers[-1].name
    for layer in network.layers[1:]:
        constructor = _constructor(layer)
        if constructor is None:
            result = layer.inputs[0]
            continue
        name = _identifier(layer.name)
        lines.append(f"        self.{name} = {constructor}")
        body.append(f"        {name} = self.{name}({', '.join(layer.inputs)})")
    lines += ["", f"    def forward(self, {input_name}):", *body, f"        return {result}", ""]
    return "\n".join(lines)


def to_torch(network: Network, params: dict | None = None, state: dict | None = None, *, dtype=torch.float32):
    """The module of :func:`torch_source`, in ``dtype``, loaded with golden ``params``/``state`` if given."""
    namespace: dict = {"__name__": f"wavecore_export_{class_name(network)}"}
    exec(compile(torch_source(network), f"<wavecore export {network.name}>", "exec"), namespace)
    module = namespace[class_name(network)]().to(dtype)
    if params is not None:
        load_into(module, params, state)
    return module


def load_into(module, params: dict, state: dict | None = None) -> None:
    """Copy golden ``{layer: {"weight", "bias"}}`` parameters (and BN running statistics) into ``module``."""
    with torch.no_grad():
        for name, entry in params.items():
            target = getattr(module, name)
            for key, value in entry.items():
                getattr(target, key).copy_(torch.as_tensor(np.asarray(value)))
        for name, entry in (state or {}).get("running", {}).items():
            target = getattr(module, name)
            for key in ("running_mean", "running_var"):
                getattr(target, key).copy_(torch.as_tensor(np.asarray(entry[key])))


def torch_step(
    network, params, state, x, labels, *, lr, momentum, weight_decay, dtype=torch.float64, input_grad=False
):
    """One SGD step of the :func:`to_torch` module in PyTorch.

    Returns a dict with ``loss``, ``activations`` and ``input_grads`` (every layer's output and its gradient,
    keyed by layer name; the network input's gradient too when ``input_grad``), ``grads`` and ``params``
    (``{layer: {"weight", "bias"}}``, gradients and parameters after the step) and ``running`` (BN running
    statistics after the step).
    """
    module = to_torch(network, params, state, dtype=dtype).train()
    outputs = {}

    def keep(name):
        def hook(_module, _inputs, output):
            output.retain_grad()
            outputs[name] = output

        return hook

    for layer in network.layers[1:]:
        if layer.op != "loss":
            getattr(module, layer.name).register_forward_hook(keep(layer.name))
    x_t = torch.tensor(np.asarray(x), dtype=dtype, requires_grad=input_grad)
    loss = F.cross_entropy(module(x_t), torch.tensor(np.asarray(labels), dtype=torch.long))
    loss.backward()
    trainable = {name: dict(getattr(module, name).named_parameters()) for name in params}
    grads = {
        name: {key: t.grad.detach().numpy().copy() for key, t in entry.items()} for name, entry in trainable.items()
    }
    optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    optimizer.step()
    input_grads = {name: t.grad.numpy() for name, t in outputs.items() if t.grad is not None}
    if input_grad:
        input_grads[network.layers[0].name] = x_t.grad.numpy()
    running = {
        name: {key: getattr(getattr(module, name), key).numpy().copy() for key in ("running_mean", "running_var")}
        for name in state.get("running", {})
    }
    return {
        "loss": float(loss.detach()),
        "activations": {name: t.detach().numpy() for name, t in outputs.items()},
        "input_grads": input_grads,
        "grads": grads,
        "params": {name: {key: t.detach().numpy() for key, t in entry.items()} for name, entry in trainable.items()},
        "running": running,
    }
