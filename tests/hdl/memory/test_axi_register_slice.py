# amaranth: UnusedElaboratable=no
"""The AXI4 register slice (hdl/memory/axi_register_slice.py) in amaranth.sim: on all five channels at once,
random beats offered under random valid gaps and random ready stalls come out in order and unchanged, a valid beat
stays on the output with the same payload until taken, ``ready`` on the input side depends on no input of the same
cycle, and without stalls every channel passes one beat per cycle, each one cycle after it was accepted."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from wavecore.hdl.memory.axi_register_slice import CHANNELS, AxiRegisterSlice

ADDRESS_WIDTH, DATA_WIDTH = 20, 32


def _ends(dut, channel, direction):
    """(source, sink) interfaces of ``channel``: the manager's side drives "out" channels."""
    return (dut.s_axi, dut.m_axi) if direction == "out" else (dut.m_axi, dut.s_axi)


def _run(offer_probability, ready_probability, beats, seed):
    dut = AxiRegisterSlice(address_width=ADDRESS_WIDTH, data_width=DATA_WIDTH)
    random = np.random.default_rng(seed)
    sent = {}
    for channel, direction, fields in CHANNELS:
        source, _ = _ends(dut, channel, direction)
        sent[channel] = [{name: int(random.integers(0, 1 << len(getattr(source, name)))) for name in fields}
                         for _ in range(beats)]
    log = {channel: {"accepted": [], "received": [], "violations": []} for channel, _, _ in CHANNELS}

    async def bench(ctx):
        queues = {channel: list(sent[channel]) for channel in sent}
        held = {channel: None for channel in sent}  # (payload) on a sink's output while not taken
        cycle = 0
        while cycle < beats * 40 and any(len(log[c]["received"]) < beats for c in sent):
            for channel, direction, fields in CHANNELS:
                source, sink = _ends(dut, channel, direction)
                ready_before = ctx.get(getattr(source, f"{channel}ready"))
                offer = bool(queues[channel]) and random.random() < offer_probability
                ctx.set(getattr(source, f"{channel}valid"), offer)
                if offer:
                    for name in fields:
                        ctx.set(getattr(source, name), queues[channel][0][name])
                take = random.random() < ready_probability
                ctx.set(getattr(sink, f"{channel}ready"), take)
                if ctx.get(getattr(source, f"{channel}ready")) != ready_before:
                    log[channel]["violations"].append(f"cycle {cycle}: ready follows this cycle's inputs")
                if offer and ready_before:
                    queues[channel].pop(0)
                    log[channel]["accepted"].append(cycle)
                if ctx.get(getattr(sink, f"{channel}valid")):
                    payload = {name: ctx.get(getattr(sink, name)) for name in fields}
                    if held[channel] is not None and held[channel] != payload:
                        log[channel]["violations"].append(f"cycle {cycle}: payload changed while valid")
                    held[channel] = payload
                    if take:
                        log[channel]["received"].append((cycle, payload))
                        held[channel] = None
                elif held[channel] is not None:
                    log[channel]["violations"].append(f"cycle {cycle}: valid dropped before ready")
            await ctx.tick()
            cycle += 1

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return sent, log


@pytest.mark.parametrize(("offer_probability", "ready_probability"), [(0.7, 0.4), (1.0, 0.6), (0.4, 1.0)])
def test_every_channel_passes_its_beats_in_order_under_stalls(offer_probability, ready_probability):
    seed = int(offer_probability * 10 + ready_probability)
    sent, log = _run(offer_probability, ready_probability, beats=60, seed=seed)
    for channel in sent:
        assert log[channel]["violations"] == [], channel
        assert [payload for _, payload in log[channel]["received"]] == sent[channel], channel


def test_without_stalls_each_beat_comes_out_the_cycle_after_it_was_accepted():
    sent, log = _run(1.0, 1.0, beats=20, seed=3)
    for channel in sent:
        accepted = log[channel]["accepted"]
        assert accepted == list(range(accepted[0], accepted[0] + 20)), channel  # one beat per cycle
        assert [cycle for cycle, _ in log[channel]["received"]] == [cycle + 1 for cycle in accepted], channel
        assert [payload for _, payload in log[channel]["received"]] == sent[channel], channel


@pytest.mark.parametrize(("arguments", "message"), [
    ({"address_width": 0, "data_width": 32}, "address_width must be a positive integer, not 0"),
    ({"address_width": 32, "data_width": 24}, "data_width must be a power of two of at least 8, not 24"),
    ({"address_width": 32, "data_width": 32, "id_width": True}, "id_width must be a positive integer, not True"),
])
def test_bad_parameters_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        AxiRegisterSlice(**arguments)
