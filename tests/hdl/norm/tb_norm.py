"""cocotb testbenches for the BN/GN datapath units (hdl/norm/*.py) against wavecore.golden.numerics.NormArithmetic.

Every stream runs under random valid gaps and random backpressure; operands include the format extremes,
so rounding ties and saturation are exercised. The oracle for every beat is the golden model's function
(``affine_relu``, ``statistics``, ``backward_reductions``, ``dx``; for the scalar unit
``forward_constants``, ``backward_constants``, ``dgamma``), never the RTL's own output.
"""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from wavecore.golden.numerics import IntFormat, NormArithmetic
from wavecore.verif import coverage
from wavecore.verif.layouts import pack, unpack
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamDriver, StreamMonitor, StreamSink, reset, start_clock


def arithmetic_from(params) -> NormArithmetic:
    fields = dict(params["arithmetic"])
    fields["activation"] = IntFormat(fields["activation"])
    fields["gradient"] = IntFormat(fields["gradient"])
    arithmetic = NormArithmetic(**fields)
    _TIE_SHIFT[0] = arithmetic.scalar_frac - 1
    return arithmetic


async def _start(dut, params):
    random = rng("norm")
    start_clock(dut)
    await reset(dut)
    return random


async def _start_accumulator(dut, kind):
    """Clock, reset and ``clear`` low for an accumulating unit's testbench: ``kind`` ``"statistics"``
    (``NormStatistics``) or ``"backward"`` (``NormBackwardReduce``); returns ``(params, arithmetic, unit,
    random)``."""
    params = tb_params()
    arithmetic = arithmetic_from(params)
    random = await _start(dut, params)
    if kind == "statistics":
        from wavecore.hdl.norm.stats import NormStatistics

        unit = NormStatistics(
            arithmetic=arithmetic, lanes=params["lanes"], sets=params["sets"], group_lanes=params["group_lanes"]
        )
    else:
        from wavecore.hdl.norm.backward import NormBackwardReduce

        unit = NormBackwardReduce(arithmetic=arithmetic, lanes=params["lanes"], sets=params["sets"])
    dut.clear.value = 0
    return params, arithmetic, unit, random


def _stream_pair(dut, params, random, input_name="input", output_name="output"):
    driver = StreamDriver(dut, input_name, dut.clk, idle_probability=params["idle"], rng=random)
    sink = StreamSink(dut, output_name, dut.clk, backpressure_probability=params["backpressure"], rng=random)
    return driver, sink


async def _load_coefficients(dut, layout, table, random):
    """Write ``table[set][lane]`` (dicts) through the always-ready coefficient stream."""
    loader = StreamDriver(dut, "coefficients", dut.clk, idle_probability=0.3, rng=random)
    for set_index, lanes in enumerate(table):
        for lane, value in enumerate(lanes):
            loader.append(pack(layout, {"set": set_index, "lane": lane, "value": value}))
    await loader.wait_idle()
    await ClockCycles(dut.clk, 2)


def _cover_requantize(unit: str, arithmetic, total: int, fmt: IntFormat) -> None:
    """Functional coverage of one lane's requantization, from the golden model's operands."""
    coverage.sample_requantize(unit, *coverage.requantize_outcome(
        total, shift=arithmetic.scalar_frac, rounding=arithmetic.rounding, low=fmt.min, high=fmt.max))


_TIE_SHIFT = [None]  # scalar_frac - 1 of the arithmetic under test, set by each testcase


def _coefficient(random, fmt: IntFormat, scale_bits: int) -> int:
    """Random constant; 10% format extremes, 30% multiples of 2**(scalar_frac-1) so that the
    requantization often sees an exact tie (the rounding modes differ only there)."""
    draw = random.random()
    if draw < 0.1:
        return int(random.choice([fmt.min, fmt.max, 0, -1]))
    if draw < 0.4:
        shift = _TIE_SHIFT[0]
        return (
            int(random.integers(-(1 << max(scale_bits - shift, 1)), 1 << max(scale_bits - shift, 1))) << shift
        )
    return int(random.integers(-(1 << scale_bits), 1 << scale_bits))


