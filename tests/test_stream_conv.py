"""Streaming conv engine against an independent NumPy conv + golden.numerics requantization."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.numerics import IntFormat, MacArithmetic, requantize
from hdl.stream_conv import StreamConv2d, stream_conv_cycles
from verif.packing import pack, unpack
from verif.seed import rng


def numpy_conv(x, weights, stride, padding, arithmetic):
    """Direct-loop conv (C, H, W) x (O, C, kh, kw), products added in (ky, kx, ci) order."""
    channels, height, width = x.shape
    out_channels, _, kh, kw = weights.shape
    padded = np.zeros((channels, height + 2 * padding, width + 2 * padding), dtype=np.int64)
    padded[:, padding : padding + height, padding : padding + width] = x
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - kw) // stride + 1
    # as a GEMM in the hardware's tap order: rows = output pixels, k = (ky, kx, ci)
    patches = np.empty((out_h * out_w, kh * kw * channels), dtype=np.int64)
    for oy in range(out_h):
        for ox in range(out_w):
            window = padded[:, oy * stride : oy * stride + kh, ox * stride : ox * stride + kw]
            patches[oy * out_w + ox] = window.transpose(1, 2, 0).reshape(-1)
    filters = weights.transpose(2, 3, 1, 0).reshape(kh * kw * channels, out_channels)
    return arithmetic.matmul(patches, filters).reshape(out_h, out_w, out_channels).transpose(2, 0, 1)


def run_engine(engine, frames, batches, random=None, idle=0.0, backpressure=0.0):
    """Stream frames (C, H, W) through ``engine``; return output frames, their batch ids, and cycles."""
    layout_bits = engine.in_layout.size
    del layout_bits
    beats = []
    for frame, batch in zip(frames, batches):
        _, height, width = frame.shape
        for y in range(height):
            for x in range(width):
                beats.append(
                    (
                        frame[:, y, x],
                        x == 0 and y == 0,
                        x == width - 1,
                        x == width - 1 and y == height - 1,
                        batch,
                    )
                )
    expected_pixels = len(frames) * engine.out_height * engine.out_width
    received = []
    cycles = {"n": 0}

    async def testbench(ctx):
        index = 0
        while len(received) < expected_pixels:
            offer = index < len(beats) and not (random is not None and random.random() < idle)
            ctx.set(engine.i.valid, offer)
            if offer:
                data, first, row_end, frame_end, batch = beats[index]
                ctx.set(engine.i.payload.data.as_value(), pack(data, engine.arithmetic.in_width))
                ctx.set(engine.i.payload.first, first)
                ctx.set(engine.i.payload.row_end, row_end)
                ctx.set(engine.i.payload.frame_end, frame_end)
                ctx.set(engine.i.payload.batch, batch)
            ready = not (random is not None and random.random() < backpressure)
            ctx.set(engine.o.ready, ready)
            if offer and ctx.get(engine.i.ready):
                index += 1
            if ready and ctx.get(engine.o.valid):
                payload = engine.o.payload
                received.append(
                    (
                        unpack(
                            ctx.get(payload.data.as_value()),
                            engine.out_format.width,
                            engine.out_channels,
                            True,
                        ),
                        ctx.get(payload.first),
                        ctx.get(payload.row_end),
                        ctx.get(payload.frame_end),
                        ctx.get(payload.batch),
                    )
                )
            await ctx.tick()
            cycles["n"] += 1
            assert cycles["n"] < 200_000, "engine stuck"

    simulator = Simulator(engine)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    out_frames, out_batches = [], []
    per_frame = engine.out_height * engine.out_width
    for f in range(len(frames)):
        pixels = received[f * per_frame : (f + 1) * per_frame]
        frame = np.stack([p[0] for p in pixels]).T.reshape(
            engine.out_channels, engine.out_height, engine.out_width
        )
        out_frames.append(frame)
        out_batches.append({p[4] for p in pixels})
        for index, (_, first, row_end, frame_end, _) in enumerate(pixels):
            y, x = divmod(index, engine.out_width)
            assert first == (index == 0)
            assert row_end == (x == engine.out_width - 1)
            assert frame_end == (index == per_frame - 1)
    return out_frames, out_batches, cycles["n"]


CASES = [
    # (in_channels, out_channels, kernel, height, width, stride, padding, relu, rounding)
    (3, 4, 3, 6, 7, 1, 1, True, "half_even"),
    (2, 3, 3, 7, 6, 2, 1, False, "half_up"),
    (4, 2, 1, 5, 5, 2, 0, True, "floor"),
    (2, 2, 2, 5, 4, 1, 0, False, "half_away_from_zero"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"c{c[0]}o{c[1]}k{c[2]}s{c[5]}p{c[6]}" for c in CASES])
def test_engine_matches_numpy_conv_and_requantize(case):
    in_channels, out_channels, kernel, height, width, stride, padding, relu, rounding = case
    random = rng("stream_conv")
    arithmetic = MacArithmetic(in_width=8, acc_width=32)
    weights = arithmetic.operand.random(random, (out_channels, in_channels, kernel, kernel))
    frames = [arithmetic.operand.random(random, (in_channels, height, width)) for _ in range(2)]
    shift = 7
    engine = StreamConv2d(
        weights=weights,
        height=height,
        width=width,
        stride=stride,
        padding=padding,
        shift=shift,
        rounding=rounding,
        relu=relu,
        arithmetic=arithmetic,
    )
    outputs, batches, _ = run_engine(engine, frames, [5, 6], random, idle=0.2, backpressure=0.3)
    for frame, output, batch, expected_batch in zip(frames, outputs, batches, (5, 6)):
        expected = requantize(
            numpy_conv(frame, weights, stride, padding, arithmetic), shift, IntFormat(8), rounding
        )
        if relu:
            expected = np.maximum(expected, 0)
        np.testing.assert_array_equal(output, expected)
        assert batch == {expected_batch}


def test_cycles_per_frame_match_the_formula_without_stalls():
    random = rng("stream_conv_cycles")
    arithmetic = MacArithmetic()
    weights = arithmetic.operand.random(random, (4, 3, 3, 3))
    engine = StreamConv2d(
        weights=weights, height=6, width=6, stride=1, padding=1, shift=6, arithmetic=arithmetic
    )
    frames = [arithmetic.operand.random(random, (3, 6, 6)) for _ in range(3)]
    _, _, cycles = run_engine(engine, frames, [0, 1, 2])
    per_frame = stream_conv_cycles(height=6, width=6, kernel=(3, 3), stride=1, padding=1, in_channels=3)
    assert abs(cycles - 3 * per_frame) <= 3 * 3  # a few transition cycles per frame


def test_parameters_are_validated():
    weights = np.zeros((2, 2, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="stride must be an integer >= 1, not 0"):
        StreamConv2d(weights=weights, height=4, width=4, stride=0)
    with pytest.raises(ValueError, match="shift must be an integer between 0 and 31, not 32"):
        StreamConv2d(weights=weights, height=4, width=4, shift=32)
    with pytest.raises(ValueError, match="weights has values outside the int8 range"):
        StreamConv2d(weights=weights + 200, height=4, width=4)
