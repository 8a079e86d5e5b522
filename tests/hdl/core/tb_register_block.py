"""cocotb testbench for hdl/core/register_block.py through cocotbext-axi's AxiLiteMaster.

The expected values come from the register map's documented semantics (``docs/core.md``, "Register map"),
kept in a Python model here: reset values, RW per byte lane, W1C, W1P pulses, RO answered SLVERR, unmapped
offsets SLVERR, the counter LO/HI latch, the status and interrupt behaviour on the core's events.
"""

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from wavecore.hdl.core.registers import ID_MAGIC, CoreIdentity, ErrorCode, RegisterMap
from wavecore.verif.axi import AXI_ROUND_TRIP
from wavecore.verif.runner import tb_params
from wavecore.verif.seed import rng
from wavecore.verif.stream import reset, start_clock
from wavecore.verif.waits import cycle_limit, stalled, within

ACCESS_CYCLES = cycle_limit(1, latency=AXI_ROUND_TRIP)  # one register access: one word, one AXI round trip


class Harness:
    def __init__(self, dut):
        params = tb_params()
        self.dut = dut
        self.map = RegisterMap(traffic_classes=params["traffic_classes"])
        self.identity = CoreIdentity(**params["identity"])
        self.counter_width = params["counter_width"]
        self.random = rng("register_block")
        self.master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.pulses = {"start": 0, "soft_reset": 0, "clear_counters": 0}
        for name in ("busy", "done", "error", "error_code", "error_address"):
            getattr(dut, f"core__{name}").value = 0
        self.counter_values = {}
        for name in self.map.counters:
            self.set_counter(name, 0)
        cocotb.start_soon(self._count_pulses())

    def set_counter(self, name, value):
        getattr(self.dut, f"core__counters__{name}").value = value
        self.counter_values[name] = value

    async def _count_pulses(self):
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            for name in self.pulses:
                if int(getattr(self.dut, f"core__{name}").value):
                    self.pulses[name] += 1

    access_cycles = ACCESS_CYCLES

    async def read(self, offset, expect_resp=AxiResp.OKAY):
        response = await within(self.master.read(offset, 4), clock=self.dut.clk, cycles=self.access_cycles,
                                what=f"AXI4-Lite read of {offset:#x}")
        assert response.resp == expect_resp, f"read {offset:#x}: {response.resp!r}, expected {expect_resp!r}"
        return int.from_bytes(response.data, "little")

    async def write(self, offset, value, expect_resp=AxiResp.OKAY, data=None):
        payload = value.to_bytes(4, "little") if data is None else data
        response = await within(self.master.write(offset, payload), clock=self.dut.clk, cycles=self.access_cycles,
                                what=f"AXI4-Lite write of {offset:#x}")
        assert response.resp == expect_resp, f"write {offset:#x}: {response.resp!r}, expected {expect_resp!r}"

    async def event(self, **levels):
        """Hold the core's event inputs for one clock cycle."""
        await FallingEdge(self.dut.clk)
        for name, value in levels.items():
            getattr(self.dut, f"core__{name}").value = value
        await FallingEdge(self.dut.clk)
        for name in ("done", "error"):
            if name in levels:
                getattr(self.dut, f"core__{name}").value = 0

    def expected_reset(self, register):
        if register.source == "identity":
            return self.map.identity_values(self.identity)[register.name]
        if register.source == "counter":
            value = self.counter_values[register.counter]
            return value & 0xFFFFFFFF if register.half == "lo" else value >> 32
        return register.reset


async def _start(dut):
    start_clock(dut)
    harness = Harness(dut)
    await reset(dut)
    return harness


