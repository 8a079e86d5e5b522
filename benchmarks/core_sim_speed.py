"""Benchmark: simulated cycles per CPU-second of the whole WaveCore (all compute units) on Verilator.

Two programs, both with Python idle while the core runs (cocotb only starts the program and waits on ``irq``):

* ``copy``: the LOAD/STORE program of ``benchmarks/wavecore_speed.py`` (double-buffered copy of ``--tensors``
  tensors of 4 KiB, DRAM with random stalls 32/256 and latency 0-16) on the core with the units of
  ``--units`` (``all``, ``none`` or a comma-separated list of opcodes): the cost of idle units;
* ``step``: one compiled tiny_resnet MBS training step (:func:`wavecore.verif.training_step.run_step_on_core`,
  default configuration, batch 8, about 2.5 M cycles), checked bit-exact and traffic-exact.

CPU seconds are the simulator process's, of the run alone (not the build, the image load or the dump).

    .venv/bin/python benchmarks/core_sim_speed.py [--case copy|step|both] [--units all] [--tensors 256]
        [--verilator-args "..."]

``--verilator-args`` adds Verilator options to the build (experiments); ``--visibility all`` builds with cocotb's
``--public-flat-rw`` (every signal visible, the slow default before). Writes
build/benchmarks/core_sim_speed.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from wavecore.files import write_atomic  # noqa: E402
from wavecore.golden.core.semantics import CoreParameters  # noqa: E402
from wavecore.hdl.core.dram_model import plusargs, verilog_source  # noqa: E402
from wavecore.hdl.core.ports import convert  # noqa: E402
from wavecore.hdl.core.units import UNITS  # noqa: E402
from wavecore.verif import runner  # noqa: E402
from wavecore.verif.core_system import CoreSystem  # noqa: E402

SIZES = {"scratchpad_elements": 8192, "accumulator_elements": 1024, "dram_bytes": 1 << 23}
SETTINGS = {"data_width": 64, "max_burst": 64, "max_outstanding": 4}


def _build_with(extra_args, visibility="ports"):
    """runner.build with ``extra_args`` appended and ``visibility``, and the build's wall seconds recorded."""
    original = runner.build
    timing = {}

    def patched(design, **kwargs):
        kwargs["extra_build_args"] = [*kwargs.get("extra_build_args", ()), *extra_args]
        kwargs["visibility"] = visibility
        began = time.perf_counter()
        built = original(design, **kwargs)
        timing["build_seconds"] = time.perf_counter() - began
        return built

    return patched, timing


def copy_case(units, tensors: int, extra_args, visibility="ports") -> dict:
    build, timing = _build_with(extra_args, visibility)
    chosen = None if units == "all" else () if units == "none" else tuple(units.split(","))
    system = CoreSystem(parameters=CoreParameters(**SIZES), units=chosen, **SETTINGS)
    design = build(convert(system, name="wavecore_system"), toplevel="wavecore_system", simulator="verilator",
                   extra_sources=[verilog_source()])
    results = design.run("wavecore.verif.tb_wavecore_speed",
                         params={**SIZES, **SETTINGS, "tensors": tensors, "tensor_bytes": 4096},
                         plusargs=plusargs(seed=1, stall=32, latency_min=0, latency_max=16, load="dram_load.hex",
                                           dump="dram_dump.hex"),
                         test_name=f"core-sim-speed-copy-{units.replace(',', '_')}", seed=1)
    measured = json.loads((results.parent / "speed.json").read_text())
    return {"case": "copy", "units": units, "cycles": measured["cycles"], "cpu_seconds": measured["cpu_seconds"],
            "wall_seconds": measured["wall_seconds"], "cycles_per_cpu_second": measured["cycles"] /
            measured["cpu_seconds"], **timing}


def step_case(extra_args, visibility="ports") -> dict:
    from wavecore.golden.config import load_config
    from wavecore.verif.training_step import run_step_on_core

    build, timing = _build_with(extra_args, visibility)
    saved, runner.build = runner.build, build
    try:
        report = run_step_on_core(load_config(None), schedule="mbs")
    finally:
        runner.build = saved
    seconds = json.loads((Path(report.directory) / "result.json").read_text())["seconds"][0]
    return {"case": "step", "units": "all", "cycles": report.measured_cycles, "cpu_seconds": seconds["cpu"],
            "wall_seconds": seconds["wall"], "cycles_per_cpu_second": report.measured_cycles / seconds["cpu"],
            "bit_exact": report.bit_exact, "traffic_matches": report.traffic_matches,
            "predicted_cycles": report.predicted_cycles, **timing}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("copy", "step", "both"), default="both")
    parser.add_argument("--units", default="all", help=f"all, none or opcodes among {','.join(UNITS)}; 'each' "
                        "runs none, every unit alone and all")
    parser.add_argument("--tensors", type=int, default=1000, help="LOAD/STORE pairs of the copy case (up to 1015)")
    parser.add_argument("--verilator-args", default="", help="extra Verilator options (experiments)")
    parser.add_argument("--visibility", choices=runner.VISIBILITIES, default="ports",
                        help="what cocotb sees of the design (runner.build's visibility; 'all' = cocotb's default)")
    parser.add_argument("--output", default=str(ROOT / "build" / "benchmarks" / "core_sim_speed.json"))
    args = parser.parse_args(argv)
    extra = shlex.split(args.verilator_args)
    rows = []
    if args.case in ("copy", "both"):
        for units in (["none", *UNITS, "all"] if args.units == "each" else [args.units]):
            rows.append(copy_case(units, args.tensors, extra, args.visibility))
            print(rows[-1], flush=True)
    if args.case in ("step", "both"):
        rows.append(step_case(extra, args.visibility))
        print(rows[-1], flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(rows, indent=2) + "\n")
    print("| program | units | simulated cycles | CPU s | cycles / CPU-s | build s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['units']} | {row['cycles']:,} | {row['cpu_seconds']:.2f} | "
              f"{row['cycles_per_cpu_second']:,.0f} | {row.get('build_seconds', 0):.1f} |")


if __name__ == "__main__":
    main()
