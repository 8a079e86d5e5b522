"""The accelerator configuration: one frozen object, loaded from YAML and validated once.

The same object parameterizes the Verilog generators (array shape, dataflow, numerics), the golden
model (the :class:`~wavecore.golden.numerics.MacArithmetic` it checks against), the planner (buffer size, element
size, array shape) and the report header, so hardware, model and report cannot disagree.

YAML format: every key optional, described key by key (type, default, allowed values, meaning) by
:data:`TOP_KEYS` and :data:`SECTION_KEYS`, the one definition the loader validates with, the JSON Schema
(``wavecore schema accelerator``, :mod:`golden.schema`) is generated from and ``docs/config.md`` lists;
``configs/default.yaml`` shows every default.

Errors are :class:`ConfigError` (a ``ValueError``) with one line naming the field, e.g.
``array.rows must be a positive integer, not 0``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from wavecore.golden.numerics import OVERFLOW_MODES, MacArithmetic

__all__ = [
    "DATAFLOWS",
    "DATAFLOW_SHORT",
    "DTYPE_BYTES",
    "SECTION_DOCS",
    "SECTION_KEYS",
    "SIZE_PATTERN",
    "TOP_KEYS",
    "AcceleratorConfig",
    "ArrayConfig",
    "ConfigError",
    "Key",
    "MemoryConfig",
    "NumericsConfig",
    "WorkloadConfig",
    "default_config",
    "load_config",
    "parse_size",
]

DATAFLOWS = ("output_stationary", "weight_stationary")
#: The short names the planner and the cycle model use (``wavecore.golden.plan.cycles.DATAFLOWS``).
DATAFLOW_SHORT = {"output_stationary": "os", "weight_stationary": "ws"}
DTYPE_BYTES = {"int8": 1, "int16": 2, "bf16": 2, "fp16": 2, "fp32": 4}
NORMS = ("bn", "gn", "none")
_SIZE_UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 1000, "MB": 10**6, "GB": 10**9}


class ConfigError(ValueError):
    """A bad configuration value; the message is one line naming the field."""


def parse_size(text: str | int, field_name: str = "size") -> int:
    """Parse ``"10MiB"``, ``"512KiB"``, ``"4096"`` or an int into bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
        unit = match.group(2).upper() if match else None
        if not match or unit not in _SIZE_UNITS:
            raise ConfigError(
                f"{field_name} must be a size such as 4096, 512KiB, 10MiB or 1GiB, not {text!r}"
            )
        value = float(match.group(1)) * _SIZE_UNITS[unit]
        if value != int(value):
            raise ConfigError(f"{field_name} must be a whole number of bytes, not {text!r}")
        value = int(value)
    if value <= 0:
        raise ConfigError(f"{field_name} must be positive, not {text!r}")
    return value


SIZE_PATTERN = (
    r"^\s*(?=[0-9.]*[1-9])[0-9]+(\.[0-9]+)?\s*("
    + "|".join(
        "".join(f"[{c.upper()}{c.lower()}]" for c in unit) for unit in sorted(_SIZE_UNITS, key=len, reverse=True)
    )
    + r")\s*$"
)
"""The sizes :func:`parse_size` accepts, as a regular expression (JSON Schema ``pattern``, ECMA-262 compatible;
the loader additionally refuses a fractional size that is not a whole number of bytes)."""

KINDS = ("count", "natural", "choice", "flag", "size", "positive", "text")


