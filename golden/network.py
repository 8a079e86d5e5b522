"""The network description: a layer DAG with per-sample shape inference, a YAML format and a zoo.

The format is documented in ``docs/golden.md`` ("Network YAML format"). Every consumer of a network
(the golden training step, the planner, the traffic and cycle models) reads the same :class:`Network`.

Shapes are **per sample**: ``(C, H, W)`` for feature maps, ``(F,)`` after ``flatten``/``linear`` and ``()``
for the loss. Pair-valued hyper-parameters (``kernel``, ``stride``, ``padding``) are always stored as
``(height, width)`` tuples after loading, whatever the YAML says (an integer means a square window).

Blocks (:meth:`Network.blocks`) are the smallest contiguous runs of the topological order that a schedule
may not cut inside. The rule: a cut between positions ``i - 1`` and ``i`` is allowed exactly when the only
tensor produced before the cut and still needed after it is the output of layer ``i - 1`` (what a chain
cut would carry). A residual block from its fork to its add, an Inception module, a dense layer with its
concat therefore each form one block; every other layer is a block of its own.
"""

from __future__ import annotations

import copy
import heapq
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wavecore.files import write_atomic
from wavecore.golden.layers import conv_output_size
from wavecore.paths import configs_dir

__all__ = [
    "INPUT_FIELDS",
    "LAYER_PARAMS",
    "MULTI_INPUT_OPS",
    "NETWORK_FIELDS",
    "NORM_CHOICES",
    "OPS",
    "Param",
    "Block",
    "Layer",
    "Network",
    "NetworkBuilder",
    "NetworkError",
    "ZOO",
    "load_network",
    "zoo_path",
]

#: Every op a layer may have. ``norm`` in YAML is resolved to ``batchnorm``/``groupnorm`` (or removed)
#: at load time, so a loaded :class:`Network` only holds the ops below.
OPS = (
    "input",
    "conv2d",
    "linear",
    "batchnorm",
    "groupnorm",
    "relu",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "add",
    "concat",
    "flatten",
    "loss",
)
NORM_CHOICES = ("bn", "gn", "none")

#: Zoo names and their YAML file under ``configs/networks/``.
ZOO = {
    "resnet18": "resnet18.yaml",
    "resnet50": "resnet50.yaml",
    "vgg16": "vgg16.yaml",
    "densenet121": "densenet121.yaml",
    "googlenet": "googlenet.yaml",
    "mobilenet_v2": "mobilenet_v2.yaml",
    "tiny_resnet": "tiny_resnet.yaml",
    "tiny_concat": "tiny_concat.yaml",
    "tiny_mobilenet": "tiny_mobilenet.yaml",
}

_CONFIG_DIR = configs_dir() / "networks"

#: Ops that take two or more inputs (every other op takes exactly one).
MULTI_INPUT_OPS = ("add", "concat")
_MULTI_INPUT = MULTI_INPUT_OPS
# Ops that slide a window over H and W (receptive-field geometry in Layer.input_rows).
_WINDOW_OPS = ("conv2d", "maxpool", "avgpool")


class NetworkError(ValueError):
    """An invalid network description; the message is one line naming the layer and the field."""


def _fail(layer: str, field_name: str, message: str) -> NetworkError:
    return NetworkError(f"layer {layer!r}: {field_name} {message}")


def _positive_int(layer: str, name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(layer, name, f"must be an integer >= {minimum}, not {value!r}")
    return value


def _pair(layer: str, name: str, value, minimum: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum for v in value)
    ):
        raise _fail(layer, name, f"must be an integer >= {minimum} or a pair of them, not {value!r}")
    return (int(value[0]), int(value[1]))


