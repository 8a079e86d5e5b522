"""Pareto selection on hand-made rows, the result table's append/resume rules, the report files."""

import pytest

from wavecore.sweep import pareto_optimal, parse_sweep
from wavecore.sweep.report import write_report
from wavecore.sweep.table import ResultTable, read_table, table_columns


def _row(point, cycles, traffic, status="ok", fmax=None):
    return {"point": point, "status": status, "step_cycles": cycles, "dram_bytes": traffic, "fmax_mhz": fmax}


def test_pareto_optimal_by_hand():
    rows = [_row("a", 10, 100), _row("b", 20, 50), _row("c", 20, 100), _row("d", 5, 200), _row("e", 10, 100),
            _row("f", 1, 1, status="failed"), _row("g", None, 1)]
    # c is dominated by a (and b); a and e tie (both kept); failed and incomplete rows take no part.
    assert [r["point"] for r in pareto_optimal(rows, ["step_cycles", "dram_bytes"])] == ["a", "b", "d", "e"]
    assert [r["point"] for r in pareto_optimal(rows, ["step_cycles"])] == ["d"]
    # Fmax is maximised.
    rows = [_row("x", 10, 1, fmax=50.0), _row("y", 10, 1, fmax=80.0)]
    assert [r["point"] for r in pareto_optimal(rows, ["step_cycles", "fmax_mhz"])] == ["y"]


def test_table_appends_each_point_once_and_drops_a_torn_last_line(tmp_path):
    columns = table_columns(["dram_bytes"])
    table = ResultTable.open(tmp_path / "results.csv", columns)
    table.append({"point": "p1", "status": "ok", "error": "", "dram_bytes": 12, "array.rows": 4})
    with pytest.raises(ValueError, match="point p1 is already in"):
        table.append({"point": "p1", "status": "ok"})
    with open(table.path, "a") as handle:
        handle.write("p2,ok,,1.0")  # a crash mid-row
    reopened = ResultTable.open(tmp_path / "results.csv", columns)
    assert reopened.ids == {"p1"}
    rows = read_table(reopened.path)
    assert len(rows) == 1 and rows[0]["dram_bytes"] == 12 and rows[0]["array.rows"] == 4 and rows[0]["seconds"] is None
    reopened.append({"point": "p2", "status": "failed", "error": "tool, with a comma\nand a newline"})
    assert read_table(reopened.path)[1]["error"] == "tool, with a comma\nand a newline"
    assert reopened.drop(["p2"]) == 1 and [r["point"] for r in read_table(reopened.path)] == ["p1"]
    with pytest.raises(ValueError, match="holds results of a different sweep"):
        ResultTable.open(tmp_path / "results.csv", table_columns(["lut"]))


def test_report_lists_pareto_points_failures_and_writes_the_plots(tmp_path):
    spec = parse_sweep({"name": "demo", "base": {"workload.network": "tiny_resnet"},
                        "grid": {"array.size": [4, 8], "array.dataflow": ["os", "ws"]}})
    rows = []
    for index, point in enumerate(spec.points):
        rows.append({**point.parameters, "point": point.id, "status": "ok" if index < 3 else "failed",
                     "error": "" if index < 3 else "planner: RuntimeError: boom",
                     "pes": point.parameters["array.rows"] ** 2,
                     "step_cycles": 100 - 10 * index, "dram_bytes": (1 << 20) * (1 + index)})
    path = write_report(spec, rows, tmp_path, runs=[])
    text = path.read_text()
    assert text.startswith("# Sweep demo")
    assert "4 points: 3 ok, 1 failed, 0 not evaluated yet" in text
    assert "## Pareto-optimal points (" in text and "## Failed points (1)" in text
    assert "planner: RuntimeError: boom" in text
    for x, y in spec.plots:
        name = f"pareto_{x}_{y}.png".replace(".", "_").replace("_png", ".png")
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({name})" in text
