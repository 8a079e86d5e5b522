"""cocotb testbench: WaveCore's compute units inside the whole core (fetch, queues, tokens, DMA).

``compute_cases_match_the_simulator``: each case of ``wavecore_compute_cases.CASES`` (SHAPE and compute
instructions; the test's ``cases`` parameter, default all) is wrapped by
:func:`wavecore.verif.core_programs.wrapped_program` between a LOAD of the on-chip state
it uses and a STORE of it; the RTL's DRAM afterwards (read back through the backdoor) and its byte counters equal
the simulator's.

``counter_clear_zeroes_the_counters_in_program_order``: a COUNTER.clear that waits for a LOAD's token and passes
one to a STORE leaves the byte counters with the STORE's bytes only, as the simulator counts them; a
COUNTER.snapshot retires without changing anything (it is a no-op in this build: the counters are read over the
register port).

``compute_regions_outside_memory_end_in_their_error_code``: a compute instruction whose region leaves the
scratchpad or the accumulator memory ends the program in ``SCRATCHPAD_OUT_OF_RANGE`` at its address (the
simulator raises the same code for the same program); it does not retire, so the STORE waiting for its token never
runs, and DRAM equals the simulator's run of the instructions before it. The cases run back to back on one core
without a soft reset, so a blocked STORE a failed program leaves in its queue must be discarded by the next START
(it would otherwise take the next program's token). Python is idle while the core runs.

``instructions_dispatched_before_an_error_finish_before_done``: a STORE waiting for a long VECTOR's token when
the fetch unit meets an illegal word still runs, once the VECTOR retires (every executor idle in the cycle it
starts, the error long recorded), and ``done`` comes after it: DRAM equals the simulator's run of the
instructions before the illegal word, and the core makes no AXI request after ``done``.
"""

import cocotb
from cocotb.triggers import ClockCycles
from tb_wavecore import (
    PROGRAM_BASE,
    _host,
    _raw,
    assert_counters,
    assert_same_dram,
    image_with_data,
    parameters_from,
    run_both,
)
from wavecore_compute_cases import CASES, case_data, fault_bodies

from wavecore.golden.core import isa
from wavecore.golden.core.errors import ErrorCode
from wavecore.golden.core.semantics import core_numerics, makespan
from wavecore.golden.core.simulator import CoreError, Simulator
from wavecore.verif.core_programs import Program, wrapped_program
from wavecore.verif.host import CoreFault

SOURCE = 0x8000
DESTINATION = 0x20000


def _numerics(params, parameters):
    return core_numerics(parameters, overflow=params["overflow"])


async def _run(host, params, program, image):
    """Load ``image`` + ``program``; run the RTL; return (DRAM after, counters, fault)."""
    words = isa.encode_program(program)
    image = bytearray(image)
    image[PROGRAM_BASE : PROGRAM_BASE + len(words)] = words
    await host.load({0: bytes(image)})
    _, bound = makespan(program, parameters_from(params))
    fault = None
    try:
        result = await host.run(program_base=PROGRAM_BASE, expected_cycles=4 * bound + 20_000)
        counters = result.counters
    except CoreFault as error:
        fault, counters = error, error.counters
    return image, await host.read(0, params["dram_bytes"]), counters, fault


