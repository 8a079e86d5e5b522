"""Host-side tiled-GEMM driver for the systolic array, and the reference it is checked against.

:class:`GemmSchedule` turns an arbitrary ``M x K x N`` integer GEMM ``C = A @ B`` into the beats the array's
streams take (``hdl/array/systolic.py`` documents them) and puts the result rows back together; it has no
simulator dependency, so a board driver can reuse it. :class:`GemmHarness` runs schedules on a cocotb
design through :mod:`wavecore.verif.stream`.

Tiling
------
* Output-stationary: ``C`` is cut into ``rows x cols`` tiles (row tile outer, column tile inner); each tile
  streams the whole ``K`` (beat ``k``: column ``k`` of the ``A`` row block, row ``k`` of the ``B`` column
  block, ``last`` on ``k = K - 1``) and returns ``rows`` result rows. Edges are zero-padded.
* Weight-stationary: ``B`` is cut into ``rows x cols`` weight tiles, ``K`` tile outer and ``N`` tile inner
  (so a pass's partial sums come from the pass ``N / cols`` passes earlier, long finished); each pass
  preloads its weight tile (overlapping the previous pass), streams all ``M`` rows of ``A``'s ``K`` block
  with ``switch`` on the first, and adds the previous ``K`` block's result rows through ``psum``.
  ``weights_transposed=True`` holds ``B`` as ``B.T`` (``N x K``, like a layer's weights in backward-data)
  and preloads through the transposed path.

Why :func:`reference_gemm` is bit-exact for the tiled hardware: both dataflows add the products of one
output in ascending ``k`` with the overflow rule after every addition (OS keeps accumulating over the whole
``K`` inside a tile; WS chains ``K`` tiles through ``psum`` and adds down a column in ascending ``k``), and
the zero padding only adds products equal to 0, which change neither a wrapped nor a saturated sum. That is
exactly :meth:`wavecore.golden.numerics.MacArithmetic.matmul` on the untiled operands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from wavecore.golden.numerics import MacArithmetic
from wavecore.verif.packing import pack, unpack
from wavecore.verif.waits import cycle_limit, stalled, wait_for

__all__ = ["ArraySpec", "GemmHarness", "GemmRun", "GemmSchedule", "numpy_gemm_wrapped", "reference_gemm"]

DATAFLOWS = ("output_stationary", "weight_stationary")


@dataclass(frozen=True)
class ArraySpec:
    """What the host needs to know about an array: its size, arithmetic and dataflow."""

    rows: int
    cols: int
    arithmetic: MacArithmetic
    dataflow: str

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.arithmetic, MacArithmetic):
            raise TypeError(f"arithmetic must be a MacArithmetic, not {self.arithmetic!r}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {self.dataflow!r}")

    @classmethod
    def from_parameters(cls, parameters: Mapping) -> ArraySpec:
        """From the array's parameter dictionary (``SystolicArray.parameters`` or the CLI's JSON file)."""
        arithmetic = MacArithmetic(in_width=parameters["in_width"], acc_width=parameters["acc_width"],
                                   signed=parameters["signed"], overflow=parameters["overflow"])
        return cls(rows=parameters["rows"], cols=parameters["cols"], arithmetic=arithmetic,
                   dataflow=parameters["dataflow"])

    @property
    def weight_width(self) -> int:
        return max(self.rows, self.cols)


def reference_gemm(a, b, arithmetic: MacArithmetic) -> np.ndarray:
    """What the tiled array computes for ``C = A @ B``, bit for bit (see the module docstring)."""
    return arithmetic.matmul(a, b)


def numpy_gemm_wrapped(a, b, acc_width: int, signed: bool) -> np.ndarray:
    """An independent oracle for ``overflow="wrap"``: exact integer product, then reduce modulo
    ``2**acc_width`` (Python integers, so no intermediate can overflow)."""
    exact = np.asarray(a, dtype=object) @ np.asarray(b, dtype=object)
    modulus = 1 << acc_width
    reduced = np.vectorize(lambda value: int(value) % modulus, otypes=[object])(exact)
    if signed:
        reduced = np.vectorize(lambda value: value - modulus if value >= modulus // 2 else value,
                               otypes=[object])(reduced)
    return reduced.astype(np.int64)


@dataclass
class GemmSchedule:
    """The beats of one GEMM on one array, and the reassembly of its result rows.

    Parameters
    ----------
    spec : ArraySpec
    a : array (M x K) of operands
    b : array (K x N) of operands, or (N x K) when ``weights_transposed``
    weights_transposed : bool
        Weight-stationary only: ``b`` is given transposed and preloads through the transposed path.
    """

    spec: ArraySpec
    a: np.ndarray
    b: np.ndarray
    weights_transposed: bool = False
    beats: dict[str, list[int]] = field(init=False)
    output_rows: int = field(init=False)

    def __post_init__(self) -> None:
        operand = self.spec.arithmetic.operand
        self.a = operand.check(self.a, "a")
        self.b = operand.check(self.b, "b")
        if self.weights_transposed and self.spec.dataflow != "weight_stationary":
            raise ValueError("weights_transposed needs the weight_stationary dataflow")
        b = self.b.T if self.weights_transposed else self.b
        if self.a.ndim != 2 or b.ndim != 2 or self.a.shape[1] != b.shape[0] or 0 in self.a.shape + b.shape:
            raise ValueError(f"a must be M x K and b K x N (all >= 1), got {self.a.shape} and {self.b.shape}")
        self.m, self.k = self.a.shape
        self.n = b.shape[1]
        rows, cols = self.spec.rows, self.spec.cols
        if self.spec.dataflow == "output_stationary":
            self.row_tiles, self.col_tiles = math.ceil(self.m / rows), math.ceil(self.n / cols)
            self.beats = self._output_stationary_beats()
            self.output_rows = self.row_tiles * self.col_tiles * rows
        else:
            self.k_tiles, self.col_tiles = math.ceil(self.k / rows), math.ceil(self.n / cols)
            self.beats = self._weight_stationary_beats()
            self.output_rows = self.k_tiles * self.col_tiles * self.m

    @property
    def width(self) -> int:
        return self.spec.arithmetic.in_width

    def _padded(self, matrix: np.ndarray, height: int, width: int) -> np.ndarray:
        padded = np.zeros((height, width), dtype=np.int64)
        padded[:matrix.shape[0], :matrix.shape[1]] = matrix
        return padded

    def _output_stationary_beats(self) -> dict[str, list[int]]:
        rows, cols, width = self.spec.rows, self.spec.cols, self.width
        a = self._padded(self.a, self.row_tiles * rows, self.k)
        b = self._padded(self.b, self.k, self.col_tiles * cols)
        a_beats, b_beats = [], []
        for row_tile in range(self.row_tiles):
            block = a[row_tile * rows:(row_tile + 1) * rows]
            column_words = [pack(block[:, k], width) for k in range(self.k)]
            for col_tile in range(self.col_tiles):
                for k in range(self.k):
                    last = int(k == self.k - 1)
                    a_beats.append(column_words[k] | (last << (rows * width)))
                    b_beats.append(pack(b[k, col_tile * cols:(col_tile + 1) * cols], width))
        return {"a": a_beats, "b": b_beats}

    def _weight_stationary_beats(self) -> dict[str, list[int]]:
        rows, cols, width = self.spec.rows, self.spec.cols, self.width
        weight_lanes = self.spec.weight_width
        a = self._padded(self.a, self.m, self.k_tiles * rows)
        a_beats, w_beats = [], []
        if self.weights_transposed:
            bt = self._padded(self.b, self.col_tiles * cols, self.k_tiles * rows)  # N x K
        else:
            b = self._padded(self.b, self.k_tiles * rows, self.col_tiles * cols)
        for k_tile in range(self.k_tiles):
            row_words = [pack(a[m, k_tile * rows:(k_tile + 1) * rows], width) for m in range(self.m)]
            for col_tile in range(self.col_tiles):
                if self.weights_transposed:
                    # Beat r is row r of V = W.T, i.e. column r of the weight tile; lanes >= rows are unused.
                    tile = bt[col_tile * cols:(col_tile + 1) * cols, k_tile * rows:(k_tile + 1) * rows]
                    for r in range(cols):
                        w_beats.append(pack(tile[r], width) | (1 << (weight_lanes * width)))
                else:
                    tile = b[k_tile * rows:(k_tile + 1) * rows, col_tile * cols:(col_tile + 1) * cols]
                    w_beats.extend(pack(tile[r], width) for r in range(rows))
                for m in range(self.m):
                    a_beats.append(row_words[m] | (int(m == 0) << (rows * width)))
        return {"a": a_beats, "w": w_beats}

    def psum_source(self, index: int) -> int | None:
        """Weight-stationary: which output row feeds ``psum`` beat ``index`` (``None``: zeros)."""
        passes_per_k_tile = self.col_tiles * self.m
        return None if index < passes_per_k_tile else index - passes_per_k_tile

    def psum_beat(self, source_row: np.ndarray | None) -> int:
        if source_row is None:
            return 0
        return pack(source_row, self.spec.arithmetic.acc_width)

    def unpack_output(self, word: int) -> np.ndarray:
        arithmetic = self.spec.arithmetic
        return unpack(word, arithmetic.acc_width, self.spec.cols, arithmetic.signed)

    def assemble(self, output_rows) -> np.ndarray:
        """``C`` (M x N) from the result rows in the order the array sent them."""
        output_rows = [np.asarray(row, dtype=np.int64) for row in output_rows]
        if len(output_rows) != self.output_rows:
            raise ValueError(f"expected {self.output_rows} result rows, got {len(output_rows)}")
        rows, cols = self.spec.rows, self.spec.cols
        if self.spec.dataflow == "output_stationary":
            result = np.zeros((self.row_tiles * rows, self.col_tiles * cols), dtype=np.int64)
            index = 0
            for row_tile in range(self.row_tiles):
                for col_tile in range(self.col_tiles):
                    for r in range(rows):
                        columns = slice(col_tile * cols, (col_tile + 1) * cols)
                        result[row_tile * rows + r, columns] = output_rows[index]
                        index += 1
        else:
            result = np.zeros((self.m, self.col_tiles * cols), dtype=np.int64)
            final = (self.k_tiles - 1) * self.col_tiles * self.m  # the last K tile's passes hold C
            for col_tile in range(self.col_tiles):
                for m in range(self.m):
                    columns = slice(col_tile * cols, (col_tile + 1) * cols)
                    result[m, columns] = output_rows[final + col_tile * self.m + m]
        return result[:self.m, :self.n]


@dataclass
class GemmRun:
    """One GEMM on the array: the result and its cycle count."""

    c: np.ndarray
    first_input_cycle: int
    last_output_cycle: int
    output_transfers: int

    @property
    def cycles(self) -> int:
        """Cycles from the first input beat accepted to the last result row accepted, both included."""
        return self.last_output_cycle - self.first_input_cycle + 1


class GemmHarness:
    """Drives a systolic array in a cocotb simulation; create once per test, then ``await run(a, b)``.

    Parameters
    ----------
    dut : cocotb handle of the array (toplevel with ``clk``/``rst`` and the stream ports)
    spec : ArraySpec
    idle : float
        Probability of an idle cycle before each input beat, on every input stream.
    backpressure : float
        Probability that ``c.ready`` is low in a cycle.
    rng : numpy Generator for the stall patterns.
    ports : how the streams appear on the design: :class:`wavecore.verif.stream.StreamPorts` (the default,
        the array's own ports) or :class:`wavecore.verif.axis.AxisPorts` (its AXI4-Stream wrapper).
    """

    def __init__(self, dut, spec: ArraySpec, *, idle: float = 0.0, backpressure: float = 0.0, rng=None,
                 ports=None):
        from wavecore.verif.stream import StreamPorts

        self.dut = dut
        self.spec = spec
        self.idle = idle
        self.backpressure = backpressure
        self.ports = ports if ports is not None else StreamPorts()
        rng = rng if rng is not None else np.random.default_rng(0)
        self.clock = clock = getattr(dut, self.ports.clock)
        names = ["a", "b"] if spec.dataflow == "output_stationary" else ["a", "psum", "w"]
        self.drivers = {name: self.ports.driver(dut, name, clock, idle_probability=idle, rng=rng)
                        for name in names}
        self.monitors = {name: self.ports.monitor(dut, name, clock) for name in names}
        self.sink = self.ports.sink(dut, "c", clock, backpressure_probability=backpressure, rng=rng)
        # coverage of K (output-stationary: beats per `last` group) and M (weight-stationary: beats per `switch`)
        flag = {"last" if spec.dataflow == "output_stationary" else "switch": spec.rows * spec.arithmetic.in_width}
        for endpoint in (self.drivers["a"], self.monitors["a"], getattr(self.drivers["a"], "monitor", None)):
            if hasattr(endpoint, "cover_flags"):
                endpoint.cover_flags(**flag)

    def cycle_limit(self, schedule: GemmSchedule) -> int:
        """The cycle limit of one GEMM: its longest input stream and its result rows at the stall rates, plus the
        array's latency (rows + cols), through :func:`wavecore.verif.waits.cycle_limit`."""
        longest = max(len(stream_beats) for stream_beats in schedule.beats.values())
        return cycle_limit(stalled(longest + schedule.output_rows, self.idle, self.backpressure),
                           latency=self.spec.rows + self.spec.cols)

    async def run(self, a, b, *, weights_transposed: bool = False,
                  timeout_cycles: int | None = None) -> GemmRun:
        import cocotb

        schedule = GemmSchedule(self.spec, a, b, weights_transposed=weights_transposed)
        input_marks = {name: len(monitor.transfers) for name, monitor in self.monitors.items()}
        output_mark = len(self.sink.transfers)
        self.sink.received.clear()
        for name, beats in schedule.beats.items():
            self.drivers[name].extend(beats)
        feeder = None
        if self.spec.dataflow == "weight_stationary":
            feeder = cocotb.start_soon(self._feed_psum(schedule, output_mark))
        if timeout_cycles is None:
            timeout_cycles = self.cycle_limit(schedule)
        await wait_for(lambda: len(self.sink.transfers) - output_mark >= schedule.output_rows, clock=self.clock,
                       cycles=timeout_cycles, what=f"GEMM of {schedule.output_rows} result rows",
                       progress=lambda: f"{len(self.sink.transfers) - output_mark} rows arrived")
        if feeder is not None:
            await feeder
        transfers = self.sink.transfers[output_mark:]
        self.sink.received.clear()
        c = schedule.assemble([schedule.unpack_output(word) for _, word in transfers])
        first_input = min(monitor.transfers[input_marks[name]][0] for name, monitor in self.monitors.items()
                          if len(monitor.transfers) > input_marks[name])
        return GemmRun(c=c, first_input_cycle=first_input, last_output_cycle=transfers[-1][0],
                       output_transfers=len(transfers))

    async def _feed_psum(self, schedule: GemmSchedule, output_mark: int) -> None:
        """Feed each ``psum`` beat as soon as the result row it depends on has arrived (a real
        accumulator memory has the same dependency)."""
        driver = self.drivers["psum"]
        limit = self.cycle_limit(schedule)
        for index in range(schedule.output_rows):
            source = schedule.psum_source(index)
            row = None
            if source is not None:
                await wait_for(lambda source=source: len(self.sink.transfers) - output_mark > source, clock=self.clock,
                               cycles=limit, what=f"result row {source}, which psum beat {index} adds to")
                row = schedule.unpack_output(self.sink.transfers[output_mark + source][1])
            driver.append(schedule.psum_beat(row))
        await driver.wait_idle(cycles=limit)
