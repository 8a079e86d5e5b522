"""``wavecore pipeline --network NET --target T --chips N``: Occam multi-FPGA pipeline, simulated and built.

Partitions the network with the Occam DP for the target's usable on-chip memory (or ``--capacity``),
writes ``plan.json``, optionally chains all stages in RTL simulation against the golden model
(``--simulate``, Verilator), and builds one bitstream per distinct stage with ``pipeline.json`` /
``pipeline.md`` (per stage resources, Fmax, predicted images/s, link bandwidth, the simulation's pass/fail
and cycles per frame; with ``--no-build`` the same files without the build columns). The library is
:mod:`wavecore.boards.pipeline` and :mod:`wavecore.boards.pipeline_sim`.
"""

from __future__ import annotations

from pathlib import Path

NAME = "pipeline"
HELP = "partition a network over several FPGAs (Occam), simulate the stage chain, build a bitstream per stage"


def add_arguments(parser):
    from wavecore.boards.targets import TARGETS

    parser.add_argument(
        "--network",
        required=True,
        help="configs/pipelines/<name>.yaml, a zoo name (tiny_resnet, tiny_concat, tiny_mobilenet) or a network "
        "YAML path",
    )
    parser.add_argument(
        "--norm",
        default=None,
        help="bn, gn or none (default: the network file's own); the stage engines have no norm unit, so a "
        "network with norm layers needs --norm none (an inference pipeline folds BN into the conv weights)",
    )
    parser.add_argument("--target", required=True, choices=tuple(TARGETS), help="board of every stage")
    parser.add_argument("--chips", type=int, required=True, help="chips available (stages + STAP replicas)")
    parser.add_argument(
        "--capacity",
        type=int,
        default=None,
        help="bytes of on-chip memory per chip for the partition (default: the target's block RAM "
        "minus the link reserve)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("build/pipeline"),
        help="output directory (default: build/pipeline)",
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="chain all stages in Verilator and compare every boundary tensor with the golden model",
    )
    parser.add_argument("--no-build", action="store_true", help="plan (and simulate) only, no bitstreams")
    parser.add_argument("--frames", type=int, default=2, help="frames to simulate (default: 2)")
    parser.add_argument(
        "--stall",
        type=float,
        default=0.3,
        help="probability of an idle cycle on the input and of backpressure on every link (default: 0.3)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the filters and the simulated images")


def run(args) -> int:
    from wavecore.boards.pipeline import (
        PipelineError,
        build_pipeline,
        load_pipeline_network,
        plan_pipeline,
        simulation_summary,
        write_pipeline_report,
        write_plan,
    )
    from wavecore.boards.targets import get_target
    from wavecore.cli import UsageError

    if args.chips < 1:
        raise UsageError(f"--chips must be a positive integer, not {args.chips}")
    if args.capacity is not None and args.capacity < 1:
        raise UsageError(f"--capacity must be a positive number of bytes, not {args.capacity}")
    if not 0.0 <= args.stall < 1.0:
        raise UsageError(f"--stall must be a probability in [0, 1), not {args.stall}")
    if args.frames < 1:
        raise UsageError(f"--frames must be a positive integer, not {args.frames}")
    if args.norm is not None and args.norm not in ("bn", "gn", "none"):
        raise UsageError(f"--norm must be one of bn, gn, none, not {args.norm!r}")
    target = get_target(args.target)
    try:
        network = load_pipeline_network(args.network, norm=args.norm)
        norms = [layer.name for layer in network.norm_layers()]
        if norms:
            raise UsageError(
                f"--norm: {network.name} has {network.norm} layers ({', '.join(norms[:3])}"
                f"{', ...' if len(norms) > 3 else ''}) and the stage engines have no norm unit; pass --norm none"
            )
        plan = plan_pipeline(network, target, chips=args.chips, capacity_bytes=args.capacity, seed=args.seed)
    except PipelineError as error:
        value = {"network": args.network, "chips": args.chips, "capacity": args.capacity}[error.option]
        raise UsageError(f"--{error.option} {value}: {error}") from None
    write_plan(plan, args.output / "plan.json")
    print(
        f"# {network.name}  norm {network.norm}  dtype int{plan.arithmetic.in_width}  target {plan.target}  "
        f"chips {args.chips}  buffer {plan.capacity_bytes} B per chip"
    )
    for stage in plan.stages:
        print(
            f"stage {stage.index}: {', '.join(stage.layer_names)}  {stage.footprint_bytes} B on chip, "
            f"{len(stage.nodes)} engine(s), {stage.cycles_per_frame} cycles/frame, {stage.replicas} replica(s); "
            f"{stage.input_layer} {'x'.join(map(str, stage.in_shape))} -> "
            f"{stage.output_layer} {'x'.join(map(str, stage.out_shape))}"
        )
    simulation = None
    if args.simulate:
        from wavecore import progress
        from wavecore.boards.pipeline_sim import simulate_pipeline
        from wavecore.paths import builds_under
        from wavecore.verif.runner import SimulationFailed

        try:
            # the Verilator build goes to OUTPUT/sim unless $WAVECORE_BUILD_DIR is set
            with builds_under(args.output), progress.task(f"simulate {len(plan.stages)} stages, "
                                                          f"{args.frames} frame(s)", unit="steps"):
                measured = simulate_pipeline(plan, frames=args.frames, seed=args.seed, stall=args.stall)
        except SimulationFailed as failure:
            simulation = simulation_summary(plan, None, frames=args.frames, error=str(failure).splitlines()[0])
            print(f"simulation: FAILED: {simulation['error']}")
        else:
            simulation = simulation_summary(plan, measured, frames=args.frames)
            steady = ""
            if simulation["measured_cycles_per_frame"] is not None:
                steady = (f"; {simulation['measured_cycles_per_frame']:.0f} cycles/frame after the first frame "
                          f"(model without stalls: {simulation['model_cycles_per_frame']})")
            print(
                f"simulation: {args.frames} frame(s) through {len(plan.stages)} stages match the golden model "
                f"at every boundary; {measured['cycles']} cycles{steady}"
            )
    if args.no_build:
        write_pipeline_report(plan, args.output, simulation=simulation)
        print(f"report: {args.output / 'pipeline.md'} and {args.output / 'pipeline.json'}")
    else:
        summary = build_pipeline(plan, target, args.output, simulation=simulation)
        print(
            f"built {summary['distinct_bitstreams']} bitstream(s); "
            f"{summary['images_per_second']:.0f} images/s; report: {args.output / 'pipeline.md'}"
        )
        if any(row["status"] in ("does_not_fit", "failed") for row in summary["stages"]):
            return 1
    return 0 if simulation is None or simulation["result"] == "pass" else 1
