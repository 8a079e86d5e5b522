"""``wavecore import MODEL -o net.yaml``: a PyTorch module or an ONNX file as a network YAML and its weights.

Only parses arguments and calls :mod:`wavecore.golden.importer` (``docs/import.md``). ``MODEL`` is
``FILE.py:ClassName`` (the class is built without arguments and traced with ``torch.fx`` on ``--input CxHxW``,
default the class's ``input_shape`` attribute) or ``FILE.onnx``. Writes the YAML and the weight sidecar
(``net.weights.npz`` beside it, or ``--weights``); both or neither.
"""

from __future__ import annotations

import sys
from pathlib import Path

NAME = "import"
HELP = "import a PyTorch module (FILE.py:Class, traced with torch.fx) or an ONNX file as a network YAML + weights"


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL", help="FILE.py:ClassName or FILE.onnx")
    parser.add_argument("-o", "--output", required=True, help="network YAML to write (e.g. net.yaml)")
    parser.add_argument(
        "--input", default=None, help="per-sample input CxHxW, e.g. 3x32x32 (FILE.py: default the class's input_shape)"
    )
    parser.add_argument(
        "--skip-dropout",
        action="store_true",
        help="import dropout layers as the identity (the golden model has none; default: refuse p > 0)",
    )
    parser.add_argument("--name", default=None, help="network name (default: the output file's stem)")
    parser.add_argument(
        "--weights", default=None, help="weight file to write (default: <output stem>.weights.npz beside it)"
    )


def run(args) -> int:
    from wavecore.cli import UsageError
    from wavecore.golden.importer import ModelImportError, from_onnx, from_torch, load_module_class, require
    from wavecore.golden.weights import weights_path_for

    output = Path(args.output)
    if output.suffix not in (".yaml", ".yml"):
        raise UsageError(f"-o must name a .yaml file, not {args.output!r}")
    name = args.name or output.stem
    try:
        if args.model.endswith(".onnx"):
            require("onnx")
            imported = from_onnx(args.model, name=name, input_shape=args.input, skip_dropout=args.skip_dropout)
        elif ":" in args.model and args.model.rpartition(":")[0].endswith(".py"):
            require("torch")
            cls = load_module_class(args.model)
            input_shape = args.input or getattr(cls, "input_shape", None)
            if input_shape is None:
                raise UsageError(
                    f"--input CxHxW is required to trace {cls.__name__} (e.g. --input 3x32x32; or give the class "
                    "an input_shape attribute, as `wavecore export --torch` does)"
                )
            try:
                module = cls()
            except Exception as error:
                raise UsageError(f"MODEL: {cls.__name__}() failed: {type(error).__name__}: {error}") from None
            imported = from_torch(module, input_shape, name=name, skip_dropout=args.skip_dropout)
        else:
            raise UsageError(f"MODEL must be FILE.py:ClassName or FILE.onnx, not {args.model!r}")
    except ModuleNotFoundError as error:
        raise UsageError(str(error)) from None
    except ModelImportError as error:
        raise UsageError(f"MODEL: {error}") from None
    weights = Path(args.weights) if args.weights else weights_path_for(output)
    yaml_path, weights_path = imported.write(output, weights)
    network = imported.network
    sys.stdout.write(
        f"{network.name}: {len(network.layers)} layers, input {network.input_shape}, {network.num_classes} "
        f"classes, {network.param_count():,} parameters\nwrote {yaml_path} and {weights_path}\n"
    )
    return 0
