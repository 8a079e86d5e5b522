"""Streaming fork: every output gets every pixel in order; a residual block (fork -> two convs -> add) with
the skip FIFO from skip_fifo_depth runs to completion bit-exact with wavecore.golden.integer, and a too small one
deadlocks (so the depth matters)."""

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from stream_sim import run_streams

from wavecore.golden.integer import IntegerKernels
from wavecore.golden.numerics import INTEGER_PRESETS
from wavecore.hdl.stream.add import StreamAdd
from wavecore.hdl.stream.conv import StreamConv2d
from wavecore.hdl.stream.fork import StreamFork, skip_fifo_depth
from wavecore.verif.seed import rng

NUMERICS = INTEGER_PRESETS["int8"]


def test_every_output_gets_every_pixel_in_order():
    random = rng("stream_fork")
    engine = StreamFork(channels=3, depths=[1, 2, 5])
    frames = [engine.fmt.random(random, (3, 3, 4)) for _ in range(3)]
    outputs, _ = run_streams(
        engine,
        [(engine.i, frames, [1, 2, 3])],
        [(port, (3, 3, 4), 3) for port in engine.outputs],
        random=random,
        idle=0.2,
        backpressure=0.4,
    )
    for received in outputs:
        for index, (frame, batch) in enumerate(received):
            np.testing.assert_array_equal(frame, frames[index])
            assert batch == index + 1


class ResidualBlock(wiring.Component):
    """relu(conv_b(conv_a(x)) + x): fork (main FIFO 2, skip FIFO ``skip_depth``), a one-row FIFO between
    the convs (a one-output StreamFork), StreamAdd with the ReLU fused."""

    def __init__(self, weights_a, weights_b, size, skip_depth):
        conv = dict(height=size, width=size, padding=1, shift=NUMERICS.weight_frac, rounding=NUMERICS.rounding)
        self.conv_a = StreamConv2d(weights=weights_a, relu=True, arithmetic=NUMERICS.mac, **conv)
        self.conv_b = StreamConv2d(weights=weights_b, arithmetic=NUMERICS.mac, **conv)
        channels = weights_a.shape[0]
        self.fork = StreamFork(channels=channels, depths=[2, skip_depth])
        self.row_fifo = StreamFork(channels=channels, depths=[size])
        self.add = StreamAdd(channels=channels, relu=True)
        layout = self.fork.in_layout
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        for name in ("conv_a", "conv_b", "fork", "row_fifo", "add"):
            m.submodules[name] = getattr(self, name)
        wiring.connect(m, wiring.flipped(self.i), self.fork.i)
        wiring.connect(m, self.fork.outputs[0], self.conv_a.i)
        wiring.connect(m, self.conv_a.o, self.row_fifo.i)
        wiring.connect(m, self.row_fifo.outputs[0], self.conv_b.i)
        wiring.connect(m, self.conv_b.o, self.add.inputs[0])
        wiring.connect(m, self.fork.outputs[1], self.add.inputs[1])
        wiring.connect(m, self.add.o, wiring.flipped(self.o))
        return m


def _residual(random, skip_depth=None, limit=200_000):
    size, channels = 6, 3
    fmt = NUMERICS.operand
    weights_a = fmt.random(random, (channels, channels, 3, 3)) // 4
    weights_b = fmt.random(random, (channels, channels, 3, 3)) // 4
    frames = [fmt.random(random, (channels, size, size)) for _ in range(2)]
    if skip_depth is None:
        skip_depth = skip_fifo_depth(width=size, engines=[(3, 1, 1), (3, 1, 1)])
    block = ResidualBlock(weights_a, weights_b, size, skip_depth)
    outputs, _, error = run_streams(
        block,
        [(block.i, frames, [3, 4])],
        [(block.o, (channels, size, size), 2)],
        random=random,
        idle=0.1,
        backpressure=0.2,
        limit=limit,
        watch=block.add.error,
    )
    kernels = IntegerKernels(NUMERICS)
    conv = SimpleNamespace(params={"stride": 1, "padding": 1, "groups": 1})
    relu = SimpleNamespace(params={"max_value": None})
    x = np.stack(frames)
    main = kernels.conv_forward(conv, kernels.relu_forward(relu, kernels.conv_forward(conv, x, weights_a, None)),
                                weights_b, None)
    expected = kernels.relu_forward(relu, kernels.add_forward(None, [main, x]))
    return outputs[0], expected, error


def test_residual_block_with_the_computed_skip_depth_is_bit_exact():
    random = rng("stream_fork_residual")
    outputs, expected, error = _residual(random)
    assert not error
    for index, (output, batch) in enumerate(outputs):
        np.testing.assert_array_equal(output, expected[index])
        assert batch == 3 + index


@pytest.mark.parametrize(("skip_depth", "deadlocks"), [(17, True), (18, False)])
def test_residual_block_needs_the_exact_lead_of_the_long_branch(skip_depth, deadlocks):
    """conv_b's output row y needs conv_a's rows up to y + 1, which need input rows up to y + 2: the fork
    must run 3 rows (18 pixels) ahead of the join; the docstring's core term width * (sum (kh-p-1) + 1)."""
    random = rng("stream_fork_deadlock")
    if deadlocks:
        with pytest.raises(AssertionError, match=r"stuck: sinks got \[0\] of"):
            _residual(random, skip_depth=skip_depth, limit=2_000)
    else:
        outputs, expected, _ = _residual(random, skip_depth=skip_depth)
        np.testing.assert_array_equal(outputs[1][0], expected[1])


def test_skip_fifo_depth_formula():
    # two 3x3 pad-1 stride-1 convs at width 16 (tiny_resnet res1): 16 * (2 + 2 + 1) + 2
    assert skip_fifo_depth(width=16, engines=[(3, 1, 1), (3, 1, 1)]) == 82
    # a stride-2 3x3 then a 3x3 (tiny_resnet res2 main path): 16 * (2 + 2*2 + 2) + 4 + 2
    assert skip_fifo_depth(width=16, engines=[(3, 2, 1), (3, 1, 1)], extra_pixels=4) == 134


def test_parameters_are_validated():
    with pytest.raises(ValueError, match=r"^depths must be a list of 1 to 8 FIFO depths, not \[\]$"):
        StreamFork(channels=2, depths=[])
    with pytest.raises(ValueError, match=r"^depth must be an integer between 1 and 65536, not 0$"):
        StreamFork(channels=2, depths=[2, 0])
    with pytest.raises(ValueError, match=r"^width must be an integer >= 1, not 0$"):
        skip_fifo_depth(width=0, engines=[])
    with pytest.raises(ValueError, match=r"^stride must be an integer >= 1, not 0$"):
        skip_fifo_depth(width=4, engines=[(3, 0, 1)])
