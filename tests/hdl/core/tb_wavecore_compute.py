"""cocotb testbench: WaveCore's compute units run inside the core (fetch, queues, tokens, DMA) like the simulator.

Each case is a body of SHAPE and compute instructions (:data:`CASES` in ``wavecore_compute_cases``) wrapped by
:func:`wavecore.verif.core_programs.wrapped_program` between a LOAD of the whole on-chip state used and a STORE
of it: the RTL's DRAM after the run (read back through the backdoor) must equal the simulator's byte for byte,
and so must the byte counters. Python is idle while the core runs.
"""

import cocotb
from tb_wavecore import PROGRAM_BASE, _host, assert_counters, assert_same_dram, parameters_from
from wavecore_compute_cases import CASES, case_data

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import core_numerics, makespan
from wavecore.golden.core.simulator import Simulator
from wavecore.verif.core_programs import wrapped_program

SOURCE = 0x8000
DESTINATION = 0x20000


async def _run_case(host, params, name):
    parameters = parameters_from(params)
    numerics = core_numerics(parameters)
    body, scratchpad, accumulator = CASES[name](parameters)
    program = wrapped_program(parameters, body, source=SOURCE, destination=DESTINATION, scratchpad=len(scratchpad),
                              accumulator=len(accumulator))
    image = case_data(parameters, scratchpad, accumulator, SOURCE, params["dram_bytes"])
    words = isa.encode_program(program)
    image[PROGRAM_BASE : PROGRAM_BASE + len(words)] = words
    expected = bytearray(image)
    simulator = Simulator(parameters=parameters, numerics=numerics)
    simulator.run(program, expected)
    await host.load({0: bytes(image)})
    _, bound = makespan(program, parameters)
    result = await host.run(program_base=PROGRAM_BASE, expected_cycles=20 * bound + 20_000)
    after = await host.read(0, params["dram_bytes"])
    assert_same_dram(after, bytes(expected), f"case {name}: DRAM")
    assert_counters(result.counters, simulator, program)
    assert result.counters["instructions"] == len(program), f"case {name}: instructions retired"
    return result.counters["cycles"], simulator.cycles


@cocotb.test()
async def compute_cases_match_the_simulator(dut):
    params, host = await _host(dut)
    for name in params["cases"]:
        measured, predicted = await _run_case(host, params, name)
        dut._log.info("case %s: %d cycles measured, %d predicted", name, measured, predicted)
