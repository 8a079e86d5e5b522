"""cocotb testbench for hdl/array/systolic.py: random GEMMs through wavecore.verif.gemm, checked bit for bit.

Parameters (``tb_params()``): ``config`` (the array's parameter dictionary), optionally ``axis`` (the array's
JSON record: the design is then its AXI4-Stream wrapper, driven through cocotbext-axi by
:class:`wavecore.verif.axis.AxisPorts`), and per testcase the keys read below. The model is
:func:`wavecore.verif.gemm.reference_gemm` (``MacArithmetic.matmul``) and, for wrapping arithmetic, also
the independent big-integer oracle :func:`wavecore.verif.gemm.numpy_gemm_wrapped`.
"""

import json
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from wavecore.verif.gemm import ArraySpec, GemmHarness, numpy_gemm_wrapped, reference_gemm
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamPorts, start_clock


def _first_mismatch(got, expected) -> str:
    index = tuple(int(i) for i in np.argwhere(got != expected)[0])
    return f"first mismatch at C{list(index)}: got {got[index]}, expected {expected[index]}"


def _ports(params):
    """The array's own stream ports, or its AXI4-Stream wrapper when ``params["axis"]`` holds its JSON record."""
    if "axis" in params:
        from wavecore.verif.axis import AxisPorts

        return AxisPorts(params["axis"])
    return StreamPorts()


async def _start(dut, *, idle=0.0, backpressure=0.0, purpose="systolic"):
    params = tb_params()
    spec = ArraySpec.from_parameters(params["config"])
    random = rng(purpose)
    ports = _ports(params)
    start_clock(dut, clock=ports.clock)
    # Reset first: until the reset is driven the wrapper's tready is X, which cocotbext-axi cannot sample.
    await ports.reset_design(dut)
    harness = GemmHarness(dut, spec, idle=idle, backpressure=backpressure, rng=random, ports=ports)
    return params, spec, random, harness


async def _check_axis_sink(harness, spec):
    """Through the AXI4-Stream wrapper: the payloads cocotbext-axi's AxiStreamSink delivered are exactly the
    result rows the cycle-stamping monitor saw (two independent observers of m_axis_c)."""
    sink = harness.sink
    if not hasattr(sink, "payloads"):
        return
    await sink.wait_payloads(len(sink.transfers), timeout_cycles=10 + 4 * (spec.rows + spec.cols))
    seen = [payload for _, payload in sink.transfers]
    assert sink.payloads == seen, (f"AxiStreamSink delivered {len(sink.payloads)} rows, the monitor saw "
                                   f"{len(seen)}; first difference at row "
                                   f"{next(i for i, (x, y) in enumerate(zip(sink.payloads, seen)) if x != y)}")


def _check(spec, a, b, c, label):
    expected = reference_gemm(a, b, spec.arithmetic)
    assert c.shape == expected.shape, f"{label}: shape {c.shape}, expected {expected.shape}"
    assert np.array_equal(c, expected), f"{label}: {_first_mismatch(c, expected)}"
    if spec.arithmetic.overflow == "wrap":
        oracle = numpy_gemm_wrapped(a, b, spec.arithmetic.acc_width, spec.arithmetic.signed)
        assert np.array_equal(c, oracle), f"{label} (big-integer oracle): {_first_mismatch(c, oracle)}"
    return expected


@cocotb.test()
async def random_gemms(dut):
    """Random GEMMs of the given shapes (extreme values mixed in) under random gaps and backpressure."""
    params = tb_params()
    _, spec, random, harness = await _start(
        dut, idle=params.get("idle", 0.0), backpressure=params.get("backpressure", 0.0)
    )
    operand = spec.arithmetic.operand
    transposed = bool(params.get("weights_transposed", False))
    for m, k, n in params["shapes"]:
        a = operand.random(random, (m, k), extreme_fraction=params.get("extreme", 0.2))
        b = operand.random(random, (k, n), extreme_fraction=params.get("extreme", 0.2))
        run = await harness.run(a, b.T if transposed else b, weights_transposed=transposed)
        _check(spec, a, b, run.c, f"GEMM {m}x{k}x{n}{' (W transposed)' if transposed else ''}")
        dut._log.info(f"GEMM {m}x{k}x{n}: {run.cycles} cycles, {run.output_transfers} result rows")
    await _check_axis_sink(harness, spec)


