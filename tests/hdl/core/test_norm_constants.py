"""The NORM unit's scalar arithmetic (hdl/core/norm_constants.py) against NormArithmetic's forward_constants,
backward_constants and dgamma, with typical, constant and extreme statistics, and narrow formats so every
saturation is reached; the latency against worst_case_cycles."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from wavecore.golden.numerics import INTEGER_PRESETS, IntFormat, NormArithmetic
from wavecore.hdl.core.norm_constants import NormConstants
from wavecore.hdl.norm.scalar import ScalarMode


def statistics(rng, arithmetic, count):
    """(S1, S2) of ``count`` activations: typical, constant (zero variance) or extreme."""
    fmt = arithmetic.activation
    kind = rng.integers(0, 3)
    if kind == 0:
        real = rng.normal(rng.uniform(-3, 3), rng.uniform(0.05, 4), count)
        x = np.clip(np.rint(real * 2**arithmetic.activation_frac), fmt.min, fmt.max)
    elif kind == 1:
        x = np.full(count, int(rng.integers(fmt.min, fmt.max + 1)))
    else:
        x = rng.choice([fmt.min, fmt.max, 0, 1, -1], count)
    x = x.astype(np.int64)
    return int(x.sum()), int((x * x).sum())


def cases(rng, arithmetic, param_width, number):
    param = IntFormat(param_width)
    result = []
    for _ in range(number):
        count = int(rng.choice([1, 2, 3, 49, 100, arithmetic.max_count]))
        s1, s2 = statistics(rng, arithmetic, min(count, 4096))
        if count > 4096:  # the same statistics scaled to the whole set: still sums of count integers
            s1, s2 = s1 * (count // 4096), s2 * (count // 4096)
            count = count // 4096 * 4096
        gamma, beta = (int(rng.choice([param.min, param.max, rng.integers(param.min, param.max + 1)]))
                       for _ in range(2))
        eps = int(rng.choice([1, 7, 1 << 12, 1 << 20]))
        forward = arithmetic.forward_constants(s1, s2, count, gamma, beta, eps)
        rstd = int(forward["rstd"])
        result.append((ScalarMode.FORWARD, dict(s1=s1, s2=s2, count=count, gamma=gamma, beta=beta, eps=eps),
                       {key: int(forward[key]) for key in ("rstd", "a", "c")}))
        # sums of count gradients (and gradient * activation products), at most half of their bound
        largest_dy = 1 << (arithmetic.gradient.width - 2)
        largest_product = largest_dy << (arithmetic.activation.width - 1)
        r1 = int(rng.integers(-count * largest_dy, count * largest_dy + 1))
        r2 = int(rng.integers(-count * largest_product, count * largest_product + 1))
        r1, r2 = (int(v * rng.choice([1, 0, 2**-8])) for v in (r1, r2))
        w1, w2 = gamma * r1, gamma * r2
        backward = arithmetic.backward_constants(s1, count, rstd, forward["a"], w1, w2)
        result.append((ScalarMode.BACKWARD, dict(s1=s1, count=count, rstd=rstd, w1=w1, w2=w2),
                       {key: int(backward[key]) for key in ("k2", "k3")}))
        dgamma = int(arithmetic.dgamma(s1, count, rstd, r1, r2))
        if -(1 << 63) <= dgamma < 1 << 63:  # the simulator's int64 (larger ones are an error there)
            result.append((ScalarMode.DGAMMA, dict(s1=s1, count=count, rstd=rstd, r1=r1, r2=r2),
                           {"dgamma": dgamma}))
    return result


def run(arithmetic, param_width, number, seed):
    unit = NormConstants(arithmetic=arithmetic, param_width=param_width,
                         weighted_width=arithmetic.weighted_width(param_width))
    work = cases(np.random.default_rng(seed), arithmetic, param_width, number)
    failures = []

    async def bench(ctx):
        for mode, fields, want in work:
            ctx.set(unit.command.payload, {"mode": mode, **{key: 0 for key in
                                                            ("s1", "s2", "count", "gamma", "beta", "eps", "rstd",
                                                             "w1", "w2", "r1", "r2")}, **fields})
            ctx.set(unit.command.valid, 1)
            while not ctx.get(unit.command.ready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(unit.command.valid, 0)
            cycles = 1
            while not ctx.get(unit.result.valid):
                await ctx.tick()
                cycles += 1
            assert cycles == unit.worst_case_cycles(mode)
            got = {key: ctx.get(getattr(unit.result.payload, key)) for key in want}
            if got != want:
                failures.append((mode, fields, want, got))
            ctx.set(unit.result.ready, 1)
            await ctx.tick()
            ctx.set(unit.result.ready, 0)

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert not failures, failures[:3]


@pytest.mark.parametrize("preset", ["int8", "int16"])
def test_presets(preset):
    training = INTEGER_PRESETS[preset]
    run(NormArithmetic.from_training(training, max_count=1 << 30), training.operand.width, 12, len(preset))


def test_narrow_formats_saturate():
    """rstd, A/K2 and C/K3 in narrow formats: the divider's overflow test and the clamps."""
    training = INTEGER_PRESETS["int8"]
    arithmetic = NormArithmetic.from_training(training, max_count=1 << 12, rstd_width=14, coefficient_width=10,
                                              bias_width=14)
    run(arithmetic, 8, 16, 3)


