"""cocotb drivers and monitors for ``amaranth.lib.stream`` interfaces (valid/ready).

Amaranth flattens a stream member ``name`` of a component's signature into the Verilog ports
``name__payload``, ``name__valid`` and ``name__ready`` (``__ready`` is absent when the signature is
``always_ready``). Payloads are plain integers: the bit pattern of the payload; use
:mod:`wavecore.verif.packing` for array layouts.

Sampling rule (the same on Icarus and Verilator): outputs are driven right after a rising edge, and
handshakes are sampled in the read-only phase of the same cycle, i.e. after everything has settled and
before the next edge. A transfer happens at the edge that ends a cycle in which ``valid & ready`` was 1.
This sidesteps the simulators' different ordering of register updates and edge callbacks.

Waits are bounded (:mod:`wavecore.verif.waits`): :meth:`StreamDriver.wait_idle` and :meth:`StreamSink.receive_many`
take a cycle limit, by default :func:`~wavecore.verif.waits.cycle_limit` of the transfers awaited at the
endpoint's own stall rate plus ``latency`` (default :data:`DEFAULT_LATENCY` cycles); a design whose transfers
take longer per beat passes its own limit. A timeout raises :class:`~wavecore.verif.waits.WaitTimeout` naming the
stream and how many payloads moved.

Coverage (:mod:`wavecore.verif.coverage`): the first endpoint on a stream samples every transfer's idle gap
and backpressure run, and, once told where its payload's ``last``/``switch`` flags are (:meth:`cover_flags`), the
beats per flagged group.

Stalls: :class:`StreamDriver` inserts random idle cycles between transfers (``idle_probability``);
:class:`StreamSink` drops ``ready`` at random (``backpressure_probability``). Once ``valid`` is high the
driver holds the payload until it is accepted, as the stream protocol requires.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from wavecore.verif import coverage
from wavecore.verif.waits import cycle_limit, stalled, wait_for

__all__ = ["DEFAULT_LATENCY", "StreamDriver", "StreamMonitor", "StreamPorts", "StreamSink", "reset", "start_clock"]


DEFAULT_LATENCY = 64  # cycles a block may take before its first transfer (pipelines, memory reads)


def _port(dut, name: str, field: str, required: bool = True):
    try:
        return getattr(dut, f"{name}__{field}")
    except AttributeError:
        if required:
            raise AttributeError(f"the design has no stream port {name}__{field}") from None
        return None


def _high(handle) -> bool:
    value = handle.value
    return value.is_resolvable and int(value) == 1


def start_clock(dut, period_ns: float = 10, clock: str = "clk"):
    """Start a free-running clock on ``dut.<clock>``."""
    return Clock(getattr(dut, clock), period_ns, unit="ns").start()


async def reset(dut, cycles: int = 2, clock: str = "clk", reset_name: str = "rst", *, active_low: bool = False):
    """Hold a synchronous reset for ``cycles`` rising edges, then release it (Amaranth's ``rst`` is active
    high; AXI's ``aresetn`` is active low)."""
    signal = getattr(dut, reset_name)
    signal.value = int(not active_low)
    await ClockCycles(getattr(dut, clock), cycles)
    signal.value = int(active_low)


class StreamPorts:
    """The native Amaranth stream ports of a design (``<name>__payload/valid/ready``, clock ``clk``, reset
    ``rst``): makes the drivers, monitors and sinks a harness needs by port name.

    :class:`wavecore.verif.axis.AxisPorts` offers the same methods for a design's AXI4-Stream wrapper, so a
    harness written against this interface (:class:`wavecore.verif.gemm.GemmHarness`) runs on either.
    """

    clock = "clk"
    reset = "rst"
    reset_active_low = False

    def driver(self, dut, name: str, clock, *, idle_probability: float = 0.0, rng=None) -> StreamDriver:
        return StreamDriver(dut, name, clock, idle_probability=idle_probability, rng=rng)

    def monitor(self, dut, name: str, clock) -> StreamMonitor:
        return StreamMonitor(dut, name, clock)

    def sink(self, dut, name: str, clock, *, backpressure_probability: float = 0.0, rng=None) -> StreamSink:
        return StreamSink(dut, name, clock, backpressure_probability=backpressure_probability, rng=rng)

    async def reset_design(self, dut, cycles: int = 2) -> None:
        await reset(dut, cycles, self.clock, self.reset, active_low=self.reset_active_low)


_COVERED: dict = {}  # the endpoint sampling each stream's coverage (a later test's endpoint takes over)




class _Endpoint:
    def __init__(self, dut, name: str, clock, rng: np.random.Generator | None):
        self.name = name
        self.clock = clock
        self.payload = self._signal(dut, "payload")
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.cycle = 0  # cycles seen since start, for throughput measurements
        self._stream_path = getattr(self.payload, "_path", None) or id(self.payload)
        self._gap = 0
        self._stall = 0
        self._flags: dict[str, int] = {}
        self._group: dict[str, int | None] = {}

    def cover_flags(self, **bits: int) -> None:
        """Sample the beats per group of the payload flags ``last`` (closes a group) and ``switch`` (opens one),
        given their bit positions in the payload."""
        for flag, bit in bits.items():
            if flag not in ("last", "switch"):
                raise ValueError(f"flag must be one of last, switch, not {flag!r}")
            self._flags[flag] = int(bit)
            self._group[flag] = 0 if flag == "last" else None

    def _observe(self, valid: bool, ready: bool) -> None:
        """Coverage of one cycle's handshake (called in the read-only phase)."""
        owner = _COVERED.get(self._stream_path)
        if owner is not self:
            if owner is not None and not owner._task.done():
                return  # another live endpoint on this stream samples it
            _COVERED[self._stream_path] = self
        if not valid:
            self._gap += 1
            return
        if not ready:
            self._stall += 1
            return
        coverage.sample_stream_transfer(self._gap, self._stall)
        self._gap = self._stall = 0
        if self._flags:
            payload = int(self.payload.value)
            for flag, bit in self._flags.items():
                high = payload >> bit & 1
                if flag == "last":
                    self._group[flag] += 1
                    if high:
                        coverage.sample_stream_group(flag, self._group[flag])
                        self._group[flag] = 0
                else:
                    if high:
                        if self._group[flag]:
                            coverage.sample_stream_group(flag, self._group[flag])
                        self._group[flag] = 0
                    if self._group[flag] is not None:
                        self._group[flag] += 1

    def _signal(self, dut, part: str, required: bool = True):
        """The handle of stream part ``payload``/``valid``/``ready`` (subclasses map other naming schemes)."""
        return _port(dut, self.name, part, required)

    def _sample(self) -> int:
        """The payload now on the port, as an integer."""
        return int(self.payload.value)


class StreamDriver(_Endpoint):
    """Drive ``name`` (a stream *into* the design) from a queue of payloads.

    Parameters
    ----------
    dut : cocotb handle of the top level
    name : str
        Stream member name (ports ``<name>__payload/valid/ready``).
    clock : cocotb handle of the clock
    idle_probability : float
        Chance, per cycle, of holding ``valid`` low before offering the next payload.
    rng : numpy Generator for the idle pattern.
    """

    def __init__(self, dut, name: str, clock, *, idle_probability: float = 0.0, rng=None):
        super().__init__(dut, name, clock, rng)
        if not 0 <= idle_probability < 1:
            raise ValueError(f"idle_probability must be in [0, 1), not {idle_probability}")
        self.valid = self._signal(dut, "valid")
        self.ready = self._signal(dut, "ready", required=False)
        self.idle_probability = idle_probability
        self.queue: deque[int] = deque()
        self.sent = 0
        self._current: int | None = None
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def append(self, payload: int) -> None:
        self.queue.append(int(payload))

    def extend(self, payloads: Iterable[int]) -> None:
        self.queue.extend(int(payload) for payload in payloads)

    @property
    def idle(self) -> bool:
        return not self.queue and self._current is None

    @property
    def pending(self) -> int:
        """Payloads queued or offered and not yet accepted."""
        return len(self.queue) + (self._current is not None)

    async def send(self, payloads: Iterable[int], *, cycles: int | None = None) -> None:
        """Queue ``payloads`` and wait until every queued payload has been accepted (limit as :meth:`wait_idle`)."""
        self.extend(payloads)
        await self.wait_idle(cycles=cycles)

    async def wait_idle(self, *, cycles: int | None = None, latency: int = DEFAULT_LATENCY) -> None:
        """Wait until every queued payload has been accepted, at most ``cycles`` cycles (default: the
        :func:`~wavecore.verif.waits.cycle_limit` of the pending payloads at this driver's idle rate plus
        ``latency``)."""
        if cycles is None:
            cycles = cycle_limit(stalled(self.pending, self.idle_probability), latency=latency)
        total = self.sent + self.pending
        await wait_for(lambda: self.idle, clock=self.clock, cycles=cycles,
                       what=f"stream {self.name}: every queued payload accepted",
                       progress=lambda: f"{self.sent} of {total} accepted, ready held low")

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clock)
            self.cycle += 1
            if self._current is None:
                if self.queue and not (self.idle_probability and self.rng.random() < self.idle_probability):
                    self._current = self.queue.popleft()
                    self.payload.value = self._current
                    self.valid.value = 1
                else:
                    self.valid.value = 0
            await ReadOnly()
            ready = self.ready is None or _high(self.ready)
            self._observe(self._current is not None, ready)
            if self._current is not None and ready:
                self._current = None
                self.sent += 1


