"""The shipped MULT18X18D simulation model: against the behavioural twin, against the documented behaviour, and
its refusals of the options it does not model.

Everything runs on Icarus (``iverilog -g2012``) from stimulus vectors written by the test; the expected values
come from the Amaranth behavioural twin (:class:`wavecore.hdl.array.ecp5_mult.Ecp5Multiplier`, simulated on
Icarus next to the primitive) and from an integer model of the register chain of Lattice FPGA-TN-02205
(:func:`_reference_dsp`), never from the model itself.
"""


import pytest
from amaranth import signed, unsigned
from amaranth.back import verilog

from wavecore.boards.gatelevel import SIM_MODELS, GateLevelError, run_icarus
from wavecore.hdl.array.ecp5_mult import Ecp5Multiplier
from wavecore.verif.seed import rng

MODEL = SIM_MODELS / "mult18x18d.v"
_STEPS = 400


def _vector_bench(name, inputs, outputs, body, steps):
    """A testbench reading ``inputs`` (name, width) per cycle from ``vectors.hex``, printing ``outputs`` each cycle.

    Inputs change after the falling edge; outputs are printed just before the next rising edge.
    """
    total = sum(width for _, width in inputs)
    declarations = "\n".join(f"    reg [{width - 1}:0] {port};" for port, width in inputs)
    unpack = []
    offset = total
    for port, width in inputs:
        unpack.append(f"{port} = vector[{offset - 1}:{offset - width}];")
        offset -= width
    wires = "\n".join(f"    wire [{width - 1}:0] {port};" for port, width in outputs)
    formats = " ".join("%0d" for _ in outputs)
    return f"""`timescale 1ns / 1ps
module {name};
    reg clk = 1'b0;
{declarations}
{wires}
    reg [{total - 1}:0] vectors [0:{steps - 1}];
    reg [{total - 1}:0] vector;
    integer step;
{body}
    initial begin
        $readmemh("vectors.hex", vectors);
        for (step = 0; step < {steps}; step = step + 1) begin
            vector = vectors[step];
            {" ".join(unpack)}
            #4 $display("OUT {formats}", {", ".join(port for port, _ in outputs)});
            #1 clk = 1'b1;
            #5 clk = 1'b0;
        end
        $finish;
    end
endmodule
"""


def _run(tmp_path, name, inputs, outputs, body, vectors, sources):
    widths = [width for _, width in inputs]
    lines = []
    for vector in vectors:
        packed = 0
        for value, width in zip(vector, widths, strict=True):
            packed = (packed << width) | (value & ((1 << width) - 1))
        lines.append(f"{packed:x}")
    (tmp_path / "vectors.hex").write_text("\n".join(lines) + "\n")
    bench = tmp_path / f"{name}.v"
    bench.write_text(_vector_bench(name, inputs, outputs, body, len(vectors)))
    output = run_icarus([bench, *sources], name, tmp_path)
    rows = [tuple(int(value) for value in line.split()[1:]) for line in output.splitlines() if line.startswith("OUT")]
    assert len(rows) == len(vectors)
    return rows


def _operands(random, width, is_signed, size):
    low, high = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    values = random.integers(low, high, size=size, endpoint=True)
    values[:3] = [low, high, 0]
    return values


