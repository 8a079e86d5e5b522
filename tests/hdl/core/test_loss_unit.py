"""The loss unit (hdl/core/loss_unit.py) against the instruction-level simulator, in amaranth.sim."""

from __future__ import annotations

import numpy as np
import pytest

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import IntegerTraining
from wavecore.hdl.core.loss_unit import LossUnit, divide_cycles, mean_bits, unit_cycles
from wavecore.verif.compute_bench import check_unit, idle_outputs, numerics_for

WIDTHS = {"int8": dict(in_width=8, acc_width=32), "int16": dict(in_width=16, acc_width=48)}
LOGITS, GRADIENT, LOSSES = 5, 700, 3  # addresses (unaligned); GRADIENT past every logit range; labels at the end


@pytest.fixture(params=[1, 2, 3], ids=lambda latency: f"latency{latency}")
def read_latency(request):
    """Every test that runs the unit runs it at each read latency."""
    return request.param


def _parameters(kind: str, scratchpad: int = 1024, accumulator: int = 32) -> CoreParameters:
    return CoreParameters(scratchpad_elements=scratchpad, accumulator_elements=accumulator, **WIDTHS[kind])


def _check(parameters, instructions, scratchpad, accumulator, read_latency):
    """check_unit, and the measured cycles equal unit_cycles."""
    numerics = numerics_for(parameters)
    cycles = check_unit(LossUnit(parameters, numerics, read_latency=read_latency), parameters, numerics,
                        instructions, scratchpad, accumulator)
    shape, expected = Shape(), []
    for instruction in instructions:
        if instruction.opcode == "SHAPE":
            shape = Shape(instruction.fields)
        else:
            expected.append(unit_cycles(instruction, shape, parameters, read_latency=read_latency))
    assert cycles == expected
    return cycles


def _cross_entropy(kind, samples, classes, logits, labels, read_latency, *, batch=None, dst=GRADIENT,
                   parameters=None):
    parameters = parameters or _parameters(kind)
    rng = np.random.default_rng([samples, classes])
    fmt = numerics_for(parameters).operand
    scratchpad = fmt.random(rng, parameters.scratchpad_elements)
    scratchpad[LOGITS : LOGITS + samples * classes] = np.ravel(logits)
    labels_at = parameters.scratchpad_elements - 11
    scratchpad[labels_at : labels_at + samples] = labels
    accumulator = rng.integers(-1000, 1000, parameters.accumulator_elements)
    instructions = [isa.Instruction("SHAPE", fields=dict(samples=samples, channels=classes)),
                    isa.Instruction("LOSS", "cross_entropy", dict(dst=dst, src0=LOGITS, src1=labels_at, src2=LOSSES,
                                                                 imm=samples if batch is None else batch))]
    return _check(parameters, instructions, scratchpad, accumulator, read_latency)


def _labels(rng, samples, classes):
    """Random labels with the edges 0 and classes - 1 among them."""
    labels = rng.integers(0, classes, samples)
    labels[0] = classes - 1
    if samples > 1:
        labels[-1] = 0
    return labels


@pytest.mark.parametrize("kind", WIDTHS)
@pytest.mark.parametrize(("samples", "classes"), [(1, 10), (2, 10), (8, 10), (3, 7), (5, 13), (4, 1), (7, 2),
                                                  (6, 3)])
def test_cross_entropy_random(kind, samples, classes, read_latency):
    """Random logits (with the format's extremes among them) over class counts 1..13 and batches 1..8."""
    rng = np.random.default_rng([samples, classes, len(kind)])
    fmt = numerics_for(_parameters(kind)).operand
    logits = fmt.random(rng, (samples, classes), extreme_fraction=0.05)
    _cross_entropy(kind, samples, classes, logits, _labels(rng, samples, classes), read_latency)


@pytest.mark.parametrize("kind", WIDTHS)
def test_cross_entropy_narrow_logits(kind, read_latency):
    """Logits within a few units of each other: every exponential is inside the tables (no cutoff)."""
    rng = np.random.default_rng(3)
    logits = rng.integers(-40, 40, (4, 10))
    _cross_entropy(kind, 4, 10, logits, _labels(rng, 4, 10), read_latency)


@pytest.mark.parametrize("kind", WIDTHS)
def test_cross_entropy_extremes(kind, read_latency):
    """Equal logits (S = C * 2**exp_frac), saturated logits at both ends (one class dominates: every other
    exponential is cut off, the int8 gradient saturates at +1), and the label on either side of the max."""
    fmt = numerics_for(_parameters(kind)).operand
    lo, hi = fmt.min, fmt.max
    logits = np.array([[hi] * 9,
                       [lo] * 9,
                       [0] * 9,
                       [lo] * 8 + [hi],
                       [hi] + [lo] * 8,
                       [lo, hi, lo, hi, lo, hi, lo, hi, lo],
                       [hi - 1, hi, hi - 2, lo, lo + 1, 0, -1, 1, hi]])
    labels = np.array([0, 8, 4, 0, 0, 1, 8])
    _cross_entropy(kind, 7, 9, logits, labels, read_latency)


