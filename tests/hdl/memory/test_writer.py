# amaranth: UnusedElaboratable=no
"""Result writer (hdl/memory/writer.py): parameter validation and write/accumulate/requantize on both simulators."""

import pytest
from sim_matrix import simulator_cases

from wavecore.hdl.memory.writer import ResultWriter
from wavecore.verif.runner import build


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"cols": 0, "depth": 4}, ValueError, "cols must be an integer between 1 and 256, not 0"),
        ({"cols": 2, "depth": 1}, ValueError, "depth must be an integer between 2 and 65536, not 1"),
        ({"cols": 2.0, "depth": 4}, TypeError, "cols must be an integer, not 2.0"),
        ({"cols": 2, "depth": 4, "overflow": "clip"}, ValueError,
         "overflow must be one of wrap, saturate, not 'clip'"),
        ({"cols": 2, "depth": 4, "requantize": 1}, TypeError, "requantize must be a bool, not 1"),
        ({"cols": 2, "depth": 4, "rounding": "up"}, ValueError,
         "rounding must be one of floor, half_up, half_even, half_away_from_zero, not 'up'"),
        ({"cols": 2, "depth": 4, "out_width": 1}, ValueError, "out_width must be an integer between 2 and 32, not 1"),
    ],
)
def test_writer_rejects_bad_parameters_with_exact_message(kwargs, error, message):
    with pytest.raises(error) as raised:
        ResultWriter(**kwargs)
    assert str(raised.value) == message


def test_requantizing_writer_has_no_accumulate_port():
    assert "accumulate" not in ResultWriter(cols=2, depth=4, requantize=True).signature.members
    assert "accumulate" in ResultWriter(cols=2, depth=4).signature.members


# (cols, depth, acc_width, signed, overflow, requantize, shift, out_width, rounding, passes, idle, backpressure)
CASES = [
    (3, 5, 12, True, "saturate", False, 0, 8, "half_even", [0, 1, 1, 1], 0.3, 0.4),
    (2, 4, 10, True, "wrap", False, 0, 8, "half_even", [1, 1, 0, 1], 0.0, 0.0),
    (2, 2, 8, False, "saturate", False, 0, 8, "half_even", [0, 1, 1], 0.4, 0.3),
    (3, 6, 16, True, "wrap", True, 5, 6, "half_even", [0, 0], 0.3, 0.3),
    (2, 3, 12, True, "wrap", True, 3, 4, "half_away_from_zero", [0], 0.2, 0.0),
    (2, 3, 12, False, "wrap", True, -2, 8, "half_up", [0], 0.0, 0.2),
    (2, 3, 12, False, "wrap", True, 4, 6, "half_even", [0], 0.2, 0.2),
    (2, 4, 12, True, "wrap", True, 2, 8, "floor", [0, 0], 0.0, 0.0),
]


@pytest.mark.parametrize(
    ("simulator", "cols", "depth", "acc_width", "signed", "overflow", "requantize", "shift", "out_width",
     "rounding", "passes", "idle", "backpressure"),
    simulator_cases(CASES),
)
def test_writer_bank_matches_golden_after_passes(
    simulator, cols, depth, acc_width, signed, overflow, requantize, shift, out_width, rounding, passes, idle,
    backpressure,
):
    writer = ResultWriter(cols=cols, depth=depth, acc_width=acc_width, signed=signed, overflow=overflow,
                          requantize=requantize, shift=shift, out_width=out_width, rounding=rounding)
    design = build(writer, toplevel="result_writer", simulator=simulator)
    design.run(
        "tb_writer",
        testcase="passes_then_readback",
        params={"cols": cols, "depth": depth, "acc_width": acc_width, "signed": signed, "overflow": overflow,
                "requantize": requantize, "shift": shift, "out_width": out_width, "rounding": rounding,
                "passes": passes, "idle": idle, "backpressure": backpressure},
    )
