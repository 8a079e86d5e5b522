"""The 4-pin QoR harness: widths, trivial-core overhead, no register merging."""

import json
import subprocess

from amaranth import Module, Signal, signed
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.boards.qor import QorHarness, TrivialCore
from wavecore.boards.targets import get_target, tool_environment


class RegisteredAdder(wiring.Component):
    """Registers both 8-bit inputs, then a registered sum: 8 + 8 + 9 FFs that must all survive."""

    def __init__(self):
        super().__init__({"a": In(signed(8)), "b": In(signed(8)), "s": Out(signed(9))})

    def elaborate(self, platform):
        m = Module()
        a_reg, b_reg = Signal(signed(8)), Signal(signed(8))
        m.d.sync += [a_reg.eq(self.a), b_reg.eq(self.b), self.s.eq(a_reg + b_reg)]
        return m


def _ecp5_cells(design, tmp_path, name):
    (tmp_path / f"{name}.v").write_text(verilog.convert(design, name="harness", emit_src=False))
    environment = tool_environment(get_target("ulx3s-85f"))
    subprocess.run(
        [
            environment["YOSYS"],
            "-q",
            "-p",
            f"read_verilog {name}.v; synth_ecp5 -top harness; tee -q -o {name}.json stat -json",
        ],
        cwd=tmp_path,
        env=environment,
        check=True,
    )
    return json.loads((tmp_path / f"{name}.json").read_text())["design"]["num_cells_by_type"]


def _flip_flops(cells):
    return sum(count for cell, count in cells.items() if cell.startswith("TRELLIS_FF"))


def test_harness_keeps_every_core_register_and_the_trivial_core_is_logic_free(tmp_path):
    harness = QorHarness(RegisteredAdder())
    assert harness.widths == (16, 9)
    trivial = _ecp5_cells(QorHarness(TrivialCore(RegisteredAdder())), tmp_path, "trivial")
    # harness: 16-bit shift register + toggle + 1 XOR group FF + dout; trivial core: a 9-bit shift register
    assert _flip_flops(trivial) == 16 + 1 + 1 + 1 + 9
    full = _ecp5_cells(harness, tmp_path, "full")
    # the core's 8 + 8 + 9 registers are all there: none merged into the shift register
    assert _flip_flops(full) - (_flip_flops(trivial) - 9) == 8 + 8 + 9
