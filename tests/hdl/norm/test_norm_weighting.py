# amaranth: UnusedElaboratable=no
"""The gamma-weighting drain stage (hdl/norm/weighting.py) against wavecore.golden.numerics.NormArithmetic.

W1 = sum gamma*r1 and W2 = sum gamma*r2 over each statistic set's channels, bit-exact with
``NormArithmetic.weighted_reductions`` under random stalls on every stream, including sets at the bound the
accumulator width is derived from; the end-to-end use (BN and GN backward step through the norm units) is in
tests/hdl/integration/test_integration_conv.py.
"""

import numpy as np
import pytest
from sim_matrix import simulator_cases

from wavecore.golden.numerics import INTEGER_PRESETS, NormArithmetic
from wavecore.hdl.norm.backward import NormBackwardReduce
from wavecore.hdl.norm.weighting import NormGroupWeighting
from wavecore.verif.runner import build

_PARAM_WIDTH = {"int16": 16, "int8": 8}
_MAX_COUNT = {"int16": 4096, "int8": 1024}


def _arithmetic(preset: str) -> NormArithmetic:
    return NormArithmetic.from_training(INTEGER_PRESETS[preset], max_count=_MAX_COUNT[preset])


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"lanes": 0}, "lanes must be an integer between 1 and 64, not 0"),
        ({"sets": 4097}, "sets must be an integer between 1 and 4096, not 4097"),
        ({"channels": 0}, "channels must be an integer between 1 and 4096, not 0"),
        ({"param_width": 1}, "param_width must be an integer between 2 and 32, not 1"),
        ({"weighted_width": 58}, "weighted_width must be an integer between 59 and 128, not 58"),
        ({"weighted_width": 129}, "weighted_width must be an integer between 59 and 128, not 129"),
        ({"arithmetic": "int16"}, "arithmetic must be a wavecore.golden.numerics.NormArithmetic, not 'int16'"),
    ],
)
def test_weighting_rejects_bad_parameters_with_exact_message(keywords, message):
    arguments = {"arithmetic": _arithmetic("int16"), "lanes": 1, "sets": 4, "channels": 4, **keywords}
    with pytest.raises((ValueError, TypeError)) as raised:
        NormGroupWeighting(**arguments)
    assert str(raised.value) == message


def test_weighted_width_holds_the_extreme_sets_and_matches_the_scalar_unit_field():
    """int16, max_count 4096, 16-bit gamma: |W2| <= 2**15 * 4096 * 2**30 = 2**57 needs 59 bits by the
    NormArithmetic convention (bit_length + sign); golden refuses a set of more than max_count elements."""
    arithmetic = _arithmetic("int16")
    assert arithmetic.weighted_width(16) == 59
    extreme = 4096 * (1 << 30)
    w1, w2 = arithmetic.weighted_reductions(np.array([-(1 << 15)]), np.array([-4096 << 15]), np.array([extreme]), 16)
    assert (w1, w2) == (1 << 42, -(1 << 57))
    with pytest.raises(ValueError) as raised:
        arithmetic.weighted_reductions(np.array([-(1 << 15)] * 3), np.array([0] * 3), np.array([extreme] * 3), 16)
    assert str(raised.value) == "W2 does not fit int59: a set has more than max_count elements"
    unit = NormGroupWeighting(arithmetic=arithmetic, lanes=2, sets=4, channels=4)
    assert unit.sums_layout == NormBackwardReduce(arithmetic=arithmetic, lanes=2, sets=4).sums_layout


@pytest.mark.parametrize(
    ("simulator", "preset", "lanes", "sets", "channels", "idle", "backpressure"),
    simulator_cases(
        [
            ("int16", 1, 12, 8, 0.3, 0.4),
            ("int8", 3, 10, 5, 0.0, 0.0),
        ]
    ),
)
def test_weighting_matches_golden_under_stalls(simulator, preset, lanes, sets, channels, idle, backpressure):
    """Commands over 1-4 channels (and an empty one) read the sums through read_set/sums; every channel beat
    passes through unchanged and every (W1, W2) equals golden; without stalls W leaves the cycle after the
    set's last channel beat."""
    arithmetic = _arithmetic(preset)
    design = build(
        NormGroupWeighting(arithmetic=arithmetic, lanes=lanes, sets=sets, channels=channels,
                           param_width=_PARAM_WIDTH[preset]),
        toplevel="norm_weighting",
        simulator=simulator,
    )
    design.run(
        "tb_norm_weighting",
        testcase="weighted_reductions_match_golden",
        params={"preset": preset, "max_count": _MAX_COUNT[preset], "lanes": lanes, "sets": sets,
                "channels": channels, "param_width": _PARAM_WIDTH[preset], "idle": idle,
                "backpressure": backpressure},
    )


@pytest.mark.parametrize("members", [1, 3])
def test_weighted_sums_leave_members_plus_four_cycles_after_the_command_behind_the_reduction_unit(members):
    """The docstring's latency, with the real NormBackwardReduce answering the reads (amaranth.sim)."""
    from amaranth import Module
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    arithmetic = _arithmetic("int16")
    reduce = NormBackwardReduce(arithmetic=arithmetic, lanes=1, sets=4)
    weighting = NormGroupWeighting(arithmetic=arithmetic, lanes=1, sets=4, channels=4)
    top = Module()
    top.submodules.reduce, top.submodules.weighting = reduce, weighting
    wiring.connect(top, weighting.read_set, reduce.read_set)
    wiring.connect(top, reduce.sums, weighting.sums)
    seen = {}

    async def testbench(ctx):
        ctx.set(weighting.channel_sums.ready, 1)
        ctx.set(weighting.weighted.ready, 1)
        ctx.set(weighting.command.payload, {"first": 0, "channel": 0, "members": members})
        ctx.set(weighting.command.valid, 1)
        assert ctx.get(weighting.command.ready)
        await ctx.tick()
        ctx.set(weighting.command.valid, 0)
        for cycle in range(1, 20):
            if ctx.get(weighting.weighted.valid):
                seen["cycle"] = cycle
                return
            await ctx.tick()

    simulator = Simulator(top)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    assert seen == {"cycle": members + 4}, f"W valid at {seen}, docstring says {members + 4}"
