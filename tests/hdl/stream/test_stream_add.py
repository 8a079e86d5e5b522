"""Streaming saturating add (+ fused ReLU) and stand-alone ReLU against wavecore.golden.integer.IntegerKernels."""

from types import SimpleNamespace

import numpy as np
import pytest
from stream_sim import run_streams, single

from wavecore.golden.integer import IntegerKernels
from wavecore.golden.numerics import INTEGER_PRESETS
from wavecore.hdl.stream.add import StreamAdd, stream_add_cycles
from wavecore.hdl.stream.relu import StreamReLU
from wavecore.verif.seed import rng

NUMERICS = INTEGER_PRESETS["int8"]


@pytest.mark.parametrize(("count", "max_value"), [(2, False), (2, None), (2, 6), (3, False)])
def test_add_matches_golden(count, max_value):
    random = rng("stream_add")
    kernels = IntegerKernels(NUMERICS)
    fmt = NUMERICS.operand
    channels, height, width = 3, 4, 5
    inputs = [[fmt.random(random, (channels, height, width), 0.3) for _ in range(2)] for _ in range(count)]
    relu = max_value is not False
    relu_max = kernels._relu_limit(max_value) if relu and max_value is not None else None
    engine = StreamAdd(channels=channels, count=count, fmt=fmt, relu=relu, relu_max=relu_max)
    outputs, _, error = run_streams(
        engine,
        [(port, frames, [4, 5]) for port, frames in zip(engine.inputs, inputs)],
        [(engine.o, (channels, height, width), 2)],
        random=random,
        idle=0.3,
        backpressure=0.3,
        watch=engine.error,
    )
    assert not error
    expected = kernels.add_forward(None, [np.stack(frames) for frames in inputs])
    if relu:
        expected = kernels.relu_forward(SimpleNamespace(params={"max_value": max_value}), expected)
    for index, (output, batch) in enumerate(outputs[0]):
        np.testing.assert_array_equal(output, expected[index])
        assert batch == 4 + index


def test_add_flags_misaligned_inputs():
    random = rng("stream_add_misaligned")
    engine = StreamAdd(channels=2)
    a = [engine.fmt.random(random, (2, 3, 3))]
    b = [engine.fmt.random(random, (2, 3, 3))]
    _, _, error = run_streams(
        engine, [(engine.inputs[0], a, [1]), (engine.inputs[1], b, [2])], [(engine.o, (2, 3, 3), 1)], watch=engine.error
    )
    assert error  # batch ids differ
    # one pixel short on input b: b's row_end arrives a pixel early
    _, _, error = run_streams(
        engine,
        [(engine.inputs[0], a, [1]), (engine.inputs[1], [b[0][:, :, :2]] * 2, [1, 1])],
        [(engine.o, (2, 3, 3), 1)],
        watch=engine.error,
    )
    assert error


def test_add_runs_one_pixel_per_cycle():
    random = rng("stream_add_cycles")
    engine = StreamAdd(channels=2)
    frames = [engine.fmt.random(random, (2, 4, 4)) for _ in range(2)]
    _, cycles = run_streams(
        engine, [(port, frames, [0, 1]) for port in engine.inputs], [(engine.o, (2, 4, 4), 2)]
    )
    assert cycles == 2 * stream_add_cycles(height=4, width=4) == 32


@pytest.mark.parametrize("max_value", [None, 6])
def test_relu_matches_golden(max_value):
    random = rng("stream_relu")
    kernels = IntegerKernels(NUMERICS)
    relu_max = None if max_value is None else kernels._relu_limit(max_value)
    engine = StreamReLU(channels=3, fmt=NUMERICS.operand, relu_max=relu_max)
    engine.out_height, engine.out_width = 3, 4
    frames = [NUMERICS.operand.random(random, (3, 3, 4), 0.3) for _ in range(2)]
    outputs, _ = single(engine, frames, [8, 9], random=random, idle=0.3, backpressure=0.3)
    expected = kernels.relu_forward(SimpleNamespace(params={"max_value": max_value}), np.stack(frames))
    for index, (output, batch) in enumerate(outputs):
        np.testing.assert_array_equal(output, expected[index])
        assert batch == 8 + index


def test_parameters_are_validated():
    with pytest.raises(ValueError, match=r"^count must be an integer between 2 and 8, not 1$"):
        StreamAdd(channels=2, count=1)
    with pytest.raises(ValueError, match=r"^relu_max needs relu=True$"):
        StreamAdd(channels=2, relu_max=6)
    with pytest.raises(ValueError, match=r"^relu_max must be an integer between 0 and 127, not -1$"):
        StreamAdd(channels=2, relu=True, relu_max=-1)
    with pytest.raises(ValueError, match=r"^relu_max must be an integer between 0 and 127, not 200$"):
        StreamReLU(channels=2, relu_max=200)
