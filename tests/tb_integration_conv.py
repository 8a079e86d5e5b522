"""cocotb testbench: the BN fission-fusion read path end to end (tests/integration_conv_design.py).

1. DMA in: the tensor x (N=1, C, H, W) of int16 goes from AxiRam (random stalls and latency) into the
   producer's scratchpad region; the statistics unit sees every word on its way.
2. The host reads (S1, S2) per channel from the hardware and passes them to the hardware scalar unit,
   which returns (rstd, A, C); the host loads A and C into the affine unit. (The host only moves numbers.)
3. The feeder streams im2col beats of the consumer's region through affine+ReLU.

Checked against the golden model at every step: S1/S2 (``NormArithmetic.statistics``), the constants
(``forward_constants``), every operand beat (``golden.layers.im2col`` of ``affine_relu(x)`` with padding
zeros after the affine), and the DMA byte counter against the AXI monitor and ``descriptor_bytes``.
"""

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from integration_conv_design import BnReadPath

from golden.layers import im2col
from golden.numerics import NormArithmetic
from hdl.norm_scalar import ScalarMode
from verif.axi import AxiMonitor, attach_axi_ram, descriptor_bytes
from verif.layouts import pack, unpack
from verif.runner import tb_params
from verif.seed import rng
from verif.stream import StreamDriver, StreamSink, reset, start_clock


async def _until(dut, condition, limit=200_000):
    for _ in range(limit):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if condition():
            await RisingEdge(dut.clk)
            return
    raise AssertionError("timed out")


async def _handshake(dut, side):
    getattr(dut, f"{side}_acquire").value = 1
    await _until(dut, lambda: int(getattr(dut, f"{side}_owned").value))
    getattr(dut, f"{side}_acquire").value = 0


async def _release(dut, side):
    getattr(dut, f"{side}_release").value = 1
    await RisingEdge(dut.clk)
    getattr(dut, f"{side}_release").value = 0