@pytest.mark.parametrize(
    ("width", "is_signed", "fabric_register"),
    [(8, True, True), (18, True, False), (17, False, True), (5, False, False)],
)
def test_primitive_with_model_matches_behavioural_twin_with_enable_and_reset(tmp_path, width, is_signed,
                                                                            fabric_register):
    shape = signed(width) if is_signed else unsigned(width)
    product_shape = signed(2 * width) if is_signed else unsigned(2 * width)
    designs = {
        implementation: verilog.convert(
            Ecp5Multiplier(operand_shape=shape, product_shape=product_shape, implementation=implementation,
                           fabric_register=fabric_register),
            name=f"{implementation}_multiplier",  # "primitive" alone is a SystemVerilog keyword
        )
        for implementation in ("primitive", "behavioural")
    }
    assert "MULT18X18D" in designs["primitive"] and "MULT18X18D" not in designs["behavioural"]
    sources = []
    for implementation, text in designs.items():
        sources.append(tmp_path / f"{implementation}.v")
        sources[-1].write_text(text)
    random = rng(f"mult18x18d_twin_{width}_{is_signed}_{fabric_register}")
    a = _operands(random, width, is_signed, _STEPS)
    b = _operands(random, width, is_signed, _STEPS)
    enable = random.random(_STEPS) < 0.7
    reset = random.random(_STEPS) < 0.03
    reset[0] = True
    vectors = [(int(reset[i]), int(enable[i]), int(a[i]), int(b[i])) for i in range(_STEPS)]
    body = "\n".join(
        f"    {implementation}_multiplier {implementation}_dut (.clk(clk), .rst(rst), .enable(enable), .a(a), .b(b), "
        f".product({implementation}_product));"
        for implementation in designs
    )
    outputs = [("primitive_product", 2 * width), ("behavioural_product", 2 * width)]
    rows = _run(tmp_path, "twin_tb", [("rst", 1), ("enable", 1), ("a", width), ("b", width)], outputs, body,
                vectors, [*sources, MODEL])
    mismatches = [(step, row) for step, row in enumerate(rows) if row[0] != row[1]]
    assert not mismatches, f"primitive vs behavioural twin differ at (step, (primitive, behavioural)) {mismatches[:5]}"
    # the twin is itself checked against NumPy in tests/hdl/array/test_ecp5_mult.py; here, that the run saw
    # non-trivial products (not a pair of stuck-at-zero outputs)
    assert len({row[0] for row in rows}) > _STEPS // 4


# --- the model against the documented register chain, for options the twin does not use --------------------

_STAGES = ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT")


def _reference_dsp(vectors, options, resetmode):
    """Integer model of MULT18X18D (FPGA-TN-02205): operand registers, multiplier, pipeline, output register.

    ``options[stage] = (clock_index or None, ce_index, rst_index)``. Only clock inputs named in ``options``
    toggle in the bench, so every register clocks on the bench clock. Returns ``(P, SIGNEDP)`` per cycle,
    sampled before the rising edge.
    """
    state = dict.fromkeys(_STAGES, 0)
    rows = []
    for rst, ce, signed_a, signed_b, a, b in vectors:

        def value(stage, d, rst=rst, ce=ce):
            clock, ce_index, rst_index = options[stage]
            if clock is None:
                return d
            if resetmode == "ASYNC" and rst >> rst_index & 1:
                state[stage] = 0
            return state[stage]

        a_q = value("INPUTA", (signed_a << 18) | a)
        b_q = value("INPUTB", (signed_b << 18) | b)

        def operand(word):
            raw = word & 0x3FFFF
            return raw - (1 << 18) if (word >> 18) & 1 and raw >> 17 else raw

        product = ((((a_q >> 18) | (b_q >> 18)) & 1) << 36) | ((operand(a_q) * operand(b_q)) & ((1 << 36) - 1))
        pipelined = value("PIPELINE", product)
        registered = value("OUTPUT", pipelined)
        rows.append((registered & ((1 << 36) - 1), registered >> 36))
        for stage, d in (("INPUTA", (signed_a << 18) | a), ("INPUTB", (signed_b << 18) | b),
                         ("PIPELINE", product), ("OUTPUT", pipelined)):
            clock, ce_index, rst_index = options[stage]
            if clock is None:
                continue
            if rst >> rst_index & 1:
                state[stage] = 0
            elif ce >> ce_index & 1:
                state[stage] = d
    return rows


def _connections():
    ports = [f".{bus}{i}({bus.lower()}[{i}])" for bus, width in (("A", 18), ("B", 18), ("P", 36)) for i in range(width)]
    ports += [f".C{i}(1'b0)" for i in range(18)]
    ports += [f".CLK{i}(clocks[{i}])" for i in range(4)] + [f".CE{i}(ce[{i}])" for i in range(4)]
    ports += [f".RST{i}(rst[{i}])" for i in range(4)]
    ports += [".SIGNEDA(signed_a)", ".SIGNEDB(signed_b)", ".SOURCEA(source)", ".SOURCEB(1'b0)", ".SIGNEDP(signed_p[0])"]
    return ", ".join(ports)


