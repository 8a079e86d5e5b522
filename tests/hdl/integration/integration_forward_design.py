"""Glue for the forward integration test (test_integration_conv.py, tb_integration_conv.py).

One conv layer's forward pass and the next layer's normalized read, through the real blocks::

    DRAM --AXI4--> Dma (read) --> Scratchpad (ping-pong, banked by w mod banks)
      --> Im2colFeeder --> NormAffine (affine + ReLU of the *input* layer's norm, padding after)
      --> SystolicArray a (output-stationary; lanes output positions per beat)
    DRAM --AXI4--> Dma (read) --> weight Scratchpad --> WeightFeeder --> SystolicArray b (Cout = cols)
    SystolicArray
      --> ResultWriter (requantize to the activation grid; bank row p = output position p)
      --> NormStatistics (stats on write: BN per channel, GN per group) --> Dma (write) --> DRAM

and NormScalar turning the statistics into the next read's (A, C). The next layer's read is the same
chain run again on the layer's output: DMA in -> scratchpad -> feeder -> NormAffine with those constants.

Not a wavecore block: it wires the blocks through their real interfaces so one testbench can run a layer.
The glue's own logic is address mapping only:

* DMA read -> scratchpad: word ``a`` goes to bank ``a mod banks``, word ``a // banks`` of the activation
  scratchpad (``read_target = 0``; NCHW: the im2col feeder's layout with ``row_pitch = W`` and
  ``channel_pitch = H * W``) or of the weight scratchpad (``read_target = 1``; [Cout][out_pitch] with
  ``WeightFeeder.dense_pitches``, padded in DRAM by the host).
* DMA write <- writer bank: word ``a`` of the NCHW output plane-major (``a = c * P + p`` with
  ``P = positions``) is element ``c`` of writer row ``p``, so one contiguous descriptor writes NCHW.
* Statistics set of an output word: ``set_offset + (c >> group_shift)`` (run-time inputs). BN: offset 0 and
  shift 0, one set per channel, accumulated over the samples; GN: C/G = 2**group_shift channels per set and
  offset ``n * G`` for sample n, one set per (sample, group).
* The feeder's ``last`` travels to the array beside NormAffine's pipeline in a small FIFO.
"""

from amaranth import Module, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.array.systolic import SystolicArray
from wavecore.hdl.memory.dma import Dma
from wavecore.hdl.memory.feeder import Im2colFeeder
from wavecore.hdl.memory.scratchpad import Scratchpad
from wavecore.hdl.memory.weight_feeder import WeightFeeder
from wavecore.hdl.memory.writer import ResultWriter
from wavecore.hdl.norm.affine import NormAffine
from wavecore.hdl.norm.scalar import NormScalar
from wavecore.hdl.norm.stats import NormStatistics

__all__ = ["ConvForwardChain"]

_LAST_QUEUE = 8  # > NormAffine's 3 pipeline stages: the queue never limits the beat rate


def _probe(layout) -> Out:
    """A passive copy of a stream transfer (``payload``, ``valid`` = transfer this cycle) for monitors."""
    return Out(wiring.Signature({"payload": Out(layout), "valid": Out(1)}))


