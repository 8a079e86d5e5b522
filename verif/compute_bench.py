"""A bench for one WaveCore compute unit (:mod:`wavecore.hdl.core.compute_unit`) in ``amaranth.sim``, next to
the instruction-level simulator (:class:`wavecore.golden.core.simulator.Simulator`) as the oracle.

:class:`UnitBench` puts the unit on a scratchpad and an accumulator memory of bus words (as in the core:
:class:`~wavecore.hdl.core.compute_unit.ElementPorts` on an Amaranth ``Memory``), preloaded with given element
values. :func:`run_unit` executes a list of instructions (SHAPE sets the shape word, every other one starts the
unit and waits for ``done`` within a bound) and returns both memories and the cycles of each instruction;
:func:`run_golden` runs the same instructions on the simulator's ``_execute`` from the same memories.
:func:`check_unit` does both and names the first element that differs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape, accesses
from wavecore.golden.core.simulator import Simulator, TraceEntry
from wavecore.golden.numerics import INTEGER_PRESETS, IntegerTraining
from wavecore.hdl.core.compute_unit import ElementPorts, element_widths

__all__ = ["UnitBench", "check_unit", "idle_outputs", "numerics_for", "pack", "run_golden", "run_unit", "unpack"]


def numerics_for(parameters: CoreParameters) -> IntegerTraining:
    """The integer numerics ``wavecore compile`` uses for ``parameters`` (the preset of its operand width)."""
    preset = INTEGER_PRESETS["int8" if parameters.in_width <= 8 else "int16"]
    return dataclasses.replace(preset, mac=dataclasses.replace(preset.mac, in_width=parameters.in_width,
                                                               acc_width=parameters.acc_width))


def pack(values, element_bits: int, word_bits: int) -> list[int]:
    """Element values (two's complement, ``element_bits`` each, little-endian) -> memory words."""
    lanes = word_bits // element_bits
    values = np.asarray(values, dtype=np.int64)
    mask = (1 << element_bits) - 1
    words = []
    for start in range(0, len(values), lanes):
        word = 0
        for lane, value in enumerate(values[start : start + lanes]):
            word |= (int(value) & mask) << (lane * element_bits)
        words.append(word)
    return words


def unpack(words, element_bits: int, word_bits: int) -> np.ndarray:
    """Memory words -> signed element values."""
    lanes = word_bits // element_bits
    mask, sign = (1 << element_bits) - 1, 1 << (element_bits - 1)
    values = []
    for word in words:
        for lane in range(lanes):
            value = (int(word) >> (lane * element_bits)) & mask
            values.append(value - (1 << element_bits) if value & sign else value)
    return np.array(values, dtype=np.int64)


class UnitBench(Elaboratable):
    """``unit`` on preloaded scratchpad and accumulator memories (``word_bits`` per word), read with the unit's
    ``read_latency``."""

    def __init__(self, unit, parameters: CoreParameters, scratchpad, accumulator, *, word_bits: int = 64):
        self.unit, self.parameters, self.word_bits = unit, parameters, word_bits
        self.widths = element_widths(parameters)
        self.memories, self.adapters = {}, {}
        for space, values, readers in (("scratchpad", scratchpad, 2), ("accumulator", accumulator, 1)):
            elements = len(values)
            self.memories[space] = Memory(shape=word_bits, depth=elements * self.widths[space] // word_bits,
                                          init=pack(values, self.widths[space], word_bits))
            self.adapters[space] = ElementPorts(element_bits=self.widths[space], word_bits=word_bits,
                                                elements=elements, readers=readers,
                                                read_latency=unit.read_latency)

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        for space, memory in self.memories.items():
            m.submodules[space] = memory
            adapter = self.adapters[space]
            m.submodules[f"{space}_ports"] = adapter
            adapter.attach([memory.read_port() for _ in range(adapter.readers)],
                           memory.write_port(granularity=self.widths[space]))
        scratch, acc = self.adapters["scratchpad"], self.adapters["accumulator"]
        wiring.connect(m, unit.scratch_read0, scratch.read0)
        wiring.connect(m, unit.scratch_read1, scratch.read1)
        wiring.connect(m, unit.scratch_write, scratch.write)
        wiring.connect(m, unit.acc_read, acc.read0)
        wiring.connect(m, unit.acc_write, acc.write)
        return m

    def contents(self, ctx) -> dict:
        """``space -> element values`` read from the memories in a testbench."""
        return {space: unpack([ctx.get(memory.data[i]) for i in range(memory.depth)], self.widths[space],
                              self.word_bits) for space, memory in self.memories.items()}


def run_unit(unit, parameters: CoreParameters, instructions, scratchpad, accumulator, *, word_bits: int = 64,
             max_cycles: int = 200_000, vcd: str | None = None):
    """Run ``instructions`` on ``unit`` in ``amaranth.sim``; returns ``(scratchpad, accumulator, cycles)``.

    ``cycles`` lists, per non-SHAPE instruction, the cycles from ``start`` to ``done``. A unit that does not
    raise ``done`` within ``max_cycles``, or raises an out-of-range access, fails with an AssertionError
    naming the instruction.
    """
    from amaranth.sim import Simulator as AmaranthSimulator

    bench = UnitBench(unit, parameters, scratchpad, accumulator, word_bits=word_bits)
    result = {}

    async def testbench(ctx):
        shape_word = isa.encode(isa.Instruction("SHAPE", fields=dict(Shape())))
        cycles = []
        for instruction in instructions:
            word = isa.encode(instruction)
            if instruction.opcode == "SHAPE":
                shape_word = word
                continue
            ctx.set(unit.instruction, word)
            ctx.set(unit.shape, shape_word)
            ctx.set(unit.start, 1)
            await ctx.tick()
            ctx.set(unit.start, 0)
            count = 1
            while True:
                for adapter in bench.adapters.values():
                    assert not ctx.get(adapter.out_of_range), f"{instruction.text()}: access out of range"
                if ctx.get(unit.done):
                    break
                assert count < max_cycles, f"{instruction.text()}: no done within {max_cycles} cycles"
                await ctx.tick()
                count += 1
            await ctx.tick()
            cycles.append(count)
        await ctx.tick()  # the adapters' registered writes of the last cycle reach the memories
        result.update(bench.contents(ctx))
        result["cycles"] = cycles

    simulator = AmaranthSimulator(bench)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    if vcd:
        with simulator.write_vcd(vcd):
            simulator.run()
    else:
        simulator.run()
    return result["scratchpad"], result["accumulator"], result["cycles"]


def run_golden(parameters: CoreParameters, numerics: IntegerTraining, instructions, scratchpad, accumulator):
    """The simulator's result of ``instructions`` on the given memories: ``(scratchpad, accumulator)``."""
    simulator = Simulator(parameters=dataclasses.replace(parameters, scratchpad_elements=len(scratchpad),
                                                         accumulator_elements=len(accumulator)),
                          numerics=numerics)
    simulator.scratchpad[:] = scratchpad
    simulator.accumulator[:] = accumulator
    shape = Shape()
    for index, instruction in enumerate(instructions):
        if instruction.opcode == "SHAPE":
            shape = Shape(instruction.fields)
            continue
        _, writes = accesses(instruction, shape, simulator.parameters)
        simulator._execute(instruction, shape, TraceEntry(index, instruction.queue, instruction.text(), 0, 0),
                           writes)
    return simulator.scratchpad.copy(), simulator.accumulator.copy()


def check_unit(unit, parameters: CoreParameters, numerics: IntegerTraining, instructions, scratchpad,
               accumulator, **options) -> list[int]:
    """Run the unit and the simulator; assert every element of both memories is equal (the message names the
    first difference). Returns the unit's cycles per instruction."""
    scratchpad = np.asarray(scratchpad, dtype=np.int64)
    accumulator = np.asarray(accumulator, dtype=np.int64)
    want_s, want_a = run_golden(parameters, numerics, instructions, scratchpad, accumulator)
    widths = element_widths(parameters)
    for space, want in (("scratchpad", want_s), ("accumulator", want_a)):
        bits = widths[space]
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        outside = np.flatnonzero((want < low) | (want > high))
        assert not len(outside), (f"the golden {space}[{outside[0]}] = {want[outside[0]]} does not fit "
                                  f"{bits} bits: pick other test data")
    got_s, got_a, cycles = run_unit(unit, parameters, instructions, scratchpad, accumulator, **options)
    for space, got, want in (("scratchpad", got_s, want_s), ("accumulator", got_a, want_a)):
        wrong = np.flatnonzero(got != want)
        if len(wrong):
            first = wrong[0]
            raise AssertionError(f"{space}[{first}] = {got[first]}, the simulator has {want[first]} "
                                 f"({len(wrong)} elements differ; instructions: "
                                 + "; ".join(ins.text() for ins in instructions) + ")")
    return cycles


def idle_outputs(unit, cycles: int = 8) -> list[str]:
    """The port enables and ``done`` a unit raises in ``cycles`` cycles without ``start`` (``"name@cycle"``; the
    core ORs its units' ports, so an idle unit must keep them all low)."""
    from amaranth.sim import Simulator as AmaranthSimulator

    ports = {name: getattr(unit, name).en for name in ("scratch_read0", "scratch_read1", "scratch_write",
                                                       "acc_read", "acc_write")}
    ports["done"] = unit.done
    raised = []

    async def testbench(ctx):
        for cycle in range(cycles):
            raised.extend(f"{name}@{cycle}" for name, port in ports.items() if ctx.get(port))
            await ctx.tick()

    simulator = AmaranthSimulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return raised
