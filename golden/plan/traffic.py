"""Analytical DRAM traffic and on-chip footprint of a training step under a grouped schedule.

A traffic model for mini-batch serialization (Lym et al., arXiv 1810.00307; the paper's own accounting was not
available, so the structure is derived) with the BN/GN pass counts of :mod:`wavecore.golden.plan.bnff` and the
live sets of :mod:`wavecore.golden.plan.mbs`. Every convention the papers leave open is a field of
:class:`TrafficOptions` and is documented in ``docs/planner.md``.

Model in one paragraph. A schedule is a list of groups: contiguous runs of the topological order, each with a
sub-batch ``b`` (``S = ceil(N / b)`` sub-batches). Only *base tensors* ever cross the chip boundary: outputs
of ``input, conv2d, linear, maxpool, avgpool, global_avgpool, add, loss`` (and ``concat`` when
``concat="copy"``). ``batchnorm``, ``groupnorm``, ``relu``, ``flatten`` (and ``concat="view"``) are *views*:
applied on write/read of their base tensor, their extra DRAM passes are charged per *norm site* from
:data:`SITE_PASSES` (class ``norm_passes``). Per group and per iteration:

* ``activations``: each base tensor consumed in the group but produced before it is read once (``N*a``); each
  base tensor produced in the group and consumed by a later group is written once;
* ``stash``: tensors the backward pass needs (inputs of conv/linear/maxpool/loss layers and anchors of the
  group's on-chip norm sites) that are not already in DRAM are written in the forward pass; every needed
  tensor is read back in the backward pass (no recomputation: MBS does not recompute activations);
* ``weights``: read once per pass if the group's weights stay resident (they fit beside the sub-batch's live
  set), else once per sub-batch per pass;
* ``weight_grads``: written once if accumulated on chip, else read-modify-written per sub-batch
  (``(2S - 1) * w``; the first sub-batch only writes);
* ``activation_grads``: a consumer group writes the gradient of each base tensor it read from another group,
  and the producer group reads every such partial gradient;
* ``norm_passes``: extra passes of BN/GN/ReLU sites (BN-ReLU 14F two-pass, 13F one-pass,
  2F fused; see :data:`SITE_PASSES`). A BN site is always charged (whole-batch statistics force a DRAM round
  trip); a GN or ReLU site is charged only if it is split across groups (otherwise it runs on chip, per
  sample).

The on-chip footprint of a group is ``b * max(LIVE_fwd, LIVE_bwd) + R`` plus the resident weights and on-chip
``dW`` accumulators when those are chosen. ``R`` is the weight-tile reserve: by default (``weight_buffer_bytes=
"auto"``) the largest :func:`weight_tile_bytes` of the group's layers on the configured array (only one layer
executes at a time), else the fixed ``weight_buffer_bytes``. LIVE are per-sample peaks over the group's
steps of the base tensors alive: group inputs until their last use, produced tensors until their last use in
the group (tensors waiting for a merge included), and in backward the gradients in flight plus the activations
the current layer reads.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, fields, replace

from wavecore.golden.plan.cycles import DATAFLOWS, layer_gemms

__all__ = [
    "NORM_VARIANTS",
    "SITE_PASSES",
    "TRAFFIC_CLASSES",
    "GroupProfile",
    "GroupTraffic",
    "NetworkModel",
    "NormSite",
    "ScheduleTraffic",
    "TrafficOptions",
    "compulsory_traffic",
    "evaluate",
    "transfer_bytes",
    "weight_tile_bytes",
]

TRAFFIC_CLASSES = ("activations", "stash", "weights", "weight_grads", "activation_grads", "norm_passes")
NORM_VARIANTS = ("two_pass", "one_pass", "fused")
STASH_POLICIES = ("minimal", "all")
WEIGHT_GRAD_POLICIES = ("auto", "on_chip", "dram")
CONCAT_POLICIES = ("view", "copy")
SUB_BATCH_ROUNDING = ("divisor", "any")

#: Extra DRAM passes (units of F = one feature map of the site's input) per site kind and variant,
#: forward + backward, derived for an unfused (Caffe-style) BN-ReLU and its fission-fusion form (Jung et al.,
#: arXiv 1807.01702); ``norm`` without ReLU and ``relu`` alone follow the same per-pass accounting:
#: BN fwd stats 2R (1R one-pass) + normalise 1R+1W, bwd reductions 2R + dx 2R+1W;
#: ReLU fwd 1R+1W, bwd 2R+1W; fused: X re-read once per view in backward).
SITE_PASSES = {
    "norm_relu": {"two_pass": 14, "one_pass": 13, "fused": 2},
    "norm": {"two_pass": 9, "one_pass": 8, "fused": 1},
    "relu": {"two_pass": 5, "one_pass": 5, "fused": 1},
}

_VIEW_OPS = ("batchnorm", "groupnorm", "relu", "flatten")
_NORM_OPS = ("batchnorm", "groupnorm")
# Layers whose backward pass reads their (base) input activations.
_NEEDS_INPUT = ("conv2d", "linear", "maxpool", "loss")


def transfer_bytes(shape, element_bytes: int) -> int:
    """DRAM bytes of one transfer of a dense tensor (tile): ``prod(shape) * element_bytes``.

    ``shape`` is a tuple of extents or an element count. The unit of every byte this model charges (each
    tensor, weight and gradient pass is one such transfer), and what a DMA descriptor moving that tile one
    element per bus word of ``element_bytes`` must count, so the RTL byte counters are checked against it.
    """
    extents = tuple(shape) if isinstance(shape, tuple | list) else (shape,)
    for extent in extents:
        _nonneg_int("shape", extent if isinstance(extent, bool) else _as_int(extent))
    _nonneg_int("element_bytes", element_bytes, 1)
    return math.prod(_as_int(extent) for extent in extents) * element_bytes


def weight_tile_bytes(layer, *, rows: int, cols: int, dataflow: str, dtype_bytes: int) -> int:
    """On-chip bytes of the double-buffered weight tiles a ``conv2d``/``linear`` layer needs while it executes.

    The GEMMs are :func:`~wavecore.golden.plan.cycles.layer_gemms`' (one per convolution group, one after another);
    the weight operand ``B[K, N]`` is ``W[K, Cout]`` in forward and ``W^T[Cout, K]`` in backward-data
    (backward-weight reads no weights: its operands are activations and gradients, its ``dW`` output is the
    ``weight_grads`` accumulator). One tile is what the array must hold so each weight is fetched once per pass:

    * ``os`` (rows <- M, cols <- N, time <- K): the column slab ``B[:, n:n+cols]`` of ``K * min(cols, N)``
      elements, reused by every M fold of that column tile; in forward plus ``min(cols, N)`` bias elements;
    * ``ws`` (rows <- K, cols <- N): the stationary block of ``min(rows, K) * min(cols, N)`` elements (plus
      ``min(cols, N)`` bias elements in forward).

    The reserve is two tiles (one computing, the next loading) of the larger pass, times ``dtype_bytes``;
    0 for a layer without weights. Example: a 3x3 conv 8 -> 16 channels without bias on an 8x8 os array holds
    ``K = 72`` by ``min(8, 16) = 8`` in forward and ``16 x 8`` in backward-data, so ``2 * 576 = 1,152`` int8 bytes.
    """
    _nonneg_int("rows", rows, 1)
    _nonneg_int("cols", cols, 1)
    _choice("dataflow", dataflow, DATAFLOWS)
    _nonneg_int("dtype_bytes", dtype_bytes, 1)
    gemms = layer_gemms(layer, 1)
    if not gemms:
        return 0
    bias = 1 if layer.params.get("bias") else 0
    tile = 0
    for name, extra in (("forward", bias), ("backward_data", 0)):
        _, k, n = gemms[name][0]
        held = k if dataflow == "os" else min(rows, k)
        tile = max(tile, (held + extra) * min(cols, n))
    return 2 * tile * dtype_bytes


def _as_int(value):
    """Python ints and NumPy integers as int (anything else is returned for the check to refuse)."""
    try:
        return operator.index(value)
    except TypeError:
        return value


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def _nonneg_int(name, value, minimum=0):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")


@dataclass(frozen=True)
class TrafficOptions:
    """Conventions of the traffic model (each one a choice the papers leave open; ``docs/planner.md``).

    Parameters
    ----------
    dtype_bytes : int
        Bytes per activation and weight element (2 for bf16).
    grad_bytes : int
        Bytes per weight-gradient accumulator element (4: fp32).
    norm_variant : {"two_pass", "one_pass", "fused"}
        BN/GN execution: unfused two-pass statistics, one-pass statistics, or fission + fusion (BNFF).
    stash : {"minimal", "all"}
        ``minimal`` stashes base tensors only (norm/ReLU outputs recomputed on read from per-channel
        constants); ``all`` also stashes every on-chip norm/ReLU output.
    weight_grad_accumulation : {"auto", "on_chip", "dram"}
        Where ``dW`` sums across sub-batches: ``auto`` picks the cheaper feasible one per group, ``on_chip``
        uses on-chip accumulators whenever they fit (else DRAM), ``dram`` always read-modify-writes.
    weight_buffer_bytes : int or "auto"
        On-chip bytes reserved for the double-buffered weight tiles of the executing layer. ``"auto"`` sizes it
        per group: the largest :func:`weight_tile_bytes` of the group's layers on an ``array_rows`` x
        ``array_cols`` array with ``dataflow``; an integer reserves that many bytes for every group.
    array_rows, array_cols : int
        The systolic array the weight tiles are sized for (``"auto"`` reserve only).
    dataflow : {"os", "ws"}
        The array's dataflow (output or weight stationary), which sets the tile shape.
    concat : {"view", "copy"}
        ``view``: producers write into slices of the concatenated buffer (no copy); ``copy``: concat is a
        layer that reads its inputs and writes its output.
    sub_batch_rounding : {"divisor", "any"}
        Sub-batch sizes are divisors of the mini-batch (no ragged last sub-batch) or any size.
    min_sub_batch : int
        The greedy planner's floor: a group is not extended if its largest feasible sub-batch drops below.
    inplace_add : bool
        An ``add`` writes its result over an input that dies at the add (the ResNet bottleneck live set
        ``X + max(A+B, B+C)``), so it adds no live bytes of its own.
    """

    dtype_bytes: int = 2
    grad_bytes: int = 4
    norm_variant: str = "two_pass"
    stash: str = "minimal"
    weight_grad_accumulation: str = "auto"
    weight_buffer_bytes: int | str = "auto"
    array_rows: int = 128
    array_cols: int = 128
    dataflow: str = "os"
    concat: str = "view"
    sub_batch_rounding: str = "divisor"
    min_sub_batch: int = 1
    inplace_add: bool = True

    def __post_init__(self):
        _nonneg_int("dtype_bytes", self.dtype_bytes, 1)
        _nonneg_int("grad_bytes", self.grad_bytes, 1)
        _choice("norm_variant", self.norm_variant, NORM_VARIANTS)
        _choice("stash", self.stash, STASH_POLICIES)
        _choice("weight_grad_accumulation", self.weight_grad_accumulation, WEIGHT_GRAD_POLICIES)
        reserve = self.weight_buffer_bytes
        if reserve != "auto" and (not isinstance(reserve, int) or isinstance(reserve, bool) or reserve < 0):
            raise ValueError(f"weight_buffer_bytes must be 'auto' or an integer >= 0, not {reserve!r}")
        _nonneg_int("array_rows", self.array_rows, 1)
        _nonneg_int("array_cols", self.array_cols, 1)
        _choice("dataflow", self.dataflow, DATAFLOWS)
        _choice("concat", self.concat, CONCAT_POLICIES)
        _choice("sub_batch_rounding", self.sub_batch_rounding, SUB_BATCH_ROUNDING)
        _nonneg_int("min_sub_batch", self.min_sub_batch, 1)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class NormSite:
    """A BN/GN layer (with the ReLU that follows it) or a ReLU alone: its views, their readers and F."""

    kind: str  # "norm_relu" | "norm" | "relu"
    layers: tuple[int, ...]  # positions of the view layers of the site
    readers: tuple[int, ...]  # positions of the non-view layers reading the site's output
    anchor_bytes: int  # bytes per sample of the site's input (F / N)
    batch_norm: bool

    def passes(self, variant: str) -> int:
        return SITE_PASSES[self.kind][variant]


class NetworkModel:
    """Pre-analysed network: base tensors, views, norm sites, per-layer bytes (shared by all schedules)."""

    def __init__(self, network, options: TrafficOptions | None = None):
        self.network = network
        self.options = options or TrafficOptions()
        opts = self.options
        layers = network.layers
        self.names = [layer.name for layer in layers]
        self.position = {name: i for i, name in enumerate(self.names)}
        count = len(layers)
        view_ops = _VIEW_OPS + (("concat",) if opts.concat == "view" else ())
        self.is_view = [layer.op in view_ops for layer in layers]
        self.op = [layer.op for layer in layers]
        self.bytes = [transfer_bytes(layer.out_elements, opts.dtype_bytes) for layer in layers]
        self.weight_bytes = [transfer_bytes(layer.param_count, opts.dtype_bytes) for layer in layers]
        self.grad_bytes = [transfer_bytes(layer.param_count, opts.grad_bytes) for layer in layers]
        self.tile_bytes = [
            weight_tile_bytes(layer, rows=opts.array_rows, cols=opts.array_cols, dataflow=opts.dataflow,
                              dtype_bytes=opts.dtype_bytes)
            for layer in layers
        ]
        # base tensors each layer resolves to (a view resolves to the bases of its inputs)
        base_names = network.base_tensors(view_ops)
        base = [tuple(self.position[b] for b in base_names[layer.name]) for layer in layers]
        self.base = base
        # base inputs each non-view layer reads
        self.reads: list[tuple[int, ...]] = []
        for i, layer in enumerate(layers):
            merged = []
            if not self.is_view[i]:
                for source in layer.inputs:
                    for b in base[self.position[source]]:
                        if b not in merged:
                            merged.append(b)
            self.reads.append(tuple(merged))
        # non-view readers of each base tensor
        self.readers: list[list[int]] = [[] for _ in range(count)]
        for i in range(count):
            for b in self.reads[i]:
                self.readers[b].append(i)
        self.sites = self._find_sites(network)
        self.site_of_layer = {}
        for index, site in enumerate(self.sites):
            for position in site.layers:
                self.site_of_layer[position] = index
        self.input_position = 0

    def _non_view_readers(self, position):
        found, stack, seen = [], [position], set()
        while stack:
            current = stack.pop()
            for consumer in self.network.consumers(self.names[current]):
                c = self.position[consumer]
                if c in seen:
                    continue
                seen.add(c)
                if self.is_view[c]:
                    stack.append(c)
                else:
                    found.append(c)
        return tuple(sorted(found))

    def _find_sites(self, network):
        sites = []
        for i, layer in enumerate(network.layers):
            if layer.op in _NORM_OPS:
                consumers = network.consumers(layer.name)
                chain = [i]
                kind = "norm"
                if len(consumers) == 1 and network.layer(consumers[0]).op == "relu":
                    chain.append(self.position[consumers[0]])
                    kind = "norm_relu"
            elif layer.op == "relu":
                source = network.layer(layer.inputs[0])
                if source.op in _NORM_OPS and len(network.consumers(source.name)) == 1:
                    continue  # part of the norm's site
                chain, kind = [i], "relu"
            else:
                continue
            first = network.layer(self.names[chain[0]])
            anchor = sum(self.bytes[b] for b in self.base[self.position[first.inputs[0]]])
            sites.append(
                NormSite(
                    kind,
                    tuple(chain),
                    self._non_view_readers(chain[-1]),
                    anchor,
                    layer.op == "batchnorm" or first.op == "batchnorm",
                )
            )
        return sites

    # ------------------------------------------------------------------------------------------------------
    def profile(self, start: int, stop: int) -> GroupProfile:
        """Batch-independent facts about the group of positions ``[start, stop)`` (per sample, bytes)."""
        positions = range(start, stop)
        members = [p for p in positions if not self.is_view[p] and self.op[p] != "input"]
        step = {p: s for s, p in enumerate(members)}
        last = len(members) - 1
        inside = lambda p: start <= p < stop and p != self.input_position  # noqa: E731
        boundary_in: dict[int, int] = {}  # base tensor -> first reading layer in the group
        for p in members:
            for b in self.reads[p]:
                if not inside(b) and b not in boundary_in:
                    boundary_in[b] = p
        boundary_out: dict[int, int] = {}  # produced base tensor -> number of later consumer groups (>=1)
        for p in members:
            outside = [r for r in self.readers[p] if r >= stop]
            if outside:
                boundary_out[p] = len(outside)
        # norm sites whose first view is in this group
        site_bytes = {}
        onchip_anchors: set[int] = set()
        onchip_views = []
        for index in {self.site_of_layer[p] for p in positions if p in self.site_of_layer}:
            site = self.sites[index]
            if not inside(site.layers[0]):
                continue
            split = not all(inside(p) for p in site.layers + site.readers)
            if site.batch_norm or split:
                site_bytes[site.layers[0]] = site.anchor_bytes
            else:
                onchip_anchors.update(
                    self.base[self.position[self.network.layer(self.names[site.layers[0]]).inputs[0]]]
                )
                onchip_views.extend(site.layers)
        needed = set()
        for p in members:
            if self.op[p] in _NEEDS_INPUT:
                needed.update(self.reads[p])
        needed |= onchip_anchors
        stash_write = {t: self.bytes[t] for t in needed if inside(t) and t not in boundary_out}
        stash_read = {t: self.bytes[t] for t in needed}
        if self.options.stash == "all":
            for v in onchip_views:
                stash_write[v] = self.bytes[v]
                stash_read[v] = self.bytes[v]
        # live intervals (in member steps)
        intervals = []
        for t in boundary_in:
            uses = [step[r] for r in self.readers[t] if r in step]
            intervals.append((0, max(uses), self.bytes[t], min(uses)))
        last_use = {}
        for t, _ in boundary_in.items():
            last_use[t] = max(step[r] for r in self.readers[t] if r in step)
        for p in members:
            uses = [step[r] for r in self.readers[p] if r in step]
            last_use[p] = max(uses) if uses else step[p]
        for p in members:
            end = last_use[p]
            begin = step[p]
            if (
                self.options.inplace_add
                and self.op[p] == "add"
                and any(last_use.get(t) == step[p] and self.bytes[t] >= self.bytes[p] for t in self.reads[p])
            ):
                begin += 1  # result overwrites an input that dies here
                if end < begin:
                    continue
            intervals.append((begin, end, self.bytes[p], begin))
        live_fwd = _peak([(a, b, size) for a, b, size, _ in intervals], last)
        grad_intervals = [(lo, b, size) for a, b, size, lo in intervals]
        needs = [
            (step[p], step[p], sum(self.bytes[t] for t in self.reads[p]))
            for p in members
            if self.op[p] in _NEEDS_INPUT
        ]
        live_bwd = _peak(grad_intervals + needs, last)
        weights = sum(self.weight_bytes[p] for p in positions)
        grads = sum(self.grad_bytes[p] for p in positions)
        if self.options.weight_buffer_bytes == "auto":
            reserve = max((self.tile_bytes[p] for p in positions), default=0)
        else:
            reserve = self.options.weight_buffer_bytes
        return GroupProfile(
            start,
            stop,
            live_fwd,
            live_bwd,
            boundary_in,
            boundary_out,
            stash_write,
            stash_read,
            weights,
            grads,
            site_bytes,
            reserve,
        )

    def divisors(self, batch: int) -> list[int]:
        if self.options.sub_batch_rounding == "any":
            return list(range(1, batch + 1))
        return [d for d in range(1, batch + 1) if batch % d == 0]

    def group_traffic(
        self, profile: GroupProfile, sub_batch: int, batch: int, capacity: int | None
    ) -> GroupTraffic:
        """Traffic of one group at a sub-batch size; ``capacity=None`` means unconstrained (tiled layer)."""
        opts = self.options
        sub_batches = math.ceil(batch / sub_batch)
        live = max(profile.live_fwd, profile.live_bwd)
        base_footprint = sub_batch * live + profile.weight_buffer
        feasible = capacity is None or base_footprint <= capacity
        resident = capacity is None or base_footprint + profile.weights <= capacity
        if sub_batches == 1:
            resident = True
        dw_fits = capacity is None or base_footprint + profile.grads <= capacity
        policy = opts.weight_grad_accumulation
        dw_on_chip = sub_batches == 1 or (policy != "dram" and dw_fits)
        if policy == "auto" and dw_on_chip and resident and capacity is not None and sub_batches > 1:
            # both extras must fit together; else drop the cheaper-to-lose one
            if base_footprint + profile.weights + profile.grads > capacity:
                keep_weights = profile.weights * 2 * (sub_batches - 1) >= profile.grads * 2 * (
                    sub_batches - 1
                )
                resident, dw_on_chip = keep_weights, not keep_weights
        elif (
            resident
            and dw_on_chip
            and capacity is not None
            and sub_batches > 1
            and base_footprint + profile.weights + profile.grads > capacity
        ):
            resident = False  # "on_chip" policy: dW accumulators win the space
        weight_reads = profile.weights * (2 if resident else 2 * sub_batches)
        dw = profile.grads * (1 if dw_on_chip else 2 * sub_batches - 1)
        per_class = dict.fromkeys(TRAFFIC_CLASSES, 0)
        per_class["activations"] = batch * (
            sum(self.bytes[t] for t in profile.boundary_in) + sum(self.bytes[t] for t in profile.boundary_out)
        )
        per_class["stash"] = batch * (sum(profile.stash_write.values()) + sum(profile.stash_read.values()))
        per_class["weights"] = weight_reads
        per_class["weight_grads"] = dw
        grads_in = sum(self.bytes[t] for t in profile.boundary_in if t != self.input_position)
        grads_out = sum(self.bytes[t] * k for t, k in profile.boundary_out.items())
        per_class["activation_grads"] = batch * (grads_in + grads_out)
        per_class["norm_passes"] = batch * sum(
            size * self.sites[self.site_of_layer[p]].passes(opts.norm_variant)
            for p, size in profile.site_bytes.items()
        )
        footprint = (
            base_footprint
            + (profile.weights if resident and sub_batches > 1 else 0)
            + (profile.grads if dw_on_chip and sub_batches > 1 else 0)
        )
        return GroupTraffic(
            profile.start,
            profile.stop,
            sub_batch,
            per_class,
            footprint,
            feasible,
            resident,
            dw_on_chip,
            capacity is None,
            profile.weight_buffer,
        )

    def best_sub_batch(self, profile: GroupProfile, batch: int, capacity: int) -> GroupTraffic | None:
        """The cheapest feasible sub-batch for a group (ties: the larger sub-batch), or ``None``."""
        best = None
        for b in self.divisors(batch):
            traffic = self.group_traffic(profile, b, batch, capacity)
            if not traffic.feasible:
                break  # footprint grows with b
            if best is None or traffic.total <= best.total:
                best = traffic
        return best

    def per_layer(self, traffic: GroupTraffic, batch: int) -> dict[str, dict[str, int]]:
        """Attribute a group's bytes to its layers (reads to the reader, writes to the producer)."""
        profile = self.profile(traffic.start, traffic.stop)
        sub_batches = math.ceil(batch / traffic.sub_batch)
        table: dict[str, dict[str, int]] = {}

        def add(position, cls, amount):
            if amount:
                row = table.setdefault(self.names[position], dict.fromkeys(TRAFFIC_CLASSES, 0))
                row[cls] += amount

        for t, reader in profile.boundary_in.items():
            add(reader, "activations", batch * self.bytes[t])
            if t != self.input_position:
                add(reader, "activation_grads", batch * self.bytes[t])
        for t, k in profile.boundary_out.items():
            add(t, "activations", batch * self.bytes[t])
            add(t, "activation_grads", batch * self.bytes[t] * k)
        for t, size in profile.stash_write.items():
            add(t, "stash", batch * size)
        for t, size in profile.stash_read.items():
            owner = profile.boundary_in.get(t, t)
            add(owner, "stash", batch * size)
        for p in range(traffic.start, traffic.stop):
            reads = 2 if traffic.weights_resident else 2 * sub_batches
            add(p, "weights", self.weight_bytes[p] * reads)
            add(
                p,
                "weight_grads",
                self.grad_bytes[p] * (1 if traffic.weight_grads_on_chip else 2 * sub_batches - 1),
            )
        for p, size in profile.site_bytes.items():
            add(
                p,
                "norm_passes",
                batch * size * self.sites[self.site_of_layer[p]].passes(self.options.norm_variant),
            )
        return table


