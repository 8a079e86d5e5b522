# amaranth: UnusedElaboratable=no
"""CoreCounters (hdl/core/counters.py) in amaranth.sim: random event streams against counts kept in Python."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from wavecore.hdl.core.counters import CoreCounters
from wavecore.hdl.core.registers import RegisterMap


@pytest.mark.parametrize(("classes", "beat_bytes", "width", "partial", "registered"),
                         [(None, 8, 64, False, False), (("a", "b", "c"), 16, 12, False, False),
                          (None, 8, 64, True, False), (None, 8, 64, True, True),
                          (("a", "b", "c"), 16, 12, False, True)])
def test_counters_follow_random_events(classes, beat_bytes, width, partial, registered):
    """``partial``: each beat counts a random number of bytes (a row's partial first/last beat); otherwise the
    byte inputs are left at their default, a whole beat. ``registered`` (``register_traffic``): a beat reaches
    its byte counter one cycle later, and a ``clear`` also drops the beat of the cycle before it."""
    register_map = RegisterMap() if classes is None else RegisterMap(traffic_classes=classes)
    dut = CoreCounters(register_map=register_map, beat_bytes=beat_bytes, counter_width=width,
                       register_traffic=registered)
    random = np.random.default_rng(5)
    count = len(register_map.traffic_classes)
    expected = dict.fromkeys(register_map.counters, 0)
    mask = (1 << width) - 1
    pending = {}  # registered: the byte counts of the beats of the cycle before, added at this edge

    async def testbench(ctx):
        nonlocal pending
        for cycle in range(400):
            events = {name: int(random.random() < 0.6) for name in ("busy", "retire", "array_busy", "read_beat",
                                                                     "write_beat")}
            read_class, write_class = int(random.integers(0, count)), int(random.integers(0, count))
            clear = int(cycle in (150, 151, 300))
            read_bytes = write_bytes = beat_bytes
            if partial:
                read_bytes, write_bytes = (int(value) for value in random.integers(0, beat_bytes + 1, 2))
                ctx.set(dut.read_bytes, read_bytes)
                ctx.set(dut.write_bytes, write_bytes)
            for name, value in events.items():
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.read_class, read_class)
            ctx.set(dut.write_class, write_class)
            ctx.set(dut.clear, clear)
            await ctx.tick()
            cls = register_map.traffic_classes
            beats = {}
            beats[f"bytes_read_{cls[read_class]}"] = read_bytes * events["read_beat"]
            beats[f"bytes_written_{cls[write_class]}"] = write_bytes * events["write_beat"]
            if clear:
                for name in expected:
                    expected[name] = 0
                pending = {}
            else:
                expected["cycles"] += events["busy"]
                expected["instructions"] += events["retire"]
                expected["array_busy"] += events["array_busy"]
                for name, amount in (pending if registered else beats).items():
                    expected[name] += amount
                pending = beats
            for name, value in expected.items():
                assert ctx.get(getattr(dut.counters, name)) == value & mask, (cycle, name)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()


def test_counters_reject_bad_parameters():
    with pytest.raises(ValueError, match=r"^beat_bytes must be an integer between 1 and 128, not 0$"):
        CoreCounters(beat_bytes=0)
    with pytest.raises(TypeError, match=r"^register_map must be a RegisterMap, not 'x'$"):
        CoreCounters(register_map="x")
    with pytest.raises(TypeError, match=r"^register_traffic must be a bool, not 1$"):
        CoreCounters(register_traffic=1)
