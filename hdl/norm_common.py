"""Shared pieces of the BN/GN datapath units (``hdl/norm_*.py``): parameter checks, the requantizer, and
the two-stage stream pipeline they all use.

The arithmetic is :class:`golden.numerics.NormArithmetic`; :func:`requantize_value` is the gateware form
of :func:`golden.numerics.requantize` (same rounding modes, same saturation) and is checked bit for bit
against it by the norm testbenches.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from golden.numerics import NormArithmetic, check_int

__all__ = [
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
        raise TypeError(f"arithmetic must be a golden.numerics.NormArithmetic, not {arithmetic!r}")
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
    """``value / 2**shift`` rounded as :func:`golden.numerics.requantize` does, saturated to ``out``.

    ``value`` is a signed Amaranth value; ``out`` an :class:`golden.numerics.IntFormat`. Combinational.
    """
    value = value.as_signed() if not value.shape().signed else value
    if shift <= 0:
        scaled = value << -shift
    else:
        floor = value >> shift
        remainder = value.as_unsigned()[:shift]
        half = 1 << (shift - 1)
        if rounding == "floor":
            up = Const(0, 1)
        elif rounding == "half_up":
            up = remainder >= half
        elif rounding == "half_even":
            up = (remainder > half) | ((remainder == half) & floor[0])
        elif rounding == "half_away_from_zero":
            up = (remainder > half) | ((remainder == half) & ~value[-1])
        else:
            raise ValueError(f"unknown rounding {rounding!r}")
        scaled = floor + up
    return Mux(scaled > out.max, out.max, Mux(scaled < out.min, out.min, scaled))


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
