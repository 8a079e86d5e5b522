# amaranth: UnusedElaboratable=no
"""Integration: systolic array (OS) -> ResultWriter (accumulate), a conv weight gradient over sub-batches.

Bit-exact against the golden arithmetic (and the full-batch golden conv2d_backward when nothing overflows);
the testbench prints the array utilization (operand beats / cycles).
"""

import pytest
from integration_gemm_design import GemmAccumulateChain
from sim_matrix import simulator_cases

from wavecore.golden.numerics import MacArithmetic
from wavecore.verif.runner import build

ROWS, COLS = 4, 4


# (acc_width, overflow, idle, backpressure, check against conv2d_backward)
@pytest.mark.parametrize(
    ("simulator", "acc_width", "overflow", "idle", "backpressure", "check_float_reference"),
    simulator_cases([
        (32, "wrap", 0.0, 0.3, True),
        (16, "saturate", 0.3, 0.0, False),
    ]),
)
def test_weight_gradient_accumulated_over_sub_batches(
    simulator, acc_width, overflow, idle, backpressure, check_float_reference
):
    arithmetic = MacArithmetic(in_width=8, acc_width=acc_width, signed=True, overflow=overflow)
    # Cin=2, 2x2 kernel: K = 8 = two column tiles of the 4x4 array; 4 result rows per tile.
    chain = GemmAccumulateChain(arithmetic=arithmetic, rows=ROWS, cols=COLS, depth=2 * ROWS)
    design = build(chain, toplevel="gemm_accumulate_chain", simulator=simulator)
    design.run(
        "tb_integration_gemm",
        testcase="weight_gradient_over_sub_batches",
        params={"rows": ROWS, "cols": COLS, "in_width": 8, "acc_width": acc_width, "overflow": overflow,
                "batch": 4, "sub_batches": 2, "c_in": 2, "size": 5, "kernel": 2, "c_out": 4,
                "idle": idle, "backpressure": backpressure, "check_float_reference": check_float_reference},
    )
