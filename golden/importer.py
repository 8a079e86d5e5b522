"""Model import: a PyTorch module (traced with ``torch.fx``) or an ONNX file as a network YAML plus its weights.

:func:`from_torch` and :func:`from_onnx` return an :class:`ImportedModel`: the validated
:class:`~wavecore.golden.network.Network` (its YAML from :meth:`~wavecore.golden.network.Network.to_yaml`), the
parameters and BN running statistics in :func:`wavecore.golden.train.init_params`/``init_state`` form, and
``origins`` (layer name -> the module path or ONNX node it came from). :meth:`ImportedModel.write` writes the
YAML and the weight sidecar (:mod:`wavecore.golden.weights`). ``docs/import.md`` lists the mapping of every op.

**Layer names** are the same from both frontends, so a model and its ``torch.onnx.export`` import to the same
YAML: a layer made by a ``torch.nn`` module is named by the module's path (``layer1.0.conv1`` ->
``layer1_0_conv1``); an op written in a ``forward`` (``out += identity``, ``torch.cat``, ``torch.flatten``) is
named by the path of the module whose ``forward`` it is in, plus its op when that module makes more than
one layer (``layer1_0_add``), or by its op alone at the top level (``flatten``); a repeated name gets ``_1``,
``_2``... in graph order. ONNX files carry the module paths in the node metadata the PyTorch exporter writes
(``pkg.torch.onnx.name_scopes``); without it, weighted layers are named by their weight's initializer and the
others by their op. The logits the model returns feed a cross-entropy ``loss`` layer (the golden head).

``torch`` and ``onnx`` are optional: ``pip install 'wavecore[torch,onnx]'``.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import operator
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from wavecore.golden.network import Network, NetworkError

__all__ = [
    "ONNX_SUPPORTED",
    "TORCH_SUPPORTED",
    "ImportedModel",
    "ModelImportError",
    "from_onnx",
    "from_torch",
    "load_module_class",
    "parse_input_shape",
    "require",
]

#: What each frontend maps (the tail of every "not supported" message).
TORCH_SUPPORTED = (
    "Conv2d, Linear, BatchNorm2d, GroupNorm, ReLU, ReLU6, Hardtanh(0, max), MaxPool2d, AvgPool2d, "
    "AdaptiveAvgPool2d, Flatten, Identity, Dropout (p=0 or skipped); relu, relu6, add, cat on channels, "
    "flatten/view/reshape to (N, -1), mean over H and W, max_pool2d, avg_pool2d, adaptive_avg_pool2d, dropout"
)
ONNX_SUPPORTED = (
    "Conv, Gemm, MatMul(+Add), BatchNormalization, GroupNormalization, InstanceNormalization as GroupNorm, "
    "Relu, Clip(0, max), MaxPool, AveragePool, GlobalAveragePool, ReduceMean over H and W, Add, Sum, Concat on "
    "channels, Flatten, Reshape to (N, -1), Identity, Dropout (ratio 0 or skipped)"
)
_EXTRAS = {"torch": "torch", "onnx": "onnx"}
_CONTAINERS = ("torch.nn.modules.container.",)


class ModelImportError(ValueError):
    """A model that cannot be imported; the message is one line naming the node, its op and what is supported."""


def require(package: str):
    """Import an optional dependency or raise ``ModuleNotFoundError`` with a one-line install hint."""
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"{package} is not installed: pip install 'wavecore[{_EXTRAS.get(package, package)}]' "
            f"(or pip install {package})"
        ) from None


def parse_input_shape(text) -> tuple[int, int, int]:
    """``"3x32x32"`` (or a sequence) -> ``(3, 32, 32)``: the per-sample input ``(C, H, W)``."""
    try:
        values = tuple(int(v) for v in (text.lower().split("x") if isinstance(text, str) else text))
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or any(v < 1 for v in values):
        raise ModelImportError(f"input shape must be CxHxW of positive integers (e.g. 3x32x32), not {text!r}")
    return values


def load_module_class(reference: str):
    """The class named by ``"path/to/model.py:ClassName"``."""
    path_text, _, class_name = reference.rpartition(":")
    if not path_text or not class_name:
        raise ModelImportError(f"model must be FILE.py:ClassName or FILE.onnx, not {reference!r}")
    path = Path(path_text)
    if not path.is_file():
        raise ModelImportError(f"model file {path_text!r} does not exist")
    module_name = f"wavecore_import_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look classes up there
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise ModelImportError(f"model file {path_text!r} failed to load: {type(error).__name__}: {error}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ModelImportError(f"model file {path_text!r} defines no class {class_name!r}")
    return cls


@dataclass
class ImportedModel:
    """The result of an import: the network, its parameters and state, and where every layer came from."""

    network: Network
    params: dict
    state: dict
    origins: dict = field(default_factory=dict)

    def write(self, yaml_path, weights_path=None) -> tuple[Path, Path]:
        """Write the YAML and the weight sidecar (default ``<stem>.weights.npz`` beside the YAML): both or neither."""
        from wavecore.files import write_atomic_many
        from wavecore.golden.weights import weights_bytes, weights_path_for

        weights_path = Path(weights_path) if weights_path is not None else weights_path_for(yaml_path)
        content = weights_bytes(self.network, self.params, self.state)
        write_atomic_many([(yaml_path, self.network.to_yaml()), (weights_path, content)])
        return Path(yaml_path), weights_path


# ----------------------------------------------------------------------------------------------------------
# The frontend-independent part: layers with their naming scope, then names, then a validated Network
# ----------------------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    op: str
    inputs: list  # entry indices; -1 is the network input
    params: dict
    scope: str  # module path ("" = top level)
    leaf: bool  # made by a torch.nn module (named by its path alone)
    origin: str
    tensors: dict = field(default_factory=dict)
    name: str = ""


def _sanitize(path: str) -> str:
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in path)
    return f"layer{text}" if text[:1].isdigit() else text


def _float(value) -> float:
    """A float attribute stored as float32 (ONNX) read back as the decimal the user wrote (0.9f -> 0.9)."""
    return float(str(np.float32(value)))


class _Builder:
    def __init__(self):
        self.entries: list[_Entry] = []

    def add(self, op, inputs, params=None, *, scope, leaf, origin, tensors=None) -> int:
        self.entries.append(_Entry(op, list(inputs), params or {}, scope, leaf, origin, tensors or {}))
        return len(self.entries) - 1

    def _names(self, input_name):
        per_scope: dict[str, int] = {}
        for entry in self.entries:
            if not entry.leaf:
                per_scope[entry.scope] = per_scope.get(entry.scope, 0) + 1
        used = {input_name}
        for entry in self.entries:
            if entry.leaf or (entry.scope and per_scope[entry.scope] == 1):
                base = _sanitize(entry.scope)
            elif entry.scope:
                base = _sanitize(f"{entry.scope}.{entry.op}")
            else:
                base = entry.op
            name, count = base, 0
            while name in used:
                count += 1
                name = f"{base}_{count}"
            used.add(name)
            entry.name = name

    def finish(self, network_name, input_name, input_shape, output: int) -> ImportedModel:
        if output < 0:
            raise ModelImportError("the model returns its input unchanged: there is no layer to import")
        live = {output}
        for index in range(len(self.entries) - 1, -1, -1):  # drop what does not reach the logits (dead code)
            if index in live:
                live.update(self.entries[index].inputs)
        renumber = {old: new for new, old in enumerate(sorted(i for i in live if i >= 0))}
        renumber[-1] = -1
        self.entries = [self.entries[old] for old in sorted(i for i in live if i >= 0)]
        for entry in self.entries:
            entry.inputs = [renumber[i] for i in entry.inputs]
        output = renumber[output]
        input_name = _sanitize(input_name) or "input"
        self._names(input_name)
        names = {-1: input_name, **{i: e.name for i, e in enumerate(self.entries)}}
        layers = [
            {"name": e.name, "op": e.op, "inputs": [names[i] for i in e.inputs], **e.params} for e in self.entries
        ]
        spec = {"name": network_name, "input": {"name": input_name, "shape": list(input_shape)}, "layers": layers}
        try:
            logits = Network.from_spec({**spec, "num_classes": 1}).layer(names[output]).out_shape
        except NetworkError as error:
            raise ModelImportError(f"the imported graph is not a valid network: {error}") from None
        if len(logits) != 1:
            raise ModelImportError(
                f"the model's output {names[output]!r} has per-sample shape {logits}; the cross-entropy head "
                "needs (classes,) logits (end the model with a Linear or a flatten)"
            )
        loss, count = "loss", 0
        while loss in names.values():
            count += 1
            loss = f"loss_{count}"
        layers.append({"name": loss, "op": "loss", "inputs": [names[output]]})
        try:
            network = Network.from_spec({**spec, "num_classes": logits[0]})
        except NetworkError as error:
            raise ModelImportError(f"the imported graph is not a valid network: {error}") from None
        params, running = {}, {}
        for entry in self.entries:
            if entry.name not in network:
                continue
            weights = {k: np.asarray(v) for k, v in entry.tensors.items() if k in ("weight", "bias")}
            if weights:
                params[entry.name] = weights
            if entry.op == "batchnorm":
                running[entry.name] = {
                    "running_mean": np.asarray(entry.tensors["running_mean"]),
                    "running_var": np.asarray(entry.tensors["running_var"]),
                    "num_batches_tracked": 0,
                }
        origins = {e.name: e.origin for e in self.entries if e.name in network}
        return ImportedModel(network, params, {"running": running, "velocity": {}}, origins)


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    return value if len(value) == 2 else (value[0], value[0])


# ----------------------------------------------------------------------------------------------------------
# PyTorch (torch.fx)
# ----------------------------------------------------------------------------------------------------------
def from_torch(module, input_shape, *, name: str | None = None, skip_dropout: bool = False) -> ImportedModel:
    """Import a ``torch.nn.Module`` traced with ``torch.fx.symbolic_trace`` on a ``(C, H, W)`` input.

    The module is run once (batch 2, no gradients, in eval mode and then restored) to learn every tensor's
    shape. ``name`` defaults to the class name in snake case. The golden model has no dropout: a dropout with
    p > 0 is refused unless ``skip_dropout``, which imports it as the identity (training then differs).
    """
    torch = require("torch")
    from torch.fx.passes.shape_prop import ShapeProp

    input_shape = parse_input_shape(input_shape)
    if not isinstance(module, torch.nn.Module):
        raise ModelImportError(f"model must be a torch.nn.Module, not {type(module).__name__}")
    try:
        graph_module = torch.fx.symbolic_trace(module)
    except Exception as error:  # tracing runs user code: any exception is the model's
        message = str(error).splitlines()[0] if str(error) else ""
        raise ModelImportError(
            f"torch.fx cannot trace {type(module).__name__}: {type(error).__name__}: {message}"
        ) from None
    modes = {sub: sub.training for sub in module.modules()}
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    try:
        module.eval()
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.zeros((2, *input_shape), dtype=dtype))
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else ""
        raise ModelImportError(
            f"{type(module).__name__} does not run on input (N, {', '.join(map(str, input_shape))}): "
            f"{type(error).__name__}: {message}"
        ) from None
    finally:
        for sub, training in modes.items():
            sub.training = training
    frontend = _TorchFrontend(torch, graph_module, input_shape, skip_dropout)
    return frontend.run(name or _snake(type(module).__name__))


def _snake(text: str) -> str:
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in text).lstrip("_")
    return out or "model"


class _TorchFrontend:
    def __init__(self, torch, graph_module, input_shape, skip_dropout):
        self.skip_dropout = skip_dropout
        self.torch = torch
        self.nn = torch.nn
        self.F = torch.nn.functional
        self.gm = graph_module
        self.input_shape = input_shape
        self.builder = _Builder()
        self.values: dict = {}  # fx node -> entry index (-1 = input); non-tensor nodes are absent

    def refuse(self, node, what, why=""):
        detail = f" ({why})" if why else ""
        return ModelImportError(
            f"node {node.name!r} ({what}) is not supported{detail}; wavecore imports {TORCH_SUPPORTED}"
        )

    def shape(self, node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape[1:]) if meta is not None and hasattr(meta, "shape") else None

    def source(self, node, argument, what):
        if not isinstance(argument, self.torch.fx.Node) or argument not in self.values:
            raise self.refuse(node, what, f"operand {argument!r} is not a tensor the network computes")
        return self.values[argument]

    def scope(self, node):
        if node.op == "call_module":
            return node.target, True
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return "", False
        return list(stack.values())[-1][0], False

    def add(self, node, op, inputs, params=None, tensors=None):
        scope, leaf = self.scope(node)
        origin = node.target if node.op == "call_module" else node.name
        index = self.builder.add(op, inputs, params, scope=scope, leaf=leaf, origin=origin, tensors=tensors)
        self.values[node] = index
        return index

    def run(self, name) -> ImportedModel:
        input_name, output = None, None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if input_name is not None:
                    raise self.refuse(node, "a second input", "the network has one input tensor")
                input_name = node.target
                self.values[node] = -1
            elif node.op == "output":
                result = node.args[0]
                if not isinstance(result, self.torch.fx.Node) or result not in self.values:
                    raise self.refuse(node, "output", "the model must return one logits tensor")
                output = self.values[result]
            elif node.op == "get_attr":
                raise self.refuse(node, f"get_attr {node.target}", "parameters must belong to a supported module")
            elif node.op == "call_module":
                self.call_module(node, self.gm.get_submodule(node.target))
            else:
                self.call_function(node)
        return self.builder.finish(name, input_name, self.input_shape, output)

    # -- modules ---------------------------------------------------------------------------------------------
    def call_module(self, node, m):
        nn = self.nn
        what = type(m).__name__
        x = self.source(node, node.args[0] if node.args else None, what)
        tensors = lambda *keys: {k: getattr(m, k).detach().cpu().numpy().copy() for k in keys}  # noqa: E731
        if isinstance(m, nn.Conv2d):
            if isinstance(m.padding, str) or m.padding_mode != "zeros" or tuple(m.dilation) != (1, 1):
                raise self.refuse(node, what, "only zero padding given as numbers and dilation 1")
            params = {
                "out_channels": m.out_channels,
                "kernel": _pair(m.kernel_size),
                "stride": _pair(m.stride),
                "padding": _pair(m.padding),
                "groups": m.groups,
                "bias": m.bias is not None,
            }
            self.add(node, "conv2d", [x], params, tensors("weight", *(["bias"] if m.bias is not None else [])))
        elif isinstance(m, nn.Linear):
            keys = ("weight", "bias") if m.bias is not None else ("weight",)
            self.add(node, "linear", [x], {"out_features": m.out_features, "bias": m.bias is not None}, tensors(*keys))
        elif isinstance(m, nn.BatchNorm2d):
            if not m.affine or not m.track_running_stats or m.momentum is None:
                raise self.refuse(node, what, "only affine=True, track_running_stats=True and a numeric momentum")
            params = {"eps": float(m.eps), "momentum": float(m.momentum)}
            self.add(node, "batchnorm", [x], params, tensors("weight", "bias", "running_mean", "running_var"))
        elif isinstance(m, nn.GroupNorm):
            if not m.affine:
                raise self.refuse(node, what, "only affine=True")
            self.add(node, "groupnorm", [x], {"groups": m.num_groups, "eps": float(m.eps)}, tensors("weight", "bias"))
        elif isinstance(m, nn.ReLU):
            self.add(node, "relu", [x])
        elif isinstance(m, nn.Hardtanh):  # ReLU6 is Hardtanh(0, 6)
            if m.min_val != 0 or not m.max_val > 0:
                raise self.refuse(node, what, "only min_val 0 and max_val > 0 (a clipped ReLU)")
            self.add(node, "relu", [x], {"max_value": float(m.max_val)})
        elif isinstance(m, nn.MaxPool2d):
            if m.return_indices or _pair(m.dilation) != (1, 1):
                raise self.refuse(node, what, "only dilation 1 without return_indices")
            self.pool(node, "maxpool", x, m.kernel_size, m.stride, m.padding, m.ceil_mode)
        elif isinstance(m, nn.AvgPool2d):
            padded = _pair(m.padding) != (0, 0)
            if m.ceil_mode or m.divisor_override is not None or (not m.count_include_pad and padded):
                raise self.refuse(node, what, "only ceil_mode=False, count_include_pad=True, no divisor_override")
            self.pool(node, "avgpool", x, m.kernel_size, m.stride, m.padding, False)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.adaptive(node, what, x, m.output_size)
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise self.refuse(node, what, "only start_dim=1, end_dim=-1")
            self.flatten(node, x)
        elif isinstance(m, nn.Identity):
            self.values[node] = x
        elif isinstance(m, nn.Dropout):
            self.dropout(node, what, x, m.p)
        else:
            raise self.refuse(node, what)

    def dropout(self, node, what, x, p):
        if p != 0 and not self.skip_dropout:
            raise self.refuse(node, what, "the golden model has no dropout: p must be 0, or import with skip_dropout")
        self.values[node] = x

    def pool(self, node, op, x, kernel, stride, padding, ceil_mode):
        params = {"kernel": _pair(kernel), "stride": _pair(stride or kernel), "padding": _pair(padding)}
        if op == "maxpool":
            params["ceil_mode"] = bool(ceil_mode)
        self.add(node, op, [x], params)

    def adaptive(self, node, what, x, output_size):
        channels, height, width = self.shape(node.args[0])
        out = tuple(height if v is None else v for v in _pair(output_size)) if output_size is not None else ()
        if out == (1, 1):
            self.add(node, "global_avgpool", [x])
        elif len(out) == 2 and height % out[0] == 0 and width % out[1] == 0:
            kernel = (height // out[0], width // out[1])
            self.add(node, "avgpool", [x], {"kernel": kernel, "stride": kernel, "padding": (0, 0)})
        else:
            raise self.refuse(node, what, f"output size {output_size} must divide the input {height}x{width}")

    def flatten(self, node, x):
        shape = self.shape(node.args[0])
        if len(shape) == 1:
            self.values[node] = x  # already flat
        else:
            self.add(node, "flatten", [x])

    # -- functions and methods -------------------------------------------------------------------------------
    def call_function(self, node):
        torch, F = self.torch, self.F
        target = node.target
        if node.op == "call_method":
            what, key = f"Tensor.{target}", target
        else:
            module = {"_operator": "operator", "torch._C._VariableFunctions": "torch"}.get(
                getattr(target, "__module__", None) or "", getattr(target, "__module__", None) or ""
            )
            what = f"{module + '.' if module else ''}{getattr(target, '__name__', target)}"
            key = target
        if node.meta.get("tensor_meta") is None or not hasattr(node.meta["tensor_meta"], "shape"):
            if key in ("size", "dim") or target is operator.getitem:
                return  # shape arithmetic feeding a view/reshape; not a tensor of the network
            raise self.refuse(node, what, "it does not produce one tensor")
        args, kwargs = node.args, node.kwargs

        def arg(position, keyword, default=None):
            return args[position] if len(args) > position else kwargs.get(keyword, default)

        if key in (F.relu, torch.relu, "relu", "relu_"):
            self.add(node, "relu", [self.source(node, args[0], what)])
        elif key in (F.relu6,):
            self.add(node, "relu", [self.source(node, args[0], what)], {"max_value": 6.0})
        elif key in (F.hardtanh, "clamp", torch.clamp, "clip", torch.clip):
            names = ("min_val", "max_val") if key is F.hardtanh else ("min", "max")
            low, high = arg(1, names[0]), arg(2, names[1])
            if low != 0 or not isinstance(high, int | float) or not high > 0:
                raise self.refuse(node, what, "only a clip to [0, max] (a clipped ReLU)")
            self.add(node, "relu", [self.source(node, args[0], what)], {"max_value": float(high)})
        elif key in (operator.add, operator.iadd, torch.add, "add", "add_"):
            if "alpha" in kwargs or len(args) != 2:
                raise self.refuse(node, what, "only the sum of two tensors")
            self.add(node, "add", [self.source(node, a, what) for a in args])
        elif key in (torch.cat, torch.concat):
            dim = arg(1, "dim", 0)
            if dim not in (1, -3):
                raise self.refuse(node, what, f"only along the channels (dim 1), not dim {dim}")
            self.add(node, "concat", [self.source(node, a, what) for a in args[0]])
        elif key in (torch.flatten, "flatten"):
            if arg(1, "start_dim", 0) != 1 or arg(2, "end_dim", -1) != -1:
                raise self.refuse(node, what, "only flatten(x, 1)")
            self.flatten(node, self.source(node, args[0], what))
        elif key in ("view", "reshape", torch.reshape, "contiguous", "clone", torch.clone):
            x = self.source(node, args[0], what)
            before, after = self.shape(args[0]), self.shape(node)
            if after == before:
                self.values[node] = x
            elif after == (math.prod(before),):
                self.add(node, "flatten", [x])
            else:
                raise self.refuse(node, what, f"only to (N, -1): {before} -> {after}")
        elif key in (torch.mean, "mean"):
            dims = arg(1, "dim")
            dims = {d % 4 for d in ((dims,) if isinstance(dims, int) else (dims or ()))}
            if dims != {2, 3}:
                raise self.refuse(node, what, "only the mean over H and W (dims 2, 3)")
            x = self.source(node, args[0], what)
            pooled = self.add(node, "global_avgpool", [x])
            if not arg(2, "keepdim", False):
                self.add(node, "flatten", [pooled])
        elif key in (F.dropout,):
            self.dropout(node, what, self.source(node, args[0], what), arg(1, "p", 0.5))
        elif key in (F.adaptive_avg_pool2d,):
            self.adaptive(node, what, self.source(node, args[0], what), arg(1, "output_size"))
        elif key in (F.max_pool2d, F.avg_pool2d):
            x = self.source(node, args[0], what)
            kernel, stride, padding = arg(1, "kernel_size"), arg(2, "stride"), arg(3, "padding", 0)
            if key is F.max_pool2d:
                if arg(4, "dilation", 1) not in (1, (1, 1)) or arg(6, "return_indices", False):
                    raise self.refuse(node, what, "only dilation 1 without return_indices")
                self.pool(node, "maxpool", x, kernel, stride, padding, arg(5, "ceil_mode", False))
            else:
                if arg(4, "ceil_mode", False) or not arg(5, "count_include_pad", True) or arg(6, "divisor_override"):
                    raise self.refuse(node, what, "only ceil_mode=False, count_include_pad=True, no divisor_override")
                self.pool(node, "avgpool", x, kernel, stride, padding, False)
        else:
            raise self.refuse(node, what)


# ----------------------------------------------------------------------------------------------------------
# ONNX
# ----------------------------------------------------------------------------------------------------------
# Ops evaluated when all their inputs are constants (shape arithmetic of exporters, parameter reshapes).
_FOLDABLE = frozenset(
    {
        "Constant", "Shape", "Expand", "Cast", "CastLike", "Reshape", "Concat", "Range", "Sub", "Add", "Mul",
        "Div", "Unsqueeze", "Squeeze", "Gather", "Identity", "Slice", "ConstantOfShape", "Transpose",
    }
)  # fmt: skip
# Ops that only rearrange one constant: a folded result keeps the initializer it came from.
_KEEPS_ORIGIN = frozenset({"Cast", "CastLike", "Reshape", "Unsqueeze", "Squeeze", "Identity", "Transpose"})


def from_onnx(path, *, name: str | None = None, input_shape=None, skip_dropout: bool = False) -> ImportedModel:
    """Import an ONNX file (any opset the ``onnx`` package reads; static C, H, W, any batch dimension).

    ``input_shape`` (``C, H, W``) checks the file's input; ``name`` defaults to the file's stem;
    ``skip_dropout`` as for :func:`from_torch`. Export from
    PyTorch with ``torch.onnx.export(model.train(), (x,), path, dynamo=True, optimize=False)``: the default
    optimizer folds BatchNorm into the convolution, which leaves nothing to train.
    """
    onnx = require("onnx")
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise ModelImportError(f"ONNX file {str(path)!r} does not exist") from None
    except Exception as error:
        raise ModelImportError(f"ONNX file {str(path)!r} cannot be read: {type(error).__name__}: {error}") from None
    return _OnnxFrontend(onnx, model, input_shape, skip_dropout).run(name or path.stem)


class _OnnxFrontend:
    def __init__(self, onnx, model, input_shape, skip_dropout):
        from onnx import numpy_helper

        self.skip_dropout = skip_dropout
        self.onnx = onnx
        self.graph = model.graph
        self.opsets = {entry.domain: entry.version for entry in model.opset_import}
        self.builder = _Builder()
        self.constants = {init.name: numpy_helper.to_array(init) for init in self.graph.initializer}
        self.origin = {name: name for name in self.constants}  # constant -> initializer it is a view of
        self.values: dict[str, int] = {}
        self.pending: dict[str, tuple] = {}  # partial GroupNorm patterns and bias-less MatMuls
        self.input_shape = parse_input_shape(input_shape) if input_shape is not None else None
        # Fold constants and infer shapes in turns: a Reshape's target made by shape arithmetic becomes a
        # constant, which lets shape inference see through it, which lets the next Shape node fold.
        self.nodes = list(self.graph.node)
        for _ in range(16):
            self.infer_shapes(model)
            remaining = [node for node in self.nodes if not self.fold(node)]
            if len(remaining) == len(self.nodes):
                break
            self.nodes = remaining

    def infer_shapes(self, model):
        helper, numpy_helper = self.onnx.helper, self.onnx.numpy_helper
        initializers = [numpy_helper.from_array(np.asarray(v), name) for name, v in self.constants.items()]
        inputs = []
        for info in self.graph.input:  # a symbolic batch becomes 1 so shape arithmetic folds to constants
            info = type(info).FromString(info.SerializeToString())
            dims = info.type.tensor_type.shape.dim
            if len(dims) and not dims[0].HasField("dim_value"):
                dims[0].dim_value = 1
            inputs.append(info)
        graph = helper.make_graph(self.nodes, "g", inputs, list(self.graph.output), initializers)
        inferred = self.onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=model.opset_import))
        self.shapes = {}
        for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            dims = info.type.tensor_type.shape.dim
            self.shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)

    def refuse(self, node, why=""):
        detail = f" ({why})" if why else ""
        return ModelImportError(
            f"node {node.name or node.output[0]!r} ({node.op_type}) is not supported{detail}; "
            f"wavecore imports {ONNX_SUPPORTED}"
        )

    def attributes(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def sample_shape(self, value):
        shape = self.shapes.get(value)
        return None if shape is None or any(d is None for d in shape[1:]) else shape[1:]

    def scope(self, node, origin=None):
        """(module path, leaf) from the PyTorch exporter's metadata, else from the weight's initializer."""
        metadata = {p.key: p.value for p in node.metadata_props}
        scopes = metadata.get("pkg.torch.onnx.name_scopes")
        if scopes:
            scopes = ast.literal_eval(scopes)
            classes = ast.literal_eval(metadata.get("pkg.torch.onnx.class_hierarchy", "[]"))
            path = scopes[-2] if len(scopes) >= 2 else ""
            module_class = classes[-2] if len(classes) >= 2 and path else ""
            leaf = module_class.startswith(("torch.nn.", "torch.ao.nn.")) and not module_class.startswith(_CONTAINERS)
            return path, leaf
        if origin is not None:
            return origin.rsplit(".", 1)[0], True
        return "", False

    def add(self, node, op, inputs, params=None, tensors=None, output=None, weight_origin=None):
        scope, leaf = self.scope(node, weight_origin)
        index = self.builder.add(
            op, inputs, params, scope=scope, leaf=leaf, origin=node.name or node.output[0], tensors=tensors
        )
        self.values[output or node.output[0]] = index
        return index

    def tensor(self, node, value):
        if value not in self.values:
            raise self.refuse(node, f"operand {value!r} is not a tensor the network computes")
        return self.values[value]

    def constant(self, node, position, what):
        value = node.input[position] if len(node.input) > position else ""
        if value not in self.constants:
            raise self.refuse(node, f"{what} must be a constant")
        return self.constants[value]

    def run(self, name) -> ImportedModel:
        inputs = [i for i in self.graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            raise ModelImportError(f"the ONNX graph must have one input tensor, not {len(inputs)}")
        input_name = inputs[0].name
        shape = self.sample_shape(input_name)
        if shape is None or len(shape) != 3:
            raise ModelImportError(f"ONNX input {input_name!r} must have a static (N, C, H, W) shape, not {shape}")
        if self.input_shape is not None and tuple(shape) != self.input_shape:
            raise ModelImportError(f"the ONNX input is {'x'.join(map(str, shape))}, not the given {self.input_shape}")
        self.values[input_name] = -1
        for node in self.nodes:
            self.visit(node)
        output = self.graph.output[0].name
        if output not in self.values:
            raise ModelImportError(f"the ONNX output {output!r} is not a tensor the network computes")
        self.pending.pop(output, None)
        if self.pending:
            raise ModelImportError(f"the ONNX graph ends inside an unfinished pattern at {next(iter(self.pending))!r}")
        return self.builder.finish(name, input_name, shape, self.values[output])

    def fold(self, node) -> bool:
        if node.op_type not in _FOLDABLE:
            return False
        if node.op_type == "CastLike" and node.input[0] in self.constants:
            # the result's type follows the second operand, its value is the first's: a constant either way
            self.constants[node.output[0]] = self.constants[node.input[0]]
            if node.input[0] in self.origin:
                self.origin[node.output[0]] = self.origin[node.input[0]]
            return True
        known = []
        for value in node.input:
            if value == "":
                known.append(None)
            elif value in self.constants:
                known.append(self.constants[value])
            elif node.op_type == "Shape" and self.shapes.get(value) and None not in self.shapes[value]:
                known.append(np.zeros(self.shapes[value], np.float32))  # only the shape is read
            else:
                return False
        from onnx.reference import ReferenceEvaluator

        feeds = {v: a for v, a in zip(node.input, known) if v}
        results = ReferenceEvaluator(node, opsets=self.opsets).run(None, feeds)
        for value, result in zip(node.output, results):
            self.constants[value] = np.asarray(result)
            if node.op_type in _KEEPS_ORIGIN and node.input and node.input[0] in self.origin:
                self.origin[value] = self.origin[node.input[0]]
        return True

    def visit(self, node):
        op = node.op_type
        a = self.attributes(node)
        method = getattr(self, f"op_{op}", None)
        if method is None:
            raise self.refuse(node)
        for position, value in enumerate(node.input):
            kind = self.pending.get(value, ("",))[0]
            if kind == "matmul" and not (op == "Add" and position == 0 and node.input[1] in self.constants):
                del self.pending[value]  # a MatMul without a bias Add is a bias-less linear layer
            elif kind and (position > 0 or op not in ("InstanceNormalization", "Reshape", "Mul", "Add")):
                raise self.refuse(node, "it interrupts a GroupNorm pattern")
        method(node, a)

    # -- ops -------------------------------------------------------------------------------------------------
    def _window(self, node, a, kernel):
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.refuse(node, "only dilation 1")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise self.refuse(node, "only explicit pads (auto_pad NOTSET)")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            raise self.refuse(node, f"only symmetric pads, not {pads}")
        strides = tuple(a.get("strides", [1, 1]))
        return {"kernel": tuple(kernel), "stride": strides, "padding": tuple(pads[:2])}

    def op_Conv(self, node, a):
        x = self.tensor(node, node.input[0])
        weight = self.constant(node, 1, "the weight")
        if weight.ndim != 4:
            raise self.refuse(node, "only 2-D convolutions")
        window = self._window(node, a, weight.shape[2:])
        bias = self.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        # An exporter's all-zero bias made from shape arithmetic stands for "no bias"; a stored one is kept.
        has_bias = bias is not None and (node.input[2] in self.origin or bool(np.any(bias)))
        tensors = {"weight": weight, **({"bias": bias} if has_bias else {})}
        params = {"out_channels": weight.shape[0], **window, "groups": int(a.get("group", 1)), "bias": has_bias}
        self.add(node, "conv2d", [x], params, tensors, weight_origin=self.origin.get(node.input[1]))

    def op_Gemm(self, node, a):
        x = self.tensor(node, node.input[0])
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise self.refuse(node, "only alpha 1, beta 1, transA 0")
        weight = self.constant(node, 1, "B")
        weight = weight if a.get("transB", 0) else weight.T
        bias = self.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        tensors = {"weight": weight, **({"bias": bias.reshape(-1)} if bias is not None else {})}
        params = {"out_features": weight.shape[0], "bias": bias is not None}
        self.add(node, "linear", [x], params, tensors, weight_origin=self.origin.get(node.input[1]))

    def op_MatMul(self, node, a):
        x = self.tensor(node, node.input[0])
        weight = self.constant(node, 1, "the second operand").T
        index = self.add(
            node, "linear", [x], {"out_features": weight.shape[0], "bias": False}, {"weight": weight},
            weight_origin=self.origin.get(node.input[1]),
        )  # fmt: skip
        self.pending[node.output[0]] = ("matmul", index)

    def op_BatchNormalization(self, node, a):
        x = self.tensor(node, node.input[0])
        scale, bias = self.constant(node, 1, "scale"), self.constant(node, 2, "B")
        mean, var = self.constant(node, 3, "mean"), self.constant(node, 4, "var")
        momentum = float(Decimal(1) - Decimal(str(np.float32(a.get("momentum", 0.9)))))
        params = {"eps": _float(a.get("epsilon", 1e-5)), "momentum": momentum}
        tensors = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
        self.add(node, "batchnorm", [x], params, tensors, weight_origin=self.origin.get(node.input[1]))

    def op_GroupNormalization(self, node, a):
        x = self.tensor(node, node.input[0])
        scale, bias = self.constant(node, 1, "scale"), self.constant(node, 2, "bias")
        channels = self.sample_shape(node.input[0])[0]
        if scale.shape != (channels,):
            raise self.refuse(node, "only per-channel scale and bias (opset 21)")
        params = {"groups": int(a["num_groups"]), "eps": _float(a.get("epsilon", 1e-5))}
        tensors = {"weight": scale, "bias": bias}
        self.add(node, "groupnorm", [x], params, tensors, weight_origin=self.origin.get(node.input[1]))

    def op_Reshape(self, node, a):
        source = node.input[0]
        if source in self.pending:  # GroupNorm: back from (N, G, -1) to (N, C, H, W)
            kind, *state = self.pending.pop(source)
            if kind != "normalized" or self.sample_shape(node.output[0]) != self.sample_shape(state[0]):
                raise self.refuse(node, "it interrupts a GroupNorm pattern")
            self.pending[node.output[0]] = ("restored", *state)
            return
        x = self.tensor(node, source)
        before, after = self.sample_shape(source), self.sample_shape(node.output[0])
        if after == before:
            self.values[node.output[0]] = x
        elif after is not None and len(before) == 3 and len(after) == 2 and after[1] * after[0] == math.prod(before):
            self.pending[node.output[0]] = ("grouped", source, after[0])  # GroupNorm: (N, C, H, W) -> (N, G, -1)
        elif after == (math.prod(before),):
            self.add(node, "flatten", [x])
        else:
            raise self.refuse(node, f"only to (N, -1): {before} -> {after}")

    def op_InstanceNormalization(self, node, a):
        state = self.pending.pop(node.input[0], None)
        if state is None or state[0] != "grouped":
            raise self.refuse(node, "only as the core of a GroupNorm (Reshape to groups, normalize, Reshape back)")
        _, source, groups = state
        scale, bias = self.constant(node, 1, "scale"), self.constant(node, 2, "B")
        if not (np.all(scale == 1) and np.all(bias == 0)):
            raise self.refuse(node, "a GroupNorm's group-wise scale must be 1 and bias 0")
        self.pending[node.output[0]] = ("normalized", source, groups, _float(a.get("epsilon", 1e-5)))

    def op_Mul(self, node, a):
        state = self.pending.pop(node.input[0], None)
        if state is None or state[0] != "restored" or node.input[1] not in self.constants:
            raise self.refuse(node, "only the gamma of a GroupNorm")
        self.pending[node.output[0]] = ("scaled", *state[1:], node.input[1])

    def op_Add(self, node, a):
        first = node.input[0]
        if first in self.pending:
            kind, *state = self.pending.pop(first)
            bias = self.constant(node, 1, "the bias")
            if kind == "matmul":
                entry = self.builder.entries[state[0]]
                entry.params["bias"] = True
                entry.tensors["bias"] = bias.reshape(-1)
                self.values[node.output[0]] = state[0]
                return
            if kind != "scaled":
                raise self.refuse(node, "it interrupts a GroupNorm pattern")
            source, groups, eps, gamma_value = state
            channels = self.sample_shape(source)[0]
            gamma = self.constants[gamma_value].reshape(-1)
            if gamma.shape != (channels,) or bias.size != channels:
                raise self.refuse(node, "a GroupNorm's gamma and beta must have one value per channel")
            tensors = {"weight": gamma, "bias": bias.reshape(-1)}
            self.add(
                node, "groupnorm", [self.tensor(node, source)], {"groups": int(groups), "eps": eps}, tensors,
                weight_origin=self.origin.get(gamma_value),
            )  # fmt: skip
            return
        self.add(node, "add", [self.tensor(node, v) for v in node.input])

    def op_Sum(self, node, a):
        self.add(node, "add", [self.tensor(node, v) for v in node.input])

    def op_Relu(self, node, a):
        self.add(node, "relu", [self.tensor(node, node.input[0])])

    def op_Clip(self, node, a):
        low = a.get("min", self.constants.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None)
        high = a.get("max", self.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None)
        if low is None or float(low) != 0 or high is None or not float(high) > 0:
            raise self.refuse(node, "only a clip to [0, max] (a clipped ReLU)")
        self.add(node, "relu", [self.tensor(node, node.input[0])], {"max_value": _float(high)})

    def op_MaxPool(self, node, a):
        if len(node.output) > 1 and node.output[1]:
            raise self.refuse(node, "only without the indices output")
        params = self._window(node, a, a["kernel_shape"])
        params["ceil_mode"] = bool(a.get("ceil_mode", 0))
        self.add(node, "maxpool", [self.tensor(node, node.input[0])], params)

    def op_AveragePool(self, node, a):
        params = self._window(node, a, a["kernel_shape"])
        if a.get("ceil_mode", 0) or (not a.get("count_include_pad", 0) and params["padding"] != (0, 0)):
            raise self.refuse(node, "only ceil_mode 0 and count_include_pad 1")
        self.add(node, "avgpool", [self.tensor(node, node.input[0])], params)

    def op_GlobalAveragePool(self, node, a):
        self.add(node, "global_avgpool", [self.tensor(node, node.input[0])])

    def op_ReduceMean(self, node, a):
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.constants.get(node.input[1])
        if axes is None or {int(v) % 4 for v in np.asarray(axes).reshape(-1)} != {2, 3}:
            raise self.refuse(node, "only the mean over H and W (axes 2, 3)")
        x = self.tensor(node, node.input[0])
        if a.get("keepdims", 1):
            self.add(node, "global_avgpool", [x])
        else:
            pooled = self.add(node, "global_avgpool", [x], output=f"{node.output[0]}#pooled")
            self.add(node, "flatten", [pooled])

    def op_Concat(self, node, a):
        if a.get("axis") not in (1, -3):
            raise self.refuse(node, f"only along the channels (axis 1), not axis {a.get('axis')}")
        self.add(node, "concat", [self.tensor(node, v) for v in node.input])

    def op_Flatten(self, node, a):
        if a.get("axis", 1) != 1:
            raise self.refuse(node, "only axis 1")
        x = self.tensor(node, node.input[0])
        if len(self.sample_shape(node.input[0])) == 1:
            self.values[node.output[0]] = x
        else:
            self.add(node, "flatten", [x])

    def op_Identity(self, node, a):
        self.values[node.output[0]] = self.tensor(node, node.input[0])

    def op_Dropout(self, node, a):
        ratio = self.constants.get(node.input[1]) if len(node.input) > 1 and node.input[1] else a.get("ratio", 0.5)
        if float(np.asarray(ratio)) != 0 and not self.skip_dropout:
            raise self.refuse(node, "the golden model has no dropout: ratio must be 0, or import with skip_dropout")
        self.values[node.output[0]] = self.tensor(node, node.input[0])