@cocotb.test()
async def bn_read_path_matches_golden(dut):
    params = tb_params()
    arithmetic = NormArithmetic(max_count=params["max_count"])
    channels, height, width = params["channels"], params["height"], params["width"]
    design = BnReadPath(
        arithmetic=arithmetic,
        channels=channels,
        plane_shift=(height * width).bit_length() - 1,
        banks=params["banks"],
        lanes=params["lanes"],
        region_depth=params["region_depth"],
    )
    random = rng("integration")
    start_clock(dut)
    for name in ("fill_acquire", "fill_release", "drain_acquire", "drain_release", "stats_clear"):
        getattr(dut, name).value = 0
    ram = attach_axi_ram(
        dut,
        clock=dut.clk,
        reset=dut.rst,
        rng=random,
        size=1 << 16,
        stall_probability=params["stall"],
        max_latency=params["max_latency"],
    )
    monitor = AxiMonitor(dut, dut.clk, max_outstanding=design.dma.max_outstanding)
    dma_commands = StreamDriver(dut, "dma_command", dut.clk)
    stats_requests = StreamDriver(dut, "stats_read", dut.clk)
    stats_sums = StreamSink(dut, "stats_sums", dut.clk)
    scalar_commands = StreamDriver(dut, "scalar_command", dut.clk)
    scalar_results = StreamSink(dut, "scalar_result", dut.clk)
    coefficients = StreamDriver(dut, "coefficients", dut.clk)
    feeder_commands = StreamDriver(dut, "feeder_command", dut.clk)
    operands = StreamSink(
        dut, "operand", dut.clk, backpressure_probability=params["backpressure"], rng=random
    )
    await reset(dut)

    # Realistic post-conv activations on the Q.8 grid with a per-channel offset and spread.
    means = random.uniform(-2, 2, channels)[:, None, None]
    spreads = random.uniform(0.3, 2, channels)[:, None, None]
    x = np.clip(np.rint(random.normal(means, spreads, (channels, height, width)) * 256), -32768, 32767)
    x = x.astype(np.int64)[None]
    ram.write(0, b"".join(int(v).to_bytes(2, "little", signed=True) for v in x.ravel()))
    gamma = np.rint(random.uniform(0.5, 1.5, channels) * 4096).astype(np.int64)
    beta = np.rint(random.uniform(-0.5, 0.5, channels) * 4096).astype(np.int64)
    eps = arithmetic.eps_fixed(1e-5)

    # 1. DMA in, with statistics on write.
    await _handshake(dut, "fill")
    words = channels * height * width
    descriptor = {"address": 0, "length": words, "count1": 1, "count2": 1, "scratch": 0}
    dma_commands.append(design.dma.pack_descriptor(**descriptor))
    await dma_commands.wait_idle()
    await _until(dut, lambda: int(dut.dma_idle.value))
    await _release(dut, "fill")
    monitor.check()
    assert monitor.bytes_read == descriptor_bytes(**descriptor, beat_bytes=2), (
        "DMA moved the wrong byte count"
    )

    # 2. Statistics -> scalar unit -> affine constants.
    stats_requests.extend(range(channels))
    sums = [unpack(design.stats.sums_layout, word) for word in await stats_sums.receive_many(channels)]
    s1_golden, s2_golden = arithmetic.statistics(x, (0, 2, 3))
    assert [s["s1"][0] for s in sums] == list(s1_golden), "S1 differs from the golden model"
    assert [s["s2"][0] for s in sums] == list(s2_golden), "S2 differs from the golden model"
    count = height * width
    golden = arithmetic.forward_constants(s1_golden, s2_golden, count, gamma, beta, eps)
    for channel in range(channels):
        scalar_commands.append(
            pack(
                design.scalar.command_layout,
                {
                    "mode": ScalarMode.FORWARD.value,
                    "s1": sums[channel]["s1"][0],
                    "s2": sums[channel]["s2"][0],
                    "count": count,
                    "gamma": int(gamma[channel]),
                    "beta": int(beta[channel]),
                    "eps": eps,
                },
            )
        )
    results = [
        unpack(design.scalar.result_layout, word)
        for word in await scalar_results.receive_many(channels, timeout_cycles=100_000)
    ]
    for channel, result in enumerate(results):
        for name in ("rstd", "a", "c"):
            assert result[name] == int(golden[name][channel]), (
                f"channel {channel}: {name} differs from golden"
            )
        for lane in range(design.affine.lanes):
            coefficients.append(
                pack(
                    design.affine.coefficients.payload.shape(),
                    {"set": channel, "lane": lane, "value": {"a": result["a"], "c": result["c"]}},
                )
            )
    await coefficients.wait_idle()

    # 3. Feeder through affine + ReLU.
    await _handshake(dut, "drain")
    kernel, stride, padding = params["kernel"], params["stride"], params["padding"]
    fields = design.feeder.check_command(
        channels=channels,
        height=height,
        width=width,
        kernel_h=kernel,
        kernel_w=kernel,
        stride=stride,
        padding=padding,
        base=0,
        row_words=width // design.banks,
    )
    feeder_commands.append(pack(design.feeder.command_layout, fields))
    a = golden["a"].astype(np.int64)[None, :, None, None]
    c = golden["c"].astype(np.int64)[None, :, None, None]
    z = arithmetic.affine_relu(x, a, c)
    cols = im2col(z, kernel, stride, padding)[0]  # padding zeros inserted after the affine unit
    ho, wo = fields["out_height"], fields["out_width"]
    lanes = design.affine.lanes
    expected = []
    for oh in range(ho):
        for ow0 in range(0, wo, lanes):
            for k in range(channels * kernel * kernel):
                expected.append(
                    [int(cols[k, oh * wo + ow0 + lane]) if ow0 + lane < wo else 0 for lane in range(lanes)]
                )
    received = await operands.receive_many(len(expected), timeout_cycles=40 * len(expected) + 1000)
    for index, (word, want) in enumerate(zip(received, expected)):
        got = unpack(design.affine.output.payload.shape(), word)
        assert got == want, f"operand beat {index}: got {got}, golden {want}"
    await _until(dut, lambda: int(dut.feeder_idle.value))
    await _release(dut, "drain")
    first, last = operands.transfers[0][0], operands.transfers[-1][0]
    dut._log.info(
        "operand stream: %d beats in %d cycles (%.3f beats/cycle)",
        len(expected),
        last - first + 1,
        len(expected) / (last - first + 1),
    )
