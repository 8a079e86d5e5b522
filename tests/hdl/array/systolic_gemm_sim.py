"""Amaranth-simulator driver for the output-stationary array of wavecore.hdl.array.systolic (multiplier tests)."""

import numpy as np
from amaranth.sim import Simulator

from wavecore.verif.packing import pack, unpack


def os_tiles(array, tiles, random=None, stall=0.0):
    """Run output-stationary tiles ``[(A (rows x K), B (K x cols)), ...]``; return the C tiles."""
    rows, cols = array.rows, array.cols
    width = array.arithmetic.in_width
    acc = array.arithmetic.acc_width
    beats = []
    for a, b in tiles:
        for k in range(a.shape[1]):
            beats.append((pack(a[:, k], width), pack(b[k, :], width), k == a.shape[1] - 1))
    results = []

    async def testbench(ctx):
        index = 0
        cycles = 0
        while len(results) < rows * len(tiles):
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
                index += 1
            if ready and ctx.get(array.c.valid):
                results.append(
                    unpack(ctx.get(array.c.payload.as_value()), acc, cols, array.arithmetic.signed)
                )
            await ctx.tick()
            cycles += 1
            assert cycles < 20_000, "array stuck"

    simulator = Simulator(array)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    return [np.stack(results[t * rows : (t + 1) * rows]) for t in range(len(tiles))]
