# amaranth: UnusedElaboratable=no
"""WaveCore with its compute units runs bodies of compute instructions inside the whole core and leaves the
simulator's DRAM and counters; compute regions outside the on-chip memories end in SCRATCHPAD_OUT_OF_RANGE
(tb_wavecore_compute). The core is the configured one the training-step runner builds (one cached build)."""

from wavecore.golden.config import load_config
from wavecore.hdl.core.dram_model import plusargs
from wavecore.verif.training_step import build_core, bus_width, step_parameters


def test_compute_units_in_the_core_match_the_simulator_and_fault_on_bad_regions():
    parameters, numerics = step_parameters(load_config(None))
    design = build_core(parameters, numerics, simulator="verilator")
    design.run("tb_wavecore_compute",
               params={"scratchpad_elements": parameters.scratchpad_elements,
                       "accumulator_elements": parameters.accumulator_elements,
                       "dram_bytes": parameters.dram_bytes, "data_width": bus_width(parameters), "max_burst": 16,
                       "overflow": numerics.mac.overflow},
               plusargs=plusargs(seed=11, stall=48, latency_min=0, latency_max=24, load="dram_load.hex",
                                 dump="dram_dump.hex"))
