"""The per-channel scalar unit of the BN/GN datapath (the small step between the fissioned BN passes of Jung et
al., arXiv 1807.01702; formulas in :mod:`wavecore.golden.numerics`).

Between the statistics pass and the affine pass (and between the backward reductions and the dx pass) it
turns the exact integer sums of one statistic set into the stream constants, exactly as
:class:`wavecore.golden.numerics.NormArithmetic` defines them:

* ``forward``: (S1, S2, M, gamma, beta, eps_q) -> (rstd, A, C), with the fixed-point reciprocal square root
  ``rstd = isqrt((M * 2**(fa + eps_frac/2 + R))**2 // D)``;
* ``backward``: (S1, M, rstd, W1, W2) -> (K2, K3);
* ``dgamma``: (S1, M, rstd, r1, r2) -> dgamma.

It runs C times per layer, so it is built as a small sequencer rather than as wide combinational logic:

* a **register file** (:class:`amaranth.lib.memory.Memory`, 16 words of ``datapath_width`` bits, one
  asynchronous read port and one write port: LUT RAM on ECP5) holds the command fields, the named
  temporaries of the program and a scratch word;
* **one datapath** of three working registers (``X``: multiplier / dividend / radicand, shifted left one
  bit per cycle; ``Y``: multiplicand / divisor / partial root; ``R``: accumulator / partial remainder)
  around **one adder/subtracter**. Every operation reduces to shift + add/sub: the multiply is MSB-first
  shift-and-add (Horner; the sign bit of ``X`` weighs negative), the division is non-restoring (the
  quotient bits enter ``X`` from the bottom), the square root is the non-restoring digit-by-digit root of
  Li and Chu (two cycles per root bit), and saturation is a sign/overflow test on ``R``;
* a **micro-program ROM** (one control word per cycle, looped instructions for the bit-serial steps),
  assembled at construction from the three operation lists of :meth:`NormScalar._programs`.

Latency does not depend on the data: :meth:`NormScalar.worst_case_cycles` is exact.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wavecore.hdl.norm.common import check_arithmetic, check_int

__all__ = ["NormScalar", "ScalarMode"]

_REGISTERS = 16  # register-file words; every program needs at most 15 names plus the scratch word
_COMMAND_FIELDS = ("s1", "s2", "count", "gamma", "beta", "eps", "rstd", "w1", "w2", "r1", "r2")
_OUTPUTS = ("rstd", "a", "c", "k2", "k3", "dgamma")  # result fields, 1-based capture codes in `out`


class ScalarMode(enum.Enum, shape=2):
    FORWARD = 0
    BACKWARD = 1
    DGAMMA = 2


class _X(enum.Enum, shape=2):
    HOLD = 0
    LOAD = 1  # X <= register file word
    SHIFT = 2  # X <= X << 1 | quotient bit


class _Y(enum.Enum, shape=2):
    HOLD = 0
    LOAD = 1  # Y <= register file word
    SHIFT = 2  # Y <= Y << 1 | root bit (sqrt) or 0 (doubling); in a sqrt loop only on its second cycles
    CLEAR = 3


class _R(enum.Enum, shape=2):
    HOLD = 0
    ALU = 1  # R <= A +/- B
    SATURATE = 2  # R <= R clamped to the format selected by `fmt`


class _A(enum.Enum, shape=3):
    ZERO = 0
    R = 1
    SHIFT = 2  # R << 1
    SHIFT_X = 3  # R << 1 | top bit of X
    ONE = 4


class _B(enum.Enum, shape=2):
    ZERO = 0
    Y = 1
    MULTIPLY = 2  # Y if the top bit of X is set
    SQRT = 3  # phase 1 of a root step: 0; phase 2: Y << 2 | (R < 0) << 1 | 1


class _Alu(enum.Enum, shape=3):
    ADD = 0
    SUBTRACT = 1
    BY_SIGN = 2  # subtract while R >= 0 (non-restoring division and root)
    BY_FLAG = 3  # subtract if the flag (sign of a divr numerator) is set
    FIRST = 4  # subtract on the first cycle of the loop (signed multiplier's sign bit)


class _Repeat(enum.Enum, shape=2):
    ONCE = 0
    DATAPATH = 1  # datapath_width cycles
    COUNT = 2  # Cat(raddr, waddr) cycles (shifts; the instruction then reads and writes nothing)


class _Write(enum.Enum, shape=2):
    R = 0
    X = 1
    FIELD = 2  # the command field numbered `raddr`


def _instruction_layout() -> data.StructLayout:
    return data.StructLayout(
        {
            "raddr": 4,
            "waddr": 4,
            "we": 1,
            "wsel": _Write,
            "out": 3,
            "x_op": _X,
            "y_op": _Y,
            "r_op": _R,
            "a_sel": _A,
            "b_sel": _B,
            "alu": _Alu,
            "flag": 1,  # flag <= sign of the word read
            "fmt": 2,
            "repeat": _Repeat,
            "accept": 1,  # command.ready (the command is held until its fields are copied)
            "last": 1,
        }
    )


class NormScalar(wiring.Component):
    """Sequential per-set constant generator (one command in flight).

    Parameters
    ----------
    arithmetic : wavecore.golden.numerics.NormArithmetic
        All formats, fractional bits and ``max_count``.
    param_width : int
        Width of gamma and beta (Q.param_frac), 2 to 32.
    weighted_width : int
        Width of W1 and W2 (sums of gamma * r over a channel group), 2 to 128.

    Attributes
    ----------
    command : In(stream.Signature(StructLayout({"mode", "s1", "s2", "count", "gamma", "beta", "eps",
    "rstd", "w1", "w2", "r1", "r2"})))
        One operation; fields a mode does not use are ignored. Looked at only when the unit is idle and
        ``result`` has been taken; the fields are then copied into the register file one per cycle and
        ``ready`` is asserted in the cycle of the last copy (cycle 6 of forward, 5 of backward/dgamma,
        counting the first cycle ``valid`` is seen as 0), so the source must hold the payload until then,
        as the stream rules require.
    result : Out(stream.Signature(StructLayout({"rstd", "a", "c", "k2", "k3", "dgamma"})))
        The outputs of the mode (others 0), valid exactly :meth:`worst_case_cycles` cycles after the
        command was first seen, held until taken.
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
        self.width = max(bounds) + 2  # every value of the programs fits this signed width
        # Two more bits for the division's 2|n| + d and the non-restoring partial remainders; even, so a
        # root step takes two bits of the radicand.
        self.datapath_width = self.width + 2 + self.width % 2
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
        self._formats = [a.rstd_format, a.coefficient, a.bias]  # `fmt` codes of the saturate step
        self._microcode, self._entries, self._cycles = self._assemble()
        super().__init__(
            {
                "command": In(stream.Signature(self.command_layout)),
                "result": Out(stream.Signature(self.result_layout)),
            }
        )

    # -- the programs (operations on named registers) ---------------------------------------------------
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

    _INPUTS = {
        ScalarMode.FORWARD: ("s1", "s2", "count", "gamma", "beta", "eps"),
        ScalarMode.BACKWARD: ("s1", "count", "rstd", "w1", "w2"),
        ScalarMode.DGAMMA: ("s1", "count", "rstd", "r1", "r2"),
    }

    # -- the assembler: operations -> one control word per cycle -----------------------------------------
    def _expand(self, step, address):
        """Control words (dicts of non-default fields) of one program step."""
        op, destination, *arguments = step
        loop = {"repeat": _Repeat.DATAPATH}
        clear_r = {"r_op": _R.ALU}  # A = 0, B = 0
        y_to_r = {"r_op": _R.ALU, "b_sel": _B.Y}  # R <= Y

        def read(name, **fields):
            return {"raddr": address(name), **fields}

        def shift(amount):
            if amount == 0:
                return []
            if amount >= 1 << 8:
                raise ValueError(f"shift amounts must be below 256, not {amount}")
            return [{"repeat": _Repeat.COUNT, "raddr": amount & 15, "waddr": amount >> 4, "r_op": _R.ALU,
                     "a_sel": _A.SHIFT}]

        if op == "mul":
            words = [read(arguments[0], x_op=_X.LOAD, **clear_r), read(arguments[1], y_op=_Y.LOAD),
                     {**loop, "x_op": _X.SHIFT, "r_op": _R.ALU, "a_sel": _A.SHIFT, "b_sel": _B.MULTIPLY,
                      "alu": _Alu.FIRST}]
        elif op in ("add", "sub"):
            alu = _Alu.ADD if op == "add" else _Alu.SUBTRACT
            words = [read(arguments[0], y_op=_Y.LOAD), read(arguments[1], y_op=_Y.LOAD, **y_to_r),
                     {"r_op": _R.ALU, "a_sel": _A.R, "b_sel": _B.Y, "alu": alu}]
        elif op == "neg":
            words = [read(arguments[0], y_op=_Y.LOAD), {**y_to_r, "alu": _Alu.SUBTRACT}]
        elif op == "shl":
            words = [read(arguments[0], y_op=_Y.LOAD), y_to_r, *shift(arguments[1])]
        elif op == "one":
            words = [{"r_op": _R.ALU, "a_sel": _A.ONE}, *shift(arguments[0])]
        elif op == "sat":
            words = [read(arguments[0], y_op=_Y.LOAD), y_to_r,
                     {"r_op": _R.SATURATE, "fmt": self._formats.index(arguments[1])}]
        elif op == "divf":
            words = [read(arguments[0], x_op=_X.LOAD, **clear_r), read(arguments[1], y_op=_Y.LOAD),
                     {**loop, "x_op": _X.SHIFT, "r_op": _R.ALU, "a_sel": _A.SHIFT_X, "b_sel": _B.Y,
                      "alu": _Alu.BY_SIGN}]
            return words + [{"we": 1, "waddr": address(destination), "wsel": _Write.X}]
        elif op == "divr":
            # round half away from zero: floor((2|n| + d) / 2d), then the sign of n
            scratch = address("scratch")
            words = [
                read(arguments[0], y_op=_Y.LOAD, flag=1),
                read(arguments[1], y_op=_Y.LOAD, **y_to_r, alu=_Alu.BY_FLAG),  # R = |n|, Y = d
                {"r_op": _R.ALU, "a_sel": _A.SHIFT, "b_sel": _B.Y},  # R = 2|n| + d
                {"we": 1, "waddr": scratch, "y_op": _Y.SHIFT},  # Y = 2d
                read("scratch", x_op=_X.LOAD, **clear_r),
                {**loop, "x_op": _X.SHIFT, "r_op": _R.ALU, "a_sel": _A.SHIFT_X, "b_sel": _B.Y,
                 "alu": _Alu.BY_SIGN},
                {"we": 1, "waddr": scratch, "wsel": _Write.X},
                read("scratch", y_op=_Y.LOAD),
                {**y_to_r, "alu": _Alu.BY_FLAG},
            ]
        elif op == "isqrt":
            words = [read(arguments[0], x_op=_X.LOAD, y_op=_Y.CLEAR, **clear_r),
                     {**loop, "x_op": _X.SHIFT, "y_op": _Y.SHIFT, "r_op": _R.ALU, "a_sel": _A.SHIFT_X,
                      "b_sel": _B.SQRT, "alu": _Alu.BY_SIGN},
                     y_to_r]
        else:
            raise ValueError(f"unknown scalar-unit operation {op!r}")
        out = _OUTPUTS.index(destination) + 1 if destination in _OUTPUTS else 0
        return words + [{"we": 1, "waddr": address(destination), "out": out}]

    @staticmethod
    def _merge(words):
        """Fold each register-file write into the next word when that one neither writes, reads the
        register just written, nor loops (the write only uses the write fields and the current R/X)."""
        merged = []
        for word in words:
            previous = merged[-1] if merged else None
            if (
                previous is not None
                and set(previous) <= {"we", "waddr", "wsel", "out"}
                and "we" not in word
                and word.get("repeat", _Repeat.ONCE) == _Repeat.ONCE
                and word.get("raddr") != previous["waddr"]
                and word.get("wsel", _Write.R) == _Write.R
            ):
                merged[-1] = {**previous, **word}
            else:
                merged.append(dict(word))
        return merged

    def _assemble(self):
        layout = _instruction_layout()
        words, entries, cycles = [], {}, {}
        for mode, program in self._programs().items():
            names = list(self._INPUTS[mode])
            for step in program:
                for name in (step[1], *step[2:]):
                    if isinstance(name, str) and name not in names:
                        names.append(name)
            names.append("scratch")
            if len(names) > _REGISTERS:
                raise ValueError(f"the {mode.name.lower()} program needs {len(names)} registers")

            def address(name, names=names):
                return names.index(name)

            body = [
                {"we": 1, "wsel": _Write.FIELD, "raddr": _COMMAND_FIELDS.index(name), "waddr": address(name)}
                for name in self._INPUTS[mode]
            ]
            body[-1]["accept"] = 1
            for step in program:
                body.extend(self._expand(step, address))
            body = self._merge(body)
            body[-1]["last"] = 1
            entries[mode] = len(words)
            cycles[mode] = 1 + sum(self._word_cycles(word) for word in body)
            words.extend(body)
        return [layout.const(word).as_value().value for word in words], entries, cycles

    def _word_cycles(self, word) -> int:
        repeat = word.get("repeat", _Repeat.ONCE)
        if repeat == _Repeat.DATAPATH:
            return self.datapath_width
        if repeat == _Repeat.COUNT:
            return word["raddr"] | word["waddr"] << 4
        return 1

    def worst_case_cycles(self, mode: ScalarMode) -> int:
        """Cycles from the first cycle an idle unit sees ``command.valid`` to ``result.valid`` (exact: the
        latency does not depend on the data)."""
        return self._cycles[ScalarMode(mode)]

    # -- hardware -------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        width = self.datapath_width
        layout = _instruction_layout()

        # Submodules: the micro-program ROM (synchronous read: the word of the next pc is fetched while the
        # current one executes) and the register file (asynchronous read).
        m.submodules.microcode = microcode = Memory(
            shape=unsigned(layout.size), depth=len(self._microcode), init=self._microcode
        )
        fetch = microcode.read_port(domain="sync")
        m.submodules.registers = registers = Memory(shape=unsigned(width), depth=_REGISTERS, init=[])
        read = registers.read_port(domain="comb")
        write = registers.write_port()
        word = data.View(layout, fetch.data)

        # A looped word runs `repeat` cycles: `count` is 0 in its first cycle, then repeat-1 down to 1.
        running = Signal()  # a control word executes this cycle
        pc = Signal(range(len(self._microcode)))
        count = Signal(range(max(width, 256) + 1))
        first = count == 0
        repeat = Signal(range(max(width, 256) + 1))
        with m.Switch(word.repeat):
            with m.Case(_Repeat.DATAPATH):
                m.d.comb += repeat.eq(width)
            with m.Case(_Repeat.COUNT):
                m.d.comb += repeat.eq(Cat(word.raddr, word.waddr))
            with m.Default():
                m.d.comb += repeat.eq(1)
        advance = Signal()
        m.d.comb += advance.eq((repeat == 1) | (~first & (count == 1)))

        # Datapath: X, Y, R, the adder and the saturation test.
        x = Signal(width)
        y = Signal(width)
        r = Signal(signed(width))
        flag = Signal()
        rd = Signal(signed(width))
        m.d.comb += [read.addr.eq(word.raddr), rd.eq(read.data)]
        negative = r[-1]
        phase_two = (word.b_sel == _B.SQRT) & count[0]  # second cycle of a root step

        operand_a = Signal(signed(width))
        with m.Switch(word.a_sel):
            with m.Case(_A.R):
                m.d.comb += operand_a.eq(r)
            with m.Case(_A.SHIFT):
                m.d.comb += operand_a.eq(r << 1)
            with m.Case(_A.SHIFT_X):
                m.d.comb += operand_a.eq(Cat(x[-1], r[:-1]))
            with m.Case(_A.ONE):
                m.d.comb += operand_a.eq(1)
        operand_b = Signal(width)
        with m.Switch(word.b_sel):
            with m.Case(_B.Y):
                m.d.comb += operand_b.eq(y)
            with m.Case(_B.MULTIPLY):
                m.d.comb += operand_b.eq(Mux(x[-1], y, 0))
            with m.Case(_B.SQRT):
                m.d.comb += operand_b.eq(Mux(count[0], Cat(Const(1, 1), negative, y[:-2]), 0))
        subtract = Signal()
        with m.Switch(word.alu):
            with m.Case(_Alu.SUBTRACT):
                m.d.comb += subtract.eq(1)
            with m.Case(_Alu.BY_SIGN):
                m.d.comb += subtract.eq(~negative)
            with m.Case(_Alu.BY_FLAG):
                m.d.comb += subtract.eq(flag)
            with m.Case(_Alu.FIRST):
                m.d.comb += subtract.eq(first)
        # A + (B ^ subtract) + subtract as one adder: the carry-in rides on an extra low bit.
        inverted = operand_b ^ subtract.replicate(width)
        total = Signal(width + 1)
        m.d.comb += total.eq(Cat(subtract, operand_a) + Cat(subtract, inverted))
        result = total[1:].as_signed()
        quotient_bit = ~result[-1]

        limits = []
        for fmt in self._formats:
            edge = fmt.width - 1 if fmt.signed else fmt.width  # bits from here up must equal the sign
            overflow = (r[edge:-1] ^ negative.replicate(width - 1 - edge)).any()
            limit = Cat(~negative.replicate(edge), negative.replicate(width - edge))
            limits.append((overflow, limit))
        saturated = Signal(signed(width))
        with m.Switch(word.fmt):
            for code, (overflow, limit) in enumerate(limits):
                with m.Case(code):
                    m.d.comb += saturated.eq(Mux(overflow, limit, r))

        with m.If(running):
            with m.Switch(word.x_op):
                with m.Case(_X.LOAD):
                    m.d.sync += x.eq(rd)
                with m.Case(_X.SHIFT):
                    m.d.sync += x.eq(Cat(quotient_bit, x[:-1]))
            with m.Switch(word.y_op):
                with m.Case(_Y.LOAD):
                    m.d.sync += y.eq(rd)
                with m.Case(_Y.SHIFT), m.If((word.b_sel != _B.SQRT) | count[0]):
                    m.d.sync += y.eq(Cat(phase_two & quotient_bit, y[:-1]))
                with m.Case(_Y.CLEAR):
                    m.d.sync += y.eq(0)
            with m.Switch(word.r_op):
                with m.Case(_R.ALU):
                    m.d.sync += r.eq(result)
                with m.Case(_R.SATURATE):
                    m.d.sync += r.eq(saturated)
            with m.If(word.flag):
                m.d.sync += flag.eq(rd[-1])

        # Register-file write: R, X or a command field.
        field = Signal(signed(width))
        with m.Switch(word.raddr):
            for index, name in enumerate(_COMMAND_FIELDS):
                with m.Case(index):
                    m.d.comb += field.eq(getattr(self.command.payload, name))
        written = Signal(width)
        with m.Switch(word.wsel):
            with m.Case(_Write.X):
                m.d.comb += written.eq(x)
            with m.Case(_Write.FIELD):
                m.d.comb += written.eq(field)
            with m.Default():
                m.d.comb += written.eq(r)
        m.d.comb += [write.addr.eq(word.waddr), write.data.eq(written), write.en.eq(running & word.we)]

        # Result registers: loaded from the write bus, cleared when a command starts.
        outputs = {name: Signal(self.result_layout[name].shape, name=f"result_{name}") for name in _OUTPUTS}
        for code, name in enumerate(_OUTPUTS, start=1):
            with m.If(running & (word.out == code)):
                m.d.sync += outputs[name].eq(written[: len(outputs[name])])
            m.d.comb += getattr(self.result.payload, name).eq(outputs[name])

        # Sequencer.
        m.d.comb += self.command.ready.eq(running & word.accept)
        start = ~running & ~self.result.valid & self.command.valid
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += self.result.valid.eq(0)
        with m.If(start):
            entry = Signal.like(pc)
            with m.Switch(self.command.payload.mode):
                for mode, address in self._entries.items():
                    with m.Case(mode):
                        m.d.comb += entry.eq(address)
            m.d.comb += fetch.addr.eq(entry)
            m.d.sync += [running.eq(1), pc.eq(entry), count.eq(0)]
            m.d.sync += [value.eq(0) for value in outputs.values()]
        with m.Elif(running):
            with m.If(advance & word.last):
                m.d.comb += fetch.addr.eq(pc)
                m.d.sync += [running.eq(0), count.eq(0), self.result.valid.eq(1)]
            with m.Elif(advance):
                m.d.comb += fetch.addr.eq(pc + 1)
                m.d.sync += [pc.eq(pc + 1), count.eq(0)]
            with m.Else():
                m.d.comb += fetch.addr.eq(pc)
                m.d.sync += count.eq(Mux(first, repeat - 1, count - 1))
        return m
