"""The RTL and synthesis evaluators on one small point each (the planner's is checked in test_sweep_engine.py).

RTL: the testbench checks the GEMM bit for bit against the golden model; the measured cycles must lie between the
ideal ``M*K*N / (rows*cols)`` and SCALE-Sim's count for the same GEMM (``docs/hardware.md``: the RTL is below
SCALE-Sim everywhere). Synthesis (fpga tier): a 2x2 array on the ULX3S-85F gives the resources and Fmax of
``wavecore synth``'s report for the same block.
"""

import pytest

from wavecore.golden.plan.cycles import gemm_cycles
from wavecore.sweep import EVALUATORS, parse_sweep


def _point(**grid):
    spec = parse_sweep({"base": {"workload.network": "tiny_resnet"}, "grid": {k: [v] for k, v in grid.items()}})
    return spec.points[0].parameters


@pytest.mark.parametrize("dataflow", ["output_stationary", pytest.param("weight_stationary", marks=pytest.mark.slow)])
def test_rtl_evaluator_measures_a_gemm_on_verilator(dataflow):
    parameters = _point(**{"array.size": 2, "array.dataflow": dataflow})
    evaluator = EVALUATORS["rtl"]
    options = evaluator.check_options({"gemm": [6, 5, 4]})
    metrics = evaluator.evaluate(parameters, options)
    assert metrics["rtl_gemm"] == "6x5x4"
    ideal = 6 * 5 * 4 / (2 * 2)
    # SCALE-Sim 3.0.0's count, which gemm_cycles reproduces (tests/verif/test_scalesim.py)
    scalesim = gemm_cycles(6, 5, 4, rows=2, cols=2, dataflow="os" if dataflow == "output_stationary" else "ws")
    assert ideal <= metrics["rtl_cycles"] <= scalesim, metrics
    assert metrics["rtl_utilization"] == pytest.approx(ideal / metrics["rtl_cycles"])
    assert metrics["rtl_model_cycles"] == scalesim


@pytest.mark.fpga
def test_synth_evaluator_reports_resources_and_fmax():
    parameters = _point(**{"array.size": 2, "numerics.in_width": 4, "numerics.acc_width": 12})
    evaluator = EVALUATORS["synth"]
    metrics = evaluator.evaluate(parameters, evaluator.check_options({"target": "ulx3s-85f"}))
    assert metrics["synth_status"] == "ok"
    assert metrics["lut"] > 0 and metrics["ff"] > 0 and metrics["dsp"] == 4  # one MULT18X18D per PE
    assert metrics["fmax_mhz"] >= 25.0  # the ULX3S oscillator is the constraint


def test_synth_evaluator_refuses_an_unknown_router():
    with pytest.raises(ValueError, match=r"^router must be one of router1, router2 or null, not 'fast'$"):
        EVALUATORS["synth"].check_options({"router": "fast"})