def test_int16_corners(read_latency):
    """int16 rows where a shortcut would differ from the simulator: differences at and just past exp_cutoff
    (3727; the chained table product is still 1 for d up to 3761: 63 of them change the loss), and a row (found
    by a seeded search) where the reciprocal's rounding (divide_round, not floor) changes a gradient, imm = 6."""
    cutoff = numerics_for(_parameters("int16")).loss_arithmetic.exp_cutoff
    near = [0, -cutoff, -cutoff - 3, -cutoff - 34, -cutoff - 35, -cutoff + 1, -cutoff - 1000, -cutoff + 2, -5, 0]
    found = [-141, -345, 566, -791, 724, 199, 147, 127, 553, 316]
    _cross_entropy("int16", 2, 10, np.array([near, found]) + 1000, [1, 6], read_latency, batch=6)
    many_near = [0] + [-cutoff - k % 35 for k in range(63)]  # 63 exponentials of 1 just past the cutoff
    _cross_entropy("int16", 1, 64, np.array([many_near]) + 1000, [3], read_latency)


@pytest.mark.parametrize("kind", WIDTHS)
def test_sub_batch_imm(kind, read_latency):
    """imm = the mini-batch (as the compiler emits it) larger than the rows of this instruction."""
    rng = np.random.default_rng(4)
    fmt = numerics_for(_parameters(kind)).operand
    _cross_entropy(kind, 2, 10, fmt.random(rng, (2, 10)), [3, 9], read_latency, batch=8)
    _cross_entropy(kind, 3, 5, fmt.random(rng, (3, 5)), [0, 4, 2], read_latency, batch=65535)


def test_in_place(read_latency):
    """dlogits over the logits (dst = src0): G writes a row while F reads the next ones."""
    rng = np.random.default_rng(5)
    fmt = numerics_for(_parameters("int16")).operand
    _cross_entropy("int16", 3, 6, fmt.random(rng, (3, 6)), [5, 0, 2], read_latency, dst=LOGITS)


@pytest.mark.parametrize("classes", [1, 2, 4])
def test_reads_after_writes(classes, read_latency):
    """In-place cross_entropy three times over the same rows: each instruction reads the gradients the one
    before wrote, its last one in the cycle of its done (a read must see every write of an earlier cycle), and
    the last row of each is read by F while G writes the row before it."""
    parameters = _parameters("int8", scratchpad=64)
    rng = np.random.default_rng([11, classes])
    fmt = numerics_for(parameters).operand
    scratchpad = fmt.random(rng, 64)
    scratchpad[LOGITS : LOGITS + 3 * classes] = fmt.random(rng, 3 * classes, extreme_fraction=0.2)
    scratchpad[50:53] = _labels(rng, 3, classes)
    step = isa.Instruction("LOSS", "cross_entropy", dict(dst=LOGITS, src0=LOGITS, src1=50, src2=1, imm=3))
    instructions = [isa.Instruction("SHAPE", fields=dict(samples=3, channels=classes)), step, step, step]
    _check(parameters, instructions, scratchpad, np.zeros(32, dtype=np.int64), read_latency)


def test_many_classes(read_latency):
    """1024 equal logits (max_classes: the largest sum and its full normalisation) and 1000 random ones."""
    parameters = _parameters("int16", scratchpad=4096)
    _cross_entropy("int16", 1, 1024, np.full((1, 1024), 77), [1023], read_latency, dst=2048,
                   parameters=parameters)
    rng = np.random.default_rng(6)
    logits = rng.integers(-300, 300, (2, 1000))
    _cross_entropy("int16", 2, 1000, logits, [999, 0], read_latency, dst=2048, parameters=parameters)


def test_in_width_12(read_latency):
    """Logits and gradients narrower than their 16-bit element (int16 preset at in_width 12)."""
    parameters = CoreParameters(scratchpad_elements=256, accumulator_elements=16, in_width=12, acc_width=32)
    rng = np.random.default_rng(7)
    logits = numerics_for(parameters).operand.random(rng, (3, 10))
    _cross_entropy("int16", 3, 10, logits, [9, 0, 4], read_latency, dst=100, parameters=parameters)


