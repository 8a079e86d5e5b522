"""hdl/hierarchy.py, hdl/array/chain.py, hdl/array/skew.py: hierarchical Verilog proven equal to the flat form

The proofs are Yosys' equivalence flow (:mod:`verif.equivalence`: every register of the flat form paired
with its twin in the hierarchical form, ``equiv_simple`` + ``equiv_induct``, all pairs proven); each must
fail on a hierarchical design that differs (saturating instead of wrapping accumulators). The default tier
uses 2-bit operands (the structure does not depend on the width; the SAT problems do); 8-bit is slow.
The cocotb regression of the hierarchical form is in ``tests/hdl/array/test_systolic.py`` and
``tests/hdl/array/test_systolic_large.py``.
"""

import pytest
from amaranth.back import verilog

from wavecore.hdl.array.chain import Chain
from wavecore.hdl.array.skew import DelayStage, Skew
from wavecore.hdl.array.systolic import SystolicArray
from wavecore.hdl.hierarchy import convert, convert_rtlil, module_names
from wavecore.verif.equivalence import prove_equivalent

pytestmark = pytest.mark.filterwarnings("ignore:.*created but never used")


def _prove(tmp_path, *, gate_overflow="wrap", **parameters):
    gold = SystolicArray(**parameters, overflow="wrap")
    gate = SystolicArray(**parameters, overflow=gate_overflow, hierarchical=True)
    return prove_equivalent(convert_rtlil(gold, name="gold"), convert_rtlil(gate, name="gate"),
                            gold="gold", gate="gate", workdir=tmp_path)


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
@pytest.mark.parametrize(("rows", "cols"), [(2, 2), (3, 4)])
def test_hierarchical_array_is_equivalent_to_flat(tmp_path, rows, cols, dataflow):
    result = _prove(tmp_path, rows=rows, cols=cols, dataflow=dataflow, in_width=2, acc_width=6)
    assert result.proven, result.log[-3000:]
    assert result.pairs > 200  # the registers and outputs were paired, not an empty proof


def test_equivalence_check_fails_on_a_different_design(tmp_path):
    result = _prove(tmp_path, rows=2, cols=2, dataflow="output_stationary", in_width=2, acc_width=4,
                    gate_overflow="saturate")
    assert not result.proven
    assert "Unproven $equiv" in result.log


@pytest.mark.slow
@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_hierarchical_int8_array_is_equivalent_to_flat(tmp_path, dataflow):
    result = _prove(tmp_path, rows=2, cols=3, dataflow=dataflow, in_width=8, acc_width=32)
    assert result.proven, result.log[-3000:]


def test_module_count_grows_with_distinct_sizes_not_with_cells():
    """Stated values: PE, its multiplier, the row, the grid, and per binary level at most two half chains
    of PEs and of rows, plus the skews; 64x64 has no more modules than log2 predicts."""
    counts = {}
    for size in (4, 16, 64):
        text = convert(SystolicArray(rows=size, cols=size, hierarchical=True), name="systolic")
        names = module_names(text)
        assert len(names) == len(set(names))
        counts[size] = len(names)
        assert "systolic_pe" in names and "systolic_grid" in names
        assert sum(name.startswith("systolic_pe_x") for name in names) <= 2 * 6
    assert counts[4] < counts[16] < counts[64] <= 100  # flat 64x64: 8,193 modules
    flat = module_names(convert(SystolicArray(rows=4, cols=4), name="systolic"))
    assert sum(".multiplier" in name for name in flat) == 16  # one per PE instance in the flat form


def test_flat_form_is_exactly_verilog_convert():
    array = SystolicArray(rows=2, cols=3, dataflow="weight_stationary")
    assert convert(array, name="top") == verilog.convert(
        SystolicArray(rows=2, cols=3, dataflow="weight_stationary"), name="top", emit_src=False)


def test_hierarchical_design_outside_convert_is_a_clear_error():
    with pytest.raises(RuntimeError, match="hierarchical design is written by hdl.hierarchy.convert"):
        verilog.convert(SystolicArray(rows=2, cols=2, hierarchical=True), name="top")


def test_hierarchical_must_be_a_bool():
    with pytest.raises(TypeError, match="hierarchical must be a bool, not 1"):
        SystolicArray(rows=2, cols=2, hierarchical=1)


def test_chain_requires_a_role_for_every_input():
    with pytest.raises(ValueError, match="input 'advance' of the cell needs exactly one role, has 0"):
        Chain(cell=lambda: DelayStage(width=4), count=3, forward=[("data_in", "data_out")], kind="stage", key=4)


def test_skew_rejects_bad_sizes():
    with pytest.raises(ValueError, match="lanes must be an integer of at least 1, not 0"):
        Skew(lanes=0, width=8)
    with pytest.raises(ValueError, match="offset must be an integer of at least 0, not -1"):
        Skew(lanes=2, width=8, offset=-1)
