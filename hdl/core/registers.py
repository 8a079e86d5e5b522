"""The core's AXI4-Lite register map, defined once.

Everything that states a register offset, a field position, an access type or an error code reads this
module: the RTL register block (:mod:`wavecore.hdl.core.register_block`), the host driver
(:mod:`wavecore.verif.host`), the Markdown table in ``docs/core.md`` (:meth:`RegisterMap.markdown`), the JSON
sidecar (:meth:`RegisterMap.to_json`) and a C header for board software (:meth:`RegisterMap.c_header`).

The layout depends only on the list of traffic classes (one pair of 64-bit byte counters per class, appended
in class order so adding a class never moves an existing register). The configuration the identification
registers report (array size, widths, ...) is a :class:`CoreIdentity` given to the register block.

All registers are 32 bits wide at word-aligned byte offsets; 64-bit quantities are a ``_LO``/``_HI`` pair.
Reading a counter's ``_LO`` word latches its upper half, which the next read of the *same* counter's ``_HI``
returns, so a 64-bit counter read as LO then HI is consistent while the counter runs.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from wavecore.golden.plan.traffic import TRAFFIC_CLASSES

__all__ = [
    "ACCESS_TYPES",
    "ID_MAGIC",
    "MAP_VERSION",
    "CoreIdentity",
    "ErrorCode",
    "Register",
    "RegisterField",
    "RegisterMap",
    "default_register_map",
]

#: The value of the ``ID`` register: ASCII "WAVE" (0x57 'W' in the top byte).
ID_MAGIC = 0x5741_5645
#: Register map version (major, minor), reported in ``VERSION``; bump major on an incompatible change.
MAP_VERSION = (1, 0)

#: Access types: what a read returns and what a write does.
ACCESS_TYPES = {
    "RO": "read-only: reads the current value; a write is answered SLVERR and changes nothing",
    "RW": "read-write: reads what was last written (per byte lane, by WSTRB)",
    "W1C": "write 1 to clear: a bit is set by the hardware and cleared by writing 1 to it",
    "W1P": "write 1 to pulse: writing 1 to a bit raises a one-cycle command; reads 0",
}


class ErrorCode(enum.IntEnum):
    """Values of ``ERROR_CODE`` (0 = no error). The first error since the last accepted START is kept."""

    NONE = 0
    ILLEGAL_OPCODE = 1
    ILLEGAL_FIELD = 2
    DRAM_OUT_OF_RANGE = 3
    SCRATCHPAD_OUT_OF_RANGE = 4
    START_WHILE_BUSY = 5
    AXI_READ_ERROR = 6
    AXI_WRITE_ERROR = 7
    TOKEN_OVERFLOW = 8
    NOT_IMPLEMENTED = 9
    MISALIGNED = 10
    DEADLOCK = 11

    @property
    def meaning(self) -> str:
        return _ERROR_MEANINGS[self]


_ERROR_MEANINGS = {
    ErrorCode.NONE: "no error",
    ErrorCode.ILLEGAL_OPCODE: "the fetched instruction's opcode is not defined",
    ErrorCode.ILLEGAL_FIELD: "a field of the instruction (function code, token bit, count) is outside its range",
    ErrorCode.DRAM_OUT_OF_RANGE: "a LOAD/STORE descriptor or the instruction fetch reaches outside DRAM",
    ErrorCode.SCRATCHPAD_OUT_OF_RANGE: "an instruction's scratchpad or accumulator region is outside the memory",
    ErrorCode.START_WHILE_BUSY: "START was written while busy: ignored, the running program continues; ERROR_ADDRESS = "
    "the refused PROGRAM_BASE",
    ErrorCode.AXI_READ_ERROR: "an AXI read (instruction fetch or LOAD) got an SLVERR or DECERR response",
    ErrorCode.AXI_WRITE_ERROR: "an AXI write (STORE) got an SLVERR or DECERR response",
    ErrorCode.TOKEN_OVERFLOW: "a dependency-token queue between two instruction queues overflowed",
    ErrorCode.NOT_IMPLEMENTED: "the instruction is defined but its unit is not in this build of the core",
    ErrorCode.MISALIGNED: "a LOAD/STORE DRAM address is not a multiple of its element size, or PROGRAM_BASE is not "
    "a multiple of the 16-byte instruction",
    ErrorCode.DEADLOCK: "no queue can start an instruction and the fetch unit cannot dispatch one (the program's "
    "dependency tokens do not pair); ERROR_ADDRESS = the oldest blocked instruction",
}


@dataclass(frozen=True)
class RegisterField:
    """``width`` bits at ``offset`` of a register, with a meaning."""

    name: str
    offset: int
    width: int
    meaning: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.offset

    @property
    def bits(self) -> str:
        return f"[{self.offset + self.width - 1}:{self.offset}]" if self.width > 1 else f"[{self.offset}]"


@dataclass(frozen=True)
class Register:
    """One 32-bit register: byte ``offset``, ``access`` type (see :data:`ACCESS_TYPES`), fields, meaning.

    ``source`` says where a read-only value comes from: ``"identity"`` (a :class:`CoreIdentity` field, a
    constant), ``"status"`` (kept by the register block from the core's events), ``"counter"`` (a core
    counter; ``counter`` names it and ``half`` is ``"lo"`` or ``"hi"``). ``reset`` is the value after reset
    (for ``identity`` registers it depends on the configuration and is left 0 here).
    """

    name: str
    offset: int
    access: str
    meaning: str
    fields: tuple[RegisterField, ...] = ()
    reset: int = 0
    source: str = ""
    counter: str = ""
    half: str = ""

    def field(self, name: str) -> RegisterField:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(f"register {self.name} has no field {name!r}")


@dataclass(frozen=True)
class CoreIdentity:
    """The configuration the identification registers report (set from the accelerator YAML)."""

    rows: int = 8
    cols: int = 8
    in_width: int = 8
    acc_width: int = 32
    dram_data_width: int = 64
    scratchpad_kib: int = 256
    accumulator_kib: int = 64

    def __post_init__(self):
        for name, limit in (
            ("rows", 0xFFFF),
            ("cols", 0xFFFF),
            ("in_width", 0xFF),
            ("acc_width", 0xFF),
            ("dram_data_width", 0xFFFF),
            ("scratchpad_kib", 0xFFFF),
            ("accumulator_kib", 0xFFFF),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if not 1 <= value <= limit:
                raise ValueError(f"{name} must be an integer between 1 and {limit}, not {value}")


# Identification registers and the identity field each field reports.
_IDENTITY_FIELDS = {
    "CONFIG_ARRAY": (("rows", 0, 16, "systolic array rows"), ("cols", 16, 16, "systolic array columns")),
    "CONFIG_WIDTHS": (
        ("in_width", 0, 8, "operand width in bits"),
        ("acc_width", 8, 8, "accumulator width in bits"),
        ("dram_data_width", 16, 16, "AXI4 DRAM port data width in bits"),
    ),
    "CONFIG_MEMORY": (
        ("scratchpad_kib", 0, 16, "scratchpad size in KiB"),
        ("accumulator_kib", 16, 16, "accumulator memory size in KiB"),
    ),
}

_FIXED_COUNTERS = (
    ("cycles", "clock cycles since the last accepted START (or counter clear), stops when the program ends"),
    ("instructions", "instructions retired"),
    ("array_busy", "cycles in which the systolic array did useful work"),
)

COUNTER_BASE = 0x080
CLASS_COUNTER_BASE = 0x100


class RegisterMap:
    """The register layout for a list of traffic classes (default: the planner's ``TRAFFIC_CLASSES``).

    ``registers`` lists every register in offset order; ``counters`` the names of the 64-bit counters the
    core feeds (``cycles``, ``instructions``, ``array_busy``, then ``bytes_read_<class>`` and
    ``bytes_written_<class>`` per class).
    """

    def __init__(self, *, traffic_classes=TRAFFIC_CLASSES, address_width: int = 12):
        classes = tuple(traffic_classes)
        if not classes:
            raise ValueError("traffic_classes must name at least one class")
        for name in classes:
            if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
                raise ValueError(f"traffic class names must be lower-case identifiers, not {name!r}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"traffic_classes has duplicates: {classes}")
        if not isinstance(address_width, int) or not 8 <= address_width <= 32:
            raise ValueError(f"address_width must be an integer between 8 and 32, not {address_width!r}")
        self.traffic_classes = classes
        self.address_width = address_width
        self.counters = tuple(name for name, _ in _FIXED_COUNTERS) + tuple(
            f"bytes_{direction}_{cls}" for cls in classes for direction in ("read", "written")
        )
        self.registers = tuple(self._layout())
        end = self.registers[-1].offset + 4
        if end > 1 << address_width:
            raise ValueError(f"address_width {address_width} is too small: the map needs {end} bytes")
        self._by_name = {register.name: register for register in self.registers}
        self._by_offset = {register.offset: register for register in self.registers}

    def _layout(self):
        yield Register("ID", 0x000, "RO", f"identification: ASCII \"WAVE\" ({ID_MAGIC:#010x})",
                       reset=ID_MAGIC, source="identity")
        yield Register(
            "VERSION", 0x004, "RO", "register map version",
            (RegisterField("minor", 0, 16, "minor version"), RegisterField("major", 16, 16, "major version")),
            reset=MAP_VERSION[0] << 16 | MAP_VERSION[1], source="identity",
        )
        offset = 0x008
        for name, fields in _IDENTITY_FIELDS.items():
            yield Register(
                name, offset, "RO", "configuration: " + ", ".join(meaning for *_, meaning in fields),
                tuple(RegisterField(*spec) for spec in fields), source="identity",
            )
            offset += 4
        yield Register(
            "CONFIG_CLASSES", 0x014, "RO", "number of traffic classes (pairs of byte counters from 0x100)",
            (RegisterField("count", 0, 8, "traffic classes"),), reset=len(self.traffic_classes),
            source="identity",
        )
        yield Register(
            "CONTROL", 0x020, "W1P", "commands",
            (
                RegisterField("start", 0, 1, "start the program at PROGRAM_BASE (START_WHILE_BUSY if busy)"),
                RegisterField("soft_reset", 1, 1, "abort the program, return the core to idle, clear STATUS, "
                                                  "ERROR_* and INTERRUPT_STATUS"),
                RegisterField("clear_counters", 2, 1, "zero every counter"),
            ),
        )
        interrupt_fields = (
            RegisterField("done", 0, 1, "the program ended (with or without an error)"),
            RegisterField("error", 1, 1, "an error was recorded in ERROR_CODE"),
        )
        yield Register("INTERRUPT_ENABLE", 0x024, "RW", "interrupt sources driving the irq line",
                       interrupt_fields)
        yield Register("INTERRUPT_STATUS", 0x028, "W1C",
                       "pending interrupt sources; irq is high while a bit is set here and in INTERRUPT_ENABLE",
                       interrupt_fields)
        yield Register("PROGRAM_BASE_LO", 0x030, "RW", "DRAM byte address of the first instruction, bits 31:0")
        yield Register("PROGRAM_BASE_HI", 0x034, "RW", "DRAM byte address of the first instruction, bits 63:32")
        yield Register(
            "STATUS", 0x040, "RO", "state of the core",
            (
                RegisterField("busy", 0, 1, "a program is running"),
                RegisterField("done", 1, 1, "the last program ended (cleared by START and soft reset)"),
                RegisterField("error", 2, 1, "ERROR_CODE is not NONE"),
            ),
            source="status",
        )
        yield Register("ERROR_CODE", 0x044, "RO", "first error since the last accepted START (ErrorCode)",
                       (RegisterField("code", 0, 8, "error code"),), source="status")
        yield Register("ERROR_ADDRESS_LO", 0x048, "RO", "DRAM address of the failing instruction, bits 31:0",
                       source="status")
        yield Register("ERROR_ADDRESS_HI", 0x04C, "RO", "DRAM address of the failing instruction, bits 63:32",
                       source="status")
        meanings = dict(_FIXED_COUNTERS)
        for cls in self.traffic_classes:
            meanings[f"bytes_read_{cls}"] = f"bytes read from DRAM by LOADs of class {cls}"
            meanings[f"bytes_written_{cls}"] = f"bytes written to DRAM by STOREs of class {cls}"
        for index, counter in enumerate(self.counters):
            if index < len(_FIXED_COUNTERS):
                base = COUNTER_BASE + 8 * index
            else:
                base = CLASS_COUNTER_BASE + 8 * (index - len(_FIXED_COUNTERS))
            for half, offset in (("lo", 0), ("hi", 4)):
                bits = "31:0" if half == "lo" else "63:32"
                yield Register(
                    f"{counter.upper()}_{half.upper()}", base + offset, "RO", f"{meanings[counter]}, bits {bits}",
                    source="counter", counter=counter, half=half,
                )

    # ---- look-ups ----------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no register named {name!r}") from None

    def offset(self, name: str) -> int:
        return self[name].offset

    def at(self, offset: int) -> Register | None:
        """The register at byte ``offset`` (``None`` if unmapped)."""
        return self._by_offset.get(offset)

    def counter_offsets(self, counter: str) -> tuple[int, int]:
        """Byte offsets of a counter's LO and HI words."""
        if counter not in self.counters:
            raise KeyError(f"no counter named {counter!r}; counters are {', '.join(self.counters)}")
        return self.offset(f"{counter.upper()}_LO"), self.offset(f"{counter.upper()}_HI")

    def identity_values(self, identity: CoreIdentity) -> dict[str, int]:
        """The value of every identification register for ``identity``."""
        values = {}
        for register in self.registers:
            if register.source != "identity":
                continue
            value = register.reset
            for spec in _IDENTITY_FIELDS.get(register.name, ()):
                value |= getattr(identity, spec[0]) << spec[1]
            values[register.name] = value
        return values

    # ---- generated descriptions ------------------------------------------------------------------------
    def describe(self) -> dict:
        """A JSON-serialisable description (for the core's JSON sidecar)."""
        return {
            "version": list(MAP_VERSION),
            "id": ID_MAGIC,
            "address_width": self.address_width,
            "data_width": 32,
            "access_types": dict(ACCESS_TYPES),
            "registers": [
                {
                    "name": register.name,
                    "offset": register.offset,
                    "access": register.access,
                    "reset": register.reset,
                    "meaning": register.meaning,
                    "fields": [
                        {"name": f.name, "offset": f.offset, "width": f.width, "meaning": f.meaning}
                        for f in register.fields
                    ],
                }
                for register in self.registers
            ],
            "counters": list(self.counters),
            "traffic_classes": list(self.traffic_classes),
            "error_codes": [{"name": code.name, "value": int(code), "meaning": code.meaning} for code in ErrorCode],
            "unmapped": "reads and writes of an unmapped offset are answered SLVERR (reads return 0)",
        }

    def to_json(self) -> str:
        return json.dumps(self.describe(), indent=2) + "\n"

    def markdown(self) -> str:
        """The "Register map" section of ``docs/core.md`` (without its heading)."""
        lines = [
            f"Generated from `wavecore.hdl.core.registers` (map version {MAP_VERSION[0]}.{MAP_VERSION[1]}, traffic "
            f"classes {', '.join(f'`{c}`' for c in self.traffic_classes)}). AXI4-Lite, 32-bit data, "
            f"{self.address_width}-bit byte addresses; the low two address bits are ignored. Reads and writes of an "
            "unmapped offset are answered SLVERR (reads return 0); a write to a read-only register is answered "
            "SLVERR and changes nothing. A 64-bit counter read as `_LO` then `_HI` is consistent: reading `_LO` "
            "latches the upper half that the next `_HI` read of the same counter returns.",
            "",
            "| offset | name | access | reset | fields | meaning |",
            "|---|---|---|---|---|---|",
        ]
        for register in self.registers:
            if register.source == "identity" and register.name not in ("ID", "VERSION", "CONFIG_CLASSES"):
                reset = "config"
            else:
                reset = f"`{register.reset:#x}`"
            fields = "<br>".join(f"`{f.bits}` {f.name}: {f.meaning}" for f in register.fields) or "–"
            lines.append(
                f"| `{register.offset:#05x}` | `{register.name}` | {register.access} | {reset} | {fields} | "
                f"{register.meaning} |"
            )
        lines += ["", "Access types:", ""]
        lines += [f"- **{name}**: {meaning}" for name, meaning in ACCESS_TYPES.items()]
        lines += ["", "Error codes (`ERROR_CODE`):", "", "| code | name | meaning |", "|---|---|---|"]
        lines += [f"| {int(code)} | `{code.name}` | {code.meaning} |" for code in ErrorCode]
        return "\n".join(lines) + "\n"

    def c_header(self, prefix: str = "WAVECORE") -> str:
        """``#define`` constants of every offset, field and error code, for board software in C."""
        lines = [
            "/* Generated by wavecore.hdl.core.registers; do not edit. */",
            f"#ifndef {prefix}_REGISTERS_H",
            f"#define {prefix}_REGISTERS_H",
            f"#define {prefix}_ID_MAGIC 0x{ID_MAGIC:08x}u",
        ]
        for register in self.registers:
            lines.append(f"#define {prefix}_{register.name} 0x{register.offset:03x}u")
            for f in register.fields:
                lines.append(f"#define {prefix}_{register.name}_{f.name.upper()}_SHIFT {f.offset}u")
                lines.append(f"#define {prefix}_{register.name}_{f.name.upper()}_MASK 0x{f.mask:08x}u")
        for code in ErrorCode:
            lines.append(f"#define {prefix}_ERROR_{code.name} {int(code)}u")
        lines.append(f"#endif /* {prefix}_REGISTERS_H */")
        return "\n".join(lines) + "\n"


_DEFAULT = None


def default_register_map() -> RegisterMap:
    """The map for the planner's traffic classes (the one ``docs/core.md`` shows)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RegisterMap()
    return _DEFAULT