def _mean(kind, losses, read_latency, *, dst=0, src0=LOSSES, accumulator_elements=32):
    parameters = _parameters(kind, scratchpad=64, accumulator=accumulator_elements)
    rng = np.random.default_rng(len(losses))
    accumulator = rng.integers(-1000, 1000, accumulator_elements)
    accumulator[src0 : src0 + len(losses)] = losses
    instructions = [isa.Instruction("SHAPE", fields=dict(samples=len(losses), channels=1)),
                    isa.Instruction("LOSS", "mean", dict(dst=dst, src0=src0))]
    return _check(parameters, instructions, np.zeros(64, dtype=np.int64), accumulator, read_latency)


@pytest.mark.parametrize("kind", WIDTHS)
def test_mean(kind, read_latency):
    """Random losses of the full 32-bit format, ties of the rounding (half away from zero) at both signs."""
    rng = np.random.default_rng(8)
    low, high = -(1 << 31), (1 << 31) - 1
    _mean(kind, rng.integers(low, high, 8, endpoint=True), read_latency, dst=1)
    _mean(kind, [12345], read_latency)
    _mean(kind, [3, 4], read_latency, dst=31)
    _mean(kind, [-3, -4], read_latency)
    _mean(kind, [high] * 5, read_latency)
    _mean(kind, [low] * 7, read_latency)
    _mean(kind, rng.integers(0, 1 << 20, 6), read_latency)


def test_mean_many_samples(read_latency):
    """The largest N (4095, the samples field's limit) of extreme losses; N + mean_bits + 4 + L cycles
    (L = read_latency + 1: to the unit's arrival registers)."""
    rng = np.random.default_rng(9)
    losses = rng.choice(np.array([-(1 << 31), (1 << 31) - 1, 1, -1]), 4095)
    assert mean_bits(numerics_for(_parameters("int8"))) == 44
    cycles = _mean("int8", losses, read_latency, src0=1, accumulator_elements=4096)
    assert cycles == {1: [4095 + 44 + 6], 2: [4095 + 44 + 7], 3: [4095 + 44 + 8]}[read_latency]


def test_program_sequence(read_latency):
    """The compiler's pair (tiny_resnet program.lst): cross_entropy with imm = batch, then mean of its losses,
    on the same unit (the state resets between instructions)."""
    parameters = _parameters("int8")
    rng = np.random.default_rng(10)
    fmt = numerics_for(parameters).operand
    scratchpad = fmt.random(rng, parameters.scratchpad_elements)
    scratchpad[LOGITS : LOGITS + 80] = fmt.random(rng, 80)
    scratchpad[200:208] = _labels(rng, 8, 10)
    instructions = [isa.Instruction("SHAPE", fields=dict(samples=8, channels=10)),
                    isa.Instruction("LOSS", "cross_entropy", dict(dst=300, src0=LOGITS, src1=200, src2=4, imm=8)),
                    isa.Instruction("SHAPE", fields=dict(samples=8, channels=1)),
                    isa.Instruction("LOSS", "mean", dict(dst=3, src0=4))]
    cycles = _check(parameters, instructions, scratchpad, np.zeros(32, dtype=np.int64), read_latency)
    assert divide_cycles(numerics_for(parameters)) == 23
    # 3 C + Q + 14 + 2 L + (N - 1) max(2 C + 4 + L, Q + 2) and N + mean_bits + 4 + L, C = 10, N = 8, Q = 23,
    # L = read_latency + 1
    assert cycles == {1: [3 * 10 + 23 + 18 + 7 * 26, 8 + 44 + 6],  # F 26 cycles a row (D 25)
                      2: [3 * 10 + 23 + 20 + 7 * 27, 8 + 44 + 7],  # F 27 cycles a row
                      3: [3 * 10 + 23 + 22 + 7 * 28, 8 + 44 + 8]}[read_latency]


def test_validation():
    parameters = CoreParameters(in_width=8, acc_width=32)
    with pytest.raises(ValueError, match="does not fit a 8-bit scratchpad element"):
        LossUnit(parameters, numerics_for(CoreParameters(in_width=16, acc_width=48)))
    with pytest.raises(ValueError, match="on-chip loss"):
        LossUnit(parameters, IntegerTraining(loss="host"))
    with pytest.raises(TypeError, match="parameters must be a CoreParameters"):
        LossUnit(None, numerics_for(parameters))
    with pytest.raises(ValueError, match="read_latency must be 1, 2 or 3"):
        LossUnit(parameters, numerics_for(parameters), read_latency=4)


def test_idle_ports_low(read_latency):
    """Without start every enable and done stay low (the core ORs the units' ports)."""
    parameters = _parameters("int8")
    assert idle_outputs(LossUnit(parameters, numerics_for(parameters), read_latency=read_latency)) == []
