"""The self-checking BIST top: hardware LFSR/MISR against the integer model, detection of a wrong block."""

import pytest
from amaranth import Module, Mux, Signal, signed
from amaranth.sim import Simulator
from board_test_designs import Mac, StreamDoubler

from wavecore.boards.bist import (
    LFSR_TAPS,
    BistCore,
    Lfsr,
    fold,
    input_ports,
    observed_ports,
    output_ports,
    reference_signature,
)


def _run_core(core, cycles):
    outcome = {}

    async def testbench(ctx):
        for _ in range(cycles + 3):
            await ctx.tick()
        outcome.update(done=ctx.get(core.done), passed=ctx.get(core.passed), misr=ctx.get(core.misr))

    simulator = Simulator(core)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    return outcome


def test_lfsr_model_has_the_stated_polynomial_and_a_long_period():
    # x^32 + x^22 + x^2 + x + 1 (XAPP052 taps 32, 22, 2, 1): the Galois toggle mask has bits 31, 21, 1, 0
    assert LFSR_TAPS == (1 << 31) | (1 << 21) | (1 << 1) | 1
    state = start = Lfsr.seed(0)
    seen = set()
    for _ in range(100_000):
        seen.add(state)
        state = Lfsr.step(state)
    assert len(seen) == 100_000 and state != start  # no short cycle


def test_fold_xors_32_bit_words():
    assert fold(0x1_0000_0002 | (0x3 << 64), 66) == 0x1 ^ 0x2 ^ 0x3


@pytest.mark.parametrize("factory", [Mac, StreamDoubler], ids=["mac", "stream"])
def test_hardware_signature_equals_the_integer_model_and_lights_pass(factory):
    cycles = 200
    expected = reference_signature(factory, cycles)
    outcome = _run_core(BistCore(factory(), cycles=cycles, expected=expected), cycles)
    assert outcome == {"done": 1, "passed": 1, "misr": expected}


def test_stream_ports_are_driven_and_observed_in_both_directions():
    block = StreamDoubler()
    assert [len(port) for port in input_ports(block)] == [8, 1, 1]  # i.payload, i.valid, o.ready
    assert [len(port) for port in output_ports(block)] == [1, 9, 1]  # i.ready, o.payload, o.valid


def test_stream_payload_is_folded_only_while_valid():
    block = StreamDoubler()
    observed = observed_ports(block)
    assert [valid is None for _, valid in observed] == [True, False, True]  # o.payload paired with o.valid
    assert observed[1][1] is observed[2][0]

    def doubler(idle_payload):  # StreamDoubler with ``idle_payload(i)`` on o.payload while o.valid is low
        class Doubler(StreamDoubler):
            def elaborate(self, platform):
                m = Module()
                held = Signal(signed(9))
                with m.If(self.o.ready | ~self.o.valid):
                    m.d.sync += [self.o.valid.eq(self.i.valid), held.eq(self.i.payload * 2)]
                m.d.comb += [self.i.ready.eq(self.o.ready | ~self.o.valid),
                             self.o.payload.eq(Mux(self.o.valid, held, idle_payload(self)))]
                return m

        return Doubler

    cycles = 200
    reference = reference_signature(doubler(lambda block: 0), cycles)
    assert reference_signature(doubler(lambda block: block.i.payload), cycles) == reference
    assert reference_signature(StreamDoubler, cycles) == reference
    outcome = _run_core(BistCore(doubler(lambda block: block.i.payload)(), cycles=cycles, expected=reference), cycles)
    assert outcome == {"done": 1, "passed": 1, "misr": reference}



def test_a_wrong_block_or_a_wrong_expectation_fails():
    cycles = 200
    good = reference_signature(Mac, cycles)
    assert reference_signature(lambda: Mac(bug=True), cycles) != good
    outcome = _run_core(BistCore(Mac(bug=True), cycles=cycles, expected=good), cycles)
    assert outcome["done"] == 1 and outcome["passed"] == 0


def test_bist_parameters_are_validated():
    with pytest.raises(ValueError, match="cycles must be a positive integer, not 0"):
        BistCore(Mac(), cycles=0)
    with pytest.raises(ValueError, match="expected must be a 32-bit unsigned integer, not -1"):
        BistCore(Mac(), cycles=4, expected=-1)
