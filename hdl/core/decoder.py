"""Instruction decoding in hardware, generated from the one definition in :mod:`wavecore.golden.core.isa`.

Nothing here states a bit position, an opcode number or a field range: :func:`field` slices a field out of a
128-bit word by its :class:`~wavecore.golden.core.isa.Field`, :func:`opcode_is` compares with
``isa.OPCODES``, and :func:`illegal_field` checks every function code, token bit and field minimum/maximum
the assembler (:func:`wavecore.golden.core.isa.encode`) checks, so a word the assembler refuses is refused
here too and vice versa.
"""

from __future__ import annotations

from amaranth import Const, Value

from wavecore.golden.core import isa

__all__ = ["field", "illegal_field", "legal_opcode", "opcode_is", "queue_is"]


def _spec(name: str, fmt: str | None) -> isa.Field:
    for spec in isa.HEADER + (isa.FORMATS[fmt] if fmt else ()):
        if spec.name == name:
            return spec
    raise KeyError(f"no field {name!r} in the header{' or the ' + fmt + ' format' if fmt else ''}")


def field(word: Value, name: str, fmt: str | None = None) -> Value:
    """The bits of header field ``name`` (or of format ``fmt``'s field) of ``word``."""
    spec = _spec(name, fmt)
    return word[spec.offset : spec.offset + spec.width]


def opcode_is(word: Value, *names: str) -> Value:
    """High when the word's opcode is one of ``names``."""
    opcode = field(word, "opcode")
    result = Const(0, 1)
    for name in names:
        result = result | (opcode == isa.OPCODES[name][0])
    return result


def legal_opcode(word: Value) -> Value:
    return opcode_is(word, *isa.OPCODES)


def queue_is(word: Value, queue: str) -> Value:
    """High when a legal word goes to ``queue`` (``load``, ``compute`` or ``store``)."""
    return opcode_is(word, *(name for name in isa.OPCODES if isa.queue_of(name) == queue))


def illegal_field(word: Value) -> Value:
    """High when a word with a legal opcode has a function code, token bit or field the assembler refuses."""
    funct = field(word, "funct")
    bad = Const(0, 1)
    for name, (_, fmt, _) in isa.OPCODES.items():
        problems = Const(1, 1)
        for number, _ in isa.FUNCTS[name].values():
            problems = problems & (funct != number)  # funct not in the table
        queue = isa.queue_of(name)
        if queue == "load":
            problems = problems | field(word, "pop_prev") | field(word, "push_prev")
        if queue == "store":
            problems = problems | field(word, "pop_next") | field(word, "push_next")
        for spec in isa.FORMATS[fmt]:
            value = field(word, spec.name, fmt)
            if spec.minimum > 0:
                problems = problems | (value < spec.minimum)
            if spec.maximum is not None:
                problems = problems | (value > spec.maximum)
        bad = bad | (opcode_is(word, name) & problems)
    return bad
