"""The blocks wavecore can generate, by name, with the parameters each one takes.

The CLI builds its options from :data:`BLOCKS` (``wavecore generate NAME --param value``; ``wavecore synth
--block NAME``), and :func:`from_config` builds a block from a configuration dictionary (a JSON file written
by ``wavecore generate``, or a YAML section). Every error is one line naming the parameter and what is
allowed; the values themselves are checked by the component's constructor, so there is one set of rules.

To add a block, append a :class:`Block` to :data:`BLOCKS` (``component_path`` names the component class; it
is imported lazily so a broken block does not break the others).

Most components take int/str/bool keywords and are listed with exactly those. A component that takes an
object gives its block an ``arguments`` adapter from the registry parameters to the constructor keywords:
the BN/GN norm units (``norm_stats``, ``norm_affine``, ``norm_backward``, ``norm_weighting``, ``norm_dx``,
``norm_scalar``) take ``preset`` (an integer training mode of :data:`wavecore.golden.numerics.INTEGER_PRESETS`: ``int8``
or ``int16``, the accelerator's operand type) and ``max_count`` (the largest element count of one statistic:
BN N*H*W, GN C/G*H*W), which become ``arithmetic=NormArithmetic.from_training(INTEGER_PRESETS[preset],
max_count=max_count)``, the arithmetic the golden model's integer training uses for that mode.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wavecore.files import write_atomic_many

__all__ = [
    "BLOCKS",
    "WRAPPERS",
    "Block",
    "GeneratedFiles",
    "NORM_PRESETS",
    "Parameter",
    "block",
    "describe_ports",
    "from_config",
    "full_config",
    "generate_files",
]


@dataclass(frozen=True)
class Parameter:
    """One constructor parameter of a block.

    ``type`` is ``int``, ``str`` or ``bool``; ``choices`` (optional) lists the allowed values.
    """

    name: str
    type: type
    default: object
    help: str
    choices: tuple = ()

    @property
    def option(self) -> str:
        """The command-line spelling, ``--in-width`` for ``in_width``."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Block:
    """A generatable block: its name, the component's import path and its parameters."""

    name: str
    component_path: str  # "package.module:ClassName"
    parameters: tuple[Parameter, ...]
    help: str
    # Registry parameters -> the constructor's keywords, for components that take an object (default: as is).
    arguments: Callable[[dict], dict] | None = None
    # The component takes `hierarchical=True` (repeated cells written once as Verilog modules, hdl.hierarchy);
    # `wavecore generate` then writes that form unless given --flat.
    hierarchical: bool = False

    @property
    def component(self) -> Callable:
        module_name, class_name = self.component_path.split(":")
        return getattr(importlib.import_module(module_name), class_name)

    def build(self, **parameters):
        """The component for these parameters (a :func:`full_config` without ``block``; extra keywords such
        as a multiplier factory pass through to the constructor)."""
        keywords = self.arguments(dict(parameters)) if self.arguments is not None else parameters
        return self.component(**keywords)

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)


#: The integer training modes a norm block can be generated for (the keys of wavecore.golden.numerics.INTEGER_PRESETS,
#: spelled out so listing the blocks does not import NumPy; tests/hdl/test_registry.py checks they agree).
NORM_PRESETS = ("int8", "int16")


def _norm_arguments(parameters: dict) -> dict:
    """``preset`` and ``max_count`` -> ``arithmetic`` (:class:`wavecore.golden.numerics.NormArithmetic` checks
    ``max_count``); the other parameters pass through."""
    from wavecore.golden.numerics import INTEGER_PRESETS, NormArithmetic

    preset = parameters.pop("preset")
    if preset not in NORM_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(NORM_PRESETS)}, not {preset!r}")
    max_count = parameters.pop("max_count")
    parameters["arithmetic"] = NormArithmetic.from_training(INTEGER_PRESETS[preset], max_count=max_count)
    return parameters


