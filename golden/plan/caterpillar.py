"""CATERPILLAR cost kit: MLP training by SGD, mini-batch GD, DFA and continuous propagation (CP).

Li and Pedram, "CATERPILLAR: Coarse Grain Reconfigurable Architecture for Accelerating the Training of Deep
Neural Networks" (ASAP 2017, arXiv 1706.00517), sections 3-4; the area fit and the energy composition are
ours. Per-epoch formulas (``K`` samples, layer ``i`` is ``m_i x n_i`` = inputs x outputs, ``L`` layers,
``b`` the batch):

* MACs: ``3 K sum(m_i n_i)`` (forward, backward, gradient); DFA replaces the backward term by
  ``K sum_{hidden i} m_i n_L`` (the paper's formula, summed over the hidden layers ``i < L``);
* weight accesses: SGD ``2 K sum(mn)``, MBGD ``(2K/b) sum(mn)``, DFA MBGD's plus ``(K/b) sum m_i n_L`` (the
  feedback matrices), CP/MBCP ``(K/b) sum(mn)`` (one access serves forward and backward);
* energy (Table 1): 2.63 pJ per FP16 FLOP (2 per MAC), 3.5 pJ per 2-byte local-SRAM access, 16 pJ per 2-byte
  off-core SPAD access. Our convention: every MAC reads one operand from its PE's local SRAM; the
  weight accesses above are served by local SRAM when the network fits on chip and by the SPAD otherwise;
  activation traffic is neglected (the paper's own statement);
* memory fit (our convention): the weights once plus ``(L - i + 1)`` in-flight activation vectors per
  layer
  (``fit="weights_once"``, which reproduces Table 2's fits/does-not-fit cases) against the PEs' 16 KB local
  SRAMs; ``fit="as_written"`` applies the paper's ``(L-i+1)`` factor to the weights too;
* area: ``0.0798 * N_PE + 1.948 * N_core`` mm^2 (exact fit to 103.2 and 178.9 mm^2);
* collectives: a GEMV reduction costs ``n_r - 1`` cycles (``log2(n_r) - 1`` with neighbour links);
  ring all-gather / reduce-scatter ``(n b - n b / c) / n_r`` cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CONFIG_A",
    "CONFIG_B",
    "ENERGY_PJ",
    "METHODS",
    "Chip",
    "MethodCost",
    "area_mm2",
    "collective_cycles",
    "fits",
    "method_cost",
    "reduction_cycles",
]

METHODS = ("sgd", "mbgd", "dfa", "cp")
#: Table 1 energies: FP16 FPU per op (FLOP), 16 KB local SRAM per 2 B, 512 KB off-core SPAD per 2 B.
ENERGY_PJ = {"fpu_flop": 2.63, "local_sram": 3.5, "spad": 16.0}
_AREA_PER_PE = 0.0798
_AREA_PER_CORE = 1.948


@dataclass(frozen=True)
class Chip:
    """A CATERPILLAR chip: ``2 x columns`` cores of ``n_r x n_r`` PEs, 16 KB per PE, 512 KB SPAD per core."""

    columns: int
    n_r: int
    pe_sram_bytes: int = 16 * 1024
    spad_bytes: int = 512 * 1024

    @property
    def cores(self) -> int:
        return 2 * self.columns

    @property
    def pes(self) -> int:
        return self.cores * self.n_r * self.n_r


CONFIG_A = Chip(columns=16, n_r=4)  # 2x16 cores x 4x4 PEs -> 103.2 mm^2
CONFIG_B = Chip(columns=4, n_r=16)  # 2x4 cores x 16x16 PEs -> 178.9 mm^2


def area_mm2(chip: Chip) -> float:
    return _AREA_PER_PE * chip.pes + _AREA_PER_CORE * chip.cores


def _layers(widths):
    if len(widths) < 2 or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"widths must list at least two positive layer widths, not {widths!r}")
    return list(zip(widths[:-1], widths[1:]))


def fits(widths, chip: Chip, *, fit: str = "weights_once", bytes_per_word: int = 2) -> bool:
    """Whether SGD/CP can keep the network (weights + in-flight activations) in the PEs' local SRAMs."""
    layers = _layers(widths)
    depth = len(layers)
    words = 0
    for i, (m, n) in enumerate(layers, start=1):
        activations = (depth - i + 1) * (m + n + max(m, n))
        if fit == "weights_once":
            words += m * n + activations
        elif fit == "as_written":
            words += (depth - i + 1) * (m + n + max(m, n) + m * n)
        else:
            raise ValueError(f"fit must be one of weights_once, as_written, not {fit!r}")
    return words * bytes_per_word <= chip.pes * chip.pe_sram_bytes


@dataclass(frozen=True)
class MethodCost:
    """Per-epoch cost of one method on one chip."""

    method: str
    batch: int
    macs: int
    weight_accesses: int
    fits: bool
    energy_pj: float

    @property
    def gflops_per_watt(self) -> float:
        """FLOPs per joule / 1e9 (2 FLOPs per MAC) = GFLOPS/W."""
        return 2 * self.macs / self.energy_pj * 1e12 / 1e9


def method_cost(
    widths, method: str, *, samples: int, batch: int = 1, chip: Chip = CONFIG_A, fit: str = "weights_once"
) -> MethodCost:
    """MACs, weight accesses and energy of one epoch of ``samples`` (``widths`` include the input layer)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    layers = _layers(widths)
    weights = sum(m * n for m, n in layers)
    n_out = layers[-1][1]
    feedback = sum(m * n_out for m, _ in layers[:-1])
    if method == "dfa":
        macs = samples * (2 * weights + feedback)
        accesses = (2 * samples * weights + samples * feedback) // batch
    else:
        macs = 3 * samples * weights
        if method == "sgd":
            accesses = 2 * samples * weights
        elif method == "mbgd":
            accesses = 2 * samples * weights // batch
        else:
            accesses = samples * weights // batch
    on_chip = fits(widths, chip, fit=fit)
    weight_energy = ENERGY_PJ["local_sram"] if on_chip else ENERGY_PJ["spad"]
    energy = macs * (2 * ENERGY_PJ["fpu_flop"] + ENERGY_PJ["local_sram"]) + accesses * weight_energy
    return MethodCost(method, batch, macs, accesses, on_chip, energy)


def reduction_cycles(n_r: int, *, neighbour_links: bool = False) -> int:
    """Cycles to reduce an ``n_r``-element GEMV partial sum to the diagonal PE."""
    return max(0, math.ceil(math.log2(n_r)) - 1) if neighbour_links else n_r - 1


def collective_cycles(n: int, batch: int, cores: int, n_r: int) -> float:
    """Ring all-gather (or reduce-scatter) cycles for an ``n x batch`` output on ``cores`` cores."""
    return (n * batch - n * batch / cores) / n_r
