"""SymbiYosys proofs (prove mode, k-induction) for the result writer's write and read-modify-write path.

For any row stream (a free ``c.valid``, ``c.payload`` and ``accumulate`` every cycle, back to back or with
gaps) after reset, tracking one symbolic bank row ``tracked`` (a free input assumed constant, i.e. an
``AnyConst``) through the writer's host read port:

* the k-th accepted row goes to address ``k mod depth`` (in order, wrapping at ``depth``): a ghost pointer,
  advanced by the harness on every accepted row, equals the writer's ``write_pointer``;
* the bank row at ``tracked`` always equals a shadow register holding what the row stream defines: a row
  accepted at ``tracked`` with ``accumulate = 0`` replaces the shadow, with ``accumulate = 1`` it is added to
  it by :meth:`wavecore.golden.numerics.MacArithmetic.add` (``wrap`` or ``saturate``; tabulated for the narrow
  accumulator, so the oracle is the golden model, not the writer's adder). The shadow includes every earlier
  row, also the one accepted the cycle before, so a read-modify-write that read a stale bank row (or a row
  written twice, or to the wrong address) breaks the equality; ``depth = 2`` makes rows to the same address
  come every other cycle.

The host port reads ``tracked`` every cycle; its response in cycle ``t`` is the bank row at the start of
cycle ``t - 1``, so it is compared with the shadow two cycles earlier. Reset is assumed low (the proof is
about operation after reset; the bank and the shadow start at 0). Each proof must fail on a writer with a
seeded bug.
"""

import numpy as np
import pytest
from amaranth import Cat, Const, Module, Mux, ResetSignal, Signal
from amaranth.hdl import Assert, Assume
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from wavecore.hdl.memory.writer import ResultWriter
from wavecore.verif.formal import run_sby

pytestmark = pytest.mark.formal

_DEPTH = 6  # induction length: the response lags the shadow by two cycles and the row pipeline by one


def _add_table(arithmetic) -> list[int]:
    """``MacArithmetic.add(old, new)`` as bit patterns, indexed by the bit pattern ``old << width | new``."""
    accumulator = arithmetic.accumulator
    patterns = np.arange(1 << accumulator.width, dtype=np.int64)
    values = np.where(
        accumulator.signed & (patterns > accumulator.max), patterns - (1 << accumulator.width), patterns
    )
    old, new = np.meshgrid(values, values, indexing="ij")
    return [int(v) for v in accumulator.to_unsigned(arithmetic.add(old, new)).ravel()]


class WriterHarness(wiring.Component):
    """Free row stream into a writer; the bank row at one symbolic address is checked against a shadow."""

    def __init__(self, writer: ResultWriter):
        self.writer = writer
        width = writer.arithmetic.acc_width
        super().__init__(
            {
                "valid": In(1),
                "row": In(writer.cols * width),
                "accumulate": In(1),
                "tracked": In(range(writer.depth)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.writer = dut = self.writer
        depth, width = dut.depth, dut.arithmetic.acc_width
        m.d.comb += [
            Assume(~ResetSignal("sync")),
            dut.c.valid.eq(self.valid),
            dut.c.payload.eq(self.row),
            dut.accumulate.eq(self.accumulate),
            dut.read_address.valid.eq(1),
            dut.read_address.payload.eq(self.tracked),
            dut.read_data.ready.eq(1),
        ]
        # `tracked` is an AnyConst (Amaranth 0.5 has no public AnyConst; free ports are the existing harnesses'
        # free variables): free in the first cycle, then assumed held.
        started = Signal()
        held = Signal.like(self.tracked)
        m.d.sync += [started.eq(1), held.eq(self.tracked)]
        m.d.comb += Assume(~started | (self.tracked == held))

        # Ghost pointer: where the next accepted row must go.
        pointer = Signal(range(depth))
        with m.If(self.valid):
            m.d.sync += pointer.eq(Mux(pointer == depth - 1, 0, pointer + 1))
        m.d.comb += Assert(dut.write_pointer == pointer, "row not written at the next address in order")

        # Shadow of bank[tracked], and its value two cycles ago (what the host port returns now).
        # A wide constant indexed by word_select (a shift): an Array would become a ROM, i.e. a memory whose
        # contents are free in the induction step.
        table = Const(sum(value << (index * width) for index, value in enumerate(_add_table(dut.arithmetic))),
                      width << (2 * width))
        shadow = [Signal(width, name=f"shadow{j}") for j in range(dut.cols)]
        delayed = [Signal(width, name=f"shadow{j}_d1") for j in range(dut.cols)]
        expected = [Signal(width, name=f"shadow{j}_d2") for j in range(dut.cols)]
        for j in range(dut.cols):
            new = self.row[j * width:(j + 1) * width]
            with m.If(self.valid & (pointer == self.tracked)):
                m.d.sync += shadow[j].eq(Mux(self.accumulate, table.word_select(Cat(new, shadow[j]), width), new))
            m.d.sync += [delayed[j].eq(shadow[j]), expected[j].eq(delayed[j])]
        with m.If(dut.read_data.valid):
            m.d.comb += Assert(
                dut.read_data.payload.as_value() == Cat(*expected), "bank row differs from the expected row"
            )
        return m


class _SkippingWriter(ResultWriter):
    """Seeded bug: skips address 1 (rows go to 0, 2, 3, 0, ..)."""

    def _next_address(self, address):
        return Mux(address == 0, 2, super()._next_address(address))


class _StaleReadWriter(ResultWriter):
    """Seeded bug: the read-modify-write adds to 0 instead of the bank row it read."""

    def _add(self, old, new):
        return super()._add(Const(0, self.accumulator), new)


class _WrappingWriter(ResultWriter):
    """Seeded bug: always wraps, also when configured to saturate."""

    def _add(self, old, new):
        return (old + new)[:self.arithmetic.acc_width]


@pytest.mark.parametrize(
    ("cols", "depth", "signed", "overflow"),
    [(2, 4, True, "wrap"), (2, 4, True, "saturate"), (1, 2, False, "saturate")],
)
def test_writer_writes_each_row_once_in_order_and_accumulates_fresh_values(cols, depth, signed, overflow, tmp_path):
    writer = ResultWriter(cols=cols, depth=depth, acc_width=4, signed=signed, overflow=overflow)
    result = run_sby(WriterHarness(writer), workdir=tmp_path, mode="prove", depth=_DEPTH)
    assert result.status == "PASS", result.log[-3000:]


@pytest.mark.parametrize(
    ("mutant", "depth", "overflow", "message"),
    [
        (_SkippingWriter, 4, "wrap", "next address in order"),
        # depth 2: the second row at an address comes within the base case's 6 cycles
        (_StaleReadWriter, 2, "wrap", "expected row"),
        (_WrappingWriter, 2, "saturate", "expected row"),
    ],
)
def test_writer_proof_fails_on_seeded_bug(mutant, depth, overflow, message, tmp_path):
    writer = mutant(cols=1, depth=depth, acc_width=4, signed=True, overflow=overflow)
    result = run_sby(WriterHarness(writer), workdir=tmp_path, mode="prove", depth=_DEPTH)
    assert result.status == "FAIL", result.log[-3000:]
    assert any(message in line for line in result.failed_sources()), result.failed_sources()
