"""Time, peak memory, Verilog size and module count of generating systolic arrays and WaveCore.

    .venv/bin/python benchmarks/array_generation.py                 # 8..128 OS and WS, 256 OS, flat 8 and 16,
                                                                    # WaveCore 8..128
    .venv/bin/python benchmarks/array_generation.py --full          # also 256 WS
    .venv/bin/python benchmarks/array_generation.py --sizes 8,32 --flat-sizes "" --core-sizes ""

Each point is what ``wavecore generate systolic --rows N --cols N [--dataflow ...] [--flat]`` does
(:func:`hdl.registry.generate_files`: build the component, Amaranth to RTLIL, one Yosys run to Verilog, write
the ``.v`` and ``.json``; ``wavecore generate core --rows N --cols N`` for the core, whose GEMM unit has ``N``
lanes), run in a fresh Python process so the figures do not depend on earlier points:
wall-clock seconds, peak resident memory of the Python process and of the Yosys process
(``resource.getrusage``, ``ru_maxrss``; the two run one after the other, so the larger is the peak of
the run and their sum an upper bound), bytes of Verilog and modules in it. The targets are
128x128 OS and WS in under 30 s and 1 GB.

Writes ``build/benchmarks/array_generation.json`` and prints a Markdown table for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATAFLOWS = {"output_stationary": "OS", "weight_stationary": "WS"}
LABELS = {**DATAFLOWS, "core": "WaveCore"}


def measure_one(size: int, dataflow: str, flat: bool) -> dict:
    """Generate one array (``dataflow`` ``core``: the core) in this process and return its figures."""
    import resource
    import time

    sys.path.insert(0, str(ROOT))
    from wavecore.hdl.registry import generate_files

    with tempfile.TemporaryDirectory() as directory:
        began = time.perf_counter()
        block = {"block": "core"} if dataflow == "core" else {"block": "systolic", "dataflow": dataflow}
        verilog, record = generate_files({**block, "rows": size, "cols": size}, directory, flat=flat)
        seconds = time.perf_counter() - began
        record = json.loads(Path(record).read_text())
        size_bytes = Path(verilog).stat().st_size
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"size": size, "dataflow": dataflow, "form": record["form"], "seconds": round(seconds, 2),
            "python_mib": round(own), "yosys_mib": round(children), "verilog_bytes": size_bytes,
            "modules": record["modules"]}


def run_point(size: int, dataflow: str, flat: bool) -> dict:
    command = [sys.executable, __file__, "--one", str(size), dataflow] + (["--flat"] if flat else [])
    environment = dict(os.environ, AMARANTH_USE_YOSYS=os.environ.get("AMARANTH_USE_YOSYS", "builtin"))
    completed = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,16,32,64,128", help="square sizes, both dataflows")
    parser.add_argument("--os-only-sizes", default="256", help="square sizes, output-stationary only")
    parser.add_argument("--flat-sizes", default="8,16", help="sizes also generated in the flat form")
    parser.add_argument("--core-sizes", default="8,16,32,64,128", help="square sizes of WaveCore")
    parser.add_argument("--full", action="store_true", help="the --os-only-sizes in both dataflows too")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "DATAFLOW"), help=argparse.SUPPRESS)
    parser.add_argument("--flat", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(int(args.one[0]), args.one[1], args.flat)))
        return

    points = [(size, dataflow, True) for size in _sizes(args.flat_sizes) for dataflow in DATAFLOWS]
    points += [(size, dataflow, False) for size in _sizes(args.sizes) for dataflow in DATAFLOWS]
    points += [(size, dataflow, False) for size in _sizes(args.os_only_sizes) for dataflow in DATAFLOWS
               if args.full or dataflow == "output_stationary"]
    points += [(size, "core", False) for size in _sizes(args.core_sizes)]
    results = []
    for size, dataflow, flat in points:
        result = run_point(size, dataflow, flat)
        print(f"{size}x{size} {LABELS[dataflow]} {result['form']}: {result['seconds']} s", file=sys.stderr)
        results.append(result)
    output = ROOT / "build" / "benchmarks" / "array_generation.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")

    print("| array | block / dataflow | form | time (s) | peak Python (MiB) | peak Yosys (MiB) | Verilog | modules |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for result in results:
        size = result["size"]
        print(f"| {size}x{size} | {LABELS[result['dataflow']]} | {result['form']} | {result['seconds']:.1f} "
              f"| {result['python_mib']} | {result['yosys_mib']} | {result['verilog_bytes'] / 1e6:.2f} MB "
              f"| {result['modules']:,} |")


if __name__ == "__main__":
    main()
