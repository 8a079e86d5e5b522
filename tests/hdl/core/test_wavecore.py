# amaranth: UnusedElaboratable=no
"""WaveCore (hdl/core/wavecore.py) in CoreSystem (verif/core_system.py): programs assembled with golden.core.isa
run on the RTL and on the instruction-level simulator give the same DRAM and byte counters; faults end in their
documented error codes; the decoder agrees with the assembler."""

import pytest
from amaranth.sim import Simulator
from sim_matrix import simulator_cases

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters
from wavecore.hdl.core import decoder
from wavecore.hdl.core.dram_model import plusargs, verilog_source
from wavecore.hdl.core.ports import convert
from wavecore.hdl.core.registers import ErrorCode
from wavecore.hdl.core.wavecore import WaveCore
from wavecore.verif.core_system import CoreSystem
from wavecore.verif.runner import build

SIZES = {"scratchpad_elements": 4096, "accumulator_elements": 1024, "dram_bytes": 1 << 18}


def _build(simulator, data_width, max_burst):
    # the LOAD/STORE build (no compute units): what these tests exercise, and NOT_IMPLEMENTED for the rest
    system = CoreSystem(parameters=CoreParameters(**SIZES), data_width=data_width, max_burst=max_burst, units=())
    return build(convert(system, name="wavecore_system"), toplevel="wavecore_system", simulator=simulator,
                 extra_sources=[verilog_source()])


@pytest.mark.parametrize(
    ("simulator", "data_width", "max_burst", "stall", "latency"),
    simulator_cases([(64, 16, 64, (0, 24)), (64, 4, 0, (0, 0))]),
)
def test_wavecore_runs_load_store_programs_like_the_simulator(simulator, data_width, max_burst, stall, latency):
    design = _build(simulator, data_width, max_burst)
    design.run(
        "tb_wavecore",
        params={**SIZES, "data_width": data_width, "max_burst": max_burst, "stall": stall,
                "latency_max": latency[1]},
        plusargs=plusargs(seed=7, stall=stall, latency_min=latency[0], latency_max=latency[1],
                          load="dram_load.hex", dump="dram_dump.hex"),
    )


@pytest.mark.parametrize("data_width", [32, 128])
def test_wavecore_element_granular_transfers_on_other_bus_widths(data_width):
    """Icarus only: the random element-granular programs on a 32-bit bus (an accumulator element per word) and a
    128-bit bus, under random DRAM latency and stalls."""
    design = _build("icarus", data_width, 8)
    design.run("tb_wavecore", testcase="element_granular_transfers_match_the_simulator",
               params={**SIZES, "data_width": data_width, "max_burst": 8, "stall": 48, "latency_max": 10,
                       "programs": 2},
               plusargs=plusargs(seed=11, stall=48, latency_min=0, latency_max=10, load="dram_load.hex",
                                 dump="dram_dump.hex"))


def test_wavecore_axi_error_responses_end_in_their_error_code():
    """Icarus only (one more build): the DRAM model is half the core's DRAM range, so accesses above it get
    DECERR."""
    system = CoreSystem(parameters=CoreParameters(**SIZES), model_bytes=SIZES["dram_bytes"] // 2, units=())
    design = build(convert(system, name="wavecore_small_dram"), toplevel="wavecore_small_dram",
                   simulator="icarus", extra_sources=[verilog_source()])
    design.run("tb_wavecore", testcase="axi_error_responses_end_in_their_error_code",
               params={**SIZES, "data_width": 64, "max_burst": 16, "model_bytes": SIZES["dram_bytes"] // 2},
               plusargs=plusargs(seed=3, load="dram_load.hex", dump="dram_dump.hex"))


def test_error_codes_added_for_the_slice():
    assert ErrorCode.NOT_IMPLEMENTED == 9 and ErrorCode.MISALIGNED == 10 and ErrorCode.DEADLOCK == 11
    assert "not in this build" in ErrorCode.NOT_IMPLEMENTED.meaning


def _decode_in_hardware(words):
    """Evaluate the decoder's legality outputs for ``words`` in Amaranth's simulator."""
    from amaranth import Module, Signal

    m = Module()
    word = Signal(isa.INSTRUCTION_BITS)
    legal, bad = Signal(), Signal()
    queues = {q: Signal(name=q) for q in isa.QUEUES}
    m.d.comb += [legal.eq(decoder.legal_opcode(word)), bad.eq(decoder.illegal_field(word))]
    m.d.comb += [queues[q].eq(decoder.queue_is(word, q)) for q in isa.QUEUES]
    results = []

    async def bench(ctx):
        for value in words:
            ctx.set(word, value)
            results.append((ctx.get(legal), ctx.get(bad), {q: ctx.get(s) for q, s in queues.items()}))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return results


def test_decoder_accepts_exactly_what_the_assembler_accepts():
    import random

    generator = random.Random(12)
    words = []
    for _ in range(3000):
        word = generator.getrandbits(isa.INSTRUCTION_BITS)
        if generator.random() < 0.8:  # mostly defined opcodes, so funct/field checks are exercised
            word = (word & ~0xFF) | generator.choice([number for number, _, _ in isa.OPCODES.values()])
        if generator.random() < 0.5:  # and small fields, so minimums are hit
            word &= ~(0xFF << 80)
        words.append(word)
    outcomes = []
    for word, (legal, bad, queues) in zip(words, _decode_in_hardware(words), strict=True):
        try:
            instruction = isa.decode(word)
            isa.encode(instruction)
            accepted, queue = True, instruction.queue
        except ValueError:
            accepted, queue = False, None
        outcomes.append((accepted, queue))
        assert bool(legal and not bad) == accepted, f"{word:#034x}: hardware {legal, bad}, assembler {accepted}"
        if accepted:
            assert queues[queue] == 1 and sum(queues.values()) == 1
    accepted_queues = {queue for accepted, queue in outcomes if accepted}
    assert accepted_queues == set(isa.QUEUES), accepted_queues
    assert 300 < sum(accepted for accepted, _ in outcomes) < len(words) - 300, "both outcomes are exercised"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data_width": 256}, "data_width must be 32, 64 or 128, not 256"),
        ({"queue_depth": 1}, "queue_depth must be an integer between 2 and 64, not 1"),
        ({"parameters": CoreParameters(scratchpad_elements=4)},
         "scratchpad_elements * 1 bytes must be a positive multiple of the 8-byte bus word, not 4"),
    ],
)
def test_wavecore_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as raised:
        WaveCore(**kwargs)
    assert str(raised.value) == message


def test_generate_core_names_the_soc_ports_and_writes_the_register_map(tmp_path):
    import json

    from wavecore.hdl.core.wavecore import core_register_map
    from wavecore.hdl.registry import generate_files

    verilog, sidecar = generate_files({"block": "core", "scratchpad_elements": 4096, "accumulator_elements": 512},
                                      tmp_path, toplevel="wavecore")
    text = verilog.read_text()
    header = text[text.index("module wavecore(") : text.index(");", text.index("module wavecore("))]
    for port in ("s_axil_awaddr", "s_axil_rdata", "m_axi_araddr", "m_axi_wdata", "m_axi_bready", "irq"):
        assert port in header, port
    assert "s_axil__" not in header and "m_axi__" not in header
    record = json.loads(sidecar.read_text())
    assert record["registers"] == core_register_map().describe()
    assert record["ports"]["m_axi"]["signals"]["araddr"]["verilog"] == "m_axi_araddr"
    assert record["parameters"]["scratchpad_elements"] == 4096
