"""The first wrong instruction of a training step on the core (verif/instruction_bisect.py).

The fault test builds the core with a VECTOR unit that corrupts one function's results (:class:`BrokenVector`) on a
small network (``trace_fault_net.yaml``) and checks that the bisection names the first instruction of that
function in program order; the other tests check the truncated programs on the instruction-level simulator alone.
"""

from pathlib import Path

from amaranth import Module, Mux
from amaranth.lib import wiring

from wavecore.golden.core import isa
from wavecore.hdl.core.units import unit_classes
from wavecore.hdl.core.vector_unit import VectorUnit

NETWORK = str(Path(__file__).with_name("trace_fault_net.yaml"))
BROKEN_FUNCT = "maxpool_forward"


class BrokenVector(VectorUnit):
    """The real VECTOR unit with the lowest bit of every scratchpad element it writes flipped while it runs
    ``VECTOR.<funct>`` (a deliberately broken unit: the fault the bisection must locate)."""

    def __init__(self, parameters, numerics, funct: str = BROKEN_FUNCT):
        super().__init__(parameters, numerics)
        self.inner = VectorUnit(parameters, numerics)
        self.funct = funct

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        spec = next(spec for spec in isa.HEADER if spec.name == "funct")
        broken = self.instruction[spec.offset : spec.offset + spec.width] == isa.FUNCTS["VECTOR"][self.funct][0]
        m.d.comb += [inner.start.eq(self.start), inner.instruction.eq(self.instruction),
                     inner.shape.eq(self.shape), self.done.eq(inner.done)]
        for name in ("scratch_read0", "scratch_read1", "acc_read"):
            outer, unit = getattr(self, name), getattr(inner, name)
            m.d.comb += [outer.addr.eq(unit.addr), outer.en.eq(unit.en), unit.data.eq(outer.data)]
        for name in ("scratch_write", "acc_write"):
            outer, unit = getattr(self, name), getattr(inner, name)
            corrupt = broken & unit.en if name == "scratch_write" else 0
            m.d.comb += [outer.addr.eq(unit.addr), outer.en.eq(unit.en),
                         outer.data.eq(Mux(corrupt, unit.data ^ 1, unit.data))]
        return m


def broken_units() -> dict:
    """The units the network needs (no NORM), VECTOR broken."""
    return {**unit_classes(("GEMM", "LOSS", "SGD")), "VECTOR": BrokenVector}


_ = wiring  # noqa
