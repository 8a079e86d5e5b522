"""hdl/registry.py: blocks by name, parameter specs matching the constructors, one-line config errors."""

import inspect
import json

import pytest

from wavecore.hdl.array.systolic import SystolicArray
from wavecore.hdl.registry import BLOCKS, block, from_config, full_config, generate_files

pytestmark = pytest.mark.filterwarnings("ignore:.*created but never used")


def _kind_direction_bits(port: dict) -> dict:
    return {key: port[key] for key in ("kind", "direction", "payload_bits")}


def test_systolic_is_registered_with_every_constructor_parameter():
    spec = block("systolic")
    assert spec.component is SystolicArray
    constructor = inspect.signature(SystolicArray.__init__).parameters
    names = [parameter.name for parameter in spec.parameters]
    assert names == ["rows", "cols", "in_width", "acc_width", "signed", "overflow", "dataflow"]
    for name in names:
        assert constructor[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert spec.parameter("in_width").option == "--in-width"


def test_defaults_build_the_documented_array():
    array = from_config({"block": "systolic"})
    assert array.parameters == {
        "rows": 8,
        "cols": 8,
        "in_width": 8,
        "acc_width": 32,
        "signed": True,
        "overflow": "wrap",
        "dataflow": "output_stationary",
    }
    for parameter in block("systolic").parameters:
        assert array.parameters[parameter.name] == parameter.default


def test_from_config_passes_values_through():
    array = from_config(
        {
            "block": "systolic",
            "rows": 2,
            "cols": 5,
            "dataflow": "weight_stationary",
            "overflow": "saturate",
            "signed": False,
            "in_width": 4,
            "acc_width": 12,
        }
    )
    assert (array.rows, array.cols, array.dataflow) == (2, 5, "weight_stationary")
    assert array.arithmetic.overflow == "saturate" and not array.arithmetic.signed


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"block": "gpu"}, ValueError, "block must be one of " + ", ".join(BLOCKS) + ", not 'gpu'"),
        ({"rows": 4}, ValueError, "config needs a 'block' key (one of " + ", ".join(BLOCKS) + ")"),
        (
            {"block": "systolic", "depth": 4},
            ValueError,
            "'depth' is not a parameter of block systolic "
            "(allowed: rows, cols, in_width, acc_width, signed, overflow, dataflow)",
        ),
        ({"block": "systolic", "rows": True}, TypeError, "rows must be an integer, not True"),
        ({"block": "systolic", "rows": 4.0}, TypeError, "rows must be an integer, not 4.0"),
        ({"block": "systolic", "signed": "yes"}, TypeError, "signed must be true or false, not 'yes'"),
        (
            {"block": "systolic", "dataflow": "ws"},
            ValueError,
            "dataflow must be one of output_stationary, weight_stationary, not 'ws'",
        ),
        ({"block": "systolic", "rows": 0}, ValueError, "rows must be a positive integer, not 0"),
        (
            {"block": "systolic", "in_width": 16, "acc_width": 24},
            ValueError,
            "acc_width must be at least 2 * in_width = 32, not 24",
        ),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_field(config, error, message):
    with pytest.raises(error) as raised:
        from_config(config)
    assert str(raised.value) == message
    assert "\n" not in str(raised.value)


def test_full_config_fills_defaults_and_round_trips(tmp_path):
    config = full_config("systolic", {"rows": 3})
    assert config["block"] == "systolic" and config["rows"] == 3 and config["cols"] == 8
    verilog, record_path = generate_files(config, tmp_path, toplevel="array3")
    record = json.loads(record_path.read_text())
    assert from_config({"block": record["block"], **record["parameters"]}).parameters == record["parameters"]
    assert verilog.name == "array3.v" and "module array3(" in verilog.read_text()


def test_generate_files_writes_nothing_for_a_bad_config(tmp_path):
    target = tmp_path / "never"
    with pytest.raises(ValueError, match="cols must be a positive integer, not 0"):
        generate_files({"block": "systolic", "cols": 0}, target)
    assert not target.exists()
    with pytest.raises(ValueError, match="toplevel must be a Verilog identifier, not 'a-b'"):
        generate_files({"block": "systolic"}, target, toplevel="a-b")
    assert not target.exists()


# --- BN/GN norm units: preset + max_count -> NormArithmetic ---------------------------------------------

NORM_BLOCKS = {
    "norm_stats": ("wavecore.hdl.norm.stats", "NormStatistics", ["lanes", "sets", "group_lanes"]),
    "norm_affine": ("wavecore.hdl.norm.affine", "NormAffine", ["lanes", "sets"]),
    "norm_backward": ("wavecore.hdl.norm.backward", "NormBackwardReduce", ["lanes", "sets"]),
    "norm_weighting": (
        "wavecore.hdl.norm.weighting",
        "NormGroupWeighting",
        ["lanes", "sets", "channels", "param_width", "weighted_width"],
    ),
    "norm_dx": ("wavecore.hdl.norm.dx", "NormDx", ["lanes", "sets"]),
    "norm_scalar": ("wavecore.hdl.norm.scalar", "NormScalar", ["param_width", "weighted_width"]),
}

