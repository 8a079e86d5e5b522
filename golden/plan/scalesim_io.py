"""SCALE-Sim interop: read its topology CSV and ``.cfg``, write per-layer reports with its column conventions.

Formats are SCALE-Sim 3.0.0's (``scalesim/topology_utils.py``, ``scalesim/scale_config.py``,
``scalesim/simulator.py``):

* convolution topology: header ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,`` then one row per layer (an optional tenth field is a ``N:M`` sparsity ratio; only
  ``1:1``, dense, is accepted). No padding: ``ofmap = (ifmap - filter) // stride + 1``. A layer whose name contains
  ``DP`` is depthwise: SCALE-Sim splits it into ``Channels`` one-channel layers named ``<name>Channel_<i>``,
  and so does :func:`read_topology`, so layer ids line up with SCALE-Sim's reports;
* GEMM topology (SCALE-Sim's ``-i gemm``): header ``Layer, M, N, K,`` for ``C[M, N] = A[M, K] @ B[K, N]``;
* configuration: ``[architecture_presets]`` with ``ArrayHeight``, ``ArrayWidth``, ``IfmapSramSzkB``,
  ``FilterSramSzkB``, ``OfmapSramSzkB``, ``Dataflow`` (``os``, ``ws`` or ``is``) and an optional ``Bandwidth``.

Each layer is one GEMM with ``M`` ofmap pixels, ``K = filter_h * filter_w * channels`` (the window) and ``N``
filters. SCALE-Sim maps it onto the array as (rows, cols, time) = ``(M, N, K)`` for ``os``, ``(K, N, M)`` for
``ws`` and ``(K, M, N)`` for ``is`` (``calc_spatio_temporal_params``). :func:`layer_report` gives, per layer,
SCALE-Sim's compute-report and access-report quantities from the analytical model
(:func:`wavecore.golden.plan.cycles.gemm_cycles`, SCALE-Sim convention; ``is`` is the ``ws`` schedule of the
transposed GEMM ``C^T = B^T @ A^T``) next to the training passes wavecore adds. DRAM counts are compulsory
traffic: each operand crosses the chip boundary once, as the planner's layer-by-layer baseline assumes. Where the
numbers differ from SCALE-Sim's by design is listed in ``docs/planner.md`` ("SCALE-Sim interop").
"""

from __future__ import annotations

import configparser
import math
import re
from dataclasses import dataclass
from pathlib import Path

from wavecore.files import write_atomic
from wavecore.golden.plan.cycles import gemm_cycles, layer_gemms

__all__ = [
    "COMPUTE_COLUMNS",
    "ACCESS_COLUMNS",
    "DATAFLOWS",
    "DIFF_COLUMNS",
    "ScaleSimConfig",
    "TopologyLayer",
    "diff_reports",
    "find_report",
    "is_scalesim_config",
    "is_topology",
    "layer_report",
    "network_layers",
    "read_config",
    "read_topology",
    "text_table",
    "write_diff",
    "write_reports",
]

DATAFLOWS = ("os", "ws", "is")

CONV_HEADER = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
               "Num Filter", "Strides")
GEMM_HEADER = ("Layer", "M", "N", "K")

#: Columns of ``COMPUTE_REPORT.csv``: SCALE-Sim's names (without its prefetch column), then wavecore's training
#: passes of the same layer.
COMPUTE_COLUMNS = ("LayerID", "Layer name", "Total Cycles", "Stall Cycles", "Overall Util %",
                   "Mapping Efficiency %", "Compute Util %", "Backward Data Cycles", "Backward Weight Cycles",
                   "Training Cycles", "MACs")
#: Columns of ``DETAILED_ACCESS_REPORT.csv``: SCALE-Sim's access counts (in words) without its start/stop cycles.
ACCESS_COLUMNS = ("LayerID", "Layer name", "SRAM IFMAP Reads", "SRAM Filter Reads", "SRAM OFMAP Writes",
                  "DRAM IFMAP Reads", "DRAM Filter Reads", "DRAM OFMAP Writes")


@dataclass(frozen=True)
class TopologyLayer:
    """One SCALE-Sim layer: a GEMM of ``m`` ofmap pixels, window ``k`` and ``n`` filters, plus its tensor sizes.

    ``ifmap_words``, ``filter_words`` and ``ofmap_words`` are the elements of the layer's input, weights and
    output (what crosses DRAM once).
    """

    name: str
    m: int
    k: int
    n: int
    ifmap_words: int
    filter_words: int
    ofmap_words: int


