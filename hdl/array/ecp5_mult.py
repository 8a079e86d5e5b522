"""A pipelined multiplier that uses the ECP5 ``MULT18X18D``'s own input and output registers.

Yosys maps ``a * b`` onto ``MULT18X18D`` but never packs the surrounding fabric registers into the DSP
(``REG_INPUTA/B/OUTPUT_CLK = "NONE"`` in every peer-array netlist Yosys 0.70 produced for the peer comparison in
``docs/benchmarks.md``, "FPGA"), so each multiply is fabric FF -> DSP (3.9 ns, combinational) -> fabric.
Instantiating the primitive with its registers turned on moves both register stages into the DSP block; the
same naive 4x4 array then runs at ~170 MHz instead of ~97 MHz (the "DSP-register reference" of that comparison:
nextpnr-ecp5 0.11.1 post-route, ECP5-85F speed 6, median of 3 seeds).

The behaviour is a two-stage pipeline: registered operands, then a registered product, both stages
advancing only while ``enable`` is high (the array's stall); a synchronous reset clears both stages. By
default a third, fabric register follows the DSP (``fabric_register``, see :class:`Ecp5Multiplier`). The
``behavioural`` implementation describes exactly that in Amaranth and is what simulation runs; the
``primitive`` implementation is the ``MULT18X18D`` instance with the register settings of the Lattice
sysDSP user guide (FPGA-TN-02205, "MULT18X18D": ``REG_INPUTA_CLK/REG_INPUTB_CLK/REG_OUTPUT_CLK = CLK0``,
clock enable ``CE0``, reset ``RST0``, ``RESETMODE = SYNC``). Yosys ships no simulation model of
``MULT18X18D``; the two are checked against each other structurally (``tests/hdl/array/test_ecp5_mult.py``: cell
parameters and the CE/RST/CLK nets after synthesis), cycle by cycle on Icarus with wavecore's model of the
primitive (``boards/sim_models/mult18x18d.v``, ``tests/boards/test_sim_models.py``), and the behavioural one
against NumPy in simulation.
"""

from __future__ import annotations

from functools import partial

from amaranth import ClockSignal, Const, Instance, Module, ResetSignal, Shape, Signal, signed, unsigned
from amaranth.lib import wiring

from wavecore.hdl.array.multiplier import multiplier_signature

__all__ = ["IMPLEMENTATIONS", "Ecp5Multiplier", "ecp5_mixed_multipliers", "ecp5_multiplier"]

IMPLEMENTATIONS = ("behavioural", "primitive")
_DSP_WIDTH = 18


