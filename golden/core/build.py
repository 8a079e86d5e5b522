"""One training step of a configured workload, compiled for the core: what ``wavecore compile``, the main job and
the core's end-to-end tests share.

:func:`core_setup` turns an accelerator configuration into the core's :class:`CoreParameters` and integer
numerics; :func:`compile_workload` plans the step (the optimal MBS grouping for the configured buffer, or the
layer-by-layer baseline), compiles it and returns a :class:`CompiledWorkload` with the program, the planner's
figures and the expected figures; :func:`training_data` draws a reproducible batch and initial parameters and
runs the golden integer step and the instruction-level simulator on the same DRAM image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from wavecore.golden.core.compiler import (
    CompiledStep,
    compile_tiled,
    groups_from_plan,
    initial_image,
    sgd_constants,
)
from wavecore.golden.core.semantics import CoreParameters
from wavecore.golden.core.simulator import Simulator
from wavecore.golden.core.terms import planner_terms
from wavecore.golden.numerics import INTEGER_PRESETS, IntegerTraining

__all__ = ["SCHEDULES", "CompiledWorkload", "StepData", "compile_workload", "core_setup", "training_data"]

SCHEDULES = ("baseline", "bnff", "mbs", "mbs-bnff")


def core_setup(config) -> tuple[CoreParameters, IntegerTraining]:
    """The core's parameters and numerics for an :class:`~wavecore.golden.config.AcceleratorConfig`: the
    array, the operand/accumulator widths and overflow mode of ``numerics``, the on-chip buffer as scratchpad
    (up to what the 18-bit scratchpad address of LOAD/STORE reaches), the DRAM bandwidth, and the integer preset
    of the operand width (``int8`` up to 8 bits, else ``int16``) with the config's MAC arithmetic."""
    arithmetic = config.arithmetic
    if not arithmetic.signed:
        raise ValueError("numerics.signed must be true for training")
    operand_bytes = 1 if arithmetic.in_width <= 8 else 2
    parameters = CoreParameters(rows=config.array.rows, cols=config.array.cols, in_width=arithmetic.in_width,
                                acc_width=arithmetic.acc_width,
                                scratchpad_elements=min(config.memory.buffer // operand_bytes, 1 << 18),
                                dram_bytes_per_cycle=config.memory.dram_bytes_per_cycle,
                                vector_lanes=config.array.cols)
    preset = INTEGER_PRESETS["int8" if arithmetic.in_width <= 8 else "int16"]
    return parameters, dataclasses.replace(preset, mac=arithmetic)


@dataclass
class CompiledWorkload:
    network: object
    batch: int
    schedule: str
    parameters: CoreParameters
    numerics: IntegerTraining
    plan: object
    step: CompiledStep
    expected: dict  # what expected.json holds


def compile_workload(config, *, network=None, batch: int | None = None, schedule: str = "mbs",
                     norm: str | None = None) -> CompiledWorkload:
    """Plan and compile one training step (see the module docstring). ``network`` (zoo name or YAML path),
    ``batch`` and ``norm`` default to the config's workload; ``schedule`` is one of :data:`SCHEDULES`.
    Raises ValueError with a one-line message on a workload the core cannot run."""
    from wavecore.golden.network import load_network
    from wavecore.golden.plan.mbs import plan_baseline, plan_optimal
    from wavecore.golden.plan.traffic import TrafficOptions

    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    batch = config.workload.batch if batch is None else batch
    network = load_network(network or config.workload.network, norm=norm or config.workload.norm,
                           input_size=config.workload.input_size)
    if not network.has_loss:
        raise ValueError(f"network {network.name!r} has no loss layer, so it cannot be trained")
    parameters, numerics = core_setup(config)
    fused = schedule.endswith("bnff")
    # the weight-tile reserve the core needs: the largest layer's weights, double-buffered (the planner's
    # fixed 512 KiB default would leave no room for sub-batches in an FPGA-size scratchpad)
    reserve = 2 * max(layer.param_count for layer in network.layers) * parameters.operand_bytes
    options = TrafficOptions(dtype_bytes=parameters.operand_bytes, grad_bytes=parameters.accumulator_bytes,
                             norm_variant="fused" if fused else "two_pass", weight_buffer_bytes=reserve)
    if schedule.startswith("mbs"):
        plan = plan_optimal(network, batch, parameters.scratchpad_elements * parameters.operand_bytes,
                            options=options)
    else:
        plan = plan_baseline(network, batch, options=options)
    groups = groups_from_plan(plan, network)
    step = compile_tiled(network, batch, groups, numerics=numerics, parameters=parameters, norm_fusion=fused)
    step.image  # noqa: B018 -- assembling checks every field
    expected = dict(step.expected, network=network.name, batch=batch, schedule=schedule,
                    groups=[{"layers": list(g.layers), "sub_batch": g.sub_batch,
                             "weights_resident": g.weights_resident,
                             "weight_grads_on_chip": g.weight_grads_on_chip, "tiled": g.tiled}
                            for g in step.groups],
                    planner_bytes=dict(plan.traffic.per_class),
                    planner_terms=planner_terms(network, groups, batch, operand_bytes=parameters.operand_bytes,
                                                accumulator_bytes=parameters.accumulator_bytes, norm_fusion=fused))
    return CompiledWorkload(network, batch, schedule, parameters, numerics, plan, step, expected)


@dataclass
class StepData:
    """A batch, the DRAM image before the step, the simulator after it, and the golden integer step."""

    initial: bytes
    final: bytearray  # the simulator's DRAM after the step
    simulator: Simulator
    golden: object
    x: np.ndarray
    labels: np.ndarray


def training_data(workload: CompiledWorkload, *, seed: int = 0, optimizer=None) -> StepData:
    """A reproducible batch (``seed``), initial parameters, the golden integer step under the compiled
    grouping and the simulator's run of the program on the same image."""
    from wavecore.golden.integer import IntegerKernels
    from wavecore.golden.schedule import Schedule
    from wavecore.golden.train import SGD, init_params, init_state, train_step

    optimizer = optimizer or SGD(lr=0.1, momentum=0.9, weight_decay=1e-4)
    network, numerics, batch = workload.network, workload.numerics, workload.batch
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *network.input_shape))
    labels = rng.integers(0, network.num_classes, batch)
    params, state = init_params(network, seed=seed), init_state(network)
    # the integer step is exact, so its result does not depend on the grouping (tests/golden/core checks it)
    schedule = Schedule.baseline(network, batch, norm_fusion=workload.schedule.endswith("bnff"))
    golden = train_step(network, params, state, x, labels, schedule=schedule, numerics=numerics,
                        optimizer=optimizer)
    kernels = IntegerKernels(numerics)
    image = initial_image(workload.step, kernels.cast(x), labels, kernels.prepare_params(params),
                          sgd_constants=sgd_constants(numerics, optimizer))
    initial = bytes(image)
    simulator = Simulator(parameters=workload.parameters, numerics=numerics)
    simulator.run(workload.step.program, image)
    return StepData(initial, image, simulator, golden, x, labels)