@cocotb.test()
async def compute_cases_match_the_simulator(dut):
    params, host = await _host(dut)
    parameters = parameters_from(params)
    numerics = _numerics(params, parameters)
    for name in params.get("cases", list(CASES)):
        body, scratchpad, accumulator = CASES[name](parameters, numerics)
        state = len(scratchpad) * parameters.operand_bytes + 64 + len(accumulator) * parameters.accumulator_bytes
        destination = max(DESTINATION, SOURCE + -(-state // 4096) * 4096)  # after the loaded state
        program = wrapped_program(parameters, body, source=SOURCE, destination=destination,
                                  scratchpad=len(scratchpad), accumulator=len(accumulator))
        image = case_data(parameters, scratchpad, accumulator, SOURCE, params["dram_bytes"])
        loaded, after, counters, fault = await _run(host, params, program, image)
        assert fault is None, f"case {name}: {fault}"
        expected = bytearray(loaded)
        simulator = Simulator(parameters=parameters, numerics=numerics)
        simulator.run(program, expected)
        assert_same_dram(after, bytes(expected), f"case {name}: DRAM")
        assert_counters(counters, simulator, program)
        dut._log.info(f"case {name}: {counters['cycles']} cycles measured, {simulator.cycles} predicted")


@cocotb.test()
async def loads_into_a_memory_a_unit_is_writing_lose_no_word(dut):
    """A LOAD runs while a VECTOR writes the same memory (the compute unit has the write port first, the LOAD's
    words wait in the core's load buffer and the DMA's read channel stops): both results, stored afterwards,
    equal the simulator's, so no waiting word was lost, duplicated or written twice."""
    params, host = await _host(dut)
    parameters = parameters_from(params)
    numerics = _numerics(params, parameters)
    elements = 2048  # a ReLU of this many elements writes the scratchpad for as many cycles
    shape = dict(samples=1, channels=8, height=16, width=16)
    assert 3 * elements <= parameters.scratchpad_elements
    activations = "activations.scratchpad"
    program = [
        isa.Instruction("SHAPE", fields=shape),
        isa.Instruction("LOAD", activations, {"dram_address": SOURCE, "scratch_address": 0, "length": elements},
                        push_next=True),
        isa.Instruction("VECTOR", "relu", dict(dst=elements, src0=0), pop_prev=True, push_next=True),
        # no token: these follow the first LOAD in the load queue, while the VECTOR writes. Three bus words to an
        # on-chip byte 3 into a word: three words and the flush's partial fourth wait at once (the buffer's
        # depth); then rows that start and end inside bus words.
        isa.Instruction("LOAD", activations, {"dram_address": SOURCE + elements,
                                              "scratch_address": 2 * elements + 3, "length": 24}, push_next=True),
        isa.Instruction("LOAD", activations, {"dram_address": SOURCE + elements + 1,
                                              "scratch_address": 2 * elements + 35, "length": 61, "count1": 33,
                                              "stride1": 62}, push_next=True),
        isa.Instruction("SYNC", pop_prev=True, push_next=True),  # the short LOAD's token
        isa.Instruction("SYNC", pop_prev=True, push_next=True),  # the long LOAD's, after it
        # each result alone (the bytes between them were never loaded: what the scratchpad held before)
        isa.Instruction("STORE", activations, {"dram_address": DESTINATION, "scratch_address": elements,
                                               "length": elements}, pop_prev=True),
        isa.Instruction("STORE", activations, {"dram_address": DESTINATION + elements,
                                               "scratch_address": 2 * elements + 3, "length": 24}, pop_prev=True),
        isa.Instruction("STORE", activations, {"dram_address": DESTINATION + elements + 64,
                                               "scratch_address": 2 * elements + 35, "length": 61 * 33},
                        pop_prev=True),
        isa.Instruction("END"),
    ]
    image = case_data(parameters, [0], [0], SOURCE, params["dram_bytes"])  # random bytes around SOURCE
    loaded, after, counters, fault = await _run(host, params, program, image)
    assert fault is None, str(fault)
    expected = bytearray(loaded)
    simulator = Simulator(parameters=parameters, numerics=numerics)
    simulator.run(program, expected)
    assert_same_dram(after, bytes(expected), "DRAM")
    assert_counters(counters, simulator, program)


@cocotb.test()
async def counter_clear_zeroes_the_counters_in_program_order(dut):
    params, host = await _host(dut)
    parameters = parameters_from(params)
    numerics = _numerics(params, parameters)
    image = case_data(parameters, list(range(64)), [0], SOURCE, params["dram_bytes"])
    memory = {"scratch_address": 0, "length": 64}
    program = [
        isa.Instruction("LOAD", "activations.scratchpad", {"dram_address": SOURCE, **memory}, push_next=True),
        isa.Instruction("COUNTER", "clear", {}, pop_prev=True, push_next=True),
        isa.Instruction("COUNTER", "snapshot", {"imm": 1}),
        isa.Instruction("STORE", "weights.scratchpad", {"dram_address": DESTINATION, **memory}, pop_prev=True),
        isa.Instruction("END"),
    ]
    loaded, after, counters, fault = await _run(host, params, program, image)
    assert fault is None, str(fault)
    simulator = Simulator(parameters=parameters, numerics=numerics)
    expected = bytearray(loaded)
    simulator.run(program, expected)
    assert_same_dram(after, bytes(expected), "DRAM")
    assert simulator.counters == {**dict.fromkeys(isa.TRAFFIC_CLASSES, 0), "weights": 64}
    for cls in isa.TRAFFIC_CLASSES:
        moved = counters[f"bytes_read_{cls}"] + counters[f"bytes_written_{cls}"]
        assert moved == simulator.counters[cls], (cls, moved, simulator.counters[cls])


@cocotb.test()
async def compute_regions_outside_memory_end_in_their_error_code(dut):
    params, host = await _host(dut)
    parameters = parameters_from(params)
    numerics = _numerics(params, parameters)
    image = case_data(parameters, [0], [0], SOURCE, params["dram_bytes"])
    for name, body in fault_bodies(parameters, numerics):
        program = Program(parameters)
        program.memory("LOAD", "weights", "scratchpad", dram_address=SOURCE, scratch_address=0, length=64)
        program.memory("STORE", "weights", "scratchpad", dram_address=DESTINATION, scratch_address=0, length=64)
        prefix = program.instructions(end=False)
        # the STORE of the failing instruction's result waits for its token: it must never run. A valid compute
        # instruction queued behind the failing one would push that token: the compute queue starts nothing
        # after a fault, during the program or after its end (docs/core.md), so it never runs either.
        never = isa.Instruction("STORE", "io.scratchpad", {"dram_address": DESTINATION + 0x1000, "length": 64},
                                pop_prev=True)
        follower = isa.Instruction("VECTOR", "relu", dict(dst=64, src0=0), push_next=True)
        body = [*body[:-1], body[-1].with_tokens(push_next=True)]
        full = [*prefix, *body, follower, never, isa.Instruction("END")]
        loaded, after, counters, fault = await _run(host, params, full, image)
        # idle after the end: 2,000 cycles later the counters and DRAM are what they were at the fault
        await ClockCycles(dut.clk, 2_000)
        assert await host.counters() == counters, f"{name}: the core ran on after the fault"
        assert await host.read(0, params["dram_bytes"]) == after, f"{name}: DRAM changed after the fault"
        failing = len(prefix) + len(body) - 1
        assert fault is not None, f"{name}: the program should stop with SCRATCHPAD_OUT_OF_RANGE"
        assert fault.code == ErrorCode.SCRATCHPAD_OUT_OF_RANGE, f"{name}: {fault}"
        assert fault.address == PROGRAM_BASE + failing * isa.INSTRUCTION_BYTES, f"{name}: {fault}"
        ran = [*prefix, *body[:-1], isa.Instruction("END")]
        expected = bytearray(loaded)
        Simulator(parameters=parameters, numerics=numerics).run(ran, expected)
        assert_same_dram(after, bytes(expected), f"{name}: DRAM")
        try:  # the simulator stops at the same instruction with the same code
            Simulator(parameters=parameters, numerics=numerics).run(full, bytearray(loaded))
        except CoreError as error:
            assert (error.code, error.index) == (ErrorCode.SCRATCHPAD_OUT_OF_RANGE, failing), (name, error)
        else:
            raise AssertionError(f"{name}: the simulator should stop too")
        image = after


@cocotb.test()
async def instructions_dispatched_before_an_error_finish_before_done(dut):
    params, host = await _host(dut)
    parameters = parameters_from(params)
    numerics = _numerics(params, parameters)
    elements = 16 * 8 * 8  # about a thousand cycles of VECTOR: the fetch meets the illegal word meanwhile
    region = {"length": 64, "count1": elements // 64, "stride1": 64}
    program = [
        isa.Instruction("SHAPE", fields=dict(samples=1, channels=16, height=8, width=8)),
        isa.Instruction("LOAD", "activations.scratchpad", {"dram_address": SOURCE, "scratch_address": 0, **region},
                        push_next=True),
        isa.Instruction("VECTOR", "relu", dict(dst=elements, src0=0), pop_prev=True, push_next=True),
        isa.Instruction("STORE", "activations.scratchpad",
                        {"dram_address": DESTINATION, "scratch_address": elements, **region}, pop_prev=True),
    ]
    illegal = _raw(isa.Instruction("SYNC"), opcode=0x7F)
    words = isa.encode_program(program) + illegal + isa.encode_program([isa.Instruction("END")])
    ran = [*program, isa.Instruction("END")]
    _, bound = makespan(ran, parameters)
    loaded, after, counters, fault = await run_both(host, params, ran, image_with_data(params, "wavecore-drain"),
                                                    words=words, cycles=4 * bound + 20_000)
    assert fault is not None and fault.code == ErrorCode.ILLEGAL_OPCODE, fault
    assert fault.address == PROGRAM_BASE + len(program) * isa.INSTRUCTION_BYTES, fault
    simulator = Simulator(parameters=parameters, numerics=numerics)
    expected = bytearray(loaded)
    simulator.run(ran, expected)
    assert_same_dram(after, bytes(expected), "DRAM")
    assert simulator.counters["activations"] == 2 * elements
    assert_counters(counters, simulator, ran)
