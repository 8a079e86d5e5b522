"""cocotb testbench: WaveCore (fetch, decode, queues with tokens, LOAD/STORE by the DMA) in CoreSystem.

Every program is assembled with ``golden.core.isa`` (tokens from ``golden.core.program.ProgramBuilder``) and
run by the instruction-level simulator (``golden.core.simulator.Simulator``) on the same DRAM image; the RTL
must leave the same DRAM image (the whole DRAM model, read back through the backdoor) and the same bytes per
traffic class. Python is idle while the core runs (``InterruptLine``); every wait has a cycle limit derived
from the program (:func:`expected_cycles`).
"""

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, dma_rows, makespan
from wavecore.golden.core.simulator import CoreError, Simulator
from wavecore.golden.numerics import INTEGER_PRESETS
from wavecore.hdl.core.registers import ErrorCode
from wavecore.hdl.core.wavecore import core_register_map
from wavecore.verif.core_programs import Program
from wavecore.verif.core_programs import copy_program as copies
from wavecore.verif.host import CoreFault, simulated_host
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng

PROGRAM_BASE = 0x100
SOURCE = 0x4000  # tensors to copy
DESTINATION = 0x20000  # where the copies go


def parameters_from(params) -> CoreParameters:
    return CoreParameters(rows=params.get("rows", 8), cols=params.get("cols", 8),
                          scratchpad_elements=params["scratchpad_elements"],
                          accumulator_elements=params["accumulator_elements"], dram_bytes=params["dram_bytes"])


async def _host(dut):
    params = tb_params()
    host = await simulated_host(dut, data_width=params["data_width"], register_map=core_register_map())
    return params, host


