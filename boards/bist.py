"""Self-checking board top: pseudo-random stimulus into a block, a signature of its outputs, LED result.

Any ``wiring.Component`` in the ``sync`` domain can be exercised: every input port of the block (stream
payloads, ``valid`` flags, the ``ready`` of output streams, control inputs) is driven from free-running
32-bit LFSRs, and every output port is folded into a 32-bit multiple-input signature register (MISR)
for ``cycles`` cycles after reset. The expected signature is computed in Python by
:func:`reference_signature`: the same LFSR sequence (a NumPy-free integer model, :class:`Lfsr`) drives a
simulation of the block alone, and the outputs it produces are folded by the same MISR rule. On the board
``done`` lights when the run ends and ``pass`` when the signature matches.

The payload of an output stream is folded only while its ``valid`` is high (masked to zero otherwise):
``amaranth.lib.stream`` leaves the payload undefined without ``valid``, and real hardware makes use of that.
A scratchpad read port mapped onto an iCE40 ``SB_RAM40_4K`` returns undefined data until its first read
(Amaranth gives the read port no defined initial value and the block RAM has none), while the Amaranth
simulation reads 0; folding that idle payload would make the signature depend on a value nothing defines
on the board. Emulating an initial value instead would cost a mux per data bit of every bank that no
consumer needs. Everything else (``valid``, ``ready``, control outputs, payloads of valid beats, and a
payload held while ``valid & ~ready``) is folded every cycle.

The LFSRs advance every other cycle. A block register whose input is an LFSR bit would otherwise have
the same D input as the next LFSR stage and Yosys would merge the two, hiding part of the block
(in a harness of the same kind without the enable, Yosys' ``opt_merge`` folded 192 of a 4x4 array's 779 FFs).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "LFSR_TAPS",
    "POWER_ON_CYCLES",
    "add_board_clock",
    "BistBoardTop",
    "BistCore",
    "Lfsr",
    "fold",
    "input_ports",
    "observed_ports",
    "output_ports",
    "reference_signature",
]

#: Galois right-shift toggle mask for x^32 + x^22 + x^2 + x + 1 (taps 32, 22, 2, 1; Xilinx XAPP052).
LFSR_TAPS = 0x80200003
_WORD = 32
_MASK = (1 << _WORD) - 1
_GOLDEN = 0x9E3779B9
#: Cycles the board top holds ``sync`` in reset after configuration (:func:`add_board_clock`).
POWER_ON_CYCLES = 16


class Lfsr:
    """Integer model of the 32-bit Galois LFSR used for stimulus and for the signature register."""

    @staticmethod
    def step(state: int) -> int:
        return (state >> 1) ^ (LFSR_TAPS if state & 1 else 0)

    @staticmethod
    def seed(index: int) -> int:
        """Seed of stimulus LFSR ``index`` (never zero, distinct per index)."""
        return ((0x2545F491 + index * _GOLDEN) & _MASK) or 1


def fold(value: int, width: int) -> int:
    """XOR of the ``width``-bit ``value`` cut into 32-bit words (the MISR input)."""
    folded = 0
    for offset in range(0, max(width, 1), _WORD):
        folded ^= (value >> offset) & _MASK
    return folded


def input_ports(block) -> list:
    """The block's ports that the BIST drives, in signature order (as Amaranth signals)."""
    return [Value.cast(value) for _, member, value in block.signature.flatten(block) if member.flow == In]


def output_ports(block) -> list:
    """The block's ports that the BIST observes, in signature order."""
    return [Value.cast(value) for _, member, value in block.signature.flatten(block) if member.flow == Out]


def observed_ports(block) -> list:
    """``(port, valid)`` for every output port in signature order: ``valid`` is the output stream's valid
    flag when ``port`` is that stream's payload (folded only while it is high), else ``None``."""
    outputs = {
        tuple(path): Value.cast(value)
        for path, member, value in block.signature.flatten(block)
        if member.flow == Out
    }
    observed = []
    for path, port in outputs.items():
        valid = outputs.get(path[:-1] + ("valid",)) if path and path[-1] == "payload" else None
        observed.append((port, valid))
    return observed


def _stimulus_width(block) -> int:
    return sum(len(port) for port in input_ports(block))


