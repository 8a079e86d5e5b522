"""Benchmark: beats per cycle of the im2col feeder (hdl/memory/feeder.py) once started, no stalls.

3x3 convolutions, stride 1 and 2, padding 1, on a 4 x 16 x 16 int16 tensor (256 and 64 output positions),
``lanes`` output positions per beat read from ``banks`` banks. The scratchpad side answers every request
the next cycle (the timing of ``Scratchpad``'s read ports); the beat sink never stalls. The figure is
beats / cycles from the first to the last beat; the array consumes one beat per cycle, so this is the
upper bound the feeder puts on array utilization. Every beat is also checked against golden im2col.

    .venv/bin/python benchmarks/feeder_utilization.py [--simulator icarus|verilator]
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

from wavecore.hdl.memory.feeder import Im2colFeeder  # noqa: E402
from wavecore.verif.runner import build  # noqa: E402


def benchmark_arguments(doc: str, name: str, argv=None) -> argparse.Namespace:
    """``--simulator`` (icarus or verilator, default icarus), ``--output`` (default build/benchmarks/<name>.json) and
    ``--quiet`` (no progress display, see :mod:`wavecore.progress`)."""
    from wavecore import progress

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--simulator", default="icarus", choices=("icarus", "verilator"))
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "benchmarks" / f"{name}.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    args = parser.parse_args(argv)
    progress.configure(quiet=args.quiet)
    return args


def write_rows(rows: list, output: Path) -> None:
    """Write ``rows`` as JSON to ``output`` atomically (via a temporary file beside it)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(".tmp")
    temporary.write_text(json.dumps(rows, indent=1))
    os.replace(temporary, output)


def run_for_result(design, testbench: str, *, testcase: str, test_name: str, params: dict):
    """Run ``testcase`` of ``testbench`` on the built ``design`` (seed 1) with ``params`` plus ``result_file``
    (a path in a temporary directory) and return the JSON the testbench wrote there."""
    with tempfile.TemporaryDirectory() as directory:
        result_file = Path(directory) / "result.json"
        params = {**params, "result_file": str(result_file)}
        design.run(testbench, testcase=testcase, seed=1, test_name=test_name, params=params)
        return json.loads(result_file.read_text())


def main(argv=None) -> int:
    args = benchmark_arguments(__doc__, "feeder_utilization", argv)
    from wavecore import progress

    rows = []
    runs = [(lanes, banks, stride) for lanes, banks in ((8, 16), (4, 8)) for stride in (1, 2)]
    designs = {}
    for lanes, banks, stride in progress.track(runs, "feeder utilization", unit="runs",
                                               label=lambda run: f"{run[0]} lanes, stride {run[2]}"):
        settings = {"lanes": lanes, "banks": banks, "bank_depth": 1024, "width": 16, "dimension_width": 8}
        if (lanes, banks) not in designs:
            designs[lanes, banks] = build(Im2colFeeder(**settings), toplevel="feeder", simulator=args.simulator)
        design = designs[lanes, banks]
        layer = {
            "channels": 4,
            "height": 16,
            "width": 16,
            "kernel": 3,
            "stride": stride,
            "padding": 1,
            "base": 0,
        }
        result = run_for_result(
            design,
            "tb_feeder",
            testcase="im2col_beats_match_golden",
            test_name=f"utilization_{lanes}_{stride}",
            params={"feeder": settings, "layer": layer, "stall": 0.0, "backpressure": 0.0},
        )
        positions = ((16 + 2 - 3) // stride + 1) ** 2
        row = {
            "lanes": lanes,
            "banks": banks,
            "stride": stride,
            "output_positions": positions,
            **result,
            "beats_per_cycle": result["beats"] / result["first_to_last"],
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    write_rows(rows, args.output)
    print("\n| lanes | banks | 3x3 stride | output positions | beats | cycles first->last | beats/cycle |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['lanes']} | {row['banks']} | {row['stride']} | {row['output_positions']} | "
            f"{row['beats']} | "
            f"{row['first_to_last']} | {row['beats_per_cycle']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
