"""AXI4 helpers for cocotb testbenches: DRAM models with stalls and latency, and a protocol monitor.

* :func:`attach_axi_ram` puts ``cocotbext-axi``'s ``AxiRam`` on a design's AXI4 manager port with random
  backpressure on AW/W/AR, random valid gaps on R/B and a random extra latency per burst. ``AxiRam``
  serves one burst at a time per direction, so it cannot show what outstanding transactions buy.
* :class:`PipelinedAxiRam` is a small DRAM model with a *fixed* latency that accepts any number of
  bursts and overlaps them: the first R beat of a burst accepted at cycle ``t`` is valid at cycle
  ``t + 1 + latency``; beats follow back to back. The bandwidth benchmark uses it.
* :class:`AxiMonitor` watches the five channels passively: it counts the bytes of every R and W beat
  (strobes included), checks every AR/AW against the 4 KiB rule and the outstanding-burst limit, and
  records the bursts it saw; and samples the DMA coverpoints of :mod:`wavecore.verif.coverage` (why each burst
  ended, the outstanding limit reached per channel, response latencies).
* :func:`descriptor_bursts` and :func:`descriptor_bytes` are the reference for what a DMA descriptor
  must put on the bus (written from the AXI4 rules, independently of ``hdl/memory/dma.py``).

The AXI port is found as ``<prefix>awaddr`` etc.; Amaranth flattens a member ``axi`` with AMBA-named
fields into ``axi__awaddr``, i.e. ``prefix="axi__"``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from wavecore.verif import coverage

__all__ = [
    "AXI_ROUND_TRIP",
    "AxiMonitor",
    "BURST_INCR",
    "Burst",
    "DMA_BURST_FIELDS",
    "PipelinedAxiRam",
    "attach_axi_ram",
    "descriptor_bursts",
    "descriptor_bytes",
]

PAGE_BYTES = 4096
# Cycles from an address handshake to its first R beat (or from the last W beat to its B response) when nothing
# stalls, bounded for the models here and cocotbext-axi's AxiRam (which answers within a few cycles): the latency
# term of a testbench's cycle limit per burst, on top of any extra latency a model is given.
AXI_ROUND_TRIP = 8


@dataclass(frozen=True)
class Burst:
    address: int
    beats: int


def descriptor_bursts(
    *,
    address: int,
    length: int,
    count1: int = 1,
    stride1: int = 0,
    count2: int = 1,
    stride2: int = 0,
    beat_bytes: int,
    max_burst: int,
) -> list[Burst]:
    """The INCR bursts a descriptor must produce: each row of ``length`` words split greedily at
    ``max_burst`` beats and at every 4 KiB boundary. Addresses and strides are rounded down to whole
    words, as the DMA ignores their low bits."""
    word = beat_bytes
    bursts = []
    if 0 in (length, count1, count2):
        return bursts
    for plane in range(count2):
        for row in range(count1):
            start = (address // word + plane * (stride2 // word) + row * (stride1 // word)) * word
            remaining = length
            while remaining:
                to_page = (PAGE_BYTES - start % PAGE_BYTES) // word
                beats = min(remaining, max_burst, to_page)
                bursts.append(Burst(start, beats))
                start += beats * word
                remaining -= beats
    return bursts


def descriptor_bytes(*, length: int, count1: int = 1, count2: int = 1, beat_bytes: int, **_ignored) -> int:
    """DRAM bytes one descriptor moves (each way it is used): ``length * count1 * count2`` words."""
    return length * count1 * count2 * beat_bytes


#: AXI4 burst type INCR (AMBA AXI, A3.4.1).
BURST_INCR = 1

#: The AR/AW fields of every burst of the DMA (``hdl/memory/dma.py``: ID 0, INCR bursts).
DMA_BURST_FIELDS = {"id": 0, "burst": BURST_INCR}


def _port(dut, prefix: str, name: str):
    return getattr(dut, f"{prefix}{name}")


def _high(handle) -> bool:
    value = handle.value
    return value.is_resolvable and int(value) == 1


def attach_axi_ram(
    dut,
    *,
    clock,
    reset,
    rng,
    prefix: str = "axi__",
    size: int = 1 << 20,
    stall_probability: float = 0.0,
    max_latency: int = 0,
):
    """``cocotbext.axi.AxiRam`` on ``dut``'s AXI port, stressed with random stalls and latency.

    ``stall_probability`` is the chance per cycle that a channel pauses (ready low on AW/W/AR, valid
    low on R/B); ``max_latency`` adds a uniform 0..max_latency cycle wait after each address handshake.
    Returns the ``AxiRam`` (``ram.read(address, n)`` / ``ram.write(address, bytes)`` for set-up/checks).
    """
    from cocotbext.axi import AxiBus, AxiRam

    # cocotb-bus joins prefix and signal with one "_": "axi_" + "_" + "awaddr" = "axi__awaddr".
    ram = AxiRam(AxiBus.from_prefix(dut, prefix[:-1]), clock, reset, size=size)
    if stall_probability:

        def pauses():
            while True:
                yield bool(rng.random() < stall_probability)

        for channel in (
            ram.write_if.aw_channel,
            ram.write_if.w_channel,
            ram.write_if.b_channel,
            ram.read_if.ar_channel,
            ram.read_if.r_channel,
        ):
            channel.set_pause_generator(pauses())
    if max_latency:
        for channel in (ram.read_if.ar_channel, ram.write_if.aw_channel):
            _delay_receive(channel, clock, rng, max_latency)
    return ram


def _delay_receive(channel, clock, rng, max_latency: int) -> None:
    receive = channel.recv

    async def delayed():
        transaction = await receive()
        cycles = int(rng.integers(0, max_latency + 1))
        if cycles:
            await ClockCycles(clock, cycles)
        return transaction

    channel.recv = delayed


class AxiMonitor:
    """Passive AXI4 monitor: byte counts, 4 KiB rule, outstanding bursts, burst log.

    ``errors`` collects protocol violations (checked again by :meth:`check`); ``read_bursts`` and
    ``write_bursts`` list the :class:`Burst` of every AR/AW handshake, in order.

    Coverage: each burst ends at a 4 KiB ``page`` boundary, at ``max_burst`` beats (when given) or before both
    (``row_end``); the outstanding limit is sampled when a channel reaches ``max_outstanding``; a response's latency
    is counted from the earliest cycle it could have come (the cycle after its address handshake or the previous
    burst's last beat, for R; after its last W beat, for B), so a zero-latency subordinate samples 0.

    ``idle`` names the manager's idle outputs per channel (``{"read": "read_idle", "write": "write_idle"}`` for
    the DMA): in any cycle one of them is high, no burst of its channel accepted in an earlier cycle may still be
    waiting for its last R beat (read) or its B response (write).

    ``fields`` are AR/AW fields every burst must carry, by name without the channel prefix (the DMA documents
    ``{"id": 0, "burst": BURST_INCR}``: :data:`DMA_BURST_FIELDS`).
    """

    def __init__(self, dut, clock, *, prefix: str = "axi__", max_outstanding: int | None = None,
                 max_burst: int | None = None, cover: bool = True, idle: dict[str, str] | None = None,
                 fields: dict[str, int] | None = None):
        self.idle = dict(idle or {})
        self.fields = dict(fields or {})
        self.dut = dut
        self.clock = clock
        self.prefix = prefix
        self.max_outstanding = max_outstanding
        self.max_burst = max_burst
        self.cover = cover  # False: not a DMA (the coverpoints describe the DMA's traffic)
        self._read_starts: deque[int] = deque()  # cycle each outstanding AR was accepted
        self._read_first_beat = True
        self._last_read_beat = 0
        self._write_ends: deque[int] = deque()  # cycle of each burst's last W beat, awaiting B
        self.data_bytes = len(_port(dut, prefix, "wdata")) // 8
        self.bytes_read = 0
        self.bytes_written = 0
        self.read_bursts: list[Burst] = []
        self.write_bursts: list[Burst] = []
        self.read_outstanding = 0
        self.write_outstanding = 0
        self.peak_read_outstanding = 0
        self.peak_write_outstanding = 0
        self.read_beats = 0
        self.write_beats = 0
        self.cycle = 0
        self.first_beat_cycle: int | None = None
        self.last_beat_cycle: int | None = None
        self.errors: list[str] = []
        self._read_beats_left: deque[int] = deque()
        self._task = cocotb.start_soon(self._run())

    def _address(self, channel: str) -> Burst:
        address = int(_port(self.dut, self.prefix, f"{channel}addr").value)
        beats = int(_port(self.dut, self.prefix, f"{channel}len").value) + 1
        size = 1 << int(_port(self.dut, self.prefix, f"{channel}size").value)
        burst = Burst(address, beats)
        for name, expected in self.fields.items():
            value = int(_port(self.dut, self.prefix, f"{channel}{name}").value)
            if value != expected:
                self.errors.append(f"{channel.upper()} at {address:#x}: {channel}{name} = {value}, expected {expected}")
        if size != self.data_bytes:
            self.errors.append(
                f"{channel.upper()} at {address:#x}: size {size} bytes, bus is {self.data_bytes}"
            )
        if address % PAGE_BYTES + beats * size > PAGE_BYTES:
            self.errors.append(f"{channel.upper()} burst at {address:#x} of {beats} beats crosses 4 KiB")
        return burst

    def _cover_burst(self, channel: str, burst: Burst) -> None:
        if not self.cover:
            return
        end = burst.address + burst.beats * self.data_bytes
        if end % PAGE_BYTES == 0:
            reason = "page"
        elif burst.beats == self.max_burst:
            reason = "max_burst"
        else:
            reason = "row_end"
        coverage.sample_axi_burst(channel, reason)

    def _fired(self, channel: str) -> bool:
        return _high(_port(self.dut, self.prefix, f"{channel}valid")) and _high(
            _port(self.dut, self.prefix, f"{channel}ready")
        )

    def _beat(self) -> None:
        if self.first_beat_cycle is None:
            self.first_beat_cycle = self.cycle
        self.last_beat_cycle = self.cycle

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clock)
            self.cycle += 1
            await ReadOnly()
            for channel, name in self.idle.items():
                outstanding = self.read_outstanding if channel == "read" else self.write_outstanding
                if _high(getattr(self.dut, name)) and outstanding:
                    self.errors.append(f"cycle {self.cycle}: {name} high with {outstanding} {channel} burst(s) "
                                       f"still outstanding")
            if self._fired("ar"):
                burst = self._address("ar")
                self.read_bursts.append(burst)
                self._read_beats_left.append(burst.beats)
                self._read_starts.append(self.cycle)
                self.read_outstanding += 1
                self._cover_burst("read", burst)
                if self.cover and self.read_outstanding == self.max_outstanding:
                    coverage.sample_axi_outstanding("read")
            if self._fired("aw"):
                self.write_bursts.append(self._address("aw"))
                self.write_outstanding += 1
                self._cover_burst("write", self.write_bursts[-1])
                if self.cover and self.write_outstanding == self.max_outstanding:
                    coverage.sample_axi_outstanding("write")
            self.peak_read_outstanding = max(self.peak_read_outstanding, self.read_outstanding)
            self.peak_write_outstanding = max(self.peak_write_outstanding, self.write_outstanding)
            if (
                self.max_outstanding is not None
                and max(self.read_outstanding, self.write_outstanding) > self.max_outstanding
            ):
                self.errors.append(
                    f"cycle {self.cycle}: {self.read_outstanding} read / "
                    f"{self.write_outstanding} write bursts outstanding, limit "
                    f"{self.max_outstanding}"
                )
            if self._fired("r"):
                self.bytes_read += self.data_bytes
                self.read_beats += 1
                self._beat()
                if self.cover and self._read_first_beat and self._read_starts:
                    earliest = max(self._read_starts.popleft(), self._last_read_beat)
                    coverage.sample_axi_latency("read", self.cycle - earliest - 1)
                self._last_read_beat = self.cycle
                last = _high(_port(self.dut, self.prefix, "rlast"))
                if not self._read_beats_left:
                    self.errors.append(f"cycle {self.cycle}: R beat with no outstanding AR")
                else:
                    self._read_beats_left[0] -= 1
                    if last != (self._read_beats_left[0] == 0):
                        self.errors.append(
                            f"cycle {self.cycle}: RLAST={int(last)} with "
                            f"{self._read_beats_left[0]} beats left"
                        )
                    self._read_first_beat = bool(last)
                    if last:
                        self._read_beats_left.popleft()
                        self.read_outstanding -= 1
            if self._fired("w"):
                strobe = int(_port(self.dut, self.prefix, "wstrb").value)
                self.bytes_written += bin(strobe).count("1")
                self.write_beats += 1
                self._beat()
                if _high(_port(self.dut, self.prefix, "wlast")):
                    self._write_ends.append(self.cycle)
            if self._fired("b"):
                self.write_outstanding -= 1
                if self.cover and self._write_ends:
                    coverage.sample_axi_latency("write", self.cycle - self._write_ends.popleft() - 1)

    def check(self) -> None:
        assert not self.errors, "AXI protocol violations:\n" + "\n".join(self.errors[:20])


class PipelinedAxiRam:
    """AXI4 subordinate with a fixed latency and unlimited overlap of bursts (for bandwidth figures).

    Always ready on AW, W and AR. Read: beats of a burst accepted at cycle ``t`` are valid from cycle
    ``t + 1 + latency``, back to back, bursts in order. Write: data are accepted at once and the B
    response is valid ``1 + latency`` cycles after the last W beat. Memory is a sparse dict of bytes.
    """

    def __init__(self, dut, clock, *, prefix: str = "axi__", latency: int = 0):
        self.dut = dut
        self.clock = clock
        self.prefix = prefix
        self.latency = latency
        self.data_bytes = len(_port(dut, prefix, "wdata")) // 8
        self.memory: dict[int, int] = {}
        self._reads: deque[tuple[int, int, int]] = deque()  # (ready cycle, address, beats left)
        self._writes: deque[tuple[int, int]] = deque()  # (address, beats) awaiting W data
        self._responses: deque[int] = deque()  # cycle each B becomes valid
        self.cycle = 0
        for name in ("awready", "wready", "arready"):
            _port(dut, prefix, name).value = 1
        for name in ("rvalid", "bvalid", "rlast"):
            _port(dut, prefix, name).value = 0
        for name in ("rresp", "bresp", "rid", "bid", "rdata"):
            _port(dut, prefix, name).value = 0
        self._task = cocotb.start_soon(self._run())

    def write_bytes(self, address: int, payload: bytes) -> None:
        for offset, byte in enumerate(payload):
            self.memory[address + offset] = byte

    def read_bytes(self, address: int, count: int) -> bytes:
        return bytes(self.memory.get(address + offset, 0) for offset in range(count))

    def _word(self, address: int) -> int:
        return int.from_bytes(self.read_bytes(address, self.data_bytes), "little")

    async def _run(self) -> None:
        port = lambda name: _port(self.dut, self.prefix, name)  # noqa: E731
        write_beat = 0
        while True:
            await RisingEdge(self.clock)
            self.cycle += 1
            # Drive outputs for this cycle.
            head = self._reads[0] if self._reads else None
            if head is not None and head[0] <= self.cycle:
                ready_cycle, address, beats = head
                port("rvalid").value = 1
                port("rdata").value = self._word(address)
                port("rlast").value = int(beats == 1)
            else:
                port("rvalid").value = 0
            port("bvalid").value = int(bool(self._responses) and self._responses[0] <= self.cycle)
            await ReadOnly()
            if _high(port("rvalid")) and _high(port("rready")):
                ready_cycle, address, beats = self._reads.popleft()
                if beats > 1:
                    self._reads.appendleft((ready_cycle, address + self.data_bytes, beats - 1))
            if _high(port("bvalid")) and _high(port("bready")):
                self._responses.popleft()
            if _high(port("arvalid")):
                address = int(port("araddr").value)
                self._reads.append((self.cycle + 1 + self.latency, address, int(port("arlen").value) + 1))
            if _high(port("awvalid")):
                self._writes.append((int(port("awaddr").value), int(port("awlen").value) + 1))
            if _high(port("wvalid")):
                if not self._writes:
                    raise AssertionError("W beat before its AW (this model needs AW first)")
                address, beats = self._writes[0]
                data = int(port("wdata").value)
                strobe = int(port("wstrb").value)
                base = address + write_beat * self.data_bytes
                for lane in range(self.data_bytes):
                    if strobe >> lane & 1:
                        self.memory[base + lane] = (data >> (8 * lane)) & 0xFF
                write_beat += 1
                if write_beat == beats:
                    write_beat = 0
                    self._writes.popleft()
                    self._responses.append(self.cycle + 1 + self.latency)
