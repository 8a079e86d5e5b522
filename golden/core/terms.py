"""The named terms between the bytes a compiled program moves and ``golden.traffic``'s prediction.

``docs/core.md`` ("Traffic: program vs planner") states each term and why it exists; :func:`planner_terms`
computes them from the network, the groups and the element sizes alone (not from the program), so
``program bytes == planner bytes + sum of the terms`` per class is a real check
(``tests/golden/core/test_core_traffic.py``). Terms, as ``{name: {class: bytes}}`` (negative: the core moves less):

* ``norm_parameters_read_once`` (weights): the backward pass takes gamma from the NORM block, so BN/GN
  gamma and beta are read in the forward pass only (the planner reads every parameter in both passes);
* ``logits_not_stashed`` (stash): the loss gradient is computed in the forward pass, so the loss input is
  neither stashed nor read back;
* ``anchor_read_once_per_site`` (norm_passes): a split (or BN) fused norm+ReLU site re-reads its anchor once
  for both views' backward (the planner: once per view, ``SITE_PASSES["norm_relu"]["fused"] = 2``);
* ``partial_gradients_per_group`` (activation_grads): a consumer group sums its layers' contributions to a
  tensor of another group before storing one partial, so the producer reads one partial per consumer group
  (the planner: one per consumer layer);
* ``bn_anchor_written`` (norm_passes): a BN site's anchor must be in DRAM for its backward re-read; the
  planner charges the re-read but not the write when nothing else keeps the anchor in DRAM;
* ``bn_anchor_shared_with_stash`` (norm_passes): that re-read is the same load as another backward's stash
  read of the anchor in the site's group;
* ``statistics_from_the_on_chip_copy`` (norm_passes, unfused): a norm layer run as a group of its own
  computes its statistics and its backward reductions from the one load of its input (the planner's
  two-pass site reads it twice more: 14F and 9F against the core's 10F and 5F);
  a BN opening a serialised group is streamed over the sub-batches and reads once more in each pass (1F);
* ``site_group_sums_partials`` (activation_grads -> norm_passes, unfused): such a site group sums the partial
  gradients of its consumer groups and hands the producer one;
* ``bn_site_on_chip`` (norm_passes, stash; unfused): the planner charges every BN site's two-pass passes; a
  BN site inside a group costs the core nothing extra but the stash of its anchor (written and read back
  when nothing else does);
* ``optimizer`` and ``io``: the SGD update (the three constants once, then per parameter tensor one read and
  one write of weights and velocity) and the labels, per-sample losses and mean loss, which the planner does
  not model.

Covered (``tests/golden/core/test_core_traffic.py``): BN, GN and no norm, fused and unfused, under the groupings tested
there (one group, layer by layer, blocks, serialised blocks). Not covered yet: a fused BN opening a
serialised group, views over a concat in some groupings (``docs/core.md``).
"""

from __future__ import annotations

import math

from wavecore.golden.plan.traffic import NetworkModel, TrafficOptions
from wavecore.golden.schedule import Group, Schedule

__all__ = ["planner_terms"]


