"""cocotb testbench for hdl/memory/writer.py: passes of result rows written, accumulated or requantized.

Each pass streams ``depth`` random accumulator rows (full range, so ``wrap``/``saturate`` both trigger) on
``c`` under random valid gaps, with ``accumulate`` set for that pass; afterwards the whole bank is read
back under random backpressure. The model is the golden arithmetic: ``MacArithmetic.add`` applied pass by
pass in order, or ``wavecore.golden.numerics.requantize`` of the last pass.
"""

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from wavecore.golden.numerics import IntFormat, MacArithmetic, requantize
from wavecore.verif.packing import pack, unpack
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import DEFAULT_LATENCY, StreamDriver, StreamSink, reset, start_clock
from wavecore.verif.waits import cycle_limit, wait_for


async def _wait_writer_idle(dut):
    """The writer drains its last row within its read-modify-write pipeline (a few cycles)."""
    await RisingEdge(dut.clk)
    await wait_for(lambda: int(dut.idle.value), clock=dut.clk, cycles=cycle_limit(0, latency=DEFAULT_LATENCY),
                   settle=True, what="writer idle after the last row")
    await RisingEdge(dut.clk)


def _requantize_inputs(random, shape, shift, out, accumulator):
    """Values whose quotient lands in and just outside ``out`` and whose remainders hit the ties."""
    quotient = random.integers(out.min - 2, out.max + 3, size=shape, dtype=np.int64)
    if shift <= 0:
        return accumulator.saturate(quotient >> -shift if shift else quotient)
    half = 1 << (shift - 1)
    choices = np.array([0, half, half - 1, half + 1, (1 << shift) - 1], dtype=np.int64) % (1 << shift)
    remainder = np.where(random.random(shape) < 0.5, random.choice(choices, size=shape),
                         random.integers(0, 1 << shift, size=shape, dtype=np.int64))
    values = accumulator.saturate((quotient << shift) + remainder)
    # A few full-range values for deep saturation.
    wild = random.random(shape) < 0.1
    return np.where(wild, random.integers(accumulator.min, accumulator.max + 1, size=shape), values)


@cocotb.test()
async def passes_then_readback(dut):
    p = tb_params()
    cols, depth, acc_width, is_signed = p["cols"], p["depth"], p["acc_width"], p["signed"]
    random = rng("writer")
    arithmetic = MacArithmetic(in_width=2, acc_width=acc_width, signed=is_signed, overflow=p["overflow"])
    accumulator = arithmetic.accumulator
    start_clock(dut)
    rows_in = StreamDriver(dut, "c", dut.clk, idle_probability=p["idle"], rng=random)
    requests = StreamDriver(dut, "read_address", dut.clk, idle_probability=p["idle"], rng=random)
    responses = StreamSink(dut, "read_data", dut.clk, backpressure_probability=p["backpressure"], rng=random)
    if not p["requantize"]:
        dut.accumulate.value = 0
    await reset(dut)

    expected = np.zeros((depth, cols), dtype=np.int64)
    for accumulate in p["passes"]:
        rows = random.integers(accumulator.min, accumulator.max + 1, size=(depth, cols), dtype=np.int64)
        if p["requantize"]:
            rows = _requantize_inputs(random, rows.shape, p["shift"], IntFormat(p["out_width"], is_signed),
                                      accumulator)
            expected = requantize(rows, p["shift"], IntFormat(p["out_width"], is_signed), p["rounding"])
        else:
            dut.accumulate.value = int(accumulate)
            expected = arithmetic.add(expected, rows) if accumulate else rows
        await rows_in.send(pack(row, acc_width) for row in rows)
        await _wait_writer_idle(dut)

    width = p["out_width"] if p["requantize"] else acc_width
    order = random.permutation(depth)
    requests.extend(int(address) for address in order)
    words = await responses.receive_many(depth)
    got = np.array([unpack(word, width, cols, is_signed) for word in words])
    assert np.array_equal(got, expected[order]), f"bank mismatch:\n{got}\nexpected\n{expected[order]}"