@cocotb.test()
async def every_register_per_access_type(dut):
    h = await _start(dut)
    mask = (1 << h.counter_width) - 1
    for name in h.map.counters:
        h.set_counter(name, int(h.random.integers(0, 1 << 63)) & mask)
    await ClockCycles(dut.clk, 1)
    assert await h.read(h.map.offset("ID")) == ID_MAGIC
    # Reset values and counters, read in offset order (the counters through their LO/HI pairs).
    for register in h.map.registers:
        value = await h.read(register.offset)
        assert value == h.expected_reset(register), f"{register.name}: {value:#x} != {h.expected_reset(register):#x}"
    # RW registers: random values under random strobes, merged per byte lane.
    shadow = {name: 0 for name in ("PROGRAM_BASE_LO", "PROGRAM_BASE_HI", "INTERRUPT_ENABLE")}
    widths = {"PROGRAM_BASE_LO": 0xFFFFFFFF, "PROGRAM_BASE_HI": 0xFFFFFFFF, "INTERRUPT_ENABLE": 0b11}
    for _ in range(24):
        name = list(shadow)[int(h.random.integers(0, len(shadow)))]
        offset = h.map.offset(name)
        first = int(h.random.integers(0, 4))
        length = int(h.random.integers(1, 5 - first))
        data = h.random.bytes(length)
        await h.write(offset + first, 0, data=data)
        current = bytearray(shadow[name].to_bytes(4, "little"))
        current[first : first + length] = data
        shadow[name] = int.from_bytes(current, "little") & widths[name]
        for check, value in shadow.items():
            assert await h.read(h.map.offset(check)) == value, f"{check} after a strobed write to {name}"
    assert int(dut.core__program_base.value) == shadow["PROGRAM_BASE_HI"] << 32 | shadow["PROGRAM_BASE_LO"]
    # The two halves are independent registers: a full write of one leaves every bit of the other.
    for written, other in (("PROGRAM_BASE_LO", "PROGRAM_BASE_HI"), ("PROGRAM_BASE_HI", "PROGRAM_BASE_LO")):
        await h.write(h.map.offset(other), 0xFFFFFFFF)
        for value in (0xFFFFFFFF, 0):
            await h.write(h.map.offset(written), value)
            assert await h.read(h.map.offset(written)) == value
            assert await h.read(h.map.offset(other)) == 0xFFFFFFFF, f"{other} after a write of {value:#x} to {written}"
    shadow.update(PROGRAM_BASE_LO=0xFFFFFFFF, PROGRAM_BASE_HI=0)
    # RO registers: SLVERR, unchanged.
    for register in h.map.registers:
        if register.access != "RO":
            continue
        before = await h.read(register.offset)
        await h.write(register.offset, 0xFFFFFFFF, expect_resp=AxiResp.SLVERR)
        after = await h.read(register.offset)
        if register.source != "counter":
            assert after == before, f"{register.name} changed by a write"
    # Unmapped offsets: SLVERR both ways, reads return 0, nothing changes.
    mapped = {register.offset for register in h.map.registers}
    unmapped = [offset for offset in range(0, 1 << h.map.address_width, 4) if offset not in mapped]
    for offset in [unmapped[0], unmapped[-1], *h.random.choice(unmapped, 6).tolist()]:
        assert await h.read(int(offset), expect_resp=AxiResp.SLVERR) == 0
        await h.write(int(offset), 0xFFFFFFFF, expect_resp=AxiResp.SLVERR)
    for check, value in shadow.items():
        assert await h.read(h.map.offset(check)) == value
    # W1P: CONTROL reads 0; each bit pulses its command exactly once; a write without lane 0 does nothing.
    control = h.map["CONTROL"]
    assert await h.read(control.offset) == 0
    await h.write(control.offset, 1 << control.field("clear_counters").offset)
    await ClockCycles(dut.clk, 2)
    assert h.pulses == {"start": 0, "soft_reset": 0, "clear_counters": 1}
    await h.write(control.offset + 1, 0, data=b"\x07")  # lane 1 only: no command bit is written
    await ClockCycles(dut.clk, 2)
    assert h.pulses == {"start": 0, "soft_reset": 0, "clear_counters": 1}


async def _responses_held(dut, errors):
    """AXI rule (AMBA AXI, A3.2.1): once RVALID or BVALID is high it stays high, with its payload unchanged,
    until the handshake."""
    held = {}
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        for channel, payload in (("r", ("rdata", "rresp")), ("b", ("bresp",))):
            valid = int(getattr(dut, f"s_axil_{channel}valid").value)
            now = tuple(int(getattr(dut, f"s_axil_{name}").value) for name in payload)
            if channel in held and (not valid or now != held[channel]):
                errors.append(f"{channel.upper()}VALID or its payload changed before {channel.upper()}READY")
            ready = int(getattr(dut, f"s_axil_{channel}ready").value)
            if valid and not ready:
                held[channel] = now
            else:
                held.pop(channel, None)


@cocotb.test()
async def responses_wait_for_a_manager_that_is_not_ready(dut):
    """The manager takes R and B responses only half of the cycles: every response is held until taken, and
    the register values read back are the ones written."""
    h = await _start(dut)
    pause = 0.5
    for channel in (h.master.read_if.r_channel, h.master.write_if.b_channel):
        channel.set_pause_generator(iter(lambda: bool(h.random.random() < pause), None))
    h.access_cycles = cycle_limit(stalled(1, pause), latency=2 * AXI_ROUND_TRIP)
    errors = []
    cocotb.start_soon(_responses_held(dut, errors))
    for name, value in (("PROGRAM_BASE_LO", 0x89ABCDEF), ("PROGRAM_BASE_HI", 0x01234567), ("INTERRUPT_ENABLE", 2),
                        ("PROGRAM_BASE_LO", 0x13579BDF)):
        await h.write(h.map.offset(name), value)
        assert await h.read(h.map.offset(name)) == value, name
    assert await h.read(h.map.offset("ID")) == ID_MAGIC
    await h.write(h.map.offset("ID"), 0, expect_resp=AxiResp.SLVERR)
    assert not errors, errors[0]


@cocotb.test()
async def counters_latch_high_half_on_low_read(dut):
    h = await _start(dut)
    if h.counter_width <= 32:
        return
    lo, hi = h.map.counter_offsets("cycles")
    other_lo, other_hi = h.map.counter_offsets("instructions")
    h.set_counter("cycles", 0x1_FFFF_FFFF)
    h.set_counter("instructions", 0x5_0000_0007)
    await ClockCycles(dut.clk, 1)
    assert await h.read(lo) == 0xFFFF_FFFF
    h.set_counter("cycles", 0x2_0000_0003)  # the counter carries between the two reads
    assert await h.read(hi) == 1, "HI after LO must return the half latched with LO"
    assert await h.read(hi) == 2, "a second HI read returns the live value"
    assert await h.read(lo) == 3
    assert await h.read(other_hi) == 5, "HI of another counter is live"
    assert await h.read(hi) == 2


