"""Compiler + simulator against golden.train: one integer training step of the tiny zoo nets gives a final
DRAM image (parameters, velocities, losses, every stored tensor) bit-identical to the golden step; MBS/BNFF
programs give the baseline's bits; two consecutive steps stay identical; ``wavecore compile``."""

import itertools
import json

import numpy as np
import pytest
from core_cases import differences, next_step, run_step

from wavecore.cli import main
from wavecore.golden.core.compiler import ExecutionGroup, compile_step
from wavecore.golden.core.semantics import CoreParameters
from wavecore.golden.network import load_network
from wavecore.golden.numerics import INTEGER_PRESETS

NETS = ("tiny_resnet", "tiny_concat", "tiny_mobilenet")
SCHEDULES = ("baseline", "bnff", "mbs", "mbs-bnff")
NORMS = ("gn", "bn", "none")
PRESETS = ("int8", "int16")

# a fast cross-section for make test; the full product is in the slow tier
FAST = [
    ("tiny_resnet", "gn", "int8", "baseline"),
    ("tiny_resnet", "bn", "int8", "mbs"),
    ("tiny_resnet", "gn", "int16", "mbs-bnff"),
    ("tiny_resnet", "none", "int16", "bnff"),
    ("tiny_concat", "gn", "int8", "mbs-bnff"),
    ("tiny_concat", "bn", "int16", "baseline"),
    ("tiny_mobilenet", "gn", "int16", "mbs"),
    ("tiny_mobilenet", "bn", "int8", "bnff"),
]
ALL = [case for case in itertools.product(NETS, NORMS, PRESETS, SCHEDULES) if case not in FAST]


def _check(name, norm, preset, schedule):
    run = run_step(name, norm=norm, preset=preset, schedule=schedule)
    assert run.step.stored, "the program stores tensors"
    assert differences(run) == []
    return run


@pytest.mark.parametrize("name, norm, preset, schedule", FAST)
def test_one_step_is_bit_identical_to_golden(name, norm, preset, schedule):
    _check(name, norm, preset, schedule)


@pytest.mark.slow
@pytest.mark.parametrize("name, norm, preset, schedule", ALL)
def test_one_step_is_bit_identical_to_golden_everywhere(name, norm, preset, schedule):
    _check(name, norm, preset, schedule)


@pytest.mark.parametrize("name, norm", [("tiny_resnet", "gn"), ("tiny_concat", "bn")])
def test_mbs_and_bnff_programs_give_the_baseline_bits(name, norm):
    baseline = run_step(name, norm=norm, preset="int8", schedule="baseline")
    mm = baseline.step.memory_map
    for schedule in ("bnff", "mbs", "mbs-bnff"):
        other = run_step(name, norm=norm, preset="int8", schedule=schedule)
        assert len(other.step.program) != len(baseline.step.program)
        for region in mm.regions.values():
            if region.kind in ("parameter", "velocity", "loss"):
                assert np.array_equal(other.read(region.name), baseline.read(region.name)), region.name


def test_layer_by_layer_program_is_bit_identical_too():
    run = run_step("tiny_resnet", norm="gn", preset="int8", schedule="baseline", split_whole=True)
    assert differences(run) == []


@pytest.mark.parametrize("schedule, preset", [("baseline", "int8"), ("mbs-bnff", "int16")])
def test_two_consecutive_steps_are_bit_identical(schedule, preset):
    first = run_step("tiny_resnet", norm="gn", preset=preset, schedule=schedule)
    second = next_step(first)
    assert differences(second) == []
    # the second step really changed parameters and velocities (carried in DRAM)
    regions = [r.name for r in first.step.memory_map.regions.values() if r.kind in ("parameter", "velocity")]
    changed = [name for name in regions if not np.array_equal(second.read(name), first.read(name))]
    assert changed and ("param.stem.weight" in changed or preset == "int8")


def test_weights_per_sub_batch_and_weight_gradients_in_dram_are_bit_identical():
    """Not resident weights (loaded per sub-batch) and dW read-modify-written in DRAM per sub-batch (the
    planner's ``dram`` policy): the same bits, more weight and weight-gradient traffic."""

    def serialised(network):
        return [ExecutionGroup(tuple(layer.name for layer in network.layers), 2, weights_resident=False,
                               weight_grads_on_chip=False)]

    run = run_step("tiny_resnet", norm="gn", preset="int8", schedule="mbs-bnff", groups=serialised)
    assert differences(run) == []
    resident = run_step("tiny_resnet", norm="gn", preset="int8", schedule="mbs-bnff",
                        groups=lambda network: [ExecutionGroup(serialised(network)[0].layers, 2)])
    assert differences(resident) == []
    moved, kept = run.step.expected["bytes"], resident.step.expected["bytes"]
    weight_grads = sum(layer.param_count for layer in run.network.layers) * 4
    assert moved["weight_grads"] == kept["weight_grads"] + 2 * (4 - 1) * weight_grads  # (2S - 1) w
    assert moved["weights"] > kept["weights"]


