"""Stage links: pixels serialised onto a narrow lane and reassembled, bit-exact and in order under stalls."""

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from wavecore.hdl.stream.link import LinkReceiver, LinkTransmitter, link_words, pixel_layout
from wavecore.verif.seed import rng


def _loopback(layout, lane_width, pixels, idle, backpressure, wire_stall, random):
    """Drive ``pixels`` (raw integers) through TX -> a stalling wire -> RX; return (received, cycles)."""
    m = Module()
    m.submodules.tx = tx = LinkTransmitter(layout=layout, lane_width=lane_width)
    m.submodules.rx = rx = LinkReceiver(layout=layout, lane_width=lane_width)
    received = []
    cycles = {"count": 0}

    async def testbench(ctx):
        pending = list(pixels)
        current = None
        while len(received) < len(pixels):
            if current is None and pending and random.random() >= idle:
                current = pending.pop(0)
            ctx.set(tx.i.valid, current is not None)
            if current is not None:
                ctx.set(tx.i.payload.as_value(), current)
            sink_ready = random.random() >= backpressure
            ctx.set(rx.o.ready, sink_ready)
            # the wire: passes a word only when not stalled (a link with random extra latency)
            stall_wire = random.random() < wire_stall
            ctx.set(rx.i.valid, ctx.get(tx.o.valid) and not stall_wire)
            ctx.set(rx.i.payload, ctx.get(tx.o.payload))
            ctx.set(tx.o.ready, ctx.get(rx.i.ready) and not stall_wire)
            took = current is not None and ctx.get(tx.i.ready)
            if ctx.get(rx.o.valid) and sink_ready:
                received.append(ctx.get(rx.o.payload.as_value()))
            await ctx.tick()
            cycles["count"] += 1
            if took:
                current = None
            assert cycles["count"] < 100 * (len(pixels) + 1) * link_words(layout, lane_width), "link stuck"

    simulator = Simulator(m)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    return received, cycles["count"]


@pytest.mark.parametrize(("channels", "lane_width"), [(3, 8), (8, 16), (16, 32), (1, 64)])
@pytest.mark.parametrize(("idle", "backpressure", "wire_stall"), [(0.0, 0.0, 0.0), (0.3, 0.4, 0.3)])
def test_pixels_cross_the_link_bit_exact_and_in_order(channels, lane_width, idle, backpressure, wire_stall):
    random = rng("link")
    layout = pixel_layout(channels)
    pixels = [
        int.from_bytes(random.bytes((layout.size + 7) // 8), "little") & ((1 << layout.size) - 1)
        for _ in range(60)
    ]
    received, cycles = _loopback(layout, lane_width, pixels, idle, backpressure, wire_stall, random)
    assert received == pixels
    if idle == backpressure == wire_stall == 0:
        # full throughput: one lane word per cycle, pixels back to back (+ fill latency)
        assert cycles <= len(pixels) * link_words(layout, lane_width) + 3


def test_layout_and_word_count():
    layout = pixel_layout(16)
    assert layout.size == 16 * 8 + 3 + 8
    assert link_words(layout, 16) == 9  # 139 bits in 16-bit words
    with pytest.raises(ValueError, match="lane_width must be an integer between 1 and 256, not 0"):
        LinkTransmitter(layout=layout, lane_width=0)
    with pytest.raises(ValueError, match="channels must be an integer between 1 and 4096, not 0"):
        pixel_layout(0)
    assert isinstance(LinkReceiver(layout=layout, lane_width=8), wiring.Component)
