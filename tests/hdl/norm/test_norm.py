# amaranth: UnusedElaboratable=no
"""BN/GN datapath units (hdl/norm/affine.py, norm_stats.py, norm_backward.py, norm_dx.py, norm_scalar.py)
bit-exact against wavecore.golden.numerics.NormArithmetic on both simulators, under random stalls."""

import pytest
from sim_matrix import simulator_cases

from wavecore.golden.numerics import IntFormat, NormArithmetic
from wavecore.hdl.norm.affine import NormAffine
from wavecore.hdl.norm.backward import NormBackwardReduce
from wavecore.hdl.norm.dx import NormDx
from wavecore.hdl.norm.scalar import NormScalar, ScalarMode
from wavecore.hdl.norm.stats import NormStatistics
from wavecore.verif.runner import build

# Two arithmetic configurations: the int16 training default and an int8 one with another rounding mode.
CONFIGS = {
    "int16": {"activation": 16, "gradient": 16, "max_count": 4096},
    "int8": {
        "activation": 8,
        "gradient": 8,
        "activation_frac": 4,
        "grad_frac": 7,
        "param_frac": 6,
        "param_grad_frac": 7,
        "scalar_frac": 10,
        "coefficient_width": 24,
        "bias_width": 32,
        "rounding": "half_up",
        "max_count": 1024,
    },
}


def _arithmetic(name: str) -> NormArithmetic:
    fields = dict(CONFIGS[name])
    fields["activation"] = IntFormat(fields["activation"])
    fields["gradient"] = IntFormat(fields["gradient"])
    return NormArithmetic(**fields)


UNITS = {
    "affine": (
        lambda a, lanes, sets, groups: NormAffine(arithmetic=a, lanes=lanes, sets=sets),
        "affine_relu_with_padding",
    ),
    "statistics": (
        lambda a, lanes, sets, groups: NormStatistics(
            arithmetic=a, lanes=lanes, sets=sets, group_lanes=groups
        ),
        "statistics_on_write",
    ),
    "backward": (
        lambda a, lanes, sets, groups: NormBackwardReduce(arithmetic=a, lanes=lanes, sets=sets),
        "backward_reductions_with_recomputed_mask",
    ),
    "dx": (lambda a, lanes, sets, groups: NormDx(arithmetic=a, lanes=lanes, sets=sets), "two_stream_dx"),
}


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: NormAffine(arithmetic=NormArithmetic(), lanes=0, sets=2),
            "lanes must be an integer between 1 and 64, not 0",
        ),
        (
            lambda: NormDx(arithmetic=NormArithmetic(), lanes=4, sets=0),
            "sets must be an integer between 1 and 4096, not 0",
        ),
        (
            lambda: NormStatistics(arithmetic=NormArithmetic(), lanes=6, sets=2, group_lanes=4),
            "group_lanes must divide lanes (6), not 4",
        ),
        (
            lambda: NormBackwardReduce(arithmetic="int16", lanes=4, sets=2),
            "arithmetic must be a wavecore.golden.numerics.NormArithmetic, not 'int16'",
        ),
        (
            lambda: NormScalar(arithmetic=NormArithmetic(), weighted_width=129),
            "weighted_width must be an integer between 2 and 128, not 129",
        ),
    ],
)
def test_norm_units_reject_bad_parameters_with_exact_message(factory, message):
    with pytest.raises((ValueError, TypeError)) as raised:
        factory()
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("simulator", "unit", "config", "lanes", "sets", "group_lanes", "idle", "backpressure"),
    simulator_cases(
        [
            ("affine", "int16", 4, 3, 1, 0.3, 0.4),
            ("statistics", "int16", 4, 3, 2, 0.3, 0.4),
            ("backward", "int16", 4, 2, 1, 0.3, 0.4),
            ("dx", "int16", 4, 3, 1, 0.3, 0.4),
            ("affine", "int8", 2, 1, 1, 0.0, 0.0),
            ("statistics", "int8", 3, 2, 1, 0.0, 0.5),
            ("backward", "int8", 2, 3, 1, 0.2, 0.0),
            ("dx", "int8", 3, 2, 1, 0.0, 0.3),
        ],
        verilator_default=4,
    ),
)
def test_norm_unit_is_bit_exact_with_golden_under_stalls(
    simulator, unit, config, lanes, sets, group_lanes, idle, backpressure
):
    factory, testcase = UNITS[unit]
    design = build(
        factory(_arithmetic(config), lanes, sets, group_lanes), toplevel=f"norm_{unit}", simulator=simulator
    )
    design.run(
        "tb_norm",
        testcase=testcase,
        params={
            "arithmetic": CONFIGS[config],
            "lanes": lanes,
            "sets": sets,
            "group_lanes": group_lanes,
            "beats": 300,
            "idle": idle,
            "backpressure": backpressure,
        },
    )


FORWARDING_TESTCASES = {
    "statistics": "statistics_forwarding_reads_and_clears",
    "backward": "backward_forwarding_reads_and_clears",
}


