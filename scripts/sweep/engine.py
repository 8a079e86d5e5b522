"""Run a sweep on Dask: one task per point, results streamed to the table as they finish, then the report.

:func:`run_sweep` connects to an existing ``dask.distributed`` scheduler (``scheduler="tcp://host:8786"``) or starts
a :class:`distributed.LocalCluster` with one single-threaded worker process per CPU core (the evaluators are
CPU-bound Python and tools). Each point is submitted as the task ``wavecore-sweep-<id>``; its worker runs
:func:`evaluate_point`, which never raises: an evaluator's exception becomes a ``failed`` row with its message.

Reliability. A worker that dies mid-task (killed, out of memory) has its task rescheduled by the Dask scheduler on
another worker (up to ``distributed.scheduler.allowed-failures`` times, default 3; after that the point is recorded
as failed with ``KilledWorker``). Only this process writes the table, once per finished task, and the table refuses
an id twice, so every point is in it exactly once. Rows are flushed to disk one by one: a sweep stopped at any
moment is resumed by running it again, which skips the ids already in the table.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wavecore.sweep.evaluators import EVALUATORS, PointFailed
from wavecore.sweep.report import write_report
from wavecore.sweep.spec import SweepSpec, point_label
from wavecore.sweep.table import ResultTable, read_table, table_columns

__all__ = ["CONNECT_TIMEOUT", "SweepResult", "connect", "evaluate_point", "run_sweep"]

#: How long :func:`connect` waits for a scheduler given by address.
CONNECT_TIMEOUT = "10s"


@dataclass
class SweepResult:
    """What one :func:`run_sweep` call did."""

    table: Path
    report: Path
    points: int  # in the sweep file
    skipped: int  # already in the table
    evaluated: int  # run now
    failed: int  # rows of this sweep's points whose status is not ok (old and new)
    seconds: float  # wall time of this call
    workers: int


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def evaluate_point(identity: str, parameters: dict, evaluate: dict, evaluators: dict) -> dict:
    """Run every evaluator of one point (on a worker); returns its table row, never raises."""
    started = time.perf_counter()
    row = {
        "point": identity,
        **parameters,
        "pes": parameters["array.rows"] * parameters["array.cols"],
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    status, errors = "ok", []
    for name, options in evaluate.items():
        try:
            row.update(evaluators[name].evaluate(parameters, options))
        except PointFailed as failure:
            row.update(failure.metrics)
            status = failure.status if status == "ok" else status
            errors.append(f"{name}: {_first_line(failure)}")
        except Exception as error:  # a tool error is a result of the point: record it, keep the sweep going
            status = "failed"
            errors.append(f"{name}: {type(error).__name__}: {_first_line(error)}")
    row.update(status=status, error="; ".join(errors), seconds=round(time.perf_counter() - started, 3))
    return row


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None):
    """A Dask client: to ``scheduler``, or to a new local cluster of ``workers`` processes (default: CPU cores)."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise ConnectionError(f"cannot connect to the Dask scheduler {scheduler}: {_first_line(error)}") from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers must be a positive integer, not {workers!r}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = workers or cores or 1
    # Worker saturation 1.0: a worker holds only the task it runs (points are long; nothing to prefetch), so a
    # worker that dies takes no queued bystander with it towards its allowed-failures limit. The scheduler's HTTP
    # endpoints go to a free port, so sweeps running side by side do not clash on 8787.
    with _main_script_hidden(), dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


