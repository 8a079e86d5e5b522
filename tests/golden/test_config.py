"""The accelerator configuration: defaults, YAML loading and one-line errors naming the field."""

import pytest

from wavecore.golden.config import AcceleratorConfig, ConfigError, default_config, load_config, parse_size
from wavecore.golden.numerics import MacArithmetic


def test_embedded_default_matches_configs_default_yaml():
    assert load_config("configs/default.yaml") == default_config()


def test_default_drives_arithmetic_and_array_parameters():
    config = default_config()
    assert config.arithmetic == MacArithmetic(in_width=8, acc_width=32, signed=True, overflow="wrap")
    assert config.systolic_parameters() == {
        "rows": 8, "cols": 8, "in_width": 8, "acc_width": 32, "signed": True, "overflow": "wrap",
        "dataflow": "output_stationary",
    }
    assert config.memory.buffer == 128 * 1024  # a mid-size FPGA: the MBS schedule serialises the batch
    assert config.element_bytes == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("4096", 4096), (4096, 4096), ("512KiB", 512 * 1024), ("10MiB", 10 * 2**20), ("1GiB", 2**30),
    ("1.5MiB", 3 * 2**19), ("2MB", 2_000_000),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(("data", "message"), [
    ({"array": {"rows": 0}}, "array.rows must be a positive integer no larger than 256, not 0"),
    ({"array": {"dataflow": "row_stationary"}},
     "array.dataflow must be one of output_stationary, weight_stationary, not 'row_stationary'"),
    ({"arrays": {}},
     "unknown configuration key 'arrays' (allowed: array, clock_mhz, memory, name, numerics, workload)"),
    ({"array": {"colz": 3}}, "unknown key array.colz (allowed: cols, dataflow, rows)"),
    ({"numerics": {"in_width": 8, "acc_width": 12}}, "numerics.acc_width must be at least 2 * in_width = 16, not 12"),
    ({"numerics": {"overflow": "clamp"}}, "numerics.overflow must be one of wrap, saturate, not 'clamp'"),
    ({"numerics": {"signed": "yes"}}, "numerics.signed must be true or false, not 'yes'"),
    ({"memory": {"buffer": "10XB"}}, "memory.buffer must be a size such as 4096, 512KiB, 10MiB or 1GiB, not '10XB'"),
    ({"memory": {"buffer": 0}}, "memory.buffer must be positive, not 0"),
    ({"workload": {"norm": "ln"}}, "workload.norm must be one of bn, gn, none or null, not 'ln'"),
    ({"workload": {"dtype": "fp64"}}, "workload.dtype must be one of int8, int16, bf16, fp16, fp32, not 'fp64'"),
    ({"clock_mhz": -5}, "clock_mhz must be a positive number, not -5"),
    ([1, 2], "the configuration must be a mapping, not list"),
])
def test_bad_values_give_one_line_naming_the_field(data, message):
    with pytest.raises(ConfigError) as error:
        AcceleratorConfig.from_dict(data)
    assert str(error.value) == message
    assert "\n" not in str(error.value)


def test_bad_yaml_and_missing_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("array: [rows: 8\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML at line \d+"):
        load_config(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_round_trip(tmp_path):
    import yaml

    config = AcceleratorConfig.from_dict({"array": {"rows": 4, "cols": 16, "dataflow": "weight_stationary"},
                                          "memory": {"buffer": "256KiB"}, "workload": {"norm": "bn"}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert load_config(path) == config

