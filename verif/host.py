"""Host driver of the WaveCore core: load DRAM, program the registers, start, wait, read back, report errors.

The driver talks to two :class:`Bus` objects, one for the core's registers and one for DRAM, so the same code
runs

* under cocotb: registers through :class:`AxiLiteRegisters` (cocotbext-axi's ``AxiLiteMaster`` on the
  ``s_axil_*`` port), DRAM through :class:`BackdoorMemory` (the HDL DRAM model's ``$readmemh``/``$writememh``
  backdoor, so Python does nothing per cycle while the core runs), completion through :class:`InterruptLine`;
* on a board: both through :class:`MmapBus` (an ``mmap`` of ``/dev/mem`` at the register block's and the DRAM
  window's physical addresses, or of any file), completion through :class:`StatusPolling`.

Every bus method is a coroutine (a cocotb bus needs simulated time); on a board run the driver with
``asyncio.run(...)``. All offsets and fields come from :mod:`wavecore.hdl.core.registers`.
"""

from __future__ import annotations

import asyncio
import math
import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wavecore.files import write_atomic
from wavecore.hdl.core.registers import ID_MAGIC, MAP_VERSION, ErrorCode, RegisterMap, default_register_map

__all__ = [
    "AxiLiteRegisters",
    "BackdoorMemory",
    "Bus",
    "BusError",
    "CoreFault",
    "CoreTimeout",
    "Host",
    "InterruptLine",
    "MmapBus",
    "RunResult",
    "StatusPolling",
    "read_hex_image",
    "simulated_host",
    "write_hex_image",
]


class BusError(RuntimeError):
    """A bus access failed (an AXI error response, an access outside the mapped window)."""


class CoreFault(RuntimeError):
    """The core stopped with an error code; ``code`` (:class:`ErrorCode`) and ``address`` name it."""

    def __init__(self, code: int, address: int, counters: Mapping[str, int] | None = None):
        try:
            code = ErrorCode(code)
            name, meaning = code.name, code.meaning
        except ValueError:
            name, meaning = "UNKNOWN", "not a documented error code"
        self.code = code
        self.address = address
        self.counters = dict(counters or {})
        super().__init__(f"core stopped with error {name} (code {int(code)}: {meaning}) "
                         f"at instruction address {address:#x}")


class CoreTimeout(RuntimeError):
    """The core did not finish within the cycle limit derived from the expected cycle count."""


class Bus:
    """32-bit register and block access to one address window; every method is a coroutine.

    Subclasses implement :meth:`read_block` and :meth:`write_block`; :meth:`read32`/:meth:`write32` default
    to 4-byte blocks. :meth:`flush` makes staged writes visible (a no-op unless the bus stages them).
    """

    async def read_block(self, address: int, length: int) -> bytes:
        raise NotImplementedError

    async def write_block(self, address: int, data: bytes) -> None:
        raise NotImplementedError

    async def read32(self, address: int) -> int:
        _check_word_address(address)
        return int.from_bytes(await self.read_block(address, 4), "little")

    async def write32(self, address: int, value: int) -> None:
        _check_word_address(address)
        if not 0 <= value < 1 << 32:
            raise ValueError(f"value must fit in 32 bits, not {value:#x}")
        await self.write_block(address, value.to_bytes(4, "little"))

    async def flush(self) -> None:
        return None


def _check_word_address(address: int) -> None:
    if address % 4:
        raise ValueError(f"address must be a multiple of 4 for a 32-bit access, not {address:#x}")


