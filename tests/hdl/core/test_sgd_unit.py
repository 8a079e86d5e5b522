"""The SGD unit (hdl/core/sgd_unit.py) against the instruction-level simulator, in amaranth.sim."""

from __future__ import annotations

import numpy as np
import pytest

from wavecore.golden.core import isa
from wavecore.golden.core.compiler import sgd_constants
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import IntegerTraining
from wavecore.golden.train import SGD
from wavecore.hdl.core.sgd_unit import SgdUnit, unit_cycles
from wavecore.verif.compute_bench import check_unit, idle_outputs, numerics_for

#: tests/golden/core/core_cases.py OPTIMIZER (what the core tests train with), a plain SGD, and a large step.
OPTIMIZERS = {
    "core_cases": SGD(lr=0.1, momentum=0.9, weight_decay=1e-4),
    "plain": SGD(lr=0.01, momentum=0.0, weight_decay=0.0),
    "large": SGD(lr=1.5, momentum=0.99, weight_decay=0.05),
}
WIDTHS = {"int8": dict(in_width=8, acc_width=32), "int16": dict(in_width=16, acc_width=48)}
CONSTANTS_AT = 5  # accumulator address of lr, momentum, weight decay (unaligned)


@pytest.fixture(params=[1, 2, 3], ids=lambda latency: f"latency{latency}")
def read_latency(request):
    """Every test that runs the unit runs it at each read latency."""
    return request.param


def _parameters(kind: str) -> CoreParameters:
    return CoreParameters(scratchpad_elements=512, accumulator_elements=16, **WIDTHS[kind])


def _run(kind, constants, shape, read_latency, *, rng, extreme_fraction=0.1, addresses=(3, 131, 260),
         instructions=None, data=None, numerics=None):
    parameters = _parameters(kind)
    numerics = numerics_for(parameters) if numerics is None else numerics
    fmt = numerics.operand
    scratchpad = fmt.random(rng, parameters.scratchpad_elements, extreme_fraction) if data is None else data
    accumulator = rng.integers(-1000, 1000, parameters.accumulator_elements)
    accumulator[CONSTANTS_AT : CONSTANTS_AT + 3] = constants
    w, v, g = addresses
    if instructions is None:
        instructions = [isa.Instruction("SHAPE", fields=shape),
                        isa.Instruction("SGD", "momentum", dict(dst=CONSTANTS_AT, src0=w, src1=v, src2=g))]
    cycles = check_unit(SgdUnit(parameters, numerics, read_latency=read_latency), parameters, numerics, instructions,
                        scratchpad, accumulator)
    current, expected = Shape(), []
    for instruction in instructions:
        if instruction.opcode == "SHAPE":
            current = Shape(instruction.fields)
        else:
            expected.append(unit_cycles(instruction, current, parameters, read_latency=read_latency))
    assert cycles == expected
    return cycles