@cocotb.test()
async def affine_relu_with_padding(dut):
    params = tb_params()
    arithmetic = arithmetic_from(params)
    lanes, sets, beats = params["lanes"], params["sets"], params["beats"]
    random = await _start(dut, params)
    from wavecore.hdl.norm.affine import NormAffine

    unit = NormAffine(arithmetic=arithmetic, lanes=lanes, sets=sets)
    # |A| < 1/2 and |C| < 1/32 of the activation range (scales 2**11 and 2**22 for int16), so most outputs land in
    # range, some tie, and the 10 % format extremes saturate at both ends; fixed scales would saturate every lane
    # of a narrow format
    a_bits = arithmetic.scalar_frac - 1
    c_bits = arithmetic.scalar_frac + arithmetic.activation.width - 6
    a = [[_coefficient(random, arithmetic.coefficient, a_bits) for _ in range(lanes)] for _ in range(sets)]
    c = [[_coefficient(random, arithmetic.bias, c_bits) for _ in range(lanes)] for _ in range(sets)]
    await _load_coefficients(
        dut,
        unit.coefficients.payload.shape(),
        [[{"a": a[s][lane], "c": c[s][lane]} for lane in range(lanes)] for s in range(sets)],
        random,
    )
    driver, sink = _stream_pair(dut, params, random)
    expected = []
    for _ in range(beats):
        set_index = int(random.integers(0, sets))
        x = arithmetic.activation.random(random, lanes)
        pad = random.random(lanes) < 0.2
        driver.append(
            pack(
                unit.input_layout,
                {"set": set_index, "pad": int(sum(1 << i for i in range(lanes) if pad[i])), "data": list(x)},
            )
        )
        z = arithmetic.affine_relu(x, np.array(a[set_index]), np.array(c[set_index]))
        for lane in np.flatnonzero(~pad):
            _cover_requantize("affine", arithmetic, a[set_index][lane] * int(x[lane]) + c[set_index][lane],
                              arithmetic.activation)
        expected.append([0 if pad[lane] else int(z[lane]) for lane in range(lanes)])
    received = await sink.receive_many(beats, timeout_cycles=20 * beats + 100)
    got = [unpack(unit.output.payload.shape(), word) for word in received]
    for index, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"beat {index}: got {g}, golden {e}"


@cocotb.test()
async def statistics_on_write(dut):
    params, arithmetic, unit, random = await _start_accumulator(dut, "statistics")
    lanes, sets, beats, group_lanes = params["lanes"], params["sets"], params["beats"], params["group_lanes"]
    driver, sink = _stream_pair(dut, params, random)
    requests = StreamDriver(dut, "read_set", dut.clk, idle_probability=params["idle"], rng=random)
    sums = StreamSink(dut, "sums", dut.clk, backpressure_probability=params["backpressure"], rng=random)
    values = {s: [] for s in range(sets)}
    sent = []
    for _ in range(beats):
        set_index = int(random.integers(0, sets))
        x = arithmetic.activation.random(random, lanes, extreme_fraction=0.3)
        values[set_index].append(x)
        word = pack(unit.beat_layout, {"set": set_index, "data": list(x)})
        sent.append(word)
        driver.append(word)
    passed = await sink.receive_many(beats, timeout_cycles=20 * beats + 100)
    assert list(passed) == sent, "pass-through altered or reordered beats"
    requests.extend(range(sets))
    readout = await sums.receive_many(sets, timeout_cycles=50 * sets + 100)
    groups = lanes // group_lanes
    for set_index, word in enumerate(readout):
        got = unpack(unit.sums_layout, word)
        block = (
            np.array(values[set_index]).reshape(-1, groups, group_lanes)
            if values[set_index]
            else np.zeros((1, groups, group_lanes), dtype=np.int64)
        )
        s1, s2 = arithmetic.statistics(block, (0, 2))
        assert got["s1"] == [int(v) for v in s1], f"set {set_index}: S1 {got['s1']} != golden {list(s1)}"
        assert got["s2"] == [int(v) for v in s2], f"set {set_index}: S2 {got['s2']} != golden {list(s2)}"
    # clear zeroes everything
    dut.clear.value = 1
    await ClockCycles(dut.clk, 1)
    dut.clear.value = 0
    requests.append(0)
    got = unpack(unit.sums_layout, (await sums.receive_many(1, timeout_cycles=200))[0])
    assert got["s1"] == [0] * groups and got["s2"] == [0] * groups, "clear did not zero the sums"


