"""Occam multi-FPGA pipelines of DAG networks: partition, per-stage engine graphs, golden boundaries, bitstreams.

Occam (Gondimalla et al., "Occam: Optimal Data Reuse for Convolutional Neural Networks", arXiv 2106.14138)
built for FPGAs, one chip per partition:

1. **Network**: a zoo name (``tiny_resnet``, ``tiny_concat``, ``tiny_mobilenet``, ...) loaded with its norm
   layers removed (``norm: none``), a ``configs/pipelines/<name>.yaml`` (``tiny_chain``) or a YAML path.
   Occam is an inference pipeline: a BatchNorm at inference is an affine map folded into the preceding
   conv's weights, and a GroupNorm needs whole-frame per-sample statistics, which a row stream cannot have
   before the frame's last row; a network that still has norm layers is refused.
2. **Partition** with the Occam DP (:func:`wavecore.golden.plan.occam.partition`, memory model M2 ``line_buffer``,
   int8 elements, no oversized layer) for the target's usable on-chip memory: the device's block RAM
   (:attr:`wavecore.boards.targets.Target.bram_bytes`) minus :data:`LINK_RESERVE_BLOCKS` block RAMs per chip for link
   and FIFO buffering, or an explicit capacity. Cuts only where exactly one tensor is live
   (``cuts="single_tensor"``): a stage boundary is then one tensor on one link; a residual shortcut or a
   concat's branches never cross a chip boundary.
3. **Stage = a graph of engines** (:class:`NodePlan`, :func:`stage_component`): conv2d and linear (a 1x1
   conv on the 1x1 frame after a global pool; flatten is then free) on :class:`wavecore.hdl.stream.conv.StreamConv2d`
   with a following ReLU/ReLU6 fused, max/avg pools on ``StreamPool2d``, global average pool on
   ``StreamGlobalAvgPool``, add (+ReLU) on ``StreamAdd``, concat on ``StreamConcat``, any other ReLU on
   ``StreamReLU``; a tensor with several readers goes through a ``StreamFork`` whose skip FIFOs are sized by
   :func:`hdl.stream.fork.skip_fifo_depth` (inside :class:`hdl.stream.pipeline_stage.PipelineStage`). Stage time
   = the slowest engine's cycles per frame or the link's lane words per frame if larger (the engines overlap
   through their streams; :func:`wavecore.hdl.stream.pipeline_stage.stage_cycles`, checked against Verilator in
   ``tests/boards/test_pipeline.py``). **STAP** replicas
   ``r_i = ceil(t_i / tau)`` from :func:`wavecore.golden.plan.occam.stap` with the chip budget.
4. **Numerics**: the golden model's int8 integer mode (:data:`PIPELINE_NUMERICS`,
   ``wavecore.golden.numerics.INTEGER_PRESETS["int8"]``). Filters are seeded random int8 tensors on the
   ``Q.weight_frac`` grid (He-uniform range, so activations neither vanish nor saturate);
   :func:`golden_boundaries` runs the network forward with :class:`wavecore.golden.integer.IntegerKernels` and returns
   every stage-boundary tensor, which the cocotb test compares with the RTL's link traffic bit for bit.
5. **Build** one bitstream per *distinct* stage (replicas share theirs) with a report.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth import Elaboratable, Module
from amaranth.build import Pins, Resource, Subsignal

from wavecore.boards.targets import Target
from wavecore.golden.numerics import INTEGER_PRESETS, IntegerTraining
from wavecore.hdl.stream.link import link_words, pixel_layout
from wavecore.paths import configs_dir

__all__ = [
    "LINK",
    "LINK_RESERVE_BLOCKS",
    "PIPELINE_NETWORK_DIR",
    "PIPELINE_NUMERICS",
    "NodePlan",
    "PipelineError",
    "PipelinePlan",
    "StageBoardTop",
    "StagePlan",
    "build_pipeline",
    "golden_activations",
    "golden_boundaries",
    "init_integer_params",
    "link_budget",
    "load_pipeline_network",
    "plan_pipeline",
    "stage_component",
    "usable_capacity",
]

#: Block RAMs per chip kept free of the partition for link/FIFO buffering.
LINK_RESERVE_BLOCKS = 2
PIPELINE_NETWORK_DIR = configs_dir() / "pipelines"
#: The arithmetic of every pipeline: int8 operands, int32 saturating accumulator, Q.4 activations, Q.6 weights.
PIPELINE_NUMERICS: IntegerTraining = INTEGER_PRESETS["int8"]
#: Source name of a stage's input link in :attr:`NodePlan.sources`.
LINK = "link"
_OPS = ("conv2d", "linear", "maxpool", "avgpool", "global_avgpool", "add", "concat", "relu", "flatten")


class PipelineError(ValueError):
    """The network or the request cannot be mapped onto a pipeline; one line naming the cause.

    ``option`` names the command-line option the problem comes from (``network``, ``capacity``, ``chips``).
    """

    def __init__(self, message: str, option: str = "network"):
        super().__init__(message)
        self.option = option


def _frame(shape) -> tuple[int, int, int]:
    """A tensor shape as a row-stream frame ``(C, H, W)``: a flat ``(C,)`` vector is a 1x1 frame."""
    shape = tuple(shape)
    return shape if len(shape) == 3 else (math.prod(shape), 1, 1)


@dataclass(frozen=True)
class NodePlan:
    """One engine of a stage.

    ``kind`` is ``conv`` (conv2d or linear), ``maxpool``, ``avgpool``, ``global_avgpool``, ``add``,
    ``concat`` or ``relu``; ``layers`` the network layers it computes (the op, then a fused ReLU and any
    flatten); ``sources`` the engines (or :data:`LINK`) it reads, in operand order. ``params`` holds the
    engine's parameters: ``weights``/``bias``/``stride``/``padding``/``groups`` (conv), ``kernel``/
    ``stride``/``padding`` (pools), ``relu`` (``None``, ``"relu"``) and ``relu_max`` (an int clamp or
    ``None``).
    """

    name: str
    kind: str
    layers: tuple[str, ...]
    sources: tuple[str, ...]
    in_shapes: tuple[tuple[int, int, int], ...]
    out_shape: tuple[int, int, int]
    params: dict = field(default_factory=dict, compare=False)

    @property
    def cycles(self) -> int:
        """Cycles per frame of the engine with input always available and output always ready."""
        channels, height, width = self.in_shapes[0]
        p = self.params
        if self.kind == "conv":
            from wavecore.hdl.stream.conv import stream_conv_cycles

            weights = p["weights"]
            return stream_conv_cycles(
                height=height,
                width=width,
                kernel=weights.shape[2:],
                stride=p["stride"],
                padding=p["padding"],
                in_channels=channels,
                groups=p["groups"],
            )
        if self.kind in ("maxpool", "avgpool"):
            from wavecore.hdl.stream.pool import stream_pool_cycles

            return stream_pool_cycles(
                height=height, width=width, kernel=p["kernel"], stride=p["stride"], padding=p["padding"]
            )
        if self.kind == "global_avgpool":
            from wavecore.hdl.stream.global_pool import stream_global_pool_cycles

            return stream_global_pool_cycles(height=height, width=width)
        return height * width  # add, concat, relu: one pixel per cycle

    def signature(self) -> tuple:
        """Everything that determines the engine's hardware (weights by their digest)."""
        items = []
        for key in sorted(self.params):
            value = self.params[key]
            if isinstance(value, np.ndarray):
                value = (value.shape, hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest())
            items.append((key, value))
        return (self.kind, self.sources, self.in_shapes, self.out_shape, tuple(items))