_CORE_SIZES = ("rows", "cols", "in_width", "acc_width", "scratchpad_elements", "accumulator_elements",
               "dram_bytes")


def _core_arguments(parameters: dict) -> dict:
    """The sizes the contract depends on -> ``parameters`` (:class:`wavecore.golden.core.semantics.CoreParameters`),
    ``overflow`` -> ``numerics``, ``units`` -> the opcode list (``accelerator_config`` was applied by
    :func:`full_config`); the bus, DMA and queue parameters pass through."""
    from wavecore.golden.core.semantics import CoreParameters, core_numerics
    from wavecore.hdl.core.units import UNITS

    sizes = {name: parameters.pop(name) for name in _CORE_SIZES}
    if not 1 <= sizes["cols"] <= 256:
        raise ValueError(f"cols must be between 1 and 256 (the GEMM unit's lanes), not {sizes['cols']}")
    overflow = parameters.pop("overflow")
    parameters.pop("accelerator_config")  # already applied by full_config
    units = parameters.pop("units")
    parameters["parameters"] = CoreParameters(**sizes)
    numerics = core_numerics(parameters["parameters"], overflow=overflow)
    parameters["numerics"] = numerics
    names = [name.strip().upper() for name in units.split(",") if name.strip()]
    if units.strip().lower() == "all":
        names = list(UNITS)
    elif units.strip().lower() == "none":
        names = []
    unknown = [name for name in names if name not in UNITS]
    if unknown:
        raise ValueError(f"units must be all, none or a comma list of {', '.join(UNITS)}, not {units!r}")
    parameters["units"] = names
    return parameters


def _norm_parameters(*parameters: Parameter) -> tuple[Parameter, ...]:
    return (
        Parameter("preset", str, "int8", "integer training mode: operand formats, grids and rounding", NORM_PRESETS),
        Parameter("max_count", int, 1 << 16, "largest element count of one statistic, BN N*H*W, GN C/G*H*W "
                  "(1-2**30); sizes the accumulators"),
        *parameters,
    )


def _feeder_parameters(lanes_help: str, width_help: str, dimension_help: str, *, repeat: bool):
    """The parameters of the banked feeders (wavecore.hdl.memory.bank_reader.BankedFeeder) in constructor order."""
    return (
        Parameter("lanes", int, 8, f"{lanes_help} per beat (1-64)"),
        Parameter("banks", int, 16, "scratchpad banks, power of two >= lanes (up to 128)"),
        Parameter("bank_depth", int, 1024, "words per bank region (2-2**20)"),
        Parameter("width", int, 16, f"bits per {width_help} (2-32)"),
        Parameter("dimension_width", int, 10, f"bits of the {dimension_help} fields (2-16)"),
        *((Parameter("repeat_width", int, 16, "bits of the tile repeat count (1-24)"),) if repeat else ()),
    )