@cocotb.test()
async def backward_reductions_with_recomputed_mask(dut):
    params, arithmetic, unit, random = await _start_accumulator(dut, "backward")
    lanes, sets, beats = params["lanes"], params["sets"], params["beats"]
    # every input driven from the start (an undriven read_set.valid is X while the coefficients load)
    requests = StreamDriver(dut, "read_set", dut.clk, rng=random)
    sums = StreamSink(dut, "sums", dut.clk, backpressure_probability=params["backpressure"], rng=random)
    driver, sink = _stream_pair(dut, params, random)
    # |A| < 1/2 and |C| < 1/32 of the activation range (scales 2**11 and 2**22 for int16), so most outputs land in
    # range, some tie, and the 10 % format extremes saturate at both ends; fixed scales would saturate every lane
    # of a narrow format
    a_bits = arithmetic.scalar_frac - 1
    c_bits = arithmetic.scalar_frac + arithmetic.activation.width - 6
    a = [[_coefficient(random, arithmetic.coefficient, a_bits) for _ in range(lanes)] for _ in range(sets)]
    c = [[_coefficient(random, arithmetic.bias, c_bits) for _ in range(lanes)] for _ in range(sets)]
    await _load_coefficients(
        dut,
        unit.coefficients.payload.shape(),
        [[{"a": a[s][lane], "c": c[s][lane]} for lane in range(lanes)] for s in range(sets)],
        random,
    )
    expected = []
    by_set = {s: ([], []) for s in range(sets)}
    for _ in range(beats):
        set_index = int(random.integers(0, sets))
        x = arithmetic.activation.random(random, lanes)
        dz = arithmetic.gradient.random(random, lanes)
        driver.append(pack(unit.input_layout, {"set": set_index, "dz": list(dz), "x": list(x)}))
        by_set[set_index][0].append(dz)
        by_set[set_index][1].append(x)
        dy, _, _ = arithmetic.backward_reductions(dz, x, np.array(a[set_index]), np.array(c[set_index]), ())
        expected.append([int(v) for v in dy])
    received = await sink.receive_many(beats, timeout_cycles=20 * beats + 100)
    got = [unpack(unit.output.payload.shape(), word) for word in received]
    for index, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"beat {index}: dy {g}, golden {e}"
    requests.extend(range(sets))
    readout = await sums.receive_many(sets, timeout_cycles=50 * sets + 100)
    for set_index, word in enumerate(readout):
        result = unpack(unit.sums_layout, word)
        dz, x = by_set[set_index]
        if dz:
            _, r1, r2 = arithmetic.backward_reductions(
                np.array(dz), np.array(x), np.array(a[set_index]), np.array(c[set_index]), 0
            )
        else:
            r1 = r2 = np.zeros(lanes, dtype=np.int64)
        assert result["r1"] == [int(v) for v in r1], (
            f"set {set_index}: r1 {result['r1']} != golden {list(r1)}"
        )
        assert result["r2"] == [int(v) for v in r2], (
            f"set {set_index}: r2 {result['r2']} != golden {list(r2)}"
        )


def _set_sequence(random, sets: int, beats: int, pattern: str) -> list[int]:
    """The sets of a beat stream: ``runs`` (1 to 12 consecutive beats on one set, the forwarding case),
    ``alternate`` (two sets in turn, a write read back two beats later) or ``random``."""
    if pattern == "runs":
        sequence = []
        while len(sequence) < beats:
            sequence += [int(random.integers(0, sets))] * int(random.integers(1, 13))
        return sequence[:beats]
    if pattern == "alternate":
        pair = [0, min(1, sets - 1)]
        return [pair[index % 2] if random.random() < 0.9 else int(random.integers(0, sets)) for index in range(beats)]
    return [int(random.integers(0, sets)) for _ in range(beats)]


async def _pulse_clears(dut, probability: float, random, cycles: list):
    """Raise ``clear`` for single cycles at random, counting cycles as the wavecore.verif.stream endpoints do (the
    same numbering as their ``transfers``), and record the cycles it was high in ``cycles``."""
    cycle = 0
    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        high = probability > 0 and random.random() < probability
        dut.clear.value = int(high)
        if high:
            cycles.append(cycle)


def _counted_before(read_cycle: int, clears: list, counted: list) -> list:
    """Indices of the beats in the sums a read requested in ``read_cycle`` returns (docstring timing): beats
    counted after the last clear cycle before the request and before the request cycle (a beat counted in
    a clear's cycle is not counted, a clear in the request's cycle acts after the read)."""
    last_clear = max((cycle for cycle in clears if cycle < read_cycle), default=0)
    return [index for index, cycle in enumerate(counted) if last_clear < cycle < read_cycle]


