"""Statistics on write: the BN/GN "sub-BN1" unit at the array's output drain (research/mbs_bn.md §2.3,
implication 6).

It sits on the stream that writes x (the conv output, already requantized) to the scratchpad, passes every
beat through unchanged, and accumulates per (set, lane) ``S1 = sum x`` and ``S2 = sum x*x`` in registers
sized by :attr:`golden.numerics.NormArithmetic.sum_format` / ``sumsq_format`` so they never overflow for
``max_count`` values. A read-out port returns the sums of one set with ``group_lanes`` adjacent lanes added
(GN: the lanes of a channel group; BN: ``group_lanes=1``), i.e. exactly
:meth:`golden.numerics.NormArithmetic.statistics` over the right axes.
"""

from __future__ import annotations

from amaranth import Array, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.norm_common import check_int, check_unit, index_shape, reduction_ports

__all__ = ["NormStatistics"]


class NormStatistics(wiring.Component):
    """Pass-through of x beats that accumulates S1 and S2 per (set, lane).

    Parameters
    ----------
    arithmetic : golden.numerics.NormArithmetic
        x format and accumulator widths.
    lanes : int
        Elements per beat (1 to 64).
    sets : int
        Accumulator sets (1 to 256): channel blocks (BN) or (sample, channel block) (GN).
    group_lanes : int
        Lanes added together on read-out (divides ``lanes``; 1 for BN, C/G for GN within a block).

    Attributes
    ----------
    input : In(stream.Signature(StructLayout({"set", "data": ArrayLayout(activation, lanes)})))
    output : Out(stream.Signature(same layout))
        ``input`` passed through combinationally (``ready`` flows back); a beat is counted when it
        transfers on ``output``.
    clear : In(1)
        Zeroes every accumulator at the next edge (a beat in the same cycle is not counted).
    read_set : In(stream.Signature(index_shape(sets)))
        Read-out request.
    sums : Out(stream.Signature(StructLayout({"s1": ArrayLayout(sum, groups), "s2": ArrayLayout(sumsq,
    groups)})))
        Sums of the requested set, one cycle later, ``groups = lanes // group_lanes``.
    """

    def __init__(self, *, arithmetic, lanes: int, sets: int, group_lanes: int = 1):
        self.arithmetic, self.lanes, self.sets = check_unit(arithmetic, lanes, sets, 256)
        self.group_lanes = check_int("group_lanes", group_lanes, 1, lanes)
        if lanes % group_lanes:
            raise ValueError(f"group_lanes must divide lanes ({lanes}), not {group_lanes}")
        self.groups = lanes // group_lanes
        self.beat_layout = data.StructLayout(
            {"set": index_shape(sets), "data": data.ArrayLayout(signed(arithmetic.activation.width), lanes)}
        )
        self.sums_layout = data.StructLayout(
            {
                "s1": data.ArrayLayout(signed(arithmetic.sum_format.width), self.groups),
                "s2": data.ArrayLayout(unsigned(arithmetic.sumsq_format.width), self.groups),
            }
        )
        super().__init__(
            {
                "input": In(stream.Signature(self.beat_layout)),
                "output": Out(stream.Signature(self.beat_layout)),
                **reduction_ports(sets=sets, sums_layout=self.sums_layout),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arithmetic = self.arithmetic
        m.d.comb += [
            self.output.payload.eq(self.input.payload),
            self.output.valid.eq(self.input.valid),
            self.input.ready.eq(self.output.ready),
        ]
        counted = self.output.valid & self.output.ready
        sum_shape = signed(arithmetic.sum_format.width)
        sumsq_shape = unsigned(arithmetic.sumsq_format.width)
        s1 = [
            Array(Signal(sum_shape, name=f"s1_{lane}_{index}") for index in range(self.sets))
            for lane in range(self.lanes)
        ]
        s2 = [
            Array(Signal(sumsq_shape, name=f"s2_{lane}_{index}") for index in range(self.sets))
            for lane in range(self.lanes)
        ]
        beat_set = self.input.payload.set
        for lane in range(self.lanes):
            x = self.input.payload.data[lane]
            with m.If(self.clear):
                for index in range(self.sets):
                    m.d.sync += [s1[lane][index].eq(0), s2[lane][index].eq(0)]
            with m.Elif(counted):
                m.d.sync += [
                    s1[lane][beat_set].eq(s1[lane][beat_set] + x),
                    s2[lane][beat_set].eq(s2[lane][beat_set] + (x * x).as_unsigned()),
                ]

        # Read-out: one request per cycle, the response register frees when taken.
        m.d.comb += self.read_set.ready.eq(~self.sums.valid | self.sums.ready)
        with m.If(self.read_set.valid & self.read_set.ready):
            m.d.sync += self.sums.valid.eq(1)
            chosen = self.read_set.payload
            for group in range(self.groups):
                lanes = range(group * self.group_lanes, (group + 1) * self.group_lanes)
                m.d.sync += [
                    self.sums.payload.s1[group].eq(sum(s1[lane][chosen] for lane in lanes)),
                    self.sums.payload.s2[group].eq(sum(s2[lane][chosen] for lane in lanes)),
                ]
        with m.Elif(self.sums.ready):
            m.d.sync += self.sums.valid.eq(0)
        return m
