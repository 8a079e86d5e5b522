"""SerialMultiplier (hdl/core/serial_multiplier.py) in amaranth.sim: signed products of random, extreme and zero
operands at every digit count against Python's integers, back to back; done exactly cycles() after start."""

import random

import pytest
from amaranth.sim import Simulator

from wavecore.hdl.core.serial_multiplier import SerialMultiplier, cycles


def _run(unit, cases):
    """``cases``: (a, b, a_digits, b_digits); returns [(product, cycles to done)]."""
    results = []

    async def bench(ctx):
        for a, b, a_digits, b_digits in cases:
            ctx.set(unit.a, a)
            ctx.set(unit.b, b)
            ctx.set(unit.a_digits, a_digits)
            ctx.set(unit.b_digits, b_digits)
            ctx.set(unit.start, 1)
            await ctx.tick()
            ctx.set(unit.start, 0)
            ctx.set(unit.a, 0)  # read in the start cycle only
            ctx.set(unit.b, 0)
            count, limit = 1, 2 * cycles(a_digits, b_digits)
            while not ctx.get(unit.done):
                assert count < limit, f"no done within {limit} cycles of start ({a} * {b}, {a_digits}x{b_digits})"
                await ctx.tick()
                count += 1
            results.append((ctx.get(unit.product), count))

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return results


@pytest.mark.parametrize(("a_width", "b_width", "digit"), [(96, 94, 17), (31, 45, 17), (39, 39, 17), (8, 20, 5)])
def test_products_match_python(a_width, b_width, digit):
    unit = SerialMultiplier(a_width=a_width, b_width=b_width, digit=digit)
    rng = random.Random(a_width * 1000 + b_width)
    cases = []
    for a_digits in range(1, unit.a_max + 1):
        for b_digits in range(1, unit.b_max + 1):
            a_bits, b_bits = min(a_width - 1, a_digits * digit), min(b_width - 1, b_digits * digit)
            random_pair = (rng.randrange(-(1 << a_bits) + 1, 1 << a_bits),
                           rng.randrange(-(1 << b_bits) + 1, 1 << b_bits))
            for a, b in (random_pair, ((1 << a_bits) - 1, -(1 << b_bits) + 1), (0, (1 << b_bits) - 1), (-1, -1)):
                cases.append((a, b, a_digits, b_digits))
    if unit.a_max * digit >= a_width and unit.b_max * digit >= b_width:  # the most negative operands
        cases.append((-(1 << (a_width - 1)), -(1 << (b_width - 1)), unit.a_max, unit.b_max))
    for (a, b, a_digits, b_digits), (product, count) in zip(cases, _run(unit, cases), strict=True):
        assert product == a * b, (a, b, a_digits, b_digits)
        assert count == cycles(a_digits, b_digits)


def test_cycles_formula():
    """cycles = a_digits * b_digits + 6: operands, one digit product per cycle, digits' register, product
    register, last accumulation, the sign's two halves."""
    assert (cycles(1, 1), cycles(2, 3), cycles(6, 6)) == (7, 12, 42)


def test_parameters_validated():
    with pytest.raises(ValueError, match="digit"):
        SerialMultiplier(a_width=8, b_width=8, digit=18)
    with pytest.raises(ValueError, match="a_width"):
        SerialMultiplier(a_width=1, b_width=8)
