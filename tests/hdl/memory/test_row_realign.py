# amaranth: UnusedElaboratable=no
"""RowPacker and RowUnpacker (hdl/memory/row_packer.py, row_unpacker.py) in amaranth.sim: random element-granular
rows (any element-aligned DRAM address, length, on-chip start) against the byte copies a Python model makes; the
neighbours of the on-chip region (LOAD) keep their bytes; long aligned rows move one word per cycle."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from wavecore.hdl.memory.row_packer import RowPacker
from wavecore.hdl.memory.row_unpacker import RowUnpacker

WORDS = 64  # on-chip words of the model (address_width 6)


def row_beats(address: int, count: int, lanes: int):
    """``[(word, strobe)]``: the DRAM words a row of ``count`` bytes at ``address`` covers and its lanes in each."""
    beats = []
    for word in range(address // lanes, (address + count - 1) // lanes + 1):
        first = max(address, word * lanes) - word * lanes
        last = min(address + count, (word + 1) * lanes) - word * lanes
        beats.append((word, sum(1 << lane for lane in range(first, last))))
    return beats


def random_transfer(random, lanes: int, size: int, *, aligned=False):
    """``(chip_byte, rows)``: rows ``(dram byte address, bytes)`` of ``size``-byte elements and the on-chip start."""
    if aligned:
        return 0, [(lanes * int(random.integers(0, 100)), lanes * int(random.integers(8, 16)))]
    rows = []
    for _ in range(int(random.integers(1, 5))):
        count = size * int(random.integers(1, 3 * lanes // size + 2))
        rows.append((size * int(random.integers(0, 4096 // size)), count))
    total = sum(count for _, count in rows)
    chip_byte = size * int(random.integers(0, (WORDS * lanes - total) // size + 1))
    return chip_byte, rows


def _simulate(dut, bench):
    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()


@pytest.mark.parametrize("register_inputs", [False, True])
@pytest.mark.parametrize(("data_width", "size"), [(64, 1), (64, 4), (32, 2), (128, 4), (16, 1)])
def test_packer_writes_exactly_the_rows_bytes(data_width, size, register_inputs):
    lanes = data_width // 8
    random = np.random.default_rng(data_width + size)
    dram = random.bytes(8192)
    chip = bytearray(random.bytes(WORDS * lanes))
    expected = bytearray(chip)
    transfers = [random_transfer(random, lanes, size) for _ in range(40)]
    for chip_byte, rows in transfers:
        data = b"".join(dram[a : a + n] for a, n in rows)
        expected[chip_byte : chip_byte + len(data)] = data
    dut = RowPacker(data_width=data_width, address_width=6, register_inputs=register_inputs)
    busy = []  # `pending` after each input, and whether it fell once the inputs were idle

    async def bench(ctx):
        async def step():
            await ctx.tick()
            if ctx.get(dut.write_enable):
                word, value, strobe = ctx.get(dut.write_address), ctx.get(dut.write_data), ctx.get(dut.write_strobe)
                for lane in range(lanes):
                    if strobe >> lane & 1:
                        chip[word * lanes + lane] = value >> (8 * lane) & 0xFF

        for chip_byte, rows in transfers:
            ctx.set(dut.start, 1)
            ctx.set(dut.chip_byte, chip_byte)
            await step()
            ctx.set(dut.start, 0)
            for address, count in rows:
                for word, strobe in row_beats(address, count, lanes):
                    while random.random() < 0.3:  # DRAM stalls
                        ctx.set(dut.beat_valid, 0)
                        await step()
                    ctx.set(dut.beat_valid, 1)
                    ctx.set(dut.beat_data, int.from_bytes(dram[word * lanes : (word + 1) * lanes], "little"))
                    ctx.set(dut.beat_strobe, strobe)
                    await step()
            ctx.set(dut.beat_valid, 0)
            ctx.set(dut.flush, 1)
            await step()
            ctx.set(dut.flush, 0)
            busy.append(ctx.get(dut.pending))  # the flush waits in its register
            await step()
            if register_inputs:  # the flush's word one cycle later
                busy.append(not ctx.get(dut.pending))
                await step()

    _simulate(dut, bench)
    assert chip == expected
    assert busy == [True] * len(busy) if register_inputs else not any(busy)


@pytest.mark.parametrize(("register_read_data", "read_latency"), [(False, 1), (True, 1), (False, 2)])
@pytest.mark.parametrize(("data_width", "size"), [(64, 1), (64, 4), (32, 2), (128, 4), (16, 1)])
def test_unpacker_sends_exactly_the_region_bytes_in_the_rows_lanes(data_width, size, register_read_data,
                                                                   read_latency):
    lanes = data_width // 8
    random = np.random.default_rng(100 + data_width + size)
    chip = random.bytes(WORDS * lanes)
    transfers = [random_transfer(random, lanes, size) for _ in range(40)]
    dut = RowUnpacker(data_width=data_width, address_width=6, register_read_data=register_read_data,
                      read_latency=read_latency)

    async def bench(ctx):
        for chip_byte, rows in transfers:
            await _unpack(ctx, dut, chip, chip_byte, rows, lanes, random, ready_rate=0.7, read_ready_rate=0.8,
                          read_latency=read_latency)

    _simulate(dut, bench)


async def _unpack(ctx, dut, chip, chip_byte, rows, lanes, random, *, ready_rate, read_ready_rate=1.0,
                  read_latency=1):
    """Run one transfer; check every beat's lanes against the region; return the cycles from start to last beat.

    The read port is a memory that takes a read while ``read_ready`` (high in ``read_ready_rate`` of the cycles)
    and shows the word on ``read_data`` ``read_latency`` cycles after the read and random bytes in the other
    cycles."""
    region = chip[chip_byte : chip_byte + sum(count for _, count in rows)]
    beats = [strobe for address, count in rows for _, strobe in row_beats(address, count, lanes)]
    ctx.set(dut.start, 1)
    ctx.set(dut.chip_byte, chip_byte)
    ctx.set(dut.active, 0)
    await ctx.tick()
    ctx.set(dut.start, 0)
    ctx.set(dut.active, 1)
    cursor, cycles = 0, 0
    reads = [None] * read_latency  # [k]: the address whose word read_data shows k + 1 cycles from now
    while beats:
        strobe = beats[0]  # one run of lanes: the DMA gives its first lane and count
        ctx.set(dut.beat_first_lane, (strobe & -strobe).bit_length() - 1)
        ctx.set(dut.beat_lane_count, bin(strobe).count("1"))
        ready = int(random.random() < ready_rate)
        ctx.set(dut.beat_ready, ready)
        read_ready = int(random.random() < read_ready_rate)
        ctx.set(dut.read_ready, read_ready)
        read = ctx.get(dut.read_enable), ctx.get(dut.read_address)
        assert read_ready or not read[0], "a read while the memory is not ready"
        if ready and ctx.get(dut.beat_valid):
            value, strobe = ctx.get(dut.beat_data), beats.pop(0)
            for lane in range(lanes):
                if strobe >> lane & 1:
                    assert value >> (8 * lane) & 0xFF == region[cursor], (chip_byte, rows, cursor)
                    cursor += 1
        await ctx.tick()
        cycles += 1
        assert cycles < 50 * len(region) + 100, "the unpacker stalls"
        reads = reads[1:] + [read[1] if read[0] else None]
        if reads[0] is not None:  # the read port: the word `read_latency` cycles after the read
            ctx.set(dut.read_data, int.from_bytes(chip[reads[0] * lanes : (reads[0] + 1) * lanes], "little"))
        else:
            ctx.set(dut.read_data, int.from_bytes(random.bytes(lanes), "little"))
    assert cursor == len(region)
    ctx.set(dut.active, 0)
    await ctx.tick()
    return cycles


@pytest.mark.parametrize(("register_read_data", "read_latency", "fill"), [(False, 1, 2), (True, 1, 3), (False, 2, 3)])
def test_unpacker_sends_one_full_beat_per_cycle_on_aligned_rows(register_read_data, read_latency, fill):
    # one beat per cycle after `fill` cycles: the read, (the registered word, here or in the memory,) the merge
    lanes = 8
    random = np.random.default_rng(3)
    chip = random.bytes(WORDS * lanes)
    dut = RowUnpacker(data_width=64, address_width=6, register_read_data=register_read_data,
                      read_latency=read_latency)
    measured = []

    async def bench(ctx):
        for _ in range(5):
            chip_byte, rows = random_transfer(random, lanes, 1, aligned=True)
            words = rows[0][1] // lanes
            measured.append((words, await _unpack(ctx, dut, chip, chip_byte, rows, lanes, random, ready_rate=1.0,
                                                  read_latency=read_latency)))

    _simulate(dut, bench)
    for words, cycles in measured:
        assert cycles == words + fill, measured


@pytest.mark.parametrize("component", [RowPacker, RowUnpacker])
def test_realigners_reject_bad_parameters(component):
    with pytest.raises(ValueError, match=r"^data_width must be a power of two between 16 and 1024, not 48$"):
        component(data_width=48)
    with pytest.raises(ValueError, match=r"^data_width must be an integer between 16 and 1024, not 8$"):
        component(data_width=8)
    with pytest.raises(ValueError, match=r"^address_width must be an integer between 1 and 32, not 0$"):
        component(address_width=0)


def test_realigners_reject_a_non_bool_register_option():
    with pytest.raises(TypeError, match=r"^register_read_data must be a bool, not 1$"):
        RowUnpacker(register_read_data=1)
    with pytest.raises(TypeError, match=r"^register_inputs must be a bool, not 'yes'$"):
        RowPacker(register_inputs="yes")


def test_unpacker_rejects_a_bad_read_latency():
    with pytest.raises(ValueError, match=r"^read_latency must be 1 or 2, not 3$"):
        RowUnpacker(read_latency=3)
    with pytest.raises(ValueError, match=r"^register_read_data needs read_latency 1$"):
        RowUnpacker(register_read_data=True, read_latency=2)
