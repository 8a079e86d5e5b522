"""cocotb testbench for the harness self-test design (tests/verif/stream_fifo_design.py)."""

import cocotb

from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamDriver, StreamSink, reset, start_clock


@cocotb.test()
async def affine_under_stalls(dut):
    params = tb_params()
    random = rng("stream_fifo")
    width = params["width"]
    count = params["count"]
    start_clock(dut)
    driver = StreamDriver(dut, "i", dut.clk, idle_probability=params["idle"], rng=random)
    sink = StreamSink(dut, "o", dut.clk, backpressure_probability=params["backpressure"], rng=random)
    await reset(dut)
    values = random.integers(0, 1 << width, size=count)
    driver.extend(values)
    received = await sink.receive_many(count, timeout_cycles=50 * count)
    expected = [(3 * int(value) + 1) % (1 << width) for value in values]
    if received != expected:
        first = next(i for i, (got, want) in enumerate(zip(received, expected)) if got != want)
        raise AssertionError(f"first mismatch at payload {first}: got {received[first]}, expected {expected[first]}")


@cocotb.test()
async def deliberately_wrong(dut):
    """Used by the harness test to check how failures are reported; never run in a regression."""
    start_clock(dut)
    await reset(dut)
    assert False, "this testcase fails on purpose"
