"""hdl/array/systolic.py: parameter validation, and cocotb GEMMs on both simulators checked bit for bit.

The default run covers the parameter space pairwise (every pair of values of any two of rows, cols,
in_width, acc_width, dataflow, signed, overflow, simulator and form -- flat or hierarchical Verilog, see
``hdl.hierarchy`` -- appears in at least one configuration, chosen by ``allpairspy``); the full grid is
``@pytest.mark.slow``. Each configuration is built once and runs
several testcases in one simulator invocation.
"""

import itertools
from collections import OrderedDict

import pytest
from allpairspy import AllPairs
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import MacArithmetic
from wavecore.hdl.array.systolic import SystolicArray
from wavecore.verif.runner import SIMULATORS, build, simulator_params

DIMENSIONS = OrderedDict(
    rows=[1, 3, 4],
    cols=[2, 4, 5],
    in_width=[2, 8, 16],
    acc_width=["tight", "medium", "wide"],  # 2*in_width, 2*in_width + 5, 2*in_width + 16
    dataflow=["output_stationary", "weight_stationary"],
    signed=[True, False],
    overflow=["wrap", "saturate"],
    simulator=list(SIMULATORS),
    form=["flat", "hierarchical"],
)


def _acc_width(level: str, in_width: int) -> int:
    return {"tight": 2 * in_width, "medium": 2 * in_width + 5, "wide": 2 * in_width + 16}[level]


PAIRWISE = [dict(row._asdict()) for row in AllPairs(DIMENSIONS)]
FULL_GRID = [dict(zip(DIMENSIONS, values)) for values in itertools.product(*DIMENSIONS.values())]


def _config_id(config: dict) -> str:
    return "-".join(str(config[name]) for name in DIMENSIONS).replace("output_stationary", "os").replace(
        "weight_stationary", "ws")


def _shapes(rows: int, cols: int) -> list[list[int]]:
    # K = 1; M, N not multiples of the array; K not a multiple of rows and longer than a tile; a full tile.
    return [[1, 1, 1], [2 * rows + 1, 1, cols + 1], [5, 2 * rows + 3, 7], [rows, 17, cols]]


def _run_config(config: dict) -> None:
    in_width = config["in_width"]
    array = SystolicArray(rows=config["rows"], cols=config["cols"], in_width=in_width,
                          acc_width=_acc_width(config["acc_width"], in_width), signed=config["signed"],
                          overflow=config["overflow"], dataflow=config["dataflow"],
                          hierarchical=config["form"] == "hierarchical")
    design = build(array, toplevel="systolic", simulator=config["simulator"])
    shapes = _shapes(config["rows"], config["cols"])
    if config["dataflow"] == "weight_stationary":
        # M = 2 rows of A per weight pass (two passes: K = rows + 1), the stream.group.flag_x_beats bin switch x 2
        shapes = [*shapes, [2, config["rows"] + 1, 2]]
    testcases = ["random_gemms", "no_result_lost_or_repeated", "result_latency_matches_docstring"]
    if config["acc_width"] == "tight":
        testcases.append("overflowing_gemms")
    orientations = [False, True] if config["dataflow"] == "weight_stationary" else [False]
    for transposed in orientations:
        design.run("wavecore.verif.tb_systolic", testcase=testcases if not transposed else "random_gemms",
                   test_name=f"{_config_id(config)}{'-transposed' if transposed else ''}",
                   params={"config": array.parameters, "shapes": shapes, "idle": 0.3, "backpressure": 0.4,
                           "weights_transposed": transposed, "latency": array.result_latency})


def test_pairwise_configurations_cover_every_pair():
    names = list(DIMENSIONS)
    for first, second in itertools.combinations(names, 2):
        seen = {(config[first], config[second]) for config in PAIRWISE}
        missing = set(itertools.product(DIMENSIONS[first], DIMENSIONS[second])) - seen
        assert not missing, f"pairs of {first} and {second} never tested: {sorted(missing)}"
    assert len(PAIRWISE) <= 16, "the pairwise set grew: keep the default run within its time budget"


@pytest.mark.parametrize("config", PAIRWISE, ids=_config_id)
def test_array_matches_numpy_pairwise(config):
    """Random GEMMs (K = 1, ragged edges, extreme values, narrow accumulators overflowing) under random
    input gaps and output backpressure, on both dataflows and both simulators; W^T preload and M = 2 on WS."""
    _run_config(config)


