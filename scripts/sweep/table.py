"""The result table on disk: one CSV row per point, appended (and flushed to disk) as each point finishes.

Columns: ``point`` (the id), ``status`` (``ok``, ``failed``, or an evaluator's measured failure such as
``timing_failed``), ``error`` (one line; empty when ok), ``seconds``, ``worker`` (``host:pid`` that ran it), every
parameter of :data:`wavecore.sweep.spec.PARAMETERS`, ``pes`` (rows x cols), then the evaluators' metric columns.

The table is what makes a sweep resumable: :meth:`ResultTable.open` reads the ids already there (a last line
cut short by a crash is dropped), the engine submits only the others, and :meth:`ResultTable.append` refuses an
id that is already in the table, so every point is in it exactly once.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from wavecore.files import write_atomic
from wavecore.sweep.spec import PARAMETERS

__all__ = ["FIXED_COLUMNS", "ResultTable", "read_table", "table_columns"]

FIXED_COLUMNS = ("point", "status", "error", "seconds", "worker")


def table_columns(metric_columns) -> list[str]:
    return [*FIXED_COLUMNS, *PARAMETERS, "pes", *metric_columns]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _line(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


class ResultTable:
    """An append-only CSV table of point results (see the module docstring)."""

    def __init__(self, path: Path, columns: list[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self.ids: set[str] = set()
        self.statuses: dict[str, str] = {}

    @classmethod
    def open(cls, path, columns: list[str]) -> ResultTable:
        """Open (or create) the table; an existing one must have exactly ``columns``."""
        table = cls(path, columns)
        path = table.path
        if not path.exists() or path.stat().st_size == 0:
            return table  # the header is written with the first row: a sweep that never starts leaves nothing
        text = path.read_text()
        if not text.endswith("\n"):  # the writer died mid-row: that row never counted
            text = text[: text.rfind("\n") + 1]
            write_atomic(path, text)
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or rows[0] != columns:
            raise ValueError(
                f"{path} holds results of a different sweep (other columns); give another output directory"
            )
        for row in rows[1:]:
            if len(row) != len(columns):
                raise ValueError(f"{path}: a row has {len(row)} cells, expected {len(columns)}")
            table.ids.add(row[0])
            table.statuses[row[0]] = row[1]
        return table

    def append(self, row: dict) -> None:
        """Write one point's row and flush it to disk."""
        identity = row["point"]
        if identity in self.ids:
            raise ValueError(f"point {identity} is already in {self.path}")
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"row has columns the table does not: {sorted(unknown)}")
        if not self.path.exists() or self.path.stat().st_size == 0:
            write_atomic(self.path, _line(self.columns))
        with open(self.path, "a", newline="") as handle:
            handle.write(_line(_cell(row.get(column)) for column in self.columns))
            handle.flush()
            os.fsync(handle.fileno())
        self.ids.add(identity)
        self.statuses[identity] = row["status"]

    def drop(self, identities) -> int:
        """Remove the rows of ``identities`` (``--retry-failed``); returns how many were removed."""
        identities = set(identities) & self.ids
        if not identities:
            return 0
        rows = list(csv.reader(io.StringIO(self.path.read_text())))
        kept = [rows[0]] + [row for row in rows[1:] if row[0] not in identities]
        write_atomic(self.path, "".join(_line(row) for row in kept))
        self.ids -= identities
        for identity in identities:
            self.statuses.pop(identity, None)
        return len(identities)


def _value(text: str):
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_table(path) -> list[dict]:
    """Every row of a result table as a dict, numbers parsed (empty cells are ``None``); no file: no rows."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return [{key: (_value(value) if key not in ("point", "error", "worker") else value)
                 for key, value in row.items()} for row in reader]
