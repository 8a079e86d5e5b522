"""How a design point is evaluated: the planner, the RTL on a simulator, synthesis for a board.

An evaluator is an object with a ``name``, the metric ``columns`` it fills, default Pareto ``objectives`` and
``plots``, ``check_options(options) -> options`` (run once when the sweep file is read; errors name the option),
``check_point(parameters)`` (run for every point before anything starts; errors name the field) and
``evaluate(parameters, options) -> {column: value}`` (run on a Dask worker). ``evaluate`` raises
:class:`PointFailed` for a measured failure that still has metrics (a missed timing target, a design that does
not fit); any other exception is a tool error. Both are recorded in the result table with their message.

Evaluators and their columns (``docs/sweeps.md`` has the full table):

* ``planner``: the MBS-family plan of the point's workload (``wavecore plan``'s model): DRAM traffic by class,
  peak on-chip footprint, GEMM cycles of the array, and the step's roofline bound
  ``step_cycles = max(compute_cycles, ceil(dram_bytes / memory.dram_bytes_per_cycle))`` (transfers overlapped with
  compute), ``step_ms`` at ``clock_mhz``.
* ``rtl``: the point's systolic array generated, built on Verilator (or Icarus) and run on one random GEMM without
  stalls (``wavecore.verif.tb_systolic``'s ``measure_cycles``, bit-exact against the golden model): measured
  cycles, utilization ``M*K*N / (rows*cols*cycles)`` and the analytical model's cycles for the same GEMM.
* ``synth``: the array in a self-checking BIST top through the YoWASP flow of a board (``wavecore synth``):
  LUT, FF, DSP, BRAM used, post-route Fmax.
"""

from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path

__all__ = ["EVALUATORS", "Evaluator", "PlannerEvaluator", "PointFailed", "RtlEvaluator", "SynthEvaluator"]


class PointFailed(Exception):
    """A point's evaluation ended in a measured failure: ``status`` (e.g. ``timing_failed``), the message, and
    the metrics measured before it."""

    def __init__(self, status: str, message: str, metrics: dict | None = None):
        super().__init__(message)
        self.status = status
        self.metrics = dict(metrics or {})


class Evaluator:
    """Base class (see the module docstring)."""

    name = ""
    columns: tuple[str, ...] = ()
    objectives: tuple[str, ...] = ()
    plots: tuple[tuple[str, str], ...] = ()
    option_defaults: dict = {}

    def check_options(self, options: dict) -> dict:
        unknown = set(options) - set(self.option_defaults)
        if unknown:
            allowed = ", ".join(self.option_defaults) or "none"
            raise ValueError(f"{sorted(unknown)[0]} is not an option of {self.name} (allowed: {allowed})")
        return {**self.option_defaults, **options}

    def check_point(self, parameters: dict) -> None:
        """Refuse a point this evaluator cannot run (one line naming the field)."""

    def evaluate(self, parameters: dict, options: dict) -> dict:
        raise NotImplementedError


@functools.lru_cache(maxsize=16)
def _network(name: str, norm: str, input_size: int | None):
    from wavecore.golden.network import load_network

    return load_network(name, norm=norm, input_size=input_size)


def _systolic_parameters(parameters: dict) -> dict:
    from wavecore.sweep.spec import Point

    return Point("", parameters).config().systolic_parameters()


class PlannerEvaluator(Evaluator):
    name = "planner"
    columns = (
        "dram_bytes",
        "activations_bytes",
        "stash_bytes",
        "weights_bytes",
        "weight_grads_bytes",
        "activation_grads_bytes",
        "norm_passes_bytes",
        "lower_bound_bytes",
        "footprint_bytes",
        "groups",
        "compute_cycles",
        "dram_cycles",
        "step_cycles",
        "step_ms",
    )
    objectives = ("step_cycles", "dram_bytes", "pes", "memory.buffer")
    plots = (("dram_bytes", "step_cycles"), ("memory.buffer", "dram_bytes"))

    def check_point(self, parameters: dict) -> None:
        from wavecore.golden.network import NetworkError

        try:
            _network(parameters["workload.network"], parameters["workload.norm"], parameters["workload.input_size"])
        except (NetworkError, OSError) as error:
            raise ValueError(f"workload.network: {error}") from None

    def evaluate(self, parameters: dict, options: dict) -> dict:
        from wavecore.golden.config import DTYPE_BYTES
        from wavecore.golden.plan.report import plan_mbs_family, schedule_cycles
        from wavecore.golden.plan.traffic import TRAFFIC_CLASSES, TrafficOptions

        network = _network(parameters["workload.network"], parameters["workload.norm"],
                           parameters["workload.input_size"])
        schedule = parameters["workload.schedule"]
        traffic_options = TrafficOptions(dtype_bytes=DTYPE_BYTES[parameters["workload.dtype"]])
        plan = plan_mbs_family(network, parameters["workload.batch"], parameters["memory.buffer"], traffic_options,
                               (schedule,))[schedule]
        dataflow = "os" if parameters["array.dataflow"] == "output_stationary" else "ws"
        compute = schedule_cycles(network, plan, rows=parameters["array.rows"], cols=parameters["array.cols"],
                                  dataflow=dataflow)
        traffic = plan.traffic
        dram_cycles = math.ceil(traffic.total / parameters["memory.dram_bytes_per_cycle"])
        step = max(compute, dram_cycles)
        metrics = {
            "dram_bytes": traffic.total,
            **{f"{name}_bytes": traffic.per_class.get(name, 0) for name in TRAFFIC_CLASSES},
            "lower_bound_bytes": traffic.lower_bound,
            "footprint_bytes": traffic.peak_footprint,
            "groups": len(plan.groups),
            "compute_cycles": compute,
            "dram_cycles": dram_cycles,
            "step_cycles": step,
            "step_ms": step / (parameters["clock_mhz"] * 1e3),
        }
        return metrics