@contextlib.contextmanager
def _main_script_hidden():
    """Keep spawned worker processes from re-running the main script.

    multiprocessing's ``spawn`` re-executes ``__main__`` by path in every child when it was run as a script
    (``__main__.__spec__`` is None); a console script without an ``if __name__ == "__main__"`` guard would then
    start the sweep again in each worker. Nothing of the sweep lives in ``__main__``, so for the cluster's
    lifetime (workers are restarted after a crash too) the children are not told about it.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def run_sweep(
    spec: SweepSpec,
    output,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    evaluators: dict | None = None,
    retry_failed: bool = False,
    progress: Callable[[str], None] = print,
) -> SweepResult:
    """Evaluate the points of ``spec`` not yet in ``output/results.csv`` and write ``output/report.md``."""
    from distributed import as_completed

    started = time.perf_counter()
    evaluators = EVALUATORS if evaluators is None else evaluators
    used = {name: evaluators[name] for name in spec.evaluate}
    output = Path(output)  # created with the first file written into it
    metrics = list(dict.fromkeys(column for evaluator in used.values() for column in evaluator.columns))
    table = ResultTable.open(output / "results.csv", table_columns(metrics))
    wanted = {point.id for point in spec.points}
    if retry_failed:
        dropped = table.drop(i for i in wanted if table.statuses.get(i, "ok") != "ok")
        if dropped:
            progress(f"retrying {dropped} failed points")
    pending = [point for point in spec.points if point.id not in table.ids]
    planned = "planner" in spec.evaluate  # labels show the workload only when it matters
    skipped = len(spec.points) - len(pending)
    progress(f"sweep {spec.name}: {len(spec.points)} points"
             + (f" ({spec.repeated} repeated, run once)" if spec.repeated else "")
             + f", {skipped} already in {table.path}, {len(pending)} to evaluate")
    worker_count = 0
    if pending:
        with connect(scheduler, workers) as client:
            info = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else client.scheduler_info()
            worker_count = len(info.get("workers", {}))
            progress(f"dask: {'scheduler ' + scheduler if scheduler else 'local cluster'}, "
                     f"{worker_count} workers")
            futures = {
                client.submit(evaluate_point, point.id, point.parameters, spec.evaluate, used,
                              key=f"wavecore-sweep-{point.id}", pure=False): point
                for point in pending
            }
            for done, future in enumerate(as_completed(futures), start=1):
                point = futures.pop(future)  # results leave the cluster as soon as they are in the table
                try:
                    row = future.result()
                except Exception as error:  # the task never returned: e.g. KilledWorker after repeated deaths
                    row = {"point": point.id, **point.parameters,
                           "pes": point.parameters["array.rows"] * point.parameters["array.cols"],
                           "status": "failed", "error": f"dask: {type(error).__name__}: {_first_line(error)}"}
                table.append(row)
                future.release()
                elapsed = time.perf_counter() - started
                remaining = elapsed / done * (len(pending) - done)
                detail = f" ({row['error']})" if row["error"] else ""
                progress(f"[{done}/{len(pending)}] {point_label(point.parameters, workload=planned)}: {row['status']}"
                         f" in {row.get('seconds') or 0:.1f}s{detail}; {elapsed:.0f}s elapsed, ~{remaining:.0f}s left")
    rows = read_table(table.path)
    seconds = time.perf_counter() - started
    runs = _log_run(output / "runs.jsonl", {
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "evaluated": len(pending),
        "skipped": skipped, "seconds": round(seconds, 1), "workers": worker_count,
        "scheduler": scheduler or "local cluster"})
    report = write_report(spec, rows, output, runs=runs)
    failed = sum(1 for row in rows if row["point"] in wanted and row["status"] != "ok")
    progress(f"{len(pending)} evaluated, {failed} failed; table {table.path}, report {report}")
    return SweepResult(table=table.path, report=report, points=len(spec.points), skipped=skipped,
                       evaluated=len(pending), failed=failed, seconds=seconds, workers=worker_count)


def _log_run(path: Path, run: dict) -> list[dict]:
    """Append this run to ``runs.jsonl`` (one JSON object a line); returns every run logged there."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(run) + "\n")
    runs = []
    for line in path.read_text().splitlines():
        try:
            runs.append(json.loads(line))
        except ValueError:  # a line cut short by a crash
            continue
    return runs


def _takes_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters
