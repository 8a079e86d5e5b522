"""golden.numerics.LossArithmetic and SgdArithmetic (the on-chip loss and SGD units, issue 11): error
against float64 within the stated bounds (docs/golden.md, "On-chip loss and SGD"), values by hand, the
validation messages, and the golden integer step using them by default (bit-exact under every schedule,
velocity carried across steps)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from golden_helpers import INTEGER_MODES, OPTIMIZER, assert_all_bits_equal, data, mbs_schedules

from golden import layers as L
from golden.network import load_network
from golden.numerics import INTEGER_PRESETS, IntegerTraining, IntFormat, LossArithmetic, SgdArithmetic
from golden.schedule import Schedule
from golden.train import SGD, Trainer, init_params, init_state

LOSS_UNITS = {
    "int16": INTEGER_PRESETS["int16"].loss_arithmetic,
    "int8": INTEGER_PRESETS["int8"].loss_arithmetic,
    "narrow": LossArithmetic(logits=IntFormat(10), logit_frac=5, gradient=IntFormat(12), grad_frac=9, exp_frac=11,
                             table_bits=4, loss_frac=10, max_classes=64, rounding="half_up"),
}


def _float_reference(unit: LossArithmetic, logits, labels, batch):
    """float64 softmax cross-entropy of the same integer logits: losses (real) and dlogits in LSB."""
    losses, probabilities = L.softmax_cross_entropy(np.asarray(logits) * 2.0**-unit.logit_frac, labels)
    gradient = L.softmax_cross_entropy_backward(probabilities, labels, batch) * 2.0**unit.grad_frac
    return losses, np.clip(gradient, unit.gradient.min, unit.gradient.max)


def _random_logits(unit: LossArithmetic, rng, rows, classes):
    """Logits at every scale: full range, saturated extremes, small spreads, ties."""
    kind = rng.integers(0, 5)
    if kind == 0:
        return unit.logits.random(rng, (rows, classes), 0.3)
    if kind == 1:  # spreads of a few units: the softmax is far from one-hot
        base = rng.integers(unit.logits.min // 2, unit.logits.max // 2, (rows, 1))
        return base + rng.integers(-(4 << unit.logit_frac), 4 << unit.logit_frac, (rows, classes))
    if kind == 2:  # ties at the maximum
        values = rng.integers(unit.logits.min, unit.logits.max, (rows, classes))
        values[:, : max(1, classes // 2)] = unit.logits.max
        return values
    if kind == 3:  # all equal
        return np.full((rows, classes), rng.integers(unit.logits.min, unit.logits.max + 1))
    return rng.choice([unit.logits.min, unit.logits.max, 0, -1], (rows, classes))  # saturated


@pytest.mark.parametrize("name", LOSS_UNITS)
def test_loss_unit_gradient_and_loss_within_the_stated_bounds(name):
    unit = LOSS_UNITS[name]
    worst_gradient = worst_loss = 0.0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        rows, classes = int(rng.integers(1, 17)), int(rng.integers(1, 41))
        batch = rows + int(rng.choice([0, 0, 1, 7, 100]))  # a sub-batch of a larger mini-batch too
        logits = _random_logits(unit, rng, rows, classes)
        labels = rng.integers(0, classes, rows)
        losses, gradient = unit.cross_entropy(logits, labels, batch=batch)
        reference_losses, reference_gradient = _float_reference(unit, logits, labels, batch)
        bound = unit.gradient_error_bound(classes, batch)
        error = np.abs(gradient - reference_gradient).max()
        assert error <= bound, (seed, error, bound)
        worst_gradient = max(worst_gradient, error)
        loss_error = np.abs(losses * 2.0**-unit.loss_frac - reference_losses).max()
        assert loss_error <= unit.loss_error_bound(classes), (seed, loss_error)
        worst_loss = max(worst_loss, loss_error / unit.loss_error_bound(classes))
        mean = unit.mean_loss(losses, batch=rows) * 2.0**-unit.loss_frac
        assert abs(mean - reference_losses.mean()) <= unit.loss_error_bound(classes) + 2.0 ** -(unit.loss_frac + 1)
    assert worst_gradient > 0.4 and worst_loss > 0.05  # the cases exercised the bounds, not only easy values


@pytest.mark.parametrize("name", ["int16", "int8"])
def test_preset_loss_units_are_within_one_lsb_up_to_40_classes(name):
    unit = LOSS_UNITS[name]
    assert unit.gradient_error_bound(40, 1) <= 1.0
    assert unit.gradient_error_bound(10, 1) <= 0.6
    assert unit.loss_error_bound(10) <= {"int16": 4e-5, "int8": 4e-4}[name]  # real units (ln 10 = 2.3)


def test_loss_unit_on_equal_logits_by_hand():
    """All logits equal: every e is exactly 2**exp_frac, p = 1/C, so dlogits are exact multiples: with C=4,
    N=2, Q.12: p/N = 1/8 -> 512, (p-1)/N = -3/8 -> -1536; the loss is ln 4 within the bound."""
    unit = LOSS_UNITS["int16"]
    logits = np.full((2, 4), 77)
    losses, gradient = unit.cross_entropy(logits, np.array([1, 3]))
    assert gradient.tolist() == [[512, -1536, 512, 512], [512, 512, 512, -1536]]
    assert np.all(np.abs(losses * 2.0**-16 - math.log(4)) <= unit.loss_error_bound(4))
    _, e = unit.exponentials(logits)
    assert np.all(e == 1 << unit.exp_frac)


def test_loss_unit_one_hot_extremes_saturate_and_round_to_zero():
    """A logit 255 units above the rest: p = 1 - 9e^-255.9..., so dlogits are 0 except the label; a
    correct label gives the loss 0, a wrong one the exact difference (255.99 real) on Q.16."""
    unit = LOSS_UNITS["int16"]
    logits = np.full((2, 10), -32768)
    logits[:, 2] = 32767
    losses, gradient = unit.cross_entropy(logits, np.array([2, 5]))
    assert gradient[0].tolist() == [0] * 10
    # (1 - 0) / N and (0 - 1) / N with N = 2 on Q.12; every other class 0
    assert gradient[1, 2] == 2048 and gradient[1, 5] == -2048 and np.count_nonzero(gradient[1]) == 2
    assert losses[0] == 0 and losses[1] == 65535 << 8  # (32767 + 32768) / 2**8 real = 65535 << 8 on Q.16
    int8 = LOSS_UNITS["int8"]
    _, gradient = int8.cross_entropy(np.array([[-128, 127]]), np.array([0]))
    assert gradient.tolist() == [[-128, 127]]  # -1 * 2**7 fits; +1 * 2**7 saturates to 127


def test_loss_unit_rows_are_independent_so_sub_batches_give_the_same_bits():
    unit = LOSS_UNITS["int16"]
    rng = np.random.default_rng(1)
    logits = unit.logits.random(rng, (12, 10), 0.1) // 64
    labels = rng.integers(0, 10, 12)
    losses, gradient = unit.cross_entropy(logits, labels)
    for start, stop in ((0, 5), (5, 6), (6, 12)):
        part_losses, part_gradient = unit.cross_entropy(logits[start:stop], labels[start:stop], batch=12)
        assert np.array_equal(part_losses, losses[start:stop])
        assert np.array_equal(part_gradient, gradient[start:stop])
    assert unit.cross_entropy_loss(logits, labels) == unit.mean_loss(losses)
    assert np.array_equal(unit.cross_entropy_gradient(logits, labels), gradient)


def test_loss_unit_tables_and_widths():
    unit = LOSS_UNITS["int16"]  # Q.8 logits, Q.12 gradient, exp_frac 20
    assert unit.exp_frac == 20 and unit.exp_cutoff == math.ceil(21 * math.log(2) * 256) == 3727
    assert unit.exp_chunks == 2 and len(unit.exp_tables[0]) == 256
    assert unit.exp_tables[0][0] == 1 << 20 and unit.exp_tables[1][1] == round(math.exp(-1) * 2**20)
    assert unit.log_table[0] == 0 and unit.log_table[-1] == round(math.log(2) * 2**20)
    assert unit.reciprocal_frac == 20 + 12 + 10 + 4
    assert unit.product_width <= 62 and unit.sum_width == 31  # 1024 << 20 = 2**30
    assert LOSS_UNITS["int8"].exp_chunks == 1  # Q.4 logits: d < 178 indexes one 256-entry table


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"table_bits": 0}, ValueError, "table_bits must be an integer between 1 and 12, not 0"),
        ({"exp_frac": 6}, ValueError, "exp_frac must be at least table_bits (8), not 6"),
        ({"loss_frac": 2}, ValueError, "loss_frac must be at least logit_frac - 4 (4), not 2"),
        ({"logits": IntFormat(8, False)}, TypeError, "logits must be a signed IntFormat, not"),
        ({"rounding": "up"}, ValueError, "rounding must be one of floor, half_up, half_even, half_away_from_zero"),
        ({"max_classes": 0}, ValueError, "max_classes must be an integer between 1 and 65536, not 0"),
    ],
)
def test_loss_unit_validation_messages(fields, error, message):
    with pytest.raises(error, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        LossArithmetic(**fields)


def test_loss_unit_refuses_bad_calls():
    unit = LossArithmetic(max_classes=4)
    with pytest.raises(ValueError, match=r"^logits must be a \(rows, classes\) matrix with 1 to max_classes 4 classes"):
        unit.cross_entropy(np.zeros((2, 5), dtype=np.int64), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^labels must be between 0 and 2, not 0\.\.3$"):
        unit.cross_entropy(np.zeros((2, 3), dtype=np.int64), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"^labels must be 2 integers, not shape \(3,\)"):
        unit.cross_entropy(np.zeros((2, 3), dtype=np.int64), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"^batch must be an integer between 2 and 65536, not 1$"):
        unit.cross_entropy(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]), batch=1)
    with pytest.raises(ValueError, match=r"^logits has values outside the int16 range"):
        unit.cross_entropy(np.full((1, 3), 1 << 15), np.array([0]))


# ------------------------------------------------------------------------------------------------------------
# SGD unit
# ------------------------------------------------------------------------------------------------------------
SGD_CASES = [
    ("int16", SGD(lr=0.1, momentum=0.9, weight_decay=1e-4)),
    ("int16", SGD(lr=0.01, momentum=0.0, weight_decay=0.0)),
    ("int8", SGD(lr=0.05, momentum=0.9, weight_decay=5e-4)),
]


@pytest.mark.parametrize(("preset", "optimizer"), SGD_CASES)
def test_sgd_unit_equals_float64_sgd_within_the_stated_bound(preset, optimizer):
    """Against golden.train.SGD (PyTorch's rule, float64) on the dequantized integers: per element
    |v - v*| <= 2**-(vf+1) + 2**-(cf+1) * (|v| + |w|) and |w - w*| <= 2**-(wf+1) + LR * bound_v
    + 2**-(cf+1) * |v*| (constants rounded to Q.cf, one rounding each; values kept clear of saturation)."""
    unit = INTEGER_PRESETS[preset].sgd_arithmetic(lr=optimizer.lr, momentum=optimizer.momentum,
                                                 weight_decay=optimizer.weight_decay)
    rng = np.random.default_rng(7)
    shape = (4000,)
    quarter = unit.weight.max // 4
    w, v, g = (rng.integers(-quarter, quarter, shape) for _ in range(3))
    v_real, w_real = v * 2.0**-unit.velocity_frac, w * 2.0**-unit.weight_frac
    g_real = g * 2.0**-unit.grad_frac
    expected_w, expected_v = optimizer.update(w_real, g_real, v_real)
    if not optimizer.momentum:  # PyTorch keeps no velocity; the unit's is the step g + wd*w
        expected_v = g_real + optimizer.weight_decay * w_real
    new_w, new_v = unit.update(w, v, g)
    half_constant = 2.0 ** -(unit.constant_frac + 1)
    bound_v = 2.0 ** -(unit.velocity_frac + 1) + half_constant * (np.abs(v_real) + np.abs(w_real))
    assert np.all(np.abs(new_v * 2.0**-unit.velocity_frac - expected_v) <= bound_v)
    bound_w = 2.0 ** -(unit.weight_frac + 1) + unit.real("lr") * bound_v + half_constant * np.abs(expected_v)
    assert np.all(np.abs(new_w * 2.0**-unit.weight_frac - expected_w) <= bound_w)
    assert np.count_nonzero(new_w != w) > len(w) // 10  # the update moved weights, it was not a no-op


def test_sgd_unit_first_step_from_zero_velocity_is_pytorch_first_step():
    optimizer = SGD(lr=0.125, momentum=0.5, weight_decay=0.25)  # exact on Q.20: no constant error
    unit = INTEGER_PRESETS["int16"].sgd_arithmetic(lr=0.125, momentum=0.5, weight_decay=0.25)
    w, g = np.array([4096, -8192, 100, 0]), np.array([4096, 1, -3, 0])  # Q.12
    new_w, new_v = unit.update(w, np.zeros(4, dtype=np.int64), g)
    expected_w, expected_v = optimizer.update(w / 4096, g / 4096, None)
    assert new_v.tolist() == [5120, -2047, 22, 0]  # g + w/4 = 1.25, -1.99976, (100/4 - 3) = 22
    assert np.array_equal(new_v, np.round(expected_v * 4096))
    # w - v/8: 4096 - 640; -8192 + 255.875 -> -7936 (half even of -7936.125); 100 - 2.75 -> 97; 0
    assert new_w.tolist() == [3456, -7936, 97, 0] and np.array_equal(new_w, np.round(expected_w * 4096))


def test_sgd_unit_saturates_velocity_and_weights():
    unit = SgdArithmetic.from_float(lr=1.0, momentum=1.0, weight_decay=0.0, weight=IntFormat(8), weight_frac=4,
                                    gradient=IntFormat(8), grad_frac=4, velocity=IntFormat(8), velocity_frac=4)
    new_w, new_v = unit.update(np.array([-128, 120]), np.array([127, -100]), np.array([127, -100]))
    assert new_v.tolist() == [127, -128] and new_w.tolist() == [-128, 127]


def test_sgd_constants_are_one_documented_quantization():
    assert SgdArithmetic.quantize_constant("lr", 0.1) == round(0.1 * 2**20) == 104858
    assert SgdArithmetic.quantize_constant("momentum", 0.9) == 943718
    assert SgdArithmetic.quantize_constant("weight_decay", 2.5 * 2**-20) == 2  # 2.5 -> 2: half to even
    unit = SgdArithmetic.from_float(lr=0.1, momentum=0.9, weight_decay=0.0)
    assert (unit.lr, unit.momentum, unit.weight_decay) == (104858, 943718, 0)
    assert unit.velocity_accumulator_width <= 62 and unit.weight_accumulator_width <= 62


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: SgdArithmetic.quantize_constant("lr", 16.0), ValueError,
         r"^lr must be at most 16 \(unsigned 24-bit Q\.20\), not 16\.0$"),
        (lambda: SgdArithmetic.quantize_constant("weight_decay", 1e-9), ValueError,
         r"^weight_decay must be at least 4\.76837e-07 \(it rounds to 0 on Q\.20\), not 1e-09$"),
        (lambda: SgdArithmetic.quantize_constant("momentum", -0.5), ValueError,
         r"^momentum must be a finite number >= 0, not -0\.5$"),
        (lambda: SgdArithmetic(lr=1 << 24), ValueError,
         r"^lr must be an integer between 0 and 16777215, not 16777216$"),
        (lambda: SgdArithmetic(velocity=IntFormat(40), velocity_frac=30, weight_frac=0), ValueError,
         r"^the velocity accumulator needs \d+ bits, more than 62: narrow the formats or the fractional bits$"),
        (lambda: SgdArithmetic(gradient="int16"), TypeError, r"^gradient must be a signed IntFormat, not 'int16'$"),
        (lambda: SgdArithmetic().update(np.zeros(3, dtype=np.int64), np.zeros(2, dtype=np.int64),
                                        np.zeros(3, dtype=np.int64)), ValueError,
         r"^weights, velocity and gradient must have one shape, not \(3,\), \(2,\), \(3,\)$"),
        (lambda: IntegerTraining(loss="cpu"), ValueError, r"^loss must be one of integer, host, not 'cpu'$"),
        (lambda: IntegerTraining(sgd=1), ValueError, r"^sgd must be one of integer, host, not 1$"),
    ],
)
def test_sgd_unit_validation_messages(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------------------------------------------------
# The golden integer step uses the units by default
# ------------------------------------------------------------------------------------------------------------
def _two_steps(net, schedule, numerics, batch=6):
    x, labels = data(net, batch)
    trainer = Trainer(net, schedule=schedule, numerics=numerics, optimizer=OPTIMIZER)
    first = trainer.step(init_params(net, seed=3), init_state(net), x, labels)
    x2, labels2 = data(net, batch, seed=1)
    return first, trainer.step(first.params, first.state, x2, labels2)


def test_integer_step_uses_the_on_chip_loss_and_sgd_by_default():
    net = load_network("tiny_resnet", norm="gn")
    numerics = IntegerTraining()
    assert (numerics.loss, numerics.sgd) == ("integer", "integer")
    first, second = _two_steps(net, None, numerics)
    unit = numerics.loss_arithmetic
    x, labels = data(net, 6)
    logits = first.activations["fc"]
    assert first.loss_q == unit.cross_entropy_loss(logits, labels)
    assert first.loss == first.loss_q * 2.0**-unit.loss_frac
    assert np.array_equal(first.input_grads["fc"], unit.cross_entropy_gradient(logits, labels))
    sgd = numerics.sgd_arithmetic(lr=OPTIMIZER.lr, momentum=OPTIMIZER.momentum, weight_decay=OPTIMIZER.weight_decay)
    start = numerics.quantize(init_params(net, seed=3)["fc"]["weight"], numerics.weight_frac)
    weights, velocity = sgd.update(start, np.zeros_like(start), first.grads["fc"]["weight"])
    assert np.array_equal(first.params["fc"]["weight"], weights)
    assert np.array_equal(first.state["velocity"]["fc.weight"], velocity)
    weights, velocity = sgd.update(weights, velocity, second.grads["fc"]["weight"])  # velocity carried
    assert np.array_equal(second.params["fc"]["weight"], weights)
    assert np.array_equal(second.state["velocity"]["fc.weight"], velocity)
    again = _two_steps(net, None, numerics)[1]
    assert_all_bits_equal(again, second)  # reproducible bit for bit


def test_host_loss_and_sgd_stay_selectable():
    net = load_network("tiny_resnet", norm="gn")
    host = IntegerTraining(loss="host", sgd="host")
    first = _two_steps(net, None, host)[0]
    assert first.loss_q is None
    x, labels = data(net, 6)
    logits = first.activations["fc"] * 2.0**-host.activation_frac
    losses, probabilities = L.softmax_cross_entropy(logits, labels)
    assert first.loss == pytest.approx(losses.mean(), abs=1e-12)
    expected = host.quantize(L.softmax_cross_entropy_backward(probabilities, labels, 6), host.grad_frac)
    assert np.array_equal(first.input_grads["fc"], expected)
    params = init_params(net, seed=3)
    weight = host.quantize(params["fc"]["weight"], host.weight_frac) * 2.0**-host.weight_frac
    grad = first.grads["fc"]["weight"] * 2.0**-host.weight_grad_frac
    expected_weight = host.quantize(OPTIMIZER.update(weight, grad, None)[0], host.weight_frac)
    assert np.array_equal(first.params["fc"]["weight"], expected_weight)


@pytest.mark.parametrize("numerics", INTEGER_MODES, ids=["int16_sat", "int8_wrap", "int8_sat_narrow"])
def test_two_integer_steps_with_on_chip_loss_and_sgd_are_bit_identical_under_every_schedule(numerics):
    net = load_network("tiny_resnet", norm="gn")
    baseline = _two_steps(net, None, numerics)
    assert baseline[0].loss_q is not None
    for schedule in [Schedule.baseline(net, 6, norm_fusion=True), *mbs_schedules(net, 6)]:
        for result, reference in zip(_two_steps(net, schedule, numerics), baseline):
            assert_all_bits_equal(result, reference)


# ------------------------------------------------------------------------------------------------------------
# Bit-exact against the documented formulas, re-written with Python integers (docs/golden.md)
# ------------------------------------------------------------------------------------------------------------
def _round_half_even(numerator: int, shift: int) -> int:
    quotient, remainder = divmod(numerator, 1 << shift)
    half = 1 << shift >> 1
    return quotient + (remainder > half or (remainder == half and quotient % 2 == 1))


def _documented_loss_row(z, y, batch, *, fa, fg, e_bits, b, lf, grad_range):
    """One row by the docs' table: chunked exp tables, exact sum, divide_round reciprocal, log by leading one
    and interpolation; round half to even where the mode rounds, half up in the tables' products."""
    cutoff = math.ceil((e_bits + 1) * math.log(2) * 2**fa)
    chunks = max(1, -(-(cutoff - 1).bit_length() // b))
    m = max(z)
    e = []
    for value in z:
        d = m - value
        if d >= cutoff:
            e.append(0)
            continue
        acc = None
        for i in range(chunks):
            c = (d >> (i * b)) & ((1 << b) - 1)
            entry = round(math.exp(-(c << (i * b)) / 2**fa) * 2**e_bits)
            acc = entry if acc is None else (acc * entry + (1 << (e_bits - 1))) >> e_bits
        e.append(acc)
    total = sum(e)
    r_frac = e_bits + fg + (1024 - 1).bit_length() + 4
    reciprocal = (2 * (1 << r_frac) + total * batch) // (2 * total * batch)  # half away from zero, positive
    gradient = [min(grad_range[1], max(grad_range[0],
                                       _round_half_even((ej - (j == y) * total) * reciprocal, r_frac - fg)))
                for j, ej in enumerate(e)]
    log_frac = lf + 4
    table = [round(math.log1p(i / 2**b) * 2**log_frac) for i in range(2**b + 1)]
    k = total.bit_length() - 1
    mantissa = total - (1 << k)
    index, rest = divmod(mantissa, 1 << (k - b))
    step = ((table[index + 1] - table[index]) * rest + (1 << (k - b) >> 1)) >> (k - b)
    log_total = (k - e_bits) * table[-1] + table[index] + step
    loss = _round_half_even(log_total + ((m - z[y]) << (log_frac - fa)), 4)
    return loss, gradient


@pytest.mark.parametrize("name", ["int16", "int8"])
def test_loss_unit_is_the_documented_formula_bit_for_bit(name):
    unit = LOSS_UNITS[name]
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        rows, classes = int(rng.integers(1, 6)), int(rng.integers(2, 12))
        logits = _random_logits(unit, rng, rows, classes)
        labels = rng.integers(0, classes, rows)
        batch = rows + int(rng.integers(0, 3))
        losses, gradient = unit.cross_entropy(logits, labels, batch=batch)
        for row in range(rows):
            loss, expected = _documented_loss_row(
                [int(v) for v in logits[row]], int(labels[row]), batch, fa=unit.logit_frac, fg=unit.grad_frac,
                e_bits=unit.exp_frac, b=unit.table_bits, lf=unit.loss_frac,
                grad_range=(unit.gradient.min, unit.gradient.max))
            assert losses[row] == loss and gradient[row].tolist() == expected, (seed, row)


def test_sgd_unit_is_the_documented_formula_bit_for_bit():
    unit = INTEGER_PRESETS["int8"].sgd_arithmetic(lr=0.05, momentum=0.9, weight_decay=5e-4)  # Q.6 w, Q.7 g/v
    rng = np.random.default_rng(3)
    w, v, g = (rng.integers(-128, 128, 500) for _ in range(3))
    new_w, new_v = unit.update(w, v, g)
    cf, vf, wf, gf = 20, 7, 6, 7
    big, small = max(vf, wf, gf), max(vf, wf)
    for index in range(500):
        wi, vi, gi = int(w[index]), int(v[index]), int(g[index])
        total = (unit.momentum * vi << (big - vf)) + (unit.weight_decay * wi << (big - wf)) + (gi << (cf + big - gf))
        velocity = min(127, max(-128, _round_half_even(total, cf + big - vf)))
        total = (wi << (cf + small - wf)) - (unit.lr * velocity << (small - vf))
        weight = min(127, max(-128, _round_half_even(total, cf + small - wf)))
        assert (new_w[index], new_v[index]) == (weight, velocity), index
