"""cocotb testbenches of the integration tests (test_integration_conv.py).

``forward_layer_and_normalized_read_match_golden`` (integration_forward_design.py): one conv layer's
forward pass from DRAM to DRAM and the next layer's normalized read, with BN or GN:

1. DMA in: sample n of x0 (N=2, Cin, H, W) of int16 from AxiRam (random stalls and latency) into the
   producer's region (steps 1-3 run per sample).
2. The weights (host-padded [Cout][out_pitch] in DRAM) go by DMA into the weight scratchpad. The feeder
   streams im2col beats of the consumer's region through the input norm's affine+ReLU (constants (A0, C0)
   loaded by the host) into the output-stationary array's ``a``, the weight feeder the weight matrix into
   its ``b``; the writer requantizes the results into its bank.
3. DMA out through the statistics unit (BN: per channel over the batch; GN: per (sample, group)) into
   DRAM: y1.
4. The host reads (S1, S2) and hands them to the hardware scalar unit, which returns (rstd, A1, C1); the
   host loads them into the affine unit. (The host only moves numbers.)
5. Layer 2 runs the same chain on y1 read through (A1, C1) + ReLU: y2 in DRAM.

Checked bit for bit against ``wavecore.golden.integer.IntegerKernels``: every operand pair entering the array
(``golden.layers.im2col`` of ``fused_read``, padding zeros after the affine; the weight matrix), y1 and y2 in DRAM
(``conv_forward``), S1/S2 (``moments``), rstd/A/C (``fused_constants``); the DMA byte counters against the
AXI monitor and the bytes ``wavecore.golden.plan.traffic`` predicts. Array utilization of layer 1 = operand beats /
cycles from its first to its last operand beat (>= 0.9 asserted: the memory system's utilization target).
"""

import json
from pathlib import Path
from types import SimpleNamespace

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from integration_backward_design import NormBackwardChain
from integration_forward_design import ConvForwardChain

from wavecore.golden.integer import IntegerKernels
from wavecore.golden.layers import im2col
from wavecore.golden.numerics import IntegerTraining, NormArithmetic
from wavecore.golden.plan.traffic import transfer_bytes
from wavecore.hdl.norm.scalar import ScalarMode
from wavecore.verif.axi import AXI_ROUND_TRIP, AxiMonitor, attach_axi_ram
from wavecore.verif.layouts import pack, unpack
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import DEFAULT_LATENCY, StreamDriver, StreamMonitor, StreamSink, reset, start_clock
from wavecore.verif.waits import cycle_limit, stalled, wait_for


async def _until(dut, condition, *, cycles, what):
    """Wait until ``condition()`` holds (sampled after the edge settles), at most ``cycles``; then one more edge."""
    await RisingEdge(dut.clk)
    await wait_for(condition, clock=dut.clk, cycles=cycles, what=what, settle=True)
    await RisingEdge(dut.clk)


# a free region is handed over within a few cycles of its request
HANDOVER_CYCLES = cycle_limit(1, latency=DEFAULT_LATENCY)


async def _handshake(dut, side):
    getattr(dut, f"{side}_acquire").value = 1
    await _until(dut, lambda: int(getattr(dut, f"{side}_owned").value), cycles=HANDOVER_CYCLES,
                 what=f"scratchpad region owned by {side}")
    getattr(dut, f"{side}_acquire").value = 0


async def _release(dut, side):
    getattr(dut, f"{side}_release").value = 1
    await RisingEdge(dut.clk)
    getattr(dut, f"{side}_release").value = 0


# ==========================================================================================================
# One conv layer's forward pass and the next layer's normalized read (integration_forward_design.py)
# ==========================================================================================================
def _layer(op, name, **params):
    """A layer record as wavecore.golden.integer.IntegerKernels reads it (``op``, ``name``, ``params``)."""
    return SimpleNamespace(op=op, name=name, params=params)


