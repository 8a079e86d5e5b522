"""BN/GN fission and fusion (BNFF) as a rewrite of any schedule's cost: per-site pass counts and savings.

After Jung et al., "Restructuring Batch Normalization to Accelerate CNN Training" (arXiv 1807.01702); the paper's
body was not available, so the pass counts are derived here (and tested). Every BN/GN layer (with the ReLU that
follows it) and every ReLU on its own is a *site*; its extra main-memory passes, in units of F (one feature map of
the site's input, whole mini-batch), are :data:`wavecore.golden.plan.traffic.SITE_PASSES`: BN-ReLU 14F with two-pass
statistics, 13F with one-pass statistics, 2F fused (statistics on the producer's write, affine+ReLU on the
consumer's read, backward reductions on the gradient write, ``dx = k1*dy + k2*x + k3`` on the read). Applying fusion
to a schedule only changes ``TrafficOptions.norm_variant``; the groups stay.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from wavecore.golden.plan.traffic import NORM_VARIANTS, NetworkModel, TrafficOptions

__all__ = ["SitePasses", "fusion_saving", "site_passes"]


@dataclass(frozen=True)
class SitePasses:
    """One site: its layers, kind, F in bytes for the mini-batch, and extra passes per variant."""

    layers: tuple[str, ...]
    kind: str
    feature_map_bytes: int
    passes: dict


def site_passes(network, batch: int, *, options: TrafficOptions | None = None) -> list[SitePasses]:
    """The pass counts of every norm/ReLU site of ``network`` when it round-trips through DRAM."""
    model = NetworkModel(network, options)
    rows = []
    for site in model.sites:
        rows.append(
            SitePasses(
                tuple(model.names[p] for p in site.layers),
                site.kind,
                batch * site.anchor_bytes,
                {v: site.passes(v) for v in NORM_VARIANTS},
            )
        )
    return rows


def fusion_saving(plan_function, network, batch: int, *, options: TrafficOptions | None = None, **kwargs):
    """Traffic of a planner's schedule without and with fusion: ``(unfused_plan, fused_plan)``.

    ``plan_function(network, batch, ..., options=...)`` is any planner of :mod:`wavecore.golden.plan`; the unfused
    variant is ``options.norm_variant`` (two-pass by default) unless that is already ``fused``.
    """
    base = options or TrafficOptions()
    unfused = base if base.norm_variant != "fused" else replace(base, norm_variant="two_pass")
    fused = replace(base, norm_variant="fused")
    return (
        plan_function(network, batch, options=unfused, **kwargs),
        plan_function(network, batch, options=fused, **kwargs),
    )
