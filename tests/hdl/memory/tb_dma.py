"""cocotb testbench for hdl/memory/dma.py against cocotbext-axi's AxiRam (random stalls and latency).

Random 1-D/2-D/3-D descriptors (some straddling 4 KiB pages, some empty) run on both channels at once.
The model walks each descriptor box word by word in Python; the checks are

* every scratchpad write of the read channel carries the DRAM word the box walk predicts;
* DRAM after the write channel equals the initial image with each box overwritten from the scratchpad
  image (nothing else touched);
* the bursts on AR/AW equal :func:`wavecore.verif.axi.descriptor_bursts` (greedy split at max_burst and 4 KiB);
* the DMA's byte counters equal the bytes the AXI monitor saw and the bytes ``golden.plan.traffic.transfer_bytes``
  predicts for each descriptor's box (which :func:`wavecore.verif.axi.descriptor_bytes` must agree with);
* the monitor saw no 4 KiB crossing and never more than ``max_outstanding`` bursts in flight.
"""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from wavecore.golden.plan.traffic import transfer_bytes
from wavecore.hdl.memory.dma import Dma
from wavecore.verif.axi import (
    AXI_ROUND_TRIP,
    DMA_BURST_FIELDS,
    AxiMonitor,
    attach_axi_ram,
    descriptor_bursts,
    descriptor_bytes,
)
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamDriver, StreamSink, reset, start_clock
from wavecore.verif.waits import WaitTimeout, cycle_limit, stalled, wait_for

_SLOT = 1 << 16  # each descriptor's box lives in its own 64 KiB slot of DRAM
_RAM_SIZE = 1 << 21  # 16 read slots + 16 write slots


