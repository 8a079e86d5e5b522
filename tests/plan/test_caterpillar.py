"""CATERPILLAR cost kit against the paper's stated formulas, Table 1/2 and areas (arXiv 1706.00517)."""

import pytest

from wavecore.golden.plan.caterpillar import (
    CONFIG_A,
    CONFIG_B,
    area_mm2,
    collective_cycles,
    fits,
    method_cost,
    reduction_cycles,
)

N1 = [784, 500, 500, 500, 10]
N2 = [784, 2500, 2000, 1500, 1000, 500, 10]


def test_areas_of_the_two_configurations():
    assert area_mm2(CONFIG_A) == pytest.approx(103.2, abs=0.1)
    assert area_mm2(CONFIG_B) == pytest.approx(178.9, abs=0.15)
    assert CONFIG_A.pes == 512 and CONFIG_B.pes == 2048


def test_fit_cases_of_table_2():
    assert fits(N1, CONFIG_A)  # case (a) fits
    assert not fits(N2, CONFIG_A)  # case (b) does not fit
    assert fits(N2, CONFIG_B)  # case (c) fits


def test_per_epoch_formulas():
    weights = sum(m * n for m, n in zip(N1[:-1], N1[1:]))
    samples = 1000
    assert method_cost(N1, "sgd", samples=samples).macs == 3 * samples * weights
    assert method_cost(N1, "sgd", samples=samples).weight_accesses == 2 * samples * weights
    assert method_cost(N1, "mbgd", samples=samples, batch=50).weight_accesses == 2 * samples * weights // 50
    assert method_cost(N1, "cp", samples=samples).weight_accesses == samples * weights
    feedback = sum(m * 10 for m in N1[:-2])
    dfa = method_cost(N1, "dfa", samples=samples, batch=50)
    assert dfa.macs == samples * (2 * weights + feedback)
    assert dfa.weight_accesses == (2 * samples * weights + samples * feedback) // 50


@pytest.mark.parametrize(
    ("widths", "chip", "paper"), [(N1, CONFIG_A, (177, 204)), (N2, CONFIG_B, (185, 211))]
)
def test_table_2_trend_when_the_network_fits(widths, chip, paper):
    sgd = method_cost(widths, "sgd", samples=60000, chip=chip).gflops_per_watt
    cp = method_cost(widths, "cp", samples=60000, chip=chip).gflops_per_watt
    assert cp > sgd  # CP beats SGD (one weight access serves forward and backward)
    assert sgd == pytest.approx(paper[0], rel=0.05)
    assert cp == pytest.approx(paper[1], rel=0.05)


def test_table_2_trend_when_the_network_does_not_fit():
    costs = {
        m: method_cost(N2, m, samples=60000, batch=50 if m == "mbgd" else 1, chip=CONFIG_A).gflops_per_watt
        for m in ("sgd", "cp", "mbgd")
    }
    assert costs["mbgd"] > costs["cp"] > costs["sgd"]  # Table 2 (b): 187 > 127 > 98
    assert costs["sgd"] == pytest.approx(98, rel=0.06)


def test_collective_and_reduction_cycles():
    assert reduction_cycles(16) == 15
    assert reduction_cycles(16, neighbour_links=True) == 3
    assert collective_cycles(500, 8, 8, 16) == pytest.approx((500 * 8 - 500) / 16)


def test_bad_method_message():
    with pytest.raises(ValueError, match="method must be one of sgd, mbgd, dfa, cp, not 'adam'"):
        method_cost(N1, "adam", samples=1)
