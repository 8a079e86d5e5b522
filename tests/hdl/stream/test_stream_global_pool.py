"""Streaming global average pooling against wavecore.golden.integer.IntegerKernels.global_avgpool_forward."""

from types import SimpleNamespace

import numpy as np
import pytest
from stream_sim import single

from wavecore.golden.integer import IntegerKernels
from wavecore.golden.numerics import INTEGER_PRESETS, IntegerTraining
from wavecore.hdl.stream.global_pool import StreamGlobalAvgPool, stream_global_pool_cycles
from wavecore.verif.seed import rng


@pytest.mark.parametrize(
    ("channels", "height", "width", "rounding"),
    [(4, 4, 4, "half_even"), (3, 3, 5, "half_away_from_zero"), (2, 1, 1, "half_up"), (3, 2, 3, "floor")],
)
def test_engine_matches_golden_integer_kernels(channels, height, width, rounding):
    random = rng("stream_global_pool")
    numerics = IntegerTraining(mac=INTEGER_PRESETS["int8"].mac, rounding=rounding)
    fmt = numerics.operand
    frames = [fmt.random(random, (channels, height, width), extreme_fraction=0.3) for _ in range(3)]
    engine = StreamGlobalAvgPool(
        channels=channels,
        height=height,
        width=width,
        fmt=fmt,
        reciprocal_frac=numerics.reciprocal_frac,
        rounding=rounding,
    )
    outputs, _ = single(engine, frames, [1, 2, 3], random=random, idle=0.2, backpressure=0.4)
    expected = IntegerKernels(numerics).global_avgpool_forward(SimpleNamespace(params={}), np.stack(frames))
    for index, (output, batch) in enumerate(outputs):
        np.testing.assert_array_equal(output, expected[index])
        assert batch == index + 1


def test_cycles_per_frame_without_stalls():
    random = rng("stream_global_pool_cycles")
    engine = StreamGlobalAvgPool(channels=2, height=4, width=4)
    frames = [engine.fmt.random(random, (2, 4, 4)) for _ in range(3)]
    _, cycles = single(engine, frames, [0, 1, 2])
    assert stream_global_pool_cycles(height=4, width=4) == 17 == engine.cycles_per_frame()
    assert abs(cycles - 3 * 17) <= 2


def test_parameters_are_validated():
    with pytest.raises(ValueError, match=r"^height must be an integer >= 1, not 0$"):
        StreamGlobalAvgPool(channels=2, height=0, width=4)
    with pytest.raises(ValueError, match=r"^rounding must be one of floor, half_up, half_even, half_away_from_zero, "):
        StreamGlobalAvgPool(channels=2, height=2, width=4, rounding="up")
    with pytest.raises(TypeError, match=r"^fmt must be a wavecore.golden.numerics.IntFormat, not 8$"):
        StreamGlobalAvgPool(channels=2, height=2, width=4, fmt=8)
