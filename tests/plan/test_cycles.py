"""GEMM cycle model vs SCALE-Sim 3.0.0 (values recorded from a SCALE-Sim run; live run marked slow)."""

import pytest

from wavecore.golden.network import load_network
from wavecore.golden.plan.cycles import gemm_cycles, layer_gemms, network_cycles

# (dataflow, array side, (M, K, N), SCALE-Sim total cycles), recorded on 2026-11-22 from SCALE-Sim 3.0.0 in GEMM
# mode (square arrays, 8 MiB SRAMs, InterfaceBandwidth = CALC, so no stalls)
RECORDED_SCALESIM_CYCLES = [
    ("os", 4, (64, 64, 64), 17919),
    ("os", 4, (128, 128, 128), 137215),
    ("os", 4, (256, 64, 32), 35839),
    ("os", 4, (49, 1152, 128), 481727),
    ("os", 8, (64, 64, 64), 4991),
    ("os", 8, (128, 128, 128), 36351),
    ("os", 8, (256, 64, 32), 9983),
    ("os", 8, (49, 1152, 128), 130591),
    ("os", 16, (64, 64, 64), 1503),
    ("os", 16, (128, 128, 128), 10111),
    ("os", 16, (256, 64, 32), 3007),
    ("os", 16, (49, 1152, 128), 37823),
    ("ws", 4, (64, 64, 64), 18943),
    ("ws", 4, (128, 128, 128), 141311),
    ("ws", 4, (256, 64, 32), 34047),
    ("ws", 4, (49, 1152, 128), 543743),
    ("ws", 8, (64, 64, 64), 5503),
    ("ws", 8, (128, 128, 128), 38399),
    ("ws", 8, (256, 64, 32), 8895),
    ("ws", 8, (49, 1152, 128), 163583),
    ("ws", 16, (64, 64, 64), 1759),
    ("ws", 16, (128, 128, 128), 11135),
    ("ws", 16, (256, 64, 32), 2415),
    ("ws", 16, (49, 1152, 128), 54719),
]


@pytest.mark.parametrize(("dataflow", "side", "gemm", "expected"), RECORDED_SCALESIM_CYCLES)
def test_scalesim_convention_matches_recorded_cycles(dataflow, side, gemm, expected):
    assert gemm_cycles(*gemm, rows=side, cols=side, dataflow=dataflow) == expected


def test_rectangular_probe_matches_recorded_cycles():
    # 4-row x 8-col probes: os (4,32,8) 41 cycles, swapped M/N 83; ws (32,4,8) 45, (32,8,4) 91
    assert gemm_cycles(4, 32, 8, rows=4, cols=8, dataflow="os") == 41
    assert gemm_cycles(8, 32, 4, rows=4, cols=8, dataflow="os") == 83
    assert gemm_cycles(32, 4, 8, rows=4, cols=8, dataflow="ws") == 45
    assert gemm_cycles(32, 8, 4, rows=4, cols=8, dataflow="ws") == 91


@pytest.mark.parametrize(("dataflow", "side", "gemm", "expected"), RECORDED_SCALESIM_CYCLES[::5])
def test_overlapped_convention_never_exceeds_scalesim(dataflow, side, gemm, expected):
    overlapped = gemm_cycles(*gemm, rows=side, cols=side, dataflow=dataflow, convention="overlapped")
    ideal = gemm[0] * gemm[1] * gemm[2] / side**2
    assert ideal <= overlapped <= expected


def test_overlapped_convention_by_hand():
    # os: folds = ceil(8/4) * ceil(8/4) = 4 streams of K = 5, plus one fill/drain 4 + 4 - 2 = 6
    assert gemm_cycles(8, 5, 8, rows=4, cols=4, dataflow="os", convention="overlapped") == 4 * 5 + 6
    # ws: folds = ceil(8/4) * ceil(4/4) = 2; a weight load (4 rows) cannot hide behind a 2-row stream
    assert gemm_cycles(2, 8, 4, rows=4, cols=4, dataflow="ws", convention="overlapped") == 2 * 4 + 6
    assert gemm_cycles(9, 8, 4, rows=4, cols=4, dataflow="ws", convention="overlapped") == 2 * 9 + 6


def test_conv_gemm_shapes_of_resnet50_stem():
    network = load_network("resnet50")
    gemms = layer_gemms(network.layer("conv1"), 2)
    pixels = 2 * 112 * 112
    assert gemms["forward"] == [(pixels, 3 * 7 * 7, 64)]
    assert gemms["backward_data"] == [(pixels, 64, 147)]
    assert gemms["backward_weight"] == [(147, pixels, 64)]


def test_grouped_conv_is_one_gemm_per_group():
    network = load_network("tiny_mobilenet")
    depthwise = next(layer for layer in network.layers if layer.op == "conv2d" and layer.params["groups"] > 1)
    gemms = layer_gemms(depthwise, 1)
    groups = depthwise.params["groups"]
    assert len(gemms["forward"]) == groups
    m, k, n = gemms["forward"][0]
    assert m * k * n * groups == depthwise.macs


def test_network_cycles_macs_are_three_times_forward_minus_first_input_gradient():
    network = load_network("tiny_resnet")
    cycles = network_cycles(network, 4, rows=8, cols=8)
    first = next(layer for layer in network.layers if layer.op == "conv2d")
    assert sum(c.macs for c in cycles) == 3 * 4 * network.macs() - 4 * first.macs


def test_bad_dataflow_message():
    with pytest.raises(ValueError, match="dataflow must be one of os, ws, not 'is'"):
        gemm_cycles(4, 4, 4, rows=2, cols=2, dataflow="is")


@pytest.mark.slow
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_cycle_model_equals_live_scalesim_on_conv_gemms(dataflow):
    from wavecore.verif.scalesim import scalesim_gemm_cycles

    network = load_network("tiny_resnet")
    gemms = sorted({g for layer in network.layers for p in layer_gemms(layer, 2).values() for g in p})
    expected = scalesim_gemm_cycles(gemms, 8, 4, dataflow)
    assert [gemm_cycles(*g, rows=8, cols=4, dataflow=dataflow) for g in gemms] == expected
