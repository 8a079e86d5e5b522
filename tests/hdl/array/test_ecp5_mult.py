"""The ECP5 DSP multiplier: behavioural pipeline against NumPy, primitive netlist structure after Yosys."""

import json
import subprocess

import numpy as np
import pytest
from amaranth import signed, unsigned
from amaranth.back import verilog
from amaranth.sim import Simulator

from wavecore.boards.targets import get_target, tool_environment
from wavecore.hdl.array.ecp5_mult import Ecp5Multiplier, ecp5_multiplier
from wavecore.verif.seed import rng


@pytest.mark.parametrize(
    ("width", "is_signed", "fabric_register"),
    [(8, True, True), (18, True, False), (17, False, True), (5, False, False), (8, False, True)],
)
def test_behavioural_pipeline_delays_by_latency_enabled_edges_and_holds_when_stalled(
    width, is_signed, fabric_register
):
    shape = signed(width) if is_signed else unsigned(width)
    dut = Ecp5Multiplier(
        operand_shape=shape,
        product_shape=signed(2 * width) if is_signed else unsigned(2 * width),
        implementation="behavioural",
        fabric_register=fabric_register,
    )
    latency = 3 if fabric_register else 2  # stated in the docstring: DSP input, DSP output, fabric register
    assert dut.latency == latency
    random = rng("ecp5_mult")
    low, high = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    a = random.integers(low, high, size=300, endpoint=True)
    b = random.integers(low, high, size=300, endpoint=True)
    a[:4] = [low, low, high, 0]
    b[:4] = [low, high, high, low]
    enable = random.random(300) < 0.7
    mismatches = []

    async def testbench(ctx):
        # reference: a queue of operand pairs accepted at enabled edges; the product is the one `latency`
        # enabled edges back (zero after reset)
        accepted = [0] * latency
        for step in range(300):
            ctx.set(dut.a, int(a[step]))
            ctx.set(dut.b, int(b[step]))
            ctx.set(dut.enable, int(enable[step]))
            expected = accepted[-latency]
            if ctx.get(dut.product) != expected:
                mismatches.append((step, ctx.get(dut.product), expected))
            await ctx.tick()
            if enable[step]:
                accepted.append(int(a[step]) * int(b[step]))

    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    assert not mismatches, mismatches[:5]


def test_fabric_register_is_the_default_of_the_multiplier_and_its_factory():
    # the ECP5 board flows take the factory's default (180.4 vs 157.4 MHz at 4x4, docs/benchmarks.md)
    assert Ecp5Multiplier(operand_shape=signed(8), product_shape=signed(16)).latency == 3
    assert ecp5_multiplier().latency == 3 and ecp5_multiplier("behavioural").latency == 3
    assert ecp5_multiplier(fabric_register=False).latency == 2
    with pytest.raises(TypeError, match="fabric_register must be a bool, not 1"):
        ecp5_multiplier(fabric_register=1)
    with pytest.raises(TypeError, match="fabric_register must be a bool, not None"):
        Ecp5Multiplier(operand_shape=signed(8), product_shape=signed(16), fabric_register=None)


@pytest.mark.parametrize("target", ["ulx3s-85f", "orangecrab-25f"])
def test_ecp5_board_flows_use_the_fabric_register(target):
    from wavecore.boards.synth import multiplier_factory

    for choice in ("auto", "ecp5_dsp"):
        hardware = multiplier_factory(choice, get_target(target))
        twin = multiplier_factory(choice, get_target(target), simulation=True)  # the BIST reference model
        assert (hardware.latency, twin.latency) == (3, 3)
        assert hardware.keywords == {"implementation": "primitive", "fabric_register": True}
        assert twin.keywords == {"implementation": "behavioural", "fabric_register": True}


def test_parameters_are_validated():
    with pytest.raises(
        ValueError, match="operand_shape must be 2 to 17 bits wide for unsigned operands, not 18"
    ):
        Ecp5Multiplier(operand_shape=unsigned(18), product_shape=unsigned(36))
    with pytest.raises(ValueError, match="product_shape must be signed and at least 16 bits wide"):
        Ecp5Multiplier(operand_shape=signed(8), product_shape=signed(15))
    with pytest.raises(ValueError, match="implementation must be one of behavioural, primitive, not 'dsp48'"):
        ecp5_multiplier("dsp48")


