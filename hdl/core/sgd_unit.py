"""The SGD unit of the WaveCore: ``SGD.momentum``, bit-exact with the instruction-level simulator
(:meth:`wavecore.golden.core.simulator.Simulator._op_sgd`, i.e. :meth:`wavecore.golden.numerics.SgdArithmetic.update`
on the grids of ``numerics.sgd_arithmetic``).

**Interface**: :class:`~wavecore.hdl.core.compute_unit.ComputeUnitSignature` (read that module's docstring);
``read_latency`` (``L``, 1 to 3) is the cycles from a read to its data.
The instruction's fields (compute format): ``src0`` = weights ``w`` (scratchpad, updated in place), ``src1`` =
velocity ``v`` (scratchpad, updated in place), ``src2`` = gradient ``g`` (scratchpad), ``dst`` = the three
constants ``LR, M, WD`` at ``dst, dst + 1, dst + 2`` (accumulator, unsigned ``constant_width`` bits on
Q.constant_frac, read at run time). The tensor has ``samples * channels * height * width`` elements (SHAPE).

**Arithmetic** (per element, ``F = max(vf, wf, gf)``, ``G = max(vf, wf)``, ``cf`` = constant_frac)::

    v' = sat_v(round((M*v << (F - vf)) + (WD*w << (F - wf)) + (g << (cf + F - gf)), cf + F - vf))
    w' = sat_w(round((w << (cf + G - wf)) - (LR*v' << (G - vf)), cf + G - wf))

with the numerics' rounding mode; every sum exact.

**Timing**: the constants are read in cycles 0..2 (cycle 0 is the ``start`` cycle) and arrive in cycles
``L .. L + 2``; element ``i`` reads ``w, v`` (both scratchpad ports) in cycle ``2 + 2i`` and ``g`` in cycle
``3 + 2i``; the reads' data arrive ``L`` cycles later, the stage bits travel beside them through ``L`` registers.
``w, v`` are registered as they arrive (cycle ``2 + L + 2i``; ``g`` in ``3 + L + 2i``), so no multiplier is fed
from the scratchpad's lane select in the same cycle. The products ``M*v, WD*w`` are registered in cycle
``3 + L + 2i``, the velocity sum in ``4 + L + 2i``; ``v'`` is written in cycle ``5 + L + 2i``; ``lr*v'`` is
registered in ``6 + L + 2i``, the weight sum in ``7 + L + 2i``, and ``w'`` is written in ``8 + L + 2i`` (one
scratchpad write port, two writes per element, ``v'`` and ``w'`` on cycles of opposite parity: two cycles per
element is the bound; no cycle holds a multiplier and a sum, or a sum and a requantization). ``done`` comes with
the last write::

    cycles = 2 * elements + 6 + L     (from start to done, as verif.compute_bench measures; 2 * elements + 7
                                       at L = 1)

**Assumptions**: the weight, velocity and gradient ranges are disjoint (the simulator reads all of them before
it writes; the unit writes element ``i``'s ``v'`` and ``w'`` after reading elements ``0..i`` only, at any ``L``).
The constants must be in range (the simulator refuses others); the unit uses their low ``constant_width`` bits.
The next instruction may read what this one wrote: its last write (the last ``w'``) comes with ``done``.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, Shape
from wavecore.golden.numerics import IntegerTraining
from wavecore.hdl.core import decoder
from wavecore.hdl.core.compute_unit import (
    READ_LATENCY,
    ComputeUnitSignature,
    check_unit_arguments,
    delay,
    element_widths,
    shape_field,
)
from wavecore.hdl.norm.common import requantize_value

__all__ = ["SgdUnit", "unit_cycles"]

#: Cycle (from start) in which element 0's weight and velocity are read: after the constant reads.
_FIRST_READ = 2


def unit_cycles(instruction: isa.Instruction, shape: Shape, parameters: CoreParameters, *,
                read_latency: int = READ_LATENCY) -> int:
    """Cycles from ``start`` to ``done`` of an SGD instruction: ``2 * elements + 6 + read_latency``."""
    return 2 * shape.input_elements + _FIRST_READ + 4 + read_latency



class SgdUnit(wiring.Component):
    """SGD.momentum on the scratchpad (see the module docstring).

    Parameters
    ----------
    parameters : CoreParameters
    numerics : IntegerTraining
        Its ``sgd_arithmetic`` gives the formats, grids and rounding (the simulator's template).
    read_latency : int
        Cycles from a read's ``en`` to its ``data`` (1 to 3; see :mod:`wavecore.hdl.core.compute_unit`).
    """

    def __init__(self, parameters: CoreParameters, numerics: IntegerTraining, *, read_latency: int = READ_LATENCY):
        check_unit_arguments(parameters, numerics, read_latency)
        if numerics.sgd != "integer":
            raise ValueError(f"numerics must use the on-chip SGD (sgd='integer'), not {numerics.sgd!r}")
        arithmetic = numerics.sgd_arithmetic(lr=0.0, momentum=0.0, weight_decay=0.0)
        widths = element_widths(parameters)
        for name in ("weight", "velocity", "gradient"):
            if getattr(arithmetic, name).width > widths["scratchpad"]:
                raise ValueError(f"the {name} format ({getattr(arithmetic, name).width} bits) does not fit a "
                                 f"{widths['scratchpad']}-bit scratchpad element")
        if arithmetic.constant_width >= widths["accumulator"]:
            raise ValueError(f"the SGD constants ({arithmetic.constant_width} bits unsigned) do not fit a "
                             f"{widths['accumulator']}-bit accumulator element")
        self.parameters, self.numerics, self.arithmetic = parameters, numerics, arithmetic
        self.read_latency = read_latency
        super().__init__(ComputeUnitSignature(parameters))

    def elaborate(self, platform):
        m = Module()
        a = self.arithmetic
        latency = self.read_latency
        word, shape = self.instruction, self.shape
        src0, src1, src2, dst = (decoder.field(word, name, "compute") for name in ("src0", "src1", "src2", "dst"))
        # the element count, registered in two steps (one multiplier between registers): valid from cycle 2,
        # the first cycle that uses it
        planes, plane = Signal(24), Signal(16)
        elements = Signal(range(1 << 41))
        m.d.sync += [planes.eq(shape_field(shape, "samples") * shape_field(shape, "channels")),
                     plane.eq(shape_field(shape, "height") * shape_field(shape, "width")),
                     elements.eq(planes * plane)]

        busy = Signal()
        active = Signal()
        m.d.comb += active.eq(self.start | busy)
        m.d.sync += busy.eq(active & ~self.done)

        # constants: momentum (dst + 1) read in cycle 0, weight decay (dst + 2) in 1, learning rate (dst) in 2,
        # each arriving read_latency cycles later
        last_step = latency + 2
        step = Signal(range(last_step + 1))  # 0 in the start cycle, saturates when the learning rate arrives
        with m.If(self.done):
            m.d.sync += step.eq(0)
        with m.Elif(active & (step != last_step)):
            m.d.sync += step.eq(step + 1)
        lr, momentum, decay = (Signal(unsigned(a.constant_width), name=n) for n in ("lr", "momentum", "decay"))
        m.d.comb += [self.acc_read.en.eq(active & (step < 3)),
                     self.acc_read.addr.eq(dst + Mux(step == 0, 1, Mux(step == 1, 2, 0)))]
        constant = self.acc_read.data[: a.constant_width]
        with m.If(step == latency):
            m.d.sync += momentum.eq(constant)
        with m.If(step == latency + 1):
            m.d.sync += decay.eq(constant)
        with m.If(step == latency + 2):
            m.d.sync += lr.eq(constant)

        # reads: element `issued` in two cycles (phase 0: w and v, phase 1: g)
        issued = Signal.like(elements)
        phase = Signal()
        issue = Signal()
        m.d.comb += issue.eq(active & (step >= _FIRST_READ) & (issued < elements))
        with m.If(issue):
            m.d.sync += phase.eq(~phase)
            with m.If(phase):
                m.d.sync += issued.eq(issued + 1)
        with m.If(issue & ~phase):
            m.d.comb += [self.scratch_read0.en.eq(1), self.scratch_read0.addr.eq(src0 + issued),
                         self.scratch_read1.en.eq(1), self.scratch_read1.addr.eq(src1 + issued)]
        with m.If(issue & phase):
            m.d.comb += [self.scratch_read0.en.eq(1), self.scratch_read0.addr.eq(src2 + issued)]

        # stage 0: w, v read; stage 1 (w, v on the ports, read_latency cycles later): w, v registered; stage 2
        # (g on the port): the products M*v, WD*w and g registered; stage 3: the velocity sum registered; stage 4:
        # v' requantized and written; stage 5: lr*v' registered; stage 6: the weight sum registered; stage 7: w'
        # requantized and written (v' and w' on cycles of opposite parity: one write port)
        stage = [Signal(name=f"stage{k}") for k in range(8)]
        m.d.comb += stage[0].eq(issue & ~phase)
        m.d.sync += stage[1].eq(delay(m, stage[0], latency - 1, "stage0"))
        for k in range(2, 8):
            m.d.sync += stage[k].eq(stage[k - 1])
        v_in = Signal.like(self.scratch_read1.data)
        g_in = Signal.like(self.scratch_read0.data)
        momentum_v = Signal.like(momentum * v_in)
        decay_w = Signal.like(decay * self.scratch_read0.data)
        # w along the stages: weight[2] holds element i's w in cycles 3+L+2i and 4+L+2i (an element every other
        # cycle), so weight[5] has it in 6+L+2i and 7+L+2i, when the weight sum (stage 6, cycle 7+L+2i) reads it
        weight = [Signal.like(self.scratch_read0.data, name=f"weight{k}") for k in range(6)]
        with m.If(stage[1]):
            m.d.sync += [weight[2].eq(self.scratch_read0.data), v_in.eq(self.scratch_read1.data)]
        with m.If(stage[2]):
            m.d.sync += [momentum_v.eq(momentum * v_in), decay_w.eq(decay * weight[2]),
                         g_in.eq(self.scratch_read0.data)]
        for k in range(3, 6):
            m.d.sync += weight[k].eq(weight[k - 1])
        grid = a._velocity_grid
        velocity_total = Signal(signed(a.velocity_accumulator_width))
        with m.If(stage[3]):
            m.d.sync += velocity_total.eq((momentum_v << (grid - a.velocity_frac))
                                          + (decay_w << (grid - a.weight_frac))
                                          + (g_in << (a.constant_frac + grid - a.grad_frac)))
        new_velocity = Signal(self.scratch_write.data.shape())
        m.d.comb += new_velocity.eq(requantize_value(velocity_total, a.constant_frac + grid - a.velocity_frac,
                                                     a.velocity, a.rounding))
        velocity4 = Signal.like(new_velocity)
        with m.If(stage[4]):
            m.d.sync += velocity4.eq(new_velocity)
        grid = a._weight_grid
        step = Signal(signed(len(lr) + len(velocity4) + 1))
        with m.If(stage[5]):
            m.d.sync += step.eq(lr * velocity4)
        weight_total = Signal(signed(a.weight_accumulator_width))
        with m.If(stage[6]):
            m.d.sync += weight_total.eq((weight[5] << (a.constant_frac + grid - a.weight_frac))
                                        - (step << (grid - a.velocity_frac)))
        new_weight = Signal(self.scratch_write.data.shape())
        m.d.comb += new_weight.eq(requantize_value(weight_total, a.constant_frac + grid - a.weight_frac, a.weight,
                                                   a.rounding))

        written = Signal.like(elements)  # element whose v' / w' is being written
        velocity_written = Signal.like(elements)  # element whose v' is written (stage 4)
        with m.If(stage[4]):
            m.d.comb += [self.scratch_write.en.eq(1), self.scratch_write.addr.eq(src1 + velocity_written),
                         self.scratch_write.data.eq(new_velocity)]
            m.d.sync += velocity_written.eq(velocity_written + 1)
        with m.If(stage[7]):
            m.d.comb += [self.scratch_write.en.eq(1), self.scratch_write.addr.eq(src0 + written),
                         self.scratch_write.data.eq(new_weight)]
            m.d.sync += written.eq(written + 1)
        m.d.comb += self.done.eq(stage[7] & (written + 1 == elements))
        with m.If(self.done):
            m.d.sync += [issued.eq(0), written.eq(0), velocity_written.eq(0), phase.eq(0)]
        return m