BLOCKS: dict[str, Block] = {
    "systolic": Block(
        name="systolic",
        component_path="wavecore.hdl.array.systolic:SystolicArray",
        hierarchical=True,
        help="rows x cols systolic MAC array, output- or weight-stationary, with stream ports",
        parameters=(
            Parameter("rows", int, 8, "PE rows (1-256)"),
            Parameter("cols", int, 8, "PE columns (1-256)"),
            Parameter("in_width", int, 8, "operand width in bits (2-18)"),
            Parameter("acc_width", int, 32, "accumulator width in bits (2 * in_width to 62)"),
            Parameter("signed", bool, True, "two's-complement operands and accumulator"),
            Parameter("overflow", str, "wrap", "accumulator overflow rule", ("wrap", "saturate")),
            Parameter("dataflow", str, "output_stationary", "which operand stays in the PEs",
                      ("output_stationary", "weight_stationary")),
        ),
    ),
    "scratchpad": Block(
        name="scratchpad", component_path="wavecore.hdl.memory.scratchpad:Scratchpad",
        help="banked on-chip SRAM with ping-pong regions and an ownership handshake",
        parameters=(Parameter("banks", int, 4, "independently addressed banks (1-64)"),
                    Parameter("depth", int, 1024, "words per bank (multiple of regions)"),
                    Parameter("width", int, 64, "bits per word (1-1024)"),
                    Parameter("regions", int, 2, "buffer regions per bank (2-16)")),
    ),
    "dma": Block(
        name="dma", component_path="wavecore.hdl.memory.dma:Dma",
        help="two-channel AXI4 DMA (DRAM <-> scratchpad), 3-D descriptors, byte counters",
        parameters=(Parameter("address_width", int, 32, "AXI address bits (12-64)"),
                    Parameter("data_width", int, 64, "AXI data bits (power of two, 8-1024)"),
                    Parameter("max_burst", int, 16, "longest burst in beats (1-256)"),
                    Parameter("max_outstanding", int, 4, "bursts in flight per channel (1-64)"),
                    Parameter("count_width", int, 16, "bits of the descriptor counts (1-32)"),
                    Parameter("scratch_width", int, 16, "bits of a scratchpad word address (1-32)"),
                    Parameter("counter_width", int, 48, "bits of each byte counter (8-64)")),
    ),
    "core": Block(
        name="core", component_path="wavecore.hdl.core.wavecore:WaveCore", arguments=_core_arguments,
        help="WaveCore training core: fetch, decode, queues with tokens, LOAD/STORE, GEMM, VECTOR, NORM, LOSS and "
        "SGD units (docs/core.md); ports s_axil_*, m_axi_*, irq",
        parameters=(Parameter("rows", int, 8, "systolic array rows (reported in CONFIG_ARRAY)"),
                    Parameter("cols", int, 8, "systolic array columns (reported in CONFIG_ARRAY): the GEMM unit's "
                              "lanes, channels computed at once (1-256)"),
                    Parameter("in_width", int, 8, "operand bits (scratchpad element size)"),
                    Parameter("acc_width", int, 32, "accumulator bits (accumulator element size)"),
                    Parameter("scratchpad_elements", int, 1 << 17, "scratchpad size in operand elements "
                              "(default: the default configuration's 128 KiB buffer of int8)"),
                    Parameter("accumulator_elements", int, 1 << 13, "accumulator memory size in elements"),
                    Parameter("dram_bytes", int, 1 << 26, "DRAM size in bytes (LOAD/STORE range check)"),
                    Parameter("data_width", int, 128, "AXI data bits (32, 64 or 128; default: the default "
                              "configuration's 16 bytes per cycle)"),
                    Parameter("max_burst", int, 16, "longest burst in beats (1-256)"),
                    Parameter("max_outstanding", int, 4, "bursts in flight per channel (1-64)"),
                    Parameter("queue_depth", int, 4, "entries of each instruction queue (2-64)"),
                    Parameter("token_width", int, 8, "bits of each dependency-token counter (1-16)"),
                    Parameter("overflow", str, "saturate", "accumulator overflow of the MAC arithmetic",
                              ("wrap", "saturate")),
                    Parameter("units", str, "all", "compute units in this build: all, none or a comma list of "
                              "GEMM,VECTOR,NORM,LOSS,SGD (an opcode without its unit ends in NOT_IMPLEMENTED)"),
                    Parameter("accelerator_config", str, "", "accelerator YAML: array, widths, overflow, buffer (as "
                              "scratchpad) and accumulator size from it, as `wavecore compile --config` uses them; "
                              "`wavecore generate core --config FILE`")),
    ),
    "writer": Block(
        name="writer", component_path="wavecore.hdl.memory.writer:ResultWriter",
        help="result writer: array rows into an owned bank, overwrite/accumulate or requantize-on-write",
        parameters=(Parameter("cols", int, 16, "elements per row (1-256)"),
                    Parameter("depth", int, 256, "rows in the bank (2-65536)"),
                    Parameter("acc_width", int, 32, "accumulator bits (4-62)"),
                    Parameter("signed", bool, True, "two's complement elements"),
                    Parameter("overflow", str, "wrap", "accumulate overflow rule", ("wrap", "saturate")),
                    Parameter("requantize", bool, False, "store requantized elements (no accumulate)"),
                    Parameter("shift", int, 0, "requantize right shift (-62-62)"),
                    Parameter("out_width", int, 8, "requantized element bits (2-32)"),
                    Parameter("rounding", str, "half_even", "requantize rounding",
                              ("floor", "half_up", "half_even", "half_away_from_zero"))),
    ),
    "feeder": Block(
        name="feeder", component_path="wavecore.hdl.memory.feeder:Im2colFeeder",
        help="im2col activation feeder (forward, and dilated dy for backward-data), lanes positions per beat",
        parameters=_feeder_parameters("output positions", "element", "shape", repeat=False),
    ),
    "weight_feeder": Block(
        name="weight_feeder", component_path="wavecore.hdl.memory.weight_feeder:WeightFeeder",
        help="conv weight feeder: W (forward) or transposed, 180-degree-rotated W (backward-data)",
        parameters=_feeder_parameters("matrix rows", "weight", "channel and kernel", repeat=True),
    ),
    "position_feeder": Block(
        name="position_feeder", component_path="wavecore.hdl.memory.position_feeder:PositionFeeder",
        help="backward-weight feeder: Xcol^T (or dY^T), one output position and lanes consecutive k per beat",
        parameters=_feeder_parameters("k values", "element", "shape", repeat=True),
    ),
    "norm_stats": Block(
        name="norm_stats", component_path="wavecore.hdl.norm.stats:NormStatistics", arguments=_norm_arguments,
        help="BN/GN statistics on write: x passed through, S1 = sum x and S2 = sum x^2 per (set, lane)",
        parameters=_norm_parameters(
            Parameter("lanes", int, 8, "elements per beat (1-64)"),
            Parameter("sets", int, 8, "accumulator sets: channel blocks (BN) or (sample, block) (GN) (1-256)"),
            Parameter("group_lanes", int, 1, "lanes added on read-out: 1 for BN, C/G for GN (divides lanes)")),
    ),
    "norm_affine": Block(
        name="norm_affine", component_path="wavecore.hdl.norm.affine:NormAffine", arguments=_norm_arguments,
        help="BN/GN affine + ReLU on read: z = max(0, requantize(A*x + C)), padding lanes forced to 0",
        parameters=_norm_parameters(Parameter("lanes", int, 8, "elements per beat (1-64)"),
                                    Parameter("sets", int, 64, "coefficient sets (1-4096)")),
    ),
    "norm_backward": Block(
        name="norm_backward", component_path="wavecore.hdl.norm.backward:NormBackwardReduce", arguments=_norm_arguments,
        help="BN/GN backward reductions: dy = dz * mask (recomputed from x), r1 = sum dy, r2 = sum dy*x",
        parameters=_norm_parameters(Parameter("lanes", int, 8, "elements per beat (1-64)"),
                                    Parameter("sets", int, 8, "accumulator and coefficient sets (1-256)")),
    ),
    "norm_dx": Block(
        name="norm_dx", component_path="wavecore.hdl.norm.dx:NormDx", arguments=_norm_arguments,
        help="BN/GN two-stream dx unit: dx = requantize(K1*dy + K2*x + K3)",
        parameters=_norm_parameters(Parameter("lanes", int, 8, "elements per beat (1-64)"),
                                    Parameter("sets", int, 64, "coefficient sets (1-4096)")),
    ),
    "norm_scalar": Block(
        name="norm_scalar", component_path="wavecore.hdl.norm.scalar:NormScalar", arguments=_norm_arguments,
        help="BN/GN per-set scalar unit (sequencer): rstd, A, C forward; K2, K3 backward; dgamma",
        parameters=_norm_parameters(Parameter("param_width", int, 16, "bits of gamma and beta (2-32)"),
                                    Parameter("weighted_width", int, 96, "bits of W1, W2 (2-128)")),
    ),
    "norm_weighting": Block(
        name="norm_weighting", component_path="wavecore.hdl.norm.weighting:NormGroupWeighting",
        arguments=_norm_arguments,
        help="BN/GN gamma-weighted reductions W1 = sum gamma*r1, W2 = sum gamma*r2 per statistic set",
        parameters=_norm_parameters(
            Parameter("lanes", int, 8, "lanes of a sums beat (1-64)"),
            Parameter("sets", int, 8, "sets of the reduction unit it reads (1-4096)"),
            Parameter("channels", int, 8, "gamma entries per lane (1-4096)"),
            Parameter("param_width", int, 16, "bits of gamma and beta (2-32)"),
            Parameter("weighted_width", int, 96, "bits of W1, W2: the scalar unit's (preset's minimum to 128)")),
    ),
}


