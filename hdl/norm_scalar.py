"""The per-channel scalar unit of the BN/GN datapath (research/mbs_bn.md §2.3 and implication 10).

Between the statistics pass and the affine pass (and between the backward reductions and the dx pass) it
turns the exact integer sums of one statistic set into the stream constants, exactly as
:class:`golden.numerics.NormArithmetic` defines them:

* ``forward``: (S1, S2, M, gamma, beta, eps_q) -> (rstd, A, C), with the fixed-point reciprocal square root
  ``rstd = isqrt((M * 2**(fa + eps_frac/2 + R))**2 // D)``;
* ``backward``: (S1, M, rstd, W1, W2) -> (K2, K3);
* ``dgamma``: (S1, M, rstd, r1, r2) -> dgamma.

It is small (C entries per layer) and sequential: a micro-program of wide integer operations run by one
shift-add multiplier, one restoring divider and one digit-by-digit square root, all bit-serial, so the
unit costs a few wide registers instead of wide combinational multipliers. Latency is data dependent
(the multiplier stops at the multiplier operand's top bit); :meth:`NormScalar.worst_case_cycles` bounds
it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.norm_common import check_arithmetic, check_int

__all__ = ["NormScalar", "ScalarMode"]


class ScalarMode(enum.Enum, shape=2):
    FORWARD = 0
    BACKWARD = 1
    DGAMMA = 2


class _Engine(enum.Enum, shape=2):
    MULTIPLY = 0
    DIVIDE = 1
    SQRT = 2


class NormScalar(wiring.Component):
    """Sequential per-set constant generator (one command in flight).

    Parameters
    ----------
    arithmetic : golden.numerics.NormArithmetic
        All formats, fractional bits and ``max_count``.
    param_width : int
        Width of gamma and beta (Q.param_frac), 2 to 32.
    weighted_width : int
        Width of W1 and W2 (sums of gamma * r over a channel group), 2 to 128.

    Attributes
    ----------
    command : In(stream.Signature(StructLayout({"mode", "s1", "s2", "count", "gamma", "beta", "eps",
    "rstd", "w1", "w2", "r1", "r2"})))
        One operation; fields a mode does not use are ignored. Accepted only when idle.
    result : Out(stream.Signature(StructLayout({"rstd", "a", "c", "k2", "k3", "dgamma"})))
        The outputs of the mode (others 0), held until taken.
    """

    def __init__(self, *, arithmetic, param_width: int = 16, weighted_width: int = 96):
        self.arithmetic = a = check_arithmetic(arithmetic)
        self.param_width = check_int("param_width", param_width, 2, 32)
        self.weighted_width = check_int("weighted_width", weighted_width, 2, 128)
        count_bits = a.max_count.bit_length()
        self.count_shape = unsigned(count_bits)
        k_shift = 2 * (a.activation_frac + a.eps_frac // 2 + a.reciprocal_frac)
        self.k2_exponent = 3 * a.reciprocal_frac + a.param_frac + 2 * a.activation_frac - a.scalar_frac
        self.k3_shift = a.reciprocal_frac + a.param_frac - a.scalar_frac
        up = a.param_grad_frac + a.scalar_frac
        down = a.reciprocal_frac + a.grad_frac + a.activation_frac
        self.dgamma_up, self.dgamma_down = max(up - down, 0), max(down - up, 0)
        bounds = [
            2 * count_bits + k_shift,  # K**2
            count_bits + a.sumsq_format.width + a.eps_frac + 2,  # D
            2 * a.sum_format.width,
            param_width + a.activation_frac + a.scalar_frac + count_bits + 2,  # C numerator
            a.coefficient_width + a.sum_format.width + 2,
            3 * a.rstd_width + count_bits + weighted_width + a.sum_format.width + 3,  # K2 numerator
            2 * count_bits + self.k2_exponent + 2,  # K2 denominator
            a.coefficient_width + a.sum_format.width + self.k3_shift + 3,  # K3 numerator
            a.rstd_width
            + count_bits
            + a.grad_product_sum_format.width
            + a.sum_format.width
            + self.dgamma_up
            + 3,  # dgamma numerator
        ]
        self.width = max(bounds) + 2  # internal signed register width
        self.dgamma_shape = signed(self.width)
        self.command_layout = data.StructLayout(
            {
                "mode": ScalarMode,
                "s1": signed(a.sum_format.width),
                "s2": unsigned(a.sumsq_format.width),
                "count": self.count_shape,
                "gamma": signed(param_width),
                "beta": signed(param_width),
                "eps": unsigned(32),
                "rstd": unsigned(a.rstd_width),
                "w1": signed(weighted_width),
                "w2": signed(weighted_width),
                "r1": signed(a.grad_sum_format.width),
                "r2": signed(a.grad_product_sum_format.width),
            }
        )
        self.result_layout = data.StructLayout(
            {
                "rstd": unsigned(a.rstd_width),
                "a": signed(a.coefficient_width),
                "c": signed(a.bias_width),
                "k2": signed(a.coefficient_width),
                "k3": signed(a.bias_width),
                "dgamma": self.dgamma_shape,
            }
        )
        super().__init__(
            {
                "command": In(stream.Signature(self.command_layout)),
                "result": Out(stream.Signature(self.result_layout)),
            }
        )

    # -- the micro-programs (register names are strings; see _step) -----------------------------------
    def _programs(self):
        a = self.arithmetic
        k_shift = 2 * (a.activation_frac + a.eps_frac // 2 + a.reciprocal_frac)
        rstd_format, coefficient, bias = a.rstd_format, a.coefficient, a.bias
        forward = [
            ("mul", "t0", "count", "s2"),
            ("mul", "t1", "s1", "s1"),
            ("sub", "t0", "t0", "t1"),
            ("shl", "t0", "t0", a.eps_frac),
            ("mul", "t1", "count", "count"),
            ("mul", "t2", "eps", "t1"),
            ("add", "t0", "t0", "t2"),  # D
            ("shl", "t1", "t1", k_shift),  # K**2
            ("divf", "t1", "t1", "t0"),
            ("isqrt", "t1", "t1"),
            ("sat", "rstd", "t1", rstd_format),
            ("mul", "t2", "gamma", "rstd"),
            ("one", "t3", a.param_frac + a.reciprocal_frac - a.scalar_frac),
            ("divr", "t2", "t2", "t3"),
            ("sat", "a", "t2", coefficient),
            ("shl", "t3", "beta", a.activation_frac + a.scalar_frac - a.param_frac),
            ("mul", "t3", "t3", "count"),
            ("mul", "t4", "a", "s1"),
            ("sub", "t3", "t3", "t4"),
            ("divr", "t3", "t3", "count"),
            ("sat", "c", "t3", bias),
        ]
        backward = [
            ("mul", "t0", "count", "w2"),
            ("mul", "t1", "s1", "w1"),
            ("sub", "t0", "t0", "t1"),
            ("mul", "t2", "rstd", "rstd"),
            ("mul", "t2", "t2", "rstd"),
            ("mul", "t0", "t2", "t0"),
            ("neg", "t0", "t0"),
            ("mul", "t1", "count", "count"),
            ("shl", "t1", "t1", self.k2_exponent),
            ("divr", "t0", "t0", "t1"),
            ("sat", "k2", "t0", coefficient),
            ("mul", "t0", "rstd", "w1"),
            ("mul", "t1", "k2", "s1"),
            ("shl", "t1", "t1", self.k3_shift),
            ("add", "t0", "t0", "t1"),
            ("neg", "t0", "t0"),
            ("shl", "t1", "count", self.k3_shift),
            ("divr", "t0", "t0", "t1"),
            ("sat", "k3", "t0", bias),
        ]
        dgamma = [
            ("mul", "t0", "count", "r2"),
            ("mul", "t1", "s1", "r1"),
            ("sub", "t0", "t0", "t1"),
            ("mul", "t0", "rstd", "t0"),
            ("shl", "t0", "t0", self.dgamma_up),
            ("shl", "t1", "count", self.dgamma_down),
            ("divr", "dgamma", "t0", "t1"),
        ]
        return {ScalarMode.FORWARD: forward, ScalarMode.BACKWARD: backward, ScalarMode.DGAMMA: dgamma}

    def worst_case_cycles(self, mode: ScalarMode) -> int:
        """Upper bound on cycles from command to result for ``mode``."""
        cost = {
            "mul": self.width + 2,
            "divf": self.width + 4,
            "divr": self.width + 4,
            "isqrt": self.width // 2 + 3,
        }
        return 2 + sum(cost.get(step[0], 1) for step in self._programs()[mode])

    def elaborate(self, platform):
        m = Module()
        width = self.width
        magnitude_width = width + 2
        names = [
            "s1",
            "s2",
            "count",
            "gamma",
            "beta",
            "eps",
            "rstd",
            "w1",
            "w2",
            "r1",
            "r2",
            "a",
            "c",
            "k2",
            "k3",
            "dgamma",
            "t0",
            "t1",
            "t2",
            "t3",
            "t4",
        ]
        registers = {name: Signal(signed(width), name=f"reg_{name}") for name in names}

        # Bit-serial engines sharing operand registers.
        busy = Signal()
        engine = Signal(_Engine)
        operand = Signal(magnitude_width)  # multiplicand / dividend / radicand
        other = Signal(magnitude_width)  # multiplier / divisor / sqrt bit
        accumulator = Signal(magnitude_width)  # product / quotient / root
        remainder = Signal(magnitude_width + 1)
        steps_left = Signal(range(magnitude_width + 1))
        with m.If(busy), m.Switch(engine):
            with m.Case(_Engine.MULTIPLY):
                with m.If(other == 0):
                    m.d.sync += busy.eq(0)
                with m.Else():
                    with m.If(other[0]):
                        m.d.sync += accumulator.eq(accumulator + operand)
                    m.d.sync += [operand.eq(operand << 1), other.eq(other >> 1)]
            with m.Case(_Engine.DIVIDE):
                shifted = Signal(magnitude_width + 1)
                m.d.comb += shifted.eq((remainder << 1) | operand[-1])
                fits = shifted >= other
                m.d.sync += [
                    operand.eq(operand << 1),
                    remainder.eq(Mux(fits, shifted - other, shifted)),
                    accumulator.eq((accumulator << 1) | fits),
                    steps_left.eq(steps_left - 1),
                ]
                with m.If(steps_left == 1):
                    m.d.sync += busy.eq(0)
            with m.Case(_Engine.SQRT):
                trial = Signal(magnitude_width + 1)
                m.d.comb += trial.eq(accumulator + other)
                with m.If(other == 0):
                    m.d.sync += busy.eq(0)
                with m.Elif(operand >= trial):
                    m.d.sync += [
                        operand.eq(operand - trial),
                        accumulator.eq((accumulator >> 1) + other),
                        other.eq(other >> 2),
                    ]
                with m.Else():
                    m.d.sync += [accumulator.eq(accumulator >> 1), other.eq(other >> 2)]

        # Sequencer.
        mode = Signal(ScalarMode)
        running = Signal()
        started = Signal()
        negative = Signal()
        pc = Signal(range(64))
        programs = self._programs()
        m.d.comb += self.command.ready.eq(~running & ~self.result.valid)
        with m.If(self.command.valid & self.command.ready):
            payload = self.command.payload
            m.d.sync += [running.eq(1), pc.eq(0), started.eq(0), mode.eq(payload.mode)]
            for name in ("s1", "s2", "count", "gamma", "beta", "eps", "rstd", "w1", "w2", "r1", "r2"):
                m.d.sync += registers[name].eq(getattr(payload, name))
            for name in ("a", "c", "k2", "k3", "dgamma"):
                m.d.sync += registers[name].eq(0)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += self.result.valid.eq(0)

        def magnitude(value):
            return Mux(value < 0, -value, value).as_unsigned()

        left = Signal(signed(width))
        right = Signal(signed(width))
        shared = SimpleNamespace(
            left=left,
            right=right,
            sum=left + right,
            difference=left - right,
            negated=-left,
            left_magnitude=magnitude(left),
            right_magnitude=magnitude(right),
            result=Mux(negative, -accumulator.as_signed(), accumulator.as_signed()),
            started=started,
            busy=busy,
            engine=engine,
            operand=operand,
            other=other,
            accumulator=accumulator,
            remainder=remainder,
            steps_left=steps_left,
            negative=negative,
        )
        with m.If(running), m.Switch(mode):
            for program_mode, program in programs.items():
                with m.Case(program_mode), m.Switch(pc):
                    for index, step in enumerate(program):
                        with m.Case(index):
                            self._step(m, step, registers, pc, shared)
                    with m.Default():
                        m.d.sync += [running.eq(0), self.result.valid.eq(1)]
        for name in ("rstd", "a", "c", "k2", "k3", "dgamma"):
            m.d.comb += getattr(self.result.payload, name).eq(registers[name])
        return m

    def _step(self, m, step, registers, pc, shared):
        """One micro-program step. Operands go through the shared ``left``/``right`` selectors and every
        arithmetic result comes from one shared adder, subtractor, negator and engine, so a step costs a
        multiplexer input, not its own wide datapath."""
        op, destination, *arguments = step
        target = registers[destination]
        advance = pc.eq(pc + 1)
        if len(arguments) >= 1 and isinstance(arguments[0], str):
            m.d.comb += shared.left.eq(registers[arguments[0]])
        if len(arguments) >= 2 and isinstance(arguments[1], str):
            m.d.comb += shared.right.eq(registers[arguments[1]])
        if op == "add":
            m.d.sync += [target.eq(shared.sum), advance]
        elif op == "sub":
            m.d.sync += [target.eq(shared.difference), advance]
        elif op == "neg":
            m.d.sync += [target.eq(shared.negated), advance]
        elif op == "shl":
            m.d.sync += [target.eq(shared.left << arguments[1]), advance]
        elif op == "one":
            m.d.sync += [target.eq(1 << arguments[0]), advance]
        elif op == "sat":
            fmt = arguments[1]
            value = shared.left
            m.d.sync += [
                target.eq(Mux(value > fmt.max, fmt.max, Mux(value < fmt.min, fmt.min, value))),
                advance,
            ]
        else:
            width = len(shared.operand)
            with m.If(~shared.started):
                m.d.sync += [
                    shared.started.eq(1),
                    shared.busy.eq(1),
                    shared.accumulator.eq(0),
                    shared.remainder.eq(0),
                ]
                if op == "mul":
                    m.d.sync += [
                        shared.engine.eq(_Engine.MULTIPLY),
                        shared.operand.eq(shared.left_magnitude),
                        shared.other.eq(shared.right_magnitude),
                        shared.negative.eq((shared.left < 0) ^ (shared.right < 0)),
                    ]
                elif op == "divr":
                    # round half away from zero: floor((2|n| + d) / 2d), sign of n
                    m.d.sync += [
                        shared.engine.eq(_Engine.DIVIDE),
                        shared.operand.eq((shared.left_magnitude << 1) + shared.right.as_unsigned()),
                        shared.other.eq(shared.right.as_unsigned() << 1),
                        shared.negative.eq(shared.left < 0),
                        shared.steps_left.eq(width),
                    ]
                elif op == "divf":
                    m.d.sync += [
                        shared.engine.eq(_Engine.DIVIDE),
                        shared.operand.eq(shared.left.as_unsigned()),
                        shared.other.eq(shared.right.as_unsigned()),
                        shared.negative.eq(0),
                        shared.steps_left.eq(width),
                    ]
                else:  # isqrt
                    top = 1 << (2 * ((width - 1) // 2))
                    m.d.sync += [
                        shared.engine.eq(_Engine.SQRT),
                        shared.operand.eq(shared.left.as_unsigned()),
                        shared.other.eq(top),
                        shared.negative.eq(0),
                    ]
            with m.Elif(~shared.busy):
                m.d.sync += [target.eq(shared.result), shared.started.eq(0), advance]
