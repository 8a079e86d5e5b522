"""AXI4-Lite subordinate holding the core's registers (the map of :mod:`wavecore.hdl.core.registers`).

The NVDLA-style integration surface of the WaveCore core: a host programs ``PROGRAM_BASE``, writes
``CONTROL.start``, waits for the ``irq`` line (or polls ``STATUS``) and reads the status and the counters.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int
from wavecore.hdl.core.registers import CoreIdentity, ErrorCode, RegisterMap, default_register_map

__all__ = ["RESPONSE_OKAY", "RESPONSE_SLVERR", "RegisterBlock", "axi4_lite_signature", "core_control_signature"]

RESPONSE_OKAY = 0
RESPONSE_SLVERR = 2


def axi4_lite_signature(*, address_width: int, data_width: int = 32) -> wiring.Signature:
    """An AXI4-Lite port seen from the manager (``Out`` = driven by the manager), AMBA field names.

    A subordinate uses ``In(axi4_lite_signature(...))``; :func:`wavecore.hdl.core.ports.convert` names its
    Verilog ports ``s_axil_awaddr`` etc.
    """
    return wiring.Signature(
        {
            "awaddr": Out(address_width),
            "awprot": Out(3),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
            "araddr": Out(address_width),
            "arprot": Out(3),
            "arvalid": Out(1),
            "arready": In(1),
            "rdata": In(data_width),
            "rresp": In(2),
            "rvalid": In(1),
            "rready": Out(1),
        }
    )


def core_control_signature(register_map: RegisterMap, *, counter_width: int) -> wiring.Signature:
    """What the register block exchanges with the core, seen from the core (``Out`` = driven by the core).

    Commands (one-cycle pulses to the core): ``start``, ``soft_reset``, ``clear_counters``; ``program_base``
    (64 bits, held). Events and state from the core: ``busy`` (level), ``done`` (pulse: the program ended,
    with or without an error), ``error`` (pulse: record ``error_code`` and ``error_address`` unless an error is
    already recorded); one ``counter_width``-bit input per counter of the map in ``counters``.
    """
    return wiring.Signature(
        {
            "start": In(1),
            "soft_reset": In(1),
            "clear_counters": In(1),
            "program_base": In(64),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(8),
            "error_address": Out(64),
            "counters": Out(wiring.Signature({name: Out(counter_width) for name in register_map.counters})),
        }
    )


class RegisterBlock(wiring.Component):
    """The core's registers behind an AXI4-Lite subordinate port.

    Parameters
    ----------
    register_map : RegisterMap
        The layout (default: :func:`default_register_map`); its ``address_width`` is the port's.
    identity : CoreIdentity
        The configuration the ``CONFIG_*`` registers report.
    counter_width : int
        Bits of each counter input (1 to 64); reads zero-extend to 64 bits.

    Attributes
    ----------
    s_axil : In(axi4_lite_signature(address_width=register_map.address_width))
        The register port. Write: ``awready`` and ``wready`` rise together in a cycle where both ``awvalid``
        and ``wvalid`` are high and no B response is pending; the register changes at that edge and ``bvalid``
        is high from the next cycle until ``bready``. Read: ``arready`` is high while no R response is pending;
        ``rvalid`` and ``rdata`` follow one cycle after the AR handshake. One transfer per direction in flight,
        so a write takes at least 2 cycles and a read 2 cycles. ``awprot``/``arprot`` are ignored; the two low
        address bits are ignored. Unmapped offsets and writes to RO registers are answered SLVERR (reads
        return 0) and change nothing.
    core : In(core_control_signature(...))
        The core side (see :func:`core_control_signature`). ``start`` pulses in the cycle after an accepted
        START write (not while ``STATUS.busy``); ``STATUS.busy`` is high from that START until the core's
        ``done`` pulse (or a soft reset) and while the core's ``busy`` is high.
    irq : Out(1)
        The interrupt line: high while ``INTERRUPT_STATUS & INTERRUPT_ENABLE`` is not zero (level, registered).
    """

    def __init__(self, *, register_map: RegisterMap | None = None, identity: CoreIdentity | None = None,
                 counter_width: int = 64):
        register_map = default_register_map() if register_map is None else register_map
        identity = CoreIdentity() if identity is None else identity
        if not isinstance(register_map, RegisterMap):
            raise TypeError(f"register_map must be a RegisterMap, not {register_map!r}")
        if not isinstance(identity, CoreIdentity):
            raise TypeError(f"identity must be a CoreIdentity, not {identity!r}")
        self.register_map = register_map
        self.identity = identity
        self.counter_width = check_int("counter_width", counter_width, 1, 64)
        super().__init__(
            {
                "s_axil": In(axi4_lite_signature(address_width=register_map.address_width)),
                "core": In(core_control_signature(register_map, counter_width=counter_width)),
                "irq": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bus, core, regs = self.s_axil, self.core, self.register_map
        identity_values = regs.identity_values(self.identity)

        # State kept here.
        interrupt_enable = Signal(2)
        interrupt_status = Signal(2)
        program_base = Signal(64)
        running = Signal()
        done = Signal()
        error_code = Signal(8)
        error_address = Signal(64)
        latched_high = Signal(32)  # upper half of the counter whose _LO was read last
        latched_index = Signal(range(len(regs.counters) + 1), init=len(regs.counters))  # = count: none
        busy = Signal()
        m.d.comb += [busy.eq(running | core.busy), core.program_base.eq(program_base)]
        m.d.sync += self.irq.eq((interrupt_status & interrupt_enable).any())

        counters = [getattr(core.counters, name) for name in regs.counters]

        # ---- write channel ---------------------------------------------------------------------------------
        accept_write = Signal()
        m.d.comb += [
            accept_write.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
            bus.awready.eq(accept_write),
            bus.wready.eq(accept_write),
        ]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        write_word = bus.awaddr[2:]
        strobe_mask = Cat(*(bus.wstrb[lane].replicate(8) for lane in range(4)))
        written = bus.wdata & strobe_mask
        start_request = Signal()
        soft_reset = Signal()
        clear_counters = Signal()
        clear_interrupts = Signal(2)
        with m.If(accept_write):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(RESPONSE_SLVERR)]
            with m.Switch(write_word):
                for register in regs.registers:
                    if register.access == "RO":
                        continue
                    with m.Case(register.offset >> 2):
                        m.d.sync += bus.bresp.eq(RESPONSE_OKAY)
                        if register.name == "CONTROL":
                            m.d.comb += [
                                start_request.eq(written[register.field("start").offset]),
                                soft_reset.eq(written[register.field("soft_reset").offset]),
                                clear_counters.eq(written[register.field("clear_counters").offset]),
                            ]
                        elif register.name == "INTERRUPT_ENABLE":
                            m.d.sync += interrupt_enable.eq(
                                (interrupt_enable & ~strobe_mask[:2]) | written[:2])
                        elif register.name == "INTERRUPT_STATUS":
                            m.d.comb += clear_interrupts.eq(written[:2])
                        elif register.name in ("PROGRAM_BASE_LO", "PROGRAM_BASE_HI"):
                            half = program_base[:32] if register.name.endswith("LO") else program_base[32:]
                            m.d.sync += half.eq((half & ~strobe_mask) | written)
                        else:  # pragma: no cover - a new writable register needs its behaviour here
                            raise NotImplementedError(f"no write behaviour for {register.name}")

        # ---- commands and status ---------------------------------------------------------------------------
        start = Signal()
        refused = Signal()
        m.d.comb += [start.eq(start_request & ~busy & ~soft_reset), refused.eq(start_request & busy & ~soft_reset)]
        m.d.sync += [core.start.eq(start), core.soft_reset.eq(soft_reset), core.clear_counters.eq(clear_counters)]
        set_done = Signal()
        set_error = Signal()
        m.d.comb += [set_done.eq(core.done), set_error.eq(core.error | refused)]
        m.d.sync += interrupt_status.eq((interrupt_status & ~clear_interrupts) | Cat(set_done, set_error))
        with m.If(core.done):
            m.d.sync += [running.eq(0), done.eq(1)]
        with m.If(set_error & (error_code == ErrorCode.NONE)):
            with m.If(refused):
                m.d.sync += [error_code.eq(ErrorCode.START_WHILE_BUSY), error_address.eq(program_base)]
            with m.Else():
                m.d.sync += [error_code.eq(core.error_code), error_address.eq(core.error_address)]
        with m.If(start):
            m.d.sync += [running.eq(1), done.eq(0), error_code.eq(ErrorCode.NONE), error_address.eq(0)]
        with m.If(soft_reset):
            m.d.sync += [running.eq(0), done.eq(0), error_code.eq(ErrorCode.NONE), error_address.eq(0),
                         interrupt_status.eq(0)]

        # ---- read channel ----------------------------------------------------------------------------------
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0), bus.rresp.eq(RESPONSE_OKAY)]
            with m.Switch(bus.araddr[2:]):
                for register in regs.registers:
                    with m.Case(register.offset >> 2):
                        m.d.sync += bus.rdata.eq(self._read_value(
                            m, register, identity_values, interrupt_enable, interrupt_status, program_base,
                            busy, done, error_code, error_address, counters, latched_high, latched_index))
                with m.Default():
                    m.d.sync += bus.rresp.eq(RESPONSE_SLVERR)
        return m

    def _read_value(self, m, register, identity_values, interrupt_enable, interrupt_status, program_base, busy,
                    done, error_code, error_address, counters, latched_high, latched_index):
        regs = self.register_map
        name = register.name
        if register.source == "identity":
            return Const(identity_values[name], 32)
        if register.source == "counter":
            index = regs.counters.index(register.counter)
            value = counters[index].as_unsigned()
            wide = Signal(64, name=f"read_{register.counter}")
            m.d.comb += wide.eq(value)
            if register.half == "lo":
                m.d.sync += [latched_high.eq(wide[32:]), latched_index.eq(index)]
                return wide[:32]
            m.d.sync += latched_index.eq(len(regs.counters))
            return Mux(latched_index == index, latched_high, wide[32:])
        if name == "STATUS":
            return Cat(busy, done, error_code != ErrorCode.NONE)
        if name == "ERROR_CODE":
            return error_code
        if name == "ERROR_ADDRESS_LO":
            return error_address[:32]
        if name == "ERROR_ADDRESS_HI":
            return error_address[32:]
        if name == "CONTROL":
            return Const(0, 32)
        if name == "INTERRUPT_ENABLE":
            return interrupt_enable
        if name == "INTERRUPT_STATUS":
            return interrupt_status
        if name == "PROGRAM_BASE_LO":
            return program_base[:32]
        if name == "PROGRAM_BASE_HI":
            return program_base[32:]
        raise NotImplementedError(f"no read behaviour for {name}")  # pragma: no cover
