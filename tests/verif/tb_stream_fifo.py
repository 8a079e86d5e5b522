"""cocotb testbench for the harness self-test design (tests/verif/stream_fifo_design.py)."""

import cocotb

from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import DEFAULT_LATENCY, StreamDriver, StreamSink, reset, start_clock
from wavecore.verif.waits import WaitTimeout, cycle_limit, stalled


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


@cocotb.test()
async def silent_source_fails_within_the_limit(dut):
    """A sink whose source never sends: its bounded wait ends after exactly the derived limit, naming the stream
    and how many payloads arrived."""
    start_clock(dut)
    dut.i__valid.value = 0
    sink = StreamSink(dut, "o", dut.clk, backpressure_probability=0.5, rng=rng("stream_fifo"))
    await reset(dut)
    limit = cycle_limit(stalled(4, 0.5), latency=DEFAULT_LATENCY)
    start = sink.cycle
    try:
        await sink.receive_many(4)
    except WaitTimeout as timeout:
        assert str(timeout) == f"stream o: 4 payloads: not reached within {limit} cycles (0 arrived)", timeout
    else:
        raise AssertionError("receive_many returned without a source")
    assert sink.cycle - start == limit, f"gave up after {sink.cycle - start} cycles, limit {limit}"


@cocotb.test()
async def stuck_sink_fails_within_the_limit(dut):
    """A driver whose sink never takes: the FIFO fills to its depth, then holds ``i.ready`` low; the driver's
    bounded wait ends with the count accepted."""
    start_clock(dut)
    dut.o__ready.value = 0
    driver = StreamDriver(dut, "i", dut.clk)
    await reset(dut)
    driver.extend(range(40))
    try:
        await driver.wait_idle(cycles=200)
    except WaitTimeout as timeout:
        message = str(timeout)
        assert message.startswith("stream i: every queued payload accepted: not reached within 200 cycles ("), message
        assert message.endswith(" of 40 accepted, ready held low)") and driver.sent < 40, message
    else:
        raise AssertionError("wait_idle returned though o never accepts")
