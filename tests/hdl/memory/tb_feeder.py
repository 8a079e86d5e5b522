"""cocotb testbench for hdl/memory/feeder.py: im2col beats against wavecore.golden.layers.im2col.

The testbench plays the banked scratchpad (feeder_banks.py): each bank answers its read requests in
order with random request backpressure and random response gaps. The expected beats come from the golden
model's ``im2col`` of the same tensor, built explicitly: for a dilated input (backward-data, ``dilation``
> 1) the zeros are inserted and the padding (``padding`` before, ``padding + output_padding`` after) is
added in NumPy, and a tap is ``pad`` where that tensor holds an inserted or padding zero (lanes past the
last output column are padded too).
"""

import cocotb
import numpy as np
from feeder_banks import BankModel, beats_of, wait_idle

from wavecore.golden.layers import im2col
from wavecore.hdl.memory.feeder import Im2colFeeder
from wavecore.verif.layouts import pack
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamDriver, StreamSink, reset, start_clock


def dilated_padded(x, dilation, padding, output_padding):
    """``x`` (C, H, W) with ``dilation - 1`` zeros between elements, ``padding`` zeros before and
    ``padding + output_padding`` after, and the mask of the elements that came from ``x``."""
    channels, height, width = x.shape
    size = ((height - 1) * dilation + 1, (width - 1) * dilation + 1)
    values, real = np.zeros((channels, *size), dtype=np.int64), np.zeros((channels, *size), dtype=np.int64)
    values[:, ::dilation, ::dilation] = x
    real[:, ::dilation, ::dilation] = 1
    widths = ((0, 0), (padding, padding + output_padding), (padding, padding + output_padding))
    return np.pad(values, widths), np.pad(real, widths)


def expected_im2col_beats(x, *, kernel, stride, padding, dilation, output_padding, out_height, out_width, lanes):
    """The beats the feeder must produce for ``x`` (C, H, W), in its documented order."""
    values, real = dilated_padded(x, dilation, padding, output_padding)
    cols = im2col(values[None], kernel, stride, 0)[0]
    present = im2col(real[None], kernel, stride, 0)[0]
    assert cols.shape[1] == out_height * out_width, "feeder and golden disagree on the output size"
    k_total = cols.shape[0]
    beats = []
    for oh in range(out_height):
        for ow0 in range(0, out_width, lanes):
            for k in range(k_total):
                data, pad = [], 0
                for lane in range(lanes):
                    ow = ow0 + lane
                    inside = ow < out_width and present[k, oh * out_width + ow]
                    data.append(int(cols[k, oh * out_width + ow]) if inside else 0)
                    pad |= (not inside) << lane
                beats.append({"data": data, "pad": pad, "last": int(k == k_total - 1), "channel": k // kernel**2})
    return beats


@cocotb.test()
async def im2col_beats_match_golden(dut):
    params = tb_params()
    feeder = Im2colFeeder(**params["feeder"])
    lanes, banks = feeder.lanes, feeder.banks
    random = rng("feeder")
    start_clock(dut)
    memory = BankModel(dut, prefix="", banks=banks, width=feeder.width, stall=params["stall"], rng=random)
    commands = StreamDriver(dut, "command", dut.clk)
    beats = StreamSink(dut, "operand", dut.clk, backpressure_probability=params["backpressure"], rng=random)
    beats.cover_flags(last=feeder.operand_layout["last"].offset)
    await reset(dut)

    layer = params["layer"]
    channels, height, width = layer["channels"], layer["height"], layer["width"]
    dilation, output_padding = layer.get("dilation", 1), layer.get("output_padding", 0)
    x = random.integers(-(1 << (feeder.width - 1)), 1 << (feeder.width - 1), size=(channels, height, width))
    if "row_pitch" in layer:
        layout = {"row_pitch": layer["row_pitch"], "channel_pitch": layer["channel_pitch"]}
        pitches = (layer["channel_pitch"], layer["row_pitch"], 1)
    else:
        row_words = -(-width // banks) + layer.get("row_slack", 0)
        layout = {"row_words": row_words}
        pitches = (height * row_words * banks, row_words * banks, 1)
    fields = feeder.check_command(
        channels=channels,
        height=height,
        width=width,
        kernel_h=layer["kernel"],
        kernel_w=layer["kernel"],
        stride=layer["stride"],
        padding=layer["padding"],
        base=layer["base"],
        dilation=dilation,
        output_padding=output_padding,
        **layout,
    )
    memory.place_tensor(x, layer["base"] * banks, pitches)
    commands.append(pack(feeder.command_layout, fields))

    expected = expected_im2col_beats(
        x,
        kernel=layer["kernel"],
        stride=layer["stride"],
        padding=layer["padding"],
        dilation=dilation,
        output_padding=output_padding,
        out_height=fields["out_height"],
        out_width=fields["out_width"],
        lanes=lanes,
    )
    start = beats.cycle
    received = await beats.receive_many(len(expected), timeout_cycles=30 * len(expected) + 200)
    for index, (got, want) in enumerate(zip(beats_of(feeder.operand_layout, received), expected)):
        assert got == want, f"beat {index}: got {got}, golden {want}"
    await wait_idle(dut, "idle")
    reads = sum(bin(~beat["pad"] & ((1 << lanes) - 1)).count("1") for beat in expected)
    assert memory.reads == reads, f"{memory.reads} bank reads, {reads} non-padding taps"
    first, last = beats.transfers[0][0], beats.transfers[-1][0]
    dut._log.info(
        "feeder: %d beats in %d cycles from first to last (%.3f beats/cycle), %d cycles from start",
        len(expected),
        last - first + 1,
        len(expected) / (last - first + 1),
        last - start,
    )
    if params.get("result_file"):
        import json

        with open(params["result_file"], "w") as handle:
            json.dump({"beats": len(expected), "first_to_last": last - first + 1}, handle)
