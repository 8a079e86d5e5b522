"""The first wrong instruction of a training step on the core (verif/instruction_bisect.py).

The fault tests corrupt one function's results on a small network (``trace_fault_net.yaml``) and check that the
bisection names the first instruction of that function in program order: in ``make test`` the simulator's side is
corrupted (the correct core, the cached build of the other core tests), in the slow tier the core is built with a
VECTOR unit that corrupts its writes (:class:`BrokenVector`). The other tests check the truncated programs on the
instruction-level simulator alone.
"""

import time
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Mux

from wavecore.golden.config import load_config
from wavecore.golden.core import isa
from wavecore.golden.core.build import compile_workload, training_data
from wavecore.golden.core.memory_map import MemoryMap
from wavecore.golden.core.semantics import Shape, accesses
from wavecore.golden.core.simulator import Simulator, TraceEntry
from wavecore.hdl.core.compute_unit import READ_LATENCY
from wavecore.hdl.core.units import unit_classes
from wavecore.hdl.core.vector_unit import VectorUnit
from wavecore.verif.instruction_bisect import (
    FirstWrongInstruction,
    probe_image,
    simulate_probe,
    truncated_program,
)

NETWORK = str(Path(__file__).with_name("trace_fault_net.yaml"))
BROKEN_FUNCT = "maxpool_forward"


class BrokenVector(VectorUnit):
    """The real VECTOR unit with the lowest bit of every scratchpad element it writes flipped while it runs
    ``VECTOR.<funct>`` (a deliberately broken unit: the fault the bisection must locate)."""

    def __init__(self, parameters, numerics, funct: str = BROKEN_FUNCT, *, read_latency: int = READ_LATENCY):
        super().__init__(parameters, numerics, read_latency=read_latency)
        self.inner = VectorUnit(parameters, numerics, read_latency=read_latency)
        self.funct = funct

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        spec = next(spec for spec in isa.HEADER if spec.name == "funct")
        broken = self.instruction[spec.offset : spec.offset + spec.width] == isa.FUNCTS["VECTOR"][self.funct][0]
        m.d.comb += [inner.start.eq(self.start), inner.instruction.eq(self.instruction),
                     inner.shape.eq(self.shape), self.done.eq(inner.done)]
        for name in ("scratch_read0", "scratch_read1", "acc_read"):
            outer, unit = getattr(self, name), getattr(inner, name)
            m.d.comb += [outer.addr.eq(unit.addr), outer.en.eq(unit.en), unit.data.eq(outer.data)]
        for name in ("scratch_write", "acc_write"):
            outer, unit = getattr(self, name), getattr(inner, name)
            corrupt = broken & unit.en if name == "scratch_write" else 0
            m.d.comb += [outer.addr.eq(unit.addr), outer.en.eq(unit.en),
                         outer.data.eq(Mux(corrupt, unit.data ^ 1, unit.data))]
        return m


def broken_units() -> dict:
    """The units the network needs (no NORM), VECTOR broken."""
    return {**unit_classes(("GEMM", "LOSS", "SGD")), "VECTOR": BrokenVector}


@pytest.fixture(scope="module")
def workload():
    return compile_workload(load_config(None), network=NETWORK, batch=2)


def _program_order_state(workload, image, k):
    """Independent reference: instructions 0..k executed one after another in program order (the program is
    race-free, so this is the state the queues reach), on a simulator's memories."""
    simulator = Simulator(parameters=workload.parameters, numerics=workload.numerics)
    simulator.dram = dram = bytearray(image)
    shape = Shape()
    for index, ins in enumerate(workload.step.program[: k + 1]):
        if ins.opcode == "SHAPE":
            shape = Shape(ins.fields)
        writes = accesses(ins, shape, workload.parameters)[1]
        simulator._execute(ins, shape, TraceEntry(index, ins.queue, ins.text(), 0, 0), writes)
    return simulator, dram


def test_probe_dumps_state_after_k(workload):
    """Every probe runs on the simulator (its repaired tokens order it) and its dumps and DRAM equal the state after
    instruction k in program order."""
    data = training_data(workload, seed=0)
    parameters, program = workload.parameters, workload.step.program
    base = (len(data.initial) + 63) // 64 * 64
    checked = 0
    for k in range(len(program) - 1):
        probe = truncated_program(program, k, parameters, base)
        assert probe.program[-1].opcode == "END" and probe.program[: k + 1] != []
        image = probe_image(probe, data.initial, base, parameters)
        after, _ = simulate_probe(probe, image, parameters, workload.numerics)
        reference, dram = _program_order_state(workload, image, k)
        assert after[: len(data.initial)] == dram[: len(data.initial)], f"DRAM after #{k}"
        for memory, start, stop, address in probe.dumps:
            size = parameters.operand_bytes if memory == "scratchpad" else parameters.accumulator_bytes
            dumped = MemoryMap.decode(bytes(after[address : address + (stop - start) * size]), size)
            want = (reference.scratchpad if memory == "scratchpad" else reference.accumulator)[start:stop]
            assert np.array_equal(dumped, want), f"{memory} [{start}, {stop}) after #{k}"
            checked += stop - start
        written = {(memory, start, stop) for ins_writes in [accesses(ins, shape, parameters)[1] for ins, shape in
                                                            zip(program[: k + 1], _shapes(program[: k + 1]))]
                   for memory, start, stop in ins_writes if memory != "dram"}
        for memory, start, stop in written:  # every written element is dumped
            assert any(m == memory and s <= start and stop <= e for m, s, e, _ in probe.dumps), (memory, start)
    assert checked


