"""``wavecore export net.yaml --torch -o model.py``: a network as a standalone PyTorch module file.

Only parses arguments and calls :func:`wavecore.golden.torch_export.torch_source` (``docs/import.md``). The
module's attributes are the layers by name, so ``load_state_dict`` takes the weight sidecar's arrays.
"""

from __future__ import annotations

import sys
from pathlib import Path

NAME = "export"
HELP = "write a network (zoo name or YAML) as a PyTorch nn.Module source file"


def add_arguments(parser):
    parser.add_argument("network", metavar="NETWORK", help="zoo name or network YAML path")
    parser.add_argument("--torch", action="store_true", required=True, help="write a PyTorch module (the format)")
    parser.add_argument("-o", "--output", required=True, help="Python file to write (e.g. model.py)")
    parser.add_argument("--norm", default=None, help="bn, gn or none (default: the file's)")
    parser.add_argument("--input", type=int, default=None, help="input height = width (default: the file's)")


def run(args) -> int:
    from wavecore.cli import UsageError
    from wavecore.files import write_atomic
    from wavecore.golden.importer import require
    from wavecore.golden.network import NetworkError, load_network

    output = Path(args.output)
    if output.suffix != ".py":
        raise UsageError(f"-o must name a .py file, not {args.output!r}")
    if args.norm is not None and args.norm not in ("bn", "gn", "none"):
        raise UsageError(f"--norm must be one of bn, gn, none, not {args.norm!r}")
    if args.input is not None and args.input < 1:
        raise UsageError(f"--input must be a positive integer, not {args.input}")
    try:
        network = load_network(args.network, norm=args.norm, input_size=args.input)
    except NetworkError as error:
        raise UsageError(f"NETWORK: {error}") from None
    try:
        require("torch")
    except ModuleNotFoundError as error:
        raise UsageError(str(error)) from None
    from wavecore.golden.torch_export import class_name, torch_source

    try:
        source = torch_source(network)
    except ValueError as error:
        raise UsageError(f"NETWORK: {error}") from None
    write_atomic(output, source)
    sys.stdout.write(f"wrote {output}: class {class_name(network)} ({network.param_count():,} parameters)\n")
    return 0
