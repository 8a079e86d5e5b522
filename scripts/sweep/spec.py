"""The sweep file: which parameters vary, over which values, and how each point is evaluated.

Format (YAML; every key but ``grid``/``points`` optional; documented with examples in ``docs/sweeps.md``)::

    name: resnet50-planner            # shown in the report (default: the file's stem)
    evaluate: [planner]               # or a mapping {planner: {}, rtl: {gemm: [64, 64, 64]}, synth: {...}}
    base:                             # parameters shared by every point
      workload.network: resnet50
      workload.batch: 32
    grid:                             # the Cartesian product of these lists
      array.size: [8, 16, 32]         # shorthand: array.rows = array.cols
      memory.buffer: [1MiB, 4MiB]
      array.dataflow: [os, ws]
    points:                           # and/or an explicit list of points (each over ``base``)
      - {array.rows: 16, array.cols: 8}
    report:
      objectives: [step_cycles, dram_bytes, pes, memory.buffer]   # Pareto: minimised (fmax, utilization: maximised)
      plots: [[dram_bytes, step_cycles]]                          # x, y of each Pareto plot
      color: array                                                # colour by array size (or any parameter)

Parameters are the fields of the accelerator configuration (:mod:`wavecore.golden.config`) by their dotted
YAML path, plus ``array.size`` and the planner's ``workload.schedule``. Every point is validated by building its
:class:`~wavecore.golden.config.AcceleratorConfig` before anything runs, so a bad value is refused with one line
naming the field (``grid.array.rows: array.rows must be a positive integer no larger than 256, not 0``).

A point's identity is a stable hash of its resolved parameters (every parameter, defaults included, sizes in
bytes) and of the evaluators with their options: the same point in another sweep file has the same id, and a
resumed sweep skips the ids already in its table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wavecore.golden.config import AcceleratorConfig, ConfigError

__all__ = [
    "DATAFLOW_ALIASES",
    "PARAMETERS",
    "SCHEDULES",
    "Point",
    "SweepError",
    "SweepSpec",
    "load_sweep",
    "parse_sweep",
    "point_label",
]

#: Planner schedules a point may name (``workload.schedule``): the MBS family of ``wavecore plan``.
SCHEDULES = ("baseline", "baseline_bnff", "mbs_greedy", "mbs_optimal", "mbs_optimal_bnff")
DATAFLOW_ALIASES = {"os": "output_stationary", "ws": "weight_stationary"}

#: Every parameter of a point (dotted path into the accelerator configuration), in table-column order.
PARAMETERS = (
    "array.rows",
    "array.cols",
    "array.dataflow",
    "numerics.in_width",
    "numerics.acc_width",
    "numerics.signed",
    "numerics.overflow",
    "memory.buffer",
    "memory.dram_bytes_per_cycle",
    "clock_mhz",
    "workload.network",
    "workload.batch",
    "workload.input_size",
    "workload.norm",
    "workload.dtype",
    "workload.schedule",
)
_SHORTHANDS = ("array.size",)
_DEFAULT_SCHEDULE = "mbs_optimal"
_TOP_KEYS = ("name", "evaluate", "base", "grid", "points", "report")
_REPORT_KEYS = ("objectives", "plots", "color")


class SweepError(ValueError):
    """A bad sweep file; the message is one line naming the field."""


@dataclass(frozen=True)
class Point:
    """One design point: its resolved parameters (every name of :data:`PARAMETERS`) and its id."""

    id: str
    parameters: dict

    def config(self) -> AcceleratorConfig:
        """The point's accelerator configuration (``workload.schedule`` is not part of it)."""
        return _config_from(self.parameters)


@dataclass
class SweepSpec:
    """A parsed sweep file (see the module docstring)."""

    name: str
    evaluate: dict  # evaluator name -> options (validated by the evaluator)
    points: list[Point]
    objectives: list[str]
    plots: list[tuple[str, str]]
    color: str
    repeated: int = 0  # points listed more than once (run once)
    source: str = ""
    extra: dict = field(default_factory=dict)


def _config_from(parameters: dict) -> AcceleratorConfig:
    nested: dict = {}
    for name, value in parameters.items():
        if name == "workload.schedule":
            continue
        if "." in name:
            section, key = name.split(".", 1)
            nested.setdefault(section, {})[key] = value
        else:
            nested[name] = value
    return AcceleratorConfig.from_dict(nested)


