"""LOAD/STORE programs for testing and benchmarking the WaveCore RTL (``hdl/core/wavecore.py``).

:class:`Program` assembles instructions with ``golden.core.isa`` and lets ``golden.core.program.ProgramBuilder``
set the dependency tokens from each instruction's access ranges (``golden.core.semantics.accesses``);
:func:`copy_program` is the double-buffered copy the tests and ``benchmarks/wavecore_speed.py`` run.
"""

from __future__ import annotations

from wavecore.golden.core import isa
from wavecore.golden.core.program import ProgramBuilder
from wavecore.golden.core.semantics import CoreParameters, Shape, accesses

__all__ = ["Program", "copy_program"]


class Program:
    """Instructions in program order with tokens from the access ranges (``ProgramBuilder``)."""

    def __init__(self, parameters: CoreParameters):
        self.parameters = parameters
        self.builder = ProgramBuilder(parameters.sizes())

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
