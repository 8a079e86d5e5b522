"""wavecore.verif.scalesim: argument checks (fast) and a live SCALE-Sim run against recorded counts (slow)."""

import pytest

from wavecore.verif.scalesim import scalesim_gemm_cycles


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([(4, 4, 4)], 0, 4, "os"), "rows must be a positive integer, not 0"),
        (([(4, 4, 4)], 4, 4, "is"), "dataflow must be one of os, ws, not 'is'"),
        (([(4, 0, 4)], 4, 4, "ws"), r"each GEMM must be \(M, K, N\) with positive integers, not \(4, 0, 4\)"),
    ],
)
def test_bad_arguments_are_refused_before_running(args, message):
    with pytest.raises(ValueError, match=message):
        scalesim_gemm_cycles(*args)


@pytest.mark.slow
def test_live_scalesim_reproduces_recorded_cycles():
    # recorded SCALE-Sim 3.0.0 counts (tests/plan/test_cycles.py): 4x4 os (64,64,64) 17919 and (256,64,32) 35839;
    # ws 18943 and 34047
    assert scalesim_gemm_cycles([(64, 64, 64), (256, 64, 32)], 4, 4, "os") == [17919, 35839]
    assert scalesim_gemm_cycles([(64, 64, 64), (256, 64, 32)], 4, 4, "ws") == [18943, 34047]
