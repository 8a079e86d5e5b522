"""SymbiYosys proofs (prove mode, k-induction) for the scratchpad's ping-pong ownership controller.

Properties, stated against a ghost model of the buffers that is independent of the controller:

* exclusivity: no region is owned by the producer and the consumer at once;
* no overwrite (no drop): the producer is never granted a region whose data has not been drained;
* no duplicate, in order: the consumer is only granted filled regions, and its k-th drain is the
  k-th fill.

Each proof must fail on a controller with a seeded bug, so the harness can fail.
"""

import pytest
from amaranth import Array, Module, Signal
from amaranth.hdl import Assert
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from wavecore.hdl.memory.scratchpad import PingPongController, RegionState
from wavecore.verif.formal import run_sby

pytestmark = pytest.mark.formal

_SEQUENCE_WIDTH = 4  # ghost fill/drain counters wrap; 16 > regions keeps the order check meaningful


class PingPongHarness(wiring.Component):
    """Drives a controller from free inputs and checks it against a ghost buffer model."""

    def __init__(self, controller: PingPongController):
        self.controller = controller
        super().__init__(
            {name: In(1) for name in ("fill_acquire", "fill_release", "drain_acquire", "drain_release")}
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.controller
        regions = dut.regions
        for name in ("fill_acquire", "fill_release", "drain_acquire", "drain_release"):
            m.d.comb += getattr(dut, name).eq(getattr(self, name))

        holds_data = Array(Signal(name=f"ghost_full{index}") for index in range(regions))
        sequence = Array(Signal(_SEQUENCE_WIDTH, name=f"ghost_seq{index}") for index in range(regions))
        fills = Signal(_SEQUENCE_WIDTH)
        drains = Signal(_SEQUENCE_WIDTH)
        fill_done = dut.fill_owned & self.fill_release
        drain_done = dut.drain_owned & self.drain_release
        with m.If(fill_done):
            m.d.sync += [
                holds_data[dut.fill_region].eq(1),
                sequence[dut.fill_region].eq(fills),
                fills.eq(fills + 1),
            ]
        with m.If(drain_done):
            m.d.sync += [holds_data[dut.drain_region].eq(0), drains.eq(drains + 1)]

        # The properties.
        m.d.comb += Assert(
            ~(dut.fill_owned & dut.drain_owned & (dut.fill_region == dut.drain_region)),
            "region owned by producer and consumer at once",
        )
        with m.If(dut.fill_owned):
            m.d.comb += Assert(~holds_data[dut.fill_region], "producer granted a region not yet drained")
        with m.If(dut.drain_owned):
            m.d.comb += [
                Assert(holds_data[dut.drain_region], "consumer granted a region that holds no new data"),
                Assert(sequence[dut.drain_region] == drains, "consumer granted buffers out of fill order"),
            ]
        # Strengthening invariants relating the controller's state to the ghost (make induction close).
        buffered = 0
        for index in range(regions):
            state = dut.state[index]
            full = (state == RegionState.FULL) | (state == RegionState.DRAINING)
            buffered = buffered + full
            m.d.comb += Assert(full == holds_data[index], "ghost and controller disagree on contents")
            # A buffered region at ring distance d from drain_region holds fill number drains + d.
            distance = Signal(range(regions), name=f"distance{index}")
            m.d.comb += distance.eq(((index + regions) - dut.drain_region) % regions)
            with m.If(full):
                m.d.comb += Assert(
                    sequence[index] == (drains + distance)[:_SEQUENCE_WIDTH], "ghost order invariant"
                )
            with m.If(state == RegionState.FILLING):
                m.d.comb += Assert(dut.fill_region == index, "filling region is not the fill pointer")
            with m.If(state == RegionState.DRAINING):
                m.d.comb += Assert(dut.drain_region == index, "draining region is not the drain pointer")
        m.d.comb += Assert((fills - drains)[:_SEQUENCE_WIDTH] == buffered, "fill/drain count invariant")
        fill_distance = Signal(range(regions))
        m.d.comb += fill_distance.eq(((dut.fill_region + regions) - dut.drain_region) % regions)
        with m.If(buffered != regions):
            m.d.comb += Assert(fill_distance == buffered, "fill pointer is drain pointer + buffered count")
        with m.Else():
            m.d.comb += Assert(fill_distance == 0, "fill pointer wrapped onto drain pointer when full")
        return m


class _OverwritingController(PingPongController):
    """Seeded bug: grants the producer a region that is FULL (not yet drained)."""

    def _may_grant_fill(self, m, state):
        return state != RegionState.DRAINING


class _SharingController(PingPongController):
    """Seeded bug: grants the producer the region the consumer is draining."""

    def _may_grant_fill(self, m, state):
        return state != RegionState.FULL


@pytest.mark.parametrize("regions", [2, 3])
def test_pingpong_controller_never_shares_drops_or_duplicates_a_region(regions, tmp_path):
    result = run_sby(
        PingPongHarness(PingPongController(regions=regions)), workdir=tmp_path, mode="prove", depth=6
    )
    assert result.status == "PASS", result.log[-3000:]


@pytest.mark.parametrize(
    ("mutant", "message"),
    [
        (_OverwritingController, "producer granted a region not yet drained"),
        (_SharingController, "producer granted a region not yet drained"),
    ],
)
def test_pingpong_proof_fails_on_seeded_bug(mutant, message, tmp_path):
    result = run_sby(PingPongHarness(mutant(regions=2)), workdir=tmp_path, mode="prove", depth=6)
    assert result.status == "FAIL", result.log[-3000:]
    assert any(message in line for line in result.failed_sources()), result.failed_sources()