class RtlEvaluator(Evaluator):
    name = "rtl"
    columns = ("rtl_gemm", "rtl_cycles", "rtl_utilization", "rtl_model_cycles")
    objectives = ("rtl_cycles", "pes")
    plots = (("pes", "rtl_cycles"),)
    option_defaults = {"simulator": "verilator", "gemm": [64, 64, 64]}

    def check_options(self, options: dict) -> dict:
        from wavecore.verif.runner import SIMULATORS

        options = super().check_options(options)
        if options["simulator"] not in SIMULATORS:
            raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {options['simulator']!r}")
        gemm = options["gemm"]
        if (not isinstance(gemm, list) or len(gemm) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in gemm)):
            raise ValueError(f"gemm must be [M, K, N] with positive integers, not {gemm!r}")
        return options

    def evaluate(self, parameters: dict, options: dict) -> dict:
        import json

        from wavecore.golden.plan.cycles import gemm_cycles
        from wavecore.hdl.array.systolic import SystolicArray
        from wavecore.verif.runner import build

        array = _systolic_parameters(parameters)
        m, k, n = options["gemm"]
        design = build(SystolicArray(**array), toplevel="systolic", simulator=options["simulator"])
        with tempfile.TemporaryDirectory(prefix="wavecore-sweep-rtl-") as work:
            output = Path(work) / "cycles.json"
            name = "sweep_" + "_".join(str(v) for v in (array["rows"], array["cols"], m, k, n)) + f"_{Path(work).name}"
            design.run("wavecore.verif.tb_systolic", testcase="measure_cycles", test_name=name,
                       params={"config": array, "shapes": [[m, k, n]], "output": str(output)})
            cycles = json.loads(output.read_text())[f"{m},{k},{n}"]["cycles"]
        dataflow = "os" if array["dataflow"] == "output_stationary" else "ws"
        return {
            "rtl_gemm": f"{m}x{k}x{n}",
            "rtl_cycles": cycles,
            "rtl_utilization": m * k * n / (array["rows"] * array["cols"] * cycles),
            "rtl_model_cycles": gemm_cycles(m, k, n, rows=array["rows"], cols=array["cols"], dataflow=dataflow),
        }


class SynthEvaluator(Evaluator):
    name = "synth"
    columns = ("lut", "ff", "dsp", "bram", "fmax_mhz", "synth_status", "synth_seconds")
    objectives = ("lut", "fmax_mhz")
    plots = (("lut", "fmax_mhz"),)
    option_defaults = {"target": "ulx3s-85f", "multiplier": "auto", "bist_cycles": 512, "seed": None, "router": None}

    def check_options(self, options: dict) -> dict:
        from wavecore.boards.synth import MULTIPLIERS
        from wavecore.boards.targets import TARGETS

        options = super().check_options(options)
        if options["target"] not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {options['target']!r}")
        if options["multiplier"] not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {options['multiplier']!r}")
        cycles = options["bist_cycles"]
        if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 1:
            raise ValueError(f"bist_cycles must be a positive integer, not {cycles!r}")
        seed = options["seed"]
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an integer or null, not {seed!r}")
        from wavecore.boards.flow import ROUTERS

        if options["router"] is not None and options["router"] not in ROUTERS:
            raise ValueError(f"router must be one of {', '.join(ROUTERS)} or null, not {options['router']!r}")
        return options

    def evaluate(self, parameters: dict, options: dict) -> dict:
        from wavecore.boards.synth import registry_factories, synth_block
        from wavecore.boards.targets import get_target

        target = get_target(options["target"])
        factory, reference, full = registry_factories(
            {"block": "systolic", **_systolic_parameters(parameters)}, target, options["multiplier"])
        full.pop("block")
        with tempfile.TemporaryDirectory(prefix="wavecore-sweep-synth-") as work:
            report = synth_block(factory, target, Path(work), design="systolic", parameters=full,
                                 reference_factory=reference, cycles=options["bist_cycles"], seed=options["seed"],
                                 router=options["router"])
        resources = report.resources
        achieved = [value["achieved_mhz"] for value in report.fmax.values()]
        metrics = {
            **{name: resources[name]["used"] if name in resources else None for name in ("lut", "ff", "dsp", "bram")},
            "fmax_mhz": min(achieved) if achieved else None,
            "synth_status": report.status,
            "synth_seconds": report.seconds.get("total"),
        }
        if report.status == "timing_failed":
            missed = ", ".join(f"{clock} {value['achieved_mhz']:.1f} MHz < {value['constraint_mhz']:.1f} MHz"
                               for clock, value in report.fmax.items() if not value["met"])
            raise PointFailed("timing_failed", f"timing failed on {target.name}: {missed}", metrics)
        if report.status != "ok":
            raise PointFailed(report.status, f"{report.status} on {target.name}: {report.error}", metrics)
        return metrics


EVALUATORS = {evaluator.name: evaluator for evaluator in (PlannerEvaluator(), RtlEvaluator(), SynthEvaluator())}