def _model_bench_body(parameters, clocked):
    mask = "".join("1" if i in clocked else "0" for i in reversed(range(4)))
    overrides = ", ".join(f".{key}(\"{value}\")" for key, value in parameters.items())
    return f"""    wire [3:0] clocks = {{4{{clk}}}} & 4'b{mask};
    reg source = 1'b0;
    MULT18X18D #({overrides}) dsp ({_connections()});"""


_INPUTS = [("rst", 4), ("ce", 4), ("signed_a", 1), ("signed_b", 1), ("a", 18), ("b", 18)]


def _option_parameters(options, resetmode):
    parameters = {"RESETMODE": resetmode, "GSR": "DISABLED"}
    for stage, (clock, ce_index, rst_index) in options.items():
        parameters[f"REG_{stage}_CLK"] = "NONE" if clock is None else f"CLK{clock}"
        parameters[f"REG_{stage}_CE"] = f"CE{ce_index}"
        parameters[f"REG_{stage}_RST"] = f"RST{rst_index}"
    return parameters


@pytest.mark.parametrize(
    ("options", "resetmode"),
    [
        # what Yosys's dsp_map_18x18.v produces for a * b: no register at all
        ({"INPUTA": (None, 0, 0), "INPUTB": (None, 0, 0), "PIPELINE": (None, 0, 0), "OUTPUT": (None, 0, 0)},
         "SYNC"),
        # what hdl/array/ecp5_mult.py uses
        ({"INPUTA": (0, 0, 0), "INPUTB": (0, 0, 0), "PIPELINE": (None, 0, 0), "OUTPUT": (0, 0, 0)}, "SYNC"),
        # every stage, on other clock/CE/RST inputs, asynchronous reset
        ({"INPUTA": (2, 1, 3), "INPUTB": (1, 2, 0), "PIPELINE": (3, 3, 1), "OUTPUT": (2, 0, 2)}, "ASYNC"),
        ({"INPUTA": (None, 0, 0), "INPUTB": (3, 1, 1), "PIPELINE": (3, 0, 2), "OUTPUT": (None, 0, 0)}, "SYNC"),
    ],
    ids=["combinational", "wavecore", "all_stages_async", "mixed"],
)
def test_model_follows_documented_register_chain(tmp_path, options, resetmode):
    random = rng(f"mult18x18d_options_{resetmode}_{sorted(options.items())}")
    vectors = []
    for _step in range(_STEPS):
        signed_a, signed_b = (int(bit) for bit in random.integers(0, 1, size=2, endpoint=True))
        rst = int(random.integers(0, 15, endpoint=True)) if random.random() < 0.08 else 0
        ce = int(random.integers(0, 15, endpoint=True))
        a, b = (int(value) for value in random.integers(0, (1 << 18) - 1, size=2, endpoint=True))
        vectors.append((rst, ce, signed_a, signed_b, a, b))
    vectors[:3] = [(0xF, 0xF, 1, 1, 1 << 17, 1 << 17), (0, 0xF, 1, 0, 1 << 17, 0x3FFFF), (0, 0xF, 0, 1, 0x3FFFF, 5)]
    clocked = {clock for clock, _, _ in options.values() if clock is not None}
    body = _model_bench_body(_option_parameters(options, resetmode), clocked)
    rows = _run(tmp_path, "options_tb", _INPUTS, [("p", 36), ("signed_p", 1)], body, vectors, [MODEL])
    expected = _reference_dsp(vectors, options, resetmode)
    mismatches = [(step, row, want) for step, (row, want) in enumerate(zip(rows, expected, strict=True))
                  if row != want]
    assert not mismatches, f"(step, model, reference): {mismatches[:5]}"


