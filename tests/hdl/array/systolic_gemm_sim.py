"""Amaranth-simulator driver for the output-stationary array of wavecore.hdl.array.systolic (multiplier, timing and
reset tests)."""

import numpy as np
from amaranth import Signal
from amaranth.hdl import ResetInserter
from amaranth.sim import Simulator

from wavecore.verif.packing import pack, unpack


def os_tiles(array, tiles, random=None, stall=0.0, *, lasts=None, reset_after=None):
    """Run output-stationary tiles ``[(A (rows x K), B (K x cols)), ...]``; return the C tiles.

    ``random``/``stall``: that fraction of cycles without an input beat and with ``c.ready`` low. ``lasts``: a
    list that gets the cycle of every accepted ``last`` beat. ``reset_after``: assert the ``sync`` reset for one
    cycle once that many beats were accepted; the tile in flight is dropped, the next tile is offered from its
    start, and only the tiles after the reset are returned. Every wait is bounded (``array stuck``)."""
    rows, cols = array.rows, array.cols
    width = array.arithmetic.in_width
    acc = array.arithmetic.acc_width
    beats, starts = [], []
    for a, b in tiles:
        starts.append(len(beats))
        for k in range(a.shape[1]):
            beats.append((pack(a[:, k], width), pack(b[k, :], width), k == a.shape[1] - 1))
    expected = len(tiles) if reset_after is None else sum(1 for start in starts if start >= reset_after)
    limit = 20_000 + 4 * len(beats)
    results = []
    reset = Signal()  # the sync domain's reset as rst drives it (ResetInserter ORs it in)

    async def testbench(ctx):
        index, cycles, reset_done = 0, 0, reset_after is None
        while not reset_done or len(results) < rows * expected:
            if not reset_done and index == reset_after:
                ctx.set(reset, 1)
                ctx.set(array.a.valid, 0)
                ctx.set(array.b.valid, 0)
                await ctx.tick()
                ctx.set(reset, 0)
                index, reset_done = next(start for start in starts if start >= reset_after), True
                del results[:]  # tiles completed before the reset are not returned
                continue
            offer = index < len(beats) and not (random is not None and random.random() < stall)
            ctx.set(array.a.valid, offer)
            ctx.set(array.b.valid, offer)
            if offer:
                a_bits, b_bits, last = beats[index]
                ctx.set(array.a.payload.data.as_value(), a_bits)
                ctx.set(array.a.payload.last, last)
                ctx.set(array.b.payload.as_value(), b_bits)
            ready = not (random is not None and random.random() < stall)
            ctx.set(array.c.ready, ready)
            if offer and ctx.get(array.a.ready) and ctx.get(array.b.ready):
                if lasts is not None and beats[index][2]:
                    lasts.append(cycles)
                index += 1
            if ready and ctx.get(array.c.valid):
                results.append(
                    unpack(ctx.get(array.c.payload.as_value()), acc, cols, array.arithmetic.signed)
                )
            await ctx.tick()
            cycles += 1
            assert cycles < limit, "array stuck"

    simulator = Simulator(ResetInserter(reset)(array) if reset_after is not None else array)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    return [np.stack(results[t * rows : (t + 1) * rows]) for t in range(expected)]