# The grids of golden.numerics.INTEGER_PRESETS, stated: (operand bits, activation, grad, weight, weight-grad frac).
PRESET_GRIDS = {"int8": (8, 4, 7, 6, 7), "int16": (16, 8, 12, 12, 12)}


def test_norm_presets_are_the_golden_integer_presets():
    from wavecore.golden.numerics import INTEGER_PRESETS
    from wavecore.hdl.registry import NORM_PRESETS

    assert set(NORM_PRESETS) == set(INTEGER_PRESETS) == set(PRESET_GRIDS)


@pytest.mark.parametrize("name", NORM_BLOCKS)
def test_norm_block_lists_every_constructor_parameter_but_the_arithmetic(name):
    import importlib

    module, class_name, own = NORM_BLOCKS[name]
    spec = block(name)
    component = getattr(importlib.import_module(module), class_name)
    assert spec.component is component
    assert [parameter.name for parameter in spec.parameters] == ["preset", "max_count", *own]
    constructor = inspect.signature(component.__init__).parameters
    assert set(constructor) - {"self"} == {"arithmetic", *own}
    for parameter in own:
        assert constructor[parameter].kind is inspect.Parameter.KEYWORD_ONLY
        if constructor[parameter].default not in (inspect.Parameter.empty, None):
            assert spec.parameter(parameter).default == constructor[parameter].default
    assert spec.parameter("preset").choices == ("int8", "int16") and spec.parameter("preset").default == "int8"
    assert spec.parameter("max_count").default == 1 << 16


@pytest.mark.parametrize("preset", PRESET_GRIDS)
@pytest.mark.parametrize("name", NORM_BLOCKS)
def test_norm_block_takes_the_grids_of_its_preset(name, preset):
    unit = from_config({"block": name, "preset": preset, "max_count": 3000})
    arithmetic = unit.arithmetic
    width, activation_frac, grad_frac, weight_frac, weight_grad_frac = PRESET_GRIDS[preset]
    assert arithmetic.activation.width == arithmetic.gradient.width == width
    assert arithmetic.activation.signed and arithmetic.gradient.signed
    assert (arithmetic.activation_frac, arithmetic.grad_frac) == (activation_frac, grad_frac)
    assert (arithmetic.param_frac, arithmetic.param_grad_frac) == (weight_frac, weight_grad_frac)
    assert (arithmetic.scalar_frac, arithmetic.rounding, arithmetic.max_count) == (12, "half_even", 3000)


def test_norm_stats_ports_are_sized_by_preset_and_max_count(tmp_path):
    config = {"block": "norm_stats", "preset": "int16", "max_count": 1024, "lanes": 4, "sets": 2, "group_lanes": 2}
    _, record_path = generate_files(config, tmp_path)
    ports = {name: {key: port[key] for key in ("kind", "direction", "payload_bits")}
             for name, port in json.loads(record_path.read_text())["ports"].items() if port["kind"] == "stream"}
    # beat: 1-bit set index + 4 x int16; sums of 2 groups: S1 < 1024 * 2**15 signed (27 bits), S2 < 1024 * 2**30
    assert _kind_direction_bits(ports["input"]) == {"kind": "stream", "direction": "in", "payload_bits": 1 + 4 * 16}
    assert _kind_direction_bits(ports["sums"]) == {"kind": "stream", "direction": "out", "payload_bits": 2 * (27 + 41)}
    fields = json.loads(record_path.read_text())["ports"]["input"]["fields"]
    assert [field["name"] for field in fields] == ["set", *(f"data[{i}]" for i in range(4))]
    narrow = generate_files({**config, "preset": "int8", "max_count": 16}, tmp_path / "int8")[1]
    ports = json.loads(narrow.read_text())["ports"]
    assert ports["input"]["payload_bits"] == 1 + 4 * 8
    assert ports["sums"]["payload_bits"] == 2 * ((16 * 2**7).bit_length() + 1 + (16 * 2**14).bit_length())


NORM_CONFIGS = {
    "norm_stats": {"lanes": 4, "sets": 2, "group_lanes": 2},
    "norm_affine": {"lanes": 2, "sets": 3},
    "norm_backward": {"lanes": 2, "sets": 3},
    "norm_weighting": {"lanes": 2, "sets": 3, "channels": 5, "param_width": 8, "weighted_width": 60},
    "norm_dx": {"lanes": 2, "sets": 3},
    "norm_scalar": {"param_width": 8, "weighted_width": 60},
}


