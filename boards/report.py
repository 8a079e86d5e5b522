"""Read what Yosys and nextpnr wrote, and write ``report.json`` / ``report.md`` for a build.

Sources (nextpnr 0.11.1 and Yosys 0.70 of the pinned YoWASP wheels): nextpnr's ``--report`` JSON (utilisation per
BEL type, post-route Fmax per clock), the ``.tim`` log as a fallback, and Yosys' ``stat -json`` (cell counts; the
only flip-flop count on iCE40, where nextpnr counts logic cells, not FFs).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wavecore import files

__all__ = [
    "BuildReport",
    "Fmax",
    "ReportError",
    "parse_nextpnr_log",
    "parse_nextpnr_report",
    "parse_yosys_stat",
    "resources_from",
    "write_atomic",
]


class ReportError(ValueError):
    """A tool output could not be parsed; the message names the file."""


# BEL types per family that make up each resource column.
_BELS = {
    "ice40": {
        "lut": ("ICESTORM_LC",),
        "dsp": ("ICESTORM_DSP",),
        "bram": ("ICESTORM_RAM",),
        "spram": ("ICESTORM_SPRAM",),
    },
    "ecp5": {
        "lut": ("TRELLIS_COMB",),
        "ff": ("TRELLIS_FF",),
        "dsp": ("MULT18X18D",),
        "alu": ("ALU54B",),
        "bram": ("DP16KD",),
    },
}
_FMAX_LINE = re.compile(r"Max frequency for clock '([^']+)': ([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")
_UTIL_LINE = re.compile(r"^Info:\s+([A-Z0-9_]+):\s+(\d+)/\s*(\d+)")


@dataclass(frozen=True)
class Fmax:
    """Post-route maximum frequency of one clock against its constraint, in MHz."""

    achieved_mhz: float
    constraint_mhz: float

    @property
    def met(self) -> bool:
        return self.achieved_mhz >= self.constraint_mhz


def _clean_clock(name: str) -> str:
    return name.removeprefix("$glbnet$")


def parse_nextpnr_report(path: Path) -> tuple[dict[str, Fmax], dict[str, tuple[int, int]]]:
    """``(fmax per clock, {BEL: (used, available)})`` from a nextpnr ``--report`` JSON file."""
    try:
        data = json.loads(Path(path).read_text())
        fmax = {
            _clean_clock(clock): Fmax(float(values["achieved"]), float(values["constraint"]))
            for clock, values in data.get("fmax", {}).items()
        }
        utilisation = {bel: (int(v["used"]), int(v["available"])) for bel, v in data["utilization"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReportError(f"{path}: not a nextpnr report ({error})") from None
    return fmax, utilisation


def parse_nextpnr_log(text: str) -> tuple[dict[str, Fmax], dict[str, tuple[int, int]]]:
    """The same as :func:`parse_nextpnr_report` from a nextpnr log (``--log``).

    The log prints Fmax after placement and again after routing; the last line per clock is post-route.
    Only the last ``Device utilisation`` block counts (placer progress lines also name BELs).
    """
    fmax = {}
    for clock, achieved, _, constraint in _FMAX_LINE.findall(text):
        fmax[_clean_clock(clock)] = Fmax(float(achieved), float(constraint))
    start = text.rfind("Device utilisation:")
    utilisation = {}
    if start >= 0:
        for line in text[start:].splitlines()[1:]:
            match = _UTIL_LINE.match(line)
            if not match:
                break
            bel, used, available = match.groups()
            utilisation[bel] = (int(used), int(available))
    return fmax, utilisation


def parse_yosys_stat(path: Path) -> dict[str, int]:
    """Cell counts by type of the synthesised top from Yosys ``stat -json``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ReportError(f"{path}: not a Yosys stat JSON file ({error})") from None
    design = data.get("design")
    if design is None:
        modules = data.get("modules", {})
        if len(modules) != 1:
            raise ReportError(f"{path}: no 'design' section and {len(modules)} modules")
        design = next(iter(modules.values()))
    return {cell: int(count) for cell, count in design.get("num_cells_by_type", {}).items()}


