"""The Dask engine: results against the planner, a worker killed mid-task, failed points recorded, resume,
and ``--scheduler`` against a scheduler and worker started here on 127.0.0.1.

Tiny points (tiny_resnet, batch 4) keep each cluster test to a few seconds; the oracle for every successful row is
the planner called directly in this process (:func:`plan_mbs_family`, :func:`schedule_cycles`).
"""

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import dask
import pytest

from wavecore.golden.network import load_network
from wavecore.golden.plan.report import plan_mbs_family, schedule_cycles
from wavecore.golden.plan.traffic import TrafficOptions
from wavecore.sweep import EVALUATORS, PointFailed, parse_sweep, run_sweep
from wavecore.sweep.engine import connect, evaluate_point
from wavecore.sweep.evaluators import PlannerEvaluator
from wavecore.sweep.table import read_table

# The evaluators below are pickled by value, so worker processes need not import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SWEEP = {
    "name": "tiny",
    "base": {"workload.network": "tiny_resnet", "workload.batch": 4, "memory.dram_bytes_per_cycle": 8},
    "grid": {"array.size": [4, 8], "memory.buffer": ["16KiB", "1MiB"], "array.dataflow": ["os", "ws"]},
}


def _expected(parameters):
    """The planner's figures for one point, computed here without the sweep."""
    network = load_network(parameters["workload.network"], norm=parameters["workload.norm"])
    schedule = parameters["workload.schedule"]
    plan = plan_mbs_family(network, parameters["workload.batch"], parameters["memory.buffer"],
                           TrafficOptions(dtype_bytes=1), (schedule,))[schedule]
    cycles = schedule_cycles(network, plan, rows=parameters["array.rows"], cols=parameters["array.cols"],
                             dataflow="os" if parameters["array.dataflow"] == "output_stationary" else "ws")
    dram = math.ceil(plan.traffic.total / parameters["memory.dram_bytes_per_cycle"])
    return {"dram_bytes": plan.traffic.total, "compute_cycles": cycles, "dram_cycles": dram,
            "step_cycles": max(cycles, dram), "footprint_bytes": plan.traffic.peak_footprint}


def _check_rows(spec, rows):
    ids = [row["point"] for row in rows]
    assert sorted(ids) == sorted(point.id for point in spec.points), "every point exactly once"
    by_id = {point.id: point for point in spec.points}
    for row in rows:
        if row["status"] != "ok":
            continue
        for column, value in _expected(by_id[row["point"]].parameters).items():
            assert row[column] == value, (column, row)


class KillsItsWorkerOnce(PlannerEvaluator):
    """The planner, except that the first attempt at the point with ``victim`` rows kills its worker process
    (SIGKILL, mid-task) after leaving a marker file; the re-run finds the marker and evaluates normally."""

    name = "planner"

    def __init__(self, marker: Path, victim: int):
        self.marker, self.victim = str(marker), victim

    def evaluate(self, parameters, options):
        chosen = parameters["array.rows"] == self.victim and parameters["array.dataflow"] == "weight_stationary"
        if chosen and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().evaluate(parameters, options)


class BrokenTool(PlannerEvaluator):
    """A second evaluator that fails like a crashing tool on 16 KiB points and misses timing on the others."""

    name = "broken"
    columns = ("broken_value",)
    objectives = ()
    plots = ()

    def evaluate(self, parameters, options):
        if parameters["memory.buffer"] == 16 * 1024:
            raise RuntimeError("tool crashed\nwith a long traceback")
        raise PointFailed("timing_failed", "missed 50 MHz", {"broken_value": 7})


