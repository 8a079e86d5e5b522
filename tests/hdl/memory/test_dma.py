# amaranth: UnusedElaboratable=no
"""DMA (hdl/memory/dma.py): parameter validation, the burst reference, and AxiRam traffic on both simulators."""

import json
import time

import pytest
from sim_matrix import simulator_cases

from wavecore.hdl.memory.dma import Dma
from wavecore.verif.axi import Burst, descriptor_bursts, descriptor_bytes
from wavecore.verif.runner import build


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"data_width": 48}, ValueError, "data_width must be a power of two between 8 and 1024, not 48"),
        ({"data_width": 2048}, ValueError, "data_width must be an integer between 8 and 1024, not 2048"),
        ({"max_burst": 0}, ValueError, "max_burst must be an integer between 1 and 256, not 0"),
        ({"max_burst": 257}, ValueError, "max_burst must be an integer between 1 and 256, not 257"),
        ({"max_outstanding": 0}, ValueError, "max_outstanding must be an integer between 1 and 64, not 0"),
        ({"address_width": 8}, ValueError, "address_width must be an integer between 12 and 64, not 8"),
        ({"max_burst": "16"}, TypeError, "max_burst must be an integer, not '16'"),
    ],
)
def test_dma_rejects_bad_parameters_with_exact_message(kwargs, error, message):
    with pytest.raises(error) as raised:
        Dma(**kwargs)
    assert str(raised.value) == message


def test_pack_descriptor_rejects_unknown_field():
    with pytest.raises(ValueError, match=r"^descriptor has no field 'lenght'$"):
        Dma().pack_descriptor(lenght=3)


def test_reference_burst_split_at_4k_and_max_burst():
    # 8-byte beats: 0xFF0 is 2 words below the page end; 40 words -> 2 | 16 | 16 | 6.
    bursts = descriptor_bursts(address=0xFF0, length=40, beat_bytes=8, max_burst=16)
    assert bursts == [Burst(0xFF0, 2), Burst(0x1000, 16), Burst(0x1080, 16), Burst(0x1100, 6)]
    assert sum(burst.beats for burst in bursts) * 8 == descriptor_bytes(length=40, beat_bytes=8)
    assert descriptor_bursts(address=0, length=4, count1=0, beat_bytes=8, max_burst=16) == []


# Pairwise over data width, burst length, outstanding limit and stall pattern; both simulators.
@pytest.mark.parametrize(
    (
        "simulator",
        "data_width",
        "max_burst",
        "max_outstanding",
        "stall",
        "max_latency",
        "idle",
        "backpressure",
    ),
    simulator_cases(
        [
            (32, 16, 2, 0.0, 0, 0.0, 0.0),
            (64, 256, 4, 0.3, 6, 0.3, 0.3),
            (128, 8, 1, 0.2, 3, 0.0, 0.4),
            (32, 5, 3, 0.1, 2, 0.2, 0.2),  # a burst limit that is not a power of two
        ]
    ),
)
def test_dma_moves_descriptor_boxes_bit_exact_and_counts_bytes(
    simulator, data_width, max_burst, max_outstanding, stall, max_latency, idle, backpressure
):
    settings = {
        "address_width": 32,
        "data_width": data_width,
        "max_burst": max_burst,
        "max_outstanding": max_outstanding,
        "count_width": 8,
        "scratch_width": 13,
    }
    design = build(Dma(**settings), toplevel="dma", simulator=simulator)
    design.run(
        "tb_dma",
        testcase="concurrent_descriptors_against_axi_ram",
        params={
            "dma": settings,
            "descriptors": 6,
            "stall": stall,
            "max_latency": max_latency,
            "idle": idle,
            "backpressure": backpressure,
        },
    )


def test_dma_with_a_command_register_moves_descriptor_boxes_bit_exact_and_counts_bytes():
    # The command stage the core uses (command_register=True): descriptors back to back with idle gaps, under
    # stalls, latency and backpressure, on Icarus.
    settings = {"address_width": 32, "data_width": 64, "max_burst": 4, "max_outstanding": 2, "count_width": 8,
                "scratch_width": 13, "command_register": True}
    design = build(Dma(**settings), toplevel="dma", simulator="icarus")
    design.run("tb_dma", testcase="concurrent_descriptors_against_axi_ram",
               params={"dma": settings, "descriptors": 6, "stall": 0.2, "max_latency": 3, "idle": 0.3,
                       "backpressure": 0.2})


@pytest.mark.parametrize("simulator", simulator_cases([()]))
def test_dma_with_a_silent_subordinate_fails_within_the_cycle_limit_in_seconds(simulator):
    settings = {"address_width": 32, "data_width": 64, "max_burst": 16, "max_outstanding": 2, "count_width": 8,
                "scratch_width": 13}
    design = build(Dma(**settings), toplevel="dma", simulator=simulator)
    start = time.monotonic()
    design.run("tb_dma", testcase="silent_subordinate_fails_within_the_limit",
               params={"dma": settings, "stall": 0.0, "max_latency": 0, "idle": 0.0, "backpressure": 0.0})
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("latency", [0, 8, 24])
def test_dma_is_bit_exact_against_a_fixed_latency_memory_from_zero_to_long_latency(latency, tmp_path):
    # Both channels at once against PipelinedAxiRam (first R beat 1 + latency cycles after AR, B 1 + latency after
    # the last W beat): the zero- and long-latency responses AxiRam's random latency never gives. Checks every word
    # read and written against the source data, and the AXI rules (4 KiB, outstanding limit) in the monitor.
    settings = {"address_width": 32, "data_width": 64, "max_burst": 16, "max_outstanding": 2, "count_width": 16,
                "scratch_width": 16}
    design = build(Dma(**settings), toplevel="dma", simulator="icarus")
    result_file = tmp_path / "result.json"
    design.run("tb_dma_bandwidth", testcase="bandwidth",
               params={"dma": settings, "words": 200, "latency": latency, "ram": "pipelined", "direction": "both",
                       "result_file": str(result_file)})
    result = json.loads(result_file.read_text())
    assert result["beats"] == 2 * 200
    assert result["bus_fraction_steady"] <= 1  # at most one beat per cycle per channel
    assert max(result["peak_read_outstanding"], result["peak_write_outstanding"]) <= 2
