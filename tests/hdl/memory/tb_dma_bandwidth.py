"""cocotb bench for benchmarks/dma_bandwidth.py: sustained AXI data-bus utilisation of hdl/memory/dma.py.

One long 1-D descriptor per channel (read, write, or both at once) against a DRAM model with no stalls:
either :class:`wavecore.verif.axi.PipelinedAxiRam` (fixed latency, overlapping bursts) or cocotbext-axi's
``AxiRam``. The scratchpad side never stalls. Reports beats, cycles and the fraction of the bus used,
and checks the data (a bandwidth figure of a DMA that moves wrong data would be meaningless).
"""

import json

import cocotb
from cocotb.triggers import RisingEdge

from wavecore.hdl.memory.dma import Dma
from wavecore.verif.axi import AXI_ROUND_TRIP, DMA_BURST_FIELDS, AxiMonitor, PipelinedAxiRam, attach_axi_ram
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import StreamDriver, StreamSink, reset, start_clock
from wavecore.verif.waits import cycle_limit, wait_for


@cocotb.test()
async def bandwidth(dut):
    params = tb_params()
    dma = Dma(**params["dma"])
    beat = dma.beat_bytes
    words = params["words"]
    direction = params["direction"]
    random = rng("dma_bandwidth")
    start_clock(dut)
    dut.clear_counters.value = 0
    if params["ram"] == "pipelined":
        ram = PipelinedAxiRam(dut, dut.clk, latency=params["latency"])
        write_ram, read_ram = ram.write_bytes, ram.read_bytes
    else:
        ram = attach_axi_ram(dut, clock=dut.clk, reset=dut.rst, rng=random, size=1 << 22)
        write_ram, read_ram = ram.write, ram.read
    monitor = AxiMonitor(dut, dut.clk, max_outstanding=dma.max_outstanding, max_burst=dma.max_burst,
                         fields=DMA_BURST_FIELDS)
    read_commands = StreamDriver(dut, "read_command", dut.clk)
    write_commands = StreamDriver(dut, "write_command", dut.clk)
    scratch_writes = StreamSink(dut, "read_data", dut.clk)
    fetches = StreamSink(dut, "write_fetch", dut.clk)
    fetched = StreamDriver(dut, "write_fetched", dut.clk)
    await reset(dut)

    source = random.bytes(words * beat)
    write_ram(0, source)
    scratch_image = [int.from_bytes(random.bytes(beat), "little") for _ in range(words)]

    cocotb.start_soon(fetches.serve(lambda address: fetched.append(scratch_image[address])))
    await RisingEdge(dut.clk)
    start = monitor.cycle
    destination = 1 << 21
    if direction in ("read", "both"):
        read_commands.append(dma.pack_descriptor(address=0, length=words, count1=1, count2=1, scratch=0))
    if direction in ("write", "both"):
        write_commands.append(
            dma.pack_descriptor(address=destination, length=words, count1=1, count2=1, scratch=0)
        )
    # both channels share the bus clock: at most words beats each; one latency per burst if nothing overlaps
    bursts = -(-words // dma.max_burst) + words * beat // 4096 + 1
    latency = bursts * (params.get("latency", 0) + AXI_ROUND_TRIP)
    await wait_for(
        lambda: int(dut.read_idle.value) and int(dut.write_idle.value) and read_commands.idle and write_commands.idle,
        clock=dut.clk, cycles=cycle_limit(2 * words, latency=latency), settle=True,
        what=f"{direction} transfer of {words} words",
        progress=lambda: f"{monitor.read_beats} R / {monitor.write_beats} W beats",
    )
    end = monitor.cycle
    monitor.check()

    if direction in ("read", "both"):
        received = list(scratch_writes.received)
        got = [word >> dma.scratch_width for word in received]
        want = [int.from_bytes(source[i * beat : (i + 1) * beat], "little") for i in range(words)]
        assert got == want, "read data differ"
    if direction in ("write", "both"):
        written = read_ram(destination, words * beat)
        assert written == b"".join(word.to_bytes(beat, "little") for word in scratch_image), (
            "written data differ"
        )
    beats = monitor.read_beats + monitor.write_beats
    channels = 2 if direction == "both" else 1
    steady = monitor.last_beat_cycle - monitor.first_beat_cycle + 1
    result = {
        "beats": beats,
        "cycles_total": end - start,
        "cycles_first_to_last_beat": steady,
        "bus_fraction_steady": beats / (channels * steady),
        "bus_fraction_total": beats / (channels * (end - start)),
        "peak_read_outstanding": monitor.peak_read_outstanding,
        "peak_write_outstanding": monitor.peak_write_outstanding,
    }
    dut._log.info("bandwidth result %s", result)
    with open(params["result_file"], "w") as handle:
        json.dump(result, handle)
