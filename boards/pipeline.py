"""Occam multi-FPGA pipelines: partition, per-stage engines, golden boundary tensors, one bitstream per stage.

``research/occam_lrcnn_caterpillar.md`` section 5(c):

1. **Partition** with the Occam DP (:func:`golden.plan.occam.partition`, memory model M2 "line_buffer",
   int8 elements, no oversized layer allowed) for the target's usable on-chip memory: the block RAM of
   the device (:attr:`boards.targets.Target.bram_bytes`) minus :data:`LINK_RESERVE_BLOCKS` block RAMs per
   chip kept for link and FIFO buffering.
2. **Size each stage**: one :class:`hdl.stream_conv.StreamConv2d` per conv layer (its ReLU fused), stage
   time = the slowest engine's cycles per frame (:func:`hdl.stream_conv.stream_conv_cycles`; the engines of a
   stage overlap through their streams). **STAP** replicas ``r_i = ceil(t_i / tau)`` from
   :func:`golden.plan.occam.stap` with the chip budget.
3. **Generate** :class:`hdl.pipeline_stage.PipelineStage` per stage (filters as ROM, line buffers, links)
   and build one bitstream per *distinct* stage (replicas share theirs).
4. **Verify**: :func:`golden_boundaries` computes every stage-boundary tensor with the golden model's
   layers and numerics; the cocotb test compares the RTL's link traffic with it bit for bit.

The streaming engine implements conv2d (``groups = 1``, no bias) with an optional following ReLU; any
other op in the partitioned part of the network is refused with a one-line error naming the layer.
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

from boards.targets import Target
from golden.numerics import IntFormat, MacArithmetic, requantize
from hdl.link import link_words, pixel_layout
from hdl.stream_conv import StreamConv2d, conv_output_size, stream_conv_cycles

__all__ = [
    "LINK_RESERVE_BLOCKS",
    "PIPELINE_NETWORK_DIR",
    "LayerPlan",
    "PipelineError",
    "PipelinePlan",
    "StageBoardTop",
    "StagePlan",
    "build_pipeline",
    "golden_boundaries",
    "load_pipeline_network",
    "plan_pipeline",
    "stage_component",
    "usable_capacity",
]

#: Block RAMs per chip kept free of the partition for link/FIFO buffering.
LINK_RESERVE_BLOCKS = 2
PIPELINE_NETWORK_DIR = Path(__file__).resolve().parent.parent / "configs" / "pipelines"
_ROUNDING = "half_even"


class PipelineError(ValueError):
    """The network or the request cannot be mapped onto a pipeline; one line naming the cause."""


@dataclass(frozen=True)
class LayerPlan:
    """One conv layer of a stage (with its fused ReLU)."""

    name: str
    relu: str | None
    weights: np.ndarray
    stride: int
    padding: int
    shift: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]

    @property
    def cycles(self) -> int:
        _, height, width = self.in_shape
        return stream_conv_cycles(
            height=height,
            width=width,
            kernel=self.weights.shape[2:],
            stride=self.stride,
            padding=self.padding,
            in_channels=self.in_shape[0],
        )


@dataclass
class StagePlan:
    """One pipeline stage: its layers, memory footprint (from the planner), cycles, STAP replicas."""

    index: int
    layers: list[LayerPlan]
    layer_names: tuple[str, ...]
    footprint_bytes: int
    replicas: int = 1

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.layers[0].in_shape

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.layers[-1].out_shape

    @property
    def cycles_per_frame(self) -> int:
        return max(layer.cycles for layer in self.layers)

    @property
    def key(self) -> str:
        """Identifies the stage's hardware: identical keys share one bitstream."""
        digest = hashlib.sha256()
        for layer in self.layers:
            digest.update(
                repr(
                    (
                        layer.stride,
                        layer.padding,
                        layer.shift,
                        layer.relu is not None,
                        layer.in_shape,
                        layer.weights.shape,
                    )
                ).encode()
            )
            digest.update(np.ascontiguousarray(layer.weights).tobytes())
        return digest.hexdigest()[:12]


