"""cocotb testbench for hdl/feeder.py: im2col beats against golden.layers.im2col.

The testbench plays the banked scratchpad: each bank answers its read requests in order with random
request backpressure and random response gaps. The expected beats come from the golden model's
``im2col`` of the same tensor (padding as 0 with the ``pad`` flag set, lanes past the last output column
padded).
"""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from golden.layers import im2col
from hdl.feeder import Im2colFeeder
from verif.layouts import pack, unpack
from verif.runner import tb_params
from verif.seed import rng
from verif.stream import StreamDriver, StreamSink, reset, start_clock


@cocotb.test()
async def im2col_beats_match_golden(dut):
    params = tb_params()
    feeder = Im2colFeeder(**params["feeder"])
    lanes, banks = feeder.lanes, feeder.banks
    random = rng("feeder")
    start_clock(dut)
    requests = [
        StreamSink(
            dut, f"read_address__{bank}", dut.clk, backpressure_probability=params["stall"], rng=random
        )
        for bank in range(banks)
    ]
    responses = [
        StreamDriver(dut, f"read_data__{bank}", dut.clk, idle_probability=params["stall"], rng=random)
        for bank in range(banks)
    ]
    commands = StreamDriver(dut, "command", dut.clk)
    beats = StreamSink(dut, "operand", dut.clk, backpressure_probability=params["backpressure"], rng=random)
    await reset(dut)

    layer = params["layer"]
    channels, height, width = layer["channels"], layer["height"], layer["width"]
    x = random.integers(
        -(1 << (feeder.width - 1)), 1 << (feeder.width - 1), size=(1, channels, height, width)
    )
    row_words = -(-width // banks) + layer.get("row_slack", 0)
    fields = feeder.check_command(
        channels=channels,
        height=height,
        width=width,
        kernel_h=layer["kernel"],
        kernel_w=layer["kernel"],
        stride=layer["stride"],
        padding=layer["padding"],
        base=layer["base"],
        row_words=row_words,
    )
    memory = [dict() for _ in range(banks)]
    for c in range(channels):
        for h in range(height):
            for w in range(width):
                memory[w % banks][layer["base"] + (c * height + h) * row_words + w // banks] = int(
                    x[0, c, h, w]
                )

    async def serve(bank):
        while True:
            address = await requests[bank].receive(timeout_cycles=10**9)
            assert address in memory[bank], f"bank {bank}: read of unwritten word {address}"
            responses[bank].append(memory[bank][address] & ((1 << feeder.width) - 1))

    for bank in range(banks):
        cocotb.start_soon(serve(bank))
    commands.append(pack(feeder.command_layout, fields))

    cols = im2col(x, layer["kernel"], layer["stride"], layer["padding"])[0]  # (K, Ho*Wo)
    ho, wo = fields["out_height"], fields["out_width"]
    k_total = channels * layer["kernel"] ** 2
    expected = []
    for oh in range(ho):
        for ow0 in range(0, wo, lanes):
            for k in range(k_total):
                data, pad = [], 0
                for lane in range(lanes):
                    ow = ow0 + lane
                    value = int(cols[k, oh * wo + ow]) if ow < wo else 0
                    ih = oh * layer["stride"] + (k // layer["kernel"]) % layer["kernel"] - layer["padding"]
                    iw = ow * layer["stride"] + k % layer["kernel"] - layer["padding"]
                    if ow >= wo or not (0 <= ih < height and 0 <= iw < width):
                        pad |= 1 << lane
                    data.append(value)
                expected.append(
                    {
                        "data": data,
                        "pad": pad,
                        "last": int(k == k_total - 1),
                        "channel": k // layer["kernel"] ** 2,
                    }
                )
    start = beats.cycle
    received = await beats.receive_many(len(expected), timeout_cycles=30 * len(expected) + 200)
    for index, (word, want) in enumerate(zip(received, expected)):
        got = unpack(feeder.operand_layout, word)
        assert got == want, f"beat {index}: got {got}, golden {want}"
    for _ in range(20):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.idle.value):
            break
    else:
        raise AssertionError("feeder not idle after the last beat")
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
