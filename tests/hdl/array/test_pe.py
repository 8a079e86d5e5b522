"""hdl/array/pe.py in amaranth.sim: the MAC against golden.numerics, tags, drain, stall and weight double buffer."""

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from wavecore.golden.numerics import MacArithmetic
from wavecore.hdl.array.pe import ProcessingElement

pytestmark = pytest.mark.filterwarnings("ignore:.*created but never used")


class _TwoStageMultiplier(wiring.Component):
    latency = 2

    def __init__(self, *, operand_shape, product_shape):
        super().__init__(
            {"a": In(operand_shape), "b": In(operand_shape), "enable": In(1), "product": Out(product_shape)}
        )

    def elaborate(self, platform):
        m = Module()
        a_stage, b_stage = Signal(self.a.shape()), Signal(self.b.shape())
        with m.If(self.enable):
            m.d.sync += [a_stage.eq(self.a), b_stage.eq(self.b), self.product.eq(a_stage * b_stage)]
        return m


def _simulate(dut, testbench):
    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()


def _run_output_stationary(pe, tiles, *, stall_rng=None, gap_rng=None):
    """Stream ``tiles`` (lists of (a, b) pairs) through an OS PE; return every captured result."""
    beats = [(a, b, index == len(tile) - 1) for tile in tiles for index, (a, b) in enumerate(tile)]
    captured = []

    async def testbench(ctx):
        ctx.set(pe.advance, 1)
        pending = list(beats)
        idle_after = 12
        while pending or idle_after:
            if pending and not (gap_rng is not None and gap_rng.random() < 0.3):
                a, b, last = pending[0]
                ctx.set(pe.a_in, a)
                ctx.set(pe.b_in, b)
                ctx.set(pe.a_last_in, last)
                ctx.set(pe.a_valid_in, 1)
            else:
                ctx.set(pe.a_valid_in, 0)
            stalled = stall_rng is not None and stall_rng.random() < 0.3
            ctx.set(pe.advance, 0 if stalled else 1)
            capture = ctx.get(pe.capture)
            await ctx.tick()
            if capture:
                captured.append(ctx.get(pe.result))
            if not stalled:
                if ctx.get(pe.a_valid_out) and pending and ctx.get(pe.a_out) == pending[0][0]:
                    pending.pop(0)
                elif not pending:
                    idle_after -= 1

    _simulate(pe, testbench)
    return captured


def _expected(arithmetic, tiles):
    return [
        int(arithmetic.matmul(np.array([[a for a, _ in tile]]), np.array([[b] for _, b in tile]))[0, 0])
        for tile in tiles
    ]


def _random_tiles(arithmetic, rng, lengths):
    operand = arithmetic.operand
    return [
        list(zip(operand.random(rng, length, 0.3).tolist(), operand.random(rng, length, 0.3).tolist()))
        for length in lengths
    ]


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_output_stationary_pe_accumulates_each_tile_like_numerics(signed, overflow):
    arithmetic = MacArithmetic(in_width=6, acc_width=14, signed=signed, overflow=overflow)
    rng = np.random.default_rng(7)
    tiles = _random_tiles(arithmetic, rng, [3, 1, 1, 7, 40, 2])
    pe = ProcessingElement(arithmetic=arithmetic, dataflow="output_stationary")
    assert _run_output_stationary(pe, tiles) == _expected(arithmetic, tiles)


def test_narrow_accumulator_saturates_in_k_order_and_wraps_otherwise():
    # 7*7 = 49 three times reaches 147 > 127: saturate clamps to 127 then adds -56 -> 71; wrap gives 91.
    tile = [(7, 7), (7, 7), (7, 7), (-8, 7)]
    for overflow, expected in (("saturate", 71), ("wrap", 91)):
        arithmetic = MacArithmetic(in_width=4, acc_width=8, signed=True, overflow=overflow)
        assert _expected(arithmetic, [tile]) == [expected]
        pe = ProcessingElement(arithmetic=arithmetic, dataflow="output_stationary")
        assert _run_output_stationary(pe, [tile]) == [expected]


def test_stalls_and_gaps_do_not_change_the_results():
    arithmetic = MacArithmetic(in_width=8, acc_width=20, signed=True, overflow="saturate")
    rng = np.random.default_rng(11)
    tiles = _random_tiles(arithmetic, rng, [5, 1, 9, 3])
    pe = ProcessingElement(arithmetic=arithmetic, dataflow="output_stationary")
    assert _run_output_stationary(
        pe, tiles, stall_rng=np.random.default_rng(1), gap_rng=np.random.default_rng(2)
    ) == _expected(arithmetic, tiles)


def test_multiplier_hook_latency_two_keeps_tags_aligned():
    arithmetic = MacArithmetic(in_width=8, acc_width=24)
    rng = np.random.default_rng(3)
    tiles = _random_tiles(arithmetic, rng, [4, 1, 6])
    pe = ProcessingElement(
        arithmetic=arithmetic, dataflow="output_stationary", multiplier=_TwoStageMultiplier
    )
    assert _run_output_stationary(pe, tiles, gap_rng=np.random.default_rng(4)) == _expected(arithmetic, tiles)


def test_capture_comes_latency_plus_one_edges_after_the_operand_register():
    pe = ProcessingElement(arithmetic=MacArithmetic(), dataflow="output_stationary")
    seen = []

    async def testbench(ctx):
        ctx.set(pe.advance, 1)
        ctx.set(pe.a_in, 3)
        ctx.set(pe.b_in, -4)
        ctx.set(pe.a_valid_in, 1)
        ctx.set(pe.a_last_in, 1)
        await ctx.tick()  # edge 0: a_out holds the beat
        ctx.set(pe.a_valid_in, 0)
        for edge in range(1, 5):
            seen.append((edge, ctx.get(pe.capture)))
            await ctx.tick()
        assert ctx.get(pe.result) == -12

    _simulate(pe, testbench)
    # latency 1: product registered at edge 1, captured into result at edge 2
    assert [edge for edge, capture in seen if capture] == [2]


