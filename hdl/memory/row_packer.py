"""Packs the byte-granular DMA's DRAM row beats into dense on-chip words (the LOAD side of the realignment).

A LOAD gathers rows that start at any byte of their DRAM words into one dense on-chip region starting at any
byte of its first word. The DMA (:class:`wavecore.hdl.memory.dma.Dma` with ``byte_granular=True``) delivers
each row as beats whose ``strobe`` marks the row's bytes (a contiguous run of lanes; only a row's first and
last beats are partial). The packer shifts each beat's bytes down to lane 0 and appends them to a one-word
carry at its fill level; whenever a whole word is filled it writes it to the next on-chip word, with byte
enables that leave the bytes before the region's first byte untouched. ``flush`` writes the carry's last,
partial word (enables on its filled bytes only).

Ports (``lanes = data_width // 8`` bytes per word):

* ``start`` (1 cycle) with ``chip_byte``: a new transfer whose first byte goes to on-chip byte ``chip_byte``
  (word ``chip_byte // lanes``, lane ``chip_byte % lanes``). Never together with a beat or ``flush``.
* ``beat_valid``/``beat_data``/``beat_strobe``: one DRAM beat, accepted every cycle (no back-pressure).
* ``flush`` (1 cycle, never with a beat): write the last partial word if it holds any byte.
* ``write_enable``/``write_address``/``write_data``/``write_strobe``: the on-chip word write (registered:
  the cycle after the beat or ``flush`` that completes the word); ``write_strobe`` has one bit per byte.
* ``pending``: with ``register_inputs``, a registered input not yet processed (always low without).

Timing: one beat per cycle, one word written per beat at most (a beat adds at most one word to a carry
of less than one word), so a transfer of ``B`` beats writes its last word ``B + 2`` cycles after its first
beat at the latest (the flush included).

With ``register_inputs`` every input (``start``, ``chip_byte``, the beat, ``flush``) is registered first, together with
the beat strobe's lane count and first lane (computed before the register), so the packer does the same one cycle
later (the path from the DMA's beat framing to the lane count, the byte shifts, the carry and the write's enables is
cut in two); ``pending`` is high while a registered input is still to be processed (a word
may follow in the next cycle).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int

__all__ = ["RowPacker", "first_lane", "lane_count"]


def first_lane(strobe):
    """The index of the lowest set bit of ``strobe`` (0 if none)."""
    lane = 0
    for index in reversed(range(len(strobe))):
        lane = Mux(strobe[index], index, lane)
    return lane


def lane_count(strobe):
    """The number of set bits of ``strobe``."""
    total = 0
    for index in range(len(strobe)):
        total = total + strobe[index]
    return total


def check_bus(data_width: int, address_width: int) -> tuple[int, int]:
    """The realigners' parameter checks: a power-of-two ``data_width`` of 16 to 1024 bits, an
    ``address_width`` of 1 to 32 bits."""
    check_int("data_width", data_width, 16, 1024)
    if data_width & (data_width - 1):
        raise ValueError(f"data_width must be a power of two between 16 and 1024, not {data_width}")
    return data_width, check_int("address_width", address_width, 1, 32)


class RowPacker(wiring.Component):
    """DRAM row beats -> dense on-chip words (see the module docstring).

    Parameters
    ----------
    data_width : int
        Bits of a DRAM beat and of an on-chip word (a power of two, 16 to 1024).
    address_width : int
        Bits of an on-chip word address (1 to 32).
    register_inputs : bool
        Register every input first (see the module docstring).
    """

    def __init__(self, *, data_width: int = 64, address_width: int = 16, register_inputs: bool = False):
        self.data_width, self.address_width = check_bus(data_width, address_width)
        if not isinstance(register_inputs, bool):
            raise TypeError(f"register_inputs must be a bool, not {register_inputs!r}")
        self.register_inputs = register_inputs
        self.lanes = data_width // 8
        self.lane_shift = self.lanes.bit_length() - 1
        super().__init__({
            "start": In(1),
            "chip_byte": In(address_width + self.lane_shift),
            "beat_valid": In(1),
            "beat_data": In(data_width),
            "beat_strobe": In(self.lanes),
            "flush": In(1),
            "write_enable": Out(1),
            "write_address": Out(address_width),
            "write_data": Out(data_width),
            "write_strobe": Out(self.lanes),
            "pending": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, width = self.lanes, self.data_width
        inputs = {name: getattr(self, name) for name in ("start", "chip_byte", "beat_valid", "beat_data", "flush")}
        # the beat's lane count and first lane (the byte shift), from its strobe
        strobe_count = Signal(range(lanes + 1))
        strobe_first = Signal(range(lanes))
        m.d.comb += [strobe_count.eq(lane_count(self.beat_strobe)), strobe_first.eq(first_lane(self.beat_strobe))]
        inputs.update(count=strobe_count, first=strobe_first)
        if self.register_inputs:
            # registered after the strobe's lane count and first lane (the priority encoder then does not run on
            # into the byte shifts)
            for name, value in list(inputs.items()):
                inputs[name] = Signal.like(value, name=f"{name}_registered")
                m.d.sync += inputs[name].eq(value)
            m.d.comb += self.pending.eq(inputs["start"] | inputs["beat_valid"] | inputs["flush"])
        start, chip_byte, beat_valid, beat_data, flush, count, beat_first = inputs.values()
        carry = Signal(width)  # bytes [0, fill) are the next word's, in order
        fill = Signal(range(lanes))
        first = Signal()  # no word written yet: lanes below `offset` are outside the region
        offset = Signal(range(lanes))
        word = Signal(self.address_width)

        aligned = Signal(width)
        m.d.comb += aligned.eq(beat_data >> (beat_first * 8))
        placed = Signal(2 * width)
        m.d.comb += placed.eq(aligned << (fill * 8))
        combined = Signal(2 * width)
        m.d.comb += combined.eq(Cat(*(Mux(lane < fill, carry[8 * lane : 8 * lane + 8], placed[8 * lane : 8 * lane + 8])
                                      for lane in range(lanes - 1)), placed[width - 8 :]))
        total = Signal(range(2 * lanes))
        m.d.comb += total.eq(fill + count)
        low = Mux(first, offset, 0)
        from_low = Cat(low == 0, *(lane >= low for lane in range(1, lanes - 1)), Const(1))  # low <= lanes - 1

        m.d.sync += self.write_enable.eq(0)
        with m.If(start):
            m.d.sync += [carry.eq(0), fill.eq(chip_byte[: self.lane_shift]),
                         offset.eq(chip_byte[: self.lane_shift]), first.eq(1),
                         word.eq(chip_byte[self.lane_shift :])]
        with m.Elif(beat_valid):
            with m.If(total >= lanes):
                m.d.sync += [self.write_enable.eq(1), self.write_address.eq(word), self.write_data.eq(combined[:width]),
                             self.write_strobe.eq(from_low), word.eq(word + 1), first.eq(0),
                             carry.eq(combined[width:]), fill.eq(total - lanes)]
            with m.Else():
                m.d.sync += [carry.eq(combined[:width]), fill.eq(total)]
        with m.Elif(flush):
            with m.If(fill > low):
                m.d.sync += [self.write_enable.eq(1), self.write_address.eq(word), self.write_data.eq(carry),
                             self.write_strobe.eq(from_low & Cat(*(lane < fill for lane in range(lanes - 1)),
                                                                 Const(0)))]
            m.d.sync += [fill.eq(0), first.eq(0)]
        return m
