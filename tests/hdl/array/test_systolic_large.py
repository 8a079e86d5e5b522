"""Large systolic arrays in the hierarchical form: a random GEMM under stalls, bit for bit, on Verilator.

32x32 output-stationary runs in the default tier; 32x32 weight-stationary and 128x128 in both dataflows are
``@pytest.mark.slow``. The GEMMs cover more than one tile in every direction with ragged edges, random input
gaps and output backpressure; ``verif/tb_systolic.py`` checks every element against
``MacArithmetic.matmul`` and the big-integer oracle. The build time (Amaranth + Yosys + Verilator) is printed
(run with ``-s`` to see it) and recorded in ``docs/benchmarks.md``.
"""

import time

import pytest

from wavecore.hdl.array.systolic import SystolicArray
from wavecore.verif.runner import build

# Verilator inlines every module by default, which makes C++ (and a g++ build of many minutes) per PE;
# with -fno-inline each module (PE, half chains, skews) is one C++ class compiled once. The per-instance
# symbol tables cocotb's --public-flat-rw asks for remain, and g++ spends its time there: -O0 (the
# simulation is a few seconds either way). Figures in docs/benchmarks.md.
VERILATOR_ARGS = ["-fno-inline", "-MAKEFLAGS", "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"]


def _run_random_gemm(size: int, dataflow: str) -> None:
    array = SystolicArray(rows=size, cols=size, dataflow=dataflow, hierarchical=True)
    began = time.perf_counter()
    design = build(array, toplevel=f"systolic{size}", simulator="verilator", extra_build_args=VERILATOR_ARGS)
    print(f"\n{size}x{size} {dataflow}: build {time.perf_counter() - began:.1f} s")
    # M and N not multiples of the array, K longer than a tile: two tiles each way, partial last ones.
    shapes = [[size + 3, 2 * size + 5, size + 7]]
    began = time.perf_counter()
    design.run("wavecore.verif.tb_systolic", testcase="random_gemms", test_name=f"large_{size}_{dataflow}",
               params={"config": array.parameters, "shapes": shapes, "idle": 0.2, "backpressure": 0.3})
    print(f"{size}x{size} {dataflow}: simulation {time.perf_counter() - began:.1f} s")


def test_32x32_output_stationary_random_gemm_under_stalls():
    _run_random_gemm(32, "output_stationary")


@pytest.mark.slow
def test_32x32_weight_stationary_random_gemm_under_stalls():
    _run_random_gemm(32, "weight_stationary")


@pytest.mark.slow
@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_128x128_random_gemm_under_stalls(dataflow):
    _run_random_gemm(128, dataflow)
