"""The WaveCore instruction set, defined once (``docs/core.md``, "Instruction set").

Every instruction is one 128-bit little-endian word. Bits 0-15 are a common header (opcode, the four
dependency-token bits of VTA's decoupled access-execute, a 4-bit function code); the other 112 bits follow
one of three formats:

* ``memory`` (LOAD, STORE): a 3-D DMA descriptor between DRAM (byte address) and a scratchpad (element
  address), with the traffic class the byte counters charge;
* ``shape`` (SHAPE): the compute unit's geometry register (Gemmini-style configuration command): tensor,
  window and group sizes that the following compute instructions read;
* ``compute`` (GEMM, VECTOR, NORM, LOSS, SGD, COUNTER, SYNC, END): four scratchpad addresses and a 16-bit
  immediate.

All fields are whole nibbles or bytes where the 128 bits allow it; a field never crosses the 64-bit halves
except in the memory format. The assembler (:func:`encode`), the disassembler (:func:`decode`), the listing
(:meth:`Instruction.text`), the table in ``docs/core.md`` (:func:`markdown_tables`) and the RTL decoder read
the tables below; nothing else states a bit position.

Queues: LOAD runs on the load queue, STORE on the store queue, every other opcode on the compute queue.
Tokens (VTA): ``pop_prev`` waits for a token from the previous queue (load for compute, compute for store),
``pop_next`` from the next one (compute for load, store for compute), ``push_prev`` / ``push_next`` send one
after the instruction retired. Load has no previous queue and store no next one: those bits must be 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "FORMATS",
    "FUNCTS",
    "HEADER",
    "INSTRUCTION_BITS",
    "INSTRUCTION_BYTES",
    "OPCODES",
    "QUEUES",
    "SPACES",
    "TOKEN_BITS",
    "TRAFFIC_CLASSES",
    "Field",
    "Instruction",
    "decode",
    "decode_program",
    "encode",
    "encode_program",
    "markdown_tables",
    "queue_of",
]

INSTRUCTION_BITS = 128
INSTRUCTION_BYTES = INSTRUCTION_BITS // 8

#: The three queues in order; "previous" and "next" are the neighbours in this order.
QUEUES = ("load", "compute", "store")

#: DRAM traffic classes of LOAD/STORE (the per-class byte counters). The first six are
#: ``golden.traffic.TRAFFIC_CLASSES``; ``optimizer`` is the SGD update's parameter and velocity traffic and
#: ``io`` the labels and per-sample losses, which the planner does not model (``docs/core.md``).
TRAFFIC_CLASSES = (
    "activations",
    "stash",
    "weights",
    "weight_grads",
    "activation_grads",
    "norm_passes",
    "optimizer",
    "io",
)

#: On-chip memories an address refers to: ``scratchpad`` holds operand-width elements (activations,
#: weights, gradients), ``accumulator`` holds accumulator-width elements (weight-gradient accumulators,
#: norm records, losses).
SPACES = ("scratchpad", "accumulator")


@dataclass(frozen=True)
class Field:
    """One bit field: ``name``, first bit ``offset``, ``width`` bits, allowed ``minimum``..``maximum``
    (default ``0 .. 2**width - 1``) and what it means."""

    name: str
    offset: int
    width: int
    meaning: str
    minimum: int = 0
    maximum: int | None = None

    @property
    def limit(self) -> int:
        return (1 << self.width) - 1 if self.maximum is None else self.maximum

    @property
    def bits(self) -> str:
        return f"[{self.offset + self.width - 1}:{self.offset}]" if self.width > 1 else f"[{self.offset}]"


HEADER = (
    Field("opcode", 0, 8, "operation (table of opcodes)"),
    Field("pop_prev", 8, 1, "wait for a token from the previous queue before starting"),
    Field("pop_next", 9, 1, "wait for a token from the next queue before starting"),
    Field("push_prev", 10, 1, "send a token to the previous queue after retiring"),
    Field("push_next", 11, 1, "send a token to the next queue after retiring"),
    Field("funct", 12, 4, "variant of the operation (table of function codes)"),
)
TOKEN_BITS = ("pop_prev", "pop_next", "push_prev", "push_next")

FORMATS = {
    "memory": (
        Field("dram_address", 16, 32, "DRAM byte address of the first element"),
        Field("scratch_address", 48, 18, "scratchpad element address of the first element (dense)"),
        Field("length", 66, 14, "elements per row (contiguous in DRAM and in the scratchpad)", 1),
        Field("count1", 80, 8, "rows per plane", 1),
        Field("stride1", 88, 16, "DRAM distance between rows, in elements"),
        Field("count2", 104, 8, "planes", 1),
        Field("stride2", 112, 16, "DRAM distance between planes, in elements"),
    ),
    "shape": (
        Field("samples", 16, 12, "samples of the sub-batch (N)", 1),
        Field("channels", 28, 12, "input channels (C)", 1),
        Field("height", 40, 8, "input height (H)", 1),
        Field("width", 48, 8, "input width (W)", 1),
        Field("out_channels", 56, 12, "output channels (GEMM, pools: = channels)", 1),
        Field("out_height", 68, 8, "output height", 1),
        Field("out_width", 76, 8, "output width", 1),
        Field("kernel_height", 84, 4, "window height", 1),
        Field("kernel_width", 88, 4, "window width", 1),
        Field("stride_height", 92, 4, "window stride (rows)", 1),
        Field("stride_width", 96, 4, "window stride (columns)", 1),
        Field("padding_height", 100, 4, "zero padding (rows)"),
        Field("padding_width", 104, 4, "zero padding (columns)"),
        Field("groups", 108, 12, "conv groups; GroupNorm groups for NORM", 1),
        Field("ceil_mode", 120, 1, "max-pool output size rounds up"),
    ),
    "compute": (
        Field("dst", 16, 24, "destination address"),
        Field("src0", 40, 24, "first source address"),
        Field("src1", 64, 24, "second source address"),
        Field("src2", 88, 24, "third source address"),
        Field("imm", 112, 16, "immediate (shift, limit, epsilon, batch, counter id)"),
    ),
}

#: opcode -> (number, format, meaning)
OPCODES = {
    "END": (0x00, "compute", "end of program: retires when every queue is empty; raises done"),
    "LOAD": (0x01, "memory", "DMA DRAM -> scratchpad (load queue)"),
    "STORE": (0x02, "memory", "DMA scratchpad -> DRAM (store queue)"),
    "SHAPE": (0x03, "shape", "set the geometry register of the compute unit"),
    "GEMM": (0x04, "compute", "convolution/linear GEMM through the feeders and the systolic array"),
    "VECTOR": (0x05, "compute", "element-wise, pooling and reduction operations of the vector unit"),
    "NORM": (0x06, "compute", "BN/GN units: statistics, scalar unit, affine(+ReLU), backward"),
    "LOSS": (0x07, "compute", "softmax cross-entropy: per-sample loss and logits gradient"),
    "SGD": (0x08, "compute", "SGD with momentum and weight decay on one parameter tensor"),
    "COUNTER": (0x09, "compute", "clear or snapshot the performance counters"),
    "SYNC": (0x0A, "compute", "no operation: relays dependency tokens between load and store"),
}

_MEMORY_FUNCTS = {
    f"{cls}.{space}": (index | (bit << 3), f"traffic class {cls}, {space} side")
    for bit, space in enumerate(SPACES)
    for index, cls in enumerate(TRAFFIC_CLASSES)
}

#: opcode -> {funct name: (number, operands)}
FUNCTS = {
    "END": {"none": (0, "-")},
    "LOAD": _MEMORY_FUNCTS,
    "STORE": _MEMORY_FUNCTS,
    "SHAPE": {"none": (0, "geometry fields")},
    "GEMM": {
        "forward": (0, "dst=y, src0=x, src1=weight; imm=requantize shift"),
        "forward_bias": (1, "dst=y, src0=x, src1=weight, src2=bias (starts the accumulator); imm=shift"),
        "backward_data": (2, "dst=dx, src0=dy, src1=weight; imm=requantize shift"),
        "backward_weight": (3, "dst=dW accumulator, src0=dy, src1=x (overwrite)"),
        "backward_weight_accumulate": (4, "dst=dW accumulator, src0=dy, src1=x (continue from dst)"),
    },
    "VECTOR": {
        "add_saturate": (0, "dst = saturate(src0 + src1)"),
        "add_exact": (1, "dst = src0 + src1 (gradient sums at forks, no rounding)"),
        "relu": (2, "dst = relu(src0); imm = upper limit (0: none)"),
        "relu_mask": (3, "dst = src0 (dy) where 0 < src1 (x) < limit; imm = limit (0: none)"),
        "maxpool_forward": (4, "dst = maxpool(src0)"),
        "maxpool_backward": (5, "dst = dx, src0 = dy, src1 = x"),
        "avgpool_forward": (6, "dst = avgpool(src0)"),
        "avgpool_backward": (7, "dst = dx, src0 = dy"),
        "global_pool_forward": (8, "dst = global average pool(src0)"),
        "global_pool_backward": (9, "dst = dx, src0 = dy"),
        "channel_sum": (10, "dst (accumulator) = sum of src0 over samples and positions per channel"),
        "channel_sum_accumulate": (11, "dst (accumulator) += the same sum"),
        "requantize": (12, "dst = requantize(src0 accumulator, imm = shift)"),
        "channel_insert": (13, "dst[:, imm : imm + channels] = src0 (concat forward)"),
        "channel_extract": (14, "dst = src0[:, imm : imm + out_channels] (concat backward)"),
    },
    "NORM": {
        **{
            f"{name}_{kind}": (number + offset, operands.replace("SETS", sets))
            for kind, offset, sets in (("bn", 0, "per channel"), ("gn", 8, "per (sample, group)"))
            for name, number, operands in (
                ("statistics", 0, "block(dst).S1, S2 = sums of src0 SETS; imm bit 0: add to them (BN streamed "
                 "over sub-batches)"),
                ("constants", 1, "block(dst).rstd, A, C, gamma from block(src0) sums and src1 = gamma, beta; "
                 "imm = epsilon"),
                ("affine", 2, "dst = requantize(A*src0 + C), block(src1)"),
                ("affine_relu", 3, "dst = relu(requantize(A*src0 + C)), block(src1); imm = limit (0: none)"),
                ("relu_mask", 4, "dst = src0 (dz) where 0 < A*src1 + C (< limit), block(src2); imm = limit"),
                ("backward", 5, "dst = dx from src0 = dy, src1 = x, block(src2); block.r1, r2 written. imm bit 0: "
                 "reductions only (no dx), bit 1: add them to block.r1, r2, bit 2: dx only from block.r1, r2; "
                 "imm[15:3] = mini-batch samples of the statistics (BN streamed; 0: SHAPE samples)"),
                ("param_grads", 6, "dst = dgamma, dbeta (accumulator) from block(src0) (overwrite)"),
                ("param_grads_accumulate", 7, "dst += dgamma, dbeta from block(src0)"),
            )
        }
    },
    "LOSS": {
        "cross_entropy": (0, "dst = dlogits, src0 = logits, src1 = labels, src2 = losses (accumulator); imm = batch"),
        "mean": (1, "dst (accumulator) = mean of src0 (accumulator), the samples' losses (Q.loss_frac)"),
    },
    "SGD": {
        "momentum": (0, "src0 = weights (updated), src1 = velocity (updated), src2 = gradient, "
                     "dst = lr, momentum, weight decay (accumulator, fixed point)"),
    },
    "COUNTER": {"clear": (0, "zero every counter"), "snapshot": (1, "record the counters in the trace; imm = id")},
    "SYNC": {"none": (0, "-")},
}

_OPCODE_BY_NUMBER = {number: name for name, (number, _, _) in OPCODES.items()}
_FUNCT_BY_NUMBER = {op: {number: name for name, (number, _) in table.items()} for op, table in FUNCTS.items()}


def queue_of(opcode: str) -> str:
    """The queue an opcode runs on."""
    return {"LOAD": "load", "STORE": "store"}.get(opcode, "compute")


@dataclass(frozen=True)
class Instruction:
    """One instruction: opcode and funct names, the format's field values, the four token bits."""

    opcode: str
    funct: str = "none"
    fields: dict = field(default_factory=dict)
    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    @property
    def queue(self) -> str:
        return queue_of(self.opcode)

    @property
    def format(self) -> str:
        return OPCODES[self.opcode][1]

    def get(self, name: str) -> int:
        """A field's value; a field left out is at its minimum (what :func:`encode` assembles)."""
        if name in self.fields:
            return int(self.fields[name])
        return next((spec.minimum for spec in FORMATS[self.format] if spec.name == name), 0)

    def with_tokens(self, **tokens) -> Instruction:
        values = {name: getattr(self, name) for name in TOKEN_BITS}
        values.update(tokens)
        return Instruction(self.opcode, self.funct, dict(self.fields), **values)

    def text(self) -> str:
        """One listing line: ``GEMM.forward [pop_prev push_next] dst=0x100 src0=0x0 ...``."""
        tokens = [name for name in TOKEN_BITS if getattr(self, name)]
        parts = [self.opcode if self.funct == "none" else f"{self.opcode}.{self.funct}"]
        if tokens:
            parts.append("[" + " ".join(tokens) + "]")
        for spec in FORMATS[self.format]:
            value = self.get(spec.name)
            addressy = spec.name.endswith("address") or spec.name in ("dst", "src0", "src1", "src2")
            parts.append(f"{spec.name}={value:#x}" if addressy else f"{spec.name}={value}")
        return " ".join(parts)


