"""The bytes per traffic class a compiled program moves against golden.traffic's prediction for the same
groups: equal up to the named terms of golden.core.terms (docs/core.md, "Traffic: program vs planner"),
which are computed from the network and the groups, not from the program."""

import pytest
from core_cases import BATCH, schedule_for

from wavecore.golden.config import load_config
from wavecore.golden.core.build import compile_workload
from wavecore.golden.core.compiler import ExecutionGroup, compile_step, groups_from_schedule
from wavecore.golden.core.isa import TRAFFIC_CLASSES
from wavecore.golden.core.semantics import CoreParameters
from wavecore.golden.core.terms import planner_terms
from wavecore.golden.network import load_network
from wavecore.golden.numerics import INTEGER_PRESETS
from wavecore.golden.plan.traffic import TrafficOptions, evaluate


def _groups(network, kind):
    if kind == "one":  # BN needs the whole batch when its input is in the group
        sub_batch = BATCH if any(layer.op == "batchnorm" for layer in network.layers) else 2
        return [ExecutionGroup(tuple(layer.name for layer in network.layers), sub_batch)]
    if kind == "layer_by_layer":
        return groups_from_schedule(schedule_for(network, "baseline"), BATCH, split_whole=True)
    if kind == "blocks":
        return groups_from_schedule(schedule_for(network, "baseline"), BATCH)
    return groups_from_schedule(schedule_for(network, "mbs"), BATCH)


def _compare(network, groups, preset, fused):
    numerics = INTEGER_PRESETS[preset]
    parameters = CoreParameters(in_width=numerics.mac.in_width, acc_width=numerics.mac.acc_width)
    step = compile_step(network, BATCH, groups, numerics=numerics, parameters=parameters, norm_fusion=fused)
    options = TrafficOptions(dtype_bytes=parameters.operand_bytes, grad_bytes=parameters.accumulator_bytes,
                             norm_variant="fused" if fused else "two_pass", weight_grad_accumulation="on_chip")
    planner = evaluate(network, [(g.layers, g.sub_batch) for g in groups], BATCH, options=options).per_class
    terms = planner_terms(network, groups, BATCH, operand_bytes=parameters.operand_bytes,
                          accumulator_bytes=parameters.accumulator_bytes, norm_fusion=fused)
    predicted = {cls: planner.get(cls, 0) + sum(term.get(cls, 0) for term in terms.values())
                 for cls in TRAFFIC_CLASSES}
    return step.expected["bytes"], predicted, terms


def _reconciled(name, norm, kind, fused):
    """The cases golden.core.terms covers (docs/core.md lists the others)."""
    if name == "tiny_concat" and fused and kind == "layer_by_layer" and norm != "bn":
        return False  # a fused view over a concat in a group of its own
    if name == "tiny_concat" and not fused and kind in ("blocks", "mbs"):
        return False  # an unfused view over a concat in its consumers' group
    if name == "tiny_concat" and norm == "bn" and kind == "layer_by_layer" and fused:
        return False
    return not (norm == "bn" and fused and kind == "mbs")  # a fused BN opening a serialised group


CASES = [(name, norm, kind, fused) for name in ("tiny_resnet", "tiny_mobilenet", "tiny_concat")
         for norm in ("gn", "none", "bn") for kind in ("one", "layer_by_layer", "blocks", "mbs")
         for fused in (True, False) if _reconciled(name, norm, kind, fused)]


@pytest.mark.parametrize("name, norm, kind, fused", CASES)
def test_programs_move_the_planners_bytes_plus_the_named_terms(name, norm, kind, fused):
    network = load_network(name, norm=norm)
    core, predicted, terms = _compare(network, _groups(network, kind), "int8", fused)
    assert core == predicted
    if kind == "one" and norm != "bn":  # nothing split, one consumer group: only the always-present terms
        assert terms["anchor_read_once_per_site"]["norm_passes"] == 0
        assert terms["partial_gradients_per_group"]["activation_grads"] == 0
        assert terms["statistics_from_the_on_chip_copy"]["norm_passes"] == 0


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_mobilenet", "tiny_concat"])
def test_batchnorm_in_one_group_moves_the_planners_bytes_plus_the_named_terms(name):
    network = load_network(name, norm="bn")
    groups = [ExecutionGroup(tuple(layer.name for layer in network.layers), BATCH)]
    core, predicted, terms = _compare(network, groups, "int16", True)
    assert core == predicted
    if name == "tiny_resnet":  # int16, batch 8
        # res1b, res2b, res2_down: anchors of BN sites nothing else keeps in DRAM
        assert terms["bn_anchor_written"]["norm_passes"] == 8 * 2 * (8 * 16 * 16 + 16 * 8 * 8 + 16 * 8 * 8)
        # stem, res1a, res2a: read back by the next conv's backward as well
        assert terms["bn_anchor_shared_with_stash"]["norm_passes"] == -8 * 2 * (8 * 16 * 16 * 2 + 16 * 8 * 8)


