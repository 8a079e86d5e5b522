"""One Occam pipeline stage on one chip: link receiver, a chain of streaming conv engines, link transmitter.

``research/occam_lrcnn_caterpillar.md`` section 5(c) step 3: per partition, the layer engines with filters
on chip and line buffers sized from the closure, and the link endpoints. The stage sees the previous chip
only through ``link_in`` and the next one only through ``link_out`` (:mod:`hdl.link`).
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.link import LinkReceiver, LinkTransmitter
from hdl.stream_conv import StreamConv2d

__all__ = ["PipelineStage"]


class PipelineStage(wiring.Component):
    """Link in -> ``engines`` in order (a one-row FIFO after each but the last) -> link out.

    Parameters
    ----------
    engines : list of StreamConv2d
        The stage's layers; each engine's output layout must be the next one's input layout.
    lane_width : int
        Data bits per link transfer on both links.

    Attributes
    ----------
    link_in : In(stream.Signature(lane_width))
        Lane words of the input pixels (the previous stage's ``link_out``).
    link_out : Out(stream.Signature(lane_width))
        Lane words of the output pixels. Both links obey valid/ready; a stalled ``link_out`` stalls the
        whole stage without loss.
    """

    def __init__(self, *, engines, lane_width: int):
        engines = list(engines)
        if not engines or not all(isinstance(engine, StreamConv2d) for engine in engines):
            raise TypeError("engines must be a non-empty list of StreamConv2d")
        for before, after in zip(engines, engines[1:]):
            if before.out_layout != after.in_layout:
                raise ValueError(
                    f"engine output {before.out_channels} channels does not match the next "
                    f"engine's input {after.in_channels} channels"
                )
        self.engines = engines
        self.lane_width = lane_width
        self.receiver = LinkReceiver(layout=engines[0].in_layout, lane_width=lane_width)
        self.transmitter = LinkTransmitter(layout=engines[-1].out_layout, lane_width=lane_width)
        super().__init__(
            {"link_in": In(stream.Signature(lane_width)), "link_out": Out(stream.Signature(lane_width))}
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = self.receiver
        m.submodules.transmitter = transmitter = self.transmitter
        for index, engine in enumerate(self.engines):
            m.submodules[f"layer{index}"] = engine
        wiring.connect(m, wiring.flipped(self.link_in), receiver.i)
        wiring.connect(m, receiver.o, self.engines[0].i)
        # A one-row FIFO between engines: an engine only accepts input between its output rows, so without
        # it the producer's EMIT would wait for the consumer's COMPUTE and the two would serialise.
        for index, (before, after) in enumerate(zip(self.engines, self.engines[1:])):
            buffer = fifo.SyncFIFOBuffered(width=before.out_layout.size, depth=max(2, before.out_width))
            m.submodules[f"row_fifo{index}"] = buffer
            m.d.comb += [
                buffer.w_data.eq(before.o.payload.as_value()),
                buffer.w_en.eq(before.o.valid),
                before.o.ready.eq(buffer.w_rdy),
                after.i.payload.as_value().eq(buffer.r_data),
                after.i.valid.eq(buffer.r_rdy),
                buffer.r_en.eq(after.i.ready),
            ]
        wiring.connect(m, self.engines[-1].o, transmitter.i)
        wiring.connect(m, transmitter.o, wiring.flipped(self.link_out))
        return m