@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        ("MULT_BYPASS", "ENABLED", "MULT_BYPASS=ENABLED"),
        ("CAS_MATCH_REG", "TRUE", "CAS_MATCH_REG=TRUE"),
        ("HIGHSPEED_CLK", "CLK0", "HIGHSPEED_CLK=CLK0"),
        ("RESETMODE", "SOMETIMES", "RESETMODE must be SYNC or ASYNC"),
        ("REG_OUTPUT_CLK", "CLK4", "REG_OUTPUT_CLK=CLK4"),
        ("REG_PIPELINE_CE", "CE7", "REG_PIPELINE_CE=CE7"),
    ],
)
def test_model_refuses_options_it_does_not_model(tmp_path, parameter, value, message):
    parameters = _option_parameters({stage: (0, 0, 0) for stage in _STAGES}, "SYNC")
    parameters[parameter] = value
    body = _model_bench_body(parameters, {0})
    with pytest.raises(GateLevelError, match=message):
        _run(tmp_path, "refuse_tb", _INPUTS, [("p", 36), ("signed_p", 1)], body, [(0, 0xF, 0, 0, 3, 4)] * 4, [MODEL])


def test_model_refuses_the_cascade_inputs(tmp_path):
    body = _model_bench_body(_option_parameters({stage: (0, 0, 0) for stage in _STAGES}, "SYNC"), {0})
    body = body.replace("reg source = 1'b0;", "reg source = 1'b1;")
    with pytest.raises(GateLevelError, match="SOURCEA/SOURCEB"):
        _run(tmp_path, "cascade_tb", _INPUTS, [("p", 36), ("signed_p", 1)], body, [(0, 0xF, 0, 0, 3, 4)] * 4, [MODEL])


# --- DP16KD --------------------------------------------------------------------------------------------------

DP16KD_MODEL = SIM_MODELS / "dp16kd.v"
_PORT_FIELDS = [("rst", 1), ("ce", 1), ("oce", 1), ("we", 1), ("cs", 3), ("ad", 14), ("di", 18)]
_DP16KD_INPUTS = [(f"{name}_{port}", width) for port in "ab" for name, width in _PORT_FIELDS]
_DATA_BITS = [bit if bit < 8 else bit + 1 for bit in range(16)]  # the 16 data bits of an 18-bit row (no 9th bits)


def _bit_positions(width, address):
    """Positions in its 18-bit row of the word at ``address`` (FPGA-TN-02204 x1..x18 configurations)."""
    if width == 18:
        return list(range(18))
    if width == 9:
        return list(range(9 * (address >> 3 & 1), 9 * (address >> 3 & 1) + 9))
    shift = {4: 2, 2: 1, 1: 0}[width]
    first = ((address & 15) >> shift) * width
    return [_DATA_BITS[first + bit] for bit in range(width)]


def _reference_dp16kd(vectors, config, init):
    """Integer model of DP16KD: rows of 18 bits; per port read latch, optional output register, write modes."""
    memory = list(init)
    state = {port: {"latch": 0, "register": 0} for port in "ab"}
    rows = []
    for vector in vectors:
        fields = {port: dict(zip([name for name, _ in _PORT_FIELDS], vector[7 * index: 7 * index + 7], strict=True))
                  for index, port in enumerate("ab")}
        outputs = []
        for port in "ab":
            if config["RESETMODE"] == "ASYNC" and fields[port]["rst"]:
                state[port] = {"latch": 0, "register": 0}
            chosen = state[port]["register" if config[f"REGMODE_{port.upper()}"] == "OUTREG" else "latch"]
            outputs.append(chosen)
        rows.append(tuple(outputs))
        for port in "ab":
            f, s = fields[port], state[port]
            width = config[f"DATA_WIDTH_{port.upper()}"]
            decode = int(config[f"CSDECODE_{port.upper()}"][2:], 2)
            latch_before = s["latch"]
            if f["rst"]:
                s["latch"] = 0
            elif f["ce"] and f["cs"] == decode:
                row = f["ad"] >> 4
                positions = _bit_positions(width, f["ad"])
                old = memory[row]
                read = sum((old >> position & 1) << bit for bit, position in enumerate(positions))
                if f["we"]:
                    new = old
                    for bit, position in enumerate(positions):
                        enabled = width != 18 or (f["ad"] >> (0 if position < 9 else 1)) & 1
                        if enabled:
                            new = (new & ~(1 << position)) | ((f["di"] >> bit & 1) << position)
                    memory[row] = new
                    mode = config[f"WRITEMODE_{port.upper()}"]
                    if mode == "WRITETHROUGH":
                        s["latch"] = sum((new >> position & 1) << bit for bit, position in enumerate(positions))
                    elif mode == "READBEFOREWRITE":
                        s["latch"] = read
                else:
                    s["latch"] = read
            s["register"] = 0 if f["rst"] else (latch_before if f["oce"] else s["register"])
    return rows


