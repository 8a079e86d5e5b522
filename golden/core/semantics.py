"""What each instruction touches and how long it takes: one definition for the compiler, the simulator
and the RTL testbench.

* :class:`CoreParameters` is the part of the accelerator configuration the contract depends on (array,
  memories, DMA bandwidth, element sizes).
* :func:`accesses` gives the memory ranges an instruction reads and writes, from its fields and the current
  SHAPE register: the compiler sets tokens from them, the simulator checks the tokens against them.
* :func:`cycles` is the per-instruction cycle model (LOAD/STORE: issue, first-beat latency and the DRAM
  bandwidth; compute instructions: the unit's own cycle formula, kept beside its RTL, plus the core's dispatch);
  :func:`makespan` schedules a program's queues with
  their tokens (a queue runs its instructions in order; a pop waits for the matching push's retirement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wavecore.golden.core.isa import FORMATS, QUEUES, Instruction
from wavecore.golden.core.memory_map import element_bytes

__all__ = ["CoreParameters", "Shape", "accesses", "core_numerics", "cycles", "dma_rows", "makespan", "norm_count",
           "shapes_in_effect"]

#: Fixed cost of starting any instruction (decode and issue), and the DMA's first-beat latency.
ISSUE_CYCLES = 2
#: Cycles the core's compute queue adds to a unit's own (``hdl/core/wavecore.py``: start, the unit's copies of the
#: instruction and shape loaded, the unit's done seen, the range check's cycle, retire).
UNIT_DISPATCH_CYCLES = 5
DMA_LATENCY = 24


@dataclass(frozen=True)
class CoreParameters:
    """Sizes the contract depends on (from the accelerator YAML)."""

    rows: int = 8
    cols: int = 8
    in_width: int = 8
    acc_width: int = 32
    scratchpad_elements: int = 1 << 18
    accumulator_elements: int = 1 << 16
    dram_bytes: int = 1 << 26
    dram_bytes_per_cycle: int = 16
    vector_lanes: int = 8

    @property
    def operand_bytes(self) -> int:
        return element_bytes(self.in_width)

    @property
    def accumulator_bytes(self) -> int:
        return element_bytes(self.acc_width)

    def sizes(self) -> dict:
        return {"scratchpad": self.scratchpad_elements, "accumulator": self.accumulator_elements,
                "dram": self.dram_bytes}


def core_numerics(parameters: CoreParameters, *, overflow: str | None = None):
    """The integer arithmetic of a core with ``parameters``: the ``int8`` preset of
    :data:`wavecore.golden.numerics.INTEGER_PRESETS` for operands up to 8 bits, else ``int16``, with the
    parameters' operand and accumulator widths and the accumulator ``overflow`` mode (default the preset's).
    ``wavecore compile`` and ``wavecore generate core`` build theirs from the config's ``numerics`` this way."""
    import dataclasses

    from wavecore.golden.numerics import INTEGER_PRESETS

    preset = INTEGER_PRESETS["int8" if parameters.in_width <= 8 else "int16"]
    mac = dataclasses.replace(preset.mac, in_width=parameters.in_width, acc_width=parameters.acc_width,
                              overflow=overflow or preset.mac.overflow)
    return dataclasses.replace(preset, mac=mac)


