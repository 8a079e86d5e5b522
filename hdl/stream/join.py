"""Shared join logic of the multi-input streaming engines (:mod:`hdl.stream.add`, :mod:`hdl.stream.concat`).

A combinational join of pixel streams (:func:`hdl.stream.link.pixel_layout`): the output is valid when every input
is valid, and one pixel of every input is taken in the cycle the output is taken. The output's markers
(``first``, ``row_end``, ``frame_end``, ``batch``) are those of input 0; a sticky ``error`` flag rises when
a transfer joins pixels whose markers differ (streams out of step: a lost, extra or reordered pixel
upstream).
"""

from __future__ import annotations

from amaranth import Cat

__all__ = ["join_streams"]


def join_streams(m, inputs, o, error) -> None:
    """Drive ``o``'s handshake and markers and every ``inputs[k].ready`` from a join of ``inputs``;
    set ``error`` (a sticky 1-bit register) on a transfer with mismatched markers."""
    all_valid = Cat(*(port.valid for port in inputs)).all()
    m.d.comb += o.valid.eq(all_valid)
    for port in inputs:
        m.d.comb += port.ready.eq(o.ready & all_valid)
    lead = inputs[0].payload
    m.d.comb += [
        o.payload.first.eq(lead.first),
        o.payload.row_end.eq(lead.row_end),
        o.payload.frame_end.eq(lead.frame_end),
        o.payload.batch.eq(lead.batch),
    ]

    def markers(payload):
        return Cat(payload.first, payload.row_end, payload.frame_end, payload.batch)

    mismatch = Cat(*(markers(port.payload) != markers(lead) for port in inputs[1:])).any()
    with m.If(o.valid & o.ready & mismatch):
        m.d.sync += error.eq(1)