@dataclass(frozen=True)
class ScaleSimConfig:
    """The ``[architecture_presets]`` of a SCALE-Sim ``.cfg`` (SRAM sizes in KiB, as SCALE-Sim's ``kB``)."""

    path: str
    run_name: str
    rows: int
    cols: int
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    dataflow: str
    bandwidth: int | None

    @property
    def buffer_bytes(self) -> int:
        """The three SRAMs together, as wavecore's one on-chip buffer."""
        return 1024 * (self.ifmap_sram_kb + self.filter_sram_kb + self.ofmap_sram_kb)


def _fields(line: str) -> list[str]:
    parts = [part.strip() for part in line.split(",")]
    if parts and parts[-1] == "":
        parts.pop()  # SCALE-Sim rows end with a comma
    return parts


def _norm(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip()).lower()


def is_topology(path) -> bool:
    """True if ``path`` names a ``.csv`` file (a SCALE-Sim topology rather than a network YAML or zoo name)."""
    return str(path).lower().endswith(".csv")


def is_scalesim_config(path) -> bool:
    """True if ``path`` names a SCALE-Sim ``.cfg`` file (rather than an accelerator YAML)."""
    return str(path).lower().endswith(".cfg")


def read_topology(path) -> list[TopologyLayer]:
    """Read a SCALE-Sim topology CSV, convolution or GEMM form (chosen by its header).

    Raises ``ValueError`` with one line ``FILE:LINE: ...`` naming the field and what is allowed.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read SCALE-Sim topology: {error}") from None
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise ValueError(f"{path}:1: empty SCALE-Sim topology, expected a header such as "
                         f"'{', '.join(CONV_HEADER)},' or '{', '.join(GEMM_HEADER)},'")
    header_line, header = numbered[0][0], _fields(numbered[0][1])
    gemm = [_norm(h) for h in header[1:4]] == ["m", "n", "k"]
    expected = GEMM_HEADER if gemm else CONV_HEADER
    if not gemm and [_norm(h) for h in header[1:8]] != [_norm(h) for h in CONV_HEADER[1:]]:
        raise ValueError(f"{path}:{header_line}: header must be '{', '.join(CONV_HEADER)},' (convolution) or "
                         f"'{', '.join(GEMM_HEADER)},' (GEMM), not {numbered[0][1].strip()!r}")
    layers: list[TopologyLayer] = []
    for number, line in numbered[1:]:
        values = _fields(line)
        if len(values) not in (len(expected), len(expected) + 1):
            raise ValueError(f"{path}:{number}: expected {len(expected)} fields ({', '.join(expected)}) and an "
                             f"optional sparsity ratio, got {len(values)}")
        name = values[0]
        if not name:
            raise ValueError(f"{path}:{number}: field '{expected[0]}' must be a layer name, not empty")
        numbers = []
        for column, text in zip(expected[1:], values[1:len(expected)]):
            if not re.fullmatch(r"\d+", text) or int(text) < 1:
                raise ValueError(f"{path}:{number}: field '{column}' must be a positive integer, not {text!r}")
            numbers.append(int(text))
        if len(values) > len(expected) and values[-1].replace(" ", "") != "1:1":
            raise ValueError(f"{path}:{number}: field 'Sparsity' must be 1:1 (dense; wavecore does not model "
                             f"SCALE-Sim's structured sparsity), not {values[-1]!r}")
        if gemm:
            m, n, k = numbers
            layers.append(TopologyLayer(name, m, k, n, m * k, k * n, m * n))
            continue
        height, width, filter_height, filter_width, channels, filters, stride = numbers
        for column, size, filter_size in (("Filter Height", height, filter_height),
                                          ("Filter Width", width, filter_width)):
            if filter_size > size:
                raise ValueError(f"{path}:{number}: field '{column}' must not exceed the IFMAP's {size}, "
                                 f"not {filter_size}")
        pixels = ((height - filter_height) // stride + 1) * ((width - filter_width) // stride + 1)
        if "DP" in name:  # depthwise, split per channel exactly as SCALE-Sim's load_arrays_conv
            for channel in range(channels):
                layers.append(TopologyLayer(f"{name}Channel_{channel}", pixels, filter_height * filter_width,
                                            filters, height * width, filter_height * filter_width * filters,
                                            pixels * filters))
        else:
            window = filter_height * filter_width * channels
            layers.append(TopologyLayer(name, pixels, window, filters, height * width * channels,
                                        window * filters, pixels * filters))
    if not layers:
        raise ValueError(f"{path}:{header_line}: the topology has no layers after its header")
    return layers


_CONFIG_FIELDS = ("ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB", "Dataflow")


def read_config(path) -> ScaleSimConfig:
    """Read the ``[architecture_presets]`` of a SCALE-Sim ``.cfg``; errors are one line ``FILE:LINE: ...``."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read SCALE-Sim config: {error}") from None
    lines = text.splitlines()

    def line_of(pattern: str, default: int = 1) -> int:
        for number, line in enumerate(lines, 1):
            if re.match(pattern, line.strip(), re.IGNORECASE):
                return number
        return default

    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as error:
        number = getattr(error, "lineno", None) or 1
        message = str(error).splitlines()[0]
        raise ValueError(f"{path}:{number}: not a SCALE-Sim .cfg (INI) file: {message}") from None
    section = "architecture_presets"
    if not parser.has_section(section):
        raise ValueError(f"{path}:1: section [{section}] is missing (it holds {', '.join(_CONFIG_FIELDS)})")
    section_line = line_of(r"\[\s*architecture_presets\s*\]")
    values = {}
    for name in _CONFIG_FIELDS + ("Bandwidth",):
        number = line_of(rf"{name}\s*[:=]", section_line)
        if not parser.has_option(section, name):
            if name == "Bandwidth":
                values[name] = None
                continue
            raise ValueError(f"{path}:{section_line}: field '{name}' is missing from [{section}]")
        raw = parser.get(section, name).strip()
        if name == "Dataflow":
            if raw not in DATAFLOWS:
                raise ValueError(f"{path}:{number}: field 'Dataflow' must be one of {', '.join(DATAFLOWS)}, "
                                 f"not {raw!r}")
            values[name] = raw
        elif not re.fullmatch(r"\d+", raw) or int(raw) < 1:
            raise ValueError(f"{path}:{number}: field '{name}' must be a positive integer, not {raw!r}")
        else:
            values[name] = int(raw)
    run_name = parser.get("general", "run_name", fallback=path.stem).strip()
    return ScaleSimConfig(str(path), run_name, values["ArrayHeight"], values["ArrayWidth"],
                          values["IfmapSramSzkB"], values["FilterSramSzkB"], values["OfmapSramSzkB"],
                          values["Dataflow"], values["Bandwidth"])