class StreamSink(_Endpoint):
    """Accept payloads from ``name`` (a stream *out of* the design) with random backpressure.

    Received payloads collect in :attr:`received` (and, with their cycle numbers, :attr:`transfers`).
    """

    def __init__(self, dut, name: str, clock, *, backpressure_probability: float = 0.0, rng=None):
        super().__init__(dut, name, clock, rng)
        if not 0 <= backpressure_probability < 1:
            raise ValueError(f"backpressure_probability must be in [0, 1), not {backpressure_probability}")
        self.valid = self._signal(dut, "valid", required=False)
        self.ready = self._signal(dut, "ready", required=False)
        self.backpressure_probability = backpressure_probability
        self.received: deque[int] = deque()
        self.transfers: list[tuple[int, int]] = []
        if self.ready is not None:
            self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clock)
            self.cycle += 1
            ready = not (self.backpressure_probability and self.rng.random() < self.backpressure_probability)
            if self.ready is not None:
                self.ready.value = int(ready)
            await ReadOnly()
            valid = self.valid is None or _high(self.valid)
            self._observe(valid, ready)
            if valid and ready:
                value = int(self.payload.value)
                self.received.append(value)
                self.transfers.append((self.cycle, value))

    async def receive(self, timeout_cycles: int | None = None, *, latency: int = DEFAULT_LATENCY) -> int:
        """The next payload, waiting at most ``timeout_cycles`` (default as :meth:`receive_many`)."""
        return (await self.receive_many(1, timeout_cycles, latency=latency))[0]

    async def receive_many(self, count: int, timeout_cycles: int | None = None, *,
                           latency: int = DEFAULT_LATENCY) -> list[int]:
        """The next ``count`` payloads, waiting at most ``timeout_cycles`` (default: the
        :func:`~wavecore.verif.waits.cycle_limit` of ``count`` transfers at this sink's backpressure rate plus
        ``latency``); raises :class:`~wavecore.verif.waits.WaitTimeout` naming how many arrived."""
        if timeout_cycles is None:
            timeout_cycles = cycle_limit(stalled(count, self.backpressure_probability), latency=latency)
        await wait_for(lambda: len(self.received) >= count, clock=self.clock, cycles=timeout_cycles,
                       what=f"stream {self.name}: {count} payloads",
                       progress=lambda: f"{len(self.received)} arrived")
        return [self.received.popleft() for _ in range(count)]

    async def serve(self, answer) -> None:
        """Answer every payload that arrives, forever: ``answer(payload)`` for each, in order. For a background
        task (started with ``cocotb.start_soon``) that plays a memory or a peer; it ends with the test, so it
        has no limit: the test's own bounded waits catch a design that never asks."""
        while True:
            while self.received:
                answer(self.received.popleft())
            await RisingEdge(self.clock)


class StreamMonitor(_Endpoint):
    """Passively record every transfer on ``name`` (cycle number and payload); drives nothing."""

    def __init__(self, dut, name: str, clock):
        super().__init__(dut, name, clock, None)
        self.valid = self._signal(dut, "valid", required=False)
        self.ready = self._signal(dut, "ready", required=False)
        self.transfers: list[tuple[int, int]] = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clock)
            self.cycle += 1
            await ReadOnly()
            valid = self.valid is None or _high(self.valid)
            ready = self.ready is None or _high(self.ready)
            self._observe(valid, ready)
            if valid and ready:
                self.transfers.append((self.cycle, self._sample()))
