"""wavecore.golden.integer / the integer training mode of wavecore.golden.numerics: bit-exact under every schedule, the
conv forward equal to an independent integer reference, convergence to float as the formats widen."""

from __future__ import annotations

import numpy as np
import pytest
from golden_helpers import (
    INTEGER_MODES,
    assert_all_bits_equal,
    bn_boundary_schedule,
    mbs_schedules,
    relative,
    run_step,
)

from wavecore.golden.network import load_network
from wavecore.golden.numerics import IntegerTraining, MacArithmetic, requantize
from wavecore.golden.schedule import Schedule


# ------------------------------------------------------------------------------------------------------------
# Integer mode
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("numerics", INTEGER_MODES, ids=["int16_sat", "int8_wrap", "int8_sat_narrow"])
def test_integer_mode_every_schedule_is_bit_identical(numerics):
    for name, norm in [("tiny_resnet", "gn"), ("tiny_concat", "gn"), ("tiny_resnet", "bn")]:
        net = load_network(name, norm=norm)
        baseline = run_step(net, None, numerics=numerics)
        assert baseline.grads["stem"]["weight"].dtype == np.int64
        schedules = [Schedule.baseline(net, 6, norm_fusion=True), bn_boundary_schedule(net, 6, 4)]
        if norm == "gn":
            schedules += [*mbs_schedules(net, 6), Schedule.per_block(net, 2, norm_fusion=True)]
        for schedule in schedules:
            assert_all_bits_equal(run_step(net, schedule, numerics=numerics), baseline)


def test_integer_conv_forward_is_im2col_gemm_then_requantize():
    """Independent reference: exact products summed in Python integers, the accumulator saturated after
    every addition in k order, then round-half-even division written out with Python integers."""
    from wavecore.golden.integer import conv2d_forward_int

    numerics = IntegerTraining(
        mac=MacArithmetic(in_width=8, acc_width=17, signed=True, overflow="saturate"),
        activation_frac=4,
        weight_frac=5,
    )
    rng = np.random.default_rng(5)
    x = numerics.operand.random(rng, (2, 3, 5, 5), 0.3)
    w = numerics.operand.random(rng, (4, 3, 3, 3), 0.3)
    y = conv2d_forward_int(numerics, x, w, stride=1, padding=1)
    lo, hi = -(2**16), 2**16 - 1
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for n in range(2):
        for o in range(4):
            for i in range(5):
                for j in range(5):
                    acc = 0
                    for c in range(3):
                        for u in range(3):
                            for v in range(3):
                                acc = min(hi, max(lo, acc + int(xp[n, c, i + u, j + v]) * int(w[o, c, u, v])))
                    quotient, remainder = divmod(acc, 32)
                    if remainder > 16 or (remainder == 16 and quotient % 2):
                        quotient += 1
                    assert y[n, o, i, j] == min(127, max(-128, quotient))