class Ecp5Multiplier(wiring.Component):
    """``product = a * b`` three (or two) enabled cycles after the operands, in one ECP5 sysDSP slice.

    Follows the multiplier contract of :mod:`wavecore.hdl.array.multiplier`, so it plugs into
    :class:`wavecore.hdl.array.pe.ProcessingElement` through its ``multiplier`` factory (see :func:`ecp5_multiplier`).

    Parameters
    ----------
    operand_shape : Shape
        Shape of ``a`` and ``b``: 2 to 18 bits signed, 2 to 17 bits unsigned (the DSP's 18-bit ports).
    product_shape : Shape
        Same signedness, at least twice the operand width.
    implementation : {"behavioural", "primitive"}
        ``"primitive"`` instantiates ``MULT18X18D`` (synthesis for ECP5 only); ``"behavioural"`` is the
        same pipeline in Amaranth (simulation, other families).
    fabric_register : bool
        Add a third register stage in the fabric after the DSP's output register (``latency = 3``; the
        default). The DSP columns are far from most of the logic they feed (2-3 ns of routing at speed 6);
        this register lets the placer put that route and the accumulator's carry chain in separate cycles
        (4x4 int8 array on ECP5-85F: 180.4 MHz with it, 157.4 MHz without, +0.5 LUT and +17 FF per PE;
        ``docs/benchmarks.md``, FPGA section).

    Attributes
    ----------
    a, b, enable, product
        The ports of :func:`wavecore.hdl.array.multiplier.multiplier_signature`. A synchronous reset clears the DSP
        stages and the fabric register to zero.
    latency : int
        3 (DSP input register, DSP output register, fabric register), or 2 without ``fabric_register``.
    """

    def __init__(self, *, operand_shape, product_shape, implementation: str = "primitive",
                 fabric_register: bool = True):
        operand_shape = Shape.cast(operand_shape)
        product_shape = Shape.cast(product_shape)
        limit = _DSP_WIDTH if operand_shape.signed else _DSP_WIDTH - 1
        if not 2 <= operand_shape.width <= limit:
            raise ValueError(
                f"operand_shape must be 2 to {limit} bits wide for "
                f"{'signed' if operand_shape.signed else 'unsigned'} operands, not {operand_shape.width}"
            )
        if product_shape.width < 2 * operand_shape.width or product_shape.signed != operand_shape.signed:
            raise ValueError(
                f"product_shape must be {'signed' if operand_shape.signed else 'unsigned'} and at "
                f"least {2 * operand_shape.width} bits wide, not {product_shape!r}"
            )
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {', '.join(IMPLEMENTATIONS)}, not {implementation!r}"
            )
        self.in_width = operand_shape.width
        self.signed = operand_shape.signed
        self.implementation = implementation
        if not isinstance(fabric_register, bool):
            raise TypeError(f"fabric_register must be a bool, not {fabric_register!r}")
        self.fabric_register = fabric_register
        self.latency = 3 if fabric_register else 2
        super().__init__(multiplier_signature(operand_shape, product_shape))

    def elaborate(self, platform):
        m = Module()
        product = self.product
        if self.fabric_register:
            # the DSP's output: its output register in the behavioural twin, cleared by reset as RST0 clears
            # the primitive's (a reset-less twin differed from the primitive after every reset; checked on
            # Icarus with the MULT18X18D model in tests/boards/test_sim_models.py)
            product = Signal(self.product.shape(), name="dsp_product")
            with m.If(self.enable):
                m.d.sync += self.product.eq(product)
        self._elaborate_stages(m, product)
        return m

    def _elaborate_stages(self, m, product):
        if self.implementation == "behavioural":
            operand = _shape(self.in_width, self.signed)
            a_register = Signal(operand)
            b_register = Signal(operand)
            with m.If(self.enable):
                m.d.sync += [
                    a_register.eq(self.a),
                    b_register.eq(self.b),
                    product.eq(a_register * b_register),
                ]
            return

        # The DSP takes 18-bit operands; extend ours the way SIGNEDA/SIGNEDB interpret them.
        a_wide = Signal(_DSP_WIDTH)
        b_wide = Signal(_DSP_WIDTH)
        p_wide = Signal(2 * _DSP_WIDTH)
        m.d.comb += [a_wide.eq(self.a), b_wide.eq(self.b)]
        sign = Const(int(self.signed), 1)
        ports = {
            **{f"i_A{i}": a_wide[i] for i in range(_DSP_WIDTH)},
            **{f"i_B{i}": b_wide[i] for i in range(_DSP_WIDTH)},
            **{f"i_C{i}": Const(0, 1) for i in range(_DSP_WIDTH)},
            **{f"o_P{i}": p_wide[i] for i in range(2 * _DSP_WIDTH)},
        }
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0",
            p_REG_INPUTA_CE="CE0",
            p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0",
            p_REG_INPUTB_CE="CE0",
            p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE",
            p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0",
            p_REG_OUTPUT_CE="CE0",
            p_REG_OUTPUT_RST="RST0",
            p_CLK0_DIV="ENABLED",
            p_HIGHSPEED_CLK="NONE",
            p_GSR="DISABLED",
            p_CAS_MATCH_REG="FALSE",
            p_SOURCEB_MODE="B_SHIFT",
            p_MULT_BYPASS="DISABLED",
            p_RESETMODE="SYNC",
            i_SIGNEDA=sign,
            i_SIGNEDB=sign,
            i_SOURCEA=Const(0, 1),
            i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal("sync"),
            i_CLK1=Const(0, 1),
            i_CLK2=Const(0, 1),
            i_CLK3=Const(0, 1),
            i_CE0=self.enable,
            i_CE1=Const(1, 1),
            i_CE2=Const(1, 1),
            i_CE3=Const(1, 1),
            i_RST0=ResetSignal("sync", allow_reset_less=True),
            i_RST1=Const(0, 1),
            i_RST2=Const(0, 1),
            i_RST3=Const(0, 1),
            **ports,
        )
        full = p_wide[: 2 * self.in_width]
        m.d.comb += product.eq(full.as_signed() if self.signed else full)


def ecp5_multiplier(implementation: str = "primitive", *, fabric_register: bool = True):
    """A multiplier factory for :class:`wavecore.hdl.array.pe.ProcessingElement` that builds :class:`Ecp5Multiplier`.

    ``fabric_register`` defaults to on (latency 3) because it is the faster array on every ECP5 size
    measured; the ECP5 board flows (``boards/synth.py``, multiplier ``ecp5_dsp``) use this default.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be one of {', '.join(IMPLEMENTATIONS)}, not {implementation!r}"
        )
    if not isinstance(fabric_register, bool):
        raise TypeError(f"fabric_register must be a bool, not {fabric_register!r}")
    factory = partial(Ecp5Multiplier, implementation=implementation, fabric_register=fabric_register)
    factory.latency = 3 if fabric_register else 2  # the array reads the latency from the factory
    return factory


def ecp5_mixed_multipliers(dsp_budget: int, implementation: str = "primitive"):
    """A multiplier factory for arrays with more PEs than the chip has ``MULT18X18D``: :class:`Ecp5Multiplier`
    (DSP input and output registers, no fabric register) for the first ``dsp_budget`` calls, then
    :class:`wavecore.hdl.array.ice40_mult.LutMultiplier` (adders only, two register stages, so Yosys maps no
    DSP). Both have latency 2, so the array's timing does not depend on which PE got a DSP. Each array needs its
    own factory (the count is per factory; elaborate the array once, in the flat form)."""
    from wavecore.hdl.array.ice40_mult import LutMultiplier

    if not isinstance(dsp_budget, int) or isinstance(dsp_budget, bool) or dsp_budget < 0:
        raise ValueError(f"dsp_budget must be a non-negative integer, not {dsp_budget!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {', '.join(IMPLEMENTATIONS)}, not {implementation!r}")
    handed_out = 0

    def factory(*, operand_shape, product_shape):
        nonlocal handed_out
        handed_out += 1
        if handed_out <= dsp_budget:
            return Ecp5Multiplier(operand_shape=operand_shape, product_shape=product_shape,
                                  implementation=implementation, fabric_register=False)
        return LutMultiplier(operand_shape=operand_shape, product_shape=product_shape, latency=2)

    factory.latency = 2
    return factory


def _shape(width: int, is_signed: bool):
    return signed(width) if is_signed else unsigned(width)