@pytest.mark.parametrize("name", NORM_BLOCKS)
def test_norm_block_round_trips_through_generated_json(name, tmp_path):
    import importlib

    from wavecore.golden.numerics import IntFormat, NormArithmetic

    config = full_config(name, {"preset": "int16", "max_count": 500, **NORM_CONFIGS[name]})
    verilog, record_path = generate_files(config, tmp_path, toplevel=f"{name}_unit")
    record = json.loads(record_path.read_text())
    assert f"module {name}_unit(" in verilog.read_text()
    assert record["block"] == name and record["parameters"] == {k: v for k, v in config.items() if k != "block"}
    assert full_config(record["block"], record["parameters"]) == config
    rebuilt = from_config({"block": record["block"], **record["parameters"]})
    # The same unit built by hand from the preset's stated grids.
    arithmetic = NormArithmetic(activation=IntFormat(16), gradient=IntFormat(16), activation_frac=8, grad_frac=12,
                                param_frac=12, param_grad_frac=12, scalar_frac=12, rounding="half_even",
                                max_count=500)
    module, class_name, own = NORM_BLOCKS[name]
    direct = getattr(importlib.import_module(module), class_name)(arithmetic=arithmetic, **NORM_CONFIGS[name])
    assert rebuilt.arithmetic == arithmetic
    assert {key: getattr(rebuilt, key) for key in own} == NORM_CONFIGS[name]
    from wavecore.hdl.registry import describe_ports

    assert describe_ports(direct) == record["ports"]


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"block": "norm_affine", "preset": "int4"}, ValueError, "preset must be one of int8, int16, not 'int4'"),
        ({"block": "norm_affine", "preset": 8}, TypeError, "preset must be a string, not 8"),
        (
            {"block": "norm_dx", "max_count": 0},
            ValueError,
            "max_count must be an integer between 1 and 1073741824, not 0",
        ),
        (
            {"block": "norm_scalar", "max_count": 2**30 + 1},
            ValueError,
            "max_count must be an integer between 1 and 1073741824, not 1073741825",
        ),
        ({"block": "norm_stats", "max_count": "many"}, TypeError, "max_count must be an integer, not 'many'"),
        (
            {"block": "norm_affine", "arithmetic": "int16"},
            ValueError,
            "'arithmetic' is not a parameter of block norm_affine (allowed: preset, max_count, lanes, sets)",
        ),
        ({"block": "norm_backward", "sets": 257}, ValueError, "sets must be an integer between 1 and 256, not 257"),
        ({"block": "norm_stats", "lanes": 6, "group_lanes": 4}, ValueError, "group_lanes must divide lanes (6), not 4"),
        (
            # W2 of 65536 int16 dy*x products times an int16 gamma: |W2| <= 2**16 * 2**15 * 2**15 * 2**15.
            {"block": "norm_weighting", "preset": "int16", "weighted_width": 48},
            ValueError,
            "weighted_width must be an integer between 63 and 128, not 48",
        ),
        (
            {"block": "norm_scalar", "weighted_width": 129},
            ValueError,
            "weighted_width must be an integer between 2 and 128, not 129",
        ),
    ],
)
def test_bad_norm_configs_are_one_line_errors_naming_the_field(config, error, message):
    with pytest.raises(error) as raised:
        from_config(config)
    assert str(raised.value) == message


def test_norm_adapter_checks_the_preset_when_called_directly():
    with pytest.raises(ValueError, match=r"^preset must be one of int8, int16, not 'fp8'$"):
        block("norm_dx").build(preset="fp8", max_count=16, lanes=1, sets=1)


def test_synth_factories_build_norm_units_through_the_adapter():
    from wavecore.boards.synth import registry_factories
    from wavecore.boards.targets import get_target

    factory, reference, parameters = registry_factories(
        {"block": "norm_affine", "preset": "int16", "lanes": 1, "sets": 2}, get_target("ulx3s-85f")
    )
    assert parameters == {"block": "norm_affine", "preset": "int16", "max_count": 1 << 16, "lanes": 1, "sets": 2}
    for unit in (factory(), reference()):
        assert (unit.lanes, unit.sets, unit.arithmetic.activation.width, unit.arithmetic.max_count) == (
            1, 2, 16, 1 << 16)
    with pytest.raises(ValueError, match=r"^max_count must be an integer between 1 and 1073741824, not 0$"):
        registry_factories({"block": "norm_dx", "max_count": 0}, get_target("ulx3s-85f"))


def test_core_cols_beyond_the_gemm_lanes_is_refused_naming_cols(tmp_path):
    with pytest.raises(ValueError, match=r"^cols must be between 1 and 256 \(the GEMM unit's lanes\), not 300$"):
        generate_files({"block": "core", "cols": 300}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
