"""The WaveCore top with the HDL DRAM model behind its ``m_axi`` port: the system the host driver runs.

:class:`CoreSystem` exposes what :class:`wavecore.verif.host.Host` needs under cocotb: the core's ``s_axil_*``
register port, ``irq`` and ``bus_request`` (the core presents an AXI read or write address), and the DRAM
model's backdoor (``backdoor_load``, ``backdoor_dump``,
``backdoor_first``, ``backdoor_last``), so a test loads a program and its data through a file, starts the
core and waits for ``irq`` with Python idle (as :mod:`wavecore.verif.copy_system` does for the DMA alone).

The ``rst`` input reaches the core through one register: the core leaves reset one cycle after ``rst`` falls (the
DRAM model, whose reset sits inside its clocked process, takes ``rst`` directly, so its backdoor works at once).
Amaranth folds the reset into the next-state logic of every register, and Verilator evaluates all logic that
depends combinationally on a top-level input at every ``eval`` (twice per clock cycle under cocotb): with ``rst``
straight from the port, that was the whole core's next-state logic, evaluated three times per cycle instead of once.
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, DomainRenamer, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from wavecore.golden.core.semantics import CoreParameters
from wavecore.hdl.core.dram_model import DramModel, connect_backdoor, system_members
from wavecore.hdl.core.wavecore import WaveCore

__all__ = ["CoreSystem"]


class CoreSystem(wiring.Component):
    """:class:`WaveCore` + :class:`DramModel` of ``parameters.dram_bytes`` bytes.

    Parameters
    ----------
    parameters : CoreParameters
    data_width, max_burst, max_outstanding, queue_depth, token_width : int
        The core's (see :class:`WaveCore`).
    dram_outstanding, seed, stall, latency_min, latency_max : int
        The DRAM model's defaults (plusargs override them at run time).
    numerics, units
        The core's compute arithmetic and units (see :class:`WaveCore`).
    model_bytes : int or None
        Size of the DRAM model (default ``parameters.dram_bytes``). A smaller model answers accesses above it
        with DECERR while the core's range check passes them: the test of the AXI error states.
    """

    def __init__(self, *, parameters: CoreParameters | None = None, data_width: int = 64, max_burst: int = 16,
                 max_outstanding: int = 4, queue_depth: int = 4, token_width: int = 8, dram_outstanding: int = 8,
                 seed: int = 1, stall: int = 0, latency_min: int = 0, latency_max: int = 0,
                 model_bytes: int | None = None, numerics=None, units=None):
        self.core = WaveCore(parameters=parameters, data_width=data_width, max_burst=max_burst,
                             max_outstanding=max_outstanding, queue_depth=queue_depth, token_width=token_width,
                             numerics=numerics, units=units)
        self.dram = DramModel(address_width=32, data_width=data_width,
                              size_bytes=model_bytes or self.core.parameters.dram_bytes,
                              outstanding=dram_outstanding, seed=seed, stall=stall, latency_min=latency_min,
                              latency_max=latency_max)
        self.register_map = self.core.register_map
        # bus_request: the core presents an AXI read or write address (AR or AW valid) this cycle, for tests that
        # check the core is silent on the bus after `done`
        super().__init__({**system_members(self.register_map.address_width), "bus_request": Out(1)})

    def elaborate(self, platform):
        m = Module()
        # the registered reset (see the module docstring): domain "system" = clk + rst delayed by one cycle
        m.domains.system = system = ClockDomain("system", local=True)
        reset = Signal(init=1)
        m.d.sync += reset.eq(0)
        m.d.comb += [system.clk.eq(ClockSignal("sync")), system.rst.eq(reset)]
        core, dram = self.core, self.dram
        m.submodules.core = DomainRenamer("system")(core)
        m.submodules.dram = dram
        wiring.connect(m, wiring.flipped(self.s_axil), core.s_axil)
        wiring.connect(m, core.m_axi, dram.s_axi)
        m.d.comb += [self.irq.eq(core.irq), self.bus_request.eq(core.m_axi.arvalid | core.m_axi.awvalid)]
        connect_backdoor(m, self, dram)
        return m
