"""The sweep report: Pareto-optimal points, Pareto plots coloured by array size, failed points, ``report.md``.

Every objective is minimised except :data:`MAXIMISED` (Fmax, utilization). A point is Pareto-optimal when no other
successful point is at least as good in every objective and better in one; points with a missing objective value
(a failed evaluator) take no part. Plots draw every successful point (colour: array size, marker: dataflow), ring
the Pareto-optimal ones (optimal over *all* objectives) and join the two plotted axes' own Pareto front.
"""

from __future__ import annotations

from pathlib import Path

from wavecore.files import atomic_path, write_atomic
from wavecore.sweep.spec import point_label

__all__ = ["MAXIMISED", "pareto_optimal", "plot_pareto", "write_report"]

MAXIMISED = ("fmax_mhz", "rtl_utilization")
_MIB = 1 << 20
_BYTE_COLUMNS = ("memory.buffer",)


def _is_bytes(column: str) -> bool:
    return column.endswith("_bytes") or column in _BYTE_COLUMNS


def _key(row: dict, objectives) -> tuple | None:
    values = []
    for objective in objectives:
        value = row.get(objective)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        values.append(-value if objective in MAXIMISED else value)
    return tuple(values)


def pareto_optimal(rows: list[dict], objectives) -> list[dict]:
    """The rows no other row dominates (see the module docstring), in input order."""
    keyed = [(row, _key(row, objectives)) for row in rows if row.get("status") == "ok"]
    keyed = [(row, key) for row, key in keyed if key is not None]
    result = []
    for row, key in keyed:
        dominated = any(
            all(o <= k for o, k in zip(other, key)) and any(o < k for o, k in zip(other, key))
            for _, other in keyed
        )
        if not dominated:
            result.append(row)
    return result


def _scaled(column: str, value):
    return value / _MIB if _is_bytes(column) else value


def _axis_label(column: str) -> str:
    if _is_bytes(column):
        return f"{column} (MiB)"
    if column in MAXIMISED:
        return f"{column} (higher is better)"
    return column


def _array_label(row) -> str:
    return f"{row['array.rows']}x{row['array.cols']}"