class _ForwardBench:
    """Drivers and host steps of the forward chain; every step checks its result against the golden model."""

    def __init__(self, dut, params, design, random):
        self.dut, self.params, self.design, self.random = dut, params, design, random
        self.ram = attach_axi_ram(
            dut,
            clock=dut.clk,
            reset=dut.rst,
            rng=random,
            size=1 << 16,
            stall_probability=params["stall"],
            max_latency=params["max_latency"],
        )
        self.monitor = AxiMonitor(dut, dut.clk, max_outstanding=design.dma.max_outstanding,
                                  max_burst=design.dma.max_burst)
        self.read_commands = StreamDriver(dut, "read_command", dut.clk)
        self.write_commands = StreamDriver(dut, "write_command", dut.clk)
        self.coefficients = StreamDriver(dut, "coefficients", dut.clk)
        self.feeder_commands = StreamDriver(dut, "feeder_command", dut.clk)
        self.weight_commands = StreamDriver(dut, "weight_command", dut.clk)
        self.operands = StreamMonitor(dut, "operand", dut.clk)
        self.results = StreamMonitor(dut, "result", dut.clk)
        self.stats_requests = StreamDriver(dut, "stats_read", dut.clk)
        self.stats_sums = StreamSink(dut, "stats_sums", dut.clk)
        self.scalar_commands = StreamDriver(dut, "scalar_command", dut.clk)
        self.scalar_results = StreamSink(dut, "scalar_result", dut.clk)
        self.expected_bytes = {"read": 0, "written": 0}

    def dma_limit(self, words):
        """Cycle limit of a 1-D DMA transfer of ``words``: its beats at the AXI model's stall rate plus one latency
        bound per burst (split at max_burst and at most once per 4 KiB page, plus a partial one)."""
        dma = self.design.dma
        bursts = words // dma.max_burst + words * dma.beat_bytes // 4096 + 2
        return cycle_limit(stalled(words, self.params["stall"]),
                           latency=bursts * (self.params["max_latency"] + AXI_ROUND_TRIP))

    async def dma_in(self, address, tensor, side="fill"):
        """DRAM -> the producer's region of the activation (``side="fill"``) or weight (``"weight_fill"``)
        scratchpad: the tensor's words in order from scratchpad word 0."""
        dut, design = self.dut, self.design
        dut.read_target.value = int(side == "weight_fill")
        await _handshake(dut, side)
        descriptor = {"address": address, "length": tensor.size, "count1": 1, "count2": 1, "scratch": 0}
        self.read_commands.append(design.dma.pack_descriptor(**descriptor))
        limit = self.dma_limit(tensor.size)
        await self.read_commands.wait_idle(cycles=limit)
        await _until(dut, lambda: int(dut.read_idle.value), cycles=limit, what=f"DMA read of {tensor.size} words")
        await _release(dut, side)
        self.expected_bytes["read"] += transfer_bytes(tensor.shape, design.width // 8)
        self.check_counters()

    def check_counters(self):
        self.monitor.check()
        for direction in ("read", "written"):
            hardware = int(getattr(self.dut, f"bytes_{direction}").value)
            seen = getattr(self.monitor, f"bytes_{direction}")
            assert hardware == seen == self.expected_bytes[direction], (
                f"bytes {direction}: DMA counter {hardware}, AXI monitor {seen}, "
                f"expected {self.expected_bytes[direction]}"
            )

    async def load_affine(self, a, c):
        for channel in range(len(a)):
            for lane in range(self.design.affine.lanes):
                self.coefficients.append(
                    pack(
                        self.design.affine.coefficients.payload.shape(),
                        {"set": channel, "lane": lane, "value": {"a": int(a[channel]), "c": int(c[channel])}},
                    )
                )
        await self.coefficients.wait_idle()

    async def load_weights(self, weight, address):
        """Weights as [Cout][out_pitch] with the weight feeder's conflict-free pitches (padded in DRAM by the
        host) -> DMA -> the weight scratchpad, whose region the weight feeder then owns for every sample."""
        c_out, channels, kernel, _ = weight.shape
        in_pitch, out_pitch = self.design.weight_feeder.dense_pitches(channels, kernel, kernel)
        padded = np.zeros((c_out, out_pitch), dtype=np.int64)
        for ci in range(channels):
            padded[:, ci * in_pitch : ci * in_pitch + kernel * kernel] = weight[:, ci].reshape(c_out, -1)
        self.ram.write(address, padded.astype("<i2").tobytes())
        await self.dma_in(address, padded, side="weight_fill")
        await _handshake(self.dut, "weight_drain")

    async def conv(self, conv_layer, z, weight):
        """One sample: the im2col feeder (consumer's region) -> affine -> array a and the weight feeder -> array
        b -> writer. Checks every operand pair against golden im2col of ``z`` (the affine+ReLU output of the
        sample, padding zeros after) and the weight matrix. Returns (beats, first, last)."""
        dut, design = self.dut, self.design
        _, channels, height, width = z.shape
        c_out = weight.shape[0]
        kernel, stride, padding = weight.shape[2], conv_layer.params["stride"], conv_layer.params["padding"]
        lanes = design.feeder.lanes
        in_pitch, out_pitch = design.weight_feeder.dense_pitches(channels, kernel, kernel)
        await _handshake(dut, "drain")
        fields = design.feeder.check_command(
            channels=channels,
            height=height,
            width=width,
            kernel_h=kernel,
            kernel_w=kernel,
            stride=stride,
            padding=padding,
            base=0,
            row_pitch=width,
            channel_pitch=height * width,
        )
        ho, wo = fields["out_height"], fields["out_width"]
        assert ho * wo == design.positions and wo % lanes == 0, "test layer must fill the writer exactly"
        cols = im2col(z, kernel, stride, padding)[0]
        weight_matrix = weight.reshape(c_out, -1)
        k_total = weight_matrix.shape[1]
        tiles = ho * wo // lanes
        expected = []
        for tile in range(tiles):
            for k in range(k_total):
                lanes_data = [int(v) for v in cols[k, tile * lanes : (tile + 1) * lanes]]
                expected.append({"data": lanes_data, "last": int(k == k_total - 1)})
        operands_before = len(self.operands.transfers)
        results_before = len(self.results.transfers)
        weight_fields = design.weight_feeder.check_command(
            out_channels=c_out, in_channels=channels, kernel_h=kernel, kernel_w=kernel, base=0,
            in_pitch=in_pitch, out_pitch=out_pitch, transpose=False, repeat=tiles,
        )
        self.weight_commands.append(pack(design.weight_feeder.command_layout, weight_fields))
        self.feeder_commands.append(pack(design.feeder.command_layout, fields))
        await _until(
            dut,
            lambda: len(self.results.transfers) - results_before == design.positions,
            cycles=cycle_limit(len(expected) + design.positions, latency=DEFAULT_LATENCY),
            what=f"{design.positions} conv result rows from {len(expected)} operand beats",
        )
        await _until(
            dut,
            lambda: int(dut.writer_idle.value) and int(dut.feeder_idle.value) and int(dut.weight_feeder_idle.value),
            cycles=HANDOVER_CYCLES, what="writer, feeder and weight feeder idle after the last result row",
        )
        await _release(dut, "drain")
        beats = self.operands.transfers[operands_before:]
        assert len(beats) == len(expected), f"{len(beats)} operand beats, golden im2col has {len(expected)}"
        for index, ((_, word), want) in enumerate(zip(beats, expected)):
            got = unpack(design.operand_layout, word)
            want = {**want, "b": [int(v) for v in weight_matrix[:, index % k_total]]}
            assert got == want, f"operand beat {index} (tile {index // k_total}, k {index % k_total}): {got} != {want}"
        return len(beats), beats[0][0], beats[-1][0]

    async def clear_stats(self):
        self.dut.stats_clear.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.stats_clear.value = 0

    async def dma_out(self, address, shape):
        """Writer bank -> stats on write -> DRAM (NCHW); returns the tensor read back from DRAM."""
        dut, design = self.dut, self.design
        words = int(np.prod(shape))
        descriptor = {"address": address, "length": words, "count1": 1, "count2": 1, "scratch": 0}
        self.write_commands.append(design.dma.pack_descriptor(**descriptor))
        limit = self.dma_limit(words)
        await self.write_commands.wait_idle(cycles=limit)
        await _until(dut, lambda: int(dut.write_idle.value), cycles=limit, what=f"DMA write of {words} words")
        self.expected_bytes["written"] += transfer_bytes(shape, design.width // 8)
        self.check_counters()
        raw = self.ram.read(address, 2 * words)
        return np.frombuffer(raw, dtype="<i2").astype(np.int64).reshape(shape)

    async def read_stats(self, sets):
        self.stats_requests.extend(range(sets))
        words = await self.stats_sums.receive_many(sets)
        sums = [unpack(self.design.stats.sums_layout, word) for word in words]
        return [s["s1"][0] for s in sums], [s["s2"][0] for s in sums]

    async def scalar_forward(self, s1, s2, count, gamma, beta, eps):
        """One forward command per entry (a channel's set sums and its gamma, beta); returns rstd, a, c."""
        for channel in range(len(gamma)):
            self.scalar_commands.append(
                pack(
                    self.design.scalar.command_layout,
                    {
                        "mode": ScalarMode.FORWARD.value,
                        "s1": int(s1[channel]),
                        "s2": int(s2[channel]),
                        "count": count,
                        "gamma": int(gamma[channel]),
                        "beta": int(beta[channel]),
                        "eps": eps,
                    },
                )
            )
        forward_cycles = self.design.scalar.worst_case_cycles(ScalarMode.FORWARD)
        limit = cycle_limit(len(gamma) * forward_cycles)
        words = await self.scalar_results.receive_many(len(gamma), timeout_cycles=limit)
        return [unpack(self.design.scalar.result_layout, word) for word in words]


def _activations(random, shape, frac):
    """Post-conv-like activations on the Q.frac grid: per-channel offset and spread."""
    channels = shape[1]
    means = random.uniform(-2, 2, channels)[None, :, None, None]
    spreads = random.uniform(0.3, 2, channels)[None, :, None, None]
    return np.clip(np.rint(random.normal(means, spreads, shape) * 2**frac), -32768, 32767).astype(np.int64)


def _conv_weights(random, training, shape):
    fan_in = int(np.prod(shape[1:]))
    return training.quantize(random.normal(0, 1.5 / np.sqrt(fan_in), shape), training.weight_frac)


@cocotb.test()
async def forward_layer_and_normalized_read_match_golden(dut):
    """Layer 1: DRAM x0 -> read with the input norm's (A0, C0) + ReLU -> conv -> requantize -> stats -> DRAM y1.
    Scalar unit: stats -> (rstd, A1, C1) (BN or GN). Layer 2: DRAM y1 -> read with (A1, C1) + ReLU -> conv ->
    DRAM y2. Checked bit for bit against wavecore.golden.integer.IntegerKernels at every step."""
    params = tb_params()
    training = IntegerTraining()
    kernels = IntegerKernels(training)
    norm = NormArithmetic.from_training(training, max_count=params["max_count"])
    design = ConvForwardChain(norm=norm, mac=training.mac, shift=training.weight_frac,
                              rounding=training.rounding, **params["design"])
    random = rng("integration-forward")
    start_clock(dut)
    for side in ("fill", "drain", "weight_fill", "weight_drain"):
        getattr(dut, f"{side}_acquire").value = 0
        getattr(dut, f"{side}_release").value = 0
    dut.stats_clear.value = 0
    dut.read_target.value = 0
    dut.set_offset.value = 0
    per_set = 1 if params["norm"] == "batchnorm" else design.array.cols // params["groups"]
    dut.group_shift.value = per_set.bit_length() - 1
    bench = _ForwardBench(dut, params, design, random)
    await reset(dut)

    stride, c_in, c_out, batch = params["stride"], params["c_in"], design.array.cols, params["batch"]
    size = 8 * stride  # 8 x 8 output positions = the writer's depth
    fa, scalar_frac = training.activation_frac, training.scalar_frac
    x0 = _activations(random, (batch, c_in, size, size), fa)
    input_norm = {
        "a": np.rint(random.uniform(0.5, 1.5, c_in) * 2**scalar_frac).astype(np.int64),
        "c": np.rint(random.uniform(-0.5, 0.5, c_in) * 2 ** (fa + scalar_frac)).astype(np.int64),
    }
    w1 = _conv_weights(random, training, (c_out, c_in, 3, 3))
    w2 = _conv_weights(random, training, (c_out, c_out, 3, 3))
    conv1 = _layer("conv", "conv1", stride=stride, padding=1, groups=1)
    conv2 = _layer("conv", "conv2", stride=1, padding=1, groups=1)
    batchnorm = params["norm"] == "batchnorm"
    if batchnorm:
        norm_layer = _layer("batchnorm", "norm1", eps=1e-5)
    else:
        norm_layer = _layer("groupnorm", "norm1", eps=1e-5, groups=params["groups"])
    gamma = np.rint(random.uniform(0.5, 1.5, c_out) * 2**training.weight_frac).astype(np.int64)
    beta = np.rint(random.uniform(-0.5, 0.5, c_out) * 2**training.weight_frac).astype(np.int64)
    sample_bytes = {"x0": x0[0].size * 2, "y": c_out * design.positions * 2}
    layout = {"x0": 0, "y1": 0x4000, "y2": 0x8000, "w1": 0xC000, "w2": 0xD000}
    bench.ram.write(layout["x0"], x0.astype("<i2").tobytes())
    groups_per_sample = c_out // per_set

    # Layer 1, sample by sample; statistics accumulate over the batch (BN) or per sample (GN: sets n*G + g).
    z0 = kernels.fused_read(x0, input_norm, relu=True, max_value=None)
    y1_golden = kernels.conv_forward(conv1, z0, w1, None)
    await bench.load_affine(input_norm["a"], input_norm["c"])
    await bench.load_weights(w1, layout["w1"])
    await bench.clear_stats()
    y1 = np.zeros_like(y1_golden)
    for n in range(batch):
        dut.set_offset.value = 0 if batchnorm else n * groups_per_sample
        await bench.dma_in(layout["x0"] + n * sample_bytes["x0"], x0[n])
        beats, first, last = await bench.conv(conv1, z0[n : n + 1], w1)
        if n == 0:
            utilization = beats / (last - first + 1)
            dut._log.info("layer 1 array utilization: %d operand beats in %d cycles = %.3f", beats,
                          last - first + 1, utilization)
            assert utilization >= 0.9, f"array utilization {utilization:.3f} below the 0.9 target"
            layer1 = (beats, last - first + 1)
        y1[n] = (await bench.dma_out(layout["y1"] + n * sample_bytes["y"], y1_golden.shape[1:]))
    await _release(dut, "weight_drain")
    mismatch = np.argwhere(y1 != y1_golden)
    assert not len(mismatch), f"y1 differs from golden conv_forward at {mismatch[:5].tolist()}"

    # Statistics on write -> scalar unit -> the next read's constants.
    s1_golden, s2_golden, count = kernels.moments(norm_layer, y1_golden)
    sets = np.size(s1_golden)  # BN: channels; GN: (sample, group), sample-major
    s1, s2 = await bench.read_stats(sets)
    assert s1 == [int(v) for v in np.ravel(s1_golden)], f"S1 {s1} differs from golden {np.ravel(s1_golden)}"
    assert s2 == [int(v) for v in np.ravel(s2_golden)], f"S2 {s2} differs from golden {np.ravel(s2_golden)}"
    constants = kernels.fused_constants(norm_layer, (s1_golden, s2_golden, count), gamma, beta)
    # One scalar command per channel (BN) or per (sample, channel) (GN), with its statistic set's sums.
    entries = [(0, c) for c in range(c_out)] if batchnorm else [(n, c) for n in range(batch) for c in range(c_out)]
    set_of = [c if batchnorm else n * groups_per_sample + c // per_set for n, c in entries]
    eps = norm.eps_fixed(norm_layer.params["eps"])
    results = await bench.scalar_forward([s1[s] for s in set_of], [s2[s] for s in set_of], count,
                                         [gamma[c] for _, c in entries], [beta[c] for _, c in entries], eps)
    golden = {name: np.ravel(constants[name]) for name in ("rstd", "a", "c")}
    for index, ((n, c), result) in enumerate(zip(entries, results)):
        want = {name: int(golden[name][index]) for name in golden}
        got = {name: result[name] for name in golden}
        assert got == want, f"sample {n} channel {c}: scalar unit {got}, golden fused_constants {want}"

    # Layer 2 reads y1 through the hardware's (A, C) + ReLU (GN: the sample's constants).
    z1 = kernels.fused_read(y1_golden, constants, relu=True, max_value=None)
    y2_golden = kernels.conv_forward(conv2, z1, w2, None)
    await bench.load_weights(w2, layout["w2"])
    y2 = np.zeros_like(y2_golden)
    for n in range(batch):
        if n == 0 or not batchnorm:
            mine = [result for (sample, _), result in zip(entries, results) if sample == n]
            await bench.load_affine([r["a"] for r in mine], [r["c"] for r in mine])
        await bench.dma_in(layout["y1"] + n * sample_bytes["y"], y1[n])
        beats2, first2, last2 = await bench.conv(conv2, z1[n : n + 1], w2)
        if n == 0:
            layer2 = (beats2, last2 - first2 + 1)
        y2[n] = await bench.dma_out(layout["y2"] + n * sample_bytes["y"], y2_golden.shape[1:])
    await _release(dut, "weight_drain")
    mismatch = np.argwhere(y2 != y2_golden)
    assert not len(mismatch), f"y2 differs from golden conv_forward at {mismatch[:5].tolist()}"
    if params.get("result_file"):
        layers = [(conv1, w1, *layer1), (conv2, w2, *layer2)]
        Path(params["result_file"]).write_text(
            json.dumps(
                [
                    {"stride": layer.params["stride"], "c_in": weight.shape[1], "k": int(np.prod(weight.shape[1:])),
                     "beats": layer_beats, "first_to_last": cycles, "utilization": layer_beats / cycles}
                    for layer, weight, layer_beats, cycles in layers
                ]
            )
        )


# ==========================================================================================================
# One backward step through the norm units (integration_backward_design.py)
# ==========================================================================================================
async def _elementwise_pass(unit, driver, sink, order, set_of, operands):
    """Stream one single-lane beat per element ``(n, c, h, w)`` of ``order`` through a norm unit (``set`` =
    ``set_of(n, c)``, one field per tensor of ``operands``, which include ``x``) and return its outputs as a
    tensor shaped like ``x``."""
    for n, c, h, w in order:
        beat = {"set": set_of(n, c), **{name: [int(tensor[n, c, h, w])] for name, tensor in operands.items()}}
        driver.append(pack(unit.input_layout, beat))
    words = await sink.receive_many(len(order), timeout_cycles=20 * len(order) + 1000)
    result = np.zeros_like(operands["x"])
    for (n, c, h, w), word in zip(order, words):
        result[n, c, h, w] = unpack(unit.output.payload.shape(), word)[0]
    return result


@cocotb.test()
async def norm_backward_step_matches_golden(dut):
    """(dz, x) -> reductions (dy, r1, r2) -> weighting (W1, W2 per statistic set) -> scalar unit (K2, K3,
    dgamma) -> dx unit, for BN or GN, against ``IntegerKernels.fused_relu_mask_backward`` / ``fused_backward``
    and ``NormArithmetic``'s formulas.

    Host work between the units: it only moves numbers (dy; W1, W2, r1, r2 from the weighting unit, S1 and
    rstd from the forward pass into the scalar unit's commands; K2, K3 into the dx unit)."""
    params = tb_params()
    training = IntegerTraining()
    kernels = IntegerKernels(training)
    arithmetic = NormArithmetic.from_training(training, max_count=params["max_count"])
    design = NormBackwardChain(arithmetic=arithmetic, **params["design"])
    random = rng("integration-backward")
    start_clock(dut)
    dut.reduce_clear.value = 0
    reduce_coefficients = StreamDriver(dut, "reduce_coefficients", dut.clk)
    reduce_input = StreamDriver(dut, "reduce_input", dut.clk, idle_probability=params["stall"], rng=random)
    reduce_output = StreamSink(
        dut, "reduce_output", dut.clk, backpressure_probability=params["stall"], rng=random
    )
    weighting_gamma = StreamDriver(dut, "weighting_gamma", dut.clk)
    weighting_commands = StreamDriver(dut, "weighting_command", dut.clk, idle_probability=params["stall"], rng=random)
    channel_sums = StreamSink(
        dut, "weighting_channel_sums", dut.clk, backpressure_probability=params["stall"], rng=random
    )
    weighted_sums = StreamSink(dut, "weighting_weighted", dut.clk, backpressure_probability=params["stall"], rng=random)
    scalar_commands = StreamDriver(dut, "scalar_command", dut.clk)
    scalar_results = StreamSink(dut, "scalar_result", dut.clk)
    dx_coefficients = StreamDriver(dut, "dx_coefficients", dut.clk)
    dx_input = StreamDriver(dut, "dx_input", dut.clk, idle_probability=params["stall"], rng=random)
    dx_output = StreamSink(dut, "dx_output", dut.clk, backpressure_probability=params["stall"], rng=random)
    await reset(dut)

    batch, channels, size = params["batch"], params["channels"], params["size"]
    if params["norm"] == "batchnorm":
        layer = _layer("batchnorm", "norm1", eps=1e-5)
        groups, per_group = channels, 1
    else:
        groups = params["groups"]
        layer = _layer("groupnorm", "norm1", eps=1e-5, groups=groups)
        per_group = channels // groups
    fa, fw, fg = training.activation_frac, training.weight_frac, training.grad_frac
    x = _activations(random, (batch, channels, size, size), fa)
    dz = np.clip(np.rint(random.normal(0, 0.5, x.shape) * 2**fg), -32768, 32767).astype(np.int64)
    gamma = np.rint(random.uniform(0.5, 1.5, channels) * 2**fw).astype(np.int64)
    beta = np.rint(random.uniform(-0.5, 0.5, channels) * 2**fw).astype(np.int64)
    s1_golden, s2_golden, count = kernels.moments(layer, x)
    constants = kernels.fused_constants(layer, (s1_golden, s2_golden, count), gamma, beta)
    dy_golden = kernels.fused_relu_mask_backward(dz, x, constants, None)
    dx_golden, dgamma_golden, dbeta_golden = kernels.fused_backward(layer, dy_golden, x, constants, gamma)

    # Per-(set) views: BN sets are channels; GN sets are (sample, channel).
    def set_of(n, c):
        return c if params["norm"] == "batchnorm" else n * channels + c

    def per_channel(table, n, c):
        table = np.asarray(table)
        return table[c] if table.ndim == 1 else table[n, c]

    sets = design.reduce.sets
    for n in range(batch if params["norm"] == "groupnorm" else 1):
        for c in range(channels):
            value = {"a": int(per_channel(constants["a"], n, c)), "c": int(per_channel(constants["c"], n, c))}
            reduce_coefficients.append(
                pack(
                    design.reduce.coefficients.payload.shape(), {"set": set_of(n, c), "lane": 0, "value": value}
                )
            )
    for c in range(channels):
        weighting_gamma.append(
            pack(design.weighting.gamma.payload.shape(), {"set": c, "lane": 0, "value": int(gamma[c])})
        )
    await reduce_coefficients.wait_idle()
    await weighting_gamma.wait_idle()

    # 1. Backward reductions: dy out, r1 and r2 per set.
    order = [(n, c, h, w) for n in range(batch) for c in range(channels) for h in range(size) for w in range(size)]
    dy = await _elementwise_pass(design.reduce, reduce_input, reduce_output, order, set_of, {"dz": dz, "x": x})
    mismatch = np.argwhere(dy != dy_golden)
    assert not len(mismatch), f"dy differs from golden fused_relu_mask_backward at {mismatch[:5].tolist()}"

    # 2. Weighting: per statistic set (BN: a channel; GN: a (sample, group)) the unit reads its channels'
    # (r1, r2) from the reduction unit, passes them on and returns (W1, W2).
    samples = 1 if params["norm"] == "batchnorm" else batch
    statistic_sets = [(n, g) for n in range(samples) for g in range(groups)]
    for n, g in statistic_sets:
        weighting_commands.append(pack(design.weighting.command_layout, {
            "first": set_of(n, g * per_group), "channel": g * per_group, "members": per_group}))
    beats = [unpack(design.weighting.channel_sums_layout, word) for word in await channel_sums.receive_many(sets)]
    weighted = [unpack(design.weighting.weighted_layout, word)
                for word in await weighted_sums.receive_many(len(statistic_sets))]
    r1 = np.array([beat["r1"][0] for beat in beats], dtype=np.int64)  # sets in order: statistic sets cover them
    r2 = np.array([beat["r2"][0] for beat in beats], dtype=np.int64)
    axes = (0, 2, 3) if params["norm"] == "batchnorm" else (2, 3)
    r1_golden = dy_golden.sum(axis=axes).ravel()
    r2_golden = (dy_golden * x).sum(axis=axes).ravel()
    assert list(r1) == list(r1_golden), f"r1 {list(r1)} differs from golden {list(r1_golden)}"
    assert list(r2) == list(r2_golden), f"r2 {list(r2)} differs from golden {list(r2_golden)}"
    lasts = [beat["last"] for beat in beats]
    assert lasts == [int(c % per_group == per_group - 1) for c in range(sets)], f"channel-sum last flags {lasts}"
    w1_golden, w2_golden = arithmetic.weighted_reductions(
        gamma.reshape(groups, per_group), r1_golden.reshape(samples, groups, per_group),
        r2_golden.reshape(samples, groups, per_group), design.weighting.param_width)
    for (n, g), result in zip(statistic_sets, weighted):
        want = {"w1": int(w1_golden[n, g]), "w2": int(w2_golden[n, g])}
        assert result == want, f"set ({n}, {g}): weighting unit {result}, golden weighted_reductions {want}"

    # 3. Scalar unit: (K2, K3) per statistic set, dgamma per channel (and sample, for GN).
    s1_sets = np.asarray(constants["s1"], dtype=object).reshape(samples, -1)
    rstd_channel = np.asarray(constants["rstd"], dtype=object).reshape(samples, channels)
    for (n, g), result in zip(statistic_sets, weighted):
        scalar_commands.append(pack(design.scalar.command_layout, {
            "mode": ScalarMode.BACKWARD.value, "s1": int(s1_sets[n, g]), "count": count,
            "rstd": int(rstd_channel[n, g * per_group]), "w1": result["w1"], "w2": result["w2"]}))
    for n in range(samples):
        for c in range(channels):
            scalar_commands.append(pack(design.scalar.command_layout, {
                "mode": ScalarMode.DGAMMA.value, "s1": int(s1_sets[n, c // per_group]), "count": count,
                "rstd": int(rstd_channel[n, c]), "r1": int(r1[set_of(n, c)]), "r2": int(r2[set_of(n, c)])}))
    commands = len(statistic_sets) + channels * samples
    budget = cycle_limit(max(design.scalar.worst_case_cycles(mode) for mode in ScalarMode) * commands)
    words = await scalar_results.receive_many(commands, timeout_cycles=budget)
    results = [unpack(design.scalar.result_layout, word) for word in words]
    backward = arithmetic.backward_constants(
        s1_sets,
        count,
        rstd_channel[:, ::per_group],
        np.asarray(constants["a"]).reshape(samples, channels)[:, ::per_group],
        w1_golden,
        w2_golden,
    )
    k2 = {}
    k3 = {}
    for (n, g), result in zip(statistic_sets, results):
        want = {"k2": int(backward["k2"][n, g]), "k3": int(backward["k3"][n, g])}
        got = {"k2": result["k2"], "k3": result["k3"]}
        assert got == want, f"set ({n}, {g}): scalar unit {got}, golden backward_constants {want}"
        k2[n, g], k3[n, g] = got["k2"], got["k3"]
    dgamma_terms = np.array([r["dgamma"] for r in results[len(statistic_sets) :]], dtype=object)
    dgamma_terms = dgamma_terms.reshape(samples, channels)
    dgamma = dgamma_terms.sum(axis=0)  # GN: per-sample rounded terms summed exactly (as the golden model)
    assert list(dgamma) == [int(v) for v in dgamma_golden], f"dgamma {list(dgamma)}, golden {list(dgamma_golden)}"
    assert list(r1.reshape(samples, channels).sum(axis=0)) == [int(v) for v in dbeta_golden], "dbeta differs"

    # 4. dx unit: K1 = A, K2 and K3 of the channel's statistic set.
    for n in range(samples):
        for c in range(channels):
            value = {"k1": int(per_channel(constants["a"], n, c)), "k2": k2[n, c // per_group],
                     "k3": k3[n, c // per_group]}
            dx_coefficients.append(
                pack(design.dx.coefficients.payload.shape(), {"set": set_of(n, c), "lane": 0, "value": value})
            )
    await dx_coefficients.wait_idle()
    dx = await _elementwise_pass(design.dx, dx_input, dx_output, order, set_of, {"dy": dy, "x": x})
    mismatch = np.argwhere(dx != dx_golden)
    assert not len(mismatch), f"dx differs from golden fused_backward at {mismatch[:5].tolist()}"
