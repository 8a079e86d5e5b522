"""Glue for the integration test (tests/test_integration_conv.py): the BN fission-fusion read path.

DRAM --AXI4--> Dma --(stats on write: NormStatistics)--> Scratchpad (ping-pong, banked by w mod banks)
  --> Im2colFeeder --> NormAffine (affine + ReLU, padding after) --> operand stream for the array,
with the NormScalar unit turning the statistics into the affine constants. Not a wavecore block: it exists
so one testbench can drive the blocks together through their real interfaces.
"""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.dma import Dma
from hdl.feeder import Im2colFeeder
from hdl.norm_affine import NormAffine
from hdl.norm_scalar import NormScalar
from hdl.norm_stats import NormStatistics
from hdl.scratchpad import Scratchpad


class BnReadPath(wiring.Component):
    """DMA in -> stats on write -> scratchpad -> im2col feeder -> affine+ReLU, plus the scalar unit.

    One element per DRAM word (``data_width = width``), so the scratchpad word address ``a`` of element
    (c, h, w) of a C x H x W tensor with ``W`` a multiple of ``banks`` is its NCHW offset: bank ``a mod
    banks``, word ``a // banks``. ``H * W = 2**plane_shift`` so the statistics set (= channel) is
    ``a >> plane_shift``.
    """

    def __init__(
        self, *, arithmetic, channels: int, plane_shift: int, banks: int, lanes: int, region_depth: int
    ):
        self.arithmetic = arithmetic
        self.width = arithmetic.activation.width
        self.banks = banks
        self.plane_shift = plane_shift
        self.dma = Dma(
            address_width=32,
            data_width=self.width,
            max_burst=16,
            max_outstanding=2,
            count_width=16,
            scratch_width=(banks * region_depth - 1).bit_length(),
        )
        self.stats = NormStatistics(arithmetic=arithmetic, lanes=1, sets=channels)
        self.scratchpad = Scratchpad(banks=banks, depth=2 * region_depth, width=self.width, regions=2)
        self.feeder = Im2colFeeder(
            lanes=lanes, banks=banks, bank_depth=region_depth, width=self.width, dimension_width=8
        )
        self.affine = NormAffine(arithmetic=arithmetic, lanes=lanes, sets=channels)
        self.scalar = NormScalar(
            arithmetic=arithmetic,
            param_width=self.width,
            weighted_width=arithmetic.grad_product_sum_format.width + self.width + 3,
        )
        super().__init__(
            {
                "axi": Out(self.dma.axi.signature),
                "dma_command": In(self.dma.read_command.signature.flip()),
                "dma_idle": Out(1),
                "fill_acquire": In(1),
                "fill_release": In(1),
                "fill_owned": Out(1),
                "drain_acquire": In(1),
                "drain_release": In(1),
                "drain_owned": Out(1),
                "stats_clear": In(1),
                "stats_read": In(self.stats.read_set.signature.flip()),
                "stats_sums": Out(self.stats.sums.signature),
                "scalar_command": In(self.scalar.command.signature.flip()),
                "scalar_result": Out(self.scalar.result.signature),
                "coefficients": In(self.affine.coefficients.signature.flip()),
                "feeder_command": In(self.feeder.command.signature.flip()),
                "feeder_idle": Out(1),
                "operand": Out(stream.Signature(self.affine.output.payload.shape())),
            }
        )

    def elaborate(self, platform):
        m = Module()
        dma, stats, pad, feeder, affine, scalar = (
            self.dma,
            self.stats,
            self.scratchpad,
            self.feeder,
            self.affine,
            self.scalar,
        )
        for name, block in (
            ("dma", dma),
            ("stats", stats),
            ("scratchpad", pad),
            ("feeder", feeder),
            ("affine", affine),
            ("scalar", scalar),
        ):
            m.submodules[name] = block
        wiring.connect(m, wiring.flipped(self.axi), dma.axi)
        wiring.connect(m, wiring.flipped(self.dma_command), dma.read_command)
        m.d.comb += [
            self.dma_idle.eq(dma.read_idle),
            dma.write_command.valid.eq(0),
            dma.write_fetched.valid.eq(0),
            dma.write_fetch.ready.eq(0),
            dma.clear_counters.eq(0),
        ]
        for name in ("fill_acquire", "fill_release", "drain_acquire", "drain_release"):
            m.d.comb += getattr(pad, name).eq(getattr(self, name))
        m.d.comb += [self.fill_owned.eq(pad.fill_owned), self.drain_owned.eq(pad.drain_owned)]

        # DMA read beats pass through the statistics unit into the bank the address selects.
        bank_bits = self.banks.bit_length() - 1
        address = dma.read_data.payload.address
        m.d.comb += [
            stats.input.valid.eq(dma.read_data.valid),
            stats.input.payload.set.eq(address >> self.plane_shift),
            stats.input.payload.data[0].eq(dma.read_data.payload.data),
            dma.read_data.ready.eq(stats.input.ready),
            stats.clear.eq(self.stats_clear),
        ]
        bank_ready = 0
        for bank in range(self.banks):
            here = address[:bank_bits] == bank if bank_bits else 1
            write = pad.write[bank]
            m.d.comb += [
                write.valid.eq(stats.output.valid & here),
                write.payload.address.eq(address >> bank_bits),
                write.payload.data.eq(stats.output.payload.data[0]),
            ]
            bank_ready = bank_ready | (here & write.ready)
        m.d.comb += stats.output.ready.eq(bank_ready)
        wiring.connect(m, wiring.flipped(self.stats_read), stats.read_set)
        wiring.connect(m, wiring.flipped(self.stats_sums), stats.sums)
        wiring.connect(m, wiring.flipped(self.scalar_command), scalar.command)
        wiring.connect(m, wiring.flipped(self.scalar_result), scalar.result)
        wiring.connect(m, wiring.flipped(self.coefficients), affine.coefficients)

        # Feeder reads the drained region; its beats go through affine+ReLU.
        wiring.connect(m, wiring.flipped(self.feeder_command), feeder.command)
        for bank in range(self.banks):
            wiring.connect(m, feeder.read_address[bank], pad.read_address[bank])
            wiring.connect(m, pad.read_data[bank], feeder.read_data[bank])
        m.d.comb += [
            affine.input.valid.eq(feeder.operand.valid),
            affine.input.payload.set.eq(feeder.operand.payload.channel),
            affine.input.payload.pad.eq(feeder.operand.payload.pad),
            affine.input.payload.data.eq(feeder.operand.payload.data),
            feeder.operand.ready.eq(affine.input.ready),
            self.feeder_idle.eq(feeder.idle),
        ]
        wiring.connect(m, affine.output, wiring.flipped(self.operand))
        return m