@pytest.mark.slow
@pytest.mark.parametrize("config", FULL_GRID, ids=_config_id)
def test_array_matches_numpy_full_grid(config):
    _run_config(config)


@pytest.mark.parametrize("simulator", simulator_params())
@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_hierarchical_form_matches_numpy(dataflow, simulator):
    """The Verilog ``wavecore generate`` writes (PE, row and skew modules instantiated, ``hdl.hierarchy``) on
    both simulators: random GEMMs under gaps and backpressure, and the WS transposed preload."""
    _run_config({"rows": 3, "cols": 4, "in_width": 8, "acc_width": "medium", "dataflow": dataflow,
                 "signed": True, "overflow": "saturate", "simulator": simulator, "form": "hierarchical"})


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_narrow_accumulator_wraps_or_saturates_like_numerics(dataflow, overflow):
    """int8 operands into a 16-bit accumulator, extremes only: each mode must match its own rule."""
    array = SystolicArray(rows=3, cols=2, in_width=8, acc_width=16, overflow=overflow, dataflow=dataflow)
    design = build(array, toplevel="systolic", simulator="icarus")
    design.run("wavecore.verif.tb_systolic", testcase="overflowing_gemms",
               params={"config": array.parameters, "shapes": [[4, 9, 3], [3, 1, 2], [6, 4, 5]]})


@pytest.mark.parametrize("simulator", simulator_params())
def test_weight_stationary_transposed_preload_on_square_array(simulator):
    """Backward-data's W^T: B held transposed, preloaded through the transposed path of a 4x4 array."""
    array = SystolicArray(rows=4, cols=4, dataflow="weight_stationary")
    design = build(array, toplevel="systolic", simulator=simulator)
    design.run("wavecore.verif.tb_systolic", testcase="random_gemms",
               params={"config": array.parameters, "shapes": [[6, 4, 4], [9, 11, 6]], "idle": 0.2,
                       "backpressure": 0.2, "weights_transposed": True})


class _TwoStageMultiplier(wiring.Component):
    """A multiplier with latency 2 (like a DSP with input and output registers), to test the hook."""

    latency = 2

    def __init__(self, *, operand_shape, product_shape):
        super().__init__({"a": In(operand_shape), "b": In(operand_shape), "enable": In(1),
                          "product": Out(product_shape)})

    def elaborate(self, platform):
        m = Module()
        a_stage = Signal(self.a.shape())
        b_stage = Signal(self.b.shape())
        with m.If(self.enable):
            m.d.sync += [a_stage.eq(self.a), b_stage.eq(self.b), self.product.eq(a_stage * b_stage)]
        return m


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_multiplier_hook_with_longer_latency_keeps_results_exact(dataflow):
    array = SystolicArray(rows=3, cols=3, dataflow=dataflow, multiplier=_TwoStageMultiplier)
    assert array.result_latency == 3 + 3 + 2 + 1
    design = build(array, toplevel="systolic", simulator="icarus")
    design.run("wavecore.verif.tb_systolic", testcase=["random_gemms", "no_result_lost_or_repeated",
                                        "result_latency_matches_docstring"],
               params={"config": array.parameters, "shapes": _shapes(3, 3), "idle": 0.3, "backpressure": 0.4,
                       "latency": array.result_latency})


# --- parameter validation (objects built only to check their constructor) ------------------------

