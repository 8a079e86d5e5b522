# amaranth: UnusedElaboratable=no
"""AXI4-Lite register block (hdl/core/register_block.py): Vivado-style port names, parameter checks, and every
register through cocotbext-axi's AxiLiteMaster on both simulators."""

import pytest
from sim_matrix import simulator_cases

from wavecore.hdl.core.ports import convert
from wavecore.hdl.core.register_block import RegisterBlock
from wavecore.hdl.core.registers import CoreIdentity, RegisterMap
from wavecore.verif.runner import build


def test_verilog_ports_are_named_like_vivado_ip():
    text = convert(RegisterBlock(), name="regs")
    for port in ("s_axil_awaddr", "s_axil_wstrb", "s_axil_bresp", "s_axil_rdata", "irq", "core__start",
                 "core__counters__bytes_read_stash", "clk", "rst"):
        assert f" {port};" in text, port
    ports = [line.split()[-1] for line in text.splitlines() if line.strip().startswith(("input", "output"))]
    assert not [port for port in ports if port.startswith("s_axil__")]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"counter_width": 0}, ValueError, "counter_width must be an integer between 1 and 64, not 0"),
        ({"register_map": "map"}, TypeError, "register_map must be a RegisterMap, not 'map'"),
        ({"identity": {"rows": 8}}, TypeError, "identity must be a CoreIdentity, not {'rows': 8}"),
    ],
)
def test_register_block_rejects_bad_parameters(kwargs, error, message):
    with pytest.raises(error) as raised:
        RegisterBlock(**kwargs)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("simulator", "classes", "identity", "counter_width"),
    simulator_cases([
        (None, {"rows": 8, "cols": 8}, 64),
        (("activations", "weights", "optimizer"), {"rows": 16, "cols": 32, "in_width": 16, "acc_width": 48}, 40),
    ]),
)
def test_register_block_through_axi_lite(simulator, classes, identity, counter_width):
    register_map = RegisterMap() if classes is None else RegisterMap(traffic_classes=classes)
    block = RegisterBlock(register_map=register_map, identity=CoreIdentity(**identity), counter_width=counter_width)
    design = build(convert(block, name="register_block"), toplevel="register_block", simulator=simulator)
    design.run(
        "tb_register_block",
        params={"traffic_classes": list(register_map.traffic_classes), "identity": identity,
                "counter_width": counter_width},
    )