def _peak(intervals, last):
    if last < 0:
        return 0
    delta = [0] * (last + 2)
    for a, b, size in intervals:
        delta[a] += size
        delta[b + 1] -= size
    peak = running = 0
    for s in range(last + 1):
        running += delta[s]
        peak = max(peak, running)
    return peak


@dataclass(frozen=True)
class GroupProfile:
    """Per-sample, sub-batch-independent facts of a group (bytes); see :meth:`NetworkModel.profile`."""

    start: int
    stop: int
    live_fwd: int
    live_bwd: int
    boundary_in: dict
    boundary_out: dict
    stash_write: dict
    stash_read: dict
    weights: int
    grads: int
    site_bytes: dict
    weight_buffer: int  # the weight-tile reserve R of the footprint (bytes, not per sample)


@dataclass(frozen=True)
class GroupTraffic:
    """DRAM bytes by class of one group at one sub-batch size, its footprint and residency decisions."""

    start: int
    stop: int
    sub_batch: int
    per_class: dict
    footprint: int
    feasible: bool
    weights_resident: bool
    weight_grads_on_chip: bool
    tiled: bool = False
    weight_buffer: int = 0  # the weight-tile reserve included in footprint

    @property
    def total(self) -> int:
        return sum(self.per_class.values())


@dataclass
class ScheduleTraffic:
    """Traffic of a whole schedule: totals by class, per group, per layer, footprint and lower bound."""

    name: str
    batch: int
    capacity: int | None
    groups: list[GroupTraffic]
    layer_names: list[list[str]]
    per_class: dict
    per_layer: dict
    peak_footprint: int | None
    lower_bound: int
    options: TrafficOptions = field(default_factory=TrafficOptions)

    @property
    def total(self) -> int:
        return sum(self.per_class.values())


