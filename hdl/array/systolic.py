"""Systolic-array generator: output-stationary and weight-stationary (``docs/hardware.md``).

The array is ``rows x cols`` :class:`wavecore.hdl.array.pe.ProcessingElement` cells. The user-facing ports are plain
row/column vectors as ``lib.stream`` interfaces; the skew (row ``p`` delayed ``p`` cycles, column ``j``
delayed ``j`` cycles) and the deskew of the results are inside. Two overlaps make it beat SCALE-Sim's
cycle counts (SCALE-Sim 3.0.0, GEMM mode, models neither; ``docs/benchmarks.md``, "Systolic array"):

* output-stationary: when the last ``k`` of a tile reaches a PE, its sum goes into a *drain register*
  (``result``), and the accumulator starts the next tile at once; the drain registers shift south and
  leave at the bottom edge one row per cycle while the next tile computes;
* weight-stationary: every PE has an active and a shadow weight; the next weight matrix preloads into the
  shadows while the current one computes, and a ``switch`` tag travelling with the first ``a`` beat of the
  next pass copies shadow to active in each PE exactly when that beat arrives.

Everything except the weight preload is clock-enabled by one global ``advance`` signal, which is low only
when a result is ready to leave and the two-entry output buffer is full. ``advance`` is a register loaded
with that condition's next-cycle value (computed from the next values of the buffer count and the emit
flag), so the stall reaches the array straight from a flip-flop, with no logic level in between.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import MacArithmetic
from wavecore.hdl.array.chain import Chain
from wavecore.hdl.array.multiplier import RegisteredMultiplier
from wavecore.hdl.array.pe import (
    DATAFLOWS,
    ProcessingElement,
    accumulator_shape,
    check_arithmetic,
    check_dataflow,
    operand_shape,
)
from wavecore.hdl.array.skew import skew_cell
from wavecore.hdl.hierarchy import add_cells

__all__ = ["DATAFLOWS", "MAX_DIMENSION", "SystolicArray"]

MAX_DIMENSION = 256

_ARITHMETIC_FIELDS = ("in_width", "acc_width", "signed", "overflow")
_ARITHMETIC_DEFAULTS = MacArithmetic()


def _check_dimension(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value}")
    if value > MAX_DIMENSION:
        raise ValueError(f"{name} must be at most {MAX_DIMENSION}, not {value}")
    return value


class SystolicArray(wiring.Component):
    """A ``rows x cols`` systolic array of multiply-accumulate cells with stream ports.

    Output-stationary (``dataflow="output_stationary"``) computes a tile
    ``C[rows x cols] = A[rows x K] @ B[K x cols]`` for any ``K >= 1``: beat ``k`` carries column ``k`` of
    ``A`` on ``a`` and row ``k`` of ``B`` on ``b``; ``a.payload.last`` marks ``k = K - 1``. The tile's
    ``rows`` result rows then leave on ``c`` in order ``0 .. rows-1`` while the next tile's beats enter.

    Weight-stationary (``dataflow="weight_stationary"``) computes ``C[M x cols] = P + A[M x rows] @ W``
    with ``W[rows x cols]`` preloaded through ``w``: beat ``m`` carries row ``m`` of ``A`` on ``a`` and of
    the partial sum ``P`` on ``psum``, and row ``m`` of ``C`` leaves on ``c``. ``a.payload.switch`` on the
    first beat of a pass makes that beat and every later one use the most recently preloaded ``W``.
    ``W`` preloads as ``rows`` beats of its rows (``transpose = 0``) or, for ``W = V.T``, as ``cols`` beats
    of the rows of ``V`` (``transpose = 1``; backward-data needs the transposed weights).

    Both dataflows add products in ascending ``k`` with the overflow rule after every addition, starting
    from 0 (OS) or from ``P`` (WS), which is exactly :meth:`wavecore.golden.numerics.MacArithmetic.matmul`.

    Parameters
    ----------
    rows, cols : int
        Array size, 1 to 256 each.
    in_width, acc_width, signed, overflow :
        The arithmetic (see :class:`wavecore.golden.numerics.MacArithmetic`; defaults 8, 32, True, ``"wrap"``).
        Give these or ``arithmetic``, not both.
    dataflow : str
        ``"output_stationary"`` (default) or ``"weight_stationary"``.
    arithmetic : wavecore.golden.numerics.MacArithmetic, optional
        The arithmetic as one object (the golden model's).
    multiplier : callable
        Multiplier factory for every PE (:mod:`wavecore.hdl.array.multiplier`); default registered product, latency 1.
    hierarchical : bool
        ``False`` (default): the *flat* form, every PE, row (:class:`~wavecore.hdl.array.chain.Chain` of PEs), half
        chain and skew register an Amaranth submodule, which amaranth.sim simulates and any ``verilog.convert`` writes
        (one Verilog module per instance). ``True``: each of those is an instance of a module written once by
        :func:`wavecore.hdl.hierarchy.convert` (``O(log rows + log cols)`` modules whatever the size); same behaviour
        cycle for cycle (``tests/hdl/test_hierarchy.py`` proves it with Yosys). ``wavecore generate`` writes this form
        unless given ``--flat``.

    Attributes
    ----------
    a : In(stream.Signature(StructLayout))
        Output-stationary: ``{"data": ArrayLayout(operand, rows), "last": 1}``, a column of ``A``.
        Weight-stationary: ``{"data": ArrayLayout(operand, rows), "switch": 1}``, a row of ``A``.
        Accepted together with ``b`` (OS) or ``psum`` (WS): ``a.ready`` depends on the partner's
        ``valid`` and the partner's ``ready`` on ``a.valid``, so a transfer happens on both or on neither.
        The flag (``last``/``switch``) is the top bit of the packed payload. OS holds back a ``last`` beat until
        ``rows + cols - 1`` cycles after the previous tile's ``last`` (so tiles with ``K`` below that
        take that long); WS holds back a ``switch`` beat until a complete ``W`` has been preloaded.
    b : In(stream.Signature(ArrayLayout(operand, cols)))
        *Output-stationary only.* A row of ``B``.
    psum : In(stream.Signature(ArrayLayout(accumulator, cols)))
        *Weight-stationary only.* The row of the partial sum ``P`` the products are added to.
    w : In(stream.Signature(StructLayout))
        *Weight-stationary only.* ``{"data": ArrayLayout(operand, max(rows, cols)), "transpose": 1}``.
        Element ``j < cols`` of beat ``r`` is ``W[r, j]`` (``transpose = 0``, ``rows`` beats), or element
        ``i < rows`` of beat ``r`` is ``W[i, r]`` (``transpose = 1``, ``cols`` beats). All beats of one
        matrix carry the same ``transpose``. ``w.ready`` is low while a loaded ``W`` waits for its
        ``switch``, and after a ``switch`` beat is accepted the next ``w`` beat is accepted no earlier than
        ``rows + cols - 1`` cycles later (:attr:`weight_reload_delay`). A ``switch`` beat waits (``a.ready``
        and ``psum.ready`` low) until a complete new ``W`` is preloaded.
    c : Out(stream.Signature(ArrayLayout(accumulator, cols)))
        A row of ``C``. Obeys backpressure: while ``c.ready`` is low, results wait in a two-entry buffer
        and then the whole array (not the weight preload) stalls; no value is lost or repeated.

    Latency and throughput (cycles without stalls; ``L`` = multiplier latency, 1 by default):

    * OS: the first row of a tile is on ``c`` (``valid``) ``rows + cols + L + 1`` cycles after the cycle
      its ``last`` beat was accepted; the ``rows`` rows follow on consecutive cycles. A tile takes
      ``max(K, rows + cols - 1)`` cycles of input; the drain of one tile overlaps the next.
    * WS: row ``m`` of ``C`` is on ``c`` ``rows + cols + L + 1`` cycles after beat ``m`` was accepted; one
      row per cycle. A pass with ``M`` rows takes ``max(M, 2 * rows + cols - 1)`` cycles
      (``max(M, rows + 2 * cols - 1)`` with a transposed preload), the weight preload of the next pass
      overlapping the current one.

    Reset: ``rst`` of the ``sync`` domain, synchronous and active high.
    """

    def __init__(self, *, rows, cols, in_width=None, acc_width=None, signed=None, overflow=None,
                 dataflow="output_stationary", arithmetic=None, multiplier=RegisteredMultiplier,
                 hierarchical=False):
        self.rows = _check_dimension("rows", rows)
        self.cols = _check_dimension("cols", cols)
        values = (in_width, acc_width, signed, overflow)
        given = {name: value for name, value in zip(_ARITHMETIC_FIELDS, values) if value is not None}
        if arithmetic is not None:
            if given:
                raise ValueError(f"give either arithmetic or {', '.join(given)}, not both")
            self.arithmetic = check_arithmetic(arithmetic)
        else:
            self.arithmetic = MacArithmetic(**{
                name: given.get(name, getattr(_ARITHMETIC_DEFAULTS, name)) for name in _ARITHMETIC_FIELDS})
        self.dataflow = check_dataflow(dataflow)
        if not callable(multiplier):
            raise TypeError("multiplier must be a callable returning a multiplier component, "
                            f"not {multiplier!r}")
        self._multiplier = multiplier
        self.latency = self._multiplier_latency(multiplier, self.arithmetic)
        if not isinstance(hierarchical, bool):
            raise TypeError(f"hierarchical must be a bool, not {hierarchical!r}")
        self.hierarchical = hierarchical

        operand = operand_shape(self.arithmetic)
        accumulator = accumulator_shape(self.arithmetic)
        self.c_layout = data.ArrayLayout(accumulator, self.cols)
        if self.dataflow == "output_stationary":
            self.a_layout = data.StructLayout({"data": data.ArrayLayout(operand, self.rows), "last": 1})
            self.b_layout = data.ArrayLayout(operand, self.cols)
            members = {"a": In(stream.Signature(self.a_layout)), "b": In(stream.Signature(self.b_layout))}
        else:
            self.a_layout = data.StructLayout({"data": data.ArrayLayout(operand, self.rows), "switch": 1})
            self.psum_layout = data.ArrayLayout(accumulator, self.cols)
            self.w_layout = data.StructLayout({
                "data": data.ArrayLayout(operand, max(self.rows, self.cols)), "transpose": 1})
            members = {
                "a": In(stream.Signature(self.a_layout)),
                "psum": In(stream.Signature(self.psum_layout)),
                "w": In(stream.Signature(self.w_layout)),
            }
        members["c"] = Out(stream.Signature(self.c_layout))
        super().__init__(members)

    @staticmethod
    def _multiplier_latency(factory, arithmetic) -> int:
        """The factory's ``latency`` attribute, or the one of a multiplier it builds (the array's skews and
        documented latencies depend on it, so it must be known before elaboration)."""
        latency = getattr(factory, "latency", None)
        if latency is None:
            width = arithmetic.in_width
            probe = factory(operand_shape=operand_shape(arithmetic),
                            product_shape=signed(2 * width) if arithmetic.signed else unsigned(2 * width))
            probe._MustUse__silence = True  # built only to read its latency
            latency = getattr(probe, "latency", None)
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise ValueError(f"the multiplier's latency must be a positive integer, not {latency!r}")
        return latency

    # Read by the registry, the CLI's JSON file and the GEMM driver, so they describe the same array.
    @property
    def parameters(self) -> dict:
        return {
            "rows": self.rows, "cols": self.cols,
            "in_width": self.arithmetic.in_width, "acc_width": self.arithmetic.acc_width,
            "signed": self.arithmetic.signed, "overflow": self.arithmetic.overflow,
            "dataflow": self.dataflow,
        }

    @property
    def result_latency(self) -> int:
        """Cycles from accepting a tile's ``last`` (OS) or a row (WS) to its first result on ``c``."""
        return self.rows + self.cols + self.latency + 1

    @property
    def tile_interval(self) -> int:
        """OS: minimum cycles between two ``last`` beats. WS: minimum cycles between two ``switch`` beats
        when the weights are preloaded as rows (``transpose = 0``)."""
        if self.dataflow == "output_stationary":
            return self.rows + self.cols - 1
        return self.weight_reload_delay + self.rows

    @property
    def weight_reload_delay(self) -> int:
        """WS: cycles from accepting a ``switch`` beat to accepting the next ``w`` beat (``w.ready`` is low
        in between: the ``switch`` tag must have reached the last PE before its shadow is overwritten)."""
        return self.rows + self.cols - 1

    @property
    def timing(self) -> dict:
        """Latency and throughput figures (cycles, no stalls), as documented above and in the JSON file."""
        figures = {"multiplier_latency": self.latency, "result_latency": self.result_latency}
        if self.dataflow == "output_stationary":
            figures["min_cycles_between_last_beats"] = self.tile_interval
        else:
            figures["min_cycles_between_switch_beats"] = {
                "rows_preload": self.tile_interval,                               # 2*rows + cols - 1
                "transposed_preload": self.weight_reload_delay + self.cols,       # rows + 2*cols - 1
            }
            figures["cycles_from_switch_to_next_w_beat"] = self.weight_reload_delay
        return figures

    def elaborate(self, platform):
        m = Module()

        # --- submodules: a chain of rows (physical row 0 at the top), each a chain of PEs -----------------
        grid = add_cells(m, ["grid"], self._grid, kind="grid", key=self._grid_key,
                         hierarchical=self.hierarchical)[0]

        # --- output buffer and stall -------------------------------------------------------------------
        # `advance` is itself a register, loaded with the value `~(emit & buffer_full)` will have in the
        # next cycle (both are registers, so their next values are known a cycle early): the global clock
        # enable leaves a flip-flop instead of a LUT, which takes the logic level off the array's widest
        # net. It is the same value cycle for cycle, so stalls and latencies are unchanged.
        advance = Signal(init=1)
        emit = Signal()                 # a result row is ready to leave the array this cycle
        emit_next = Signal()            # the value `emit` takes at the coming edge
        emit_row = Signal(self.c_layout)
        full_next = self._output_buffer(m, advance, emit, emit_row)
        m.d.sync += advance.eq(~(emit_next & full_next))
        m.d.comb += grid.advance.eq(advance)

        if self.dataflow == "output_stationary":
            self._elaborate_output_stationary(m, grid, advance, emit, emit_next, emit_row)
        else:
            self._elaborate_weight_stationary(m, grid, advance, emit, emit_next, emit_row)
        return m

    def _output_buffer(self, m, advance, emit, emit_row):
        """A two-entry FIFO in registers between the array and ``c``; returns whether it will be full after
        the coming edge."""
        head = Signal(self.c_layout, reset_less=True)
        tail = Signal(self.c_layout, reset_less=True)
        count = Signal(range(3))
        count_next = Signal(range(3))
        push = Signal()
        pop = Signal()
        m.d.comb += [
            push.eq(emit & advance),
            pop.eq(self.c.valid & self.c.ready),
            self.c.valid.eq(count != 0),
            self.c.payload.eq(head),
        ]
        # `head` loads either the new row or `tail` (one 2:1 mux per bit, the clock enable does the rest);
        # `tail` only ever loads the new row. A push never meets a full buffer (the array stalls instead).
        with m.If((push & ((count == 0) | ((count == 1) & pop))) | (pop & (count == 2))):
            m.d.sync += head.eq(Mux(count == 2, tail, emit_row))
        with m.If(push & (count == 1) & ~pop):
            m.d.sync += tail.eq(emit_row)
        m.d.comb += count_next.eq(count)
        with m.If(push & ~pop):
            m.d.comb += count_next.eq(count + 1)
        with m.Elif(pop & ~push):
            m.d.comb += count_next.eq(count - 1)
        m.d.sync += count.eq(count_next)
        return count_next == 2

    @property
    def _grid_key(self):
        return (self.rows, self.cols, self.arithmetic, self.dataflow, self._multiplier)

    def _grid(self) -> Chain:
        """The PE grid: a :class:`wavecore.hdl.array.chain.Chain` of ``rows`` rows, each a chain of ``cols`` PEs.

        In a row, ``a`` and its tags hop east and the shadow weight west; a row's north-south ports are
        lanes (element ``j`` is PE ``j``'s). In the grid, those lanes chain south (``b``, the drain, partial
        sums) or north (shadow weights), and each row's west-edge inputs are lanes.
        """
        arithmetic, dataflow, multiplier, hierarchical = (self.arithmetic, self.dataflow, self._multiplier,
                                                          self.hierarchical)
        if dataflow == "output_stationary":
            row_roles = {"forward": [("a_in", "a_out"), ("a_valid_in", "a_valid_out"), ("a_last_in", "a_last_out")],
                         "lanes": ["b_in", "b_out", "result_in", "result"],
                         "broadcast": ["advance", "drain_shift"], "last": ["capture"]}
            grid_roles = {"forward": [("b_in", "b_out"), ("result_in", "result")],
                          "lanes": ["a_in", "a_valid_in", "a_last_in", "drain_shift"],
                          "broadcast": ["advance"], "last": ["capture"]}
        else:
            row_roles = {"forward": [("a_in", "a_out"), ("a_valid_in", "a_valid_out"),
                                     ("a_switch_in", "a_switch_out")],
                         "backward": [("weight_from_right", "weight_shadow")],
                         "lanes": ["psum_in", "psum_out", "weight_from_below", "weight_shadow"],
                         "broadcast": ["advance", "weight_load", "weight_transpose"],
                         "last": ["psum_valid_out", "psum_valid_next"]}
            grid_roles = {"forward": [("psum_in", "psum_out")],
                          "backward": [("weight_from_below", "weight_shadow")],
                          "lanes": ["a_in", "a_valid_in", "a_switch_in", "weight_from_right"],
                          "broadcast": ["advance", "weight_load", "weight_transpose"],
                          "last": ["psum_valid_out", "psum_valid_next"]}
        pe_key = (arithmetic, dataflow, multiplier)

        def pe():
            return ProcessingElement(arithmetic=arithmetic, dataflow=dataflow, multiplier=multiplier)

        def row():
            return Chain(cell=pe, count=self.cols, kind="pe", key=pe_key, hierarchical=hierarchical, **row_roles)

        return Chain(cell=row, count=self.rows, kind="row", key=(pe_key, self.cols), hierarchical=hierarchical,
                     **grid_roles)

    def _skew(self, m, advance, values, *, name: str, offset: int = 0, reverse: bool = False,
              reset_less: bool = True):
        """``values[i]`` (all of one width) delayed by ``offset + i`` enabled edges (``offset + n - 1 - i``
        with ``reverse``), as one :class:`wavecore.hdl.array.skew.Skew`; returns the delayed values as one vector."""
        width = len(Value.cast(values[0]))
        ordered = list(reversed(values)) if reverse else list(values)
        skew = skew_cell(m, name, lanes=len(values), width=width, offset=offset, reset_less=reset_less,
                         hierarchical=self.hierarchical)
        m.d.comb += [skew.advance.eq(advance), skew.data_in.eq(Cat(ordered))]
        if not reverse:
            return skew.data_out
        return Cat(skew.data_out.word_select(lane, width) for lane in reversed(range(len(values))))

    def _elaborate_output_stationary(self, m, grid, advance, emit, emit_next, emit_row):
        rows, cols = self.rows, self.cols
        a, b = self.a, self.b

        # --- input: join a and b; hold back a `last` that would come too soon after the previous one ---
        # A tile's drain (rows cycles, starting after its last PE captured) must be out of physical row p
        # before the next tile captures there; that holds when `last` beats are >= rows + cols - 1 apart.
        interval = self.tile_interval
        since_last = Signal(range(interval + 1), init=interval)
        last_allowed = ~a.payload.last | (since_last == interval)
        accept = Signal()
        m.d.comb += [
            a.ready.eq(b.valid & advance & last_allowed),
            b.ready.eq(a.valid & advance & last_allowed),
            accept.eq(a.valid & b.valid & advance & last_allowed),
        ]
        with m.If(advance):
            with m.If(accept & a.payload.last):
                m.d.sync += since_last.eq(1)
            with m.Elif(since_last != interval):
                m.d.sync += since_last.eq(since_last + 1)

        # --- skew: row i of A enters physical row rows-1-i (so the bottom row, which drains first, holds
        # C row 0), delayed by its physical row number; column j of B delayed by j -------------------------
        # (In physical-row order, A's rows are reversed, so physical row p is delayed p cycles.)
        tags = self._skew(m, advance, [Cat(accept, a.payload.last)] * rows, name="a_tag_skew", reset_less=False)
        m.d.comb += [
            grid.a_in.eq(self._skew(m, advance, [a.payload.data[i] for i in reversed(range(rows))],
                                    name="a_skew")),
            grid.a_valid_in.eq(Cat(tags.word_select(p, 2)[0] for p in range(rows))),
            grid.a_last_in.eq(Cat(tags.word_select(p, 2)[1] for p in range(rows))),
            grid.b_in.eq(self._skew(m, advance, [b.payload[j] for j in range(cols)], name="b_skew")),
        ]
        # The datapath (a east, b and the drain chain south) is inside the grid.

        # --- control: the drain sequencer -------------------------------------------------------------
        # The bottom-right PE captures last; from the next cycle on, the bottom row leaves once per cycle
        # for `rows` cycles. At drain beat s, physical row p loads from row p-1 only if p >= s+1 (the rows
        # above hold values already passed down), which frees row p for the next tile's capture early.
        draining = Signal()
        draining_next = Signal()
        beat = Signal(range(max(rows, 2)))  # never zero bits wide (Verilog has no empty vectors)
        shift_mask = Signal(rows)  # bit p: row p loads from the row above at the coming drain beat
        m.d.comb += draining_next.eq(draining)
        with m.If(advance):
            with m.If(draining):
                m.d.sync += [beat.eq(beat + 1), shift_mask.eq(shift_mask << 1)]
                with m.If(beat == rows - 1):
                    m.d.comb += draining_next.eq(0)
            with m.If(grid.capture):
                m.d.comb += draining_next.eq(1)
                m.d.sync += [beat.eq(0), shift_mask.eq(Const(((1 << rows) - 1) & ~1, rows))]
        m.d.sync += draining.eq(draining_next)
        m.d.comb += [
            grid.drain_shift.eq(shift_mask),
            emit.eq(draining),
            emit_next.eq(draining_next),
            emit_row.eq(grid.result),
        ]

    def _elaborate_weight_stationary(self, m, grid, advance, emit, emit_next, emit_row):
        rows, cols = self.rows, self.cols
        a, psum, w = self.a, self.psum, self.w

        # --- weight preload control --------------------------------------------------------------------
        shadow_full = Signal()
        loaded = Signal(range(max(rows, cols, 2)))
        in_flight = Signal(range(rows + cols))  # cycles until the last PE has copied its shadow
        load = Signal()
        m.d.comb += [
            w.ready.eq(~shadow_full & (in_flight == 0)),
            load.eq(w.valid & w.ready),
        ]
        beats = Signal(range(max(rows, cols) + 1))
        m.d.comb += beats.eq(Mux(w.payload.transpose, cols, rows))
        with m.If(load):
            with m.If(loaded == beats - 1):
                m.d.sync += [loaded.eq(0), shadow_full.eq(1)]
            with m.Else():
                m.d.sync += loaded.eq(loaded + 1)

        # --- input: join a and psum; a `switch` waits for a complete shadow ------------------------------
        switch_allowed = ~a.payload.switch | shadow_full
        accept = Signal()
        m.d.comb += [
            a.ready.eq(psum.valid & advance & switch_allowed),
            psum.ready.eq(a.valid & advance & switch_allowed),
            accept.eq(a.valid & psum.valid & advance & switch_allowed),
        ]
        with m.If(advance):
            with m.If(accept & a.payload.switch):
                m.d.sync += [shadow_full.eq(0), in_flight.eq(self.weight_reload_delay - 1)]
            with m.Elif(in_flight != 0):
                m.d.sync += in_flight.eq(in_flight - 1)

        # --- skew: A row p delayed p cycles; psum column j delayed j + latency + 1 (it meets the product
        # of row 0, which is latency + 1 registers behind a_out) -------------------------------------------
        tags = self._skew(m, advance, [Cat(accept, a.payload.switch)] * rows, name="a_tag_skew",
                          reset_less=False)
        m.d.comb += [
            grid.a_in.eq(self._skew(m, advance, [a.payload.data[p] for p in range(rows)], name="a_skew")),
            grid.a_valid_in.eq(Cat(tags.word_select(p, 2)[0] for p in range(rows))),
            grid.a_switch_in.eq(Cat(tags.word_select(p, 2)[1] for p in range(rows))),
            grid.psum_in.eq(self._skew(m, advance, [psum.payload[j] for j in range(cols)], name="psum_skew",
                                       offset=self.latency + 1)),
        ]

        # --- datapath: a east, psum south, shadow weights north (rows) or west (transposed), all inside the
        # grid; the preload stream enters at the bottom row (rows) and the east column (transposed) ----------
        m.d.comb += [
            grid.weight_load.eq(load),
            grid.weight_transpose.eq(w.payload.transpose),
            grid.weight_from_below.eq(Cat(w.payload.data[j] for j in range(cols))),
            grid.weight_from_right.eq(Cat(w.payload.data[p] for p in range(rows))),
        ]

        # --- output deskew: column j is cols-1-j cycles early -------------------------------------------
        m.d.comb += [
            emit.eq(grid.psum_valid_out),
            emit_next.eq(grid.psum_valid_next),
            emit_row.eq(self._skew(m, advance, [grid.psum_out[j] for j in range(cols)], name="c_skew",
                                   reverse=True)),
        ]
