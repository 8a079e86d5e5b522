"""Benchmark: systolic-array utilization in the forward integration chain (DMA -> scratchpad -> im2col
feeder -> affine+ReLU -> output-stationary array <- weight feeder; -> writer), 3x3 convs, stride 1 and 2.

Runs the forward integration test (tests/hdl/integration/test_integration_conv.py: 8 x C array, 8 output positions per
beat, C = 4 (the default test's size) and 8 output channels, 16 banks, int16, BN, N = 2) with an AxiRam
without stalls (both operands come from the scratchpads), and reports for each layer: operand beats
accepted by the array / cycles from its first to its last operand beat (first sample). Layer 1 is the 3x3
conv with the given stride (4 -> C channels, 64 output positions); layer 2 is a 3x3 stride-1 conv (C -> C
channels, 64 output positions) reading layer 1's output through the BN constants the hardware computed.
Every beat and tensor is checked against the golden model on the way. Target: >= 0.9 for a layer
with at least 64 output positions.

    .venv/bin/python benchmarks/array_utilization.py [--simulator icarus|verilator]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "hdl" / "integration"), str(ROOT / "tests" / "support")]

from test_integration_conv import forward_chain, forward_params  # noqa: E402

from benchmarks.feeder_utilization import benchmark_arguments, run_for_result, write_rows  # noqa: E402

TARGET = 0.9


def main(argv=None) -> int:
    args = benchmark_arguments(__doc__, "array_utilization", argv)
    rows = []
    from wavecore import progress

    for cols, stride in progress.track(((4, 1), (4, 2), (8, 1), (8, 2)), "array utilization", unit="runs",
                                       label=lambda run: f"8 x {run[0]}, stride {run[1]}"):
        chain = forward_chain(args.simulator, cols)
        layers = run_for_result(
            chain,
            "tb_integration_conv",
            testcase="forward_layer_and_normalized_read_match_golden",
            test_name=f"array_utilization_cols{cols}_stride{stride}",
            params=forward_params(norm="batchnorm", groups=1, stride=stride, cols=cols),
        )
        for index, layer in enumerate(layers, 1):
            row = {"array": f"8 x {cols}", "run_stride": stride, "layer": index, "positions": 64, **layer}
            print(json.dumps(row), flush=True)
            rows.append(row)
    write_rows(rows, args.output)
    print(
        "\n| array | layer | 3x3 stride | Cin | K (beats/tile) | output positions | operand beats "
        "| cycles first->last | utilization |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['array']} | {row['layer']} (run stride {row['run_stride']}) | {row['stride']} | "
            f"{row['c_in']} | {row['k']} | {row['positions']} | {row['beats']} | {row['first_to_last']} | "
            f"{row['utilization']:.3f} |"
        )
    worst = min(row["utilization"] for row in rows)
    print(f"\nworst utilization {worst:.3f} (target >= {TARGET})")
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