@pytest.mark.parametrize("norm", ["gn", "bn"])
def test_planned_programs_fit_an_fpga_size_scratchpad_and_stay_bit_identical(norm):
    """48 KiB of int8 scratchpad: the planner's baseline runs in sample tiles, its MBS plan serialises the net
    (with BN: the BN opening a serialised group streamed over its sub-batches); both bit-identical, and MBS
    moves fewer bytes."""
    from wavecore.golden.core.compiler import groups_from_plan
    from wavecore.golden.plan.mbs import plan_baseline, plan_optimal
    from wavecore.golden.plan.traffic import TrafficOptions

    parameters = CoreParameters(scratchpad_elements=48 * 1024)
    options = TrafficOptions(dtype_bytes=1, grad_bytes=4, norm_variant="fused", weight_buffer_bytes=2 * 2304)
    runs = {}
    for name, planner in (("baseline", lambda n: plan_baseline(n, 8, options=options)),
                          ("mbs", lambda n: plan_optimal(n, 8, 48 * 1024, options=options))):
        runs[name] = run_step("tiny_resnet", norm=norm, schedule="mbs-bnff", parameters=parameters,
                              groups=lambda network, planner=planner: groups_from_plan(planner(network), network))
        assert differences(runs[name]) == []
    assert any(g.tiled and g.sub_batch < 8 for g in runs["baseline"].step.groups)
    assert any(len(g.layers) > 1 and g.sub_batch < 8 for g in runs["mbs"].step.groups)
    total = {name: sum(run.step.expected["bytes"].values()) for name, run in runs.items()}
    assert total["mbs"] < (0.5 if norm == "gn" else 1) * total["baseline"]
    if norm == "bn":  # a BN opens a serialised group: streamed, its backward in two passes
        notes = runs["mbs"].step.notes
        assert any(note.endswith("reductions") for note in notes)


def test_refuses_a_scratchpad_too_small_in_one_line():
    network = load_network("tiny_resnet", norm="gn")
    groups = [ExecutionGroup(tuple(layer.name for layer in network.layers), 8)]
    with pytest.raises(ValueError, match=r"^the scratchpad \(4096 elements\) cannot hold \d+ more elements; use a "
                                         r"larger buffer or a schedule with smaller sub-batches$"):
        compile_step(network, 8, groups, numerics=INTEGER_PRESETS["int8"],
                     parameters=CoreParameters(scratchpad_elements=4096))


def test_cli_compile_writes_the_four_files(tmp_path, capsys):
    out = tmp_path / "prog"
    assert main(["compile", "--network", "tiny_resnet", "--batch", "8", "--schedule", "mbs-bnff", "-o",
                 str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["expected.json", "memory_map.json", "program.bin",
                                                      "program.lst"]
    expected = json.loads((out / "expected.json").read_text())
    assert len((out / "program.bin").read_bytes()) == 16 * sum(expected["instructions"].values())
    assert len((out / "program.lst").read_text().splitlines()) == sum(expected["instructions"].values())
    regions = {r["name"]: r for r in json.loads((out / "memory_map.json").read_text())["regions"]}
    assert regions["program"]["bytes"] == expected["program_bytes"]
    assert expected["bytes"]["weights"] > 0 and expected["cycles"] > 0
    out_text = capsys.readouterr().out
    assert "instructions" in out_text and "traffic per class = planner + named terms" in out_text


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--network", "nope"], "--network: network must be one of"),
        (["--schedule", "fast"], "--schedule must be one of baseline, bnff, mbs, mbs-bnff, not 'fast'"),
        (["--batch", "0"], "--batch must be a positive integer, not 0"),
        (["--config", "/does/not/exist.yaml"], "--config:"),
        (["--norm", "ln"], "--norm must be one of bn, gn, none, not 'ln'"),
    ],
)
def test_cli_compile_errors_are_one_line_exit_2_nothing_written(tmp_path, capsys, arguments, message):
    out = tmp_path / "prog"
    assert main(["compile", *arguments, "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def _random_case(seed):
    """A random valid grouping of a tiny net's blocks with random sub-batches, fusion and residency."""
    from wavecore.golden.schedule import Group, Schedule

    rng = np.random.default_rng(seed)
    name = str(rng.choice(NETS))
    norm = str(rng.choice(NORMS))
    network = load_network(name, norm=norm)
    blocks = len(network.blocks())
    cuts = sorted({int(c) for c in rng.integers(1, blocks, size=int(rng.integers(0, 5)))})
    sub_batches = [int(rng.integers(1, 9)) for _ in range(len(cuts) + 1)]
    fusion = bool(rng.integers(2))
    schedule = Schedule.from_boundaries(network, 8, cuts, sub_batches, norm_fusion=fusion)
    groups = []
    for group in schedule.groups:
        inner_bn = any(network.layer(n).op == "batchnorm" for n in group.layers[1:])
        groups.append(Group(group.layers, 8 if inner_bn else group.sub_batch))
    schedule = Schedule(tuple(groups), norm_fusion=fusion).validate(network, 8)
    flags = [(bool(rng.integers(2)), bool(rng.integers(2))) for _ in groups]

    def execution_groups(net):
        return [ExecutionGroup(g.layers, g.sub_batch, resident, on_chip)
                for g, (resident, on_chip) in zip(schedule.groups, flags)]

    return name, norm, str(rng.choice(PRESETS)), schedule, execution_groups


def _check_random(seed):
    name, norm, preset, schedule, execution_groups = _random_case(seed)
    run = run_step(name, norm=norm, preset=preset, schedule=schedule, groups=execution_groups)
    assert differences(run) == [], (name, norm, preset, schedule.describe())


@pytest.mark.parametrize("seed", range(3))
def test_random_schedules_are_bit_identical(seed):
    _check_random(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 60))
def test_random_schedules_are_bit_identical_long(seed):
    _check_random(seed)
