"""LOAD/STORE programs for testing and benchmarking the WaveCore RTL (``hdl/core/wavecore.py``).

:class:`Program` assembles instructions with ``golden.core.isa`` and lets ``golden.core.program.ProgramBuilder``
set the dependency tokens from each instruction's access ranges (``golden.core.semantics.accesses``);
:func:`copy_program` is the double-buffered copy the tests and ``benchmarks/wavecore_speed.py`` run.
"""

from __future__ import annotations

from wavecore.golden.core import isa
from wavecore.golden.core.program import ProgramBuilder
from wavecore.golden.core.semantics import CoreParameters, Shape, accesses

__all__ = ["Program", "copy_program", "wrapped_program"]


class Program:
    """Instructions in program order with tokens from the access ranges (``ProgramBuilder``)."""

    def __init__(self, parameters: CoreParameters):
        self.parameters = parameters
        self.builder = ProgramBuilder(parameters.sizes())
        self.current_shape = Shape()

    def shape(self, **fields):
        """Append a SHAPE; the following compute instructions' access ranges use it."""
        self.current_shape = Shape(fields)
        return self.builder.emit("SHAPE", "none", fields)

    def compute(self, opcode: str, funct: str = "none", **fields):
        """Append a compute-queue instruction (GEMM, VECTOR, NORM, LOSS, SGD, COUNTER, SYNC)."""
        instruction = isa.Instruction(opcode, funct, fields)
        reads, writes = accesses(instruction, self.current_shape, self.parameters)
        return self.builder.emit(opcode, funct, fields, reads=reads, writes=writes)

    def memory(self, opcode: str, cls: str, space: str = "scratchpad", **fields):
        """Append a LOAD or STORE of traffic class ``cls`` on the ``space`` side with the memory-format fields."""
        instruction = isa.Instruction(opcode, f"{cls}.{space}", fields)
        reads, writes = accesses(instruction, Shape(), self.parameters)
        return self.builder.emit(opcode, f"{cls}.{space}", fields, reads=reads, writes=writes)

    def instructions(self, *, end: bool = True) -> list[isa.Instruction]:
        program = self.builder.instructions()
        return program + [isa.Instruction("END")] if end else program


def copy_program(parameters: CoreParameters, tensors, *, source: int, destination: int) -> list[isa.Instruction]:
    """Double-buffered copies: tensor k is loaded into buffer k % 2 of its memory and stored out of it; the
    builder's tokens order each STORE after its LOAD and each LOAD after the STORE that last read its buffer.

    ``tensors`` lists ``(class, space, length, count1, stride1, count2, stride2)`` (elements); tensor k is read
    at ``source`` (the next one at the 64-byte boundary after its extent) and stored densely from ``destination``.
    """
    program = Program(parameters)
    for k, (cls, space, length, count1, stride1, count2, stride2) in enumerate(tensors):
        size = parameters.accumulator_bytes if space == "accumulator" else parameters.operand_bytes
        elements = parameters.accumulator_elements if space == "accumulator" else parameters.scratchpad_elements
        buffer = (k % 2) * (elements // 2)
        program.memory("LOAD", cls, space, dram_address=source, scratch_address=buffer, length=length,
                       count1=count1, stride1=stride1, count2=count2, stride2=stride2)
        program.memory("STORE", cls, space, dram_address=destination, scratch_address=buffer, length=length,
                       count1=count1, stride1=length, count2=count2, stride2=length * count1)
        source += ((count2 - 1) * stride2 + (count1 - 1) * stride1 + length) * size  # the tensor's extent
        source = -(-source // 64) * 64
        destination += -(-length * count1 * count2 * size // 64) * 64
    return program.instructions()


def wrapped_program(parameters: CoreParameters, body, *, source: int, destination: int, scratchpad: int,
                    accumulator: int) -> list[isa.Instruction]:
    """``body`` (SHAPE and compute instructions) between a LOAD of the first ``scratchpad`` scratchpad and
    ``accumulator`` accumulator elements from DRAM at ``source`` (scratchpad bytes, then the accumulator's at
    the next 64-byte boundary) and a STORE of both to ``destination`` in the same layout: the whole on-chip
    state before and after, so comparing DRAM compares every element the body wrote."""
    program = Program(parameters)
    spaces = (("scratchpad", scratchpad, parameters.operand_bytes),
              ("accumulator", accumulator, parameters.accumulator_bytes))
    offsets, offset = [], 0
    for _, elements, size in spaces:
        offsets.append(offset)
        offset = -(-(offset + elements * size) // 64) * 64
    for (space, elements, _), at in zip(spaces, offsets, strict=True):
        if elements:
            program.memory("LOAD", "activations", space, dram_address=source + at, scratch_address=0,
                           **_rows(elements))
    for instruction in body:
        if instruction.opcode == "SHAPE":
            program.shape(**instruction.fields)
        else:
            program.compute(instruction.opcode, instruction.funct, **instruction.fields)
    for (space, elements, _), at in zip(spaces, offsets, strict=True):
        if elements:
            program.memory("STORE", "activations", space, dram_address=destination + at, scratch_address=0,
                           **_rows(elements))
    return program.instructions()


def _rows(elements: int) -> dict:
    """A dense transfer of ``elements`` as memory-format fields (rows of at most the length field's limit)."""
    limit = next(spec.limit for spec in isa.FORMATS["memory"] if spec.name == "length")
    if elements <= limit:
        return {"length": elements}
    length = next(n for n in range(limit, 0, -1) if elements % n == 0)
    if elements // length > 255:
        raise ValueError(f"{elements} elements do not fit one dense LOAD/STORE")
    return {"length": length, "count1": elements // length, "stride1": length}
