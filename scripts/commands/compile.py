"""``wavecore compile``: one training step of a network as a WaveCore program (``docs/core.md``).

Only parses arguments and calls :mod:`golden.core.compiler`. Writes ``program.bin`` (the instruction words),
``program.lst`` (the listing), ``memory_map.json`` (the DRAM regions) and ``expected.json`` (bytes per
traffic class, instruction counts, predicted cycles, the planner's prediction for the same groups) into
``-o DIR``; any error is one line, exit 2, and nothing is written.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["HELP", "NAME", "SCHEDULES", "add_arguments", "run"]

NAME = "compile"
HELP = "compile one training step of a network into a WaveCore program (ISA, memory map, expected figures)"

SCHEDULES = ("baseline", "bnff", "mbs", "mbs-bnff")


def add_arguments(parser):
    parser.add_argument("--network", default="tiny_resnet", help="zoo name or network YAML path")
    parser.add_argument("--batch", type=int, default=8, help="mini-batch size (default 8)")
    parser.add_argument("--schedule", default="mbs", help="one of " + ", ".join(SCHEDULES) + " (default mbs)")
    parser.add_argument("--norm", default=None, help="bn, gn or none (default: the config's workload.norm)")
    parser.add_argument("--config", default=None, help="accelerator YAML (default: the embedded default)")
    parser.add_argument("-o", "--out", default="build/prog", help="output directory (default build/prog)")


def run(args) -> int:
    from wavecore.cli import UsageError

    if args.schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {args.schedule!r}")
    if args.batch < 1:
        raise UsageError(f"--batch must be a positive integer, not {args.batch}")
    if args.norm is not None and args.norm not in ("bn", "gn", "none"):
        raise UsageError(f"--norm must be one of bn, gn, none, not {args.norm!r}")

    from wavecore.golden.config import ConfigError, load_config
    from wavecore.golden.core.compiler import compile_tiled, groups_from_plan
    from wavecore.golden.core.semantics import CoreParameters
    from wavecore.golden.core.terms import planner_terms
    from wavecore.golden.network import NetworkError, load_network
    from wavecore.golden.numerics import INTEGER_PRESETS
    from wavecore.golden.plan.mbs import plan_baseline, plan_optimal
    from wavecore.golden.plan.traffic import TrafficOptions

    try:
        config = load_config(args.config)
    except (ConfigError, OSError) as error:
        raise UsageError(f"--config: {error}") from None
    try:
        network = load_network(args.network, norm=args.norm or config.workload.norm)
    except (NetworkError, OSError) as error:
        raise UsageError(f"--network: {error}") from None
    if not network.has_loss:
        raise UsageError(f"--network {args.network!r} has no loss layer, so it cannot be trained")
    arithmetic = config.arithmetic
    if not arithmetic.signed:
        raise UsageError("--config: numerics.signed must be true for training")
    preset = INTEGER_PRESETS["int8" if arithmetic.in_width <= 8 else "int16"]
    from dataclasses import replace

    numerics = replace(preset, mac=arithmetic)
    parameters = CoreParameters(rows=config.array.rows, cols=config.array.cols, in_width=arithmetic.in_width,
                                acc_width=arithmetic.acc_width,
                                # the buffer, up to what the 18-bit scratchpad address of LOAD/STORE reaches
                                scratchpad_elements=min(config.memory.buffer // parameters_bytes(arithmetic),
                                                        1 << 18),
                                dram_bytes_per_cycle=config.memory.dram_bytes_per_cycle,
                                vector_lanes=config.array.cols)
    fused = args.schedule.endswith("bnff")
    # the weight-tile reserve the core needs: the largest layer's weights, double-buffered (the planner's
    # fixed 512 KiB default would leave no room for sub-batches in an FPGA-size scratchpad)
    reserve = 2 * max(layer.param_count for layer in network.layers) * parameters.operand_bytes
    options = TrafficOptions(dtype_bytes=parameters.operand_bytes, grad_bytes=parameters.accumulator_bytes,
                             norm_variant="fused" if fused else "two_pass", weight_buffer_bytes=reserve)
    if args.schedule.startswith("mbs"):
        capacity = parameters.scratchpad_elements * parameters.operand_bytes
        plan = plan_optimal(network, args.batch, capacity, options=options)
    else:
        plan = plan_baseline(network, args.batch, options=options)
    groups = groups_from_plan(plan, network)
    try:
        step = compile_tiled(network, args.batch, groups, numerics=numerics, parameters=parameters,
                             norm_fusion=fused)
        image = step.image  # assembling checks every field
    except ValueError as error:
        raise UsageError(f"--network/--schedule/--config: {error}") from None
    expected = dict(step.expected, network=network.name, batch=args.batch, schedule=args.schedule,
                    groups=[{"layers": list(g.layers), "sub_batch": g.sub_batch,
                             "weights_resident": g.weights_resident,
                             "weight_grads_on_chip": g.weight_grads_on_chip, "tiled": g.tiled}
                            for g in step.groups],
                    planner_bytes=dict(plan.traffic.per_class),
                    planner_terms=planner_terms(network, groups, args.batch, operand_bytes=parameters.operand_bytes,
                                                accumulator_bytes=parameters.accumulator_bytes, norm_fusion=fused))
    out = Path(args.out)
    staging = Path(tempfile.mkdtemp(prefix=".compile-", dir=out.parent if out.parent.exists() else None))
    try:
        (staging / "program.bin").write_bytes(image)
        (staging / "program.lst").write_text(step.listing())
        (staging / "memory_map.json").write_text(step.memory_map.to_json() + "\n")
        (staging / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        for path in staging.iterdir():
            shutil.move(str(path), out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = step.expected["instructions"]
    moved = step.expected["bytes"]
    terms = expected["planner_terms"].values()
    predicted = {cls: expected["planner_bytes"].get(cls, 0) + sum(term.get(cls, 0) for term in terms) for cls in moved}
    differing = {cls: moved[cls] - predicted[cls] for cls in moved if moved[cls] != predicted[cls]}
    sys.stdout.write(
        f"{network.name} batch {args.batch} {args.schedule}: {len(step.program)} instructions "
        f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}), {len(groups)} groups, "
        f"{sum(step.expected['bytes'].values()):,} DRAM bytes, {step.expected['cycles']:,} cycles predicted -> {out}\n"
    )
    sys.stdout.write("traffic per class = planner + named terms\n" if not differing else
                     f"traffic differs from planner + named terms by {differing} (not reconciled: docs/core.md)\n")
    return 0


def parameters_bytes(arithmetic) -> int:
    return 1 if arithmetic.in_width <= 8 else 2
