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


def _delta(before, name):
    after = coverage._hits()[name]
    return {label: count - before[name][label] for label, count in after.items() if count != before[name][label]}


def test_core_instructions_are_classified_by_queue_token_and_side():
    from wavecore.golden.core import isa
    from wavecore.golden.core.errors import ErrorCode

    before = coverage._hits()
    coverage.sample_core_instruction(isa.Instruction("GEMM", "forward", {}, pop_prev=True, push_next=True))
    coverage.sample_core_instruction(isa.Instruction("STORE", "weights.accumulator", {}, pop_prev=True))
    coverage.sample_core_instruction(isa.Instruction("SYNC", "none", {}, pop_prev=True, pop_next=True,
                                                     push_prev=True))
    coverage.sample_core_fault(ErrorCode.DEADLOCK)
    assert _delta(before, "core.instruction") == {"GEMM.forward": 1, "SYNC.none": 1}
    assert _delta(before, "core.memory.space") == {"STORE.accumulator": 1}
    assert _delta(before, "core.memory.class") == {"STORE.weights": 1}
    assert _delta(before, "core.tokens.queue_x_token") == {"compute.pop_prev": 2, "compute.push_next": 1,
                                                           "compute.pop_next": 1, "compute.push_prev": 1,
                                                           "store.pop_prev": 1}
    assert _delta(before, "core.tokens.compute_waits") == {"prev": 1, "both": 1}
    assert _delta(before, "core.fault") == {"DEADLOCK": 1}


def test_core_bins_follow_the_instruction_set():
    bins = coverage.CORE_BINS
    # 12 opcodes on the compute queue: END, SHAPE, SYNC and COUNTER (2) + 5 GEMM, 15 VECTOR, 16 NORM, 2 LOSS, 1 SGD
    assert len(bins["instruction"]) == 44 and "NORM.backward_gn" in bins["instruction"]
    assert len(bins["class"]) == 16 and len(bins["space"]) == 4
    # the load queue has no previous queue and the store queue no next one
    assert bins["token"] == ["load.pop_next", "load.push_next", "compute.pop_prev", "compute.pop_next",
                             "compute.push_prev", "compute.push_next", "store.pop_prev", "store.push_prev"]
    assert len(bins["fault"]) == 11 and "NONE" not in bins["fault"]