async def _accumulate_with_reads_and_clears(dut, params, random, beats_words, read_count):
    """Stream ``beats_words`` through input/output while ``read_count`` random reads go to ``read_set`` and
    ``clear`` pulses at random; returns the output transfers, the read requests (cycle, set), the clear
    cycles and the sums words. Every endpoint starts in the same cycle, so their cycle numbers agree."""
    driver, sink = _stream_pair(dut, params, random)
    requests = StreamDriver(dut, "read_set", dut.clk, idle_probability=0.8, rng=random)
    request_log = StreamMonitor(dut, "read_set", dut.clk)
    sums = StreamSink(dut, "sums", dut.clk, backpressure_probability=params["backpressure"], rng=random)
    clears = []
    pulses = cocotb.start_soon(_pulse_clears(dut, params["clear_probability"], random, clears))
    driver.extend(beats_words)
    requests.extend(int(random.integers(0, params["sets"])) for _ in range(read_count))
    await sink.receive_many(len(beats_words), timeout_cycles=20 * len(beats_words) + 100)
    responses = await sums.receive_many(read_count, timeout_cycles=50 * read_count + 100)
    pulses.cancel()
    dut.clear.value = 0
    return sink.transfers, request_log.transfers, clears, responses


@cocotb.test()
async def statistics_forwarding_reads_and_clears(dut):
    """Back-to-back beats on one set (forwarding), alternating sets, random stalls, reads during the stream
    and clears with beats in flight: every read equals the golden statistics of the beats it covers."""
    params, arithmetic, unit, random = await _start_accumulator(dut, "statistics")
    lanes, sets, beats, group_lanes = params["lanes"], params["sets"], params["beats"], params["group_lanes"]
    sequence = _set_sequence(random, sets, beats, params["pattern"])
    values = [arithmetic.activation.random(random, lanes, extreme_fraction=0.3) for _ in range(beats)]
    words = [pack(unit.beat_layout, {"set": s, "data": list(x)}) for s, x in zip(sequence, values)]
    transfers, reads, clears, responses = await _accumulate_with_reads_and_clears(
        dut, params, random, words, params["reads"]
    )
    assert [word for _, word in transfers] == words, "pass-through altered or reordered beats"
    counted = [cycle for cycle, _ in transfers]
    groups = lanes // group_lanes
    for index, ((read_cycle, set_index), word) in enumerate(zip(reads, responses)):
        covered = [b for b in _counted_before(read_cycle, clears, counted) if sequence[b] == set_index]
        block = np.array([values[b] for b in covered] or [np.zeros(lanes, dtype=np.int64)])
        s1, s2 = arithmetic.statistics(block.reshape(-1, groups, group_lanes), (0, 2))
        got = unpack(unit.sums_layout, word)
        assert (got["s1"], got["s2"]) == ([int(v) for v in s1], [int(v) for v in s2]), (
            f"read {index} (cycle {read_cycle}, set {set_index}, {len(covered)} beats, clears {clears[-3:]}): "
            f"{got} != golden S1 {list(s1)} S2 {list(s2)}"
        )
    assert len(reads) == len(responses) == params["reads"], f"{len(reads)} reads logged for {len(responses)} sums"
    assert clears or not params["clear_probability"], "no clear happened"