@dataclass(frozen=True)
class Key:
    """One key of the accelerator YAML: type, default, allowed values and meaning, defined once.

    The loader validates with :meth:`check` (the one-line messages), :func:`golden.schema.accelerator_schema`
    turns every key into JSON Schema with :meth:`json_schema`, and ``docs/config.md`` is generated from the
    same keys, so the three cannot disagree.

    ``kind`` is one of :data:`KINDS`: ``count`` (integer >= 1, at most ``maximum``), ``natural`` (integer >= 0),
    ``choice`` (one of ``choices``), ``flag`` (true/false), ``size`` (bytes, :func:`parse_size`), ``positive``
    (number > 0), ``text`` (non-empty string; ``expected`` words the message). ``nullable`` also allows null.
    """

    name: str
    kind: str
    default: object
    doc: str
    choices: tuple = ()
    maximum: int | None = None
    minimum: int = 1
    nullable: bool = False
    expected: str = "a non-empty string"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    def check(self, path: str, value):
        """The validated (and normalised) value, or :class:`ConfigError` naming ``path``."""
        if value is None and self.nullable:
            return None
        integer = isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "count":
            if not integer or value < self.minimum or (self.maximum and value > self.maximum):
                if self.minimum > 1:
                    raise ConfigError(f"{path} must be an integer from {self.minimum} to {self.maximum}, not {value!r}")
                limit = f" no larger than {self.maximum}" if self.maximum else ""
                raise ConfigError(f"{path} must be a positive integer{limit}, not {value!r}")
        elif self.kind == "natural":
            if not integer or value < 0:
                raise ConfigError(f"{path} must be a non-negative integer, not {value!r}")
        elif self.kind == "choice":
            if value not in self.choices:
                null = " or null" if self.nullable else ""
                raise ConfigError(f"{path} must be one of {', '.join(map(str, self.choices))}{null}, not {value!r}")
        elif self.kind == "flag":
            if not isinstance(value, bool):
                raise ConfigError(f"{path} must be true or false, not {value!r}")
        elif self.kind == "size":
            return parse_size(value, path)
        elif self.kind == "positive":
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{path} must be a positive number, not {value!r}")
        elif not isinstance(value, str) or not value:  # text
            raise ConfigError(f"{path} must be {self.expected}, not {value!r}")
        return value

    def json_schema(self) -> dict:
        """This key as JSON Schema (draft 2020-12), with its default and description."""
        kind = self.kind
        if kind == "count":
            schema = {"type": "integer", "minimum": self.minimum}
            if self.maximum:
                schema["maximum"] = self.maximum
        elif kind == "natural":
            schema = {"type": "integer", "minimum": 0}
        elif kind == "choice":
            schema = {"enum": list(self.choices)}
        elif kind == "flag":
            schema = {"type": "boolean"}
        elif kind == "size":
            schema = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": SIZE_PATTERN}]}
        elif kind == "positive":
            schema = {"type": "number", "exclusiveMinimum": 0}
        else:
            schema = {"type": "string", "minLength": 1}
        if self.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        return {**schema, "default": self.default, "description": self.doc}

    def type_text(self) -> str:
        """The type and allowed values in words (``docs/config.md``)."""
        text = {
            "count": f"integer >= {self.minimum}" + (f", <= {self.maximum}" if self.maximum else ""),
            "natural": "integer >= 0",
            "choice": " \\| ".join(f"`{c}`" for c in self.choices),
            "flag": "`true` \\| `false`",
            "size": "size: bytes, or a number with B, KiB, MiB, GiB, KB, MB, GB (case-insensitive)",
            "positive": "number > 0",
            "text": "non-empty string",
        }[self.kind]
        return text + (" or `null`" if self.nullable else "")


#: Top-level scalar keys of the accelerator YAML.
TOP_KEYS = (
    Key("name", "text", "wavecore-default", "name of the configuration (reports, summary)"),
    Key("clock_mhz", "positive", 200, "accelerator clock in MHz (converts cycles to time in reports)"),
)
#: Sections of the accelerator YAML, each a mapping of :class:`Key`; ``SECTION_DOCS`` says what each holds.
SECTION_KEYS = {
    "array": (
        Key("rows", "count", 8, "systolic array rows", maximum=256),
        Key("cols", "count", 8, "systolic array columns", maximum=256),
        Key("dataflow", "choice", "output_stationary", "array dataflow (os / ws in the planner and cycle model)",
            choices=DATAFLOWS),
    ),
    "numerics": (
        Key("in_width", "count", 8, "operand bits", minimum=2, maximum=18),
        Key("acc_width", "count", 32, "accumulator bits, at least 2 * in_width (checked by the loader only); "
            "`wavecore plan --config` takes its bytes as the weight-gradient element size", maximum=62),
        Key("signed", "flag", True, "two's complement operands and accumulator"),
        Key("overflow", "choice", "wrap", "accumulator overflow: wrap modulo 2**acc_width or saturate",
            choices=OVERFLOW_MODES),
    ),
    "memory": (
        Key("buffer", "size", "128KiB",
            "on-chip buffer capacity (the planner's buffer; 128 KiB: a mid-size FPGA's block RAM)"),
        Key("dram_bytes_per_cycle", "count", 16, "DRAM bandwidth in bytes per accelerator clock cycle"),
    ),
    "workload": (
        Key("network", "text", "tiny_resnet", "network to plan and train: a zoo name or a network YAML path",
            expected="a zoo name or a YAML path"),
        Key("batch", "count", 8, "mini-batch size"),
        Key("input_size", "count", None, "input height = width (null: the network's own)", nullable=True),
        Key("norm", "choice", None, "normalisation of every `op: norm` layer (null: the network's own)",
            choices=NORMS, nullable=True),
        Key("dtype", "choice", "int8", "element type of the traffic figures (bytes per activation and weight)",
            choices=tuple(DTYPE_BYTES)),
        Key("seed", "natural", 0, "seed of the parameters and data"),
    ),
}
SECTION_DOCS = {
    "array": "the systolic array the generators build and the planner sizes tiles for",
    "numerics": "the MAC arithmetic of the array and the golden integer model",
    "memory": "on-chip buffer and DRAM bandwidth",
    "workload": "what `wavecore run` plans and trains (a workload section applies to its own network only: "
    "`wavecore plan --config FILE --network NET` keeps NET's own norm and input size)",
}