class ConvForwardChain(wiring.Component):
    """DMA in -> scratchpad -> im2col -> affine+ReLU -> OS array -> requantize -> stats on write -> DMA out.

    Parameters
    ----------
    norm : wavecore.golden.numerics.NormArithmetic
        Norm units' arithmetic (activation format = array operand format).
    mac : wavecore.golden.numerics.MacArithmetic
        The array's arithmetic.
    shift, rounding :
        The writer's requantization (``IntegerTraining.weight_frac`` and ``rounding``).
    lanes : int
        Output positions per beat = array rows.
    cols : int
        Output channels = array columns.
    banks, region_depth : int
        Scratchpad banks and words per bank per region (2 regions), for activations.
    weight_region_depth : int
        Words per bank per region of the weight scratchpad (same banks, 2 regions).
    positions : int
        Output positions per layer (a power of two): the writer's depth.
    channels : int
        Largest input channel count (the affine unit's sets).
    samples : int
        Largest batch whose GN statistics are kept apart (statistics sets = ``samples * cols``).

    Attributes
    ----------
    axi, bytes_read, bytes_written : the DMA's.
    read_command, write_command, read_idle, write_idle : the DMA's channels.
    fill_*, drain_* : the activation scratchpad's ownership handshake.
    weight_fill_*, weight_drain_* : the weight scratchpad's.
    read_target : In(1)
        Where DMA read beats go: 0 activation scratchpad, 1 weight scratchpad.
    weight_command, weight_feeder_idle : the weight feeder's.
    coefficients : the affine unit's (A, C) load port.
    feeder_command, feeder_idle : the feeder's.
    operand : probe of the array's input transfers (``a`` and ``b`` together, ``operand_layout``).
    result : probe of the array's ``c`` transfers.
    writer_idle : the writer's ``idle``.
    group_shift : In(3)
        log2 of the output channels per statistics set (0 for BN).
    set_offset : In(range(samples * cols))
        First statistics set of the sample being written (GN: ``n * G``; BN: 0).
    stats_clear, stats_read, stats_sums : the statistics unit's (``samples * cols`` sets).
    scalar_command, scalar_result : the scalar unit's.
    """

    def __init__(
        self, *, norm, mac, shift, rounding, lanes, cols, banks, region_depth, weight_region_depth, positions,
        channels, samples=2,
    ):
        if positions & (positions - 1):
            raise ValueError(f"positions must be a power of two, not {positions}")
        self.norm = norm
        self.width = norm.activation.width
        self.banks = banks
        self.positions = positions
        self.position_bits = positions.bit_length() - 1
        scratch_words = max(banks * region_depth, banks * weight_region_depth, cols * positions)
        self.dma = Dma(
            address_width=32,
            data_width=self.width,
            max_burst=16,
            max_outstanding=2,
            count_width=16,
            scratch_width=(scratch_words - 1).bit_length(),
        )
        self.scratchpad = Scratchpad(banks=banks, depth=2 * region_depth, width=self.width, regions=2)
        self.feeder = Im2colFeeder(
            lanes=lanes, banks=banks, bank_depth=region_depth, width=self.width, dimension_width=8
        )
        self.weight_scratchpad = Scratchpad(banks=banks, depth=2 * weight_region_depth, width=self.width, regions=2)
        self.weight_feeder = WeightFeeder(
            lanes=cols, banks=banks, bank_depth=weight_region_depth, width=self.width, dimension_width=8
        )
        self.affine = NormAffine(arithmetic=norm, lanes=lanes, sets=max(channels, cols))
        self.array = SystolicArray(rows=lanes, cols=cols, arithmetic=mac, dataflow="output_stationary")
        self.writer = ResultWriter(
            cols=cols, depth=positions, acc_width=mac.acc_width, signed=True, overflow=mac.overflow,
            requantize=True, shift=shift, out_width=self.width, rounding=rounding,
        )
        self.stats = NormStatistics(arithmetic=norm, lanes=1, sets=samples * cols)
        self.scalar = NormScalar(
            arithmetic=norm,
            param_width=self.width,
            weighted_width=norm.grad_product_sum_format.width + self.width + 3,
        )
        # What the array accepts in one cycle: a (data, last) and b together.
        self.operand_layout = data.StructLayout(
            {"data": self.array.a_layout["data"].shape, "last": 1, "b": self.array.b_layout}
        )
        dma = self.dma
        super().__init__(
            {
                "axi": Out(dma.axi.signature),
                "read_command": In(dma.read_command.signature.flip()),
                "write_command": In(dma.write_command.signature.flip()),
                "read_idle": Out(1),
                "write_idle": Out(1),
                "bytes_read": Out(dma.counter_width),
                "bytes_written": Out(dma.counter_width),
                "fill_acquire": In(1),
                "fill_release": In(1),
                "fill_owned": Out(1),
                "drain_acquire": In(1),
                "drain_release": In(1),
                "drain_owned": Out(1),
                "weight_fill_acquire": In(1),
                "weight_fill_release": In(1),
                "weight_fill_owned": Out(1),
                "weight_drain_acquire": In(1),
                "weight_drain_release": In(1),
                "weight_drain_owned": Out(1),
                "read_target": In(1),
                "weight_command": In(self.weight_feeder.command.signature.flip()),
                "weight_feeder_idle": Out(1),
                "coefficients": In(self.affine.coefficients.signature.flip()),
                "feeder_command": In(self.feeder.command.signature.flip()),
                "feeder_idle": Out(1),
                "operand": _probe(self.operand_layout),
                "result": _probe(self.array.c_layout),
                "writer_idle": Out(1),
                "group_shift": In(3),
                "set_offset": In(range(samples * cols)),
                "stats_clear": In(1),
                "stats_read": In(self.stats.read_set.signature.flip()),
                "stats_sums": Out(self.stats.sums.signature),
                "scalar_command": In(self.scalar.command.signature.flip()),
                "scalar_result": Out(self.scalar.result.signature),
            }
        )

    def elaborate(self, platform):
        m = Module()
        dma, pad, feeder, affine = self.dma, self.scratchpad, self.feeder, self.affine
        array, writer, stats, scalar = self.array, self.writer, self.stats, self.scalar
        weight_pad, weight_feeder = self.weight_scratchpad, self.weight_feeder
        for name in ("dma", "scratchpad", "weight_scratchpad", "feeder", "weight_feeder", "affine", "array",
                     "writer", "stats", "scalar"):
            m.submodules[name] = getattr(self, name)

        # -- DMA, handshakes, host ports -------------------------------------------------------------------
        wiring.connect(m, wiring.flipped(self.axi), dma.axi)
        wiring.connect(m, wiring.flipped(self.read_command), dma.read_command)
        wiring.connect(m, wiring.flipped(self.write_command), dma.write_command)
        m.d.comb += [
            self.read_idle.eq(dma.read_idle),
            self.write_idle.eq(dma.write_idle),
            self.bytes_read.eq(dma.bytes_read),
            self.bytes_written.eq(dma.bytes_written),
            dma.clear_counters.eq(0),
        ]
        for name in ("fill_acquire", "fill_release", "drain_acquire", "drain_release"):
            m.d.comb += getattr(pad, name).eq(getattr(self, name))
            m.d.comb += getattr(weight_pad, name).eq(getattr(self, f"weight_{name}"))
        m.d.comb += [self.fill_owned.eq(pad.fill_owned), self.drain_owned.eq(pad.drain_owned)]
        m.d.comb += [
            self.weight_fill_owned.eq(weight_pad.fill_owned),
            self.weight_drain_owned.eq(weight_pad.drain_owned),
        ]
        wiring.connect(m, wiring.flipped(self.coefficients), affine.coefficients)
        wiring.connect(m, wiring.flipped(self.feeder_command), feeder.command)
        wiring.connect(m, wiring.flipped(self.stats_read), stats.read_set)
        wiring.connect(m, wiring.flipped(self.stats_sums), stats.sums)
        wiring.connect(m, wiring.flipped(self.scalar_command), scalar.command)
        wiring.connect(m, wiring.flipped(self.scalar_result), scalar.result)
        wiring.connect(m, wiring.flipped(self.weight_command), weight_feeder.command)
        m.d.comb += [
            self.feeder_idle.eq(feeder.idle),
            self.weight_feeder_idle.eq(weight_feeder.idle),
            self.writer_idle.eq(writer.idle),
        ]

        # -- DMA read beats: word a into bank a mod banks, word a // banks of the target scratchpad ----------
        bank_bits = self.banks.bit_length() - 1
        address = dma.read_data.payload.address
        bank_ready = 0
        for target, scratchpad in ((0, pad), (1, weight_pad)):
            for bank in range(self.banks):
                here = (address[:bank_bits] == bank if bank_bits else 1) & (self.read_target == target)
                write = scratchpad.write[bank]
                m.d.comb += [
                    write.valid.eq(dma.read_data.valid & here),
                    write.payload.address.eq(address >> bank_bits),
                    write.payload.data.eq(dma.read_data.payload.data),
                ]
                bank_ready = bank_ready | (here & write.ready)
        m.d.comb += dma.read_data.ready.eq(bank_ready)

        # -- feeder -> affine + ReLU -> array, `last` beside the affine pipeline ------------------------------
        for bank in range(self.banks):
            wiring.connect(m, feeder.read_address[bank], pad.read_address[bank])
            wiring.connect(m, pad.read_data[bank], feeder.read_data[bank])
        m.submodules.last_queue = last_queue = fifo.SyncFIFOBuffered(width=1, depth=_LAST_QUEUE)
        into_affine = feeder.operand.valid & affine.input.ready & last_queue.w_rdy
        m.d.comb += [
            affine.input.valid.eq(feeder.operand.valid & last_queue.w_rdy),
            affine.input.payload.set.eq(feeder.operand.payload.channel),
            affine.input.payload.pad.eq(feeder.operand.payload.pad),
            affine.input.payload.data.eq(feeder.operand.payload.data),
            feeder.operand.ready.eq(affine.input.ready & last_queue.w_rdy),
            last_queue.w_en.eq(into_affine),
            last_queue.w_data.eq(feeder.operand.payload.last),
        ]
        m.d.comb += [
            array.a.valid.eq(affine.output.valid),
            array.a.payload.data.eq(affine.output.payload),
            array.a.payload.last.eq(last_queue.r_data),
            affine.output.ready.eq(array.a.ready),
            last_queue.r_en.eq(affine.output.valid & array.a.ready),
        ]
        # The weight feeder's `last` duplicates the im2col feeder's (both streams are K beats per tile).
        for bank in range(self.banks):
            wiring.connect(m, weight_feeder.read_address[bank], weight_pad.read_address[bank])
            wiring.connect(m, weight_pad.read_data[bank], weight_feeder.read_data[bank])
        m.d.comb += [
            array.b.valid.eq(weight_feeder.operand.valid),
            array.b.payload.eq(weight_feeder.operand.payload.data),
            weight_feeder.operand.ready.eq(array.b.ready),
        ]
        m.d.comb += [
            self.operand.valid.eq(array.a.valid & array.a.ready),
            self.operand.payload.data.eq(array.a.payload.data),
            self.operand.payload.last.eq(array.a.payload.last),
            self.operand.payload.b.eq(array.b.payload),
        ]

        # -- array -> writer (requantize); DMA write fetches read it plane-major through the statistics -------
        wiring.connect(m, array.c, writer.c)
        m.d.comb += [self.result.valid.eq(array.c.valid & array.c.ready), self.result.payload.eq(array.c.payload)]
        fetch = dma.write_fetch.payload
        element = Signal(range(self.array.cols))  # channel of the word whose row is being read
        m.d.comb += [
            writer.read_address.valid.eq(dma.write_fetch.valid),
            writer.read_address.payload.eq(fetch[: self.position_bits]),
            dma.write_fetch.ready.eq(writer.read_address.ready),
        ]
        with m.If(dma.write_fetch.valid & writer.read_address.ready):
            m.d.sync += element.eq(fetch >> self.position_bits)
        m.d.comb += [
            stats.input.valid.eq(writer.read_data.valid),
            stats.input.payload.set.eq(self.set_offset + (element >> self.group_shift)),
            stats.input.payload.data[0].eq(writer.read_data.payload[element]),
            writer.read_data.ready.eq(stats.input.ready),
            stats.clear.eq(self.stats_clear),
            dma.write_fetched.valid.eq(stats.output.valid),
            dma.write_fetched.payload.eq(stats.output.payload.data[0]),
            stats.output.ready.eq(dma.write_fetched.ready),
        ]
        return m