@dataclass
class StagePlan:
    """One pipeline stage: its layers, engines, memory footprint (from the planner), STAP replicas."""

    index: int
    layer_names: tuple[str, ...]
    nodes: list[NodePlan]
    input_layer: str
    output_layer: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    footprint_bytes: int
    replicas: int = 1
    lane_width: int = 16

    @property
    def link_words_per_frame(self) -> tuple[int, int]:
        """Lane words per frame on the input and the output link (one word per cycle at most)."""
        (c_in, h_in, w_in), (c_out, h_out, w_out) = self.in_shape, self.out_shape
        return (
            h_in * w_in * link_words(pixel_layout(c_in), self.lane_width),
            h_out * w_out * link_words(pixel_layout(c_out), self.lane_width),
        )

    @property
    def cycles_per_frame(self) -> int:
        """Steady-state cycles per frame: the slowest engine or link.

        From :func:`wavecore.hdl.stream.pipeline_stage.stage_cycles`.
        """
        from wavecore.hdl.stream.pipeline_stage import stage_cycles

        return stage_cycles([node.cycles for node in self.nodes], *self.link_words_per_frame)

    @property
    def key(self) -> str:
        """Identifies the stage's hardware: identical keys share one bitstream."""
        digest = hashlib.sha256(repr([node.signature() for node in self.nodes]).encode())
        return digest.hexdigest()[:12]


