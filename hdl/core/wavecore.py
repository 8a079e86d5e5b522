"""The WaveCore training core's top (``docs/core.md``): fetch, decode, three queues with VTA tokens, DMA.

The core: the instruction fetch from DRAM, the decoder (generated from :mod:`wavecore.golden.core.isa` through
:mod:`wavecore.hdl.core.decoder`), dispatch into the load, compute and store queues, the four dependency-token
counters between neighbouring queues, LOAD and STORE executed by the AXI4 DMA
(:class:`wavecore.hdl.memory.dma.Dma`) between DRAM and the scratchpad or the accumulator memory with the
per-traffic-class byte counters, SHAPE (the geometry register), SYNC, END, COUNTER, the compute units of ``units``
(GEMM, VECTOR, NORM, LOSS, SGD; an opcode whose unit is left out ends the program in ``NOT_IMPLEMENTED``) and
every documented error state (``docs/core.md``).

Timing and behaviour (one instruction at a time per queue; the queues run concurrently):

* **Fetch.** From an accepted START the fetch unit reads one 16-byte instruction at ``PROGRAM_BASE + 16 k``
  through the DMA's read channel, which it shares with the load queue (the fetch issues only while no LOAD
  owns the channel; a LOAD starts only while no fetch does). It checks the word (see the error table) and
  pushes it, with its DRAM address, into its queue's FIFO (``queue_depth`` entries); it stops after END.
* **Queues.** A queue starts its head instruction when its executor is idle and every token it pops is
  available (the token is consumed at the start); it pushes its tokens when the instruction retires. A
  LOAD/STORE retires when the DMA channel is idle again (every beat written, every B response received).
  END retires when the load and store queues are empty and idle; it raises ``done`` (and ``irq``).
* **LOAD/STORE.** Element-granular: rows of any length at any element-aligned DRAM address and strides, to or
  from any on-chip element address. The DMA reads/writes the bus words each row covers (partial first and last
  words: ``wstrb`` on the W beats, so DRAM bytes outside the rows keep their value); a
  :class:`~wavecore.hdl.memory.row_packer.RowPacker` realigns LOAD beats into the dense on-chip region (per-element
  write enables, neighbouring elements keep their value) and a
  :class:`~wavecore.hdl.memory.row_unpacker.RowUnpacker` realigns the region into STORE beats. About one bus word
  per cycle on long rows; a row costs one more bus word when it straddles a word boundary unaligned. The byte
  counters add the row bytes of each beat (``sum(length) * element size``, as the simulator counts). A LOAD
  retires one cycle after its channel is idle (the packer writes its last, partial word).
* **Errors.** Checks at dispatch, in this order: ``ILLEGAL_OPCODE``; ``ILLEGAL_FIELD`` (function code, a
  token bit the queue cannot have, a field below its minimum, as the assembler checks);
  ``NOT_IMPLEMENTED``; ``MISALIGNED`` (a LOAD/STORE whose DRAM address is not a multiple of its element size;
  a PROGRAM_BASE not a multiple of 16); ``DRAM_OUT_OF_RANGE`` (the
  descriptor's last row, or the instruction fetch, ends above DRAM); ``SCRATCHPAD_OUT_OF_RANGE`` (the on-chip
  region ends above its memory). While running: ``AXI_READ_ERROR``/``AXI_WRITE_ERROR`` on a non-OKAY
  response, ``TOKEN_OVERFLOW`` when a push finds its counter at ``2**token_width - 1``, and ``DEADLOCK``
  when nothing can start and the fetch unit cannot dispatch. After an error the fetch stops; the queues
  finish every already dispatched instruction they can (so which instructions ran does not depend on DRAM
  timing: the failing instruction and everything after it never run), then the core ends with ``done`` and
  the error recorded in ``ERROR_CODE``/``ERROR_ADDRESS`` (the failing instruction's DRAM address).
* **Memories.** Each on-chip memory is :class:`~wavecore.hdl.core.core_memory.CoreMemory`: one block-RAM
  replica per compute read port (scratchpad two, accumulator one), each with one write and one read port. The
  compute units' ports have priority and see the timing of a memory with enough ports; a LOAD's words wait in a
  four-word buffer while a compute unit writes the same memory (the read channel stops while the buffer holds
  two or more) and a LOAD retires when its last word is written; a STORE's read waits while every compute read
  port of its memory reads.
* **Soft reset** stops starting instructions, waits until the DMA is idle, then empties the queues and the
  token counters and returns to idle.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters, core_numerics
from wavecore.golden.numerics import IntegerTraining, check_int
from wavecore.hdl.core import decoder
from wavecore.hdl.core.compute_unit import READ_LATENCY, READ_PORTS, WRITE_PORTS, ElementPorts, element_widths
from wavecore.hdl.core.core_memory import CoreMemory
from wavecore.hdl.core.counters import CoreCounters
from wavecore.hdl.core.register_block import RegisterBlock, axi4_lite_signature
from wavecore.hdl.core.registers import CoreIdentity, ErrorCode, RegisterMap
from wavecore.hdl.core.units import UNITS, unit_classes
from wavecore.hdl.memory.axi_register_slice import AxiRegisterSlice
from wavecore.hdl.memory.dma import Dma, axi4_signature
from wavecore.hdl.memory.row_packer import RowPacker, lane_count
from wavecore.hdl.memory.row_unpacker import RowUnpacker

__all__ = ["WaveCore", "core_register_map"]

_ADDRESS_WIDTH = 32  # DRAM byte addresses (the memory format's dram_address field is 32 bits)
_LOAD_BUFFER_DEPTH = 8  # the LOAD's words waiting while a compute unit writes the same memory
#: Registered stages of the LOAD/STORE range checks (extent products, sums, comparisons): a fetched word waits
#: in DECODE until they are valid (the word is final in the last RECEIVE cycle, so DECODE lasts
#: ``DECODE_STAGES - 1`` cycles).
DECODE_STAGES = 3


def core_register_map() -> RegisterMap:
    """The core's register map: one pair of byte counters per ISA traffic class (``isa.TRAFFIC_CLASSES``)."""
    return RegisterMap(traffic_classes=isa.TRAFFIC_CLASSES)


