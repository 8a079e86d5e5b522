"""The first wrong instruction of a program on the core: bisection over truncated programs.

When the DRAM image after a whole run on the core differs from the instruction-level simulator's
(:class:`wavecore.golden.core.simulator.Simulator`), :func:`first_wrong_instruction` names the instruction that
went wrong, without a trace port in the RTL and without Python in the per-cycle loop:

* **Probe k** (:func:`truncated_program`): the program's instructions ``0..k`` in program order, their tokens
  repaired (below), then STOREs of every on-chip range those instructions wrote (the scratchpad's and the
  accumulator's, merged into intervals, to a dump area in DRAM after the image) and END. The same probe runs on
  the core (a fresh simulation from the initial image: on-chip memories start at zero as the simulator's do) and
  on the simulator; the probe *differs* when the two DRAM images after it differ (the original image, so the
  STOREs among ``0..k``, and the dumps, so the on-chip state after ``k``) or the core faults.
* **Bisection** over the instructions that write something (LOAD, STORE, the compute instructions; not
  SHAPE/SYNC/COUNTER): the state before the first is the initial one (equal), the whole run differs, so a binary
  search finds a ``k`` whose probe differs while the probe of the writing instruction before it does not:
  ``ceil(log2(writers))`` probes, each at most a run's length. Everything ``k`` could read was equal, so ``k``
  itself computed a wrong result. It is the *first* wrong instruction unless a wrong result was overwritten by a
  right one before the search looked (the difference vanished from the state), which the state comparison cannot
  see; the named instruction is wrong either way.

**Token repair.** The compiler pushes every token before (in program order) the instruction that pops it, so a
prefix pops only tokens it pushes. A push whose pop lies after ``k`` is dropped, except load -> compute tokens:
one ``SYNC [pop_prev]`` per such token consumes them (the last LOAD of the prefix gets ``push_next`` if it has
none), so the compute queue, which runs in order, passes every LOAD of the prefix; a ``SYNC [push_next]`` then
lets the first dump STORE (``pop_prev``) start after every compute instruction, and the store queue runs the dumps
after the prefix's STOREs. The simulator checks the result with its vector clocks (a race would be a TokenError).

Cost: each probe is one simulation of the core from process start (start-up and image load, then the prefix's
cycles at the simulator's speed, about 40,000 cycles/s on Verilator with every unit); the build is the run's own
(same design, cached). Measured on the shared 2-core machine: a 94-instruction step of
``tests/verif/trace_fault_net.yaml`` (24,000 cycles), 6 probes in 30 s (about 5 s each, nearly all start-up).

Use: :func:`wavecore.verif.training_step.run_step_on_core` calls :func:`first_wrong_instruction` when the DRAM
differs (``locate=True``, the default) and puts the result in ``CoreStepReport.first_wrong_instruction``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from wavecore.golden.core import isa
from wavecore.golden.core.isa import QUEUES, Instruction
from wavecore.golden.core.program import TokenError
from wavecore.golden.core.semantics import accesses, shapes_in_effect
from wavecore.golden.core.simulator import CoreError, Simulator

__all__ = ["FirstWrongInstruction", "Probe", "describe_difference", "dump_room", "first_wrong_instruction",
           "probe_image", "simulate_probe", "truncated_program"]

_LENGTH_LIMIT = next(spec.limit for spec in isa.FORMATS["memory"] if spec.name == "length")
_DUMP_ALIGN = 64  # bytes: every dump starts on a bus word (and an element) boundary


@dataclass
class FirstWrongInstruction:
    """The instruction the bisection named: program ``index``, its ``text`` (the listing line, with the compiler's
    note), the first ``difference`` its probe showed (an on-chip element or a DRAM region, core vs simulator),
    the ``probes`` run (``[k, differs]`` in search order) and the search's wall-clock ``seconds``."""

    index: int
    text: str
    difference: str
    probes: list = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Probe:
    """A truncated program (:func:`truncated_program`): ``program`` (instructions), ``dumps`` (``(memory, start,
    stop, dram_address)`` per dump STORE: on-chip elements ``[start, stop)`` stored at ``dram_address``)."""

    program: list
    dumps: list


def _writes(program, parameters):
    """Per instruction, the ``(memory, start, stop)`` it writes (on chip and DRAM)."""
    return [accesses(ins, shape, parameters)[1] for ins, shape in zip(program, shapes_in_effect(program))]


