"""The planner's report: the schedule table (text and JSON), per-schedule cycles, ``report.md`` with plots.

Used by ``wavecore plan`` (``scripts/commands/plan.py``); field names are documented in ``docs/planner.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from wavecore.files import atomic_path, write_atomic
from wavecore.golden.plan import lrcnn, occam
from wavecore.golden.plan.cycles import gemm_cycles, layer_gemms, network_cycles
from wavecore.golden.plan.mbs import plan_baseline, plan_greedy, plan_optimal
from wavecore.golden.plan.traffic import TRAFFIC_CLASSES, NetworkModel, TrafficOptions

__all__ = [
    "MBS_SCHEDULES",
    "SWEEP_MIB",
    "lrcnn_rows",
    "mbs_rows",
    "occam_rows",
    "plan_mbs_family",
    "schedule_cycles",
    "text_table",
    "write_json",
    "write_report",
]

MBS_SCHEDULES = ("baseline", "baseline_bnff", "mbs_greedy", "mbs_optimal", "mbs_optimal_bnff")
SWEEP_MIB = (1, 2, 4, 8, 16, 32, 64)
#: The sweep of ``report.md`` for buffers below 1 MiB (FPGA block RAM sizes), in KiB.
SWEEP_KIB = (16, 32, 64, 128, 256, 512, 1024)
MIB = 1 << 20
KIB = 1 << 10


def schedule_cycles(network, plan, *, rows: int, cols: int, dataflow: str) -> int:
    """GEMM cycles of a plan's training step: each group's layers run per sub-batch (the GEMMs' ``P`` shrinks
    to the sub-batch; a tiled whole-batch group runs the full batch)."""
    total = 0
    first = True
    cache = {}
    for names, sub_batch in plan.groups:
        sizes = [min(sub_batch, plan.batch - start) for start in range(0, plan.batch, sub_batch)]
        for name in names:
            layer = network.layer(name)
            if layer.op not in ("conv2d", "linear"):
                continue
            for size in sizes:
                key = (name, size, first)
                if key not in cache:
                    gemms = layer_gemms(layer, size)
                    passes = (
                        ("forward", "backward_weight")
                        if first
                        else ("forward", "backward_data", "backward_weight")
                    )
                    cache[key] = sum(
                        gemm_cycles(*g, rows=rows, cols=cols, dataflow=dataflow)
                        for p in passes
                        for g in gemms[p]
                    )
                total += cache[key]
            first = False
    return total


def plan_mbs_family(network, batch: int, capacity: int, options: TrafficOptions, schedules=MBS_SCHEDULES):
    """Plans for the named schedules (``*_bnff``: the same planner with fused BN/GN passes)."""
    fused = replace(options, norm_variant="fused")
    model, fused_model = NetworkModel(network, options), NetworkModel(network, fused)
    from wavecore import progress

    plans = {}
    for name in progress.track(schedules, f"plan {network.name}, batch {batch}", unit="schedules",
                               label=lambda name: name):
        use = fused_model if name.endswith("_bnff") else model
        base = name.removesuffix("_bnff")
        if base == "baseline":
            plan = plan_baseline(network, batch, model=use)
        elif base == "mbs_greedy":
            plan = plan_greedy(network, batch, capacity, model=use)
        elif base == "mbs_optimal":
            plan = plan_optimal(network, batch, capacity, model=use)
        else:
            raise ValueError(f"schedule must be one of {', '.join(MBS_SCHEDULES)}, not {name!r}")
        plan.name = name
        plan.traffic.name = name
        plans[name] = plan
    return plans


def mbs_rows(
    network, plans, *, rows: int, cols: int, dataflow: str, clock_mhz=None, dram_bytes_per_cycle=None
) -> list[dict]:
    """One JSON-ready row per plan (see ``docs/planner.md``, "plan JSON").

    With ``clock_mhz`` (and ``dram_bytes_per_cycle``) each row also has ``compute_ms`` (GEMM cycles at the
    clock) and ``dram_ms`` (the DRAM bytes at that bandwidth), else both are ``None``.
    """
    baseline = plans.get("baseline")
    base_total = baseline.traffic.total if baseline else None
    result = []
    for name, plan in plans.items():
        traffic = plan.traffic
        serial = [
            b for (names, b), index in zip(plan.groups, range(len(plan.groups))) if index not in plan.tiled
        ]
        cycles = schedule_cycles(network, plan, rows=rows, cols=cols, dataflow=dataflow)
        result.append(
            {
                "schedule": name,
                "total_bytes": traffic.total,
                "traffic_bytes": dict(traffic.per_class),
                "reduction_vs_baseline": None if base_total is None else 1 - traffic.total / base_total,
                "lower_bound_bytes": traffic.lower_bound,
                "distance_to_lower_bound": traffic.total / traffic.lower_bound,
                "groups": len(plan.groups),
                "serialized_groups": len(serial),
                "sub_batches": [b for _, b in plan.groups],
                "group_first_layers": [names[0] for names, _ in plan.groups],
                "tiled_groups": sorted(plan.tiled),
                "peak_footprint_bytes": traffic.peak_footprint,
                "cycles": cycles,
                "compute_ms": None if clock_mhz is None else cycles / clock_mhz / 1e3,
                "dram_ms": None
                if clock_mhz is None or dram_bytes_per_cycle is None
                else traffic.total / dram_bytes_per_cycle / clock_mhz / 1e3,
                "per_group": [
                    {
                        "first_layer": names[0],
                        "last_layer": names[-1],
                        "sub_batch": group.sub_batch,
                        "tiled": group.tiled,
                        "total_bytes": group.total,
                        "traffic_bytes": dict(group.per_class),
                        "footprint_bytes": None if group.tiled else group.footprint,
                        "weight_buffer_bytes": None if group.tiled else group.weight_buffer,
                        "weights_resident": group.weights_resident,
                        "weight_grads_on_chip": group.weight_grads_on_chip,
                    }
                    for names, group in zip(traffic.layer_names, traffic.groups)
                ],
                "per_layer_bytes": {layer: sum(row.values()) for layer, row in traffic.per_layer.items()},
            }
        )
    return result


def occam_rows(
    network,
    capacity: int,
    *,
    chips: int | None,
    dtype_bytes: int,
    memory_model: str,
    array,
    last_layer: str | None = None,
) -> dict:
    """The Occam partition of ``network`` at ``capacity`` as a JSON-ready dict."""
    found = occam.partition(
        network,
        capacity,
        memory_model=memory_model,
        chips=chips,
        dtype_bytes=dtype_bytes,
        array=array,
        last_layer=last_layer,
    )
    return {
        "schedule": "occam",
        "memory_model": memory_model,
        "traffic_bytes_per_image": found.traffic_bytes,
        "baseline_bytes_per_image": found.baseline_bytes,
        "reduction_factor": found.reduction,
        "chips": found.chips if found.chips is not None else len(found.stages),
        "throughput_images_per_cycle": found.throughput,
        "stages": [
            {
                "first_layer": s.layers[0],
                "last_layer": s.layers[-1],
                "layers": len(s.layers),
                "footprint_bytes": s.footprint_bytes,
                "boundary_out_bytes": s.boundary_out_bytes,
                "streamed_filter_bytes": s.streamed_filter_bytes,
                "macs": s.macs,
                "replicas": s.replicas,
            }
            for s in found.stages
        ],
    }


def lrcnn_schedules(network):
    """Row-block schedules for ``network``: for VGG-16 the cuts of the LR-CNN authors' code, else a generic set
    (docs/planner.md)."""
    names = {layer.name for layer in network.layers}
    if {"conv1_1", "pool2", "pool3", "conv5_3", "pool5"} <= names and network.input_shape[1] == 224:
        return [
            ("2ps_full_depth", "pool5", [(0, 0), (1, 1), (2, 2), (3, 6)], "2ps"),
            ("2ps_two_phase", "pool3", [(0, 2), (3, 7), (8, 12), (13, 17), (18, 22), (23, 27)], "2ps"),
            ("overl", "pool2", [(0, 13), (14, 27), (28, 41), (42, 55)], "overl"),
        ]
    row_local = ("conv2d", "maxpool", "avgpool", "batchnorm", "groupnorm", "relu", "add", "concat")
    region = []
    for layer in network.layers[1:]:
        if layer.op not in row_local:
            break
        region.append(layer)
    if not region:
        raise ValueError(f"network {network.name!r} has no row-local layers for row blocks")
    height = network.input_shape[1]

    def last_with(min_rows):
        """The deepest region layer whose map still has at least ``min_rows`` rows."""
        chosen = region[0]
        for layer in region:
            if layer.out_shape[1] >= min_rows:
                chosen = layer
        return chosen.name

    def split(end, blocks):
        rows = network.layer(end).out_shape[1]
        blocks = min(blocks, rows)
        edges = [round(i * rows / blocks) for i in range(blocks + 1)]
        return [(a, b - 1) for a, b in zip(edges, edges[1:])]

    deepest = last_with(2)
    deep_rows = network.layer(deepest).out_shape[1]
    full = [(i, i) for i in range(min(3, deep_rows - 1))]
    full.append((len(full), deep_rows - 1))
    two_phase, overlap = last_with(max(1, height // 8)), last_with(max(1, height // 4))
    return [
        ("2ps_full_depth", deepest, full, "2ps"),
        ("2ps_two_phase", two_phase, split(two_phase, 6), "2ps"),
        ("overl", overlap, split(overlap, 4), "overl"),
    ]


def lrcnn_rows(network) -> list[dict]:
    """Activation-memory estimates of the row-block schedules of :func:`lrcnn_schedules`."""
    region = [layer for layer in network.layers]
    last = None
    for layer in region[1:]:
        if layer.op in ("linear", "global_avgpool", "flatten", "loss"):
            break
        last = layer.name
    result = []
    for name, end, output_rows, kind in lrcnn_schedules(network):
        cuts = (lrcnn.two_phase_sharing_cuts if kind == "2ps" else lrcnn.overlap_cuts)(
            network, end, output_rows
        )
        memory = lrcnn.activation_memory(network, end, output_rows, schedule=kind, last_layer=last)
        result.append(
            {
                "schedule": name,
                "kind": kind,
                "region_end": end,
                "input_slices": cuts,
                "per_block_elements": list(memory.per_block),
                "peak_elements": memory.peak,
                "baseline_elements": memory.baseline,
                "fraction_of_baseline": memory.fraction,
                "reduction": 1 - memory.fraction,
            }
        )
    return result


def _cycle_table(network, header):
    """Per-layer GEMM cycles of the whole-batch step for both dataflows (``wavecore.golden.plan.cycles``)."""
    rows, cols = header["array"]
    per_flow = {
        flow: network_cycles(network, header["batch"], rows=rows, cols=cols, dataflow=flow)
        for flow in ("os", "ws")
    }
    lines = [
        f"## Per-layer GEMM cycles, whole mini-batch, {rows}x{cols} array (SCALE-Sim convention)",
        "",
        "| layer | MACs (M) | os fwd (cycles) | os bwd-data (cycles) | os bwd-weight (cycles) | ws fwd (cycles) "
        "| ws bwd-data (cycles) | ws bwd-weight (cycles) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o, w in zip(per_flow["os"], per_flow["ws"]):
        lines.append(
            f"| {o.layer} | {o.macs / 1e6:,.1f} | {o.forward:,} | {o.backward_data:,} | "
            f"{o.backward_weight:,} | {w.forward:,} | {w.backward_data:,} | {w.backward_weight:,} |"
        )
    totals = {flow: sum(c.total for c in cycles) for flow, cycles in per_flow.items()}
    lines += [f"| total | | {totals['os']:,} (os) | | | {totals['ws']:,} (ws) | | |", ""]
    return lines


def _fmt_bytes(value, unit=MIB):
    if value is None:
        return "-"
    return f"{value / unit:,.1f}"


def _fmt_size(value: int) -> str:
    """A byte count in the largest binary unit that keeps it readable (``32 KiB``, ``10 MiB``, ``1.5 MiB``)."""
    for name, unit in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", KIB)):
        if value >= unit:
            return f"{value / unit:,.4g} {name}"
    return f"{value} B"


def _table_unit(rows) -> tuple[str, int]:
    """KiB for small workloads (largest total under 10 MiB), else MiB."""
    largest = max((row["total_bytes"] for row in rows), default=0)
    return ("KiB", KIB) if largest < 10 * MIB else ("MiB", MIB)


def text_table(header: dict, rows: list[dict], kind: str) -> str:
    """The table printed by ``wavecore plan``."""
    lines = [
        f"# {header['network']}  norm {header['norm']}  batch {header['batch']}  "
        f"buffer {_fmt_size(header['buffer_bytes'])}  dtype {header['dtype']}  "
        f"array {header['array'][0]}x{header['array'][1]} {header['dataflow']}"
        + (f"  config {header['config']}" if header.get("config") else "")
    ]
    timed = kind == "mbs" and header.get("clock_mhz") is not None
    if kind == "mbs":
        unit_name, unit = _table_unit(rows)
        reserve = header.get("options", {}).get("weight_buffer_bytes", "auto")
        reserve = "sized per group" if reserve == "auto" else _fmt_size(reserve)
        lines.append(
            f"# compulsory lower bound {_fmt_bytes(header['lower_bound_bytes'], unit)} {unit_name}; "
            f"weight-tile reserve {reserve}"
        )
        if timed:
            lines.append(
                f"# clock {header['clock_mhz']:g} MHz, DRAM {header['dram_bytes_per_cycle']} B/cycle: "
                "compute = cycles at the clock, dram = traffic at the bandwidth"
            )
        columns = [
            "schedule",
            f"total ({unit_name})",
            *(f"{c} ({unit_name})" for c in TRAFFIC_CLASSES),
            "vs_base (%)",
            "x_bound (times)",
            "groups",
            "sub_batches (images)",
            f"footprint ({unit_name})",
            "cycles",
            *(("compute (ms)", "dram (ms)") if timed else ()),
        ]
        table = [columns]
        for row in rows:
            reduction = row["reduction_vs_baseline"]
            table.append(
                [
                    row["schedule"],
                    _fmt_bytes(row["total_bytes"], unit),
                    *[_fmt_bytes(row["traffic_bytes"][c], unit) for c in TRAFFIC_CLASSES],
                    "-" if reduction is None else f"{-100 * reduction:+.1f}",
                    f"{row['distance_to_lower_bound']:.1f}",
                    str(row["groups"]),
                    _sub_batch_summary(row),
                    _fmt_bytes(row["peak_footprint_bytes"], unit),
                    f"{row['cycles']:,}",
                    *((f"{row['compute_ms']:,.3f}", f"{row['dram_ms']:,.3f}") if timed else ()),
                ]
            )
    elif kind == "occam":
        row = rows[0]
        lines.append(
            f"# occam ({row['memory_model']}): {_fmt_bytes(row['traffic_bytes_per_image'])} MiB/image vs "
            f"layer-by-layer {_fmt_bytes(row['baseline_bytes_per_image'])} MiB/image = "
            f"{row['reduction_factor']:.1f}x fewer; chips {row['chips']}"
        )
        table = [["stage", "first", "last", "layers", "footprint (MiB)", "out (MiB)", "replicas", "MACs (M)"]]
        for i, stage in enumerate(row["stages"]):
            table.append(
                [
                    str(i),
                    stage["first_layer"],
                    stage["last_layer"],
                    str(stage["layers"]),
                    _fmt_bytes(stage["footprint_bytes"]),
                    _fmt_bytes(stage["boundary_out_bytes"]),
                    str(stage["replicas"]),
                    f"{stage['macs'] / 1e6:,.0f}",
                ]
            )
    else:
        table = [
            ["schedule", "region_end", "blocks", "input_slices (rows)", "peak (M elements)", "baseline (M elements)",
             "of_base (%)"]
        ]
        for row in rows:
            table.append(
                [
                    row["schedule"],
                    row["region_end"],
                    str(len(row["input_slices"])),
                    " ".join(f"{a}:{b}" for a, b in row["input_slices"]),
                    f"{row['peak_elements'] / 1e6:.2f}",
                    f"{row['baseline_elements'] / 1e6:.2f}",
                    f"{100 * row['fraction_of_baseline']:.0f}",
                ]
            )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(r, widths)).rstrip())
    return "\n".join(lines)


def _sub_batch_summary(row):
    values = [b for i, b in enumerate(row["sub_batches"]) if i not in set(row["tiled_groups"])]
    tiled = len(row["tiled_groups"])
    text = ",".join(str(v) for v in values) if values else ""
    if tiled:
        text = (text + "+" if text else "") + f"{tiled}xtiled"
    return text


def _atomic_write(path: Path, data: bytes):
    write_atomic(path, data)


def write_json(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=False)


#: Every plot :func:`write_report` can draw (the ones a report does not draw are removed from its directory).
PLOT_FILES = ("per_layer_traffic.png", "traffic_vs_buffer.png", "row_blocks.png")


def _plain_number(value, _position=None) -> str:
    """A tick label without exponents: 0.25, 1, 16, 1,024."""
    if value >= 1:
        return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"
    return f"{value:.3g}"


def _log_axis(axis, which: str, *, base: int = 10) -> None:
    """A log axis with plain-number tick labels (``16`` rather than ``2^4`` or ``1.6e1``), minor labels off."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(axis, f"set_{which}scale")("log", base=base)
    target = axis.xaxis if which == "x" else axis.yaxis
    target.set_major_locator(LogLocator(base=base, subs=(1.0,) if base == 2 else (1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(_plain_number))
    target.set_minor_formatter(NullFormatter())
    axis.grid(True, which="major", axis=which, alpha=0.3)


def _layer_ticks(axis, names) -> None:
    """Label the x axis with layer names, every one when they fit, else every k-th."""
    step = max(1, math.ceil(len(names) / 120))
    positions = list(range(0, len(names), step))
    axis.set_xticks(positions)
    axis.set_xticklabels([names[i] for i in positions], rotation=90, fontsize=7)
    axis.set_xlim(-0.5, len(names) - 0.5)


def _mark_buffer(axis, mib: float, label: str = "chosen buffer") -> None:
    axis.axvline(mib, color="tab:red", linestyle="--", linewidth=1, label=f"{label} ({_plain_number(mib)} MiB)")


def write_report(
    out_dir,
    header: dict,
    rows: list[dict],
    kind: str,
    *,
    network,
    plans=None,
    options=None,
    sweep=None,
    chips=None,
    memory_model="line_buffer",
    last_layer=None,
) -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir`` (each file atomically); returns its path.

    Plots of an earlier report in the same directory that this report does not draw are removed, so the
    directory never shows a stale figure beside a new report.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wavecore import progress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sweep is None:  # MiB sizes, or KiB sizes around a buffer below 1 MiB (MBS only; Occam keeps MiB)
        sweep = SWEEP_KIB if kind == "mbs" and header["buffer_bytes"] < MIB else SWEEP_MIB
    step = KIB if sweep is SWEEP_KIB else MIB
    step_name = "KiB" if step == KIB else "MiB"
    lines = [f"# Planner report: {header['network']}", "", "```", text_table(header, rows, kind), "```", ""]
    lines += ["Settings: " + ", ".join(f"{k}={v}" for k, v in header.get("options", {}).items()), ""]
    figures = []
    if kind == "mbs" and plans:
        unit_name, unit = _table_unit(rows)
        # per-layer traffic per schedule; norm/ReLU/flatten views are folded into the layer they follow
        figure, axis = plt.subplots(figsize=(11, 4))
        owners, owner = [], None
        for layer in network.layers:
            if layer.op not in ("batchnorm", "groupnorm", "relu", "flatten") or owner is None:
                owner = layer.name
            owners.append(owner)
        compute = list(dict.fromkeys(owners))
        figure.set_size_inches(max(11.0, 0.16 * len(compute) + 2), 4.5)
        for name, plan in plans.items():
            folded = dict.fromkeys(compute, 0)
            for layer, owner in zip(network.layers, owners):
                folded[owner] += sum(plan.traffic.per_layer.get(layer.name, {}).values())
            # a layer with no DRAM traffic has no place on a log axis: leave a gap rather than a fake value
            values = [folded[n] / unit if folded[n] > 0 else math.nan for n in compute]
            axis.step(range(len(compute)), values, where="mid", label=name, linewidth=1)
        _layer_ticks(axis, compute)
        axis.set_xlabel("layer (topological order; norm/ReLU folded into their producer)")
        axis.set_ylabel(f"DRAM traffic per iteration ({unit_name})")
        _log_axis(axis, "y")
        axis.legend(fontsize=7)
        axis.set_title(f"{header['network']}: per-layer DRAM traffic")
        figures.append(("per_layer_traffic.png", figure))
        # traffic vs buffer size
        figure, axis = plt.subplots(figsize=(7, 4))
        sweep_rows = []
        with progress.task(f"sweep {header['network']} over {len(sweep)} buffer sizes",
                           total=len(plans) * len(sweep), unit="plans") as bar:
            for name in plans:
                values = []
                for size in sweep:
                    with progress.configured(quiet=True):  # one bar for the sweep, not one per plan
                        swept = plan_mbs_family(network, header["batch"], size * step, options, (name,))[name]
                    values.append(swept.traffic.total / unit)
                    bar.advance(detail=f"{name} at {size:g} {step_name}")
                sweep_rows.append((name, values))
                axis.plot(sweep, values, marker="o", label=name)
        _log_axis(axis, "x", base=2)
        _log_axis(axis, "y")
        axis.set_xlabel(f"on-chip buffer ({step_name})")
        axis.set_ylabel(f"DRAM traffic per iteration ({unit_name})")
        axis.axhline(header["lower_bound_bytes"] / unit, color="k", linestyle=":", label="compulsory bound")
        _mark_buffer(axis, header["buffer_bytes"] / step)
        axis.legend(fontsize=7)
        axis.set_title(f"{header['network']}: traffic vs buffer")
        figures.append(("traffic_vs_buffer.png", figure))
        lines += [
            f"## Traffic vs buffer ({unit_name} per iteration)",
            "",
            "| schedule | " + " | ".join(f"traffic at {m} {step_name} ({unit_name})" for m in sweep) + " |",
            "|---|" + "---|" * len(sweep),
        ]
        lines += [
            f"| {name} | " + " | ".join(f"{v:,.0f}" for v in values) + " |" for name, values in sweep_rows
        ]
        lines.append("")
        lines += _cycle_table(network, header)
    elif kind == "occam":
        figure, axis = plt.subplots(figsize=(7, 4))
        values, base = [], []
        for mib in sweep:
            try:
                found = occam.partition(
                    network,
                    mib * MIB,
                    memory_model=memory_model,
                    dtype_bytes=header["dtype_bytes"],
                    last_layer=last_layer,
                )
                values.append(found.traffic_bytes / MIB)
                base.append(found.baseline_bytes / MIB)
            except ValueError:
                values.append(math.nan)
                base.append(math.nan)
        axis.plot(sweep, values, marker="o", label=f"occam ({memory_model})")
        axis.plot(sweep, base, marker="x", label="layer by layer")
        _log_axis(axis, "x", base=2)
        _log_axis(axis, "y")
        axis.set_xlabel("per-chip capacity (MiB)")
        axis.set_ylabel("DRAM traffic per image (MiB)")
        _mark_buffer(axis, header["buffer_bytes"] / MIB, label="chosen capacity")
        axis.legend()
        figures.append(("traffic_vs_buffer.png", figure))
        lines += [
            "## Traffic vs capacity (MiB per image)",
            "",
            "| capacity (MiB) | occam (MiB/image) | layer by layer (MiB/image) |",
            "|---|---|---|",
        ]
        lines += [f"| {m} | {v:.2f} | {b:.2f} |" for m, v, b in zip(sweep, values, base)]
        lines.append("")
    elif kind == "lrcnn":
        # grouped bars: one group per schedule (named below the group), one bar per row block in it
        figure, axis = plt.subplots(figsize=(max(7.0, 0.45 * sum(len(r["per_block_elements"]) for r in rows)), 4))
        position, centres = 0, []
        for row in rows:
            blocks = row["per_block_elements"]
            positions = [position + i for i in range(len(blocks))]
            bars = axis.bar(positions, [v / 1e6 for v in blocks], label=row["schedule"])
            axis.bar_label(bars, labels=[str(i) for i in range(len(blocks))], fontsize=7, padding=1)
            centres.append((positions[0] + positions[-1]) / 2)
            position += len(blocks) + 1
        axis.set_xticks(centres)
        axis.set_xticklabels([row["schedule"] for row in rows], fontsize=8)
        axis.set_xlabel("schedule (bars: row blocks 0, 1, ... in order)")
        axis.set_ylabel("live activations per block (M elements / image)")
        axis.set_title(f"{header['network']}: LR-CNN row blocks")
        axis.legend(fontsize=7)
        figures.append(("row_blocks.png", figure))
    drawn = {filename for filename, _ in figures}
    for stale in PLOT_FILES:
        if stale not in drawn:
            (out / stale).unlink(missing_ok=True)
    for filename, figure in figures:
        with atomic_path(out / filename, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=110, bbox_inches="tight")
        plt.close(figure)
        lines += [f"![{filename}]({filename})", ""]
    path = out / "report.md"
    _atomic_write(path, "\n".join(lines).encode())
    return path