def _random_descriptor(random, beat_bytes: int, slot: int, scratch: int) -> dict:
    length = int(random.integers(1, 70))
    count1 = int(random.integers(1, 4))
    count2 = int(random.integers(1, 3))
    stride1 = (length + int(random.integers(0, 20))) * beat_bytes
    stride2 = count1 * stride1 + int(random.integers(0, 5)) * beat_bytes
    if random.random() < 0.5:  # start just below a page boundary so bursts must split there
        offset = 4096 * int(random.integers(1, 4)) - int(random.integers(1, 8)) * beat_bytes
    else:
        offset = int(random.integers(0, 4096 // beat_bytes)) * beat_bytes
    if random.random() < 0.1:
        count1 = 0  # an empty descriptor moves nothing
    return {
        "address": slot * _SLOT + offset,
        "length": length,
        "count1": count1,
        "stride1": stride1,
        "count2": count2,
        "stride2": stride2,
        "scratch": scratch,
    }


def _box_addresses(descriptor: dict, beat_bytes: int) -> list[int]:
    """Byte address of every word of the box, in transfer order (plane, row, word)."""
    if 0 in (descriptor["length"], descriptor["count1"], descriptor["count2"]):
        return []
    return [
        descriptor["address"]
        + plane * descriptor["stride2"]
        + row * descriptor["stride1"]
        + word * beat_bytes
        for plane in range(descriptor["count2"])
        for row in range(descriptor["count1"])
        for word in range(descriptor["length"])
    ]


def dma_cycle_limit(dma: Dma, descriptors: list[dict], params: dict) -> int:
    """The cycle limit of moving ``descriptors`` (both channels): their bus words at the stall rates of the AXI
    model, the command drivers and the scratchpad sinks, plus each burst's latency bound (``max_latency`` of the
    model and an AXI round trip), through :func:`wavecore.verif.waits.cycle_limit`."""
    words = sum(len(_box_addresses(descriptor, dma.beat_bytes)) for descriptor in descriptors)
    bursts = sum(
        len(descriptor_bursts(**{k: v for k, v in d.items() if k != "scratch"}, beat_bytes=dma.beat_bytes,
                              max_burst=dma.max_burst))
        for d in descriptors
    )
    expected = stalled(words + len(descriptors), params["stall"], params["idle"], params["backpressure"])
    return cycle_limit(expected, latency=bursts * (params["max_latency"] + AXI_ROUND_TRIP))


@cocotb.test()
async def concurrent_descriptors_against_axi_ram(dut):
    params = tb_params()
    dma = Dma(**params["dma"])
    beat = dma.beat_bytes
    random = rng("dma")
    start_clock(dut)
    dut.clear_counters.value = 0
    ram = attach_axi_ram(
        dut,
        clock=dut.clk,
        reset=dut.rst,
        rng=random,
        size=_RAM_SIZE,
        stall_probability=params["stall"],
        max_latency=params["max_latency"],
    )
    monitor = AxiMonitor(dut, dut.clk, max_outstanding=dma.max_outstanding, max_burst=dma.max_burst,
                         idle={"read": "read_idle", "write": "write_idle"}, fields=DMA_BURST_FIELDS)
    read_commands = StreamDriver(dut, "read_command", dut.clk, idle_probability=params["idle"], rng=random)
    write_commands = StreamDriver(dut, "write_command", dut.clk, idle_probability=params["idle"], rng=random)
    scratch_writes = StreamSink(
        dut, "read_data", dut.clk, backpressure_probability=params["backpressure"], rng=random
    )
    fetches = StreamSink(
        dut, "write_fetch", dut.clk, backpressure_probability=params["backpressure"], rng=random
    )
    fetched = StreamDriver(dut, "write_fetched", dut.clk, idle_probability=params["idle"], rng=random)
    await reset(dut)

    image = bytearray(random.integers(0, 256, size=_RAM_SIZE, dtype="uint8").tobytes())
    ram.write(0, bytes(image))
    scratch_words = 1 << dma.scratch_width
    scratch_image = [int.from_bytes(random.bytes(beat), "little") for _ in range(scratch_words)]

    count = params["descriptors"]
    reads, writes = [], []
    read_scratch, write_scratch = 0, scratch_words // 2
    for index in range(count):
        reads.append(_random_descriptor(random, beat, index, read_scratch))
        read_scratch += len(_box_addresses(reads[-1], beat))
        writes.append(_random_descriptor(random, beat, 16 + index, write_scratch))
        write_scratch += len(_box_addresses(writes[-1], beat))
    assert read_scratch <= scratch_words // 2 and write_scratch <= scratch_words, "scratch too small for test"

    expected_scratch = {}
    for descriptor in reads:
        for offset, address in enumerate(_box_addresses(descriptor, beat)):
            expected_scratch[descriptor["scratch"] + offset] = int.from_bytes(
                image[address : address + beat], "little"
            )
    expected_image = bytearray(image)
    for descriptor in writes:
        for offset, address in enumerate(_box_addresses(descriptor, beat)):
            expected_image[address : address + beat] = scratch_image[descriptor["scratch"] + offset].to_bytes(
                beat, "little"
            )

    # The scratchpad side of the write channel: answer each fetch with its word, in order.
    cocotb.start_soon(fetches.serve(lambda address: fetched.append(scratch_image[address])))
    read_commands.extend(dma.pack_descriptor(**descriptor) for descriptor in reads)
    write_commands.extend(dma.pack_descriptor(**descriptor) for descriptor in writes)

    address_bits = dma.scratch_width
    limit = dma_cycle_limit(dma, reads + writes, params)
    received = await scratch_writes.receive_many(len(expected_scratch), timeout_cycles=limit)
    got = [(word & ((1 << address_bits) - 1), word >> address_bits) for word in received]
    want = [(address, expected_scratch[address]) for address in sorted(expected_scratch)]
    assert got == want, (
        "scratchpad writes differ from the box walk; first at "
        f"{next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)}"
    )

    await read_commands.wait_idle(cycles=limit)
    await write_commands.wait_idle(cycles=limit)
    await wait_for(lambda: int(dut.read_idle.value) and int(dut.write_idle.value), clock=dut.clk, cycles=limit,
                   what="DMA read_idle and write_idle after the last descriptor", settle=True,
                   progress=lambda: f"{monitor.write_beats} W beats, {monitor.read_beats} R beats seen")
    await RisingEdge(dut.clk)
    await ReadOnly()

    monitor.check()
    expected_reads = [
        burst
        for descriptor in reads
        for burst in descriptor_bursts(
            **{k: v for k, v in descriptor.items() if k != "scratch"},
            beat_bytes=beat,
            max_burst=dma.max_burst,
        )
    ]
    expected_writes = [
        burst
        for descriptor in writes
        for burst in descriptor_bursts(
            **{k: v for k, v in descriptor.items() if k != "scratch"},
            beat_bytes=beat,
            max_burst=dma.max_burst,
        )
    ]
    assert monitor.read_bursts == expected_reads, "AR bursts differ from the reference split"
    assert monitor.write_bursts == expected_writes, "AW bursts differ from the reference split"
    # wavecore.golden.plan.traffic's per-transfer bytes of each descriptor's box (count2 x count1 x length bus words).
    predicted_read = sum(transfer_bytes((d["count2"], d["count1"], d["length"]), beat) for d in reads)
    predicted_written = sum(transfer_bytes((d["count2"], d["count1"], d["length"]), beat) for d in writes)
    assert predicted_read == sum(descriptor_bytes(**d, beat_bytes=beat) for d in reads)
    assert predicted_written == sum(descriptor_bytes(**d, beat_bytes=beat) for d in writes)
    assert int(dut.bytes_read.value) == monitor.bytes_read == predicted_read, (
        f"bytes read: counter {int(dut.bytes_read.value)}, monitor {monitor.bytes_read}, "
        f"predicted {predicted_read}"
    )
    assert int(dut.bytes_written.value) == monitor.bytes_written == predicted_written, (
        f"bytes written: counter {int(dut.bytes_written.value)}, monitor {monitor.bytes_written}, "
        f"predicted {predicted_written}"
    )
    final = ram.read(0, _RAM_SIZE)
    assert final == bytes(expected_image), "DRAM after the write channel differs from the model"
    dut._log.info(
        "peak outstanding: read %d, write %d (limit %d)",
        monitor.peak_read_outstanding,
        monitor.peak_write_outstanding,
        dma.max_outstanding,
    )

    await RisingEdge(dut.clk)
    dut.clear_counters.value = 1
    await RisingEdge(dut.clk)
    dut.clear_counters.value = 0
    await ReadOnly()
    assert int(dut.bytes_read.value) == 0 and int(dut.bytes_written.value) == 0, (
        "clear_counters did not clear"
    )


@cocotb.test()
async def silent_subordinate_fails_within_the_limit(dut):
    """An AXI subordinate that never answers (every ready and valid low): the waits for the read channel's
    scratchpad writes and for the write channel to go idle each end after their derived limit, naming what they
    awaited, instead of hanging the simulation."""
    params = tb_params()
    dma = Dma(**params["dma"])
    start_clock(dut)
    dut.clear_counters.value = 0
    for name in ("awready", "wready", "arready", "rvalid", "bvalid", "rlast", "rdata", "rresp", "bresp", "rid",
                 "bid"):
        getattr(dut, f"axi__{name}").value = 0
    read_commands = StreamDriver(dut, "read_command", dut.clk)
    write_commands = StreamDriver(dut, "write_command", dut.clk)
    scratch_writes = StreamSink(dut, "read_data", dut.clk)
    fetches = StreamSink(dut, "write_fetch", dut.clk)
    fetched = StreamDriver(dut, "write_fetched", dut.clk)
    cocotb.start_soon(fetches.serve(lambda address: fetched.append(address)))
    await reset(dut)
    read = {"address": 0xFF0, "length": 40, "count1": 1, "stride1": 0, "count2": 1, "stride2": 0, "scratch": 0}
    write = {**read, "address": 0x10000}
    read_commands.append(dma.pack_descriptor(**read))
    write_commands.append(dma.pack_descriptor(**write))
    limit = dma_cycle_limit(dma, [read], params)
    start = scratch_writes.cycle
    try:
        await scratch_writes.receive_many(40, timeout_cycles=limit)
    except WaitTimeout as timeout:
        assert str(timeout) == f"stream read_data: 40 payloads: not reached within {limit} cycles (0 arrived)"
    else:
        raise AssertionError("scratchpad writes arrived though the subordinate never answered")
    assert scratch_writes.cycle - start == limit
    try:
        await wait_for(lambda: int(dut.write_idle.value), clock=dut.clk, cycles=limit, settle=True,
                       what="DMA write_idle")
    except WaitTimeout as timeout:
        assert str(timeout) == f"DMA write_idle: not reached within {limit} cycles"
    else:
        raise AssertionError("the write channel went idle though AW was never accepted")
    dut._log.info("silent subordinate: each wait gave up after %d cycles", limit)
