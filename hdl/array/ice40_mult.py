"""Multipliers for the iCE40UP5K: its 8 ``SB_MAC16`` for the first PEs, shift-and-add LUT logic for the rest.

``synth_ice40 -dsp`` turns every ``$mul`` into an ``SB_MAC16``; the UP5K has 8, so a 4x4 int8 array
(16 multipliers) does not place (nextpnr-ice40 0.11.1 from YoWASP stops with ``ICESTORM_DSP: 16/8 200%``,
"Unable to place cell ... no BELs remaining"). The
factory from :func:`ice40_multipliers` hands out :class:`DspMultiplier` (a ``$mul``, mapped to an
``SB_MAC16``) for the first ``dsp_budget`` PEs and :class:`LutMultiplier` afterwards.
:class:`LutMultiplier` never creates a ``$mul`` cell: its product is a sum of shifted partial products
(two's complement: the top partial product has negative weight), which Yosys maps to LUT4s and
``SB_CARRY`` chains whatever ``-dsp`` says.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Shape, Signal
from amaranth.lib import wiring

from wavecore.hdl.array.multiplier import RegisteredMultiplier, multiplier_signature

__all__ = ["DspMultiplier", "LutMultiplier", "ice40_multipliers"]


class LutMultiplier(wiring.Component):
    """``product`` is ``a * b`` ``latency`` enabled clock edges later, built from adders only (no ``$mul``).

    Same contract as :class:`wavecore.hdl.array.multiplier.RegisteredMultiplier`. With ``latency = 2`` the partial
    products of the low and the high half of ``b`` are summed and registered separately, and the second
    stage adds the two: each stage is about half the adder depth, which is what limits an iCE40 LUT
    multiplier (the post-route critical path of a one-stage 8x8 multiply is ~30 ns on the UP5K).

    Parameters
    ----------
    operand_shape : Shape
        Shape of ``a`` and ``b``, at least 2 bits.
    product_shape : Shape
        Same signedness, at least twice the operand width.
    latency : int
        1 or 2 register stages.

    Attributes
    ----------
    a, b, enable, product
        The ports of :func:`wavecore.hdl.array.multiplier.multiplier_signature`.
    latency : int
        Register stages (the constructor's ``latency``).
    """

    def __init__(self, *, operand_shape, product_shape, latency: int = 1):
        operand_shape = Shape.cast(operand_shape)
        product_shape = Shape.cast(product_shape)
        if operand_shape.width < 2:
            raise ValueError(f"operand_shape must be at least 2 bits wide, not {operand_shape.width}")
        if product_shape.width < 2 * operand_shape.width or product_shape.signed != operand_shape.signed:
            raise ValueError(
                f"product_shape must be {'signed' if operand_shape.signed else 'unsigned'} and "
                f"at least {2 * operand_shape.width} bits wide, not {product_shape!r}"
            )
        if latency not in (1, 2):
            raise ValueError(f"latency must be 1 or 2, not {latency!r}")
        self.operand_shape = operand_shape
        self.latency = latency
        super().__init__(multiplier_signature(operand_shape, product_shape))

    def elaborate(self, platform):
        m = Module()
        width = self.operand_shape.width
        is_signed = self.operand_shape.signed
        split = width // 2 if self.latency == 2 else width
        halves = [self._partial_sum(range(0, split)), self._partial_sum(range(split, width))]
        if self.latency == 2:
            registered = [Signal(2 * width, name=f"partial_{index}") for index in range(2)]
            with m.If(self.enable):
                m.d.sync += [register.eq(half) for register, half in zip(registered, halves)]
            halves = registered
        total = (halves[0] + halves[1])[: 2 * width]
        with m.If(self.enable):
            m.d.sync += self.product.eq(total.as_signed() if is_signed else total)
        return m

    def _partial_sum(self, bits):
        """Sum (mod 2**(2*width)) of the partial products of ``b``'s ``bits``."""
        width = self.operand_shape.width
        total = Const(0, 2 * width)
        for bit in bits:
            partial = Mux(self.b[bit], self.a, 0) << bit
            if self.operand_shape.signed and bit == width - 1:
                total = total - partial  # the sign bit of b weighs -2**(width-1)
            else:
                total = total + partial
        return total[: 2 * width]


class DspMultiplier(wiring.Component):
    """``a * b`` as one ``$mul`` (an ``SB_MAC16`` under ``synth_ice40 -dsp``) and ``latency`` registers.

    The first register is the product register Yosys' ``ice40_dsp`` pass packs into the ``SB_MAC16``;
    a second one (``latency = 2``) keeps the DSP PEs in step with pipelined :class:`LutMultiplier` PEs.
    Ports: :func:`wavecore.hdl.array.multiplier.multiplier_signature`; parameters as :class:`LutMultiplier`.
    """

    def __init__(self, *, operand_shape, product_shape, latency: int = 1):
        if latency not in (1, 2):
            raise ValueError(f"latency must be 1 or 2, not {latency!r}")
        self.latency = latency
        self._inner = RegisteredMultiplier(operand_shape=operand_shape, product_shape=product_shape)
        super().__init__(multiplier_signature(operand_shape, product_shape))

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = inner = self._inner
        m.d.comb += [inner.a.eq(self.a), inner.b.eq(self.b), inner.enable.eq(self.enable)]
        if self.latency == 1:
            m.d.comb += self.product.eq(inner.product)
        else:
            with m.If(self.enable):
                m.d.sync += self.product.eq(inner.product)
        return m


def ice40_multipliers(dsp_budget: int = 8, latency: int = 2):
    """A multiplier factory: :class:`DspMultiplier` for the first ``dsp_budget`` calls, then LUTs.

    Each array needs its own factory (the count is per factory, so elaborate the array once). Both kinds
    have the same ``latency``, so the array's timing does not depend on which PE got a DSP.
    """
    if not isinstance(dsp_budget, int) or isinstance(dsp_budget, bool) or dsp_budget < 0:
        raise ValueError(f"dsp_budget must be a non-negative integer, not {dsp_budget!r}")
    if latency not in (1, 2):
        raise ValueError(f"latency must be 1 or 2, not {latency!r}")
    handed_out = 0

    def factory(*, operand_shape, product_shape):
        nonlocal handed_out
        handed_out += 1
        kind = DspMultiplier if handed_out <= dsp_budget else LutMultiplier
        return kind(operand_shape=operand_shape, product_shape=product_shape, latency=latency)

    factory.latency = latency
    return factory
