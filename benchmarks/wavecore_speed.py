"""Benchmark: simulated cycles per second of the WaveCore top (LOAD/STORE slice) + HDL DRAM model, Python idle.

Builds ``wavecore.verif.core_system.CoreSystem`` (the core of ``hdl/core/wavecore.py``: fetch, decode, queues
with tokens, DMA with a 64-bit bus, bursts of 64, 4 outstanding; 8 KiB scratchpad; 8 MiB DRAM model) and runs
one double-buffered copy program (``--tensors`` LOAD/STORE pairs of ``--tensor-bytes`` bytes, relayed by SYNC
tokens) started and awaited by the host driver on the ``irq`` line. Two DRAM settings: no stalls and zero
latency, and random stalls (32/256 per channel and cycle) with latency 0-16 cycles per burst. Reports simulated
cycles per wall- and CPU-second of the run alone, and bus use.

    .venv/bin/python benchmarks/wavecore_speed.py [--simulator verilator|icarus] [--tensors 512]

Writes build/benchmarks/wavecore_speed.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from wavecore.files import write_atomic  # noqa: E402
from wavecore.golden.core.semantics import CoreParameters  # noqa: E402
from wavecore.hdl.core.dram_model import plusargs, verilog_source  # noqa: E402
from wavecore.hdl.core.ports import convert  # noqa: E402
from wavecore.verif.core_system import CoreSystem  # noqa: E402
from wavecore.verif.runner import build  # noqa: E402

SIZES = {"scratchpad_elements": 8192, "accumulator_elements": 1024, "dram_bytes": 1 << 23}
SETTINGS = {"data_width": 64, "max_burst": 64, "max_outstanding": 4}
DRAM_CASES = [("no stalls, latency 0", 0, (0, 0)), ("stalls 32/256, latency 0-16", 32, (0, 16))]


def run(simulator: str, tensors: int, tensor_bytes: int) -> list[dict]:
    system = CoreSystem(parameters=CoreParameters(**SIZES), **SETTINGS)
    design = build(convert(system, name="wavecore_system"), toplevel="wavecore_system", simulator=simulator,
                   extra_sources=[verilog_source()])
    rows = []
    for name, stall, (low, high) in DRAM_CASES:
        results = design.run(
            "wavecore.verif.tb_wavecore_speed",
            params={**SIZES, **SETTINGS, "tensors": tensors, "tensor_bytes": tensor_bytes},
            plusargs=plusargs(seed=1, stall=stall, latency_min=low, latency_max=high, load="dram_load.hex",
                              dump="dram_dump.hex"),
            test_name=f"wavecore-speed-{simulator}-stall{stall}",
            seed=1,
        )
        measured = json.loads((results.parent / "speed.json").read_text())
        rows.append({
            "simulator": simulator, "dram": name, "tensors": tensors, "tensor_bytes": tensor_bytes, **measured,
            "cycles_per_wall_second": measured["cycles"] / measured["wall_seconds"],
            "cycles_per_cpu_second": measured["cycles"] / measured["cpu_seconds"],
            "bus_utilisation": measured["bytes"] / (2 * SETTINGS["data_width"] // 8) / measured["cycles"],
        })
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--tensors", type=int, default=512, help="LOAD/STORE pairs (1-1024)")
    parser.add_argument("--tensor-bytes", type=int, default=4096, help="bytes per tensor (8-4096, multiple of 8)")
    args = parser.parse_args(argv)
    if not 1 <= args.tensors <= 1024:
        parser.error(f"--tensors must be between 1 and 1024, not {args.tensors}")
    if not 8 <= args.tensor_bytes <= 4096 or args.tensor_bytes % 8:
        parser.error(f"--tensor-bytes must be a multiple of 8 between 8 and 4096, not {args.tensor_bytes}")
    rows = run(args.simulator, args.tensors, args.tensor_bytes)
    out = ROOT / "build" / "benchmarks" / "wavecore_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(rows, indent=2) + "\n")
    print("| simulator | DRAM | instructions | bytes moved | simulated cycles | wall s | cycles / wall-s | "
          "cycles / CPU-s | bus use (R+W) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['simulator']} | {row['dram']} | {row['instructions']} | {row['bytes']} | {row['cycles']} | "
              f"{row['wall_seconds']:.2f} | {row['cycles_per_wall_second']:,.0f} | "
              f"{row['cycles_per_cpu_second']:,.0f} | {row['bus_utilisation']:.2f} |")


if __name__ == "__main__":
    main()
