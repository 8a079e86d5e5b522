"""Parsing of Yosys/nextpnr outputs into build reports (stored logs from real builds in tests/boards/data)."""

import json
from pathlib import Path

import pytest

from wavecore.boards.report import (
    BuildReport,
    ReportError,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_yosys_stat,
    resources_from,
)

DATA = Path(__file__).parent / "data"


def test_ecp5_report_gives_post_route_fmax_and_utilisation():
    fmax, utilisation = parse_nextpnr_report(DATA / "mac_ulx3s-85f.report.json")
    # values read by eye from the same build's log: "Max frequency for clock 'cd_sync.clk': 151.42 MHz"
    assert list(fmax) == ["cd_sync.clk"]
    assert fmax["cd_sync.clk"].achieved_mhz == pytest.approx(151.42, abs=0.01)
    assert fmax["cd_sync.clk"].constraint_mhz == pytest.approx(25.0, abs=0.01)
    assert fmax["cd_sync.clk"].met
    assert utilisation["MULT18X18D"] == (1, 156)
    assert utilisation["DP16KD"] == (0, 208)


def test_log_fallback_agrees_with_the_json_report_and_takes_the_post_route_line():
    for stem in ("mac_ulx3s-85f", "mac_icebreaker", "timing_failed_ulx3s-85f"):
        from_json = parse_nextpnr_report(DATA / f"{stem}.report.json")
        text = (DATA / f"{stem}.tim").read_text()
        from_log = parse_nextpnr_log(text)
        for clock, value in from_json[0].items():
            assert from_log[0][clock].achieved_mhz == pytest.approx(value.achieved_mhz, abs=0.01)
        assert from_log[1] == from_json[1]
    # the iCE40 log has a post-placement estimate (54.52) before the post-route figure (64.80)
    text = (DATA / "mac_icebreaker.tim").read_text()
    assert "54.52 MHz" in text
    assert parse_nextpnr_log(text)[0]["cd_sync.clk"].achieved_mhz == pytest.approx(64.80)


def test_missed_timing_is_a_flag_not_an_error():
    fmax, _ = parse_nextpnr_report(DATA / "timing_failed_ulx3s-85f.report.json")
    assert fmax["cd_sync.clk"].achieved_mhz == pytest.approx(7.91, abs=0.01)
    assert not fmax["cd_sync.clk"].met


def test_does_not_fit_log_still_yields_the_over_capacity_count():
    _, utilisation = parse_nextpnr_log((DATA / "does_not_fit_icebreaker.tim").read_text())
    assert utilisation["ICESTORM_DSP"] == (12, 8)


def test_ice40_resources_take_flip_flops_from_yosys():
    _, utilisation = parse_nextpnr_report(DATA / "mac_icebreaker.report.json")
    cells = parse_yosys_stat(DATA / "mac_icebreaker.stat.json")
    flip_flops = sum(count for cell, count in cells.items() if cell.startswith("SB_DFF"))
    resources = resources_from("ice40", utilisation, cells)
    assert resources["ff"]["used"] == flip_flops > 0
    assert resources["lut"] == {"used": utilisation["ICESTORM_LC"][0], "available": 5280}
    assert resources["dsp"] == {"used": 1, "available": 8}
    assert resources["spram"]["available"] == 4
    assert cells["SB_MAC16"] == 1


def test_ecp5_resources_use_trellis_bels():
    _, utilisation = parse_nextpnr_report(DATA / "mac_ulx3s-85f.report.json")
    cells = parse_yosys_stat(DATA / "mac_ulx3s-85f.stat.json")
    resources = resources_from("ecp5", utilisation, cells)
    assert resources["lut"]["used"] == utilisation["TRELLIS_COMB"][0]
    assert resources["ff"]["used"] == utilisation["TRELLIS_FF"][0]
    assert resources["bram"] == {"used": 0, "available": 208}
    assert cells["MULT18X18D"] == 1


def test_unknown_family_and_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="family must be one of ice40, ecp5, not 'xilinx'"):
        resources_from("xilinx", {}, {})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ReportError, match="broken.json: not a nextpnr report"):
        parse_nextpnr_report(broken)
    with pytest.raises(ReportError, match="broken.json: not a Yosys stat JSON file"):
        parse_yosys_stat(broken)


def test_report_round_trips_and_renders_missed_timing(tmp_path):
    report = BuildReport(
        target="ulx3s-85f",
        device="LFE5U-85F",
        design="chain",
        parameters={"n": 12},
        status="timing_failed",
        resources={"dsp": {"used": 36, "available": 156}},
        fmax={"cd_sync.clk": {"achieved_mhz": 7.91, "constraint_mhz": 25.0, "met": False}},
        seconds={"synth": 14.0, "total": 53.2},
    )
    report.write(tmp_path)
    assert BuildReport.from_json((tmp_path / "report.json").read_text()) == report
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "timing_failed"
    markdown = (tmp_path / "report.md").read_text()
    assert "| cd_sync.clk | 7.91 | 25.00 | **no** |" in markdown
    assert "| dsp | 36 | 156 | 23.1 |" in markdown
    assert not list(tmp_path.glob(".*.tmp"))