class Shape(dict):
    """The SHAPE register: the shape-format fields (initially all at their minimum)."""

    def __init__(self, values=None):
        super().__init__({spec.name: spec.minimum for spec in FORMATS["shape"]})
        if values:
            self.update(values)

    @property
    def input_elements(self) -> int:
        return self["samples"] * self["channels"] * self["height"] * self["width"]

    @property
    def output_elements(self) -> int:
        return self["samples"] * self["out_channels"] * self["out_height"] * self["out_width"]

    @property
    def weight_elements(self) -> int:
        return (self["out_channels"] * (self["channels"] // self["groups"]) * self["kernel_height"]
                * self["kernel_width"])


def memory_of(instruction: Instruction) -> str:
    """``scratchpad`` or ``accumulator``: the on-chip side of a LOAD/STORE."""
    return instruction.funct.split(".")[1]


def dma_rows(instruction: Instruction, parameters: CoreParameters):
    """The DRAM byte ranges of a LOAD/STORE, one per row, in transfer order, and the element size."""
    size = parameters.operand_bytes if memory_of(instruction) == "scratchpad" else parameters.accumulator_bytes
    base, length = instruction.get("dram_address"), instruction.get("length")
    rows = []
    for plane in range(instruction.get("count2")):
        for row in range(instruction.get("count1")):
            start = base + (plane * instruction.get("stride2") + row * instruction.get("stride1")) * size
            rows.append((start, start + length * size))
    return rows, size


def norm_count(instruction: Instruction, shape: Shape) -> int:
    """Elements per statistic set: BN ``N*H*W`` (``N`` = imm[15:3] of a streamed NORM.backward, else the SHAPE
    samples), GN ``C/G*H*W``."""
    if instruction.funct.endswith("_bn"):
        streamed = instruction.get("imm") >> 3 if instruction.funct == "backward_bn" else 0
        return (streamed or shape["samples"]) * shape["height"] * shape["width"]
    return shape["channels"] // shape["groups"] * shape["height"] * shape["width"]


def _norm_blocks(instruction: Instruction, shape: Shape) -> int:
    """Words of the NORM blocks an instruction touches (one block for BN, one per sample for GN)."""
    from wavecore.golden.core.isa import norm_block

    kind = instruction.funct[-2:]
    block = norm_block(kind, shape["channels"], shape["groups"])["words"]
    return block if kind == "bn" else block * shape["samples"]


def shapes_in_effect(program) -> list:
    """Per instruction of ``program``, the SHAPE register it sees (the last SHAPE before it, itself for a SHAPE;
    the default :class:`Shape` before the first)."""
    shape, result = Shape(), []
    for instruction in program:
        if instruction.opcode == "SHAPE":
            shape = Shape(instruction.fields)
        result.append(shape)
    return result


def accesses(instruction: Instruction, shape: Shape, parameters: CoreParameters):
    """``(reads, writes)``: lists of ``(memory, start, stop)`` (elements on chip, bytes in DRAM)."""
    op, funct, get = instruction.opcode, instruction.funct, instruction.get
    spad, acc = "scratchpad", "accumulator"
    if op in ("LOAD", "STORE"):
        rows, _ = dma_rows(instruction, parameters)
        chip = (memory_of(instruction), get("scratch_address"),
                get("scratch_address") + get("length") * get("count1") * get("count2"))
        dram = [("dram", start, stop) for start, stop in rows]
        return (dram, [chip]) if op == "LOAD" else ([chip], dram)
    x, y, w = shape.input_elements, shape.output_elements, shape.weight_elements
    n, c = shape["samples"], shape["channels"]
    if op == "GEMM":
        if funct.startswith("forward"):
            reads = [(spad, get("src0"), get("src0") + x), (spad, get("src1"), get("src1") + w)]
            if funct == "forward_bias":
                reads.append((spad, get("src2"), get("src2") + shape["out_channels"]))
            return reads, [(spad, get("dst"), get("dst") + y)]
        if funct == "backward_data":
            return ([(spad, get("src0"), get("src0") + y), (spad, get("src1"), get("src1") + w)],
                    [(spad, get("dst"), get("dst") + x)])
        reads = [(spad, get("src0"), get("src0") + y), (spad, get("src1"), get("src1") + x)]
        if funct == "backward_weight_accumulate":
            reads.append((acc, get("dst"), get("dst") + w))
        return reads, [(acc, get("dst"), get("dst") + w)]
    if op == "VECTOR":
        one = [(spad, get("src0"), get("src0") + x)]
        if funct in ("add_saturate", "add_exact", "relu_mask"):
            return one + [(spad, get("src1"), get("src1") + x)], [(spad, get("dst"), get("dst") + x)]
        if funct == "relu":
            return one, [(spad, get("dst"), get("dst") + x)]
        if funct in ("maxpool_forward", "avgpool_forward", "global_pool_forward"):
            return one, [(spad, get("dst"), get("dst") + y)]
        if funct == "maxpool_backward":
            return ([(spad, get("src0"), get("src0") + y), (spad, get("src1"), get("src1") + x)],
                    [(spad, get("dst"), get("dst") + x)])
        if funct in ("avgpool_backward", "global_pool_backward"):
            return [(spad, get("src0"), get("src0") + y)], [(spad, get("dst"), get("dst") + x)]
        if funct.startswith("channel_sum"):
            reads = one + ([(acc, get("dst"), get("dst") + c)] if funct.endswith("accumulate") else [])
            return reads, [(acc, get("dst"), get("dst") + c)]
        if funct == "requantize":
            return [(acc, get("src0"), get("src0") + x)], [(spad, get("dst"), get("dst") + x)]
        if funct in ("channel_insert", "channel_extract"):
            # insert: src0 (N, C, H, W) into dst (N, out_channels, H, W); extract: the reverse
            big = n * shape["out_channels"] * shape["height"] * shape["width"]
            small_size = x
            if funct == "channel_insert":
                return ([(spad, get("src0"), get("src0") + small_size), (spad, get("dst"), get("dst") + big)],
                        [(spad, get("dst"), get("dst") + big)])
            return [(spad, get("src0"), get("src0") + small_size)], [(spad, get("dst"), get("dst") + big)]
    if op == "NORM":
        name = funct[:-3]
        blocks = _norm_blocks(instruction, shape)
        if name == "statistics":
            block = [(acc, get("dst"), get("dst") + blocks)]
            return [(spad, get("src0"), get("src0") + x)] + (block if get("imm") & 1 else []), block
        if name == "constants":
            return ([(acc, get("src0"), get("src0") + blocks), (spad, get("src1"), get("src1") + 2 * c)],
                    [(acc, get("dst"), get("dst") + blocks)])
        if name in ("affine", "affine_relu"):
            return ([(spad, get("src0"), get("src0") + x), (acc, get("src1"), get("src1") + blocks)],
                    [(spad, get("dst"), get("dst") + x)])
        if name == "relu_mask":
            return ([(spad, get("src0"), get("src0") + x), (spad, get("src1"), get("src1") + x),
                     (acc, get("src2"), get("src2") + blocks)], [(spad, get("dst"), get("dst") + x)])
        if name == "backward":
            reads = [(spad, get("src0"), get("src0") + x), (spad, get("src1"), get("src1") + x),
                     (acc, get("src2"), get("src2") + blocks)]
            dx = [(spad, get("dst"), get("dst") + x)]
            block = [(acc, get("src2"), get("src2") + blocks)]
            mode = get("imm") & 7
            return reads, (block if mode & 1 else dx if mode & 4 else dx + block)
        reads = [(acc, get("src0"), get("src0") + blocks)]
        if name == "param_grads_accumulate":
            reads.append((acc, get("dst"), get("dst") + 2 * c))
        return reads, [(acc, get("dst"), get("dst") + 2 * c)]
    if op == "LOSS" and funct == "mean":
        return [(acc, get("src0"), get("src0") + n)], [(acc, get("dst"), get("dst") + 1)]
    if op == "LOSS":
        return ([(spad, get("src0"), get("src0") + n * c), (spad, get("src1"), get("src1") + n)],
                [(spad, get("dst"), get("dst") + n * c), (acc, get("src2"), get("src2") + n)])
    if op == "SGD":
        return ([(spad, get("src0"), get("src0") + x), (spad, get("src1"), get("src1") + x),
                 (spad, get("src2"), get("src2") + x), (acc, get("dst"), get("dst") + 3)],
                [(spad, get("src0"), get("src0") + x), (spad, get("src1"), get("src1") + x)])
    return [], []


def cycles(instruction: Instruction, shape: Shape, parameters: CoreParameters) -> int:
    """Predicted cycles of one instruction (the model ``docs/core.md`` states)."""
    op = instruction.opcode
    if op in ("LOAD", "STORE"):
        rows, size = dma_rows(instruction, parameters)
        moved = sum(stop - start for start, stop in rows)
        return ISSUE_CYCLES + DMA_LATENCY + math.ceil(moved / parameters.dram_bytes_per_cycle)
    if op in ("GEMM", "VECTOR", "NORM", "LOSS", "SGD"):
        # the unit's own formula (beside its RTL: hdl/core/<unit>_unit.py unit_cycles, equal to the cycles the
        # unit takes, tests/hdl/core/test_*_unit.py) plus the core's dispatch: start, run, retire
        from wavecore.hdl.core.units import unit_cycles

        return UNIT_DISPATCH_CYCLES + unit_cycles(instruction, shape, parameters)
    return ISSUE_CYCLES


def makespan(program, parameters: CoreParameters):
    """Start and end cycle of every instruction when the three queues run concurrently with their tokens.

    ``program`` is a list of instructions in program order. Returns ``(times, total)`` with
    ``times[i] = (start, end)``.
    """
    shape = Shape()
    durations = []
    for instruction in program:
        if instruction.opcode == "SHAPE":
            shape = Shape(instruction.fields)
        durations.append(cycles(instruction, shape, parameters))
    queues = {q: [i for i, ins in enumerate(program) if ins.queue == q] for q in QUEUES}
    pushes = {}  # (from, to) -> list of retire times in push order
    times = [None] * len(program)
    position = dict.fromkeys(QUEUES, 0)
    pops = {}
    free = dict.fromkeys(QUEUES, 0)
    progress = True
    while progress:
        progress = False
        for q in QUEUES:
            while position[q] < len(queues[q]):
                index = queues[q][position[q]]
                ins = program[index]
                start = free[q]
                ready = True
                for bit, other in (("pop_prev", -1), ("pop_next", 1)):
                    if getattr(ins, bit):
                        key = (QUEUES[QUEUES.index(q) + other], q)
                        taken = pops.get(key, 0)
                        if taken >= len(pushes.get(key, [])):
                            ready = False
                            break
                        start = max(start, pushes[key][taken])
                if not ready:
                    break
                for bit, other in (("pop_prev", -1), ("pop_next", 1)):
                    if getattr(ins, bit):
                        key = (QUEUES[QUEUES.index(q) + other], q)
                        pops[key] = pops.get(key, 0) + 1
                end = start + durations[index]
                times[index] = (start, end)
                free[q] = end
                for bit, other in (("push_prev", -1), ("push_next", 1)):
                    if getattr(ins, bit):
                        pushes.setdefault((q, QUEUES[QUEUES.index(q) + other]), []).append(end)
                position[q] += 1
                progress = True
    if any(position[q] < len(queues[q]) for q in QUEUES):
        stuck = [f"{q} #{queues[q][position[q]]}" for q in QUEUES if position[q] < len(queues[q])]
        raise RuntimeError(f"the program's tokens deadlock at {', '.join(stuck)}")
    return times, max((end for _, end in times), default=0)
