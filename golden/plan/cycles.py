"""Analytical GEMM cycle model of a rows x cols systolic array, for the three training GEMMs of each layer.

Convolutions are lowered to GEMMs by im2col, with ``P = batch*Ho*Wo``
output pixels and ``K = (Cin/groups)*kh*kw``:

* forward:          ``Y[P, Cout] = Xcol[P, K] @ W[K, Cout]``          -> (M, K, N) = (P, K, Cout)
* backward-data:    ``dXcol[P, K] = dY[P, Cout] @ W^T[Cout, K]``      -> (P, Cout, K), then col2im
* backward-weight:  ``dW[K, Cout] = Xcol^T[K, P] @ dY[P, Cout]``      -> (K, P, Cout)

A grouped convolution is ``groups`` independent GEMMs of ``Cin/groups`` and ``Cout/groups``; a linear layer is
the conv with ``P = batch`` and ``K = in_features``.

Cycle conventions (read from SCALE-Sim 3.0.0's ``topology_utils.load_arrays_gemm`` and
``calc_spatio_temporal_params`` and checked with probe runs; a GEMM is ``C[M, N] = A[M, K] @ B[K, N]``):

``convention="scalesim"`` (default) reproduces SCALE-Sim 3.0.0's compute cycles exactly:

* ``os``: array rows <- M, cols <- N, time <- K; ``folds = ceil(M/rows) * ceil(N/cols)``, each fold
  ``K + rows + cols - 2`` cycles;
* ``ws``: array rows <- K, cols <- N, time <- M; ``folds = ceil(K/rows) * ceil(N/cols)``, each fold
  ``M + 2*rows + cols - 2`` cycles (the weight load of ``rows`` cycles is not overlapped);
* total = ``folds * per_fold - 1`` (SCALE-Sim counts from cycle 0).

``convention="overlapped"`` models a generator that double-buffers weights and overlaps each fold's drain with
the next fold's fill: only the first fill and the last drain are exposed, ``folds * T + rows + cols - 2`` with
``T = K`` (os) or ``T = max(M, rows)`` (ws; a weight load cannot be shorter than the stream it hides behind).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CONVENTIONS",
    "DATAFLOWS",
    "GEMM_PASSES",
    "LayerCycles",
    "gemm_cycles",
    "layer_gemms",
    "network_cycles",
]

DATAFLOWS = ("os", "ws")
CONVENTIONS = ("scalesim", "overlapped")
GEMM_PASSES = ("forward", "backward_data", "backward_weight")


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def gemm_cycles(
    m: int, k: int, n: int, *, rows: int, cols: int, dataflow: str = "os", convention: str = "scalesim"
) -> int:
    """Cycles of one GEMM ``C[m, n] = A[m, k] @ B[k, n]`` on a ``rows`` x ``cols`` array (see module doc)."""
    for name, value in (("m", m), ("k", k), ("n", n), ("rows", rows), ("cols", cols)):
        _positive(name, value)
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, not {convention!r}")
    if dataflow == "os":
        folds = math.ceil(m / rows) * math.ceil(n / cols)
        if convention == "scalesim":
            return folds * (k + rows + cols - 2) - 1
        return folds * k + rows + cols - 2
    folds = math.ceil(k / rows) * math.ceil(n / cols)
    if convention == "scalesim":
        return folds * (m + 2 * rows + cols - 2) - 1
    return folds * max(m, rows) + rows + cols - 2


def layer_gemms(layer, batch: int) -> dict[str, list[tuple[int, int, int]]]:
    """The (M, K, N) GEMMs of each pass of a ``conv2d`` or ``linear`` layer of the network DAG.

    Returns ``{}`` for layers without weights (their cost is element-wise, not a GEMM). Each pass maps to a
    list with one GEMM per convolution group.
    """
    _positive("batch", batch)
    if layer.op == "conv2d":
        cout, cin_per_group, kh, kw = layer.weight_shape
        groups = layer.params["groups"]
        pixels = batch * layer.out_shape[1] * layer.out_shape[2]
        reduction = cin_per_group * kh * kw
        per_group_out = cout // groups
    elif layer.op == "linear":
        per_group_out, reduction = layer.weight_shape
        pixels = batch
        groups = 1
    else:
        return {}
    return {
        "forward": [(pixels, reduction, per_group_out)] * groups,
        "backward_data": [(pixels, per_group_out, reduction)] * groups,
        "backward_weight": [(reduction, pixels, per_group_out)] * groups,
    }


@dataclass(frozen=True)
class LayerCycles:
    """Cycles of one layer's GEMMs; ``gemms`` maps each pass to its (M, K, N) list."""

    layer: str
    forward: int
    backward_data: int
    backward_weight: int
    macs: int
    gemms: dict

    @property
    def total(self) -> int:
        return self.forward + self.backward_data + self.backward_weight


def network_cycles(
    network,
    batch: int,
    *,
    rows: int,
    cols: int,
    dataflow: str = "os",
    convention: str = "scalesim",
    first_backward_data: bool = False,
) -> list[LayerCycles]:
    """Per-layer GEMM cycles of one training step over the whole mini-batch ``batch``.

    The first weighted layer's backward-data GEMM computes the gradient of the network input, which training
    does not need; it is skipped unless ``first_backward_data`` is true. A schedule that splits the
    mini-batch into sub-batches runs the same GEMMs with ``P`` split; :func:`gemm_cycles` is then applied per
    sub-batch (see :mod:`wavecore.golden.plan.traffic`'s report), which only adds fill/drain per fold.
    """
    result = []
    first = True
    for layer in network.layers:
        gemms = layer_gemms(layer, batch)
        if not gemms:
            continue
        if first and not first_backward_data:
            gemms = dict(gemms, backward_data=[])
        first = False
        counts = {
            name: sum(
                gemm_cycles(*g, rows=rows, cols=cols, dataflow=dataflow, convention=convention)
                for g in gemms[name]
            )
            for name in GEMM_PASSES
        }
        macs = sum(m * k * n for name in GEMM_PASSES for (m, k, n) in gemms[name])
        result.append(
            LayerCycles(
                layer.name, counts["forward"], counts["backward_data"], counts["backward_weight"], macs, gemms
            )
        )
    return result
