"""``wavecore sweep``: one-line errors with status 2 and nothing written (runs are tested in tests/sweep/)."""

import pytest

from wavecore.cli import main


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("grid:\n  array.rows: [8, 0]\n", [],
         "tiny.yaml: grid.array.rows: array.rows must be a positive integer no larger than 256, not 0"),
        ("grid:\n  array.size: [4]\nevaluate: [spice]\n", [], "tiny.yaml: evaluate: unknown evaluator 'spice'"),
        ("grid: [\n", [], "tiny.yaml is not valid YAML at line"),
        ("grid:\n  array.size: [4]\n", ["--workers", "0"], "--workers must be a positive integer, not 0"),
        ("grid:\n  array.size: [4]\n", ["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"],
         "--workers sizes the local cluster; it cannot be combined with --scheduler"),
        ("grid:\n  array.size: [4]\n", ["--scheduler", "127.0.0.1:8786"],
         "--scheduler must be an address such as tcp://host:8786, not '127.0.0.1:8786'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, content, extra, message):
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(content)
    output = tmp_path / "out"
    status = main(["sweep", str(sweep), "-o", str(output), *extra])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert "\n" not in error
    assert error.startswith("wavecore sweep: error: "), error
    assert message in error, error
    assert not output.exists()


def test_missing_sweep_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.yaml"), "-o", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
