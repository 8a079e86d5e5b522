"""LR-CNN row-centric schedules: 2PS and OverL row blocks, their activation-memory estimate, and a row-block
forward executor on the golden layers.

Wang et al., "LR-CNN: Lightweight Row-centric Convolutional Neural Network Training for Memory Reduction" (arXiv
2401.11471). The mechanics are read from the authors' PyTorch code (``GreenMountain-XY/LRCNN``, commit 38bc6be),
since the paper's body was not available; the memory model is ours. A *row region* is the run of layers from the
network input to ``region_end``; a *row block* is a horizontal slice of the input image pushed through the whole
region before the next block starts.

* Receptive-field inversion (:func:`required_rows`): output rows ``[a, b]`` of a conv/pool with kernel ``k``,
  stride ``s``, padding ``p`` need input rows ``[a*s - p, b*s - p + k - 1]`` clipped to the map (border
  clipping); views, ``add`` and ``concat`` need the same rows of every input; a tensor read by several layers
  needs the union.
* OverL (:func:`overlap_cuts`): block ``i`` owns region-output rows ``[a_i, b_i]`` and reads the input rows
  of their full two-sided receptive field; halos are recomputed, blocks are independent.
* 2PS (:func:`two_phase_sharing_cuts`): block ``i`` ends at the one-sided receptive field ``f(b_i)`` and
  starts
  where the first spatial layer's new output rows begin (for VGG's 3x3/1 pad-1 conv: two rows before the
  previous block's end); every later layer prepends the boundary rows carried from the previous block, so
  each row is computed once.
* Head/middle/tail trimming is implicit in the interval arithmetic: a block keeps exactly the rows whose
  windows it has whole (an image border counts as padding, a cut does not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "RowBlockMemory",
    "activation_memory",
    "overlap_cuts",
    "region_layers",
    "required_rows",
    "row_block_backward",
    "row_block_forward",
    "two_phase_sharing_cuts",
]

_SPATIAL = ("conv2d", "maxpool", "avgpool")
_ROWWISE = ("batchnorm", "groupnorm", "relu", "add", "concat")
# Applied in place on a stored tensor (no rows of their own to carry between blocks).
_IN_PLACE = ("batchnorm", "groupnorm", "relu")


def region_layers(network, region_end: str) -> list:
    """The layers from the input to ``region_end`` (topological order); they must be row-local."""
    stop = network.index(region_end) + 1
    layers = network.layers[:stop]
    for layer in layers[1:]:
        if layer.op not in _SPATIAL + _ROWWISE:
            raise ValueError(
                f"region_end must close a row-local region; {layer.name!r} is a {layer.op} layer"
            )
    return layers


def _height(layer):
    return layer.out_shape[1]


def _last_complete_output(layer, last_input_row):
    """Last output row of a conv/pool whose whole window ends at or before ``last_input_row`` (the inverse
    of :meth:`wavecore.golden.network.Layer.input_rows`: a cut is not a border, so no padding below it)."""
    kernel, stride, padding = (layer.params[key][0] for key in ("kernel", "stride", "padding"))
    return (last_input_row + padding - kernel + 1) // stride


def required_rows(network, region_end: str, first: int, last: int, *, one_sided: bool = False) -> dict:
    """Rows ``(lo, hi)`` (inclusive) of every tensor of the region needed for rows ``first..last`` of
    ``region_end``'s output. ``one_sided`` keeps ``lo = 0`` (the rows a 2PS block has computed so far)."""
    layers = region_layers(network, region_end)
    need: dict[str, tuple[int, int]] = {region_end: (first, last)}
    for layer in reversed(layers[1:]):
        if layer.name not in need:
            continue
        a, b = need[layer.name]
        for source in layer.inputs:
            height = _height(network.layer(source))
            if layer.op in _SPATIAL:
                lo, hi = layer.input_rows(a, b)
            else:
                lo, hi = a, b
            lo, hi = max(lo, 0), min(hi, height - 1)
            if one_sided:
                lo = 0
            if source in need:
                lo, hi = min(lo, need[source][0]), max(hi, need[source][1])
            need[source] = (lo, hi)
    return need


def _check_ranges(network, region_end, output_rows):
    height = _height(network.layer(region_end))
    expected = 0
    for a, b in output_rows:
        if a != expected or b < a:
            raise ValueError("output_rows must be consecutive (first, last) ranges starting at row 0")
        expected = b + 1
    if expected != height:
        raise ValueError(
            f"output_rows must cover rows 0..{height - 1} of {region_end!r}, not 0..{expected - 1}"
        )


