# amaranth: UnusedElaboratable=no
"""Integration: DMA in -> stats on write -> scratchpad -> scalar unit -> im2col feeder -> affine+ReLU,
checked against the golden model (tests/tb_integration_conv.py).

Not yet covered (see docs/hardware.md, "Memory system: status"): the systolic array, the result writer and
DMA out in the same chain, and the backward step through the norm units as one chain (each norm unit is
checked on its own in tests/test_norm.py).
"""

import pytest
from integration_conv_design import BnReadPath
from sim_matrix import simulator_cases

from golden.numerics import NormArithmetic
from verif.runner import build

_DESIGN = {"channels": 4, "banks": 8, "lanes": 4, "region_depth": 64}
_TENSOR = {"height": 8, "width": 8}  # H * W = 2**6: plane_shift 6


@pytest.mark.parametrize(
    ("simulator", "stride", "stall", "max_latency", "backpressure"),
    simulator_cases(
        [
            (1, 0.2, 4, 0.2),
            (2, 0.0, 0, 0.0),
        ]
    ),
)
def test_bn_read_path_from_dram_to_operands_matches_golden(
    simulator, stride, stall, max_latency, backpressure
):
    arithmetic = NormArithmetic(max_count=4096)
    design = build(
        lambda: BnReadPath(arithmetic=arithmetic, plane_shift=6, **_DESIGN),
        toplevel="bn_read_path",
        simulator=simulator,
    )
    design.run(
        "tb_integration_conv",
        testcase="bn_read_path_matches_golden",
        params={
            **_DESIGN,
            **_TENSOR,
            "max_count": 4096,
            "kernel": 3,
            "stride": stride,
            "padding": 1,
            "stall": stall,
            "max_latency": max_latency,
            "backpressure": backpressure,
        },
    )
