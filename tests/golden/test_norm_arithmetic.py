"""The integer BN/GN datapath arithmetic (golden/numerics.py, "Normalization datapath arithmetic").

Oracles: the defining inequality of the fixed-point reciprocal square root, and the textbook float64
BatchNorm/GroupNorm(+ReLU) forward and backward (not the fission form), which the integer results must
match to within their quantisation steps.
"""

import math

import numpy as np
import pytest

from wavecore.golden.numerics import IntFormat, NormArithmetic, divide_round

ARITHMETIC = NormArithmetic()
EPS = 1e-5


def _float_norm_relu(x, gamma, beta, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    xh = (x - mean) / np.sqrt(var + eps)
    return xh, mean, var


def test_divide_round_is_half_away_from_zero():
    assert [divide_round(n, 4) for n in (-6, -5, -2, 2, 5, 6, 7)] == [-2, -1, -1, 1, 1, 2, 2]


@pytest.mark.parametrize("seed", range(3))
def test_rstd_is_floor_of_exact_reciprocal_square_root(seed):
    random = np.random.default_rng(seed)
    x = ARITHMETIC.activation.random(random, (4, 3, 5, 5))
    x[:, 1] = 77  # a channel with zero variance: eps alone sets rstd
    s1, s2 = ARITHMETIC.statistics(x, (0, 2, 3))
    count = 4 * 25
    eps_q = ARITHMETIC.eps_fixed(EPS)
    rstd = ARITHMETIC.rstd(s1, s2, count, eps_q)
    k = count << (ARITHMETIC.activation_frac + ARITHMETIC.eps_frac // 2 + ARITHMETIC.reciprocal_frac)
    for channel in range(3):
        d = (count * int(s2[channel]) - int(s1[channel]) ** 2) * (1 << ARITHMETIC.eps_frac) + eps_q * count**2
        r = int(rstd[channel])
        assert r * r * d <= k * k < (r + 1) * (r + 1) * d
        real = 1 / math.sqrt(np.var(x[:, channel] / 256.0) + eps_q * 2.0**-24)  # eps on its grid
        assert abs(r / 2**16 - real) <= 2**-16 + 1e-9 * real


def test_accumulator_widths_hold_the_extreme_count_and_are_tight():
    small = NormArithmetic(activation=IntFormat(8), gradient=IntFormat(8), max_count=1000)
    extreme = np.full((1000,), -128)
    s1, s2 = small.statistics(extreme, 0)
    assert s1 == -128_000 and s2 == 16_384_000
    assert small.sum_format.width == 18 and small.sumsq_format.width == 24
    assert not IntFormat(small.sum_format.width - 1).contains(s1)
    assert not IntFormat(small.sumsq_format.width - 1, False).contains(s2)
    _, r1, r2 = small.backward_reductions(np.full(1000, -128), extreme, -(1 << 12), 0, 0)  # y = 128 > 0
    assert r2 == 16_384_000 and small.grad_product_sum_format.contains(r2)


def test_norm_arithmetic_rejects_bad_parameters_with_exact_message():
    with pytest.raises(ValueError, match=r"^eps_frac must be even, not 7$"):
        NormArithmetic(eps_frac=7)
    with pytest.raises(ValueError, match=r"^max_count must be an integer between 1 and 1073741824, not 0$"):
        NormArithmetic(max_count=0)
    with pytest.raises(
        ValueError,
        match=r"^rounding must be one of floor, half_up, half_even, "
        r"half_away_from_zero, not 'up'$",
    ):
        NormArithmetic(rounding="up")


def _inputs(seed, shape, channels):
    random = np.random.default_rng(seed)
    x = np.clip(np.rint(random.normal(3.0, 1.5, shape) * 256), -32768, 32767).astype(np.int64)
    gamma = np.rint(random.uniform(0.5, 1.5, channels) * 4096).astype(np.int64)
    beta = np.rint(random.uniform(-0.5, 0.5, channels) * 4096).astype(np.int64)
    dz = np.rint(random.normal(0, 0.5, shape) * 4096).astype(np.int64)
    return x, gamma, beta, dz


def test_batchnorm_forward_and_backward_match_float_reference_within_quantisation():
    x, gamma, beta, dz = _inputs(0, (4, 3, 6, 6), 3)
    forward = ARITHMETIC.batchnorm_forward(x, gamma, beta, ARITHMETIC.eps_fixed(EPS))
    xr = x / 256.0
    g, b = gamma[None, :, None, None] / 4096.0, beta[None, :, None, None] / 4096.0
    xh, _, var = _float_norm_relu(xr, g, b, (0, 2, 3), EPS)
    y_real = g * xh + b
    assert np.max(np.abs(forward["y"] / 256.0 - y_real)) <= 2.0 / 256
    assert np.array_equal(forward["z"], np.maximum(forward["y"], 0))

    backward = ARITHMETIC.batchnorm_backward(dz, x, gamma, forward)
    mask = forward["y"] > 0
    dy = dz / 4096.0 * mask
    m = x.shape[0] * x.shape[2] * x.shape[3]
    rstd = 1 / np.sqrt(var + EPS)
    dxh = dy * g
    dx_real = (
        rstd
        / m
        * (
            m * dxh
            - dxh.sum(axis=(0, 2, 3), keepdims=True)
            - xh * (dxh * xh).sum(axis=(0, 2, 3), keepdims=True)
        )
    )
    assert np.max(np.abs(backward["dx"] / 4096.0 - dx_real)) <= 4.0 / 4096
    dgamma_real = (dy * xh).sum(axis=(0, 2, 3))
    assert np.allclose(backward["dgamma"].astype(float) / 2.0**24, dgamma_real, atol=2e-3, rtol=2e-3)
    assert np.allclose(backward["dbeta"] / 4096.0, dy.sum(axis=(0, 2, 3)))


def test_groupnorm_forward_and_backward_match_float_reference_within_quantisation():
    groups = 2
    x, gamma, beta, dz = _inputs(1, (2, 4, 5, 5), 4)
    forward = ARITHMETIC.groupnorm_forward(x, gamma, beta, groups, ARITHMETIC.eps_fixed(EPS))
    n, c, h, w = x.shape
    xr = (x / 256.0).reshape(n, groups, c // groups, h, w)
    xh_g, _, var = _float_norm_relu(xr, None, None, (2, 3, 4), EPS)
    xh = xh_g.reshape(n, c, h, w)
    g, b = gamma[None, :, None, None] / 4096.0, beta[None, :, None, None] / 4096.0
    y_real = g * xh + b
    assert np.max(np.abs(forward["y"] / 256.0 - y_real)) <= 2.0 / 256

    backward = ARITHMETIC.groupnorm_backward(dz, x, gamma, groups, forward)
    dy = dz / 4096.0 * (forward["y"] > 0)
    dxh = (dy * g).reshape(n, groups, c // groups, h, w)
    m = (c // groups) * h * w
    rstd = 1 / np.sqrt(var + EPS)
    dx_real = (
        rstd
        / m
        * (
            m * dxh
            - dxh.sum(axis=(2, 3, 4), keepdims=True)
            - xh_g * (dxh * xh_g).sum(axis=(2, 3, 4), keepdims=True)
        )
    ).reshape(n, c, h, w)
    assert np.max(np.abs(backward["dx"] / 4096.0 - dx_real)) <= 4.0 / 4096
    assert np.allclose(
        backward["dgamma"].astype(float) / 2.0**24, (dy * xh).sum(axis=(0, 2, 3)), atol=2e-3, rtol=2e-3
    )