def overlap_cuts(network, region_end: str, output_rows) -> list[tuple[int, int]]:
    """OverL input slices ``(start, stop)`` (half-open) for region-output row ranges ``[(a, b), ...]``."""
    _check_ranges(network, region_end, output_rows)
    input_name = network.layers[0].name
    cuts = []
    for a, b in output_rows:
        lo, hi = required_rows(network, region_end, a, b)[input_name]
        cuts.append((lo, hi + 1))
    return cuts


def _first_spatial(network, region_end):
    for layer in region_layers(network, region_end)[1:]:
        if layer.op in _SPATIAL:
            return layer
    raise ValueError(f"the region ending at {region_end!r} has no conv or pool layer")


def two_phase_sharing_cuts(network, region_end: str, output_rows) -> list[tuple[int, int]]:
    """2PS input slices ``(start, stop)`` for region-output row ranges (see the module docstring)."""
    _check_ranges(network, region_end, output_rows)
    input_name = network.layers[0].name
    first = _first_spatial(network, region_end)
    cuts = []
    previous_end = None
    for a, b in output_rows:
        stop = required_rows(network, region_end, a, b, one_sided=True)[input_name][1] + 1
        if previous_end is None:
            start = 0
        else:
            # first output row of the first spatial layer this block computes anew: the previous block
            # could complete windows ending at its last input row previous_end - 1
            done = _last_complete_output(first, previous_end - 1)
            start = max(first.input_rows(done + 1, done + 1)[0], 0)
        cuts.append((start, stop))
        previous_end = stop
    return cuts


@dataclass(frozen=True)
class RowBlockMemory:
    """Activation-memory estimate of a row-block schedule, elements per image."""

    schedule: str
    per_block: tuple[int, ...]  # live activations of each block (new rows of every tensor + its input slice)
    carried: int  # boundary rows kept for the next blocks (2PS), all blocks
    region_output: int
    rest: int  # tensors after the region, stored normally
    peak: int
    baseline: int

    @property
    def fraction(self) -> float:
        return self.peak / self.baseline


def _base_tensors(layers):
    """Non-view tensors (views such as ReLU/BN run in place and store nothing extra)."""
    return [
        layer
        for layer in layers
        if layer.op in ("input", *_SPATIAL, "add", "concat", "linear", "global_avgpool")
    ]


def activation_memory(
    network, region_end: str, output_rows, *, schedule: str = "2ps", last_layer: str | None = None
) -> RowBlockMemory:
    """Estimated peak stored activations (elements per image, forward, no gradients/workspace) of a row-block
    schedule over ``[input, region_end]`` followed by layer-by-layer execution up to ``last_layer``.

    Peak = full input + carried boundary rows + the concatenated region output + later tensors + the
    largest block's live rows, against a baseline that stores every tensor up to ``last_layer``.
    """
    if schedule not in ("2ps", "overl"):
        raise ValueError(f"schedule must be one of 2ps, overl, not {schedule!r}")
    _check_ranges(network, region_end, output_rows)
    last = last_layer or region_end
    stop = network.index(last) + 1
    region_stop = network.index(region_end) + 1
    tensors = _base_tensors(network.layers[:region_stop])
    later = _base_tensors(network.layers[region_stop:stop])
    row_elems = {t.name: t.out_shape[0] * t.out_shape[2] for t in tensors}
    input_layer = network.layers[0]
    cuts = (two_phase_sharing_cuts if schedule == "2ps" else overlap_cuts)(network, region_end, output_rows)
    per_block, carried = [], 0
    done = {t.name: -1 for t in tensors}
    done_all: dict[str, int] = {}
    for (a, b), (start, end) in zip(output_rows, cuts):
        if schedule == "2ps":
            need = required_rows(network, region_end, a, b, one_sided=True)
        else:
            need = required_rows(network, region_end, a, b)
        live = (end - start) * row_elems[input_layer.name]
        for t in tensors[1:]:
            lo, hi = need[t.name]
            if schedule == "2ps":
                live += (hi - done[t.name]) * row_elems[t.name]
            else:
                live += (hi - lo + 1) * row_elems[t.name]
        if schedule == "2ps":
            if any(v >= 0 for v in done.values()):
                carried += _carried_elements(network, region_end, done_all, need, row_elems)
            done_all = {name: rows[1] for name, rows in need.items()}
            for t in tensors[1:]:
                done[t.name] = need[t.name][1]
        per_block.append(live)
    total = lambda layers: sum(math.prod(t.out_shape) for t in layers)  # noqa: E731
    region_out = math.prod(network.layer(region_end).out_shape)
    rest = total(later)
    baseline = total(tensors) + rest
    peak = math.prod(input_layer.out_shape) + carried + region_out + rest + max(per_block)
    return RowBlockMemory(schedule, tuple(per_block), carried, region_out, rest, peak, baseline)