def network_layers(network, batch: int) -> list[TopologyLayer]:
    """The forward GEMM of every ``conv2d``/``linear`` layer of a wavecore network, as SCALE-Sim layers.

    ``M`` is ``batch * Ho * Wo`` (the whole mini-batch, as the planner schedules it); a grouped convolution gives
    one row per group, named ``<layer>_g<i>``.
    """
    result = []
    for layer in network.layers:
        gemms = layer_gemms(layer, batch)
        if not gemms:
            continue
        forward = gemms["forward"]
        groups = len(forward)
        ifmap = batch * math.prod(layer.in_shapes[0]) // groups
        ofmap = batch * math.prod(layer.out_shape) // groups
        for index, (m, k, n) in enumerate(forward):
            name = layer.name if groups == 1 else f"{layer.name}_g{index}"
            result.append(TopologyLayer(name, m, k, n, ifmap, k * n, ofmap))
    return result


def _mapping(layer: TopologyLayer, dataflow: str) -> tuple[int, int, int]:
    """SCALE-Sim's (spatial rows, spatial cols, time) of a layer."""
    return {"os": (layer.m, layer.n, layer.k), "ws": (layer.k, layer.n, layer.m),
            "is": (layer.k, layer.m, layer.n)}[dataflow]


def _gemm_cycles(m: int, k: int, n: int, *, rows: int, cols: int, dataflow: str) -> int:
    """:func:`gemm_cycles` extended to ``is``: the ``ws`` schedule of the transposed GEMM ``C^T = B^T @ A^T``."""
    if dataflow == "is":
        return gemm_cycles(n, k, m, rows=rows, cols=cols, dataflow="ws")
    return gemm_cycles(m, k, n, rows=rows, cols=cols, dataflow=dataflow)


