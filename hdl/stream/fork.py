"""Streaming fan-out (residual skips, Inception branches) for Occam pipeline stages.

One pixel stream goes to ``len(depths)`` consumers, each through its own FIFO
(:class:`amaranth.lib.fifo.SyncFIFOBuffered`, ``depths[k]`` pixels). An input pixel is taken, and written to
every FIFO, in a cycle where every FIFO has room. A FIFO of one pixel or two is enough for a branch that
is consumed at the producer's pace; the *short* branch of a fork that re-joins (a residual skip to a
:class:`hdl.stream.add.StreamAdd`, branches to a :class:`hdl.stream.concat.StreamConcat`) must hold every
pixel the fork emits while the *long* branch is still filling its line buffers, else the fork stalls on
the full skip FIFO, the long branch starves and the join waits forever: :func:`skip_fifo_depth` sizes it.
"""

from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import IntFormat, check_int
from wavecore.hdl.stream.link import pixel_layout

__all__ = ["MIN_FIFO_DEPTH", "StreamFork", "skip_fifo_depth"]

#: Smallest FIFO actually built per output (pixels).
MIN_FIFO_DEPTH = 3


def _engine_window(engine) -> tuple[int, int, int]:
    if isinstance(engine, tuple | list):
        kernel_height, stride, padding = engine
    else:
        kernel_height, stride, padding = engine.kernel_height, engine.stride, engine.padding
    check_int("kernel_height", kernel_height, 1)
    check_int("stride", stride, 1)
    check_int("padding", padding, 0)
    return kernel_height, stride, padding


def skip_fifo_depth(*, width: int, engines, extra_pixels: int = 0) -> int:
    """Pixels of FIFO the short branch of a fork/join needs so the join cannot deadlock.

    Parameters
    ----------
    width : int
        Frame width at the fork.
    engines : sequence
        The windowed engines of the *long* branch in order: objects with ``kernel_height``, ``stride`` and
        ``padding`` (:class:`wavecore.hdl.stream.conv.StreamConv2d`, :class:`wavecore.hdl.stream.pool.StreamPool2d`) or
        ``(kernel_height, stride, padding)`` tuples. Element-wise engines (ReLU, add) need no entry.
    extra_pixels : int
        Pixels held elsewhere on the long branch that the bound does not see (pipeline registers, link
        transmitter/receiver pairs: two per chip crossing). FIFOs *between* the long branch's engines need no
        allowance: they only let it run further ahead.

    Returns ``width * (sum_i scale_i * (kh_i - p_i) + S) + extra_pixels + 2`` where ``scale_i`` is the
    product of the strides of the engines before engine ``i`` and ``S`` the product of all of them.

    Why it suffices: a windowed engine (:func:`wavecore.hdl.stream.window.window_scan`) emits its output row ``y``
    only after ``c = y*s + kh - p`` input rows; so its input must be complete up to row ``c - 1``, which
    needs ``(c - 1)*s' + kh' - p'`` rows of the engine before, and so on: the long branch's output row
    ``y`` needs ``R = y*S + sum_i scale_i*(kh_i - p_i - 1) + 1`` rows at the fork (fewer at the bottom
    of a frame). When the join waits for that row, the short branch has taken at least the ``y*S`` rows
    before it out of its FIFO (its pixels were joined, or a strided short-branch engine consumed them
    ahead), so the fork must be able to run ``R - y*S`` rows ahead of the short branch: ``width *
    (sum_i scale_i*(kh_i - p_i - 1) + 1)`` pixels. That core term is exact for two 3x3 pad-1 convs
    (``tests/hdl/stream/test_stream_fork.py``: 18 pixels at width 6 run, 17 deadlock). The returned value adds
    ``scale_i`` rows per engine, ``S - 1`` rows and two pixels of margin (pipeline registers), so it is a
    safe upper bound that stays within a few rows of line-buffer size.
    """
    check_int("width", width, 1)
    check_int("extra_pixels", extra_pixels, 0)
    scale = 1
    rows = 0
    for engine in engines:
        kernel_height, stride, padding = _engine_window(engine)
        rows += scale * max(kernel_height - padding, 0)
        scale *= stride
    return width * (rows + scale) + extra_pixels + 2


class StreamFork(wiring.Component):
    """One pixel stream to ``len(depths)`` outputs, each behind its own FIFO.

    Parameters
    ----------
    channels : int
        Channels of every pixel.
    depths : sequence of int
        FIFO depth (pixels, 1 to 65536) of each output, 1 to 8 outputs. Use :func:`skip_fifo_depth` for
        the short branch of a fork that re-joins. Depths below :data:`MIN_FIFO_DEPTH` are built as
        :data:`MIN_FIFO_DEPTH` (smaller SyncFIFOBuffereds have zero-width pointers Verilator rejects).
    fmt : wavecore.golden.numerics.IntFormat or None
        Element format (default int8).

    Attributes
    ----------
    i : In(stream.Signature(pixel_layout(channels, fmt.width, fmt.signed)))
        ``ready`` when every output FIFO has room (does not depend on ``valid``).
    outputs : Out(stream.Signature(pixel_layout(...))).array(len(depths))
        The same pixels, markers included, in the same order; output ``k`` is valid while its FIFO is not
        empty (a pixel appears two cycles after it was taken: SyncFIFOBuffered's latency).

    Timing: one pixel per cycle while no FIFO is full. Resources: ``sum(depths)`` pixels of FIFO memory.
    """

    def __init__(self, *, channels: int, depths, fmt: IntFormat | None = None):
        fmt = IntFormat(8) if fmt is None else fmt
        if not isinstance(fmt, IntFormat):
            raise TypeError(f"fmt must be a wavecore.golden.numerics.IntFormat, not {fmt!r}")
        check_int("channels", channels, 1, 4096)
        if not isinstance(depths, list | tuple) or not 1 <= len(depths) <= 8:
            raise ValueError(f"depths must be a list of 1 to 8 FIFO depths, not {depths!r}")
        for depth in depths:
            check_int("depth", depth, 1, 65536)
        self.channels, self.depths, self.fmt = channels, tuple(depths), fmt
        self.in_layout = self.out_layout = pixel_layout(channels, fmt.width, fmt.signed)
        super().__init__(
            {
                "i": In(stream.Signature(self.in_layout)),
                "outputs": Out(stream.Signature(self.out_layout)).array(len(depths)),
            }
        )

    @property
    def fifo_bytes(self) -> int:
        return sum(max(depth, MIN_FIFO_DEPTH) for depth in self.depths) * -(-self.in_layout.size // 8)

    def elaborate(self, platform):
        m = Module()
        buffers = []
        for index, (depth, port) in enumerate(zip(self.depths, self.outputs)):
            buffer = fifo.SyncFIFOBuffered(width=self.in_layout.size, depth=max(depth, MIN_FIFO_DEPTH))
            m.submodules[f"fifo{index}"] = buffer
            buffers.append(buffer)
            m.d.comb += [
                buffer.w_data.eq(self.i.payload.as_value()),
                buffer.w_en.eq(self.i.valid & self.i.ready),
                port.valid.eq(buffer.r_rdy),
                port.payload.as_value().eq(buffer.r_data),
                buffer.r_en.eq(port.ready),
            ]
        m.d.comb += self.i.ready.eq(Cat(*(buffer.w_rdy for buffer in buffers)).all())
        return m
