"""One Occam pipeline stage on one chip: link receiver, a graph of streaming engines, link transmitter.

Occam (Gondimalla et al., arXiv 2106.14138) puts each partition on its own chip: here, per partition, the layer
engines with filters
on chip and line buffers sized from the closure, and the link endpoints. The stage sees the previous chip
only through ``link_in`` and the next one only through ``link_out`` (:mod:`wavecore.hdl.stream.link`).

Inside, the engines form a DAG (a residual block, an inception module): every edge is a pixel row stream;
an edge into an engine has a row FIFO (:func:`input_fifo_depth`): a windowed engine only accepts input
between its output rows (``FILL``), so without a FIFO the producer's EMIT would wait for the consumer's
COMPUTE and the two would serialise. One row is not enough: the first output row of a frame needs
``kernel_height - padding`` input rows while the last ones need none, so a FIFO of one row lets an
equally fast producer run only one row ahead and the consumer waits one producer row per frame (measured
on ``tiny_resnet``: +5.6 % cycles/frame); the FIFO holds ``max(kernel_height - padding, stride)`` rows.
The same FIFO sits between the link receiver and a windowed engine reading the link, so the link fills it
while the engine computes (a pixel is several lane words: read directly from the receiver, ``FILL`` would
take ``words`` cycles per pixel, +5 % on ``tiny_mobilenet``).
A tensor read by several engines goes through a :class:`wavecore.hdl.stream.fork.StreamFork`, whose per-reader FIFO
is at least that deep and deep enough that the join where the branches meet (add, concat) never deadlocks:
a short branch's FIFO holds what enters it while the longest other branch fills its line buffers
(:func:`wavecore.hdl.stream.fork.skip_fifo_depth`).

With these FIFOs the stage's steady-state cycles per frame are :func:`stage_cycles`: the slowest engine's
cycles (:func:`wavecore.hdl.stream.conv.stream_conv_cycles` and friends, input always valid, output always ready)
or the link's words per frame, whichever is larger.
"""

from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import IntFormat
from wavecore.hdl.stream.link import LinkReceiver, LinkTransmitter

__all__ = ["PipelineStage", "input_fifo_depth", "stage_cycles"]

#: Source index of the input link in ``sources``.
LINK = -1


def input_fifo_depth(engine, width: int) -> int:
    """Pixels of row FIFO in front of ``engine``'s input for a ``width``-pixel frame.

    A windowed engine (``kernel_height``, ``stride``, ``padding``): ``max(kernel_height - padding, stride)``
    rows, what its first output row (or any later one) takes in one ``FILL``, so a producer as fast as the
    engine is never blocked by the rows the engine does not take at the bottom of a frame. Other engines
    take a pixel whenever one is there: one row. At least 3 (smaller SyncFIFOBuffereds have zero-width
    pointers Verilator rejects).
    """
    rows = 1
    if hasattr(engine, "kernel_height"):
        rows = max(engine.kernel_height - engine.padding, engine.stride, 1)
    return max(3, rows * width)


def stage_cycles(engine_cycles, in_words_per_frame: int, out_words_per_frame: int) -> int:
    """Steady-state cycles per frame of a stage: the slowest engine or link (one lane word per cycle)."""
    return max(*engine_cycles, in_words_per_frame, out_words_per_frame)


def _inputs(engine) -> list:
    """The input streams of ``engine``: ``i`` for one-input engines, ``inputs[k]`` for joins."""
    if hasattr(engine, "inputs"):
        return [engine.inputs[k] for k in range(len(engine.inputs))]
    return [engine.i]


def _format(layout) -> IntFormat:
    element = layout.members["data"].elem_shape
    return IntFormat(element.width, element.signed)


def _branch_engine(engine):
    """``[(kernel_height, stride, padding)]`` of a windowed engine for the skip-FIFO bound, else ``[]``."""
    if hasattr(engine, "kernel_height"):
        return [(engine.kernel_height, engine.stride, engine.padding)]
    if getattr(engine, "out_height", None) == 1 and getattr(engine, "height", 1) > 1:
        return [(engine.height, 1, 0)]  # a global pool needs the whole frame before its output
    return []  # element-wise engines and joins: one pixel in, one pixel out