def test_the_unfused_terms_are_not_all_zero():
    network = load_network("tiny_resnet", norm="gn")
    _, _, terms = _compare(network, _groups(network, "layer_by_layer"), "int8", False)
    # six GN sites run as groups of their own, each folding 4F (F = 8 samples x the conv output, int8)
    assert terms["statistics_from_the_on_chip_copy"]["norm_passes"] == -4 * 8 * (3 * 8 * 16 * 16 + 3 * 16 * 8 * 8)
    # stem_relu (read by res1a, res1_add) and res1_relu (read by res2a, res2_down): two consumer groups each
    assert terms["site_group_sums_partials"]["norm_passes"] == 8 * 8 * 16 * 16 * 2


def test_the_terms_are_not_all_zero():
    network = load_network("tiny_resnet", norm="gn")
    _, _, terms = _compare(network, _groups(network, "blocks"), "int16", True)
    # blocks of tiny_resnet: stem | stem_norm | stem_relu | res1 ... ; int16: 2 bytes, batch 8
    assert terms["anchor_read_once_per_site"]["norm_passes"] == -8 * 8 * 16 * 16 * 2  # stem_norm+relu split
    # stem (read by res1a and res1_add) and res1_add (read by res2a and res2_down): two layers, one group each
    assert terms["partial_gradients_per_group"]["activation_grads"] == -2 * 8 * 8 * 16 * 16 * 2
    assert terms["logits_not_stashed"]["stash"] == -8 * 10 * 2
    assert terms["norm_parameters_read_once"]["weights"] == -2 * (8 + 8 + 8 + 16 + 16 + 16) * 2


@pytest.mark.parametrize("name, norm, preset, schedule", [
    ("tiny_resnet", "bn", "int16", "mbs"),
    ("tiny_concat", "gn", "int8", "mbs-bnff"),
    ("tiny_mobilenet", "bn", "int8", "baseline"),
])
def test_weight_classes_match_everywhere(name, norm, preset, schedule):
    """weights, weight_grads, optimizer and io agree with the terms for every net, norm and schedule (the
    activation family is not reconciled for BN, concat and unfused schedules: docs/core.md)."""
    network = load_network(name, norm=norm)
    plan = schedule_for(network, schedule)
    core, predicted, _ = _compare(network, groups_from_schedule(plan, BATCH), preset, plan.norm_fusion)
    for cls in ("weights", "weight_grads", "optimizer", "io"):
        assert core[cls] == predicted[cls], cls


@pytest.mark.parametrize("name, norm, cut", [
    ("tiny_resnet", "bn", "res2_relu"),  # the ReLU after res2_add, read by pool
    ("tiny_resnet", "none", "res2_relu"),
    ("tiny_resnet", "gn", "stem_norm"),  # a GN+ReLU site read by res1a and res1_add, all in the second group
    ("tiny_mobilenet", "gn", "stem_norm"),
    ("tiny_concat", "none", "branch3_relu"),
])
def test_a_site_in_its_readers_group_shares_their_load_of_its_anchor(name, norm, cut):
    """A fused GN or ReLU site in the group of all its readers, its input produced by an earlier group, is not
    split for the planner: it runs with its readers, whose backward loads the anchor anyway (stash, once). Run in
    the producer's group instead, its backward would load the anchor once more."""
    network = load_network(name, norm=norm)
    names = [layer.name for layer in network.layers]
    position = names.index(cut)
    groups = [ExecutionGroup(tuple(names[:position]), 8), ExecutionGroup(tuple(names[position:]), 8)]
    core, predicted, _ = _compare(network, groups, "int8", True)
    assert core == predicted
    numerics = INTEGER_PRESETS["int8"]
    parameters = CoreParameters(in_width=numerics.mac.in_width, acc_width=numerics.mac.acc_width)
    step = compile_step(network, BATCH, groups, numerics=numerics, parameters=parameters, norm_fusion=True)
    anchor = f"{network.layer(cut).inputs[0]}["
    loads = [note for instruction, note in zip(step.program, step.notes)
             if instruction.opcode == "LOAD" and instruction.funct.startswith("stash.") and note.startswith(anchor)]
    assert len(loads) == 1, loads  # one sub-batch of 8: one load serves the readers' and the site's backward


# the workloads `wavecore compile` builds and tests/verif/test_training_step.py runs on the RTL: the planner's own
# plan for the default configuration
WORKLOADS = [
    ("tiny_resnet", "mbs-bnff", "bn"),
    ("tiny_resnet", "bnff", "gn"),
    ("tiny_resnet", "mbs", "gn"),
    ("tiny_resnet", "baseline", "bn"),
    ("tiny_concat", "mbs", None),
    ("tiny_mobilenet", "mbs", None),
]


@pytest.mark.parametrize("name, schedule, norm", WORKLOADS)
def test_compiled_workloads_move_the_planners_bytes_plus_the_named_terms(name, schedule, norm):
    """expected.json's ``bytes`` equal its ``planner_bytes`` plus its ``planner_terms``, every class (what
    ``wavecore compile`` prints and the RTL step test asserts, here without a simulator)."""
    expected = compile_workload(load_config(None), network=name, schedule=schedule, norm=norm).expected
    terms = expected["planner_terms"].values()
    predicted = {cls: expected["planner_bytes"].get(cls, 0) + sum(term.get(cls, 0) for term in terms)
                 for cls in TRAFFIC_CLASSES}
    assert {cls: expected["bytes"].get(cls, 0) for cls in TRAFFIC_CLASSES} == predicted
