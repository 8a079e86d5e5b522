"""cocotb access to a block's AXI4-Stream wrapper (``wavecore generate ... --wrapper sv``) through cocotbext-axi.

:class:`AxisPorts` has the methods of :class:`wavecore.verif.stream.StreamPorts`, so a harness written for a
block's own ports (:class:`wavecore.verif.gemm.GemmHarness`) drives the wrapper unchanged: payloads stay the
block's packed Amaranth payloads and are converted to and from ``(tdata, tlast, tuser)`` by
:class:`wavecore.hdl.dropin.AxisPort`, the same description the wrapper's Verilog is generated from.

* :class:`AxisDriver` queues payloads on a ``cocotbext.axi.AxiStreamSource``: beats up to one whose ``last``
  flag is set form one frame (the source raises ``tlast`` on its final beat); a stream without ``last`` sends
  every beat as a frame of its own. Idle cycles come from the source's pause generator.
* :class:`AxisSink` receives with a ``cocotbext.axi.AxiStreamSink`` (backpressure from its pause generator)
  and collects the payloads it hands out in :attr:`AxisSink.payloads`; an :class:`AxisMonitor` on the same
  port stamps every transfer with its cycle (:attr:`AxisSink.transfers`), so the two observers can be
  compared.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

import cocotb
import numpy as np

from wavecore.hdl.dropin import AxisPort, axis_ports
from wavecore.verif.stream import DEFAULT_LATENCY, StreamMonitor, StreamPorts
from wavecore.verif.waits import cycle_limit, stalled, wait_for

__all__ = ["AxisDriver", "AxisMonitor", "AxisPorts", "AxisSink"]

_PARTS = {"payload": "tdata", "valid": "tvalid", "ready": "tready"}


def _pauses(rng: np.random.Generator, probability: float):
    """An endless pause pattern for cocotbext-axi: ``True`` (pause this cycle) with ``probability``."""
    while True:
        yield bool(probability) and bool(rng.random() < probability)


def _bus(dut, port: AxisPort):
    from cocotbext.axi import AxiStreamBus

    return AxiStreamBus.from_prefix(dut, port.prefix)


class AxisMonitor(StreamMonitor):
    """:class:`wavecore.verif.stream.StreamMonitor` on an AXI4-Stream port: records ``(cycle, payload)`` with
    the payload rebuilt from ``tdata``/``tlast``/``tuser``."""

    def __init__(self, dut, port: AxisPort, clock):
        self.port = port
        self.tlast = getattr(dut, f"{port.prefix}_tlast") if port.last is not None else None
        self.tuser = getattr(dut, f"{port.prefix}_tuser") if port.user else None
        super().__init__(dut, port.port, clock)

    def _signal(self, dut, part: str, required: bool = True):
        name = f"{self.port.prefix}_{_PARTS[part]}"
        if not hasattr(dut, name):
            if required:
                raise AttributeError(f"the design has no AXI4-Stream port {name}")
            return None
        return getattr(dut, name)

    def _sample(self) -> int:
        tlast = int(self.tlast.value) if self.tlast is not None else 0
        tuser = int(self.tuser.value) if self.tuser is not None else 0
        return self.port.from_axis(int(self.payload.value), tlast, tuser)


class AxisDriver:
    """Send payloads into ``s_axis_<port>`` with a cocotbext-axi ``AxiStreamSource`` (see the module docstring).

    Same methods as :class:`wavecore.verif.stream.StreamDriver`: :meth:`append`, :meth:`extend`,
    :meth:`wait_idle`.
    """

    def __init__(self, dut, port: AxisPort, clock, *, idle_probability: float = 0.0, rng=None):
        from cocotbext.axi import AxiStreamSource

        if port.direction != "in":
            raise ValueError(f"port {port.port} is an output; drive only s_axis ports")
        if not 0 <= idle_probability < 1:
            raise ValueError(f"idle_probability must be in [0, 1), not {idle_probability}")
        self.port = port
        self.clock = clock
        # byte_lanes=1: one tdata word per list element of a frame (there is no tkeep).
        self.source = AxiStreamSource(_bus(dut, port), clock, byte_lanes=1)
        # AxiStreamSource starts tdata/tuser/tlast at X; a block's ready may depend on its own payload while valid
        # is low (the WS array's a.ready on a's switch flag), and the source cannot sample an X ready. Start at 0.
        for name in ("tdata", "tuser", "tlast"):
            if hasattr(self.source.bus, name):
                getattr(self.source.bus, name).value = 0
        rng = rng if rng is not None else np.random.default_rng(0)
        self.source.set_pause_generator(_pauses(rng, idle_probability))
        self.idle_probability = idle_probability
        self._pending: list[tuple[int, int, int]] = []
        self._queued = 0
        self.monitor = AxisMonitor(dut, port, clock)

    def append(self, payload: int) -> None:
        self.extend([payload])

    def extend(self, payloads: Iterable[int]) -> None:
        from cocotbext.axi import AxiStreamFrame

        for payload in payloads:
            self._queued += 1
            self._pending.append(self.port.to_axis(int(payload)))
            tlast = self._pending[-1][1]
            if self.port.last is None or tlast:
                frame = AxiStreamFrame(tdata=[beat[0] for beat in self._pending],
                                       tuser=[beat[2] for beat in self._pending])
                self.source.send_nowait(frame)
                self._pending = []

    @property
    def idle(self) -> bool:
        return not self._pending and self.source.idle()

    async def wait_idle(self, *, cycles: int | None = None, latency: int = DEFAULT_LATENCY) -> None:
        """Wait until every queued beat has been accepted, at most ``cycles`` (default as
        :meth:`wavecore.verif.stream.StreamDriver.wait_idle`)."""
        if self._pending:
            raise ValueError(f"stream {self.port.port}: {len(self._pending)} beats queued without a closing "
                             "'last' flag (tlast) cannot be sent as a frame")
        if cycles is None:
            pending = self._queued - len(self.monitor.transfers)
            cycles = cycle_limit(stalled(max(pending, 0), self.idle_probability), latency=latency)
        await wait_for(lambda: self.source.idle(), clock=self.clock, cycles=cycles,
                       what=f"AXI4-Stream {self.port.prefix}: every queued beat accepted",
                       progress=lambda: f"{len(self.monitor.transfers)} of {self._queued} beats accepted")


class AxisSink:
    """Receive from ``m_axis_<port>`` with a cocotbext-axi ``AxiStreamSink`` under random backpressure.

    :attr:`transfers` (``(cycle, payload)``, from an :class:`AxisMonitor`) and :attr:`received` (payloads not yet
    consumed) follow :class:`wavecore.verif.stream.StreamSink`; :attr:`payloads` are every payload in the frames
    the ``AxiStreamSink`` delivered, in order.
    """

    def __init__(self, dut, port: AxisPort, clock, *, backpressure_probability: float = 0.0, rng=None):
        from cocotbext.axi import AxiStreamSink

        if port.direction != "out":
            raise ValueError(f"port {port.port} is an input; receive only from m_axis ports")
        if not 0 <= backpressure_probability < 1:
            raise ValueError(f"backpressure_probability must be in [0, 1), not {backpressure_probability}")
        self.port = port
        self.clock = clock
        self.sink = AxiStreamSink(_bus(dut, port), clock, byte_lanes=1)
        # AxiStreamSink drives tready from its first clock edge on; until then it would be X, and the array's input
        # ready signals (which follow the output's backpressure) with it, which the sources cannot sample.
        self.sink.bus.tready.value = 0
        rng = rng if rng is not None else np.random.default_rng(0)
        self.sink.set_pause_generator(_pauses(rng, backpressure_probability))
        self.monitor = AxisMonitor(dut, port, clock)
        self.received: deque[int] = deque()
        self.payloads: list[int] = []
        self._task = cocotb.start_soon(self._collect())

    @property
    def transfers(self) -> list[tuple[int, int]]:
        return self.monitor.transfers

    async def _collect(self) -> None:
        while True:
            frame = await self.sink.recv()
            count = len(frame.tdata)
            users = frame.tuser if isinstance(frame.tuser, list) else [frame.tuser or 0] * count
            for index, (tdata, tuser) in enumerate(zip(frame.tdata, users)):
                payload = self.port.from_axis(int(tdata), int(index == count - 1), int(tuser or 0))
                self.payloads.append(payload)
                self.received.append(payload)

    async def wait_payloads(self, count: int, timeout_cycles: int) -> None:
        """Wait until :attr:`payloads` holds ``count`` entries; :class:`~wavecore.verif.waits.WaitTimeout` after
        ``timeout_cycles``."""
        await wait_for(lambda: len(self.payloads) >= count, clock=self.clock, cycles=timeout_cycles,
                       what=f"AXI4-Stream {self.port.prefix}: {count} payloads from the AxiStreamSink",
                       progress=lambda: f"{len(self.payloads)} arrived")


class AxisPorts(StreamPorts):
    """The AXI4-Stream wrapper of a block (clock ``aclk``, active-low reset ``aresetn``), described by the block's
    JSON record (``wavecore generate`` writes it; ``ports.<port>.fields`` is all that is read)."""

    clock = "aclk"
    reset = "aresetn"
    reset_active_low = True

    def __init__(self, record: Mapping):
        self.streams = axis_ports(record)

    def _port(self, name: str) -> AxisPort:
        if name not in self.streams:
            raise ValueError(f"the block has no stream port {name!r} (streams: {', '.join(self.streams)})")
        return self.streams[name]

    def driver(self, dut, name: str, clock, *, idle_probability: float = 0.0, rng=None) -> AxisDriver:
        return AxisDriver(dut, self._port(name), clock, idle_probability=idle_probability, rng=rng)

    def monitor(self, dut, name: str, clock) -> AxisMonitor:
        return AxisMonitor(dut, self._port(name), clock)

    def sink(self, dut, name: str, clock, *, backpressure_probability: float = 0.0, rng=None) -> AxisSink:
        return AxisSink(dut, self._port(name), clock, backpressure_probability=backpressure_probability, rng=rng)
