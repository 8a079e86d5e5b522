"""``wavecore plan``: DRAM traffic, on-chip footprint and cycles of a training step under each schedule.

Only parses arguments and calls :mod:`wavecore.golden.plan.report`; options and JSON fields: ``docs/planner.md``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from wavecore.golden.config import DTYPE_BYTES as _DTYPES
from wavecore.golden.config import ConfigError, parse_size

__all__ = ["HELP", "NAME", "SCHEDULES", "add_arguments", "run"]

NAME = "plan"
HELP = "plan MBS/BNFF/Occam/LR-CNN schedules and report DRAM traffic, memory and cycles"

SCHEDULES = ("all", "baseline", "mbs", "bnff", "occam", "lrcnn")


#: Defaults without ``--config`` (with it, the file's values; explicit flags win over both).
DEFAULTS = {"network": "resnet50", "batch": 32, "buffer": "10MiB", "dtype": "bf16", "array": "128x128",
            "dataflow": "os"}


def add_arguments(parser):
    parser.add_argument(
        "--config",
        default=None,
        help="accelerator YAML (docs/config.md): array, dataflow, buffer, widths, clock and workload; "
        "or a SCALE-Sim .cfg (array, dataflow, SRAM sizes); explicit flags override it",
    )
    parser.add_argument(
        "--network", default=None, help="zoo name, network YAML path or SCALE-Sim topology .csv "
        "(default: the config's workload, else resnet50)"
    )
    parser.add_argument("--batch", type=int, default=None, help="mini-batch size (default: the config's, else 32)")
    parser.add_argument(
        "--buffer", default=None, help="on-chip buffer / per-chip capacity (default: the config's, else 10MiB)"
    )
    parser.add_argument(
        "--dtype", default=None, help="element type: " + ", ".join(_DTYPES) + " (default: the config's, else bf16)"
    )
    parser.add_argument(
        "--array", default=None, help="systolic array ROWSxCOLS (default: the config's, else 128x128)"
    )
    parser.add_argument(
        "--dataflow", default=None,
        help="array dataflow: os or ws; is too for a SCALE-Sim topology (default: the config's, else os)"
    )
    parser.add_argument("--schedule", default="all", help="one of " + ", ".join(SCHEDULES) + " (default all)")
    parser.add_argument(
        "--norm",
        default=None,
        help="normalisation of the network: bn, gn or none (default: the config workload's for its network, "
        "else the network file's own)",
    )
    parser.add_argument("--chips", type=int, default=None, help="Occam: chip budget (STAP replicas)")
    parser.add_argument("--memory-model", default="line_buffer", help="Occam: line_buffer or closure")
    parser.add_argument(
        "--last-layer", default=None, help="Occam: partition only up to this layer (e.g. pool5)"
    )
    parser.add_argument("--stash", default="minimal", help="stash policy: minimal or all")
    parser.add_argument("--weight-grad-accumulation", default="auto", help="auto, on_chip or dram")
    parser.add_argument(
        "--norm-variant", default="two_pass", help="unfused BN/GN passes: two_pass or one_pass"
    )
    parser.add_argument("--min-sub-batch", type=int, default=1, help="greedy MBS floor (default 1)")
    parser.add_argument(
        "--weight-buffer",
        default="auto",
        help="on-chip reserve for double-buffered weight tiles: auto (sized per group from the array and its "
        "layers) or a size such as 512KiB (default auto)",
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.add_argument(
        "-o", "--out", default="build/plan", help="directory for report.md and plots (default build/plan)"
    )
    parser.add_argument("--no-report", action="store_true", help="do not write report.md")
    parser.add_argument(
        "--csv",
        default=None,
        metavar="DIR",
        help="write COMPUTE_REPORT.csv and DETAILED_ACCESS_REPORT.csv per layer with SCALE-Sim's columns to DIR",
    )
    parser.add_argument(
        "--scalesim-reports",
        default=None,
        metavar="DIR",
        help="with --csv: SCALE-Sim's output directory (its -p DIR) for the same topology; writes DIFF_REPORT.csv "
        "column by column to the --csv directory",
    )


def _settings(args):
    """The effective settings: explicit flags, else the ``--config`` file, else :data:`DEFAULTS`."""
    from wavecore.cli import UsageError
    from wavecore.golden.config import DATAFLOW_SHORT, load_config
    from wavecore.golden.plan import scalesim_io

    settings = dict(DEFAULTS, norm=None, input_size=None, grad_bytes=None, clock_mhz=None,
                    dram_bytes_per_cycle=None, config=args.config)
    if args.config is not None and scalesim_io.is_scalesim_config(args.config):
        try:
            scalesim = scalesim_io.read_config(args.config)
        except ValueError as error:
            raise UsageError(f"--config: {error}") from None
        kib = scalesim.ifmap_sram_kb + scalesim.filter_sram_kb + scalesim.ofmap_sram_kb
        settings.update(array=f"{scalesim.rows}x{scalesim.cols}", dataflow=scalesim.dataflow, buffer=f"{kib}KiB")
    elif args.config is not None:
        try:
            config = load_config(args.config)
        except ConfigError as error:
            raise UsageError(f"--config: {error}") from None
        workload = config.workload
        settings.update(
            network=workload.network, batch=workload.batch, buffer=config.memory.buffer, dtype=workload.dtype,
            array=f"{config.array.rows}x{config.array.cols}", dataflow=DATAFLOW_SHORT[config.array.dataflow],
            grad_bytes=-(-config.numerics.acc_width // 8), clock_mhz=config.clock_mhz,
            dram_bytes_per_cycle=config.memory.dram_bytes_per_cycle,
        )
        # the workload's norm and input size belong to the workload's network, not to another --network
        if args.network is None or args.network == workload.network:
            settings.update(norm=workload.norm, input_size=workload.input_size)
    for name in ("network", "batch", "buffer", "dtype", "array", "dataflow", "norm"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    return settings


def run(args) -> int:
    from wavecore.cli import UsageError

    explicit_batch = args.batch is not None
    settings = _settings(args)
    for name in ("network", "batch", "buffer", "dtype", "array", "dataflow", "norm"):
        setattr(args, name, settings[name])
    try:
        capacity = parse_size(args.buffer, "--buffer")  # the accelerator config's size rule
    except ConfigError:
        raise UsageError(
            f"--buffer must be a positive size such as 10MiB or 512KiB, not {args.buffer!r}"
        ) from None
    if args.dtype not in _DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(_DTYPES)}, not {args.dtype!r}")
    match = re.fullmatch(r"(\d+)x(\d+)", args.array)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise UsageError(
            f"--array must be ROWSxCOLS with positive integers, e.g. 128x128, not {args.array!r}"
        )
    rows, cols = int(match.group(1)), int(match.group(2))
    from wavecore.golden.plan import scalesim_io

    if args.scalesim_reports is not None and args.csv is None:
        raise UsageError("--scalesim-reports needs --csv DIR (the diff is written beside wavecore's reports)")
    if args.scalesim_reports is not None:
        try:  # fail before anything is written
            for name in ("COMPUTE_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"):
                scalesim_io.find_report(Path(args.scalesim_reports), name)
        except ValueError as error:
            raise UsageError(f"--scalesim-reports: {error}") from None
    if scalesim_io.is_topology(args.network):
        if explicit_batch:
            raise UsageError("--batch does not apply to a SCALE-Sim topology (its layers are one image each, as in "
                             "SCALE-Sim; put the batch into the layer's M or IFMAP size)")
        return _run_topology(args, rows, cols)
    if args.dataflow not in ("os", "ws"):
        raise UsageError(
            f"--dataflow must be one of os, ws, not {args.dataflow!r} (is is planned only for a SCALE-Sim topology)"
        )
    if args.schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {args.schedule!r}")
    if args.batch < 1:
        raise UsageError(f"--batch must be a positive integer, not {args.batch}")
    if args.chips is not None and args.chips < 1:
        raise UsageError(f"--chips must be a positive integer, not {args.chips}")
    if args.norm is not None and args.norm not in ("bn", "gn", "none"):
        raise UsageError(f"--norm must be one of bn, gn, none, not {args.norm!r}")
    if args.memory_model not in ("line_buffer", "closure"):
        raise UsageError(f"--memory-model must be one of line_buffer, closure, not {args.memory_model!r}")
    if args.norm_variant not in ("two_pass", "one_pass"):
        raise UsageError(f"--norm-variant must be one of two_pass, one_pass, not {args.norm_variant!r}")
    weight_buffer = args.weight_buffer
    if weight_buffer != "auto":
        try:
            weight_buffer = parse_size(weight_buffer, "--weight-buffer")
        except ConfigError:
            raise UsageError(
                f"--weight-buffer must be auto or a size such as 512KiB, not {args.weight_buffer!r}"
            ) from None

    from wavecore.golden.network import NetworkError, load_network
    from wavecore.golden.plan import report
    from wavecore.golden.plan.traffic import TrafficOptions

    try:
        network = load_network(args.network, norm=args.norm, input_size=settings["input_size"])
    except (NetworkError, OSError) as error:
        raise UsageError(f"--network: {error}") from None
    write_csv = None
    if args.csv is not None:  # checks --scalesim-reports before anything is written
        write_csv = _write_csv(args, scalesim_io.network_layers(network, args.batch), rows, cols)
    if args.last_layer is not None and args.last_layer not in network:
        raise UsageError(f"--last-layer must name a layer of {network.name}, not {args.last_layer!r}")
    try:
        options = TrafficOptions(
            dtype_bytes=_DTYPES[args.dtype],
            norm_variant=args.norm_variant,
            stash=args.stash,
            weight_grad_accumulation=args.weight_grad_accumulation,
            min_sub_batch=args.min_sub_batch,
            **({} if settings["grad_bytes"] is None else {"grad_bytes": settings["grad_bytes"]}),
            weight_buffer_bytes=weight_buffer,
            array_rows=rows,
            array_cols=cols,
            dataflow=args.dataflow,
        )
    except ValueError as error:
        raise UsageError(
            f"--{str(error).split(' must')[0].replace('_', '-')} must{str(error).split(' must', 1)[1]}"
        ) from None
    header = {
        "network": network.name,
        "batch": args.batch,
        "buffer_bytes": capacity,
        "dtype": args.dtype,
        "dtype_bytes": _DTYPES[args.dtype],
        "array": [rows, cols],
        "dataflow": args.dataflow,
        "norm": network.norm,
        "config": settings["config"],
        "clock_mhz": settings["clock_mhz"],
        "dram_bytes_per_cycle": settings["dram_bytes_per_cycle"],
        "options": options.to_dict(),
    }
    plans = None
    if args.schedule == "occam":
        kind = "occam"
        try:
            rows_out = [
                report.occam_rows(
                    network,
                    capacity,
                    chips=args.chips,
                    dtype_bytes=_DTYPES[args.dtype],
                    memory_model=args.memory_model,
                    array=(rows, cols),
                    last_layer=args.last_layer,
                )
            ]
        except ValueError as error:
            raise UsageError(f"--buffer/--chips: {error}") from None
    elif args.schedule == "lrcnn":
        kind = "lrcnn"
        try:
            rows_out = report.lrcnn_rows(network)
        except ValueError as error:
            raise UsageError(f"--schedule lrcnn needs conv/pool layers after the input: {error}") from None
    else:
        kind = "mbs"
        names = {
            "all": report.MBS_SCHEDULES,
            "baseline": ("baseline",),
            "mbs": ("baseline", "mbs_greedy", "mbs_optimal"),
            "bnff": ("baseline", "baseline_bnff", "mbs_optimal", "mbs_optimal_bnff"),
        }[args.schedule]
        plans = report.plan_mbs_family(network, args.batch, capacity, options, names)
        rows_out = report.mbs_rows(
            network, plans, rows=rows, cols=cols, dataflow=args.dataflow, clock_mhz=settings["clock_mhz"],
            dram_bytes_per_cycle=settings["dram_bytes_per_cycle"],
        )
        header["lower_bound_bytes"] = rows_out[0]["lower_bound_bytes"]
    document = dict(header, kind=kind, schedules=rows_out)
    if args.json:
        sys.stdout.write(report.write_json(document) + "\n")
    else:
        sys.stdout.write(report.text_table(header, rows_out, kind) + "\n")
    if not args.no_report:
        path = report.write_report(
            Path(args.out),
            header,
            rows_out,
            kind,
            network=network,
            plans=plans,
            options=options,
            memory_model=args.memory_model,
            chips=args.chips,
            last_layer=args.last_layer,
        )
        if not args.json:
            sys.stdout.write(f"report: {path}\n")
    if write_csv is not None:
        write_csv()
    return 0


def _write_csv(args, layers, rows, cols):
    """Check SCALE-Sim's reports (if given) at once; return a function that writes the CSVs when called."""
    from wavecore.golden.plan import scalesim_io

    reports = [scalesim_io.layer_report(layer, rows=rows, cols=cols, dataflow=args.dataflow) for layer in layers]
    differences = None
    if args.scalesim_reports is not None:  # read and check SCALE-Sim's reports before writing anything
        from wavecore.cli import UsageError

        try:
            differences = scalesim_io.diff_reports(reports, args.scalesim_reports)
        except (ValueError, OSError) as error:
            raise UsageError(f"--scalesim-reports: {error}") from None

    def write():
        paths = scalesim_io.write_reports(Path(args.csv), layers, rows=rows, cols=cols, dataflow=args.dataflow,
                                          reports=reports)
        if differences is not None:
            paths.append(scalesim_io.write_diff(Path(args.csv) / "DIFF_REPORT.csv", differences))
            unequal = sorted({row["Column"] for row in differences if row["Difference"] != 0})
            if not args.json:
                sys.stdout.write("differs from SCALE-Sim in: " + (", ".join(unequal) or "nothing") + "\n")
        if not args.json:
            sys.stdout.write("csv: " + ", ".join(str(path) for path in paths) + "\n")

    return write