def _defaults() -> dict:
    config = AcceleratorConfig().to_dict()
    values = {}
    for name in PARAMETERS:
        if name == "workload.schedule":
            values[name] = _DEFAULT_SCHEDULE
            continue
        node = config
        for part in name.split("."):
            node = node[part]
        values[name] = node
    return values


def _check_name(where: str, name) -> None:
    if not isinstance(name, str) or (name not in PARAMETERS and name not in _SHORTHANDS):
        allowed = ", ".join((*PARAMETERS, *_SHORTHANDS))
        raise SweepError(f"{where}: unknown parameter {name!r} (allowed: {allowed})")


def _resolve(where: str, assignments: dict) -> dict:
    """Defaults overlaid by ``assignments`` (in order), shorthands expanded, values normalised and checked."""
    values = _defaults()
    for name, value in assignments.items():
        if name == "array.size":
            values["array.rows"] = values["array.cols"] = value
        elif name == "array.dataflow":
            values[name] = DATAFLOW_ALIASES.get(value, value) if isinstance(value, str) else value
        else:
            values[name] = value
    if values["workload.schedule"] not in SCHEDULES:
        raise SweepError(
            f"{where}: workload.schedule must be one of {', '.join(SCHEDULES)}, not {values['workload.schedule']!r}"
        )
    try:
        config = _config_from(values)
    except ConfigError as error:
        raise SweepError(f"{where}: {error}") from None
    # Normalised values (sizes in bytes, numbers as the config holds them) make the identity hash stable.
    for name in PARAMETERS:
        if name == "workload.schedule":
            continue
        node = config
        for part in name.split("."):
            node = getattr(node, part)
        values[name] = node
    return values