@cocotb.test()
async def backward_forwarding_reads_and_clears(dut):
    """As :func:`statistics_forwarding_reads_and_clears` for r1/r2 of the backward unit (a beat counts when
    its dy leaves)."""
    params, arithmetic, unit, random = await _start_accumulator(dut, "backward")
    lanes, sets, beats = params["lanes"], params["sets"], params["beats"]
    # |A| < 1/2 and |C| < 1/32 of the activation range (scales 2**11 and 2**22 for int16), so most outputs land in
    # range, some tie, and the 10 % format extremes saturate at both ends; fixed scales would saturate every lane
    # of a narrow format
    a_bits = arithmetic.scalar_frac - 1
    c_bits = arithmetic.scalar_frac + arithmetic.activation.width - 6
    a = [[_coefficient(random, arithmetic.coefficient, a_bits) for _ in range(lanes)] for _ in range(sets)]
    c = [[_coefficient(random, arithmetic.bias, c_bits) for _ in range(lanes)] for _ in range(sets)]
    await _load_coefficients(
        dut,
        unit.coefficients.payload.shape(),
        [[{"a": a[s][lane], "c": c[s][lane]} for lane in range(lanes)] for s in range(sets)],
        random,
    )
    sequence = _set_sequence(random, sets, beats, params["pattern"])
    x = [arithmetic.activation.random(random, lanes) for _ in range(beats)]
    dz = [arithmetic.gradient.random(random, lanes) for _ in range(beats)]
    words = [pack(unit.input_layout, {"set": s, "dz": list(g), "x": list(v)}) for s, g, v in zip(sequence, dz, x)]
    transfers, reads, clears, responses = await _accumulate_with_reads_and_clears(
        dut, params, random, words, params["reads"]
    )
    counted = [cycle for cycle, _ in transfers]
    assert len(reads) == len(responses) == params["reads"], f"{len(reads)} reads logged for {len(responses)} sums"
    for index, ((read_cycle, set_index), word) in enumerate(zip(reads, responses)):
        covered = [b for b in _counted_before(read_cycle, clears, counted) if sequence[b] == set_index]
        if covered:
            _, r1, r2 = arithmetic.backward_reductions(
                np.array([dz[b] for b in covered]),
                np.array([x[b] for b in covered]),
                np.array(a[set_index]),
                np.array(c[set_index]),
                0,
            )
        else:
            r1 = r2 = np.zeros(lanes, dtype=np.int64)
        got = unpack(unit.sums_layout, word)
        assert (got["r1"], got["r2"]) == ([int(v) for v in r1], [int(v) for v in r2]), (
            f"read {index} (cycle {read_cycle}, set {set_index}, {len(covered)} beats): {got} != golden "
            f"r1 {list(r1)} r2 {list(r2)}"
        )
    assert clears or not params["clear_probability"], "no clear happened"


@cocotb.test()
async def two_stream_dx(dut):
    params = tb_params()
    arithmetic = arithmetic_from(params)
    lanes, sets, beats = params["lanes"], params["sets"], params["beats"]
    random = await _start(dut, params)
    from wavecore.hdl.norm.dx import NormDx

    unit = NormDx(arithmetic=arithmetic, lanes=lanes, sets=sets)
    k = [
        [
            {
                "k1": _coefficient(random, arithmetic.coefficient, 10),
                "k2": _coefficient(random, arithmetic.coefficient, 10),
                "k3": _coefficient(random, arithmetic.bias, 24),
            }
            for _ in range(lanes)
        ]
        for _ in range(sets)
    ]
    await _load_coefficients(dut, unit.coefficients.payload.shape(), k, random)
    driver, sink = _stream_pair(dut, params, random)
    expected = []
    for _ in range(beats):
        set_index = int(random.integers(0, sets))
        x = arithmetic.activation.random(random, lanes)
        dy = arithmetic.gradient.random(random, lanes)
        driver.append(pack(unit.input_layout, {"set": set_index, "dy": list(dy), "x": list(x)}))
        row = k[set_index]
        dx = arithmetic.dx(
            dy,
            x,
            np.array([e["k1"] for e in row]),
            np.array([e["k2"] for e in row]),
            np.array([e["k3"] for e in row]),
        )
        expected.append([int(v) for v in dx])
        for lane, e in enumerate(row):
            _cover_requantize("dx", arithmetic, e["k1"] * int(dy[lane]) + e["k2"] * int(x[lane]) + e["k3"],
                              arithmetic.gradient)
    received = await sink.receive_many(beats, timeout_cycles=20 * beats + 100)
    got = [unpack(unit.output.payload.shape(), word) for word in received]
    for index, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"beat {index}: dx {g}, golden {e}"


def _random_statistics(random, arithmetic, count):
    """(S1, S2) of ``count`` random activations: typical data, constant data (zero variance) or extremes."""
    kind = random.integers(0, 3)
    if kind == 0:
        x = np.clip(
            np.rint(
                random.normal(random.uniform(-3, 3), random.uniform(0.1, 4), count)
                * 2**arithmetic.activation_frac
            ),
            arithmetic.activation.min,
            arithmetic.activation.max,
        )
    elif kind == 1:
        x = np.full(count, int(random.integers(arithmetic.activation.min, arithmetic.activation.max)))
    else:
        x = arithmetic.activation.random(random, count, extreme_fraction=0.8)
    x = x.astype(np.int64)
    return int(x.sum()), int((x * x).sum())