def plot_pareto(rows: list[dict], optimal: list[dict], x: str, y: str, path: Path, *, title: str,
                color: str = "array") -> Path:
    """Scatter ``y`` over ``x`` of the successful rows into the PNG ``path`` (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [row for row in rows if row.get("status") == "ok"
              and isinstance(row.get(x), int | float) and isinstance(row.get(y), int | float)]
    figure, axes = plt.subplots(figsize=(9.5, 5.5))
    if color == "array":
        groups = sorted({(row["array.rows"] * row["array.cols"], _array_label(row)) for row in points})
        labels = [label for _, label in groups]
        member = _array_label
        legend_title = "array (rows x cols)"
    else:
        labels = sorted({row.get(color) for row in points}, key=lambda v: (v is None, v))
        member = lambda row: row.get(color)  # noqa: E731 - a one-line selector
        legend_title = color
    cmap = plt.get_cmap("viridis")
    colours = {label: cmap(index / max(1, len(labels) - 1)) for index, label in enumerate(labels)}
    markers = {"output_stationary": "o", "weight_stationary": "^"}
    optimal_ids = {row["point"] for row in optimal}
    for label in labels:
        for dataflow, marker in markers.items():
            chosen = [row for row in points if member(row) == label and row.get("array.dataflow") == dataflow]
            if not chosen:
                continue
            for ringed in (False, True):
                subset = [row for row in chosen if (row["point"] in optimal_ids) == ringed]
                if subset:
                    axes.scatter([_scaled(x, row[x]) for row in subset], [_scaled(y, row[y]) for row in subset],
                                 facecolors=[colours[label]] * len(subset), marker=marker, s=48 if ringed else 30,
                                 alpha=0.9, edgecolors="black" if ringed else "none", linewidths=1.1,
                                 zorder=3 if ringed else 2)
    # The front of the two plotted axes alone (both as minimised/maximised objectives).
    front = pareto_optimal(points, (x, y))
    front.sort(key=lambda row: row[x])
    distinct = len({(row[x], row[y]) for row in front})
    if distinct > 1:
        axes.step([_scaled(x, row[x]) for row in front], [_scaled(y, row[y]) for row in front], where="post",
                  color="crimson", linewidth=1.2, label=f"Pareto front of {x}, {y}")
    elif distinct == 1:
        axes.scatter([_scaled(x, front[0][x])], [_scaled(y, front[0][y])], marker="*", s=160, color="crimson",
                     zorder=4)
    for column, setter in ((x, axes.set_xscale), (y, axes.set_yscale)):
        values = [row[column] for row in points if row[column] > 0]
        if values and max(values) / min(values) > 20:
            setter("log")
    axes.set_xlabel(_axis_label(x))
    axes.set_ylabel(_axis_label(y))
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="s", linestyle="", color=colours[label], label=str(label)) for label in labels]
    handles += [Line2D([], [], marker=marker, linestyle="", color="grey", label=dataflow.replace("_", " "))
                for dataflow, marker in markers.items() if any(r.get("array.dataflow") == dataflow for r in points)]
    handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="black",
                       label="Pareto-optimal (all objectives)")]
    if distinct > 1:
        handles.append(Line2D([], [], color="crimson", label="front of these two axes"))
    elif distinct == 1:
        handles.append(Line2D([], [], marker="*", linestyle="", color="crimson", markersize=10,
                              label="best on both axes"))
    axes.legend(handles=handles, title=legend_title, fontsize=8, title_fontsize=8, loc="upper left",
                bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return Path(path)


def _format(column: str, value) -> str:
    if value is None:
        return "-"
    if _is_bytes(column) and isinstance(value, int | float):
        return f"{value / _MIB:,.1f} MiB"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write_report(spec, rows: list[dict], output: Path, *, runs: list[dict] | None = None) -> Path:
    """Write ``report.md`` and one PNG per plot of ``spec.plots`` into ``output``; returns the report's path."""
    output = Path(output)
    wanted = {point.id for point in spec.points}
    rows = [row for row in rows if row["point"] in wanted]
    ok = [row for row in rows if row["status"] == "ok"]
    failed = [row for row in rows if row["status"] != "ok"]
    planned = "planner" in spec.evaluate  # labels show the workload only when it matters
    optimal = pareto_optimal(ok, spec.objectives)
    optimal.sort(key=lambda row: _key(row, spec.objectives))
    evaluate = ", ".join(f"{name} {options}" if options else name for name, options in spec.evaluate.items())
    lines = [
        f"# Sweep {spec.name}",
        "",
        f"Sweep file `{spec.source}`; evaluated by {evaluate}.",
        "",
        f"{len(spec.points)} points: {len(ok)} ok, {len(failed)} failed, "
        f"{len(spec.points) - len(rows)} not evaluated yet. Results: `results.csv` (one row per point).",
    ]
    if runs:
        lines += ["", "| run finished | points evaluated | already in the table | seconds | Dask workers | cluster |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {run['finished']} | {run['evaluated']} | {run['skipped']} | {run['seconds']} | "
                  f"{run['workers']} | {run['scheduler']} |" for run in runs]
    lines += [
        "",
        f"## Pareto-optimal points ({len(optimal)} of {len(ok)})",
        "",
        "Objectives: " + ", ".join(f"{o} ({'max' if o in MAXIMISED else 'min'})" for o in spec.objectives) + ".",
        "",
    ]
    shown = list(dict.fromkeys([*spec.objectives, *(c for pair in spec.plots for c in pair)]))
    shown = [c for c in shown if c not in ("pes", "memory.buffer")]
    if optimal:
        lines += ["| point | design | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown)]
        for row in optimal:
            cells = " | ".join(_format(c, row.get(c)) for c in shown)
            lines.append(f"| `{row['point'][:8]}` | {point_label(row, workload=planned)} | {cells} |")
    else:
        lines.append("No successful point has every objective.")
    lines.append("")
    for x, y in spec.plots:
        name = f"pareto_{x}_{y}.png".replace(".", "_").replace("_png", ".png")
        plot_pareto(rows, optimal, x, y, output / name, title=f"{spec.name}: {y} vs {x}", color=spec.color)
        lines += [f"![{y} vs {x}]({name})", ""]
    if failed:
        lines += [f"## Failed points ({len(failed)})", "", "| point | design | status | error |", "|---|---|---|---|"]
        for row in failed:
            error = str(row.get("error") or "").replace("|", "\\|")
            lines.append(f"| `{row['point'][:8]}` | {point_label(row, workload=planned)} | {row['status']} | {error} |")
        lines.append("")
    path = output / "report.md"
    write_atomic(path, "\n".join(lines))
    return path