def _carried_elements(network, region_end, done, need, row_elems):
    """Rows (as elements) of each stored tensor that this block's new rows read but an earlier block made."""
    reused: dict[str, int] = {}
    bases = network.base_tensors(_IN_PLACE)
    for layer in region_layers(network, region_end)[1:]:
        produced_upto = done.get(layer.name, -1)
        if produced_upto + 1 > need[layer.name][1]:
            continue
        first_needed = _first_needed(layer, produced_upto)
        for source in layer.inputs:
            base = bases[source][0]
            if base not in row_elems or base == network.layers[0].name:
                continue  # the input slices themselves overlap; nothing is carried for them
            rows = done.get(source, -1) - first_needed + 1
            if rows > 0:
                reused[base] = max(reused.get(base, 0), rows)
    return sum(rows * row_elems[name] for name, rows in reused.items())


# ----------------------------------------------------------------------------------------------------------
# Row-block executor (forward) on the golden layer kernels


def _pad_rows(x, top, bottom, value):
    if top == 0 and bottom == 0:
        return x
    n, c, _, w = x.shape
    pieces = [np.full((n, c, top, w), value, x.dtype), x, np.full((n, c, bottom, w), value, x.dtype)]
    return np.concatenate(pieces, axis=2)


def row_block_forward(
    network, params, x, region_end: str, cuts, *, schedule: str = "2ps", layer_forward=None
):
    """Run ``[input, region_end]`` block by block on input-row slices and return ``region_end``'s output.

    ``cuts`` are half-open input slices (from :func:`two_phase_sharing_cuts` or :func:`overlap_cuts`). Each
    block computes, for every layer, the output rows whose windows its rows cover, padding only at the image
    borders (a cut is not a border). Under ``"2ps"`` the rows an earlier block already computed are taken
    from the carried store instead of being recomputed, and the store keeps only rows a later block can
    still read. ``layer_forward(layer, inputs, params)`` runs one layer on whole tensors (default: the golden
    float kernels with the layer's padding along H removed, since this function pads rows itself).
    Returns ``(output, stats)`` with ``stats["computed_rows"]`` and ``stats["max_carried_rows"]`` per tensor.
    """
    if schedule not in ("2ps", "overl"):
        raise ValueError(f"schedule must be one of 2ps, overl, not {schedule!r}")
    layers = region_layers(network, region_end)
    forward = layer_forward or _golden_layer_forward
    input_name = layers[0].name
    consumers = {layer.name: [c for c in layers if layer.name in c.inputs] for layer in layers}
    computed = {layer.name: 0 for layer in layers}
    max_carried = {layer.name: 0 for layer in layers}
    produced_upto = {layer.name: -1 for layer in layers}
    held: dict[str, tuple[int, np.ndarray]] = {}  # 2PS: rows of each tensor a later block may still read
    output_pieces = []
    for start, stop in cuts:
        rows: dict[str, tuple[int, np.ndarray]] = {input_name: (start, x[:, :, start:stop])}
        if schedule == "2ps":
            for name, (_, data) in held.items():
                max_carried[name] = max(max_carried[name], data.shape[2])
        for layer in layers[1:]:
            first_out, data = _run_rows(
                network, layer, [rows[source] for source in layer.inputs], params, forward
            )
            if schedule == "2ps":
                keep_from = max(first_out, produced_upto[layer.name] + 1)  # rows made earlier are not redone
                data, first_out = data[:, :, keep_from - first_out :], keep_from
                if layer.name in held and held[layer.name][1].shape[2]:
                    old_first, old = held[layer.name]
                    data, first_out = np.concatenate([old, data], axis=2), old_first
            computed[layer.name] += data.shape[2] - (
                held[layer.name][1].shape[2] if schedule == "2ps" and layer.name in held else 0
            )
            rows[layer.name] = (first_out, data)
            if data.shape[2]:
                produced_upto[layer.name] = first_out + data.shape[2] - 1
        first_out, data = rows[region_end]
        output_pieces.append((first_out, data))
        if schedule == "2ps":
            held = {}
            for layer in layers[1:-1]:
                first, data = rows[layer.name]
                keep = min(
                    (_first_needed(c, produced_upto[c.name]) for c in consumers[layer.name]),
                    default=first + data.shape[2],
                )
                keep = max(keep, first)
                held[layer.name] = (keep, data[:, :, keep - first :])
    # in 2PS every output row is produced once; in OverL blocks own disjoint output rows by construction
    result, expected = [], 0
    for first, data in sorted(output_pieces, key=lambda piece: piece[0]):
        skip = max(0, expected - first)
        if data.shape[2] > skip:
            result.append(data[:, :, skip:])
            expected = first + data.shape[2]
    return np.concatenate(result, axis=2), {"computed_rows": computed, "max_carried_rows": max_carried}


