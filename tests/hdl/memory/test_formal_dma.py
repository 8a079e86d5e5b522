"""SymbiYosys proofs (prove mode) for the DMA's AXI4 address channels.

For every reachable state, with any descriptors and any subordinate behaviour (free inputs, only assumed
not to return data or responses for transactions it was never given):

* no AR or AW burst crosses a 4 KiB boundary (AXI4 §A3.4.1);
* never more than ``max_outstanding`` read bursts (AR issued, last R beat not yet received) or write
  bursts (AW issued, B not yet received) are in flight.

Each proof must fail on a DMA with a seeded bug (depth 9: a channel issues at most one burst every two
cycles, so a third burst in flight is first reachable in the 8th cycle).
"""

import pytest
from amaranth import Module, Signal, Value
from amaranth.hdl import Assert, Assume, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from wavecore.hdl.memory.dma import Dma
from wavecore.verif.formal import run_sby

pytestmark = pytest.mark.formal

_SMALL = {"address_width": 16, "data_width": 32, "count_width": 5, "scratch_width": 4, "counter_width": 8}


class DmaHarness(wiring.Component):
    """Every input of the DMA is a free input of the harness; outputs are checked."""

    def __init__(self, dma: Dma):
        self.dma = dma
        self._inputs = [
            (path, member, value) for path, member, value in dma.signature.flatten(dma) if member.flow == In
        ]
        super().__init__(
            {
                "__".join(map(str, path)): In(Shape.cast(member.shape).width)
                for path, member, _ in self._inputs
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = dma = self.dma
        for path, _, value in self._inputs:
            m.d.comb += Value.cast(value).eq(getattr(self, "__".join(map(str, path))))
        axi = dma.axi
        reads = Signal(8)  # AR handshakes minus last-R handshakes
        writes = Signal(8)  # AW handshakes minus B handshakes
        read_done = axi.rvalid & axi.rready & axi.rlast
        write_done = axi.bvalid & axi.bready
        m.d.sync += [
            reads.eq(reads + (axi.arvalid & axi.arready) - read_done),
            writes.eq(writes + (axi.awvalid & axi.awready) - write_done),
        ]
        # The subordinate only answers transactions it was given.
        m.d.comb += [Assume(~axi.rvalid | (reads != 0)), Assume(~axi.bvalid | (writes != 0))]

        for channel in ("ar", "aw"):
            address = getattr(axi, f"{channel}addr")[:12]
            beats = getattr(axi, f"{channel}len") + 1
            with m.If(getattr(axi, f"{channel}valid")):
                m.d.comb += Assert(
                    address + beats * dma.beat_bytes <= 4096,
                    f"{channel.upper()} burst crosses a 4 KiB boundary",
                )
        m.d.comb += [
            Assert(reads <= dma.max_outstanding, "too many read bursts outstanding"),
            Assert(writes <= dma.max_outstanding, "too many write bursts outstanding"),
            # Strengthening invariants (make the induction close).
            Assert(dma.read_outstanding == reads),
            Assert(dma.write_outstanding == writes),
        ]
        for walker in (dma.read_walker, dma.write_walker):
            with m.If(walker.active):
                m.d.comb += [Assert(walker.row_remaining != 0), Assert(walker.length != 0)]
        return m


class _BoundaryBlindDma(Dma):
    """Seeded bug: bursts are capped by max_burst only."""

    def _burst_limit(self, row_remaining, to_boundary):
        return super()._burst_limit(row_remaining, self.max_burst)


class _OffByOneCreditDma(Dma):
    """Seeded bug: one burst more than allowed may be issued."""

    def _may_issue(self, outstanding):
        return outstanding <= self.max_outstanding


@pytest.mark.parametrize(("max_burst", "max_outstanding", "byte_granular"),
                         [(16, 2, False), (256, 3, False), (16, 2, True)])
def test_dma_never_crosses_4k_nor_exceeds_outstanding_limit(max_burst, max_outstanding, byte_granular, tmp_path):
    dma = Dma(max_burst=max_burst, max_outstanding=max_outstanding, byte_granular=byte_granular, **_SMALL)
    result = run_sby(DmaHarness(dma), workdir=tmp_path, mode="prove", depth=9)
    assert result.status == "PASS", result.log[-3000:]


@pytest.mark.parametrize(
    ("mutant", "message"),
    [
        (_BoundaryBlindDma, "<= 4096"),
        (_OffByOneCreditDma, "too many"),
    ],
)
@pytest.mark.parametrize("byte_granular", [False, True])
def test_dma_proof_fails_on_seeded_bug(mutant, message, byte_granular, tmp_path):
    dma = mutant(max_burst=256, max_outstanding=2, byte_granular=byte_granular, **_SMALL)
    result = run_sby(DmaHarness(dma), workdir=tmp_path, mode="prove", depth=9)
    assert result.status == "FAIL", result.log[-3000:]
    assert any(message in line for line in result.failed_sources()), result.failed_sources()
