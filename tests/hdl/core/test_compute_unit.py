"""ElementPorts (hdl/core/compute_unit.py): the element ports of the unit contract on a word memory.

A random mix of element reads (two ports), element writes (some outside the memory) and idle cycles is checked
cycle by cycle against a Python model of the element memory, with the contract's rules as the oracle: a read
returns, ``read_latency`` cycles later (1, 2 and 3 are checked), the element as written by every write presented in
an earlier cycle (not one presented in the same cycle), its data holds until the next read's data arrives, and an
address at or above ``elements`` drops the write and raises ``out_of_range`` in the next cycle. The adapter writes the
memory a cycle late, so reads right behind writes of the same element, the same word and other words are all drawn
on purpose.
"""

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from wavecore.golden.core.semantics import CoreParameters
from wavecore.hdl.core.compute_unit import ElementPorts, element_widths


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@pytest.mark.parametrize("read_latency", [1, 2, 3])
@pytest.mark.parametrize(("element_bits", "word_bits"), [(8, 64), (32, 64), (16, 16)])
def test_element_ports_follow_the_unit_contract(element_bits, word_bits, read_latency):
    lanes, words = word_bits // element_bits, 6
    elements = lanes * words - 3  # the last word's top lanes are outside the range check
    rng = np.random.default_rng(element_bits)
    initial = [int(v) for v in rng.integers(-(1 << element_bits - 1), 1 << element_bits - 1, lanes * words)]
    init = [sum((initial[w * lanes + lane] & ((1 << element_bits) - 1)) << (lane * element_bits)
                for lane in range(lanes)) for w in range(words)]
    memory = Memory(shape=word_bits, depth=words, init=init)
    ports = ElementPorts(element_bits=element_bits, word_bits=word_bits, elements=elements, readers=2,
                         read_latency=read_latency)
    m = Module()
    m.submodules.memory, m.submodules.ports = memory, ports
    ports.attach([memory.read_port(), memory.read_port()], memory.write_port(granularity=element_bits))
    model = list(initial)
    seen = {"forwarded": 0, "same_word": 0, "same_cycle": 0, "dropped": 0, "read_outside": 0}

    async def bench(ctx):
        issued = [[], []]  # per port: (cycle, value) of every read presented
        last_write = None
        previous_outside = previous_read_outside = False  # the accesses of the cycle before (out_of_range's)
        for cycle in range(1500):
            reads = []
            for k in range(2):
                en = int(rng.random() < 0.6)
                if last_write is not None and rng.random() < 0.4:  # right behind the last write
                    address = last_write if rng.random() < 0.6 else min(elements - 1, (last_write // lanes) * lanes
                                                                          + int(rng.integers(lanes)))
                elif rng.random() < 0.05:  # outside the memory: out_of_range, data undefined
                    address = int(rng.integers(elements, lanes * words))
                else:
                    address = int(rng.integers(elements))
                read = getattr(ports, f"read{k}")
                ctx.set(read.en, en)
                ctx.set(read.addr, address)
                reads.append((en, address))
            write_en = int(rng.random() < 0.5)
            outside_the_memory = rng.random() < 0.06  # the check's edge and the addresses past the last word
            write_address = int(rng.integers(elements, lanes * words + 2) if outside_the_memory else
                                rng.integers(elements))
            if write_en and reads[0][0] and rng.random() < 0.3:  # a write and a read of it in the same cycle
                write_address = reads[0][1]
            write_data = int(rng.integers(-(1 << element_bits - 1), 1 << element_bits - 1))
            ctx.set(ports.write.en, write_en)
            ctx.set(ports.write.addr, write_address)
            ctx.set(ports.write.data, write_data)
            for k in range(2):  # the data of the last read presented read_latency or more cycles ago
                arrived = [value for issue, value in issued[k] if issue <= cycle - read_latency]
                if arrived and arrived[-1] is not None:
                    assert ctx.get(getattr(ports, f"read{k}").data) == arrived[-1], (cycle, k)
            outside = write_en and write_address >= elements
            assert ctx.get(ports.out_of_range) == (previous_outside or previous_read_outside), cycle
            previous_outside = outside
            previous_read_outside = any(en and address >= elements for en, address in reads)
            for k, (en, address) in enumerate(reads):
                if en and address >= elements:
                    issued[k].append((cycle, None))
                    seen["read_outside"] += 1
                elif en:
                    issued[k].append((cycle, model[address]))
                    seen["forwarded"] += last_write == address
                    seen["same_word"] += last_write is not None and last_write != address and \
                        last_write // lanes == address // lanes
                    seen["same_cycle"] += bool(write_en and address == write_address)
            seen["dropped"] += bool(outside)
            if write_en and not outside:
                model[write_address] = _signed(write_data, element_bits)
            last_write = write_address if write_en and not outside else None
            await ctx.tick()

    simulator = Simulator(m)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    # every case the registered write could get wrong was drawn, many times (a word of one lane has no neighbours)
    if lanes == 1:
        del seen["same_word"]
    assert min(seen.values()) >= 20, seen


@pytest.mark.parametrize(("in_width", "acc_width", "widths"), [(8, 32, (8, 32)), (16, 48, (16, 64))])
def test_element_widths_are_the_dram_element_sizes(in_width, acc_width, widths):
    # the unit contract (module docstring): scratchpad elements are operand_bytes * 8 bits, accumulator elements
    # accumulator_bytes * 8 bits, as in DRAM (an int16 core's 48-bit accumulator is stored in 8 bytes)
    parameters = CoreParameters(in_width=in_width, acc_width=acc_width)
    assert (parameters.operand_bytes * 8, parameters.accumulator_bytes * 8) == widths
    assert element_widths(parameters) == {"scratchpad": widths[0], "accumulator": widths[1]}
