"""QoR of the generated systolic array on ECP5-85F (speed 6) and iCE40UP5K, measured like the peer arrays.

The 4-pin harness the peer arrays of ``docs/benchmarks.md`` ("FPGA") were measured in (:mod:`wavecore.boards.qor`)
around the output-stationary
int8 array with backpressure (``wavecore.hdl.array.systolic.SystolicArray``), Fmax = median of placer seeds 1, 2, 3 (run
one after another), harness overhead measured with a trivial core of the same port widths and subtracted
in the per-PE columns. Multiplier variants: ``generic`` (``a * b`` with a registered product; Yosys maps it
to MULT18X18D / SB_MAC16 without packing registers), ``ecp5_dsp`` (:mod:`wavecore.hdl.array.ecp5_mult`, MULT18X18D with
its input and output registers), ``ecp5_dsp_fabric`` (the same plus one fabric register after the DSP,
multiplier latency 3), ``ice40_mixed`` (:mod:`wavecore.hdl.array.ice40_mult`: 8 SB_MAC16 + LUT multipliers).

    .venv/bin/python benchmarks/fpga_qor.py [--sizes 4 8] [--families ecp5 ice40] [--seeds 1 2 3]
                                            [--variants generic ecp5_dsp ...]

Writes ``build/benchmarks/fpga_qor.json`` and prints the Markdown table of ``docs/benchmarks.md`` (## FPGA).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wavecore.boards.qor import QorHarness, TrivialCore, measure  # noqa: E402
from wavecore.hdl.array.ecp5_mult import ecp5_multiplier  # noqa: E402
from wavecore.hdl.array.ice40_mult import ice40_multipliers  # noqa: E402
from wavecore.hdl.array.multiplier import RegisteredMultiplier  # noqa: E402
from wavecore.hdl.array.systolic import SystolicArray  # noqa: E402

#: Best peer and the DSP-register reference of the peer measurement (2026-11-22, Yosys 0.70 / nextpnr 0.11.1,
#: same harness and flow; ECP5 median Fmax, COMB/PE); the peers are listed in ``docs/benchmarks.md``.
PEERS = {
    (
        "ecp5",
        4,
    ): "axis-systolic-array 120.8 MHz, 103.3 COMB/PE; DSP-register reference 170.4 MHz, 68.9 COMB/PE",
    (
        "ecp5",
        8,
    ): "axis-systolic-array 93.7 MHz, 101.8 COMB/PE; DSP-register reference 142.8 MHz, 68.2 COMB/PE",
    ("ice40", 4): "axis-systolic-array 36.6 MHz, 4882 LC (LUT multipliers only)",
}
VARIANTS = {"ecp5": ("generic", "ecp5_dsp", "ecp5_dsp_fabric"), "ice40": ("ice40_mixed",)}


def _array(size: int, variant: str) -> SystolicArray:
    multiplier = {
        "generic": lambda: RegisteredMultiplier,
        "ecp5_dsp": lambda: ecp5_multiplier("primitive", fabric_register=False),
        "ecp5_dsp_fabric": lambda: ecp5_multiplier("primitive", fabric_register=True),
        "ice40_mixed": lambda: ice40_multipliers(8),
    }[variant]()
    return SystolicArray(rows=size, cols=size, in_width=8, acc_width=32, multiplier=multiplier)


def _source_digest() -> str:
    """Hash of the array's sources, so a table can be traced to the RTL it measured."""
    import hashlib

    digest = hashlib.sha256()
    sources = tuple(f"hdl/array/{name}.py" for name in ("pe", "systolic", "multiplier", "ecp5_mult", "ice40_mult"))
    for name in sources:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:12]


def run(sizes, families, seeds, out: Path, variants=None) -> list[dict]:
    rows = []
    sources = _source_digest()
    for family in families:
        for size in sizes:
            if family == "ice40" and size > 4:
                continue  # no 8x8 int8 array fits 5280 LCs (a naive one needs 15,960 LUT4)
            work = ROOT / "build" / "benchmarks" / "fpga_qor" / f"{family}_{size}x{size}"
            trivial = measure(
                QorHarness(TrivialCore(_array(size, "generic"))),
                family,
                work / "trivial",
                seeds=(1,),
                design="trivial",
            )
            win, wout = trivial.widths
            harness_lut = trivial.resources["lut"]["used"] - (wout if family == "ice40" else 0)
            harness_ff = trivial.resources["ff"]["used"] - wout
            for variant in VARIANTS[family]:
                if variants and variant not in variants:
                    continue
                began = time.monotonic()
                result = measure(
                    QorHarness(_array(size, variant)), family, work / variant, seeds=seeds, design=variant
                )
                row = {
                    "sources": sources,
                    "family": family,
                    "size": size,
                    "variant": variant,
                    "status": result.status,
                    "error": result.error,
                    "win": win,
                    "wout": wout,
                    "harness_lut": harness_lut,
                    "harness_ff": harness_ff,
                    "cells": result.cells,
                    "fmax_mhz": result.fmax_mhz,
                    "fmax_median": result.fmax_median,
                    "synth_seconds": result.synth_seconds,
                    "pnr_seconds": result.pnr_seconds,
                    "wall_seconds": round(time.monotonic() - began, 1),
                }
                if result.resources:
                    pes = size * size
                    row.update(
                        lut=result.resources["lut"]["used"],
                        ff=result.resources["ff"]["used"],
                        dsp=result.resources["dsp"]["used"],
                        bram=result.resources["bram"]["used"],
                        lut_per_pe=round((result.resources["lut"]["used"] - harness_lut) / pes, 1),
                        ff_per_pe=round((result.resources["ff"]["used"] - harness_ff) / pes, 1),
                        dsp_per_pe=round(result.resources["dsp"]["used"] / pes, 2),
                    )
                    if result.fmax_median:
                        row["peak_gmacs"] = round(pes * result.fmax_median / 1000, 2)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "cells"}), flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| target | array | multiplier | LUT/LC | FF | DSP | Fmax MHz median (seeds) | LUT/PE | FF/PE "
        "| DSP/PE | peak GMAC/s | synth s | PnR s per seed | best peer (peer table above) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["status"] != "ok":
            lines.append(
                f"| {row['family']} | {row['size']}x{row['size']} | {row['variant']} | "
                f"{row['status']}: {row['error']} | | | | | | | | {row['synth_seconds']} | | |"
            )
            continue
        seeds = ", ".join(f"{value:.1f}" for value in row["fmax_mhz"])
        lines.append(
            f"| {row['family']} | {row['size']}x{row['size']} | {row['variant']} | {row['lut']} | "
            f"{row['ff']} | {row['dsp']} | **{row['fmax_median']:.1f}** ({seeds}) | {row['lut_per_pe']} | "
            f"{row['ff_per_pe']} | {row['dsp_per_pe']} | {row.get('peak_gmacs', '')} | "
            f"{row['synth_seconds']} | "
            f"{', '.join(str(s) for s in row['pnr_seconds'])} | "
            f"{PEERS.get((row['family'], row['size']), '')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--families", nargs="+", default=["ecp5", "ice40"], choices=["ecp5", "ice40"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", choices=[v for vs in VARIANTS.values() for v in vs],
                        help="only these multiplier variants (default: all of each family)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks" / "fpga_qor.json")
    args = parser.parse_args(argv)
    rows = run(args.sizes, args.families, tuple(args.seeds), args.out, args.variants)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
