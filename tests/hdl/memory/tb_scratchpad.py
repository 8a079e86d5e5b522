"""cocotb testbench for hdl/memory/scratchpad.py: a producer and a consumer share the ping-pong regions.

The producer fills tiles as fast as the controller lets it (always requesting the next region) with
writes in random order under random valid gaps; the consumer drains them with reads in random order under
random backpressure. The model is a plain Python list of the tiles written: every tile must come back
exactly once, in order, with every word intact, which fails if a region were read while being filled or
overwritten before it was drained.
"""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import DEFAULT_LATENCY, StreamDriver, StreamSink, reset, start_clock
from wavecore.verif.waits import cycle_limit, stalled, wait_for


async def _acquire(dut, side: str, cycles: int) -> int:
    """Request a region for ``side`` and wait at most ``cycles`` for it to be owned; returns its index."""
    getattr(dut, f"{side}_acquire").value = 1
    await RisingEdge(dut.clk)
    await wait_for(lambda: int(getattr(dut, f"{side}_owned").value), clock=dut.clk, cycles=cycles, settle=True,
                   what=f"scratchpad region owned by {side}")
    region = int(getattr(dut, f"{side}_region").value)
    await RisingEdge(dut.clk)
    getattr(dut, f"{side}_acquire").value = 0
    return region


async def _release(dut, side: str) -> None:
    getattr(dut, f"{side}_release").value = 1
    await RisingEdge(dut.clk)
    getattr(dut, f"{side}_release").value = 0


@cocotb.test()
async def producer_consumer_tiles(dut):
    params = tb_params()
    banks, region_depth, width = params["banks"], params["region_depth"], params["width"]
    address_bits, tiles = params["address_bits"], params["tiles"]
    random = rng("scratchpad")
    start_clock(dut)
    for name in ("fill_acquire", "fill_release", "drain_acquire", "drain_release"):
        getattr(dut, name).value = 0
    writers = [
        StreamDriver(dut, f"write__{bank}", dut.clk, idle_probability=params["idle"], rng=random)
        for bank in range(banks)
    ]
    requests = [
        StreamDriver(dut, f"read_address__{bank}", dut.clk, idle_probability=params["idle"], rng=random)
        for bank in range(banks)
    ]
    responses = [
        StreamSink(
            dut, f"read_data__{bank}", dut.clk, backpressure_probability=params["backpressure"], rng=random
        )
        for bank in range(banks)
    ]
    await reset(dut)
    # a region frees once the other side has moved a whole region (each bank in parallel, at the stall rates);
    # every side waits at most two such regions (the one in flight and the one before it)
    region_cycles = cycle_limit(stalled(2 * region_depth, params["idle"], params["backpressure"]),
                                latency=DEFAULT_LATENCY)
    written: list = []
    regions_filled: list[int] = []

    async def producer():
        for _ in range(tiles):
            region = await _acquire(dut, "fill", region_cycles)
            regions_filled.append(region)
            tile = random.integers(0, 1 << width, size=(banks, region_depth))
            written.append(tile)
            for bank in range(banks):
                order = random.permutation(region_depth)
                # StructLayout({"address", "data"}): address in the low bits.
                writers[bank].extend(
                    int(address) | (int(tile[bank, address]) << address_bits) for address in order
                )
            for writer in writers:
                await writer.wait_idle(cycles=region_cycles)
            for _ in range(int(random.integers(0, 4))):
                await RisingEdge(dut.clk)
            await _release(dut, "fill")

    async def consumer():
        for index in range(tiles):
            region = await _acquire(dut, "drain", region_cycles)
            assert region == regions_filled[index], (
                f"tile {index}: drained region {region}, filled {regions_filled[index]}"
            )
            orders = [random.permutation(region_depth) for _ in range(banks)]
            for bank in range(banks):
                requests[bank].extend(int(address) for address in orders[bank])
            for bank in range(banks):
                words = await responses[bank].receive_many(region_depth, timeout_cycles=region_cycles)
                expected = [int(written[index][bank, address]) for address in orders[bank]]
                assert words == expected, f"tile {index} bank {bank}: read back differs from what was written"
            for _ in range(int(random.integers(0, 4))):
                await RisingEdge(dut.clk)
            await _release(dut, "drain")

    errors: list[str] = []

    async def filled_monitor():
        # `filled` (documented: regions full or being drained) = regions released by the filler and not yet by
        # the drainer, one cycle after each release (the region state is registered)
        full = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.filled.value) != full and not errors:
                errors.append(f"filled = {int(dut.filled.value)}, {full} regions are full or draining")
            full += int(dut.fill_release.value) & int(dut.fill_owned.value)
            full -= int(dut.drain_release.value) & int(dut.drain_owned.value)

    monitor = cocotb.start_soon(filled_monitor())
    producing = cocotb.start_soon(producer())
    await consumer()
    await producing
    monitor.cancel()
    assert len(written) == tiles
    assert not errors, errors[0]