def layer_report(layer: TopologyLayer, *, rows: int, cols: int, dataflow: str) -> dict:
    """SCALE-Sim's compute and access quantities of one layer from the analytical model, plus training passes.

    Keys are the column names of :data:`COMPUTE_COLUMNS` and :data:`ACCESS_COLUMNS` (without ``LayerID``).
    Utilisations follow SCALE-Sim's ``calc_report_data`` and ``systolic_compute_*``: overall = MACs / (cycles *
    rows * cols); mapping efficiency and compute utilisation are averages over folds of the used PEs and of
    ``used PEs * T / (rows * cols * fold cycles)``, where a fold takes ``T + rows + cols - 2`` cycles (os) or
    ``T + 2 rows + 2 cols - 3`` (ws, is: SCALE-Sim counts the weight load and the drain in the fold).
    """
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")
    spatial_rows, spatial_cols, time = _mapping(layer, dataflow)
    row_folds, col_folds = math.ceil(spatial_rows / rows), math.ceil(spatial_cols / cols)
    folds = row_folds * col_folds
    cycles = _gemm_cycles(layer.m, layer.k, layer.n, rows=rows, cols=cols, dataflow=dataflow)
    fold_cycles = time + rows + cols - 2 if dataflow == "os" else time + 2 * rows + 2 * cols - 3
    macs = layer.m * layer.k * layer.n
    used = spatial_rows * spatial_cols  # summed over all folds: every (row fold, col fold) pair
    training = {  # the training passes of the same layer, as the planner counts them
        "Backward Data Cycles": _gemm_cycles(layer.m, layer.n, layer.k, rows=rows, cols=cols, dataflow=dataflow),
        "Backward Weight Cycles": _gemm_cycles(layer.k, layer.m, layer.n, rows=rows, cols=cols, dataflow=dataflow),
    }
    partial_sums = layer.m * layer.n * math.ceil(layer.k / rows)  # ws/is: one write per K fold
    sram = {
        "os": (layer.m * layer.k * col_folds, layer.k * layer.n * row_folds, layer.m * layer.n),
        "ws": (layer.m * layer.k * col_folds, layer.k * layer.n, partial_sums),
        "is": (layer.m * layer.k, layer.k * layer.n * col_folds, partial_sums),
    }[dataflow]
    return {
        "Layer name": layer.name,
        "Total Cycles": cycles,
        "Stall Cycles": 0,
        "Overall Util %": 100 * macs / (cycles * rows * cols),
        "Mapping Efficiency %": 100 * used / (folds * rows * cols),
        "Compute Util %": 100 * used * time / (folds * rows * cols * fold_cycles),
        **training,
        "Training Cycles": cycles + sum(training.values()),
        "MACs": macs,
        "SRAM IFMAP Reads": sram[0],
        "SRAM Filter Reads": sram[1],
        "SRAM OFMAP Writes": sram[2],
        "DRAM IFMAP Reads": layer.ifmap_words,
        "DRAM Filter Reads": layer.filter_words,
        "DRAM OFMAP Writes": layer.ofmap_words,
    }


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv(columns, rows) -> str:
    # SCALE-Sim's own style: ", " separators and a trailing comma on every line
    lines = [", ".join(columns) + ","]
    for index, row in enumerate(rows):
        lines.append(", ".join(_cell(index if column == "LayerID" else row[column]) for column in columns) + ",")
    return "\n".join(lines) + "\n"


def write_reports(directory, layers, *, rows: int, cols: int, dataflow: str, reports=None) -> list[Path]:
    """Write ``COMPUTE_REPORT.csv`` and ``DETAILED_ACCESS_REPORT.csv`` (SCALE-Sim's names and columns) to
    ``directory``; return their paths. Rows are :func:`layer_report` of each layer (or the given ``reports``),
    ``LayerID`` from 0."""
    if reports is None:
        reports = [layer_report(layer, rows=rows, cols=cols, dataflow=dataflow) for layer in layers]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, columns in (("COMPUTE_REPORT.csv", COMPUTE_COLUMNS), ("DETAILED_ACCESS_REPORT.csv", ACCESS_COLUMNS)):
        path = directory / name
        write_atomic(path, _csv(columns, reports))
        paths.append(path)
    return paths


def text_table(layers, *, rows: int, cols: int, dataflow: str, source: str) -> str:
    """A terminal table of :func:`layer_report` for each layer, with units in the header."""
    reports = [layer_report(layer, rows=rows, cols=cols, dataflow=dataflow) for layer in layers]
    lines = [
        f"SCALE-Sim topology {source}: {len(layers)} layer{'s' if len(layers) != 1 else ''}, "
        f"array {rows}x{cols}, dataflow {dataflow} "
        "(one inference pass per layer, as SCALE-Sim; training passes beside it; M, K, N: the layer's GEMM sizes)",
        f"{'layer':<24} {'M':>8} {'K':>7} {'N':>6} {'fwd (cycles)':>13} {'util (%)':>8} "
        f"{'map eff (%)':>11} {'bwd-data (cycles)':>17} {'bwd-wt (cycles)':>15} {'DRAM (words)':>12}",
    ]
    for layer, report in zip(layers, reports):
        dram = report["DRAM IFMAP Reads"] + report["DRAM Filter Reads"] + report["DRAM OFMAP Writes"]
        lines.append(
            f"{layer.name[:24]:<24} {layer.m:>8} {layer.k:>7} {layer.n:>6} {report['Total Cycles']:>13} "
            f"{report['Overall Util %']:>8.2f} {report['Mapping Efficiency %']:>11.2f} "
            f"{report['Backward Data Cycles']:>17} {report['Backward Weight Cycles']:>15} {dram:>12}"
        )
    total = sum(report["Total Cycles"] for report in reports)
    training = sum(report["Training Cycles"] for report in reports)
    lines.append(f"total: {total} forward cycles (SCALE-Sim's Total Cycles summed), {training} training cycles")
    return "\n".join(lines)


