"""PyTorch oracle for the golden model (test helper, not a test module).

Runs a :class:`wavecore.golden.network.Network` with torch's own functional ops and autograd, independently of
:mod:`wavecore.golden.layers`: ``F.conv2d``, ``F.batch_norm`` (training, running statistics), ``F.group_norm``,
``F.max_pool2d``/``F.avg_pool2d``, ``F.cross_entropy`` and ``torch.optim.SGD``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["torch_step"]


def _forward(network, tensors, x, running, training=True, retain=True):
    values = {network.layers[0].name: x}
    for layer in network.layers[1:]:
        p = layer.params
        inputs = [values[name] for name in layer.inputs]
        t = tensors.get(layer.name, {})
        if layer.op == "conv2d":
            y = F.conv2d(
                inputs[0],
                t["weight"],
                t.get("bias"),
                stride=p["stride"],
                padding=p["padding"],
                groups=p["groups"],
            )
        elif layer.op == "linear":
            y = F.linear(inputs[0], t["weight"], t.get("bias"))
        elif layer.op == "batchnorm":
            r = running[layer.name]
            y = F.batch_norm(
                inputs[0],
                r["running_mean"],
                r["running_var"],
                t["weight"],
                t["bias"],
                training=training,
                momentum=p["momentum"],
                eps=p["eps"],
            )
        elif layer.op == "groupnorm":
            y = F.group_norm(inputs[0], p["groups"], t["weight"], t["bias"], eps=p["eps"])
        elif layer.op == "relu":
            y = F.relu(inputs[0]) if p["max_value"] is None else F.hardtanh(inputs[0], 0.0, p["max_value"])
        elif layer.op == "maxpool":
            y = F.max_pool2d(inputs[0], p["kernel"], p["stride"], p["padding"], ceil_mode=p["ceil_mode"])
        elif layer.op == "avgpool":
            y = F.avg_pool2d(inputs[0], p["kernel"], p["stride"], p["padding"], count_include_pad=True)
        elif layer.op == "global_avgpool":
            y = inputs[0].mean(dim=(2, 3), keepdim=True)
        elif layer.op == "add":
            y = inputs[0]
            for other in inputs[1:]:
                y = y + other
        elif layer.op == "concat":
            y = torch.cat(inputs, dim=1)
        elif layer.op == "flatten":
            y = torch.flatten(inputs[0], 1)
        elif layer.op == "loss":
            y = inputs[0]
        else:
            raise AssertionError(layer.op)
        if layer.op != "loss" and retain:
            y.retain_grad()
        values[layer.name] = y
    return values


def torch_step(
    network, params, state, x, labels, *, lr, momentum, weight_decay, dtype=torch.float64, input_grad=False
):
    """One SGD step in PyTorch. Returns a dict with loss, activations, input_grads, grads, params, running
    (``input_grads`` holds the network input's gradient too when ``input_grad``)."""
    tensors = {
        name: {k: torch.tensor(np.asarray(v), dtype=dtype, requires_grad=True) for k, v in entry.items()}
        for name, entry in params.items()
    }
    running = {
        name: {
            "running_mean": torch.tensor(v["running_mean"], dtype=dtype),
            "running_var": torch.tensor(v["running_var"], dtype=dtype),
        }
        for name, v in state["running"].items()
    }
    x_t = torch.tensor(np.asarray(x), dtype=dtype, requires_grad=input_grad)
    values = _forward(network, tensors, x_t, running)
    logits = values[network.layers[-1].inputs[0]]
    loss = F.cross_entropy(logits, torch.tensor(np.asarray(labels), dtype=torch.long))
    loss.backward()
    flat = [t for entry in tensors.values() for t in entry.values()]
    grads = {
        name: {k: t.grad.detach().numpy().copy() for k, t in entry.items()} for name, entry in tensors.items()
    }
    optimizer = torch.optim.SGD(flat, lr=lr, momentum=momentum, weight_decay=weight_decay)
    optimizer.step()
    input_grads = {
        k: v.grad.numpy()
        for k, v in values.items()
        if k not in (network.layers[0].name, network.layers[-1].name) and v.grad is not None
    }
    if input_grad:
        input_grads[network.layers[0].name] = x_t.grad.numpy()
    return {
        "loss": float(loss.detach()),
        "activations": {k: v.detach().numpy() for k, v in values.items() if k != network.layers[0].name},
        "input_grads": input_grads,
        "grads": grads,
        "params": {
            name: {k: t.detach().numpy() for k, t in entry.items()} for name, entry in tensors.items()
        },
        "running": {name: {k: t.numpy() for k, t in v.items()} for name, v in running.items()},
    }
