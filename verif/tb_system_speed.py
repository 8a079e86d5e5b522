"""cocotb testbench of ``benchmarks/core_system_speed.py``: one long copy program on CopySystem, Python idle.

Loads ``words`` random bus words and a copy program through the DRAM backdoor, starts the program through the
register port, waits on the ``irq`` line (one trigger), checks the copy through the backdoor and writes
``speed.json`` (simulated cycles from the ``CYCLES`` counter, wall and CPU seconds of the run alone) in the
test directory. cocotb runs inside the simulator process, so ``time.process_time`` is the simulator's CPU time.
"""

import json
import time

import cocotb

from wavecore.verif.copy_system import copy_program
from wavecore.verif.host import simulated_host
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng


@cocotb.test()
async def long_copy(dut):
    params = tb_params()
    host = await simulated_host(dut, data_width=params["data_width"])
    word = params["data_width"] // 8
    words = params["words"]
    chunk = params["chunk"]
    source, destination = 1 << 16, (1 << 16) + words * word
    data = rng("speed").bytes(words * word)
    program = copy_program(source=source, destination=destination, chunk=chunk, chunks=words // chunk)
    await host.load({0x40: program, source: data})
    await host.command("clear_counters")
    wall, cpu = time.perf_counter(), time.process_time()
    await host.start(0x40)
    result = await host.wait(expected_cycles=4 * words)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert await host.read(destination, len(data)) == data, "the copy differs from the source"
    cycles = result.counters["cycles"]
    with open("speed.json", "w") as handle:
        json.dump({"cycles": cycles, "wall_seconds": wall, "cpu_seconds": cpu, "bytes": 2 * words * word}, handle)
