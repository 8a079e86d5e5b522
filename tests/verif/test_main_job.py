"""The main job (`wavecore run`): every step runs and its figures are the checked ones."""

import dataclasses
import json
import subprocess
import sys

from wavecore.golden.config import load_config
from wavecore.verif.main_job import run_main_job


def test_main_job_runs_both_schedules_on_the_core_and_reports_the_measured_traffic(tmp_path, monkeypatch):
    """The embedded default core (one cached build with tests/verif/test_training_step.py) on a small workload:
    tiny_resnet at batch 2 on 8x8 inputs."""
    from wavecore.paths import build_root

    monkeypatch.setenv("WAVECORE_BUILD_DIR", str(build_root()))  # share the cached core build
    default = load_config(None)
    config = dataclasses.replace(default, workload=dataclasses.replace(default.workload, batch=2, input_size=8))
    messages = []
    summary = run_main_job(config, tmp_path, simulator="verilator", progress=messages.append)
    assert [step.name for step in summary.steps] == ["compile", "generate", "mbs", "baseline"]
    assert summary.ok, summary.text()
    assert (tmp_path / "core" / "wavecore.v").exists() and (tmp_path / "core" / "wavecore.json").exists()
    for schedule in ("mbs", "baseline"):
        detail = next(step.detail for step in summary.steps if step.name == schedule)
        assert "bit-exact DRAM after the step" in detail and "= predicted" in detail
    assert any(message.startswith("[mbs] ok") for message in messages)
    text = (tmp_path / "summary.txt").read_text()
    assert "overall: PASS" in text and "DRAM bytes measured" in text
    document = json.loads((tmp_path / "summary.json").read_text())
    steps = {step["name"]: step for step in document["steps"]}
    # the figures are the core's counters, checked against the compiler's prediction by the step itself
    for schedule in ("mbs", "baseline"):
        assert steps[schedule]["bit_exact"] and steps[schedule]["traffic_matches"]
        assert steps[schedule]["measured_bytes"] == steps[schedule]["predicted_bytes"]
        expected = json.loads((tmp_path / "programs" / schedule / "expected.json").read_text())
        assert {cls: steps[schedule]["measured_bytes"][cls] for cls in expected["bytes"]} == expected["bytes"]
        assert document["traffic"]["activations"][schedule] == steps[schedule]["measured_bytes"]["activations"]
    total = {schedule: sum(steps[schedule]["measured_bytes"].values()) for schedule in ("mbs", "baseline")}
    assert total["mbs"] < total["baseline"]  # MBS's point, measured on the core
    assert steps["generate"]["verilog_lines"] == (tmp_path / "core" / "wavecore.v").read_text().count("\n")


def test_run_rejects_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("numerics: {overflow: clamp}\n")
    result = subprocess.run([sys.executable, "-m", "wavecore", "run", "--config", str(bad), "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr == (
        "wavecore run: error: --config: numerics.overflow must be one of wrap, saturate, not 'clamp'\n")
    assert not (tmp_path / "o").exists()