def _log2(value: int) -> int:
    return value.bit_length() - 1


class WaveCore(wiring.Component):
    """The WaveCore top (see the module docstring).

    Parameters
    ----------
    parameters : CoreParameters
        Array size, widths, on-chip memory sizes (elements) and DRAM size (bytes): the simulator's
        (:class:`wavecore.golden.core.simulator.Simulator`) parameters, so both check the same ranges.
    data_width : int
        AXI4 DRAM data width in bits (32, 64 or 128); one scratchpad word is one bus word.
    max_burst, max_outstanding : int
        The DMA's longest burst (beats) and bursts in flight per channel.
    queue_depth : int
        Entries of each instruction queue FIFO (2 to 64).
    token_width : int
        Bits of each dependency-token counter (1 to 16).
    numerics : IntegerTraining
        The integer arithmetic of the compute units (default :func:`~wavecore.golden.core.semantics.core_numerics`
        of ``parameters``); the compiler and the simulator must use the same.
    units : iterable of str
        Opcodes that get their compute unit in this build (default all: GEMM, VECTOR, NORM, LOSS, SGD); an
        opcode left out ends a program in ``NOT_IMPLEMENTED`` (a smaller build for tests or small FPGAs). A dict
        ``opcode -> class`` supplies the classes (a test's own unit).

    Attributes
    ----------
    s_axil : In(axi4_lite_signature(...))
        The register port (:class:`wavecore.hdl.core.register_block.RegisterBlock`, map
        :func:`core_register_map`).
    m_axi : Out(axi4_signature(address_width=32, data_width=data_width))
        The AXI4 manager to DRAM: the DMA's port through a register slice on every channel
        (:class:`wavecore.hdl.memory.axi_register_slice.AxiRegisterSlice`: every output a flop, every input
        registered before any logic; one cycle more per direction).
    irq : Out(1)
        The interrupt line.
    """

    def __init__(self, *, parameters: CoreParameters | None = None, data_width: int = 64, max_burst: int = 16,
                 max_outstanding: int = 4, queue_depth: int = 4, token_width: int = 8,
                 numerics: IntegerTraining | None = None, units=None):
        parameters = CoreParameters() if parameters is None else parameters
        if not isinstance(parameters, CoreParameters):
            raise TypeError(f"parameters must be a CoreParameters, not {parameters!r}")
        if data_width not in (32, 64, 128):
            raise ValueError(f"data_width must be 32, 64 or 128, not {data_width!r}")
        self.parameters = parameters
        self.data_width = data_width
        self.word_bytes = data_width // 8
        self.word_shift = _log2(self.word_bytes)
        self.queue_depth = check_int("queue_depth", queue_depth, 2, 64)
        self.token_width = check_int("token_width", token_width, 1, 16)
        check_int("dram_bytes", parameters.dram_bytes, 16, 1 << _ADDRESS_WIDTH)
        self.memory_words = {}
        for space, elements, size in (("scratchpad", parameters.scratchpad_elements, parameters.operand_bytes),
                                      ("accumulator", parameters.accumulator_elements,
                                       parameters.accumulator_bytes)):
            if elements * size % self.word_bytes or elements <= 0:
                raise ValueError(f"{space}_elements * {size} bytes must be a positive multiple of the "
                                 f"{self.word_bytes}-byte bus word, not {elements}")
            self.memory_words[space] = elements * size // self.word_bytes
        scratch_width = max(1, max((words - 1).bit_length() for words in self.memory_words.values()))
        self.numerics = core_numerics(parameters) if numerics is None else numerics
        if not isinstance(self.numerics, IntegerTraining):
            raise TypeError(f"numerics must be an IntegerTraining, not {self.numerics!r}")
        if (self.numerics.mac.in_width, self.numerics.mac.acc_width) != (parameters.in_width, parameters.acc_width):
            raise ValueError(f"numerics in_width/acc_width {self.numerics.mac.in_width}/{self.numerics.mac.acc_width}"
                             f" must equal the parameters' {parameters.in_width}/{parameters.acc_width}")
        classes = dict(units) if isinstance(units, dict) else unit_classes(units)  # a dict: opcode -> class
        unknown = [name for name in classes if name not in UNITS]
        if unknown:
            raise ValueError(f"units must be among {', '.join(UNITS)}, not {unknown[0]!r}")
        self.units = {name: cls(parameters, self.numerics, read_latency=READ_LATENCY) for name, cls in classes.items()}
        self.element_widths = element_widths(parameters)
        self.register_map = core_register_map()
        # Byte lengths: the widest of length/count1/count2 plus the largest element's log2 size.
        count_width = (max(spec.width for spec in isa.FORMATS["memory"] if spec.name in ("length", "count1", "count2"))
                       + _log2(max(parameters.operand_bytes, parameters.accumulator_bytes)))
        self.dma = Dma(address_width=_ADDRESS_WIDTH, data_width=data_width, max_burst=max_burst,
                       max_outstanding=max_outstanding, count_width=count_width, scratch_width=scratch_width,
                       counter_width=48, byte_granular=True, command_register=True)
        self.registers = RegisterBlock(
            register_map=self.register_map,
            identity=CoreIdentity(
                rows=parameters.rows, cols=parameters.cols, in_width=parameters.in_width,
                acc_width=parameters.acc_width, dram_data_width=data_width,
                scratchpad_kib=max(1, parameters.scratchpad_elements * parameters.operand_bytes // 1024),
                accumulator_kib=max(1, parameters.accumulator_elements * parameters.accumulator_bytes // 1024)),
        )
        super().__init__({
            "s_axil": In(axi4_lite_signature(address_width=self.register_map.address_width)),
            "m_axi": Out(axi4_signature(address_width=_ADDRESS_WIDTH, data_width=data_width)),
            "irq": Out(1),
        })

    # ---- decode helpers ----------------------------------------------------------------------------------
    def _element_shift(self, word):
        """log2 of the on-chip element size of a memory-format word (funct bit 3: accumulator side)."""
        shifts = (_log2(self.parameters.operand_bytes), _log2(self.parameters.accumulator_bytes))
        return Mux(self._accumulator_side(word), shifts[1], shifts[0])

    @staticmethod
    def _accumulator_side(word):
        return decoder.field(word, "funct")[isa.SPACES.index("accumulator") + 2]

    def _memory_checks(self, m, word):
        """``(misaligned, dram_outside, chip_outside)`` of a memory-format word, registered: valid
        :data:`DECODE_STAGES` cycles after ``word`` (one multiplier or one wide comparison between registers)."""
        get = lambda name: decoder.field(word, name, "memory")  # noqa: E731
        accumulator = self._accumulator_side(word)
        misaligned = Signal(name="decode_misaligned")
        dram_outside = Signal(name="decode_dram_outside")
        chip_outside = Signal(name="decode_chip_outside")
        conditions = []
        for size in (self.parameters.operand_bytes, self.parameters.accumulator_bytes):  # element-aligned DRAM
            conditions.append(get("dram_address")[: _log2(size)].any() if size > 1 else Const(0))
        # stage 1: the products of the extents
        # ((count2 - 1) * stride2 + (count1 - 1) * stride1 + length, modulo 2 ** 40, as count2 * stride2 +
        # count1 * stride1 + (length - stride1 - stride2): no carry chain in front of the multipliers)
        outer, inner, row = (Signal(40, name=f"decode_{name}") for name in ("outer", "inner", "row"))
        base = Signal(40, name="decode_base")
        m.d.sync += [outer.eq(get("count2") * get("stride2")), inner.eq(get("count1") * get("stride1")),
                     base.eq(get("length") - get("stride1") - get("stride2")),
                     row.eq(get("length") * get("count1"))]
        # stage 2: the DRAM extent in bytes and the on-chip end
        extent = Signal(40, name="decode_extent")
        chip_end = Signal(40, name="decode_chip_end")
        m.d.sync += [extent.eq((outer + inner + base) << self._element_shift(word)),
                     chip_end.eq(get("scratch_address") + row * get("count2"))]
        # stage 3: the comparisons
        m.d.sync += [misaligned.eq(Mux(accumulator, conditions[1], conditions[0])),
                     dram_outside.eq(get("dram_address") + extent > self.parameters.dram_bytes),
                     chip_outside.eq(chip_end > Mux(accumulator, self.parameters.accumulator_elements,
                                                    self.parameters.scratchpad_elements))]
        return misaligned, dram_outside, chip_outside

    @staticmethod
    def _or(values):
        """The OR of same-width values (the ports of the units, all zero but the running one's)."""
        values = [value.as_unsigned() for value in values]
        result = Const(0, max((len(value) for value in values), default=1))
        for value in values:
            result = result | value
        return result

    # ---- elaboration ---------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        m.submodules.registers = registers = self.registers
        m.submodules.dma = dma = self.dma
        wiring.connect(m, wiring.flipped(self.s_axil), registers.s_axil)
        # a register slice on every AXI channel: no combinational path crosses the DRAM port
        m.submodules.axi_slice = axi_slice = AxiRegisterSlice(address_width=_ADDRESS_WIDTH, data_width=self.data_width)
        wiring.connect(m, dma.axi, axi_slice.s_axi)
        wiring.connect(m, axi_slice.m_axi, wiring.flipped(self.m_axi))
        m.d.comb += self.irq.eq(registers.irq)
        core = registers.core
        # the beats' byte counts and classes are registered before the 64-bit adds (register_traffic): a beat is
        # in its byte counter two edges after its cycle, long before its LOAD/STORE retires
        m.submodules.counters = counters = CoreCounters(register_map=self.register_map,
                                                        beat_bytes=self.word_bytes, register_traffic=True)
        wiring.connect(m, counters.counters, core.counters)
        counter_clear = Signal()  # COUNTER.clear retiring
        m.d.comb += counters.clear.eq(core.clear_counters | counter_clear)

        # On-chip memories: one bus word per memory word.
        memories = {}
        element_ports = {}  # the compute units' element ports on each memory
        element_bytes = {"scratchpad": self.parameters.operand_bytes, "accumulator": self.parameters.accumulator_bytes}
        for space in isa.SPACES:
            # Block-RAM friendly: one replica per compute read port, the DMA's reads and writes arbitrated in
            # (wavecore.hdl.core.core_memory); the compute units' timing is that of a memory with enough ports.
            readers = sum(1 for target in READ_PORTS.values() if target == space)
            memory = CoreMemory(word_bits=self.data_width, element_bits=8 * element_bytes[space],
                                depth=self.memory_words[space], readers=readers, dma_read_latency=2)
            m.submodules[space] = memories[space] = memory
            adapter = ElementPorts(element_bits=self.element_widths[space], word_bits=self.data_width,
                                   elements=self.parameters.sizes()[space], readers=readers,
                                   read_latency=READ_LATENCY)
            adapter.attach(*memory.compute_ports())
            m.submodules[f"{space}_elements"] = element_ports[space] = adapter

        flush = Signal()  # soft reset: empties the queues and the token counters
        # a START begins with empty queues and no tokens: what a failed program left blocked is discarded
        program_start = Signal()
        m.d.comb += program_start.eq(core.start & ~core.busy)
        entry_width = isa.INSTRUCTION_BITS + _ADDRESS_WIDTH
        queues = {}
        for queue in isa.QUEUES:
            m.submodules[f"{queue}_queue"] = queues[queue] = ResetInserter(flush | program_start)(
                fifo.SyncFIFO(width=entry_width, depth=self.queue_depth))

        running = Signal()  # from START to done
        aborting = Signal()
        error_seen = Signal()
        error_pulse = Signal()
        error_code = Signal(8)
        error_address = Signal(64)
        m.d.comb += [core.error.eq(error_pulse), core.error_code.eq(error_code),
                     core.error_address.eq(error_address)]

        error_sources = []  # (condition, code, address), highest priority first

        def raise_error(condition, code, address):
            """An error source; the first error of a program is registered into the pulse below."""
            error_sources.append((condition, code, address))

        # The first error of a program is captured in two registered steps (the priority of about ten sources into
        # the 64-bit address is too long a path behind the sources' own logic): in the error's cycle only
        # `error_seen` and `error_pending` are set while every source's condition, the decoder's code and every
        # source address are registered (each cycle); in the next cycle the registered conditions' priority
        # selects the code and the address, which are registered with the `error_pulse` (one cycle after
        # `error_seen`). `quiet` waits for the pulse, so `done` follows it.
        error_request = Signal()
        error_pending = Signal()  # the cycle after the error's: its code and address are being selected
        m.d.sync += error_pending.eq(error_request & ~error_seen & running)
        with m.If(error_request & ~error_seen & running):
            m.d.sync += error_seen.eq(1)

        # ---- dependency tokens: (from, to) counters ----------------------------------------------------------
        pairs = [(a, b) for a, b in zip(isa.QUEUES, isa.QUEUES[1:], strict=False)]
        pairs += [(b, a) for a, b in pairs]
        tokens = {pair: Signal(self.token_width, name=f"tokens_{pair[0]}_{pair[1]}") for pair in pairs}
        pushes = {pair: Signal(name=f"push_{pair[0]}_{pair[1]}") for pair in pairs}
        pops = {pair: Signal(name=f"pop_{pair[0]}_{pair[1]}") for pair in pairs}
        full = (1 << self.token_width) - 1
        for pair in pairs:
            with m.If(flush | program_start):
                m.d.sync += tokens[pair].eq(0)
            with m.Else():
                m.d.sync += tokens[pair].eq(tokens[pair] + (pushes[pair] & (tokens[pair] != full)) - pops[pair])

        def neighbours(queue):
            """``[(bit name for pop, bit name for push, neighbour)]`` of a queue."""
            index = isa.QUEUES.index(queue)
            result = []
            if index > 0:
                result.append(("pop_prev", "push_prev", isa.QUEUES[index - 1]))
            if index < len(isa.QUEUES) - 1:
                result.append(("pop_next", "push_next", isa.QUEUES[index + 1]))
            return result

        # Per-queue executor state: the instruction being executed and its address.
        head = {q: queues[q].r_data[: isa.INSTRUCTION_BITS] for q in isa.QUEUES}
        current = {q: Signal(isa.INSTRUCTION_BITS, name=f"{q}_instruction") for q in isa.QUEUES}
        current_address = {q: Signal(_ADDRESS_WIDTH, name=f"{q}_address") for q in isa.QUEUES}
        tokens_ready = {}
        for q in isa.QUEUES:
            ready = queues[q].r_rdy
            for pop_bit, _, other in neighbours(q):
                ready = ready & (~decoder.field(head[q], pop_bit) | (tokens[(other, q)] != 0))
            tokens_ready[q] = ready
        retire = {q: Signal(name=f"{q}_retire") for q in isa.QUEUES}
        start = {q: Signal(name=f"{q}_start") for q in isa.QUEUES}
        for q in isa.QUEUES:
            m.d.comb += queues[q].r_en.eq(start[q])
            with m.If(start[q]):
                m.d.sync += [current[q].eq(head[q]), current_address[q].eq(queues[q].r_data[isa.INSTRUCTION_BITS:])]
            for pop_bit, push_bit, other in neighbours(q):
                m.d.comb += [pops[(other, q)].eq(start[q] & decoder.field(head[q], pop_bit)),
                             pushes[(q, other)].eq(retire[q] & decoder.field(current[q], push_bit))]
                raise_error(retire[q] & decoder.field(current[q], push_bit) & (tokens[(q, other)] == full),
                            ErrorCode.TOKEN_OVERFLOW, current_address[q])
        m.d.comb += counters.retire.eq(retire["load"] + retire["compute"] + retire["store"])

        # ---- fetch unit -----------------------------------------------------------------------------------------
        fetch_address = Signal(64)
        instruction = Signal(isa.INSTRUCTION_BITS)
        beats = isa.INSTRUCTION_BYTES // self.word_bytes
        beat_count = Signal(range(beats + 1))
        decode_wait = Signal(range(DECODE_STAGES))
        fetch_read_error = Signal()
        load_busy = Signal()  # the load executor owns the DMA read channel
        # The word's opcode and field checks and its queue, registered: valid in the cycle after the word's last
        # beat arrives, long before DISPATCH (the decoder's compares and the error priority after them are too
        # long a path for one cycle).
        opcode_bad, field_bad, implemented, is_memory = (
            Signal(name=f"decode_{name}") for name in ("opcode_bad", "field_bad", "implemented", "is_memory"))
        m.d.sync += [opcode_bad.eq(~decoder.legal_opcode(instruction)),
                     field_bad.eq(decoder.illegal_field(instruction)),
                     implemented.eq(decoder.opcode_is(instruction, "LOAD", "STORE", "SHAPE", "SYNC", "END",
                                                      "COUNTER", *self.units)),
                     is_memory.eq(decoder.opcode_is(instruction, "LOAD", "STORE"))]
        misaligned, dram_outside, chip_outside = self._memory_checks(m, instruction)
        decode_code = Signal(8)
        m.d.comb += decode_code.eq(
            Mux(fetch_read_error, ErrorCode.AXI_READ_ERROR,
                Mux(opcode_bad, ErrorCode.ILLEGAL_OPCODE,
                    Mux(field_bad, ErrorCode.ILLEGAL_FIELD,
                        Mux(~implemented, ErrorCode.NOT_IMPLEMENTED,
                            Mux(is_memory & misaligned, ErrorCode.MISALIGNED,
                                Mux(is_memory & dram_outside, ErrorCode.DRAM_OUT_OF_RANGE,
                                    Mux(is_memory & chip_outside, ErrorCode.SCRATCHPAD_OUT_OF_RANGE,
                                        ErrorCode.NONE))))))))
        # The fetch address's checks are registers updated with it (the 64-bit sum and compare would otherwise
        # run on into the error priority and the error address in the ISSUE cycle).
        fetch_outside = Signal()
        fetch_misaligned = Signal()
        target = {q: Signal(name=f"decode_{q}_target") for q in isa.QUEUES}
        m.d.sync += [target[q].eq(decoder.queue_is(instruction, q)) for q in isa.QUEUES]
        target_ready = Cat(*(target[q] & queues[q].w_rdy for q in isa.QUEUES)).any()
        stop = error_seen | aborting

        fetching = Signal()  # the fetch unit presents its descriptor to the DMA's read channel
        with m.FSM(name="fetch") as fetch:
            with m.State("IDLE"), m.If(core.start):
                m.d.sync += [fetch_address.eq(core.program_base), running.eq(1), error_seen.eq(0),
                             fetch_outside.eq(core.program_base + isa.INSTRUCTION_BYTES > self.parameters.dram_bytes),
                             fetch_misaligned.eq(core.program_base[: _log2(isa.INSTRUCTION_BYTES)].any())]
                m.next = "ISSUE"
            with m.State("ISSUE"):
                with m.If(stop):
                    m.next = "STOP"
                with m.Elif(fetch_misaligned | fetch_outside):
                    m.next = "STOP"
                with m.Elif(fetching & dma.read_command.ready):  # the fetch's own descriptor accepted
                    m.d.sync += [beat_count.eq(0), fetch_read_error.eq(0)]
                    m.next = "RECEIVE"
            with m.State("RECEIVE"):
                with m.If(dma.read_data.valid & dma.read_data.ready):
                    m.d.sync += [instruction.eq(Cat(instruction[self.data_width:], dma.read_data.payload.data)),
                                 beat_count.eq(beat_count + 1)]
                with m.If(dma.axi.rvalid & dma.axi.rready & (dma.axi.rresp != 0)):
                    m.d.sync += fetch_read_error.eq(1)
                with m.If((beat_count == beats) & dma.read_idle):
                    m.d.sync += decode_wait.eq(DECODE_STAGES - 2)
                    m.next = "DECODE"
            with m.State("DECODE"):  # the registered range checks of the new word
                m.d.sync += decode_wait.eq(decode_wait - 1)
                with m.If(decode_wait == 0):
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                with m.If(stop):
                    m.next = "STOP"
                with m.Elif(decode_code != ErrorCode.NONE):
                    m.next = "STOP"
                with m.Elif(target_ready):
                    m.d.sync += [fetch_address.eq(fetch_address + isa.INSTRUCTION_BYTES),
                                 fetch_outside.eq(fetch_address + 2 * isa.INSTRUCTION_BYTES
                                                  > self.parameters.dram_bytes)]
                    m.next = "ISSUE"
                    with m.If(decoder.opcode_is(instruction, "END")):
                        m.next = "STOP"
            with m.State("STOP"), m.If(~running):  # the program ended (done) or was aborted (soft reset)
                m.next = "IDLE"
        in_issue = fetch.ongoing("ISSUE") & ~stop
        raise_error(in_issue & fetch_misaligned, ErrorCode.MISALIGNED, fetch_address)
        raise_error(in_issue & ~fetch_misaligned & fetch_outside, ErrorCode.DRAM_OUT_OF_RANGE, fetch_address)
        raise_error(fetch.ongoing("DISPATCH") & ~stop & (decode_code != ErrorCode.NONE), decode_code,
                    fetch_address)
        m.d.comb += fetching.eq(fetch.ongoing("ISSUE") & ~stop & ~fetch_misaligned & ~fetch_outside & ~load_busy)
        dispatch = fetch.ongoing("DISPATCH") & ~stop & (decode_code == ErrorCode.NONE)
        for q in isa.QUEUES:
            m.d.comb += [queues[q].w_data.eq(Cat(instruction, fetch_address[:_ADDRESS_WIDTH])),
                         queues[q].w_en.eq(dispatch & target[q])]

        # ---- load and store executors (DMA) --------------------------------------------------------------------
        def fit(value, width):
            value = value.as_unsigned()
            return value[:width] if len(value) >= width else Cat(value, Const(0, width - len(value)))

        counts = dma.count_width

        def descriptor(word):
            """The byte-granular DMA descriptor of a memory-format word (address, strides and length in bytes;
            the on-chip side is the row packer's/unpacker's)."""
            get = lambda name: decoder.field(word, name, "memory")  # noqa: E731
            shift = self._element_shift(word)
            return Cat(fit(get("dram_address"), _ADDRESS_WIDTH), fit(get("stride1") << shift, _ADDRESS_WIDTH),
                       fit(get("stride2") << shift, _ADDRESS_WIDTH), fit(get("length") << shift, counts),
                       fit(get("count1"), counts), fit(get("count2"), counts), Const(0, dma.scratch_width))

        def chip_byte(word, width):
            """The on-chip byte address of a memory-format word's first element."""
            return fit(decoder.field(word, "scratch_address", "memory") << self._element_shift(word), width)

        fetch_descriptor = Cat(fetch_address[:_ADDRESS_WIDTH], Const(0, 2 * _ADDRESS_WIDTH),
                               Const(isa.INSTRUCTION_BYTES, counts), Const(1, counts), Const(1, counts),
                               Const(0, dma.scratch_width))

        executors = {}
        axi = dma.axi
        channel_error = {"load": axi.rvalid & axi.rready & (axi.rresp != 0),
                         "store": axi.bvalid & axi.bready & (axi.bresp != 0)}
        channel_idle = {"load": dma.read_idle, "store": dma.write_idle}
        channel_code = {"load": ErrorCode.AXI_READ_ERROR, "store": ErrorCode.AXI_WRITE_ERROR}
        drained = {"load": Signal(name="load_drained"), "store": Const(1, 1)}
        for q in ("load", "store"):
            with m.FSM(name=q) as executor:
                with m.State("IDLE"), m.If(start[q]):
                    m.next = "ISSUE"
                with m.State("ISSUE"):
                    command = dma.read_command if q == "load" else dma.write_command
                    with m.If(command.valid & command.ready):
                        m.next = "WAIT"
                with m.State("WAIT"), m.If(channel_idle[q]):
                    m.next = "FLUSH" if q == "load" else "RETIRE"
                if q == "load":
                    with m.State("FLUSH"):  # the row packer writes its last partial word
                        m.next = "RETIRE"
                with m.State("RETIRE"), m.If(drained[q]):  # a LOAD: its words are all in the memory
                    m.next = "IDLE"
            raise_error(executor.ongoing("WAIT") & channel_error[q], channel_code[q], current_address[q])
            m.d.comb += retire[q].eq(executor.ongoing("RETIRE") & drained[q])
            executors[q] = executor
        load_idle = executors["load"].ongoing("IDLE")
        store_idle = executors["store"].ongoing("IDLE")
        # The read channel: a LOAD starts only when the fetch unit is not about to issue or receiving; the
        # fetch issues only when no LOAD owns the channel.
        m.d.comb += [
            load_busy.eq(~load_idle),
            start["load"].eq(load_idle & tokens_ready["load"] & ~aborting & ~fetching
                             & ~fetch.ongoing("RECEIVE")),
            start["store"].eq(store_idle & tokens_ready["store"] & ~aborting),
            dma.read_command.valid.eq(fetching | executors["load"].ongoing("ISSUE")),
            dma.read_command.payload.eq(Mux(fetching, fetch_descriptor, descriptor(current["load"]))),
            dma.write_command.valid.eq(executors["store"].ongoing("ISSUE")),
            dma.write_command.payload.eq(descriptor(current["store"])),
        ]

        # DMA read beats -> the row packer -> the LOAD's memory; the STORE's memory -> the row unpacker -> W beats.
        load_accumulator = self._accumulator_side(current["load"])
        store_accumulator = self._accumulator_side(current["store"])
        loading = ~load_idle & dma.read_data.valid & dma.read_data.ready
        # the packer registers the DMA's beats first (the beat framing and the packer's lane count, carry and write
        # enables are too long a path for one cycle)
        m.submodules.row_packer = packer = RowPacker(data_width=self.data_width, address_width=dma.scratch_width,
                                                     register_inputs=True)
        # the STORE's read word is registered before its realignment, in the memories beside their block RAMs
        # (dma_read_latency=2: a RAM's output and the routing across the chip to here are too long for one cycle)
        m.submodules.row_unpacker = unpacker = RowUnpacker(data_width=self.data_width,
                                                           address_width=dma.scratch_width,
                                                           read_latency=2)
        load_issued = executors["load"].ongoing("ISSUE") & dma.read_command.ready
        store_issued = executors["store"].ongoing("ISSUE") & dma.write_command.ready
        # The packer's words wait in a small buffer while a compute unit writes the same memory (compute first);
        # the read channel stops while the buffer could not take the words of the beats in flight: a beat taken
        # in cycle t is in the packer's input register in t + 1 and its word (at most one) is written into the
        # buffer in t + 2, so the level the channel's ready sees misses three beats' words, and the flush's word
        # may follow them.
        entry = self.data_width + self.word_bytes + dma.scratch_width + 1
        m.submodules.load_buffer = load_buffer = fifo.SyncFIFO(width=entry, depth=_LOAD_BUFFER_DEPTH)
        packer_word = Cat(packer.write_data, packer.write_strobe, packer.write_address, load_accumulator)
        buffered = load_buffer.r_rdy
        word = Mux(buffered, load_buffer.r_data, packer_word)
        word_valid = buffered | packer.write_enable
        word_data = word[: self.data_width]
        word_strobe = word[self.data_width : self.data_width + self.word_bytes]
        word_address = word[self.data_width + self.word_bytes : -1]
        word_accumulator = word[-1]
        word_taken = word_valid & Mux(word_accumulator, memories["accumulator"].dma_write_ready,
                                      memories["scratchpad"].dma_write_ready)
        m.d.comb += [
            load_buffer.w_data.eq(packer_word),
            load_buffer.w_en.eq(packer.write_enable & (buffered | ~word_taken)),
            load_buffer.r_en.eq(buffered & word_taken),
            drained["load"].eq(~packer.pending & ~load_buffer.w_en
                               & (~buffered | ((load_buffer.level == 1) & word_taken))),
        ]
        store_reader = Mux(store_accumulator, memories["accumulator"].dma_read_ready,
                           memories["scratchpad"].dma_read_ready)
        m.d.comb += [
            dma.read_data.ready.eq(load_buffer.level <= _LOAD_BUFFER_DEPTH - 4),
            packer.start.eq(load_issued),
            packer.chip_byte.eq(chip_byte(current["load"], len(packer.chip_byte))),
            packer.beat_valid.eq(loading),
            packer.beat_data.eq(dma.read_data.payload.data),
            packer.beat_strobe.eq(dma.read_data.payload.strobe),
            packer.flush.eq(executors["load"].ongoing("FLUSH")),
            unpacker.start.eq(store_issued),
            unpacker.chip_byte.eq(chip_byte(current["store"], len(unpacker.chip_byte))),
            unpacker.active.eq(executors["store"].ongoing("WAIT")),
            unpacker.read_ready.eq(store_reader),
            unpacker.read_data.eq(Mux(store_accumulator, memories["accumulator"].dma_read_data,
                                      memories["scratchpad"].dma_read_data)),
            unpacker.beat_first_lane.eq(dma.write_first_lane),
            unpacker.beat_lane_count.eq(dma.write_lane_count),
            unpacker.beat_ready.eq(dma.write_fetched.ready),
            dma.write_fetched.valid.eq(unpacker.beat_valid),
            dma.write_fetched.payload.eq(unpacker.beat_data),
            dma.write_fetch.ready.eq(1),  # the unpacker follows the W beats' strobes, not the word fetches
        ]
        for space, memory in memories.items():
            selected_load = word_accumulator if space == "accumulator" else ~word_accumulator
            selected_store = store_accumulator if space == "accumulator" else ~store_accumulator
            size = element_bytes[space]
            m.d.comb += [
                memory.dma_write_valid.eq(word_valid & selected_load),
                memory.dma_write_addr.eq(word_address),
                memory.dma_write_data.eq(word_data),
                memory.dma_write_en.eq(Cat(*(word_strobe[lane] for lane in range(0, self.word_bytes, size)))),
                memory.dma_read_en.eq(unpacker.read_enable & selected_store),
                memory.dma_read_addr.eq(unpacker.read_address),
            ]
        classes = len(isa.TRAFFIC_CLASSES)
        m.d.comb += [
            counters.busy.eq(running),
            counters.read_beat.eq(loading),
            counters.read_class.eq(decoder.field(current["load"], "funct")[: _log2(classes)]),
            counters.read_bytes.eq(lane_count(dma.read_data.payload.strobe)),
            counters.write_beat.eq(~store_idle & axi.wvalid & axi.wready),
            counters.write_class.eq(decoder.field(current["store"], "funct")[: _log2(classes)]),
            counters.write_bytes.eq(lane_count(axi.wstrb)),
        ]

        # ---- compute executor: SHAPE, SYNC, END, COUNTER and the compute units ---------------------------------
        shape = Signal(isa.INSTRUCTION_BITS)  # the geometry register (read by the compute units)
        end_ready = (~queues["load"].r_rdy & ~queues["store"].r_rdy & load_idle & store_idle
                     & fetch.ongoing("STOP"))
        compute_head_end = decoder.opcode_is(head["compute"], "END")
        finish = Signal()
        compute_loading = Signal()  # the compute executor's START state
        unit_names = list(self.units)
        # Each unit has its own copy of the instruction and the shape, loaded in START when the instruction is its
        # own (different enables, so synthesis keeps the copies apart): the placer puts each copy beside its unit
        # instead of routing one register to all five units' decode logic. The unit starts in LAUNCH, a cycle later.
        for name, unit in self.units.items():
            m.submodules[f"{name.lower()}_unit"] = unit
            own_instruction = Signal(isa.INSTRUCTION_BITS, name=f"{name.lower()}_instruction")
            own_shape = Signal(isa.INSTRUCTION_BITS, name=f"{name.lower()}_shape")
            with m.If(compute_loading & decoder.opcode_is(current["compute"], name)):
                m.d.sync += [own_instruction.eq(current["compute"]), own_shape.eq(shape)]
            m.d.comb += [unit.instruction.eq(own_instruction), unit.shape.eq(own_shape)]
        # The unit's element ports drive the memories' adapters while its instruction runs: an idle unit keeps its
        # enables low, so the OR of every unit's enable-gated address and data is the running unit's; the read
        # data goes to every unit.
        # Each unit's enables count only while its instruction runs (hardware: they are low anyway; a Verilog
        # simulator may start an idle unit's enable at X, which must not reach the memories' arbitration).
        selected = {name: Signal(name=f"{name.lower()}_selected") for name in self.units}

        def enable(name, port):
            return getattr(self.units[name], port).en & selected[name]

        def gated(name, port, field):
            return Mux(enable(name, port), getattr(getattr(self.units[name], port), field).as_unsigned(), 0)

        readers = {space: 0 for space in isa.SPACES}
        for port, space in READ_PORTS.items():  # scratch_read0 -> read0, scratch_read1 -> read1, acc_read -> read0
            reader = getattr(element_ports[space], f"read{readers[space]}")
            readers[space] += 1
            m.d.comb += [reader.en.eq(self._or(enable(name, port) for name in self.units)),
                         reader.addr.eq(self._or(gated(name, port, "addr") for name in self.units))]
            for unit in self.units.values():
                m.d.comb += getattr(unit, port).data.eq(reader.data)
        for port, space in WRITE_PORTS.items():
            writer = element_ports[space].write
            m.d.comb += [writer.en.eq(self._or(enable(name, port) for name in self.units)),
                         writer.addr.eq(self._or(gated(name, port, "addr") for name in self.units)),
                         writer.data.eq(self._or(gated(name, port, "data") for name in self.units))]
        unit_done = self._or(unit.done for unit in self.units.values())
        compute_faulted = Signal()  # a unit addressed outside its memory since START: the compute queue stops
        element_fault = Signal()
        with m.If(core.start & ~running):
            m.d.sync += compute_faulted.eq(0)
        with m.FSM(name="compute") as compute:
            with m.State("IDLE"), m.If(start["compute"]):
                with m.If(decoder.opcode_is(head["compute"], *unit_names) if unit_names else Const(0, 1)):
                    m.next = "START"
                with m.Else():
                    m.next = "RETIRE"
            with m.State("START"):  # the running unit's copies of the instruction and shape load
                m.next = "LAUNCH"
            with m.State("LAUNCH"):
                for name, unit in self.units.items():
                    m.d.comb += unit.start.eq(decoder.opcode_is(current["compute"], name))
                m.next = "RUN"
            with m.State("RUN"), m.If(unit_done):
                m.next = "CHECK"
            with m.State("CHECK"):
                # a unit that addressed outside its memory does not retire: it pushes no token, so nothing
                # that waits on it runs, and the compute queue stops (compute_faulted). An access's range check
                # reaches element_fault two cycles after the access (the adapters check their registered
                # addresses, then element_fault is registered), so an access one cycle before `done` is caught
                # here and an access in the cycle of `done` in RETIRE, which then retires nothing.
                with m.If(compute_faulted | element_fault):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "RETIRE"
            with m.State("RETIRE"):
                with m.If(decoder.opcode_is(current["compute"], "SHAPE")):
                    m.d.sync += shape.eq(current["compute"])
                m.next = "IDLE"
        m.d.comb += compute_loading.eq(compute.ongoing("START"))
        unit_running = compute.ongoing("LAUNCH") | compute.ongoing("RUN")
        for name in self.units:
            m.d.comb += selected[name].eq(unit_running & decoder.opcode_is(current["compute"], name))
        retiring = compute.ongoing("RETIRE") & ~element_fault
        m.d.comb += [retire["compute"].eq(retiring),
                     finish.eq(retiring & decoder.opcode_is(current["compute"], "END")),
                     counter_clear.eq(retiring & decoder.opcode_is(current["compute"], "COUNTER")
                                      & (decoder.field(current["compute"], "funct")
                                         == isa.FUNCTS["COUNTER"]["clear"][0]))]
        # registered: the adapters' range checks (on their registered addresses, a cycle after the access) are
        # ORed over both memories and the error state behind them is wide; the write itself is dropped in the
        # cycle it is presented
        accessed = Signal()  # a unit could present an access in the cycle before (the ports are gated by it)
        m.d.sync += [accessed.eq(unit_running),
                     element_fault.eq((element_ports["scratchpad"].out_of_range
                                       | element_ports["accumulator"].out_of_range) & accessed)]
        m.d.comb += counters.array_busy.eq(compute.ongoing("RUN") & decoder.opcode_is(current["compute"], "GEMM"))
        raise_error(element_fault, ErrorCode.SCRATCHPAD_OUT_OF_RANGE, current_address["compute"])
        with m.If(element_fault):
            m.d.sync += compute_faulted.eq(1)
        compute_idle = compute.ongoing("IDLE")
        m.d.comb += start["compute"].eq(compute_idle & tokens_ready["compute"] & ~aborting & ~compute_faulted
                                        & (~compute_head_end | end_ready))

        # ---- end, quiescence (error drain, deadlock), soft reset --------------------------------------------
        executors_idle = load_idle & store_idle & compute_idle
        nothing_starts = ~start["load"] & ~start["store"] & ~start["compute"]
        fetch_blocked = fetch.ongoing("STOP") | (fetch.ongoing("DISPATCH") & ~stop & (decode_code == 0)
                                                 & ~target_ready)
        quiet = (running & executors_idle & nothing_starts & fetch_blocked & dma.read_idle & dma.write_idle
                 & ~error_pending & ~error_pulse)
        # The oldest blocked instruction: the lowest address among the queue heads (program order), else the
        # one the fetch unit cannot dispatch. It is found in three registered stages (the queue heads' LUT-RAM
        # reads, then two levels of a minimum tree: an empty queue's key has its top bit set), so DEADLOCK is
        # raised in the fourth quiet cycle in a row: nothing moved in the first three, so the registered address
        # is the current one.
        def oldest_of(a, b):
            return Mux(b < a, b, a)

        heads = []
        for q in isa.QUEUES:
            head = Signal(_ADDRESS_WIDTH + 1, name=f"{q}_head_key")
            m.d.sync += head.eq(Cat(queues[q].r_data[isa.INSTRUCTION_BITS:], ~queues[q].r_rdy))
            heads.append(head)
        fetch_key = Signal(_ADDRESS_WIDTH + 1)
        m.d.sync += fetch_key.eq(fetch_address[:_ADDRESS_WIDTH])
        pairs = [Signal(_ADDRESS_WIDTH + 1, name=f"oldest_pair{i}") for i in range(2)]
        m.d.sync += [pairs[0].eq(oldest_of(heads[0], heads[1])), pairs[1].eq(oldest_of(heads[2], fetch_key))]
        oldest_blocked = Signal(_ADDRESS_WIDTH)
        quiet_before = Signal(3)  # quiet in each of the last three cycles
        m.d.sync += [oldest_blocked.eq(oldest_of(pairs[0], pairs[1])), quiet_before.eq(Cat(quiet, quiet_before))]
        raise_error(quiet & quiet_before.all() & ~error_seen & ~aborting, ErrorCode.DEADLOCK, oldest_blocked)
        # step 1 (every cycle): the sources' conditions, codes and addresses, registered
        conditions = Signal(len(error_sources))
        m.d.comb += error_request.eq(Cat(*(condition for condition, _, _ in error_sources)).any())
        m.d.sync += conditions.eq(Cat(*(condition for condition, _, _ in error_sources)))
        registered_values = {}  # id(value) -> its register (a value several sources share is registered once)

        def registered(value, name):
            if isinstance(value, int):  # a constant code
                return value
            if id(value) not in registered_values:
                registered_values[id(value)] = Signal(len(value), name=f"error_{name}{len(registered_values)}")
                m.d.sync += registered_values[id(value)].eq(value)
            return registered_values[id(value)]

        source_codes = [registered(code, "code") for _, code, _ in error_sources]
        address_sources = {}  # id(address register) -> (register, indices of the sources giving it)
        for index, (_, _, address) in enumerate(error_sources):
            register = registered(address, "address")
            address_sources.setdefault(id(register), (register, []))[1].append(index)
        # step 2: the first (highest-priority) registered condition selects the code and the address (one-hot)
        first = [conditions[index] & ~conditions[:index].any() if index else conditions[0]
                 for index in range(len(error_sources))]
        selected_code = self._or(Mux(first[index], code, 0) for index, code in enumerate(source_codes))
        selected_address = self._or(Mux(Cat(*(first[index] for index in indices)).any(), register, 0)
                                    for register, indices in address_sources.values())
        m.d.sync += error_pulse.eq(error_pending)
        with m.If(error_pending):
            m.d.sync += [error_code.eq(selected_code), error_address.eq(selected_address)]
        done = Signal()
        # after an error the core is done once quiet: registered (quiet lasts: nothing runs, starts or moves), so
        # the queue heads' decode behind `quiet` does not run on into `done` and the registers it sets
        drained_after_error = Signal()
        m.d.sync += drained_after_error.eq(quiet & error_seen & ~done)
        m.d.comb += done.eq((finish | drained_after_error) & ~aborting)
        m.d.comb += core.done.eq(done)
        with m.If(done):
            m.d.sync += running.eq(0)
        with m.If(core.soft_reset & ~fetch.ongoing("IDLE")):
            m.d.sync += aborting.eq(1)
        # the fetch unit in STOP: every state of it goes there while aborting (a fetch still receiving, decoding or
        # dispatching its word gets there after it), so nothing of the old program moves once the flush is done
        m.d.comb += flush.eq(aborting & executors_idle & dma.read_idle & dma.write_idle & fetch.ongoing("STOP"))
        with m.If(flush):
            m.d.sync += [aborting.eq(0), running.eq(0)]
        # Busy until the fetch unit is back in IDLE (one cycle after done), so a START is never lost.
        m.d.comb += core.busy.eq(~fetch.ongoing("IDLE") | aborting)
        return m