class BistCore(wiring.Component):
    """LFSR stimulus, the block under test, and a MISR over its outputs.

    Parameters
    ----------
    block : wiring.Component
        The design under test (``sync`` domain only). It becomes the submodule ``dut``.
    cycles : int
        Cycles folded into the signature after reset, at least 1.
    expected : int
        The signature a correct block produces (see :func:`reference_signature`).

    Attributes
    ----------
    done : Out(1)
        High from the cycle after the last folded cycle on; stays high until reset.
    passed : Out(1)
        ``done`` and the signature equals ``expected``.
    misr : Out(32)
        The MISR; it stops changing when ``done`` rises.
    """

    def __init__(self, block, *, cycles: int, expected: int = 0):
        if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 1:
            raise ValueError(f"cycles must be a positive integer, not {cycles!r}")
        if not isinstance(expected, int) or not 0 <= expected <= _MASK:
            raise ValueError(f"expected must be a 32-bit unsigned integer, not {expected!r}")
        self.block = block
        self.cycles = cycles
        self.expected = expected
        super().__init__({"done": Out(1), "passed": Out(1), "misr": Out(_WORD)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = block = self.block

        width = _stimulus_width(block)
        generators = [
            Signal(_WORD, init=Lfsr.seed(i), name=f"lfsr{i}") for i in range((width + _WORD - 1) // _WORD)
        ]
        advance = Signal()
        count = Signal(range(self.cycles + 1))
        observed = []
        for index, (port, valid) in enumerate(observed_ports(block)):
            if valid is not None:  # a stream payload: folded only while valid
                masked = Signal(len(port), name=f"observed{index}")
                m.d.comb += masked.eq(Mux(valid, port, 0))
                port = masked
            observed.append(port)
        outputs = Cat(*observed)

        stimulus = Cat(*generators)
        offset = 0
        for port in input_ports(block):
            m.d.comb += port.eq(stimulus[offset : offset + len(port)])
            offset += len(port)

        folded = Const(0, _WORD)
        for start in range(0, max(len(outputs), 1), _WORD):
            chunk = outputs[start : start + _WORD]
            folded = folded ^ chunk
        with m.If(count < self.cycles):
            m.d.sync += [count.eq(count + 1), advance.eq(~advance)]
            m.d.sync += self.misr.eq(_galois_step(self.misr) ^ folded)
            with m.If(advance):
                m.d.sync += [generator.eq(_galois_step(generator)) for generator in generators]
        m.d.comb += [
            self.done.eq(count == self.cycles),
            self.passed.eq(self.done & (self.misr == self.expected)),
        ]
        return m


def _galois_step(state):
    return Cat(state[1:], Const(0, 1)) ^ (state[0].replicate(_WORD) & LFSR_TAPS)


def add_board_clock(m, platform, cycles: int = POWER_ON_CYCLES) -> None:
    """Drive ``sync`` from the board oscillator with a power-on reset held for ``cycles`` cycles.

    Some boards have no reset button (ULX3S, OrangeCrab), so the platform's default ``sync`` domain would
    be reset-less; blocks that use their reset (``ResetSignal()``) need a real one, and a self-test needs a
    defined start. The reset comes from a counter in a reset-less domain on the same clock, through a
    flip-flop (asserted from configuration, released ``cycles + 1`` cycles later).

    On ECP5 the reset then enters the chip's primary clock network through a ``DCCA`` buffer: it reaches the
    ``LSR`` input of every flip-flop of ``sync`` (about 21,000 in the 8x8 core), and nextpnr promotes only clocks
    to globals on its own, so in general routing that one net crossed the chip in 17.6 ns and limited the whole
    core to 42.4 MHz. The primary clock network reaches the ``LSR`` input of every slice, and nextpnr routes
    every user of a ``DCCA`` output over it, clock pins or not (``ecp5/globals.cc``, ``route_globals``).
    """
    from amaranth import ClockDomain, Instance
    from amaranth.lib import io

    clock = platform.request(platform.default_clk, dir="-")
    m.submodules.clock_buffer = buffer = io.Buffer("i", clock)
    m.domains.sync = sync = ClockDomain("sync")
    m.domains.power_on = power_on = ClockDomain("power_on", reset_less=True)
    hold = Signal(range(cycles + 1), init=cycles)
    reset = Signal(init=1)
    m.d.comb += [sync.clk.eq(buffer.i), power_on.clk.eq(buffer.i)]
    m.d.power_on += reset.eq(hold != 0)
    with m.If(hold != 0):
        m.d.power_on += hold.eq(hold - 1)
    if getattr(platform, "family", None) == "ecp5":
        m.submodules.reset_buffer = Instance("DCCA", i_CLKI=reset, i_CE=1, o_CLKO=sync.rst)
    else:
        m.d.comb += sync.rst.eq(reset)


class BistBoardTop(wiring.Component):
    """A :class:`BistCore` on a board: ``done`` and ``passed`` drive the target's two status LEDs.

    The ``sync`` domain is the board clock with a power-on reset (:func:`add_board_clock`).
    """

    def __init__(self, block, *, target, cycles: int, expected: int):
        self.core = BistCore(block, cycles=cycles, expected=expected)
        self.target = target
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        if platform is not None:
            add_board_clock(m, platform)
            done_led, pass_led = self.target.status_leds(platform)
            m.d.comb += [done_led.eq(self.core.done), pass_led.eq(self.core.passed)]
        return m


def reference_signature(block_factory, cycles: int) -> int:
    """The signature a correct block gives: integer LFSR model in, block simulation, integer MISR out.

    ``block_factory()`` returns a fresh instance of the block (the simulator needs its own copy).
    """
    from amaranth.sim import Simulator

    block = block_factory()
    inputs = input_ports(block)
    outputs = observed_ports(block)
    width = sum(len(port) for port in inputs)
    out_width = sum(len(port) for port, _ in outputs)
    generators = [Lfsr.seed(i) for i in range((width + _WORD - 1) // _WORD)]
    result = {}

    async def testbench(ctx):
        nonlocal generators
        signature = 0
        for cycle in range(cycles):
            stimulus = 0
            for index, state in enumerate(generators):
                stimulus |= state << (index * _WORD)
            offset = 0
            for port in inputs:
                ctx.set(port, (stimulus >> offset) & ((1 << len(port)) - 1))
                offset += len(port)
            observed = 0
            offset = 0
            for port, valid in outputs:
                if valid is None or ctx.get(valid):
                    observed |= (ctx.get(port) & ((1 << len(port)) - 1)) << offset
                offset += len(port)
            signature = Lfsr.step(signature) ^ fold(observed, out_width)
            if cycle % 2 == 1:
                generators = [Lfsr.step(state) for state in generators]
            await ctx.tick()
        result["signature"] = signature

    simulator = Simulator(block)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    return result["signature"]
