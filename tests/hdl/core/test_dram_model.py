# amaranth: UnusedElaboratable=no
"""HDL DRAM model (hdl/core/dram_model.py + wavecore_dram_model.v) against cocotbext-axi's AxiMaster on both
simulators: random concurrent bursts vs a shadow memory, random latency/stalls reproducible by seed, backdoor."""

import json

import pytest
from sim_matrix import simulator_cases

from wavecore.hdl.core.dram_model import DramModel, plusargs, verilog_source
from wavecore.hdl.core.ports import convert
from wavecore.verif.host import write_hex_image
from wavecore.verif.runner import SimulationFailed, build, simulator_params


def _build(simulator, **settings):
    model = DramModel(**settings)
    return build(convert(model, name="dram_model"), toplevel="dram_model", simulator=simulator,
                 extra_sources=[verilog_source()])


@pytest.mark.parametrize(
    ("simulator", "data_width", "id_width", "stall", "latency"),
    simulator_cases([(64, 4, 40, (0, 12)), (32, 2, 0, (0, 0))]),
)
def test_dram_model_random_bursts_match_shadow_memory(simulator, data_width, id_width, stall, latency):
    settings = {"address_width": 32, "data_width": data_width, "id_width": id_width, "size_bytes": 1 << 16,
                "outstanding": 8}
    design = _build(simulator, **settings)
    design.run(
        "tb_dram_model",
        testcase="random_bursts_against_shadow_memory",
        params={**settings, "workers": 4, "operations": 12, "stall": stall, "latency_max": latency[1]},
        plusargs=plusargs(seed=7, stall=stall, latency_min=latency[0], latency_max=latency[1]),
    )


def _trace(design, name, seed, stall, latency):
    results = design.run(
        "tb_dram_model",
        testcase="latency_and_stalls_are_random_in_range_and_reproducible",
        params={"latency_min": latency[0], "latency_max": latency[1], "stall": stall, "samples": 120},
        plusargs=plusargs(seed=seed, stall=stall, latency_min=latency[0], latency_max=latency[1]),
        test_name=name,
    )
    return json.loads((results.parent / "trace.json").read_text())


@pytest.mark.parametrize(
    "simulator",
    [pytest.param(name, marks=[*param.marks, *([pytest.mark.slow] if name == "icarus" else [])], id=name)
     for param in simulator_params() for name in param.values],
)
def test_dram_model_latency_and_stalls_are_random_and_reproducible_by_seed(simulator):
    design = _build(simulator, size_bytes=1 << 16)
    first = _trace(design, f"latency-{simulator}-seed3", 3, 0, (2, 17))
    same = _trace(design, f"latency-{simulator}-seed3-again", 3, 0, (2, 17))
    other = _trace(design, f"latency-{simulator}-seed4", 4, 0, (2, 17))
    assert first == same, "the same seed must give the same trace in a new simulation"
    assert first["delays"] != other["delays"], "another seed must give other latencies"
    stalled = _trace(design, f"stall-{simulator}-seed5", 5, 96, (0, 3))
    assert stalled["low"] > 0


@pytest.mark.parametrize("simulator", simulator_params())
def test_dram_model_backdoor_load_and_dump(simulator, tmp_path):
    settings = {"data_width": 64, "size_bytes": 1 << 16}
    design = _build(simulator, **settings)
    init = {0x8000 // 8 + index: 0x0123_4567_89AB_CDEF ^ (index * 0x1111) for index in range(5)}
    write_hex_image(tmp_path / "init.hex", init, data_width=64)
    design.run(
        "tb_dram_model",
        testcase="backdoor_load_then_axi_read_and_axi_write_then_dump",
        params={**settings, "init": {str(index * 8): f"{value:x}" for index, value in init.items()}},
        plusargs=plusargs(init=str(tmp_path / "init.hex"), load="dram_load.hex", dump="dram_dump.hex"),
    )


@pytest.mark.parametrize("simulator", simulator_params())
def test_dram_model_stops_on_a_burst_across_4k(simulator):
    design = _build(simulator, size_bytes=1 << 16)
    with pytest.raises(SimulationFailed) as raised:
        design.run("tb_dram_model", testcase="page_crossing_burst_stops_the_simulation", params={"data_width": 64})
    assert "AR burst at 0xff8 of 2 beats crosses a 4 KiB boundary" in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size_bytes": 100}, "size_bytes must be a multiple of the bus word (8 bytes), not 100"),
        ({"data_width": 48}, "data_width must be a power of two between 8 and 1024, not 48"),
        ({"latency_min": 5, "latency_max": 2}, "latency_max must be an integer between 5 and 2147483647, not 2"),
        ({"stall": 256}, "stall must be an integer between 0 and 255, not 256"),
    ],
)
def test_dram_model_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as raised:
        DramModel(**kwargs)
    assert str(raised.value) == message


def test_plusargs_are_checked():
    assert plusargs(seed=3, stall=10, dump="out.hex") == ["+dram_seed=3", "+dram_stall=10", "+dram_dump=out.hex"]
    with pytest.raises(ValueError, match=r"^load must be a file name without spaces, not 'a b'$"):
        plusargs(load="a b")
