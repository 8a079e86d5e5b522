"""Programs for the decoupled load/compute/store machine: dependency tracking and token insertion.

The compiler emits instructions in one *program order* (a valid sequential execution) together with the
memory ranges each reads and writes. :class:`ProgramBuilder` then sets the VTA dependency tokens so that
any execution the three queues may take is equivalent to the program order:

* :class:`Ordering` keeps, per memory word (scratchpad and accumulator elements, DRAM bytes), the last
  instruction of each queue that wrote it and that read it;
* an instruction that reads or writes a range another queue touched earlier (read-after-write,
  write-after-read, write-after-write) must *happen after* that instruction. The builder tracks each
  instruction's vector clock (the latest instruction of every queue known to have retired before it
  starts) and adds a token only when the clock does not already cover the dependency: the producer pushes
  toward the consumer's queue, the consumer pops. Tokens pair in FIFO order, so a dependency that is not yet
  covered can always take the next push and the next pop.
* load and store are not neighbours: a store -> load (or load -> store) dependency is relayed through a
  ``SYNC`` instruction on the compute queue.

The instruction-level simulator uses the same :class:`Ordering` to check, while it runs, that every
access is ordered by tokens: a program with missing tokens is reported, never silently run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wavecore.golden.core.isa import QUEUES, Instruction, queue_of

__all__ = ["MEMORIES", "Entry", "Ordering", "ProgramBuilder", "TokenError"]

#: Address spaces an instruction may touch: the two on-chip memories (element addresses) and DRAM (bytes).
MEMORIES = ("scratchpad", "accumulator", "dram")


class TokenError(RuntimeError):
    """The dependency tokens of a program do not order two accesses, or the token streams do not pair."""


class Ordering:
    """Last writer and last reader index per queue of every word of each memory."""

    def __init__(self, sizes: dict):
        self.sizes = dict(sizes)
        # tables grow on demand (DRAM may be configured far larger than a program touches)
        self.writer = {m: np.full((len(QUEUES), 0), -1, dtype=np.int64) for m in sizes}
        self.reader = {m: np.full((len(QUEUES), 0), -1, dtype=np.int64) for m in sizes}

    def _range(self, access):
        memory, start, stop = access
        if memory not in self.sizes:
            raise ValueError(f"memory must be one of {', '.join(self.sizes)}, not {memory!r}")
        if not 0 <= start <= stop <= self.sizes[memory]:
            raise ValueError(f"{memory} range [{start}, {stop}) is outside [0, {self.sizes[memory]})")
        have = self.writer[memory].shape[1]
        if stop > have:
            grow = max(stop, 2 * have, 4096) - have
            for table in (self.writer, self.reader):
                table[memory] = np.concatenate(
                    [table[memory], np.full((len(QUEUES), grow), -1, dtype=np.int64)], axis=1)
        return memory, start, stop

    def needs(self, queue: int, reads, writes) -> list[tuple[int, str, tuple]]:
        """Per other queue: ``(index, kind, access)`` of the latest instruction this access depends on."""
        best = [(-1, "", None)] * len(QUEUES)
        for kind, accesses, tables in (("read-after-write", reads, ("writer",)),
                                       ("write-after", writes, ("writer", "reader"))):
            for access in accesses:
                memory, start, stop = self._range(access)
                if start == stop:
                    continue
                for table in tables:
                    rows = getattr(self, table)[memory][:, start:stop].max(axis=1)
                    for other, index in enumerate(rows):
                        if other != queue and index > best[other][0]:
                            label = kind if kind != "write-after" else f"write-after-{table[:-2]}"
                            best[other] = (int(index), label, (memory, start, stop))
        return best

    def record(self, queue: int, index: int, reads, writes):
        for access in reads:
            memory, start, stop = self._range(access)
            self.reader[memory][queue, start:stop] = index
        for access in writes:
            memory, start, stop = self._range(access)
            self.writer[memory][queue, start:stop] = index


@dataclass
class Entry:
    """One instruction of a program being built, with its accesses and bookkeeping."""

    opcode: str
    funct: str
    fields: dict
    reads: tuple
    writes: tuple
    note: str = ""
    tokens: dict = field(default_factory=lambda: dict.fromkeys(("pop_prev", "pop_next", "push_prev",
                                                                   "push_next"), False))
    queue_index: int = 0
    clock: list = field(default_factory=lambda: [-1, -1, -1])

    @property
    def queue(self) -> int:
        return QUEUES.index(queue_of(self.opcode))

    def instruction(self) -> Instruction:
        return Instruction(self.opcode, self.funct, dict(self.fields), **self.tokens)


class ProgramBuilder:
    """Collects instructions in program order and sets their dependency tokens (module docstring)."""

    def __init__(self, sizes: dict):
        self.ordering = Ordering(sizes)
        self.entries: list[Entry] = []
        self.by_queue: list[list[Entry]] = [[] for _ in QUEUES]

    def emit(self, opcode: str, funct: str = "none", fields: dict | None = None, *, reads=(), writes=(),
             note: str = "", after: dict | None = None) -> Entry:
        """Append an instruction; ``after`` maps a queue number to an instruction index it must follow
        (besides the dependencies its accesses imply)."""
        entry = Entry(opcode, funct, dict(fields or {}), tuple(reads), tuple(writes), note)
        queue = entry.queue
        needs = [index for index, _, _ in self.ordering.needs(queue, entry.reads, entry.writes)]
        for other, index in (after or {}).items():
            needs[other] = max(needs[other], index)
        clock = list(self.by_queue[queue][-1].clock) if self.by_queue[queue] else [-1, -1, -1]
        compute = QUEUES.index("compute")
        for other in range(len(QUEUES)):
            if abs(other - queue) != 2 or needs[other] <= clock[other]:
                continue
            # load <-> store: through the compute queue, by the latest compute instruction if it already
            # follows the producer, else by a new SYNC relay
            last = self.by_queue[compute][-1] if self.by_queue[compute] else None
            if last is None or last.clock[other] < needs[other]:
                last = self.emit("SYNC", note=f"relay {QUEUES[other]} #{needs[other]} -> {QUEUES[queue]}",
                                 after={other: needs[other]})
            needs[compute] = max(needs[compute], last.queue_index)
        for other in range(len(QUEUES)):
            if abs(other - queue) == 1 and needs[other] > clock[other]:
                self._pair(self.by_queue[other][needs[other]], entry, clock)
        entry.queue_index = len(self.by_queue[queue])
        clock[queue] = entry.queue_index
        entry.clock = clock
        self.ordering.record(queue, entry.queue_index, entry.reads, entry.writes)
        self.entries.append(entry)
        self.by_queue[queue].append(entry)
        return entry

    @staticmethod
    def _pair(producer: Entry, consumer: Entry, clock: list):
        """``producer`` pushes toward ``consumer``'s queue, ``consumer`` pops; merges the clocks."""
        forward = producer.queue < consumer.queue
        push, pop = ("push_next", "pop_prev") if forward else ("push_prev", "pop_next")
        if producer.tokens[push] or consumer.tokens[pop]:
            raise AssertionError(f"token already used: {producer.opcode} {push} / {consumer.opcode} {pop}")
        producer.tokens[push] = True
        consumer.tokens[pop] = True
        for q in range(len(QUEUES)):
            clock[q] = max(clock[q], producer.clock[q])

    def instructions(self) -> list[Instruction]:
        return [entry.instruction() for entry in self.entries]
