"""JSON Schemas of the accelerator and network YAML (``golden.schema``): generated from the loaders' own field
definitions, accepted by ``jsonschema``, agreeing with the loaders, and shipped/documented up to date."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from wavecore.cli import main
from wavecore.golden.config import ConfigError, load_config
from wavecore.golden.network import ZOO, Network, NetworkError, zoo_path
from wavecore.golden.schema import accelerator_reference, accelerator_schema, network_reference, network_schema, schema

ROOT = Path(__file__).resolve().parents[2]


def _validator(kind):
    document = schema(kind)
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def _accepts(kind, data) -> bool:
    return _validator(kind).is_valid(data)


def test_schemas_are_valid_json_schema():
    for kind in ("accelerator", "network"):
        _validator(kind)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")) + [ROOT / "golden" / "default_config.yaml"])
def test_shipped_configs_validate(path):
    assert _accepts("accelerator", yaml.safe_load(path.read_text()))
    load_config(path)  # and the loader agrees


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_networks_validate(name):
    assert _accepts("network", yaml.safe_load(zoo_path(name).read_text()))


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "pipelines").glob("*.yaml")))
def test_pipeline_networks_validate(path):
    assert _accepts("network", yaml.safe_load(path.read_text()))


BAD_CONFIGS = [
    ({"array": {"rows": 0}}, "array.rows must be a positive integer no larger than 256, not 0"),
    ({"array": {"rows": 300}}, "array.rows must be a positive integer no larger than 256, not 300"),
    ({"array": {"rows": True}}, "array.rows must be a positive integer no larger than 256, not True"),
    ({"array": {"dataflow": "row_stationary"}},
     "array.dataflow must be one of output_stationary, weight_stationary, not 'row_stationary'"),
    ({"arrays": {}}, "unknown configuration key 'arrays' (allowed: array, clock_mhz, memory, name, numerics, "
     "workload)"),
    ({"array": {"colz": 3}}, "unknown key array.colz (allowed: cols, dataflow, rows)"),
    ({"numerics": {"in_width": 1}}, "numerics.in_width must be an integer from 2 to 18, not 1"),
    ({"numerics": {"overflow": "clamp"}}, "numerics.overflow must be one of wrap, saturate, not 'clamp'"),
    ({"numerics": {"signed": "yes"}}, "numerics.signed must be true or false, not 'yes'"),
    ({"memory": {"buffer": "10XB"}}, "memory.buffer must be a size such as 4096, 512KiB, 10MiB or 1GiB, not '10XB'"),
    ({"memory": {"buffer": "0MiB"}}, "memory.buffer must be positive, not '0MiB'"),
    ({"memory": {"buffer": 0}}, "memory.buffer must be positive, not 0"),
    ({"memory": {"buffer": "10 MB"}}, None),  # accepted by both
    ({"memory": {"buffer": "256kib"}}, None),
    ({"workload": {"norm": "ln"}}, "workload.norm must be one of bn, gn, none or null, not 'ln'"),
    ({"workload": {"norm": None, "input_size": None}}, None),
    ({"workload": {"seed": -1}}, "workload.seed must be a non-negative integer, not -1"),
    ({"workload": {"network": ""}}, "workload.network must be a zoo name or a YAML path, not ''"),
    ({"clock_mhz": -5}, "clock_mhz must be a positive number, not -5"),
    ({"clock_mhz": 0}, "clock_mhz must be a positive number, not 0"),
    ({"name": 7}, "name must be a non-empty string, not 7"),
    ({"array": []}, "array must be a mapping, not []"),
    ({"array": None, "memory": None}, None),
    ([1, 2], "the configuration must be a mapping, not list"),
]


@pytest.mark.parametrize(("data", "message"), BAD_CONFIGS)
def test_schema_rejects_what_the_loader_rejects(data, message):
    from wavecore.golden.config import AcceleratorConfig

    if message is None:
        AcceleratorConfig.from_dict(data)
        assert _accepts("accelerator", data)
        return
    with pytest.raises(ConfigError) as error:
        AcceleratorConfig.from_dict(data)
    assert str(error.value) == message  # the loader keeps its exact one-line message
    assert not _accepts("accelerator", data)


def _tiny(**changes):
    spec = yaml.safe_load(zoo_path("tiny_resnet").read_text())
    layers = spec["layers"]
    for name, fields in changes.items():
        if name == "top":
            spec.update(fields)
            continue
        entry = next(layer for layer in layers if layer["name"] == name)
        entry.update(fields)
    return spec


BAD_NETWORKS = [
    (_tiny(stem={"kernel": 0}), "layer 'stem': kernel must be an integer >= 1 or a pair of them"),
    (_tiny(stem={"kernel": [3, 3, 3]}), "layer 'stem': kernel must be an integer >= 1 or a pair of them"),
    (_tiny(stem={"padding": -1}), "layer 'stem': padding must be an integer >= 0 or a pair of them"),
    (_tiny(stem={"bias": "yes"}), "layer 'stem': bias must be true or false, not 'yes'"),
    (_tiny(stem={"dilation": 2}), "layer 'stem': dilation is not a parameter of conv2d"),
    (_tiny(stem={"op": "conv3d"}), "layer 'stem': op must be one of conv2d, linear"),
    (_tiny(stem_relu={"max_value": -6}), "layer 'stem_relu': max_value must be a positive number, not -6"),
    (_tiny(fc={"out_features": "classes"}), "layer 'fc': out_features must be an integer >= 1, not 'classes'"),
    (_tiny(pool={"kernel": None}), "layer 'pool': kernel is required for maxpool"),
    (_tiny(top={"norm": "ln"}), "network: field 'norm' must be one of bn, gn, none, not 'ln'"),
    (_tiny(top={"gn_groups": 0}), "network: field 'gn_groups' must be an integer >= 1, not 0"),
    (_tiny(top={"colour": "red"}), "network: unknown field 'colour'"),
    (_tiny(top={"layers": []}), "network: field 'layers' must be a non-empty list"),
    (_tiny(top={"description": 5}), "network: field 'description' must be a string, not 5"),
    (_tiny(top={"input": {"name": "x", "shape": [3, 16]}}), "layer 'x': shape must be [C, H, W] of positive"),
    (_tiny(res1_add={"inputs": ["res1b_norm"]}), "layer 'res1_add': inputs of add must name at least 2 layers"),
    (_tiny(fc={"out_features": 10}), None),  # accepted by both
    (_tiny(stem={"kernel": [3, 1], "padding": [1, 0]}), None),
]


@pytest.mark.parametrize(("spec", "message"), BAD_NETWORKS)
def test_network_schema_rejects_what_the_loader_rejects(spec, message):
    if message is None:
        Network.from_spec(spec)
        assert _accepts("network", spec)
        return
    with pytest.raises(NetworkError) as error:
        Network.from_spec(spec)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not _accepts("network", spec)


def test_shipped_schema_files_and_docs_are_current():
    for kind, build in (("accelerator", accelerator_schema), ("network", network_schema)):
        shipped = json.loads((ROOT / "configs" / "schema" / f"{kind}.schema.json").read_text())
        assert shipped == build(), f"run `python -m wavecore.golden.schema` ({kind})"
    doc = (ROOT / "docs" / "config.md").read_text()
    assert accelerator_reference() in doc and network_reference() in doc, "run `python -m wavecore.golden.schema`"


def test_every_accelerator_key_is_documented():
    from wavecore.golden.config import SECTION_KEYS, TOP_KEYS

    doc = (ROOT / "docs" / "config.md").read_text()
    for key in TOP_KEYS:
        assert f"| `{key.name}` |" in doc
    for section, keys in SECTION_KEYS.items():
        for key in keys:
            assert f"| `{section}.{key.name}` |" in doc


def test_schema_defaults_are_the_loader_defaults():
    from wavecore.golden.config import AcceleratorConfig, parse_size

    defaults = AcceleratorConfig().to_dict()
    properties = accelerator_schema()["properties"]
    for name in ("name", "clock_mhz"):
        assert properties[name]["default"] == defaults[name]
    for section in ("array", "numerics", "memory", "workload"):
        for key, value in defaults[section].items():
            default = properties[section]["properties"][key]["default"]
            assert (parse_size(default) if key == "buffer" else default) == value, (section, key)


def test_schema_command(capsys, tmp_path):
    assert main(["schema", "accelerator"]) == 0
    assert json.loads(capsys.readouterr().out) == accelerator_schema()
    out = tmp_path / "network.schema.json"
    assert main(["schema", "network", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == network_schema()
    assert main(["schema", "nosuch"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "wavecore schema: error: schema must be one of accelerator, network, not 'nosuch'\n"


def test_config_dataclasses_have_exactly_the_defined_keys():
    from dataclasses import fields

    from wavecore.golden.config import (
        SECTION_KEYS,
        TOP_KEYS,
        AcceleratorConfig,
        ArrayConfig,
        MemoryConfig,
        NumericsConfig,
        WorkloadConfig,
    )

    classes = {"array": ArrayConfig, "numerics": NumericsConfig, "memory": MemoryConfig, "workload": WorkloadConfig}
    for section, cls in classes.items():
        assert [f.name for f in fields(cls)] == [key.name for key in SECTION_KEYS[section]]
    assert {f.name for f in fields(AcceleratorConfig)} == {key.name for key in TOP_KEYS} | set(classes)
