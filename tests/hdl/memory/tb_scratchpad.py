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
from wavecore.verif.stream import StreamDriver, StreamSink, reset, start_clock


async def _acquire(dut, side: str) -> int:
    getattr(dut, f"{side}_acquire").value = 1
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(getattr(dut, f"{side}_owned").value):
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
    written: list = []
    regions_filled: list[int] = []

    async def producer():
        for _ in range(tiles):
            region = await _acquire(dut, "fill")
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
                await writer.wait_idle()
            for _ in range(int(random.integers(0, 4))):
                await RisingEdge(dut.clk)
            await _release(dut, "fill")

    async def consumer():
        for index in range(tiles):
            region = await _acquire(dut, "drain")
            assert region == regions_filled[index], (
                f"tile {index}: drained region {region}, filled {regions_filled[index]}"
            )
            orders = [random.permutation(region_depth) for _ in range(banks)]
            for bank in range(banks):
                requests[bank].extend(int(address) for address in orders[bank])
            for bank in range(banks):
                words = await responses[bank].receive_many(region_depth, timeout_cycles=200 * region_depth)
                expected = [int(written[index][bank, address]) for address in orders[bank]]
                assert words == expected, f"tile {index} bank {bank}: read back differs from what was written"
            for _ in range(int(random.integers(0, 4))):
                await RisingEdge(dut.clk)
            await _release(dut, "drain")

    producing = cocotb.start_soon(producer())
    await consumer()
    await producing
    assert len(written) == tiles
