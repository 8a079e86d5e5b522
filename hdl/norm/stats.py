"""Statistics on write: the BN/GN "sub-BN1" unit at the array's output drain (BN fission-fusion of Jung et al.,
"Restructuring Batch Normalization to Accelerate CNN Training", arXiv 1807.01702: statistics fused into the
producing convolution's output write).

It sits on the stream that writes x (the conv output, already requantized) to the scratchpad, passes every
beat through unchanged, and accumulates per (set, lane) ``S1 = sum x`` and ``S2 = sum x*x``, sized by
:attr:`wavecore.golden.numerics.NormArithmetic.sum_format` / ``sumsq_format`` so they never overflow for ``max_count``
values, in one memory per lane (:class:`wavecore.hdl.norm.common.AccumulatorStore`: a read-modify-write pipeline with
forwarding, so any sequence of sets runs at one beat per cycle, and a valid bit per set for a one-cycle
clear; LUT RAM or block RAM on an FPGA, so hundreds of sets cost memory, not flip-flops). A read-out port
returns the sums of one set with ``group_lanes`` adjacent lanes added (GN: the lanes of a channel group; BN:
``group_lanes=1``), i.e. exactly :meth:`wavecore.golden.numerics.NormArithmetic.statistics` over the right axes.
"""

from __future__ import annotations

from amaranth import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.norm.common import AccumulatorStore, check_int, check_unit, index_shape, reduction_ports

__all__ = ["NormStatistics"]


class NormStatistics(wiring.Component):
    """Pass-through of x beats that accumulates S1 and S2 per (set, lane).

    Parameters
    ----------
    arithmetic : wavecore.golden.numerics.NormArithmetic
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
        transfers on ``output`` (its sum is written to memory the cycle after; reads see it already).
    clear : In(1)
        Zeroes every accumulator at the next edge (a beat in the same cycle is not counted), in one cycle
        whatever ``sets`` is: it clears the per-set valid bits.
    read_set : In(stream.Signature(index_shape(sets)))
        Read-out request.
    sums : Out(stream.Signature(StructLayout({"s1": ArrayLayout(sum, groups), "s2": ArrayLayout(sumsq,
    groups)})))
        Sums of the requested set, one cycle later, ``groups = lanes // group_lanes``: every beat counted
        before the request's cycle (since the last clear before it) is included.
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
        self.accumulator_layout = data.StructLayout(
            {"s1": signed(arithmetic.sum_format.width), "s2": unsigned(arithmetic.sumsq_format.width)}
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
        m.d.comb += [
            self.output.payload.eq(self.input.payload),
            self.output.valid.eq(self.input.valid),
            self.input.ready.eq(self.output.ready),
        ]
        counted = self.output.valid & self.output.ready
        store = AccumulatorStore(lanes=self.lanes, sets=self.sets, layout=self.accumulator_layout, name="stats")
        increments = []
        for lane in range(self.lanes):
            x = self.input.payload.data[lane]
            increments.append({"s1": x, "s2": (x * x).as_unsigned()})
        accumulators = store.elaborate(
            m,
            count=counted,
            set_index=self.input.payload.set,
            increments=increments,
            clear=self.clear,
            read_stream=self.read_set,
            sums_stream=self.sums,
        )
        # Read-out: the lanes of a group added after the memory's read register.
        for group in range(self.groups):
            lanes = range(group * self.group_lanes, (group + 1) * self.group_lanes)
            m.d.comb += [
                self.sums.payload.s1[group].eq(sum(accumulators[lane].s1 for lane in lanes)),
                self.sums.payload.s2[group].eq(sum(accumulators[lane].s2 for lane in lanes)),
            ]
        return m