def _matching_pops(program) -> dict:
    """``push index -> pop index`` (the i-th push on a queue pair meets the i-th pop of it), ``None`` if never
    popped; pops before their push raise (a program the truncation cannot cut)."""
    pushes, pops = {}, {}
    for index, ins in enumerate(program):
        number = QUEUES.index(ins.queue)
        for bit, step in (("push_prev", -1), ("push_next", 1)):
            if getattr(ins, bit):
                pushes.setdefault((ins.queue, QUEUES[number + step], bit), []).append(index)
        for bit, step in (("pop_prev", -1), ("pop_next", 1)):
            if getattr(ins, bit):
                source = QUEUES[number + step]
                push_bit = "push_next" if step == -1 else "push_prev"
                pops.setdefault((source, ins.queue, push_bit), []).append(index)
    matched = {}
    for key, indices in pushes.items():
        popped = pops.get(key, [])
        for position, push in enumerate(indices):
            pop = popped[position] if position < len(popped) else None
            if pop is not None and pop < push:
                raise ValueError(f"instruction #{pop} pops the token instruction #{push} pushes later in program "
                                 "order: the program cannot be cut into prefixes")
            matched[(push, key[2])] = pop
    return matched


def _merge(ranges):
    merged = []
    for start, stop in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(start, stop) for start, stop in merged if stop > start]


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def dump_room(parameters, instructions: int) -> int:
    """DRAM bytes a probe needs after the image at most: its program (the original's ``instructions`` plus the
    epilogue) and a dump of both whole on-chip memories."""
    spad = parameters.scratchpad_elements * parameters.operand_bytes
    acc = parameters.accumulator_elements * parameters.accumulator_bytes
    chunks = sum(elements // _LENGTH_LIMIT + 1 for elements in (parameters.scratchpad_elements,
                                                                 parameters.accumulator_elements))
    epilogue = 2 * instructions + 2 * chunks + 8  # SYNCs, dump STOREs (split intervals), END
    return _align((instructions + epilogue) * isa.INSTRUCTION_BYTES, _DUMP_ALIGN) + spad + acc + (
        2 * instructions + 2 * chunks + 4) * _DUMP_ALIGN


def truncated_program(program, k: int, parameters, program_base: int) -> Probe:
    """The probe after instruction ``k`` (see the module docstring), to run from ``program_base`` (the dumps
    follow the program there)."""
    if not 0 <= k < len(program) - 1:
        raise ValueError(f"k must be between 0 and {len(program) - 2} (before END), not {k}")
    matched = _matching_pops(program)
    writes = _writes(program, parameters)
    prefix, tokens = [], 0  # tokens: load -> compute pushes the epilogue pops
    last_load = max((index for index in range(k + 1) if program[index].queue == "load"), default=None)
    for index in range(k + 1):
        ins = program[index]
        bits = {}
        for bit in ("push_prev", "push_next"):
            if getattr(ins, bit) and (matched[(index, bit)] is None or matched[(index, bit)] > k):
                if ins.queue == "load":  # load -> compute: the epilogue's SYNC pops it
                    tokens += 1
                else:
                    bits[bit] = False
        if index == last_load and not ins.push_next:
            bits["push_next"] = True
            tokens += 1
        prefix.append(ins.with_tokens(**bits) if bits else ins)
    intervals = {memory: _merge((start, stop) for entry in writes[: k + 1] for memory_, start, stop in entry
                                if memory_ == memory) for memory in isa.SPACES}
    chunks = [(memory, start, min(start + _LENGTH_LIMIT, stop)) for memory in isa.SPACES
              for low, stop in intervals[memory] for start in range(low, stop, _LENGTH_LIMIT)]
    epilogue = [Instruction("SYNC", pop_prev=True) for _ in range(tokens)]
    if chunks:
        epilogue.append(Instruction("SYNC", push_next=True))
    length = len(prefix) + len(epilogue) + len(chunks) + 1
    address = _align(program_base + length * isa.INSTRUCTION_BYTES, _DUMP_ALIGN)
    dumps = []
    for position, (memory, start, stop) in enumerate(chunks):
        epilogue.append(Instruction("STORE", f"io.{memory}", dict(
            dram_address=address, scratch_address=start, length=stop - start), pop_prev=position == 0))
        dumps.append((memory, start, stop, address))
        address = _align(address + (stop - start) * _element_bytes(parameters, memory), _DUMP_ALIGN)
    epilogue.append(Instruction("END"))
    return Probe(prefix + epilogue, dumps)