@pytest.mark.parametrize(
    ("simulator", "unit", "config", "lanes", "sets", "group_lanes", "pattern", "idle", "backpressure"),
    simulator_cases(
        [
            ("statistics", "int16", 2, 4, 1, "runs", 0.0, 0.0),
            ("backward", "int16", 2, 4, 1, "runs", 0.0, 0.0),
            ("statistics", "int8", 4, 3, 2, "alternate", 0.3, 0.3),
            ("backward", "int8", 2, 2, 1, "alternate", 0.2, 0.3),
            ("statistics", "int16", 1, 64, 1, "random", 0.1, 0.2),
        ],
        verilator_default=2,
    ),
)
def test_accumulator_memory_forwarding_reads_and_clears_match_golden(
    simulator, unit, config, lanes, sets, group_lanes, pattern, idle, backpressure
):
    """The accumulators in memory: back-to-back beats on one set (read-modify-write forwarding), alternating
    sets, random stalls, reads while the stream runs and clears with beats in flight, each read checked
    against the golden sums of exactly the beats the docstring timing says it covers."""
    factory, _ = UNITS[unit]
    design = build(
        factory(_arithmetic(config), lanes, sets, group_lanes), toplevel=f"norm_{unit}", simulator=simulator
    )
    design.run(
        "tb_norm",
        testcase=FORWARDING_TESTCASES[unit],
        params={
            "arithmetic": CONFIGS[config],
            "lanes": lanes,
            "sets": sets,
            "group_lanes": group_lanes,
            "beats": 300,
            "reads": 60,
            "pattern": pattern,
            "clear_probability": 0.02,
            "idle": idle,
            "backpressure": backpressure,
        },
    )


@pytest.mark.parametrize(("simulator", "config"), simulator_cases([("int16",), ("int8",)]))
def test_scalar_unit_computes_rsqrt_and_constants_bit_exact(simulator, config):
    arithmetic = _arithmetic(config)
    width = arithmetic.activation.width
    weighted = arithmetic.grad_product_sum_format.width + width + 3
    design = build(
        NormScalar(arithmetic=arithmetic, param_width=width, weighted_width=weighted),
        toplevel="norm_scalar",
        simulator=simulator,
    )
    design.run(
        "tb_norm",
        testcase="scalar_unit_matches_golden",
        params={
            "arithmetic": CONFIGS[config],
            "param_width": width,
            "weighted_width": weighted,
            "commands": 6,
            "idle": 0.3,
            "backpressure": 0.3,
        },
    )


#: Latency of the benchmark configuration (int16, max_count 65536, param 16, weighted 96) in cycles, as
#: stated in docs/benchmarks.md and docs/hardware.md.
SCALAR_LATENCY_INT16 = {ScalarMode.FORWARD: 2913, ScalarMode.BACKWARD: 2665, ScalarMode.DGAMMA: 1041}


def test_scalar_unit_latency_is_exact_and_stated():
    """In amaranth.sim: each command's result appears exactly worst_case_cycles(mode) cycles after an idle
    unit first sees it, with golden results (latency does not depend on the data), and ready is high in
    exactly one cycle per command."""
    from amaranth.sim import Simulator
    from tb_norm import scalar_unit_cases

    from wavecore.verif.seed import rng

    arithmetic = _arithmetic("int8")
    unit = NormScalar(arithmetic=arithmetic, param_width=8, weighted_width=60)
    cases = scalar_unit_cases(arithmetic, 8, rng("scalar_latency"), 2)
    failures = []

    async def testbench(ctx):
        ctx.set(unit.result.ready, 1)
        for mode, fields, want in cases:
            ctx.set(unit.command.payload, unit.command_layout.const({"mode": mode, **fields}))
            ctx.set(unit.command.valid, 1)
            cycles = accepted = 0
            while not ctx.get(unit.result.valid):
                if ctx.get(unit.command.ready):
                    accepted += 1
                    accept_cycle = cycles
                await ctx.tick()
                if accepted:
                    ctx.set(unit.command.valid, 0)
                cycles += 1
                assert cycles <= 10 * unit.worst_case_cycles(mode), f"{mode.name}: no result"
            got = {name: ctx.get(getattr(unit.result.payload, name)) for name in unit.result_layout.members}
            # docstring: ready in the cycle of the last field copy, cycle 6 (forward) or 5, counting from 0
            stated = (unit.worst_case_cycles(mode), 1, 6 if mode == ScalarMode.FORWARD else 5)
            if (cycles, accepted, accept_cycle) != stated:
                failures.append((mode.name, "cycles, ready cycles, ready cycle", cycles, accepted, accept_cycle))
            failures.extend((mode.name, name, got[name], want.get(name, 0)) for name in got
                            if got[name] != want.get(name, 0))
            await ctx.tick()

    simulator = Simulator(unit)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    assert not failures, failures[:5]
    default = NormScalar(arithmetic=NormArithmetic(max_count=1 << 16), param_width=16, weighted_width=96)
    assert {mode: default.worst_case_cycles(mode) for mode in ScalarMode} == SCALAR_LATENCY_INT16


@pytest.mark.slow
def test_scalar_unit_is_a_lutram_register_file_one_rom_block_and_one_adder(tmp_path):
    """The sequencer structure survives synthesis (benchmarks/memory_area.py flow, ECP5): the register file
    is LUT RAM (16 words: one TRELLIS_DPR16X4 per 4 bits), the micro-program one DP16KD, no DSP, and the
    unit stays under a fifth of the 24592 LUT4 of the unrolled design it replaced (docs/benchmarks.md)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "memory_area.py"
    spec = importlib.util.spec_from_file_location("memory_area", path)
    memory_area = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory_area)
    unit = NormScalar(arithmetic=NormArithmetic(max_count=1 << 16), param_width=16, weighted_width=96)
    cells = memory_area.synthesize("norm_scalar", lambda: unit, tmp_path)
    assert cells["lutram"] == -(-unit.datapath_width // 4)
    assert (cells["bram"], cells["dsp"]) == (1, 0)
    assert cells["lut4"] < 24592 / 5
