"""The core's performance counters: the map's counters, counted in hardware from per-cycle events.

One :class:`CoreCounters` per core feeds :class:`wavecore.hdl.core.register_block.RegisterBlock`'s counter
inputs (``wiring.connect(m, counters.counters, registers.core.counters)``). The DMA's beats are charged to the
traffic class of the LOAD or STORE that issued them, which the core gives with each beat, together with the
bytes of the beat that belong to the transfer (a row's partial first and last beats count only their row
bytes, so the counters equal the instruction-level simulator's).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int
from wavecore.hdl.core.registers import RegisterMap, default_register_map

__all__ = ["CoreCounters"]


class CoreCounters(wiring.Component):
    """Cycles, instructions, array busy cycles and bytes per traffic class and direction.

    Parameters
    ----------
    register_map : RegisterMap
        Gives the counter names and the traffic classes (default: :func:`default_register_map`).
    beat_bytes : int
        Bytes one DRAM data beat carries (the AXI data width / 8; 1 to 128).
    counter_width : int
        Bits of each counter (8 to 64); counters wrap.
    register_traffic : bool
        Register the beat events first (default no): a beat's bytes (``read_bytes``/``write_bytes``, already
        decoded by the caller) and its per-class select are registered in the beat's cycle and added to the byte
        counters one cycle later, so the caller's byte count (e.g. a FIFO read and a lane count) and the wide
        adds are separate paths. The byte counters then show a beat two edges after its cycle instead of one
        (``cycles``, ``instructions`` and ``array_busy`` keep their timing); the final values are the same
        (``clear`` also drops the registered beat).

    Attributes
    ----------
    busy : In(1)
        ``cycles`` counts the cycles this is high.
    retire : In(2)
        Instructions retired this cycle (0 to 3: the load, compute and store queues retire independently);
        ``instructions`` adds it.
    array_busy : In(1)
        ``array_busy`` counts the cycles this is high.
    read_beat, write_beat : In(1)
        One DRAM read (R) or write (W) beat this cycle: adds ``read_bytes`` or ``write_bytes`` to
        ``bytes_read_<class>`` or ``bytes_written_<class>`` of class index ``read_class`` or ``write_class``. A
        class index outside the map is not counted.
    read_bytes, write_bytes : In(range(beat_bytes + 1), init=beat_bytes)
        The bytes a beat counts (left unconnected: ``beat_bytes``, a whole beat).
    read_class, write_class : In(range(len(traffic_classes)))
    clear : In(1)
        Zeroes every counter at the next edge; events in the same cycle (and, with ``register_traffic``, the
        registered beats of the cycle before) are not counted.
    counters : Out(Signature({name: Out(counter_width)}))
        The counter values (registered), named as the register map's counters.
    """

    def __init__(self, *, register_map: RegisterMap | None = None, beat_bytes: int = 8, counter_width: int = 64,
                 register_traffic: bool = False):
        self.register_map = default_register_map() if register_map is None else register_map
        if not isinstance(self.register_map, RegisterMap):
            raise TypeError(f"register_map must be a RegisterMap, not {register_map!r}")
        self.beat_bytes = check_int("beat_bytes", beat_bytes, 1, 128)
        self.counter_width = check_int("counter_width", counter_width, 8, 64)
        if not isinstance(register_traffic, bool):
            raise TypeError(f"register_traffic must be a bool, not {register_traffic!r}")
        self.register_traffic = register_traffic
        classes = range(len(self.register_map.traffic_classes))
        super().__init__(
            {
                "busy": In(1),
                "retire": In(2),
                "array_busy": In(1),
                "read_beat": In(1),
                "read_class": In(classes),
                "read_bytes": In(range(self.beat_bytes + 1), init=self.beat_bytes),
                "write_beat": In(1),
                "write_class": In(classes),
                "write_bytes": In(range(self.beat_bytes + 1), init=self.beat_bytes),
                "clear": In(1),
                "counters": Out(wiring.Signature({name: Out(counter_width)
                                                  for name in self.register_map.counters})),
            }
        )

    def elaborate(self, platform):
        m = Module()
        counters = self.counters
        increments = {
            "cycles": (self.busy, 1),
            "instructions": (self.retire.any(), self.retire),
            "array_busy": (self.array_busy, 1),
        }
        classes = self.register_map.traffic_classes
        for direction, beat, select, amount in (("read", self.read_beat, self.read_class, self.read_bytes),
                                                ("written", self.write_beat, self.write_class, self.write_bytes)):
            hits = [beat & (select == index) for index in range(len(classes))]
            if self.register_traffic:  # the beat's class select and byte count, registered (cleared by clear)
                registered_hits = [Signal(name=f"{direction}_hit_{cls}") for cls in classes]
                registered_amount = Signal.like(amount, name=f"{direction}_amount")
                m.d.sync += [hit.eq(event & ~self.clear) for hit, event in zip(registered_hits, hits, strict=True)]
                m.d.sync += registered_amount.eq(amount)
                hits, amount = registered_hits, registered_amount
            for cls, hit in zip(classes, hits, strict=True):
                increments[f"bytes_{direction}_{cls}"] = (hit, amount)
        for name in self.register_map.counters:
            value = getattr(counters, name)
            event, amount = increments[name]
            with m.If(self.clear):
                m.d.sync += value.eq(0)
            with m.Elif(event):
                m.d.sync += value.eq(value + amount)
        return m