def test_latency_of_the_int8_preset():
    """worst_case_cycles worked out by hand (int8 preset, max_count 2**30: 31-bit count, 39/45-bit S1/S2, 32-bit
    rstd/A/K2, 48-bit C/K3, 53-bit W, 94-bit t, 8-bit gamma; quotients of 64, 48, 32, 48, 64 bits). A product
    state of a x b 17-bit digits takes a*b + 6 + 2 cycles (its first cycle registers its select).

    * forward: products F_COUNT 2x2, F0_A 2x3, F0_B 3x3, F1_A 2x4, F_A 1x2, F_C_A 2x2, F_C_B 2x3 =
      12+14+17+16+10+12+14 = 95; F0 F1 OVERFLOW 3, rstd division 64, SQRT_SETUP 1, root 32, F_RSTD F_A_SIZE
      F_A_ROUND F_A_CLAMP 4, F_C SETUP TOTAL ALIGN OVERFLOW 5, C division 48, F_OUT 1, valid 1 = 159; 254.
    * backward: B_COUNT 2x2, B0_A 2x4, B0_B 3x4, B1_A 2x2, B1 4x2, B2 6x6, B3_A 2x4, B3_B 2x3 =
      12+16+20+12+16+44+16+14 = 150; B0 B2_SUM SETUP TOTAL ALIGN OVERFLOW 6, K2 division 32, B_K2 B3 SETUP TOTAL
      ALIGN OVERFLOW 6, K3 division 48, B_OUT 1, valid 1 = 94; 244.
    * dgamma: G0_A 2x3, G0_B 3x3, G1_A 2x6 = 14+17+20 = 51; G0 G1 SETUP TOTAL ALIGN OVERFLOW 6, division 64, G_OUT
      1, valid 1 = 72; 123.
    """
    arithmetic = NormArithmetic.from_training(INTEGER_PRESETS["int8"], max_count=1 << 30)
    unit = NormConstants(arithmetic=arithmetic, param_width=8, weighted_width=arithmetic.weighted_width(8))
    assert unit.worst_case_cycles(ScalarMode.FORWARD) == 254
    assert unit.worst_case_cycles(ScalarMode.BACKWARD) == 244
    assert unit.worst_case_cycles(ScalarMode.DGAMMA) == 123


def test_parameters_validated():
    with pytest.raises(TypeError, match="arithmetic must be"):
        NormConstants(arithmetic=None)


def test_dgamma_on_a_finer_grid_than_its_product():
    """A dgamma grid finer than the product's (param_grad_frac 20: dgamma_up = 5, the presets have 0), so the
    numerator of dgamma is shifted up before its division."""
    training = INTEGER_PRESETS["int8"]
    arithmetic = NormArithmetic.from_training(training, max_count=1 << 12, param_grad_frac=20)
    run(arithmetic, 8, 8, 5)
