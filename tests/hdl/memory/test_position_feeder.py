# amaranth: UnusedElaboratable=no
"""Position feeder (hdl/memory/position_feeder.py): the backward-weight operands dY and Xcol^T.

The cocotb cases (tb_weight_feeder.py) run one feeder on dy (1x1) and one on x (the conv's kernel),
multiply the tiles with the array's arithmetic, and compare dW with the exact conv backward and, summed over
two sub-batches as the result writer accumulates, with ``IntegerKernels.conv_backward`` carrying the
accumulator.
"""

import pytest
from feeder_pair_design import run_feeder_pair
from sim_matrix import simulator_cases

from wavecore.hdl.memory.position_feeder import PositionFeeder


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lanes": 8, "banks": 4}, "banks must be a power of two at least lanes (8), not 4"),
        ({"lanes": 65, "banks": 128}, "lanes must be an integer between 1 and 64, not 65"),
        ({"lanes": 4, "banks": 8, "dimension_width": 1}, "dimension_width must be an integer between 2 and 16, not 1"),
    ],
)
def test_position_feeder_rejects_bad_parameters_with_exact_message(kwargs, message):
    with pytest.raises(ValueError) as raised:
        PositionFeeder(**{"bank_depth": 64, "width": 8, **kwargs})
    assert str(raised.value) == message


X = {"samples": 2, "channels": 3, "height": 5, "width": 5, "kernel_h": 3, "kernel_w": 3, "stride": 1, "padding": 1,
     "base": 0, "row_pitch": 11, "channel_pitch": 57, "sample_pitch": 171}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"row_pitch": 8, "channel_pitch": 40, "sample_pitch": 120},
            "row_pitch and channel_pitch must put the lanes of every k block in distinct banks "
            "(e.g. 3 and 9 modulo 8), not 8 and 40",
        ),
        ({"row_pitch": 4}, "row_pitch must be at least width (5), not 4"),
        ({"channel_pitch": 48}, "channel_pitch must be at least (height - 1) * row_pitch + width = 49, not 48"),
        ({"sample_pitch": 160}, "sample_pitch must be at least the sample's extent (163), not 160"),
        ({"repeat": 0}, "repeat must be in [1, 65536), not 0"),
    ],
)
def test_position_feeder_refuses_bad_commands_with_exact_message(changes, message):
    feeder = PositionFeeder(lanes=4, banks=8, bank_depth=256, width=8)
    with pytest.raises(ValueError) as raised:
        feeder.check_command(**{**X, **changes})
    assert str(raised.value) == message


def test_skewed_pitches_give_conflict_free_k_blocks():
    """k = (c, i, j) lands in bank (c*channel_pitch + i*row_pitch + j) mod banks = k mod banks."""
    row_pitch, channel_pitch, sample_pitch = PositionFeeder.skewed_pitches(
        channels=3, height=5, width=5, kernel_h=3, kernel_w=3, banks=8
    )
    assert (row_pitch, channel_pitch, sample_pitch) == (11, 49, 147)
    assert [(c * channel_pitch + i * row_pitch + j) % 8 for c in range(3) for i in range(3) for j in range(3)] == [
        k % 8 for k in range(27)
    ]
    feeder = PositionFeeder(lanes=8, banks=8, bank_depth=256, width=8)
    feeder.check_command(**{**X, "channel_pitch": 49, "sample_pitch": 147})


CONVS = {
    "3x3_s1_p1": {"samples": 2, "in_channels": 2, "out_channels": 5, "height": 5, "width": 5, "kernel": 3,
                  "stride": 1, "padding": 1},
    "3x3_s2_p1": {"samples": 2, "in_channels": 2, "out_channels": 5, "height": 6, "width": 6, "kernel": 3,
                  "stride": 2, "padding": 1, "sub_batches": 2},
    "1x1_s2_p0": {"samples": 2, "in_channels": 6, "out_channels": 6, "height": 6, "width": 5, "kernel": 1,
                  "stride": 2, "padding": 0},
}


@pytest.mark.parametrize(
    ("simulator", "conv", "stall", "backpressure"),
    simulator_cases([("3x3_s2_p1", 0.3, 0.3), ("3x3_s1_p1", 0.2, 0.2), ("1x1_s2_p0", 0.0, 0.0)]),
)
def test_position_streams_multiply_to_golden_weight_gradient(simulator, conv, stall, backpressure):
    run_feeder_pair(
        simulator,
        a=PositionFeeder,
        b=PositionFeeder,
        settings={"lanes": 4, "banks": 8, "bank_depth": 128, "width": 8, "dimension_width": 8},
        toplevel="position_feeder_pair",
        testcase="backward_weight_gemm_matches_golden",
        params={"conv": CONVS[conv], "stall": stall, "backpressure": backpressure},
    )


def test_every_dimension_at_the_top_of_its_field():
    # dimension_width 3: channels, height and width of 7, the largest the command fields hold, so every counter
    # and coordinate runs through its full range (the conv of the weight gradient against the golden model)
    conv = {"samples": 2, "in_channels": 7, "out_channels": 7, "height": 7, "width": 7, "kernel": 1, "stride": 1,
            "padding": 0}
    run_feeder_pair(
        "icarus",
        a=PositionFeeder,
        b=PositionFeeder,
        settings={"lanes": 4, "banks": 8, "bank_depth": 256, "width": 8, "dimension_width": 3},
        toplevel="position_feeder_pair",
        testcase="backward_weight_gemm_matches_golden",
        params={"conv": conv, "stall": 0.2, "backpressure": 0.2},
    )