#: The columns :func:`diff_reports` compares, and whether the analytical model claims them equal to SCALE-Sim's.
DIFF_COLUMNS = {
    "Total Cycles": True, "Stall Cycles": False, "Overall Util %": True, "Mapping Efficiency %": True,
    "Compute Util %": True, "SRAM IFMAP Reads": True, "SRAM Filter Reads": True, "SRAM OFMAP Writes": False,
    "DRAM IFMAP Reads": False, "DRAM Filter Reads": False, "DRAM OFMAP Writes": False,
}


def _read_report(path: Path) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}:1: empty report")
    header = _fields(lines[0])
    return [dict(zip(header, _fields(line))) for line in lines[1:]]


def find_report(directory: Path, name: str) -> Path:
    found = sorted(directory.glob(name)) + sorted(directory.glob(f"*/{name}"))
    if not found:
        raise ValueError(f"{directory}: no {name} here or in a run directory below it (SCALE-Sim's -p DIR)")
    return found[0]


def diff_reports(ours, theirs) -> list[dict]:
    """Compare wavecore's per-layer reports with SCALE-Sim's in ``theirs``, column by column.

    ``ours`` is a list of :func:`layer_report` dicts or a directory :func:`write_reports` wrote. ``theirs`` is
    SCALE-Sim's ``-p`` directory (or its run directory) holding ``COMPUTE_REPORT.csv`` and
    ``DETAILED_ACCESS_REPORT.csv``. Returns one row per layer and column of :data:`DIFF_COLUMNS`: ``LayerID``,
    ``Layer name``, ``Column``, ``wavecore``, ``SCALE-Sim``, ``Difference`` (SCALE-Sim minus wavecore) and
    ``Claimed equal`` (whether the model claims the column equal; see ``docs/planner.md``).
    """
    theirs = Path(theirs)
    mine, other = {}, {}
    if isinstance(ours, (list, tuple)):
        mine = dict(enumerate(ours))
    for name in ("COMPUTE_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"):
        if not isinstance(ours, (list, tuple)):
            for index, row in enumerate(_read_report(find_report(Path(ours), name))):
                mine.setdefault(index, {}).update(row)
        for index, row in enumerate(_read_report(find_report(theirs, name))):
            other.setdefault(index, {}).update(row)
    if len(mine) != len(other):
        raise ValueError(f"{theirs}: SCALE-Sim reports {len(other)} layers, wavecore {len(mine)}: "
                         "not the same topology")
    result = []
    for index in sorted(mine):
        for column, claimed in DIFF_COLUMNS.items():
            if column not in other[index]:
                raise ValueError(f"{theirs}: SCALE-Sim's reports have no column {column!r} for layer {index}")
            try:
                ours_value, their_value = float(mine[index][column]), float(other[index][column])
            except ValueError:
                raise ValueError(f"{theirs}: column {column!r} of layer {index} must be a number, "
                                 f"not {other[index][column]!r}") from None
            result.append({"LayerID": index, "Layer name": mine[index]["Layer name"], "Column": column,
                           "wavecore": ours_value, "SCALE-Sim": their_value, "Difference": their_value - ours_value,
                           "Claimed equal": claimed})
    return result


def write_diff(path, rows: list[dict]) -> Path:
    """Write :func:`diff_reports` rows as ``DIFF_REPORT.csv`` in SCALE-Sim's CSV style."""
    columns = ("LayerID", "Layer name", "Column", "wavecore", "SCALE-Sim", "Difference", "Claimed equal")
    lines = [", ".join(columns) + ","]
    for row in rows:
        lines.append(", ".join(_cell(int(v) if isinstance(v, float) and v.is_integer() else v)
                               for v in (row[c] for c in columns)) + ",")
    return write_atomic(path, "\n".join(lines) + "\n")
