# amaranth: UnusedElaboratable=no
"""WaveCore generated from a configuration with a 32x32 array (default tier) and a 128x128 array (slow tier): the
GEMM unit computes ``cols`` channels at once, so these cores have 32 and 128 lanes. Inside the whole core (fetch,
queues, tokens, DMA, the HDL DRAM model with random stalls and latency) every GEMM function of a random
convolution wider than the lanes (``random_gemm`` of tb_wavecore_compute's cases) leaves the instruction-level
simulator's DRAM and byte counters. Generation, build and run times are printed (run with ``-s``) and recorded
in docs/benchmarks.md ("WaveCore with large arrays")."""

import dataclasses
import time

import pytest

from wavecore.golden.config import load_config
from wavecore.hdl.core.dram_model import plusargs
from wavecore.verif.training_step import build_core, bus_width, step_parameters


def _run_random_gemm(size: int) -> None:
    config = load_config(None)
    config = dataclasses.replace(config, array=dataclasses.replace(config.array, rows=size, cols=size))
    parameters, numerics = step_parameters(config)
    assert (parameters.rows, parameters.cols) == (size, size)
    started = time.perf_counter()
    design = build_core(parameters, numerics, simulator="verilator")
    built = time.perf_counter()
    design.run("tb_wavecore_compute", testcase="compute_cases_match_the_simulator",
               params={"rows": size, "cols": size, "cases": ["random_gemm"],
                       "scratchpad_elements": parameters.scratchpad_elements,
                       "accumulator_elements": parameters.accumulator_elements,
                       "dram_bytes": parameters.dram_bytes, "data_width": bus_width(parameters), "max_burst": 16,
                       "overflow": numerics.mac.overflow},
               plusargs=plusargs(seed=size, stall=48, latency_min=0, latency_max=24, load="dram_load.hex",
                                 dump="dram_dump.hex"))
    print(f"\nWaveCore {size}x{size}: build (or cached build) {built - started:.1f} s, "
          f"random GEMM run {time.perf_counter() - built:.1f} s")


def test_32x32_core_runs_a_random_gemm_under_stalls():
    _run_random_gemm(32)


@pytest.mark.slow
def test_128x128_core_runs_a_random_gemm_under_stalls():
    _run_random_gemm(128)
