"""The NORM unit's per-set scalar arithmetic with one digit-serial multiplier, one sequential divider and one
digit-by-digit square root: the three programs of :class:`wavecore.golden.numerics.NormArithmetic` a statistic
set needs, bit-exact, in about 120 to 230 cycles instead of the bit-serial multiplies of
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

``round`` is :func:`wavecore.golden.numerics.divide_round` (half away from zero): with ``d = m * 2**s`` (``m`` the
count or its square, ``s`` a constant of the division) the divider computes ``floor((2|n| + d) / 2d) = floor(N' /
m)``, ``N' = floor((2|n| + d) / 2**(s + 1))``, on magnitudes and applies the sign. It is a restoring long division
with the remainder as wide as the widest divisor (``m``, or rstd's ``D``), not as the numerator: ``N'`` is split
into its bits above the quotient's (``high``, the first partial remainder) and the ``q`` quotient bits (``low``,
shifted in one per cycle); the one-cycle overflow test is ``high >= m``, then each of the ``q`` cycles shifts a bit
in and subtracts ``m`` if it fits (a carry-select subtraction: carry chains of half the divisor's width side by
side, then multiplexers). The operands of every division are registered first (the state with the wide products ends
in a register), then ``2|n| + d`` is formed as one addition in two halves (SETUP the low half, TOTAL the high half
with its carry), ``N'`` is sliced out (ALIGN) and the overflow test runs (OVERFLOW), so no cycle holds a wide
multiplier and a wide carry chain, or two carry chains in series; ``count**2`` is registered when the command is
taken, ``rstd**3 * t`` is formed from two registered half products, and a negated numerator is a flag on the
quotient's sign, not a negation. ``A``'s product is formed on the serial multiplier, then its magnitude, its
rounding shift, and its sign with the clamp take a state each; a clamp compares the magnitude with the bound beside
its negation.

**Ports** (as :class:`NormScalar`): ``command`` (stream of :attr:`command_layout`; taken, ``ready`` high, in
the first cycle an idle unit sees ``valid`` while no result waits) and ``result`` (stream of
:attr:`result_layout`, valid :meth:`worst_case_cycles` cycles after the command was taken, held until
``ready``; the fields a mode does not produce are 0).

**Timing** (data-independent, from the cycle the command is taken to the first cycle of ``result.valid``):
:meth:`worst_case_cycles` (254, 244 and 123 for forward, backward and dgamma of the int8 preset; they were 216,
210 and 110 before the divider's two-half addition, A's states and product state, the serial multiplier's
three more cycles and the registered operand select): the states of each mode, every division's SETUP, TOTAL,
ALIGN, OVERFLOW and quotient bits, and every product state's :func:`wavecore.hdl.core.serial_multiplier.cycles` + 2
(its first cycle registers the state's select of the multiplier's operands, an AND-OR of every product state's
operands, so no decoding of the FSM state lies before the multiplier's operand registers; the second starts it).

**Products**: every wide product (``count**2``, ``count*S2``, ``S1**2``, ``eps*count**2``, ``rstd**3 * t`` ...)
is formed on one :class:`wavecore.hdl.core.serial_multiplier.SerialMultiplier` (17-bit digits, one DSP), a state
each, so no cycle holds a multiplier wider than one DSP, ``gamma * rstd`` too.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
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
        # the rounded divisions divide_round(n, m * 2**s): (bits of N = 2|n| + m * 2**s, bits of m, s); the
        # divider divides floor(N / 2**(s + 1)) by m (the same quotient), so its remainder is as wide as m
        self._divisions = {
            "c": (max(param_width + self.beta_shift + count_bits, cw + s1w) + 3, count_bits, 0),
            "k2": (3 * rw + t_backward + 3, 2 * count_bits, self.k2_exponent),
            "k3": (max(rw + ww, cw + s1w + self.k3_shift) + 3, count_bits, self.k3_shift),
            "dgamma": (rw + t_dgamma + self.dgamma_up + 3, count_bits, self.dgamma_down),
        }
        # rstd**2 = floor(K**2 / D): K**2 and D bits
        self._rstd_division = (2 * count_bits + self.k_shift + 1, max(centred + a.eps_frac, 32 + 2 * count_bits) + 2)
        self.width = max(n for n, _, _ in self._divisions.values()) + 1  # N (and the signed n)
        self.divisor_width = max(max(d for _, d, _ in self._divisions.values()), self._rstd_division[1])
        # N's bits above the quotient's: the overflow test's (N >> (s + 1 + q) >= m) operand
        self.high_width = max(max(n - s - 1 - self.quotient_bits[name] for name, (n, _, s) in
                                  self._divisions.items()),
                              self._rstd_division[0] - self.quotient_bits["rstd"], 1)
        self._temporary_bits = temp_bits = max(centred, t_backward, t_dgamma) + 1
        # the product states, in order per mode: state -> (bits of a, bits of b) (magnitudes; signed operands
        # count their sign bit), the one definition the FSM and worst_case_cycles use
        shifted_beta = len(Value.cast(Signal(signed(param_width)) << self.beta_shift))  # as the FSM forms it
        self._product_bits = {
            "F_COUNT": (count_bits, count_bits), "F0_A": (count_bits, s2w), "F0_B": (s1w, s1w),
            "F1_A": (32, 2 * count_bits), "F_A": (param_width, rw), "F_C_A": (shifted_beta, count_bits),
            "F_C_B": (cw, s1w),
            "B_COUNT": (count_bits, count_bits), "B0_A": (count_bits, ww), "B0_B": (s1w, ww), "B1_A": (rw, rw),
            "B1": (2 * rw, rw), "B2": (3 * rw, temp_bits), "B3_A": (rw, ww), "B3_B": (cw, s1w),
            "G0_A": (count_bits, r2w), "G0_B": (s1w, r1w), "G1_A": (rw, temp_bits),
        }
        self._mode_products = {
            ScalarMode.FORWARD: ("F_COUNT", "F0_A", "F0_B", "F1_A", "F_A", "F_C_A", "F_C_B"),
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
        # every product state: the serial multiplier's cycles + 2 (the state's first cycle, its select
        # registered; the start cycle)
        products = sum(product_cycles(*(-(-bits // _DIGIT) for bits in self._product_bits[state])) + 2
                       for state in self._mode_products[mode])
        # every rounded division: the operands' state, SETUP TOTAL ALIGN OVERFLOW, then q DIVIDE cycles; the
        # rstd division: F1 OVERFLOW, then q DIVIDE cycles; + 1: the cycle result.valid is set in
        # F0 F1 OVERFLOW, divide, SQRT_SETUP, root, F_RSTD (F_A: a product state) F_A_SIZE F_A_ROUND F_A_CLAMP,
        # F_C SETUP TOTAL ALIGN OVERFLOW, divide, F_OUT
        if mode == ScalarMode.FORWARD:
            return products + 3 + q["rstd"] + 1 + self.arithmetic.rstd_width + 4 + 5 + q["c"] + 1 + 1
        if mode == ScalarMode.BACKWARD:  # B0 B2_SUM SETUP TOTAL ALIGN OVERFLOW, divide, B_K2 B3 SETUP ..., B_OUT
            return products + 6 + q["k2"] + 6 + q["k3"] + 1 + 1
        return products + 6 + q["dgamma"] + 1 + 1  # G0 G1 SETUP TOTAL ALIGN OVERFLOW, divide, G_OUT

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
        product_phase = Signal(2)  # in a product state: 0 its first cycle, 1 the multiplier's start, 2 waiting
        quotient_max = max(self.quotient_bits.values())
        remainder = Signal(self.divisor_width)  # the partial remainder (below the divisor)
        high = Signal(self.high_width)  # N's bits above the quotient's (the first partial remainder)
        low = Signal(quotient_max)  # N's quotient bits, the next one at the top (shifted left each step)
        total = Signal(width)  # N = 2|n| + d
        quotient = Signal(_DGAMMA_BITS)
        negative = Signal()
        overflow = Signal()
        steps = Signal(range(quotient_max + 2))
        radicand = Signal(2 * rw)
        root = Signal(rw)
        root_remainder = Signal(rw + 2)
        outputs = {name: Signal(self.result_layout[name].shape, name=f"out_{name}") for name in
                   ("rstd", "a", "c", "k2", "k3", "dgamma")}
        for name, signal in outputs.items():
            m.d.comb += getattr(self.result.payload, name).eq(signal)

        count_squared = Signal(2 * len(count))

        # the registered operands of the next division (SETUP reads them)
        dividend = Signal(signed(width))  # n of divide_round(n, m * 2**s)
        held_divisor = Signal(self.divisor_width)  # m (rstd: D)
        addend = Signal(width)  # m * 2**s

        negate = Signal()  # the division's numerator is -dividend (the sign is applied to the quotient)

        def divide(value, name, by, then, *, negated=False):
            """``divide_round(value, by * 2**s)`` (``-value`` when ``negated``; ``name`` a key of
            ``_divisions``: s and the quotient bits): register the operands, SETUP next; go to ``then``
            after."""
            bits, _, shift = self._divisions[name]
            value = Value.cast(value)
            if len(value) > bits:  # n fits bits signed bits: the subtraction forming it no wider
                value = value[:bits].as_signed()
            m.d.sync += [dividend.eq(value), held_divisor.eq(by), addend.eq(by << shift),
                         steps.eq(self.quotient_bits[name]), resume.eq(then), negate.eq(negated)]
            m.next = "SETUP"

        def carry_add(x, y, carry):
            """``x + y + carry`` (unsigned, one bit wider) as one carry chain: ``(Cat(1, x) + Cat(carry, y)) >> 1``."""
            return (Cat(Const(1, 1), x) + Cat(carry, y))[1:]

        def clamped(is_negative, size, fmt):
            """``-size`` if ``is_negative`` else ``size`` (a magnitude) saturated to ``fmt`` (an IntFormat): the
            negation and the bound's compare side by side, one carry chain deep."""
            return Mux(is_negative, Mux(size > -fmt.min, fmt.min, -size), Mux(size > fmt.max, fmt.max, size))

        def rounded(fmt):
            """The signed quotient saturated to ``fmt`` (an IntFormat)."""
            return Mux(overflow, Mux(negative, fmt.min, fmt.max), clamped(negative, quotient, fmt))

        # the multiplier's operands: an AND-OR of every product state's operands under a registered one-hot
        # select (the state's flag, one cycle late), so no FSM state decoding lies before the operand registers;
        # a product state starts the multiplier in its second cycle, when its select is up
        choices = []  # (state, select, a, b, a_digits, b_digits)

        def product_state(state, a_value, b_value, target, following):
            """State ``state``: ``target = a_value * b_value`` on the serial multiplier, then ``following``."""
            a_bits, b_bits = self._product_bits[state]
            assert len(Value.cast(a_value)) <= a_bits and len(Value.cast(b_value)) <= b_bits, (
                state, len(Value.cast(a_value)), a_bits, len(Value.cast(b_value)), b_bits)
            a_term = Signal.like(multiplier.a, name=f"a_{state}")
            b_term = Signal.like(multiplier.b, name=f"b_{state}")
            m.d.comb += [a_term.eq(a_value), b_term.eq(b_value)]
            choices.append((state, Signal(name=f"select_{state}"), a_term, b_term, -(-a_bits // _DIGIT),
                            -(-b_bits // _DIGIT)))
            with m.State(state):
                m.d.comb += multiplier.start.eq(product_phase == 1)
                m.d.sync += product_phase.eq(Mux(product_phase == 0, 1, 2))
                with m.If(multiplier.done):
                    m.d.sync += [target.eq(multiplier.product), product_phase.eq(0)]
                    m.next = following

        resume = Signal(range(6))
        after = {"sqrt": 0, "c": 1, "k2": 2, "k3": 3, "dgamma": 4}

        m.d.comb += self.command.ready.eq(0)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += self.result.valid.eq(0)

        with m.FSM() as fsm:
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
                squared_k = count_squared << self.k_shift
                m.d.sync += [high.eq(squared_k >> (2 * rw)),
                             low.eq(Cat(Const(0, quotient_max - 2 * rw), squared_k[: 2 * rw])),
                             held_divisor.eq((temp << a.eps_frac) + first_product), negative.eq(0),
                             steps.eq(2 * rw), resume.eq(after["sqrt"])]
                m.next = "OVERFLOW"
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
                    m.next = "F_RSTD"
            # A = sat(round(gamma * rstd / 2**a_shift)) in states: rstd, the product (on the serial multiplier),
            # its magnitude, the rounding shift, then the sign and the clamp (one carry chain each)
            gamma_rstd = Signal(signed(self.param_width + rw + 1))
            a_negative = Signal()
            a_size = Signal(self.param_width + rw)
            with m.State("F_RSTD"):
                m.d.sync += outputs["rstd"].eq(Mux(overflow, a.rstd_format.max, root))
                m.next = "F_A"
            product_state("F_A", fields.gamma, outputs["rstd"], gamma_rstd, "F_A_SIZE")
            with m.State("F_A_SIZE"):
                m.d.sync += [a_negative.eq(gamma_rstd < 0), a_size.eq(Mux(gamma_rstd < 0, -gamma_rstd, gamma_rstd))]
                m.next = "F_A_ROUND"
            with m.State("F_A_ROUND"):
                m.d.sync += a_size.eq((a_size + (1 << (self.a_shift - 1))) >> self.a_shift if self.a_shift
                                      else a_size)
                m.next = "F_A_CLAMP"
            with m.State("F_A_CLAMP"):
                m.d.sync += outputs["a"].eq(clamped(a_negative, a_size, a.coefficient))
                m.next = "F_C_A"
            product_state("F_C_A", fields.beta << self.beta_shift, count, first_product, "F_C_B")
            product_state("F_C_B", outputs["a"], s1, second_product, "F_C")
            with m.State("F_C"):
                divide(first_product - second_product, "c", count, after["c"])
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
                divide(first_product, "k2", count_squared, after["k2"], negated=True)
            with m.State("B_K2"):
                m.d.sync += outputs["k2"].eq(rounded(a.coefficient))
                m.next = "B3_A"
            product_state("B3_A", fields.rstd, fields.w1, first_product, "B3_B")
            product_state("B3_B", outputs["k2"], s1, second_product, "B3")
            with m.State("B3"):
                divide(first_product + (second_product << self.k3_shift), "k3", count, after["k3"], negated=True)
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
                divide(first_product << self.dgamma_up, "dgamma", count, after["dgamma"])
            with m.State("G_OUT"):
                m.d.sync += [outputs["dgamma"].eq(Mux(negative, -quotient, quotient)), self.result.valid.eq(1)]
                m.next = "IDLE"

            # -- the shared divider ---------------------------------------------------------------------------
            # N = 2|n| + m * 2**s = addend + (2n or ~2n) + (n < 0) in two halves: SETUP adds the low half (and
            # registers n != 0), TOTAL the high half with the low half's carry (half the carry chain each) and
            # registers the quotient's sign
            below = dividend[-1]
            doubled = Cat(Const(0, 1), dividend)[:width]  # 2n, two's complement
            operand = Mux(below, ~doubled, doubled)
            half = width // 2
            low_carry = Signal()
            high_operand = Signal(width - half)
            nonzero = Signal()  # n != 0, registered in SETUP (a wide OR), so the sign is set in TOTAL
            with m.State("SETUP"):
                low_sum = carry_add(addend[:half], operand[:half], below)
                m.d.sync += [total[:half].eq(low_sum[:half]), low_carry.eq(low_sum[half]),
                             high_operand.eq(operand[half:]), nonzero.eq(dividend.any())]
                m.next = "TOTAL"
            with m.State("TOTAL"):
                m.d.sync += [total[half:].eq(carry_add(addend[half:], high_operand, low_carry)),
                             negative.eq(Mux(negate, ~below & nonzero, below))]  # (n > 0: no carry chain)
                m.next = "ALIGN"
            with m.State("ALIGN"):  # floor(N / 2**(s + 1)): its bits above the quotient's in high, the rest in low
                with m.Switch(resume):
                    for name in ("c", "k2", "k3", "dgamma"):
                        _, _, shift = self._divisions[name]
                        q = self.quotient_bits[name]
                        with m.Case(after[name]):
                            m.d.sync += [high.eq(total >> (shift + 1 + q)),
                                         low.eq(Cat(Const(0, quotient_max - q), total[shift + 1 : shift + 1 + q]))]
                m.next = "OVERFLOW"
            with m.State("OVERFLOW"):  # the quotient overflows its bits: floor(N / 2**q) >= the divisor
                m.d.sync += [overflow.eq(high >= held_divisor), remainder.eq(high), quotient.eq(0)]
                m.next = "DIVIDE"
            # one quotient bit: the next bit of N shifted in, the divisor subtracted if it fits. The subtraction
            # is a carry-select one (trial + ~divisor + 1): the low half, and the high half for both carries into
            # it side by side, so the carry chain is half the divisor's width
            trial = Cat(low[-1], remainder)
            trial_bits = len(trial)
            split = trial_bits // 2
            inverted = ~Cat(held_divisor, Const(0, trial_bits - len(held_divisor)))
            low_half = carry_add(trial[:split], inverted[:split], Const(1, 1))  # its top bit: no borrow
            high_halves = [carry_add(trial[split:], inverted[split:], Const(carry, 1)) for carry in (0, 1)]
            high_half = Mux(low_half[split], high_halves[1], high_halves[0])
            with m.State("DIVIDE"):
                fits = high_half[-1]  # no borrow: trial >= the divisor
                difference = Cat(low_half[:split], high_half[: trial_bits - split])
                m.d.sync += [remainder.eq(Mux(fits, difference, trial)), low.eq(low << 1),
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

        def any_of(terms):
            return reduce(operator.or_, terms)

        for state, select, *_ in choices:
            m.d.sync += select.eq(fsm.ongoing(state))
        m.d.comb += [
            multiplier.a.eq(any_of(Mux(select, a_term, 0) for _, select, a_term, _, _, _ in choices)),
            multiplier.b.eq(any_of(Mux(select, b_term, 0) for _, select, _, b_term, _, _ in choices)),
            multiplier.a_digits.eq(any_of(Mux(select, a_digits, 0) for _, select, _, _, a_digits, _ in choices)),
            multiplier.b_digits.eq(any_of(Mux(select, b_digits, 0) for _, select, _, _, _, b_digits in choices)),
        ]
        return m
