"""Benchmark: simulated cycles per second of the DMA + HDL DRAM model system with Python idle.

Builds ``wavecore.verif.copy_system.CopySystem`` (AXI4-Lite register block, DMA, scratchpad, the HDL DRAM model;
64-bit bus, bursts of 64, 4 outstanding) on Verilator and runs one long copy program (``--words`` bus words
read and written, double-buffered, both DMA channels busy) started and awaited by the host driver: after START,
cocotb waits on the ``irq`` line only, so Python does nothing per cycle. Two DRAM settings: no stalls and zero
latency, and random stalls (probability 32/256 per channel and cycle) with latency 0-16 cycles per burst.
Reports simulated cycles (the core's ``CYCLES`` counter) per wall-second and per CPU-second of the simulation
run alone (loading and the Verilator build excluded).

    .venv/bin/python benchmarks/core_system_speed.py [--simulator verilator|icarus] [--words 262144]

Writes build/benchmarks/core_system_speed.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from wavecore.files import write_atomic  # noqa: E402
from wavecore.hdl.core.dram_model import plusargs, verilog_source  # noqa: E402
from wavecore.hdl.core.ports import convert  # noqa: E402
from wavecore.verif.copy_system import CopySystem  # noqa: E402
from wavecore.verif.runner import build  # noqa: E402

SETTINGS = {"data_width": 64, "dram_bytes": 1 << 24, "scratch_words": 1024, "max_burst": 64, "max_outstanding": 4}
DRAM_CASES = [("no stalls, latency 0", 0, (0, 0)), ("stalls 32/256, latency 0-16", 32, (0, 16))]


def run(simulator: str, words: int) -> list[dict]:
    design = build(convert(CopySystem(**SETTINGS), name="copy_system"), toplevel="copy_system",
                   simulator=simulator, extra_sources=[verilog_source()])
    rows = []
    for name, stall, (low, high) in DRAM_CASES:
        results = design.run(
            "wavecore.verif.tb_system_speed",
            params={**SETTINGS, "words": words, "chunk": SETTINGS["scratch_words"] // 2},
            plusargs=plusargs(seed=1, stall=stall, latency_min=low, latency_max=high, load="dram_load.hex",
                              dump="dram_dump.hex"),
            test_name=f"speed-{simulator}-stall{stall}",
            seed=1,
        )
        measured = json.loads((results.parent / "speed.json").read_text())
        rows.append({
            "simulator": simulator,
            "dram": name,
            "words": words,
            **measured,
            "cycles_per_wall_second": measured["cycles"] / measured["wall_seconds"],
            "cycles_per_cpu_second": measured["cycles"] / measured["cpu_seconds"],
            "bus_utilisation": measured["bytes"] / (2 * SETTINGS["data_width"] // 8) / measured["cycles"],
        })
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--words", type=int, default=1 << 18, help="bus words to copy (a multiple of 512)")
    args = parser.parse_args(argv)
    if args.words <= 0 or args.words % (SETTINGS["scratch_words"] // 2):
        parser.error(f"--words must be a positive multiple of {SETTINGS['scratch_words'] // 2}, not {args.words}")
    rows = run(args.simulator, args.words)
    out = ROOT / "build" / "benchmarks" / "core_system_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(rows, indent=2) + "\n")
    print("| simulator | DRAM | words copied | simulated cycles | wall s | cycles / wall-s | cycles / CPU-s | "
          "bus use (R+W) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['simulator']} | {row['dram']} | {row['words']} | {row['cycles']} | {row['wall_seconds']:.2f} "
              f"| {row['cycles_per_wall_second']:,.0f} | {row['cycles_per_cpu_second']:,.0f} | "
              f"{row['bus_utilisation']:.2f} |")


if __name__ == "__main__":
    main()