def planner_terms(network, groups, batch: int, *, operand_bytes: int, accumulator_bytes: int,
                  norm_fusion: bool) -> dict:
    """The named terms for ``groups`` (:class:`golden.core.compiler.ExecutionGroup` list)."""
    model = NetworkModel(network, TrafficOptions(dtype_bytes=operand_bytes, grad_bytes=accumulator_bytes,
                                                 norm_variant="fused" if norm_fusion else "two_pass"))
    position = model.position
    group_of = {}
    for index, group in enumerate(groups):
        for name in group.layers:
            group_of[position[name]] = index
    terms = {}
    norm_reads = 0
    for group in groups:
        sub_batches = math.ceil(batch / group.sub_batch)
        backward_reads = 1 if group.weights_resident else sub_batches
        for name in group.layers:
            layer = network.layer(name)
            if layer.op in ("batchnorm", "groupnorm"):
                norm_reads += layer.param_count * operand_bytes * backward_reads
    terms["norm_parameters_read_once"] = {"weights": -norm_reads}
    logits = position[network.output.inputs[0]]
    stashed = 0
    partials = 0
    for group in groups:
        positions = sorted(position[name] for name in group.layers)
        profile = model.profile(positions[0], positions[-1] + 1)
        stashed += batch * (profile.stash_write.get(logits, 0) + profile.stash_read.get(logits, 0))
        for produced, readers in profile.boundary_out.items():
            outside = {group_of[r] for r in model.readers[produced] if r >= profile.stop}
            partials += batch * model.bytes[produced] * (readers - len(outside))
    terms["logits_not_stashed"] = {"stash": -stashed}
    terms["partial_gradients_per_group"] = {"activation_grads": -partials}
    once = 0
    if norm_fusion:
        for site in model.sites:
            home = group_of[site.layers[0]]
            split = any(group_of[p] != home for p in site.layers + site.readers)
            if (split or site.batch_norm) and site.kind == "norm_relu":
                once += batch * site.anchor_bytes
    terms["anchor_read_once_per_site"] = {"norm_passes": -once}
    # a BN site's anchor must be in DRAM for its backward; the planner re-reads it without writing it when
    # nothing else (a later group, another layer's backward) keeps it there
    written = 0
    kept = set()  # base tensors the planner writes to DRAM anyway
    for group in groups:
        positions = sorted(position[name] for name in group.layers)
        profile = model.profile(positions[0], positions[-1] + 1)
        kept.update(profile.boundary_out)
        kept.update(profile.stash_write)
    if norm_fusion:
        for site in model.sites:
            if site.batch_norm:
                anchor = model.base[position[network.layer(model.names[site.layers[0]]).inputs[0]]]
                written += sum(batch * model.bytes[b] for b in anchor if b not in kept and b != 0)
    terms["bn_anchor_written"] = {"norm_passes": written}
    # a BN site's backward re-read of its anchor is the same load as another backward's stash read of it in
    # the site's group (one fetch per sub-batch serves both)
    shared = 0
    if norm_fusion:
        for site in model.sites:
            if not site.batch_norm:
                continue
            group = groups[group_of[site.layers[0]]]
            positions = sorted(position[name] for name in group.layers)
            profile = model.profile(positions[0], positions[-1] + 1)
            anchor = model.base[position[network.layer(model.names[site.layers[0]]).inputs[0]]]
            shared += sum(batch * model.bytes[b] for b in anchor if b in profile.stash_read)
    terms["bn_anchor_shared_with_stash"] = {"norm_passes": -shared}
    # unfused: a norm/ReLU layer run as a group of its own is the site's passes; the core folds the planner's
    # second statistics read and second reduction read into the one load of the on-chip copy, and the site's
    # group sums the partial gradients of its consumer groups before the producer reads one
    folded, summed, bn_on_chip, bn_stashed = 0, 0, 0, 0
    whole = Schedule(tuple(Group(g.layers, g.sub_batch) for g in groups)).whole_batch_layers(network, batch)
    if not norm_fusion:
        fold = {"two_pass": 4, "one_pass": 3}[model.options.norm_variant]
        view_ops = ("batchnorm", "groupnorm", "relu")
        for site in model.sites:
            homes = {group_of[p] for p in site.layers}
            pure = all(all(network.layer(n).op in view_ops for n in groups[g].layers) for g in homes)
            split = any(group_of[p] not in homes for p in site.readers) or len(homes) > 1
            if not (pure and split):
                if site.batch_norm:  # the planner charges every BN site; on chip the core moves nothing extra
                    bn_on_chip += site.passes(model.options.norm_variant) * batch * site.anchor_bytes
                    home = groups[group_of[site.layers[0]]]
                    positions = sorted(position[name] for name in home.layers)
                    profile = model.profile(positions[0], positions[-1] + 1)
                    anchor = model.base[position[network.layer(model.names[site.layers[0]]).inputs[0]]]
                    for b in anchor:
                        if b == 0:
                            continue
                        bn_stashed += batch * model.bytes[b] * ((b not in kept) + (b not in profile.stash_read))
                continue
            if site.kind != "relu":
                # a BN opening a serialised group is streamed: it reads its input once more in the forward
                # pass (statistics, then normalise) and dy and x once more in the backward (reductions, then
                # dx), 3F of the planner's 4F (two-pass) extra reads
                streamed = model.names[site.layers[0]] in whole
                folded += (fold - 3 if streamed else fold) * batch * site.anchor_bytes
            consumers = {group_of[p] for p in site.readers}
            summed += (len(consumers) - 1) * batch * site.anchor_bytes
    terms["statistics_from_the_on_chip_copy"] = {"norm_passes": -folded}
    terms["site_group_sums_partials"] = {"activation_grads": -summed, "norm_passes": summed}
    terms["bn_site_on_chip"] = {"norm_passes": -bn_on_chip, "stash": bn_stashed}
    parameters = network.param_count()
    terms["optimizer"] = {"optimizer": 3 * accumulator_bytes + 4 * parameters * operand_bytes}
    terms["io"] = {"io": batch * operand_bytes + (batch + 1) * accumulator_bytes}
    return terms
