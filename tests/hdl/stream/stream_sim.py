"""amaranth.sim drivers for the streaming engines (hdl/stream/*.py): pixel frames in, pixel frames out.

Frames are ``(C, H, W)`` integer arrays sent as :func:`wavecore.hdl.stream.link.pixel_layout` beats in raster order with
``first``/``row_end``/``frame_end`` set and a ``batch`` id per frame. Every source may go idle and every
sink may refuse (``ready`` low) at random, so the engines' valid/ready handling is exercised; every output
beat's markers are checked against its position.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal
from amaranth.sim import Simulator

from wavecore.verif.packing import pack, unpack

__all__ = ["frame_beats", "run_streams", "single"]


def frame_beats(frames, batches):
    """Beats ``(data, first, row_end, frame_end, batch)`` of ``frames`` (C, H, W) in raster order."""
    beats = []
    for frame, batch in zip(frames, batches):
        _, height, width = frame.shape
        for y in range(height):
            for x in range(width):
                last_col = x == width - 1
                beats.append((frame[:, y, x], x == 0 and y == 0, last_col, last_col and y == height - 1, batch))
    return beats


def _element(port):
    """(width, count, signed) of the ``data`` array of a pixel stream port."""
    array_layout = port.payload.data.shape()
    shape = array_layout.elem_shape
    return shape.width, array_layout.length, shape.signed


def run_streams(
    dut,
    sources,
    sinks,
    *,
    random=None,
    idle=0.0,
    backpressure=0.0,
    limit=200_000,
    watch=None,
):
    """Drive ``sources`` [(port, frames, batches)] and collect ``sinks`` [(port, frame_shape, frame_count)].

    Returns ``(outputs, cycles)``: per sink a list of ``(frame (C, H, W), batch)``. Markers of every output
    beat are asserted against its raster position and a frame's beats must share one batch id. With
    ``watch`` (a 1-bit signal, e.g. an engine's ``error`` flag) a third value tells whether it was ever high.
    """
    feeds = [(port, frame_beats(frames, batches)) for port, frames, batches in sources]
    received = [[] for _ in sinks]
    wanted = [shape[1] * shape[2] * count for _, shape, count in sinks]
    cycles = {"n": 0, "watch": False}

    async def testbench(ctx):
        positions = [0] * len(feeds)
        while any(len(r) < n for r, n in zip(received, wanted)):
            offers = []
            for index, (port, beats) in enumerate(feeds):
                offer = positions[index] < len(beats) and not (random is not None and random.random() < idle)
                ctx.set(port.valid, offer)
                if offer:
                    data, first, row_end, frame_end, batch = beats[positions[index]]
                    width, _, _ = _element(port)
                    ctx.set(port.payload.data.as_value(), pack(data, width))
                    ctx.set(port.payload.first, first)
                    ctx.set(port.payload.row_end, row_end)
                    ctx.set(port.payload.frame_end, frame_end)
                    ctx.set(port.payload.batch, batch)
                offers.append(offer)
            readies = []
            for port, _, _ in sinks:
                ready = not (random is not None and random.random() < backpressure)
                ctx.set(port.ready, ready)
                readies.append(ready)
            for index, (port, _) in enumerate(feeds):
                if offers[index] and ctx.get(port.ready):
                    positions[index] += 1
            for index, (port, _, _) in enumerate(sinks):
                if readies[index] and ctx.get(port.valid):
                    width, count, signed = _element(port)
                    payload = port.payload
                    received[index].append(
                        (
                            unpack(ctx.get(payload.data.as_value()), width, count, signed),
                            ctx.get(payload.first),
                            ctx.get(payload.row_end),
                            ctx.get(payload.frame_end),
                            ctx.get(payload.batch),
                        )
                    )
            if watch is not None:
                cycles["watch"] |= bool(ctx.get(watch))
            await ctx.tick()
            cycles["n"] += 1
            assert cycles["n"] < limit, f"stuck: sinks got {[len(r) for r in received]} of {wanted} beats"

    top = Module()  # a sync domain even for purely combinational engines
    top.submodules.dut = dut
    toggle = Signal()
    top.d.sync += toggle.eq(~toggle)
    simulator = Simulator(top)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    outputs = []
    for beats, (_, (channels, height, width), count) in zip(received, sinks):
        per_frame = height * width
        frames = []
        for f in range(count):
            pixels = beats[f * per_frame : (f + 1) * per_frame]
            for index, (_, first, row_end, frame_end, _) in enumerate(pixels):
                x = index % width
                assert (first, row_end, frame_end) == (index == 0, x == width - 1, index == per_frame - 1), (
                    f"frame {f} beat {index}: markers first={first} row_end={row_end} frame_end={frame_end}"
                )
            batch_ids = {p[4] for p in pixels}
            assert len(batch_ids) == 1, f"frame {f} mixes batch ids {batch_ids}"
            frame = np.stack([p[0] for p in pixels]).T.reshape(channels, height, width)
            frames.append((frame, batch_ids.pop()))
        outputs.append(frames)
    if watch is not None:
        return outputs, cycles["n"], cycles["watch"]
    return outputs, cycles["n"]


def single(engine, frames, batches, *, random=None, idle=0.0, backpressure=0.0, out_shape=None):
    """One-input one-output engine (ports ``i``/``o``): returns ``(outputs, cycles)`` for its ``o``."""
    if out_shape is None:
        out_shape = (_element(engine.o)[1], engine.out_height, engine.out_width)
    outputs, cycles = run_streams(
        engine,
        [(engine.i, frames, batches)],
        [(engine.o, out_shape, len(frames))],
        random=random,
        idle=idle,
        backpressure=backpressure,
    )
    return outputs[0], cycles
