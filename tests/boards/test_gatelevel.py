"""Gate-level simulation of board builds: the synthesized BIST netlist on Icarus with the vendor cell models.

The expected result is the BIST's own: the signature computed from the Amaranth simulation of the block
(:func:`wavecore.boards.bist.reference_signature`, behavioural twins for vendor primitives) must equal the one
the netlist's MISR accumulates, so the ``pass`` LED lights exactly when the synthesized gates (with the cell
models) behave like the RTL for every folded cycle.
"""


import pytest

from wavecore.boards.bist import POWER_ON_CYCLES
from wavecore.boards.gatelevel import SIM_MODELS, cell_library, simulate_bist, status_ports, synthesize_component
from wavecore.boards.synth import multiplier_factory, registry_factories, synth_block
from wavecore.boards.targets import TARGETS, get_target

_CYCLES = 96


def _netlist(out_dir, target_name, config, cycles=_CYCLES):
    target = get_target(target_name)
    factory, reference_factory, parameters = registry_factories(config, target)
    report = synth_block(factory, target, out_dir, design="gatelevel", parameters=parameters,
                         reference_factory=reference_factory, cycles=cycles, synth_only=True)
    assert report.status == "synthesized" and report.extra["netlist"] == "top.netlist.v"
    assert not (out_dir / "top.bit").exists() and not (out_dir / "top.bin").exists()
    return target, out_dir / "top.netlist.v", report


@pytest.fixture(scope="module")
def ulx3s_array(tmp_path_factory):
    """A 2x2 int8 systolic array BIST on the ULX3S-85F: MULT18X18D with input and output registers."""
    return _netlist(tmp_path_factory.mktemp("ulx3s"), "ulx3s-85f", {"block": "systolic", "rows": 2, "cols": 2})


def test_netlist_is_vendor_cells_only(ulx3s_array):
    _, netlist, report = ulx3s_array
    text = netlist.read_text()
    assert text.count("MULT18X18D #(") == 4 == report.cells["MULT18X18D"]  # one DSP per PE
    assert '.REG_OUTPUT_CLK("CLK0")' in text and '.REG_INPUTA_CLK("CLK0")' in text
    assert "always" not in text and "(* " not in text  # write_verilog -noattr of mapped cells: no processes


def test_ulx3s_array_bist_passes_at_gate_level(ulx3s_array, tmp_path):
    target, netlist, _ = ulx3s_array
    result = simulate_bist(netlist, target, cycles=_CYCLES, work=tmp_path)
    # the power-on reset releases POWER_ON_CYCLES + 1 cycles in (counter, then its register); done lights one
    # cycle after the last folded cycle
    assert result.done and result.passed and result.cycle == POWER_ON_CYCLES + 1 + _CYCLES + 1


def _wrong_model(tmp_path, original, replacement, model="mult18x18d"):
    text = (SIM_MODELS / f"{model}.v").read_text()
    assert text.count(original) == 1
    path = tmp_path / f"{model}_wrong.v"
    path.write_text(text.replace(original, replacement))
    return path


@pytest.mark.parametrize(
    ("original", "replacement"),
    [
        (".CLK(REG_OUTPUT_CLK)", '.CLK("NONE")'),  # the output register removed: one cycle less latency
        (".CLK(REG_INPUTB_CLK)", '.CLK("NONE")'),  # the B operand register removed
        ("a_wide * b_wide}", "(a_wide * b_wide) & ~36'd1}"),  # product bit 0 stuck at zero
    ],
    ids=["no_output_register", "no_input_b_register", "product_bit0_stuck"],
)
def test_wrong_primitive_model_fails_the_gate_level_bist(ulx3s_array, tmp_path, original, replacement):
    # (a model that ignores SIGNEDA passes: the array sign-extends its 8-bit operands to the DSP's 18 bits in
    # the fabric, so reading them as unsigned changes only product bits above the 16 the array keeps)
    target, netlist, _ = ulx3s_array
    wrong = _wrong_model(tmp_path, original, replacement)
    result = simulate_bist(netlist, target, cycles=_CYCLES, work=tmp_path, models={"mult18x18d": wrong})
    assert result.done and not result.passed


