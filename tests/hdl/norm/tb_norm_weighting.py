"""cocotb testbench of the gamma-weighting drain stage (hdl/norm/weighting.py), tests/hdl/norm/test_norm_weighting.py.

The testbench plays the reduction unit: it answers every ``read_set`` request (under random backpressure)
with that set's per-channel sums on ``sums`` (with random gaps). The sums of each statistic set are drawn
so the set holds at most ``max_count`` elements, including sets whose every element is at the format
extremes and whose gammas are all the most negative or the most positive value, so W reaches the bound
``NormArithmetic.weighted_width`` is derived from. Oracle: ``NormArithmetic.weighted_reductions``.
"""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from wavecore.golden.numerics import INTEGER_PRESETS, IntFormat, NormArithmetic
from wavecore.hdl.norm.weighting import NormGroupWeighting
from wavecore.verif.layouts import pack, unpack
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamDriver, StreamSink, reset, start_clock


def _statistic_sets(random, sets, channels):
    """Commands (first, channel, members) covering the reduction sets in order, and one empty command."""
    commands = []
    first = 0
    while first < sets:
        members = min(int(random.integers(1, min(4, channels) + 1)), sets - first)
        commands.append((first, int(random.integers(0, channels - members + 1)), members))
        first += members
    commands.insert(int(random.integers(0, len(commands) + 1)), (0, 0, 0))
    return commands


def _sums(random, arithmetic, elements, kind, gamma_signs):
    """(r1, r2) per (channel, lane) of ``elements`` element counts: random, or at the extremes with the sign
    of gamma (``kind`` = +1) or against it (-1), so every product adds to one side of W's range."""
    gradient, product = 1 << (arithmetic.gradient.width - 1), (
        (1 << (arithmetic.gradient.width - 1)) * (1 << (arithmetic.activation.width - 1))
    )
    if kind:
        sign = np.where(gamma_signs < 0, -kind, kind)
        return sign * elements * gradient, sign * elements * product
    r1 = random.integers(-elements * gradient, elements * (gradient - 1), endpoint=True)
    r2 = random.integers(-elements * product, elements * product, endpoint=True)
    return r1, r2


@cocotb.test()
async def weighted_reductions_match_golden(dut):
    params = tb_params()
    arithmetic = NormArithmetic.from_training(INTEGER_PRESETS[params["preset"]], max_count=params["max_count"])
    lanes, sets, channels, param_width = params["lanes"], params["sets"], params["channels"], params["param_width"]
    unit = NormGroupWeighting(arithmetic=arithmetic, lanes=lanes, sets=sets, channels=channels,
                              param_width=param_width)
    random = rng("norm-weighting")
    start_clock(dut)
    idle, backpressure = params["idle"], params["backpressure"]
    gamma_loader = StreamDriver(dut, "gamma", dut.clk, idle_probability=0.3, rng=random)
    commands_driver = StreamDriver(dut, "command", dut.clk, idle_probability=idle, rng=random)
    requests = StreamSink(dut, "read_set", dut.clk, backpressure_probability=backpressure, rng=random)
    responses = StreamDriver(dut, "sums", dut.clk, idle_probability=idle, rng=random)
    channel_sums = StreamSink(dut, "channel_sums", dut.clk, backpressure_probability=backpressure, rng=random)
    weighted = StreamSink(dut, "weighted", dut.clk, backpressure_probability=backpressure, rng=random)
    await reset(dut)

    commands = _statistic_sets(random, sets, channels)
    gamma_format = IntFormat(param_width)
    gamma = gamma_format.random(random, (channels, lanes), extreme_fraction=0.3)
    # The first two non-empty sets: every gamma the most negative value and every element at the extremes,
    # with the sign that gives W its largest positive, then its most negative value.
    extremes = dict(zip([command for command in commands if command[2]][:2], (1, -1)))
    for _, channel, members in extremes:
        gamma[channel : channel + members] = gamma_format.min
    for channel in range(channels):
        for lane in range(lanes):
            gamma_loader.append(pack(unit.gamma.payload.shape(),
                                     {"set": channel, "lane": lane, "value": int(gamma[channel, lane])}))
    await gamma_loader.wait_idle()
    await ClockCycles(dut.clk, 2)

    table = {}
    expected_requests, expected_beats, expected_weighted = [], [], []
    for first, channel, members in commands:
        if not members:
            continue
        kind = extremes.get((first, channel, members), int(random.choice([0, 0, -1, 1])))
        total = arithmetic.max_count if kind else int(random.integers(0, arithmetic.max_count + 1))
        elements = random.multinomial(total, np.full(members * lanes, 1 / (members * lanes))).reshape(members, lanes)
        set_gamma = gamma[channel : channel + members]
        r1, r2 = _sums(random, arithmetic, elements, kind, set_gamma)
        w1, w2 = arithmetic.weighted_reductions(set_gamma.ravel(), r1.ravel(), r2.ravel(), param_width)
        expected_weighted.append({"w1": int(w1), "w2": int(w2)})
        for member in range(members):
            table[first + member] = {"r1": [int(v) for v in r1[member]], "r2": [int(v) for v in r2[member]]}
            expected_requests.append(first + member)
            expected_beats.append({**table[first + member], "last": int(member == members - 1)})
    bound = 1 << (unit.weighted_width - 1)
    dut._log.info("extreme W2 %d = %.6f of the weighted_width bound", expected_weighted[0]["w2"],
                  expected_weighted[0]["w2"] / bound)

    async def answer_requests():
        """The reduction unit's side: each request answered in order, any latency."""
        while True:
            await RisingEdge(dut.clk)
            while requests.received:
                responses.append(pack(unit.sums_layout, table[requests.received.popleft()]))

    cocotb.start_soon(answer_requests())
    for first, channel, members in commands:
        commands_driver.append(pack(unit.command_layout, {"first": first, "channel": channel, "members": members}))
    budget = 40 * (len(expected_beats) + len(commands)) + 200
    beats = await channel_sums.receive_many(len(expected_beats), timeout_cycles=budget)
    results = await weighted.receive_many(len(expected_weighted), timeout_cycles=budget)
    for index, (word, want) in enumerate(zip(beats, expected_beats)):
        got = unpack(unit.channel_sums_layout, word)
        assert got == want, f"channel beat {index} (set {expected_requests[index]}): {got} != {want}"
    for index, (word, want) in enumerate(zip(results, expected_weighted)):
        got = unpack(unit.weighted_layout, word)
        assert got == want, f"statistic set {index}: {got} != golden weighted_reductions {want}"
    await ClockCycles(dut.clk, 10)
    assert not channel_sums.received and not weighted.received, "beats after the last statistic set"
    if not idle and not backpressure:
        # W leaves the cycle after the set's last channel beat.
        last_cycles = [cycle for (cycle, word) in channel_sums.transfers
                       if unpack(unit.channel_sums_layout, word)["last"]]
        w_cycles = [cycle for cycle, _ in weighted.transfers]
        assert w_cycles == [cycle + 1 for cycle in last_cycles], f"W at {w_cycles}, last beats at {last_cycles}"
