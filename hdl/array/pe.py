"""Processing element of the systolic array (``docs/hardware.md``, "Systolic array").

One PE does one multiply-accumulate per enabled cycle. Its datapath is kept to

    registered operand -> multiplier (``latency`` edges, registered product) -> accumulator register

so that an FPGA DSP block can absorb the operand and product registers, and every control input is a
single clock enable (``advance``, the array's global stall) or a registered tag travelling with the data.
The arithmetic (operand range, accumulator width, wrap or saturation after every addition) is a
:class:`wavecore.golden.numerics.MacArithmetic`, the same object the golden model uses.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import MacArithmetic
from wavecore.hdl.array.multiplier import RegisteredMultiplier

__all__ = ["DATAFLOWS", "ProcessingElement", "accumulate", "check_arithmetic", "check_dataflow"]

DATAFLOWS = ("output_stationary", "weight_stationary")


def check_dataflow(dataflow) -> str:
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")
    return dataflow


def check_arithmetic(arithmetic) -> MacArithmetic:
    if not isinstance(arithmetic, MacArithmetic):
        raise TypeError(f"arithmetic must be a wavecore.golden.numerics.MacArithmetic, not {arithmetic!r}")
    return arithmetic


def operand_shape(arithmetic: MacArithmetic) -> Shape:
    return signed(arithmetic.in_width) if arithmetic.signed else unsigned(arithmetic.in_width)


def accumulator_shape(arithmetic: MacArithmetic) -> Shape:
    return signed(arithmetic.acc_width) if arithmetic.signed else unsigned(arithmetic.acc_width)


def accumulate(arithmetic: MacArithmetic, base, addend):
    """``base + addend`` under ``arithmetic.overflow``, as a value of the accumulator's shape.

    ``wrap`` keeps the low ``acc_width`` bits (what a plain register does); ``saturate`` clamps the exact
    sum (one bit wider) to the accumulator's range, like :meth:`MacArithmetic.add`.
    """
    shape = accumulator_shape(arithmetic)
    total = base + addend  # Amaranth widens by one bit: exact
    if arithmetic.overflow == "wrap":
        return total[:arithmetic.acc_width].as_signed() if arithmetic.signed else total[:arithmetic.acc_width]
    high = Const(arithmetic.accumulator.max, shape)
    if arithmetic.signed:
        low = Const(arithmetic.accumulator.min, shape)
        clamped = Mux(total > high, high, Mux(total < low, low, total))
    else:  # an unsigned sum of unsigned terms cannot go below 0
        clamped = Mux(total > high, high, total)
    return clamped[:arithmetic.acc_width].as_signed() if arithmetic.signed else clamped[:arithmetic.acc_width]


class ProcessingElement(wiring.Component):
    """One multiply-accumulate cell of a systolic array.

    Both dataflows pass the ``a`` operand east (``a_in`` -> ``a_out``, one register) together with its
    tags (``a_valid``: the beat carries data; ``a_last`` / ``a_switch``: see below). Every register,
    including the multiplier's, updates only at edges where ``advance`` is high (the array's global
    stall is a clock enable; the weight shadow register is the one exception, see below).

    Parameters
    ----------
    arithmetic : wavecore.golden.numerics.MacArithmetic
        Operand and accumulator widths, signedness and overflow rule.
    dataflow : str
        ``"output_stationary"`` or ``"weight_stationary"``.
    multiplier : callable
        Factory ``multiplier(operand_shape=..., product_shape=...)`` returning the multiplier component
        (see :mod:`hdl.array.multiplier`); default :class:`hdl.array.multiplier.RegisteredMultiplier` (latency 1).

    Attributes
    ----------
    advance : In(1)
        Global clock enable.
    a_in, a_out : In/Out(operand)
        Operand from the west / registered copy to the east neighbour (and the multiplier).
    a_valid_in, a_valid_out : In/Out(1)
        The beat on ``a_in`` carries data.
    b_in, b_out : In/Out(operand)
        *Output-stationary only.* Operand from the north / registered copy to the south neighbour.
    a_last_in, a_last_out : In/Out(1)
        *Output-stationary only.* The beat is the last ``k`` of a tile. ``latency + 1`` enabled edges
        after it is registered in ``a_out`` the PE adds its product and, instead of keeping the sum,
        writes it into ``result`` (``capture`` is high during that cycle) and clears its accumulator.
    drain_shift : In(1)
        *Output-stationary only.* ``result`` loads ``result_in`` (the PE to the north) at this enabled
        edge; the array never asks for a capture and a shift at the same edge.
    result_in, result : In/Out(accumulator)
        *Output-stationary only.* The drain chain: the finished tile's value, shifted south.
    capture : Out(1)
        *Output-stationary only.* ``result`` takes a finished value at the coming enabled edge.
    a_switch_in, a_switch_out : In/Out(1)
        *Weight-stationary only.* The beat is the first to use the preloaded weight: at the edge that
        registers it into ``a_out`` the active weight is copied from the shadow register.
    psum_in, psum_out : In/Out(accumulator)
        *Weight-stationary only.* Partial sum from the north / ``psum_in + a * weight`` (overflow rule
        applied) to the south, ``latency + 1`` enabled edges after the ``a`` beat is in ``a_out``.
    psum_valid_out : Out(1)
        *Weight-stationary only.* ``psum_out`` belongs to a valid beat.
    psum_valid_next : Out(1)
        *Weight-stationary only.* The value ``psum_valid_out`` takes at the coming edge (the array computes
        its registered stall from it).
    weight_load, weight_transpose : In(1)
        *Weight-stationary only.* At an edge where ``weight_load`` is high (independent of ``advance``),
        the shadow weight loads ``weight_from_right`` if ``weight_transpose`` else ``weight_from_below``.
    weight_from_below, weight_from_right : In(operand)
        *Weight-stationary only.* Shadow weights of the south / east neighbours (or the preload stream).
    weight_shadow : Out(operand)
        *Weight-stationary only.* The shadow (next) weight.
    """

    def __init__(self, *, arithmetic, dataflow, multiplier=RegisteredMultiplier):
        self.arithmetic = check_arithmetic(arithmetic)
        self.dataflow = check_dataflow(dataflow)
        if not callable(multiplier):
            raise TypeError("multiplier must be a callable returning a multiplier component, "
                            f"not {multiplier!r}")
        self._multiplier_factory = multiplier
        operand = operand_shape(arithmetic)
        accumulator = accumulator_shape(arithmetic)
        members = {
            "advance": In(1),
            "a_in": In(operand), "a_valid_in": In(1),
            "a_out": Out(operand), "a_valid_out": Out(1),
        }
        if dataflow == "output_stationary":
            members.update({
                "a_last_in": In(1), "a_last_out": Out(1),
                "b_in": In(operand), "b_out": Out(operand),
                "drain_shift": In(1), "result_in": In(accumulator),
                "result": Out(accumulator), "capture": Out(1),
            })
        else:
            members.update({
                "a_switch_in": In(1), "a_switch_out": Out(1),
                "psum_in": In(accumulator), "psum_out": Out(accumulator), "psum_valid_out": Out(1),
                "psum_valid_next": Out(1),
                "weight_load": In(1), "weight_transpose": In(1),
                "weight_from_below": In(operand), "weight_from_right": In(operand),
                "weight_shadow": Out(operand),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        arithmetic = self.arithmetic
        operand = operand_shape(arithmetic)
        multiplier = self._multiplier_factory(
            operand_shape=operand, product_shape=signed(2 * arithmetic.in_width) if arithmetic.signed
            else unsigned(2 * arithmetic.in_width))
        latency = getattr(multiplier, "latency", None)
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise ValueError(f"the multiplier's latency must be a positive integer, not {latency!r}")
        factory_latency = getattr(self._multiplier_factory, "latency", latency)
        if factory_latency != latency:
            raise ValueError(f"the multiplier factory says latency {factory_latency!r} "
                             f"but builds latency {latency}")
        m.submodules.multiplier = multiplier

        # Operand registers: the systolic hop to the east (and south) neighbour and the multiplier input.
        # Datapath registers are reset-less (their value only matters under a valid tag): the flip-flops'
        # reset input then stays free for the accumulator clear and `rst` has a small fan-out.
        a_register = self._data_register(m, self.a_out, "a")
        with m.If(self.advance):
            m.d.sync += [a_register.eq(self.a_in), self.a_valid_out.eq(self.a_valid_in)]

        if self.dataflow == "output_stationary":
            self._elaborate_output_stationary(m, multiplier, latency)
        else:
            self._elaborate_weight_stationary(m, multiplier, latency, operand)
        return m

    @staticmethod
    def _data_register(m, port, name: str):
        """A reset-less register driving the output ``port``."""
        register = Signal(port.shape(), name=f"{name}_register", reset_less=True)
        m.d.comb += port.eq(register)
        return register

    def _delayed(self, m, tag, latency: int, name: str):
        """``tag`` delayed by ``latency`` enabled edges, to stay aligned with the multiplier's product."""
        for stage in range(latency):
            register = Signal(name=f"{name}_{stage}")
            with m.If(self.advance):
                m.d.sync += register.eq(tag)
            tag = register
        return tag

    def _elaborate_output_stationary(self, m, multiplier, latency):
        arithmetic = self.arithmetic
        b_register = self._data_register(m, self.b_out, "b")
        with m.If(self.advance):
            m.d.sync += [self.a_last_out.eq(self.a_last_in), b_register.eq(self.b_in)]
        m.d.comb += [
            multiplier.a.eq(self.a_out),
            multiplier.b.eq(self.b_out),
            multiplier.enable.eq(self.advance),
        ]
        product_valid = self._delayed(m, self.a_valid_out, latency, "product_valid")
        # The tile's last valid product, as one registered tag: `capture` (the accumulator clear, the
        # result load and the drain sequencer's start) is then a single gate after flip-flops.
        product_end = self._delayed(m, self.a_valid_out & self.a_last_out, latency, "product_end")

        # The accumulator is cleared by the edge that moves a tile's finished sum into `result` (and by
        # the domain's reset, if it has one; otherwise by its initial value): a synchronous reset, which
        # FPGA flip-flops do for free, so the next tile's first product is added to 0 with no mux in
        # front of the adder.
        accumulator = Signal(accumulator_shape(arithmetic))
        total = Signal(accumulator_shape(arithmetic))
        m.d.comb += total.eq(accumulate(arithmetic, accumulator, multiplier.product))
        m.d.comb += self.capture.eq(self.advance & product_end)
        with m.If(self.capture):
            m.d.sync += accumulator.eq(0)
        with m.Elif(self.advance & product_valid):
            m.d.sync += accumulator.eq(total)
        result = self._data_register(m, self.result, "result")
        with m.If(self.capture):
            m.d.sync += result.eq(total)
        with m.Elif(self.advance & self.drain_shift):
            m.d.sync += result.eq(self.result_in)

    def _elaborate_weight_stationary(self, m, multiplier, latency, operand):
        arithmetic = self.arithmetic
        weight = Signal(operand, reset_less=True)  # the active weight (undefined until the first switch)
        shadow = self._data_register(m, self.weight_shadow, "weight_shadow")
        switch = self.a_switch_in & self.a_valid_in
        with m.If(self.advance):
            m.d.sync += self.a_switch_out.eq(switch)
            with m.If(switch):
                m.d.sync += weight.eq(shadow)
        # The shadow loads whenever the array's preload control says so; the array only loads it when no
        # switch tag that still has to copy it is in flight, so this need not wait for `advance`.
        with m.If(self.weight_load):
            m.d.sync += shadow.eq(Mux(self.weight_transpose, self.weight_from_right, self.weight_from_below))
        m.d.comb += [
            multiplier.a.eq(self.a_out),
            multiplier.b.eq(weight),
            multiplier.enable.eq(self.advance),
        ]
        product_valid = self._delayed(m, self.a_valid_out, latency, "product_valid")
        psum = self._data_register(m, self.psum_out, "psum")
        with m.If(self.advance):
            m.d.sync += [
                psum.eq(accumulate(arithmetic, self.psum_in, multiplier.product)),
                self.psum_valid_out.eq(product_valid),
            ]
        m.d.comb += self.psum_valid_next.eq(Mux(self.advance, product_valid, self.psum_valid_out))
