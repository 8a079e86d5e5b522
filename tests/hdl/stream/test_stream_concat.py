"""Streaming channel concatenation against wavecore.golden.layers.concat_forward (what the integer mode runs)."""

import numpy as np
import pytest
from stream_sim import run_streams

from wavecore.golden.layers import concat_forward
from wavecore.hdl.stream.concat import StreamConcat, stream_concat_cycles
from wavecore.verif.seed import rng


def test_concat_matches_golden():
    random = rng("stream_concat")
    channels = [2, 3, 1]
    engine = StreamConcat(channels=channels)
    inputs = [[engine.fmt.random(random, (count, 4, 3)) for _ in range(2)] for count in channels]
    outputs, _, error = run_streams(
        engine,
        [(port, frames, [6, 7]) for port, frames in zip(engine.inputs, inputs)],
        [(engine.o, (6, 4, 3), 2)],
        random=random,
        idle=0.3,
        backpressure=0.3,
        watch=engine.error,
    )
    assert not error
    expected = concat_forward(*(np.stack(frames) for frames in inputs))
    for index, (output, batch) in enumerate(outputs[0]):
        np.testing.assert_array_equal(output, expected[index])
        assert batch == 6 + index


def test_concat_flags_misaligned_inputs_and_runs_one_pixel_per_cycle():
    random = rng("stream_concat_misaligned")
    engine = StreamConcat(channels=[1, 2])
    a = [engine.fmt.random(random, (1, 3, 3))]
    b = [engine.fmt.random(random, (2, 3, 3))]
    _, cycles, error = run_streams(
        engine, [(engine.i0, a, [1]), (engine.i1, b, [1])], [(engine.o, (3, 3, 3), 1)], watch=engine.error
    )
    assert not error and cycles == stream_concat_cycles(height=3, width=3)
    _, _, error = run_streams(
        engine, [(engine.i0, a, [1]), (engine.i1, b, [5])], [(engine.o, (3, 3, 3), 1)], watch=engine.error
    )
    assert error


def test_parameters_are_validated():
    with pytest.raises(ValueError, match=r"^channels must be a list of 2 to 8 channel counts, not \[4\]$"):
        StreamConcat(channels=[4])
    with pytest.raises(ValueError, match=r"^channels must be an integer between 1 and 4096, not 0$"):
        StreamConcat(channels=[4, 0])
