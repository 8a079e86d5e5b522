"""cocotb testbench: one compiled training step on the generated WaveCore (``verif/training_step.py`` drives it).

Reads its inputs from the files named in the run's params (written by :func:`wavecore.verif.training_step.
run_step_on_core`): ``image`` (the DRAM image before the step), ``program_base``, ``expected_cycles`` (the
compiler's prediction; the wait is bounded by a multiple of it), ``steps`` (how many times to start the
program). Loads the image through the DRAM model's backdoor, starts the core through its AXI4-Lite registers,
waits for ``irq`` with Python idle, and writes ``dram`` (the DRAM image after the last step) and ``result``
(JSON: counters after each step, or the error code and failing instruction's address; wall and CPU seconds of
each run) for the caller to compare. The test itself fails only when the core hangs or faults.
"""

import json
import time
from pathlib import Path

import cocotb

from wavecore.hdl.core.wavecore import core_register_map
from wavecore.verif.host import CoreFault, simulated_host
from wavecore.verif.runner import tb_params


@cocotb.test()
async def training_step(dut):
    params = tb_params()
    host = await simulated_host(dut, data_width=params["data_width"], register_map=core_register_map())
    image = Path(params["image"]).read_bytes()
    await host.load({0: image})
    results = []
    seconds = []  # wall and CPU seconds of each run alone (no build, load or dump): the simulation speed
    fault = None
    for _ in range(params.get("steps", 1)):
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            result = await host.run(program_base=params["program_base"],
                                    expected_cycles=params["cycle_bound"])
            seconds.append({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu})
        except CoreFault as error:
            fault = {"code": int(error.code), "address": int(error.address), "counters": dict(error.counters or {})}
            break
        results.append(dict(result.counters))
    after = await host.read(0, len(image))
    Path(params["dram"]).write_bytes(after)
    result = {"steps": results, "fault": fault, "seconds": seconds}
    Path(params["result"]).write_text(json.dumps(result, indent=1) + "\n")
    assert fault is None, f"the core stopped with error {fault['code']} at {fault['address']:#x}"
