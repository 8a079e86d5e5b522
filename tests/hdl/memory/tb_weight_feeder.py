"""cocotb testbenches of the training GEMMs' operand streams: the two feeders of feeder_pair_design.py
produce the ``a`` and ``b`` operands of the output-stationary array, the testbench multiplies every tile with
the array's arithmetic (``golden.numerics.MacArithmetic.matmul``: what ``hdl/array/systolic.py`` computes, bit for
bit) and compares the assembled result with the golden model.

* ``conv_gemm_matches_golden``: ``a`` = im2col feeder (``hdl/memory/feeder.py``), ``b`` = weight feeder
  (``hdl/memory/weight_feeder.py``). ``forward``: tiles of ``Y^T = Xcol^T W^T``; ``backward_data``: ``dy`` read
  dilated and the transposed, rotated weights, tiles of ``dx^T`` as a transposed convolution (no col2im).
  Compared with the exact integer conv (``wavecore.golden.layers`` on int64) before requantization and with
  ``wavecore.golden.integer.IntegerKernels`` after it.
* ``backward_weight_gemm_matches_golden``: ``a`` = position feeder on ``dy`` (1x1), ``b`` = position feeder
  on ``x`` (the conv's kernel), tiles of ``dW = dY · Xcol^T`` over all positions of the sub-batch; with two
  sub-batches the passes are summed as the result writer's ``accumulate`` does (``MacArithmetic.add``) and
  compared with ``IntegerKernels.conv_backward`` carrying ``acc_weight`` across the sub-batches.

Every bank answers with random stalls, both operand streams see random backpressure; without stalls the
testbench checks that both streams deliver one beat per cycle from their first beat to their last.
"""

from types import SimpleNamespace

import cocotb
import numpy as np
from feeder_banks import BankModel, beats_of, tiles_of, wait_idle

from wavecore.golden import layers as L
from wavecore.golden.integer import IntegerKernels
from wavecore.golden.numerics import IntegerTraining, MacArithmetic, requantize
from wavecore.hdl.memory.feeder import Im2colFeeder
from wavecore.hdl.memory.position_feeder import PositionFeeder
from wavecore.hdl.memory.weight_feeder import WeightFeeder
from wavecore.verif.layouts import pack
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamDriver, StreamSink, reset, start_clock

TRAINING = IntegerTraining(
    mac=MacArithmetic(in_width=8, acc_width=32, signed=True, overflow="wrap"),
    activation_frac=4,
    weight_frac=5,
    grad_frac=4,
    weight_grad_frac=4,
)


def _layer(conv):
    return SimpleNamespace(
        name="conv", params={"stride": conv["stride"], "padding": conv["padding"], "groups": 1, "bias": False}
    )


def _random(random, shape):
    return random.integers(-128, 128, size=shape).astype(np.int64)


class _Pair:
    """Both feeders' banks, command drivers and operand sinks."""

    def __init__(self, dut, a, b, params, random):
        self.a, self.b = a, b
        self.a_banks = BankModel(dut, prefix="a_", banks=a.banks, width=a.width, stall=params["stall"], rng=random)
        self.b_banks = BankModel(dut, prefix="b_", banks=b.banks, width=b.width, stall=params["stall"], rng=random)
        self.a_commands = StreamDriver(dut, "a_command", dut.clk)
        self.b_commands = StreamDriver(dut, "b_command", dut.clk)
        pressure = params["backpressure"]
        self.stalls = params["stall"] or pressure
        self.a_sink = StreamSink(dut, "a_operand", dut.clk, backpressure_probability=pressure, rng=random)
        self.b_sink = StreamSink(dut, "b_operand", dut.clk, backpressure_probability=pressure, rng=random)
        self.a_sink.cover_flags(last=a.operand_layout["last"].offset)
        self.b_sink.cover_flags(last=b.operand_layout["last"].offset)

    async def tiles(self, dut, count):
        """Receive ``count`` beats on each operand; return the (a, b) tiles, checking their ``last`` agree."""
        a_words = await self.a_sink.receive_many(count, timeout_cycles=40 * count + 500)
        b_words = await self.b_sink.receive_many(count, timeout_cycles=40 * count + 500)
        a_beats, b_beats = beats_of(self.a.operand_layout, a_words), beats_of(self.b.operand_layout, b_words)
        for index, (left, right) in enumerate(zip(a_beats, b_beats)):
            assert left["last"] == right["last"], f"beat {index}: 'last' differs between the operands"
        await wait_idle(dut, "a_idle")
        await wait_idle(dut, "b_idle")
        for name, sink in (("a", self.a_sink), ("b", self.b_sink)):  # idle: exactly the commands' beats came
            assert not sink.received, f"operand {name}: {len(sink.received)} beats after the last expected one"
        for name, sink in (("a", self.a_sink), ("b", self.b_sink)):
            first, last = sink.transfers[-count][0], sink.transfers[-1][0]
            dut._log.info("operand %s: %d beats in %d cycles (%.3f beats/cycle)", name, count, last - first + 1,
                          count / (last - first + 1))
            if not self.stalls:
                assert last - first + 1 == count, f"operand {name}: bubbles without stalls"
        return list(zip(tiles_of(a_beats), tiles_of(b_beats)))


