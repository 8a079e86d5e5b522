"""The one table of error codes (``golden/core/errors.py``): numbers stable, shared by the RTL's register map
and the simulator."""

from wavecore.golden.core.errors import ErrorCode
from wavecore.hdl.core import registers


def test_numbers_are_stable_and_new_codes_are_appended():
    assert {code.name: int(code) for code in ErrorCode} == {
        "NONE": 0, "ILLEGAL_OPCODE": 1, "ILLEGAL_FIELD": 2, "DRAM_OUT_OF_RANGE": 3, "SCRATCHPAD_OUT_OF_RANGE": 4,
        "START_WHILE_BUSY": 5, "AXI_READ_ERROR": 6, "AXI_WRITE_ERROR": 7, "TOKEN_OVERFLOW": 8,
        "NOT_IMPLEMENTED": 9, "MISALIGNED": 10, "DEADLOCK": 11, "ELEMENT_OUT_OF_RANGE": 12, "NO_END": 13,
    }


def test_every_code_has_a_meaning_and_who_raises_it():
    for code in ErrorCode:
        assert code.meaning and not code.meaning.endswith(".")
        assert code.raised_by and set(code.raised_by) <= {"rtl", "simulator"}
    both = {code for code in ErrorCode if code.raised_by == ("rtl", "simulator")}
    assert both == {ErrorCode.NONE, ErrorCode.ILLEGAL_OPCODE, ErrorCode.ILLEGAL_FIELD, ErrorCode.DRAM_OUT_OF_RANGE,
                    ErrorCode.SCRATCHPAD_OUT_OF_RANGE}
    assert ErrorCode.ELEMENT_OUT_OF_RANGE.raised_by == ErrorCode.NO_END.raised_by == ("simulator",)


def test_the_register_map_reexports_the_one_table():
    assert registers.ErrorCode is ErrorCode
    header = registers.default_register_map().c_header()
    assert "#define WAVECORE_ERROR_NO_END 13u /* simulator only: never in ERROR_CODE */" in header
    assert "#define WAVECORE_ERROR_DEADLOCK 11u\n" in header
