"""Benchmark: sustained AXI data-bus utilisation of the DMA (hdl/memory/dma.py).

For bursts of 16 and 256 beats, outstanding limits 1..8 and DRAM latencies 0 and 20 cycles, one
4096-word (32 KiB at 64-bit) transfer per channel runs against ``wavecore.verif.axi.PipelinedAxiRam`` (fixed
latency, overlapping bursts, never stalls) and, for latency 0, against cocotbext-axi's ``AxiRam``.
Reports the fraction of bus cycles carrying a beat, from the first to the last beat ("steady") and from
the descriptor to the end ("total", includes the start-up latency).

    .venv/bin/python benchmarks/dma_bandwidth.py [--simulator icarus|verilator] [--words 4096]

Writes a JSON table to build/benchmarks/dma_bandwidth.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks folder; wavecore itself is installed

from wavecore import progress  # noqa: E402
from wavecore.hdl.memory.dma import Dma  # noqa: E402
from wavecore.verif.runner import build  # noqa: E402

CASES = [  # (max_burst, max_outstanding, latency, ram, direction)
    *[(burst, outstanding, 0, "pipelined", "read") for burst in (16, 256) for outstanding in (1, 2)],
    *[(burst, outstanding, 0, "pipelined", "write") for burst in (16, 256) for outstanding in (1, 2)],
    *[(burst, 2, 0, "pipelined", "both") for burst in (16, 256)],
    *[(burst, 2, 0, "axiram", direction) for burst in (16, 256) for direction in ("read", "write")],
    *[
        (burst, outstanding, 20, "pipelined", "read")
        for burst in (16, 256)
        for outstanding in (1, 2, 3, 4, 8)
    ],
    *[(burst, outstanding, 20, "pipelined", "write") for burst in (16, 256) for outstanding in (1, 2, 4)],
]


def run(simulator: str, words: int, data_width: int) -> list[dict]:
    rows = []
    for max_burst, outstanding, latency, ram, direction in progress.track(
            CASES, "dma bandwidth", unit="cases", label=lambda case: f"burst {case[0]}, {case[1]} outstanding"):
        settings = {
            "address_width": 32,
            "data_width": data_width,
            "max_burst": max_burst,
            "max_outstanding": outstanding,
            "count_width": 16,
            "scratch_width": 16,
        }
        design = build(Dma(**settings), toplevel="dma", simulator=simulator)
        with tempfile.TemporaryDirectory() as directory:
            result_file = Path(directory) / "result.json"
            name = f"bw_{max_burst}_{outstanding}_{latency}_{ram}_{direction}"
            design.run(
                "tb_dma_bandwidth",
                testcase="bandwidth",
                test_name=name,
                seed=1,
                params={
                    "dma": settings,
                    "words": words,
                    "latency": latency,
                    "ram": ram,
                    "direction": direction,
                    "result_file": str(result_file),
                },
            )
            result = json.loads(result_file.read_text())
        row = {
            "max_burst": max_burst,
            "max_outstanding": outstanding,
            "latency": latency,
            "ram": ram,
            "direction": direction,
            **result,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="verilator", choices=("icarus", "verilator"))
    parser.add_argument("--words", type=int, default=4096)
    parser.add_argument("--data-width", type=int, default=64)
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "benchmarks" / "dma_bandwidth.json")
    args = parser.parse_args(argv)
    if args.words < 1:
        parser.error(f"--words must be a positive integer, not {args.words}")
    rows = run(args.simulator, args.words, args.data_width)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_suffix(".tmp")
    temporary.write_text(json.dumps(rows, indent=1))
    os.replace(temporary, args.output)
    print("\n| RAM | latency | direction | max burst | outstanding | bus fraction (steady) | (total) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['ram']} | {row['latency']} | {row['direction']} | {row['max_burst']} | "
            f"{row['max_outstanding']} | {row['bus_fraction_steady']:.3f} | {row['bus_fraction_total']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
