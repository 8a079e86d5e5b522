"""The multiplier of a processing element, as a replaceable piece, and the port signature all variants share.

The PE (:mod:`wavecore.hdl.array.pe`) asks a *multiplier factory* for its multiplier, so a target-specific variant
(:mod:`hdl.array.ecp5_mult`: an ECP5 ``MULT18X18D`` with its own registers; :mod:`hdl.array.ice40_mult`: SB_MAC16 and
LUT multipliers) can be swapped in without touching the array. Any factory works if it is called as
``factory(operand_shape=..., product_shape=...)`` and returns a component whose signature is
:func:`multiplier_signature` (the ports are described there, once, for every variant) and which has a
``latency`` attribute: the number of enabled clock edges from operands to ``product`` (at least 1, so the
product is always registered: the fastest peer array measured on ECP5, abarajithan11/axis-systolic-array, is
the only one with a registered product, see ``docs/benchmarks.md``, "FPGA"). A factory may
carry ``latency`` itself; the array reads it to compute its documented latencies.

The PE delays its valid/last tags by ``latency`` so the rest of the array is independent of it.
"""

from __future__ import annotations

from amaranth import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisteredMultiplier", "multiplier_signature"]


def multiplier_signature(operand_shape, product_shape) -> wiring.Signature:
    """The ports of every multiplier behind the PE's hook (generic, ECP5 and iCE40 variants).

    Attributes
    ----------
    a, b : In(operand_shape)
        Operands, sampled at a rising edge where ``enable`` is high.
    enable : In(1)
        Clock enable of every register stage (the array's "not stalled"); while it is low nothing inside
        changes and ``product`` holds.
    product : Out(product_shape)
        ``a * b``, exact, of the operands sampled ``latency`` enabled edges earlier.
    """
    return wiring.Signature({
        "a": In(operand_shape),
        "b": In(operand_shape),
        "enable": In(1),
        "product": Out(product_shape),
    })


class RegisteredMultiplier(wiring.Component):
    """``product`` is ``a * b`` one enabled clock edge later (a registered product, latency 1).

    On FPGAs with DSP blocks the product register is the DSP's output register; the operands come from
    the PE's own operand registers.

    Parameters
    ----------
    operand_shape : Shape
        Shape of ``a`` and ``b`` (signed or unsigned).
    product_shape : Shape
        Shape of ``product``; at least twice the operand width so the product is exact.

    Attributes
    ----------
    a, b, enable, product
        The ports of :func:`multiplier_signature`.
    latency : int
        1.
    """

    latency = 1

    def __init__(self, *, operand_shape, product_shape):
        operand_shape = Shape.cast(operand_shape)
        product_shape = Shape.cast(product_shape)
        if product_shape.width < 2 * operand_shape.width:
            raise ValueError(f"product_shape must be at least {2 * operand_shape.width} bits wide, "
                             f"not {product_shape.width}")
        super().__init__(multiplier_signature(operand_shape, product_shape))

    def elaborate(self, platform):
        m = Module()
        # Reset-less like a DSP's output register: the product only matters under the PE's valid tag.
        product = Signal(self.product.shape(), reset_less=True)
        m.d.comb += self.product.eq(product)
        with m.If(self.enable):
            m.d.sync += product.eq(self.a * self.b)
        return m