def _check(mnemonic: str, spec: Field, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{mnemonic}: {spec.name} must be an integer, not {value!r}")
    if not spec.minimum <= value <= spec.limit:
        raise ValueError(
            f"{mnemonic}: {spec.name} must be between {spec.minimum} and {spec.limit} "
            f"({spec.width} bits at {spec.bits}), not {value}"
        )
    return value


def encode(instruction: Instruction) -> int:
    """Assemble one instruction into its 128-bit integer, checking every field (one-line errors)."""
    if instruction.opcode not in OPCODES:
        raise ValueError(f"opcode must be one of {', '.join(OPCODES)}, not {instruction.opcode!r}")
    mnemonic = instruction.opcode
    functs = FUNCTS[mnemonic]
    if instruction.funct not in functs:
        raise ValueError(f"{mnemonic}: funct must be one of {', '.join(functs)}, not {instruction.funct!r}")
    fmt = FORMATS[instruction.format]
    known = {spec.name for spec in fmt}
    unknown = sorted(set(instruction.fields) - known)
    if unknown:
        raise ValueError(f"{mnemonic}: field {unknown[0]!r} is not in the {instruction.format} format "
                         f"({', '.join(spec.name for spec in fmt)})")
    queue = instruction.queue
    if queue == "load" and (instruction.pop_prev or instruction.push_prev):
        raise ValueError(f"{mnemonic}: the load queue has no previous queue, so pop_prev and push_prev must be 0")
    if queue == "store" and (instruction.pop_next or instruction.push_next):
        raise ValueError(f"{mnemonic}: the store queue has no next queue, so pop_next and push_next must be 0")
    word = OPCODES[mnemonic][0] | (functs[instruction.funct][0] << 12)
    for name in TOKEN_BITS:
        bit = getattr(instruction, name)
        if not isinstance(bit, bool):
            raise TypeError(f"{mnemonic}: {name} must be a bool, not {bit!r}")
        word |= int(bit) << next(spec.offset for spec in HEADER if spec.name == name)
    for spec in fmt:
        raw = instruction.fields.get(spec.name, spec.minimum)
        word |= _check(mnemonic, spec, raw) << spec.offset
    return word


def decode(word: int | bytes) -> Instruction:
    """Disassemble one 128-bit word (int or 16 little-endian bytes); illegal opcodes/functs raise."""
    if isinstance(word, bytes | bytearray):
        if len(word) != INSTRUCTION_BYTES:
            raise ValueError(f"an instruction is {INSTRUCTION_BYTES} bytes, not {len(word)}")
        word = int.from_bytes(word, "little")
    number = word & 0xFF
    if number not in _OPCODE_BY_NUMBER:
        raise ValueError(f"illegal opcode {number:#04x}")
    opcode = _OPCODE_BY_NUMBER[number]
    funct_number = (word >> 12) & 0xF
    if funct_number not in _FUNCT_BY_NUMBER[opcode]:
        raise ValueError(f"illegal funct {funct_number} for {opcode}")
    values = {spec.name: (word >> spec.offset) & ((1 << spec.width) - 1) for spec in FORMATS[OPCODES[opcode][1]]}
    tokens = {name: bool((word >> (8 + index)) & 1) for index, name in enumerate(TOKEN_BITS)}
    return Instruction(opcode, _FUNCT_BY_NUMBER[opcode][funct_number], values, **tokens)


def encode_program(instructions) -> bytes:
    """The program image: every instruction's word, 16 bytes little-endian each."""
    return b"".join(encode(instruction).to_bytes(INSTRUCTION_BYTES, "little") for instruction in instructions)


def decode_program(image: bytes) -> list[Instruction]:
    if len(image) % INSTRUCTION_BYTES:
        raise ValueError(f"a program image is a multiple of {INSTRUCTION_BYTES} bytes, not {len(image)}")
    return [decode(image[i : i + INSTRUCTION_BYTES]) for i in range(0, len(image), INSTRUCTION_BYTES)]


def markdown_tables() -> str:
    """The instruction-set tables of ``docs/core.md`` (a test checks the document holds exactly this)."""
    lines = ["| opcode | number | format | queue | meaning |", "|---|---|---|---|---|"]
    for name, (number, fmt, meaning) in OPCODES.items():
        lines.append(f"| `{name}` | `{number:#04x}` | {fmt} | {queue_of(name)} | {meaning} |")
    for title, specs in (("header (every format)", HEADER), *((f"{k} format", v) for k, v in FORMATS.items())):
        lines += ["", f"**{title}**", "", "| field | bits | range | meaning |", "|---|---|---|---|"]
        for spec in specs:
            lines.append(f"| `{spec.name}` | `{spec.bits}` | {spec.minimum}..{spec.limit} | {spec.meaning} |")
    lines += ["", "**function codes**", "", "| opcode | funct | number | operands |", "|---|---|---|---|"]
    for op, table in FUNCTS.items():
        if op == "STORE":
            continue
        label = "LOAD, STORE" if op == "LOAD" else op
        for name, (number, operands) in table.items():
            lines.append(f"| `{label}` | `{name}` | {number} | {operands} |")
    return "\n".join(lines) + "\n"


def norm_block(kind: str, channels: int, groups: int = 1) -> dict:
    """Layout of one NORM block in the accumulator memory: ``{part: (offset, words)}`` and ``"words"``.

    BN has one block per layer (sets = channels); GN one block per sample (sets = groups), consecutive, so
    the block of sample ``i`` is at ``base + i * words`` and an instruction over samples ``lo..hi`` starts at
    the block of ``lo``. Parts: ``s1, s2`` per set, ``rstd, a, c`` per channel, ``gamma`` (copied by
    ``constants``), ``r1, r2`` per channel (written by ``backward``).
    """
    if kind not in ("bn", "gn"):
        raise ValueError(f"kind must be one of bn, gn, not {kind!r}")
    sets = channels if kind == "bn" else groups
    layout, offset = {}, 0
    for part, words in (("s1", sets), ("s2", sets), ("rstd", channels), ("a", channels), ("c", channels),
                        ("gamma", channels), ("r1", channels), ("r2", channels)):
        layout[part] = (offset, words)
        offset += words
    layout["words"] = offset
    return layout