@pytest.mark.filterwarnings("ignore:.*created but never used")
@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"rows": 0, "cols": 4}, ValueError, "rows must be a positive integer, not 0"),
    ({"rows": 4, "cols": -2}, ValueError, "cols must be a positive integer, not -2"),
    ({"rows": "8", "cols": 4}, TypeError, "rows must be a positive integer, not '8'"),
    ({"rows": True, "cols": 4}, TypeError, "rows must be a positive integer, not True"),
    ({"rows": 4, "cols": 257}, ValueError, "cols must be at most 256, not 257"),
    ({"rows": 4, "cols": 4, "dataflow": "row_stationary"}, ValueError,
     "dataflow must be one of output_stationary, weight_stationary, not 'row_stationary'"),
    ({"rows": 4, "cols": 4, "in_width": 1}, ValueError,
     "in_width must be an integer between 2 and 18, not 1"),
    ({"rows": 4, "cols": 4, "in_width": 8, "acc_width": 15}, ValueError,
     "acc_width must be at least 2 * in_width = 16, not 15"),
    ({"rows": 4, "cols": 4, "overflow": "clamp"}, ValueError,
     "overflow must be one of wrap, saturate, not 'clamp'"),
    ({"rows": 4, "cols": 4, "signed": 1}, TypeError, "signed must be a bool, not 1"),
    ({"rows": 4, "cols": 4, "arithmetic": MacArithmetic(), "acc_width": 40}, ValueError,
     "give either arithmetic or acc_width, not both"),
    ({"rows": 4, "cols": 4, "arithmetic": (8, 32)}, TypeError,
     "arithmetic must be a wavecore.golden.numerics.MacArithmetic, not (8, 32)"),
    ({"rows": 4, "cols": 4, "multiplier": 3}, TypeError,
     "multiplier must be a callable returning a multiplier component, not 3"),
])
def test_bad_parameters_are_rejected_with_exact_messages(kwargs, error, message):
    with pytest.raises(error) as raised:
        SystolicArray(**kwargs)
    assert str(raised.value) == message


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_arithmetic_object_sets_the_port_widths():
    arithmetic = MacArithmetic(in_width=16, acc_width=48, signed=True, overflow="saturate")
    array = SystolicArray(rows=2, cols=3, dataflow="weight_stationary", arithmetic=arithmetic)
    assert array.parameters == {"rows": 2, "cols": 3, "in_width": 16, "acc_width": 48, "signed": True,
                                "overflow": "saturate", "dataflow": "weight_stationary"}
    assert array.a.payload.shape().size == 2 * 16 + 1
    assert array.psum.payload.shape().size == 3 * 48
    assert array.w.payload.shape().size == 3 * 16 + 1
    assert array.c.payload.shape().size == 3 * 48
    os_array = SystolicArray(rows=2, cols=3, in_width=4, acc_width=10, signed=False)
    assert os_array.a.payload.shape().size == 2 * 4 + 1 and os_array.b.payload.shape().size == 3 * 4
    assert not hasattr(os_array, "w") and not hasattr(os_array, "psum")


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_multiplier_latency_is_read_from_the_factory_or_a_built_multiplier():
    import functools

    # A bare partial has no `latency`: the array builds one multiplier to read it (skews depend on it).
    array = SystolicArray(rows=2, cols=2, dataflow="weight_stationary",
                          multiplier=functools.partial(_TwoStageMultiplier))
    assert array.latency == 2 and array.result_latency == 2 + 2 + 2 + 1

    def liar(**shapes):
        return _TwoStageMultiplier(**shapes)

    liar.latency = 1
    from amaranth.back import verilog

    with pytest.raises(ValueError, match="the multiplier factory says latency 1 but builds latency 2"):
        verilog.convert(SystolicArray(rows=1, cols=1, multiplier=liar))


# --- weight-stationary pass timing and the packed port layout (amaranth.sim, stated rules) -----------------
def _ws_switch_timing(rows: int, cols: int, transpose: int) -> tuple[int, int]:
    """Cycles from an accepted ``switch`` beat to the next accepted ``w`` beat, and between two ``switch``
    beats, with every stream offered on every cycle (``w``, ``a``/``psum``, ``c.ready`` all high)."""
    from amaranth.sim import Simulator

    array = SystolicArray(rows=rows, cols=cols, dataflow="weight_stationary")
    accepted = {"switch": [], "w": []}

    async def testbench(ctx):
        ctx.set(array.c.ready, 1)
        ctx.set(array.w.valid, 1)
        ctx.set(array.w.payload.transpose, transpose)
        ctx.set(array.a.valid, 1)
        ctx.set(array.psum.valid, 1)
        ctx.set(array.a.payload.switch, 1)  # every a beat asks for a new W: the beats wait for preloads
        for cycle in range(12 * (rows + cols)):
            if ctx.get(array.a.valid) and ctx.get(array.a.ready):
                accepted["switch"].append(cycle)
            if ctx.get(array.w.valid) and ctx.get(array.w.ready):
                accepted["w"].append(cycle)
            await ctx.tick()

    simulator = Simulator(array)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    first_switch, second_switch = accepted["switch"][:2]
    next_w = min(c for c in accepted["w"] if c > first_switch)
    return next_w - first_switch, second_switch - first_switch