def _dp16kd_body(parameters):
    ports = []
    for port in "AB":
        low = port.lower()
        for bus, width in (("DI", 18), ("AD", 14), ("DO", 18), ("CS", 3)):
            ports += [f".{bus}{port}{i}({bus.lower()}_{low}[{i}])" for i in range(width)]
        ports += [f".CE{port}(ce_{low}[0])", f".OCE{port}(oce_{low}[0])", f".WE{port}(we_{low}[0])",
                  f".RST{port}(rst_{low}[0])", f".CLK{port}(clk)"]
    overrides = ", ".join(f'.{key}("{value}")' if isinstance(value, str) else
                          f".{key}({value})" if value < 1 << 31 else f".{key}(320'h{value:x})"
                          for key, value in parameters.items())
    return f"    DP16KD #({overrides}) ram ({', '.join(ports)});"


def _dp16kd_vectors(random, config, steps):
    """Random traffic; a port only touches rows the other port does not write in the same cycle."""
    vectors = []
    for _step in range(steps):
        writer = random.integers(0, 2)  # which port may write this cycle (the other keeps off its rows)
        vector = []
        for index, port in enumerate("ab"):
            decode = int(config[f"CSDECODE_{port.upper()}"][2:], 2)
            own_rows = range(0, 8) if index == writer else range(8, 16)
            row = int(random.choice(own_rows))
            we = int(index == writer and random.random() < 0.5)
            cs = decode if random.random() < 0.9 else int(random.integers(0, 8))
            vector += [int(random.random() < 0.03), int(random.random() < 0.85), int(random.random() < 0.8), we, cs,
                       (row << 4) | int(random.integers(0, 16)), int(random.integers(0, 1 << 18))]
        vectors.append(vector)
    return vectors


_DP16KD_CONFIGS = {
    # what Yosys's brams_map_16kd.v made of the scratchpad (both ports x18, no output register)
    "yosys_scratchpad": {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 18, "REGMODE_A": "NOREG", "REGMODE_B": "NOREG",
                         "WRITEMODE_A": "READBEFOREWRITE", "WRITEMODE_B": "READBEFOREWRITE", "RESETMODE": "ASYNC",
                         "CSDECODE_A": "0b000", "CSDECODE_B": "0b000"},
    "x18_x9_outreg": {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 9, "REGMODE_A": "OUTREG", "REGMODE_B": "NOREG",
                      "WRITEMODE_A": "WRITETHROUGH", "WRITEMODE_B": "NORMAL", "RESETMODE": "SYNC",
                      "CSDECODE_A": "0b101", "CSDECODE_B": "0b010"},
    "x4_x1": {"DATA_WIDTH_A": 4, "DATA_WIDTH_B": 1, "REGMODE_A": "OUTREG", "REGMODE_B": "OUTREG",
              "WRITEMODE_A": "NORMAL", "WRITEMODE_B": "READBEFOREWRITE", "RESETMODE": "SYNC",
              "CSDECODE_A": "0b000", "CSDECODE_B": "0b111"},
    "x2_x18_async": {"DATA_WIDTH_A": 2, "DATA_WIDTH_B": 18, "REGMODE_A": "NOREG", "REGMODE_B": "OUTREG",
                     "WRITEMODE_A": "WRITETHROUGH", "WRITEMODE_B": "NORMAL", "RESETMODE": "ASYNC",
                     "CSDECODE_A": "0b011", "CSDECODE_B": "0b000"},
}


