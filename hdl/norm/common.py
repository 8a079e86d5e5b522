"""Shared pieces of the BN/GN datapath units (``hdl/norm/*.py``): parameter checks, the requantizer, and
the two-stage stream pipeline they all use.

The arithmetic is :class:`wavecore.golden.numerics.NormArithmetic`; :func:`requantize_value` is the gateware form
of :func:`wavecore.golden.numerics.requantize` (same rounding modes, same saturation) and is checked bit for bit
against it by the norm testbenches.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import NormArithmetic, check_int
from wavecore.hdl.stream.window import round_up

__all__ = [
    "AccumulatorStore",
    "CoefficientStore",
    "index_shape",
    "StreamPipeline",
    "affine_coefficient_layout",
    "check_arithmetic",
    "check_int",
    "check_unit",
    "coefficient_pipeline",
    "coefficient_port",
    "gradient_x_layout",
    "reduction_ports",
    "requantize_value",
]


def index_shape(count: int) -> range:
    """Shape of an index into ``count`` things, at least one bit wide: Verilog has no zero-width ports."""
    return range(max(count, 2))


def check_arithmetic(arithmetic) -> NormArithmetic:
    if not isinstance(arithmetic, NormArithmetic):
        raise TypeError(f"arithmetic must be a wavecore.golden.numerics.NormArithmetic, not {arithmetic!r}")
    return arithmetic


def check_unit(arithmetic, lanes, sets, max_sets: int) -> tuple[NormArithmetic, int, int]:
    """The constructor checks every norm unit starts with: ``(arithmetic, lanes 1..64, sets 1..max_sets)``."""
    return check_arithmetic(arithmetic), check_int("lanes", lanes, 1, 64), check_int("sets", sets, 1, max_sets)


def affine_coefficient_layout(arithmetic: NormArithmetic) -> data.StructLayout:
    """The forward constants A (``coefficient``) and C (``bias``) of one (set, lane)."""
    return data.StructLayout({"a": signed(arithmetic.coefficient_width), "c": signed(arithmetic.bias_width)})


def coefficient_port(*, lanes: int, sets: int, layout) -> In:
    """The ``coefficients`` load port of a unit with a :class:`CoefficientStore`: ``{set, lane, value}``."""
    return In(
        stream.Signature(
            data.StructLayout({"set": index_shape(sets), "lane": index_shape(lanes), "value": layout})
        )
    )


def gradient_x_layout(arithmetic: NormArithmetic, *, lanes: int, sets: int, gradient: str) -> data.StructLayout:
    """A backward-path beat: ``set``, a gradient vector named ``gradient`` and the element-aligned x vector."""
    return data.StructLayout(
        {
            "set": index_shape(sets),
            gradient: data.ArrayLayout(signed(arithmetic.gradient.width), lanes),
            "x": data.ArrayLayout(signed(arithmetic.activation.width), lanes),
        }
    )


def reduction_ports(*, sets: int, sums_layout) -> dict:
    """``clear``, ``read_set`` and ``sums``: the accumulator ports of the statistics and backward units."""
    return {
        "clear": In(1),
        "read_set": In(stream.Signature(index_shape(sets))),
        "sums": Out(stream.Signature(sums_layout)),
    }


def requantize_value(value, shift: int, out, rounding: str):
    """``value / 2**shift`` rounded as :func:`wavecore.golden.numerics.requantize` does, saturated to ``out``.

    ``value`` is a signed Amaranth value; ``out`` an :class:`wavecore.golden.numerics.IntFormat`. Combinational.

    Built for a short path: the rounding increment comes from the guard and sticky bits the shift leaves
    (:func:`wavecore.hdl.stream.window.round_up`, no comparison of the remainder), the increment is added to the
    floor's low ``out.width`` bits only, and whether the result leaves ``out`` is read from the floor's high bits
    beside that addition (the floor is above the range, or at its top with an increment; or below the range: one
    below it with an increment gives ``out.min`` either way), so no comparison runs after the addition.
    """
    value = value.as_signed() if not value.shape().signed else value
    if shift <= 0:
        floor, up = value << -shift, Const(0, 1)
    else:
        if shift >= len(value):  # sign-extended so that the floor keeps a bit and the guard is the sign
            value = Cat(value, value[-1].replicate(shift + 1 - len(value))).as_signed()
        floor = (value >> shift).as_signed()
        sticky = value[: shift - 1].any() if shift > 1 else Const(0, 1)
        up = round_up(rounding, value[shift - 1], sticky, floor[0], value[-1])
    return _saturate(floor, out, up)


def _saturate(floor, out, up):
    """``floor + up`` (``up`` one bit) saturated to ``out``, from the bits of the signed ``floor``."""
    width = out.width
    # floor sign-extended to at least width + 2 bits, so every slice below has bits in it
    bits = Cat(floor, floor[-1].replicate(max(0, width + 2 - len(floor))))
    sign = bits[-1]
    if out.signed:
        high = bits[width - 1 :]  # the sign of a value in range and every bit above it
        above = ~sign & high.any()  # floor > max
        below = sign & ~high.all()  # floor < min
        at_max = ~high.any() & bits[: width - 1].all()
        inside = (bits[:width] + up)[:width].as_signed()
    else:
        high = bits[width:]
        above = ~sign & high.any()
        below = sign
        at_max = ~high.any() & bits[:width].all()
        inside = (bits[:width] + up)[:width]
    # floor + up above the range: the floor above it, or at its top with an increment; below the range: the floor
    # below it (floor == min - 1 with an increment is min, which saturating also gives)
    return Mux(above | (at_max & up), out.max, Mux(below, out.min, inside))


class StreamPipeline:
    """Lock-step pipeline control for ``stages`` register stages between a stream input and output.

    Every stage advances together when the output can take a value (``advance = ~out_valid | out_ready``),
    so a stall freezes the pipeline and nothing is dropped or duplicated; throughput is one beat per cycle
    without backpressure, latency ``stages`` cycles.
    """

    def __init__(self, stages: int, name: str = "pipe"):
        self.stages = stages
        self.valid = [Signal(name=f"{name}_valid{index}") for index in range(stages)]
        self.advance = Signal(name=f"{name}_advance")

    def elaborate(self, m: Module, input_stream, output_stream) -> None:
        m.d.comb += [
            self.advance.eq(~self.valid[-1] | output_stream.ready),
            input_stream.ready.eq(self.advance),
            output_stream.valid.eq(self.valid[-1]),
        ]
        with m.If(self.advance):
            m.d.sync += self.valid[0].eq(input_stream.valid)
            for before, after in zip(self.valid, self.valid[1:]):
                m.d.sync += after.eq(before)


class CoefficientStore:
    """Per-lane coefficient memories (depth ``sets``) with one write stream and one synchronous read.

    Elaborated into the owning unit: lane ``i``'s coefficients live in their own ``lib.memory.Memory``
    (LUT RAM or block RAM on an FPGA). ``read(m, set_index, enable)`` returns, per lane, a view of the
    coefficients of ``set_index`` valid one cycle after ``enable``.
    """

    def __init__(self, *, lanes: int, sets: int, layout):
        self.lanes = lanes
        self.sets = sets
        self.layout = layout

    def elaborate(self, m: Module, write_stream, set_index, enable) -> list:
        from amaranth.lib.memory import Memory

        m.d.comb += write_stream.ready.eq(1)
        views = []
        for lane in range(self.lanes):
            memory = Memory(shape=self.layout, depth=max(self.sets, 2), init=[])
            m.submodules[f"coefficients{lane}"] = memory
            write_port = memory.write_port()
            read_port = memory.read_port(domain="sync")
            m.d.comb += [
                write_port.addr.eq(write_stream.payload.set),
                write_port.data.eq(write_stream.payload.value),
                write_port.en.eq(write_stream.valid & (write_stream.payload.lane == lane)),
                read_port.addr.eq(set_index),
                read_port.en.eq(enable),
            ]
            views.append(read_port.data)  # a View of ``layout``
        return views


def coefficient_pipeline(m: Module, unit, stages: int, name: str) -> tuple[StreamPipeline, list]:
    """A :class:`StreamPipeline` from ``unit.input`` to ``unit.output`` plus ``unit``'s coefficient store.

    ``unit`` has ``lanes``, ``sets``, ``coefficient_layout`` and the ports ``coefficients``, ``input``
    (with a ``set`` field) and ``output``. Returns the pipeline and, per lane, the coefficients of the
    input beat's set, valid in the first stage (read when the pipeline advances).
    """
    pipeline = StreamPipeline(stages, name)
    pipeline.elaborate(m, unit.input, unit.output)
    store = CoefficientStore(lanes=unit.lanes, sets=unit.sets, layout=unit.coefficient_layout)
    coefficients = store.elaborate(m, unit.coefficients, unit.input.payload.set, pipeline.advance)
    return pipeline, coefficients


class AccumulatorStore:
    """Per-(set, lane) accumulators in memory, with a read-modify-write pipeline, O(1) clear and a read-out.

    The accumulate/clear/read-out behaviour of the statistics and backward units (``reduction_ports``):
    lane ``i``'s accumulators (a ``layout`` struct of integer fields per set) live in their own
    ``lib.memory.Memory`` of depth ``sets`` with one write port and two synchronous read ports (one for the
    read-modify-write, one for the read-out), so they map to LUT RAM or block RAM instead of registers.

    * Accumulate, one beat per cycle on any sequence of sets: in the cycle ``count`` is high the increments
      are registered and the beat's set is read; the next cycle adds them to the old value and writes the
      sum back. The update read port is transparent to the write port: a read in the cycle the previous
      beat's sum is written to the same set returns that sum (forwarding; on an FPGA, Yosys builds the
      bypass -- the write data registered, an address compare and a mux -- around the RAM). So back-to-back
      beats on one set are exact.
    * Clear: a ``live`` bit per set (``sets`` flip-flops) says whether the set has been written since the
      last clear; ``clear`` zeroes all of them at the next edge and a set that is not live reads as 0, so a
      clear takes one cycle whatever ``sets`` is (the sums in memory are left stale, never read).
    * Read-out: the read-out port is transparent to the write port too, so a request sees the write of its
      own cycle, i.e. every beat counted before the request cycle: the timing of a register file, exactly.
    """

    def __init__(self, *, lanes: int, sets: int, layout: data.StructLayout, name: str = "acc"):
        self.lanes = lanes
        self.sets = sets
        self.layout = layout
        self.name = name

    def elaborate(self, m: Module, *, count, set_index, increments, clear, read_stream, sums_stream) -> list:
        """Accumulate ``increments[lane][field]`` (values valid in the cycle ``count`` is high) into set
        ``set_index``; drive ``read_stream.ready``, ``sums_stream.valid`` and return, per lane, a value of
        ``layout`` holding the requested set's sums while ``sums_stream.valid`` (the caller drives the
        payload from it)."""
        from amaranth.lib.memory import Memory

        name, layout, fields = self.name, self.layout, list(self.layout.members)
        depth = max(self.sets, 2)
        live = Signal(depth, name=f"{name}_live")
        pending_valid = Signal(name=f"{name}_pending_valid")  # a beat whose sum is formed and written now
        pending_set = Signal(index_shape(self.sets), name=f"{name}_pending_set")
        read_live = Signal(name=f"{name}_read_live")
        request = read_stream.valid & read_stream.ready
        m.d.sync += pending_set.eq(set_index)
        # If/Else rather than an expression: in a 4-state simulator an undriven (X) handshake is "no beat".
        with m.If(count & ~clear):
            m.d.sync += pending_valid.eq(1)
        with m.Else():
            m.d.sync += pending_valid.eq(0)
        with m.If(clear):
            m.d.sync += live.eq(0)
        with m.Elif(pending_valid):
            m.d.sync += live.bit_select(pending_set, 1).eq(1)
        old_live = live.bit_select(pending_set, 1)

        views = []
        for lane in range(self.lanes):
            memory = Memory(shape=layout, depth=depth, init=[])
            m.submodules[f"{name}{lane}"] = memory
            write_port = memory.write_port()
            update_port = memory.read_port(domain="sync", transparent_for=(write_port,))
            readout_port = memory.read_port(domain="sync", transparent_for=(write_port,))
            increment = Signal(layout, name=f"{name}_increment{lane}")
            for field in fields:
                m.d.sync += increment[field].eq(increments[lane][field])
            m.d.comb += [
                update_port.addr.eq(set_index),  # always enabled: read every cycle, used when a beat counts
                write_port.addr.eq(pending_set),
                write_port.en.eq(pending_valid),
            ]
            for field in fields:
                m.d.comb += write_port.data[field].eq(Mux(old_live, update_port.data[field], 0) + increment[field])
            m.d.comb += [readout_port.addr.eq(read_stream.payload), readout_port.en.eq(request)]
            response = Signal(layout, name=f"{name}_response{lane}")
            for field in fields:
                m.d.comb += response[field].eq(Mux(read_live, readout_port.data[field], 0))
            views.append(response)

        m.d.comb += read_stream.ready.eq(~sums_stream.valid | sums_stream.ready)
        with m.If(request):
            # live as of the end of this cycle's write (a clear in this cycle acts after the read)
            written_now = pending_valid & (pending_set == read_stream.payload)
            m.d.sync += [sums_stream.valid.eq(1), read_live.eq(live.bit_select(read_stream.payload, 1) | written_now)]
        with m.Elif(sums_stream.ready):
            m.d.sync += sums_stream.valid.eq(0)
        return views
