"""BN fission-fusion pass counts (:data:`wavecore.golden.plan.traffic.SITE_PASSES`) on DenseNet-121 and ResNet-50."""

import pytest

from wavecore.golden.network import load_network
from wavecore.golden.plan.bnff import fusion_saving, site_passes
from wavecore.golden.plan.mbs import plan_baseline


def test_densenet121_bn_relu_sites_have_the_stated_pass_counts():
    network = load_network("densenet121", norm="bn")
    sites = site_passes(network, 32)
    bn_relu = [s for s in sites if s.kind == "norm_relu"]
    assert len(bn_relu) == 121  # conv0 + 2 per dense layer (2 x 58) + 3 transitions + norm5
    assert all(s.passes == {"two_pass": 14, "one_pass": 13, "fused": 2} for s in bn_relu)
    first = next(s for s in sites if s.layers[0] == "conv0_norm")
    assert first.feature_map_bytes == 32 * 64 * 112 * 112 * 2


@pytest.mark.parametrize("name", ["densenet121", "resnet50"])
def test_fusion_cuts_the_norm_passes_sevenfold_for_bn_relu(name):
    network = load_network(name, norm="bn")
    unfused, fused = fusion_saving(plan_baseline, network, 32)
    assert fused.traffic.total < unfused.traffic.total
    sites = site_passes(network, 32)
    expected_unfused = sum(s.feature_map_bytes * s.passes["two_pass"] for s in sites)
    expected_fused = sum(s.feature_map_bytes * s.passes["fused"] for s in sites)
    assert unfused.traffic.per_class["norm_passes"] == expected_unfused
    assert fused.traffic.per_class["norm_passes"] == expected_fused