def probe_image(probe: Probe, initial: bytes, program_base: int, parameters) -> bytearray:
    """The DRAM image a probe starts from: ``initial``, the probe's program at ``program_base``, a zeroed dump
    area."""
    code = isa.encode_program(probe.program)
    end = max([program_base + len(code)] + [address + (stop - start) * _element_bytes(parameters, memory)
                                            for memory, start, stop, address in probe.dumps])
    image = bytearray(initial) + bytes(_align(end, _DUMP_ALIGN) - len(initial))
    image[program_base : program_base + len(code)] = code
    return image


def simulate_probe(probe: Probe, image: bytes, parameters, numerics) -> tuple[bytearray, int]:
    """The DRAM image after the probe on the simulator (from :func:`probe_image`'s ``image``) and its cycles."""
    dram = bytearray(image)
    simulator = Simulator(parameters=parameters, numerics=numerics)
    simulator.run(probe.program, dram)
    return dram, simulator.cycles


def _element_bytes(parameters, memory: str) -> int:
    return parameters.operand_bytes if memory == "scratchpad" else parameters.accumulator_bytes


def describe_difference(got: bytes, want: bytes, probe: Probe, parameters, memory_map) -> str:
    """The first byte where the core's image ``got`` differs from the simulator's ``want``: the on-chip element
    of a dump, or the DRAM region of the image."""
    for memory, start, stop, address in probe.dumps:
        size = _element_bytes(parameters, memory)
        end = address + (stop - start) * size
        if got[address:end] != want[address:end]:
            for element in range(stop - start):
                at = address + element * size
                if got[at : at + size] != want[at : at + size]:
                    values = [int.from_bytes(image[at : at + size], "little", signed=True) for image in (got, want)]
                    return (f"{memory} element {start + element:#x}: core {values[0]}, simulator {values[1]} "
                            f"(dump [{start:#x}, {stop:#x}))")
    for region in memory_map.regions.values():
        if got[region.offset : region.stop] != want[region.offset : region.stop]:
            first = next(i for i in range(region.offset, region.stop) if got[i] != want[i])
            return f"DRAM region {region.name} at byte {first - region.offset} (address {first:#x})"
    first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), None)
    return f"DRAM at {first:#x}" if first is not None else "no difference"


def first_wrong_instruction(workload, initial: bytes, run_core, *, log=None) -> FirstWrongInstruction | None:
    """Bisect the workload's program (see the module docstring).

    ``initial`` is the DRAM image before the step; ``run_core(image, program_base, cycles)`` runs a probe (the
    simulator predicts ``cycles``) on the core from a fresh start and returns ``(dram_after, fault)`` (``fault``
    None or the testbench's fault record). Returns None when the probe of the last writing instruction does not
    differ either (the difference is in neither the on-chip state nor the STOREs)."""
    started = time.perf_counter()
    program, parameters, numerics = workload.step.program, workload.parameters, workload.numerics
    notes = getattr(workload.step, "notes", None) or [""] * len(program)
    writers = [index for index, entry in enumerate(_writes(program, parameters))
               if entry and index < len(program) - 1]
    if not writers:
        return None
    program_base = _align(len(initial), _DUMP_ALIGN)
    probes, seen = [], {}

    def differs(k: int):
        if k in seen:
            return seen[k]
        probe = truncated_program(program, k, parameters, program_base)
        image = probe_image(probe, initial, program_base, parameters)
        try:
            want, cycles = simulate_probe(probe, image, parameters, numerics)
        except (CoreError, TokenError) as error:
            raise AssertionError(f"the probe after instruction #{k} does not run on the simulator: {error}") from None
        got, fault = run_core(bytes(image), program_base, cycles)
        if fault is not None:
            result = (True, f"the core stopped with error {fault['code']} at {fault['address']:#x}")
        elif bytes(got) != bytes(want):
            result = (True, describe_difference(bytes(got), bytes(want), probe, parameters,
                                                workload.step.memory_map))
        else:
            result = (False, "")
        seen[k] = result
        probes.append([k, result[0]])
        if log:
            log(f"probe after #{k}: {'differs' if result[0] else 'equal'} {result[1]}".rstrip())
        return result

    low, high = -1, len(writers) - 1  # writers[low] equal (-1: the initial state), writers[high] assumed wrong
    while high - low > 1:
        middle = (low + high) // 2
        if differs(writers[middle])[0]:
            high = middle
        else:
            low = middle
    wrong, difference = differs(writers[high])
    if not wrong:
        return None
    index = writers[high]
    text = f"{index}: {program[index].text()}" + (f"    ; {notes[index]}" if notes[index] else "")
    return FirstWrongInstruction(index=index, text=text, difference=difference, probes=probes,
                                 seconds=time.perf_counter() - started)