def _first_needed(consumer, produced_upto):
    """First input row the consumer's next new output row reads."""
    if consumer.op in _SPATIAL:
        return max(consumer.input_rows(produced_upto + 1, produced_upto + 1)[0], 0)
    return produced_upto + 1


def _run_rows(network, layer, sources, params, forward):
    """Compute every output row of ``layer`` whose window lies in the given input rows (+ image borders)."""
    if layer.op in _SPATIAL:
        ((first, data),) = sources
        stride, padding = layer.params["stride"][0], layer.params["padding"][0]
        height_in = network.layer(layer.inputs[0]).out_shape[1]
        height_out = layer.out_shape[1]
        last = first + data.shape[2] - 1
        # output row r reads input rows [r*s - p, r*s - p + k - 1]; rows outside the map are padding
        lo = 0 if first == 0 else math.ceil((first + padding) / stride)
        if last >= height_in - 1:
            hi = height_out - 1
        else:
            hi = min(_last_complete_output(layer, last), height_out - 1)
        if hi < lo or data.shape[2] == 0:
            return lo, data[:, :, :0]
        top_virtual, bottom_virtual = layer.input_rows(lo, hi)
        top, bottom = max(0, -top_virtual), max(0, bottom_virtual - (height_in - 1))
        piece = data[:, :, max(top_virtual, 0) - first : min(bottom_virtual, height_in - 1) - first + 1]
        piece = _pad_rows(piece, top, bottom, -np.inf if layer.op == "maxpool" else 0.0)
        return lo, forward(layer, [piece], params)
    # row-wise layers: align the inputs on their common rows
    first = max(f for f, _ in sources)
    last = min(f + d.shape[2] - 1 for f, d in sources)
    if last < first:
        data = sources[0][1][:, :, :0]
        return first, data
    aligned = [d[:, :, first - f : last - f + 1] for f, d in sources]
    return first, forward(layer, aligned, params)


def _golden_layer_forward(layer, inputs, params):
    """One layer on whole row slices with the golden float kernels; rows are already padded by the caller."""
    from wavecore.golden import layers as golden_layers

    p = layer.params
    if layer.op == "conv2d":
        entry = params[layer.name]
        return golden_layers.conv2d_forward(
            inputs[0],
            entry["weight"],
            entry.get("bias"),
            stride=p["stride"],
            padding=(0, p["padding"][1]),
            groups=p["groups"],
        )
    if layer.op == "maxpool":
        return golden_layers.maxpool_forward(
            inputs[0], kernel=p["kernel"], stride=p["stride"], padding=(0, p["padding"][1])
        )
    if layer.op == "avgpool":
        return golden_layers.avgpool_forward(
            inputs[0], kernel=p["kernel"], stride=p["stride"], padding=(0, p["padding"][1])
        )
    if layer.op == "relu":
        return golden_layers.relu_forward(inputs[0], p["max_value"])
    if layer.op == "add":
        return golden_layers.add_forward(*inputs)
    if layer.op == "concat":
        return golden_layers.concat_forward(*inputs)
    raise ValueError(
        f"row blocks cannot run {layer.op} layer {layer.name!r} exactly (per-block statistics "
        "differ from whole-map statistics); use a norm-free region"
    )


# ----------------------------------------------------------------------------------------------------------
# Row-block backward (per-block recomputation, as the authors' per-block checkpoint)