@cocotb.test()
async def overflowing_gemms(dut):
    """Operands at their extremes so the accumulator must overflow; checks wrap or saturation."""
    params = tb_params()
    _, spec, random, harness = await _start(dut, idle=0.2, backpressure=0.2)
    arithmetic = spec.arithmetic
    operand = arithmetic.operand
    overflowed = False
    for m, k, n in params["shapes"]:
        # Mostly same-sign extremes (sums run off one end), some mixed so a saturated sum comes back.
        a = random.choice([operand.min, operand.max], size=(m, k), p=[0.5, 0.5]).astype(np.int64)
        b = np.where(
            random.random((k, n)) < 0.85, operand.min if arithmetic.signed else operand.max, operand.max
        ).astype(np.int64)
        if k >= 2:
            # One same-sign extreme dot product: k * min**2 (signed) or k * max**2 (unsigned) leaves an accumulator
            # of 2 * in_width bits for every k >= 2, whatever the random draw (a seed once drew none that did).
            extreme = operand.min if arithmetic.signed else operand.max
            a[0, :] = extreme
            b[:, 0] = extreme
        run = await harness.run(a, b)
        _check(spec, a, b, run.c, f"overflowing GEMM {m}x{k}x{n}")
        exact = a.astype(object) @ b.astype(object)
        accumulator = arithmetic.accumulator
        overflowed |= bool(np.any((exact > accumulator.max) | (exact < accumulator.min)))
    assert overflowed, "no result overflowed the accumulator: the test data do not exercise the overflow rule"


@cocotb.test()
async def no_result_lost_or_repeated(dut):
    """Heavy output backpressure: exactly the expected rows arrive, in order, and nothing after them."""
    params = tb_params()
    _, spec, random, harness = await _start(dut, idle=0.1, backpressure=0.75)
    operand = spec.arithmetic.operand
    for m, k, n in params["shapes"]:
        a = operand.random(random, (m, k))
        b = operand.random(random, (k, n))
        run = await harness.run(a, b)  # assemble() raises if the number of rows is wrong
        _check(spec, a, b, run.c, f"GEMM {m}x{k}x{n} under backpressure")
        before = len(harness.sink.transfers)
        await ClockCycles(harness.clock, 4 * (spec.rows + spec.cols) + 20)
        extra = len(harness.sink.transfers) - before
        assert extra == 0, f"{extra} result rows arrived after the GEMM was complete (duplicates)"


@cocotb.test()
async def measure_cycles(dut):
    """No stalls: cycles from the first input accepted to the last output accepted, per GEMM shape.

    Writes ``{"M,K,N": {"cycles": .., "correct": ..}}`` to ``params["output"]`` for the benchmark.
    """
    params = tb_params()
    _, spec, random, harness = await _start(dut, purpose="cycles")
    operand = spec.arithmetic.operand
    results = {}
    for m, k, n in params["shapes"]:
        a = operand.random(random, (m, k), extreme_fraction=0.0)
        b = operand.random(random, (k, n), extreme_fraction=0.0)
        run = await harness.run(a, b)
        _check(spec, a, b, run.c, f"GEMM {m}x{k}x{n}")
        results[f"{m},{k},{n}"] = {"cycles": run.cycles, "correct": True}
        await ClockCycles(harness.clock, 2)
    output = Path(params["output"])
    output.write_text(json.dumps(results, indent=1))


@cocotb.test()
async def result_latency_matches_docstring(dut):
    """No stalls: the first result row is on ``c`` ``params["latency"]`` cycles after the cycle that
    accepted the tile's ``last`` beat (OS, K = 1) or the row's beat (WS, M = 1)."""
    params = tb_params()
    _, spec, random, harness = await _start(dut, purpose="latency")
    operand = spec.arithmetic.operand
    a = operand.random(
        random,
        (
            spec.rows if spec.dataflow == "output_stationary" else 1,
            1 if spec.dataflow == "output_stationary" else spec.rows,
        ),
    )
    b = operand.random(random, (a.shape[1], spec.cols))
    run = await harness.run(a, b)
    _check(spec, a, b, run.c, "latency probe")
    accepted = harness.monitors["a"].transfers[-1][0]
    first_output = harness.sink.transfers[-run.output_transfers][0]
    assert first_output - accepted == params["latency"], (
        f"first result {first_output - accepted} cycles after the input beat, documented {params['latency']}"
    )
