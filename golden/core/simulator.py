"""Instruction-level simulator of the WaveCore training core (``docs/core.md``, "Simulator").

Runs a program on a model of DRAM (a ``bytearray``) and the two on-chip memories (int64 arrays of
elements) with the golden integer kernels (:class:`golden.integer.IntegerKernels`, which compute through
``MacArithmetic`` and ``NormArithmetic``), one instruction at a time. The three queues run in the order the
cycle model gives (:func:`golden.core.semantics.makespan`'s rule: each queue in order, a pop waits for its
push); at every instruction the simulator checks with the vector clocks that the tokens order it after
every earlier access to what it reads or writes (:class:`golden.core.program.Ordering`), so a program with
missing or inconsistent tokens stops with :class:`~golden.core.program.TokenError` naming both instructions.

The trace has one :class:`TraceEntry` per retired instruction: program index, queue, listing text,
predicted start/end cycle, bytes moved per traffic class, and a digest (sha256, 16 hex digits) of what it
wrote (the DRAM bytes of a STORE, the on-chip elements otherwise, as little-endian int64).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from wavecore.golden.core.errors import ErrorCode
from wavecore.golden.core.isa import (
    INSTRUCTION_BYTES,
    OPCODES,
    QUEUES,
    TRAFFIC_CLASSES,
    Instruction,
    decode,
    encode,
    norm_block,
)
from wavecore.golden.core.memory_map import MemoryMap
from wavecore.golden.core.program import Ordering, TokenError
from wavecore.golden.core.semantics import (
    CoreParameters,
    Shape,
    accesses,
    cycles,
    dma_rows,
    memory_of,
    norm_count,
    shapes_in_effect,
)
from wavecore.golden.integer import IntegerKernels
from wavecore.golden.numerics import IntegerTraining, requantize

__all__ = ["CoreError", "Simulator", "TraceEntry"]


class CoreError(RuntimeError):
    """An error state of the core: ``code`` (:class:`golden.core.errors.ErrorCode`, the RTL's ``ERROR_CODE``
    for the faults both detect), the failing instruction's program ``index`` (None before the first), and a
    message naming it."""

    def __init__(self, message: str, *, code: ErrorCode, index: int | None = None):
        super().__init__(message)
        self.code, self.index = ErrorCode(code), index


_OPCODE_NUMBERS = {number for number, _, _ in OPCODES.values()}


def _check_ranges(index: int, ins: Instruction, reads, writes, sizes: dict):
    """Stop with the RTL's code for the first access outside its memory: DRAM first (the RTL checks
    DRAM_OUT_OF_RANGE before SCRATCHPAD_OUT_OF_RANGE), then the scratchpad or the accumulator memory."""
    for memory, start, stop in sorted([*reads, *writes], key=lambda access: access[0] != "dram"):
        if not 0 <= start <= stop <= sizes[memory]:
            code = ErrorCode.DRAM_OUT_OF_RANGE if memory == "dram" else ErrorCode.SCRATCHPAD_OUT_OF_RANGE
            raise CoreError(f"instruction #{index} ({ins.text()}): {memory} range [{start}, {stop}) is outside "
                            f"[0, {sizes[memory]})", code=code, index=index)


@dataclass
class TraceEntry:
    index: int
    queue: str
    text: str
    start: int
    end: int
    bytes: dict = field(default_factory=dict)
    digest: str = ""


def _digest(array_or_bytes) -> str:
    data = array_or_bytes if isinstance(array_or_bytes, bytes | bytearray) else np.ascontiguousarray(
        array_or_bytes, dtype="<i8").tobytes()
    return hashlib.sha256(bytes(data)).hexdigest()[:16]


class Simulator:
    """Executes programs; see the module docstring.

    Parameters
    ----------
    parameters : CoreParameters
    numerics : IntegerTraining
        The integer grids and arithmetic the core was generated with; its loss and SGD must be the on-chip
        (``"integer"``) ones. The SGD constants (learning rate, momentum, weight decay) are data: each SGD
        instruction reads them from the accumulator memory.
    """

    def __init__(self, *, parameters: CoreParameters, numerics: IntegerTraining):
        if not isinstance(numerics, IntegerTraining):
            raise TypeError(f"numerics must be an IntegerTraining, not {numerics!r}")
        if numerics.loss != "integer" or numerics.sgd != "integer":
            raise ValueError("numerics must use the on-chip loss and SGD (loss='integer', sgd='integer')")
        self.parameters = parameters
        self.numerics = numerics
        self.kernels = IntegerKernels(numerics)
        self.sgd_template = numerics.sgd_arithmetic(lr=0.0, momentum=0.0, weight_decay=0.0)
        self.scratchpad = np.zeros(parameters.scratchpad_elements, dtype=np.int64)
        self.accumulator = np.zeros(parameters.accumulator_elements, dtype=np.int64)
        self.counters = dict.fromkeys(TRAFFIC_CLASSES, 0)
        self.trace: list[TraceEntry] = []
        self.snapshots: list[tuple[int, dict]] = []

    # -- running ----------------------------------------------------------------------------------------------
    def run_from_dram(self, dram: bytearray, program_address: int, count: int) -> list[TraceEntry]:
        """Fetch ``count`` instruction words from DRAM at ``program_address`` (what the core's fetch unit
        does), decode them and run them. As the RTL's decoder: an undefined opcode is ``ILLEGAL_OPCODE``, any
        other undecodable word (function code, a token bit its queue cannot have, a field out of range)
        ``ILLEGAL_FIELD``; a fetch outside DRAM ``DRAM_OUT_OF_RANGE``."""
        program = []
        for index in range(count):
            start = program_address + index * INSTRUCTION_BYTES
            if start + INSTRUCTION_BYTES > len(dram):
                raise CoreError(f"instruction #{index}: fetch at {start} is outside DRAM",
                                code=ErrorCode.DRAM_OUT_OF_RANGE, index=index)
            word = bytes(dram[start : start + INSTRUCTION_BYTES])
            try:
                instruction = decode(word)
                encode(instruction)  # token bits a queue cannot have, fields below their minimum
            except ValueError as error:
                code = ErrorCode.ILLEGAL_OPCODE if word[0] not in _OPCODE_NUMBERS else ErrorCode.ILLEGAL_FIELD
                raise CoreError(f"instruction #{index}: {error}", code=code, index=index) from None
            program.append(instruction)
        return self.run(program, dram)

    def run(self, program: list[Instruction], dram: bytearray) -> list[TraceEntry]:
        """Execute ``program`` on ``dram`` (modified in place); returns the trace."""
        if len(dram) > self.parameters.dram_bytes:
            raise ValueError(f"dram holds {len(dram)} bytes, more than dram_bytes {self.parameters.dram_bytes}")
        if not program or program[-1].opcode != "END":
            raise CoreError("the program must end with END", code=ErrorCode.NO_END, index=len(program))
        self.dram = dram
        sizes = {**self.parameters.sizes(), "dram": len(dram)}
        ordering = Ordering(sizes)
        queues = {q: [i for i, ins in enumerate(program) if ins.queue == q] for q in QUEUES}
        shapes = shapes_in_effect(program)
        position = dict.fromkeys(QUEUES, 0)
        tokens = {}  # (from, to) -> list of (retire cycle, clock) in push order
        popped = {}
        free = dict.fromkeys(QUEUES, 0)
        clocks = {q: [-1, -1, -1] for q in QUEUES}
        while True:
            candidates = []
            for q in QUEUES:
                if position[q] >= len(queues[q]):
                    continue
                index = queues[q][position[q]]
                ins = program[index]
                start, merged, ready = free[q], list(clocks[q]), True
                for bit, step in (("pop_prev", -1), ("pop_next", 1)):
                    if getattr(ins, bit):
                        key = (QUEUES[QUEUES.index(q) + step], q)
                        taken = popped.get(key, 0)
                        if taken >= len(tokens.get(key, [])):
                            ready = False
                            break
                        when, clock = tokens[key][taken]
                        start = max(start, when)
                        merged = [max(a, b) for a, b in zip(merged, clock)]
                if ins.opcode == "END" and any(position[o] < len(queues[o]) for o in ("load", "store")):
                    ready = False
                if ready:
                    candidates.append((start, QUEUES.index(q), q, index, merged))
            if not candidates:
                break
            start, _, q, index, merged = min(candidates)
            ins = program[index]
            for bit, step in (("pop_prev", -1), ("pop_next", 1)):
                if getattr(ins, bit):
                    key = (QUEUES[QUEUES.index(q) + step], q)
                    popped[key] = popped.get(key, 0) + 1
            shape = shapes[index]
            reads, writes = accesses(ins, shape, self.parameters)
            queue_number = QUEUES.index(q)
            _check_ranges(index, ins, reads, writes, sizes)
            needs = ordering.needs(queue_number, reads, writes)
            for other, (needed, kind, access) in enumerate(needs):
                if needed > merged[other]:
                    culprit = queues[QUEUES[other]][needed]
                    raise TokenError(
                        f"instruction #{index} ({ins.text()}) is not ordered after #{culprit} "
                        f"({program[culprit].text()}): {kind} on {access[0]} [{access[1]}, {access[2]}) "
                        "without a dependency token")
            merged[queue_number] = position[q]
            ordering.record(queue_number, position[q], reads, writes)
            clocks[q] = merged
            end = start + cycles(ins, shape, self.parameters)
            entry = TraceEntry(index, q, ins.text(), start, end)
            try:
                self._execute(ins, shape, entry, writes)
            except (ValueError, TypeError) as error:
                code = ErrorCode.ELEMENT_OUT_OF_RANGE if "does not fit" in str(error) else ErrorCode.ILLEGAL_FIELD
                raise CoreError(f"instruction #{index} ({ins.text()}): {error}", code=code, index=index) from error
            self.trace.append(entry)
            free[q] = end
            for bit, step in (("push_prev", -1), ("push_next", 1)):
                if getattr(ins, bit):
                    tokens.setdefault((q, QUEUES[QUEUES.index(q) + step]), []).append((end, list(merged)))
            position[q] += 1
            if ins.opcode == "END":
                break
        stuck = [f"{q} #{queues[q][position[q]]}" for q in QUEUES if position[q] < len(queues[q])]
        if stuck:
            raise TokenError(f"the program's tokens deadlock: waiting at {', '.join(stuck)}")
        left = {key: len(values) - popped.get(key, 0) for key, values in tokens.items()}
        left = {key: count for key, count in left.items() if count}
        if left:
            (source, target), count = next(iter(left.items()))
            raise TokenError(f"{count} token(s) from {source} to {target} were pushed and never popped")
        return self.trace

    @property
    def cycles(self) -> int:
        return max((entry.end for entry in self.trace), default=0)

    # -- memories ---------------------------------------------------------------------------------------------
    def _memory(self, name):
        return self.scratchpad if name == "scratchpad" else self.accumulator

    def _get(self, memory, address, shape):
        size = int(np.prod(shape))
        return self._memory(memory)[address : address + size].reshape(shape).copy()

    def _put(self, memory, address, values):
        values = np.asarray(values)
        if values.dtype == object:
            values = values.astype(np.int64)
        self._memory(memory)[address : address + values.size] = values.ravel()

    # -- instructions -----------------------------------------------------------------------------------------
    def _execute(self, ins: Instruction, shape: Shape, entry: TraceEntry, writes):
        op = ins.opcode
        handler = getattr(self, f"_op_{op.lower()}", None)
        if handler is not None:
            handler(ins, shape, entry)
        if op == "STORE":
            rows, _ = dma_rows(ins, self.parameters)
            entry.digest = _digest(b"".join(self.dram[a:b] for a, b in rows))
        elif writes:
            entry.digest = _digest(np.concatenate([self._memory(m)[a:b] for m, a, b in writes]))

    def _op_load(self, ins, shape, entry):
        rows, size = dma_rows(ins, self.parameters)
        data = b"".join(self.dram[a:b] for a, b in rows)
        self._put(memory_of(ins), ins.get("scratch_address"), MemoryMap.decode(data, size))
        self._count(ins, entry, len(data))

    def _op_store(self, ins, shape, entry):
        rows, size = dma_rows(ins, self.parameters)
        length = ins.get("length")
        values = self._get(memory_of(ins), ins.get("scratch_address"), (len(rows), length))
        for (a, b), row in zip(rows, values):
            self.dram[a:b] = MemoryMap.encode(row, size, "STORE")
        self._count(ins, entry, sum(b - a for a, b in rows))

    def _count(self, ins, entry, moved):
        cls = ins.funct.split(".")[0]
        self.counters[cls] += moved
        entry.bytes = {cls: moved}

    @staticmethod
    def _layer(shape, op="conv2d"):
        """The layer object the golden kernels take, built from the SHAPE register."""
        params = {"stride": (shape["stride_height"], shape["stride_width"]),
                  "padding": (shape["padding_height"], shape["padding_width"]),
                  "kernel": (shape["kernel_height"], shape["kernel_width"]),
                  "groups": shape["groups"], "ceil_mode": bool(shape["ceil_mode"]), "bias": False}
        return SimpleNamespace(name="core", op=op, params=params)

    @staticmethod
    def _dims(shape):
        n, c, h, w = shape["samples"], shape["channels"], shape["height"], shape["width"]
        return (n, c, h, w), (n, shape["out_channels"], shape["out_height"], shape["out_width"])

    def _op_gemm(self, ins, shape, entry):
        x_shape, y_shape = self._dims(shape)
        w_shape = (shape["out_channels"], shape["channels"] // shape["groups"], shape["kernel_height"],
                   shape["kernel_width"])
        funct, k = ins.funct, self.kernels
        layer = self._layer(shape)
        if funct in ("forward", "forward_bias", "backward_data") and ins.get("imm") != self.numerics.weight_frac:
            raise ValueError(f"imm (requantize shift) must be weight_frac = {self.numerics.weight_frac}, "
                             f"not {ins.get('imm')}")
        if funct.startswith("forward"):
            bias = self._get("scratchpad", ins.get("src2"), (shape["out_channels"],)) if funct.endswith(
                "bias") else None
            y = k.conv_forward(layer, self._get("scratchpad", ins.get("src0"), x_shape),
                               self._get("scratchpad", ins.get("src1"), w_shape), bias)
            self._put("scratchpad", ins.get("dst"), y)
        elif funct == "backward_data":
            dy = self._get("scratchpad", ins.get("src0"), y_shape)
            dx, _, _ = k.conv_backward(layer, dy, np.zeros(x_shape, np.int64),
                                       self._get("scratchpad", ins.get("src1"), w_shape), True)
            self._put("scratchpad", ins.get("dst"), dx)
        else:
            dy = self._get("scratchpad", ins.get("src0"), y_shape)
            carry = self._get("accumulator", ins.get("dst"), w_shape) if funct.endswith("accumulate") else None
            _, dw, _ = k.conv_backward(layer, dy, self._get("scratchpad", ins.get("src1"), x_shape),
                                       np.zeros(w_shape, np.int64), False, carry)
            self._put("accumulator", ins.get("dst"), dw)

    def _op_vector(self, ins, shape, entry):
        x_shape, y_shape = self._dims(shape)
        funct, k, get = ins.funct, self.kernels, ins.get
        src0 = lambda s: self._get("scratchpad", get("src0"), s)  # noqa: E731
        src1 = lambda s: self._get("scratchpad", get("src1"), s)  # noqa: E731
        pool = self._layer(shape, op="pool")
        limit = get("imm")
        if funct == "add_saturate":
            result = k.add_forward(None, [src0(x_shape), src1(x_shape)])
        elif funct == "add_exact":
            result = src0(x_shape) + src1(x_shape)
        elif funct == "relu":
            result = np.maximum(src0(x_shape), 0) if not limit else np.clip(src0(x_shape), 0, limit)
        elif funct == "relu_mask":
            x = src1(x_shape)
            result = src0(x_shape) * ((x > 0) if not limit else ((x > 0) & (x < limit)))
        elif funct == "maxpool_forward":
            result = k.maxpool_forward(pool, src0(x_shape))
        elif funct == "maxpool_backward":
            result = k.maxpool_backward(pool, src0(y_shape), src1(x_shape))
        elif funct == "avgpool_forward":
            result = k.avgpool_forward(pool, src0(x_shape))
        elif funct == "avgpool_backward":
            result = k.avgpool_backward(pool, src0(y_shape), x_shape)
        elif funct == "global_pool_forward":
            result = k.global_avgpool_forward(pool, src0(x_shape))
        elif funct == "global_pool_backward":
            result = k.global_avgpool_backward(pool, src0(y_shape), x_shape)
        elif funct.startswith("channel_sum"):
            result = src0(x_shape).sum(axis=(0, 2, 3))
            if funct.endswith("accumulate"):
                result = result + self._get("accumulator", get("dst"), result.shape)
            self._put("accumulator", get("dst"), result)
            return
        elif funct == "requantize":
            values = self._get("accumulator", get("src0"), x_shape)
            result = requantize(values, get("imm"), self.numerics.operand, self.numerics.rounding)
        elif funct == "channel_insert":
            n, c, h, w = x_shape
            big = self._get("scratchpad", get("dst"), (n, shape["out_channels"], h, w))
            big[:, limit : limit + c] = src0(x_shape)
            result = big
        elif funct == "channel_extract":
            n, c, h, w = x_shape
            result = src0(x_shape)[:, limit : limit + shape["out_channels"]]
        else:
            raise ValueError(f"VECTOR.{funct} is not implemented")
        self._put("scratchpad", get("dst"), result)

    # -- NORM -------------------------------------------------------------------------------------------------
    def _blocks(self, ins, shape, address):
        """The NORM blocks at ``address`` as ``{part: array}`` (BN: per channel; GN: (samples, ...))."""
        kind = ins.funct[-2:]
        layout = norm_block(kind, shape["channels"], shape["groups"])
        count = 1 if kind == "bn" else shape["samples"]
        words = self.accumulator[address : address + count * layout["words"]].reshape(count, layout["words"])
        parts = {}
        for part, place in layout.items():
            if part != "words":
                values = words[:, place[0] : place[0] + place[1]]
                parts[part] = values[0] if kind == "bn" else values
        return parts, layout, count

    def _store_blocks(self, ins, shape, address, parts):
        kind = ins.funct[-2:]
        layout = norm_block(kind, shape["channels"], shape["groups"])
        count = 1 if kind == "bn" else shape["samples"]
        words = self.accumulator[address : address + count * layout["words"]].reshape(count, layout["words"])
        for part, values in parts.items():
            offset, size = layout[part]
            values = np.asarray(values)
            values = values.astype(np.int64) if values.dtype == object else values
            words[:, offset : offset + size] = values.reshape(count, size)

    def _op_norm(self, ins, shape, entry):
        k, get = self.kernels, ins.get
        kind = ins.funct[-2:]
        name = ins.funct[:-3]
        layer = SimpleNamespace(name="core", op="batchnorm" if kind == "bn" else "groupnorm",
                                params={"groups": shape["groups"], "eps": 0.0})
        x_shape, _ = self._dims(shape)
        count = norm_count(ins, shape)
        channels = shape["channels"]
        if name == "statistics":
            s1, s2, _ = k.moments(layer, self._get("scratchpad", get("src0"), x_shape))
            if get("imm") & 1:  # streamed: exact sums add up to the whole batch's
                parts, _, _ = self._blocks(ins, shape, get("dst"))
                s1, s2 = s1 + parts["s1"], s2 + parts["s2"]
            self._store_blocks(ins, shape, get("dst"), {"s1": s1, "s2": s2})
            return
        if name == "constants":
            parts, _, _ = self._blocks(ins, shape, get("src0"))
            gamma_beta = self._get("scratchpad", get("src1"), (2, channels))
            arithmetic = k._norm(count)
            eps_q = get("imm")
            if kind == "bn":
                constants = arithmetic.forward_constants(parts["s1"].astype(object), parts["s2"].astype(object),
                                                         count, gamma_beta[0], gamma_beta[1], eps_q)
                gamma = gamma_beta[0]
            else:
                per_group = channels // shape["groups"]
                constants = arithmetic.forward_constants(
                    np.repeat(parts["s1"].astype(object), per_group, axis=1),
                    np.repeat(parts["s2"].astype(object), per_group, axis=1),
                    count, gamma_beta[0][None, :], gamma_beta[1][None, :], eps_q)
                gamma = np.broadcast_to(gamma_beta[0], (shape["samples"], channels))
            self._store_blocks(ins, shape, get("dst"), {
                "rstd": np.broadcast_to(np.asarray(constants["rstd"]).astype(np.int64), np.shape(constants["a"])),
                "a": constants["a"], "c": constants["c"], "gamma": gamma})
            return
        if name in ("affine", "affine_relu"):
            parts, _, _ = self._blocks(ins, shape, get("src1"))
            y = k.fused_read(self._get("scratchpad", get("src0"), x_shape), parts, False, None)
            if name == "affine_relu":
                y = np.maximum(y, 0) if not get("imm") else np.clip(y, 0, get("imm"))
            self._put("scratchpad", get("dst"), y)
            return
        if name == "relu_mask":
            parts, _, _ = self._blocks(ins, shape, get("src2"))
            pre = k.fused_read(self._get("scratchpad", get("src1"), x_shape), parts, False, None)
            limit = get("imm")
            mask = (pre > 0) if not limit else ((pre > 0) & (pre < limit))
            self._put("scratchpad", get("dst"), self._get("scratchpad", get("src0"), x_shape) * mask)
            return
        if name == "backward" and get("imm") & 7:
            self._norm_backward_streamed(ins, shape, layer, count)
            return
        if name == "backward":
            parts, _, _ = self._blocks(ins, shape, get("src2"))
            dy = self._get("scratchpad", get("src0"), x_shape)
            x = self._get("scratchpad", get("src1"), x_shape)
            constants = {"s1": parts["s1"].astype(object), "rstd": parts["rstd"].astype(object), "a": parts["a"]}
            gamma = parts["gamma"] if kind == "bn" else parts["gamma"][0]
            dx, _, _ = k.fused_backward(layer, dy, x, constants, gamma)
            axes = (0, 2, 3) if kind == "bn" else (2, 3)
            self._put("scratchpad", get("dst"), dx)
            self._store_blocks(ins, shape, get("src2"), {"r1": dy.sum(axis=axes), "r2": (dy * x).sum(axis=axes)})
            return
        # param_grads: dgamma as golden.integer.IntegerKernels.fused_backward, dbeta = r1 (GN: summed)
        parts, _, _ = self._blocks(ins, shape, get("src0"))
        arithmetic = k._norm(count)
        if kind == "bn":
            dgamma = np.asarray(arithmetic.dgamma(parts["s1"].astype(object), count, parts["rstd"].astype(object),
                                                  parts["r1"], parts["r2"])).astype(np.int64)
            dbeta = parts["r1"]
        else:
            per_group = channels // shape["groups"]
            s1_channel = np.repeat(parts["s1"].astype(object), per_group, axis=1)
            dgamma = np.asarray(arithmetic.dgamma(s1_channel, count, parts["rstd"].astype(object), parts["r1"],
                                                  parts["r2"])).astype(np.int64).sum(axis=0)
            dbeta = parts["r1"].sum(axis=0)
        result = np.stack([dgamma, dbeta])
        if name == "param_grads_accumulate":
            result = result + self._get("accumulator", get("dst"), result.shape)
        self._put("accumulator", get("dst"), result)

    def _norm_backward_streamed(self, ins, shape, layer, count):
        """BN backward over sub-batches: reductions (added up), then dx from the whole batch's reductions, as
        golden.integer.IntegerKernels.fused_backward computes it for the whole batch at once."""
        get, mode = ins.get, ins.get("imm") & 7
        if ins.funct != "backward_bn" or mode not in (1, 3, 4):
            raise ValueError(f"imm mode {mode} of NORM.{ins.funct} is not one of 1, 3, 4 (BN only)")
        x_shape, _ = self._dims(shape)
        dy = self._get("scratchpad", get("src0"), x_shape)
        x = self._get("scratchpad", get("src1"), x_shape)
        parts, _, _ = self._blocks(ins, shape, get("src2"))
        if mode & 1:
            r1, r2 = dy.sum(axis=(0, 2, 3)), (dy * x).sum(axis=(0, 2, 3))
            if mode & 2:
                r1, r2 = r1 + parts["r1"], r2 + parts["r2"]
            self._store_blocks(ins, shape, get("src2"), {"r1": r1, "r2": r2})
            return
        arithmetic = self.kernels._norm(count)
        gamma = np.asarray(parts["gamma"], dtype=object)
        backward = arithmetic.backward_constants(parts["s1"].astype(object), count, parts["rstd"].astype(object),
                                                 parts["a"], gamma * parts["r1"].astype(object),
                                                 gamma * parts["r2"].astype(object))
        k1, k2, k3 = (np.asarray(backward[key]).astype(np.int64)[None, :, None, None] for key in ("k1", "k2", "k3"))
        self._put("scratchpad", get("dst"), arithmetic.dx(dy, x, k1, k2, k3))

    def _op_loss(self, ins, shape, entry):
        n, classes = shape["samples"], shape["channels"]
        if ins.funct == "mean":
            losses = self._get("accumulator", ins.get("src0"), (n,))
            self._put("accumulator", ins.get("dst"), np.array([self.kernels.loss_unit.mean_loss(losses)]))
            return
        logits = self._get("scratchpad", ins.get("src0"), (n, classes))
        labels = self._get("scratchpad", ins.get("src1"), (n,))
        losses, saved = self.kernels.loss_forward(logits, labels)
        self._put("scratchpad", ins.get("dst"), self.kernels.loss_backward(saved, labels, ins.get("imm")))
        self._put("accumulator", ins.get("src2"), losses)

    def _op_sgd(self, ins, shape, entry):
        size = shape.input_elements
        lr, momentum, weight_decay = (int(v) for v in self._get("accumulator", ins.get("dst"), (3,)))
        unit = dataclasses.replace(self.sgd_template, lr=lr, momentum=momentum, weight_decay=weight_decay)
        weights, velocity = unit.update(self._get("scratchpad", ins.get("src0"), (size,)),
                                        self._get("scratchpad", ins.get("src1"), (size,)),
                                        self._get("scratchpad", ins.get("src2"), (size,)))
        self._put("scratchpad", ins.get("src0"), weights)
        self._put("scratchpad", ins.get("src1"), velocity)

    def _op_counter(self, ins, shape, entry):
        if ins.funct == "clear":
            self.counters = dict.fromkeys(TRAFFIC_CLASSES, 0)
        else:
            self.snapshots.append((ins.get("imm"), dict(self.counters)))
