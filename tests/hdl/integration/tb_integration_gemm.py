"""cocotb testbench for test_integration_gemm.py: a conv weight gradient over sub-batches.

Each sub-batch's GEMM ``dW_s = dY_s @ cols_s^T`` is streamed into the output-stationary array (beats from
``wavecore.verif.gemm.GemmSchedule``) back to back, the writer accumulating the result rows; then the bank is read
back. Expected: ``MacArithmetic.add`` of the per-sub-batch ``MacArithmetic.matmul`` in order (and, when no
overflow can occur, the full-batch ``wavecore.golden.layers.conv2d_backward`` weight gradient). Array utilization
= operand beats accepted / cycles from the first beat to the last result row written.
"""

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from wavecore.golden.layers import conv2d_as_gemm, conv2d_backward
from wavecore.golden.numerics import MacArithmetic
from wavecore.verif.gemm import ArraySpec, GemmSchedule
from wavecore.verif.packing import unpack
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import DEFAULT_LATENCY, StreamDriver, StreamSink, reset, start_clock
from wavecore.verif.waits import WaitTimeout, cycle_limit, stalled, wait_for


def _sub_batch_gemm(x, dy, weight_shape):
    """Operands of the weight-gradient GEMM of one sub-batch: (Cout x N*P) and (N*P x Cin*kh*kw)."""
    _, cols, _ = conv2d_as_gemm(x, np.zeros(weight_shape, dtype=np.int64))
    c_out = weight_shape[0]
    dy_matrix = dy.transpose(1, 0, 2, 3).reshape(c_out, -1)  # columns ordered (n, ho, wo) like cols
    return dy_matrix, cols[0].T


@cocotb.test()
async def weight_gradient_over_sub_batches(dut):
    p = tb_params()
    arithmetic = MacArithmetic(in_width=p["in_width"], acc_width=p["acc_width"], signed=True,
                               overflow=p["overflow"])
    spec = ArraySpec(rows=p["rows"], cols=p["cols"], arithmetic=arithmetic, dataflow="output_stationary")
    random = rng("integration-gemm")
    operand = arithmetic.operand
    n, c_in, size, kernel, c_out, subs = p["batch"], p["c_in"], p["size"], p["kernel"], p["c_out"], p["sub_batches"]
    x = random.integers(operand.min, operand.max + 1, size=(n, c_in, size, size), dtype=np.int64)
    out = size - kernel + 1
    dy = random.integers(operand.min, operand.max + 1, size=(n, c_out, out, out), dtype=np.int64)
    weight_shape = (c_out, c_in, kernel, kernel)

    start_clock(dut)
    drivers = {name: StreamDriver(dut, name, dut.clk, idle_probability=p["idle"], rng=random) for name in "ab"}
    requests = StreamDriver(dut, "read_address", dut.clk)
    responses = StreamSink(dut, "read_data", dut.clk, backpressure_probability=p["backpressure"], rng=random)
    await reset(dut)

    expected = None
    schedules = []
    step = n // subs
    for s in range(subs):
        a, b = _sub_batch_gemm(x[s * step:(s + 1) * step], dy[s * step:(s + 1) * step], weight_shape)
        partial = arithmetic.matmul(a, b)
        expected = partial if expected is None else arithmetic.add(expected, partial)
        schedule = GemmSchedule(spec, a, b)
        schedules.append(schedule)
    rows_total = sum(schedule.output_rows for schedule in schedules)
    counts = {"beats": 0, "first_beat": None, "last_row": None}
    # every sub-batch's longest operand stream and its result rows, at the drivers' idle rate, plus the array latency
    limit = cycle_limit(stalled(sum(max(map(len, s.beats.values())) + s.output_rows for s in schedules), p["idle"]),
                        latency=len(schedules) * (spec.rows + spec.cols))

    async def count():
        cycle, written = 0, 0
        while written < rows_total:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycle += 1
            if int(dut.a__valid.value) and int(dut.a__ready.value):
                counts["beats"] += 1
                counts["first_beat"] = cycle if counts["first_beat"] is None else counts["first_beat"]
            if int(dut.row_written.value):
                written += 1
                counts["last_row"] = cycle
            if cycle >= limit:
                raise WaitTimeout(f"{rows_total} result rows written: not reached within {limit} cycles "
                                  f"(only {written})")

    counter = cocotb.start_soon(count())
    await RisingEdge(dut.clk)
    for schedule in schedules:
        for name, stream_beats in schedule.beats.items():
            drivers[name].extend(stream_beats)
    await counter
    beats, first_beat, last_row = counts["beats"], counts["first_beat"], counts["last_row"]
    assert beats == sum(len(schedule.beats["a"]) for schedule in schedules)
    await RisingEdge(dut.clk)
    await wait_for(lambda: int(dut.idle.value), clock=dut.clk, cycles=cycle_limit(0, latency=DEFAULT_LATENCY),
                   what="GEMM integration idle after the last row")
    cycles = last_row - first_beat + 1
    print(f"array utilization: {beats} operand beats / {cycles} cycles = {beats / cycles:.3f} "
          f"({spec.rows}x{spec.cols} OS, {subs} sub-batches, idle={p['idle']})")

    depth = schedules[0].output_rows
    requests.extend(range(depth))
    words = await responses.receive_many(depth)
    bank = [unpack(word, arithmetic.acc_width, spec.cols, True) for word in words]
    got = schedules[0].assemble(bank)
    assert np.array_equal(got, expected), f"weight gradient mismatch:\n{got}\nexpected\n{expected}"
    if p["check_float_reference"]:
        _, dweight, _ = conv2d_backward(dy, x, np.zeros(weight_shape, dtype=np.int64), bias=False)
        assert np.array_equal(got, dweight.reshape(c_out, -1)), "differs from golden conv2d_backward"
