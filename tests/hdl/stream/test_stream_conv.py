"""Streaming conv engine against an independent NumPy conv + requantization, and against wavecore.golden.integer."""

from types import SimpleNamespace

import numpy as np
import pytest
from stream_sim import single

from wavecore.golden.integer import IntegerKernels
from wavecore.golden.numerics import IntegerTraining, IntFormat, MacArithmetic, requantize
from wavecore.hdl.stream.conv import StreamConv2d, stream_conv_cycles
from wavecore.verif.seed import rng


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
    outputs, _ = single(engine, frames, [5, 6], random=random, idle=0.2, backpressure=0.3)
    for frame, (output, batch), expected_batch in zip(frames, outputs, (5, 6)):
        expected = requantize(
            numpy_conv(frame, weights, stride, padding, arithmetic), shift, IntFormat(8), rounding
        )
        if relu:
            expected = np.maximum(expected, 0)
        np.testing.assert_array_equal(output, expected)
        assert batch == expected_batch


def test_cycles_per_frame_match_the_formula_without_stalls():
    random = rng("stream_conv_cycles")
    arithmetic = MacArithmetic()
    weights = arithmetic.operand.random(random, (4, 3, 3, 3))
    engine = StreamConv2d(
        weights=weights, height=6, width=6, stride=1, padding=1, shift=6, arithmetic=arithmetic
    )
    frames = [arithmetic.operand.random(random, (3, 6, 6)) for _ in range(3)]
    _, cycles = single(engine, frames, [0, 1, 2])
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


# --- grouped / depthwise convs, bias, ReLU6, saturating accumulators: against golden.integer ------------------
GOLDEN_CASES = [
    # (in_channels, out_channels, groups, kernel, size, stride, padding, bias, max_value, acc_width)
    (4, 4, 4, 3, 5, 1, 1, True, 6, 16),  # depthwise + ReLU6 (tiny_mobilenet block_dw)
    (4, 6, 2, 3, 6, 2, 1, False, None, 16),  # grouped, strided, saturating 16-bit accumulator
    (3, 4, 1, 3, 5, 1, 1, True, None, 16),  # bias + ReLU, heavy saturation: tap order matters
    (6, 5, 1, 1, 1, 1, 0, True, False, 32),  # linear layer as a 1x1 conv on a 1x1 frame
]


def _golden_numerics(acc_width):
    return IntegerTraining(
        mac=MacArithmetic(in_width=8, acc_width=acc_width, signed=True, overflow="saturate"),
        activation_frac=4,
        weight_frac=6,
    )


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[f"c{c[0]}o{c[1]}g{c[2]}k{c[3]}s{c[5]}" for c in GOLDEN_CASES])
def test_engine_matches_golden_integer_kernels(case):
    cin, cout, groups, kernel, size, stride, padding, has_bias, max_value, acc_width = case
    random = rng("stream_conv_golden")
    numerics = _golden_numerics(acc_width)
    kernels = IntegerKernels(numerics)
    fmt = numerics.operand
    weights = fmt.random(random, (cout, cin // groups, kernel, kernel))
    bias_q = fmt.random(random, (cout,)) if has_bias else None
    frames = [fmt.random(random, (cin, size, size)) for _ in range(2)]
    relu = max_value is not False
    relu_max = kernels._relu_limit(max_value) if relu and max_value is not None else None
    engine = StreamConv2d(
        weights=weights,
        height=size,
        width=size,
        stride=stride,
        padding=padding,
        shift=numerics.weight_frac,
        rounding=numerics.rounding,
        relu=relu,
        relu_max=relu_max,
        arithmetic=numerics.mac,
        out_width=fmt.width,
        groups=groups,
        bias=None if bias_q is None else bias_q << numerics.activation_frac,
    )
    outputs, _ = single(engine, frames, [3, 4], random=random, idle=0.2, backpressure=0.3)
    conv = SimpleNamespace(params={"stride": stride, "padding": padding, "groups": groups})
    expected = kernels.conv_forward(conv, np.stack(frames), weights, bias_q)
    if relu:
        expected = kernels.relu_forward(SimpleNamespace(params={"max_value": max_value}), expected)
    for index, (output, batch) in enumerate(outputs):
        np.testing.assert_array_equal(output, expected[index])
        assert batch == 3 + index


def test_grouped_cycles_per_frame_match_the_formula_without_stalls():
    random = rng("stream_conv_grouped_cycles")
    numerics = _golden_numerics(32)
    weights = numerics.operand.random(random, (8, 1, 3, 3))
    engine = StreamConv2d(weights=weights, height=6, width=6, padding=1, groups=8, arithmetic=numerics.mac)
    frames = [numerics.operand.random(random, (8, 6, 6)) for _ in range(3)]
    _, cycles = single(engine, frames, [0, 1, 2])
    per_frame = stream_conv_cycles(height=6, width=6, kernel=(3, 3), stride=1, padding=1, in_channels=8, groups=8)
    # per output pixel 9 taps + multiply + accumulate + emit, per row the FILL decision, per frame DRAIN
    assert per_frame == 36 + 6 * (6 * (9 + 3) + 1) + 1
    assert engine.cycles_per_frame() == per_frame
    assert abs(cycles - 3 * per_frame) <= 3 * 3


def test_new_parameters_are_validated():
    weights = np.zeros((4, 1, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=r"^groups must be an integer >= 1, not 0$"):
        StreamConv2d(weights=weights, height=4, width=4, groups=0)
    with pytest.raises(ValueError, match=r"^groups must divide out_channels 4, not 3$"):
        StreamConv2d(weights=weights, height=4, width=4, groups=3)
    with pytest.raises(ValueError, match=r"^bias must be an integer array of shape \(4,\), not \(3,\)$"):
        StreamConv2d(weights=weights, height=4, width=4, groups=4, bias=np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^bias has values outside the int32 range"):
        StreamConv2d(weights=weights, height=4, width=4, groups=4, bias=np.full(4, 1 << 31))
    with pytest.raises(ValueError, match=r"^relu_max needs relu=True$"):
        StreamConv2d(weights=weights, height=4, width=4, groups=4, relu_max=6)
    with pytest.raises(ValueError, match=r"^relu_max must be an integer between 0 and 127, not 128$"):
        StreamConv2d(weights=weights, height=4, width=4, groups=4, relu=True, relu_max=128)
