"""hdl/norm/common.py: requantize_value, exhaustively on small widths against wavecore.golden.numerics.requantize
(every rounding mode, signed and unsigned outputs narrower and wider than the input, left shifts, shifts at and
past the input's width)."""

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

from wavecore.golden.numerics import ROUNDING_MODES, IntFormat, requantize
from wavecore.hdl.norm.common import requantize_value

INPUT_WIDTH = 7
FORMATS = [IntFormat(1), IntFormat(2), IntFormat(4), IntFormat(9), IntFormat(1, signed=False),
           IntFormat(3, signed=False), IntFormat(8, signed=False)]


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("shift", [-2, 0, 1, 2, 4, INPUT_WIDTH - 1, INPUT_WIDTH, INPUT_WIDTH + 3])
def test_requantize_value_equals_the_golden_requantize_on_every_input(shift, rounding):
    values = np.arange(-(1 << (INPUT_WIDTH - 1)), 1 << (INPUT_WIDTH - 1))
    value = Signal(signed(INPUT_WIDTH))
    m = Module()
    outputs = []
    for index, out in enumerate(FORMATS):
        output = Signal(signed(out.width + 2), name=f"out{index}")
        m.d.comb += output.eq(requantize_value(value, shift, out, rounding))
        outputs.append(output)
    got = {index: [] for index in range(len(FORMATS))}

    async def testbench(ctx):
        for v in values:
            ctx.set(value, int(v))
            for index, output in enumerate(outputs):
                got[index].append(ctx.get(output))

    simulator = Simulator(m)
    simulator.add_testbench(testbench)
    simulator.run()
    for index, out in enumerate(FORMATS):
        expected = requantize(values, shift, out, rounding)
        wrong = [(int(v), int(e), g) for v, e, g in zip(values, expected, got[index]) if e != g]
        assert not wrong, f"{out} shift {shift} {rounding}: (input, expected, got) {wrong[:4]}"
