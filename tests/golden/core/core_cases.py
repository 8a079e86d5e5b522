"""Shared helpers of the core tests: one training step through compiler + simulator next to golden.train."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wavecore.golden.core.compiler import compile_tiled, groups_from_schedule, initial_image, sgd_constants
from wavecore.golden.core.semantics import CoreParameters
from wavecore.golden.core.simulator import Simulator
from wavecore.golden.integer import IntegerKernels
from wavecore.golden.network import load_network
from wavecore.golden.numerics import INTEGER_PRESETS
from wavecore.golden.schedule import Schedule
from wavecore.golden.train import SGD, init_params, init_state, train_step

OPTIMIZER = SGD(lr=0.1, momentum=0.9, weight_decay=1e-4)
BATCH = 8


def schedule_for(network, kind: str, batch: int = BATCH, sub_batch: int = 2) -> Schedule:
    """``baseline``, ``bnff`` (baseline, fused), ``mbs`` or ``mbs-bnff`` (every block serialised)."""
    fused = kind.endswith("bnff")
    if kind.startswith("mbs"):
        return Schedule.serialised(network, batch, sub_batch, norm_fusion=fused)
    return Schedule.baseline(network, batch, norm_fusion=fused)


@dataclass
class CoreRun:
    network: object
    numerics: object
    step: object
    image: bytearray
    simulator: Simulator
    golden: object
    golden_schedule: object = None
    initial: bytes = b""

    def read(self, name):
        return self.step.memory_map.read(self.image, name)


def run_step(name, *, norm=None, preset="int8", schedule="baseline", sub_batch=2, seed=0, split_whole=False,
             parameters=None, groups=None):
    """Golden integer step and the compiled program on the simulator from the same data. ``schedule`` is a
    :func:`schedule_for` kind or a :class:`Schedule`; ``groups(network)`` overrides the execution groups."""
    network = load_network(name, norm=norm)
    numerics = INTEGER_PRESETS[preset]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, *network.input_shape))
    labels = rng.integers(0, network.num_classes, BATCH)
    params, state = init_params(network, seed=seed), init_state(network)
    plan = schedule if isinstance(schedule, Schedule) else schedule_for(network, schedule, sub_batch=sub_batch)
    golden = train_step(network, params, state, x, labels, schedule=plan, numerics=numerics, optimizer=OPTIMIZER)
    kernels = IntegerKernels(numerics)
    parameters = parameters or CoreParameters(in_width=numerics.mac.in_width, acc_width=numerics.mac.acc_width)
    groups = groups(network) if groups else groups_from_schedule(plan, BATCH, split_whole=split_whole)
    step = compile_tiled(network, BATCH, groups,
                        numerics=numerics, parameters=parameters, norm_fusion=plan.norm_fusion)
    image = initial_image(step, kernels.cast(x), labels, kernels.prepare_params(params),
                          sgd_constants=sgd_constants(numerics, OPTIMIZER))
    initial = bytes(image)
    simulator = Simulator(parameters=parameters, numerics=numerics)
    simulator.run(step.program, image)
    return CoreRun(network, numerics, step, image, simulator, golden, plan, initial)


def differences(run: CoreRun) -> list[str]:
    """Every DRAM tensor that differs from the golden step (empty when bit-identical)."""
    golden, bad = run.golden, []
    for layer, entry in golden.params.items():
        for key, value in entry.items():
            if not np.array_equal(run.read(f"param.{layer}.{key}"), value):
                bad.append(f"param.{layer}.{key}")
            if not np.array_equal(run.read(f"velocity.{layer}.{key}"), golden.state["velocity"][f"{layer}.{key}"]):
                bad.append(f"velocity.{layer}.{key}")
    unit = golden.numerics.loss_unit
    losses = run.read("loss")
    if not np.array_equal(losses * 2.0**-unit.loss_frac, golden.losses):
        bad.append("loss")
    if int(run.read("loss_mean")[0]) != golden.loss_q:
        bad.append("loss_mean")
    for tensor, region in run.step.stored.items():
        if not np.array_equal(run.read(region), golden.activations[tensor]):
            bad.append(region)
    return bad


def next_step(run: CoreRun, seed: int = 1) -> CoreRun:
    """A second step: the same program on the DRAM image the first left (parameters and velocities carried),
    with a new batch; golden continues from its own first step."""
    rng = np.random.default_rng(seed)
    network, numerics = run.network, run.numerics
    x = rng.standard_normal((BATCH, *network.input_shape))
    labels = rng.integers(0, network.num_classes, BATCH)
    kernels = IntegerKernels(numerics)
    image = bytearray(run.image)
    run.step.memory_map.write(image, "input", kernels.cast(x))
    run.step.memory_map.write(image, "labels", labels)
    plan = run.golden_schedule
    golden = train_step(network, run.golden.params, run.golden.state, x, labels, schedule=plan, numerics=numerics,
                        optimizer=OPTIMIZER)
    simulator = Simulator(parameters=run.simulator.parameters, numerics=numerics)
    simulator.run(run.step.program, image)
    return CoreRun(network, numerics, run.step, image, simulator, golden, plan)