@pytest.fixture(scope="module")
def ulx3s_scratchpad(tmp_path_factory):
    """A two-bank 1024 x 32 scratchpad BIST on the ULX3S-85F: four DP16KD block RAMs."""
    return _netlist(tmp_path_factory.mktemp("ulx3s_scratchpad"), "ulx3s-85f",
                    {"block": "scratchpad", "banks": 2, "depth": 1024, "width": 32}, cycles=_MEMORY_CYCLES)


_MEMORY_CYCLES = 256


def test_ulx3s_scratchpad_bist_passes_at_gate_level(ulx3s_scratchpad, tmp_path):
    target, netlist, report = ulx3s_scratchpad
    assert report.cells["DP16KD"] == 4
    result = simulate_bist(netlist, target, cycles=_MEMORY_CYCLES, work=tmp_path)
    assert result.done and result.passed and result.cycle == POWER_ON_CYCLES + 1 + _MEMORY_CYCLES + 1


@pytest.mark.parametrize(
    ("original", "replacement"),
    [
        ("if (enable && selected) begin", "if (selected) begin"),  # the clock enable ignored
        ("wire [9:0] word_row = address[13:4];", "wire [9:0] word_row = {address[13:5], 1'b0};"),  # AD4 ignored
        ("memory[word] = INITIAL[word * 20 +: 18];", "memory[word] = 18'h3ffff;"),  # INITVAL ignored
    ],
    ids=["no_clock_enable", "address_bit_stuck", "no_initval"],
)
def test_wrong_block_ram_model_fails_the_gate_level_bist(ulx3s_scratchpad, tmp_path, original, replacement):
    # (a model that treats WRITEMODE READBEFOREWRITE as NORMAL passes: this scratchpad never reads and writes
    # one port in the same cycle)
    target, netlist, _ = ulx3s_scratchpad
    wrong = _wrong_model(tmp_path, original, replacement, model="dp16kd")
    result = simulate_bist(netlist, target, cycles=_MEMORY_CYCLES, work=tmp_path, models={"dp16kd": wrong})
    assert result.done and not result.passed


def test_icebreaker_scratchpad_bist_at_gate_level(tmp_path):
    """Four SB_RAM40_4K. Their read data is undefined until the first read (Amaranth gives the read port no
    defined initial value and Yosys' iCE40 block RAM mapping has none, so nothing promises one on the board),
    while Amaranth's simulator reads 0: the BIST folds a stream payload only while its ``valid`` is high
    (:func:`wavecore.boards.bist.observed_ports`), the stream contract, so the signature does not depend on
    the power-up contents of the block RAM output register."""
    target, netlist, report = _netlist(tmp_path / "build", "icebreaker",
                                       {"block": "scratchpad", "banks": 2, "depth": 512, "width": 16},
                                       cycles=_MEMORY_CYCLES)
    assert report.cells["SB_RAM40_4K"] == 4
    result = simulate_bist(netlist, target, cycles=_MEMORY_CYCLES, work=tmp_path / "sim")
    assert result.done and result.passed


def test_icebreaker_array_bist_passes_at_gate_level(tmp_path):
    """The iCE40UP5K array: SB_MAC16 multipliers (Yosys's model) and LUT multipliers."""
    target, netlist, report = _netlist(tmp_path / "build", "icebreaker", {"block": "systolic", "rows": 2, "cols": 2})
    assert report.cells.get("SB_MAC16", 0) >= 1
    result = simulate_bist(netlist, target, cycles=_CYCLES, work=tmp_path / "sim")
    assert result.done and result.passed and result.cycle == POWER_ON_CYCLES + 1 + _CYCLES + 1


@pytest.mark.parametrize("target_name", sorted(TARGETS))
def test_status_ports_name_the_netlist_leds(target_name, tmp_path):
    (done_port, _), (pass_port, _) = status_ports(get_target(target_name))
    assert done_port != pass_port and done_port.endswith("__io") and pass_port.endswith("__io")


def test_cell_library_rejects_unknown_family_and_model(tmp_path):
    with pytest.raises(ValueError, match="family must be one of ecp5, ice40"):
        cell_library("xc7", tmp_path)
    with pytest.raises(ValueError, match="models must name shipped models"):
        cell_library("ecp5", tmp_path, models={"dsp48e1": tmp_path / "x.v"})