def _run_topology(args, rows, cols) -> int:
    """A SCALE-Sim topology: per-layer cycles and accesses (no schedules: its layers carry no connectivity)."""
    from wavecore.cli import UsageError
    from wavecore.golden.plan import scalesim_io

    if args.dataflow not in scalesim_io.DATAFLOWS:
        raise UsageError(f"--dataflow must be one of {', '.join(scalesim_io.DATAFLOWS)}, not {args.dataflow!r}")
    if args.schedule not in ("all", "baseline"):
        raise UsageError(
            f"--schedule {args.schedule} needs a network's connectivity; a SCALE-Sim topology plans per layer only"
        )
    try:
        layers = scalesim_io.read_topology(args.network)
    except ValueError as error:
        raise UsageError(f"--network: {error}") from None
    write_csv = _write_csv(args, layers, rows, cols) if args.csv is not None else None
    if args.json:
        reports = [scalesim_io.layer_report(layer, rows=rows, cols=cols, dataflow=args.dataflow) for layer in layers]
        document = {"kind": "scalesim_topology", "topology": str(args.network), "array": [rows, cols],
                    "dataflow": args.dataflow, "config": args.config, "layers": reports}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(
            scalesim_io.text_table(layers, rows=rows, cols=cols, dataflow=args.dataflow, source=str(args.network))
            + "\n"
        )
    if write_csv is not None:
        write_csv()
    return 0
