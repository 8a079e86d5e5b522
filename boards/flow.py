"""Build an Amaranth top level for a named board with the YoWASP tools and report what came out.

The flow is Amaranth's own platform build (``platform.prepare`` writes ``top.il``, the Yosys script, the
constraints and ``build_top.sh``); we then run the script's tool steps one by one, so that each step is
timed, a missed timing target is reported instead of failing (``--timing-allow-fail``), and a design that
does not fit gives a report with status ``does_not_fit`` rather than a traceback. All tool paths are
relative to the build directory, because YoWASP maps the guest's ``/tmp`` to a private directory,
so absolute host paths under ``/tmp`` are invisible to the tools ("File ... not found").
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import zlib
from pathlib import Path

from wavecore import progress
from wavecore.boards.report import (
    BuildReport,
    ReportError,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_yosys_stat,
    resources_from,
)
from wavecore.boards.targets import Target, tool_environment, tool_versions
from wavecore.files import write_atomic

__all__ = ["ROUTERS", "BuildFailed", "append_dfu_suffix", "build"]

#: nextpnr's routers (``--router``).
ROUTERS = ("router1", "router2")

_STEP_NAMES = {
    "YOSYS": "synth",
    "NEXTPNR_ICE40": "place_and_route",
    "NEXTPNR_ECP5": "place_and_route",
    "ICEPACK": "pack",
    "ECPPACK": "pack",
}
_DOES_NOT_FIT = re.compile(
    r"Unable to place cell|no BELs remaining|Design utilisation exceeds|"
    r"utilisation .* exceeds|too many"
)
# OrangeCrab's DFU bootloader (vendor 0x1209, product 0x5af0) as in amaranth-boards' own command line.
_DFU_IDS = (0x1209, 0x5AF0)


class BuildFailed(RuntimeError):
    """A tool step failed for a reason other than timing or capacity; the message names the log."""


def append_dfu_suffix(path: Path, vendor: int, product: int, device: int = 0xFFFF) -> None:
    """Append the 16-byte DFU 1.1 file suffix to ``path`` (what ``dfu-suffix -v V -p P -a`` does).

    Layout (DFU 1.1 specification, appendix B): bcdDevice, idProduct, idVendor, bcdDFU=0x0100 (all
    little-endian), the signature ``UFD``, bLength=16, then dwCRC: the CRC-32 of the whole file including
    the first 12 suffix bytes, without the final inversion.
    """
    data = Path(path).read_bytes()
    suffix = (
        device.to_bytes(2, "little")
        + product.to_bytes(2, "little")
        + vendor.to_bytes(2, "little")
        + (0x0100).to_bytes(2, "little")
        + b"UFD"
        + bytes([16])
    )
    crc = (~zlib.crc32(data + suffix)) & 0xFFFFFFFF
    write_atomic(path, data + suffix + crc.to_bytes(4, "little"))


def _tool_steps(script: str, environment: dict[str, str]) -> list[tuple[str, list[str]]]:
    """The tool invocations of an Amaranth ``build_<name>.sh`` as ``(variable, argv)``."""
    steps = []
    for line in script.splitlines():
        match = re.match(r'^"\$([A-Z0-9_]+)"\s*(.*)$', line.strip())
        if not match:
            continue
        variable, rest = match.groups()
        if variable not in _STEP_NAMES:
            continue  # programmer helpers such as dfu-suffix; handled in Python or not needed
        steps.append((variable, [environment[variable], *shlex.split(rest)]))
    return steps


def build(
    top,
    target: Target,
    out_dir: Path,
    *,
    design: str,
    parameters: dict | None = None,
    seed: int | None = None,
    extra_nextpnr: str = "",
    router: str | None = None,
    name: str = "top",
    netlist: bool = False,
    synth_only: bool = False,
) -> BuildReport:
    """Synthesise, place, route and pack ``top`` (an Elaboratable using ``target``'s platform).

    Tool files go to ``out_dir/work``; the bitstream (``<name>.bit`` / ``<name>.bin``), ``report.json``
    and ``report.md`` to ``out_dir``. Returns the report (also when timing failed or the design did not
    fit). Raises :class:`BuildFailed` for any other tool error, after writing a report with status
    ``failed``.

    With ``netlist`` the synthesized design is also written as ``out_dir/<name>.netlist.v`` (Yosys
    ``write_verilog -noattr`` right after ``synth_<family>``: vendor cells only, for gate-level simulation
    with :mod:`wavecore.boards.gatelevel`). With ``synth_only`` the flow stops after synthesis (status
    ``synthesized``, no bitstream).

    ``router``: nextpnr's router, one of :data:`ROUTERS` (default: nextpnr's own, ``router1``). ``router2``
    routes congested designs that ``router1`` does not finish (measured on a 16x16 array with LUT multipliers
    on the ECP5-85F: routed in 3.6 minutes, where ``router1`` was still at 187,700 of 194,067 arcs after 9).
    """
    if router is not None and router not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    out_dir = Path(out_dir).resolve()
    work = out_dir / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    environment = tool_environment(target)
    report = BuildReport(
        target=target.name,
        device=target.device,
        design=design,
        parameters=dict(parameters or {}),
        status="failed",
        tools=tool_versions(target),
    )

    nextpnr_opts = f"--timing-allow-fail --report {name}.report.json"
    if seed is not None:
        nextpnr_opts += f" --seed {seed}"
    if router is not None:
        nextpnr_opts += f" --router {router}"
        report.parameters["router"] = router
    if extra_nextpnr:
        nextpnr_opts += " " + extra_nextpnr
    overrides = {
        "script_after_synth": f"tee -q -o {name}.stat.json stat -json"
        + (f"\nwrite_verilog -noattr {name}.netlist.v" if netlist or synth_only else ""),
        "nextpnr_opts": nextpnr_opts,
    }
    if target.synth_opts:
        overrides["synth_opts"] = target.synth_opts
    started = time.monotonic()
    saved = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"  # reproducible Verilog/RTLIL, independent of $YOSYS
    try:
        plan = target.platform().prepare(top, name=name, **overrides)
    finally:
        if saved is None:
            os.environ.pop("AMARANTH_USE_YOSYS", None)
        else:
            os.environ["AMARANTH_USE_YOSYS"] = saved
    plan.extract(work)
    report.seconds["elaborate"] = round(time.monotonic() - started, 2)

    script = (work / f"build_{name}.sh").read_text()
    steps = _tool_steps(script, environment)
    if synth_only:
        steps = [step for step in steps if _STEP_NAMES[step[0]] == "synth"]
    with progress.task(f"{design} on {target.name}", total=len(steps), unit="tool steps") as bar:
        _run_steps(steps, report, target, work, name, environment, bar, started, out_dir, synth_only)
    if netlist or synth_only:
        write_atomic(out_dir / f"{name}.netlist.v", (work / f"{name}.netlist.v").read_bytes())
        report.extra["netlist"] = f"{name}.netlist.v"
    report.seconds["total"] = round(time.monotonic() - started, 2)
    report.write(out_dir)
    return report


def _run_steps(steps, report, target, work, name, environment, bar, started, out_dir, synth_only=False) -> None:
    """Run the tool steps of :func:`build` in order, filling ``report`` (bitstream, status, times)."""
    for variable, argv in steps:
        step = _STEP_NAMES[variable]
        began = time.monotonic()
        bar.advance(0, detail=f"running {step}")
        completed = subprocess.run(argv, cwd=work, env=environment, capture_output=True, text=True)
        bar.advance(detail=f"{step} done")
        report.seconds[step] = round(time.monotonic() - began, 2)
        (work / f"{step}.out").write_text(completed.stdout + completed.stderr)
        if step == "synth" and (work / f"{name}.stat.json").exists():
            report.cells = parse_yosys_stat(work / f"{name}.stat.json")
        if completed.returncode != 0:
            log = work / (f"{name}.tim" if step == "place_and_route" else f"{name}.rpt")
            text = (log.read_text(errors="replace") if log.exists() else "") + completed.stderr
            if step == "place_and_route" and _DOES_NOT_FIT.search(text):
                report.status = "does_not_fit"
                _, utilisation = parse_nextpnr_log(text)
                report.resources = resources_from(target.family, utilisation, report.cells)
                report.error = _first_error(text) or "the design does not fit the device"
                break
            report.error = f"{step} failed (exit {completed.returncode}); see {log}"
            report.seconds["total"] = round(time.monotonic() - started, 2)
            report.write(out_dir)
            raise BuildFailed(report.error)
        if step == "place_and_route":
            _read_pnr(report, target, work, name)
    else:
        if synth_only:
            report.status = "synthesized"
            return
        bitstream = work / (f"{name}.bin" if target.family == "ice40" else f"{name}.bit")
        if target.name.startswith("orangecrab"):
            append_dfu_suffix(bitstream, *_DFU_IDS)
        final = out_dir / bitstream.name
        write_atomic(final, bitstream.read_bytes())
        report.bitstream = final.name
        report.status = "ok" if all(f.get("met", True) for f in report.fmax.values()) else "timing_failed"


def _read_pnr(report: BuildReport, target: Target, work: Path, name: str) -> None:
    try:
        fmax, utilisation = parse_nextpnr_report(work / f"{name}.report.json")
    except ReportError:
        fmax, utilisation = parse_nextpnr_log((work / f"{name}.tim").read_text(errors="replace"))
    report.resources = resources_from(target.family, utilisation, report.cells)
    report.fmax = {
        clock: {
            "achieved_mhz": round(value.achieved_mhz, 2),
            "constraint_mhz": round(value.constraint_mhz, 2),
            "met": value.met,
        }
        for clock, value in fmax.items()
    }


def _first_error(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("ERROR:"):
            return line.removeprefix("ERROR:").strip()
    return None