def resources_from(family: str, utilisation: dict[str, tuple[int, int]], cells: dict[str, int]) -> dict:
    """``{resource: {"used": n, "available": m}}`` for lut, ff, dsp, bram (and spram on iCE40).

    On iCE40 ``lut`` counts logic cells (a LUT4 and/or an FF each) and ``ff`` is the number of
    ``SB_DFF*`` cells Yosys mapped (nextpnr does not count them separately).
    """
    if family not in _BELS:
        raise ValueError(f"family must be one of {', '.join(_BELS)}, not {family!r}")
    result = {}
    for resource, bels in _BELS[family].items():
        used = sum(utilisation.get(bel, (0, 0))[0] for bel in bels)
        available = sum(utilisation.get(bel, (0, 0))[1] for bel in bels)
        result[resource] = {"used": used, "available": available}
    if family == "ice40":
        flip_flops = sum(count for cell, count in cells.items() if cell.startswith("SB_DFF"))
        result["ff"] = {"used": flip_flops, "available": result["lut"]["available"]}
        result["lut4"] = {"used": cells.get("SB_LUT4", 0), "available": result["lut"]["available"]}
    return result


@dataclass
class BuildReport:
    """Everything a build measured; serialised to ``report.json`` and rendered to ``report.md``.

    ``status`` is ``"ok"``, ``"timing_failed"`` (bitstream written, a clock missed its constraint) or
    ``"does_not_fit"``/``"failed"`` (no bitstream; ``error`` says why) or ``"synthesized"`` (a synthesis-only
    run for a gate-level netlist, no place and route).
    """

    target: str
    device: str
    design: str
    parameters: dict
    status: str
    resources: dict = field(default_factory=dict)
    fmax: dict = field(default_factory=dict)
    cells: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    bitstream: str | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BuildReport:
        return cls(**json.loads(text))

    def to_markdown(self) -> str:
        lines = [
            f"# {self.design} on {self.target} ({self.device})",
            "",
            f"Status: **{self.status}**" + (f" ({self.error})" if self.error else ""),
            "",
        ]
        if self.parameters:
            lines += [
                "Parameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(self.parameters.items())),
                "",
            ]
        if self.resources:
            lines += ["| resource | used | available | % |", "|---|---|---|---|"]
            for name, value in self.resources.items():
                share = 100 * value["used"] / value["available"] if value["available"] else 0.0
                lines.append(f"| {name} | {value['used']} | {value['available']} | {share:.1f} |")
            lines.append("")
        if self.fmax:
            lines += ["| clock | post-route Fmax MHz | constraint MHz | met |", "|---|---|---|---|"]
            for clock, value in sorted(self.fmax.items()):
                met = "yes" if value["achieved_mhz"] >= value["constraint_mhz"] else "**no**"
                lines.append(
                    f"| {clock} | {value['achieved_mhz']:.2f} | {value['constraint_mhz']:.2f} | {met} |"
                )
            lines.append("")
        if self.seconds:
            lines += ["| step | seconds |", "|---|---|"]
            lines += [f"| {step} | {value:.1f} |" for step, value in self.seconds.items()]
            lines.append("")
        if self.tools:
            lines += ["Tools: " + ", ".join(f"{k} {v}" for k, v in sorted(self.tools.items())), ""]
        if self.bitstream:
            lines += [f"Bitstream: `{self.bitstream}`", ""]
        for key, value in self.extra.items():
            lines += [f"{key}: {value}", ""]
        return "\n".join(lines)

    def write(self, directory: Path) -> None:
        """Write ``report.json`` and ``report.md`` into ``directory`` atomically."""
        write_atomic(Path(directory) / "report.json", self.to_json())
        write_atomic(Path(directory) / "report.md", self.to_markdown())


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with the user's umask (:func:`wavecore.files.write_atomic`)."""
    files.write_atomic(path, text)
