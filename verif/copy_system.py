"""A complete system around the DMA for system simulation: registers, DMA, scratchpad and the HDL DRAM model.

:class:`CopySystem` is the test vehicle of the core's integration surface before the core exists: everything a
WaveCore top has on its outside (the ``s_axil_*`` register block of :mod:`wavecore.hdl.core.register_block`,
the ``irq`` line, an AXI4 DMA to DRAM, the HDL DRAM model with its backdoor) around a one-instruction "copy
engine" in place of the core. A host (:class:`wavecore.verif.host.Host`) loads a *copy program* and data into
the DRAM model through the backdoor, programs ``PROGRAM_BASE``, writes START, and waits for ``irq``; Python
does nothing per cycle meanwhile, so the simulation runs at Verilator speed
(``benchmarks/core_system_speed.py``).

A copy program is one 32-byte record at ``PROGRAM_BASE`` (little-endian; *not* the core's instruction set):

=========  =====  ==========================================================================
bits       field  meaning
=========  =====  ==========================================================================
7:0        opcode 0x01 = COPY (anything else: ``ILLEGAL_OPCODE``)
15:8       class  traffic class index whose byte counters are charged (``ILLEGAL_FIELD`` if none)
31:16      chunk  bus words per chunk, 1 to ``scratch_words / 2`` (0: ``ILLEGAL_FIELD``; larger:
                  ``SCRATCHPAD_OUT_OF_RANGE``)
63:32      chunks number of chunks (0: ``ILLEGAL_FIELD``)
127:64     source DRAM byte address of the data (bus-word aligned)
191:128    dest   DRAM byte address of the copy (bus-word aligned)
=========  =====  ==========================================================================

The engine fetches the record through the DMA's read channel (``DRAM_OUT_OF_RANGE`` if it lies outside DRAM),
checks it, then copies ``chunk * chunks`` words double-buffered: chunk ``k`` is read into scratchpad half
``k % 2`` while chunk ``k - 1`` is written out of the other half, so both DMA channels run at once. Any
non-OKAY R or B response ends the program with ``AXI_READ_ERROR``/``AXI_WRITE_ERROR``. Counters: ``cycles``
(while busy), ``instructions`` (1 per completed program), ``bytes_read_<class>``/``bytes_written_<class>``
(R beats into the scratchpad and W beats of the copy); ``array_busy`` stays 0 (there is no array). The failing
instruction address of every error is ``PROGRAM_BASE``. A soft reset stops issuing descriptors and waits until
the DMA is idle.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from wavecore.golden.numerics import check_int
from wavecore.hdl.core.counters import CoreCounters
from wavecore.hdl.core.dram_model import DramModel, connect_backdoor, system_members
from wavecore.hdl.core.register_block import RegisterBlock
from wavecore.hdl.core.registers import CoreIdentity, ErrorCode, RegisterMap, default_register_map
from wavecore.hdl.memory.dma import Dma

__all__ = ["COPY_OPCODE", "PROGRAM_BYTES", "CopySystem", "copy_program"]

COPY_OPCODE = 0x01
PROGRAM_BYTES = 32


def copy_program(*, source: int, destination: int, chunk: int, chunks: int, traffic_class: int = 0,
                 opcode: int = COPY_OPCODE) -> bytes:
    """The 32-byte copy record (fields as in the module docstring; no range checks: the hardware makes them)."""
    word = (opcode & 0xFF) | (traffic_class & 0xFF) << 8 | (chunk & 0xFFFF) << 16 | (chunks & 0xFFFFFFFF) << 32
    word |= (source & (1 << 64) - 1) << 64 | (destination & (1 << 64) - 1) << 128
    return word.to_bytes(PROGRAM_BYTES, "little")


class CopySystem(wiring.Component):
    """Register block + copy engine + DMA + scratchpad + DRAM model (see the module docstring).

    Parameters
    ----------
    data_width : int
        DRAM bus width in bits (32 to 256, a power of two).
    dram_bytes : int
        Size of the DRAM model (and the range the engine checks addresses against).
    scratch_words : int
        Scratchpad words (a power of two, 4 to 65536); a chunk is at most half of it.
    max_burst, max_outstanding : int
        The DMA's burst length and bursts in flight per channel.
    dram_outstanding, seed, stall, latency_min, latency_max : int
        The DRAM model's parameters (see :class:`wavecore.hdl.core.dram_model.DramModel`).
    register_map : RegisterMap

    Attributes
    ----------
    s_axil : In(axi4_lite_signature(...)); irq : Out(1)
        The register port and the interrupt line.
    backdoor_load, backdoor_dump, backdoor_first, backdoor_last : In
        The DRAM model's backdoor.
    """

    def __init__(self, *, data_width: int = 64, dram_bytes: int = 1 << 20, scratch_words: int = 1024,
                 max_burst: int = 64, max_outstanding: int = 4, dram_outstanding: int = 8, seed: int = 1,
                 stall: int = 0, latency_min: int = 0, latency_max: int = 0,
                 register_map: RegisterMap | None = None):
        self.data_width = check_int("data_width", data_width, 32, 256)
        if data_width & (data_width - 1):
            raise ValueError(f"data_width must be a power of two between 32 and 256, not {data_width}")
        self.scratch_words = check_int("scratch_words", scratch_words, 4, 1 << 16)
        if scratch_words & (scratch_words - 1):
            raise ValueError(f"scratch_words must be a power of two between 4 and 65536, not {scratch_words}")
        self.register_map = default_register_map() if register_map is None else register_map
        self.word_bytes = data_width // 8
        self.dram = DramModel(address_width=32, data_width=data_width, size_bytes=dram_bytes,
                              outstanding=dram_outstanding, seed=seed, stall=stall, latency_min=latency_min,
                              latency_max=latency_max)
        self.dram_bytes = dram_bytes
        self.dma = Dma(address_width=32, data_width=data_width, max_burst=max_burst,
                       max_outstanding=max_outstanding, count_width=16,
                       scratch_width=(scratch_words - 1).bit_length(), counter_width=48)
        self.registers = RegisterBlock(
            register_map=self.register_map,
            identity=CoreIdentity(rows=1, cols=1, dram_data_width=data_width,
                                  scratchpad_kib=max(1, scratch_words * self.word_bytes // 1024)),
        )
        super().__init__(system_members(self.register_map.address_width))

    def elaborate(self, platform):
        m = Module()
        m.submodules.registers = registers = self.registers
        m.submodules.dma = dma = self.dma
        m.submodules.dram = dram = self.dram
        wiring.connect(m, wiring.flipped(self.s_axil), registers.s_axil)
        wiring.connect(m, dma.axi, dram.s_axi)
        m.d.comb += self.irq.eq(registers.irq)
        connect_backdoor(m, self, dram)
        core = registers.core
        regs = self.register_map
        word_bytes, word_shift = self.word_bytes, self.word_bytes.bit_length() - 1
        half = self.scratch_words // 2
        header_beats = PROGRAM_BYTES // word_bytes

        m.submodules.scratch = scratch = Memory(shape=self.data_width, depth=self.scratch_words, init=[])
        write_port = scratch.write_port()
        read_port = scratch.read_port()

        header = Signal(PROGRAM_BYTES * 8)
        header_count = Signal(range(header_beats + 1))
        opcode, traffic_class, chunk, chunks = header[0:8], header[8:16], header[16:32], header[32:64]
        source, destination = header[64:128], header[128:192]
        total_bytes = Signal(64)
        m.d.comb += total_bytes.eq((chunk * chunks) << word_shift)

        read_issued, write_issued = Signal(32), Signal(32)
        words_read, words_fetched = Signal(48), Signal(48)
        read_gate, write_gate = Signal(48), Signal(48)
        read_address, write_address = Signal(64), Signal(64)
        read_error, write_error = Signal(), Signal()
        copying = Signal()

        m.submodules.counters = counters = CoreCounters(register_map=regs, beat_bytes=word_bytes)
        wiring.connect(m, counters.counters, core.counters)

        # DMA read channel: header beats in FETCH, scratchpad writes in COPY (and while draining).
        m.d.comb += [
            dma.read_data.ready.eq(1),
            write_port.addr.eq(dma.read_data.payload.address),
            write_port.data.eq(dma.read_data.payload.data),
        ]
        # Write channel fetches through the synchronous read port; the port's enable holds its data while the
        # W channel stalls.
        fetched_valid = Signal()
        m.d.comb += [
            dma.write_fetch.ready.eq(~fetched_valid | dma.write_fetched.ready),
            read_port.en.eq(dma.write_fetch.ready),
            read_port.addr.eq(dma.write_fetch.payload),
            dma.write_fetched.valid.eq(fetched_valid),
            dma.write_fetched.payload.eq(read_port.data),
        ]
        with m.If(dma.write_fetch.ready):
            m.d.sync += fetched_valid.eq(dma.write_fetch.valid)
        with m.If(dma.write_fetch.valid & dma.write_fetch.ready):
            m.d.sync += words_fetched.eq(words_fetched + 1)

        axi = dma.axi
        with m.If(axi.rvalid & axi.rready & (axi.rresp != 0)):
            m.d.sync += read_error.eq(1)
        with m.If(axi.bvalid & axi.bready & (axi.bresp != 0)):
            m.d.sync += write_error.eq(1)
        error_code, check_code, finish_code = Signal(8), Signal(8), Signal(8)
        fetch_outside, copy_finished = Signal(), Signal()
        chunk_bytes = chunk << word_shift
        busy = Signal()
        m.d.comb += [
            core.busy.eq(busy),
            core.error_address.eq(core.program_base),
            core.error_code.eq(error_code),
            counters.clear.eq(core.clear_counters),
            counters.busy.eq(busy),
            counters.retire.eq(copy_finished & (finish_code == ErrorCode.NONE)),
            counters.read_beat.eq(copying & dma.read_data.valid),
            counters.read_class.eq(traffic_class),
            counters.write_beat.eq(copying & axi.wvalid & axi.wready),
            counters.write_class.eq(traffic_class),
        ]

        # Every combinational output below is one expression of the FSM state (``fsm.ongoing``) rather than an
        # assignment inside a state: Amaranth turns conditional comb assignments into ``always @*`` processes,
        # and Icarus never runs a process whose inputs never change (the state stays IDLE through reset), which
        # left ``busy`` at X. Whole descriptors are assigned at once for the same reason.
        def descriptor(address, length, scratch):
            return Cat(address[:32], Const(0, 64), length[:16], Const(1, 16), Const(1, 16),
                       scratch[: dma.scratch_width])

        with m.FSM() as fsm:
            with m.State("IDLE"), m.If(core.start):
                m.d.sync += [header_count.eq(0), read_error.eq(0), write_error.eq(0)]
                m.next = "FETCH"
            with m.State("FETCH"):
                with m.If(fetch_outside):
                    m.next = "IDLE"
                with m.Elif(dma.read_command.ready):
                    m.next = "HEADER"
                with m.If(core.soft_reset):
                    m.next = "DRAIN"
            with m.State("HEADER"):
                with m.If(dma.read_data.valid):
                    m.d.sync += [header.eq(Cat(header[self.data_width:], dma.read_data.payload.data)),
                                 header_count.eq(header_count + 1)]
                with m.If((header_count == header_beats) & dma.read_idle):
                    m.next = "CHECK"
                with m.If(core.soft_reset):
                    m.next = "DRAIN"
            with m.State("CHECK"):
                m.d.sync += [
                    read_issued.eq(0), write_issued.eq(0), words_read.eq(0), words_fetched.eq(0),
                    read_gate.eq(0), write_gate.eq(chunk), read_address.eq(source), write_address.eq(destination),
                ]
                m.next = "COPY"
                with m.If(check_code != ErrorCode.NONE):
                    m.next = "IDLE"
            with m.State("COPY"):
                with m.If(dma.read_data.valid):
                    m.d.sync += words_read.eq(words_read + 1)
                with m.If(dma.read_command.valid & dma.read_command.ready):
                    m.d.sync += [read_issued.eq(read_issued + 1), read_address.eq(read_address + chunk_bytes)]
                    with m.If(read_issued != 0):
                        m.d.sync += read_gate.eq(read_gate + chunk)
                with m.If(dma.write_command.valid & dma.write_command.ready):
                    m.d.sync += [write_issued.eq(write_issued + 1), write_address.eq(write_address + chunk_bytes),
                                 write_gate.eq(write_gate + chunk)]
                with m.If(copy_finished):
                    m.next = "IDLE"
                with m.If(core.soft_reset):
                    m.next = "DRAIN"
            with m.State("DRAIN"), m.If(dma.read_idle & dma.write_idle):
                m.next = "IDLE"

        in_fetch, in_check, in_copy = fsm.ongoing("FETCH"), fsm.ongoing("CHECK"), fsm.ongoing("COPY")
        m.d.comb += [
            busy.eq(~fsm.ongoing("IDLE")),
            copying.eq(in_copy),
            fetch_outside.eq(core.program_base + PROGRAM_BYTES > self.dram_bytes),
            check_code.eq(
                Mux(read_error, ErrorCode.AXI_READ_ERROR,
                    Mux(opcode != COPY_OPCODE, ErrorCode.ILLEGAL_OPCODE,
                        Mux((traffic_class >= len(regs.traffic_classes)) | (chunk == 0) | (chunks == 0),
                            ErrorCode.ILLEGAL_FIELD,
                            Mux(chunk > half, ErrorCode.SCRATCHPAD_OUT_OF_RANGE,
                                Mux((source + total_bytes > self.dram_bytes)
                                    | (destination + total_bytes > self.dram_bytes),
                                    ErrorCode.DRAM_OUT_OF_RANGE, ErrorCode.NONE)))))),
            copy_finished.eq(in_copy & (write_issued == chunks) & dma.read_idle & dma.write_idle),
            finish_code.eq(Mux(read_error, ErrorCode.AXI_READ_ERROR,
                               Mux(write_error, ErrorCode.AXI_WRITE_ERROR, ErrorCode.NONE))),
            error_code.eq(Mux(in_fetch, ErrorCode.DRAM_OUT_OF_RANGE, Mux(in_check, check_code, finish_code))),
            core.error.eq((in_fetch & fetch_outside) | (in_check & (check_code != ErrorCode.NONE))
                          | (copy_finished & (finish_code != ErrorCode.NONE))),
            core.done.eq((in_fetch & fetch_outside) | (in_check & (check_code != ErrorCode.NONE)) | copy_finished),
            write_port.en.eq((in_copy | fsm.ongoing("DRAIN")) & dma.read_data.valid),
            dma.read_command.valid.eq(
                (in_fetch & ~fetch_outside)
                | (in_copy & (read_issued < chunks) & (words_fetched >= read_gate))),
            dma.read_command.payload.eq(Mux(
                in_fetch, descriptor(core.program_base, Const(header_beats, 16), Const(0, dma.scratch_width)),
                descriptor(read_address, chunk, Mux(read_issued[0], chunk, 0)))),
            dma.write_command.valid.eq(in_copy & (write_issued < chunks) & (words_read >= write_gate)),
            dma.write_command.payload.eq(descriptor(write_address, chunk, Mux(write_issued[0], chunk, 0))),
        ]
        return m