@dataclass
class PipelinePlan:
    """The partitioned network, ready to generate and build."""

    network: str
    target: str
    capacity_bytes: int
    lane_width: int
    stages: list[StagePlan]
    arithmetic: MacArithmetic = field(default_factory=MacArithmetic)

    @property
    def chips(self) -> int:
        return sum(stage.replicas for stage in self.stages)

    def summary(self) -> dict:
        return {
            "network": self.network,
            "target": self.target,
            "capacity_bytes": self.capacity_bytes,
            "lane_width": self.lane_width,
            "chips": self.chips,
            "stages": [
                {
                    "index": s.index,
                    "layers": list(s.layer_names),
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


def load_pipeline_network(name: str):
    """``configs/pipelines/<name>.yaml`` if it exists, else a zoo name or YAML path (norms removed)."""
    from golden.network import NetworkError, load_network

    local = PIPELINE_NETWORK_DIR / f"{name}.yaml"
    try:
        return load_network(local if local.exists() else name, norm="none")
    except NetworkError as error:
        raise PipelineError(str(error)) from None


def usable_capacity(target: Target) -> int:
    """On-chip bytes the partitioner may use on one chip of ``target``."""
    return target.bram_bytes - LINK_RESERVE_BLOCKS * target.bram_bits // 8


def _conv_chain(network) -> list[tuple]:
    """``[(conv layer, relu layer or None)]`` in order; refuses ops the streaming engine lacks."""
    chain = []
    layers = [layer for layer in network.layers if layer.op != "input"]
    index = 0
    while index < len(layers):
        layer = layers[index]
        if layer.op != "conv2d":
            raise PipelineError(
                f"layer {layer.name!r}: op {layer.op} is not supported by the streaming engine "
                "(conv2d with an optional following relu only)"
            )
        params = layer.params
        if params["groups"] != 1 or params["bias"]:
            raise PipelineError(
                f"layer {layer.name!r}: only groups=1 and bias=false convolutions are supported"
            )
        if params["stride"][0] != params["stride"][1] or params["padding"][0] != params["padding"][1]:
            raise PipelineError(f"layer {layer.name!r}: stride and padding must be equal on both axes")
        relu = None
        if index + 1 < len(layers) and layers[index + 1].op == "relu":
            candidate = layers[index + 1]
            if candidate.params.get("max_value") is not None:
                raise PipelineError(f"layer {candidate.name!r}: relu with max_value is not supported")
            relu = candidate
            index += 1
        chain.append((layer, relu))
        index += 1
    if not chain:
        raise PipelineError(f"network {network.name!r} has no conv2d layer")
    return chain


def _shift_for(fan_in: int, arithmetic: MacArithmetic) -> int:
    """Requantization shift that maps a typical accumulator (random int8 data) back into int8.

    A dot product of ``fan_in`` uniform int8 pairs has a standard deviation of about ``74**2 *
    sqrt(fan_in)``; shifting by ``log2`` of that over 32 keeps most outputs within +-127.
    """
    spread = (arithmetic.operand.max / math.sqrt(3)) ** 2 * math.sqrt(fan_in)
    return max(0, min(arithmetic.acc_width - 1, round(math.log2(spread / 32))))


def plan_pipeline(
    network,
    target: Target,
    *,
    chips: int,
    capacity_bytes: int | None = None,
    seed: int = 0,
    arithmetic: MacArithmetic | None = None,
) -> PipelinePlan:
    """Partition ``network`` for ``chips`` chips of ``target`` (see the module docstring).

    ``capacity_bytes`` overrides the target's usable memory (to force more stages on a small network).
    Filters are seeded random int8 tensors (``seed``); the same ones go to the RTL and the golden model.
    """
    from golden.plan.occam import partition, stap

    arithmetic = MacArithmetic() if arithmetic is None else arithmetic
    if not isinstance(chips, int) or isinstance(chips, bool) or chips < 1:
        raise PipelineError(f"chips must be a positive integer, not {chips!r}")
    capacity = usable_capacity(target) if capacity_bytes is None else capacity_bytes
    if not isinstance(capacity, int) or capacity < 1:
        raise PipelineError(f"capacity must be a positive number of bytes, not {capacity!r}")
    chain = _conv_chain(network)
    try:
        found = partition(
            network,
            capacity,
            memory_model="line_buffer",
            chips=chips,
            dtype_bytes=arithmetic.in_width // 8 or 1,
            oversized="error",
        )
    except ValueError as error:
        raise PipelineError(str(error)) from None
    random = np.random.default_rng(seed)
    by_conv = {}
    for conv, relu in chain:
        channels, height, width = conv.in_shapes[0]
        out_channels = conv.params["out_channels"]
        kernel = conv.params["kernel"]
        weights = arithmetic.operand.random(random, (out_channels, channels, *kernel))
        stride, padding = conv.params["stride"][0], conv.params["padding"][0]
        by_conv[conv.name] = LayerPlan(
            name=conv.name,
            relu=relu.name if relu else None,
            weights=weights,
            stride=stride,
            padding=padding,
            shift=_shift_for(channels * kernel[0] * kernel[1], arithmetic),
            in_shape=(channels, height, width),
            out_shape=(
                out_channels,
                conv_output_size(height, kernel[0], stride, padding),
                conv_output_size(width, kernel[1], stride, padding),
            ),
        )
    stages = []
    for index, stage in enumerate(found.stages):
        layers = [by_conv[name] for name in stage.layers if name in by_conv]
        if not layers:
            raise PipelineError(f"stage {index} ({', '.join(stage.layers)}) has no conv layer")
        stages.append(
            StagePlan(
                index=index,
                layers=layers,
                layer_names=tuple(stage.layers),
                footprint_bytes=stage.footprint_bytes,
            )
        )
    if chips > len(stages):
        spread = stap([stage.cycles_per_frame for stage in stages], chips=chips)
        for stage, replicas in zip(stages, spread.replicas):
            stage.replicas = replicas
    lane_width = target.link_lane_width
    return PipelinePlan(
        network=network.name,
        target=target.name,
        capacity_bytes=capacity,
        lane_width=lane_width,
        stages=stages,
        arithmetic=arithmetic,
    )


def engine_for(layer: LayerPlan, arithmetic: MacArithmetic) -> StreamConv2d:
    _, height, width = layer.in_shape
    return StreamConv2d(
        weights=layer.weights,
        height=height,
        width=width,
        stride=layer.stride,
        padding=layer.padding,
        shift=layer.shift,
        rounding=_ROUNDING,
        relu=layer.relu is not None,
        arithmetic=arithmetic,
        out_width=arithmetic.in_width,
    )


def stage_component(stage: StagePlan, plan: PipelinePlan):
    """The :class:`hdl.pipeline_stage.PipelineStage` of ``stage``."""
    from hdl.pipeline_stage import PipelineStage

    return PipelineStage(
        engines=[engine_for(layer, plan.arithmetic) for layer in stage.layers], lane_width=plan.lane_width
    )


def golden_boundaries(plan: PipelinePlan, images) -> list[np.ndarray]:
    """Every stage's output tensor (N, C, H, W) for ``images`` (N, C, H, W) in the operand format.

    Uses :func:`golden.layers.conv2d_forward` on exact integers, the accumulator's overflow rule
    (wrap: modular, so the summation order is irrelevant), :func:`golden.numerics.requantize` and ReLU.
    """
    from golden.layers import conv2d_forward

    arithmetic = plan.arithmetic
    if arithmetic.overflow != "wrap":
        raise PipelineError("golden_boundaries needs overflow='wrap' (saturation depends on the order)")
    tensor = arithmetic.operand.check(np.asarray(images), "images")
    out_format = IntFormat(arithmetic.in_width, arithmetic.signed)
    boundaries = []
    for stage in plan.stages:
        for layer in stage.layers:
            exact = conv2d_forward(
                tensor, layer.weights.astype(np.int64), stride=layer.stride, padding=layer.padding
            )
            tensor = requantize(arithmetic.accumulator.wrap(exact), layer.shift, out_format, _ROUNDING)
            if layer.relu is not None:
                tensor = np.maximum(tensor, 0)
        boundaries.append(tensor)
    return boundaries


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
    from boards.report import write_atomic

    write_atomic(path, json.dumps(plan.summary(), indent=2) + "\n")


class StageBoardTop(Elaboratable):
    """A pipeline stage on a board: both links on the target's header pins (:class:`boards.targets.Target`).

    Input link pins: ``lane`` data + valid (inputs), ready (output); output link: data + valid (outputs),
    ready (input), in the order of :attr:`Target.link_pins`.
    """

    def __init__(self, stage, target: Target):
        self.stage = stage
        self.target = target

    def elaborate(self, platform):
        from boards.bist import add_board_clock

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


def build_pipeline(plan: PipelinePlan, target: Target, out_dir: Path, *, seed: int | None = None) -> dict:
    """One bitstream per distinct stage under ``out_dir/stage<k>``, plus ``pipeline.json`` / ``pipeline.md``.

    The pipeline report lists per stage: resources, post-route Fmax, cycles per frame, predicted images/s
    (replicas x Fmax / cycles) and the output link's bandwidth need vs. what ``lane_width`` bits per cycle
    at Fmax offer. The pipeline's throughput is the slowest stage's.
    """
    from boards.flow import build
    from boards.report import write_atomic

    out_dir = Path(out_dir).resolve()
    built: dict[str, dict] = {}
    rows = []
    for stage in plan.stages:
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
    throughput = min((row.get("images_per_second", 0.0) for row in rows), default=0.0)
    summary = {
        **plan.summary(),
        "stages": rows,
        "images_per_second": throughput,
        "distinct_bitstreams": len(built),
    }
    write_atomic(out_dir / "pipeline.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_atomic(out_dir / "pipeline.md", _pipeline_markdown(summary))
    return summary


def _pipeline_markdown(summary: dict) -> str:
    lines = [
        f"# {summary['network']} on {summary['chips']} x {summary['target']}",
        "",
        f"Partition capacity {summary['capacity_bytes']} B per chip, link lane {summary['lane_width']} bits, "
        f"{summary['distinct_bitstreams']} distinct bitstream(s); pipeline throughput "
        f"**{summary['images_per_second']:.0f} images/s** (slowest stage).",
        "",
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
            f"{used('lut')} | {used('ff')} | {used('dsp')} | {used('bram')} | {row['fmax_mhz']:.1f} | "
            f"{row['cycles_per_frame']} | {row.get('images_per_second', '')} | "
            f"{row.get('link_needed_mbit_s', '')} | {row.get('link_available_mbit_s', '')} |"
        )
    return "\n".join(lines) + "\n"
