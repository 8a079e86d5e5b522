"""Gamma-weighted backward reductions of a statistic set (input to the dx constants of the BN/GN backward pass,
:mod:`wavecore.golden.numerics`).

The scalar unit's backward command needs, per statistic set, ``W1 = sum_c gamma_c * r1_c`` and
``W2 = sum_c gamma_c * r2_c`` over the set's channels (BN: the set is one channel; GN: the C/G channels of
one (sample, group)). This unit is the drain stage between :class:`wavecore.hdl.norm.backward.NormBackwardReduce`
and :class:`wavecore.hdl.norm.scalar.NormScalar`: it reads the per-channel sums of a set through the reduction
unit's ``read_set``/``sums`` ports, multiplies each by its channel's gamma and adds them exactly, and
passes every per-channel beat on (the dgamma commands and dbeta need r1_c and r2_c too), so the sums are
read once. Arithmetic: :meth:`wavecore.golden.numerics.NormArithmetic.weighted_reductions`; the accumulator width is
:meth:`wavecore.golden.numerics.NormArithmetic.weighted_width`, which never overflows for sets of at most
``max_count`` elements.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.norm.common import CoefficientStore, check_int, check_unit, coefficient_port, index_shape

__all__ = ["NormGroupWeighting"]


class NormGroupWeighting(wiring.Component):
    """(W1, W2) = (sum gamma*r1, sum gamma*r2) over the channels of each commanded statistic set.

    Parameters
    ----------
    arithmetic : wavecore.golden.numerics.NormArithmetic
        Widths of r1/r2 (``grad_sum_format``, ``grad_product_sum_format``) and of W (``weighted_width``).
    lanes : int
        Lanes of a sums beat (1 to 64), as :class:`wavecore.hdl.norm.backward.NormBackwardReduce`'s; a lane has its
        own gamma (lanes that carry one channel get equal gammas loaded).
    sets : int
        Sets of the reduction unit (1 to 4096): the range of ``read_set``.
    channels : int
        Depth of the gamma store (1 to 4096): gamma entries per lane.
    param_width : int
        Width of gamma (Q.param_frac), 2 to 32.
    weighted_width : int or None
        Width of W1 and W2 on ``weighted``; at least ``arithmetic.weighted_width(param_width)`` (the
        default), at most 128 (pass the scalar unit's ``weighted_width`` so the fields match).

    Attributes
    ----------
    gamma : In(stream.Signature(StructLayout({"set": channel, "lane", "value": signed(param_width)})))
        Loads gamma of (channel ``set``, ``lane``); always ready, written at the next edge. Load before the
        commands that use it (a command reads the value present when its beat arrives).
    command : In(stream.Signature(StructLayout({"first": index_shape(sets), "channel":
    index_shape(channels), "members": range(channels + 1)})))
        One statistic set: ``members`` consecutive reduction sets from ``first``, whose gammas are the
        channels ``channel``, ``channel + 1``, ... Taken when no set is being read (``ready`` high from the
        cycle after the previous command's last sums beat was taken). ``members = 0`` is consumed and
        produces nothing.
    read_set : Out(stream.Signature(index_shape(sets)))
        Requests to the reduction unit, ``first`` .. ``first + members - 1`` in order, one per cycle while
        taken; they run ahead of the responses.
    sums : In(stream.Signature(StructLayout({"r1": ArrayLayout(grad_sum, lanes), "r2":
    ArrayLayout(grad_product_sum, lanes)})))
        The responses, one per request and in request order (``NormBackwardReduce.sums_layout``). Taken one
        per cycle while the pipeline is not stalled.
    channel_sums : Out(stream.Signature(StructLayout({"r1", "r2", "last"})))
        Every sums beat passed on unchanged, ``last`` on the set's final channel; 2 cycles after the sums
        beat was taken under no backpressure. A ``last`` beat is offered only once ``weighted`` is empty.
    weighted : Out(stream.Signature(StructLayout({"w1": signed(weighted_width), "w2":
    signed(weighted_width)})))
        The set's (W1, W2), valid the cycle after its ``last`` channel beat left, held until taken.

    Timing: one channel per cycle without stalls; a set of ``m`` channels read from a responder of latency
    1 (``NormBackwardReduce``) yields its W ``m + 4`` cycles after its command is taken.
    """

    def __init__(self, *, arithmetic, lanes: int, sets: int, channels: int, param_width: int = 16,
                 weighted_width: int | None = None):
        self.arithmetic, self.lanes, self.sets = check_unit(arithmetic, lanes, sets, 4096)
        self.channels = check_int("channels", channels, 1, 4096)
        self.param_width = check_int("param_width", param_width, 2, 32)
        minimum = arithmetic.weighted_width(param_width)
        if weighted_width is None:
            weighted_width = minimum
        self.weighted_width = check_int("weighted_width", weighted_width, minimum, 128)
        self.sums_layout = data.StructLayout(
            {
                "r1": data.ArrayLayout(signed(arithmetic.grad_sum_format.width), lanes),
                "r2": data.ArrayLayout(signed(arithmetic.grad_product_sum_format.width), lanes),
            }
        )
        self.channel_sums_layout = data.StructLayout(
            {"r1": self.sums_layout["r1"].shape, "r2": self.sums_layout["r2"].shape, "last": 1}
        )
        self.command_layout = data.StructLayout(
            {"first": index_shape(sets), "channel": index_shape(channels), "members": range(channels + 1)}
        )
        self.weighted_layout = data.StructLayout(
            {"w1": signed(self.weighted_width), "w2": signed(self.weighted_width)}
        )
        super().__init__(
            {
                "gamma": coefficient_port(lanes=lanes, sets=channels, layout=signed(param_width)),
                "command": In(stream.Signature(self.command_layout)),
                "read_set": Out(stream.Signature(index_shape(sets))),
                "sums": In(stream.Signature(self.sums_layout)),
                "channel_sums": Out(stream.Signature(self.channel_sums_layout)),
                "weighted": Out(stream.Signature(self.weighted_layout)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arithmetic = self.arithmetic

        # Requests: walk first .. first + members - 1.
        request_set = Signal(index_shape(self.sets))
        requests_left = Signal(range(self.channels + 1))
        # Responses: the gamma channel of the next sums beat and how many beats of the set are still due.
        response_channel = Signal(index_shape(self.channels))
        responses_left = Signal(range(self.channels + 1))
        m.d.comb += [
            self.command.ready.eq(responses_left == 0),
            self.read_set.valid.eq(requests_left != 0),
            self.read_set.payload.eq(request_set),
        ]
        with m.If(self.command.valid & self.command.ready):
            m.d.sync += [
                request_set.eq(self.command.payload.first),
                requests_left.eq(self.command.payload.members),
                response_channel.eq(self.command.payload.channel),
                responses_left.eq(self.command.payload.members),
            ]
        with m.Elif(self.read_set.valid & self.read_set.ready):
            m.d.sync += [request_set.eq(request_set + 1), requests_left.eq(requests_left - 1)]

        # Two lock-step stages: 0 holds the beat while gamma is read, 1 holds the products and drives
        # channel_sums. Everything advances when stage 1 is empty or its beat leaves.
        valid = [Signal(name="stage0_valid"), Signal(name="stage1_valid")]
        beat = [Signal(self.channel_sums_layout, name=f"stage{stage}_beat") for stage in range(2)]
        advance = Signal()
        leave = Signal()
        m.d.comb += [
            self.channel_sums.valid.eq(valid[1] & (~beat[1].last | ~self.weighted.valid)),
            self.channel_sums.payload.eq(beat[1]),
            leave.eq(self.channel_sums.valid & self.channel_sums.ready),
            advance.eq(~valid[1] | leave),
            self.sums.ready.eq(advance & (responses_left != 0)),
        ]
        taken = self.sums.valid & self.sums.ready
        store = CoefficientStore(lanes=self.lanes, sets=self.channels, layout=signed(self.param_width))
        gammas = store.elaborate(m, self.gamma, response_channel, advance)
        with m.If(taken):
            m.d.sync += [response_channel.eq(response_channel + 1), responses_left.eq(responses_left - 1)]
        products1 = [
            Signal(signed(self.param_width + arithmetic.grad_sum_format.width), name=f"product1_{lane}")
            for lane in range(self.lanes)
        ]
        products2 = [
            Signal(signed(self.param_width + arithmetic.grad_product_sum_format.width), name=f"product2_{lane}")
            for lane in range(self.lanes)
        ]
        with m.If(advance):
            m.d.sync += [
                valid[0].eq(taken),
                beat[0].r1.eq(self.sums.payload.r1),
                beat[0].r2.eq(self.sums.payload.r2),
                beat[0].last.eq(responses_left == 1),
                valid[1].eq(valid[0]),
                beat[1].eq(beat[0]),
            ]
            for lane in range(self.lanes):
                m.d.sync += [
                    products1[lane].eq(gammas[lane] * beat[0].r1[lane]),
                    products2[lane].eq(gammas[lane] * beat[0].r2[lane]),
                ]

        # Exact accumulation of the beat that leaves; the set's last beat moves the total to `weighted`.
        width = self.weighted_width
        accumulated = [Signal(signed(width), name="w1_partial"), Signal(signed(width), name="w2_partial")]
        totals = [Signal(signed(width), name="w1_total"), Signal(signed(width), name="w2_total")]
        m.d.comb += [
            totals[0].eq(accumulated[0] + sum(products1)),
            totals[1].eq(accumulated[1] + sum(products2)),
        ]
        with m.If(self.weighted.valid & self.weighted.ready):
            m.d.sync += self.weighted.valid.eq(0)
        with m.If(leave):
            with m.If(beat[1].last):
                m.d.sync += [
                    self.weighted.valid.eq(1),
                    self.weighted.payload.w1.eq(totals[0]),
                    self.weighted.payload.w2.eq(totals[1]),
                    accumulated[0].eq(0),
                    accumulated[1].eq(0),
                ]
            with m.Else():
                m.d.sync += [accumulated[0].eq(totals[0]), accumulated[1].eq(totals[1])]
        return m
