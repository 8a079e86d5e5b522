"""scripts/progress.py: a bar on a terminal, timestamped lines otherwise, nothing with --quiet."""

import io
import re

import pytest

from wavecore import progress

LINE = r"\[\d\d:\d\d:\d\d\] "


@pytest.fixture
def stream():
    buffer = io.StringIO()
    with progress.configured(stream=buffer, quiet=False, mode="auto", interval=0):
        yield buffer


def test_lines_when_not_a_terminal_count_every_advance_with_its_detail(stream):
    with progress.task("train net", total=3, unit="steps") as bar:
        for loss in (2.5, 2.25, 2.0):
            bar.advance(detail=f"loss {loss}")
    lines = stream.getvalue().splitlines()
    assert [re.sub(LINE, "", line) for line in lines[:-1]] == [
        "train net: started, 3 steps", "train net: 1/3 steps (loss 2.5)", "train net: 2/3 steps (loss 2.25)",
        "train net: 3/3 steps (loss 2.0)"]
    assert re.fullmatch(LINE + r"train net: done after \d+\.\d s, 3/3 steps \(loss 2\.0\)", lines[-1])
    assert all(re.match(LINE, line) for line in lines)


def test_lines_are_throttled_but_the_last_count_always_prints(stream):
    with progress.configured(interval=3600), progress.task("sweep", total=100, unit="plans") as bar:
        for _ in range(100):
            bar.advance()
    lines = [re.sub(LINE, "", line) for line in stream.getvalue().splitlines()]
    assert lines[:2] == ["sweep: started, 100 plans", "sweep: 100/100 plans"] and len(lines) == 3


def test_a_failing_task_says_so_and_the_error_propagates(stream):
    with pytest.raises(RuntimeError, match="tool crashed"), progress.task("synth", total=4) as bar:
        bar.advance()
        raise RuntimeError("tool crashed")
    assert re.fullmatch(LINE + r"synth: failed after \d+\.\d s, 1/4 steps", stream.getvalue().splitlines()[-1])


def test_quiet_prints_nothing_and_track_still_yields_every_item(stream):
    with progress.configured(quiet=True):
        assert list(progress.track([1, 2, 3], "items")) == [1, 2, 3]
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_rich_bar_that_leaves_no_lines():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    with progress.configured(stream=terminal, quiet=False, mode="auto"):
        with progress.task("generate systolic", total=2) as bar:
            assert bar._kind == "bar"
            bar.advance(detail="elaborated")
            with progress.task("inner", total=None) as inner:  # nested tasks share one live display
                inner.advance()
            bar.advance()
        assert progress._rich["progress"] is None  # stopped once the last task ended
    assert "started" not in terminal.getvalue()


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^mode must be one of auto, bar, lines, not 'fancy'$"):
        progress.configure(mode="fancy")
    with pytest.raises(ValueError, match=r"^total must be a non-negative integer or None, not -1$"), \
            progress.task("x", total=-1):
        pass
