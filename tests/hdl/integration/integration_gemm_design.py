"""Glue for test_integration_gemm.py: output-stationary systolic array -> ResultWriter (accumulate).

Not a wavecore block: it lets one testbench drive the array's operand streams and read the writer's bank.
The first ``depth`` result rows after reset (the first sub-batch) overwrite the bank; every later row is
accumulated into it, as for a weight gradient summed over sub-batches.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from wavecore.hdl.array.systolic import SystolicArray
from wavecore.hdl.memory.writer import ResultWriter


class GemmAccumulateChain(wiring.Component):
    """``SystolicArray`` (OS) whose ``c`` feeds a ``ResultWriter`` of ``depth`` rows.

    Ports: ``a``, ``b`` (the array's), ``read_address``/``read_data`` (the writer's), ``row_written``
    (high in a cycle a result row enters the writer) and ``idle`` (the writer's).
    """

    def __init__(self, *, arithmetic, rows: int, cols: int, depth: int):
        self.array = SystolicArray(rows=rows, cols=cols, arithmetic=arithmetic, dataflow="output_stationary")
        self.writer = ResultWriter(cols=cols, depth=depth, acc_width=arithmetic.acc_width,
                                   signed=arithmetic.signed, overflow=arithmetic.overflow)
        self.depth = depth
        super().__init__({
            "a": In(stream.Signature(self.array.a_layout)),
            "b": In(stream.Signature(self.array.b_layout)),
            "read_address": In(stream.Signature(range(depth))),
            "read_data": Out(stream.Signature(self.writer.row_layout)),
            "row_written": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = self.array
        m.submodules.writer = self.writer
        wiring.connect(m, wiring.flipped(self.a), self.array.a)
        wiring.connect(m, wiring.flipped(self.b), self.array.b)
        wiring.connect(m, self.array.c, self.writer.c)
        wiring.connect(m, wiring.flipped(self.read_address), self.writer.read_address)
        wiring.connect(m, self.writer.read_data, wiring.flipped(self.read_data))
        written = Signal(range(self.depth + 1))
        accepted = self.array.c.valid & self.writer.c.ready
        with m.If(accepted & (written != self.depth)):
            m.d.sync += written.eq(written + 1)
        m.d.comb += [
            self.writer.accumulate.eq(written == self.depth),
            self.row_written.eq(accepted),
            self.idle.eq(self.writer.idle),
        ]
        return m