def _tile_product(a_tile, b_tile):
    """The array's result for one tile: ``A @ B`` with beat k = column k of A and row k of B."""
    a = np.array([beat["data"] for beat in a_tile], dtype=np.int64).T
    b = np.array([beat["data"] for beat in b_tile], dtype=np.int64)
    return TRAINING.mac.matmul(a, b)


@cocotb.test()
async def conv_gemm_matches_golden(dut):
    params = tb_params()
    im2col_feeder, weight_feeder = Im2colFeeder(**params["a"]), WeightFeeder(**params["b"])
    random = rng("weight_feeder")
    start_clock(dut)
    pair = _Pair(dut, im2col_feeder, weight_feeder, params, random)
    await reset(dut)

    conv, mode = params["conv"], params["mode"]
    c_in, c_out, height, width = conv["in_channels"], conv["out_channels"], conv["height"], conv["width"]
    kernel, stride, padding = conv["kernel"], conv["stride"], conv["padding"]
    out_h = L.conv_output_size(height, kernel, stride, padding)
    out_w = L.conv_output_size(width, kernel, stride, padding)
    x = _random(random, (1, c_in, height, width))
    weight = _random(random, (c_out, c_in, kernel, kernel))
    dy = _random(random, (1, c_out, out_h, out_w))
    banks = im2col_feeder.banks

    in_pitch, out_pitch = WeightFeeder.dense_pitches(c_in, kernel, kernel)
    weight_base = 1
    pair.b_banks.place_tensor(weight, weight_base * weight_feeder.banks, (out_pitch, in_pitch, kernel, 1))
    base = 2
    if mode == "forward":
        # x in the skewed layout the backward-weight read needs: the forward read must work on it too.
        row_pitch, channel_pitch, _ = PositionFeeder.skewed_pitches(
            channels=c_in, height=height, width=width, kernel_h=kernel, kernel_w=kernel, banks=banks
        )
        pair.a_banks.place_tensor(x[0], base * banks, (channel_pitch, row_pitch, 1))
        fields = im2col_feeder.check_command(
            channels=c_in, height=height, width=width, kernel_h=kernel, kernel_w=kernel, stride=stride,
            padding=padding, base=base, row_pitch=row_pitch, channel_pitch=channel_pitch,
        )
        rows = c_out
        exact = L.conv2d_forward(x, weight, stride=stride, padding=padding)[0]
        golden = IntegerKernels(TRAINING).conv_forward(_layer(conv), x, weight, None)[0]
    else:
        # dy in the layout of the backward-weight read of dy (1x1 kernel): channels one bank apart.
        row_pitch, channel_pitch, _ = PositionFeeder.skewed_pitches(
            channels=c_out, height=out_h, width=out_w, kernel_h=1, kernel_w=1, banks=banks
        )
        pair.a_banks.place_tensor(dy[0], base * banks, (channel_pitch, row_pitch, 1))
        fields = im2col_feeder.check_backward_data_command(
            out_channels=c_out, height=height, width=width, kernel_h=kernel, kernel_w=kernel, stride=stride,
            padding=padding, base=base, row_pitch=row_pitch, channel_pitch=channel_pitch,
        )
        rows = c_in
        exact = L.conv2d_backward(dy, x, weight, stride=stride, padding=padding, bias=False)[0][0]
        golden = IntegerKernels(TRAINING).conv_backward(_layer(conv), dy, x, weight, need_dx=True)[0][0]
    result_h, result_w = fields["out_height"], fields["out_width"]
    column_blocks = -(-result_w // im2col_feeder.lanes)
    tiles_per_block = result_h * column_blocks
    row_blocks = -(-rows // weight_feeder.lanes)
    weight_fields = weight_feeder.check_command(
        out_channels=c_out, in_channels=c_in, kernel_h=kernel, kernel_w=kernel, base=weight_base,
        in_pitch=in_pitch, out_pitch=out_pitch, transpose=mode == "backward_data", repeat=tiles_per_block,
    )
    # `commands` back-to-back weight commands (the documented no-bubble hand-over: the next one is taken with
    # the final beat's request), each answered with the whole product again
    commands = params.get("commands", 1)
    for _ in range(commands):
        pair.b_commands.append(pack(weight_feeder.command_layout, weight_fields))
        for _ in range(row_blocks):  # the im2col stream once per block of weight rows
            pair.a_commands.append(pack(im2col_feeder.command_layout, fields))

    k_total = (c_in if mode == "forward" else c_out) * kernel * kernel
    tiles = await pair.tiles(dut, commands * row_blocks * tiles_per_block * k_total)
    assert len(tiles) == commands * row_blocks * tiles_per_block
    for command in range(commands):
        _check_conv_tiles(tiles[command * row_blocks * tiles_per_block : (command + 1) * row_blocks * tiles_per_block],
                          im2col_feeder, weight_feeder, mode, rows, result_h, result_w, tiles_per_block,
                          column_blocks, k_total, exact, golden, command)


def _check_conv_tiles(tiles, im2col_feeder, weight_feeder, mode, rows, result_h, result_w, tiles_per_block,
                      column_blocks, k_total, exact, golden, command):
    """The tiles of one weight command against the exact and the golden integer convolution."""
    result = np.full((rows, result_h, result_w), -(1 << 40), dtype=np.int64)
    lanes_a, lanes_b = im2col_feeder.lanes, weight_feeder.lanes
    for index, (a_tile, b_tile) in enumerate(tiles):
        assert len(a_tile) == k_total, f"tile {index} has {len(a_tile)} beats, K is {k_total}"
        block, position_tile = divmod(index, tiles_per_block)
        out_row, column_block = divmod(position_tile, column_blocks)
        product = _tile_product(a_tile, b_tile)  # (positions, rows)
        for lane_a in range(lanes_a):
            column = column_block * lanes_a + lane_a
            for lane_b in range(lanes_b):
                row = block * lanes_b + lane_b
                if column < result_w and row < rows:
                    result[row, out_row, column] = product[lane_a, lane_b]
    assert result.shape == exact.shape, f"result {result.shape}, golden {exact.shape}"
    mismatch = np.argwhere(result != exact)
    assert not len(mismatch), (f"{mode}, command {command}: {len(mismatch)} accumulators differ from the exact "
                               f"conv, first at {mismatch[0]}")
    requantized = requantize(result, TRAINING.weight_frac, TRAINING.operand, TRAINING.rounding)
    assert np.array_equal(requantized, golden), (f"{mode}, command {command}: requantized result differs from "
                                                 "IntegerKernels")


@cocotb.test()
async def backward_weight_gemm_matches_golden(dut):
    params = tb_params()
    dy_feeder, x_feeder = PositionFeeder(**params["a"]), PositionFeeder(**params["b"])
    random = rng("position_feeder")
    start_clock(dut)
    pair = _Pair(dut, dy_feeder, x_feeder, params, random)
    await reset(dut)

    conv = params["conv"]
    samples, sub_batches = conv["samples"], conv.get("sub_batches", 1)
    c_in, c_out, height, width = conv["in_channels"], conv["out_channels"], conv["height"], conv["width"]
    kernel, stride, padding = conv["kernel"], conv["stride"], conv["padding"]
    out_h = L.conv_output_size(height, kernel, stride, padding)
    out_w = L.conv_output_size(width, kernel, stride, padding)
    k_total = c_in * kernel * kernel
    rows, cols = dy_feeder.lanes, x_feeder.lanes
    channel_blocks, k_blocks = -(-c_out // rows), -(-k_total // cols)
    positions = samples * out_h * out_w
    weight = _random(random, (c_out, c_in, kernel, kernel))
    dy_pitches = PositionFeeder.skewed_pitches(
        channels=c_out, height=out_h, width=out_w, kernel_h=1, kernel_w=1, banks=dy_feeder.banks
    )
    x_pitches = PositionFeeder.skewed_pitches(
        channels=c_in, height=height, width=width, kernel_h=kernel, kernel_w=kernel, banks=x_feeder.banks
    )
    kernels = IntegerKernels(TRAINING)
    accumulated = golden = None
    for sub_batch in range(sub_batches):
        x = _random(random, (samples, c_in, height, width))
        dy = _random(random, (samples, c_out, out_h, out_w))
        # Each sub-batch in its own part of the banks (the scratchpad would hold it in the next region).
        dy_base = 1 + sub_batch * (-(-samples * dy_pitches[2] // dy_feeder.banks) + 1)
        x_base = 3 + sub_batch * (-(-samples * x_pitches[2] // x_feeder.banks) + 1)
        row_pitch, channel_pitch, sample_pitch = dy_pitches
        pair.a_banks.place_tensor(dy, dy_base * dy_feeder.banks, (sample_pitch, channel_pitch, row_pitch, 1))
        dy_fields = dy_feeder.check_command(
            samples=samples, channels=c_out, height=out_h, width=out_w, kernel_h=1, kernel_w=1, stride=1,
            padding=0, base=dy_base, row_pitch=row_pitch, channel_pitch=channel_pitch,
            sample_pitch=sample_pitch, repeat=k_blocks,
        )
        row_pitch, channel_pitch, sample_pitch = x_pitches
        pair.b_banks.place_tensor(x, x_base * x_feeder.banks, (sample_pitch, channel_pitch, row_pitch, 1))
        x_fields = x_feeder.check_command(
            samples=samples, channels=c_in, height=height, width=width, kernel_h=kernel, kernel_w=kernel,
            stride=stride, padding=padding, base=x_base, row_pitch=row_pitch, channel_pitch=channel_pitch,
            sample_pitch=sample_pitch,
        )
        pair.a_commands.append(pack(dy_feeder.command_layout, dy_fields))
        for _ in range(channel_blocks):  # the Xcol^T stream once per block of output channels
            pair.b_commands.append(pack(x_feeder.command_layout, x_fields))

        tiles = await pair.tiles(dut, channel_blocks * k_blocks * positions)
        weight_gradient = np.full((c_out, k_total), -(1 << 40), dtype=np.int64)
        for index, (a_tile, b_tile) in enumerate(tiles):
            assert len(a_tile) == positions, f"tile {index} has {len(a_tile)} beats, P is {positions}"
            channel_block, k_block = divmod(index, k_blocks)
            product = _tile_product(a_tile, b_tile)  # (output channels, k)
            for row in range(rows):
                for lane in range(cols):
                    channel, k = channel_block * rows + row, k_block * cols + lane
                    if channel < c_out and k < k_total:
                        weight_gradient[channel, k] = product[row, lane]
        exact = L.conv2d_backward(dy, x, weight, stride=stride, padding=padding, bias=False)[1]
        assert np.array_equal(weight_gradient, exact.reshape(c_out, k_total)), (
            f"sub-batch {sub_batch}: dW differs from the exact conv backward"
        )
        # The result writer: first pass overwrites, later passes accumulate (MacArithmetic.add).
        accumulated = weight_gradient if accumulated is None else TRAINING.mac.add(accumulated, weight_gradient)
        golden = kernels.conv_backward(_layer(conv), dy, x, weight, need_dx=False, acc_weight=golden)[1]
        assert np.array_equal(accumulated, golden.reshape(c_out, k_total)), (
            f"after sub-batch {sub_batch}: accumulated dW differs from IntegerKernels.conv_backward"
        )
