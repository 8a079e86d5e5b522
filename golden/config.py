"""The accelerator configuration: one frozen object, loaded from YAML and validated once.

The same object parameterizes the Verilog generators (array shape, dataflow, numerics), the golden
model (the :class:`~golden.numerics.MacArithmetic` it checks against), the planner (buffer size, element
size, array shape) and the report header, so hardware, model and report cannot disagree (``STYLE.md``,
"Configuration").

YAML format (every key optional; defaults shown in ``configs/default.yaml``)::

    name: wavecore-default
    array:
      rows: 8
      cols: 8
      dataflow: output_stationary      # or weight_stationary
    numerics:
      in_width: 8                      # operand bits
      acc_width: 32                    # accumulator bits
      signed: true
      overflow: wrap                   # or saturate
    memory:
      buffer: 10MiB                    # on-chip buffer capacity (B, KiB, MiB, GiB suffixes)
      dram_bytes_per_cycle: 16         # DRAM bandwidth at the accelerator clock
    clock_mhz: 200
    workload:
      network: tiny_resnet             # zoo name or YAML path
      batch: 8
      input_size: null                 # override the network's input height/width
      norm: gn                         # bn or gn
      dtype: int8                      # element type for traffic figures: int8, bf16, fp16, fp32
      seed: 0

Errors are :class:`ConfigError` (a ``ValueError``) with one line naming the field, e.g.
``array.rows must be a positive integer, not 0``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from golden.numerics import OVERFLOW_MODES, MacArithmetic

__all__ = [
    "DATAFLOWS",
    "DATAFLOW_SHORT",
    "DTYPE_BYTES",
    "AcceleratorConfig",
    "ArrayConfig",
    "ConfigError",
    "MemoryConfig",
    "NumericsConfig",
    "WorkloadConfig",
    "default_config",
    "load_config",
    "parse_size",
]

DATAFLOWS = ("output_stationary", "weight_stationary")
#: The short names the planner and the cycle model use (``golden.cycles.DATAFLOWS``).
DATAFLOW_SHORT = {"output_stationary": "os", "weight_stationary": "ws"}
DTYPE_BYTES = {"int8": 1, "int16": 2, "bf16": 2, "fp16": 2, "fp32": 4}
NORMS = ("bn", "gn")
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


def _positive_int(path: str, value, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (maximum and value > maximum):
        limit = f" no larger than {maximum}" if maximum else ""
        raise ConfigError(f"{path} must be a positive integer{limit}, not {value!r}")
    return value


def _choice(path: str, value, allowed) -> str:
    if value not in allowed:
        raise ConfigError(f"{path} must be one of {', '.join(map(str, allowed))}, not {value!r}")
    return value


def _bool(path: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path} must be true or false, not {value!r}")
    return value


@dataclass(frozen=True)
class ArrayConfig:
    rows: int = 8
    cols: int = 8
    dataflow: str = "output_stationary"

    def __post_init__(self):
        _positive_int("array.rows", self.rows, 256)
        _positive_int("array.cols", self.cols, 256)
        _choice("array.dataflow", self.dataflow, DATAFLOWS)


@dataclass(frozen=True)
class NumericsConfig:
    in_width: int = 8
    acc_width: int = 32
    signed: bool = True
    overflow: str = "wrap"

    def __post_init__(self):
        _positive_int("numerics.in_width", self.in_width)
        _positive_int("numerics.acc_width", self.acc_width)
        _bool("numerics.signed", self.signed)
        _choice("numerics.overflow", self.overflow, OVERFLOW_MODES)
        try:
            self.arithmetic  # noqa: B018 - validates the combination once
        except (TypeError, ValueError) as error:
            raise ConfigError(f"numerics.{error}") from None

    @property
    def arithmetic(self) -> MacArithmetic:
        return MacArithmetic(self.in_width, self.acc_width, self.signed, self.overflow)


@dataclass(frozen=True)
class MemoryConfig:
    buffer: int = 10 << 20
    dram_bytes_per_cycle: int = 16

    def __post_init__(self):
        object.__setattr__(self, "buffer", parse_size(self.buffer, "memory.buffer"))
        _positive_int("memory.dram_bytes_per_cycle", self.dram_bytes_per_cycle)


@dataclass(frozen=True)
class WorkloadConfig:
    network: str = "tiny_resnet"
    batch: int = 8
    input_size: int | None = None
    norm: str = "gn"
    dtype: str = "int8"
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.network, str) or not self.network:
            raise ConfigError(f"workload.network must be a zoo name or a YAML path, not {self.network!r}")
        _positive_int("workload.batch", self.batch)
        if self.input_size is not None:
            _positive_int("workload.input_size", self.input_size)
        _choice("workload.norm", self.norm, NORMS)
        _choice("workload.dtype", self.dtype, tuple(DTYPE_BYTES))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"workload.seed must be a non-negative integer, not {self.seed!r}")


@dataclass(frozen=True)
class AcceleratorConfig:
    """A whole accelerator configuration (see the module docstring for the YAML format)."""

    name: str = "wavecore-default"
    array: ArrayConfig = field(default_factory=ArrayConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    clock_mhz: float = 200.0
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, not {self.name!r}")
        if not isinstance(self.clock_mhz, int | float) or isinstance(self.clock_mhz, bool) or self.clock_mhz <= 0:
            raise ConfigError(f"clock_mhz must be a positive number, not {self.clock_mhz!r}")

    @property
    def arithmetic(self) -> MacArithmetic:
        return self.numerics.arithmetic

    @property
    def element_bytes(self) -> int:
        return DTYPE_BYTES[self.workload.dtype]

    def systolic_parameters(self) -> dict:
        """Keyword arguments for :class:`hdl.systolic.SystolicArray`."""
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
        scalars = {"name", "clock_mhz"}
        unknown = set(data) - set(sections) - scalars
        if unknown:
            allowed = ", ".join(sorted(set(sections) | scalars))
            raise ConfigError(f"unknown configuration key {sorted(unknown)[0]!r} (allowed: {allowed})")
        kwargs = {key: data[key] for key in scalars if key in data}
        for key, section in sections.items():
            value = data.get(key) or {}
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a mapping, not {value!r}")
            known = set(section.__dataclass_fields__)
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
        text = resources.files("golden").joinpath("default_config.yaml").read_text()
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
