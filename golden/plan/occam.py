"""Occam: partition an inference network into pipeline stages with full on-chip reuse, and STAP replication.

Gondimalla et al., "Occam: Optimal Data Reuse for Convolutional Neural Networks" (arXiv 2106.14138; ACM TACO
2022). Only the abstracts were available: closures, DP and STAP are reconstructed from them, and every open
convention is an option here.

Model. The network's compute ops are its non-view layers (``batchnorm``/``groupnorm``/``relu``/``flatten``/
``concat`` are applied in the stream of the tensor they read and cost nothing on their own). A partition is a
contiguous run of ops held on one chip with its filters and its *dependence closure*; consecutive images
stream through it, so per image it only reads the tensors crossing into it and writes those crossing out.

* Closures by receptive-field inversion (rows; full-width stripes): one row of every tensor leaving the
  partition needs ``R_in = (R_out - 1) * stride + kernel`` rows of a conv/pool input (``R`` for a merge,
  the whole map for ``linear``/``global_avgpool``), the maximum over a tensor's consumers, capped at the
  map height (border clipping).
* ``memory_model="closure"`` (M1, stripe closure): every tensor read inside the partition holds its closure
  rows ``R_t * W_t * C_t`` bytes-per-element. ``memory_model="line_buffer"`` (M2, wavefront line buffers):
  a tensor with one consumer holds ``kernel`` rows; a tensor read by several ops in the partition (a fork
  waiting for its merge) keeps its closure rows. Filters are on chip in both.
* Cost per image: the image read once, the result written once, and ``cut_cost`` per crossing tensor at each
  cut (``"write_read"``: 2 x bytes, a write and a read-back; ``"read"``: 1 x). For a DAG a cut's cost is the sum over
  *all* live tensors crossing it (a residual shortcut crosses too).
* :func:`dp_partition` is the O(N^2 P) dynamic program over cut positions (exact: the cost is additive over
  cuts and a partition's feasibility depends only on its own ops); :func:`brute_force_partition`
  enumerates all ``2^(N-1)`` cut sets for ``N <= 18`` ops and must agree.
* An op that alone exceeds the capacity (VGG ``fc6``) is infeasible with ``oversized="error"``; with
  ``oversized="stream_filters"`` it runs alone, streaming its filters once per image (charged as traffic).
* :func:`stap` (staggered asynchronous pipelines) replicates slow stages: ``r_i = ceil(t_i / tau)``,
  throughput ``1 / max(t_i / r_i)``, chips ``sum(r_i)``; with a chip budget the smallest feasible ``tau``.
* ``cuts="single_tensor"`` restricts the cut positions to those where exactly one layer output (views
  included, the image excluded) is read across the cut: the stage boundary is then one tensor on one link
  (the multi-FPGA pipelines of ``boards/pipeline.py``). ``cuts="any"`` (default) allows every position.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

__all__ = [
    "MEMORY_MODELS",
    "OccamModel",
    "Partition",
    "Stage",
    "StapResult",
    "brute_force_partition",
    "dp_partition",
    "layer_by_layer_traffic",
    "partition",
    "stap",
]

MEMORY_MODELS = ("line_buffer", "closure")
CUT_COSTS = ("write_read", "read")
OVERSIZED = ("error", "stream_filters")
CUT_RULES = ("any", "single_tensor")
_VIEWS = ("batchnorm", "groupnorm", "relu", "flatten", "concat", "loss", "input")
_SPATIAL = ("conv2d", "maxpool", "avgpool")
_GLOBAL = ("linear", "global_avgpool")


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


class OccamModel:
    """The ops of ``network`` (up to ``last_layer``) with tensor sizes, closures and cut costs.

    Parameters
    ----------
    network : wavecore.golden.network.Network
    dtype_bytes : int
        Bytes per element of activations and filters.
    memory_model : {"line_buffer", "closure"}
    cut_cost : {"write_read", "read"}
    last_layer : str or None
        Partition only the ops up to this layer (e.g. ``"pool5"`` for VGG-16's conv part).
    include_bias : bool
        Count conv/linear biases with the filters.
    """

    def __init__(
        self,
        network,
        *,
        dtype_bytes: int = 2,
        memory_model: str = "line_buffer",
        cut_cost: str = "write_read",
        last_layer: str | None = None,
        include_bias: bool = True,
    ):
        _positive_int("dtype_bytes", dtype_bytes)
        if memory_model not in MEMORY_MODELS:
            raise ValueError(f"memory_model must be one of {', '.join(MEMORY_MODELS)}, not {memory_model!r}")
        if cut_cost not in CUT_COSTS:
            raise ValueError(f"cut_cost must be one of {', '.join(CUT_COSTS)}, not {cut_cost!r}")
        self.network = network
        self.dtype_bytes = dtype_bytes
        self.memory_model = memory_model
        self.cut_cost_mode = cut_cost
        layers = network.layers
        stop = len(layers) if last_layer is None else network.index(last_layer) + 1
        self.layers = layers[:stop]
        position = {layer.name: i for i, layer in enumerate(self.layers)}
        base = network.base_tensors(_VIEWS)
        self.ops = [layer for layer in self.layers if layer.op not in _VIEWS]
        if not self.ops:
            raise ValueError(f"network {network.name!r} has no compute layer to partition")
        self.op_index = {layer.name: i for i, layer in enumerate(self.ops)}
        self.input_name = layers[0].name
        self.reads = [tuple(dict.fromkeys(b for s in op.inputs for b in base[s])) for op in self.ops]
        self.shape = {layer.name: layer.out_shape for layer in self.layers}
        self.tensor_bytes = {layer.name: layer.out_elements * dtype_bytes for layer in self.layers}
        self.readers: dict[str, list[int]] = {}
        for i, reads in enumerate(self.reads):
            for t in reads:
                self.readers.setdefault(t, []).append(i)
        self.filter_bytes = []
        for op in self.ops:
            count = 0
            if op.weight_shape is not None:
                count = math.prod(op.weight_shape)
                if include_bias and op.bias_shape is not None:
                    count += math.prod(op.bias_shape)
            self.filter_bytes.append(count * dtype_bytes)
        # layer -> op index owning it (views ride with the op that produced their input)
        self.owner = {}
        current = 0
        for layer in self.layers:
            if layer.name in self.op_index:
                current = self.op_index[layer.name]
            self.owner[layer.name] = current
        self._layer_position = position
        self.count = len(self.ops)
        # crossing bytes at each cut position c (between op c-1 and op c), c = 1..count-1
        self.cut_bytes = [0] * (self.count + 1)
        for c in range(1, self.count):
            crossing = 0
            for t, readers in self.readers.items():
                produced = -1 if t == self.input_name else self.op_index[t]
                if produced < c and t != self.input_name and max(readers) >= c:
                    crossing += self.tensor_bytes[t]
                elif t == self.input_name and max(readers) >= c:
                    crossing += 0  # the image is read from DRAM by whichever stage needs it (charged once)
            self.cut_bytes[c] = crossing
        self._mem_cache: dict[tuple[int, int], int] = {}
        # layer outputs (views included) read across each cut; the image counts as produced before op 0
        inside = {layer.name for layer in self.layers}
        produced_by = {name: (-1 if name == self.input_name else op) for name, op in self.owner.items()}
        self.crossing_layers: list[tuple[str, ...]] = [()] * (self.count + 1)
        for c in range(1, self.count):
            self.crossing_layers[c] = tuple(
                layer.name
                for layer in self.layers
                if produced_by[layer.name] < c
                and any(self.owner[r] >= c for r in network.consumers(layer.name) if r in inside)
            )

    # -- geometry ------------------------------------------------------------------------------------------
    def _need_rows(self, op, rows_out, tensor):
        height = self.shape[tensor][1] if len(self.shape[tensor]) == 3 else 1
        if op.op in _SPATIAL:
            first, last = op.input_rows(0, rows_out - 1)
            return min(last - first + 1, height)
        if op.op in _GLOBAL:
            return height
        return min(rows_out, height)  # add: row-aligned merge

    def closure_rows(self, i: int, j: int) -> dict[str, int]:
        """Rows of each tensor read by ops ``i..j`` needed to emit one row of every tensor leaving them."""
        rows_out: dict[str, int] = {}
        need: dict[str, int] = {}
        for k in range(j, i - 1, -1):
            op = self.ops[k]
            out_rows = rows_out.get(op.name, 1)
            for t in self.reads[k]:
                need[t] = max(need.get(t, 0), self._need_rows(op, out_rows, t))
                rows_out[t] = max(rows_out.get(t, 1), need[t])
        return need

    def _row_bytes(self, tensor):
        shape = self.shape[tensor]
        if len(shape) == 3:
            return shape[0] * shape[2] * self.dtype_bytes
        return math.prod(shape) * self.dtype_bytes

    def memory(self, i: int, j: int) -> int:
        """On-chip bytes of a partition of ops ``i..j`` (inclusive) under the chosen memory model."""
        key = (i, j)
        if key not in self._mem_cache:
            self._memory_column(j)
        return self._mem_cache[key]

    def _memory_column(self, j: int) -> None:
        """``memory(i, j)`` for every ``i <= j`` in one backward sweep (the closure of a longer partition
        extends the shorter one's: a tensor's rows depend only on its consumers, which come later)."""
        rows_out: dict[str, int] = {}
        need: dict[str, int] = {}
        readers_inside: dict[str, list[int]] = {}
        contribution: dict[str, int] = {}
        total = 0
        for k in range(j, -1, -1):
            op = self.ops[k]
            total += self.filter_bytes[k]
            out_rows = rows_out.get(op.name, 1)
            for t in self.reads[k]:
                need[t] = max(need.get(t, 0), self._need_rows(op, out_rows, t))
                rows_out[t] = max(rows_out.get(t, 1), need[t])
                readers_inside.setdefault(t, []).append(k)
                rows = need[t]
                if self.memory_model == "line_buffer" and len(readers_inside[t]) == 1:
                    rows = self._need_rows(op, 1, t)
                new = rows * self._row_bytes(t)
                total += new - contribution.get(t, 0)
                contribution[t] = new
            self._mem_cache[(k, j)] = total

    def cut_allowed(self, c: int, cuts: str = "any") -> bool:
        """Whether a cut before op ``c`` (``1 <= c < count``) is allowed under the rule ``cuts``."""
        if cuts == "any":
            return True
        crossing = self.crossing_layers[c]
        return len(crossing) == 1 and crossing[0] != self.input_name

    def cut_cost(self, c: int) -> int:
        """Traffic per image of a cut before op ``c``."""
        factor = 2 if self.cut_cost_mode == "write_read" else 1
        return factor * self.cut_bytes[c]

    def endpoint_bytes(self) -> int:
        """The image read once and the last op's output written once (per image)."""
        return self.tensor_bytes[self.input_name] + self.tensor_bytes[self.ops[-1].name]


@dataclass(frozen=True)
class Stage:
    """One pipeline stage (one chip, or ``replicas`` identical chips under STAP)."""

    layers: tuple[str, ...]
    footprint_bytes: int
    boundary_out_bytes: int  # per image, crossing the cut after this stage (0 for the last)
    streamed_filter_bytes: int = 0  # per image, for an oversized op
    macs: int = 0  # per image
    replicas: int = 1


@dataclass
class Partition:
    """Result of :func:`partition`; ``traffic_bytes`` and ``baseline_bytes`` are per image."""

    network: str
    capacity_bytes: int
    memory_model: str
    stages: list[Stage]
    traffic_bytes: int
    baseline_bytes: int
    cuts: list[int] = field(default_factory=list)
    throughput: float | None = None  # images per cycle
    chips: int | None = None

    @property
    def reduction(self) -> float:
        """Baseline traffic / partitioned traffic (the paper's "x fewer off-chip transfers")."""
        return self.baseline_bytes / self.traffic_bytes


def _feasible_memory(model, i, j, capacity, oversized):
    mem = model.memory(i, j)
    if mem <= capacity:
        return True, 0
    if i == j and oversized == "stream_filters":
        return True, model.filter_bytes[i]
    return False, 0


def _partitions_ending_at(model, j, capacity, oversized):
    """``(i, streamed_filter_bytes)`` for every feasible partition of ops ``i..j-1``, shortest first."""
    for i in range(j - 1, -1, -1):
        ok, extra = _feasible_memory(model, i, j - 1, capacity, oversized)
        if not ok:
            if model.memory(i, j - 1) > capacity and i < j - 1:
                # a longer partition only needs more memory (closures and filters only grow)
                break
            continue
        yield i, extra


def dp_partition(
    model: OccamModel,
    capacity: int,
    *,
    max_stages: int | None = None,
    oversized: str = "error",
    cuts: str = "any",
) -> tuple[int, list[int]] | None:
    """Minimum interior cut traffic per image and the cut positions, or ``None`` if infeasible.

    ``best[p][j]`` = cheapest cover of ops ``0..j-1`` by ``p`` partitions; cost of a partition ending before
    op ``j < N`` is the cut's traffic plus any streamed filters. Only cuts ``model.cut_allowed(j, cuts)``.
    """
    if oversized not in OVERSIZED:
        raise ValueError(f"oversized must be one of {', '.join(OVERSIZED)}, not {oversized!r}")
    if cuts not in CUT_RULES:
        raise ValueError(f"cuts must be one of {', '.join(CUT_RULES)}, not {cuts!r}")
    n = model.count
    inf = float("inf")
    if max_stages is None:
        # unbounded stage count: a 1-D DP over (cost, stages), ties broken towards fewer stages
        best1 = [(inf, 0)] * (n + 1)
        back1 = [None] * (n + 1)
        best1[0] = (0, 0)
        for j in range(1, n + 1):
            if j < n and not model.cut_allowed(j, cuts):
                continue
            for i, extra in _partitions_ending_at(model, j, capacity, oversized):
                cost, stages = best1[i]
                candidate = (cost + extra + (model.cut_cost(j) if j < n else 0), stages + 1)
                if candidate < best1[j]:
                    best1[j], back1[j] = candidate, i
        if best1[n][0] == inf:
            return None
        cuts, j = [], n
        while j > 0:
            j = back1[j]
            if j > 0:
                cuts.append(j)
        return int(best1[n][0]), sorted(cuts)
    limit = min(max_stages, n)
    best = [[inf] * (n + 1) for _ in range(limit + 1)]
    back = [[None] * (n + 1) for _ in range(limit + 1)]
    best[0][0] = 0
    for j in range(1, n + 1):
        if j < n and not model.cut_allowed(j, cuts):
            continue
        for i, extra in _partitions_ending_at(model, j, capacity, oversized):
            edge = extra + (model.cut_cost(j) if j < n else 0)
            for p in range(1, limit + 1):
                if best[p - 1][i] + edge < best[p][j]:
                    best[p][j] = best[p - 1][i] + edge
                    back[p][j] = i
    p_best = min(range(1, limit + 1), key=lambda p: (best[p][n], p))
    if best[p_best][n] == inf:
        return None
    cuts, j, p = [], n, p_best
    while j > 0:
        i = back[p][j]
        if i > 0:
            cuts.append(i)
        j, p = i, p - 1
    return int(best[p_best][n]), sorted(cuts)


def brute_force_partition(
    model: OccamModel, capacity: int, *, max_stages: int | None = None, oversized: str = "error"
):
    """Exhaustive search over all cut sets (``N <= 18`` ops); same arguments and return value as
    :func:`dp_partition` (ties go to fewer stages)."""
    n = model.count
    if n > 18:
        raise ValueError(f"brute force is limited to 18 ops, not {n}")
    best = None
    for mask in range(1 << (n - 1)):
        cuts = [c for c in range(1, n) if mask >> (c - 1) & 1]
        if max_stages is not None and len(cuts) + 1 > max_stages:
            continue
        bounds = [0, *cuts, n]
        cost = 0
        for a, b in itertools.pairwise(bounds):
            ok, extra = _feasible_memory(model, a, b - 1, capacity, oversized)
            if not ok:
                break
            cost += extra + (model.cut_cost(b) if b < n else 0)
        else:
            if best is None or cost < best[0] or (cost == best[0] and len(cuts) < len(best[1])):
                best = (cost, cuts)
    return best


def layer_by_layer_traffic(
    model: OccamModel, capacity: int | None = None, oversized: str = "stream_filters"
) -> int:
    """Per-image traffic when every op's output is spilled: endpoints plus every interior cut (plus, with a
    ``capacity`` and ``oversized="stream_filters"``, the same filter streaming the partition pays for ops that
    do not fit alone, so both sides of the ratio are charged alike)."""
    total = model.endpoint_bytes() + sum(model.cut_cost(c) for c in range(1, model.count))
    if capacity is not None and oversized == "stream_filters":
        total += sum(model.filter_bytes[i] for i in range(model.count) if model.memory(i, i) > capacity)
    return total


@dataclass(frozen=True)
class StapResult:
    """STAP replica counts for stage times ``t_i`` (cycles per image)."""

    replicas: tuple[int, ...]
    period: float  # tau
    throughput: float  # images per cycle = 1 / max(t_i / r_i)
    chips: int


def stap(stage_times, *, chips: int | None = None, period: float | None = None) -> StapResult:
    """Replicate bottleneck stages (``r_i = ceil(t_i / period)``); with ``chips`` find the smallest period
    whose replica total fits the budget (the optimum is one of the values ``t_i / r``)."""
    times = [float(t) for t in stage_times]
    if not times or any(t <= 0 for t in times):
        raise ValueError("stage_times must be positive numbers")
    if chips is not None:
        _positive_int("chips", chips)
        if chips < len(times):
            raise ValueError(f"chips must be at least the number of stages ({len(times)}), not {chips}")
        candidates = sorted({t / r for t in times for r in range(1, chips + 1)})
        for tau in candidates:
            replicas = [math.ceil(t / tau - 1e-12) for t in times]
            if sum(replicas) <= chips:
                period = tau
                break
    elif period is None:
        period = max(times)
    replicas = tuple(max(1, math.ceil(t / period - 1e-12)) for t in times)
    throughput = 1.0 / max(t / r for t, r in zip(times, replicas))
    return StapResult(replicas, period, throughput, sum(replicas))


def partition(
    network,
    capacity_bytes: int,
    *,
    memory_model: str = "line_buffer",
    chips: int | None = None,
    dtype_bytes: int = 2,
    cut_cost: str = "write_read",
    last_layer: str | None = None,
    oversized: str = "stream_filters",
    array: tuple[int, int] = (128, 128),
    cuts: str = "any",
) -> Partition:
    """Split ``network`` into pipeline stages that fit ``capacity_bytes`` each, minimising boundary traffic.

    With ``chips``, at most ``chips`` stages are used and the remaining chips replicate bottleneck stages
    (STAP); stage times are forward MACs per image divided by the ``array`` size (compute-bound). Raises
    ``ValueError`` when no partition fits. Stages list every layer name (views ride with their producer).
    ``cuts`` restricts the cut positions (:data:`CUT_RULES`, see the module docstring).
    """
    _positive_int("capacity_bytes", capacity_bytes)
    model = OccamModel(
        network, dtype_bytes=dtype_bytes, memory_model=memory_model, cut_cost=cut_cost, last_layer=last_layer
    )
    found = dp_partition(model, capacity_bytes, max_stages=chips, oversized=oversized, cuts=cuts)
    if found is None:
        within = f" in {chips} stages" if chips else ""
        raise ValueError(
            f"capacity_bytes {capacity_bytes} is too small to partition {network.name!r}{within}"
        )
    cost, cuts = found
    bounds = [0, *cuts, model.count]
    stages = []
    for a, b in itertools.pairwise(bounds):
        names = tuple(layer.name for layer in model.layers if a <= model.owner[layer.name] < b)
        mem = model.memory(a, b - 1)
        streamed = model.filter_bytes[a] if mem > capacity_bytes else 0
        macs = sum(op.macs for op in model.ops[a:b])
        stages.append(
            Stage(
                names,
                min(mem, capacity_bytes) if streamed else mem,
                model.cut_bytes[b] if b < model.count else 0,
                streamed,
                macs,
            )
        )
    result = Partition(
        network.name,
        capacity_bytes,
        memory_model,
        stages,
        cost + model.endpoint_bytes(),
        layer_by_layer_traffic(model, capacity_bytes, oversized),
        cuts,
    )
    if chips is not None:
        times = [max(1, math.ceil(stage.macs / (array[0] * array[1]))) for stage in stages]
        spread = stap(times, chips=chips)
        result.stages = [
            Stage(s.layers, s.footprint_bytes, s.boundary_out_bytes, s.streamed_filter_bytes, s.macs, r)
            for s, r in zip(stages, spread.replicas)
        ]
        result.throughput = spread.throughput
        result.chips = spread.chips
    return result