@pytest.mark.parametrize(("rows", "cols"), [(3, 2), (2, 3), (4, 4)])
@pytest.mark.parametrize("transpose", [0, 1])
def test_ws_switch_to_next_weight_and_pass_period_follow_the_documented_rule(rows, cols, transpose):
    # docs/hardware.md: the first w beat after a switch is accepted rows + cols - 1 cycles after the switch
    # beat; a pass lasts 2*rows + cols - 1 cycles with a row preload (rows beats), rows + 2*cols - 1
    # transposed (cols beats).
    to_next_w, period = _ws_switch_timing(rows, cols, transpose)
    assert to_next_w == rows + cols - 1
    assert period == (2 * rows + cols - 1 if transpose == 0 else rows + 2 * cols - 1)
    timing = SystolicArray(rows=rows, cols=cols, dataflow="weight_stationary").timing
    assert timing["cycles_from_switch_to_next_w_beat"] == to_next_w
    key = "transposed_preload" if transpose else "rows_preload"
    assert timing["min_cycles_between_switch_beats"][key] == period


def test_os_a_ready_depends_on_b_valid_and_b_ready_on_a_valid():
    from amaranth.sim import Simulator

    array = SystolicArray(rows=2, cols=3)
    seen = []

    async def testbench(ctx):
        ctx.set(array.c.ready, 1)
        for a_valid, b_valid in [(1, 0), (0, 1), (1, 1), (0, 0)]:
            ctx.set(array.a.valid, a_valid)
            ctx.set(array.b.valid, b_valid)
            seen.append((a_valid, b_valid, ctx.get(array.a.ready), ctx.get(array.b.ready)))
        await ctx.tick()

    simulator = Simulator(array)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    # a.ready follows b.valid, b.ready follows a.valid: a transfer happens on both streams or on neither
    assert seen == [(1, 0, 0, 1), (0, 1, 1, 0), (1, 1, 1, 1), (0, 0, 0, 0)]


def test_json_sidecar_lists_every_packed_field_with_the_flag_in_the_top_bit(tmp_path):
    import json

    from wavecore.hdl.registry import generate_files

    _, sidecar = generate_files({"block": "systolic", "rows": 3, "cols": 2, "in_width": 8, "acc_width": 20,
                                 "dataflow": "weight_stationary"}, tmp_path)
    ports = json.loads(sidecar.read_text())["ports"]
    assert ports["a"]["fields"] == [{"name": f"data[{i}]", "offset": 8 * i, "width": 8} for i in range(3)] + [
        {"name": "switch", "offset": 24, "width": 1}]
    assert ports["w"]["fields"][-1] == {"name": "transpose", "offset": 8 * 3, "width": 1}
    assert ports["c"]["fields"] == [{"name": f"[{j}]", "offset": 20 * j, "width": 20} for j in range(2)]
    assert ports["a"]["verilog"] == {"payload": "a__payload", "valid": "a__valid", "ready": "a__ready"}
    assert all(sum(f["width"] for f in port["fields"]) == port["payload_bits"]
               for port in ports.values() if port["kind"] == "stream")


@pytest.mark.parametrize(("rows", "cols"), [(3, 3), (2, 4), (4, 2)])
def test_os_last_beats_are_held_back_exactly_the_documented_interval(rows, cols):
    # docs/hardware.md: a `last` waits until rows + cols - 1 cycles after the previous `last`; with K = 1 every
    # beat is a `last`, so offered back to back they are accepted exactly that far apart (no sooner: the
    # drain would collide; no later: the array would lose throughput), and C stays exact.
    from wavecore.verif.seed import rng

    arithmetic = MacArithmetic(in_width=8, acc_width=32)
    array = SystolicArray(rows=rows, cols=cols, arithmetic=arithmetic)
    random = rng("os_last_interval")
    tiles = [(arithmetic.operand.random(random, (rows, 1)), arithmetic.operand.random(random, (1, cols)))
             for _ in range(4)]
    from systolic_gemm_sim import os_tiles

    lasts = []
    results = os_tiles(array, tiles, lasts=lasts)
    assert [later - earlier for earlier, later in itertools.pairwise(lasts)] == [rows + cols - 1] * 3
    assert array.timing["min_cycles_between_last_beats"] == rows + cols - 1
    for (a, b), c in zip(tiles, results, strict=True):
        assert (c == arithmetic.matmul(a, b)).all()


