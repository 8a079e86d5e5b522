"""wavecore.verif.coverage: bin classification, the merge of parallel runs and the printed report (the
coverpoints are sampled by the simulations of the stream, DMA and norm testbenches)."""

import json
import subprocess
import sys
import threading

import pytest

from wavecore.verif import coverage


@pytest.mark.parametrize(
    ("total", "shift", "rounding", "outcome"),
    [
        (6, 2, "half_even", ("in_range", "tie_positive")),  # 1.5 -> 2
        (-6, 2, "half_even", ("in_range", "tie_negative")),  # -1.5 -> -2
        (-10, 2, "floor", ("saturated_low", "tie_negative")),  # floor(-2.5) = -3 < -2
        (7, 2, "half_even", ("in_range", "no_tie")),  # 1.75 -> 2 = high: not saturated
        (9, 2, "floor", ("in_range", "no_tie")),  # 2.25 -> 2
        (10, 2, "half_up", ("saturated_high", "tie_positive")),  # 2.5 -> 3 > 2
        (10, 2, "half_even", ("in_range", "tie_positive")),  # 2.5 -> 2
    ],
)
def test_requantize_outcome_classifies_with_the_golden_rounding(total, shift, rounding, outcome):
    assert coverage.requantize_outcome(total, shift=shift, rounding=rounding, low=-2, high=2) == outcome


def test_buckets_are_exclusive_and_complete():
    assert [coverage._bucket(v, coverage.RUN_BINS) for v in (0, 1, 2, 7, 8, 1000)] == ["0", "1", "2-7", "2-7", "8+",
                                                                                         "8+"]
    with pytest.raises(ValueError, match="falls in none of the bins"):
        coverage._bucket(0, coverage.GROUP_BINS)


def test_parallel_runs_merge_under_the_lock_and_the_report_lists_holes(tmp_path):
    runs = []
    for index in range(8):
        run = tmp_path / f"run{index}.json"
        run.write_text(json.dumps({"stream.gap": {"0": 2, "8+": index}, "axi.outstanding_limit": {"read": 1}}))
        runs.append(run)
    merged_dir = tmp_path / "coverage"
    threads = [threading.Thread(target=coverage.merge_file, args=(run, merged_dir), kwargs={"test": run.stem})
               for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = json.loads((merged_dir / "coverage.json").read_text())
    assert merged["coverpoints"]["stream.gap"] == {"0": 16, "1": 0, "2-7": 0, "8+": 28}
    assert merged["coverpoints"]["axi.outstanding_limit"] == {"read": 8, "write": 0}
    assert sorted(merged["tests"]) == [f"run{index}" for index in range(8)]
    report = (merged_dir / "coverage.md").read_text()
    assert "| stream.gap | 2/4 | 1, 2-7 |" in report
    assert "| axi.outstanding_limit | 1/2 | write |" in report
    assert "8 simulations merged." in report
    assert not any(run.exists() for run in runs)  # each run file is consumed once


def test_the_report_command_prints_the_merged_report(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"norm.variance": {"zero": 3}}))
    coverage.merge_file(run, tmp_path / "coverage", test="one")
    printed = subprocess.run([sys.executable, "-m", "wavecore.verif.coverage"], capture_output=True, text=True,
                             env={"WAVECORE_BUILD_DIR": str(tmp_path), "PATH": ""}, check=True).stdout
    assert "| norm.variance | 1/2 | positive |" in printed
    assert printed.splitlines()[0] == "| coverpoint | bins hit | holes |"
