# amaranth: UnusedElaboratable=no
"""Integration tests of the memory system and the norm units, against the golden model's integer mode.

* Forward (integration_forward_design.py, tb_integration_conv.py): DRAM -> DMA -> scratchpad ->
  im2col feeder -> affine+ReLU -> output-stationary array (weights: DMA -> scratchpad -> weight feeder) ->
  requantizing writer -> statistics on write -> DMA -> DRAM for one conv layer, then the scalar unit and the
  next layer's read through affine+ReLU (run as a second conv), with BN and with GN; stride 1 and stride 2;
  array utilization >= 0.9 (the memory system's target).
* Backward (integration_backward_design.py): backward reductions -> gamma weighting (W1, W2) -> scalar
  unit -> dx unit, BN and GN.
"""

import pytest
from integration_backward_design import NormBackwardChain
from integration_forward_design import ConvForwardChain
from sim_matrix import simulator_cases

from wavecore.golden.numerics import IntegerTraining, NormArithmetic
from wavecore.verif.runner import build

# 8 output positions per beat (array rows) x 4 output channels (array columns): small enough for the default
# run (the scalar unit's bit-serial commands, one per channel, are most of the simulated cycles).
_FORWARD_DESIGN = {
    "lanes": 8, "cols": 4, "banks": 16, "region_depth": 64, "weight_region_depth": 64, "positions": 64, "channels": 4
}


def _forward_design(cols):
    return {**_FORWARD_DESIGN, "cols": cols, "channels": cols}


def forward_chain(simulator, cols=_FORWARD_DESIGN["cols"]):
    """Build of the forward chain (shared with benchmarks/array_utilization.py), int16, 16 banks."""
    training = IntegerTraining()
    return build(
        lambda: ConvForwardChain(
            norm=NormArithmetic.from_training(training, max_count=_MAX_COUNT), mac=training.mac,
            shift=training.weight_frac, rounding=training.rounding, **_forward_design(cols),
        ),
        toplevel="conv_forward_chain",
        simulator=simulator,
    )


def forward_params(*, norm, groups, stride, stall=0.0, max_latency=0, result_file=None, cols=_FORWARD_DESIGN["cols"]):
    return {"design": _forward_design(cols), "max_count": _MAX_COUNT, "norm": norm, "groups": groups, "stride": stride,
            "c_in": 4, "batch": 2, "stall": stall, "max_latency": max_latency,
            "result_file": result_file}


_MAX_COUNT = 4096


@pytest.mark.parametrize(
    ("simulator", "norm", "groups", "stride", "stall", "max_latency"),
    simulator_cases(
        [
            ("batchnorm", 1, 1, 0.2, 4),
            ("groupnorm", 2, 2, 0.0, 0),
        ],
        # The chain's Verilator build (an 8 x 8 int16 array and everything around it) takes minutes: its
        # Verilator run is in the long tier; the backward chain below has the default Verilator case.
        verilator_default=0,
    ),
)
def test_conv_forward_then_normalized_read_matches_golden(simulator, norm, groups, stride, stall, max_latency):
    """DRAM -> DMA -> scratchpad -> im2col -> affine+ReLU -> OS array -> requantize -> stats on write -> DMA
    -> DRAM, then the scalar unit and the next layer's read through affine+ReLU; every tensor, statistic,
    constant and operand beat equal to wavecore.golden.integer.IntegerKernels; and, without stalls, array
    utilization >= 0.9 (the memory system's target) for 64 output positions."""
    forward_chain(simulator).run(
        "tb_integration_conv",
        testcase="forward_layer_and_normalized_read_match_golden",
        params=forward_params(norm=norm, groups=groups, stride=stride, stall=stall,
                              max_latency=max_latency),
    )


@pytest.mark.parametrize(
    ("simulator", "norm", "groups", "stall"),
    simulator_cases([("batchnorm", 1, 0.2), ("groupnorm", 2, 0.0)]),
)
def test_norm_backward_step_matches_golden(simulator, norm, groups, stall):
    """Backward reductions (dy, r1, r2 with the ReLU mask recomputed from x) -> gamma weighting (W1, W2 per
    statistic set, read from the reductions in hardware) -> scalar unit (K2, K3, dgamma) -> dx unit,
    bit-exact against wavecore.golden.integer.IntegerKernels.fused_backward for BN and GN."""
    batch, channels = 2, 4
    sets = channels if norm == "batchnorm" else batch * channels
    design = {"lanes": 1, "sets": sets, "channels": channels}
    arithmetic = NormArithmetic.from_training(IntegerTraining(), max_count=_MAX_COUNT)
    chain = build(lambda: NormBackwardChain(arithmetic=arithmetic, **design), toplevel="norm_backward_chain",
                  simulator=simulator)
    chain.run(
        "tb_integration_conv",
        testcase="norm_backward_step_matches_golden",
        params={"design": design, "max_count": _MAX_COUNT, "norm": norm, "groups": groups, "batch": batch,
                "channels": channels, "size": 4, "stall": stall},
    )
