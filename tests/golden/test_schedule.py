"""wavecore.golden.schedule: validation of schedules (one-line errors) and the non-equivalent sub-batch BN option."""

from __future__ import annotations

import pytest
from golden_helpers import relative, run_step

from wavecore.golden.network import load_network
from wavecore.golden.schedule import Group, Schedule, ScheduleError


def test_batchnorm_inside_a_serialised_group_is_refused_unless_sub_batch_bn():
    net = load_network("tiny_resnet", norm="bn")
    schedule = Schedule.per_block(net, 2)
    with pytest.raises(ScheduleError) as error:
        schedule.validate(net, 6)
    assert str(error.value) == (
        "schedule: batchnorm 'res1a_norm' is inside group 'res1a' with sub_batch 2 < batch 6; put a group "
        "boundary at it, use GN, or set sub_batch_bn=True (not equivalent)"
    )
    ghost = Schedule.per_block(net, 2, sub_batch_bn=True)
    baseline, result = run_step(net, None), run_step(net, ghost)
    assert relative(result.activations["res1a_norm"], baseline.activations["res1a_norm"]) > 1e-3


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda g: g[:-1], "schedule: layer 'loss' is in no group (groups must cover the network)"),
        (
            lambda g: [g[1], g[0], *g[2:]],
            "schedule: layer 'stem' is out of topological order (expected 'input')",
        ),
        (lambda g: [*g, g[-1]], "schedule: layer 'loss' appears in more than one group"),
        (
            lambda g: [
                Group(g[0].layers + g[1].layers + g[2].layers + g[3].layers + g[4].layers[:2], 2),
                Group(g[4].layers[2:], 2),
                *g[5:],
            ],
            "schedule: group starting at 'res1a_relu' splits block 'res1a..res1_add' "
            "(groups must hold whole blocks)",
        ),
        (
            lambda g: [Group(g[0].layers, 7), *g[1:]],
            "schedule: group 'input' sub_batch 7 exceeds the batch 6",
        ),
    ],
)
def test_invalid_schedules_give_one_line_errors(mutate, message):
    net = load_network("tiny_resnet", norm="gn")
    groups = list(Schedule.per_block(net, 2).groups)
    with pytest.raises(ScheduleError) as error:
        Schedule(tuple(mutate(groups))).validate(net, 6)
    assert str(error.value).startswith(message)


def test_schedule_options_are_validated():
    with pytest.raises(ScheduleError, match="stash must be one of all, minimal, not 'some'"):
        Schedule((Group(("a",), 1),), stash="some")
    with pytest.raises(ScheduleError, match="sub_batch must be an integer >= 1, not 0"):
        Group(("a",), 0)


def test_serialised_schedule_keeps_whole_batch_where_a_block_holds_an_inner_batchnorm():
    net = load_network("tiny_resnet", norm="bn")
    schedule = Schedule.serialised(net, 8, 2).validate(net, 8)
    by_first = {group.layers[0]: group.sub_batch for group in schedule.groups}
    assert by_first["stem_norm"] == 2  # the BN opens its group: boundary at the BN, exact
    assert by_first["res1a"] == 8  # the residual block holds BNs inside: whole batch
    assert Group(("a",), 4).sub_batches(10) == [(0, 4), (4, 8), (8, 10)]