def point_id(parameters: dict, evaluate: dict) -> str:
    """The stable identity of a point: 16 hex digits of SHA-256 over its parameters and evaluators."""
    canonical = json.dumps({"parameters": parameters, "evaluate": evaluate}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def point_label(parameters: dict, *, workload: bool = True) -> str:
    """A short human label: ``32x32 ws 4MiB mbs_optimal resnet50/32`` (``workload``), else the array and its
    arithmetic: ``32x32 ws int8->int32``."""
    short = {value: key for key, value in DATAFLOW_ALIASES.items()}
    dataflow = short.get(parameters["array.dataflow"], parameters["array.dataflow"])
    array = f"{parameters['array.rows']}x{parameters['array.cols']} {dataflow}"
    if not workload:
        kind = "int" if parameters["numerics.signed"] else "uint"
        return f"{array} {kind}{parameters['numerics.in_width']}->{kind}{parameters['numerics.acc_width']}"
    buffer = parameters["memory.buffer"]
    if buffer % (1 << 20) == 0:
        size = f"{buffer >> 20}MiB"
    else:
        size = f"{buffer >> 10}KiB" if buffer % 1024 == 0 else f"{buffer}B"
    network = Path(str(parameters["workload.network"])).stem
    return f"{array} {size} {parameters['workload.schedule']} {network}/{parameters['workload.batch']}"


def _checked(where: str, assignments: dict, evaluate: dict, evaluators) -> dict:
    """:func:`_resolve`, then every evaluator's own check of the point."""
    parameters = _resolve(where, assignments)
    for evaluator in evaluate:
        try:
            evaluators[evaluator].check_point(parameters)
        except (TypeError, ValueError) as error:
            raise SweepError(f"{where}: {error}") from None
    return parameters


def _mapping(where: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"{where} must be a mapping of parameter: value, not {type(value).__name__}")
    for name in value:
        _check_name(where, name)
    return value


def _evaluate(value, evaluators) -> dict:
    if value is None:
        value = ["planner"]
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        value = {name: {} for name in value}
    if not isinstance(value, dict) or not value:
        raise SweepError(f"evaluate must be a list of evaluator names or a mapping name: options, not {value!r}")
    result = {}
    for name, options in value.items():
        if name not in evaluators:
            raise SweepError(f"evaluate: unknown evaluator {name!r} (allowed: {', '.join(evaluators)})")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise SweepError(f"evaluate.{name} must be a mapping of options, not {options!r}")
        try:
            result[name] = evaluators[name].check_options(options)
        except (TypeError, ValueError) as error:
            raise SweepError(f"evaluate.{name}.{error}") from None
    return result


def parse_sweep(data, *, source: str = "sweep", evaluators=None) -> SweepSpec:
    """Parse a sweep from its YAML data (a mapping); ``evaluators`` defaults to the built-in registry."""
    from wavecore.sweep.evaluators import EVALUATORS

    evaluators = EVALUATORS if evaluators is None else evaluators
    if not isinstance(data, dict):
        raise SweepError(
            f"{source}: a sweep file must be a mapping with 'grid' and/or 'points', not {type(data).__name__}"
        )
    unknown = set(data) - set(_TOP_KEYS)
    if unknown:
        raise SweepError(f"unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(_TOP_KEYS)})")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise SweepError(f"name must be a non-empty string, not {name!r}")
    evaluate = _evaluate(data.get("evaluate"), evaluators)
    base = _mapping("base", data.get("base"))
    _resolve("base", base)

    assignments = []
    grid = data.get("grid")
    if grid is not None:
        grid = _mapping("grid", grid)
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"grid.{key} must be a non-empty list of values, not {values!r}")
        keys = list(grid)
        for combination in itertools.product(*(grid[key] for key in keys)):
            assignments.append(("grid", dict(zip(keys, combination))))
    listed = data.get("points")
    if listed is not None:
        if not isinstance(listed, list):
            raise SweepError(f"points must be a list of mappings, not {type(listed).__name__}")
        for index, entry in enumerate(listed):
            assignments.append((f"points[{index}]", _mapping(f"points[{index}]", entry)))
    if not assignments:
        raise SweepError("a sweep needs 'grid' (lists of values) or 'points' (a list of mappings)")

    points, seen, repeated = [], set(), 0
    for where, assignment in assignments:
        # Name the varying field in the error: grid.array.rows, points[3].memory.buffer.
        try:
            parameters = _checked("", {**base, **assignment}, evaluate, evaluators)
        except SweepError as error:
            message = str(error).removeprefix(": ")
            # Name the grid key whose value alone gives this error (grid.array.rows: ...); a combination that is
            # only wrong together (in_width 16 with acc_width 12) is named with the point's grid values.
            if where == "grid":
                for key, value in assignment.items():
                    try:
                        _checked("", {**base, key: value}, evaluate, evaluators)
                    except SweepError as alone:
                        if str(alone).removeprefix(": ") == message:
                            raise SweepError(f"grid.{key}: {message}") from None
                values = ", ".join(f"{key}={value}" for key, value in assignment.items())
                raise SweepError(f"grid point ({values}): {message}") from None
            raise SweepError(f"{where}: {message}") from None
        identity = point_id(parameters, evaluate)
        if identity in seen:
            repeated += 1
            continue
        seen.add(identity)
        points.append(Point(identity, parameters))

    report = data.get("report") or {}
    if not isinstance(report, dict):
        raise SweepError(f"report must be a mapping, not {report!r}")
    extra = set(report) - set(_REPORT_KEYS)
    if extra:
        raise SweepError(f"unknown key report.{sorted(extra)[0]} (allowed: {', '.join(_REPORT_KEYS)})")
    metrics = {column for evaluator in evaluate for column in evaluators[evaluator].columns} | {"pes"}
    known = metrics | set(PARAMETERS)
    objectives = report.get("objectives")
    if objectives is None:
        objectives = [o for evaluator in evaluate for o in evaluators[evaluator].objectives]
        objectives = list(dict.fromkeys(objectives))
    if not isinstance(objectives, list) or not objectives:
        raise SweepError(f"report.objectives must be a non-empty list of columns, not {objectives!r}")
    for objective in objectives:
        if objective not in known:
            raise SweepError(f"report.objectives: unknown column {objective!r} (allowed: {', '.join(sorted(known))})")
    plots = report.get("plots")
    if plots is None:
        plots = [tuple(p) for evaluator in evaluate for p in evaluators[evaluator].plots]
    if not isinstance(plots, list) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in plots):
        raise SweepError(f"report.plots must be a list of [x, y] column pairs, not {plots!r}")
    for pair in plots:
        for column in pair:
            if column not in known:
                raise SweepError(f"report.plots: unknown column {column!r} (allowed: {', '.join(sorted(known))})")
    color = report.get("color", "array")
    if color != "array" and color not in known:
        raise SweepError(f"report.color must be 'array' or a column ({', '.join(sorted(known))}), not {color!r}")
    return SweepSpec(
        name=name,
        evaluate=evaluate,
        points=points,
        objectives=list(objectives),
        plots=[tuple(p) for p in plots],
        color=color,
        repeated=repeated,
        source=source,
    )


def load_sweep(path, *, evaluators=None) -> SweepSpec:
    """Read and parse a sweep YAML file (errors: :class:`SweepError`, one line)."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SweepError(f"{path} is not valid YAML{where}") from None
    return parse_sweep(data, source=str(path), evaluators=evaluators)
