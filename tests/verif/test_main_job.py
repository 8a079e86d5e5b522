"""The main job (`wavecore run`): every step runs and its figures are the checked ones."""

import subprocess
import sys

from wavecore.golden.config import AcceleratorConfig
from wavecore.verif.main_job import run_main_job


def test_main_job_on_a_small_weight_stationary_config_passes_every_step(tmp_path, monkeypatch):
    monkeypatch.delenv("WAVECORE_BUILD_DIR", raising=False)
    config = AcceleratorConfig.from_dict({
        "name": "small", "array": {"rows": 2, "cols": 3, "dataflow": "weight_stationary"},
        "numerics": {"in_width": 8, "acc_width": 20, "overflow": "saturate"},
        "workload": {"network": "tiny_concat", "batch": 4},
    })
    messages = []
    summary = run_main_job(config, tmp_path, simulator="icarus", progress=messages.append)
    assert [step.name for step in summary.steps] == ["generate", "verify", "plan", "train"]
    assert summary.ok, summary.text()
    assert (tmp_path / "systolic.v").exists() and (tmp_path / "systolic.json").exists()
    verify = summary.steps[1].detail
    assert "bit-exact" in verify and "utilization" in verify
    # int8 integer mode: a planned schedule must give the baseline's bits
    assert "activations 0, updated parameters 0" in summary.steps[3].detail
    assert "overall: PASS" in (tmp_path / "summary.txt").read_text()
    assert any(message.startswith("[verify] ok") for message in messages)
    # summary.json: every step's figures, checked against the files and the library
    import json

    from wavecore.golden.network import load_network
    from wavecore.golden.plan.report import plan_mbs_family
    from wavecore.golden.plan.traffic import TrafficOptions

    document = json.loads((tmp_path / "summary.json").read_text())
    assert document["ok"] is True and [step["name"] for step in document["steps"]] == [
        "generate", "verify", "plan", "train"]
    steps = {step["name"]: step for step in document["steps"]}
    assert steps["generate"]["verilog_lines"] == (tmp_path / "systolic.v").read_text().count("\n")
    size = 8 * 3
    cycles = json.loads((tmp_path / "cycles.json").read_text())[f"{size},{size},{size}"]["cycles"]
    assert steps["verify"]["cycles"] == cycles and steps["verify"]["gemm"] == [size, size, size]
    assert steps["verify"]["utilization"] == size**3 / 6 / cycles
    network = load_network("tiny_concat", norm=config.workload.norm, input_size=config.workload.input_size)
    plans = plan_mbs_family(network, 4, config.memory.buffer, TrafficOptions(dtype_bytes=config.element_bytes),
                            schedules=("baseline", "mbs_optimal"))
    assert steps["plan"]["baseline_bytes"] == plans["baseline"].traffic.total
    assert steps["plan"]["mbs_bytes"] == plans["mbs_optimal"].traffic.total
    assert steps["train"]["activation_difference"] == 0 and steps["train"]["parameter_difference"] == 0
    files = document["files"]
    assert files["verilog"] == [str(tmp_path / name) for name in
                                ("systolic.v", "systolic.json", "systolic.core", "systolic.f")]
    assert all(path.endswith("sim.log") for path in files["simulation"][1:]) and len(files["simulation"]) == 3
    assert files["reports"] == [str(tmp_path / name) for name in ("cycles.json", "summary.txt", "summary.json")]
    text = summary.text()
    assert f"  verilog:    {tmp_path / 'systolic.v'}, " in text
    assert f"  reports:    {tmp_path / 'cycles.json'}, " in text
    assert "  waveforms:  none (WAVES=1 records them)" in text or files["waveforms"]
    # the simulator build went under the output directory
    assert [path.name for path in (tmp_path / "sim" / "systolic").iterdir() if path.is_dir()][0].startswith("icarus-")


def test_run_rejects_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("numerics: {overflow: clamp}\n")
    result = subprocess.run([sys.executable, "-m", "wavecore", "run", "--config", str(bad), "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr == (
        "wavecore run: error: --config: numerics.overflow must be one of wrap, saturate, not 'clamp'\n")
    assert not (tmp_path / "o").exists()
