"""Streaming max/avg pooling engine against wavecore.golden.integer (ExactKernels.maxpool_forward, avgpool_forward)."""

from types import SimpleNamespace

import numpy as np
import pytest
from stream_sim import single

from wavecore.golden.integer import IntegerKernels
from wavecore.golden.numerics import INTEGER_PRESETS, IntegerTraining
from wavecore.hdl.stream.pool import StreamPool2d, stream_pool_cycles
from wavecore.verif.seed import rng

CASES = [
    # (mode, channels, size, kernel, stride, padding, rounding)
    ("max", 3, 6, 2, 2, 0, "half_even"),  # tiny_resnet pool
    ("max", 4, 5, 3, 1, 1, "half_even"),  # tiny_concat branch3_pool
    ("avg", 3, 6, 2, 2, 0, "half_even"),  # tiny_concat pool
    ("avg", 2, 5, 3, 2, 1, "half_away_from_zero"),  # 9 taps: reciprocal path, zero padding counted
    ("avg", 2, 5, 3, 1, 0, "floor"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}k{c[3]}s{c[4]}p{c[5]}" for c in CASES])
def test_engine_matches_golden_integer_kernels(case):
    mode, channels, size, kernel, stride, padding, rounding = case
    random = rng("stream_pool")
    numerics = IntegerTraining(mac=INTEGER_PRESETS["int8"].mac, rounding=rounding, reciprocal_frac=12)
    kernels = IntegerKernels(numerics)
    fmt = numerics.operand
    frames = [fmt.random(random, (channels, size, size), extreme_fraction=0.3) for _ in range(2)]
    engine = StreamPool2d(
        mode=mode,
        channels=channels,
        height=size,
        width=size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        fmt=fmt,
        reciprocal_frac=numerics.reciprocal_frac,
        rounding=rounding,
    )
    outputs, _ = single(engine, frames, [7, 9], random=random, idle=0.2, backpressure=0.3)
    pairs = {"kernel": (kernel, kernel), "stride": (stride, stride), "padding": (padding, padding)}
    layer = SimpleNamespace(params={**pairs, "ceil_mode": False})
    x = np.stack(frames)
    expected = kernels.maxpool_forward(layer, x) if mode == "max" else kernels.avgpool_forward(layer, x)
    for index, (output, batch) in enumerate(outputs):
        np.testing.assert_array_equal(output, expected[index])
        assert batch == (7, 9)[index]


def test_cycles_per_frame_match_the_formula_without_stalls():
    random = rng("stream_pool_cycles")
    engine = StreamPool2d(mode="max", channels=2, height=6, width=6, kernel=3, stride=1, padding=1)
    frames = [engine.fmt.random(random, (2, 6, 6)) for _ in range(3)]
    _, cycles = single(engine, frames, [0, 1, 2])
    per_frame = stream_pool_cycles(height=6, width=6, kernel=3, stride=1, padding=1)
    assert per_frame == 36 + 6 * (6 * (9 + 2) + 1) + 1 == engine.cycles_per_frame()
    assert abs(cycles - 3 * per_frame) <= 3 * 3


def test_parameters_are_validated():
    with pytest.raises(ValueError, match=r"^mode must be one of max, avg, not 'min'$"):
        StreamPool2d(mode="min", channels=2, height=4, width=4, kernel=2)
    with pytest.raises(ValueError, match=r"^kernel must be an integer >= 1 or a pair of them, not 0$"):
        StreamPool2d(mode="max", channels=2, height=4, width=4, kernel=0)
    with pytest.raises(ValueError, match=r"^padding must be an integer between 0 and 1, not 2$"):
        StreamPool2d(mode="max", channels=2, height=4, width=4, kernel=3, padding=2)
    with pytest.raises(ValueError, match=r"^stride must be given for the non-square kernel \(2, 3\)$"):
        StreamPool2d(mode="avg", channels=2, height=4, width=4, kernel=(2, 3))
    with pytest.raises(ValueError, match=r"^reciprocal_frac must be an integer between 0 and 30, not 31$"):
        StreamPool2d(mode="avg", channels=2, height=4, width=4, kernel=2, reciprocal_frac=31)
    with pytest.raises(ValueError, match=r"^kernel \(5, 5\) is larger than the padded input 4x4$"):
        StreamPool2d(mode="avg", channels=2, height=4, width=4, kernel=5)
    with pytest.raises(TypeError, match=r"^channels must be an integer, not 2.0$"):
        StreamPool2d(mode="avg", channels=2.0, height=4, width=4, kernel=2)
