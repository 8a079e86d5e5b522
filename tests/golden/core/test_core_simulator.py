"""The instruction-level simulator and the program builder: tokens (inserted, checked, refused when
inconsistent), the trace, error states."""

import dataclasses
import hashlib

import pytest
from core_cases import run_step

from wavecore.golden.core.errors import ErrorCode
from wavecore.golden.core.isa import Instruction
from wavecore.golden.core.memory_map import MemoryMap
from wavecore.golden.core.program import ProgramBuilder, TokenError
from wavecore.golden.core.semantics import CoreParameters, accesses, makespan
from wavecore.golden.core.simulator import CoreError, Simulator
from wavecore.golden.numerics import INTEGER_PRESETS


@pytest.fixture(scope="module")
def run():
    return run_step("tiny_resnet", norm="gn", preset="int8", schedule="mbs-bnff")


def _simulate(program, image, parameters):
    return Simulator(parameters=parameters, numerics=INTEGER_PRESETS["int8"]).run(program, bytearray(image))


def _fresh_image(run):
    mm = run.step.memory_map
    image = mm.image()
    # any operands in range will do for the token checks: reuse the first step's DRAM
    image[:] = run.image[: len(image)]
    return image


def test_trace_has_one_entry_per_instruction_with_store_digests(run):
    trace = run.simulator.trace
    assert sorted(entry.index for entry in trace) == list(range(len(run.step.program)))
    for entry in trace:
        instruction = run.step.program[entry.index]
        assert entry.queue == instruction.queue and entry.end >= entry.start
        if instruction.opcode == "STORE":
            size = instruction.get("length") * instruction.get("count1")
            element = 1 if instruction.funct.endswith("scratchpad") else 4
            start = instruction.get("dram_address")
            if instruction.get("stride1") in (0, instruction.get("length")):
                data = bytes(run.image[start : start + size * element])
                # the last store to a range is what DRAM holds at the end
                later = [e for e in trace if e.index > entry.index and run.step.program[e.index].opcode == "STORE"
                         and run.step.program[e.index].get("dram_address") == start]
                if not later:
                    assert entry.digest == hashlib.sha256(data).hexdigest()[:16]
            assert sum(entry.bytes.values()) == size * element


def test_counters_equal_the_compilers_bytes_and_cycles_equal_the_makespan(run):
    assert run.simulator.counters == run.step.expected["bytes"]
    assert run.simulator.cycles == run.step.expected["cycles"] == makespan(run.step.program, run.step.parameters)[1]


def test_decoupled_queues_overlap(run):
    """Loads and stores run beside compute: most DMA time is hidden behind the compute queue's."""
    times, total = makespan(run.step.program, run.step.parameters)
    busy = {"load": 0, "compute": 0, "store": 0}
    for instruction, (start, end) in zip(run.step.program, times):
        busy[instruction.queue] += end - start
    assert busy["compute"] <= total < busy["compute"] + 0.5 * (busy["load"] + busy["store"])


def test_a_program_without_tokens_is_refused(run):
    stripped = [dataclasses.replace(i, pop_prev=False, pop_next=False, push_prev=False, push_next=False)
                for i in run.step.program]
    with pytest.raises(TokenError, match="without a dependency token"):
        _simulate(stripped, _fresh_image(run), run.step.parameters)


def test_a_missing_pop_is_refused(run):
    program = list(run.step.program)
    index = next(i for i, ins in enumerate(program) if ins.pop_prev and ins.queue == "compute")
    program[index] = dataclasses.replace(program[index], pop_prev=False)
    with pytest.raises(TokenError):
        _simulate(program, _fresh_image(run), run.step.parameters)


def test_a_pop_without_push_deadlocks(run):
    program = list(run.step.program)
    index = next(i for i, ins in enumerate(program) if ins.queue == "store" and not ins.pop_prev)
    program[index] = dataclasses.replace(program[index], pop_prev=True)
    with pytest.raises(TokenError, match="deadlock"):
        _simulate(program, _fresh_image(run), run.step.parameters)