def expected_cycles(program, params) -> int:
    """An upper bound of the run: every instruction fetched and executed one after the other, each DRAM burst
    paying the model's worst latency and a bus word per cycle slowed by the stall probability."""
    parameters = parameters_from(params)
    word = params["data_width"] // 8
    slow = 256 / (256 - params.get("stall", 0))
    latency = params.get("latency_max", 0) + 8
    total = 0
    for instruction in program:
        total += 2 * latency + 16
        if instruction.opcode in ("LOAD", "STORE"):
            rows, _ = dma_rows(instruction, parameters)
            for start, stop in rows:
                words = (stop - 1) // word - start // word + 1  # the bus words the row covers
                bursts = -(-words // params["max_burst"]) + 1  # + a 4 KiB split
                total += bursts * latency + words + 2
    return int(total * slow)


def image_with_data(params, seed_name: str) -> bytearray:
    image = bytearray(rng(seed_name).bytes(params["dram_bytes"]))
    return image


async def _bus_request_after_done(dut, cycles: int = 256) -> str | None:
    """From the rise of ``irq`` (``done``): when the core first presents an AXI read or write address in the
    next ``cycles`` cycles (``"N cycles after done"``), or None. The core has ended at ``done``: an instruction
    still running then (a STORE that started in the cycle the error drain looked quiet) would write DRAM behind
    the host's back."""
    await RisingEdge(dut.irq)
    for cycle in range(cycles):
        if int(dut.bus_request.value):
            return f"{cycle} cycles after done"
        await RisingEdge(dut.clk)
    return None


async def run_both(host, params, program, image, *, words=None, cycles=None):
    """Load ``image`` + the program, run it on the RTL and on the simulator; return both DRAM images and the
    RTL's counters (or the CoreFault). The core must make no DRAM request between ``done`` and the read-back.
    ``cycles`` bounds the run (default :func:`expected_cycles`, which counts no compute unit's cycles)."""
    words = words if words is not None else isa.encode_program(program)
    image = bytearray(image)
    image[PROGRAM_BASE : PROGRAM_BASE + len(words)] = words
    await host.load({0: bytes(image)})
    fault = None
    watch = cocotb.start_soon(_bus_request_after_done(cocotb.top))
    try:
        result = await host.run(program_base=PROGRAM_BASE,
                                expected_cycles=cycles or expected_cycles(program, params))
        counters = result.counters
    except CoreFault as error:
        fault, counters = error, error.counters
    after = await host.read(0, params["dram_bytes"])
    request = await watch
    assert request is None, f"the core presented an AXI read or write address {request}"
    return image, after, counters, fault


def simulate(params, program, image):
    simulator = Simulator(parameters=parameters_from(params), numerics=INTEGER_PRESETS["int8"])
    dram = bytearray(image)
    simulator.run(program, dram)
    return dram, simulator


def copy_program(params, tensors):
    return copies(parameters_from(params), tensors, source=SOURCE, destination=DESTINATION)


TENSORS = [
    # (class, space, length, count1, stride1, count2, stride2) in elements
    ("activations", "scratchpad", 64, 4, 64, 1, 0),
    ("weights", "scratchpad", 24, 3, 40, 2, 200),
    ("stash", "accumulator", 16, 4, 32, 1, 0),
    ("activation_grads", "scratchpad", 8, 1, 0, 1, 0),
    ("weight_grads", "accumulator", 6, 5, 6, 2, 64),
    ("optimizer", "scratchpad", 128, 2, 136, 1, 0),
    ("io", "scratchpad", 32, 1, 0, 1, 0),
    ("norm_passes", "accumulator", 10, 3, 12, 1, 0),
    ("activations", "scratchpad", 16, 8, 24, 3, 256),
]


def assert_same_dram(after, expected, what="DRAM"):
    if after != expected:
        wrong = [i for i in range(len(after)) if after[i] != expected[i]]
        listed = ", ".join(f"{i:#x}: {after[i]:#04x} != {expected[i]:#04x}" for i in wrong[:12])
        raise AssertionError(f"{what} differs from the simulator's at {len(wrong)} bytes, first {wrong[0]:#x}, last "
                             f"{wrong[-1]:#x} ({listed})")


def assert_counters(counters, simulator, program):
    """The RTL's bytes per class and direction equal the simulator's trace (LOADs read, STOREs write; the
    simulator's per-class total is their sum)."""
    for cls in isa.TRAFFIC_CLASSES:
        moved = {opcode: sum(entry.bytes.get(cls, 0) for entry in simulator.trace
                             if program[entry.index].opcode == opcode) for opcode in ("LOAD", "STORE")}
        assert moved["LOAD"] + moved["STORE"] == simulator.counters[cls]
        assert counters[f"bytes_read_{cls}"] == moved["LOAD"], (cls, counters[f"bytes_read_{cls}"], moved)
        assert counters[f"bytes_written_{cls}"] == moved["STORE"], (cls, counters[f"bytes_written_{cls}"], moved)


@cocotb.test()
async def copies_match_the_simulator(dut):
    """(1) and (3): LOAD/STORE programs with tokens, several classes, both memories; DRAM and counters equal
    the simulator's (under the DRAM model's random latency and stalls when the test sets them)."""
    params, host = await _host(dut)
    program = copy_program(params, TENSORS)
    assert {ins.opcode for ins in program} >= {"LOAD", "STORE", "SYNC", "END"}
    assert any(ins.pop_next for ins in program if ins.opcode == "LOAD"), "no LOAD waits for a STORE"
    image = image_with_data(params, "wavecore-copy")
    loaded, after, counters, fault = await run_both(host, params, program, image)
    assert fault is None, str(fault)
    expected, simulator = simulate(params, program, loaded)
    assert expected != loaded, "the program changes DRAM"
    assert_same_dram(after, expected)
    assert_counters(counters, simulator, program)
    assert counters["instructions"] == len(program)
    _, predicted = makespan(program, parameters_from(params))
    dut._log.info(f"copy program: {len(program)} instructions, {sum(simulator.counters.values())} bytes moved, "
                  f"{counters['cycles']} cycles measured, {predicted} predicted by golden.core.semantics.makespan")


#: 3-D descriptors (both counts above 1) per on-chip space: (length, count1, stride1, count2, stride2) in elements
EDGE_DESCRIPTORS = {"scratchpad": (16, 3, 32, 2, 128), "accumulator": (4, 2, 8, 3, 32)}


def edge_descriptor(params, space: str, beyond: int = 0) -> dict:
    """The fields of a descriptor of ``space`` whose last element is the last element of DRAM (``beyond``
    elements further when given)."""
    parameters = parameters_from(params)
    size = parameters.operand_bytes if space == "scratchpad" else parameters.accumulator_bytes
    length, count1, stride1, count2, stride2 = EDGE_DESCRIPTORS[space]
    extent = (count2 - 1) * stride2 + (count1 - 1) * stride1 + length  # elements from the first to past the last
    return {"dram_address": params["dram_bytes"] - (extent - beyond) * size, "length": length, "count1": count1,
            "stride1": stride1, "count2": count2, "stride2": stride2}


@cocotb.test()
async def descriptors_ending_at_the_end_of_dram_run(dut):
    """A LOAD and a STORE of each on-chip space whose 3-D descriptor's last element is the last element of DRAM
    run (a descriptor is inside DRAM when its last byte is: docs/core.md): DRAM and counters equal the
    simulator's. The same descriptors one element further end in DRAM_OUT_OF_RANGE (fault_cases)."""
    params, host = await _host(dut)
    image = image_with_data(params, "wavecore-dram-edge")
    for space, chip in (("scratchpad", (0, 1024)), ("accumulator", (0, 256))):
        edge = edge_descriptor(params, space)
        cls = f"io.{space}"
        # the end of DRAM into the chip and out to DESTINATION, then SOURCE into the chip and out to the end of
        # DRAM (the tokens order that STORE after the first LOAD)
        program = [
            isa.Instruction("LOAD", cls, {**edge, "scratch_address": chip[0]}, push_next=True),
            isa.Instruction("SYNC", pop_prev=True, push_next=True),
            isa.Instruction("STORE", cls, {**edge, "dram_address": DESTINATION, "scratch_address": chip[0]},
                            pop_prev=True),
            isa.Instruction("LOAD", cls, {**edge, "dram_address": SOURCE, "scratch_address": chip[1]},
                            push_next=True),
            isa.Instruction("SYNC", pop_prev=True, push_next=True),
            isa.Instruction("STORE", cls, {**edge, "scratch_address": chip[1]}, pop_prev=True),
            isa.Instruction("END"),
        ]
        loaded, after, counters, fault = await run_both(host, params, program, image)
        assert fault is None, f"{space}: descriptors ending at the last DRAM byte must run: {fault}"
        expected, simulator = simulate(params, program, loaded)
        assert expected[-16:] != loaded[-16:], "the program writes the end of DRAM"
        assert_same_dram(after, expected, f"{space}: DRAM")
        assert_counters(counters, simulator, program)
        image = after


def _raw(instruction, **overrides) -> bytes:
    """An instruction's word with header/format fields overwritten (words the assembler would refuse)."""
    word = isa.encode(instruction)
    for name, value in overrides.items():
        spec = next(s for s in isa.HEADER + isa.FORMATS[instruction.format] if s.name == name)
        word &= ~(((1 << spec.width) - 1) << spec.offset)
        word |= value << spec.offset
    return word.to_bytes(isa.INSTRUCTION_BYTES, "little")


def fault_cases(params):
    """``(name, prefix program, failing word, code)``: the prefix copies one tensor, then the failing word,
    then a STORE that must never run."""
    parameters = parameters_from(params)
    dram, spad = params["dram_bytes"], parameters.scratchpad_elements
    load = isa.Instruction("LOAD", "weights.scratchpad", {"dram_address": SOURCE, "scratch_address": 0,
                                                          "length": 64})
    store = isa.Instruction("STORE", "weights.scratchpad", {"dram_address": DESTINATION, "scratch_address": 0,
                                                            "length": 64})
    return [
        ("illegal opcode", _raw(isa.Instruction("SYNC"), opcode=0x7F), ErrorCode.ILLEGAL_OPCODE),
        ("illegal funct", _raw(isa.Instruction("GEMM", "forward"), funct=9), ErrorCode.ILLEGAL_FIELD),
        ("zero length", _raw(load, length=0), ErrorCode.ILLEGAL_FIELD),
        ("load pop_prev", _raw(load, pop_prev=1), ErrorCode.ILLEGAL_FIELD),
        ("gemm", isa.encode_program([isa.Instruction("GEMM", "forward")]), ErrorCode.NOT_IMPLEMENTED),
        ("vector", isa.encode_program([isa.Instruction("VECTOR", "relu")]), ErrorCode.NOT_IMPLEMENTED),
        ("accumulator address not element-aligned", isa.encode_program([isa.Instruction(
            "LOAD", "stash.accumulator", {"dram_address": SOURCE + 2, "length": 3})]), ErrorCode.MISALIGNED),
        ("accumulator store address not element-aligned", isa.encode_program([isa.Instruction(
            "STORE", "weight_grads.accumulator", {"dram_address": DESTINATION + 4 * 7 + 1, "scratch_address": 5,
                                                  "length": 1})]), ErrorCode.MISALIGNED),
        ("store outside DRAM", isa.encode_program([isa.Instruction(
            "STORE", "io.scratchpad", {"dram_address": dram - 32, "length": 64})]), ErrorCode.DRAM_OUT_OF_RANGE),
        ("3-D load one element past the end of DRAM", isa.encode_program([isa.Instruction(
            "LOAD", "io.scratchpad", edge_descriptor(params, "scratchpad", beyond=1))]), ErrorCode.DRAM_OUT_OF_RANGE),
        ("3-D accumulator store one element past the end of DRAM", isa.encode_program([isa.Instruction(
            "STORE", "io.accumulator", edge_descriptor(params, "accumulator", beyond=1))]),
         ErrorCode.DRAM_OUT_OF_RANGE),
        ("load rows outside DRAM", isa.encode_program([isa.Instruction(
            "LOAD", "io.scratchpad", {"dram_address": dram - 1024, "length": 64, "count1": 3, "stride1": 512})]),
         ErrorCode.DRAM_OUT_OF_RANGE),
        ("scratchpad region", isa.encode_program([isa.Instruction(
            "LOAD", "io.scratchpad", {"dram_address": SOURCE, "scratch_address": spad - 64, "length": 64,
                                      "count1": 2})]), ErrorCode.SCRATCHPAD_OUT_OF_RANGE),
        ("accumulator region", isa.encode_program([isa.Instruction(
            "STORE", "io.accumulator", {"dram_address": DESTINATION, "scratch_address": 0, "length": 2,
                                        "count1": 255, "count2": 3})]), ErrorCode.SCRATCHPAD_OUT_OF_RANGE),
    ], (load.with_tokens(push_next=True), isa.Instruction("SYNC", pop_prev=True, push_next=True),
        store.with_tokens(pop_prev=True))


#: The faults both the RTL and the simulator detect (``ErrorCode.raised_by``): they give the same code (the
#: simulator implements every instruction and moves elements, so NOT_IMPLEMENTED and MISALIGNED are the RTL's
#: alone).
SHARED_CODES = {code for code in ErrorCode if code.raised_by == ("rtl", "simulator") and code != ErrorCode.NONE}


@cocotb.test()
async def faults_end_in_their_error_code(dut):
    """(2): each fault ends in its code at the failing instruction's address; DRAM equals the simulator's run
    of the instructions before it (nothing after the failing instruction runs)."""
    params, host = await _host(dut)
    cases, prefix = fault_cases(params)
    image = image_with_data(params, "wavecore-faults")
    never = isa.Instruction("STORE", "io.scratchpad", {"dram_address": DESTINATION + 0x1000, "length": 64})
    for name, failing, code in cases:
        words = isa.encode_program(prefix) + failing + isa.encode_program([never, isa.Instruction("END")])
        loaded, after, counters, fault = await run_both(host, params, [*prefix, never, never], image,
                                                         words=words)
        assert fault is not None, f"{name}: the program should stop with {code.name}"
        failing_address = PROGRAM_BASE + len(prefix) * isa.INSTRUCTION_BYTES
        assert fault.code == code, f"{name}: {fault} (expected {code.name})"
        assert fault.address == failing_address, f"{name}: {fault} (expected address {failing_address:#x})"
        ran = [*prefix, isa.Instruction("END")]
        expected, simulator = simulate(params, ran, loaded)
        assert_same_dram(after, expected, f"{name}: DRAM")
        assert_counters(counters, simulator, ran)
        if code in SHARED_CODES:  # the simulator fetching the same words stops at the same instruction
            fetcher = Simulator(parameters=parameters_from(params), numerics=INTEGER_PRESETS["int8"])
            try:
                fetcher.run_from_dram(bytearray(loaded), PROGRAM_BASE, len(prefix) + 3)
            except CoreError as error:
                assert error.code == code and error.index == len(prefix), (name, error.code, error.index)
            else:
                raise AssertionError(f"{name}: the simulator should stop too")
        image = after


@cocotb.test()
async def fetch_outside_dram_and_deadlock_end_with_an_error(dut):
    params, host = await _host(dut)
    dram = params["dram_bytes"]
    # A program whose last instruction is the last DRAM word and has no END: the next fetch is outside.
    base = dram - isa.INSTRUCTION_BYTES
    await host.load({base: isa.encode_program([isa.Instruction("SYNC")])})
    try:
        await host.run(program_base=base, expected_cycles=200)
    except CoreFault as fault:
        assert fault.code == ErrorCode.DRAM_OUT_OF_RANGE and fault.address == dram, str(fault)
    else:
        raise AssertionError("a fetch outside DRAM must stop the core")
    # A PROGRAM_BASE above 32 bits: the whole 64-bit address is reported.
    try:
        await host.run(program_base=(1 << 32) + PROGRAM_BASE, expected_cycles=200)
    except CoreFault as fault:
        assert fault.code == ErrorCode.DRAM_OUT_OF_RANGE and fault.address == (1 << 32) + PROGRAM_BASE, str(fault)
    else:
        raise AssertionError("a fetch outside DRAM must stop the core")
    # A misaligned PROGRAM_BASE.
    try:
        await host.run(program_base=PROGRAM_BASE + 8, expected_cycles=200)
    except CoreFault as fault:
        assert fault.code == ErrorCode.MISALIGNED and fault.address == PROGRAM_BASE + 8, str(fault)
    else:
        raise AssertionError("a misaligned PROGRAM_BASE must stop the core")
    # An instruction waiting for a token nobody pushes: DEADLOCK, not a hang, at the oldest blocked instruction
    # (the lowest address among the queue heads: docs/core.md), whichever queue holds it and whatever the
    # other queues hold or held before.
    store = isa.Instruction("STORE", "io.scratchpad", {"dram_address": DESTINATION, "length": 8})
    load = isa.Instruction("LOAD", "io.scratchpad", {"dram_address": SOURCE, "length": 8})
    sync, end = isa.Instruction("SYNC"), isa.Instruction("END")
    for name, program, blocked in [
        ("a STORE without its token", [sync, store.with_tokens(pop_prev=True), end], 1),
        ("a LOAD without its token, END behind it", [store, sync, load.with_tokens(pop_next=True), end], 2),
        ("a SYNC without its token, a STORE after it", [load, store, sync.with_tokens(pop_prev=True), store, end], 2),
    ]:
        await host.load({PROGRAM_BASE: isa.encode_program(program)})
        try:
            await host.run(program_base=PROGRAM_BASE, expected_cycles=400)
        except CoreFault as fault:
            assert fault.code == ErrorCode.DEADLOCK, f"{name}: {fault}"
            assert fault.address == PROGRAM_BASE + blocked * isa.INSTRUCTION_BYTES, f"{name}: {fault}"
        else:
            raise AssertionError(f"{name} must end in DEADLOCK")


@cocotb.test()
async def start_while_busy_is_refused_and_the_program_completes(dut):
    params, host = await _host(dut)
    program = copy_program(params, TENSORS[:4])
    image = image_with_data(params, "wavecore-busy")
    image[PROGRAM_BASE : PROGRAM_BASE + len(program) * 16] = isa.encode_program(program)
    await host.load({0: bytes(image)})
    await host.command("clear_counters")
    await host.start(PROGRAM_BASE)
    await host.command("start")  # refused: the program runs on
    try:
        await host.wait(expected_cycles(program, params))
    except CoreFault as fault:
        assert fault.code == ErrorCode.START_WHILE_BUSY and fault.address == PROGRAM_BASE, str(fault)
    else:
        raise AssertionError("START while busy must be reported")
    expected, _ = simulate(params, program, image)
    assert_same_dram(await host.read(0, params["dram_bytes"]), expected)
    # A new START clears the error and runs the program again to the same image.
    result = await host.run(program_base=PROGRAM_BASE, expected_cycles=expected_cycles(program, params))
    assert result.counters["instructions"] == len(program)


def overwrite_program(params, *, tokens=True):
    """A long STORE out of a buffer, then a short LOAD into the buffer's end (a write-after-read the tokens
    order: store -> SYNC -> load), then the buffer's end stored elsewhere."""
    program = Program(parameters_from(params))
    long, short = 2048, 64
    program.memory("LOAD", "activations", dram_address=SOURCE, scratch_address=0, length=long)
    program.memory("STORE", "activations", dram_address=DESTINATION, scratch_address=0, length=long)
    program.memory("LOAD", "weights", dram_address=SOURCE + 0x2000, scratch_address=long - short, length=short)
    program.memory("STORE", "weights", dram_address=DESTINATION + 0x2000, scratch_address=long - short,
                   length=short)
    instructions = program.instructions()
    if not tokens:
        instructions = [ins.with_tokens(**dict.fromkeys(isa.TOKEN_BITS, False)) for ins in instructions
                        if ins.opcode != "SYNC"]
    return instructions


@cocotb.test()
async def tokens_order_a_store_before_the_load_that_overwrites_its_buffer(dut):
    """(3): under the DRAM model's random latency and stalls the STORE's data is the buffer before the LOAD
    that overwrites it; the same program without tokens stores the new data (so the test sees the tokens)."""
    params, host = await _host(dut)
    program = overwrite_program(params)
    assert sum(ins.pop_next for ins in program if ins.opcode == "LOAD") == 1, "the LOAD waits for the STORE"
    image = image_with_data(params, "wavecore-tokens")
    loaded, after, counters, fault = await run_both(host, params, program, image)
    assert fault is None, str(fault)
    expected, simulator = simulate(params, program, loaded)
    assert_same_dram(after, expected)
    assert_counters(counters, simulator, program)
    if params.get("stall", 0):  # only a slow STORE loses the race deterministically
        tokenless = overwrite_program(params, tokens=False)
        _, after, _, fault = await run_both(host, params, tokenless, loaded)
        assert fault is None, str(fault)
        stored = slice(DESTINATION, DESTINATION + 2048)
        assert after[stored] != expected[stored], ("without tokens the LOAD should overwrite the buffer before "
                                                   "the STORE read it")
        assert after[DESTINATION + 2048 - 64 : DESTINATION + 2048] == loaded[SOURCE + 0x2000 : SOURCE + 0x2040]


@cocotb.test()
async def token_overflow_and_soft_reset(dut):
    """TOKEN_OVERFLOW at the LOAD whose push finds its counter full; a soft reset mid-program returns the core
    to idle and the next program runs to the simulator's image."""
    params, host = await _host(dut)
    full = (1 << params.get("token_width", 8)) - 1
    pushes = [isa.Instruction("LOAD", "io.scratchpad", {"dram_address": SOURCE, "length": 8}, push_next=True)
              for _ in range(full + 1)]
    program = [*pushes, isa.Instruction("END")]
    image = image_with_data(params, "wavecore-overflow")
    _, _, counters, fault = await run_both(host, params, program, image)
    assert fault is not None and fault.code == ErrorCode.TOKEN_OVERFLOW, str(fault)
    assert fault.address == PROGRAM_BASE + full * isa.INSTRUCTION_BYTES, str(fault)
    assert counters["bytes_read_io"] >= (full + 1) * 8

    program = copy_program(params, TENSORS)
    image[PROGRAM_BASE : PROGRAM_BASE + len(program) * 16] = isa.encode_program(program)
    await host.load({0: bytes(image)})
    await host.start(PROGRAM_BASE)
    await ClockCycles(dut.clk, 300)
    status = host.map["STATUS"]
    assert await host.registers.read32(status.offset) & status.field("busy").mask, "the program should still run"
    await host.command("soft_reset")
    await ClockCycles(dut.clk, 200)
    assert await host.registers.read32(status.offset) == 0, "a soft reset returns the core to idle"
    result = await host.run(program_base=PROGRAM_BASE, expected_cycles=expected_cycles(program, params))
    expected, _ = simulate(params, program, image)
    assert_same_dram(await host.read(0, params["dram_bytes"]), expected)
    assert result.counters["instructions"] == len(program)


@cocotb.test()
async def a_soft_reset_in_any_cycle_of_the_first_fetches_returns_the_core_to_idle(dut):
    """A soft reset in each of the program's first 48 cycles (the fetch unit issuing, receiving, decoding and
    dispatching its first words, the first LOAD starting): the core is idle again within 200 cycles, and the
    program then runs to the simulator's image."""
    params, host = await _host(dut)
    program = copy_program(params, TENSORS)
    image = image_with_data(params, "wavecore-soft-reset")
    image[PROGRAM_BASE : PROGRAM_BASE + len(program) * 16] = isa.encode_program(program)
    await host.load({0: bytes(image)})
    status = host.map["STATUS"]
    for delay in range(48):
        await host.start(PROGRAM_BASE)
        if delay:
            await ClockCycles(dut.clk, delay)
        await host.command("soft_reset")
        await ClockCycles(dut.clk, 200)
        assert await host.registers.read32(status.offset) == 0, f"not idle after a soft reset {delay} cycles in"
    result = await host.run(program_base=PROGRAM_BASE, expected_cycles=expected_cycles(program, params))
    expected, _ = simulate(params, program, image)
    assert_same_dram(await host.read(0, params["dram_bytes"]), expected)
    assert result.counters["instructions"] == len(program)


@cocotb.test()
async def axi_error_responses_end_in_their_error_code(dut):
    """A DRAM model smaller than the core's DRAM range answers DECERR above its end: a LOAD there ends in
    AXI_READ_ERROR, a STORE in AXI_WRITE_ERROR, a fetch there in AXI_READ_ERROR, each at its address."""
    params, host = await _host(dut)
    model = params.get("model_bytes")
    if model is None:
        return  # only the build with a small DRAM model reaches the error responses
    image = image_with_data(params, "wavecore-axi")[:model]
    cases = [
        ([isa.Instruction("LOAD", "io.scratchpad", {"dram_address": model, "length": 64})],
         ErrorCode.AXI_READ_ERROR),
        ([isa.Instruction("STORE", "io.scratchpad", {"dram_address": model + 64, "length": 64})],
         ErrorCode.AXI_WRITE_ERROR),
    ]
    for program, code in cases:
        program = [*program, isa.Instruction("END")]
        words = isa.encode_program(program)
        loaded = bytearray(image)
        loaded[PROGRAM_BASE : PROGRAM_BASE + len(words)] = words
        await host.load({0: bytes(loaded)})
        try:
            await host.run(program_base=PROGRAM_BASE, expected_cycles=expected_cycles(program, params))
        except CoreFault as fault:
            assert fault.code == code and fault.address == PROGRAM_BASE, str(fault)
        else:
            raise AssertionError(f"{code.name} expected")
        assert await host.read(0, model) == bytes(loaded), f"{code.name}: DRAM changed"
    try:
        await host.run(program_base=model + 0x100, expected_cycles=200)
    except CoreFault as fault:
        assert fault.code == ErrorCode.AXI_READ_ERROR and fault.address == model + 0x100, str(fault)
    else:
        raise AssertionError("a fetch answered DECERR must stop the core")


def random_program(params, seed_name: str, steps: int):
    """Element-granular LOADs and STOREs (random DRAM element addresses, lengths, strides and on-chip addresses
    in both memories) with the builder's tokens. The program first loads both memories whole (from unaligned
    DRAM addresses), so every STORE sends data the program loaded (the RTL's memories outlive a program)."""
    parameters = parameters_from(params)
    random = rng(seed_name)
    program = Program(parameters)
    spaces = {"scratchpad": (parameters.scratchpad_elements, parameters.operand_bytes),
              "accumulator": (parameters.accumulator_elements, parameters.accumulator_bytes)}
    program.memory("LOAD", "activations", "scratchpad", dram_address=SOURCE + 3,
                   length=parameters.scratchpad_elements)
    program.memory("LOAD", "stash", "accumulator", dram_address=SOURCE + 0x1004,
                   length=parameters.accumulator_elements)
    region = 0x8000  # LOADs read [SOURCE, SOURCE + region), STOREs write [DESTINATION, DESTINATION + region)
    for _ in range(steps):
        opcode = "LOAD" if random.random() < 0.5 else "STORE"
        space = "accumulator" if random.random() < 0.4 else "scratchpad"
        elements, size = spaces[space]
        kind = random.random()
        if kind < 0.15:  # within one bus word
            length, count1, count2 = int(random.integers(1, 4)), int(random.integers(1, 4)), 1
        elif kind < 0.25:  # long rows
            length, count1, count2 = int(random.integers(100, min(600, elements // 2))), 1, 1
        else:
            length, count1, count2 = (int(random.integers(1, 40)), int(random.integers(1, 5)),
                                      int(random.integers(1, 4)))
        stride1 = int(random.integers(0, length + 24))
        stride2 = int(random.integers(0, count1 * (length + 24) + 8))
        extent = ((count2 - 1) * stride2 + (count1 - 1) * stride1 + length) * size
        base = SOURCE if opcode == "LOAD" else DESTINATION
        dram_address = base + int(random.integers(0, (region - extent) // size)) * size
        if random.random() < 0.1:  # a row across a 4 KiB page, unaligned
            dram_address = base + 0x3000 - size * int(random.integers(1, 12))
        chip = length * count1 * count2
        scratch_address = int(random.integers(0, elements - chip + 1))
        if random.random() < 0.1:
            scratch_address = elements - chip  # up to the memory's last element
        cls = isa.TRAFFIC_CLASSES[int(random.integers(0, len(isa.TRAFFIC_CLASSES)))]
        program.memory(opcode, cls, space, dram_address=dram_address, scratch_address=scratch_address,
                       length=length, count1=count1, stride1=stride1, count2=count2, stride2=stride2)
    # The last element of DRAM, loaded and stored back to the region's end.
    size = parameters.accumulator_bytes
    program.memory("LOAD", "io", "accumulator", dram_address=params["dram_bytes"] - size, scratch_address=7,
                   length=1)
    program.memory("STORE", "io", "accumulator", dram_address=params["dram_bytes"] - 3 * size, scratch_address=6,
                   length=3)
    return program.instructions()


@cocotb.test()
async def element_granular_transfers_match_the_simulator(dut):
    """Random element-granular LOAD/STORE programs (DRAM addresses, lengths, strides and on-chip addresses not
    whole bus words; both memories; every traffic class): DRAM bit for bit and the byte counters equal the
    simulator's, under the DRAM model's random latency and stalls when the test sets them."""
    params, host = await _host(dut)
    image = image_with_data(params, "wavecore-elements")
    for index in range(params.get("programs", 3)):
        program = random_program(params, f"wavecore-elements-{index}", steps=params.get("steps", 40))
        loaded, after, counters, fault = await run_both(host, params, program, image)
        assert fault is None, str(fault)
        expected, simulator = simulate(params, program, loaded)
        assert expected != loaded, "the program changes DRAM"
        assert_same_dram(after, expected, f"program {index}: DRAM")
        assert_counters(counters, simulator, program)
        assert counters["instructions"] == len(program)
        dut._log.info(f"element-granular program {index}: {len(program)} instructions, "
                      f"{sum(simulator.counters.values())} bytes moved, {counters['cycles']} cycles")
        image = after


@cocotb.test()
async def long_aligned_rows_move_about_a_bus_word_per_cycle(dut):
    """One long LOAD and one long STORE (whole bus words): the cycles stay close to one word per cycle (without
    DRAM stalls and latency; with them the bound scales)."""
    params, host = await _host(dut)
    parameters = parameters_from(params)
    word = params["data_width"] // 8
    length = parameters.scratchpad_elements
    program = Program(parameters)
    program.memory("LOAD", "activations", dram_address=SOURCE, length=length)
    program.memory("STORE", "activations", dram_address=DESTINATION, length=length)
    program = program.instructions()
    image = image_with_data(params, "wavecore-long")
    loaded, after, counters, fault = await run_both(host, params, program, image)
    assert fault is None, str(fault)
    expected, simulator = simulate(params, program, loaded)
    assert_same_dram(after, expected)
    assert_counters(counters, simulator, program)
    words = 2 * length * parameters.operand_bytes // word
    dut._log.info(f"long aligned rows: {words} bus words in {counters['cycles']} cycles")
    if not params.get("stall", 0) and not params.get("latency_max", 0):
        assert counters["cycles"] < 1.1 * words + 200, (counters["cycles"], words)
