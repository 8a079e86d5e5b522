"""The sweep file: grid/points expansion, normalised parameters, stable point ids, one-line errors."""

import hashlib
import json

import pytest

from wavecore.golden.config import AcceleratorConfig
from wavecore.sweep.spec import PARAMETERS, SweepError, load_sweep, parse_sweep

BASE = {"workload.network": "tiny_resnet", "workload.batch": 4}


def _parse(**data):
    return parse_sweep({"base": BASE, **data}, source="test.yaml")


def test_grid_is_the_cartesian_product_with_shorthands_and_defaults():
    spec = _parse(grid={"array.size": [4, 8, 16], "memory.buffer": ["64KiB", "1MiB"], "array.dataflow": ["os", "ws"]})
    assert len(spec.points) == 3 * 2 * 2
    first = spec.points[0].parameters
    assert set(first) == set(PARAMETERS)
    assert (first["array.rows"], first["array.cols"]) == (4, 4)
    assert first["memory.buffer"] == 64 * 1024  # sizes in bytes
    assert first["array.dataflow"] == "output_stationary"
    assert spec.points[1].parameters["array.dataflow"] == "weight_stationary"
    defaults = AcceleratorConfig()
    assert first["numerics.in_width"] == defaults.numerics.in_width
    assert first["clock_mhz"] == defaults.clock_mhz
    assert first["workload.schedule"] == "mbs_optimal"
    assert spec.evaluate == {"planner": {}}
    assert spec.objectives == ["step_cycles", "dram_bytes", "pes", "memory.buffer"]


def test_points_list_and_grid_combine_and_repeats_run_once():
    spec = _parse(grid={"array.size": [4, 8]},
                  points=[{"array.rows": 4, "array.cols": 4}, {"array.rows": 16, "array.cols": 8}])
    assert [(p.parameters["array.rows"], p.parameters["array.cols"]) for p in spec.points] == [(4, 4), (8, 8), (16, 8)]
    assert spec.repeated == 1


def test_point_id_is_sha256_of_the_canonical_parameters_and_evaluators():
    spec = _parse(grid={"array.size": [8]})
    point = spec.points[0]
    canonical = json.dumps({"parameters": point.parameters, "evaluate": {"planner": {}}}, sort_keys=True,
                           separators=(",", ":"))
    assert point.id == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    # The same point written differently (alias, size unit, key order, explicit default) has the same id.
    other = parse_sweep({"grid": {"memory.buffer": [128 * 1024], "array.dataflow": ["output_stationary"]},
                         "base": {"workload.batch": 4, "array.rows": 8, "array.cols": 8,
                                  "workload.network": "tiny_resnet"}})
    assert other.points[0].id == point.id
    # Any other value, or another evaluator, is another point.
    assert _parse(grid={"array.size": [8]}, evaluate={"planner": {}, "rtl": {}}).points[0].id != point.id
    assert _parse(grid={"array.size": [8], "memory.dram_bytes_per_cycle": [32]}).points[0].id != point.id


def test_grid_values_valid_only_together_are_accepted_and_bad_combinations_refused():
    spec = _parse(grid={"numerics.in_width": [4], "numerics.acc_width": [12]})
    assert spec.points[0].config().numerics.acc_width == 12  # 12 < 2 * the default in_width, fine with 4
    assert len(_parse(grid={"numerics.in_width": [4, 18], "numerics.acc_width": [40]}).points) == 2
    with pytest.raises(SweepError) as error:
        _parse(grid={"numerics.in_width": [4, 16], "numerics.acc_width": [12]})
    assert str(error.value) == ("grid point (numerics.in_width=16, numerics.acc_width=12): "
                                "numerics.acc_width must be at least 2 * in_width = 32, not 12")


def test_config_of_a_point_is_the_accelerator_config():
    point = _parse(grid={"array.rows": [16], "array.cols": [4], "numerics.in_width": [16]}).points[0]
    config = point.config()
    assert config.systolic_parameters()["rows"] == 16
    assert config.numerics.acc_width == 32 and config.numerics.in_width == 16


@pytest.mark.parametrize(
    "data, message",
    [
        ({"grid": {"array.rows": [8, 0]}},
         "grid.array.rows: array.rows must be a positive integer no larger than 256, not 0"),
        ({"grid": {"array.colz": [8]}}, "grid: unknown parameter 'array.colz' (allowed: array.rows"),
        ({"grid": {"array.rows": 8}}, "grid.array.rows must be a non-empty list of values, not 8"),
        ({"grid": {"memory.buffer": ["lots"]}}, "grid.memory.buffer: memory.buffer must be a size such as"),
        ({"grid": {"workload.schedule": ["fastest"]}}, "grid.workload.schedule: workload.schedule must be one of"),
        ({"grid": {"workload.network": ["alexnet"]}},
         "grid.workload.network: workload.network: network must be one of"),
        ({"points": [{"array.dataflow": "diagonal"}]}, "points[0]: array.dataflow must be one of output_stationary"),
        ({"points": "all"}, "points must be a list of mappings, not str"),
        ({}, "a sweep needs 'grid' (lists of values) or 'points'"),
        ({"grid": {"array.size": [4]}, "evaluate": ["spice"]}, "evaluate: unknown evaluator 'spice' (allowed: planner"),
        ({"grid": {"array.size": [4]}, "evaluate": {"rtl": {"gemm": [4, 4]}}},
         "evaluate.rtl.gemm must be [M, K, N] with positive integers, not [4, 4]"),
        ({"grid": {"array.size": [4]}, "evaluate": {"rtl": {"simulatr": "icarus"}}},
         "evaluate.rtl.simulatr is not an option of rtl (allowed: simulator, gemm)"),
        ({"grid": {"array.size": [4]}, "evaluate": {"synth": {"target": "de10"}}},
         "evaluate.synth.target must be one of"),
        ({"grid": {"array.size": [4]}, "report": {"objectives": ["lut"]}}, "report.objectives: unknown column 'lut'"),
        ({"grid": {"array.size": [4]}, "report": {"plots": [["dram_bytes"]]}}, "report.plots must be a list of [x, y]"),
        ({"grid": {"array.size": [4]}, "reports": {}}, "unknown key 'reports' (allowed: name, evaluate"),
    ],
)
def test_bad_sweep_files_give_one_line_naming_the_field(data, message):
    with pytest.raises(SweepError) as error:
        parse_sweep({"base": BASE, **data}, source="test.yaml")
    text = str(error.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_load_sweep_reads_yaml_and_refuses_missing_or_broken_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("grid:\n  array.size: [4, 8]\nbase:\n  workload.network: tiny_resnet\n")
    spec = load_sweep(path)
    assert spec.name == "s" and len(spec.points) == 2
    with pytest.raises(SweepError, match="does not exist"):
        load_sweep(tmp_path / "missing.yaml")
    path.write_text("grid: [\n")
    with pytest.raises(SweepError, match="is not valid YAML at line"):
        load_sweep(path)


def test_shipped_example_sweeps_parse():
    from wavecore.paths import configs_dir

    planner = load_sweep(configs_dir() / "sweeps" / "resnet50_planner.yaml")
    assert len(planner.points) == 5 * 7 * 2 * 3
    synth = load_sweep(configs_dir() / "sweeps" / "ecp5_synth.yaml")
    assert len(synth.points) == 6 and list(synth.evaluate) == ["rtl", "synth"]