@pytest.mark.parametrize("fabric_register", [False, True])
def test_primitive_maps_to_one_registered_mult18x18d_with_the_stall_as_clock_enable(tmp_path, fabric_register):
    dut = Ecp5Multiplier(
        operand_shape=signed(8), product_shape=signed(16), implementation="primitive", fabric_register=fabric_register
    )
    (tmp_path / "mult.v").write_text(verilog.convert(dut, name="mult", emit_src=False))
    environment = tool_environment(get_target("ulx3s-85f"))
    subprocess.run(
        [
            environment["YOSYS"],
            "-q",
            "-p",
            "read_verilog mult.v; synth_ecp5 -top mult; tee -q -o stat.json stat -json; write_json net.json",
        ],
        cwd=tmp_path,
        env=environment,
        check=True,
    )
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get("MULT18X18D") == 1
    # both DSP register stages are in the DSP; the fabric register is the only fabric FF stage (16 bits)
    fabric_ffs = sum(count for cell, count in cells.items() if cell.startswith("TRELLIS_FF"))
    assert fabric_ffs == (16 if fabric_register else 0)
    netlist = json.loads((tmp_path / "net.json").read_text())["modules"]["mult"]
    dsp = next(cell for cell in netlist["cells"].values() if cell["type"] == "MULT18X18D")
    parameters = {key: value for key, value in dsp["parameters"].items()}
    for register in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert parameters[register] == "CLK0"
    assert parameters["REG_PIPELINE_CLK"] == "NONE"
    assert parameters["RESETMODE"] == "SYNC"
    ports = netlist["ports"]
    connections = dsp["connections"]
    assert connections["CE0"] == ports["enable"]["bits"]
    assert connections["RST0"] == ports["rst"]["bits"]
    assert connections["CLK0"] == ports["clk"]["bits"]
    assert [connections[f"A{i}"][0] for i in range(8)] == ports["a"]["bits"]
    # sign extension: A8..A17 are the sign bit of a
    assert all(connections[f"A{i}"] == [ports["a"]["bits"][7]] for i in range(8, 18))
    if not fabric_register:
        assert [connections[f"P{i}"][0] for i in range(16)] == ports["product"]["bits"]
    assert np.all([connections[s] == ["1"] for s in ("SIGNEDA", "SIGNEDB")])


def test_array_with_the_default_fabric_register_multiplier_matches_golden_matmul():
    from systolic_gemm_sim import os_tiles

    from wavecore.golden.numerics import MacArithmetic
    from wavecore.hdl.array.systolic import SystolicArray

    array = SystolicArray(rows=3, cols=2, multiplier=ecp5_multiplier("behavioural"))
    assert array.result_latency == 3 + 2 + 3 + 1
    arithmetic = MacArithmetic(in_width=8, acc_width=32)
    random = rng("ecp5_fabric_gemm")
    tiles = [
        (arithmetic.operand.random(random, (3, k)), arithmetic.operand.random(random, (k, 2)))
        for k in (6, 1, 9)
    ]
    results = os_tiles(array, tiles, random, stall=0.3)
    for (a, b), c in zip(tiles, results):
        np.testing.assert_array_equal(c, arithmetic.matmul(a, b))


def test_auto_mixes_dsps_and_lut_multipliers_when_the_pes_outnumber_the_dsps():
    """The ULX3S-85F has 156 MULT18X18D: 12x12 = 144 PEs get one each, 16x16 = 256 get 156 DSPs and 100 LUT
    multipliers, all with latency 2 so the array's timing is uniform."""
    from wavecore.boards.synth import multiplier_factory, resolve_multiplier
    from wavecore.hdl.array.ice40_mult import LutMultiplier

    target = get_target("ulx3s-85f")
    assert resolve_multiplier("auto", target, 144) == "ecp5_dsp"
    assert resolve_multiplier("auto", target, 256) == "ecp5_mixed"
    assert resolve_multiplier("auto", get_target("icebreaker"), 256) == "ice40_mixed"
    factory = multiplier_factory("auto", target, multipliers=256)
    built = [factory(operand_shape=signed(8), product_shape=signed(16)) for _ in range(256)]
    kinds = [type(multiplier) for multiplier in built]
    assert kinds.count(Ecp5Multiplier) == 156 and kinds.count(LutMultiplier) == 100
    assert kinds[:156] == [Ecp5Multiplier] * 156
    assert factory.latency == 2 and {multiplier.latency for multiplier in built} == {2}
    with pytest.raises(ValueError, match="multiplier ecp5_mixed needs an ECP5 target, not icebreaker"):
        multiplier_factory("ecp5_mixed", get_target("icebreaker"))


def test_array_with_mixed_multipliers_matches_golden_matmul():
    """A 3x3 array whose first four PEs have the DSP's behavioural twin and the other five LUT multipliers."""
    from systolic_gemm_sim import os_tiles

    from wavecore.golden.numerics import MacArithmetic
    from wavecore.hdl.array.ecp5_mult import ecp5_mixed_multipliers
    from wavecore.hdl.array.systolic import SystolicArray

    array = SystolicArray(rows=3, cols=3, multiplier=ecp5_mixed_multipliers(4, "behavioural"))
    arithmetic = MacArithmetic(in_width=8, acc_width=32)
    random = rng("mixed_multiplier_gemm")
    tiles = [(arithmetic.operand.random(random, (3, k)), arithmetic.operand.random(random, (k, 3))) for k in (4, 1, 7)]
    for (a, b), c in zip(tiles, os_tiles(array, tiles, random, stall=0.3), strict=True):
        np.testing.assert_array_equal(c, arithmetic.matmul(a, b))
