# amaranth: UnusedElaboratable=no
"""Scratchpad (hdl/memory/scratchpad.py): parameter validation and producer/consumer traffic on both simulators."""

import pytest
from amaranth.hdl import Shape
from sim_matrix import simulator_cases

from wavecore.hdl.memory.scratchpad import PingPongController, Scratchpad
from wavecore.verif.runner import build


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"banks": 0, "depth": 16, "width": 8},
            ValueError,
            "banks must be an integer between 1 and 64, not 0",
        ),
        (
            {"banks": 2, "depth": 15, "width": 8},
            ValueError,
            "depth must be a multiple of regions (2), not 15",
        ),
        (
            {"banks": 2, "depth": 16, "width": 0},
            ValueError,
            "width must be an integer between 1 and 1024, not 0",
        ),
        (
            {"banks": 2, "depth": 16, "width": 8, "regions": 1},
            ValueError,
            "regions must be an integer between 2 and 16, not 1",
        ),
        ({"banks": 2.0, "depth": 16, "width": 8}, TypeError, "banks must be an integer, not 2.0"),
    ],
)
def test_scratchpad_rejects_bad_parameters_with_exact_message(kwargs, error, message):
    with pytest.raises(error) as raised:
        Scratchpad(**kwargs)
    assert str(raised.value) == message


def test_pingpong_controller_rejects_one_region():
    with pytest.raises(ValueError, match=r"^regions must be an integer between 2 and 16, not 1$"):
        PingPongController(regions=1)


# Pairwise over (banks, regions, stalls) on both simulators.
@pytest.mark.parametrize(
    ("simulator", "banks", "depth", "width", "regions", "idle", "backpressure"),
    simulator_cases(
        [
            (1, 16, 8, 2, 0.0, 0.0),
            (4, 32, 16, 2, 0.3, 0.4),
            (2, 24, 12, 3, 0.3, 0.0),
            (3, 16, 32, 2, 0.0, 0.5),
        ]
    ),
)
def test_scratchpad_returns_every_tile_once_in_order_under_stalls(
    simulator, banks, depth, width, regions, idle, backpressure
):
    scratchpad = Scratchpad(banks=banks, depth=depth, width=width, regions=regions)
    design = build(scratchpad, toplevel="scratchpad", simulator=simulator)
    design.run(
        "tb_scratchpad",
        testcase="producer_consumer_tiles",
        params={
            "banks": banks,
            "region_depth": scratchpad.region_depth,
            "width": width,
            "address_bits": Shape.cast(range(scratchpad.region_depth)).width,
            "tiles": 5,
            "idle": idle,
            "backpressure": backpressure,
        },
    )
