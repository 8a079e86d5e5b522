"""`wavecore synth` end to end: registry block or config file -> BIST bitstream + report with cell counts."""

import json
import subprocess
import sys

import pytest

from wavecore.cli import main


def _wavecore(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "wavecore", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--block", "systolic", "--rows", "0"], "--rows must be a positive integer, not 0"),
        ([], "give --block NAME or --config FILE"),
        (["--block", "fft"], "not 'fft'"),
        (["--block", "systolic", "--multiplier", "ecp5_dsp"], "--multiplier ecp5_dsp needs an ECP5 target"),
    ],
)
def test_bad_options_are_one_line_and_status_2(args, message, tmp_path):
    result = _wavecore("synth", "--target", "icebreaker", "-o", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_config_file_errors_name_the_field(tmp_path):
    config = tmp_path / "array.yaml"
    config.write_text("block: systolic\nrows: 2\noverflow: sideways\n")
    result = _wavecore("synth", "--target", "icebreaker", "--config", str(config), "-o", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "--overflow must be one of wrap, saturate, not 'sideways'" in result.stderr


def test_generated_config_builds_on_ice40_with_one_sb_mac16_per_pe(tmp_path, capsys):
    assert main(["generate", "systolic", "--rows", "2", "--cols", "2", "-o", str(tmp_path / "gen")]) == 0
    out = tmp_path / "synth"
    assert (
        main(
            [
                "synth",
                "--target",
                "icebreaker",
                "--config",
                str(tmp_path / "gen" / "systolic.json"),
                "--bist-cycles",
                "128",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok"
    assert report["cells"]["SB_MAC16"] == 4 == report["resources"]["dsp"]["used"]
    assert report["parameters"]["rows"] == 2 and report["parameters"]["multiplier"] == "ice40_mixed"
    assert (out / report["bitstream"]).exists()
    assert "systolic on icebreaker: ok" in capsys.readouterr().out


@pytest.mark.fpga
@pytest.mark.parametrize(
    ("target", "dsp_cell", "dsps"),
    [("ulx3s-85f", "MULT18X18D", 16), ("orangecrab-25f", "MULT18X18D", 16), ("icebreaker", "SB_MAC16", 8)],
)
def test_issue_example_4x4_int8_array_on_every_board(target, dsp_cell, dsps, tmp_path):
    result = _wavecore(
        "synth",
        "--target",
        target,
        "--block",
        "systolic",
        "--rows",
        "4",
        "--cols",
        "4",
        "--in-width",
        "8",
        "-o",
        "build_out",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "build_out" / "report.json").read_text())
    assert report["status"] in ("ok", "timing_failed")
    assert report["cells"][dsp_cell] == dsps
    if dsp_cell == "MULT18X18D":
        netlist = json.loads((tmp_path / "build_out" / "work" / "top.json").read_text())
        cells = [
            cell
            for module in netlist["modules"].values()
            for cell in module["cells"].values()
            if cell["type"] == "MULT18X18D"
        ]
        assert len(cells) == 16
        assert all(cell["parameters"]["REG_OUTPUT_CLK"] == "CLK0" for cell in cells)