def _shapes(program):
    shape, shapes = Shape(), []
    for ins in program:
        shape = Shape(ins.fields) if ins.opcode == "SHAPE" else shape
        shapes.append(shape)
    return shapes


def test_truncated_program_tokens(workload):
    program, parameters = workload.step.program, workload.parameters
    loads = [i for i, ins in enumerate(program) if ins.opcode == "LOAD"]
    k = loads[1]  # two LOADs without push_next: the last one gets it, one SYNC pops it
    assert not program[k].push_next
    probe = truncated_program(program, k, parameters, 0x10000)
    assert probe.program[k].push_next and probe.program[k].fields == program[k].fields
    tail = probe.program[k + 1 :]
    assert [ins.opcode for ins in tail[:2]] == ["SYNC", "SYNC"] and tail[0].pop_prev and tail[1].push_next
    stores = [ins for ins in tail if ins.opcode == "STORE"]
    assert stores[0].pop_prev and not any(ins.pop_prev for ins in stores[1:])
    assert all(ins.get("dram_address") >= 0x10000 for ins in stores)
    for bad in (-1, len(program) - 1):
        with pytest.raises(ValueError, match="k must be between"):
            truncated_program(program, bad, parameters, 0x10000)


def test_a_simulator_that_disagrees_with_the_core_names_the_first_instruction_of_that_funct(monkeypatch):
    """The bisection is symmetric: with the instruction-level simulator corrupting ``VECTOR.maxpool_forward`` (the
    core is the correct configured one, the build the other core tests use), the step differs and the bisection
    names that function's first instruction. The slow tier runs the same check with a broken RTL unit."""
    from wavecore.verif.training_step import run_step_on_core

    original = Simulator._op_vector

    def corrupted(self, ins, shape, entry):
        original(self, ins, shape, entry)
        if ins.funct == BROKEN_FUNCT:
            _, writes = accesses(ins, shape, self.parameters)
            for _, start, stop in writes:
                self.scratchpad[start:stop] ^= 1

    monkeypatch.setattr(Simulator, "_op_vector", corrupted)
    report = run_step_on_core(load_config(None), network=NETWORK, batch=2)
    program = compile_workload(load_config(None), network=NETWORK, batch=2).step.program
    first = next(i for i, ins in enumerate(program) if ins.opcode == "VECTOR" and ins.funct == BROKEN_FUNCT)
    assert report.fault is None and report.wrong_regions
    located = report.first_wrong_instruction
    assert isinstance(located, FirstWrongInstruction) and located.index == first, located
    assert located.text.startswith(f"{first}: VECTOR.{BROKEN_FUNCT}")


@pytest.mark.slow
def test_broken_vector_names_first_instruction_of_its_funct():
    """A core whose VECTOR unit corrupts one function: the step differs and the bisection names that function's
    first instruction in program order."""
    from wavecore.verif.training_step import run_step_on_core

    lines = []
    started = time.perf_counter()
    report = run_step_on_core(load_config(None), network=NETWORK, batch=2, units=broken_units(), log=lines.append)
    program = compile_workload(load_config(None), network=NETWORK, batch=2).step.program
    first = next(i for i, ins in enumerate(program) if ins.opcode == "VECTOR" and ins.funct == BROKEN_FUNCT)
    assert first > next(i for i, ins in enumerate(program) if ins.opcode == "VECTOR")  # not merely the first VECTOR
    assert report.fault is None and report.wrong_regions and not report.golden_wrong
    located = report.first_wrong_instruction
    assert isinstance(located, FirstWrongInstruction), lines
    assert located.index == first, (located, lines)
    assert located.text.startswith(f"{first}: VECTOR.{BROKEN_FUNCT}")
    assert "core" in located.difference and "simulator" in located.difference
    assert len(located.probes) <= 8
    assert report.to_dict()["first_wrong_instruction"]["index"] == first
    print(f"bisection: {len(located.probes)} probes, {located.seconds:.1f} s; whole test "
          f"{time.perf_counter() - started:.1f} s")