def _bool(layer: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise _fail(layer, name, f"must be true or false, not {value!r}")
    return value


def _positive_float(layer: str, name: str, value, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _fail(layer, name, f"must be a positive number, not {value!r}")
    if upper is not None and value > upper:
        raise _fail(layer, name, f"must be a number in (0, {upper}], not {value!r}")
    return float(value)


PARAM_KINDS = ("count", "pair", "flag", "positive", "fraction", "choice", "text", "string", "shape", "mapping", "list")


@dataclass(frozen=True)
class Param:
    """One field of the network YAML (a layer hyper-parameter or a top-level field), defined once.

    The loader validates layer hyper-parameters with :meth:`check` (its one-line messages) and takes the
    top-level fields' defaults and allowed values from :data:`NETWORK_FIELDS`; :func:`golden.schema.network_schema`
    turns the same entries into JSON Schema. ``kind``: ``count`` (integer >= ``minimum``), ``pair`` (such an
    integer or a ``[height, width]`` pair of them), ``flag``, ``positive`` (number > 0), ``fraction`` (number in
    (0, 1]), ``choice`` (one of ``choices``), ``text`` (non-empty string), ``string`` (any string), ``shape``
    (``[C, H, W]`` of positive integers), ``mapping`` and ``list`` (non-empty; their contents are described by
    :data:`INPUT_FIELDS` and :data:`LAYER_PARAMS`). ``nullable``: null is allowed (and means "derived", see
    ``doc``); ``literals``: strings accepted besides the kind (``out_features: num_classes``).
    """

    kind: str
    default: object
    doc: str
    minimum: int = 1
    required: bool = False
    nullable: bool = False
    choices: tuple = ()
    literals: tuple = ()

    def check(self, layer: str, name: str, value):
        """The validated, normalised value of a layer hyper-parameter (pairs as tuples, numbers as float)."""
        if value is None and self.nullable:
            return None
        if isinstance(value, str) and value in self.literals:
            return value
        if self.kind == "count":
            return _positive_int(layer, name, value, self.minimum)
        if self.kind == "pair":
            return _pair(layer, name, value, self.minimum)
        if self.kind == "flag":
            return _bool(layer, name, value)
        if self.kind == "positive":
            return _positive_float(layer, name, value)
        if self.kind == "fraction":
            return _positive_float(layer, name, value, 1.0)
        raise AssertionError(self.kind)

    def json_schema(self) -> dict:
        """This field as JSON Schema (draft 2020-12), with its default (when it has one) and description."""
        integer = {"type": "integer", "minimum": self.minimum}
        schema = {
            "count": integer,
            "pair": {"anyOf": [integer, {"type": "array", "items": integer, "minItems": 2, "maxItems": 2}]},
            "flag": {"type": "boolean"},
            "positive": {"type": "number", "exclusiveMinimum": 0},
            "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "choice": {"enum": list(self.choices)},
            "text": {"type": "string", "minLength": 1},
            "string": {"type": "string"},
            "mapping": {"type": "object"},
            "list": {"type": "array", "minItems": 1},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 3, "maxItems": 3},
        }[self.kind]
        alternatives = [schema] + [{"const": literal} for literal in self.literals]
        if self.nullable:
            alternatives.append({"type": "null"})
        result = {"anyOf": alternatives} if len(alternatives) > 1 else dict(schema)
        if self.default is not None:
            result["default"] = self.default
        result["description"] = self.doc
        return result


_EPS = Param("positive", 1e-5, "added to the variance before the square root")
_MOMENTUM = Param("fraction", 0.1, "running-statistics update factor (PyTorch convention)")
_GN_GROUPS = Param("count", None, "GroupNorm groups (null: gcd(gn_groups, channels))", nullable=True)
_KERNEL = Param("pair", None, "window height and width (an integer: square)", required=True)
_PADDING = Param("pair", 0, "zero padding on each side (height, width)", minimum=0)

#: Hyper-parameters per op (YAML keys besides name/op/inputs): type, default and meaning. ``norm`` becomes
#: ``batchnorm`` or ``groupnorm`` (or disappears) at load time, per the file's or the caller's ``norm``.
LAYER_PARAMS: dict[str, dict[str, Param]] = {
    "input": {},
    "conv2d": {
        "out_channels": Param("count", None, "output channels", required=True),
        "kernel": _KERNEL,
        "stride": Param("pair", 1, "stride (height, width)"),
        "padding": _PADDING,
        "groups": Param("count", 1, "convolution groups (must divide the input and output channels)"),
        "bias": Param("flag", False, "add a per-channel bias"),
    },
    "linear": {
        "out_features": Param("count", None, "output features (num_classes: the network's)", required=True,
                              literals=("num_classes",)),
        "bias": Param("flag", True, "add a bias"),
    },
    "batchnorm": {"eps": _EPS, "momentum": _MOMENTUM},
    "groupnorm": {"groups": _GN_GROUPS, "eps": _EPS},
    "norm": {"eps": _EPS, "momentum": _MOMENTUM, "groups": _GN_GROUPS},
    "relu": {"max_value": Param("positive", None, "clip value (6: ReLU6; null: no clip)", nullable=True)},
    "maxpool": {
        "kernel": _KERNEL,
        "stride": Param("pair", None, "stride (null: the kernel)", nullable=True),
        "padding": _PADDING,
        "ceil_mode": Param("flag", False, "round the output size up (PyTorch ceil_mode)"),
    },
    "avgpool": {
        "kernel": _KERNEL,
        "stride": Param("pair", None, "stride (null: the kernel)", nullable=True),
        "padding": _PADDING,
    },
    "global_avgpool": {},
    "add": {},
    "concat": {},
    "flatten": {},
    "loss": {},
}
_PARAM_DEFAULTS: dict[str, dict[str, object]] = {
    op: {key: param.default for key, param in params.items()} for op, params in LAYER_PARAMS.items()
}

#: Top-level fields of the network YAML (``layers`` is the list of layer mappings; ``input`` a mapping of
#: :data:`INPUT_FIELDS`).
NETWORK_FIELDS: dict[str, Param] = {
    "name": Param("text", None, "network name", required=True),
    "description": Param("string", None, "free text"),
    "input": Param("mapping", None, "the input layer: {name, shape}", required=True),
    "num_classes": Param("count", None, "classes of the loss (out_features: num_classes refers to it)",
                         required=True),
    "norm": Param("choice", "bn", "what every `op: norm` layer becomes", choices=NORM_CHOICES),
    "gn_groups": Param("count", 32, "GroupNorm groups of a norm layer without groups: gcd(gn_groups, channels)"),
    "layers": Param("list", None, "the layers in order (inputs default to the previous layer)", required=True),
}
INPUT_FIELDS: dict[str, Param] = {
    "name": Param("text", "input", "name of the input layer"),
    "shape": Param("shape", None, "per-sample shape [C, H, W]", required=True),
}


def _param(layer: str, op: str, key: str, value):
    return LAYER_PARAMS[op][key].check(layer, key, value)


@dataclass(frozen=True, eq=True)
class Layer:
    """One node of the DAG.

    Attributes
    ----------
    name : str
        Unique layer name; it also names the layer's output tensor.
    op : str
        One of :data:`OPS`.
    inputs : tuple of str
        Producer layer names, in operand order (``add`` sums them, ``concat`` stacks channels in order).
    params : dict
        Normalised hyper-parameters (see ``docs/golden.md``): conv2d ``out_channels, kernel, stride,
        padding, groups, bias``; linear ``out_features, bias``; batchnorm ``eps, momentum``; groupnorm
        ``groups, eps``; relu ``max_value`` (``None`` or a clip such as 6 for ReLU6); maxpool ``kernel,
        stride, padding, ceil_mode``; avgpool ``kernel, stride, padding`` (padding counts in the average,
        as in PyTorch). Pairs are ``(height, width)`` tuples.
    in_shapes : tuple of tuple of int
        Per-sample input shapes, one per input.
    out_shape : tuple of int
        Per-sample output shape.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    params: dict = field(default_factory=dict)
    in_shapes: tuple[tuple[int, ...], ...] = ()
    out_shape: tuple[int, ...] = ()

    def __hash__(self) -> int:
        return hash((self.name, self.op, self.inputs, self.out_shape))

    @property
    def weight_shape(self) -> tuple[int, ...] | None:
        """Shape of the layer's main trainable tensor (conv/linear weight, norm gamma), else ``None``."""
        p = self.params
        if self.op == "conv2d":
            c_in = self.in_shapes[0][0]
            return (p["out_channels"], c_in // p["groups"], *p["kernel"])
        if self.op == "linear":
            return (p["out_features"], self.in_shapes[0][0])
        if self.op in ("batchnorm", "groupnorm"):
            return (self.in_shapes[0][0],)
        return None

    @property
    def bias_shape(self) -> tuple[int, ...] | None:
        """Shape of the bias (conv/linear with ``bias``; norm beta), else ``None``."""
        if self.op == "conv2d" and self.params["bias"]:
            return (self.params["out_channels"],)
        if self.op == "linear" and self.params["bias"]:
            return (self.params["out_features"],)
        if self.op in ("batchnorm", "groupnorm"):
            return (self.in_shapes[0][0],)
        return None

    @property
    def param_count(self) -> int:
        """Number of trainable scalars (weights, biases, norm gamma and beta)."""
        return sum(math.prod(s) for s in (self.weight_shape, self.bias_shape) if s is not None)

    @property
    def macs(self) -> int:
        """Forward multiply-accumulates per sample (conv2d and linear only; other ops count 0)."""
        if self.op == "conv2d":
            c_out, c_in_per_group, kh, kw = self.weight_shape
            return c_out * self.out_shape[1] * self.out_shape[2] * c_in_per_group * kh * kw
        if self.op == "linear":
            return math.prod(self.weight_shape)
        return 0

    @property
    def out_elements(self) -> int:
        """Elements of the output tensor per sample (``0`` for the scalar loss, which is never stored)."""
        return math.prod(self.out_shape) if self.out_shape else 0

    def input_rows(self, first: int, last: int) -> tuple[int, int]:
        """Input rows ``(lo, hi)`` read by output rows ``first..last`` of a conv2d, maxpool or avgpool.

        The receptive-field inversion along the height that Occam's closures and LR-CNN's row blocks share
        (:mod:`wavecore.golden.plan.occam`, :mod:`wavecore.golden.plan.lrcnn`): output row ``r`` reads input rows
        ``r*s - p .. r*s - p + k - 1``. Not clipped: rows below 0 or past the map are padding.
        """
        if self.op not in _WINDOW_OPS:
            raise ValueError(f"layer {self.name!r}: input_rows needs a conv2d or pool layer, not {self.op}")
        kernel, stride, padding = (self.params[key][0] for key in ("kernel", "stride", "padding"))
        return first * stride - padding, last * stride - padding + kernel - 1


@dataclass(frozen=True)
class Block:
    """A contiguous run of layers (topological order) that a schedule may not cut inside."""

    name: str
    layers: tuple[str, ...]


class Network:
    """A validated layer DAG with per-sample shapes.

    Build one with :meth:`from_yaml`, :func:`load_network` or :class:`NetworkBuilder`. ``layers`` is in
    topological order, the ``input`` layer first and the output (``loss`` if present) last.
    """

    def __init__(
        self, name: str, layers: list[Layer], *, num_classes: int, norm: str = "bn", gn_groups: int = 32
    ):
        self.name = name
        self.layers = list(layers)
        self.num_classes = num_classes
        self.norm = norm
        self.gn_groups = gn_groups
        self._by_name = {layer.name: layer for layer in self.layers}
        self._consumers: dict[str, list[str]] = {layer.name: [] for layer in self.layers}
        for layer in self.layers:
            for source in layer.inputs:
                self._consumers[source].append(layer.name)
        self._index = {layer.name: i for i, layer in enumerate(self.layers)}

    # -- queries -------------------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.layers[0].out_shape

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    @property
    def has_loss(self) -> bool:
        return self.layers[-1].op == "loss"

    def layer(self, name: str) -> Layer:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"network {self.name!r} has no layer {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def index(self, name: str) -> int:
        """Position of ``name`` in the topological order."""
        return self._index[name]

    def consumers(self, name: str) -> list[str]:
        """Names of the layers reading ``name``'s output, in topological order."""
        return list(self._consumers[self.layer(name).name])

    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    def macs(self) -> int:
        """Forward MACs per sample of the whole network."""
        return sum(layer.macs for layer in self.layers)

    def norm_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.op in ("batchnorm", "groupnorm")]

    def live_after(self, position: int) -> list[str]:
        """Tensors produced at positions ``<= position`` and read at a position ``> position``."""
        live = []
        for layer in self.layers[: position + 1]:
            if any(self._index[c] > position for c in self._consumers[layer.name]):
                live.append(layer.name)
        return live

    def base_tensors(self, view_ops) -> dict[str, tuple[str, ...]]:
        """The stored tensors each layer's output resolves to when ``view_ops`` store nothing of their own.

        A view (e.g. a ReLU applied on read) resolves to the bases of its inputs, in input order without
        repeats; every other layer is its own base. The traffic model and Occam pass their own view sets.
        """
        base: dict[str, tuple[str, ...]] = {}
        for layer in self.layers:
            if layer.op in view_ops and layer.op != "input":
                base[layer.name] = tuple(dict.fromkeys(b for source in layer.inputs for b in base[source]))
            else:
                base[layer.name] = (layer.name,)
        return base

    def blocks(self) -> list[Block]:
        """The network split into the smallest uncuttable contiguous runs (rule in the module docstring)."""
        last_use = {}
        for i, layer in enumerate(self.layers):
            for source in layer.inputs:
                last_use[source] = i
        blocks: list[Block] = []
        current: list[str] = []
        open_tensors: set[str] = set()
        for i, layer in enumerate(self.layers):
            current.append(layer.name)
            if layer.name in last_use:
                open_tensors.add(layer.name)
            open_tensors = {t for t in open_tensors if last_use[t] > i}
            if open_tensors <= {layer.name}:
                name = current[0] if len(current) == 1 else f"{current[0]}..{current[-1]}"
                blocks.append(Block(name, tuple(current)))
                current = []
        if current:  # cannot happen for a validated network (the output has no consumer)
            blocks.append(Block(f"{current[0]}..{current[-1]}", tuple(current)))
        return blocks

    def block_of(self, name: str) -> Block:
        for block in self.blocks():
            if name in block.layers:
                return block
        raise KeyError(f"network {self.name!r} has no layer {name!r}")

    def __repr__(self) -> str:
        return (
            f"Network({self.name!r}, input={self.input_shape}, layers={len(self.layers)}, "
            f"params={self.param_count()})"
        )

    # -- YAML ----------------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(
        cls,
        source,
        *,
        norm: str | None = None,
        gn_groups: int | None = None,
        input_size: int | None = None,
        num_classes: int | None = None,
    ) -> Network:
        """Load from a YAML path or YAML text (text is recognised by containing a newline)."""
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
            path = Path(source)
            try:
                text = path.read_text()
            except OSError as error:
                raise NetworkError(f"network file {str(path)!r} cannot be read: {error.strerror}") from None
        else:
            text = source
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise NetworkError(f"network YAML is not valid YAML{where}") from None
        return cls.from_spec(
            spec, norm=norm, gn_groups=gn_groups, input_size=input_size, num_classes=num_classes
        )

    @classmethod
    def from_spec(
        cls,
        spec,
        *,
        norm: str | None = None,
        gn_groups: int | None = None,
        input_size: int | None = None,
        num_classes: int | None = None,
    ) -> Network:
        """Build from the parsed YAML mapping (see ``docs/golden.md``); overrides win over the file."""
        return _build(spec, norm=norm, gn_groups=gn_groups, input_size=input_size, num_classes=num_classes)

    def to_spec(self) -> dict:
        """The network as a YAML-ready mapping (norm layers written with their resolved op)."""
        layers = []
        for layer in self.layers:
            if layer.op == "input":
                continue
            entry: dict = {"name": layer.name, "op": layer.op}
            position = self._index[layer.name]
            previous = self.layers[position - 1].name
            if layer.inputs != (previous,):
                entry["inputs"] = list(layer.inputs)
            defaults = _PARAM_DEFAULTS[layer.op]
            for key, value in layer.params.items():
                default = defaults.get(key)
                if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, tuple):
                    default = (default, default)
                if key == "stride" and layer.op in ("maxpool", "avgpool") and value == layer.params["kernel"]:
                    continue
                if value == default and key not in ("out_channels", "kernel", "out_features", "groups"):
                    continue
                if isinstance(value, tuple):
                    value = value[0] if value[0] == value[1] else list(value)
                entry[key] = value
            layers.append(entry)
        input_layer = self.layers[0]
        return {
            "name": self.name,
            "input": {"name": input_layer.name, "shape": list(input_layer.out_shape)},
            "num_classes": self.num_classes,
            "layers": layers,
        }

    def to_yaml(self) -> str:
        stream = io.StringIO()
        spec = self.to_spec()
        stream.write(f"name: {spec['name']}\n")
        stream.write(f"input: {{name: {spec['input']['name']}, shape: {spec['input']['shape']}}}\n")
        stream.write(f"num_classes: {spec['num_classes']}\n")
        stream.write("layers:\n")
        for entry in spec["layers"]:
            stream.write(
                "  - "
                + yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10**6).strip()
                + "\n"
            )
        return stream.getvalue()

    def write_yaml(self, path) -> None:
        """Write :meth:`to_yaml` atomically."""
        write_atomic(path, self.to_yaml())


