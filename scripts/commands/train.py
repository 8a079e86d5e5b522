"""``wavecore train``: run SGD training steps in the golden model (issue 3; ``docs/golden.md``).

Only parses arguments and calls :mod:`golden.train`. The data are a fixed random batch (seeded), so the
loss falls from step to step; ``--check baseline`` runs the layer-by-layer schedule beside the chosen one
from the same parameters and prints the largest difference after each step. In the integer modes the loss
and the SGD update run on the on-chip units (``golden.numerics.LossArithmetic``/``SgdArithmetic``) unless
``--loss host`` / ``--sgd host`` asks for the float64 host versions (issue 11).
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from golden.network import NetworkError, load_network
from golden.numerics import FLOAT_MODES, INTEGER_PRESETS, UNIT_PLACES, IntegerTraining
from golden.schedule import Schedule, ScheduleError
from golden.train import SGD, Trainer, init_params, init_state

__all__ = ["HELP", "NAME", "NUMERICS", "SCHEDULES", "add_arguments", "run"]

NAME = "train"
HELP = "run training steps of a network in the golden model (float or hardware-exact integer)"

SCHEDULES = ("baseline", "mbs", "fused", "mbs-fused")
NUMERICS = (*FLOAT_MODES, *INTEGER_PRESETS)


def add_arguments(parser):
    parser.add_argument("--network", default="tiny_resnet", help="zoo name or network YAML path")
    parser.add_argument("--input", type=int, default=None, help="input height = width (default: the file's)")
    parser.add_argument("--batch", type=int, default=8, help="mini-batch size (default 8)")
    parser.add_argument("--norm", default=None, help="bn, gn or none (default: the file's)")
    parser.add_argument("--gn-groups", type=int, default=None, help="GroupNorm groups (default: the file's)")
    parser.add_argument("--schedule", default="baseline", help="one of " + ", ".join(SCHEDULES))
    parser.add_argument(
        "--sub-batch",
        type=int,
        default=None,
        help="MBS sub-batch per block (default batch // 4, at least 1); blocks with an inner "
        "BN keep the whole batch",
    )
    parser.add_argument("--numerics", default="float32", help="one of " + ", ".join(NUMERICS))
    parser.add_argument(
        "--loss",
        default=None,
        help="int16/int8 only: 'integer' (default: the on-chip loss unit, golden.numerics.LossArithmetic) or "
        "'host' (float64 softmax cross-entropy on the dequantized logits)",
    )
    parser.add_argument(
        "--sgd",
        default=None,
        help="int16/int8 only: 'integer' (default: the on-chip SGD unit, golden.numerics.SgdArithmetic) or "
        "'host' (float64 SGD on the dequantized values, re-quantized)",
    )
    parser.add_argument("--steps", type=int, default=1, help="training steps (default 1)")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="SGD weight decay (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of parameters and data (default 0)")
    parser.add_argument(
        "--check", default=None, help="'baseline': also run layer by layer and print the maximum difference"
    )


def _positive(name, value):
    from scripts.cli import UsageError

    if value is not None and value < 1:
        raise UsageError(f"{name} must be a positive integer, not {value}")


def run(args) -> int:
    from scripts.cli import UsageError

    for name, value in (
        ("--batch", args.batch),
        ("--steps", args.steps),
        ("--input", args.input),
        ("--sub-batch", args.sub_batch),
        ("--gn-groups", args.gn_groups),
    ):
        _positive(name, value)
    if args.schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {args.schedule!r}")
    if args.numerics not in NUMERICS:
        raise UsageError(f"--numerics must be one of {', '.join(NUMERICS)}, not {args.numerics!r}")
    for name, value in (("--loss", args.loss), ("--sgd", args.sgd)):
        if value is not None and value not in UNIT_PLACES:
            raise UsageError(f"{name} must be one of {', '.join(UNIT_PLACES)}, not {value!r}")
        if value is not None and args.numerics not in INTEGER_PRESETS:
            raise UsageError(f"{name} applies to the integer numerics ({', '.join(INTEGER_PRESETS)}) only, "
                             f"not --numerics {args.numerics}")
    if args.norm is not None and args.norm not in ("bn", "gn", "none"):
        raise UsageError(f"--norm must be one of bn, gn, none, not {args.norm!r}")
    if args.check not in (None, "baseline"):
        raise UsageError(f"--check must be 'baseline', not {args.check!r}")
    if args.sub_batch is not None and args.sub_batch > args.batch:
        raise UsageError(f"--sub-batch must be at most --batch ({args.batch}), not {args.sub_batch}")
    rates = (("--lr", args.lr), ("--momentum", args.momentum), ("--weight-decay", args.weight_decay))
    for name, value in rates:
        if not 0 <= value < float("inf"):  # also refuses nan and inf
            raise UsageError(f"{name} must be a finite number >= 0, not {value}")
    try:
        network = load_network(args.network, norm=args.norm, gn_groups=args.gn_groups, input_size=args.input)
    except NetworkError as error:
        raise UsageError(f"--network: {error}") from None
    if not network.has_loss:
        raise UsageError(f"--network {args.network!r} has no loss layer, so it cannot be trained")

    fused = args.schedule in ("fused", "mbs-fused")
    if args.schedule in ("mbs", "mbs-fused"):
        sub_batch = args.sub_batch or max(1, args.batch // 4)
        schedule = Schedule.serialised(network, args.batch, sub_batch, norm_fusion=fused)
    else:
        schedule = Schedule.baseline(network, args.batch, norm_fusion=fused)
    try:
        schedule.validate(network, args.batch)
    except ScheduleError as error:
        raise UsageError(f"--schedule: {error}") from None

    numerics = INTEGER_PRESETS.get(args.numerics, args.numerics)
    dtype = np.float32 if args.numerics == "float32" else np.float64
    optimizer = SGD(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    places = ""
    if isinstance(numerics, IntegerTraining):
        numerics = replace(numerics, loss=args.loss or numerics.loss, sgd=args.sgd or numerics.sgd)
        places = f", loss {numerics.loss}, sgd {numerics.sgd}"
        if numerics.sgd == "integer":
            try:  # the constants must fit the SGD unit's fixed-point format
                numerics.sgd_arithmetic(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
            except ValueError as error:
                raise UsageError(f"--{str(error).split()[0].replace('_', '-')}: {error}") from None
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, *network.input_shape)).astype(dtype)
    labels = rng.integers(0, network.num_classes, args.batch)
    params = init_params(network, seed=args.seed, dtype=dtype)
    state = init_state(network, dtype=dtype)
    trainer = Trainer(network, schedule=schedule, numerics=numerics, optimizer=optimizer)
    checker = Trainer(network, schedule=None, numerics=numerics, optimizer=optimizer) if args.check else None
    check_params, check_state = params, state
    out = sys.stdout
    out.write(
        f"{network.name}: input {network.input_shape}, batch {args.batch}, {network.param_count():,} "
        f"parameters, numerics {args.numerics}{places}\n"
    )
    out.write(
        f"schedule {args.schedule}: {len(schedule.groups)} groups, sub-batches "
        f"{sorted({g.sub_batch for g in schedule.groups})}\n"
    )
    for step in range(1, args.steps + 1):
        result = trainer.step(params, state, x, labels)
        line = f"step {step}: loss {result.loss:.6f}"
        if checker is not None:
            reference = checker.step(check_params, check_state, x, labels)
            line += "  max|diff| vs baseline: " + _differences(result, reference, numerics)
            check_params, check_state = reference.params, reference.state
        out.write(line + "\n")
        out.flush()
        params, state = result.params, result.state
    return 0


def _differences(result, reference, numerics) -> str:
    def largest(pairs):
        values = [
            np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max() for a, b in pairs
        ]
        return max(values, default=0.0)

    activations = largest(
        (result.activations[k], v) for k, v in reference.activations.items() if k in result.activations
    )
    input_grads = largest((result.input_grads[k], v) for k, v in reference.input_grads.items())
    weight_grads = largest((result.grads[n][k], v) for n, e in reference.grads.items() for k, v in e.items())
    params = largest((result.params[n][k], v) for n, e in reference.params.items() for k, v in e.items())
    unit = " (integer LSBs)" if isinstance(numerics, IntegerTraining) else ""
    return (
        f"loss {abs(result.loss - reference.loss):.3g}, activations {activations:.3g}, "
        f"input grads {input_grads:.3g}, weight grads {weight_grads:.3g}, params {params:.3g}{unit}"
    )
