"""cocotb testbench: the host driver runs copy programs on CopySystem (registers + DMA + HDL DRAM model).

Python does nothing per cycle while a program runs: the host loads DRAM through the backdoor file, writes four
registers through AxiLiteMaster, then waits on one trigger (the ``irq`` edge or a Timer of the cycle limit).
The expected DRAM image is built in Python from the data the test wrote (source copied to destination, nothing
else changed); the expected counters are the copied bytes charged to the program's class.
"""

import cocotb

from wavecore.hdl.core.registers import ErrorCode, RegisterMap
from wavecore.verif.copy_system import PROGRAM_BYTES, copy_program
from wavecore.verif.host import (
    CoreFault,
    CoreTimeout,
    Host,
    simulated_host,
)
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng

PROGRAM_BASE = 0x40


async def _host(dut):
    params = tb_params()
    host = await simulated_host(dut, data_width=params["data_width"], register_map=RegisterMap())
    return params, host


def _expected_cycles(words: int) -> int:
    """A deliberately rough model of a copy: one bus word per cycle each way, plus fixed overheads."""
    return 2 * words + 200


@cocotb.test()
async def copy_programs_move_buffers_with_python_idle(dut):
    params, host = await _host(dut)
    identity = await host.identify()
    assert identity["CONFIG_WIDTHS"] >> 16 == params["data_width"]
    random = rng("copy_system")
    word = params["data_width"] // 8
    regs = host.map
    for run, (chunk, chunks, cls) in enumerate(params["programs"]):
        words = chunk * chunks
        source = 0x1000 + run * 0x100 * word
        destination = params["dram_bytes"] // 2 + run * 0x80 * word
        data = random.bytes(words * word)
        before = await host.read(destination - word, (words + 2) * word)
        program = copy_program(source=source, destination=destination, chunk=chunk, chunks=chunks,
                               traffic_class=cls)
        result = await host.run(program_base=PROGRAM_BASE, expected_cycles=_expected_cycles(words),
                                segments={PROGRAM_BASE: program, source: data})
        after = await host.read(destination - word, (words + 2) * word)
        assert after[word:-word] == data, f"program {run}: the copy differs from the source"
        assert after[:word] == before[:word] and after[-word:] == before[-word:], "neighbouring words changed"
        counters = result.counters
        for index, name in enumerate(regs.traffic_classes):
            moved = words * word if index == cls else 0
            assert counters[f"bytes_read_{name}"] == moved, (name, counters[f"bytes_read_{name}"])
            assert counters[f"bytes_written_{name}"] == moved, (name, counters[f"bytes_written_{name}"])
        assert counters["instructions"] == 1
        assert counters["array_busy"] == 0
        assert words < counters["cycles"] <= result.cycle_limit
        dut._log.info(f"copy of {words} words: {counters['cycles']} cycles")


@cocotb.test()
async def faults_end_in_the_documented_error_status(dut):
    params, host = await _host(dut)
    dram = params["dram_bytes"]
    half = params["scratch_words"] // 2
    word = params["data_width"] // 8
    sentinel = bytes(range(256)) * 4
    await host.load({dram // 2: sentinel})
    cases = [
        (copy_program(source=0, destination=dram // 2, chunk=4, chunks=1, opcode=0x7F), ErrorCode.ILLEGAL_OPCODE),
        (copy_program(source=0, destination=dram // 2, chunk=4, chunks=1, traffic_class=99),
         ErrorCode.ILLEGAL_FIELD),
        (copy_program(source=0, destination=dram // 2, chunk=half + 1, chunks=1),
         ErrorCode.SCRATCHPAD_OUT_OF_RANGE),
        (copy_program(source=dram - 8 * word, destination=dram // 2, chunk=4, chunks=3),
         ErrorCode.DRAM_OUT_OF_RANGE),
        (copy_program(source=0, destination=dram - 4 * word, chunk=8, chunks=1), ErrorCode.DRAM_OUT_OF_RANGE),
    ]
    for base, (program, code) in zip((0x40, 0x80, 0xC0, 0x100, 0x140), cases, strict=True):
        await host.load({base: program})
        try:
            await host.run(program_base=base, expected_cycles=100)
        except CoreFault as fault:
            assert fault.code == code, f"{fault} (expected {code.name})"
            assert fault.address == base
            assert code.name in str(fault) and f"{base:#x}" in str(fault)
        else:
            raise AssertionError(f"program at {base:#x} should have stopped with {code.name}")
        assert await host.read(dram // 2, len(sentinel)) == sentinel, f"{code.name}: DRAM changed"
    # The program record itself outside DRAM.
    try:
        await host.run(program_base=dram - PROGRAM_BYTES // 2, expected_cycles=100)
    except CoreFault as fault:
        assert fault.code == ErrorCode.DRAM_OUT_OF_RANGE and fault.address == dram - PROGRAM_BYTES // 2
    else:
        raise AssertionError("a program outside DRAM should have stopped with DRAM_OUT_OF_RANGE")


@cocotb.test()
async def start_while_busy_and_timeout(dut):
    params, host = await _host(dut)
    word = params["data_width"] // 8
    chunk = params["scratch_words"] // 2
    chunks = 8
    words = chunk * chunks
    random = rng("busy")
    data = random.bytes(words * word)
    source, destination = 0x2000, params["dram_bytes"] // 2
    await host.load({PROGRAM_BASE: copy_program(source=source, destination=destination, chunk=chunk,
                                                 chunks=chunks), source: data})
    # A limit far below the copy's length: CoreTimeout naming the limit, the core still busy.
    tight = Host(registers=host.registers, memory=host.memory, completion=host.completion, margin=0, slack=0)
    await tight.start(PROGRAM_BASE)
    try:
        await tight.wait(50)
    except CoreTimeout as timeout:
        assert "within 50 cycles" in str(timeout) and "busy=1" in str(timeout)
    else:
        raise AssertionError("the copy cannot finish in 50 cycles")
    # START again while it runs: refused, recorded; the running copy still completes.
    await host.command("start")
    try:
        await host.wait(_expected_cycles(words))
    except CoreFault as fault:
        assert fault.code == ErrorCode.START_WHILE_BUSY and fault.address == PROGRAM_BASE
    else:
        raise AssertionError("START while busy must be reported")
    assert await host.read(destination, len(data)) == data
    # A new START clears the error; the same program runs cleanly.
    result = await host.run(program_base=PROGRAM_BASE, expected_cycles=_expected_cycles(words))
    assert result.counters["instructions"] == 1