@pytest.mark.parametrize("name", sorted(_DP16KD_CONFIGS))
def test_dp16kd_model_follows_documented_behaviour(tmp_path, name):
    config = _DP16KD_CONFIGS[name]
    random = rng(f"dp16kd_{name}")
    init = [0] * 1024
    for row in range(16):  # the rows the traffic touches start with known contents
        init[row] = int(random.integers(0, 1 << 18))
    parameters = dict(config, GSR="DISABLED")
    for index in range(64):
        value = sum(init[index * 16 + word] << (20 * word) for word in range(16))
        if value:
            parameters[f"INITVAL_{index:02X}"] = value
    vectors = _dp16kd_vectors(random, config, _STEPS)
    body = _dp16kd_body(parameters)
    rows = _run(tmp_path, "dp16kd_tb", _DP16KD_INPUTS, [("do_a", 18), ("do_b", 18)], body, vectors, [DP16KD_MODEL])
    expected = _reference_dp16kd(vectors, config, init)
    mismatches = [(step, row, want) for step, (row, want) in enumerate(zip(rows, expected, strict=True))
                  if row != want]
    assert not mismatches, f"(step, model, reference): {mismatches[:5]}"
    # the run read varied data, not a constant (x4 with x1 has only 32 distinct output pairs)
    assert len(set(rows)) >= min(_STEPS // 8, (1 << (config["DATA_WIDTH_A"] + config["DATA_WIDTH_B"])) // 2)


@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        ("DATA_WIDTH_A", 36, "DATA_WIDTH_A=36"),
        ("REGMODE_B", "BOTH", "REGMODE_B=BOTH"),
        ("WRITEMODE_A", "READFIRST", "WRITEMODE_A=READFIRST"),
        ("INIT_DATA", "DYNAMIC", "INIT_DATA=DYNAMIC"),
        ("DIA3MUX", "INV", "DIA3MUX=INV"),
        ("CSDECODE_B", "0b2x0", "CSDECODE_B=0b2x0"),
        ("WEAMUX", "WEB", "WEAMUX=WEB"),
    ],
)
def test_dp16kd_model_refuses_options_it_does_not_model(tmp_path, parameter, value, message):
    parameters = dict(_DP16KD_CONFIGS["yosys_scratchpad"], **{parameter: value})
    vectors = [[0] * 14] * 4
    with pytest.raises(GateLevelError, match=message):
        _run(tmp_path, "dp16kd_refuse_tb", _DP16KD_INPUTS, [("do_a", 18), ("do_b", 18)], _dp16kd_body(parameters),
             vectors, [DP16KD_MODEL])


DCCA_MODEL = SIM_MODELS / "dcca.v"
_DCCA_BODY = "    DCCA dut(.CLKI(clki), .CE(ce), .CLKO(clko));\n"


def test_dcca_model_passes_its_input_while_enabled(tmp_path):
    # TN1263: CLKO follows CLKI while CE is high (the board top's reset buffer ties CE to 1)
    levels = [int(level) for level in rng("dcca_enabled").integers(0, 1, size=64, endpoint=True)]
    rows = _run(tmp_path, "dcca_tb", [("clki", 1), ("ce", 1)], [("clko", 1)], _DCCA_BODY,
                [[level, 1] for level in levels], [DCCA_MODEL])
    assert [row[0] for row in rows] == levels and 0 < sum(levels) < len(levels)


def test_dcca_model_refuses_clock_gating(tmp_path):
    with pytest.raises(GateLevelError, match="DCCA: CE must stay 1"):
        _run(tmp_path, "dcca_gate_tb", [("clki", 1), ("ce", 1)], [("clko", 1)], _DCCA_BODY,
             [[1, 1], [1, 1], [1, 0], [1, 0]], [DCCA_MODEL])
