"""The NORM unit's per-set scalar arithmetic with one digit-serial multiplier, one sequential divider and one
digit-by-digit square root: the three programs of :class:`wavecore.golden.numerics.NormArithmetic` a statistic
set needs, bit-exact, in about 110 to 220 cycles instead of the bit-serial multiplies of
:class:`wavecore.hdl.norm.scalar.NormScalar` (same ports, same protocol, a drop-in replacement).

* ``FORWARD``: ``rstd = sat(isqrt(K**2 // D))`` (``K = M * 2**(fa + eps_frac/2 + R)``, ``D = (M*S2 - S1**2) *
  2**eps_frac + eps * M**2``; the quotient by a restoring divider of ``2*rstd_width`` quotient bits with an
  overflow test, which saturates; the root by the restoring digit-by-digit method, one bit per cycle), ``A =
  sat(round(gamma * rstd / 2**(pf + R - sf)))`` (a rounding shift), ``C = sat(round((beta * 2**(fa + sf - pf) *
  M - A*S1) / M))`` (the divider).
* ``BACKWARD``: ``K2 = sat(round(-rstd**3 * (M*W2 - S1*W1) / (M**2 * 2**e)))``, ``K3 = sat(round(-(rstd*W1 +
  K2*S1*2**s) / (M * 2**s)))``.
* ``DGAMMA``: ``round(rstd * (M*r2 - S1*r1) * 2**up / (M * 2**down))`` (64 quotient bits: the golden value is an
  int64).

``round`` is :func:`wavecore.golden.numerics.divide_round` (half away from zero): the divider computes
``floor((2|n| + d) / 2d)`` on magnitudes and applies the sign; a quotient of ``q`` bits is found in ``q``
cycles (one compare-subtract each) after a one-cycle overflow test ``N >= D * 2**q``. The operands of every
division are registered first (the state with the wide products ends in a register), then ``|n|`` (SETUP), ``2|n| + d``
(TOTAL), then the overflow test (OVERFLOW), so no cycle holds a wide multiplier and a wide carry chain, or two wide
carry chains; ``count**2`` is registered when the command is taken, ``rstd**3 * t`` is formed from two
registered half products, and a negated numerator is a flag on the quotient's sign, not a negation.

**Ports** (as :class:`NormScalar`): ``command`` (stream of :attr:`command_layout`; taken, ``ready`` high, in
the first cycle an idle unit sees ``valid`` while no result waits) and ``result`` (stream of
:attr:`result_layout`, valid :meth:`worst_case_cycles` cycles after the command was taken, held until
``ready``; the fields a mode does not produce are 0).

**Timing** (data-independent, from the cycle the command is taken to the first cycle of ``result.valid``):
:meth:`worst_case_cycles` (216, 210 and 110 for forward, backward and dgamma of the int8 preset): the states of
each mode, every division's SETUP, OVERFLOW and quotient bits, and every product state's
:func:`wavecore.hdl.core.serial_multiplier.cycles` + 1.

**Products**: every wide product (``count**2``, ``count*S2``, ``S1**2``, ``eps*count**2``, ``rstd**3 * t`` ...)
is formed on one :class:`wavecore.hdl.core.serial_multiplier.SerialMultiplier` (17-bit digits, one DSP), a state
each, so no cycle holds a multiplier wider than one DSP; ``gamma * rstd`` (a parameter-width operand) stays a
direct product.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import NormArithmetic, check_int
from wavecore.hdl.core.serial_multiplier import SerialMultiplier
from wavecore.hdl.core.serial_multiplier import cycles as product_cycles
from wavecore.hdl.norm.scalar import ScalarMode

__all__ = ["NormConstants"]

_DGAMMA_BITS = 64  # the simulator holds dgamma in an int64
_DIGIT = 17  # bits of a digit of the serial multiplier (a digit product fits an 18 x 18 signed DSP)


class NormConstants(wiring.Component):
    """Per-set constants of the BN/GN units (see the module docstring).

    Parameters
    ----------
    arithmetic : NormArithmetic
        Formats, fractional bits and ``max_count``.
    param_width : int
        Width of gamma and beta, 2 to 32.
    weighted_width : int
        Width of W1 and W2, 2 to 128.
    """

    def __init__(self, *, arithmetic, param_width: int = 16, weighted_width: int = 96):
        if not isinstance(arithmetic, NormArithmetic):
            raise TypeError(f"arithmetic must be a wavecore.golden.numerics.NormArithmetic, not {arithmetic!r}")
        self.arithmetic = a = arithmetic
        self.param_width = check_int("param_width", param_width, 2, 32)
        self.weighted_width = check_int("weighted_width", weighted_width, 2, 128)
        count_bits = a.max_count.bit_length()
        self.count_shape = unsigned(count_bits)
        self.k_shift = 2 * (a.activation_frac + a.eps_frac // 2 + a.reciprocal_frac)
        self.a_shift = a.param_frac + a.reciprocal_frac - a.scalar_frac
        self.beta_shift = a.activation_frac + a.scalar_frac - a.param_frac
        self.k2_exponent = 3 * a.reciprocal_frac + a.param_frac + 2 * a.activation_frac - a.scalar_frac
        self.k3_shift = a.reciprocal_frac + a.param_frac - a.scalar_frac
        up = a.param_grad_frac + a.scalar_frac
        down = a.reciprocal_frac + a.grad_frac + a.activation_frac
        self.dgamma_up, self.dgamma_down = max(up - down, 0), max(down - up, 0)
        self.quotient_bits = {"rstd": 2 * a.rstd_width, "c": a.bias_width, "k2": a.coefficient_width,
                              "k3": a.bias_width, "dgamma": _DGAMMA_BITS}
        s1w, s2w = a.sum_format.width, a.sumsq_format.width
        r1w, r2w = a.grad_sum_format.width, a.grad_product_sum_format.width
        rw, cw, bw, ww = a.rstd_width, a.coefficient_width, a.bias_width, weighted_width
        centred = max(count_bits + s2w, 2 * s1w) + 1
        t_backward = max(count_bits + ww, s1w + ww) + 1
        t_dgamma = max(count_bits + r2w, s1w + r1w) + 1
        # (numerator N = 2|n| + d, divisor D = 2d) bits of every division
        divisions = {
            "rstd": (2 * count_bits + self.k_shift + 1, max(centred + a.eps_frac, 32 + 2 * count_bits) + 2),
            "c": (max(param_width + self.beta_shift + count_bits, cw + s1w) + 3, count_bits + 1),
            "k2": (3 * rw + t_backward + 3, 2 * count_bits + self.k2_exponent + 1),
            "k3": (max(rw + ww, cw + s1w + self.k3_shift) + 3, count_bits + self.k3_shift + 1),
            "dgamma": (rw + t_dgamma + self.dgamma_up + 3, count_bits + self.dgamma_down + 1),
        }
        self.width = max(max(n, d + self.quotient_bits[name] + 1) for name, (n, d) in divisions.items()) + 1
        self._temporary_bits = temp_bits = max(centred, t_backward, t_dgamma) + 1
        # the product states, in order per mode: state -> (bits of a, bits of b) (magnitudes; signed operands
        # count their sign bit), the one definition the FSM and worst_case_cycles use
        shifted_beta = len(Value.cast(Signal(signed(param_width)) << self.beta_shift))  # as the FSM forms it
        self._product_bits = {
            "F_COUNT": (count_bits, count_bits), "F0_A": (count_bits, s2w), "F0_B": (s1w, s1w),
            "F1_A": (32, 2 * count_bits), "F_C_A": (shifted_beta, count_bits), "F_C_B": (cw, s1w),
            "B_COUNT": (count_bits, count_bits), "B0_A": (count_bits, ww), "B0_B": (s1w, ww), "B1_A": (rw, rw),
            "B1": (2 * rw, rw), "B2": (3 * rw, temp_bits), "B3_A": (rw, ww), "B3_B": (cw, s1w),
            "G0_A": (count_bits, r2w), "G0_B": (s1w, r1w), "G1_A": (rw, temp_bits),
        }
        self._mode_products = {
            ScalarMode.FORWARD: ("F_COUNT", "F0_A", "F0_B", "F1_A", "F_C_A", "F_C_B"),
            ScalarMode.BACKWARD: ("B_COUNT", "B0_A", "B0_B", "B1_A", "B1", "B2", "B3_A", "B3_B"),
            ScalarMode.DGAMMA: ("G0_A", "G0_B", "G1_A"),
        }
        # operand ports wide enough for every operand as a signed value (an unsigned one gets a zero sign bit)
        self._a_width = max(a_bits for a_bits, _ in self._product_bits.values()) + 1
        self._b_width = max(b_bits for _, b_bits in self._product_bits.values()) + 1
        self.command_layout = data.StructLayout({
            "mode": ScalarMode,
            "s1": signed(s1w),
            "s2": unsigned(s2w),
            "count": self.count_shape,
            "gamma": signed(param_width),
            "beta": signed(param_width),
            "eps": unsigned(32),
            "rstd": unsigned(rw),
            "w1": signed(ww),
            "w2": signed(ww),
            "r1": signed(r1w),
            "r2": signed(r2w),
        })
        self.dgamma_shape = signed(_DGAMMA_BITS + 1)
        self.result_layout = data.StructLayout({
            "rstd": unsigned(rw), "a": signed(cw), "c": signed(bw), "k2": signed(cw), "k3": signed(bw),
            "dgamma": self.dgamma_shape,
        })
        super().__init__({
            "command": In(stream.Signature(self.command_layout)),
            "result": Out(stream.Signature(self.result_layout)),
        })

    def worst_case_cycles(self, mode) -> int:
        """Cycles from the cycle the command is taken to the first cycle ``result.valid`` is high (exact)."""
        q = self.quotient_bits
        mode = ScalarMode(mode)
        # every product state: the serial multiplier's cycles + 1 (the state's start cycle)
        products = sum(product_cycles(*(-(-bits // _DIGIT) for bits in self._product_bits[state])) + 1
                       for state in self._mode_products[mode])
        # every division: the operands' state, SETUP TOTAL OVERFLOW (or F1_SETUP), then q DIVIDE cycles
        # F0 F1 F1_SETUP, divide, SQRT_SETUP, root, F_A F_C SETUP TOTAL OVERFLOW, divide, F_OUT
        if mode == ScalarMode.FORWARD:
            return products + 3 + q["rstd"] + 1 + self.arithmetic.rstd_width + 5 + q["c"] + 1 + 1
        if mode == ScalarMode.BACKWARD:  # B0 B2_SUM SETUP TOTAL OVERFLOW, divide, B_K2 B3 SETUP TOTAL OVERFLOW, ...
            return products + 5 + q["k2"] + 5 + q["k3"] + 1 + 1
        return products + 5 + q["dgamma"] + 1 + 1  # G0 G1 SETUP TOTAL OVERFLOW, divide, G_OUT

    def elaborate(self, platform):
        m = Module()
        a = self.arithmetic
        width = self.width
        cmd = self.command.payload
        fields = Signal(self.command_layout)
        s1, s2, count = fields.s1, fields.s2, fields.count
        rw = a.rstd_width

        a_bits = self._temporary_bits
        # registers
        temp = Signal(signed(a_bits))  # M*S2 - S1**2, M*W2 - S1*W1 or M*r2 - S1*r1
        cube = Signal(unsigned(3 * rw))  # rstd**2, then rstd**3
        # every wide product on one digit-serial multiplier (one DSP): a state per product
        m.submodules.multiplier = multiplier = SerialMultiplier(a_width=self._a_width, b_width=self._b_width,
                                                                digit=_DIGIT)
        first_product = Signal(signed(self._a_width + self._b_width))
        second_product = Signal.like(first_product)
        product_wait = Signal()
        remainder = Signal(width)
        shifted = Signal(width)  # the divisor times 2**i of the current quotient bit
        quotient = Signal(_DGAMMA_BITS)
        negative = Signal()
        overflow = Signal()
        steps = Signal(range(max(self.quotient_bits.values()) + 2))
        radicand = Signal(2 * rw)
        root = Signal(rw)
        root_remainder = Signal(rw + 2)
        outputs = {name: Signal(self.result_layout[name].shape, name=f"out_{name}") for name in
                   ("rstd", "a", "c", "k2", "k3", "dgamma")}
        for name, signal in outputs.items():
            m.d.comb += getattr(self.result.payload, name).eq(signal)

        # one instance of every shared term (each state drives the divider's operands)
        count_squared = Signal(2 * len(count))
        numerator = Signal(signed(width))  # n of divide_round(n, d)
        magnitude = Signal(width)
        m.d.comb += magnitude.eq(Mux(numerator < 0, -numerator, numerator))

        # the registered operands of the next division (SETUP reads them)
        dividend = Signal(signed(width + 1))  # F1: K**2 (unsigned, width bits)
        held_divisor = Signal(width)
        limit = Signal(width + max(self.quotient_bits.values()) + 1)  # 2d * 2**q: the overflow bound

        negate = Signal()  # the division's numerator is -dividend (the sign is applied to the quotient)

        def divide(value, by, bits, then, *, negated=False):
            """``divide_round(value, by)`` (``-value`` when ``negated``) with ``bits`` quotient bits: register the
            operands, SETUP next; go to ``then`` after."""
            m.d.sync += [dividend.eq(value), held_divisor.eq(by), shifted.eq(by << bits),
                         limit.eq(by << (bits + 1)), steps.eq(bits), resume.eq(then), negate.eq(negated)]
            m.next = "SETUP"

        def rounded(fmt):
            """The signed quotient saturated to ``fmt`` (an IntFormat)."""
            value = Mux(negative, -quotient, quotient)
            high, low = fmt.max, fmt.min
            return Mux(overflow, Mux(negative, low, high), Mux(value > high, high, Mux(value < low, low, value)))

        def product_state(state, a_value, b_value, target, following):
            """State ``state``: ``target = a_value * b_value`` on the serial multiplier, then ``following``."""
            a_bits, b_bits = self._product_bits[state]
            assert len(Value.cast(a_value)) <= a_bits and len(Value.cast(b_value)) <= b_bits, (
                state, len(Value.cast(a_value)), a_bits, len(Value.cast(b_value)), b_bits)
            a_digits, b_digits = -(-a_bits // _DIGIT), -(-b_bits // _DIGIT)
            with m.State(state):
                m.d.comb += [multiplier.a.eq(a_value), multiplier.b.eq(b_value), multiplier.a_digits.eq(a_digits),
                             multiplier.b_digits.eq(b_digits), multiplier.start.eq(~product_wait)]
                m.d.sync += product_wait.eq(1)
                with m.If(multiplier.done):
                    m.d.sync += [target.eq(multiplier.product), product_wait.eq(0)]
                    m.next = following

        resume = Signal(range(6))
        after = {"sqrt": 0, "c": 1, "k2": 2, "k3": 3, "dgamma": 4}

        m.d.comb += self.command.ready.eq(0)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += self.result.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"), m.If(self.command.valid & ~self.result.valid):
                m.d.comb += self.command.ready.eq(1)
                m.d.sync += [fields.eq(cmd)] + [signal.eq(0) for signal in outputs.values()]
                with m.Switch(cmd.mode):
                    with m.Case(ScalarMode.FORWARD):
                        m.next = "F_COUNT"
                    with m.Case(ScalarMode.BACKWARD):
                        m.next = "B_COUNT"
                    with m.Default():
                        m.next = "G0_A"

            # -- forward ------------------------------------------------------------------------------------
            product_state("F_COUNT", count, count, count_squared, "F0_A")
            product_state("F0_A", count, s2, first_product, "F0_B")
            product_state("F0_B", s1, s1, second_product, "F0")
            with m.State("F0"):
                m.d.sync += temp.eq(first_product - second_product)
                m.next = "F1_A"
            product_state("F1_A", fields.eps, count_squared, first_product, "F1")
            with m.State("F1"):  # rstd**2 = floor(K**2 / D): the divider without the rounding set-up
                m.d.sync += [dividend.eq(count_squared << self.k_shift),
                             held_divisor.eq((temp << a.eps_frac) + first_product)]
                m.next = "F1_SETUP"
            with m.State("F1_SETUP"):
                m.d.sync += [remainder.eq(dividend), shifted.eq(held_divisor << (2 * rw - 1)), quotient.eq(0),
                             negative.eq(0), overflow.eq(dividend >= (held_divisor << (2 * rw))), steps.eq(2 * rw),
                             resume.eq(after["sqrt"])]
                m.next = "DIVIDE"
            with m.State("SQRT_SETUP"):
                m.d.sync += [radicand.eq(quotient), root.eq(0), root_remainder.eq(0), steps.eq(rw)]
                m.next = "SQRT"
            with m.State("SQRT"):
                partial = (root_remainder << 2) | radicand[-2:]
                trial = (root << 2) | 1
                fits = partial >= trial
                m.d.sync += [radicand.eq(radicand << 2), root.eq((root << 1) | fits),
                             root_remainder.eq(Mux(fits, partial - trial, partial)), steps.eq(steps - 1)]
                with m.If(steps == 1):
                    m.next = "F_A"
            with m.State("F_A"):
                rstd = Mux(overflow, a.rstd_format.max, root)
                m.d.sync += outputs["rstd"].eq(rstd)
                product = Signal(signed(self.param_width + rw + 1))
                m.d.comb += product.eq(fields.gamma * rstd)
                size = Mux(product < 0, -product, product)
                scaled = ((size << 1) + (1 << self.a_shift)) >> (self.a_shift + 1)
                value = Mux(product < 0, -scaled, scaled)
                fmt = a.coefficient
                m.d.sync += outputs["a"].eq(Mux(value > fmt.max, fmt.max, Mux(value < fmt.min, fmt.min, value)))
                m.next = "F_C_A"
            product_state("F_C_A", fields.beta << self.beta_shift, count, first_product, "F_C_B")
            product_state("F_C_B", outputs["a"], s1, second_product, "F_C")
            with m.State("F_C"):
                divide(first_product - second_product, count, self.quotient_bits["c"], after["c"])
            with m.State("F_OUT"):
                m.d.sync += [outputs["c"].eq(rounded(a.bias)), self.result.valid.eq(1)]
                m.next = "IDLE"

            # -- backward -----------------------------------------------------------------------------------
            product_state("B_COUNT", count, count, count_squared, "B0_A")
            product_state("B0_A", count, fields.w2, first_product, "B0_B")
            product_state("B0_B", s1, fields.w1, second_product, "B0")
            with m.State("B0"):
                m.d.sync += temp.eq(first_product - second_product)
                m.next = "B1_A"
            product_state("B1_A", fields.rstd, fields.rstd, cube, "B1")
            product_state("B1", cube[: 2 * rw], fields.rstd, cube, "B2")
            product_state("B2", cube, temp, first_product, "B2_SUM")
            with m.State("B2_SUM"):
                divide(first_product, count_squared << self.k2_exponent, self.quotient_bits["k2"], after["k2"],
                       negated=True)
            with m.State("B_K2"):
                m.d.sync += outputs["k2"].eq(rounded(a.coefficient))
                m.next = "B3_A"
            product_state("B3_A", fields.rstd, fields.w1, first_product, "B3_B")
            product_state("B3_B", outputs["k2"], s1, second_product, "B3")
            with m.State("B3"):
                divide(first_product + (second_product << self.k3_shift), count << self.k3_shift,
                       self.quotient_bits["k3"], after["k3"], negated=True)
            with m.State("B_OUT"):
                m.d.sync += [outputs["k3"].eq(rounded(a.bias)), self.result.valid.eq(1)]
                m.next = "IDLE"

            # -- dgamma -------------------------------------------------------------------------------------
            product_state("G0_A", count, fields.r2, first_product, "G0_B")
            product_state("G0_B", s1, fields.r1, second_product, "G0")
            with m.State("G0"):
                m.d.sync += temp.eq(first_product - second_product)
                m.next = "G1_A"
            product_state("G1_A", fields.rstd, temp, first_product, "G1")
            with m.State("G1"):
                divide(first_product << self.dgamma_up, count << self.dgamma_down, _DGAMMA_BITS, after["dgamma"])
            with m.State("G_OUT"):
                m.d.sync += [outputs["dgamma"].eq(Mux(negative, -quotient, quotient)), self.result.valid.eq(1)]
                m.next = "IDLE"

            # -- the shared divider ---------------------------------------------------------------------------
            with m.State("SETUP"):  # the registered operands: sign and |n| (in remainder)
                m.d.comb += numerator.eq(dividend)
                m.d.sync += [remainder.eq(magnitude), quotient.eq(0),
                             negative.eq(Mux(negate, numerator > 0, numerator < 0))]
                m.next = "TOTAL"
            with m.State("TOTAL"):  # 2|n| + d
                m.d.sync += remainder.eq((remainder << 1) + held_divisor)
                m.next = "OVERFLOW"
            with m.State("OVERFLOW"):  # the overflow test on the registered 2|n| + d
                m.d.sync += overflow.eq(remainder >= limit)
                m.next = "DIVIDE"
            with m.State("DIVIDE"):
                fits = remainder >= shifted
                m.d.sync += [remainder.eq(Mux(fits, remainder - shifted, remainder)), shifted.eq(shifted >> 1),
                             quotient.eq((quotient << 1) | fits), steps.eq(steps - 1)]
                with m.If(steps == 1), m.Switch(resume):
                    with m.Case(after["sqrt"]):
                        m.next = "SQRT_SETUP"
                    with m.Case(after["c"]):
                        m.next = "F_OUT"
                    with m.Case(after["k2"]):
                        m.next = "B_K2"
                    with m.Case(after["k3"]):
                        m.next = "B_OUT"
                    with m.Case(after["dgamma"]):
                        m.next = "G_OUT"
        return m