def test_integer_mode_converges_to_float_as_bits_grow():
    net = load_network("tiny_mobilenet", norm="gn")
    reference = run_step(net, None, batch=4)
    errors = []
    for fa, fg in [(8, 12), (12, 16)]:
        numerics = IntegerTraining(
            mac=MacArithmetic(18, 62, True, "wrap"),
            activation_frac=fa,
            weight_frac=14,
            grad_frac=fg,
            weight_grad_frac=fg,
            scalar_frac=16,
        )
        result = run_step(net, None, batch=4, numerics=numerics)
        per_tensor = sorted(
            relative(result.grads[n][k] * 2.0**-fg, reference.grads[n][k])
            for n in reference.grads
            for k in reference.grads[n]
        )
        errors.append(per_tensor[len(per_tensor) // 2])
        assert abs(result.loss - reference.loss) < 2e-3
    assert errors[1] < errors[0] / 8 and errors[1] < 0.02


def _divide_by_count_reference(total: int, count: int, reciprocal_frac: int, lo: int, hi: int) -> int:
    """docs/golden.md "Integer mode": a power-of-two count is a shift, any other count multiplies by
    round(2**R / count) and shifts by R; both round half to even, then saturate (Python integers)."""
    if count & (count - 1) == 0:
        numerator, shift = total, count.bit_length() - 1
    else:
        reciprocal, remainder = divmod(2**reciprocal_frac, count)
        reciprocal += 2 * remainder >= count  # round(2**R / count); never a tie for an odd count
        numerator, shift = total * reciprocal, reciprocal_frac
    quotient, remainder = divmod(numerator, 2**shift)
    if 2 * remainder > 2**shift or (2 * remainder == 2**shift and quotient % 2):
        quotient += 1
    return min(hi, max(lo, quotient))


@pytest.mark.parametrize(("kernel", "size"), [(3, 6), (3, 9), (2, 4)])
def test_integer_average_pools_divide_by_the_documented_reciprocal(kernel, size):
    from wavecore.golden.integer import IntegerKernels
    from wavecore.golden.network import NetworkBuilder

    builder = NetworkBuilder("pools", (2, size, size), num_classes=2, norm="none")
    builder.avgpool("pool", kernel)
    builder.global_avgpool("gap")
    network = builder.build()
    numerics = IntegerTraining(
        mac=MacArithmetic(in_width=8, acc_width=24, signed=True, overflow="saturate"),
        activation_frac=4,
        reciprocal_frac=5,  # 2**5 / 9 = 3.56: a truncated reciprocal (3) would differ from the rounded (4)
    )
    kernels = IntegerKernels(numerics)
    x = numerics.operand.random(np.random.default_rng(3), (2, 2, size, size), 0.9)
    pooled = kernels.avgpool_forward(network.layer("pool"), x)
    squeezed = kernels.global_avgpool_forward(network.layer("gap"), pooled)
    lo, hi, out = -128, 127, size // kernel
    for n in range(2):
        for c in range(2):
            for i in range(out):
                for j in range(out):
                    window = x[n, c, i * kernel : (i + 1) * kernel, j * kernel : (j + 1) * kernel]
                    expected = _divide_by_count_reference(int(window.sum()), kernel * kernel, 5, lo, hi)
                    assert pooled[n, c, i, j] == expected, (n, c, i, j)
            expected = _divide_by_count_reference(int(pooled[n, c].sum()), out * out, 5, lo, hi)
            assert squeezed[n, c, 0, 0] == expected


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [  # x / 16 = 1.5, 2.5, -1.5, 0.5, -0.5, 1.4375, -1.5625, 18.75 and 250 (saturates to int8's 127)
        ("floor", [1, 2, -2, 0, -1, 1, -2, 18, 127]),
        ("half_up", [2, 3, -1, 1, 0, 1, -2, 19, 127]),
        ("half_even", [2, 2, -2, 0, 0, 1, -2, 19, 127]),
        ("half_away_from_zero", [2, 3, -2, 1, -1, 1, -2, 19, 127]),
    ],
)
def test_requantize_rounding_modes_on_ties_by_hand(rounding, expected):
    from wavecore.golden.numerics import IntFormat

    values = np.array([24, 40, -24, 8, -8, 23, -25, 300, 4000])
    assert requantize(values, 4, IntFormat(8), rounding).tolist() == expected


def test_requantize_used_by_integer_mode_rounds_half_even():
    from wavecore.golden.numerics import IntFormat

    assert requantize(np.array([24, 40, -24, 8]), 4, IntFormat(8), "half_even").tolist() == [2, 2, -2, 0]


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_integer_norm_layers_are_the_norm_datapath_arithmetic(norm):
    """The golden step's BN/GN-ReLU equals numerics.NormArithmetic's whole-layer compositions (the
    reference the hdl/norm* units are checked against), forward and backward, bit for bit."""
    from wavecore.golden.numerics import NormArithmetic

    net = load_network("tiny_resnet", norm=norm)
    numerics = IntegerTraining()
    result = run_step(net, Schedule.baseline(net, 6, norm_fusion=True), numerics=numerics)
    x = result.activations["stem"]
    gamma = numerics.quantize(np.ones(8), numerics.weight_frac)
    beta = numerics.quantize(np.zeros(8), numerics.weight_frac)
    groups = net.layer("stem_norm").params.get("groups")
    count = x.shape[0] * 16 * 16 if norm == "bn" else 8 // groups * 16 * 16
    arithmetic = NormArithmetic.from_training(numerics, max_count=count)
    eps_q = arithmetic.eps_fixed(1e-5)
    if norm == "bn":
        forward = arithmetic.batchnorm_forward(x, gamma, beta, eps_q)
        backward = arithmetic.batchnorm_backward(result.input_grads["stem_relu"], x, gamma, forward)
    else:
        forward = arithmetic.groupnorm_forward(x, gamma, beta, groups, eps_q)
        backward = arithmetic.groupnorm_backward(result.input_grads["stem_relu"], x, gamma, groups, forward)
    assert np.array_equal(result.activations["stem_relu"], forward["z"])
    assert np.array_equal(result.input_grads["stem"], backward["dx"])
    shift = numerics.scalar_frac  # dgamma accumulator grid -> Q.weight_grad_frac
    expected_dgamma = requantize(np.asarray(backward["dgamma"]).astype(np.int64), shift, numerics.operand,
                                 numerics.rounding)
    assert np.array_equal(result.grads["stem_norm"]["weight"], expected_dgamma)
