"""verif/gemm.py: the tiling, the reassembly and the reference, without a simulator.

The beats a schedule produces are fed to a behavioural model of the array's documented stream semantics
(``hdl/array/systolic.py`` docstring) written here from scratch, and the reassembled ``C`` is compared with
brute-force oracles (big-integer NumPy for wrap, a Python loop for saturate).
"""

import itertools

import numpy as np
import pytest

from wavecore.golden.numerics import MacArithmetic
from wavecore.verif.gemm import ArraySpec, GemmSchedule, numpy_gemm_wrapped, reference_gemm
from wavecore.verif.packing import unpack


def _saturating_loop(a, b, arithmetic):
    """Brute force: every output, every k in ascending order, clamp after every addition."""
    low, high = arithmetic.accumulator.min, arithmetic.accumulator.max
    result = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    for i, j in itertools.product(range(a.shape[0]), range(b.shape[1])):
        total = 0
        for k in range(a.shape[1]):
            total = min(high, max(low, total + int(a[i, k]) * int(b[k, j])))
        result[i, j] = total
    return result


def _behavioural_array(schedule: GemmSchedule) -> list:
    """The array as its docstring describes it, transaction by transaction."""
    spec, arithmetic = schedule.spec, schedule.spec.arithmetic
    rows, cols, width = spec.rows, spec.cols, arithmetic.in_width
    signed = arithmetic.signed
    outputs = []
    if spec.dataflow == "output_stationary":
        accumulators = np.zeros((rows, cols), dtype=np.int64)
        for a_word, b_word in zip(schedule.beats["a"], schedule.beats["b"], strict=True):
            column = unpack(a_word, width, rows, signed)
            last = (a_word >> (rows * width)) & 1
            accumulators = arithmetic.add(accumulators, np.outer(column, unpack(b_word, width, cols, signed)))
            if last:
                outputs.extend(accumulators.copy())
                accumulators[:] = 0
        return outputs
    lanes = spec.weight_width
    weight_beats = iter(schedule.beats["w"])
    active = np.zeros((rows, cols), dtype=np.int64)
    for index, a_word in enumerate(schedule.beats["a"]):
        if (a_word >> (rows * width)) & 1:  # switch: take the next complete W from the preload stream
            first = next(weight_beats)
            transposed = (first >> (lanes * width)) & 1
            words = [first] + [next(weight_beats) for _ in range((cols if transposed else rows) - 1)]
            vectors = np.array([unpack(word, width, lanes, signed) for word in words])
            active = vectors[:, :rows].T if transposed else vectors[:, :cols]
        source = schedule.psum_source(index)
        partial = np.zeros(cols, dtype=np.int64) if source is None else outputs[source]
        operands = unpack(a_word, width, rows, signed)
        for i in range(rows):  # down the column: ascending k
            partial = arithmetic.add(partial, operands[i] * active[i])
        outputs.append(partial)
    return outputs


SHAPES = [(1, 1, 1), (7, 1, 5), (5, 11, 3), (4, 8, 6), (9, 13, 10)]


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (2, 3), (4, 4), (3, 5)])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_tiled_gemm_reassembles_to_the_reference(dataflow, rows, cols, overflow):
    arithmetic = MacArithmetic(in_width=6, acc_width=13, signed=True, overflow=overflow)
    spec = ArraySpec(rows=rows, cols=cols, arithmetic=arithmetic, dataflow=dataflow)
    rng = np.random.default_rng(rows * 10 + cols)
    orientations = [False, True] if dataflow == "weight_stationary" else [False]
    for (m, k, n), transposed in itertools.product(SHAPES, orientations):
        a = arithmetic.operand.random(rng, (m, k), 0.5)
        b = arithmetic.operand.random(rng, (k, n), 0.5)
        schedule = GemmSchedule(spec, a, b.T if transposed else b, weights_transposed=transposed)
        c = schedule.assemble(_behavioural_array(schedule))
        oracle = (
            numpy_gemm_wrapped(a, b, 13, True) if overflow == "wrap" else _saturating_loop(a, b, arithmetic)
        )
        assert np.array_equal(c, oracle), (m, k, n, transposed)
        assert np.array_equal(reference_gemm(a, b, arithmetic), oracle)


