"""cocotb testbench of ``benchmarks/wavecore_speed.py``: one long LOAD/STORE program on the WaveCore, Python idle.

Loads random data and a double-buffered copy program (``verif/core_programs.py``: ``tensors`` tensors of
``tensor_bytes`` bytes, tokens from ``ProgramBuilder``) through the DRAM backdoor, starts it through the register
port, waits on the ``irq`` line (one trigger), checks the copies through the backdoor and writes ``speed.json``
(simulated cycles from the ``CYCLES`` counter, wall and CPU seconds of the run alone, instructions, bytes moved).
"""

import json
import time

import cocotb

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters
from wavecore.hdl.core.wavecore import core_register_map
from wavecore.verif.core_programs import copy_program
from wavecore.verif.host import simulated_host
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng

PROGRAM_BASE = 0x100
SOURCE = 1 << 16


@cocotb.test()
async def long_program(dut):
    params = tb_params()
    host = await simulated_host(dut, data_width=params["data_width"], register_map=core_register_map())
    parameters = CoreParameters(scratchpad_elements=params["scratchpad_elements"],
                                accumulator_elements=params["accumulator_elements"], dram_bytes=params["dram_bytes"])
    size, count = params["tensor_bytes"], params["tensors"]
    destination = SOURCE + count * size
    program = copy_program(parameters, [("activations", "scratchpad", size, 1, 0, 1, 0)] * count, source=SOURCE,
                           destination=destination)
    data = rng("wavecore-speed").bytes(count * size)
    await host.load({PROGRAM_BASE: isa.encode_program(program), SOURCE: data})
    await host.command("clear_counters")
    wall, cpu = time.perf_counter(), time.process_time()
    await host.start(PROGRAM_BASE)
    # bound: every word moved twice at one per cycle, plus 200 cycles per instruction (fetch and issue)
    result = await host.wait(expected_cycles=4 * count * size // (params["data_width"] // 8) + 200 * len(program))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert await host.read(destination, len(data)) == data, "the copies differ from the source"
    counters = result.counters
    assert counters["bytes_read_activations"] == counters["bytes_written_activations"] == len(data)
    with open("speed.json", "w") as handle:
        json.dump({"cycles": counters["cycles"], "wall_seconds": wall, "cpu_seconds": cpu,
                   "instructions": counters["instructions"], "bytes": 2 * len(data)}, handle)