def scalar_unit_cases(arithmetic, param_width, random, commands):
    """``commands`` statistic sets, each as a forward, a backward and a dgamma command of the scalar unit:
    a list of ``(mode, command fields, golden result fields)``, the oracle being ``forward_constants``,
    ``backward_constants`` and ``dgamma`` of the golden model. Shared by the cocotb bench below and the
    exact-latency test in ``tests/hdl/norm/test_norm.py``."""
    from wavecore.hdl.norm.scalar import ScalarMode

    param = IntFormat(param_width)
    cases = []
    for _ in range(commands):
        count = int(random.choice([1, 2, 3, 49, 100, arithmetic.max_count]))
        s1, s2 = _random_statistics(random, arithmetic, count)
        gamma = int(param.random(random, 1, extreme_fraction=0.2)[0])
        beta = int(param.random(random, 1, extreme_fraction=0.2)[0])
        eps = int(random.choice([1, arithmetic.eps_fixed(1e-5), 1 << 20]))
        forward = arithmetic.forward_constants(s1, s2, count, gamma, beta, eps)
        rstd = int(forward["rstd"])
        cases.append(
            (
                ScalarMode.FORWARD,
                {"s1": s1, "s2": s2, "count": count, "gamma": gamma, "beta": beta, "eps": eps},
                {"rstd": rstd, "a": int(forward["a"]), "c": int(forward["c"])},
            )
        )
        # Backward: weighted reductions of a random channel group.
        channels = int(random.integers(1, 5))
        r1 = [int(v) for v in arithmetic.grad_sum_format.random(random, channels)]
        r2 = [int(v) for v in arithmetic.grad_product_sum_format.random(random, channels)]
        gammas = [int(v) for v in param.random(random, channels)]
        w1 = sum(g * r for g, r in zip(gammas, r1))
        w2 = sum(g * r for g, r in zip(gammas, r2))
        backward = arithmetic.backward_constants(s1, count, rstd, forward["a"], w1, w2)
        cases.append(
            (
                ScalarMode.BACKWARD,
                {"s1": s1, "count": count, "rstd": rstd, "w1": w1, "w2": w2},
                {"k2": int(backward["k2"]), "k3": int(backward["k3"])},
            )
        )
        dgamma = arithmetic.dgamma(s1, count, rstd, r1[0], r2[0])
        cases.append(
            (
                ScalarMode.DGAMMA,
                {"s1": s1, "count": count, "rstd": rstd, "r1": r1[0], "r2": r2[0]},
                {"dgamma": int(dgamma)},
            )
        )
    return cases


@cocotb.test()
async def scalar_unit_matches_golden(dut):
    params = tb_params()
    arithmetic = arithmetic_from(params)
    random = await _start(dut, params)
    from wavecore.hdl.norm.scalar import NormScalar, ScalarMode

    unit = NormScalar(
        arithmetic=arithmetic, param_width=params["param_width"], weighted_width=params["weighted_width"]
    )
    driver = StreamDriver(dut, "command", dut.clk, idle_probability=params["idle"], rng=random)
    sink = StreamSink(dut, "result", dut.clk, backpressure_probability=params["backpressure"], rng=random)
    cases = scalar_unit_cases(arithmetic, params["param_width"], random, params["commands"])
    for mode, fields, _ in cases:
        driver.append(pack(unit.command_layout, {"mode": mode.value, **fields}))
        if mode == ScalarMode.FORWARD:  # count * S2 - S1^2 is count^2 times the variance
            coverage.sample_variance(fields["count"] * fields["s2"] == fields["s1"] ** 2)
    budget = sum(unit.worst_case_cycles(mode) for mode in ScalarMode) * params["commands"] * 3 + 1000
    received = await sink.receive_many(len(cases), timeout_cycles=budget)
    for index, (word, (mode, _, want)) in enumerate(zip(received, cases)):
        got = unpack(unit.result_layout, word)
        for name in unit.result_layout.members:
            value = want.get(name, 0)  # the fields a mode does not produce are 0
            assert got[name] == value, f"command {index} ({mode.name}): {name} = {got[name]}, golden {value}"
