# amaranth: UnusedElaboratable=no
"""BN/GN datapath units (hdl/norm_affine.py, norm_stats.py, norm_backward.py, norm_dx.py) bit-exact
against golden.numerics.NormArithmetic on both simulators, under random stalls."""

import pytest
from sim_matrix import simulator_cases

from golden.numerics import IntFormat, NormArithmetic
from hdl.norm_affine import NormAffine
from hdl.norm_backward import NormBackwardReduce
from hdl.norm_dx import NormDx
from hdl.norm_scalar import NormScalar, ScalarMode
from hdl.norm_stats import NormStatistics
from verif.runner import build

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
            "arithmetic must be a golden.numerics.NormArithmetic, not 'int16'",
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


def test_scalar_unit_latency_bound_is_stated():
    unit = NormScalar(arithmetic=_arithmetic("int16"))
    assert 0 < unit.worst_case_cycles(ScalarMode.DGAMMA) < unit.worst_case_cycles(ScalarMode.FORWARD)