def compulsory_traffic(network, batch: int, options: TrafficOptions | None = None) -> int:
    """Compulsory bytes of one training step: the input read once, every weight read once, every weight
    gradient written once and the network output (logits) written once."""
    opts = options or TrafficOptions()
    input_bytes = network.layers[0].out_elements * opts.dtype_bytes * batch
    params = network.param_count()
    logits = network.layer(network.output.inputs[0]) if network.has_loss else network.output
    output_bytes = logits.out_elements * opts.dtype_bytes * batch
    return input_bytes + params * opts.dtype_bytes + params * opts.grad_bytes + output_bytes


def evaluate(
    network,
    groups,
    batch: int,
    *,
    capacity: int | None = None,
    options: TrafficOptions | None = None,
    name: str = "schedule",
    model: NetworkModel | None = None,
    tiled=None,
) -> ScheduleTraffic:
    """Traffic of a schedule given as ``[(layer_names, sub_batch), ...]`` (contiguous, in order).

    ``tiled`` is an optional set of group indices executed as capacity-unconstrained tiled layers (the
    layer-by-layer baseline marks all its groups so); their footprint is not reported.
    """
    model = model or NetworkModel(network, options)
    opts = model.options
    tiled = set(tiled or ())
    results, names = [], []
    for index, (layer_names, sub_batch) in enumerate(groups):
        positions = sorted(model.position[n] for n in layer_names)
        start, stop = positions[0], positions[-1] + 1
        if positions != list(range(start, stop)):
            raise ValueError(f"group {index} is not a contiguous run of the topological order")
        if index in tiled:
            # whole-batch group run layer by layer, each layer streaming tiles through the buffer
            for p in range(max(start, 1), stop):
                traffic = model.group_traffic(model.profile(p, p + 1), batch, batch, None)
                results.append(replace(traffic, tiled=True))
                names.append([model.names[p]])
            continue
        profile = model.profile(start, stop)
        results.append(model.group_traffic(profile, sub_batch, batch, capacity))
        names.append([model.names[p] for p in range(start, stop)])
    per_class = dict.fromkeys(TRAFFIC_CLASSES, 0)
    per_layer: dict[str, dict[str, int]] = {}
    for traffic in results:
        for cls, amount in traffic.per_class.items():
            per_class[cls] += amount
        for layer, row in model.per_layer(traffic, batch).items():
            target = per_layer.setdefault(layer, dict.fromkeys(TRAFFIC_CLASSES, 0))
            for cls, amount in row.items():
                target[cls] += amount
    footprints = [t.footprint for t in results if not t.tiled]
    return ScheduleTraffic(
        name,
        batch,
        capacity,
        results,
        names,
        per_class,
        per_layer,
        max(footprints) if footprints else None,
        compulsory_traffic(network, batch, opts),
        opts,
    )