# ----------------------------------------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------------------------------------
def _top_level(spec, key, check, default=None):
    if key not in spec:
        if default is None:
            raise NetworkError(f"network: field {key!r} is missing")
        return default
    return check(spec[key])


def _build(spec, *, norm, gn_groups, input_size, num_classes) -> Network:
    if not isinstance(spec, dict):
        raise NetworkError("network: the YAML document must be a mapping with name, input, layers")
    unknown = set(spec) - set(NETWORK_FIELDS)
    if unknown:
        raise NetworkError(
            f"network: unknown field {sorted(unknown)[0]!r} (allowed: name, input, num_classes, "
            "norm, gn_groups, layers, description)"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise NetworkError(f"network: field 'name' must be a non-empty string, not {name!r}")
    if not isinstance(spec.get("description", ""), str):
        raise NetworkError(f"network: field 'description' must be a string, not {spec['description']!r}")

    def check_norm(value):
        if value not in NETWORK_FIELDS["norm"].choices:
            allowed = ", ".join(NETWORK_FIELDS["norm"].choices)
            raise NetworkError(f"network: field 'norm' must be one of {allowed}, not {value!r}")
        return value

    def check_groups(value):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise NetworkError(f"network: field 'gn_groups' must be an integer >= 1, not {value!r}")
        return value

    def check_classes(value):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise NetworkError(f"network: field 'num_classes' must be an integer >= 1, not {value!r}")
        return value

    norm = (
        check_norm(norm) if norm is not None else _top_level(spec, "norm", check_norm, NETWORK_FIELDS["norm"].default)
    )
    gn_groups = (
        check_groups(gn_groups)
        if gn_groups is not None
        else _top_level(spec, "gn_groups", check_groups, NETWORK_FIELDS["gn_groups"].default)
    )
    num_classes = (
        check_classes(num_classes)
        if num_classes is not None
        else _top_level(spec, "num_classes", check_classes, None)
    )

    input_spec = spec.get("input")
    if not isinstance(input_spec, dict) or "shape" not in input_spec:
        raise NetworkError("network: field 'input' must be a mapping {name: ..., shape: [C, H, W]}")
    input_name = input_spec.get("name", INPUT_FIELDS["name"].default)
    shape = input_spec["shape"]
    if (
        not isinstance(shape, list | tuple)
        or len(shape) != 3
        or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in shape)
    ):
        raise NetworkError(
            f"layer {input_name!r}: shape must be [C, H, W] of positive integers, not {shape!r}"
        )
    shape = tuple(shape)
    if input_size is not None:
        if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
            raise NetworkError(f"network: input_size must be a positive integer, not {input_size!r}")
        shape = (shape[0], input_size, input_size)

    raw_layers = spec.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise NetworkError("network: field 'layers' must be a non-empty list")

    entries = []
    seen = {input_name}
    previous = input_name
    for position, raw in enumerate(raw_layers):
        if not isinstance(raw, dict):
            raise NetworkError(f"network: layers[{position}] must be a mapping, not {raw!r}")
        layer_name = raw.get("name")
        if not isinstance(layer_name, str) or not layer_name:
            raise NetworkError(f"network: layers[{position}] field 'name' must be a non-empty string")
        if layer_name in seen:
            raise _fail(layer_name, "name", "is used by an earlier layer")
        seen.add(layer_name)
        op = raw.get("op")
        if op not in LAYER_PARAMS or op == "input":
            allowed = ", ".join(o for o in LAYER_PARAMS if o != "input")
            raise _fail(layer_name, "op", f"must be one of {allowed}, not {op!r}")
        inputs = raw.get("inputs", [previous])
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list | tuple) or not inputs or not all(isinstance(i, str) for i in inputs):
            raise _fail(layer_name, "inputs", f"must be a non-empty list of layer names, not {inputs!r}")
        if op in _MULTI_INPUT and len(inputs) < 2:
            raise _fail(layer_name, "inputs", f"of {op} must name at least 2 layers, not {len(inputs)}")
        if op not in _MULTI_INPUT and len(inputs) != 1:
            raise _fail(layer_name, "inputs", f"of {op} must name exactly 1 layer, not {len(inputs)}")
        params = {k: v for k, v in raw.items() if k not in ("name", "op", "inputs")}
        allowed = _PARAM_DEFAULTS[op]
        for key in params:
            if key not in allowed:
                names = ", ".join(allowed) or "none"
                raise _fail(layer_name, key, f"is not a parameter of {op} (allowed: {names})")
        entries.append([layer_name, op, tuple(inputs), params])
        previous = layer_name

    entries = _resolve_norms(entries, norm)
    ordered = _topological(input_name, entries)
    layers = [Layer(input_name, "input", (), {}, (), shape)]
    shapes = {input_name: shape}
    for layer_name, op, inputs, params in ordered:
        in_shapes = tuple(shapes[i] for i in inputs)
        normalised, out_shape = _infer(layer_name, op, params, in_shapes, num_classes, gn_groups)
        shapes[layer_name] = out_shape
        layers.append(Layer(layer_name, op, tuple(inputs), normalised, in_shapes, out_shape))

    consumers = {layer.name: 0 for layer in layers}
    for layer in layers:
        for source in layer.inputs:
            consumers[source] += 1
    for layer in layers[:-1]:
        if consumers[layer.name] == 0:
            raise _fail(layer.name, "output", "is never used (only the last layer may have no consumer)")
    for layer in layers[:-1]:
        if layer.op == "loss":
            raise _fail(layer.name, "op", "loss must be the last layer")
    return Network(name, layers, num_classes=num_classes, norm=norm, gn_groups=gn_groups)


