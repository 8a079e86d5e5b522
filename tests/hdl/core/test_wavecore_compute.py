# amaranth: UnusedElaboratable=no
"""WaveCore with its compute units (hdl/core/*_unit.py) runs bodies of compute instructions inside the whole core
(fetch, queues, tokens, DMA) and leaves the simulator's DRAM and counters (tb_wavecore_compute)."""

import pytest
from sim_matrix import simulator_cases
from test_wavecore import SIZES

from wavecore.golden.core.semantics import CoreParameters
from wavecore.hdl.core.dram_model import plusargs, verilog_source
from wavecore.hdl.core.ports import convert
from wavecore.verif.core_system import CoreSystem
from wavecore.verif.runner import build

CASE_NAMES = ["vector_relu"]


def build_compute_core(simulator, units=None, name="wavecore_compute"):
    system = CoreSystem(parameters=CoreParameters(**SIZES), units=units)
    return build(convert(system, name=name), toplevel=name, simulator=simulator,
                 extra_sources=[verilog_source()])


@pytest.mark.parametrize(("simulator", "stall", "latency"), simulator_cases([(64, (0, 24))]))
def test_compute_units_in_the_core_match_the_simulator(simulator, stall, latency):
    design = build_compute_core(simulator)
    design.run("tb_wavecore_compute", params={**SIZES, "data_width": 64, "max_burst": 16, "cases": CASE_NAMES},
               plusargs=plusargs(seed=11, stall=stall, latency_min=latency[0], latency_max=latency[1],
                                 load="dram_load.hex", dump="dram_dump.hex"))