@dataclass
class PipelinePlan:
    """The partitioned network, ready to generate, simulate and build."""

    network: str
    target: str
    capacity_bytes: int
    lane_width: int
    stages: list[StagePlan]
    numerics: IntegerTraining = PIPELINE_NUMERICS
    params: dict = field(default_factory=dict, repr=False)
    source: object = field(default=None, repr=False)  # the wavecore.golden.network.Network

    @property
    def arithmetic(self):
        return self.numerics.mac

    @property
    def chips(self) -> int:
        return sum(stage.replicas for stage in self.stages)

    def summary(self) -> dict:
        return {
            "network": self.network,
            "norm": getattr(self.source, "norm", None),  # what the loaded network has (a pipeline needs none)
            "target": self.target,
            "capacity_bytes": self.capacity_bytes,
            "lane_width": self.lane_width,
            "numerics": self.numerics.describe(),
            "chips": self.chips,
            "stages": [
                {
                    "index": s.index,
                    "layers": list(s.layer_names),
                    "engines": [f"{node.kind}:{node.name}" for node in s.nodes],
                    "footprint_bytes": s.footprint_bytes,
                    "replicas": s.replicas,
                    "cycles_per_frame": s.cycles_per_frame,
                    "in_shape": list(s.in_shape),
                    "out_shape": list(s.out_shape),
                    "key": s.key,
                }
                for s in self.stages
            ],
        }


def load_pipeline_network(name: str, norm: str | None = "none"):
    """``configs/pipelines/<name>.yaml`` if it exists, else a zoo name or YAML path, with norms removed.

    ``norm`` overrides the file's norm (default ``"none"``: an inference pipeline folds BN into the conv
    weights); ``None`` keeps the file's own, which :func:`plan_pipeline` refuses if it leaves norm layers.
    """
    from wavecore.golden.network import ZOO, NetworkError, load_network

    local = PIPELINE_NETWORK_DIR / f"{name}.yaml"
    if not local.exists() and name not in ZOO and not Path(name).is_file():
        known = [*ZOO, *sorted(path.stem for path in PIPELINE_NETWORK_DIR.glob("*.yaml"))]
        raise PipelineError(f"network must be one of {', '.join(known)} or a YAML path, not {name!r}")
    try:
        return load_network(local if local.exists() else name, norm=norm)
    except NetworkError as error:
        raise PipelineError(str(error)) from None


def usable_capacity(target: Target) -> int:
    """On-chip bytes the partitioner may use on one chip of ``target``."""
    return target.bram_bytes - LINK_RESERVE_BLOCKS * target.bram_bits // 8


def _check_network(network) -> None:
    norms = [layer.name for layer in network.norm_layers()]
    if norms:
        raise PipelineError(
            f"network {network.name!r} has norm layers ({', '.join(norms)}): an inference pipeline folds "
            "batchnorm into the conv weights and a row stream cannot compute groupnorm's whole-frame "
            "statistics; use norm: none"
        )
    for layer in network.layers:
        if layer.op in ("input", "loss"):
            continue
        if layer.op not in _OPS:
            raise PipelineError(f"layer {layer.name!r}: op {layer.op} has no streaming engine")
        p = layer.params
        square = layer.op not in ("conv2d", "maxpool", "avgpool") or (
            p["stride"][0] == p["stride"][1] and p["padding"][0] == p["padding"][1]
        )
        if not square:
            raise PipelineError(f"layer {layer.name!r}: stride and padding must be equal on both axes")
        if layer.op == "maxpool" and p["ceil_mode"]:
            raise PipelineError(f"layer {layer.name!r}: maxpool with ceil_mode is not supported")
        if layer.op in ("linear", "flatten") and _frame(layer.in_shapes[0])[1:] != (1, 1):
            raise PipelineError(
                f"layer {layer.name!r}: {layer.op} needs a 1x1 frame (a global pool before it), "
                f"not {'x'.join(map(str, layer.in_shapes[0]))}"
            )


