"""Shared parts of the windowed streaming engines (:mod:`wavecore.hdl.stream.conv`, :mod:`wavecore.hdl.stream.pool`).

:func:`window_scan` builds the line buffer and the per-frame schedule both engines run on a pixel row
stream (:func:`wavecore.hdl.stream.link.pixel_layout`): ``FILL`` accepts input rows until every row the next output row
needs has arrived (one cycle to decide per output row), ``COMPUTE`` issues one window tap per cycle,
``FINISH`` lasts ``latency`` cycles, until the last tap's operation is done, ``EMIT`` holds the output
pixel until ``o.ready``, and ``DRAIN`` consumes the input rows no output needs (bottom rows of a strided
layer; one cycle to decide per frame). The caller adds the per-tap datapath (the "MAC stage", one cycle
after a tap is issued, when the line buffer's synchronous read data is there; ``latency`` cycles deep)
and drives ``o.payload.data``.

:func:`requantize` (on :func:`round_shift`, shared with :func:`wavecore.hdl.norm.common.requantize_value`) and
:func:`divide` are the hardware forms of :func:`wavecore.golden.numerics.requantize` and of
``wavecore.golden.integer.IntegerKernels._divide``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from amaranth import Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from wavecore.golden.numerics import IntFormat

__all__ = [
    "divide", "divide_plan", "requantize", "round_shift", "round_up", "select_element", "window_scan",
    "windowed_cycles",
]


def windowed_cycles(
    *, height: int, width: int, out_height: int, out_width: int, taps: int, latency: int = 1
) -> int:
    """Cycles per frame of a :func:`window_scan` engine with input always valid and output always ready:
    one per input pixel, ``taps + latency + 1`` per output pixel (issue, the datapath's ``latency`` cycles
    after the last tap, emit), one per output row (the FILL decision) and one per frame (the DRAIN
    decision)."""
    return height * width + out_height * (out_width * (taps + latency + 1) + 1) + 1


def select_element(word, index, count: int, width: int):
    """Element ``index`` of ``count`` ``width``-bit fields packed in ``word``."""
    if count == 1:
        return word[:width]
    return word.word_select(index, width)


def round_shift(value, shift: int, rounding: str, *, signed: bool):
    """``value / 2**shift`` (``shift >= 1``) rounded as :func:`wavecore.golden.numerics.requantize` does, not saturated.

    ``value`` is read as signed (arithmetic shift, sign for ``half_away_from_zero``) when ``signed``, else as
    unsigned; ``rounding`` one of :data:`wavecore.golden.numerics.ROUNDING_MODES`. Combinational.
    """
    floor = value >> shift
    if signed:
        floor = floor.as_signed()
    remainder = value[:shift]
    half = 1 << (shift - 1)
    if rounding == "floor":
        up = Const(0, 1)
    elif rounding == "half_up":
        up = remainder >= half
    elif rounding == "half_even":
        up = (remainder > half) | ((remainder == half) & floor[0])
    elif rounding == "half_away_from_zero":
        negative = value[-1] if signed else Const(0, 1)
        up = (remainder > half) | ((remainder == half) & ~negative)
    else:
        raise ValueError(f"unknown rounding {rounding!r}")
    return floor + up


def round_up(rounding: str, guard, sticky, floor_lsb, negative):
    """The rounding increment of :func:`wavecore.golden.numerics.requantize` from the bits a shift leaves: ``guard``
    (the highest bit shifted out), ``sticky`` (any lower bit shifted out), ``floor_lsb`` (the floor's lowest bit)
    and ``negative`` (the value's sign); ``rounding`` one of :data:`wavecore.golden.numerics.ROUNDING_MODES`.
    Combinational, a few gates (no compares): for pipelined requantizers that register these bits first."""
    if rounding == "floor":
        return Const(0, 1)
    if rounding == "half_up":
        return guard
    if rounding == "half_even":
        return guard & (sticky | floor_lsb)
    if rounding == "half_away_from_zero":
        return guard & (sticky | ~negative)
    raise ValueError(f"unknown rounding {rounding!r}")


def requantize(value, shift: int, rounding: str, out: IntFormat, *, low: int | None = None, high: int | None = None):
    """:func:`wavecore.golden.numerics.requantize` of ``value`` (signed when ``out.signed``) by ``shift >= 0`` bits,
    then clamped to ``[low, high]`` (default the range of ``out``); returns the ``out.width`` low bits."""
    rounded = value if shift == 0 else round_shift(value, shift, rounding, signed=out.signed)
    low = out.min if low is None else low
    high = out.max if high is None else high
    clamped = Mux(rounded > high, high, Mux(rounded < low, low, rounded))
    return clamped[: out.width]


def divide_plan(count: int, reciprocal_frac: int) -> tuple[int, int]:
    """``(multiplier, shift)`` of ``IntegerKernels._divide`` by ``count``: ``(1, log2 count)`` for powers of
    two, else ``(round(2**reciprocal_frac / count), reciprocal_frac)``."""
    if count & (count - 1) == 0:
        return 1, int(math.log2(count))
    return round(2**reciprocal_frac / count), reciprocal_frac


def divide(total, count: int, reciprocal_frac: int, rounding: str, out: IntFormat):
    """An exact sum ``total`` divided by ``count`` as ``IntegerKernels._divide`` does, in format ``out``."""
    multiplier, shift = divide_plan(count, reciprocal_frac)
    scaled = total if multiplier == 1 else total * Const(multiplier, signed(multiplier.bit_length() + 1))
    return requantize(scaled, shift, rounding, out)


def window_scan(
    m,
    *,
    i,
    o,
    height: int,
    width: int,
    kernel: tuple[int, int],
    stride: int,
    padding: int,
    steps: int,
    element_bits: int,
    out_height: int,
    out_width: int,
    latency: int = 1,
):
    """Line buffer, input side, tap issue and output handshake of a windowed engine (see module docstring).

    Taps are issued ``(step, ky, kx)`` ascending, ``kx`` fastest; ``steps`` repeats the window (the conv's
    input channel within a group; 1 for a pool). Returns a namespace with ``tap`` (issue-cycle tap index, for a
    ROM address), and for the MAC stage ``stage_valid``, ``stage_pad`` (tap outside the frame),
    ``stage_step``, ``stage_first``, ``stage_last`` and ``pixel`` (the line buffer's read data: all
    channels of the tap's input pixel). The caller drives ``o.payload.data``; ``o.valid`` is raised in
    ``EMIT``, ``latency`` cycles after the MAC stage has seen ``stage_last`` (``latency`` 1: the MAC stage's
    registers are the result; 2: one more register stage behind it, e.g. a product register).
    """
    kh, kw = kernel
    # (at least two entries: Verilator rejects the zero-width address of a one-entry memory)
    line = Memory(shape=unsigned(element_bits), depth=max(kh * width, 2), init=[])
    m.submodules.line = line
    write = line.write_port()
    line_read = line.read_port()

    # --- input side
    in_x = Signal(range(max(width, 2)))
    rows_in = Signal(range(height + 1))
    write_base = Signal(range(max(kh * width, 2)))
    batch = Signal(8)

    # --- output position and window origin (may be negative: padding)
    out_x = Signal(range(max(out_width, 2)))
    out_y = Signal(range(max(out_height, 2)))
    initial_slot = (-padding) % kh
    origin_row = Signal(signed(max(height, padding).bit_length() + 3), init=-padding)
    origin_col = Signal(signed(max(width, padding).bit_length() + 3), init=-padding)
    origin_slot = Signal(range(max(kh, 2)), init=initial_slot)  # slot of origin_row: row r lives in slot r mod kh

    # rows of the input the current output row needs before it can start
    needed = Signal(range(height + 1))
    last_needed = origin_row + kh
    m.d.comb += needed.eq(Mux(last_needed > height, height, Mux(last_needed < 0, 0, last_needed)))

    # --- tap issue counters and the one-cycle pipeline to the MAC stage
    # (no zero-width counters: Verilator rejects the [-1:0] ranges they become)
    taps = steps * kh * kw
    ky = Signal(range(max(kh, 2)))
    kx = Signal(range(max(kw, 2)))
    step = Signal(range(max(steps, 2)))
    tap = Signal(range(max(taps, 2)))
    row = origin_row + ky
    col = origin_col + kx
    slot_sum = origin_slot + ky
    slot = Mux(slot_sum >= kh, slot_sum - kh, slot_sum)
    outside = (row < 0) | (row >= height) | (col < 0) | (col >= width)
    stage_valid = Signal()
    stage_pad = Signal()
    stage_step = Signal(range(max(steps, 2)))
    stage_first = Signal()
    stage_last = Signal()
    result_ready = Signal()  # the MAC stage holds a finished pixel
    m.d.comb += line_read.addr.eq(slot * width + col[: max(1, (width - 1).bit_length())])
    m.d.sync += stage_valid.eq(0)
    done = stage_valid & stage_last
    for index in range(latency - 1):  # the last tap travels through the datapath's further register stages
        delayed = Signal(name=f"done_{index + 1}")
        m.d.sync += delayed.eq(done)
        done = delayed
    with m.If(done):
        m.d.sync += result_ready.eq(1)
    finish = Signal(range(max(latency, 2)))

    last_col = out_x == out_width - 1
    last_row = out_y == out_height - 1
    m.d.comb += [
        o.payload.first.eq((out_x == 0) & (out_y == 0)),
        o.payload.row_end.eq(last_col),
        o.payload.frame_end.eq(last_col & last_row),
        o.payload.batch.eq(batch),
    ]

    accept = i.valid & i.ready
    with m.If(accept):
        m.d.comb += [
            write.addr.eq(write_base + in_x),
            write.data.eq(i.payload.data.as_value()),
            write.en.eq(1),
        ]
        with m.If(i.payload.first):
            m.d.sync += batch.eq(i.payload.batch)
        with m.If(in_x == width - 1):
            m.d.sync += [
                in_x.eq(0),
                rows_in.eq(rows_in + 1),
                write_base.eq(Mux(write_base == (kh - 1) * width, 0, write_base + width)),
            ]
        with m.Else():
            m.d.sync += in_x.eq(in_x + 1)

    with m.FSM(init="FILL"):
        with m.State("FILL"):
            m.d.comb += i.ready.eq(rows_in < needed)
            with m.If(rows_in >= needed):
                m.next = "COMPUTE"
        with m.State("COMPUTE"):
            m.d.sync += [
                stage_valid.eq(1),
                stage_pad.eq(outside),
                stage_step.eq(step),
                stage_first.eq(tap == 0),
                stage_last.eq(tap == taps - 1),
                result_ready.eq(0),
            ]
            with m.If(tap == taps - 1):
                m.d.sync += [tap.eq(0), ky.eq(0), kx.eq(0), step.eq(0)]
                m.next = "FINISH"
            with m.Else():
                m.d.sync += tap.eq(tap + 1)
                with m.If(kx == kw - 1):
                    m.d.sync += kx.eq(0)
                    with m.If(ky == kh - 1):
                        m.d.sync += [ky.eq(0), step.eq(step + 1)]
                    with m.Else():
                        m.d.sync += ky.eq(ky + 1)
                with m.Else():
                    m.d.sync += kx.eq(kx + 1)
        with m.State("FINISH"):  # the last tap's operation (and ``latency - 1`` register stages) in these cycles
            with m.If(finish == latency - 1):
                m.d.sync += finish.eq(0)
                m.next = "EMIT"
            with m.Else():
                m.d.sync += finish.eq(finish + 1)
        with m.State("EMIT"):
            m.d.comb += o.valid.eq(result_ready)
            with m.If(o.ready):
                with m.If(~last_col):
                    m.d.sync += [out_x.eq(out_x + 1), origin_col.eq(origin_col + stride)]
                    m.next = "COMPUTE"
                with m.Elif(~last_row):
                    next_slot = origin_slot + (stride % kh)
                    m.d.sync += [
                        out_x.eq(0),
                        origin_col.eq(-padding),
                        out_y.eq(out_y + 1),
                        origin_row.eq(origin_row + stride),
                        origin_slot.eq(Mux(next_slot >= kh, next_slot - kh, next_slot)),
                    ]
                    m.next = "FILL"
                with m.Else():
                    m.d.sync += [
                        out_x.eq(0),
                        out_y.eq(0),
                        origin_col.eq(-padding),
                        origin_row.eq(-padding),
                        origin_slot.eq(initial_slot),
                    ]
                    m.next = "DRAIN"
        with m.State("DRAIN"):  # drop input rows no output needed, then start the next frame
            m.d.comb += i.ready.eq(rows_in < height)
            with m.If(rows_in == height):
                m.d.sync += [rows_in.eq(0), in_x.eq(0), write_base.eq(0)]
                m.next = "FILL"

    return SimpleNamespace(
        tap=tap,
        stage_valid=stage_valid,
        stage_pad=stage_pad,
        stage_step=stage_step,
        stage_first=stage_first,
        stage_last=stage_last,
        pixel=line_read.data,
    )
