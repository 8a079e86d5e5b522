"""The instruction set: field tables, assembler range checks (exact messages), disassembler round trip,
and the generated table in docs/core.md."""

from pathlib import Path

import numpy as np
import pytest

from wavecore.golden.core.isa import (
    FORMATS,
    FUNCTS,
    HEADER,
    INSTRUCTION_BITS,
    OPCODES,
    Instruction,
    decode,
    decode_program,
    encode,
    encode_program,
    markdown_tables,
    norm_block,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "core.md"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fields_tile_the_word_without_overlap(fmt):
    used = np.zeros(INSTRUCTION_BITS, dtype=int)
    for spec in (*HEADER, *FORMATS[fmt]):
        assert spec.offset + spec.width <= INSTRUCTION_BITS, spec
        used[spec.offset : spec.offset + spec.width] += 1
    assert used.max() == 1


def _random_instruction(rng, opcode, funct):
    fmt = OPCODES[opcode][1]
    fields = {spec.name: int(rng.integers(spec.minimum, spec.limit, endpoint=True)) for spec in FORMATS[fmt]}
    queue = {"LOAD": "load", "STORE": "store"}.get(opcode, "compute")
    tokens = {name: bool(rng.integers(2)) for name in ("pop_prev", "pop_next", "push_prev", "push_next")}
    if queue == "load":
        tokens.update(pop_prev=False, push_prev=False)
    if queue == "store":
        tokens.update(pop_next=False, push_next=False)
    return Instruction(opcode, funct, fields, **tokens)


def test_every_opcode_and_funct_round_trips():
    rng = np.random.default_rng(1)
    program = [_random_instruction(rng, op, funct) for op, table in FUNCTS.items() for funct in table
               for _ in range(3)]
    image = encode_program(program)
    assert len(image) == 16 * len(program)
    assert decode_program(image) == program
    for instruction in program:
        assert decode(encode(instruction)) == instruction


def test_opcode_and_funct_numbers_are_unique():
    assert len({number for number, _, _ in OPCODES.values()}) == len(OPCODES)
    for table in FUNCTS.values():
        assert len({number for number, _ in table.values()}) == len(table)
        assert all(0 <= number < 16 for number, _ in table.values())


def test_known_encoding():
    # LOAD (1) | funct activations.scratchpad (0) | pop_next (bit 9); dram 0x100 at bit 16; length 5 at 66
    word = encode(Instruction("LOAD", "activations.scratchpad", {"dram_address": 0x100, "length": 5},
                              pop_next=True))
    assert word == 1 | 1 << 9 | 0x100 << 16 | 5 << 66 | 1 << 80 | 1 << 104


@pytest.mark.parametrize(
    "instruction, error, message",
    [
        (Instruction("LOAD", "weights.scratchpad", {"length": 0}), ValueError,
         "LOAD: length must be between 1 and 16383 (14 bits at [79:66]), not 0"),
        (Instruction("STORE", "stash.scratchpad", {"length": 1, "dram_address": 1 << 32}), ValueError,
         "STORE: dram_address must be between 0 and 4294967295 (32 bits at [47:16]), not 4294967296"),
        (Instruction("GEMM", "forward", {"dst": -1}), ValueError,
         "GEMM: dst must be between 0 and 16777215 (24 bits at [39:16]), not -1"),
        (Instruction("SHAPE", "none", {"samples": 0}), ValueError,
         "SHAPE: samples must be between 1 and 4095 (12 bits at [27:16]), not 0"),
        (Instruction("SHAPE", "none", {"kernel_height": 16}), ValueError,
         "SHAPE: kernel_height must be between 1 and 15 (4 bits at [87:84]), not 16"),
        (Instruction("VECTOR", "relu", {"imm": 1.5}), TypeError, "VECTOR: imm must be an integer, not 1.5"),
        (Instruction("VECTOR", "relu", {"imm": True}), TypeError, "VECTOR: imm must be an integer, not True"),
        (Instruction("GEMM", "sideways"), ValueError,
         "GEMM: funct must be one of forward, forward_bias, backward_data, backward_weight, "
         "backward_weight_accumulate, not 'sideways'"),
        (Instruction("GEMM", "forward", {"length": 3}), ValueError,
         "GEMM: field 'length' is not in the compute format (dst, src0, src1, src2, imm)"),
        (Instruction("FLY"), ValueError,
         "opcode must be one of END, LOAD, STORE, SHAPE, GEMM, VECTOR, NORM, LOSS, SGD, COUNTER, SYNC, not 'FLY'"),
        (Instruction("LOAD", "io.scratchpad", {"length": 1}, pop_prev=True), ValueError,
         "LOAD: the load queue has no previous queue, so pop_prev and push_prev must be 0"),
        (Instruction("STORE", "io.scratchpad", {"length": 1}, push_next=True), ValueError,
         "STORE: the store queue has no next queue, so pop_next and push_next must be 0"),
        (Instruction("SYNC", "none", {}, pop_prev=1), TypeError, "SYNC: pop_prev must be a bool, not 1"),
    ],
)
def test_assembler_range_checks(instruction, error, message):
    with pytest.raises(error) as raised:
        encode(instruction)
    assert str(raised.value) == message


def test_disassembler_refuses_illegal_words():
    with pytest.raises(ValueError, match=r"^illegal opcode 0x7f$"):
        decode(0x7F)
    with pytest.raises(ValueError, match=r"^illegal funct 15 for GEMM$"):
        decode(0x04 | 15 << 12)
    with pytest.raises(ValueError, match=r"^an instruction is 16 bytes, not 3$"):
        decode(b"abc")


def test_norm_block_layout():
    bn = norm_block("bn", 4)
    assert bn["s1"] == (0, 4) and bn["s2"] == (4, 4) and bn["r2"] == (28, 4) and bn["words"] == 32
    gn = norm_block("gn", 8, 2)
    assert gn["s1"] == (0, 2) and gn["rstd"] == (4, 8) and gn["words"] == 2 * 2 + 6 * 8
    with pytest.raises(ValueError, match="^kind must be one of bn, gn, not 'ln'$"):
        norm_block("ln", 4)


def test_docs_table_is_generated_from_the_definition():
    text = DOC.read_text()
    begin, end = "<!-- isa-tables:begin -->\n", "<!-- isa-tables:end -->"
    assert begin in text and end in text
    assert text.split(begin)[1].split(end)[0] == markdown_tables()