@pytest.mark.slow
@pytest.mark.parametrize("target_name", sorted(TARGETS))
@pytest.mark.parametrize("size", [4])
def test_every_board_array_bist_passes_at_gate_level(tmp_path, target_name, size):
    target, netlist, _ = _netlist(tmp_path / "build", target_name, {"block": "systolic", "rows": size, "cols": size},
                                  cycles=512)
    result = simulate_bist(netlist, target, cycles=512, work=tmp_path / "sim")
    assert result.done and result.passed


@pytest.mark.parametrize(
    ("target_name", "simulator", "wrong_model"),
    [("ulx3s-85f", "icarus", False), ("ulx3s-85f", "icarus", True), ("icebreaker", "icarus", False),
     # Verilator compiles the netlist with the cell library to C++: minutes on two cores
     pytest.param("ulx3s-85f", "verilator", False, marks=pytest.mark.slow)],
    ids=["ecp5-icarus", "ecp5-icarus-no_output_register_model", "ice40-icarus", "ecp5-verilator"],
)
def test_gemm_through_the_synthesized_array_matches_the_golden_model(tmp_path, target_name, simulator, wrong_model):
    """The 2x2 int8 array alone, synthesized for the board's family (ECP5: MULT18X18D with its registers;
    iCE40: SB_MAC16), driven by the RTL's own cocotb GEMM testbench (``wavecore.verif.tb_systolic``: results
    checked against ``reference_gemm``); with a MULT18X18D model that lacks the output register it fails."""
    from wavecore.hdl.array.systolic import SystolicArray
    from wavecore.verif.runner import SimulationFailed, build

    target = get_target(target_name)
    array = SystolicArray(rows=2, cols=2, in_width=8, acc_width=32, multiplier=multiplier_factory("auto", target))
    netlist = synthesize_component(array, target.family, tmp_path, name="systolic_gates")
    text = netlist.read_text()
    assert text.count("MULT18X18D #(" if target.family == "ecp5" else "SB_MAC16 #(") == 4 and "always" not in text
    models = {"mult18x18d": _wrong_model(tmp_path, ".CLK(REG_OUTPUT_CLK)", '.CLK("NONE")')} if wrong_model else None
    sources, defines, include_dirs = cell_library(target.family, tmp_path, models=models)
    arguments = [*(f"-D{name}" for name in defines), *(f"-I{path}" for path in include_dirs)]
    if simulator == "verilator":
        # the vendor libraries use delays and initial blocks (--timing) and trip Verilator's lint and style
        # warnings, which are not findings about the design
        arguments = ["--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", *arguments]
    design = build(text, toplevel="systolic_gates", simulator=simulator, extra_sources=sources,
                   extra_build_args=arguments)
    # K = 1, a K longer than a tile, M and N not multiples of the array
    shapes = [[1, 1, 1], [5, 7, 3], [2, 17, 2]]
    run = {"testcase": ["random_gemms", "no_result_lost_or_repeated"],
           "test_name": f"gatelevel_{target.family}_{simulator}",
           "params": {"config": array.parameters, "shapes": shapes, "idle": 0.3, "backpressure": 0.4,
                      "weights_transposed": False, "latency": array.result_latency}}
    if wrong_model:
        with pytest.raises(SimulationFailed):
            design.run("wavecore.verif.tb_systolic", **run)
    else:
        design.run("wavecore.verif.tb_systolic", **run)


def test_synthesize_component_rejects_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="family must be one of ecp5, ice40, not 'gowin'"):
        synthesize_component(None, "gowin", tmp_path)


def test_synth_command_gate_level_option(tmp_path, capsys):
    from wavecore.cli import main

    out = tmp_path / "out"
    args = ["synth", "--target", "ulx3s-85f", "--block", "systolic", "--rows", "2", "--cols", "2",
            "--bist-cycles", "64", "--gate-level", "-o", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"gate-level BIST: passed at cycle {POWER_ON_CYCLES + 1 + 64 + 1}" in printed
    assert (out / "top.netlist.v").exists() and not (out / "top.bit").exists()
    assert "gate_level: BIST passed on the netlist" in (out / "report.md").read_text()
