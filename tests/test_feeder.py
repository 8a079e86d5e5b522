# amaranth: UnusedElaboratable=no
"""im2col feeder (hdl/feeder.py) against golden.layers.im2col, both simulators, under stalls."""

import pytest
from sim_matrix import simulator_cases

from hdl.feeder import Im2colFeeder
from verif.runner import build


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
