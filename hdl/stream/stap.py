"""STAP (staggered asynchronous pipelines): frame dispatcher and in-order merger for replicated stages.

STAP is Occam's pipeline balancing (Gondimalla et al., arXiv 2106.14138: replicate the bottleneck stages and
stagger mini-batches across the replicas, without changing the partitioning): a bottleneck stage
runs on ``replicas`` identical chips; frame ``m`` goes to replica ``m mod replicas`` and the downstream
stage consumes the replicas' outputs in the same order, so the mini-batch order is preserved without a
reorder buffer. The replicas are staggered by construction: replica ``q`` starts when frame ``q`` arrives,
one frame time after replica ``q - 1``.

The dispatcher and the merger live in one file because they are two halves of one protocol (round-robin
by whole frames, frame boundaries from ``frame_end``) and are only correct together.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StapDispatcher", "StapMerger"]


def _check_replicas(replicas):
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= 64:
        raise ValueError(f"replicas must be an integer between 1 and 64, not {replicas!r}")
    return replicas


class StapDispatcher(wiring.Component):
    """Send whole frames round-robin to ``replicas`` outputs.

    Parameters
    ----------
    layout : data.StructLayout
        Pixel layout with a ``frame_end`` field (:func:`wavecore.hdl.stream.link.pixel_layout`).
    replicas : int
        Number of outputs, 1 to 64.

    Attributes
    ----------
    i : In(stream.Signature(layout))
        Pixels; frame ``m`` (counted from reset by ``frame_end``) goes to output ``m mod replicas``.
    o : Out(stream.Signature(layout)).array(replicas)
        One pixel stream per replica. ``i.ready`` follows the selected output's ``ready``
        (combinational); the other outputs see ``valid`` low.
    """

    def __init__(self, *, layout, replicas: int):
        self.layout = layout
        self.replicas = _check_replicas(replicas)
        super().__init__(
            {"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout)).array(self.replicas)}
        )

    def elaborate(self, platform):
        m = Module()
        select = Signal(range(max(self.replicas, 2)))
        for index in range(self.replicas):
            chosen = select == index
            m.d.comb += [
                self.o[index].payload.eq(self.i.payload),
                self.o[index].valid.eq(self.i.valid & chosen),
            ]
            with m.If(chosen):
                m.d.comb += self.i.ready.eq(self.o[index].ready)
        with m.If(self.i.valid & self.i.ready & self.i.payload.frame_end):
            m.d.sync += select.eq(Mux(select == self.replicas - 1, 0, select + 1))
        return m


class StapMerger(wiring.Component):
    """Take whole frames round-robin from ``replicas`` inputs: the inverse of :class:`StapDispatcher`.

    Parameters
    ----------
    layout : data.StructLayout
        Pixel layout with a ``frame_end`` field.
    replicas : int
        Number of inputs, 1 to 64.

    Attributes
    ----------
    i : In(stream.Signature(layout)).array(replicas)
        Pixel streams of the replicas; input ``q`` is read only while frame ``m`` with
        ``m mod replicas = q`` is being forwarded, so an early replica waits (backpressure) instead of
        overtaking.
    o : Out(stream.Signature(layout))
        Pixels of frames ``0, 1, 2, ...`` in order.
    """

    def __init__(self, *, layout, replicas: int):
        self.layout = layout
        self.replicas = _check_replicas(replicas)
        super().__init__(
            {"i": In(stream.Signature(layout)).array(self.replicas), "o": Out(stream.Signature(layout))}
        )

    def elaborate(self, platform):
        m = Module()
        select = Signal(range(max(self.replicas, 2)))
        for index in range(self.replicas):
            chosen = select == index
            m.d.comb += self.i[index].ready.eq(self.o.ready & chosen)
            with m.If(chosen):
                m.d.comb += [self.o.payload.eq(self.i[index].payload), self.o.valid.eq(self.i[index].valid)]
        with m.If(self.o.valid & self.o.ready & self.o.payload.frame_end):
            m.d.sync += select.eq(Mux(select == self.replicas - 1, 0, select + 1))
        return m
