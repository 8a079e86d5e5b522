"""hdl/registry.py: blocks by name, parameter specs matching the constructors, one-line config errors."""

import inspect
import json

import pytest

from hdl.registry import BLOCKS, block, from_config, full_config, generate_files
from hdl.systolic import SystolicArray

pytestmark = pytest.mark.filterwarnings("ignore:.*created but never used")


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