def init_integer_params(network, numerics: IntegerTraining = PIPELINE_NUMERICS, *, seed: int = 0) -> dict:
    """Seeded random integer filters ``{layer: {"weight", "bias"}}`` on the ``Q.weight_frac`` grid.

    Uniform in ``+-round(sqrt(6 / fan_in) * 2**weight_frac)`` (He-uniform: the activations keep their
    spread through a ReLU network), clipped to the operand range; biases uniform in a quarter of that.
    """
    random = np.random.default_rng(seed)
    fmt = numerics.operand
    params = {}
    for layer in network.layers:
        if layer.op not in ("conv2d", "linear"):
            continue
        fan_in = math.prod(layer.weight_shape[1:])
        bound = min(fmt.max, max(1, round(math.sqrt(6 / fan_in) * 2**numerics.weight_frac)))
        entry = {"weight": random.integers(-bound, bound + 1, layer.weight_shape).astype(np.int64)}
        if layer.bias_shape is not None:
            entry["bias"] = random.integers(-(bound // 4), bound // 4 + 1, layer.bias_shape).astype(np.int64)
        params[layer.name] = entry
    return params


def _stage_nodes(network, layer_names, input_layer, numerics, params) -> list[NodePlan]:
    """The engine graph of one stage's layers; ``input_layer`` arrives on the link."""
    from wavecore.golden.integer import IntegerKernels

    kernels = IntegerKernels(numerics)
    nodes: dict[str, dict] = {}
    alias = {input_layer: LINK}  # layer -> engine producing its output
    for name in layer_names:
        layer = network.layer(name)
        if layer.op in ("input", "loss"):
            continue
        sources = []
        for source in layer.inputs:
            if source not in alias:
                raise PipelineError(f"layer {name!r}: input {source!r} is neither in the stage nor its input")
            sources.append(alias[source])
        shapes = tuple(_frame(shape) for shape in layer.in_shapes)
        p = layer.params
        if layer.op == "flatten":
            alias[name] = sources[0]
            if sources[0] != LINK:
                nodes[sources[0]]["layers"].append(name)
            continue
        if layer.op == "relu":
            producer = nodes.get(sources[0])
            limit = kernels._relu_limit(p["max_value"])
            producer_layer = network.layer(producer["layers"][-1]) if producer else None
            if (
                producer is not None
                and producer["kind"] in ("conv", "add")
                and producer["params"].get("relu") is None
                and network.consumers(producer_layer.name) == [name]
            ):
                producer["params"].update(relu="relu", relu_max=None if limit is None else int(limit))
                producer["layers"].append(name)
                alias[name] = sources[0]
                continue
            kind, node_params = "relu", {"relu": "relu", "relu_max": None if limit is None else int(limit)}
        elif layer.op in ("conv2d", "linear"):
            weights = params[name]["weight"]
            if layer.op == "linear":
                weights = weights[:, :, None, None]
            node_params = {
                "weights": weights,
                "bias": params[name].get("bias"),
                "stride": p["stride"][0] if layer.op == "conv2d" else 1,
                "padding": p["padding"][0] if layer.op == "conv2d" else 0,
                "groups": p["groups"] if layer.op == "conv2d" else 1,
                "relu": None,
                "relu_max": None,
            }
            kind = "conv"
        elif layer.op in ("maxpool", "avgpool"):
            kind = layer.op
            node_params = {"kernel": p["kernel"], "stride": p["stride"][0], "padding": p["padding"][0]}
        elif layer.op == "add":
            kind, node_params = "add", {"relu": None, "relu_max": None}
        else:  # global_avgpool, concat
            kind, node_params = layer.op, {}
        nodes[name] = {
            "kind": kind,
            "layers": [name],
            "sources": tuple(sources),
            "in_shapes": shapes,
            "out_shape": _frame(layer.out_shape),
            "params": node_params,
        }
        alias[name] = name
    return [
        NodePlan(
            name=name,
            kind=entry["kind"],
            layers=tuple(entry["layers"]),
            sources=entry["sources"],
            in_shapes=entry["in_shapes"],
            out_shape=entry["out_shape"],
            params=entry["params"],
        )
        for name, entry in nodes.items()
    ]


def plan_pipeline(
    network,
    target: Target,
    *,
    chips: int,
    capacity_bytes: int | None = None,
    seed: int = 0,
    numerics: IntegerTraining = PIPELINE_NUMERICS,
) -> PipelinePlan:
    """Partition ``network`` for ``chips`` chips of ``target`` (see the module docstring).

    ``capacity_bytes`` overrides the target's usable memory (to force more stages on a small network).
    Filters are seeded random int8 tensors (``seed``); the same ones go to the RTL and the golden model.
    """
    from wavecore.golden.plan.occam import OccamModel, partition, stap

    if not isinstance(chips, int) or isinstance(chips, bool) or chips < 1:
        raise PipelineError(f"chips must be a positive integer, not {chips!r}", "chips")
    capacity = usable_capacity(target) if capacity_bytes is None else capacity_bytes
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise PipelineError(f"capacity must be a positive number of bytes, not {capacity!r}", "capacity")
    _check_network(network)
    dtype_bytes = -(-numerics.mac.in_width // 8)
    try:
        found = partition(
            network,
            capacity,
            memory_model="line_buffer",
            chips=chips,
            dtype_bytes=dtype_bytes,
            oversized="error",
            cuts="single_tensor",
        )
    except ValueError:
        raise PipelineError(
            f"{capacity} B per chip is too small for {network.name!r} in at most {chips} stage(s) "
            "(cuts only where one tensor is live)",
            "chips" if capacity_bytes is None else "capacity",
        ) from None
    model = OccamModel(network, dtype_bytes=dtype_bytes, memory_model="line_buffer")
    output_layer = [layer.name for layer in network.layers if layer.op != "loss"][-1]
    boundaries = [network.layers[0].name]
    boundaries += [model.crossing_layers[cut][0] for cut in found.cuts]
    boundaries.append(output_layer)
    params = init_integer_params(network, numerics, seed=seed)
    stages = []
    for index, stage in enumerate(found.stages):
        nodes = _stage_nodes(network, stage.layers, boundaries[index], numerics, params)
        if not nodes:
            raise PipelineError(f"stage {index} ({', '.join(stage.layers)}) has no engine")
        stages.append(
            StagePlan(
                index=index,
                layer_names=tuple(stage.layers),
                nodes=nodes,
                input_layer=boundaries[index],
                output_layer=boundaries[index + 1],
                in_shape=_frame(network.layer(boundaries[index]).out_shape),
                out_shape=_frame(network.layer(boundaries[index + 1]).out_shape),
                footprint_bytes=stage.footprint_bytes,
                lane_width=target.link_lane_width,
            )
        )
    if chips > len(stages):
        spread = stap([stage.cycles_per_frame for stage in stages], chips=chips)
        for stage, replicas in zip(stages, spread.replicas):
            stage.replicas = replicas
    return PipelinePlan(
        network=network.name,
        target=target.name,
        capacity_bytes=capacity,
        lane_width=target.link_lane_width,
        stages=stages,
        numerics=numerics,
        params=params,
        source=network,
    )


def engine_for(node: NodePlan, numerics: IntegerTraining = PIPELINE_NUMERICS):
    """The streaming engine (an Amaranth component) of ``node`` (interface: docs/fpga.md, hdl/stream/*.py)."""
    channels, height, width = node.in_shapes[0]
    fmt = numerics.operand
    p = node.params
    if node.kind == "conv":
        from wavecore.hdl.stream.conv import StreamConv2d

        bias = p["bias"]
        return StreamConv2d(
            weights=p["weights"],
            height=height,
            width=width,
            stride=p["stride"],
            padding=p["padding"],
            groups=p["groups"],
            bias=None if bias is None else bias.astype(np.int64) << numerics.activation_frac,
            shift=numerics.weight_frac,
            rounding=numerics.rounding,
            relu=p["relu"] is not None,
            relu_max=p["relu_max"],
            arithmetic=numerics.mac,
            out_width=numerics.mac.in_width,
        )
    if node.kind in ("maxpool", "avgpool"):
        from wavecore.hdl.stream.pool import StreamPool2d

        return StreamPool2d(
            mode="max" if node.kind == "maxpool" else "avg",
            channels=channels,
            height=height,
            width=width,
            kernel=tuple(p["kernel"]),
            stride=p["stride"],
            padding=p["padding"],
            fmt=fmt,
            reciprocal_frac=numerics.reciprocal_frac,
            rounding=numerics.rounding,
        )
    if node.kind == "global_avgpool":
        from wavecore.hdl.stream.global_pool import StreamGlobalAvgPool

        return StreamGlobalAvgPool(
            channels=channels,
            height=height,
            width=width,
            fmt=fmt,
            reciprocal_frac=numerics.reciprocal_frac,
            rounding=numerics.rounding,
        )
    if node.kind == "add":
        from wavecore.hdl.stream.add import StreamAdd

        return StreamAdd(
            channels=channels,
            count=len(node.sources),
            fmt=fmt,
            relu=p["relu"] is not None,
            relu_max=p["relu_max"],
        )
    if node.kind == "concat":
        from wavecore.hdl.stream.concat import StreamConcat

        return StreamConcat(channels=[shape[0] for shape in node.in_shapes], fmt=fmt)
    if node.kind == "relu":
        from wavecore.hdl.stream.relu import StreamReLU

        return StreamReLU(channels=channels, fmt=fmt, relu_max=p["relu_max"])
    raise AssertionError(node.kind)


def stage_component(stage: StagePlan, plan: PipelinePlan):
    """The :class:`hdl.stream.pipeline_stage.PipelineStage` of ``stage``: its engine graph between two links."""
    from wavecore.hdl.stream.pipeline_stage import PipelineStage

    index = {node.name: position for position, node in enumerate(stage.nodes)}
    return PipelineStage(
        engines=[engine_for(node, plan.numerics) for node in stage.nodes],
        sources=[tuple(-1 if s == LINK else index[s] for s in node.sources) for node in stage.nodes],
        names=[node.name for node in stage.nodes],
        lane_width=plan.lane_width,
        frame=stage.in_shape[1:],
    )


def golden_activations(network, params, images, numerics: IntegerTraining = PIPELINE_NUMERICS) -> dict:
    """Every layer's output ``{layer: (N, ...)}`` of ``network`` on integer ``images`` (N, C, H, W).

    The forward pass of :class:`wavecore.golden.train.Trainer` in integer mode: the same
    :class:`wavecore.golden.integer.IntegerKernels` methods, layer by layer in topological order (this also runs
    networks without a loss layer, which ``train_step`` refuses).
    """
    from wavecore.golden.train import Trainer

    kernels = Trainer(network, numerics=numerics).kernels
    params = kernels.prepare_params(params)
    acts = {network.layers[0].name: kernels.cast(images)}
    for layer in network.layers[1:]:
        if layer.op == "loss":
            continue
        inputs = [acts[name] for name in layer.inputs]
        p = params.get(layer.name, {})
        if layer.op == "conv2d":
            y = kernels.conv_forward(layer, inputs[0], p["weight"], p.get("bias"))
        elif layer.op == "linear":
            y = kernels.linear_forward(layer, inputs[0], p["weight"], p.get("bias"))
        elif layer.op == "relu":
            y = kernels.relu_forward(layer, inputs[0])
        elif layer.op == "maxpool":
            y = kernels.maxpool_forward(layer, inputs[0])
        elif layer.op == "avgpool":
            y = kernels.avgpool_forward(layer, inputs[0])
        elif layer.op == "global_avgpool":
            y = kernels.global_avgpool_forward(layer, inputs[0])
        elif layer.op == "add":
            y = kernels.add_forward(layer, inputs)
        elif layer.op == "concat":
            y = np.concatenate(inputs, axis=1)
        elif layer.op == "flatten":
            y = inputs[0].reshape(inputs[0].shape[0], -1)
        else:
            raise PipelineError(f"layer {layer.name!r}: op {layer.op} has no streaming engine")
        acts[layer.name] = y
    return acts


def golden_boundaries(plan: PipelinePlan, images) -> list[np.ndarray]:
    """Every stage's output tensor ``(N, C, H, W)`` for ``images`` (N, C, H, W) in the operand format."""
    images = plan.numerics.operand.check(np.asarray(images), "images")
    acts = golden_activations(plan.source, plan.params, images, plan.numerics)
    return [acts[stage.output_layer].reshape(len(images), *stage.out_shape) for stage in plan.stages]


def link_budget(plan: PipelinePlan, stage: StagePlan, fmax_mhz: float, link_mhz: float) -> dict:
    """Predicted images/s of ``stage`` and the bandwidth its output link needs vs. what it offers."""
    images_per_second = stage.replicas * fmax_mhz * 1e6 / stage.cycles_per_frame
    channels, height, width = stage.out_shape
    words = link_words(pixel_layout(channels, plan.arithmetic.in_width), plan.lane_width)
    needed_bits = images_per_second * height * width * words * plan.lane_width
    available_bits = link_mhz * 1e6 * plan.lane_width
    return {
        "images_per_second": round(images_per_second, 1),
        "link_needed_mbit_s": round(needed_bits / 1e6, 2),
        "link_available_mbit_s": round(available_bits / 1e6, 2),
        "link_ok": needed_bits <= available_bits,
    }


def write_plan(plan: PipelinePlan, path: Path) -> None:
    from wavecore.boards.report import write_atomic

    write_atomic(path, json.dumps(plan.summary(), indent=2) + "\n")


class StageBoardTop(Elaboratable):
    """A pipeline stage on a board: both links on the target's header pins (:class:`wavecore.boards.targets.Target`).

    Input link pins: ``lane`` data + valid (inputs), ready (output); output link: data + valid (outputs),
    ready (input), in the order of :attr:`Target.link_pins`.
    """

    def __init__(self, stage, target: Target):
        self.stage = stage
        self.target = target

    def elaborate(self, platform):
        from wavecore.boards.bist import add_board_clock

        m = Module()
        m.submodules.stage = stage = self.stage
        add_board_clock(m, platform)
        lane = stage.lane_width
        pins = list(self.target.link_pins)
        needed = 2 * (lane + 2)
        if len(pins) < needed:
            raise PipelineError(
                f"target {self.target.name} has {len(pins)} link pins, the links need {needed}"
            )
        conn = self.target.link_connector

        def group(names, direction):
            return Pins(" ".join(names), dir=direction, conn=conn)

        platform.add_resources(
            [
                Resource(
                    "link_in",
                    0,
                    Subsignal("data", group(pins[:lane], "i")),
                    Subsignal("valid", group([pins[lane]], "i")),
                    Subsignal("ready", group([pins[lane + 1]], "o")),
                ),
                Resource(
                    "link_out",
                    0,
                    Subsignal("data", group(pins[lane + 2 : 2 * lane + 2], "o")),
                    Subsignal("valid", group([pins[2 * lane + 2]], "o")),
                    Subsignal("ready", group([pins[2 * lane + 3]], "i")),
                ),
            ]
        )
        link_in = platform.request("link_in", 0)
        link_out = platform.request("link_out", 0)
        m.d.comb += [
            stage.link_in.payload.eq(link_in.data.i),
            stage.link_in.valid.eq(link_in.valid.i),
            link_in.ready.o.eq(stage.link_in.ready),
            link_out.data.o.eq(stage.link_out.payload),
            link_out.valid.o.eq(stage.link_out.valid),
            stage.link_out.ready.eq(link_out.ready.i),
        ]
        return m


def simulation_summary(plan: PipelinePlan, measured: dict | None, *, frames: int, error: str | None = None) -> dict:
    """The ``simulation`` entry of ``pipeline.json``: ``result`` (``pass``/``fail``), frames, total cycles and the
    measured steady-state cycles per frame beside the model's (the slowest stage's ``cycles_per_frame``)."""
    model = max(stage.cycles_per_frame for stage in plan.stages)
    entry = {"result": "fail" if error else "pass", "frames": frames, "model_cycles_per_frame": model}
    if error:
        entry["error"] = error
        return entry
    ends = measured["frame_ends"]
    entry["cycles"] = measured["cycles"]
    entry["frame_end_cycles"] = list(ends)
    entry["measured_cycles_per_frame"] = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) >= 2 else None
    return entry


def _plan_rows(plan: PipelinePlan) -> list[dict]:
    return [{
        "stage": stage.index,
        "layers": list(stage.layer_names),
        "engines": [f"{node.kind}:{node.name}" for node in stage.nodes],
        "output": f"{stage.output_layer} {'x'.join(map(str, stage.out_shape))}",
        "replicas": stage.replicas,
        "status": "not built",
        "resources": {},
        "fmax_mhz": None,
        "footprint_bytes": stage.footprint_bytes,
        "cycles_per_frame": stage.cycles_per_frame,
    } for stage in plan.stages]


def write_pipeline_report(plan: PipelinePlan, out_dir: Path, *, simulation: dict | None = None,
                          rows: list[dict] | None = None, built: int = 0) -> dict:
    """Write ``pipeline.json`` and ``pipeline.md`` into ``out_dir``: the partition, per stage cycles per frame
    (and, when built, resources and Fmax), the simulation result if there was one; returns the summary."""
    from wavecore.boards.report import write_atomic

    rows = rows if rows is not None else _plan_rows(plan)
    throughput = min((row.get("images_per_second", 0.0) for row in rows), default=0.0) if built else None
    summary = {**plan.summary(), "stages": rows, "images_per_second": throughput, "distinct_bitstreams": built,
               "simulation": simulation}
    out_dir = Path(out_dir)
    write_atomic(out_dir / "pipeline.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_atomic(out_dir / "pipeline.md", _pipeline_markdown(summary))
    return summary


def build_pipeline(plan: PipelinePlan, target: Target, out_dir: Path, *, seed: int | None = None,
                   simulation: dict | None = None) -> dict:
    """One bitstream per distinct stage under ``out_dir/stage<k>``, plus ``pipeline.json`` / ``pipeline.md``.

    The pipeline report lists per stage: resources, post-route Fmax, cycles per frame, predicted images/s
    (replicas x Fmax / cycles) and the output link's bandwidth need vs. what ``lane_width`` bits per cycle
    at Fmax offer. The pipeline's throughput is the slowest stage's.
    """
    from wavecore import progress
    from wavecore.boards.flow import build

    out_dir = Path(out_dir).resolve()
    built: dict[str, dict] = {}
    rows = []
    for stage in progress.track(plan.stages, f"build {plan.network} stages", unit="stages",
                                label=lambda stage: f"stage {stage.index}"):
        if stage.key not in built:
            report = build(
                StageBoardTop(stage_component(stage, plan), target),
                target,
                out_dir / f"stage{stage.index}",
                design=f"{plan.network} stage {stage.index}",
                parameters={"layers": ",".join(stage.layer_names), "lane_width": plan.lane_width},
                seed=seed,
            )
            built[stage.key] = {"report": report, "directory": f"stage{stage.index}"}
        entry = built[stage.key]
        report = entry["report"]
        fmax = min((value["achieved_mhz"] for value in report.fmax.values()), default=0.0)
        row = {
            "stage": stage.index,
            "layers": list(stage.layer_names),
            "engines": [f"{node.kind}:{node.name}" for node in stage.nodes],
            "output": f"{stage.output_layer} {'x'.join(map(str, stage.out_shape))}",
            "replicas": stage.replicas,
            "bitstream": f"{entry['directory']}/{report.bitstream}" if report.bitstream else None,
            "status": report.status,
            "resources": report.resources,
            "fmax_mhz": fmax,
            "footprint_bytes": stage.footprint_bytes,
            "cycles_per_frame": stage.cycles_per_frame,
            "build_seconds": report.seconds.get("total"),
        }
        if fmax:
            row.update(link_budget(plan, stage, fmax, fmax))
        rows.append(row)
    return write_pipeline_report(plan, out_dir, simulation=simulation, rows=rows, built=len(built))


def _pipeline_markdown(summary: dict) -> str:
    if summary["distinct_bitstreams"]:
        built = (f"{summary['distinct_bitstreams']} distinct bitstream(s); pipeline throughput "
                 f"**{summary['images_per_second']:.0f} images/s** (slowest stage).")
    else:
        built = "no bitstreams built (`--no-build`)."
    lines = [
        f"# {summary['network']} on {summary['chips']} x {summary['target']}",
        "",
        f"Norm {summary['norm']}, numerics {summary['numerics']}; partition capacity {summary['capacity_bytes']} B "
        f"per chip, link lane {summary['lane_width']} bits, " + built,
        "",
    ]
    simulation = summary.get("simulation")
    if simulation is None:
        lines += ["Simulation: not run (`--simulate` runs it).", ""]
    elif simulation["result"] == "pass":
        measured = simulation["measured_cycles_per_frame"]
        lines += [f"Simulation: **PASS**, {simulation['frames']} frame(s) match the golden model at every stage "
                  f"boundary in {simulation['cycles']} cycles; "
                  + (f"{measured:.0f} cycles/frame after the first frame" if measured is not None else
                     "one frame, no steady-state figure")
                  + f" (model without stalls: {simulation['model_cycles_per_frame']}).", ""]
    else:
        lines += [f"Simulation: **FAIL**: {simulation['error']}", ""]
    lines += [
        "| stage | layers | replicas | status | LUT | FF | DSP | BRAM | Fmax MHz | cycles/frame | images/s "
        "| link need Mbit/s | link avail Mbit/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["stages"]:
        res = row["resources"]

        def used(key, res=res):
            return res.get(key, {}).get("used", "")

        lines.append(
            f"| {row['stage']} | {', '.join(row['layers'])} | {row['replicas']} | {row['status']} | "
            f"{used('lut')} | {used('ff')} | {used('dsp')} | {used('bram')} | "
            f"{'' if row['fmax_mhz'] is None else format(row['fmax_mhz'], '.1f')} | "
            f"{row['cycles_per_frame']} | {row.get('images_per_second', '')} | "
            f"{row.get('link_needed_mbit_s', '')} | {row.get('link_available_mbit_s', '')} |"
        )
    return "\n".join(lines) + "\n"
