"""``wavecore synth --target T --block NAME [--param value ...] | --config FILE -o DIR``: bitstream + report.

The block and its parameters come from :data:`wavecore.hdl.registry.BLOCKS` (the options of every block are
accepted; each must belong to the chosen block) or from a configuration file (``wavecore generate``'s
JSON or the same keys in YAML; options on the command line override it). The build itself is
:func:`wavecore.boards.synth.synth_block`: a self-checking BIST board top, the YoWASP flow of the target, and
``report.json`` / ``report.md`` in the output directory. A missed timing target is reported (status
``timing_failed``, exit 0); a design that does not fit gives status ``does_not_fit`` and exit 1.

``--gate-level`` stops after synthesis (no place and route, no bitstream), writes the netlist
``top.netlist.v`` and simulates it on Icarus with the vendor cell models (:mod:`wavecore.boards.gatelevel`):
exit 0 when the BIST's ``pass`` LED lights, 1 when it does not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "synth"
HELP = "build a generated block for an FPGA board (bitstream, report.json, report.md)"


def add_arguments(parser):
    from wavecore.boards.targets import TARGETS
    from wavecore.hdl.registry import BLOCKS

    parser.add_argument("--target", required=True, choices=tuple(TARGETS), help="board to build for")
    parser.add_argument("--block", default=None, help=f"block to build ({', '.join(BLOCKS)})")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML/JSON file with 'block' and its parameters (wavecore generate's JSON works)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("build/synth"),
        help="output directory (default: build/synth)",
    )
    from wavecore.boards.synth import MULTIPLIERS

    parser.add_argument(
        "--multiplier",
        choices=MULTIPLIERS,
        default="auto",
        help="systolic multiplier: auto = a MULT18X18D with registers per PE on ECP5 (ecp5_dsp), or when the PEs "
        "outnumber the chip's DSPs as many DSPs as it has and LUT multipliers for the rest (ecp5_mixed); 8 SB_MAC16 + "
        "LUT multipliers on iCE40 (default: auto)",
    )
    parser.add_argument(
        "--bist-cycles", type=int, default=None, help="cycles of the self-test (default: 512)"
    )
    parser.add_argument("--seed", type=int, default=None, help="nextpnr placer seed")
    parser.add_argument("--router", choices=("router1", "router2"), default=None,
                        help="nextpnr router (default: nextpnr's, router1); router2 finishes congested designs "
                        "router1 does not (e.g. a 16x16 array with LUT multipliers on the ECP5-85F)")
    parser.add_argument(
        "--gate-level",
        action="store_true",
        help="synthesis only: write top.netlist.v and run the BIST on it in Icarus with the vendor cell models",
    )
    seen = set()
    for spec in BLOCKS.values():
        for parameter in spec.parameters:
            if parameter.name in seen:
                continue
            seen.add(parameter.name)
            options = {"dest": f"param_{parameter.name}", "default": None}
            if parameter.type is bool:
                options["action"] = argparse.BooleanOptionalAction
            else:
                options["type"] = parameter.type
                options["metavar"] = parameter.name.upper()
            if parameter.choices:
                options["choices"] = parameter.choices
                options.pop("metavar", None)
            parser.add_argument(parameter.option, help=f"{parameter.help} ({spec.name})", **options)


def _load_config(path: Path) -> dict:
    import yaml

    from wavecore.cli import UsageError

    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UsageError(f"--config cannot be read: {error.strerror}: {path}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"--config is not valid YAML/JSON: {str(error).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"--config must hold a mapping with a 'block' key, not {type(loaded).__name__}")
    if "parameters" in loaded and isinstance(loaded["parameters"], dict):  # wavecore generate's JSON
        return {"block": loaded.get("block"), **loaded["parameters"]}
    return dict(loaded)


def run(args) -> int:
    from wavecore.boards.flow import BuildFailed
    from wavecore.boards.synth import DEFAULT_BIST_CYCLES, registry_factories, synth_block
    from wavecore.boards.targets import ToolMissing, get_target
    from wavecore.cli import UsageError
    from wavecore.hdl.registry import BLOCKS

    config = _load_config(args.config) if args.config is not None else {}
    if args.block is not None:
        config["block"] = args.block
    if "block" not in config or config["block"] is None:
        raise UsageError("give --block NAME or --config FILE")
    if config["block"] not in BLOCKS:
        raise UsageError(f"--block must be one of {', '.join(BLOCKS)}, not {config['block']!r}")
    for key, value in vars(args).items():
        if key.startswith("param_") and value is not None:
            config[key.removeprefix("param_")] = value
    target = get_target(args.target)
    cycles = DEFAULT_BIST_CYCLES if args.bist_cycles is None else args.bist_cycles
    if cycles < 1:
        raise UsageError(f"--bist-cycles must be a positive integer, not {cycles}")
    try:
        factory, reference, parameters = registry_factories(config, target, args.multiplier)
    except (TypeError, ValueError) as error:
        raise UsageError(_option_message(str(error))) from None
    name = parameters.pop("block")
    try:
        report = synth_block(
            factory,
            target,
            args.output,
            design=name,
            parameters=parameters,
            reference_factory=reference,
            cycles=cycles,
            seed=args.seed,
            router=args.router,
            synth_only=args.gate_level,
        )
    except ToolMissing as error:
        raise UsageError(str(error)) from None
    except BuildFailed as error:
        print(f"build failed: {error}")
        return 1
    if args.gate_level:
        return _gate_level(report, target, args.output, cycles)
    print(_summary(report, args.output))
    return 1 if report.status in ("does_not_fit", "failed") else 0


def _gate_level(report, target, output: Path, cycles: int) -> int:
    from wavecore.boards.gatelevel import GateLevelError, simulate_bist

    try:
        result = simulate_bist(output / "top.netlist.v", target, cycles=cycles, work=output / "gatelevel")
    except GateLevelError as error:
        print(f"gate-level simulation failed: {error}")
        return 1
    verdict = "passed" if result.passed else ("FAILED" if result.done else "did not finish")
    report.extra["gate_level"] = f"BIST {verdict} on the netlist (Icarus, cycle {result.cycle})"
    report.write(output)
    cells = sum(count for cell, count in report.cells.items() if not cell.startswith("$"))  # not $scopeinfo
    print(f"{report.design} on {report.target}: synthesized, {cells} cells")
    print(f"gate-level BIST: {verdict} at cycle {result.cycle} (netlist {output / 'top.netlist.v'})")
    return 0 if result.passed else 1


def _option_message(message: str) -> str:
    import re

    match = re.match(r"'?([a-z_]+)'?\b", message)
    if match and not message.startswith("block"):
        return "--" + match.group(1).replace("_", "-") + message[match.end() :]
    return message


def _summary(report, output: Path) -> str:
    resources = ", ".join(
        f"{key} {value['used']}/{value['available']}" for key, value in report.resources.items()
    )
    clocks = ", ".join(
        f"{clock} {value['achieved_mhz']:.1f} MHz (target {value['constraint_mhz']:.1f}"
        f"{'' if value['met'] else ', MISSED'})"
        for clock, value in report.fmax.items()
    )
    lines = [f"{report.design} on {report.target}: {report.status}", f"resources: {resources}"]
    if clocks:
        lines.append(f"fmax: {clocks}")
    if report.error:
        lines.append(f"error: {report.error}")
    lines.append(f"report: {output / 'report.md'}  total {report.seconds.get('total', 0):.1f} s")
    return "\n".join(lines)