@cocotb.test()
async def start_done_error_interrupt_and_soft_reset(dut):
    h = await _start(dut)
    regs = h.map
    control, status = regs["CONTROL"], regs["STATUS"]
    start = 1 << control.field("start").offset
    busy_bit, done_bit, error_bit = (1 << status.field(name).offset for name in ("busy", "done", "error"))
    await h.write(regs.offset("PROGRAM_BASE_LO"), 0x1000)
    await h.write(regs.offset("PROGRAM_BASE_HI"), 0x8000_0002)  # bit 63 set: the error address keeps all 64 bits
    await h.write(regs.offset("INTERRUPT_ENABLE"), 0b01)  # done only
    assert int(dut.irq.value) == 0
    # START: one pulse, busy until the core's done.
    await h.write(control.offset, start)
    await ClockCycles(dut.clk, 2)
    assert h.pulses["start"] == 1
    assert await h.read(status.offset) == busy_bit
    # START while busy: refused, recorded with the refused program base, error interrupt pending (not enabled).
    await h.write(control.offset, start)
    await ClockCycles(dut.clk, 2)
    assert h.pulses["start"] == 1
    assert await h.read(status.offset) == busy_bit | error_bit
    assert await h.read(regs.offset("ERROR_CODE")) == ErrorCode.START_WHILE_BUSY
    assert await h.read(regs.offset("ERROR_ADDRESS_LO")) == 0x1000
    assert await h.read(regs.offset("ERROR_ADDRESS_HI")) == 0x8000_0002
    assert await h.read(regs.offset("INTERRUPT_STATUS")) == 0b10
    assert int(dut.irq.value) == 0, "error interrupt is pending but not enabled"
    # A core error does not replace the first error.
    await h.event(error=1, error_code=int(ErrorCode.ILLEGAL_OPCODE), error_address=0x1234)
    assert await h.read(regs.offset("ERROR_CODE")) == ErrorCode.START_WHILE_BUSY
    # The program ends: done, not busy, irq high (done enabled) until W1C.
    await h.event(done=1)
    await ClockCycles(dut.clk, 2)
    assert int(dut.irq.value) == 1
    assert await h.read(status.offset) == done_bit | error_bit
    await h.write(regs.offset("INTERRUPT_STATUS"), 0b01)  # clear done only
    await ClockCycles(dut.clk, 2)
    assert int(dut.irq.value) == 0
    assert await h.read(regs.offset("INTERRUPT_STATUS")) == 0b10
    # The core's busy level alone also makes START a refused one.
    dut.core__busy.value = 1
    await h.write(control.offset, start)
    await ClockCycles(dut.clk, 2)
    assert h.pulses["start"] == 1
    dut.core__busy.value = 0
    # A new START clears done and the error; a core error with code and address is recorded.
    await h.write(regs.offset("INTERRUPT_ENABLE"), 0b10)
    await h.write(control.offset, start)
    await ClockCycles(dut.clk, 2)
    assert h.pulses["start"] == 2
    assert await h.read(status.offset) == busy_bit
    assert await h.read(regs.offset("ERROR_CODE")) == ErrorCode.NONE
    assert await h.read(regs.offset("ERROR_ADDRESS_LO")) == 0 and await h.read(regs.offset("ERROR_ADDRESS_HI")) == 0
    await h.event(error=1, done=1, error_code=int(ErrorCode.DRAM_OUT_OF_RANGE), error_address=0x7_0000_0040)
    await ClockCycles(dut.clk, 2)
    assert int(dut.irq.value) == 1
    assert await h.read(status.offset) == done_bit | error_bit
    assert await h.read(regs.offset("ERROR_CODE")) == ErrorCode.DRAM_OUT_OF_RANGE
    assert await h.read(regs.offset("ERROR_ADDRESS_LO")) == 0x40
    assert await h.read(regs.offset("ERROR_ADDRESS_HI")) == 0x7
    # Soft reset: one pulse; status, error and pending interrupts cleared; enables and base kept.
    await h.write(control.offset, 1 << control.field("soft_reset").offset)
    await ClockCycles(dut.clk, 2)
    assert h.pulses["soft_reset"] == 1
    assert int(dut.irq.value) == 0
    assert await h.read(status.offset) == 0
    assert await h.read(regs.offset("ERROR_CODE")) == 0
    assert await h.read(regs.offset("ERROR_ADDRESS_LO")) == 0 and await h.read(regs.offset("ERROR_ADDRESS_HI")) == 0
    assert await h.read(regs.offset("INTERRUPT_STATUS")) == 0
    assert await h.read(regs.offset("INTERRUPT_ENABLE")) == 0b10
    assert await h.read(regs.offset("PROGRAM_BASE_HI")) == 0x8000_0002
