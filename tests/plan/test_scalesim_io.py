"""SCALE-Sim interop: topology/.cfg reading, one-line errors, and our reports against SCALE-Sim 3.0.0's own.

Stated values below are SCALE-Sim 3.0.0's reports, measured once (scalesim==3.0.0, numpy 2.3.5) with

    python -m scalesim.scale -c scale.cfg -t TOPOLOGY -l layout.csv -p out -s N [-i gemm]

on the files in ``tests/plan/data/scalesim`` (``layout.csv`` holds only the layout header; for ``os`` and ``is``
the ``Dataflow`` line of ``scale.cfg`` was edited). Per layer: compute report (Total Cycles, Stall Cycles, Overall
Util %, Mapping Efficiency %, Compute Util %) and access report (SRAM IFMAP Reads, SRAM Filter Reads, SRAM OFMAP
Writes, DRAM IFMAP Reads, DRAM Filter Reads, DRAM OFMAP Writes). The slow test reruns SCALE-Sim itself.
"""

import csv
import json
import math
from pathlib import Path

import pytest

from wavecore.cli import main
from wavecore.golden.network import load_network
from wavecore.golden.plan import scalesim_io
from wavecore.golden.plan.cycles import network_cycles

DATA = Path(__file__).parent / "data" / "scalesim"
TOPOLOGY = DATA / "test.csv"
GEMMS = DATA / "gemm_small.csv"
CONFIG = DATA / "scale.cfg"

# (topology, dataflow) -> per layer: (compute report values, access report values), SCALE-Sim 3.0.0's
SCALESIM = {
    ("test.csv", "ws"): [((77111, 0, 21.008675805008366, 100.0, 16.666666666666803),
                          (518400, 663552, 518400, 9408, 663552, 518431))],
    ("test.csv", "os"): [((21479, 0, 75.42250570324504, 78.125, 75.41899441340782),
                          (518400, 663552, 10368, 9408, 663552, 9600))],
    ("test.csv", "is"): [((25811, 0, 62.76393785595289, 78.125, 58.93909626719063),
                          (43200, 663552, 518400, 9408, 663552, 518431))],
    ("gemm_small.csv", "ws"): [((428, 0, 34.345794392523366, 100.0, 28.160919540229884),
                                (4704, 3072, 4704, 1568, 3072, 4704)),
                               ((428, 0, 34.345794392523366, 100.0, 28.160919540229884),
                                (4704, 3072, 4704, 4704, 3072, 4704))],
    ("gemm_small.csv", "os"): [((563, 0, 26.1101243339254, 76.5625, 26.063829787234045),
                                (4704, 6144, 5088, 1568, 3072, 4704)),
                               ((315, 0, 46.666666666666664, 76.5625, 46.51898734177215),
                                (4704, 6144, 1696, 4704, 3072, 1568))],
    ("gemm_small.csv", "is"): [((379, 0, 38.78627968337731, 76.5625, 33.2579185520362),
                                (1568, 6144, 4704, 1568, 3072, 4704)),
                               ((755, 0, 19.47019867549669, 76.5625, 15.605095541401273),
                                (4704, 6144, 4704, 4704, 3072, 4704))],
}
COMPUTE = ("Total Cycles", "Stall Cycles", "Overall Util %", "Mapping Efficiency %", "Compute Util %")
ACCESS = ("SRAM IFMAP Reads", "SRAM Filter Reads", "SRAM OFMAP Writes", "DRAM IFMAP Reads", "DRAM Filter Reads",
          "DRAM OFMAP Writes")


def _read(path: Path) -> list[dict]:
    with open(path) as handle:
        rows = [[cell.strip() for cell in row] for row in csv.reader(handle)]
    header = [cell for cell in rows[0] if cell]
    return [dict(zip(header, row)) for row in rows[1:] if row]


def _plan_csv(tmp_path, topology, dataflow) -> list[dict]:
    out = tmp_path / f"{topology.stem}-{dataflow}"
    status = main(["plan", "--config", str(CONFIG), "--network", str(topology), "--dataflow", dataflow,
                   "--csv", str(out), "--out", str(tmp_path / "plan")])
    assert status == 0
    compute, access = _read(out / "COMPUTE_REPORT.csv"), _read(out / "DETAILED_ACCESS_REPORT.csv")
    assert [row["LayerID"] for row in compute] == [str(i) for i in range(len(compute))]
    return [dict(c, **a) for c, a in zip(compute, access)]


