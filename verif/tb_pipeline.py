"""cocotb testbench: a multi-stage Occam pipeline chained through link models, checked at every boundary.

Parameters (``wavecore.verif.runner.tb_params``): ``lane_width``; ``stages`` (per stage ``in_words``, ``out_words``,
``out_channels``, ``out_pixels``); ``images`` [N][C][H][W] and ``batches`` (ids); ``expected`` (per stage the
golden output [N][C][H][W]); ``idle``/``backpressure`` stall probabilities; ``timeout_cycles``; optional
``cycle_bounds`` (low, high) and ``report`` (a path: written there as JSON are the cycle count and
``frame_ends``, the cycle at which each frame's last word left the last stage: their differences are the
pipeline's steady-state cycles per frame).
"""

import json
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge

from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamDriver, StreamSink, reset, start_clock
from wavecore.verif.waits import WaitTimeout


def _words(pixel: int, bits: int, lane: int, count: int) -> list[int]:
    return [(pixel >> (index * lane)) & ((1 << lane) - 1) for index in range(count)]


def encode_frames(frames, batches, lane: int, words: int) -> list[int]:
    """Lane words of frames (lists [C][H][W] of int8) in raster order with markers and batch ids."""
    out = []
    for frame, batch in zip(frames, batches):
        channels, height, width = len(frame), len(frame[0]), len(frame[0][0])
        for y in range(height):
            for x in range(width):
                pixel = 0
                for c in range(channels):
                    pixel |= (frame[c][y][x] & 0xFF) << (8 * c)
                base = 8 * channels
                pixel |= int(x == 0 and y == 0) << base
                pixel |= int(x == width - 1) << (base + 1)
                pixel |= int(x == width - 1 and y == height - 1) << (base + 2)
                pixel |= (batch & 0xFF) << (base + 3)
                out += _words(pixel, base + 11, lane, words)
    return out


def decode_words(words, channels: int, lane: int, count: int):
    """Pixels ``(data list, first, row_end, frame_end, batch)`` from lane words."""
    pixels = []
    for start in range(0, len(words) - count + 1, count):
        pixel = 0
        for index, word in enumerate(words[start : start + count]):
            pixel |= word << (index * lane)
        data = []
        for c in range(channels):
            value = (pixel >> (8 * c)) & 0xFF
            data.append(value - 256 if value >= 128 else value)
        base = 8 * channels
        pixels.append(
            (
                data,
                (pixel >> base) & 1,
                (pixel >> (base + 1)) & 1,
                (pixel >> (base + 2)) & 1,
                (pixel >> (base + 3)) & 0xFF,
            )
        )
    return pixels


def check_stage(index, pixels, expected, batches):
    """Compare decoded pixels with the golden tensors [N][C][H][W]; markers and batch ids included."""
    position = 0
    for frame, batch in zip(expected, batches):
        channels, height, width = len(frame), len(frame[0]), len(frame[0][0])
        for y in range(height):
            for x in range(width):
                assert position < len(pixels), f"stage {index}: only {len(pixels)} pixels arrived"
                data, first, row_end, frame_end, got_batch = pixels[position]
                want = [frame[c][y][x] for c in range(channels)]
                assert data == want, f"stage {index} batch {batch} pixel ({y},{x}): {data} != golden {want}"
                assert (first, row_end, frame_end) == (
                    int(x == 0 and y == 0),
                    int(x == width - 1),
                    int(x == width - 1 and y == height - 1),
                ), f"stage {index} pixel ({y},{x}): markers {first, row_end, frame_end}"
                assert got_batch == batch, f"stage {index} pixel ({y},{x}): batch {got_batch} != {batch}"
                position += 1
    assert position == len(pixels), f"stage {index}: {len(pixels) - position} extra pixels"


@cocotb.test()
async def chain_matches_golden_at_every_boundary(dut):
    params = tb_params()
    random = rng("pipeline")
    lane = params["lane_width"]
    stages = params["stages"]
    start_clock(dut)
    drivers = [
        StreamDriver(dut, f"s{k}_in", dut.clk, idle_probability=params["idle"], rng=random)
        for k in range(len(stages))
    ]
    sinks = [
        StreamSink(dut, f"s{k}_out", dut.clk, backpressure_probability=params["backpressure"], rng=random)
        for k in range(len(stages))
    ]
    await reset(dut)
    drivers[0].extend(encode_frames(params["images"], params["batches"], lane, stages[0]["in_words"]))
    captured = [[] for _ in stages]
    expected_words = [len(params["batches"]) * s["out_pixels"] * s["out_words"] for s in stages]
    frame_words = stages[-1]["out_pixels"] * stages[-1]["out_words"]
    frame_ends = []
    cycles = 0
    while len(captured[-1]) < expected_words[-1]:
        await RisingEdge(dut.clk)
        cycles += 1
        for k, sink in enumerate(sinks):
            while sink.received:
                word = sink.received.popleft()
                captured[k].append(word)
                if k + 1 < len(stages):
                    drivers[k + 1].append(word)  # the link between chip k and chip k+1
                elif len(captured[k]) % frame_words == 0:
                    frame_ends.append(cycles)
        if cycles >= params["timeout_cycles"]:
            raise WaitTimeout(f"{expected_words[-1]} words out of the last stage: not reached within "
                              f"{params['timeout_cycles']} cycles (words per stage {[len(c) for c in captured]} "
                              f"of {expected_words})")
    assert int(dut.error.value) == 0, "a join (add/concat) combined pixels with different markers"
    for k, stage in enumerate(stages):
        pixels = decode_words(captured[k], stage["out_channels"], lane, stage["out_words"])
        check_stage(k, pixels, params["expected"][k], params["batches"])
    dut._log.info(f"{len(params['batches'])} frames through {len(stages)} stages in {cycles} cycles")
    if params.get("report"):
        report = {"frames": len(params["batches"]), "cycles": cycles, "frame_ends": frame_ends}
        Path(params["report"]).write_text(json.dumps(report))
    low, high = params.get("cycle_bounds", (0, params["timeout_cycles"]))
    assert low <= cycles <= high, f"{cycles} cycles, expected between {low} and {high}"