@pytest.mark.parametrize("kind", WIDTHS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_constants(kind, optimizer, read_latency):
    """Constants as the compiler writes them (compiler.sgd_constants) on random data with extremes."""
    numerics = numerics_for(_parameters(kind))
    constants = sgd_constants(numerics, OPTIMIZERS[optimizer])
    rng = np.random.default_rng([7, len(kind), len(optimizer)])
    _run(kind, constants, dict(samples=2, channels=3, height=1, width=5), read_latency, rng=rng)


@pytest.mark.parametrize("kind", WIDTHS)
def test_saturation(kind, read_latency):
    """The largest constants on extreme data: both v' and w' saturate at both ends."""
    parameters = _parameters(kind)
    fmt = numerics_for(parameters).operand
    rng = np.random.default_rng(11)
    largest = (1 << 24) - 1
    data = rng.choice(np.array([fmt.min, fmt.max, fmt.min + 1, fmt.max - 1, 0, -1, 1]),
                      parameters.scratchpad_elements)
    shape = dict(samples=1, channels=1, height=3, width=7)
    _run(kind, (largest, largest, largest), shape, read_latency, rng=rng, data=data)
    _run(kind, (largest, 0, 1), shape, read_latency, rng=rng, data=data)


@pytest.mark.parametrize("kind", WIDTHS)
def test_rounding_ties(kind, read_latency):
    """Small values and constants with few bits set: many exact ties of the two roundings."""
    parameters = _parameters(kind)
    rng = np.random.default_rng(12)
    data = rng.integers(-4, 5, parameters.scratchpad_elements)
    _run(kind, (1 << 19, 1 << 19, 3 << 18), dict(samples=1, channels=2, height=2, width=4), read_latency, rng=rng,
         data=data)


def test_sequence_and_one_element(read_latency):
    """Two instructions in a row (the state resets), one of them a single element at the last addresses:
    2 * elements + 6 + L cycles."""
    rng = np.random.default_rng(13)
    parameters = _parameters("int8")
    constants = sgd_constants(numerics_for(parameters), OPTIMIZERS["core_cases"])
    instructions = [isa.Instruction("SHAPE", fields=dict(samples=3, channels=1, height=1, width=3)),
                    isa.Instruction("SGD", "momentum", dict(dst=CONSTANTS_AT, src0=0, src1=9, src2=18)),
                    isa.Instruction("SHAPE", fields=dict(samples=1, channels=1, height=1, width=1)),
                    isa.Instruction("SGD", "momentum", dict(dst=CONSTANTS_AT, src0=509, src1=510, src2=511))]
    cycles = _run("int8", constants, None, read_latency, rng=rng, instructions=instructions)
    assert cycles == {1: [2 * 9 + 7, 2 * 1 + 7], 2: [2 * 9 + 8, 2 * 1 + 8], 3: [2 * 9 + 9, 2 * 1 + 9]}[read_latency]


@pytest.mark.parametrize("elements", [1, 2, 5])
def test_steps_read_the_steps_before(elements, read_latency):
    """Three updates of the same weights and velocity in a row (training steps): each reads the w and v the one
    before wrote, the last w' in the cycle of that one's done (a read sees every write of an earlier cycle)."""
    rng = np.random.default_rng([15, elements])
    parameters = _parameters("int16")
    constants = sgd_constants(numerics_for(parameters), OPTIMIZERS["large"])
    step = isa.Instruction("SGD", "momentum", dict(dst=CONSTANTS_AT, src0=40, src1=20, src2=60))
    instructions = [isa.Instruction("SHAPE", fields=dict(samples=1, channels=1, height=1, width=elements)),
                    step, step, step]
    _run("int16", constants, None, read_latency, rng=rng, instructions=instructions)


def test_in_width_12(read_latency):
    """Operands narrower than their 16-bit element (int16 preset at in_width 12)."""
    parameters = CoreParameters(scratchpad_elements=256, accumulator_elements=16, in_width=12, acc_width=32)
    numerics = numerics_for(parameters)
    rng = np.random.default_rng(14)
    scratchpad = numerics.operand.random(rng, 256)
    accumulator = np.zeros(16, dtype=np.int64)
    accumulator[:3] = sgd_constants(numerics, OPTIMIZERS["large"])
    shape = dict(samples=1, channels=5, height=1, width=5)
    instructions = [isa.Instruction("SHAPE", fields=shape),
                    isa.Instruction("SGD", "momentum", dict(dst=0, src0=1, src1=30, src2=60))]
    cycles = check_unit(SgdUnit(parameters, numerics, read_latency=read_latency), parameters, numerics,
                        instructions, scratchpad, accumulator)
    expected = {1: [57], 2: [58], 3: [59]}[read_latency]  # 2 * 25 + 6 + L
    assert cycles == [unit_cycles(instructions[1], Shape(shape), parameters, read_latency=read_latency)] == expected


def test_validation():
    parameters = CoreParameters(in_width=8, acc_width=32)
    with pytest.raises(ValueError, match="does not fit a 8-bit scratchpad element"):
        SgdUnit(parameters, numerics_for(CoreParameters(in_width=16, acc_width=48)))
    with pytest.raises(ValueError, match="on-chip SGD"):
        SgdUnit(parameters, IntegerTraining(sgd="host"))
    with pytest.raises(TypeError, match="numerics must be an IntegerTraining"):
        SgdUnit(parameters, None)
    with pytest.raises(ValueError, match="read_latency must be 1, 2 or 3"):
        SgdUnit(parameters, numerics_for(parameters), read_latency=0)


def test_idle_ports_low(read_latency):
    """Without start every enable and done stay low (the core ORs the units' ports)."""
    parameters = _parameters("int16")
    assert idle_outputs(SgdUnit(parameters, numerics_for(parameters), read_latency=read_latency)) == []


@pytest.mark.parametrize(("kind", "weight_frac", "weight_grad_frac"), [("int8", 7, 4), ("int16", 13, 9)])
def test_weights_on_a_finer_grid_than_the_velocity(kind, weight_frac, weight_grad_frac, read_latency):
    """The presets store the velocity on a grid at least as fine as the weights'; an integer mode may choose the
    weights finer (any IntegerTraining): the weight update then aligns lr*v' up to the weight grid, a shift the
    presets never exercise."""
    import dataclasses

    numerics = dataclasses.replace(numerics_for(_parameters(kind)), weight_frac=weight_frac,
                                   weight_grad_frac=weight_grad_frac)
    constants = sgd_constants(numerics, OPTIMIZERS["core_cases"])
    rng = np.random.default_rng([11, weight_frac, weight_grad_frac])
    _run(kind, constants, dict(samples=2, channels=3, height=2, width=5), read_latency, rng=rng,
         numerics=numerics)

