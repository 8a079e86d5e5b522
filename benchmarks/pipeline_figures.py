"""Occam pipelines of the tiny zoo nets: measured vs. modelled cycles/frame, images/s, links, bitstreams.

For each net (``tiny_resnet``, ``tiny_concat``, ``tiny_mobilenet``, loaded with ``norm: none``, partitioned
for ULX3S-85F chips at the per-chip capacity below, :func:`wavecore.boards.pipeline.plan_pipeline`):

* **measured** steady-state cycles/frame: the whole chain on Verilator (:func:`wavecore.boards.pipeline_sim.
  simulate_pipeline`, no stalls, every boundary checked bit for bit against the golden model), the mean
  of the intervals between the last stage's frame ends after the first frame;
* **model**: the slowest stage's :attr:`wavecore.boards.pipeline.StagePlan.cycles_per_frame` (engine cycle
  functions and link words, :func:`wavecore.hdl.stream.pipeline_stage.stage_cycles`), an independent prediction;
* with ``--reports DIR`` (the ``-o`` directories of ``wavecore pipeline ... -o DIR/<net>``, or built here
  with ``--build``): per stage LUT4/FF/DSP/DP16KD, post-route Fmax and flow seconds from ``pipeline.json``;
  predicted images/s = min over stages of replicas x Fmax / cycles; the link after each stage needs
  ``words/frame x lane x images/s`` of ``lane x Fmax(sender)``. Unbuilt nets use ``--clock-mhz``.

Writes ``build/benchmarks/pipeline_figures.json`` and prints the markdown of docs/benchmarks.md
(## Occam pipelines of the tiny zoo nets)::

    nice -n 10 .venv/bin/python benchmarks/pipeline_figures.py --reports build/pipeline_bench [--build] [--frames 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wavecore.boards.pipeline import build_pipeline, load_pipeline_network, plan_pipeline
from wavecore.boards.pipeline_sim import simulate_pipeline
from wavecore.boards.targets import get_target

TARGET = "ulx3s-85f"
#: net -> (bytes per chip, chips): splits each net into 2-3 stages (tests/boards/test_pipeline.py ZOO_PIPELINES).
NETS = {"tiny_resnet": (6000, 3), "tiny_concat": (1500, 3), "tiny_mobilenet": (1500, 2)}
OUT = Path(__file__).resolve().parent.parent / "build" / "benchmarks" / "pipeline_figures.json"


def measure(name: str, frames: int, reports: Path | None, build: bool, clock_mhz: float) -> dict:
    capacity, chips = NETS[name]
    target = get_target(TARGET)
    plan = plan_pipeline(load_pipeline_network(name), target, chips=chips, capacity_bytes=capacity)
    start = time.time()
    sim = simulate_pipeline(plan, frames=frames, stall=0.0)
    ends = sim["frame_ends"]
    periods = [b - a for a, b in zip(ends, ends[1:])]
    measured = sum(periods) / len(periods)
    model = max(stage.cycles_per_frame for stage in plan.stages)
    row = {
        "network": name,
        "capacity_bytes": capacity,
        "stages": len(plan.stages),
        "lane_width": plan.lane_width,
        "model_cycles_per_frame": model,
        "measured_cycles_per_frame": measured,
        "measured_periods": periods,
        "deviation_percent": round(100 * (measured - model) / model, 3),
        "simulation_seconds": round(time.time() - start, 1),
        "stage_rows": [],
    }
    summary = None
    if reports is not None:
        directory = reports / name
        if build:
            summary = build_pipeline(plan, target, directory)
        elif (directory / "pipeline.json").exists():
            summary = json.loads((directory / "pipeline.json").read_text())
    built = {entry["stage"]: entry for entry in summary["stages"]} if summary else {}
    rates = []
    for stage in plan.stages:
        entry = built.get(stage.index, {})
        fmax = entry.get("fmax_mhz") or None
        clock = fmax or clock_mhz
        rates.append(stage.replicas * clock * 1e6 / stage.cycles_per_frame)
        in_words, out_words = stage.link_words_per_frame
        row["stage_rows"].append(
            {
                "stage": stage.index,
                "layers": [layer for layer in stage.layer_names if layer not in ("input", "loss")],
                "engines": len(stage.nodes),
                "replicas": stage.replicas,
                "cycles_per_frame": stage.cycles_per_frame,
                "out_words_per_frame": out_words,
                "resources": {k: v.get("used") for k, v in entry.get("resources", {}).items()},
                "fmax_mhz": fmax,
                "clock_mhz": clock,
                "status": entry.get("status"),
                "build_seconds": entry.get("build_seconds"),
            }
        )
    images = min(rates)
    row["images_per_second"] = round(images, 1)
    row["clock"] = "post-route Fmax" if built else f"{clock_mhz} MHz (not built)"
    for stage_row in row["stage_rows"]:
        stage_row["link_need_mbit_s"] = round(images * stage_row["out_words_per_frame"] * plan.lane_width / 1e6, 2)
        stage_row["link_available_mbit_s"] = round(stage_row["clock_mhz"] * plan.lane_width, 1)
    return row


def markdown(rows) -> str:
    lines = [
        "| net | stages | capacity B/chip | cycles/frame measured | model | deviation | images/s | clock |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['stages']} | {r['capacity_bytes']} | {r['measured_cycles_per_frame']:.0f} | "
            f"{r['model_cycles_per_frame']} | {r['deviation_percent']:+.2f} % | {r['images_per_second']:.0f} | "
            f"{r['clock']} |"
        )
    lines += [
        "",
        "| net | stage | layers | cycles/frame | LUT4 | FF | DSP | DP16KD | Fmax MHz | flow s | "
        "link need / available Mbit/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for s in r["stage_rows"]:
            res = s["resources"]
            fmax = f"{s['fmax_mhz']:.1f}" if s["fmax_mhz"] else "-"
            flow = f"{s['build_seconds']:.0f}" if s["build_seconds"] else "-"
            lines.append(
                f"| {r['network']} | {s['stage']} | {', '.join(s['layers'])} | {s['cycles_per_frame']} | "
                f"{res.get('lut', '-')} | {res.get('ff', '-')} | {res.get('dsp', '-')} | {res.get('bram', '-')} | "
                f"{fmax} | {flow} | {s['link_need_mbit_s']} / {s['link_available_mbit_s']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nets", nargs="*", default=list(NETS), help=f"nets (default: {', '.join(NETS)})")
    parser.add_argument("--frames", type=int, default=4, help="frames to simulate per net (default: 4)")
    parser.add_argument("--reports", type=Path, default=None, help="directory of <net>/pipeline.json reports")
    parser.add_argument("--build", action="store_true", help="build the bitstreams into --reports first")
    parser.add_argument("--clock-mhz", type=float, default=50.0, help="clock of unbuilt nets (default: 50)")
    args = parser.parse_args(argv)
    if args.build and args.reports is None:
        parser.error("--build needs --reports")
    if args.frames < 3:
        parser.error("--frames must be at least 3 (two intervals after the first frame)")
    unknown = [name for name in args.nets if name not in NETS]
    if unknown:
        parser.error(f"unknown nets {unknown}; choose from {', '.join(NETS)}")
    rows = [measure(name, args.frames, args.reports, args.build, args.clock_mhz) for name in args.nets]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
