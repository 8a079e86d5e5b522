# amaranth: UnusedElaboratable=no
"""im2col feeder (hdl/memory/feeder.py) against wavecore.golden.layers.im2col, both simulators, under stalls.

Forward layers in the plain and in a skewed layout, and the dilated read of dy for backward-data (the
transposed convolution); the GEMM of these beats with the weight feeder's is checked in
test_weight_feeder.py.
"""

import pytest
from sim_matrix import simulator_cases

from wavecore.hdl.memory.feeder import Im2colFeeder
from wavecore.verif.runner import build


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"lanes": 4, "banks": 6, "bank_depth": 64, "width": 8},
            "banks must be a power of two at least lanes (4), not 6",
        ),
        (
            {"lanes": 8, "banks": 4, "bank_depth": 64, "width": 8},
            "banks must be a power of two at least lanes (8), not 4",
        ),
        (
            {"lanes": 0, "banks": 4, "bank_depth": 64, "width": 8},
            "lanes must be an integer between 1 and 64, not 0",
        ),
        (
            {"lanes": 4, "banks": 8, "bank_depth": 64, "width": 1},
            "width must be an integer between 2 and 32, not 1",
        ),
    ],
)
def test_feeder_rejects_bad_parameters_with_exact_message(kwargs, message):
    with pytest.raises(ValueError) as raised:
        Im2colFeeder(**kwargs)
    assert str(raised.value) == message


LAYER = {
    "channels": 2, "height": 5, "width": 5, "kernel_h": 3, "kernel_w": 3, "stride": 1, "padding": 1, "base": 0,
    "row_words": 1,
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dilation": 3}, "dilation must be a power of two from 1 to 128, not 3"),
        ({"dilation": 2, "stride": 2}, "stride must be 1 with an input dilation, not 2"),
        ({"dilation": 2, "output_padding": 2}, "output_padding must be in [0, dilation = 2), not 2"),
        ({"row_words": None, "row_pitch": 4, "channel_pitch": 40}, "row_pitch must be at least width (5), not 4"),
        (
            {"row_words": None, "row_pitch": 9, "channel_pitch": 40},
            "channel_pitch must be at least (height - 1) * row_pitch + width = 41, not 40",
        ),
        ({"row_words": None}, "give either row_words or row_pitch (with channel_pitch)"),
    ],
)
def test_feeder_refuses_bad_commands_with_exact_message(changes, message):
    feeder = Im2colFeeder(lanes=4, banks=8, bank_depth=256, width=8)
    with pytest.raises(ValueError) as raised:
        feeder.check_command(**{**LAYER, **changes})
    assert str(raised.value) == message


def test_backward_data_command_has_the_forward_input_size():
    """dy of a 3x3 stride-2 pad-1 conv of a 6x7 input is 3x4; the transposed conv must give back 6x7
    (output_padding 1 in height, 0 in width: (6 + 2 - 3) % 2 = 1, (7 + 2 - 3) % 2 = 0)."""
    feeder = Im2colFeeder(lanes=4, banks=8, bank_depth=256, width=8)
    fields = feeder.check_backward_data_command(
        out_channels=3, height=6, width=7, kernel_h=3, kernel_w=3, stride=2, padding=1, base=0, row_pitch=8,
        channel_pitch=33,
    )
    assert (fields["height"], fields["width"], fields["out_height"], fields["out_width"]) == (3, 4, 6, 7)
    assert (fields["dilation_shift"], fields["padding"], fields["stride"]) == (1, 1, 1)
    with pytest.raises(ValueError, match=r"^padding must be at most kernel - 1 = 0 for backward-data, not 1$"):
        feeder.check_backward_data_command(
            out_channels=3, height=6, width=6, kernel_h=1, kernel_w=1, stride=2, padding=1, base=0, row_pitch=8,
            channel_pitch=33,
        )


def test_feeder_refuses_a_layer_with_bank_conflicts():
    feeder = Im2colFeeder(lanes=4, banks=8, bank_depth=256, width=8)
    with pytest.raises(ValueError, match=r"^stride must be at most banks / lanes = 2, not 3$"):
        feeder.check_command(
            channels=2, height=9, width=9, kernel_h=3, kernel_w=3, stride=3, padding=1, base=0, row_words=2
        )


@pytest.mark.parametrize(
    ("simulator", "lanes", "banks", "layer", "stall", "backpressure"),
    simulator_cases(
        [
            (
                4,
                8,
                {"channels": 2, "height": 7, "width": 9, "kernel": 3, "stride": 1, "padding": 1, "base": 3},
                0.3,
                0.3,
            ),
            (
                4,
                8,
                {"channels": 3, "height": 8, "width": 8, "kernel": 3, "stride": 2, "padding": 1, "base": 0},
                0.0,
                0.0,
            ),
            (
                4,
                8,
                # dy (3 x 3 x 3) of a 3x3 stride-2 pad-1 conv of a 6x6 input, read for backward-data in the
                # skewed layout of test_position_feeder.py: dilation 2, padding 1, output_padding 1.
                {
                    "channels": 3, "height": 3, "width": 3, "kernel": 3, "stride": 1, "padding": 1, "base": 2,
                    "dilation": 2, "output_padding": 1, "row_pitch": 3, "channel_pitch": 9,
                },
                0.3,
                0.2,
            ),
            (
                4,
                8,
                # one output row (as a linear layer's 1 x N map): the command's out_height is 1
                {"channels": 2, "height": 3, "width": 9, "kernel": 3, "stride": 1, "padding": 0, "base": 1},
                0.2,
                0.2,
            ),
            (
                2,
                2,
                {
                    "channels": 2,
                    "height": 5,
                    "width": 6,
                    "kernel": 1,
                    "stride": 1,
                    "padding": 0,
                    "base": 1,
                    "row_slack": 1,
                },
                0.2,
                0.4,
            ),
        ]
    ),
)
def test_feeder_beats_equal_golden_im2col_under_stalls(simulator, lanes, banks, layer, stall, backpressure):
    settings = {"lanes": lanes, "banks": banks, "bank_depth": 256, "width": 8, "dimension_width": 8}
    design = build(Im2colFeeder(**settings), toplevel="feeder", simulator=simulator)
    design.run(
        "tb_feeder",
        testcase="im2col_beats_match_golden",
        params={"feeder": settings, "layer": layer, "stall": stall, "backpressure": backpressure},
    )