class PipelineStage(wiring.Component):
    """Link in -> a DAG of ``engines`` (row FIFOs, forks with skip FIFOs) -> link out.

    Parameters
    ----------
    engines : list of stream engines
        In topological order; each has an output stream ``o`` and either one input stream ``i`` or several
        ``inputs[k]`` (add, concat). The last engine's output goes to the output link and to no engine.
    lane_width : int
        Data bits per link transfer on both links.
    sources : list of tuple of int, optional
        ``sources[k]`` = the engines whose outputs feed engine ``k``'s inputs, in order (indices of earlier
        engines, ``-1`` for the input link). Default: a chain (engine 0 reads the link, engine ``k`` reads
        engine ``k - 1``). Every engine but the last must be read by some engine.
    names : list of str, optional
        Submodule names of the engines (default ``layer<k>``).
    frame : (int, int), optional
        Height and width of the input frame (default: from the first engine reading the link).

    Attributes
    ----------
    link_in : In(stream.Signature(lane_width))
        Lane words of the input pixels (the previous stage's ``link_out``).
    link_out : Out(stream.Signature(lane_width))
        Lane words of the output pixels. Both links obey valid/ready; a stalled ``link_out`` stalls the
        whole stage without loss.
    error : Out(1)
        Sticky: some join (add, concat) combined pixels with different markers (its inputs out of step).
    in_layout, out_layout : data.StructLayout
        Pixel layouts of the two links; ``in_height``/``in_width``, ``out_height``/``out_width`` the frames.
    fifo_depths : dict
        ``{(producer, consumer, port): pixels}`` of every FIFO the stage inserted (producer ``-1`` = link).
    """

    def __init__(self, *, engines, lane_width: int, sources=None, names=None, frame=None):
        engines = list(engines)
        if not engines or not all(hasattr(engine, "o") for engine in engines):
            raise TypeError("engines must be a non-empty list of stream engines")
        if sources is None:
            sources = [(k - 1,) for k in range(len(engines))]
        sources = [tuple(s) for s in sources]
        if len(sources) != len(engines):
            raise ValueError(f"sources must have one entry per engine ({len(engines)}), not {len(sources)}")
        self.names = list(names) if names is not None else [f"layer{k}" for k in range(len(engines))]
        if len(self.names) != len(engines) or len(set(self.names)) != len(self.names):
            raise ValueError("names must be distinct, one per engine")
        in_layout = None
        for index, (engine, feed) in enumerate(zip(engines, sources)):
            ports = _inputs(engine)
            if len(feed) != len(ports):
                raise ValueError(f"engine {self.names[index]} has {len(ports)} inputs, sources gives {len(feed)}")
            for port, source in zip(ports, feed):
                if not LINK <= source < index:
                    raise ValueError(f"engine {self.names[index]}: source {source} is not an earlier engine")
                layout = port.signature.members["payload"].shape
                if source == LINK:
                    if in_layout is not None and in_layout != layout:
                        raise ValueError(f"engine {self.names[index]}: input layout differs from the link's")
                    in_layout = layout
                elif engines[source].o.signature.members["payload"].shape != layout:
                    raise ValueError(
                        f"engine {self.names[source]} output does not match engine {self.names[index]}'s input"
                    )
        if in_layout is None:
            raise ValueError("no engine reads the input link")
        read = {source for feed in sources for source in feed}
        for index in range(len(engines) - 1):
            if index not in read:
                raise ValueError(f"engine {self.names[index]} is read by no engine (only the last may be)")
        if len(engines) - 1 in read:
            raise ValueError(f"the last engine {self.names[-1]} feeds the output link only")
        self.engines = engines
        self.sources = sources
        self.lane_width = lane_width
        self.in_layout = in_layout
        self.out_layout = engines[-1].o.signature.members["payload"].shape
        if frame is None:
            readers = [engines[k] for k, feed in enumerate(sources) if LINK in feed and hasattr(engines[k], "height")]
            if not readers:
                raise ValueError("frame must be given when no engine reading the link knows the frame size")
            frame = (readers[0].height, readers[0].width)
        self.in_height, self.in_width = frame
        # output frame of every engine: windowed engines know theirs, element-wise ones keep their input's
        self.frames = []
        for engine, feed in zip(engines, sources):
            if hasattr(engine, "out_height"):
                self.frames.append((engine.out_height, engine.out_width))
            else:
                self.frames.append(frame if feed[0] == LINK else self.frames[feed[0]])
        self.out_height, self.out_width = self.frames[-1]
        self.receiver = LinkReceiver(layout=self.in_layout, lane_width=lane_width)
        self.transmitter = LinkTransmitter(layout=self.out_layout, lane_width=lane_width)
        self.fifo_depths = self._plan_fifos()
        super().__init__(
            {
                "link_in": In(stream.Signature(lane_width)),
                "link_out": Out(stream.Signature(lane_width)),
                "error": Out(1),
            }
        )

    # -- FIFO sizing --------------------------------------------------------------------------------------
    def _readers(self, producer):
        return [(k, port) for k, feed in enumerate(self.sources) for port, s in enumerate(feed) if s == producer]

    def _reach(self):
        """``reach[k]`` = engines reachable from engine ``k`` (itself included)."""
        reach = [None] * len(self.engines)
        for k in range(len(self.engines) - 1, -1, -1):
            reach[k] = {k}.union(*(reach[j] for j, _ in self._readers(k)))
        return reach

    def _longest_bound(self, start, join, width):
        """Largest skip-FIFO bound over the engine paths from ``start`` to (excluding) ``join``."""
        from wavecore.hdl.stream.fork import skip_fifo_depth

        best = 0

        def walk(k, path):
            nonlocal best
            if k == join:
                best = max(best, skip_fifo_depth(width=width, engines=path, extra_pixels=2))
                return
            for j, _ in self._readers(k):
                walk(j, [*path, *_branch_engine(self.engines[k])])
            if not self._readers(k):  # the last engine: its branch ends at the output link
                walk(join, [*path, *_branch_engine(self.engines[k])])

        walk(start, [])
        return best

    def _plan_fifos(self):
        depths = {}
        reach = self._reach()
        for producer in [LINK, *range(len(self.engines))]:
            readers = self._readers(producer)
            width = self.in_width if producer == LINK else self.frames[producer][1]
            rows = [input_fifo_depth(self.engines[k], width) for k, _ in readers]
            if len(readers) == 1:
                # the link feeds an element-wise engine directly (it takes a pixel whenever one is there)
                if producer != LINK or hasattr(self.engines[readers[0][0]], "kernel_height"):
                    depths[(producer, *readers[0])] = rows[0]
                continue
            if not readers:
                continue
            common = set.intersection(*(reach[k] for k, _ in readers))
            join = min(common) if common else len(self.engines)  # len(engines): the output link
            bounds = [self._longest_bound(k, join, width) for k, _ in readers]
            for index, (k, port) in enumerate(readers):
                others = [b for j, b in enumerate(bounds) if j != index]
                depths[(producer, k, port)] = max([rows[index], *others])
        return depths

    # -- hardware -----------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = self.receiver
        m.submodules.transmitter = transmitter = self.transmitter
        for name, engine in zip(self.names, self.engines):
            m.submodules[name] = engine
        wiring.connect(m, wiring.flipped(self.link_in), receiver.i)
        outputs = {LINK: receiver.o, **{k: engine.o for k, engine in enumerate(self.engines)}}
        for producer, stream_out in outputs.items():
            readers = self._readers(producer)
            if producer == len(self.engines) - 1:
                wiring.connect(m, stream_out, transmitter.i)
                continue
            name = "link" if producer == LINK else self.names[producer]
            if len(readers) == 1:
                k, port = readers[0]
                target = _inputs(self.engines[k])[port]
                if (producer, k, port) not in self.fifo_depths:  # the link into an element-wise engine
                    wiring.connect(m, stream_out, target)
                    continue
                buffer = fifo.SyncFIFOBuffered(
                    width=stream_out.payload.shape().size, depth=self.fifo_depths[(producer, k, port)]
                )
                m.submodules[f"row_fifo_{name}"] = buffer
                m.d.comb += [
                    buffer.w_data.eq(stream_out.payload.as_value()),
                    buffer.w_en.eq(stream_out.valid),
                    stream_out.ready.eq(buffer.w_rdy),
                    target.payload.as_value().eq(buffer.r_data),
                    target.valid.eq(buffer.r_rdy),
                    buffer.r_en.eq(target.ready),
                ]
                continue
            from wavecore.hdl.stream.fork import StreamFork

            layout = stream_out.payload.shape()
            fork = StreamFork(
                channels=layout.members["data"].length,
                depths=[self.fifo_depths[(producer, k, port)] for k, port in readers],
                fmt=_format(layout),
            )
            m.submodules[f"fork_{name}"] = fork
            wiring.connect(m, stream_out, fork.i)
            for index, (k, port) in enumerate(readers):
                wiring.connect(m, fork.outputs[index], _inputs(self.engines[k])[port])
        wiring.connect(m, transmitter.o, wiring.flipped(self.link_out))
        errors = [engine.error for engine in self.engines if hasattr(engine, "error")]
        m.d.comb += self.error.eq(Cat(*errors).any() if errors else 0)
        return m