class MmapBus(Bus):
    """A memory-mapped window of a file: ``/dev/mem`` at a physical address on a board, or any file.

    ``offset`` (a multiple of the page size) and ``size`` select the window; addresses are relative to it.
    32-bit accesses are single aligned 32-bit loads and stores (through a ``memoryview`` cast to ``"I"``), as
    device registers need; block accesses are byte copies.
    """

    def __init__(self, path, *, size: int, offset: int = 0):
        if size <= 0:
            raise ValueError(f"size must be positive, not {size}")
        if offset % mmap.ALLOCATIONGRANULARITY:
            raise ValueError(f"offset must be a multiple of {mmap.ALLOCATIONGRANULARITY}, not {offset:#x}")
        self.path = Path(path)
        self.size = size
        flags = os.O_RDWR | getattr(os, "O_SYNC", 0)
        descriptor = os.open(self.path, flags)
        try:
            self._map = mmap.mmap(descriptor, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                                  offset=offset)
        finally:
            os.close(descriptor)
        self._words = memoryview(self._map).cast("I")

    def _check(self, address: int, length: int) -> None:
        if address < 0 or length < 0 or address + length > self.size:
            raise BusError(f"access of {length} bytes at {address:#x} is outside the {self.size:#x}-byte window")

    async def read32(self, address: int) -> int:
        _check_word_address(address)
        self._check(address, 4)
        return self._words[address // 4]

    async def write32(self, address: int, value: int) -> None:
        _check_word_address(address)
        self._check(address, 4)
        self._words[address // 4] = value

    async def read_block(self, address: int, length: int) -> bytes:
        self._check(address, length)
        return bytes(self._map[address : address + length])

    async def write_block(self, address: int, data: bytes) -> None:
        self._check(address, len(data))
        self._map[address : address + len(data)] = bytes(data)

    async def flush(self) -> None:
        self._map.flush()

    def close(self) -> None:
        self._words.release()
        self._map.close()


class AxiLiteRegisters(Bus):
    """The register port through cocotbext-axi's ``AxiLiteMaster``; a non-OKAY response raises :class:`BusError`.

    Each access is bounded (:func:`wavecore.verif.waits.within`): its 32-bit words, each an AXI round trip, through
    :func:`~wavecore.verif.waits.cycle_limit`; a register block that never answers fails in a few hundred cycles."""

    def __init__(self, master):
        self.master = master

    async def _bounded(self, transaction, address: int, length: int, what: str):
        from wavecore.verif.axi import AXI_ROUND_TRIP
        from wavecore.verif.waits import cycle_limit, within

        words = -(-length // 4)
        return await within(transaction, clock=self.master.read_if.clock,
                            cycles=cycle_limit(words, latency=words * AXI_ROUND_TRIP),
                            what=f"AXI4-Lite {what} of {length} bytes at {address:#x}")

    async def read_block(self, address: int, length: int) -> bytes:
        response = await self._bounded(self.master.read(address, length), address, length, "read")
        if int(response.resp) != 0:
            raise BusError(f"AXI4-Lite read of {address:#x} answered {response.resp!r}")
        return bytes(response.data)

    async def write_block(self, address: int, data: bytes) -> None:
        response = await self._bounded(self.master.write(address, bytes(data)), address, len(data), "write")
        if int(response.resp) != 0:
            raise BusError(f"AXI4-Lite write of {address:#x} answered {response.resp!r}")


def write_hex_image(path, words: Mapping[int, int], *, data_width: int) -> None:
    """Write ``{word index: value}`` as a sparse ``$readmemh`` file (``@index`` before every run of words)."""
    digits = data_width // 4
    lines = []
    previous = None
    for index in sorted(words):
        if previous is None or index != previous + 1:
            lines.append(f"@{index:x}")
        lines.append(f"{words[index]:0{digits}x}")
        previous = index
    write_atomic(path, "\n".join(lines) + "\n")


def read_hex_image(path, *, first_word: int) -> dict[int, int]:
    """Parse a ``$writememh`` file (Icarus and Verilator styles: comments, ``@`` addresses) into words."""
    words = {}
    index = first_word
    for raw in Path(path).read_text().splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        for token in line.split():
            if token.startswith("@"):
                index = int(token[1:], 16)
                continue
            words[index] = int(token.replace("_", ""), 16)
            index += 1
    return words


class BackdoorMemory(Bus):
    """DRAM of the HDL model (:class:`wavecore.hdl.core.dram_model.DramModel`) through its file backdoor.

    ``dut`` is the cocotb top with the model's ``backdoor_load``, ``backdoor_dump``, ``backdoor_first``,
    ``backdoor_last`` ports (after ``prefix``); ``load_file``/``dump_file`` are the files named by the
    ``+dram_load``/``+dram_dump`` plusargs, as seen from the simulation's working directory. Writes are staged
    in Python and written by :meth:`flush` (one file, one load pulse); a read flushes first, then dumps the
    words it covers. A partial word in a write is merged with the DRAM's current content.
    """

    def __init__(self, dut, *, clock, data_width: int, load_file="dram_load.hex", dump_file="dram_dump.hex",
                 prefix: str = ""):
        self.dut = dut
        self.clock = clock
        self.word_bytes = data_width // 8
        self.data_width = data_width
        self.load_file = Path(load_file)
        self.dump_file = Path(dump_file)
        self.prefix = prefix
        self._staged: dict[int, int] = {}
        self._port("backdoor_load").value = 0
        self._port("backdoor_dump").value = 0

    def _port(self, name):
        return getattr(self.dut, f"{self.prefix}{name}")

    async def _pulse(self, name: str) -> None:
        from cocotb.triggers import FallingEdge, RisingEdge

        await FallingEdge(self.clock)
        self._port(name).value = 1
        await RisingEdge(self.clock)  # the model acts at this edge
        await FallingEdge(self.clock)
        self._port(name).value = 0

    async def flush(self) -> None:
        if not self._staged:
            return
        write_hex_image(self.load_file, self._staged, data_width=self.data_width)
        self._staged = {}
        await self._pulse("backdoor_load")

    async def _words(self, first: int, last: int) -> dict[int, int]:
        await self.flush()
        self._port("backdoor_first").value = first * self.word_bytes
        self._port("backdoor_last").value = last * self.word_bytes
        self.dump_file.unlink(missing_ok=True)
        await self._pulse("backdoor_dump")
        words = read_hex_image(self.dump_file, first_word=first)
        missing = [index for index in range(first, last + 1) if index not in words]
        if missing:
            raise BusError(f"the DRAM dump {self.dump_file} lacks word {missing[0]:#x}")
        return words

    async def read_block(self, address: int, length: int) -> bytes:
        if length == 0:
            return b""
        first, last = address // self.word_bytes, (address + length - 1) // self.word_bytes
        words = await self._words(first, last)
        data = b"".join(words[index].to_bytes(self.word_bytes, "little") for index in range(first, last + 1))
        start = address - first * self.word_bytes
        return data[start : start + length]

    async def write_block(self, address: int, data: bytes) -> None:
        if not data:
            return
        size = self.word_bytes
        first, last = address // size, (address + len(data) - 1) // size
        image = bytearray((last - first + 1) * size)
        head, tail = address - first * size, (address + len(data)) % size
        if head or tail:  # merge partial words with what DRAM (or the staging) holds
            for index in {first, last}:
                if index in self._staged:
                    current = self._staged[index].to_bytes(size, "little")
                else:
                    current = await self.read_block(index * size, size)
                image[(index - first) * size : (index - first + 1) * size] = current
        image[head : head + len(data)] = data
        for offset in range(last - first + 1):
            self._staged[first + offset] = int.from_bytes(image[offset * size : (offset + 1) * size], "little")


class InterruptLine:
    """Completion under cocotb: wait for the ``irq`` output to rise, with a cycle limit.

    The limit is one :class:`cocotb.triggers.Timer` of ``cycles * period_ns`` (``ClockCycles`` would wake Python
    at every clock edge), so the simulator runs without Python until the interrupt or the limit.
    """

    def __init__(self, irq, *, period_ns: float = 10.0):
        self.irq = irq
        self.period_ns = period_ns

    async def wait(self, cycles: int) -> bool:
        from cocotb.triggers import First, RisingEdge, Timer

        if int(self.irq.value):
            return True
        edge = RisingEdge(self.irq)
        fired = await First(edge, Timer(max(1, cycles) * self.period_ns, unit="ns"))
        return fired is edge or bool(int(self.irq.value))


class StatusPolling:
    """Completion on a board: poll ``STATUS.done`` every ``interval`` seconds; ``clock_hz`` turns cycles into time."""

    def __init__(self, registers: Bus, *, clock_hz: float, register_map: RegisterMap | None = None,
                 interval: float = 1e-3):
        self.registers = registers
        self.clock_hz = clock_hz
        self.map = register_map or default_register_map()
        self.interval = interval

    async def wait(self, cycles: int) -> bool:
        status = self.map["STATUS"]
        done = status.field("done").mask
        deadline = asyncio.get_running_loop().time() + cycles / self.clock_hz
        while True:
            if await self.registers.read32(status.offset) & done:
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(self.interval)


@dataclass(frozen=True)
class RunResult:
    """What a finished program left: the counters (by the map's counter names) and the cycle limit used."""

    counters: dict[str, int]
    cycle_limit: int


class Host:
    """Drives one core: :meth:`load`, :meth:`run` (program registers, start, wait, check), :meth:`read`.

    ``completion`` is an :class:`InterruptLine` (cocotb) or :class:`StatusPolling` (board). The cycle limit of a
    run is ``ceil(expected_cycles * (1 + margin)) + slack``.
    """

    def __init__(self, *, registers: Bus, memory: Bus, completion, register_map: RegisterMap | None = None,
                 margin: float = 0.5, slack: int = 1000):
        self.registers = registers
        self.memory = memory
        self.completion = completion
        self.map = register_map or default_register_map()
        if margin < 0 or slack < 0:
            raise ValueError(f"margin and slack must be non-negative, not {margin} and {slack}")
        self.margin = margin
        self.slack = slack

    async def identify(self) -> dict[str, int]:
        """The identification registers; raises :class:`BusError` if ``ID`` or the major version is wrong."""
        values = {}
        for register in self.map.registers:
            if register.source == "identity":
                values[register.name] = await self.registers.read32(register.offset)
        if values["ID"] != ID_MAGIC:
            raise BusError(f"no WaveCore core here: ID reads {values['ID']:#010x}, expected {ID_MAGIC:#010x}")
        if values["VERSION"] >> 16 != MAP_VERSION[0]:
            raise BusError(f"register map version {values['VERSION'] >> 16}.{values['VERSION'] & 0xFFFF} is not "
                           f"supported by this driver ({MAP_VERSION[0]}.x)")
        return values

    async def load(self, segments: Mapping[int, bytes]) -> None:
        """Write ``{DRAM byte address: bytes}`` (program image and data) and make it visible."""
        for address, data in sorted(segments.items()):
            await self.memory.write_block(address, data)
        await self.memory.flush()

    async def read(self, address: int, length: int) -> bytes:
        return await self.memory.read_block(address, length)

    async def counters(self) -> dict[str, int]:
        values = {}
        for name in self.map.counters:
            low, high = self.map.counter_offsets(name)
            values[name] = await self.registers.read32(low) | await self.registers.read32(high) << 32
        return values

    async def command(self, name: str) -> None:
        """Write one ``CONTROL`` command bit (``start``, ``soft_reset``, ``clear_counters``)."""
        control = self.map["CONTROL"]
        await self.registers.write32(control.offset, control.field(name).mask)

    async def start(self, program_base: int) -> None:
        if not 0 <= program_base < 1 << 64:
            raise ValueError(f"program_base must be a 64-bit byte address, not {program_base:#x}")
        await self.registers.write32(self.map.offset("PROGRAM_BASE_LO"), program_base & 0xFFFFFFFF)
        await self.registers.write32(self.map.offset("PROGRAM_BASE_HI"), program_base >> 32)
        interrupts = self.map["INTERRUPT_ENABLE"]
        await self.registers.write32(interrupts.offset, interrupts.field("done").mask)
        await self.registers.write32(self.map.offset("INTERRUPT_STATUS"), 0xFFFFFFFF)
        await self.command("start")

    def cycle_limit(self, expected_cycles: int) -> int:
        if expected_cycles < 0:
            raise ValueError(f"expected_cycles must be non-negative, not {expected_cycles}")
        return math.ceil(expected_cycles * (1 + self.margin)) + self.slack

    async def wait(self, expected_cycles: int) -> RunResult:
        """Wait for the program's end; check STATUS; raise :class:`CoreFault` or :class:`CoreTimeout`."""
        limit = self.cycle_limit(expected_cycles)
        finished = await self.completion.wait(limit)
        status_register = self.map["STATUS"]
        status = await self.registers.read32(status_register.offset)
        if status & status_register.field("error").mask:
            code = await self.registers.read32(self.map.offset("ERROR_CODE"))
            address = await self.registers.read32(self.map.offset("ERROR_ADDRESS_LO"))
            address |= await self.registers.read32(self.map.offset("ERROR_ADDRESS_HI")) << 32
            _sample_fault(code)
            raise CoreFault(code, address, await self.counters())
        if not finished or not status & status_register.field("done").mask:
            busy = bool(status & status_register.field("busy").mask)
            raise CoreTimeout(f"the core did not finish within {limit} cycles (expected {expected_cycles}); "
                              f"STATUS = {status:#x} (busy={int(busy)})")
        await self.registers.write32(self.map.offset("INTERRUPT_STATUS"), 0xFFFFFFFF)
        return RunResult(counters=await self.counters(), cycle_limit=limit)

    async def run(self, *, program_base: int, expected_cycles: int, segments: Mapping[int, bytes] | None = None,
                  clear_counters: bool = True) -> RunResult:
        """Load ``segments`` (if given), clear the counters, start at ``program_base`` and wait for the end."""
        if segments:
            await self.load(segments)
        if clear_counters:
            await self.command("clear_counters")
        await self.start(program_base)
        result = await self.wait(expected_cycles)
        await self._sample_program(program_base)
        return result

    async def _sample_program(self, program_base: int, *, chunk: int = 256, limit: int = 1 << 16) -> None:
        """Functional coverage (only in a simulation that records it): read the finished program back from DRAM
        (from ``program_base`` to its END, ``chunk`` instructions a read, at most ``limit``) and sample each
        instruction. The program finished, so every instruction up to END retired."""
        from wavecore.verif import coverage

        if not coverage.enabled():
            return
        from wavecore.golden.core import isa

        size, first = isa.INSTRUCTION_BYTES, 0
        while first < limit:
            try:
                image = await self.memory.read_block(program_base + first * size, chunk * size)
            except BusError:  # the chunk runs past the end of DRAM: go on one instruction at a time
                if chunk == 1:
                    return
                chunk = 1
                continue
            for at in range(0, len(image) - size + 1, size):
                try:
                    instruction = isa.decode(image[at : at + size])
                except ValueError:
                    return
                coverage.sample_core_instruction(instruction)
                if instruction.opcode == "END":
                    return
            first += chunk


def _sample_fault(code: int) -> None:
    """Functional coverage (only in a simulation that records it): the error code the core stopped with."""
    from wavecore.verif import coverage

    if not coverage.enabled() or code not in ErrorCode._value2member_map_:
        return
    if ErrorCode(code).name in coverage.CORE_BINS["fault"]:
        coverage.sample_core_fault(ErrorCode(code))


async def simulated_host(dut, *, data_width: int, register_map: RegisterMap | None = None) -> Host:
    """A :class:`Host` for a simulated system top (cocotb): starts the clock, drives the DRAM model's
    backdoor strobes low, resets, and talks to the ``s_axil_*`` port, the DRAM model's backdoor and ``irq``.

    Shared by every testbench of a system with the core's integration surface (the core, the copy system and
    their speed benches), so the bring-up sequence is written once.
    """
    from cocotbext.axi import AxiLiteBus, AxiLiteMaster

    from wavecore.verif.stream import reset, start_clock

    start_clock(dut)
    dut.backdoor_first.value = 0
    dut.backdoor_last.value = 0
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    memory = BackdoorMemory(dut, clock=dut.clk, data_width=data_width)
    await reset(dut)
    return Host(registers=AxiLiteRegisters(master), memory=memory, completion=InterruptLine(dut.irq),
                register_map=register_map)
