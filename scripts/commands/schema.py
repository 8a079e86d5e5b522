"""``wavecore schema accelerator|network [-o FILE]``: the JSON Schema of the accelerator or the network YAML.

Only calls :mod:`wavecore.golden.schema`, which generates both from the loaders' own field definitions. The same
schemas are shipped as ``configs/schema/*.schema.json`` (editors: ``# yaml-language-server: $schema=...``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "schema"
HELP = "print the JSON Schema of the accelerator YAML or the network YAML"


def add_arguments(parser):
    parser.add_argument("kind", help="accelerator or network")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write the schema to FILE instead")


def run(args) -> int:
    from wavecore.cli import UsageError
    from wavecore.golden.schema import KINDS, schema

    if args.kind not in KINDS:
        raise UsageError(f"schema must be one of {', '.join(KINDS)}, not {args.kind!r}")
    text = json.dumps(schema(args.kind), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    return 0
