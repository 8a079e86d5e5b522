"""``wavecore plan``: table, JSON fields, report files and one-line errors."""

import json
import re

import pytest

from wavecore.cli import main


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
        (["--buffer", "10XB"], "--buffer must be a positive size such as 10MiB or 512KiB, not '10XB'"),
        (["--buffer", "0MiB"], "--buffer must be a positive size such as 10MiB or 512KiB, not '0MiB'"),
        (["--array", "0x4"], "--array must be ROWSxCOLS with positive integers, e.g. 128x128, not '0x4'"),
        (["--batch", "-1"], "--batch must be a positive integer, not -1"),
        (["--batch", "x"], "argument --batch: invalid int value: 'x'"),
        (["--schedule", "nonsense"], "--schedule must be one of all, baseline, mbs, bnff, occam, lrcnn"),
        (["--dataflow", "is"], "--dataflow must be one of os, ws, not 'is'"),
        (["--chips", "0"], "--chips must be a positive integer, not 0"),
        (["--stash", "some"], "--stash must be one of minimal, all, not 'some'"),
        (["--min-sub-batch", "0"], "--min-sub-batch must be an integer >= 1, not 0"),
        (["--memory-model", "cache"], "--memory-model must be one of line_buffer, closure, not 'cache'"),
        (["--last-layer", "conv99"], "--last-layer must name a layer of tiny_resnet, not 'conv99'"),
        (["--network", "resnet19"], "--network: network must be one of resnet18, resnet50"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path, capsys, argv, message):
    out = tmp_path / "plan"
    try:
        status = main(["plan", "--network", "tiny_resnet", "--out", str(out), *argv])
    except SystemExit as exit_:  # argparse's own checks
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.count("\n") == 1 and message in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()  # nothing written, not even the directory


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ninput: [\n", "--network: network YAML is not valid YAML at line 3"),
        (
            "name: cyc\ninput: {name: input, shape: [3, 8, 8]}\nnum_classes: 10\nlayers:\n"
            "  - {name: a, op: relu, inputs: [b]}\n  - {name: b, op: relu, inputs: [a]}\n",
            "--network: layer 'a': inputs form a cycle",
        ),
    ],
    ids=["malformed", "cycle"],
)
def test_bad_network_yaml_is_a_one_line_error(tmp_path, capsys, text, message):
    path = tmp_path / "net.yaml"
    path.write_text(text)
    out = tmp_path / "plan"
    assert main(["plan", "--network", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"wavecore plan: error: {message}\n" and captured.out == ""
    assert not out.exists()


def test_lrcnn_on_a_network_without_row_local_layers_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "mlp.yaml"
    path.write_text(
        "name: mlp\ninput: {name: input, shape: [3, 4, 4]}\nnum_classes: 10\nlayers:\n"
        "  - {name: f, op: flatten}\n  - {name: fc, op: linear, out_features: num_classes}\n"
        "  - {name: loss, op: loss}\n"
    )
    out = tmp_path / "plan"
    assert main(["plan", "--network", str(path), "--schedule", "lrcnn", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "wavecore plan: error: --schedule lrcnn needs conv/pool layers after the input: "
        "network 'mlp' has no row-local layers for row blocks\n"
    )
    assert captured.out == "" and not out.exists()


#: Columns that count what their header names (no unit beyond that); every other numeric column states its unit.
COUNTED = {"groups", "layers", "replicas", "blocks", "stage", "cycles"}
NUMBER = re.compile(r"[-+]?[\d,]+(\.\d+)?%?")


def _unitless_numeric_columns(header: list[str], rows: list[list[str]]) -> list[str]:
    """Headers of the columns holding a number in some row that neither state a unit ``(...)`` nor count."""
    return [
        name for i, name in enumerate(header)
        if any(i < len(row) and NUMBER.fullmatch(row[i]) for row in rows)
        and not re.search(r"\(.+\)$", name) and name not in COUNTED
    ]


def _text_tables(out: str):
    """The table of ``wavecore plan`` (columns two spaces apart) as (header, rows)."""
    lines = [line for line in out.splitlines() if line and not line.startswith(("#", "report:", "["))]
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return cells[0], cells[1:]


def _markdown_tables(text: str):
    """Every markdown table of a report as (header, rows)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append((current[0], current[2:]))  # below the header, the |---| line
            current = []
    return tables


@pytest.mark.parametrize(
    ("argv", "report_tables"),
    [
        (["--config", "configs/default.yaml"], 2),  # MBS with the clock: times; traffic vs buffer, GEMM cycles
        (["--network", "vgg16", "--schedule", "occam", "--buffer", "16MiB", "--last-layer", "pool5", "--chips", "4"],
         1),  # traffic vs capacity
        (["--network", "vgg16", "--schedule", "lrcnn"], 0),
    ],
    ids=["mbs", "occam", "lrcnn"],
)
def test_every_numeric_column_states_its_unit(argv, report_tables, tmp_path, capsys):
    assert main(["plan", *argv, "--quiet", "-o", str(tmp_path)]) == 0
    header, rows = _text_tables(capsys.readouterr().out)
    assert rows and len({len(header), *map(len, rows)}) == 1, (header, rows)  # the split found the columns
    assert _unitless_numeric_columns(header, rows) == [], header
    if argv[0] == "--config":
        assert {"total (KiB)", "stash (KiB)", "footprint (KiB)", "vs_base (%)", "compute (ms)", "dram (ms)"} <= set(
            header)
    tables = _markdown_tables((tmp_path / "report.md").read_text())
    assert len(tables) == report_tables
    for header, rows in tables:
        assert rows and _unitless_numeric_columns(header, rows) == [], header


def test_the_unit_check_catches_a_bare_header():
    assert _unitless_numeric_columns(["schedule", "total", "cycles"], [["mbs", "1,579.9", "318,708"]]) == ["total"]


def test_scalesim_tables_state_units(tmp_path, capsys):
    from wavecore.golden.plan import scalesim_io

    data = "tests/plan/data/scalesim"
    assert main(["plan", "--config", f"{data}/scale.cfg", "--network", f"{data}/gemm_small.csv", "--csv",
                 str(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[1]
    for column in ("fwd (cycles)", "util (%)", "map eff (%)", "bwd-data (cycles)", "bwd-wt (cycles)", "DRAM (words)"):
        assert column in header
    # the CSVs keep SCALE-Sim's column names (so the two diff), each naming its unit: cycles, %, word accesses, MACs
    for name, columns in (("COMPUTE_REPORT.csv", scalesim_io.COMPUTE_COLUMNS),
                          ("DETAILED_ACCESS_REPORT.csv", scalesim_io.ACCESS_COLUMNS)):
        assert (tmp_path / name).read_text().splitlines()[0] == ", ".join(columns) + ","
        for column in columns[2:]:
            assert column.endswith((" Cycles", " %", " Reads", " Writes", "MACs")), column
