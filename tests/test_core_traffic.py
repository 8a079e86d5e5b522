"""The bytes per traffic class a compiled program moves against golden.traffic's prediction for the same
groups: equal, or different by the named terms of docs/core.md ("Traffic: program vs planner")."""


import pytest
from core_cases import BATCH, schedule_for

from golden.core.compiler import ExecutionGroup, compile_step, groups_from_schedule
from golden.core.semantics import CoreParameters
from golden.network import load_network
from golden.numerics import INTEGER_PRESETS
from golden.traffic import TrafficOptions, evaluate

CASES = [
    ("tiny_resnet", "gn", "int8", "baseline"),
    ("tiny_resnet", "bn", "int16", "mbs-bnff"),
    ("tiny_concat", "gn", "int8", "mbs"),
    ("tiny_mobilenet", "none", "int16", "bnff"),
]


def _compiled(name, norm, preset, schedule):
    network = load_network(name, norm=norm)
    numerics = INTEGER_PRESETS[preset]
    parameters = CoreParameters(in_width=numerics.mac.in_width, acc_width=numerics.mac.acc_width)
    plan = schedule_for(network, schedule)
    groups = groups_from_schedule(plan, BATCH, split_whole=True)
    step = compile_step(network, BATCH, groups, numerics=numerics, parameters=parameters,
                        norm_fusion=plan.norm_fusion)
    options = TrafficOptions(dtype_bytes=parameters.operand_bytes, grad_bytes=parameters.accumulator_bytes,
                             norm_variant="fused" if plan.norm_fusion else "two_pass",
                             weight_grad_accumulation="on_chip")
    planner = evaluate(network, [(g.layers, g.sub_batch) for g in groups], BATCH, options=options)
    return network, parameters, groups, step.expected["bytes"], planner.per_class


@pytest.mark.parametrize("name, norm, preset, schedule", CASES)
def test_weight_classes_equal_the_planner_up_to_named_terms(name, norm, preset, schedule):
    network, parameters, groups, core, planner = _compiled(name, norm, preset, schedule)
    operand, accumulator = parameters.operand_bytes, parameters.accumulator_bytes
    assert core["weight_grads"] == planner["weight_grads"]
    # norm parameters read once: the backward takes gamma from the NORM block
    norm_params = sum(layer.param_count for layer in network.layers if layer.op in ("batchnorm", "groupnorm"))
    assert core["weights"] == planner["weights"] - norm_params * operand
    # optimizer: the three SGD constants, then weights and velocity read and written per parameter tensor
    assert core["optimizer"] == 3 * accumulator + 4 * network.param_count() * operand
    # io: labels in, per-sample losses and the mean loss out
    assert core["io"] == BATCH * operand + (BATCH + 1) * accumulator
    assert planner.get("optimizer", 0) == planner.get("io", 0) == 0


@pytest.mark.parametrize("name, norm, preset", [("tiny_resnet", "gn", "int8"), ("tiny_resnet", "none", "int16"),
                                                ("tiny_mobilenet", "gn", "int16"), ("tiny_mobilenet", "none", "int8")])
@pytest.mark.parametrize("sub_batch", [1, 2, 4])
def test_one_serialised_group_with_fusion_moves_exactly_the_planners_activation_bytes(name, norm, preset, sub_batch):
    """The MBS case of an FPGA-size buffer: the whole net one group, sub-batches, BNFF. Every activation-family
    class equals the planner's, except the named term *logits not stashed*: the loss gradient is computed in
    the forward pass, so the logits are neither stashed nor read back (the planner stashes the loss input)."""
    network = load_network(name, norm=norm)
    numerics = INTEGER_PRESETS[preset]
    parameters = CoreParameters(in_width=numerics.mac.in_width, acc_width=numerics.mac.acc_width)
    groups = [ExecutionGroup(tuple(layer.name for layer in network.layers), sub_batch)]
    step = compile_step(network, BATCH, groups, numerics=numerics, parameters=parameters, norm_fusion=True)
    options = TrafficOptions(dtype_bytes=parameters.operand_bytes, grad_bytes=parameters.accumulator_bytes,
                             norm_variant="fused", weight_grad_accumulation="on_chip")
    planner = evaluate(network, [(g.layers, g.sub_batch) for g in groups], BATCH, options=options).per_class
    core = step.expected["bytes"]
    logits = network.layer(network.output.inputs[0])
    logits_term = 2 * BATCH * logits.out_elements * parameters.operand_bytes
    assert core["activations"] == planner["activations"]
    assert core["stash"] == planner["stash"] - logits_term
    assert core["activation_grads"] == planner["activation_grads"] == 0
    assert core["norm_passes"] == planner["norm_passes"] == 0
    assert core["weight_grads"] == planner["weight_grads"]