@pytest.mark.parametrize("at", [1, 3, 5])
def test_os_reset_in_the_middle_of_a_tile_discards_it(at):
    # docs/hardware.md: a synchronous reset returns every register to its initial value: a tile whose beats
    # are in the skew registers when rst is asserted leaves no trace in the tiles offered after it.
    from wavecore.verif.seed import rng

    arithmetic = MacArithmetic(in_width=8, acc_width=32)
    array = SystolicArray(rows=3, cols=3, arithmetic=arithmetic)
    random = rng("os_reset_mid_tile")
    tiles = [(arithmetic.operand.random(random, (3, 6)), arithmetic.operand.random(random, (6, 3)))
             for _ in range(3)]
    from systolic_gemm_sim import os_tiles

    results = os_tiles(array, tiles, reset_after=at)
    for (a, b), c in zip(tiles[1:], results, strict=True):
        assert (c == arithmetic.matmul(a, b)).all()


@pytest.mark.parametrize("at", [1, 2, 4])
def test_ws_reset_in_the_middle_of_a_pass_discards_it(at):
    # docs/hardware.md: WS computes C = P + A @ W with W preloaded through w (row r of W per beat). A reset after
    # `at` rows of a pass were accepted leaves no row of that pass on c: after it, a new preload and pass give
    # exactly their own C, row for row.
    import numpy as np
    from amaranth.hdl import ResetInserter
    from amaranth.sim import Simulator

    from wavecore.verif.packing import pack, unpack
    from wavecore.verif.seed import rng

    rows, cols = 3, 2
    arithmetic = MacArithmetic(in_width=8, acc_width=32)
    array = SystolicArray(rows=rows, cols=cols, dataflow="weight_stationary", arithmetic=arithmetic)
    random = rng("ws_reset_mid_pass")
    passes = [(arithmetic.operand.random(random, (6, rows)), arithmetic.operand.random(random, (rows, cols)),
               random.integers(-1000, 1000, (6, cols))) for _ in range(2)]
    width, acc, wide = arithmetic.in_width, arithmetic.acc_width, max(rows, cols)
    reset, out = Signal(), []

    async def testbench(ctx):
        ctx.set(array.c.ready, 1)
        for number, (a, w, p) in enumerate(passes):
            for r in range(rows):  # preload W row by row
                ctx.set(array.w.valid, 1)
                ctx.set(array.w.payload.data.as_value(), pack(np.concatenate([w[r], [0] * (wide - cols)]), width))
                ctx.set(array.w.payload.transpose, 0)
                for _ in range(4 * (rows + cols)):  # a preload beat waits at most for the previous pass's switch
                    accepted = ctx.get(array.w.ready)
                    await ctx.tick()
                    if accepted:
                        break
                else:
                    raise AssertionError(f"w beat {r} of pass {number} not accepted: array stuck")
            ctx.set(array.w.valid, 0)
            m, cycles = 0, 0
            while m < len(a):
                if number == 0 and m == at:
                    break
                ctx.set(array.a.valid, 1)
                ctx.set(array.psum.valid, 1)
                ctx.set(array.a.payload.data.as_value(), pack(a[m], width))
                ctx.set(array.a.payload.switch, m == 0)
                ctx.set(array.psum.payload.as_value(), pack(p[m], acc))
                accepted = ctx.get(array.a.ready)
                if ctx.get(array.c.valid):
                    out.append(unpack(ctx.get(array.c.payload.as_value()), acc, cols, True))
                await ctx.tick()
                m += accepted
                cycles += 1
                assert cycles < 500, "array stuck"
            ctx.set(array.a.valid, 0)
            ctx.set(array.psum.valid, 0)
            if number == 0:
                ctx.set(reset, 1)
                await ctx.tick()
                ctx.set(reset, 0)
                del out[:]
        for _ in range(8 * (rows + cols)):  # drain the second pass
            if ctx.get(array.c.valid):
                out.append(unpack(ctx.get(array.c.payload.as_value()), acc, cols, True))
            await ctx.tick()

    simulator = Simulator(ResetInserter(reset)(array))
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    a, w, p = passes[1]
    expected = p + arithmetic.matmul(a, w)
    assert len(out) == len(a), f"{len(out)} rows of C after the reset, expected {len(a)}"
    np.testing.assert_array_equal(np.stack(out), expected)
