"""``wavecore generate BLOCK [--param value ...] -o DIR [--wrapper sv]``: write a block's Verilog, its
configuration and ports (JSON), a FuseSoC core and a filelist, optionally an AXI4-Stream wrapper.

The options of each block come from :data:`wavecore.hdl.registry.BLOCKS`; the files are written by
:func:`wavecore.hdl.registry.generate_files` (all or none). A bad value is one line naming the option, exit 2.
"""

from __future__ import annotations

import argparse
import re

NAME = "generate"
HELP = "write the Verilog of a block, a JSON file with its configuration and ports, a FuseSoC core and a filelist"


def add_arguments(parser):
    from wavecore.hdl.registry import BLOCKS, WRAPPERS

    blocks = parser.add_subparsers(dest="block", metavar="BLOCK", parser_class=type(parser), required=True)
    for spec in BLOCKS.values():
        sub = blocks.add_parser(spec.name, help=spec.help, description=spec.help)
        for parameter in spec.parameters:
            options = {"dest": parameter.name, "default": parameter.default}
            if parameter.type is bool:
                options["action"] = argparse.BooleanOptionalAction
            else:
                options["type"] = parameter.type
                options["metavar"] = parameter.name.upper()
            if parameter.choices:
                options["choices"] = parameter.choices
                options.pop("metavar", None)
            help_text = f"{parameter.help} (default: {parameter.default})"
            spellings = [parameter.option] + (["--config"] if parameter.name == "accelerator_config" else [])
            sub.add_argument(*spellings, help=help_text, **options)
        sub.add_argument("-o", "--output", default="build/generated",
                         help="directory for NAME.v and NAME.json (default: build/generated)")
        sub.add_argument("--name", default=None, help=f"Verilog module and file name (default: {spec.name})")
        sub.add_argument("--wrapper", choices=WRAPPERS, default=None,
                         help="also write NAME_axis.sv, a SystemVerilog wrapper with AXI4-Stream port names "
                              "(s_axis_*/m_axis_*, m_axi_*; docs/integration.md)")
        if spec.hierarchical:
            sub.add_argument("--flat", action="store_true",
                             help="one Verilog module per PE instance (Amaranth's default) instead of the PE, row "
                                  "and skew modules written once and instantiated")


def _option_message(spec, message: str) -> str:
    """Constructor messages start with the parameter's name; the user typed the option."""
    for parameter in sorted(spec.parameters, key=lambda parameter: -len(parameter.name)):
        if re.match(rf"{parameter.name}\b", message):
            return parameter.option + message[len(parameter.name):]
    return message


def run(args) -> int:
    from wavecore.cli import UsageError
    from wavecore.hdl.registry import block, generate_files

    spec = block(args.block)
    config = {"block": spec.name}
    config.update({parameter.name: getattr(args, parameter.name) for parameter in spec.parameters})
    if args.name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.name):
        raise UsageError(f"--name must be a Verilog identifier (letters, digits, _), not {args.name!r}")
    try:
        paths = generate_files(config, args.output, toplevel=args.name, wrapper=args.wrapper,
                               flat=getattr(args, "flat", False)).paths
    except (TypeError, ValueError) as error:
        raise UsageError(_option_message(spec, str(error))) from None
    print(f"wrote {', '.join(map(str, paths[:-1]))} and {paths[-1]}")
    return 0