def compare(ours: dict, theirs: dict, *, layer, rows: int, cols: int, dataflow: str) -> dict:
    """Assert the columns our model claims to match; return {column: (ours, SCALE-Sim)} of the others."""
    for column in ("Total Cycles", "Stall Cycles", "SRAM IFMAP Reads", "SRAM Filter Reads", "DRAM IFMAP Reads",
                   "DRAM Filter Reads"):
        assert int(ours[column]) == int(theirs[column]), column
    for column in ("Overall Util %", "Mapping Efficiency %", "Compute Util %"):
        assert math.isclose(float(ours[column]), float(theirs[column]), rel_tol=1e-9), column
    others = {}
    sram_writes, dram_writes = int(ours["SRAM OFMAP Writes"]), int(ours["DRAM OFMAP Writes"])
    if dataflow == "os":
        # SCALE-Sim's os ofmap counter also adds rows + cols per fold (systolic_compute_os.create_ofmap_demand_mat)
        folds = math.ceil(layer.m / rows) * math.ceil(layer.n / cols)
        assert int(theirs["SRAM OFMAP Writes"]) == sram_writes + folds * (rows + cols)
        assert int(theirs["DRAM OFMAP Writes"]) == dram_writes
    else:
        # ws/is: partial sums of every K fold go out; ours writes each output once (accumulated on chip)
        assert int(theirs["SRAM OFMAP Writes"]) == sram_writes == layer.m * layer.n * math.ceil(layer.k / rows)
        assert sram_writes <= int(theirs["DRAM OFMAP Writes"]) <= sram_writes + cols
        assert dram_writes == layer.m * layer.n
    for column in ("SRAM OFMAP Writes", "DRAM OFMAP Writes"):
        if int(ours[column]) != int(theirs[column]):
            others[column] = (int(ours[column]), int(theirs[column]))
    return others


@pytest.mark.parametrize("topology, dataflow", sorted(SCALESIM))
def test_csv_matches_stated_scalesim_reports(tmp_path, topology, dataflow):
    ours = _plan_csv(tmp_path, DATA / topology, dataflow)
    layers = scalesim_io.read_topology(DATA / topology)
    stated = SCALESIM[(topology, dataflow)]
    assert len(ours) == len(stated) == len(layers)
    for row, layer, (compute, access) in zip(ours, layers, stated):
        theirs = dict(zip(COMPUTE, compute)) | dict(zip(ACCESS, access))
        compare(row, theirs, layer=layer, rows=32, cols=32, dataflow=dataflow)
        # the training passes beside SCALE-Sim's inference pass: the planner's GEMMs of the same layer
        assert int(row["Training Cycles"]) == sum(
            int(row[name]) for name in ("Total Cycles", "Backward Data Cycles", "Backward Weight Cycles")
        )
        assert int(row["MACs"]) == layer.m * layer.k * layer.n


def test_reads_shipped_topology_and_config():
    (layer,) = scalesim_io.read_topology(TOPOLOGY)
    # Inc5b_3x3: 7x7x192 ifmap, 3x3 filters, 384 of them, stride 1 -> 5x5 ofmap
    assert layer == scalesim_io.TopologyLayer("Inc5b_3x3", 25, 3 * 3 * 192, 384, 7 * 7 * 192, 3 * 3 * 192 * 384,
                                              25 * 384)
    config = scalesim_io.read_config(CONFIG)
    assert (config.rows, config.cols, config.dataflow, config.bandwidth) == (32, 32, "ws", 10)
    assert (config.ifmap_sram_kb, config.filter_sram_kb, config.ofmap_sram_kb) == (64, 64, 64)
    assert config.buffer_bytes == 192 * 1024
    assert [(g.name, g.m, g.k, g.n) for g in scalesim_io.read_topology(GEMMS)] == [("qkv", 49, 32, 96),
                                                                                   ("proj", 49, 96, 32)]