def _default(section: str, name: str):
    return next(key.default for key in SECTION_KEYS[section] if key.name == name)


def _check_section(config, section: str) -> None:
    for key in SECTION_KEYS[section]:
        object.__setattr__(config, key.name, key.check(f"{section}.{key.name}", getattr(config, key.name)))


@dataclass(frozen=True)
class ArrayConfig:
    rows: int = _default("array", "rows")
    cols: int = _default("array", "cols")
    dataflow: str = _default("array", "dataflow")

    def __post_init__(self):
        _check_section(self, "array")


@dataclass(frozen=True)
class NumericsConfig:
    in_width: int = _default("numerics", "in_width")
    acc_width: int = _default("numerics", "acc_width")
    signed: bool = _default("numerics", "signed")
    overflow: str = _default("numerics", "overflow")

    def __post_init__(self):
        _check_section(self, "numerics")
        try:
            self.arithmetic  # noqa: B018 - validates the combination once (not expressible in the schema)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"numerics.{error}") from None

    @property
    def arithmetic(self) -> MacArithmetic:
        return MacArithmetic(self.in_width, self.acc_width, self.signed, self.overflow)


@dataclass(frozen=True)
class MemoryConfig:
    buffer: int = _default("memory", "buffer")
    dram_bytes_per_cycle: int = _default("memory", "dram_bytes_per_cycle")

    def __post_init__(self):
        _check_section(self, "memory")


@dataclass(frozen=True)
class WorkloadConfig:
    network: str = _default("workload", "network")
    batch: int = _default("workload", "batch")
    input_size: int | None = _default("workload", "input_size")
    norm: str | None = _default("workload", "norm")
    dtype: str = _default("workload", "dtype")
    seed: int = _default("workload", "seed")

    def __post_init__(self):
        _check_section(self, "workload")


@dataclass(frozen=True)
class AcceleratorConfig:
    """A whole accelerator configuration (see the module docstring for the YAML format)."""

    name: str = TOP_KEYS[0].default
    array: ArrayConfig = field(default_factory=ArrayConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    clock_mhz: float = TOP_KEYS[1].default
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)

    def __post_init__(self):
        for key in TOP_KEYS:
            key.check(key.name, getattr(self, key.name))

    @property
    def arithmetic(self) -> MacArithmetic:
        return self.numerics.arithmetic

    @property
    def element_bytes(self) -> int:
        return DTYPE_BYTES[self.workload.dtype]

    def systolic_parameters(self) -> dict:
        """Keyword arguments for :class:`wavecore.hdl.array.systolic.SystolicArray`."""
        return {
            "rows": self.array.rows,
            "cols": self.array.cols,
            "in_width": self.numerics.in_width,
            "acc_width": self.numerics.acc_width,
            "signed": self.numerics.signed,
            "overflow": self.numerics.overflow,
            "dataflow": self.array.dataflow,
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> AcceleratorConfig:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"the configuration must be a mapping, not {type(data).__name__}")
        sections = {"array": ArrayConfig, "numerics": NumericsConfig, "memory": MemoryConfig,
                    "workload": WorkloadConfig}
        scalars = {key.name for key in TOP_KEYS}
        unknown = set(data) - set(sections) - scalars
        if unknown:
            allowed = ", ".join(sorted(set(sections) | scalars))
            raise ConfigError(f"unknown configuration key {sorted(unknown)[0]!r} (allowed: {allowed})")
        kwargs = {key: data[key] for key in scalars if key in data}
        for key, section in sections.items():
            value = data.get(key)
            value = {} if value is None else value  # an empty section (``array:``) is all defaults
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a mapping, not {value!r}")
            known = {k.name for k in SECTION_KEYS[key]}
            extra = set(value) - known
            if extra:
                raise ConfigError(
                    f"unknown key {key}.{sorted(extra)[0]} (allowed: {', '.join(sorted(known))})"
                )
            kwargs[key] = section(**value)
        return cls(**kwargs)


def load_config(source: str | Path | None = None) -> AcceleratorConfig:
    """Load a configuration from a YAML file path (``None``: the embedded default)."""
    if source is None:
        text = resources.files("wavecore.golden").joinpath("default_config.yaml").read_text()
        origin = "the embedded default configuration"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"configuration file {str(source)!r} does not exist")
        text = path.read_text()
        origin = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{origin} is not valid YAML{where}") from None
    return AcceleratorConfig.from_dict(data)


def default_config() -> AcceleratorConfig:
    return load_config(None)
