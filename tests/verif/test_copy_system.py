# amaranth: UnusedElaboratable=no
"""CopySystem (verif/copy_system.py) driven by the host driver (verif/host.py): DMA copies in the HDL DRAM model
with Python idle, counters per traffic class, the documented error codes, START while busy, timeouts."""

import pytest
from sim_matrix import simulator_cases

from wavecore.hdl.core.dram_model import plusargs, verilog_source
from wavecore.hdl.core.ports import convert
from wavecore.verif.copy_system import CopySystem, copy_program
from wavecore.verif.runner import build


def _build(simulator, **settings):
    system = CopySystem(**settings)
    return build(convert(system, name="copy_system"), toplevel="copy_system", simulator=simulator,
                 extra_sources=[verilog_source()])


def test_copy_program_layout():
    record = copy_program(source=0x1234, destination=0x5678, chunk=3, chunks=7, traffic_class=2)
    assert len(record) == 32
    assert record[0] == 1 and record[1] == 2
    assert int.from_bytes(record[2:4], "little") == 3 and int.from_bytes(record[4:8], "little") == 7
    assert int.from_bytes(record[8:16], "little") == 0x1234 and int.from_bytes(record[16:24], "little") == 0x5678


@pytest.mark.parametrize(
    ("simulator", "data_width", "stall", "latency"),
    simulator_cases([(64, 48, (0, 16)), (128, 0, (0, 0))]),
)
def test_copy_system_runs_programs_through_the_host_driver(simulator, data_width, stall, latency):
    settings = {"data_width": data_width, "dram_bytes": 1 << 18, "scratch_words": 256, "max_burst": 32,
                "max_outstanding": 4}
    design = _build(simulator, **settings)
    design.run(
        "tb_copy_system",
        params={**settings, "programs": [(128, 6, 2), (37, 3, 0), (1, 1, 5)]},
        plusargs=plusargs(seed=11, stall=stall, latency_min=latency[0], latency_max=latency[1],
                          load="dram_load.hex", dump="dram_dump.hex"),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data_width": 16}, "data_width must be an integer between 32 and 256, not 16"),
        ({"scratch_words": 100}, "scratch_words must be a power of two between 4 and 65536, not 100"),
    ],
)
def test_copy_system_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as raised:
        CopySystem(**kwargs)
    assert str(raised.value) == message
