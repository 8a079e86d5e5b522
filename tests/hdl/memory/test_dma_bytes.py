# amaranth: UnusedElaboratable=no
"""The byte-granular DMA (hdl/memory/dma.py, ``byte_granular=True``) in amaranth.sim against a Python AXI4
subordinate with random stalls: random descriptors of byte rows (any byte address, length and strides) on both
channels; every R beat's strobe and every W beat's address and ``wstrb`` equal the row walk's, DRAM changes only
on the rows' bytes, no burst crosses 4 KiB or exceeds ``max_burst``."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from wavecore.hdl.memory.dma import Dma

DRAM_BYTES = 1 << 16


def row_beats(address: int, count: int, lanes: int):
    """``[(word, strobe)]``: the bus words a row of ``count`` bytes at ``address`` covers and its lanes in each."""
    beats = []
    for word in range(address // lanes, (address + count - 1) // lanes + 1):
        first = max(address, word * lanes) - word * lanes
        last = min(address + count, (word + 1) * lanes) - word * lanes
        beats.append((word, sum(1 << lane for lane in range(first, last))))
    return beats


def descriptor_beats(descriptor: dict, lanes: int):
    return [beat for plane in range(descriptor["count2"]) for row in range(descriptor["count1"])
            for beat in row_beats(descriptor["address"] + plane * descriptor["stride2"] + row * descriptor["stride1"],
                                  descriptor["length"], lanes)]


def random_descriptor(random, half: int) -> dict:
    length = int(random.integers(1, 90))
    count1, count2 = int(random.integers(1, 4)), int(random.integers(1, 3))
    stride1 = int(random.integers(0, length + 30))
    stride2 = int(random.integers(0, count1 * (length + 30) + 10))
    extent = (count2 - 1) * stride2 + (count1 - 1) * stride1 + length
    if random.random() < 0.3:  # just below a page boundary
        address = 4096 * int(random.integers(1, 7)) - int(random.integers(1, 40))
    else:
        address = int(random.integers(0, DRAM_BYTES // 2 - extent))
    return {"address": half + address, "length": length, "count1": count1, "stride1": stride1, "count2": count2,
            "stride2": stride2, "scratch": 0}


@pytest.mark.parametrize(("data_width", "max_burst", "stall", "command_register"),
                         [(64, 4, 0.3, False), (32, 16, 0.0, False), (128, 2, 0.5, False), (128, 16, 0.2, True),
                          (32, 2, 0.0, True)])
def test_byte_granular_dma_walks_rows_with_their_strobes(data_width, max_burst, stall, command_register):
    lanes = data_width // 8
    dut = Dma(data_width=data_width, max_burst=max_burst, max_outstanding=2, count_width=8, scratch_width=8,
              byte_granular=True, command_register=command_register)
    random = np.random.default_rng(data_width + max_burst)
    dram = bytearray(random.bytes(DRAM_BYTES))
    expected = bytearray(dram)
    reads = [random_descriptor(random, 0) for _ in range(12)]
    writes = [random_descriptor(random, DRAM_BYTES // 2) for _ in range(12)]
    read_beats = [beat for descriptor in reads for beat in descriptor_beats(descriptor, lanes)]
    write_beats = [beat for descriptor in writes for beat in descriptor_beats(descriptor, lanes)]
    write_words = [int.from_bytes(random.bytes(lanes), "little") for _ in write_beats]
    for (word, strobe), value in zip(write_beats, write_words, strict=True):
        for lane in range(lanes):
            if strobe >> lane & 1:
                expected[word * lanes + lane] = value >> (8 * lane) & 0xFF
    seen = {"read": [], "write": [], "reads_sent": 0, "writes_sent": 0}

    async def commands(ctx):
        queues = {"read_command": list(reads), "write_command": list(writes)}
        while any(queues.values()):
            for name, queue in queues.items():
                port = getattr(dut, name)
                if queue:
                    ctx.set(port.valid, 1)
                    ctx.set(port.payload, queue[0])
                    if ctx.get(port.ready):
                        queue.pop(0)
                else:
                    ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(dut.read_command.valid, 0)
        ctx.set(dut.write_command.valid, 0)

    async def subordinate(ctx):
        axi = dut.axi
        read_bursts, write_bursts, responses = [], [], []
        read_beat = 0
        write_index = 0
        for _ in range(40 * (len(read_beats) + len(write_beats)) + 1000):
            # AR/AW: accept with random stalls; check the burst rules.
            ctx.set(axi.arready, int(random.random() >= stall))
            ctx.set(axi.awready, int(random.random() >= stall))
            for channel, bursts in (("ar", read_bursts), ("aw", write_bursts)):
                if ctx.get(getattr(axi, f"{channel}valid")) and ctx.get(getattr(axi, f"{channel}ready")):
                    address, beats = ctx.get(getattr(axi, f"{channel}addr")), ctx.get(getattr(axi, f"{channel}len")) + 1
                    assert beats <= max_burst and address % 4096 + beats * lanes <= 4096, (channel, address, beats)
                    bursts.append([address // lanes, beats])
            # R: the head burst's next word.
            rvalid = int(bool(read_bursts) and random.random() >= stall)
            ctx.set(axi.rvalid, rvalid)
            if rvalid:
                word, beats = read_bursts[0]
                ctx.set(axi.rdata, int.from_bytes(dram[word * lanes : (word + 1) * lanes], "little"))
                ctx.set(axi.rlast, int(beats == 1))
                ctx.set(axi.rresp, 0)
            ctx.set(dut.read_data.ready, int(random.random() >= stall))
            if rvalid and ctx.get(axi.rready):
                assert ctx.get(dut.read_data.valid)
                payload = ctx.get(dut.read_data.payload)
                seen["read"].append((read_bursts[0][0], payload["strobe"]))
                assert payload["data"] == int.from_bytes(dram[word * lanes : (word + 1) * lanes], "little")
                read_bursts[0] = [word + 1, beats - 1]
                if beats == 1:
                    read_bursts.pop(0)
                read_beat += 1
            # W: the words in order, any time the DMA frames a beat.
            ctx.set(dut.write_fetch.ready, 1)
            ctx.set(dut.write_fetched.valid, int(write_index < len(write_words)))
            if write_index < len(write_words):
                ctx.set(dut.write_fetched.payload, write_words[write_index])
            ctx.set(axi.wready, int(random.random() >= stall))
            if ctx.get(axi.wvalid) and ctx.get(axi.wready):
                assert write_bursts, "a W beat before its AW"
                word, beats = write_bursts[0]
                strobe, value = ctx.get(axi.wstrb), ctx.get(axi.wdata)
                seen["write"].append((word, strobe))
                # the strobe's run of lanes, as the first lane and the count the DMA also gives
                first = (strobe & -strobe).bit_length() - 1
                assert (ctx.get(dut.write_first_lane), ctx.get(dut.write_lane_count)) == \
                    (first, bin(strobe).count("1")), strobe
                for lane in range(lanes):
                    if strobe >> lane & 1:
                        dram[word * lanes + lane] = value >> (8 * lane) & 0xFF
                assert ctx.get(axi.wlast) == int(beats == 1)
                write_bursts[0] = [word + 1, beats - 1]
                if beats == 1:
                    write_bursts.pop(0)
                    responses.append(int(random.integers(1, 4)))
                write_index += 1
            # B: one response per burst after a random delay.
            responses = [delay - 1 for delay in responses]
            ready_b = bool(responses) and responses[0] <= 0
            ctx.set(axi.bvalid, int(ready_b))
            ctx.set(axi.bresp, 0)
            if ready_b and ctx.get(axi.bready):
                responses.pop(0)
            await ctx.tick()
            if (len(seen["read"]) == len(read_beats) and write_index == len(write_words) and not responses
                    and ctx.get(dut.read_idle) and ctx.get(dut.write_idle)):
                break
        else:
            raise AssertionError(f"not done: {len(seen['read'])}/{len(read_beats)} R, "
                                 f"{write_index}/{len(write_words)} W")

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(commands)
    simulator.add_testbench(subordinate)
    simulator.run()
    assert seen["read"] == read_beats
    assert seen["write"] == write_beats
    assert dram == expected


def test_byte_granular_must_be_a_bool():
    with pytest.raises(TypeError, match=r"^byte_granular must be a bool, not 1$"):
        Dma(byte_granular=1)


def test_command_register_must_be_a_bool():
    with pytest.raises(TypeError, match=r"^command_register must be a bool, not 1$"):
        Dma(command_register=1)


@pytest.mark.parametrize("command_register", [False, True])
def test_first_burst_two_or_three_cycles_after_the_acceptance_and_busy_meanwhile(command_register):
    """The module docstring's timing: a descriptor accepted in cycle 0 has its AR (and AW) burst in cycle 2, or 3
    with ``command_register``; the channel is not idle from the cycle after the acceptance on."""
    dut = Dma(data_width=64, max_burst=16, max_outstanding=2, count_width=8, scratch_width=8, byte_granular=True,
              command_register=command_register)
    descriptor = {"address": 0x123, "length": 20, "count1": 1, "stride1": 0, "count2": 1, "stride2": 0,
                  "scratch": 0}
    seen = {}

    async def testbench(ctx):
        for channel, command, idle in (("ar", dut.read_command, dut.read_idle),
                                       ("aw", dut.write_command, dut.write_idle)):
            ctx.set(getattr(dut.axi, f"{channel}ready"), 1)
            ctx.set(command.valid, 1)
            ctx.set(command.payload, descriptor)
            assert ctx.get(command.ready) and ctx.get(idle)
            await ctx.tick()  # accepted in cycle 0
            ctx.set(command.valid, 0)
            for cycle in range(1, 6):
                assert not ctx.get(idle), (channel, cycle)
                if ctx.get(getattr(dut.axi, f"{channel}valid")):
                    seen[channel] = cycle
                    break
                await ctx.tick()

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    assert seen == {"ar": 2 + command_register, "aw": 2 + command_register}
