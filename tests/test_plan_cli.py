"""``wavecore plan``: table, JSON fields, report files and one-line errors."""

import json

import pytest

from scripts.cli import main


def test_plan_json_has_the_documented_fields(tmp_path, capsys):
    status = main(
        [
            "plan",
            "--network",
            "tiny_resnet",
            "--batch",
            "4",
            "--buffer",
            "16KiB",
            "--array",
            "8x8",
            "--json",
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 0
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "mbs"
    names = [row["schedule"] for row in document["schedules"]]
    assert names == ["baseline", "baseline_bnff", "mbs_greedy", "mbs_optimal", "mbs_optimal_bnff"]
    row = document["schedules"][3]
    for field in (
        "total_bytes",
        "traffic_bytes",
        "reduction_vs_baseline",
        "lower_bound_bytes",
        "distance_to_lower_bound",
        "groups",
        "sub_batches",
        "peak_footprint_bytes",
        "cycles",
    ):
        assert field in row
    assert set(row["traffic_bytes"]) == {
        "activations",
        "stash",
        "weights",
        "weight_grads",
        "activation_grads",
        "norm_passes",
    }
    assert row["total_bytes"] == sum(row["traffic_bytes"].values())
    assert row["total_bytes"] == sum(group["total_bytes"] for group in row["per_group"])
    assert row["total_bytes"] == sum(row["per_layer_bytes"].values())
    assert row["total_bytes"] <= document["schedules"][2]["total_bytes"]  # optimal <= greedy
    assert (tmp_path / "report.md").exists()
    assert (tmp_path / "traffic_vs_buffer.png").exists()
    assert (tmp_path / "per_layer_traffic.png").exists()
    assert "Per-layer GEMM cycles" in (tmp_path / "report.md").read_text()


def test_plan_occam_and_lrcnn_tables(tmp_path, capsys):
    assert (
        main(
            [
                "plan",
                "--network",
                "vgg16",
                "--schedule",
                "occam",
                "--buffer",
                "16MiB",
                "--last-layer",
                "pool5",
                "--chips",
                "4",
                "--no-report",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "occam (line_buffer)" in out and "conv5_1" in out
    assert main(["plan", "--network", "vgg16", "--schedule", "lrcnn", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0:122 120:154 152:186 184:224" in out
    assert "0:62 50:118 106:174 162:224" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--buffer", "ten"], "--buffer must be a positive size such as 10MiB or 512KiB, not 'ten'"),
        (["--array", "128"], "--array must be ROWSxCOLS with positive integers, e.g. 128x128, not '128'"),
        (
            ["--schedule", "fast"],
            "--schedule must be one of all, baseline, mbs, bnff, occam, lrcnn, not 'fast'",
        ),
        (["--dtype", "fp8"], "--dtype must be one of int8, int16, bf16, fp16, fp32, not 'fp8'"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path, capsys, argv, message):
    assert main(["plan", "--network", "tiny_resnet", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "report.md").exists()