def block(name) -> Block:
    """The :class:`Block` called ``name``; ``ValueError`` naming the known blocks otherwise."""
    if name not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {name!r}")
    return BLOCKS[name]


def full_config(name: str, parameters: Mapping | None = None) -> dict:
    """``{"block": name, **every parameter}`` with defaults filled in; unknown names are an error."""
    spec = block(name)
    parameters = dict(parameters or {})
    known = [parameter.name for parameter in spec.parameters]
    for key in parameters:
        if key not in known:
            raise ValueError(f"{key!r} is not a parameter of block {name} (allowed: {', '.join(known)})")
    config = {"block": name}
    for parameter in spec.parameters:
        value = parameters.get(parameter.name, parameter.default)
        # JSON/YAML give the right Python types; refuse a bool where an int is meant and vice versa here,
        # since the component cannot tell True from 1 once Python has.
        if parameter.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{parameter.name} must be an integer, not {value!r}")
        if parameter.type is bool and not isinstance(value, bool):
            raise TypeError(f"{parameter.name} must be true or false, not {value!r}")
        if parameter.type is str and not isinstance(value, str):
            raise TypeError(f"{parameter.name} must be a string, not {value!r}")
        if parameter.choices and value not in parameter.choices:
            raise ValueError(f"{parameter.name} must be one of {', '.join(parameter.choices)}, not {value!r}")
        config[parameter.name] = value
    if name == "core" and config["accelerator_config"]:
        config.update(_core_from_accelerator(config["accelerator_config"]))
    return config