def _resolve_norms(entries, norm):
    """Turn ``op: norm`` into batchnorm/groupnorm, or drop it (rewiring its consumers) for ``norm: none``."""
    rename: dict[str, str] = {}
    resolved = []
    for layer_name, op, inputs, params in entries:
        inputs = tuple(rename.get(i, i) for i in inputs)
        if op == "norm":
            if norm == "none":
                rename[layer_name] = inputs[0]
                continue
            if norm == "bn":
                if params.get("groups") is not None:
                    params = {k: v for k, v in params.items() if k != "groups"}
                op = "batchnorm"
            else:
                params = {k: v for k, v in params.items() if k != "momentum"}
                op = "groupnorm"
        resolved.append([layer_name, op, inputs, params])
    return resolved


def _topological(input_name, entries):
    """Kahn's algorithm, keeping the YAML order wherever the dependencies allow it."""
    names = {e[0]: i for i, e in enumerate(entries)}
    waiting = {}
    for position, (layer_name, _, inputs, _) in enumerate(entries):
        for source in inputs:
            if source != input_name and source not in names:
                raise _fail(layer_name, "inputs", f"names unknown layer {source!r}")
            if source == layer_name:
                raise _fail(layer_name, "inputs", "names the layer itself (cycle)")
        waiting[position] = {names[s] for s in inputs if s != input_name}
    dependants: dict[int, list[int]] = {i: [] for i in range(len(entries))}
    for position, needs in waiting.items():
        for need in needs:
            dependants[need].append(position)
    ready = [p for p, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order = []
    remaining = {p: len(n) for p, n in waiting.items()}
    while ready:
        position = heapq.heappop(ready)
        order.append(entries[position])
        for dependant in dependants[position]:
            remaining[dependant] -= 1
            if remaining[dependant] == 0:
                heapq.heappush(ready, dependant)
    if len(order) != len(entries):
        stuck = min(p for p, r in remaining.items() if r > 0)
        raise _fail(entries[stuck][0], "inputs", "form a cycle")
    return order


def _window_out(layer, size, kernel, stride, padding, ceil_mode=False):
    if size + 2 * padding < kernel:
        raise _fail(layer, "kernel", f"{kernel} is larger than the padded input ({size} + 2*{padding})")
    return conv_output_size(size, kernel, stride, padding, ceil_mode)


def _infer(name, op, raw, in_shapes, num_classes, gn_groups):
    """Validate hyper-parameters against the input shapes; return (normalised params, out shape)."""
    params = dict(_PARAM_DEFAULTS[op])
    params.update(raw)
    for key, spec in LAYER_PARAMS[op].items():
        if spec.required and params[key] is None:
            raise _fail(name, key, f"is required for {op}")
    first = in_shapes[0]
    spatial_ops = ("conv2d", "batchnorm", "groupnorm", "maxpool", "avgpool", "global_avgpool")
    if op in spatial_ops and len(first) != 3:
        raise _fail(name, "inputs", f"{op} needs a (C, H, W) input, not shape {first}")
    if op == "conv2d":
        out_channels, kernel, stride, padding, groups, bias = (
            _param(name, op, key, params[key])
            for key in ("out_channels", "kernel", "stride", "padding", "groups", "bias")
        )
        c_in = first[0]
        if c_in % groups or out_channels % groups:
            raise _fail(
                name,
                "groups",
                f"{groups} must divide the input channels {c_in} and out_channels {out_channels}",
            )
        height = _window_out(name, first[1], kernel[0], stride[0], padding[0])
        width = _window_out(name, first[2], kernel[1], stride[1], padding[1])
        return (
            {
                "out_channels": out_channels,
                "kernel": kernel,
                "stride": stride,
                "padding": padding,
                "groups": groups,
                "bias": bias,
            },
            (out_channels, height, width),
        )
    if op == "linear":
        features = params["out_features"]
        if features == "num_classes":
            features = num_classes
        if features is None:
            raise _fail(name, "out_features", "is required for linear")
        features = _param(name, op, "out_features", features)
        bias = _param(name, op, "bias", params["bias"])
        if len(first) != 1:
            raise _fail(name, "inputs", f"linear needs a flat (F,) input (add a flatten), not shape {first}")
        return {"out_features": features, "bias": bias}, (features,)
    if op == "batchnorm":
        eps = _param(name, op, "eps", params["eps"])
        momentum = _param(name, op, "momentum", params["momentum"])
        return {"eps": eps, "momentum": momentum}, first
    if op == "groupnorm":
        channels = first[0]
        groups = params["groups"]
        groups = math.gcd(gn_groups, channels) if groups is None else _param(name, op, "groups", groups)
        if channels % groups:
            raise _fail(name, "groups", f"{groups} must divide the channels {channels}")
        eps = _param(name, op, "eps", params["eps"])
        return {"groups": groups, "eps": eps}, first
    if op == "relu":
        limit = _param(name, op, "max_value", params["max_value"])
        return {"max_value": limit}, first
    if op in ("maxpool", "avgpool"):
        kernel = _param(name, op, "kernel", params["kernel"])
        stride = _param(name, op, "stride", params["stride"]) or kernel
        padding = _param(name, op, "padding", params["padding"])
        if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
            raise _fail(name, "padding", f"{padding} must be at most half the kernel {kernel}")
        ceil_mode = _param(name, "maxpool", "ceil_mode", params.get("ceil_mode", False))
        height = _window_out(name, first[1], kernel[0], stride[0], padding[0], ceil_mode)
        width = _window_out(name, first[2], kernel[1], stride[1], padding[1], ceil_mode)
        normalised = {"kernel": kernel, "stride": stride, "padding": padding}
        if op == "maxpool":
            normalised["ceil_mode"] = ceil_mode
        return normalised, (first[0], height, width)
    if op == "global_avgpool":
        return {}, (first[0], 1, 1)
    if op == "add":
        for shape in in_shapes[1:]:
            if shape != first:
                raise _fail(name, "inputs", f"of add must have equal shapes, got {first} and {shape}")
        return {}, first
    if op == "concat":
        for shape in in_shapes:
            if len(shape) != 3 or shape[1:] != first[1:]:
                raise _fail(
                    name, "inputs", f"of concat must be (C, H, W) with equal H, W, got {list(in_shapes)}"
                )
        return {}, (sum(s[0] for s in in_shapes), first[1], first[2])
    if op == "flatten":
        return {}, (math.prod(first),)
    if op == "loss":
        if len(first) != 1:
            raise _fail(name, "inputs", f"loss needs (classes,) logits, not shape {first}")
        if num_classes is not None and first[0] != num_classes:
            raise _fail(name, "inputs", f"loss needs {num_classes} logits (num_classes), not {first[0]}")
        return {}, ()
    raise AssertionError(op)


# ----------------------------------------------------------------------------------------------------------
# Building from Python
# ----------------------------------------------------------------------------------------------------------
class NetworkBuilder:
    """Build a network from Python; each method appends a layer and returns its name.

    ``inputs`` defaults to the previously added layer. :meth:`spec` gives the YAML mapping and
    :meth:`build` the validated :class:`Network` (so both paths share one validator).
    """

    def __init__(
        self,
        name: str,
        input_shape,
        *,
        num_classes: int,
        norm: str = "bn",
        gn_groups: int = 32,
        input_name: str = "input",
    ):
        self.name = name
        self.input_shape = list(input_shape)
        self.num_classes = num_classes
        self.norm = norm
        self.gn_groups = gn_groups
        self.input_name = input_name
        self.last = input_name
        self._layers: list[dict] = []

    def add_layer(self, name: str, op: str, inputs=None, **params) -> str:
        entry: dict = {"name": name, "op": op}
        if inputs is None:
            inputs = [self.last]
        elif isinstance(inputs, str):
            inputs = [inputs]
        entry["inputs"] = list(inputs)
        entry.update({k: v for k, v in params.items() if v is not None})
        self._layers.append(entry)
        self.last = name
        return name

    def conv(self, name, out_channels, kernel, stride=1, padding=0, groups=1, bias=False, inputs=None):
        return self.add_layer(
            name,
            "conv2d",
            inputs,
            out_channels=out_channels,
            kernel=kernel,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=bias,
        )

    def linear(self, name, out_features, bias=True, inputs=None):
        return self.add_layer(name, "linear", inputs, out_features=out_features, bias=bias)

    def norm_layer(self, name, inputs=None, groups=None):
        return self.add_layer(name, "norm", inputs, groups=groups)

    def relu(self, name, inputs=None, max_value=None):
        return self.add_layer(name, "relu", inputs, max_value=max_value)

    def maxpool(self, name, kernel, stride=None, padding=0, ceil_mode=False, inputs=None):
        return self.add_layer(
            name,
            "maxpool",
            inputs,
            kernel=kernel,
            stride=stride,
            padding=padding,
            ceil_mode=ceil_mode or None,
        )

    def avgpool(self, name, kernel, stride=None, padding=0, inputs=None):
        return self.add_layer(name, "avgpool", inputs, kernel=kernel, stride=stride, padding=padding)

    def global_avgpool(self, name, inputs=None):
        return self.add_layer(name, "global_avgpool", inputs)

    def add(self, name, inputs):
        return self.add_layer(name, "add", inputs)

    def concat(self, name, inputs):
        return self.add_layer(name, "concat", inputs)

    def flatten(self, name, inputs=None):
        return self.add_layer(name, "flatten", inputs)

    def loss(self, name="loss", inputs=None):
        return self.add_layer(name, "loss", inputs)

    def spec(self) -> dict:
        """The YAML mapping; ``inputs`` is left out where it is the previous layer."""
        layers = []
        previous = self.input_name
        for entry in self._layers:
            entry = copy.deepcopy(entry)
            if entry["inputs"] == [previous]:
                del entry["inputs"]
            for key in ("padding",):
                if entry.get(key) == 0:
                    del entry[key]
            if entry.get("stride") == 1 and entry["op"] == "conv2d":
                del entry["stride"]
            if entry.get("groups") == 1 and entry["op"] == "conv2d":
                del entry["groups"]
            if entry.get("bias") is False and entry["op"] == "conv2d":
                del entry["bias"]
            if entry.get("bias") is True and entry["op"] == "linear":
                del entry["bias"]
            if entry.get("out_features") == self.num_classes and entry["op"] == "linear":
                entry["out_features"] = "num_classes"
            previous = entry["name"]
            layers.append(entry)
        return {
            "name": self.name,
            "input": {"name": self.input_name, "shape": self.input_shape},
            "num_classes": self.num_classes,
            "norm": self.norm,
            "gn_groups": self.gn_groups,
            "layers": layers,
        }

    def yaml_text(self, description: str | None = None) -> str:
        spec = self.spec()
        lines = []
        if description:
            lines.extend(f"# {line}".rstrip() for line in description.splitlines())
        lines.append(f"name: {spec['name']}")
        lines.append(f"input: {{name: {spec['input']['name']}, shape: {spec['input']['shape']}}}")
        lines.append(f"num_classes: {spec['num_classes']}")
        lines.append(f"norm: {spec['norm']}        # bn | gn | none: what every 'op: norm' layer becomes")
        lines.append(f"gn_groups: {spec['gn_groups']}   # GroupNorm groups = gcd(gn_groups, channels)")
        lines.append("layers:")
        for entry in spec["layers"]:
            lines.append(
                "  - " + yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10**6).strip()
            )
        return "\n".join(lines) + "\n"

    def build(self, **overrides) -> Network:
        return Network.from_spec(self.spec(), **overrides)


def zoo_path(name: str) -> Path:
    """Path of a zoo network's YAML file."""
    if name not in ZOO:
        raise NetworkError(f"network must be one of {', '.join(ZOO)} or a YAML path, not {name!r}")
    return _CONFIG_DIR / ZOO[name]


def load_network(
    name_or_path,
    *,
    norm: str | None = None,
    gn_groups: int | None = None,
    input_size: int | None = None,
    num_classes: int | None = None,
) -> Network:
    """Load a zoo network by name (:data:`ZOO`) or any network YAML by path.

    ``norm`` (``"bn"``, ``"gn"`` or ``"none"``) and ``gn_groups`` override the file's defaults (which are
    ``bn`` and 32 unless the file says otherwise); ``input_size`` sets the input height and width;
    ``num_classes`` sets every ``out_features: num_classes`` layer.
    """
    text = str(name_or_path)
    path = zoo_path(text) if text in ZOO else Path(text)
    if text not in ZOO and path.suffix not in (".yaml", ".yml") and not path.exists():
        raise NetworkError(f"network must be one of {', '.join(ZOO)} or a YAML path, not {text!r}")
    return Network.from_yaml(
        path, norm=norm, gn_groups=gn_groups, input_size=input_size, num_classes=num_classes
    )
