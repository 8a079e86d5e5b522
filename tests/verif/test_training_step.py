"""One compiled training step on the generated WaveCore RTL (verif/training_step.py): bit-exact DRAM after the step
(against the instruction-level simulator, itself against the golden integer step), measured bytes per traffic class
equal to the compiler's prediction, measured cycles within 10 % of the prediction, under random DRAM latency and
stalls. ``make test`` runs tiny_resnet with the MBS schedule (GroupNorm) and the layer-by-layer baseline (BatchNorm)
on Verilator; the other tiny networks, two consecutive steps, fused norms and Icarus are in the slow tier."""

import dataclasses

import pytest

from wavecore.golden.config import load_config
from wavecore.verif.training_step import run_step_on_core


def _check(report):
    assert report.fault is None, f"the core stopped with {report.fault}"
    assert not report.golden_wrong, f"the simulator differs from the golden step in {report.golden_wrong}"
    assert not report.wrong_regions, f"DRAM differs from the simulator's in {report.wrong_regions}"
    assert report.measured_bytes == report.predicted_bytes, (report.measured_bytes, report.predicted_bytes)
    assert report.predicted_bytes == report.planner_bytes, "the compiler's traffic is planner + named terms"
    error = report.measured_cycles / report.predicted_cycles - 1
    assert abs(error) <= 0.10, f"{report.measured_cycles} cycles measured, {report.predicted_cycles} predicted"
    assert report.gemm_busy_cycles > 0


@pytest.mark.xdist_group("wavecore_step")
@pytest.mark.parametrize(("schedule", "norm", "stall", "latency"), [
    ("mbs", "gn", 32, (0, 24)),
    ("baseline", "bn", 64, (4, 16)),
])
def test_tiny_resnet_step_on_the_core_is_bit_exact_with_the_predicted_traffic(schedule, norm, stall, latency):
    report = run_step_on_core(load_config(None), schedule=schedule, norm=norm, stall=stall, latency=latency)
    _check(report)
    if schedule == "mbs":
        assert min(group["sub_batch"] for group in report.groups) < report.batch  # real serialisation


@pytest.mark.slow
@pytest.mark.parametrize(("network", "schedule", "norm"), [
    ("tiny_concat", "mbs", None), ("tiny_mobilenet", "mbs", None), ("tiny_resnet", "mbs-bnff", "bn"),
    ("tiny_resnet", "bnff", "gn"),
])
def test_other_networks_and_fused_norms_on_the_core(network, schedule, norm):
    _check(run_step_on_core(load_config(None), network=network, schedule=schedule, norm=norm))


@pytest.mark.slow
def test_two_consecutive_steps_on_the_core():
    report = run_step_on_core(load_config(None), schedule="mbs", steps=2)
    assert report.fault is None and not report.wrong_regions


@pytest.mark.slow
def test_a_small_step_on_icarus():
    config = load_config(None)
    config = dataclasses.replace(config, workload=dataclasses.replace(config.workload, batch=2, input_size=8))
    _check(run_step_on_core(config, schedule="mbs", simulator="icarus"))