def test_depthwise_layers_split_per_channel_as_scalesim(tmp_path):
    path = tmp_path / "dw.csv"
    path.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,\nConv_DP1, 9, 9, 3, 3, 3, 1, 2,\nPW, 4, 4, 1, 1, 3, 8, 1\n")
    layers = scalesim_io.read_topology(path)
    assert [layer.name for layer in layers] == ["Conv_DP1Channel_0", "Conv_DP1Channel_1", "Conv_DP1Channel_2",
                                                "PW"]
    assert (layers[0].m, layers[0].k, layers[0].n) == (16, 9, 1)  # (9-3)//2+1 = 4 -> 16 pixels
    assert (layers[3].m, layers[3].k, layers[3].n) == (16, 3, 8)  # a row without the trailing comma is read too


@pytest.mark.parametrize(
    "text, message",
    [
        ("Layer, X, Y,\n", "bad.csv:1: header must be"),
        ("Layer, M, N, K,\ng, 4, 0, 2,\n", "bad.csv:2: field 'N' must be a positive integer, not '0'"),
        ("Layer, M, N, K,\n\ng, 4, 2,\n", "bad.csv:3: expected 4 fields"),
        ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
         "c, 3, 3, 5, 3, 1, 1, 1,\n", "bad.csv:2: field 'Filter Height' must not exceed the IFMAP's 3, not 5"),
        ("Layer, M, N, K,\ng, 4, 2, 2, 2:4,\n", "bad.csv:2: field 'Sparsity' must be 1:1"),
        ("Layer, M, N, K,\n", "bad.csv:1: the topology has no layers"),
    ],
)
def test_bad_topology_is_refused_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        scalesim_io.read_topology(path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert main(["plan", "--network", str(path), "--csv", str(tmp_path / "csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "csv").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (("Dataflow : ws", "Dataflow : rs"), "bad.cfg:14: field 'Dataflow' must be one of os, ws, is, not 'rs'"),
        (("ArrayWidth:     32", "ArrayWidth:     0"), "bad.cfg:6: field 'ArrayWidth' must be a positive integer"),
        (("OfmapSramSzkB:   64\n", ""), "bad.cfg:4: field 'OfmapSramSzkB' is missing from [architecture_presets]"),
        (("[architecture_presets]", "[presets]"), "bad.cfg:1: section [architecture_presets] is missing"),
    ],
)
def test_bad_config_is_refused_in_one_line(tmp_path, capsys, edit, message):
    text = CONFIG.read_text()
    assert edit[0] in text
    path = tmp_path / "bad.cfg"
    path.write_text(text.replace(edit[0], edit[1]))
    assert main(["plan", "--config", str(path), "--network", str(TOPOLOGY)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_topology_refuses_batch_and_schedules_and_yaml_refuses_is(tmp_path, capsys):
    for argv, message in (
        (["--network", str(TOPOLOGY), "--batch", "4"], "--batch does not apply to a SCALE-Sim topology"),
        (["--network", str(TOPOLOGY), "--schedule", "mbs"], "a SCALE-Sim topology plans per layer only"),
        (["--network", "tiny_resnet", "--dataflow", "is"], "is is planned only for a SCALE-Sim topology"),
    ):
        assert main(["plan", *argv, "--out", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err


def test_cfg_sets_array_dataflow_and_buffer_for_a_network(tmp_path, capsys):
    status = main(["plan", "--config", str(CONFIG), "--network", "tiny_resnet", "--batch", "2", "--json",
                   "--no-report", "--csv", str(tmp_path)])
    assert status == 0
    document = json.loads(capsys.readouterr().out)
    assert document["array"] == [32, 32] and document["dataflow"] == "ws"
    assert document["buffer_bytes"] == 3 * 64 * 1024
    rows = _read(tmp_path / "COMPUTE_REPORT.csv")
    network = load_network("tiny_resnet")
    expected = network_cycles(network, 2, rows=32, cols=32, dataflow="ws", first_backward_data=True)
    assert [row["Layer name"] for row in rows] == [layer.layer for layer in expected]
    assert [int(row["Total Cycles"]) for row in rows] == [layer.forward for layer in expected]
    assert [int(row["Backward Weight Cycles"]) for row in rows] == [layer.backward_weight for layer in expected]


@pytest.mark.slow
@pytest.mark.parametrize("topology, dataflow", [("gemm_small.csv", "os"), ("gemm_small.csv", "ws"),
                                                ("gemm_small.csv", "is"), ("test.csv", "os")])
def test_csv_against_live_scalesim(tmp_path, topology, dataflow):
    from wavecore.verif.scalesim import scalesim_reports

    config = tmp_path / "scale.cfg"
    config.write_text(CONFIG.read_text().replace("Dataflow : ws", f"Dataflow : {dataflow}"))
    theirs = scalesim_reports(DATA / topology, config, gemm=topology.startswith("gemm"))
    ours = _plan_csv(tmp_path, DATA / topology, dataflow)
    layers = scalesim_io.read_topology(DATA / topology)
    assert len(theirs["compute"]) == len(ours) == len(layers)
    for row, layer, compute, access in zip(ours, layers, theirs["compute"], theirs["access"]):
        others = compare(row, compute | access, layer=layer, rows=32, cols=32, dataflow=dataflow)
        print(f"{topology} {dataflow} {layer.name}: differing by design (ours, SCALE-Sim): {others}")


def _write_scalesim_reports(directory: Path, stated) -> None:
    """SCALE-Sim's two report files (its exact headers, simulator.py) holding the stated values."""
    run = directory / "scale_example_run_32x32_ws"
    run.mkdir(parents=True)
    compute = ["LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, Overall Util %, "
               "Mapping Efficiency %, Compute Util %,"]
    access = ["LayerID, SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, SRAM Filter Start Cycle, "
              "SRAM Filter Stop Cycle, SRAM Filter Reads, SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, "
              "SRAM OFMAP Writes, DRAM IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, "
              "DRAM Filter Start Cycle, DRAM Filter Stop Cycle, DRAM Filter Reads, DRAM OFMAP Start Cycle, "
              "DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,"]
    for index, (values, counts) in enumerate(stated):
        compute.append(", ".join(str(v) for v in (index, 0, *values)) + ",")
        access.append(", ".join(str(v) for v in [index] + [x for count in counts for x in (0.0, 0.0, count)]) + ",")
    (run / "COMPUTE_REPORT.csv").write_text("\n".join(compute) + "\n")
    (run / "DETAILED_ACCESS_REPORT.csv").write_text("\n".join(access) + "\n")


def test_scalesim_reports_diff(tmp_path, capsys):
    theirs = tmp_path / "scalesim"
    _write_scalesim_reports(theirs, SCALESIM[("gemm_small.csv", "ws")])
    out = tmp_path / "csv"
    assert main(["plan", "--config", str(CONFIG), "--network", str(GEMMS), "--csv", str(out),
                 "--scalesim-reports", str(theirs)]) == 0
    assert "differs from SCALE-Sim in: DRAM OFMAP Writes\n" in capsys.readouterr().out
    rows = _read(out / "DIFF_REPORT.csv")
    assert len(rows) == 2 * len(scalesim_io.DIFF_COLUMNS)
    for row in rows:
        if row["Claimed equal"] == "True":
            assert float(row["Difference"]) == 0, row
    proj = {row["Column"]: row for row in rows if row["Layer name"] == "proj"}
    # proj: K = 96 on 32 rows, so SCALE-Sim's ws writes three partial sums of each of the 49 x 32 outputs to DRAM
    assert (proj["DRAM OFMAP Writes"]["wavecore"], proj["DRAM OFMAP Writes"]["SCALE-Sim"]) == ("1568", "4704")
    # another topology's reports are refused before anything is written
    assert main(["plan", "--config", str(CONFIG), "--network", str(TOPOLOGY), "--csv", str(tmp_path / "other"),
                 "--scalesim-reports", str(theirs)]) == 2
    assert "SCALE-Sim reports 2 layers, wavecore 1: not the same topology" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    assert main(["plan", "--network", str(GEMMS), "--scalesim-reports", str(theirs)]) == 2
    assert "--scalesim-reports needs --csv DIR" in capsys.readouterr().err


def test_topology_json_has_the_csv_columns(tmp_path, capsys):
    assert main(["plan", "--config", str(CONFIG), "--network", str(GEMMS), "--dataflow", "os", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["kind"], document["array"], document["dataflow"]) == ("scalesim_topology", [32, 32], "os")
    assert [layer["Layer name"] for layer in document["layers"]] == ["qkv", "proj"]
    assert [layer["Total Cycles"] for layer in document["layers"]] == [563, 315]  # SCALE-Sim 3.0.0, stated above
    assert set(scalesim_io.COMPUTE_COLUMNS[1:]) | set(scalesim_io.ACCESS_COLUMNS[1:]) == set(document["layers"][0])
