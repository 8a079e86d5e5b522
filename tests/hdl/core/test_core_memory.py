"""CoreMemory (hdl/core/core_memory.py): compute ports behave like a memory with enough ports, the DMA waits.

A random mix of compute reads (two ports), compute writes and DMA reads/writes is checked cycle by cycle
against a Python model of the word memory: every read returns the word as it was before the writes of its
own cycle, a compute port's data holds while its enable is low, the DMA write/read is taken exactly when
its ready says so, and the DMA's read word arrives ``dma_read_latency`` cycles after its read."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from wavecore.hdl.core.core_memory import CoreMemory


def _model_write(memory, address, enables, data, lanes, bits):
    mask = (1 << bits) - 1
    word = memory[address]
    for lane in range(lanes):
        if enables >> lane & 1:
            word = (word & ~(mask << lane * bits)) | (data & (mask << lane * bits))
    memory[address] = word


@pytest.mark.parametrize("dma_read_latency", [1, 2])
@pytest.mark.parametrize(("readers", "element_bits"), [(2, 8), (1, 32), (3, 16)])
def test_core_memory_matches_a_many_ported_memory(readers, element_bits, dma_read_latency):
    word_bits, depth = 64, 16
    lanes = word_bits // element_bits
    dut = CoreMemory(word_bits=word_bits, element_bits=element_bits, depth=depth, readers=readers,
                     dma_read_latency=dma_read_latency)
    rng = np.random.default_rng(5)
    model = [0] * depth
    stats = {"dma_writes": 0, "dma_reads": 0, "dma_write_waits": 0, "dma_read_waits": 0}

    async def bench(ctx):
        expected_compute = [None] * readers  # the word a compute port shows from this cycle on
        expected_dma = [None] * dma_read_latency  # [k]: the word dma_read_data shows k + 1 cycles from now
        for _ in range(600):
            reads = []
            for k in range(readers):
                en = int(rng.random() < 0.5)
                address = int(rng.integers(depth))
                ctx.set(getattr(dut, f"read{k}_en"), en)
                ctx.set(getattr(dut, f"read{k}_addr"), address)
                reads.append((en, address))
            write_en = int(rng.integers(1 << lanes)) if rng.random() < 0.4 else 0
            write_address, write_data = int(rng.integers(depth)), int(rng.integers(1 << 62))
            ctx.set(dut.write_en, write_en)
            ctx.set(dut.write_addr, write_address)
            ctx.set(dut.write_data, write_data)
            dma_write = int(rng.random() < 0.5)
            dma_write_en = int(rng.integers(1, 1 << lanes))
            dma_write_address, dma_write_data = int(rng.integers(depth)), int(rng.integers(1 << 62))
            ctx.set(dut.dma_write_valid, dma_write)
            ctx.set(dut.dma_write_en, dma_write_en)
            ctx.set(dut.dma_write_addr, dma_write_address)
            ctx.set(dut.dma_write_data, dma_write_data)
            dma_read = int(rng.random() < 0.5)
            dma_read_address = int(rng.integers(depth))
            ctx.set(dut.dma_read_en, dma_read)
            ctx.set(dut.dma_read_addr, dma_read_address)
            # outputs of this cycle: the reads of the previous one
            for k in range(readers):
                if expected_compute[k] is not None:
                    assert ctx.get(getattr(dut, f"read{k}_data")) == expected_compute[k]
            if expected_dma[0] is not None:
                assert ctx.get(dut.dma_read_data) == expected_dma[0]
            write_ready = ctx.get(dut.dma_write_ready)
            read_ready = ctx.get(dut.dma_read_ready)
            assert write_ready == (write_en == 0)
            assert read_ready == (not all(en for en, _ in reads))
            # the model: reads see the memory before this cycle's writes
            for k, (en, address) in enumerate(reads):
                if en:
                    expected_compute[k] = model[address]
            expected_dma = expected_dma[1:] + [model[dma_read_address] if dma_read and read_ready else None]
            stats["dma_reads"] += bool(dma_read and read_ready)
            stats["dma_read_waits"] += bool(dma_read and not read_ready)
            if write_en:
                _model_write(model, write_address, write_en, write_data, lanes, element_bits)
            elif dma_write:
                _model_write(model, dma_write_address, dma_write_en, dma_write_data, lanes, element_bits)
            stats["dma_writes"] += bool(dma_write and write_ready)
            stats["dma_write_waits"] += bool(dma_write and not write_ready)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert all(stats.values()), stats  # every case happened


def test_core_memory_rejects_a_bad_dma_read_latency():
    with pytest.raises(ValueError, match=r"^dma_read_latency must be 1 or 2, not 3$"):
        CoreMemory(word_bits=64, element_bits=8, depth=16, readers=2, dma_read_latency=3)
