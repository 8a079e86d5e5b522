"""wavecore.verif.waits: the cycle limit formula and its argument checks (the bounded waits themselves run in
tests/verif/test_runner.py and tests/hdl/memory/test_dma.py against designs that never answer)."""

import pytest

from wavecore.verif.waits import SETTLE_CYCLES, SLACK, cycle_limit, stalled


def test_cycle_limit_is_slack_times_expected_plus_latency_plus_settling():
    assert (SLACK, SETTLE_CYCLES) == (4, 64)
    assert cycle_limit(100, latency=20) == 4 * 120 + 64
    assert cycle_limit(0) == 64
    assert cycle_limit(10, slack=1) == 74


def test_stalled_divides_by_each_chance_of_a_transfer():
    assert stalled(90, 0.1) == pytest.approx(100)
    assert stalled(30, 0.5, 0.25) == pytest.approx(80)
    assert stalled(7) == 7


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stalled(4, 1.0), "stall probability must be in [0, 1), not 1.0"),
        (lambda: cycle_limit(-1), "expected and latency cycles must be non-negative, not -1 and 0"),
        (lambda: cycle_limit(5, slack=0.5), "slack must be at least 1, not 0.5"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError) as raised:
        call()
    assert str(raised.value) == message