def test_saturation_order_matters_so_the_reference_is_not_trivially_wrap():
    arithmetic = MacArithmetic(in_width=4, acc_width=8, signed=True, overflow="saturate")
    a = np.array([[7, 7, 7, -8]])
    b = np.array([[7], [7], [7], [7]])
    assert reference_gemm(a, b, arithmetic)[0, 0] == 71  # 49, 98, 127 (clamped), 71
    assert numpy_gemm_wrapped(a, b, 8, True)[0, 0] == 91
    assert reference_gemm(a[:, ::-1], b[::-1], arithmetic)[0, 0] != 71  # another k order gives another sum


def test_unsigned_wide_wrap_oracle_matches_reference():
    arithmetic = MacArithmetic(in_width=16, acc_width=40, signed=False, overflow="wrap")
    rng = np.random.default_rng(5)
    a = arithmetic.operand.random(rng, (6, 300), 0.5)
    b = arithmetic.operand.random(rng, (300, 4), 0.5)
    assert np.array_equal(reference_gemm(a, b, arithmetic), numpy_gemm_wrapped(a, b, 40, False))


def test_schedule_sizes_and_psum_dependencies():
    spec = ArraySpec(rows=4, cols=3, arithmetic=MacArithmetic(), dataflow="weight_stationary")
    schedule = GemmSchedule(spec, np.zeros((5, 10), dtype=int), np.zeros((10, 7), dtype=int))
    assert (schedule.k_tiles, schedule.col_tiles) == (3, 3)
    assert len(schedule.beats["w"]) == 3 * 3 * 4 and len(schedule.beats["a"]) == 3 * 3 * 5
    assert schedule.output_rows == 45
    assert [schedule.psum_source(i) for i in (0, 14, 15, 44)] == [None, None, 0, 29]
    os_spec = ArraySpec(rows=4, cols=3, arithmetic=MacArithmetic(), dataflow="output_stationary")
    os_schedule = GemmSchedule(os_spec, np.zeros((5, 10), dtype=int), np.zeros((10, 7), dtype=int))
    assert len(os_schedule.beats["a"]) == 2 * 3 * 10 and os_schedule.output_rows == 2 * 3 * 4


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        (np.zeros((2, 3)), np.zeros((3, 2)), {}, "a must hold integers, not float64"),
        (np.zeros((2, 3), dtype=int), np.zeros((4, 2), dtype=int), {}, "a must be M x K and b K x N"),
        (
            np.full((2, 3), 128),
            np.zeros((3, 2), dtype=int),
            {},
            r"a has values outside the int8 range \[-128, 127\]",
        ),
        (
            np.zeros((2, 3), dtype=int),
            np.zeros((2, 3), dtype=int),
            {"weights_transposed": True},
            "weights_transposed needs the weight_stationary dataflow",
        ),
    ],
)
def test_bad_operands_are_rejected(a, b, kwargs, message):
    spec = ArraySpec(rows=2, cols=2, arithmetic=MacArithmetic(), dataflow="output_stationary")
    with pytest.raises((ValueError, TypeError), match=message):
        GemmSchedule(spec, a, b, **kwargs)


def test_assemble_refuses_a_lost_or_extra_row():
    spec = ArraySpec(rows=2, cols=2, arithmetic=MacArithmetic(), dataflow="output_stationary")
    schedule = GemmSchedule(spec, np.ones((3, 2), dtype=int), np.ones((2, 3), dtype=int))
    rows = _behavioural_array(schedule)
    with pytest.raises(ValueError, match="expected 8 result rows, got 7"):
        schedule.assemble(rows[:-1])
    with pytest.raises(ValueError, match="expected 8 result rows, got 9"):
        schedule.assemble(rows + rows[:1])
    assert np.array_equal(schedule.assemble(rows), np.full((3, 3), 2))


def test_array_spec_from_the_array_parameters():
    parameters = {
        "rows": 3,
        "cols": 2,
        "in_width": 4,
        "acc_width": 9,
        "signed": False,
        "overflow": "saturate",
        "dataflow": "weight_stationary",
    }
    spec = ArraySpec.from_parameters(parameters)
    assert spec.arithmetic == MacArithmetic(in_width=4, acc_width=9, signed=False, overflow="saturate")
    assert (spec.rows, spec.cols, spec.dataflow, spec.weight_width) == (3, 2, "weight_stationary", 3)
    with pytest.raises(
        ValueError, match="dataflow must be one of output_stationary, weight_stationary, not 'x'"
    ):
        ArraySpec(rows=1, cols=1, arithmetic=MacArithmetic(), dataflow="x")