def _core_from_accelerator(path: str) -> dict:
    """The core parameters an accelerator YAML sets (``golden.core.build.core_setup``, as ``wavecore compile
    --config`` uses them): array, widths, overflow, the buffer as scratchpad elements and the accumulator
    memory."""
    from wavecore.golden.config import load_config
    from wavecore.golden.core.build import core_setup

    core, numerics = core_setup(load_config(path))
    return {"rows": core.rows, "cols": core.cols, "in_width": core.in_width, "acc_width": core.acc_width,
            "scratchpad_elements": core.scratchpad_elements, "accumulator_elements": core.accumulator_elements,
            "overflow": numerics.mac.overflow}


def from_config(config: Mapping):
    """Build the component a configuration describes: ``{"block": NAME, PARAM: VALUE, ...}``.

    Missing parameters take their defaults. Raises ``TypeError``/``ValueError`` with a one-line message
    naming the field.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping with a 'block' key, not {type(config).__name__}")
    if "block" not in config:
        raise ValueError(f"config needs a 'block' key (one of {', '.join(BLOCKS)})")
    parameters = {key: value for key, value in config.items() if key != "block"}
    full = full_config(config["block"], parameters)
    name = full.pop("block")
    return block(name).build(**full)


def packed_fields(shape, prefix: str = "", offset: int = 0) -> list[dict]:
    """The leaves of a packed payload: ``{"name", "offset", "width"}`` with bit offsets from bit 0.

    Struct members are named ``data``, ``last``, ...; array elements ``data[0]``, ``data[1]``, ... (bit 0 is
    element 0). A plain shape is one field named ``prefix`` (or ``""`` at the top).
    """
    from amaranth import Shape
    from amaranth.lib import data

    if not isinstance(shape, data.Layout):
        return [{"name": prefix, "offset": offset, "width": Shape.cast(shape).width}]
    fields = []
    for key, field in shape:
        name = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else key)
        fields += packed_fields(field.shape, name, offset + field.offset)
    return fields


def _expand_arrays(members):
    """``(name, member)`` with every array member (``Signature(...).array(n)``) expanded into its elements,
    named as Amaranth flattens them: ``read_data__0``, ``read_data__1``, ..."""
    import itertools

    for name, member in members:
        if not member.dimensions:
            yield name, member
            continue
        element = member.__class__(member.flow, member.signature if member.is_signature else member.shape)
        for index in itertools.product(*(range(size) for size in member.dimensions)):
            yield "__".join([name, *map(str, index)]), element


def _bus_members() -> tuple:
    from wavecore.hdl.core.ports import BUS_MEMBERS

    return BUS_MEMBERS


def _has_bus_members(component) -> bool:
    return any(name in _bus_members() for name in component.signature.members)


def describe_ports(component) -> dict:
    """Each port of ``component``: direction, its Verilog names, and for streams the payload's packed fields.

    Streams: ``payload_bits`` and ``fields`` (every packed leaf with name, bit offset and width, see
    :func:`packed_fields`), and ``verilog`` (the port names Amaranth gives: ``<port>__payload``,
    ``<port>__valid``, ``<port>__ready``). Plain signals: ``bits`` and ``verilog``. Interfaces (the DMA's AXI4
    port): ``signals``, each with its direction seen from the component, ``bits`` and ``verilog``. An array of
    ports is listed element by element under Amaranth's names (``read_data__0``, ...).
    """
    from amaranth import Shape
    from amaranth.lib import stream, wiring

    ports = {}
    for name, member in _expand_arrays(component.signature.members.items()):
        direction = "in" if member.flow == wiring.In else "out"
        if member.is_signature and isinstance(member.signature, stream.Signature):
            shape = member.signature.members["payload"].shape
            parts = [part for part in ("payload", "valid", "ready") if part in member.signature.members]
            ports[name] = {"kind": "stream", "direction": direction, "payload_bits": Shape.cast(shape).width,
                           "fields": packed_fields(shape),
                           "verilog": {part: f"{name}__{part}" for part in parts}}
        elif member.is_port:
            ports[name] = {"kind": "signal", "direction": direction, "bits": Shape.cast(member.shape).width,
                           "verilog": name}
        else:
            # An interface (the DMA's AXI4 port): its signals with their directions as seen from the component.
            # SoC bus members (s_axil, m_axi) are named with one underscore (wavecore.hdl.core.ports).
            joiner = "_" if name in _bus_members() else "__"
            signals = {}
            for path, inner in member.signature.members.flatten():
                if inner.is_port:
                    inner_direction = direction if inner.flow == wiring.Out else ("out" if direction == "in" else "in")
                    signals["__".join(map(str, path))] = {
                        "direction": inner_direction, "bits": Shape.cast(inner.shape).width,
                        "verilog": joiner.join([name, *map(str, path)])}
            ports[name] = {"kind": "interface", "direction": direction, "signals": signals}
    return ports


class GeneratedFiles(tuple):
    """What :func:`generate_files` wrote: unpacks as the ``(verilog, json)`` pair; ``paths`` lists every file
    (Verilog, JSON, then the wrapper if any, the FuseSoC core and the filelist)."""

    def __new__(cls, paths):
        instance = super().__new__(cls, tuple(paths[:2]))
        instance.paths = tuple(paths)
        return instance

    @property
    def core(self):
        return next(path for path in self.paths if path.suffix == ".core")

    @property
    def filelist(self):
        return next(path for path in self.paths if path.suffix == ".f")

    @property
    def wrapper(self):
        return next((path for path in self.paths if path.suffix == ".sv"), None)


#: The ``wrapper`` values :func:`generate_files` accepts (``None``: no wrapper).
WRAPPERS = ("sv",)


def generate_files(config: Mapping, directory, *, toplevel: str | None = None, wrapper: str | None = None,
                   flat: bool = False) -> tuple:
    """Write ``<toplevel>.v``, ``<toplevel>.json`` (the full configuration and every port), the FuseSoC core
    ``<toplevel>.core`` and the filelist ``<toplevel>.f`` into ``directory``; with ``wrapper="sv"`` also the
    AXI4-Stream SystemVerilog wrapper ``<toplevel>_axis.sv`` (see :mod:`wavecore.hdl.dropin`).

    The files appear together or not at all: they are written to temporary names and renamed, and the
    component is built (so every parameter is checked) before anything is created. Returns a
    :class:`GeneratedFiles`: the ``(verilog, json)`` pair, with every written path in ``.paths``.

    A block with a hierarchical form (the systolic array) is written in it unless ``flat``: its repeated
    cells (PE, rows, skew registers) are Verilog modules written once and instantiated
    (:mod:`wavecore.hdl.hierarchy`), so the file grows with the number of distinct modules, not with
    rows x cols. ``flat`` writes one module per instance, as Amaranth does by default. The JSON records the
    ``form`` and the ``modules`` written.
    """
    import hashlib
    import json
    import re
    from pathlib import Path

    from wavecore.hdl.hierarchy import convert, module_names

    if not isinstance(flat, bool):
        raise TypeError(f"flat must be a bool, not {flat!r}")
    if not isinstance(config, Mapping) or "block" not in config:
        raise ValueError(f"config needs a 'block' key (one of {', '.join(BLOCKS)})")
    if wrapper is not None and wrapper not in WRAPPERS:
        raise ValueError(f"wrapper must be one of {', '.join(WRAPPERS)}, not {wrapper!r}")
    full = full_config(config["block"], {key: value for key, value in config.items() if key != "block"})
    name = toplevel or full["block"]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"toplevel must be a Verilog identifier, not {name!r}")
    from wavecore import progress

    spec = block(full["block"])
    hierarchical = spec.hierarchical and not flat
    # builds the component, so every parameter is checked before any progress is shown
    component = spec.build(**{key: value for key, value in full.items() if key != "block"},
                           **({"hierarchical": True} if hierarchical else {}))
    with progress.task(f"generate {name}", total=1, unit="steps") as steps:
        if _has_bus_members(component):  # SoC buses named Vivado-style: s_axil_awaddr, m_axi_araddr
            from wavecore.hdl.core.ports import convert as convert_buses

            text = convert_buses(component, name=name)
        else:
            text = convert(component, name=name)  # the slow part: elaboration and Yosys
        steps.advance(detail="Verilog converted")
    record = {
        "block": full["block"],
        "toplevel": name,
        "parameters": {key: value for key, value in full.items() if key != "block"},
        "verilog": f"{name}.v",
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "form": "hierarchical" if hierarchical else "flat",
        "modules": len(module_names(text)),
        "ports": describe_ports(component),
    }
    if hasattr(component, "timing"):
        record["timing"] = component.timing
    if hasattr(component, "register_map"):
        record["registers"] = component.register_map.describe()
    from wavecore import __version__
    from wavecore.hdl import dropin

    directory = Path(directory)
    files = [(directory / f"{name}.v", text), (directory / f"{name}.json", json.dumps(record, indent=2) + "\n")]
    wrapper_module = None
    if wrapper == "sv":
        wrapper_module = dropin.wrapper_name(name)
        files.append((directory / f"{wrapper_module}.sv", dropin.axis_wrapper(record)))
    files += [(directory / f"{name}.core", dropin.fusesoc_core(record, wrapper=wrapper_module, version=__version__)),
              (directory / f"{name}.f", dropin.filelist(record, wrapper=wrapper_module))]
    paths = write_atomic_many(files)
    return GeneratedFiles(paths)