def test_drain_shift_loads_the_value_from_the_north_only_when_enabled():
    pe = ProcessingElement(arithmetic=MacArithmetic(), dataflow="output_stationary")

    async def testbench(ctx):
        ctx.set(pe.result_in, -123456)
        ctx.set(pe.advance, 1)
        await ctx.tick()
        assert ctx.get(pe.result) == 0
        ctx.set(pe.drain_shift, 1)
        ctx.set(pe.advance, 0)  # stalled: no shift
        await ctx.tick()
        assert ctx.get(pe.result) == 0
        ctx.set(pe.advance, 1)
        await ctx.tick()
        assert ctx.get(pe.result) == -123456

    _simulate(pe, testbench)


def test_weight_stationary_pe_double_buffers_and_switches_with_the_tagged_beat():
    arithmetic = MacArithmetic(in_width=8, acc_width=20, signed=True, overflow="saturate")
    pe = ProcessingElement(arithmetic=arithmetic, dataflow="weight_stationary")
    outputs = []

    async def testbench(ctx):
        ctx.set(pe.advance, 1)
        # preload 5 from below into the shadow; the active weight stays 0
        ctx.set(pe.weight_from_below, 5)
        ctx.set(pe.weight_from_right, -7)
        ctx.set(pe.weight_load, 1)
        await ctx.tick()
        ctx.set(pe.weight_load, 0)
        assert ctx.get(pe.weight_shadow) == 5
        beats = [(10, 1000, 0), (10, 1000, 1), (-3, 2, 0), (127, 524287, 0)]
        for index, (a, _, switch) in enumerate(beats):
            ctx.set(pe.a_in, a)
            ctx.set(pe.a_valid_in, 1)
            ctx.set(pe.a_switch_in, switch)
            if index == 2:  # transposed preload of the next weight while the current one computes
                ctx.set(pe.weight_transpose, 1)
                ctx.set(pe.weight_load, 1)
            await ctx.tick()  # edge e: the beat is in a_out
            ctx.set(pe.weight_load, 0)
            # psum_out is written at edge e + latency + 1, so the previous beat's psum is due now
            ctx.set(pe.psum_in, beats[index - 1][1] if index else 0)
            outputs.append((ctx.get(pe.psum_out), ctx.get(pe.psum_valid_out)))
        ctx.set(pe.a_valid_in, 0)
        for step in range(3):
            await ctx.tick()
            ctx.set(pe.psum_in, beats[-1][1] if step == 0 else 0)
            outputs.append((ctx.get(pe.psum_out), ctx.get(pe.psum_valid_out)))
        assert ctx.get(pe.weight_shadow) == -7

    _simulate(pe, testbench)
    # active weight 0 for beat 0 (nothing switched in yet), 5 from the switch beat on, while -7 preloads
    valid = [value for value, flag in outputs if flag]
    assert valid == [1000 + 0 * 10, 1000 + 5 * 10, 2 + 5 * -3, int(arithmetic.add(524287, 5 * 127))]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"arithmetic": MacArithmetic(), "dataflow": "systolic"},
            ValueError,
            "dataflow must be one of output_stationary, weight_stationary, not 'systolic'",
        ),
        (
            {"arithmetic": 8, "dataflow": "output_stationary"},
            TypeError,
            "arithmetic must be a wavecore.golden.numerics.MacArithmetic, not 8",
        ),
        (
            {"arithmetic": MacArithmetic(), "dataflow": "output_stationary", "multiplier": None},
            TypeError,
            "multiplier must be a callable returning a multiplier component, not None",
        ),
    ],
)
def test_bad_pe_parameters_are_rejected_with_exact_messages(kwargs, error, message):
    with pytest.raises(error) as raised:
        ProcessingElement(**kwargs)
    assert str(raised.value) == message


def test_output_stationary_pe_works_in_a_reset_less_domain():
    # Board tops without a reset button have a reset-less `sync` domain: the accumulator must start from
    # its initial value (0) and the clear must not need `rst`.
    from amaranth import ClockDomain

    arithmetic = MacArithmetic(in_width=8, acc_width=32)
    pe = ProcessingElement(arithmetic=arithmetic, dataflow="output_stationary")
    top = Module()
    top.domains.sync = ClockDomain(reset_less=True)
    top.submodules.pe = pe
    a = [17, -128, 127, 5, -3]
    b = [-9, -128, 127, 44, 2]
    results = []

    async def testbench(ctx):
        ctx.set(pe.advance, 1)
        for tile in range(2):
            for k in range(len(a)):
                ctx.set(pe.a_in, a[k] if tile == 0 else a[::-1][k])
                ctx.set(pe.b_in, b[k])
                ctx.set(pe.a_valid_in, 1)
                ctx.set(pe.a_last_in, int(k == len(a) - 1))
                await ctx.tick()
            ctx.set(pe.a_valid_in, 0)
            ctx.set(pe.a_last_in, 0)
            for _ in range(4):
                captured = ctx.get(pe.capture)
                await ctx.tick()
                if captured:
                    results.append(ctx.get(pe.result))

    simulator = Simulator(top)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    expected = [int(np.dot(a, b)), int(np.dot(a[::-1], b))]  # no int32 wrap here
    assert results == expected