def test_builder_relays_store_to_load_through_sync():
    parameters = CoreParameters()
    builder = ProgramBuilder(parameters.sizes())

    def emit(opcode, funct, **fields):
        instruction = Instruction(opcode, funct, fields)
        reads, writes = accesses(instruction, None, parameters) if opcode in ("LOAD", "STORE") else ([], [])
        return builder.emit(opcode, funct, fields, reads=reads, writes=writes)

    emit("LOAD", "io.scratchpad", dram_address=0, scratch_address=0, length=16)
    emit("STORE", "stash.scratchpad", dram_address=64, scratch_address=0, length=16)
    emit("LOAD", "stash.scratchpad", dram_address=64, scratch_address=100, length=16)
    builder.emit("END")
    program = builder.instructions()
    assert [i.opcode for i in program] == ["LOAD", "SYNC", "STORE", "SYNC", "LOAD", "END"]
    # load -> store (RAW on the scratchpad) and store -> load (RAW in DRAM) both go through compute
    assert program[0].push_next and program[1].pop_prev and program[1].push_next and program[2].pop_prev
    assert program[2].push_prev and program[3].pop_next and program[3].push_prev and program[4].pop_next
    image = bytearray(range(128))
    Simulator(parameters=parameters, numerics=INTEGER_PRESETS["int8"]).run(program, image)
    assert image[64:80] == bytes(range(16))


def test_a_load_outside_dram_is_an_error_state():
    parameters = CoreParameters(dram_bytes=1024)
    program = [Instruction("LOAD", "io.scratchpad", {"dram_address": 1000, "length": 100, "count1": 1,
                                                       "count2": 1}), Instruction("END")]
    with pytest.raises(CoreError, match=r"^instruction #0 \(LOAD.io.scratchpad .*\): dram range \[1000, 1100\) "
                                        r"is outside \[0, 1000\)$"):
        Simulator(parameters=parameters, numerics=INTEGER_PRESETS["int8"]).run(program, bytearray(1000))


def _stopped(program, dram, parameters=None):
    simulator = Simulator(parameters=parameters or CoreParameters(dram_bytes=4096, scratchpad_elements=1024,
                                                                  accumulator_elements=256),
                          numerics=INTEGER_PRESETS["int8"])
    with pytest.raises(CoreError) as raised:
        simulator.run(program, dram)
    return raised.value


def test_an_accumulator_region_outside_its_memory_is_the_rtls_scratchpad_code():
    store = Instruction("STORE", "io.accumulator", {"dram_address": 0, "scratch_address": 250, "length": 8})
    error = _stopped([store, Instruction("END")], bytearray(4096))
    assert error.code is ErrorCode.SCRATCHPAD_OUT_OF_RANGE and error.index == 0
    assert str(error) == f"instruction #0 ({store.text()}): accumulator range [250, 258) is outside [0, 256)"


def test_dram_is_checked_before_the_scratchpad_as_in_the_rtl():
    store = Instruction("STORE", "io.scratchpad", {"dram_address": 4090, "scratch_address": 1020, "length": 8})
    error = _stopped([store, Instruction("END")], bytearray(4096))
    assert error.code is ErrorCode.DRAM_OUT_OF_RANGE and "dram range [4090, 4098)" in str(error)


def test_a_stored_value_that_does_not_fit_is_element_out_of_range_and_dram_is_unchanged():
    program = [Instruction("STORE", "io.accumulator", {"dram_address": 0, "scratch_address": 0, "length": 2},
                           pop_prev=False), Instruction("END")]
    parameters = CoreParameters(dram_bytes=4096, scratchpad_elements=1024, accumulator_elements=256)
    simulator = Simulator(parameters=parameters, numerics=INTEGER_PRESETS["int8"])
    simulator.accumulator[1] = 1 << (8 * parameters.accumulator_bytes)
    dram = bytearray(4096)
    with pytest.raises(CoreError, match="does not fit") as raised:
        simulator.run(program, dram)
    assert raised.value.code is ErrorCode.ELEMENT_OUT_OF_RANGE and raised.value.index == 0
    assert raised.value.code.raised_by == ("simulator",) and dram == bytearray(4096)


def test_a_program_without_end_is_no_end():
    error = _stopped([Instruction("SYNC")], bytearray(64))
    assert error.code is ErrorCode.NO_END and error.index == 1 and error.code.raised_by == ("simulator",)


