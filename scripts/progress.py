"""Progress of the steps that take more than a few seconds, shown one way for every command.

On a terminal (stderr is a TTY) each task is a ``rich`` progress bar (or a spinner when the total is unknown)
that disappears when the task ends; otherwise (a log file, CI, a pipe) each task prints plain timestamped lines
on stderr: when it starts, at most every :data:`LINE_INTERVAL` seconds while it advances, and when it ends with
its duration. ``--quiet`` on any command (:func:`configure` ``quiet=True``) silences it. Results stay on
stdout, so redirecting stdout never captures progress.

Usage::

    from wavecore import progress

    with progress.task("train resnet18", total=steps, unit="steps") as bar:
        for step in range(steps):
            ...
            bar.advance(detail=f"loss {loss:.4f}")
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["LINE_INTERVAL", "Task", "configure", "configured", "task", "track"]

#: Shortest time between two plain progress lines of one task, in seconds (the first and last always print).
LINE_INTERVAL = 5.0

_settings: dict = {"quiet": False, "stream": None, "mode": "auto", "interval": LINE_INTERVAL}
_lock = threading.Lock()
_rich: dict = {"progress": None, "tasks": 0}


def configure(*, quiet: bool | None = None, stream: TextIO | None = None, mode: str | None = None,
              interval: float | None = None) -> None:
    """Set how progress shows: ``quiet`` (nothing), ``stream`` (default ``sys.stderr`` at the time of the
    task), ``mode`` (``"auto"``: a bar on a terminal, lines otherwise; ``"bar"``; ``"lines"``), ``interval``
    (seconds between plain lines)."""
    if mode is not None and mode not in ("auto", "bar", "lines"):
        raise ValueError(f"mode must be one of auto, bar, lines, not {mode!r}")
    if interval is not None and not interval >= 0:
        raise ValueError(f"interval must be >= 0 seconds, not {interval!r}")
    for key, value in (("quiet", quiet), ("stream", stream), ("mode", mode), ("interval", interval)):
        if value is not None:
            _settings[key] = value


@contextlib.contextmanager
def configured(**settings) -> Iterator[None]:
    """:func:`configure` for the duration of a ``with`` block (e.g. ``quiet=True`` around inner tasks)."""
    saved = dict(_settings)
    configure(**settings)
    try:
        yield
    finally:
        _settings.update(saved)


def _stream() -> TextIO:
    return _settings["stream"] if _settings["stream"] is not None else sys.stderr


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


@dataclass
class Task:
    """One running task; :meth:`advance` it as work completes."""

    description: str
    total: int | None
    unit: str
    completed: int = 0
    detail: str = ""
    started: float = field(default_factory=time.monotonic)
    _last_line: float = 0.0
    _kind: str = "quiet"  # "quiet", "lines" or "bar"
    _bar_id: object = None

    def advance(self, amount: int = 1, *, detail: str | None = None) -> None:
        """``amount`` more units done; ``detail`` (e.g. the current loss) is shown beside the count."""
        self.completed += amount
        if detail is not None:
            self.detail = detail
        if self._kind == "bar":
            _rich["progress"].update(self._bar_id, advance=amount, detail=self.detail)
        elif self._kind == "lines":
            now = time.monotonic()
            last = self.total is not None and self.completed >= self.total
            if last or now - self._last_line >= _settings["interval"]:
                self._last_line = now
                self._line(self._count())

    def _count(self) -> str:
        count = f"{self.completed}/{self.total}" if self.total is not None else f"{self.completed}"
        amount = self.total if self.total is not None else self.completed
        return f"{count} {_units(self.unit, amount)}" + (f" ({self.detail})" if self.detail else "")

    def _line(self, text: str) -> None:
        stream = _stream()
        stream.write(f"[{_stamp()}] {self.description}: {text}\n")
        stream.flush()


def _units(unit: str, amount: int) -> str:
    """``steps`` -> ``step`` for one of them."""
    return unit[:-1] if amount == 1 and unit.endswith("s") else unit


def _kind() -> str:
    if _settings["quiet"]:
        return "quiet"
    mode = _settings["mode"]
    if mode == "auto":
        stream = _stream()
        mode = "bar" if hasattr(stream, "isatty") and stream.isatty() else "lines"
    return mode


def _start_bar(task_: Task) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with _lock:
        if _rich["progress"] is None:
            _rich["progress"] = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                console=Console(file=_stream()), transient=True)
            _rich["progress"].start()
        _rich["tasks"] += 1
    task_._bar_id = _rich["progress"].add_task(task_.description, total=task_.total, detail="")


def _stop_bar(task_: Task) -> None:
    with _lock:
        _rich["progress"].remove_task(task_._bar_id)
        _rich["tasks"] -= 1
        if _rich["tasks"] == 0:
            _rich["progress"].stop()
            _rich["progress"] = None


@contextlib.contextmanager
def task(description: str, total: int | None = None, *, unit: str = "steps") -> Iterator[Task]:
    """Show the progress of one task for the duration of the ``with`` block (see the module docstring).

    ``total`` is the number of units when known (``None``: a spinner, or lines without a total).
    """
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise ValueError(f"total must be a non-negative integer or None, not {total!r}")
    current = Task(description=description, total=total, unit=unit, _kind=_kind())
    if current._kind == "bar":
        _start_bar(current)
    elif current._kind == "lines":
        current._last_line = time.monotonic()
        current._line("started" + (f", {total} {_units(unit, total)}" if total is not None else ""))
    failed = False
    try:
        yield current
    except BaseException:
        failed = True
        raise
    finally:
        if current._kind == "bar":
            _stop_bar(current)
        elif current._kind == "lines":
            seconds = time.monotonic() - current.started
            current._line(f"{'failed' if failed else 'done'} after {seconds:.1f} s"
                          + (f", {current._count()}" if current.completed else ""))


def track(items, description: str, *, total: int | None = None, unit: str = "items", label=None):
    """Iterate over ``items`` inside a :func:`task`, advancing once per item (``label(item)`` is the detail)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with task(description, total=total, unit=unit) as current:
        for item in items:
            yield item
            current.advance(detail=label(item) if label is not None else None)
