"""cocotb testbench for the HDL DRAM model (hdl/core/wavecore_dram_model.v) through cocotbext-axi's AxiMaster.

The reference is a Python shadow memory (bytearray) updated by every write the testbench issues; the checks:

* random concurrent bursts (INCR, 1-256 beats, unaligned starts and lengths = partial strobes, narrow sizes,
  random IDs, several workers in flight at once) read back what the shadow holds;
* beats above the memory get DECERR;
* the per-burst read latency lies in the configured range and covers it, the ready stall rate is the
  configured probability, and the trace repeats exactly after a reset with the same seed;
* the backdoor: a file load is read back through AXI; AXI writes are seen in a file dump; a ``+dram_init`` file
  is present at time 0.
"""

import json

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiMaster, AxiResp

from wavecore.verif.axi import AXI_ROUND_TRIP, AxiMonitor
from wavecore.verif.host import BackdoorMemory
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import reset, start_clock
from wavecore.verif.waits import cycle_limit, stalled, within


class _BoundedMaster:
    """``AxiMaster`` with every transaction bounded (:func:`wavecore.verif.waits.within`): its beats at the model's
    stall rate (``stall``/256 per channel and cycle, on the address and data channels) plus one latency bound per
    burst (``latency_max`` + an AXI round trip), after the beats other workers' transactions may hold the port for
    (:attr:`queued_beats`: their largest transactions at one byte per beat, the narrowest size)."""

    def __init__(self, master, dut, params):
        self.master, self.clock = master, dut.clk
        self.word = params.get("data_width", 64) // 8
        self.stall = params.get("stall", 0) / 256
        self.latency = params.get("latency_max", 0)
        self.queued_beats = 0

    def _limit(self, length: int, size: int | None) -> int:
        beats = -(-length // (self.word if size is None else 1 << size)) + 1 + self.queued_beats
        bursts = beats // 256 + 2
        return cycle_limit(stalled(beats, self.stall, self.stall), latency=bursts * (self.latency + AXI_ROUND_TRIP))

    async def read(self, address, length, **options):
        return await within(self.master.read(address, length, **options), clock=self.clock,
                            cycles=self._limit(length, options.get("size")),
                            what=f"AXI read of {length} bytes at {address:#x}")

    async def write(self, address, data, **options):
        return await within(self.master.write(address, data, **options), clock=self.clock,
                            cycles=self._limit(len(data), options.get("size")),
                            what=f"AXI write of {len(data)} bytes at {address:#x}")


async def _setup(dut):
    params = tb_params()
    start_clock(dut)
    master = _BoundedMaster(AxiMaster(AxiBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst), dut, params)
    dut.backdoor_load.value = 0
    dut.backdoor_dump.value = 0
    dut.backdoor_first.value = 0
    dut.backdoor_last.value = 0
    await reset(dut)
    return params, master


@cocotb.test()
async def random_bursts_against_shadow_memory(dut):
    params, master = await _setup(dut)
    random = rng("dram_model")
    size = params["size_bytes"]
    word = params["data_width"] // 8
    id_limit = 1 << params["id_width"]
    monitor = AxiMonitor(dut, dut.clk, prefix="s_axi_", cover=False)
    shadow = bytearray(size)
    workers = params["workers"]
    region = size // workers
    master.queued_beats = (workers - 1) * min(region, 256 * word * 2)

    async def worker(index):
        base = index * region
        for _ in range(params["operations"]):
            length = int(random.integers(1, min(region, 256 * word * 2)))
            offset = int(random.integers(0, region - length + 1))
            address = base + offset
            burst_size = int(random.integers(0, word.bit_length())) if random.random() < 0.3 else None
            if random.random() < 0.5:
                data = random.bytes(length)
                response = await master.write(address, data, awid=int(random.integers(0, id_limit)),
                                              size=burst_size)
                assert response.resp == AxiResp.OKAY
                shadow[address : address + length] = data
            else:
                response = await master.read(address, length, arid=int(random.integers(0, id_limit)),
                                             size=burst_size)
                assert response.resp == AxiResp.OKAY
                assert response.data == shadow[address : address + length], (
                    f"read of {length} bytes at {address:#x} (size {burst_size}) differs from the shadow")

    tasks = [cocotb.start_soon(worker(index)) for index in range(workers)]
    for task in tasks:
        await task
    # The whole memory, in big bursts.
    for address in range(0, size, 16 * 1024):
        data = await master.read(address, min(16 * 1024, size - address))
        assert data.data == shadow[address : address + len(data.data)], f"final image differs near {address:#x}"
    # Beyond the memory: DECERR, nothing written anywhere.
    if size + 4096 <= 1 << params["address_width"]:
        response = await master.read(size, 2 * word)
        assert response.resp == AxiResp.DECERR
        response = await master.write(size, bytes(2 * word))
        assert response.resp == AxiResp.DECERR
        assert (await master.read(0, word)).data == shadow[:word]
    # The monitor's size and 4 KiB checks assume the DMA's full-width aligned bursts; AxiMaster issues narrow and
    # unaligned ones legally, so only its RLAST/ordering findings concern the model.
    framing = [error for error in monitor.errors if "RLAST" in error or "no outstanding" in error]
    assert not framing, framing[:10]
    assert monitor.peak_read_outstanding > 1 or monitor.peak_write_outstanding > 1, "no transactions overlapped"


async def _trace(dut, master, samples):
    """Single-beat reads one at a time: (AR-to-first-R delay per burst, cycles ARREADY was low, cycles)."""
    delays = []
    low = 0
    cycles = 0
    issued_at = None
    done = False

    async def watch():
        nonlocal low, cycles, issued_at
        cycle = 0
        while not done:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycle += 1
            cycles += 1
            low += int(dut.s_axi_arready.value) == 0
            if int(dut.s_axi_arvalid.value) and int(dut.s_axi_arready.value):
                issued_at = cycle
            if int(dut.s_axi_rvalid.value) and int(dut.s_axi_rready.value):
                delays.append(cycle - issued_at)

    task = cocotb.start_soon(watch())
    for index in range(samples):
        await master.read(8 * (index % 64), 1)
    done = True
    await ClockCycles(dut.clk, 2)
    task.cancel()
    return delays, low, cycles


@cocotb.test()
async def latency_and_stalls_are_random_in_range_and_reproducible(dut):
    params, master = await _setup(dut)
    low_latency, high_latency = params["latency_min"], params["latency_max"]
    stall = params["stall"]
    delays, low, cycles = await _trace(dut, master, params["samples"])
    if stall == 0:
        # Without R stalls the first beat comes exactly 1 + latency cycles after the AR handshake.
        assert min(delays) >= 1 + low_latency and max(delays) <= 1 + high_latency, (min(delays), max(delays))
        span = high_latency - low_latency + 1
        assert len(set(delays)) >= 0.8 * span, f"latencies cover only {sorted(set(delays))}"
        mean = sum(delays) / len(delays) - 1
        assert abs(mean - (low_latency + high_latency) / 2) < 0.15 * span, mean
    else:
        assert min(delays) >= 1 + low_latency
        rate = low / cycles
        expected = stall / 256
        assert abs(rate - expected) < 0.05, f"ARREADY low {rate:.3f} of cycles, expected {expected:.3f}"
    # The same seed after a reset gives the same trace.
    await reset(dut)
    again = await _trace(dut, master, params["samples"])
    assert again == (delays, low, cycles), "the trace changed after a reset with the same seed"
    with open("trace.json", "w") as handle:
        json.dump({"delays": delays, "low": low, "cycles": cycles}, handle)


@cocotb.test()
async def backdoor_load_then_axi_read_and_axi_write_then_dump(dut):
    params, master = await _setup(dut)
    random = rng("backdoor")
    word = params["data_width"] // 8
    memory = BackdoorMemory(dut, clock=dut.clk, data_width=params["data_width"])
    size = params["size_bytes"]
    # Backdoor writes (one aligned block, one unaligned block with partial words), then AXI reads.
    blocks = {0x100: random.bytes(4096), size - 3 * word - 3: random.bytes(2 * word + 1)}
    for address, data in blocks.items():
        await memory.write_block(address, data)
    await memory.flush()
    for address, data in blocks.items():
        assert (await master.read(address, len(data))).data == data, f"backdoor load at {address:#x}"
    assert (await master.read(size - word - 2, 2)).data == bytes(2), "bytes beyond a partial block changed"
    # AXI writes, then a backdoor dump.
    written = {0x3000 + 5: random.bytes(3000), 0x9000: random.bytes(16 * word)}
    for address, data in written.items():
        await master.write(address, data)
    for address, data in written.items():
        assert await memory.read_block(address, len(data)) == data, f"backdoor dump at {address:#x}"
    # A dump across a block's edges keeps the neighbours.
    assert await memory.read_block(0x100 - word, word) == bytes(word)
    # +dram_init: the words the pytest side wrote before the simulation started.
    for address, hex_value in params.get("init", {}).items():
        value = int(hex_value, 16)
        assert (await master.read(int(address), word)).data == value.to_bytes(word, "little")


@cocotb.test()
async def page_crossing_burst_stops_the_simulation(dut):
    """Drive one INCR read burst across 4 KiB by hand (AxiMaster never would); the model must stop the run."""
    params, _master = await _setup(dut)
    word = params["data_width"] // 8
    dut.s_axi_araddr.value = 4096 - word
    dut.s_axi_arlen.value = 1
    dut.s_axi_arsize.value = word.bit_length() - 1
    dut.s_axi_arburst.value = 1
    dut.s_axi_arid.value = 0
    dut.s_axi_arvalid.value = 1
    await ClockCycles(dut.clk, 20)
    raise AssertionError("the simulation went on after a page-crossing burst")
