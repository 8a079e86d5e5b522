# amaranth: UnusedElaboratable=no
"""Weight feeder (hdl/memory/weight_feeder.py) with the im2col feeder: forward and backward-data GEMM operands.

The cocotb cases (tb_weight_feeder.py) multiply the two operand streams tile by tile with the array's
arithmetic and compare with the golden conv (exact integers, and ``IntegerKernels`` after requantization):
backward-data runs as a transposed convolution of the dilated dy with the transposed, rotated weights.
"""

import pytest
from feeder_pair_design import run_feeder_pair
from sim_matrix import simulator_cases

from wavecore.hdl.memory.feeder import Im2colFeeder
from wavecore.hdl.memory.weight_feeder import WeightFeeder


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lanes": 4, "banks": 6}, "banks must be a power of two at least lanes (4), not 6"),
        ({"lanes": 0, "banks": 8}, "lanes must be an integer between 1 and 64, not 0"),
        ({"lanes": 4, "banks": 8, "width": 40}, "width must be an integer between 2 and 32, not 40"),
        ({"lanes": 4, "banks": 8, "repeat_width": 0}, "repeat_width must be an integer between 1 and 24, not 0"),
    ],
)
def test_weight_feeder_rejects_bad_parameters_with_exact_message(kwargs, message):
    with pytest.raises(ValueError) as raised:
        WeightFeeder(**{"bank_depth": 64, "width": 8, **kwargs})
    assert str(raised.value) == message


WEIGHTS = {"out_channels": 6, "in_channels": 4, "kernel_h": 3, "kernel_w": 3, "base": 0, "in_pitch": 9,
           "out_pitch": 37, "transpose": False}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"out_pitch": 36}, "out_pitch must put 4 lanes in distinct banks of 8 (e.g. odd), not 36"),
        ({"transpose": True, "in_pitch": 12, "out_pitch": 45},
         "in_pitch must put 4 lanes in distinct banks of 8 (e.g. odd), not 12"),
        ({"in_pitch": 8}, "in_pitch must be at least kernel_h * kernel_w = 9, not 8"),
        ({"out_pitch": 35}, "out_pitch must be at least (in_channels - 1) * in_pitch + kernel_h * kernel_w = 36, "
                            "not 35"),
        ({"repeat": 0}, "repeat must be in [1, 65536), not 0"),
        ({"transpose": 1}, "transpose must be a bool, not 1"),
    ],
)
def test_weight_feeder_refuses_bad_commands_with_exact_message(changes, message):
    feeder = WeightFeeder(lanes=4, banks=8, bank_depth=256, width=8)
    error = TypeError if "transpose must" in message else ValueError
    with pytest.raises(error) as raised:
        feeder.check_command(**{**WEIGHTS, **changes})
    assert str(raised.value) == message


def test_dense_pitches_are_odd_and_dense():
    assert WeightFeeder.dense_pitches(64, 3, 3) == (9, 577)
    assert WeightFeeder.dense_pitches(3, 3, 3) == (9, 27)
    assert WeightFeeder.dense_pitches(8, 1, 1) == (1, 9)
    assert WeightFeeder.dense_pitches(2, 2, 2) == (5, 9)


CONVS = {
    "3x3_s1_p1": {"in_channels": 3, "out_channels": 5, "height": 5, "width": 5, "kernel": 3, "stride": 1, "padding": 1},
    "3x3_s2_p1": {"in_channels": 3, "out_channels": 5, "height": 6, "width": 6, "kernel": 3, "stride": 2, "padding": 1},
    # 6 x 5 input: output_padding (1, 0) of the transposed conv (6 - 1) % 2 = 1, (5 - 1) % 2 = 0.
    "1x1_s2_p0": {"in_channels": 6, "out_channels": 3, "height": 6, "width": 5, "kernel": 1, "stride": 2, "padding": 0},
    # 8 output channels: rows a whole number of 4-lane blocks, so the last block has no pad lane and ends the
    # command exactly at the rows' end
    "1x1_s1_p0_8out": {"in_channels": 3, "out_channels": 8, "height": 4, "width": 4, "kernel": 1, "stride": 1,
                       "padding": 0},
}


@pytest.mark.parametrize(
    ("simulator", "mode", "conv", "stall", "backpressure"),
    simulator_cases(
        [
            ("backward_data", "3x3_s2_p1", 0.3, 0.3),
            ("backward_data", "3x3_s1_p1", 0.2, 0.2),
            ("backward_data", "1x1_s2_p0", 0.0, 0.0),
            ("forward", "3x3_s2_p1", 0.2, 0.3),
            ("forward", "3x3_s1_p1", 0.0, 0.0),
            ("forward", "1x1_s1_p0_8out", 0.0, 0.2),
        ]
    ),
)
def test_weight_and_im2col_streams_multiply_to_golden_conv(simulator, mode, conv, stall, backpressure):
    _conv_pair(simulator, mode, conv, stall, backpressure)


@pytest.mark.parametrize(("mode", "conv", "stall"),
                         [("forward", "3x3_s1_p1", 0.0), ("backward_data", "3x3_s2_p1", 0.3)])
def test_back_to_back_weight_commands_each_give_the_whole_product(mode, conv, stall):
    # The next command is taken with the final beat's request of the one before (no bubble): three commands queued
    # at once must give three complete, correct products, none cut short or started early.
    _conv_pair("icarus", mode, conv, stall, stall, commands=3)


def _conv_pair(simulator, mode, conv, stall, backpressure, commands=1):
    run_feeder_pair(
        simulator,
        a=Im2colFeeder,
        b=WeightFeeder,
        settings={"lanes": 4, "banks": 8, "bank_depth": 64, "width": 8, "dimension_width": 8},
        toplevel="weight_feeder_pair",
        testcase="conv_gemm_matches_golden",
        params={"mode": mode, "conv": CONVS[conv], "stall": stall, "backpressure": backpressure,
                "commands": commands},
    )
