"""The interface every WaveCore compute unit (GEMM, VECTOR, NORM, LOSS, SGD) implements, and the adapter that
serves its element ports from the core's word-wide on-chip memories.

**Unit interface** (:class:`ComputeUnitSignature`, members seen from the unit):

* ``start`` (in, 1): one-cycle pulse; ``instruction`` (the 128-bit word of :mod:`wavecore.golden.core.isa`) and
  ``shape`` (the last SHAPE word, 128 bits; its fields are the shape format's) are valid in that cycle and stay
  unchanged until ``done``.
* ``done`` (out, 1): one-cycle pulse when the instruction has retired: every write has been presented (a write
  is complete in the cycle it is presented). ``done`` may come in the cycle after ``start`` at the earliest.
* ``scratch_read0``, ``scratch_read1`` (two read ports on the scratchpad), ``scratch_write``, ``acc_read``,
  ``acc_write``: element ports (:class:`ElementReadSignature`, :class:`ElementWriteSignature`). Addresses are
  element addresses as in the ISA. A read presented with ``en`` in cycle t returns the element in ``data`` in
  cycle t + ``read_latency`` (the unit's attribute, :data:`READ_LATENCY` in the core), and ``data`` holds that
  value until the next read's data arrives; a read sees every write presented in an earlier cycle (not one
  presented in the same cycle). Scratchpad elements are ``operand_bytes * 8`` bits,
  accumulator elements ``accumulator_bytes * 8`` bits, two's complement (as in DRAM): a unit writes values
  that fit (the golden model's formats guarantee it) and the adapter keeps the low bits.
* A unit keeps every ``en`` low while it is idle, so the core can OR the ports of its units.
* Every unit takes ``read_latency`` (1 to 3, default :data:`READ_LATENCY`) as a keyword argument of its
  constructor and of its module's ``unit_cycles``, keeps it as ``self.read_latency``, and computes the same
  results for each (its cycles follow).

:class:`ElementPorts` adapts one element read port set and one write port to a word memory (one bus word of
``word_bits`` bits per address). The write is registered and written through a write port with one enable per
element in the next cycle (the units' address arithmetic ends at the adapter's registers instead of running on
into every block RAM of the memory and the DMA's write arbitration). The read depends on ``read_latency``:

* 1: the unit's address goes straight to the memory's synchronous read port; a read presented in the cycle the
  registered write reaches the memory, of the element being written, gets the written value forwarded;
* 2: the address is registered first (the units' address arithmetic ends at the adapter here too, not at the
  address pins of every block RAM of a replica); the memory is read a cycle later, after the registered write of
  the cycle before has reached it, so nothing needs forwarding;
* 3: as 2, and the memory's read word is registered once more before the lane is selected (a block RAM's output
  register).

An address at or above the memory's ``elements`` is out of range: the adapter drops the write and raises
``out_of_range`` in the next cycle (the check runs on the adapter's registered address, so the units' address
arithmetic does not run on into a comparison and the core's error logic in the same cycle).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.core import isa
from wavecore.golden.core.semantics import CoreParameters

__all__ = [
    "ADDRESS_WIDTH",
    "ComputeUnitSignature",
    "ElementPorts",
    "ElementReadSignature",
    "ElementWriteSignature",
    "READ_LATENCY",
    "READ_PORTS",
    "WRITE_PORTS",
    "arrived",
    "check_read_latency",
    "check_unit_arguments",
    "delay",
    "shape_field",
]

#: Element address width: the compute format's dst/src fields.
ADDRESS_WIDTH = next(spec.width for spec in isa.FORMATS["compute"] if spec.name == "dst")

#: Cycles from a read's ``en`` to its ``data`` in the core (see the module docstring).
READ_LATENCY = 3

#: ``name -> space`` of the unit's element ports.
READ_PORTS = {"scratch_read0": "scratchpad", "scratch_read1": "scratchpad", "acc_read": "accumulator"}
WRITE_PORTS = {"scratch_write": "scratchpad", "acc_write": "accumulator"}


class ElementReadSignature(wiring.Signature):
    """``addr``, ``en`` (out) and ``data`` (in, signed ``width`` bits, ``read_latency`` cycles after ``en``)."""

    def __init__(self, width: int):
        self.width = width
        super().__init__({"addr": Out(ADDRESS_WIDTH), "en": Out(1), "data": In(signed(width))})


class ElementWriteSignature(wiring.Signature):
    """``addr``, ``en``, ``data`` (out, signed ``width`` bits); written at the end of the cycle."""

    def __init__(self, width: int):
        self.width = width
        super().__init__({"addr": Out(ADDRESS_WIDTH), "en": Out(1), "data": Out(signed(width))})


def element_widths(parameters: CoreParameters) -> dict:
    """``space -> bits`` of one on-chip element."""
    return {"scratchpad": parameters.operand_bytes * 8, "accumulator": parameters.accumulator_bytes * 8}


class ComputeUnitSignature(wiring.Signature):
    """The members of a compute unit (see the module docstring)."""

    def __init__(self, parameters: CoreParameters):
        widths = element_widths(parameters)
        members = {"start": In(1), "instruction": In(isa.INSTRUCTION_BITS), "shape": In(isa.INSTRUCTION_BITS),
                   "done": Out(1)}
        members.update({name: Out(ElementReadSignature(widths[space])) for name, space in READ_PORTS.items()})
        members.update({name: Out(ElementWriteSignature(widths[space])) for name, space in WRITE_PORTS.items()})
        super().__init__(members)


def delay(m: Module, value, stages: int, name: str):
    """``value`` through ``stages`` registers of ``m``'s sync domain, named ``<name>_delay<k>`` (``value`` itself
    for 0 stages): what travels beside a read until its data arrives."""
    for stage in range(stages):
        register = Signal(Value.cast(value).shape(), name=f"{name}_delay{stage + 1}")
        m.d.sync += register.eq(value)
        value = register
    return value


def arrived(m: Module, port, name: str):
    """``port.data`` (an element read port's) registered in every cycle, named ``name``: a unit that reads its data
    from here has no logic between the core's lane select (and the wires across the chip to the unit) and its
    first registers, and works as a unit at read latency ``read_latency + 1`` would (the register holds as the
    port's data holds)."""
    register = Signal.like(port.data, name=name)
    m.d.sync += register.eq(port.data)
    return register


def check_read_latency(read_latency) -> int:
    """``read_latency`` checked (an int from 1 to 3; a one-line error naming it)."""
    if isinstance(read_latency, bool) or not isinstance(read_latency, int) or not 1 <= read_latency <= 3:
        raise ValueError(f"read_latency must be 1, 2 or 3, not {read_latency!r}")
    return read_latency


def check_unit_arguments(parameters, numerics, read_latency=READ_LATENCY) -> None:
    """The constructor checks every unit shares: ``parameters`` a CoreParameters, ``numerics`` an
    IntegerTraining (one-line TypeErrors naming the argument), ``read_latency`` 1 to 3."""
    from wavecore.golden.numerics import IntegerTraining

    check_read_latency(read_latency)

    if not isinstance(parameters, CoreParameters):
        raise TypeError(f"parameters must be a CoreParameters, not {parameters!r}")
    if not isinstance(numerics, IntegerTraining):
        raise TypeError(f"numerics must be an IntegerTraining, not {numerics!r}")


def shape_field(shape, name: str):
    """The value of shape-format field ``name`` in a 128-bit SHAPE word (a slice of the signal)."""
    spec = next(spec for spec in isa.FORMATS["shape"] if spec.name == name)
    return shape[spec.offset : spec.offset + spec.width]


class ElementPorts(wiring.Component):
    """Element ports on a word memory (see the module docstring).

    Parameters
    ----------
    element_bits : int
        Bits of one element (8, 16, 32 or 64); ``word_bits`` must be a multiple.
    word_bits : int
        Bits of one memory word.
    elements : int
        Elements the memory holds (the range check).
    readers : int
        Number of element read ports (``read[k]`` members ``read0``, ``read1``, ...).
    read_latency : int
        Cycles from a read's ``en`` to its ``data``: 1, 2 or 3 (see the module docstring).

    The word memory's ports are passed at elaboration time through :meth:`attach`: ``read_ports`` (one word
    read port per element read port, synchronous, enable-gated) and ``write_port`` (granularity
    ``element_bits``).
    """

    def __init__(self, *, element_bits: int, word_bits: int, elements: int, readers: int = 1,
                 read_latency: int = READ_LATENCY):
        if element_bits not in (8, 16, 32, 64) or word_bits % element_bits:
            raise ValueError(f"element_bits must be 8, 16, 32 or 64 and divide word_bits {word_bits}, "
                             f"not {element_bits}")
        self.element_bits, self.word_bits, self.elements, self.readers = element_bits, word_bits, elements, readers
        self.read_latency = check_read_latency(read_latency)
        self.lanes = word_bits // element_bits
        self.lane_bits = (self.lanes - 1).bit_length()
        members = {f"read{k}": In(ElementReadSignature(element_bits)) for k in range(readers)}
        members["write"] = In(ElementWriteSignature(element_bits))
        members["out_of_range"] = Out(1)
        super().__init__(members)
        self._read_ports, self._write_port = None, None

    def attach(self, read_ports, write_port):
        """The word memory's ports this adapter drives (``len(read_ports) == readers``)."""
        if len(read_ports) != self.readers:
            raise ValueError(f"need {self.readers} read ports, not {len(read_ports)}")
        self._read_ports, self._write_port = list(read_ports), write_port

    def elaborate(self, platform):
        if self._write_port is None:
            raise RuntimeError("ElementPorts.attach() must be called before elaboration")
        m = Module()
        bits, lanes, lane_bits = self.element_bits, self.lanes, self.lane_bits
        outside, read_data = [], []
        latency = self.read_latency
        for k, port in enumerate(self._read_ports):
            element = getattr(self, f"read{k}")
            if latency == 1:
                address, enable = element.addr, element.en
                checked_address = Signal.like(element.addr, name=f"read{k}_checked_addr")
                checked = Signal(name=f"read{k}_checked")
                m.d.sync += [checked_address.eq(element.addr), checked.eq(element.en)]
            else:  # the address registered on its way to the memory
                address = Signal.like(element.addr, name=f"read{k}_addr")
                enable = Signal(name=f"read{k}_en")
                m.d.sync += [address.eq(element.addr), enable.eq(element.en)]
                checked_address, checked = address, enable
            outside.append(checked & (checked_address >= self.elements))
            m.d.comb += [port.addr.eq(address >> lane_bits), port.en.eq(enable)]
            word = port.data
            if latency == 3:  # the read word registered (a block RAM's output register)
                word = Signal.like(port.data, name=f"read{k}_word")
                word_valid = Signal(name=f"read{k}_word_valid")
                m.d.sync += word_valid.eq(enable)
                with m.If(word_valid):
                    m.d.sync += word.eq(port.data)
            if lane_bits:
                lane = Signal(lane_bits, name=f"read{k}_lane")
                with m.If(enable):
                    m.d.sync += lane.eq(address[:lane_bits])
                if latency == 3:
                    word_lane = Signal(lane_bits, name=f"read{k}_word_lane")
                    with m.If(word_valid):
                        m.d.sync += word_lane.eq(lane)
                    lane = word_lane
                read_data.append(word.word_select(lane, bits).as_signed())
            else:
                read_data.append(word.as_signed())
        write = self.write
        write_outside = write.en & (write.addr >= self.elements)
        write_dropped = Signal(name="write_dropped")
        m.d.sync += write_dropped.eq(write_outside)
        outside.append(write_dropped)
        # The write is registered (the units' address arithmetic ends here, not at every block RAM of the
        # memory and the DMA's arbitration): the memory is written in the next cycle, and a read presented in that
        # cycle of the same element gets the written value forwarded, so the unit sees the contract's timing.
        pending = Signal(name="write_pending")
        pending_addr = Signal.like(write.addr, name="write_pending_addr")
        pending_data = Signal.like(write.data, name="write_pending_data")
        m.d.sync += [pending.eq(write.en & ~write_outside), pending_addr.eq(write.addr),
                     pending_data.eq(write.data)]
        m.d.comb += [self._write_port.addr.eq(pending_addr >> lane_bits),
                     self._write_port.data.eq(pending_data.as_unsigned().replicate(lanes))]
        if lane_bits:
            for lane in range(lanes):
                m.d.comb += self._write_port.en[lane].eq(pending & (pending_addr[:lane_bits] == lane))
        else:
            m.d.comb += self._write_port.en.eq(pending)
        for k in range(len(self._read_ports)):
            element = getattr(self, f"read{k}")
            if latency > 1:  # the memory is read after the pending write has reached it
                m.d.comb += element.data.eq(read_data[k])
                continue
            forward = Signal(name=f"read{k}_forward")
            forwarded = Signal.like(write.data, name=f"read{k}_forwarded")
            with m.If(element.en):  # held with the read's data while en is low
                m.d.sync += [forward.eq(pending & (element.addr == pending_addr)), forwarded.eq(pending_data)]
            memory_data = Signal.like(element.data, name=f"read{k}_memory_data")
            m.d.comb += memory_data.eq(read_data[k])
            m.d.comb += element.data.eq(Mux(forward, forwarded, memory_data))
        m.d.comb += self.out_of_range.eq(Cat(*outside).any())
        return m
