"""Benchmark: Fmax of each WaveCore compute unit alone on the ECP5-85F, out of context (minutes per unit, not the
hour of the whole core), to find and fix the unit that limits the core's clock.

Each unit of ``--units`` (default: all of ``wavecore.hdl.core.units.UNITS``; ``SHELL``: the core without compute
units, i.e. fetch, queues, DMA, on-chip memories, registers), built with the configuration's
parameters and numerics (``--config``, default the embedded one), is wrapped so that every input comes from a
register (a shift chain) and every output goes into one (folded by XOR into one output bit), as in the core, where
``start``, ``instruction`` and ``shape`` are registers and the element ports end in block RAM or the core's
registers. Yosys ``synth_ecp5`` and ``nextpnr-ecp5 --85k --out-of-context --freq 100`` (YoWASP, the versions
``wavecore synth`` uses) then give the register-to-register Fmax, the resources and the critical path's
endpoints. ``--no-route`` stops after placement (nextpnr's estimate; the routing of a large unit takes long).

    .venv/bin/python benchmarks/unit_timing.py [--units GEMM,NORM] [--config FILE] [--no-route] [--seed 1]

Writes build/benchmarks/unit_timing/<UNIT>/ (Verilog, logs, nextpnr report) and
build/benchmarks/unit_timing.json, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from amaranth import Cat, Module, Signal, Value  # noqa: E402
from amaranth.back import verilog  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from wavecore.boards.targets import get_target, tool_environment  # noqa: E402
from wavecore.files import write_atomic  # noqa: E402
from wavecore.golden.config import load_config  # noqa: E402
from wavecore.golden.core.build import core_setup  # noqa: E402
from wavecore.hdl.core.units import UNITS, unit_classes  # noqa: E402

OUT = ROOT / "build" / "benchmarks"
#: The name of the core without compute units in ``--units``.
SHELL = "SHELL"


class RegisteredPorts(wiring.Component):
    """``unit`` with every input driven by a register of a shift chain (``serial_in``) and every output
    registered, folded into ``serial_out``: only register-to-register paths remain, as inside the core."""

    def __init__(self, unit):
        self.unit = unit
        members = list(unit.signature.flatten(unit))
        self.inputs = [Value.cast(value) for _, member, value in members if member.flow == In]
        self.outputs = [Value.cast(value) for _, member, value in members if member.flow == Out]
        super().__init__({"serial_in": In(1), "serial_out": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        chain = Signal(sum(len(value) for value in self.inputs))
        m.d.sync += chain.eq(Cat(self.serial_in, chain[:-1]))
        position = 0
        for value in self.inputs:
            m.d.comb += value.eq(chain[position : position + len(value)])
            position += len(value)
        registered = Signal(sum(len(value) for value in self.outputs))
        m.d.sync += registered.eq(Cat(*self.outputs))
        folded = Signal(len(registered))
        m.d.sync += folded.eq(Cat(folded[-1], folded[:-1]) ^ registered)
        m.d.comb += self.serial_out.eq(folded[-1])
        return m


def _critical_path(report: dict) -> dict:
    """The longest path of a nextpnr report: start and end cells, logic and routing nanoseconds."""
    paths = report.get("critical_paths") or []
    if not paths:
        return {}
    path = max(paths, key=lambda item: sum(segment["delay"] for segment in item["path"]))
    segments = path["path"]
    logic = sum(segment["delay"] for segment in segments if segment["type"] != "routing")
    routing = sum(segment["delay"] for segment in segments if segment["type"] == "routing")
    return {"from": segments[0]["from"]["cell"], "to": segments[-1]["to"]["cell"],
            "logic_ns": round(logic, 2), "routing_ns": round(routing, 2),
            "dsp_stages": sum(1 for segment in segments
                              if segment["type"] == "logic" and "MULT18X18D" in segment["to"]["cell"]
                              and segment["from"]["cell"] == segment["to"]["cell"])}


def time_unit(name: str, parameters, numerics, work: Path, *, route: bool, seed: int, environment) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    if name == SHELL:  # the core without compute units: fetch, queues, DMA, memories, registers
        from wavecore.hdl.core.wavecore import WaveCore
        from wavecore.verif.training_step import bus_width

        unit = WaveCore(parameters=parameters, numerics=numerics, data_width=bus_width(parameters), units=())
    else:
        unit = unit_classes([name])[name](parameters, numerics)
    started = time.perf_counter()
    (work / "top.v").write_text(verilog.convert(RegisteredPorts(unit), name="top"))
    subprocess.run([environment["YOSYS"], "-q", "-l", "yosys.log", "-p",
                    "read_verilog top.v; synth_ecp5 -top top -json top.json"],
                   check=True, cwd=work, env=environment)
    synthesized = time.perf_counter()
    command = [environment["NEXTPNR_ECP5"], "--85k", "--package", "CABGA381", "--json", "top.json",
               "--out-of-context", "--freq", "100", "--timing-allow-fail", "--seed", str(seed),
               "--report", "report.json", "-l", "nextpnr.log", "-q"]
    if not route:
        command.append("--no-route")
    subprocess.run(command, check=True, cwd=work, env=environment, stdout=subprocess.DEVNULL)
    finished = time.perf_counter()
    report = json.loads((work / "report.json").read_text())
    fmax = next(iter(report.get("fmax", {}).values()), {}).get("achieved")
    if fmax is None:  # --no-route: the report has no timing; the log has the placer's estimate
        found = re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz", (work / "nextpnr.log").read_text())
        fmax = float(found[-1]) if found else None
    used = {bel: values["used"] for bel, values in report.get("utilization", {}).items()
            if bel in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD")}
    return {"unit": name, "fmax_mhz": None if fmax is None else round(fmax, 2), "routed": route,
            "yosys_s": round(synthesized - started, 1), "nextpnr_s": round(finished - synthesized, 1),
            "resources": used, "critical_path": _critical_path(report)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", default=",".join(UNITS),
                        help=f"comma-separated opcodes, or {SHELL} for the core without units (default: all units)")
    parser.add_argument("--config", default=None, help="accelerator YAML (default: the embedded one)")
    parser.add_argument("--no-route", action="store_true", help="stop after placement (nextpnr's estimate)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    names = [name.strip().upper() for name in args.units.split(",") if name.strip()]
    unknown = [name for name in names if name not in (*UNITS, SHELL)]
    if unknown:
        parser.error(f"--units must be among {', '.join((*UNITS, SHELL))}, not {unknown[0]!r}")
    parameters, numerics = core_setup(load_config(args.config))
    environment = tool_environment(get_target("ulx3s-85f"))
    results = []
    for name in names:
        results.append(time_unit(name, parameters, numerics, OUT / "unit_timing" / name,
                                 route=not args.no_route, seed=args.seed, environment=environment))
        print(f"{name}: {results[-1]['fmax_mhz']} MHz", flush=True)
    write_atomic(OUT / "unit_timing.json", json.dumps(results, indent=2) + "\n")
    print("\n| unit | Fmax (MHz) | LUT4 | FF | MULT18X18D | DP16KD | critical path: logic + routing (ns), DSPs |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        used, path = result["resources"], result["critical_path"]
        timing = (f"{path['logic_ns']} + {path['routing_ns']}, {path['dsp_stages']}" if path else "(not routed)")
        print(f"| {result['unit']} | {result['fmax_mhz']}{'' if result['routed'] else ' (placed)'} | "
              f"{used.get('TRELLIS_COMB', 0)} | {used.get('TRELLIS_FF', 0)} | {used.get('MULT18X18D', 0)} | "
              f"{used.get('DP16KD', 0)} | {timing} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