def test_an_immediate_the_unit_does_not_accept_is_an_illegal_field():
    gemm = Instruction("GEMM", "forward", {"imm": INTEGER_PRESETS["int8"].weight_frac + 1})
    error = _stopped([Instruction("SHAPE", fields=dict(samples=1, channels=1, height=1, width=1)), gemm,
                      Instruction("END")], bytearray(64))
    assert error.code is ErrorCode.ILLEGAL_FIELD and error.index == 1


def test_a_value_that_does_not_fit_its_dram_element_is_an_error():
    with pytest.raises(ValueError, match="^STORE: 300 does not fit a 1-byte element$"):
        MemoryMap.encode([1, 300], 1, "STORE")


def test_the_simulator_needs_the_on_chip_loss_and_sgd():
    host = dataclasses.replace(INTEGER_PRESETS["int8"], sgd="host")
    with pytest.raises(ValueError, match="on-chip loss and SGD"):
        Simulator(parameters=CoreParameters(), numerics=host)


def test_fetching_the_program_from_dram_gives_the_same_image(run):
    image = bytearray(run.initial)
    program = run.step.memory_map["program"]
    Simulator(parameters=run.step.parameters, numerics=run.numerics).run_from_dram(
        image, program.offset, len(run.step.program))
    assert image == run.image


def _with_field(word: int, name: str, value: int) -> int:
    """``word`` with one header or format field replaced (positions from the ISA tables)."""
    from wavecore.golden.core.isa import FORMATS, HEADER

    spec = next(f for f in (*HEADER, *(f for fields in FORMATS.values() for f in fields)) if f.name == name)
    mask = ((1 << spec.width) - 1) << spec.offset
    return (word & ~mask) | (value << spec.offset)


@pytest.mark.parametrize("fault, code", [
    ("opcode", ErrorCode.ILLEGAL_OPCODE),
    ("funct", ErrorCode.ILLEGAL_FIELD),
    ("token", ErrorCode.ILLEGAL_FIELD),
    ("length", ErrorCode.ILLEGAL_FIELD),
    ("scratchpad", ErrorCode.SCRATCHPAD_OUT_OF_RANGE),
    ("dram", ErrorCode.DRAM_OUT_OF_RANGE),
])
def test_faults_stop_with_the_documented_code_and_leave_dram_unchanged(run, fault, code):
    from wavecore.golden.core.isa import FUNCTS, encode

    image = bytearray(run.initial)
    index = next(i for i, ins in enumerate(run.step.program) if ins.funct.endswith(".scratchpad"))
    assert not any(ins.opcode == "STORE" for ins in run.step.program[:index])
    first = run.step.program[index]
    program = run.step.memory_map["program"]
    offset = program.offset + 16 * index
    if fault == "opcode":
        image[offset] = 0x7F
    elif fault == "funct":
        assert 9 not in {number for number, _ in FUNCTS["GEMM"].values()}
        image[offset : offset + 16] = _with_field(encode(Instruction("GEMM", "forward")), "funct", 9).to_bytes(
            16, "little")
    elif fault == "length":
        image[offset : offset + 16] = _with_field(encode(first), "length", 0).to_bytes(16, "little")
    else:
        bad = {"token": dataclasses.replace(first, pop_prev=True),
               "scratchpad": dataclasses.replace(first, fields={**first.fields, "scratch_address": (1 << 18) - 1}),
               "dram": dataclasses.replace(first, fields={**first.fields, "dram_address": len(image) - 1})}[fault]
        word = (encode(bad) if fault != "token" else encode(first) | 1 << 8).to_bytes(16, "little")
        image[offset : offset + 16] = word
    before = bytes(image)
    simulator = Simulator(parameters=dataclasses.replace(run.step.parameters, scratchpad_elements=1 << 17),
                          numerics=run.numerics)
    with pytest.raises(CoreError) as raised:
        simulator.run_from_dram(image, program.offset, len(run.step.program))
    assert raised.value.code is code and raised.value.index == index and "simulator" in code.raised_by
    assert bytes(image) == before
