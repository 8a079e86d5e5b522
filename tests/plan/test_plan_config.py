"""One configuration everywhere: ``plan --config``, flags over the file, and a network's own norm kept
by every command unless ``--norm`` is given; report headers state what was used."""

from __future__ import annotations

import json

import pytest

from wavecore.cli import main

MIB = 1 << 20


def _plan_json(capsys, *argv):
    assert main(["plan", *argv, "--json", "--no-report"]) == 0
    return json.loads(capsys.readouterr().out)


def test_config_plans_vgg16_with_its_own_norm(capsys):
    # the done-when: the file's workload norm does not apply to another --network
    document = _plan_json(capsys, "--config", "configs/default.yaml", "--network", "vgg16", "--schedule", "baseline")
    assert document["norm"] == "none"
    assert (document["array"], document["dataflow"], document["buffer_bytes"]) == ([8, 8], "os", 128 * 1024)
    assert (document["dtype"], document["batch"], document["clock_mhz"]) == ("int8", 8, 200)
    assert not any(layer.endswith("_norm") or layer.startswith("bn") for layer in document["schedules"][0][
        "per_layer_bytes"])
    assert main(["plan", "--config", "configs/default.yaml", "--network", "vgg16", "--schedule", "baseline",
                 "--no-report"]) == 0
    assert capsys.readouterr().out.startswith("# vgg16  norm none  batch 8  buffer 128 KiB  dtype int8  array 8x8 os")


def test_config_workload_and_times(capsys):
    document = _plan_json(capsys, "--config", "configs/default.yaml", "--schedule", "mbs")
    assert (document["network"], document["norm"], document["dram_bytes_per_cycle"]) == ("tiny_resnet", "gn", 16)
    assert document["options"]["array_rows"] == 8 and document["options"]["grad_bytes"] == 4
    for row in document["schedules"]:
        assert row["compute_ms"] == pytest.approx(row["cycles"] / 200e3)
        assert row["dram_ms"] == pytest.approx(row["total_bytes"] / 16 / 200e3)


def test_flags_override_the_file(capsys, tmp_path):
    config = tmp_path / "fpga.yaml"
    config.write_text(
        "array: {rows: 4, cols: 16, dataflow: weight_stationary}\nnumerics: {in_width: 8, acc_width: 24}\n"
        "memory: {buffer: 64KiB, dram_bytes_per_cycle: 8}\nclock_mhz: 100\n"
        "workload: {network: tiny_resnet, batch: 4, norm: bn, dtype: int16}\n"
    )
    document = _plan_json(capsys, "--config", str(config), "--schedule", "baseline")
    assert (document["array"], document["dataflow"], document["buffer_bytes"]) == ([4, 16], "ws", 64 * 1024)
    assert (document["batch"], document["dtype"], document["norm"]) == (4, "int16", "bn")
    assert document["options"]["grad_bytes"] == 3  # 24-bit accumulators
    assert document["options"]["dataflow"] == "ws" and document["options"]["array_cols"] == 16
    document = _plan_json(
        capsys, "--config", str(config), "--schedule", "baseline", "--array", "8x8", "--dataflow", "os",
        "--buffer", "32KiB", "--batch", "2", "--dtype", "int8", "--norm", "none",
    )
    assert (document["array"], document["dataflow"], document["buffer_bytes"]) == ([8, 8], "os", 32 * 1024)
    assert (document["batch"], document["dtype"], document["norm"]) == (2, "int8", "none")
    # the workload's norm belongs to its network: another network keeps its own
    assert _plan_json(capsys, "--config", str(config), "--network", "tiny_concat", "--schedule", "baseline")[
        "norm"] == "gn"


def test_without_config_the_network_keeps_its_own_norm(capsys):
    assert _plan_json(capsys, "--network", "resnet18", "--schedule", "baseline")["norm"] == "bn"
    assert _plan_json(capsys, "--network", "resnet18", "--schedule", "baseline", "--norm", "gn")["norm"] == "gn"


def test_bad_config_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("array: {rows: 0}\n")
    out = tmp_path / "plan"
    assert main(["plan", "--config", str(bad), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "wavecore plan: error: --config: array.rows must be a positive integer no larger than 256, not 0\n"
    )
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize(("argv", "norm"), [([], "gn"), (["--norm", "bn"], "bn"), (["--norm", "none"], "none")])
def test_train_keeps_the_network_norm_and_says_so(capsys, argv, norm):
    assert main(["train", "--network", "tiny_resnet", "--batch", "2", *argv]) == 0
    assert capsys.readouterr().out.startswith(f"tiny_resnet: norm {norm}, ")


def test_run_summary_states_the_norm_used():
    from wavecore.golden.config import AcceleratorConfig
    from wavecore.verif.main_job import MainJobSummary

    config = AcceleratorConfig.from_dict({"workload": {"network": "tiny_concat"}})
    assert config.workload.norm is None
    summary = MainJobSummary(config, output=".", norm="gn")
    assert "norm gn, dtype int8" in summary.text()
    assert "norm as in the network file" in MainJobSummary(config, output=".").text()


def test_pipeline_plan_states_the_norm():
    from wavecore.boards.pipeline import _pipeline_markdown, load_pipeline_network, plan_pipeline
    from wavecore.boards.targets import get_target

    plan = plan_pipeline(load_pipeline_network("tiny_resnet"), get_target("ulx3s-85f"), chips=3, capacity_bytes=6000)
    summary = plan.summary()
    assert summary["norm"] == "none"
    summary.update(chips=3, distinct_bitstreams=0, images_per_second=0.0, stages=[])
    assert "Norm none, numerics int8 " in _pipeline_markdown(summary)