def row_block_backward(network, params, x, region_end: str, output_rows, dy):
    """Weight gradients of the region and the input gradient, computed block by block.

    Each block owns region-output rows ``[a, b]``; it re-runs the forward pass for exactly the rows those
    depend on (their two-sided closure, as LR-CNN's per-block checkpoint recomputes its block) and
    back-propagates the gradient of its own rows only. Weight gradients add up over blocks and input
    gradients scatter-add; both equal the whole-image backward because every output row's contribution
    depends only on its receptive field, which the block computes exactly. ``dy`` is the loss gradient
    w.r.t. ``region_end``'s output.
    Returns ``(grads, dx)`` with ``grads = {layer: {"weight": ..., "bias": ...}}`` for the region's convs.
    """
    from wavecore.golden import layers as golden_layers

    _check_ranges(network, region_end, output_rows)
    layers = region_layers(network, region_end)
    inside = {layer.name for layer in layers}
    for layer in layers[:-1]:
        outside = [c for c in network.consumers(layer.name) if c not in inside]
        if outside:
            raise ValueError(
                f"region_end must be the region's only exit; {layer.name!r} also feeds {outside[0]!r}"
            )
    input_name = layers[0].name
    grads: dict[str, dict] = {}
    dx = np.zeros_like(x)
    for a, b in output_rows:
        need = required_rows(network, region_end, a, b)
        rows: dict[str, np.ndarray] = {input_name: x[:, :, need[input_name][0] : need[input_name][1] + 1]}
        pieces = {}
        for layer in layers[1:]:
            lo, hi = need[layer.name]
            if layer.op in _SPATIAL:
                source = layer.inputs[0]
                height_in = network.layer(source).out_shape[1]
                top_virtual, bottom_virtual = layer.input_rows(lo, hi)
                top, bottom = max(0, -top_virtual), max(0, bottom_virtual - (height_in - 1))
                first = need[source][0]
                piece = rows[source][
                    :, :, max(top_virtual, 0) - first : min(bottom_virtual, height_in - 1) - first + 1
                ]
                piece = _pad_rows(piece, top, bottom, -np.inf if layer.op == "maxpool" else 0.0)
                pieces[layer.name] = (piece, top, bottom)
                rows[layer.name] = _golden_layer_forward(layer, [piece], params)
            else:
                inputs = [rows[s][:, :, lo - need[s][0] : hi - need[s][0] + 1] for s in layer.inputs]
                rows[layer.name] = _golden_layer_forward(layer, inputs, params)
        grad = {region_end: dy[:, :, a : b + 1].copy()}
        for layer in reversed(layers[1:]):
            g = grad.pop(layer.name, None)
            if g is None:
                continue
            lo, _ = need[layer.name]
            p = layer.params
            if layer.op in _SPATIAL:
                piece, top, bottom = pieces[layer.name]
                if layer.op == "conv2d":
                    entry = params[layer.name]
                    d_piece, d_weight, d_bias = golden_layers.conv2d_backward(
                        g,
                        piece,
                        entry["weight"],
                        stride=p["stride"],
                        padding=(0, p["padding"][1]),
                        groups=p["groups"],
                        bias=p["bias"],
                    )
                    target = grads.setdefault(layer.name, {"weight": np.zeros_like(entry["weight"])})
                    target["weight"] += d_weight
                    if d_bias is not None:
                        target["bias"] = target.get("bias", 0) + d_bias
                elif layer.op == "maxpool":
                    d_piece = golden_layers.maxpool_backward(
                        g, piece, kernel=p["kernel"], stride=p["stride"], padding=(0, p["padding"][1])
                    )
                else:
                    d_piece = golden_layers.avgpool_backward(
                        g, piece, kernel=p["kernel"], stride=p["stride"], padding=(0, p["padding"][1])
                    )
                d_piece = d_piece[:, :, top : d_piece.shape[2] - bottom]
                _accumulate(grad, rows, need, layer.inputs[0], max(layer.input_rows(lo, lo)[0], 0), d_piece)
            elif layer.op == "relu":
                source = layer.inputs[0]
                x_rows = rows[source][:, :, lo - need[source][0] : lo - need[source][0] + g.shape[2]]
                _accumulate(
                    grad, rows, need, source, lo, golden_layers.relu_backward(g, x_rows, p["max_value"])
                )
            elif layer.op == "add":
                for source in layer.inputs:
                    _accumulate(grad, rows, need, source, lo, g)
            elif layer.op == "concat":
                offset = 0
                for source in layer.inputs:
                    channels = network.layer(source).out_shape[0]
                    _accumulate(grad, rows, need, source, lo, g[:, offset : offset + channels])
                    offset += channels
            else:
                raise ValueError(f"row blocks cannot back-propagate {layer.op} layer {layer.name!r}")
        d_input = grad.pop(input_name, None)
        if d_input is not None:
            start = need[input_name][0]
            dx[:, :, start : start + d_input.shape[2]] += d_input
    return grads, dx


def _accumulate(grad, rows, need, tensor, first_row, value):
    """Add ``value`` (rows from ``first_row``) into the gradient of ``tensor`` held over its needed rows."""
    if tensor not in grad:
        grad[tensor] = np.zeros_like(rows[tensor])
    offset = first_row - need[tensor][0]
    grad[tensor][:, :, offset : offset + value.shape[2]] += value
