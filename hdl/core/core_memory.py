"""One on-chip memory of the WaveCore (scratchpad or accumulator) built from 1-write/1-read block RAMs.

The core's memories have more ports than an FPGA block RAM: the compute units' ``readers`` element read ports
and one element write port (through :class:`wavecore.hdl.core.compute_unit.ElementPorts`), plus the DMA's word
write (LOAD, from the row packer) and word read (STORE, into the row unpacker). An ECP5 ``DP16KD`` has two
ports, so this memory keeps ``readers`` copies (replicas) of the words, each a simple dual-port RAM with one
write port and one read port, which Yosys maps onto block RAM:

* **Writes** go to every replica. A compute write has priority; the DMA write is taken (``dma_write_ready``)
  in a cycle without a compute write.
* **Reads.** Compute read port ``k`` reads replica ``k``. The DMA read uses the first replica whose compute
  port is idle in that cycle (``dma_read_ready``); it waits while every compute port reads.
* A compute read port's ``data`` holds the last word it read while its ``en`` is low (a register keeps it), as
  the element-port interface requires. The block RAMs themselves read in every cycle (no read enable): a read
  enable built from the DMA's handshake would fan out to every block RAM's clock enable and to the bypass
  registers Yosys adds to give a read the old word when it meets a write to the same address.

So the compute units see the same timing as on a memory with enough ports (a read returns the word one cycle
later and sees every write of an earlier cycle); only the DMA waits, which the DMA's stream handshakes absorb
(the LOAD's write buffer and the unpacker's read enable in :class:`wavecore.hdl.core.wavecore.WaveCore`).

Ports (``word_bits`` wide words, ``lanes = word_bits // element_bits`` write enables, one per element):
``read{k}_addr``/``read{k}_en`` -> ``read{k}_data``, ``write_addr``/``write_en``/``write_data`` (compute);
``dma_write_valid``/``dma_write_addr``/``dma_write_en``/``dma_write_data`` -> ``dma_write_ready``;
``dma_read_en``/``dma_read_addr`` -> ``dma_read_ready`` (the read happens when both are high) and
``dma_read_data`` ``dma_read_latency`` cycles later (1 or 2; valid in that cycle only).

With ``dma_read_latency=2`` each replica's read word is registered for the DMA before the replica
multiplexer (the registers can sit beside the block RAMs, whose outputs are unregistered and slow), so
``dma_read_data`` comes from registers through the replica multiplexer only: the path from a block RAM to the
DMA's consumer (the row unpacker, across the chip) is cut in two. The compute ports' timing is the same either
way.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int

__all__ = ["CoreMemory"]


class CoreMemory(wiring.Component):
    """A word memory with ``readers`` compute read ports, a compute write port and a DMA read and write port.

    Parameters
    ----------
    word_bits : int
        Bits of one word.
    element_bits : int
        Bits of one element (the write granularity); divides ``word_bits``.
    depth : int
        Words.
    readers : int
        Compute read ports (1 to 4); one block-RAM replica each.
    dma_read_latency : int
        Cycles from a DMA read to its word on ``dma_read_data``: 1, or 2 with the word registered beside the
        block RAMs (see the module docstring).
    """

    def __init__(self, *, word_bits: int, element_bits: int, depth: int, readers: int,
                 dma_read_latency: int = 1):
        self.word_bits = check_int("word_bits", word_bits, 1, 4096)
        if element_bits < 1 or word_bits % element_bits:
            raise ValueError(f"element_bits must divide word_bits {word_bits}, not {element_bits}")
        self.element_bits = element_bits
        self.lanes = word_bits // element_bits
        self.depth = check_int("depth", depth, 1, 1 << 24)
        self.readers = check_int("readers", readers, 1, 4)
        if dma_read_latency not in (1, 2) or isinstance(dma_read_latency, bool):
            raise ValueError(f"dma_read_latency must be 1 or 2, not {dma_read_latency!r}")
        self.dma_read_latency = dma_read_latency
        address = max(1, (depth - 1).bit_length())
        members = {}
        for k in range(readers):
            members.update({f"read{k}_addr": In(address), f"read{k}_en": In(1), f"read{k}_data": Out(word_bits)})
        members.update({"write_addr": In(address), "write_en": In(self.lanes), "write_data": In(word_bits),
                        "dma_write_valid": In(1), "dma_write_addr": In(address), "dma_write_en": In(self.lanes),
                        "dma_write_data": In(word_bits), "dma_write_ready": Out(1),
                        "dma_read_en": In(1), "dma_read_addr": In(address), "dma_read_ready": Out(1),
                        "dma_read_data": Out(word_bits)})
        super().__init__(members)

    def compute_ports(self):
        """``(read_ports, write_port)``: objects with the ``addr``/``en``/``data`` of the compute side, the form
        :meth:`wavecore.hdl.core.compute_unit.ElementPorts.attach` takes."""
        reads = [SimpleNamespace(addr=getattr(self, f"read{k}_addr"), en=getattr(self, f"read{k}_en"),
                                 data=getattr(self, f"read{k}_data")) for k in range(self.readers)]
        return reads, SimpleNamespace(addr=self.write_addr, en=self.write_en, data=self.write_data)

    def elaborate(self, platform):
        m = Module()
        compute_writing = self.write_en.any()
        m.d.comb += self.dma_write_ready.eq(~compute_writing)
        write_addr = Mux(compute_writing, self.write_addr, self.dma_write_addr)
        write_data = Mux(compute_writing, self.write_data, self.dma_write_data)
        write_en = Mux(compute_writing, self.write_en, Mux(self.dma_write_valid, self.dma_write_en, 0))

        # The DMA read takes the first replica whose compute port is idle.
        compute_en = [getattr(self, f"read{k}_en") for k in range(self.readers)]
        choice = Signal(range(max(self.readers, 2)), name="dma_replica")  # never 0 bits wide (Verilator)
        for k in reversed(range(self.readers)):
            with m.If(~compute_en[k]):
                m.d.comb += choice.eq(k)
        free = Signal()
        m.d.comb += free.eq(~all_of(compute_en))
        m.d.comb += self.dma_read_ready.eq(free)
        dma_reading = self.dma_read_en & free
        last_choice = Signal.like(choice)
        with m.If(dma_reading):
            m.d.sync += last_choice.eq(choice)

        dma_data = []
        for k in range(self.readers):
            memory = Memory(shape=self.word_bits, depth=self.depth, init=[])
            m.submodules[f"replica{k}"] = memory
            write = memory.write_port(granularity=self.element_bits)
            read = memory.read_port()
            m.d.comb += [write.addr.eq(write_addr), write.data.eq(write_data), write.en.eq(write_en)]
            # the read port reads in every cycle (its enable left at 1): the word a compute port or the DMA reads
            # is the next cycle's read.data either way, and an enable from the DMA's handshake would reach the
            # clock enables of every block RAM and of Yosys's read-first bypass registers (the 8x8 core's critical
            # path, 22.8 ns, before)
            m.d.comb += read.addr.eq(Mux(compute_en[k], getattr(self, f"read{k}_addr"), self.dma_read_addr))
            compute_last = Signal(name=f"read{k}_last")
            held = Signal(self.word_bits, name=f"read{k}_held")
            m.d.sync += compute_last.eq(compute_en[k])
            with m.If(compute_last):
                m.d.sync += held.eq(read.data)
            m.d.comb += getattr(self, f"read{k}_data").eq(Mux(compute_last, read.data, held))
            if self.dma_read_latency == 2:
                # registered in every cycle (no enable to fan out), beside this replica's block RAMs
                dma_word = Signal(self.word_bits, name=f"dma_word{k}")
                m.d.sync += dma_word.eq(read.data)
                dma_data.append(dma_word)
            else:
                dma_data.append(read.data)
        if self.dma_read_latency == 2:  # the replica the word on dma_word{k} was read from
            word_choice = Signal.like(choice, name="dma_word_replica")
            m.d.sync += word_choice.eq(last_choice)
        else:
            word_choice = last_choice
        selected = dma_data[0]
        for k in range(1, self.readers):
            selected = Mux(word_choice == k, dma_data[k], selected)
        m.d.comb += self.dma_read_data.eq(selected)
        return m


def all_of(values):
    """The AND of 1-bit values."""
    result = values[0]
    for value in values[1:]:
        result = result & value
    return result