class AlwaysKillsItsWorker(PlannerEvaluator):
    """The planner, except that the 4x4 weight-stationary 1 MiB point kills its worker on every attempt."""

    def evaluate(self, parameters, options):
        chosen = (parameters["array.rows"], parameters["array.dataflow"], parameters["memory.buffer"])
        if chosen == (4, "weight_stationary", 1 << 20):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().evaluate(parameters, options)


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster (the engine's own, :func:`connect`) for the fault tests; a task whose workers
    died twice is given up on (allowed-failures 1: the first death is retried)."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), connect(workers=2) as client:
        yield client.scheduler.address


class FixedTool(BrokenTool):
    def evaluate(self, parameters, options):
        return {"broken_value": 1}


def test_a_killed_worker_reruns_its_task_and_failures_are_recorded(tmp_path, cluster):
    marker = tmp_path / "killed.marker"
    evaluators = {"planner": KillsItsWorkerOnce(marker, victim=8), "broken": BrokenTool()}
    data = dict(SWEEP, evaluate=["planner"])
    spec = parse_sweep(data, evaluators=evaluators)
    lines = []
    result = run_sweep(spec, tmp_path / "out", scheduler=cluster, evaluators=evaluators, progress=lines.append)
    assert marker.exists(), "the fault was not injected"
    killed_pid = int(marker.read_text())
    rows = read_table(result.table)
    _check_rows(spec, rows)
    assert all(row["status"] == "ok" for row in rows)
    victims = [row for row in rows if row["array.rows"] == 8 and row["array.dataflow"] == "weight_stationary"]
    assert victims and all(int(row["worker"].rsplit(":", 1)[1]) != killed_pid for row in victims)
    assert result.evaluated == len(spec.points) and result.workers == 2
    assert any(line.startswith(f"[{len(spec.points)}/{len(spec.points)}]") for line in lines)
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Sweep tiny")

    # A point whose evaluator errors is a row with its message, not a missing row.
    spec = parse_sweep(dict(SWEEP, evaluate=["planner", "broken"]), evaluators=evaluators)
    result = run_sweep(spec, tmp_path / "broken", scheduler=cluster, evaluators=evaluators, progress=lines.append)
    rows = read_table(result.table)
    _check_rows(spec, rows)
    crashed = [row for row in rows if row["memory.buffer"] == 16 * 1024]
    assert crashed and all(row["status"] == "failed" for row in crashed)
    assert all(row["error"] == "broken: RuntimeError: tool crashed" for row in crashed)
    assert all(row["dram_bytes"] == _expected(spec_point)["dram_bytes"]
               for row in crashed for spec_point in [next(p.parameters for p in spec.points if p.id == row["point"])])
    missed = [row for row in rows if row["memory.buffer"] != 16 * 1024]
    assert all(row["status"] == "timing_failed" and row["broken_value"] == 7 for row in missed)
    assert result.failed == len(spec.points)
    report = (tmp_path / "broken" / "report.md").read_text()
    assert f"## Failed points ({len(spec.points)})" in report and "broken: RuntimeError: tool crashed" in report

    # --retry-failed: the failed points run again (the tool is fixed now), each point still once in the table.
    fixed = {"planner": EVALUATORS["planner"], "broken": FixedTool()}
    result = run_sweep(spec, tmp_path / "broken", scheduler=cluster, evaluators=fixed, retry_failed=True,
                       progress=lines.append)
    assert result.evaluated == len(spec.points) and result.failed == 0
    rows = read_table(result.table)
    _check_rows(spec, rows)
    assert all(row["status"] == "ok" and row["broken_value"] == 1 and row["error"] == "" for row in rows)

    # A point that kills every worker it runs on is recorded as failed once the scheduler gives up on it.
    evaluators = {"planner": AlwaysKillsItsWorker()}
    spec = parse_sweep(SWEEP, evaluators=evaluators)
    result = run_sweep(spec, tmp_path / "deadly", scheduler=cluster, evaluators=evaluators, progress=lines.append)
    rows = read_table(result.table)
    _check_rows(spec, rows)
    deadly = [row for row in rows if row["status"] != "ok"]
    assert len(deadly) == 1 and deadly[0]["array.rows"] == 4 and deadly[0]["memory.buffer"] == 1 << 20
    assert deadly[0]["error"].startswith("dask: KilledWorker"), deadly[0]["error"]
    assert deadly[0]["dram_bytes"] is None


def test_evaluate_point_never_raises():
    spec = parse_sweep(dict(SWEEP, evaluate=["planner", "broken"]), evaluators={**EVALUATORS, "broken": BrokenTool()})
    point = spec.points[0]
    row = evaluate_point(point.id, point.parameters, spec.evaluate, {"planner": EVALUATORS["planner"],
                                                                      "broken": BrokenTool()})
    assert row["status"] == "failed" and row["error"] == "broken: RuntimeError: tool crashed"
    assert row["pes"] == 16 and row["dram_bytes"] == _expected(point.parameters)["dram_bytes"]


def test_a_stopped_sweep_resumes_where_it_stopped(tmp_path, cluster):
    spec = parse_sweep(SWEEP)
    output = tmp_path / "out"
    first = run_sweep(spec, output, workers=2, progress=lambda line: None)
    assert first.evaluated == len(spec.points)
    # Simulate a sweep stopped after three rows, the last of them cut mid-line by the crash.
    lines = first.table.read_text().splitlines(keepends=True)
    first.table.write_text("".join(lines[:4]) + lines[4][:10])
    kept = {row[0] for row in csv.reader(lines[1:4])}
    progress = []
    second = run_sweep(spec, output, scheduler=cluster, progress=progress.append)
    assert second.skipped == 3 and second.evaluated == len(spec.points) - 3
    assert f"{len(spec.points)} points, 3 already in" in progress[0]
    rows = read_table(second.table)
    _check_rows(spec, rows)
    assert kept <= {row["point"] for row in rows}
    # Nothing left: no cluster is started and the report is rewritten.
    third = run_sweep(spec, output, progress=lambda line: None)
    assert third.evaluated == 0 and third.workers == 0
    runs = [json.loads(line) for line in (output / "runs.jsonl").read_text().splitlines()]
    assert [run["evaluated"] for run in runs] == [len(spec.points), len(spec.points) - 3, 0]
    assert (output / "report.md").read_text().count(" | local cluster |") == 2  # the table of runs
    # Another sweep's table in the same directory is refused before anything runs.
    other = parse_sweep(dict(SWEEP, evaluate={"planner": {}, "rtl": {}}))
    with pytest.raises(ValueError, match="holds results of a different sweep"):
        run_sweep(other, output, progress=lambda line: None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_scheduler_option_uses_a_running_cluster(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    worker = None
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
             "--no-dashboard", "--name", "test-worker"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        sweep = tmp_path / "tiny.yaml"
        sweep.write_text(json.dumps(SWEEP))  # JSON is YAML
        deadline = time.monotonic() + 60
        while True:  # wait for the worker to register before asking for results
            probe = subprocess.run([sys.executable, "-c", (
                "import sys\nfrom distributed import Client\n"
                f"c = Client('{address}', timeout=5)\nsys.exit(0 if c.scheduler_info()['workers'] else 1)")],
                capture_output=True)
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline, "the test's Dask worker did not register in 60 s"
            time.sleep(1)
        result = subprocess.run(
            [sys.executable, "-m", "wavecore", "sweep", str(sweep), "-o", str(tmp_path / "out"),
             "--scheduler", address], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert f"dask: scheduler {address}, 1 workers" in result.stdout
        rows = read_table(tmp_path / "out" / "results.csv")
        spec = parse_sweep(SWEEP)
        _check_rows(spec, rows)
        assert all(row["status"] == "ok" for row in rows)
        worker_pids = {int(row["worker"].rsplit(":", 1)[1]) for row in rows}
        assert os.getpid() not in worker_pids and len(worker_pids) == 1
        assert "report:" in result.stdout and (tmp_path / "out" / "report.md").exists()
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_scheduler_that_is_not_there_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from wavecore.cli import main
    from wavecore.sweep import engine

    monkeypatch.setattr(engine, "CONNECT_TIMEOUT", "2s")

    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(json.dumps(SWEEP))
    status = main(["sweep", str(sweep), "-o", str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.startswith("wavecore sweep: error: --scheduler: cannot connect to the Dask scheduler tcp://127.0.0.1:")
    assert "\n" not in error
    assert not (tmp_path / "out").exists()
