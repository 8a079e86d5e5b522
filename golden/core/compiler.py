"""Compile one training step of a network under a schedule into a WaveCore program (``docs/core.md``).

:func:`compile_step` walks the schedule exactly as :mod:`golden.train` does (forward: groups in order, in
each group the whole-batch BN layers first, then every sub-batch through the group's layers; the loss
gradient in the last group's forward; backward: groups reversed, sub-batches in order, layers reversed, the
whole-batch BN layers after the sub-batches; then each group's weight update) and emits for every step the
loads, the compute instruction and the stores, allocating scratchpad and accumulator space as it goes
(freed per sub-batch and per group; a next-fit allocator, so consecutive sub-batches land in different
space and the load of the next overlaps the compute of the current one). :class:`ProgramBuilder` sets the
dependency tokens.

DRAM (``memory_map.json``): the input, labels, parameters and velocities (inputs of the step), every base
tensor another execution unit or the backward pass reads (``act.*``), partial activation gradients that
cross units (``grad.*``), raw weight-gradient accumulators (``weight_grad.*``), per-sample losses and the
program. An *execution unit* is a group's whole-batch BN part or its sub-batch loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from wavecore.golden.core.isa import INSTRUCTION_BYTES, encode_program, norm_block
from wavecore.golden.core.memory_map import MemoryMap
from wavecore.golden.core.program import ProgramBuilder
from wavecore.golden.core.semantics import CoreParameters, Shape, accesses, makespan
from wavecore.golden.integer import IntegerKernels
from wavecore.golden.numerics import IntegerTraining
from wavecore.golden.schedule import Schedule

__all__ = [
    "CompiledStep",
    "ExecutionGroup",
    "compile_step",
    "compile_tiled",
    "expected_figures",
    "groups_from_plan",
    "groups_from_schedule",
    "initial_image",
    "sgd_constants",
]

_MAX_LENGTH = (1 << 14) - 1
_GEMM = ("conv2d", "linear")
_NORM = ("batchnorm", "groupnorm")


@dataclass(frozen=True)
class ExecutionGroup:
    """A group of the schedule with the planner's residency decisions."""

    layers: tuple
    sub_batch: int
    weights_resident: bool = True
    weight_grads_on_chip: bool = True
    tiled: bool = False  # a whole-batch layer of the planner's baseline: may run in sample tiles


def groups_from_schedule(schedule: Schedule, batch: int, *, split_whole: bool = False):
    """Execution groups from a schedule; ``split_whole`` runs a whole-batch group layer by layer (what the
    planner's tiled baseline charges)."""
    groups = []
    for group in schedule.groups:
        if split_whole and group.sub_batch >= batch:
            groups.extend(ExecutionGroup((name,), batch) for name in group.layers)
        else:
            groups.append(ExecutionGroup(tuple(group.layers), min(group.sub_batch, batch)))
    return groups


def groups_from_plan(plan, network):
    """Execution groups of a planner :class:`golden.plan.mbs.Plan` (tiled groups already layer by layer),
    with its residency decisions; the input layer joins the first group."""
    names = [layer.name for layer in network.layers]
    groups = []
    for traffic in plan.traffic.groups:
        layers = tuple(names[traffic.start : traffic.stop])
        if not groups and names[0] not in layers:
            layers = (names[0], *layers)
        groups.append(ExecutionGroup(layers, min(traffic.sub_batch, plan.batch), traffic.weights_resident,
                                     traffic.weight_grads_on_chip, traffic.tiled))
    return groups


@dataclass
class CompiledStep:
    program: list
    memory_map: MemoryMap
    notes: list
    expected: dict
    parameters: CoreParameters
    stored: dict = field(default_factory=dict)  # tensor name -> DRAM region name
    groups: list = field(default_factory=list)  # the execution groups compiled (tiles applied)

    @property
    def image(self) -> bytes:
        return encode_program(self.program)

    def listing(self) -> str:
        lines = []
        for index, (instruction, note) in enumerate(zip(self.program, self.notes)):
            text = f"{index:6d}  {instruction.queue:7s}  {instruction.text()}"
            lines.append(f"{text}    ; {note}" if note else text)
        return "\n".join(lines) + "\n"


class _Allocator:
    """Next-fit allocator over ``[0, size)``: freed space is reused last, so recent tensors stay put."""

    def __init__(self, size: int, name: str):
        self.size, self.name = size, name
        self.free = [(0, size)]
        self.cursor = 0

    def allocate(self, words: int) -> int:
        words = max(int(words), 1)
        order = sorted(self.free, key=lambda block: (block[0] < self.cursor, block[0]))
        for start, size in order:
            if size >= words:
                self.free.remove((start, size))
                if size > words:
                    self.free.append((start + words, size - words))
                self.cursor = start + words
                return start
        raise ValueError(f"the {self.name} ({self.size} elements) cannot hold {words} more elements; "
                         "use a larger buffer or a schedule with smaller sub-batches")

    def release(self, start: int, words: int):
        words = max(int(words), 1)
        self.free.append((start, words))
        self.free.sort()
        merged = []
        for block in self.free:
            if merged and merged[-1][0] + merged[-1][1] == block[0]:
                merged[-1] = (merged[-1][0], merged[-1][1] + block[1])
            else:
                merged.append(block)
        self.free = merged


class _Arena:
    """Allocations released together (a sub-batch's tensors, a group's weights)."""

    def __init__(self, allocators):
        self.allocators = allocators
        self.held = []

    def take(self, memory: str, words: int) -> int:
        address = self.allocators[memory].allocate(words)
        self.held.append((memory, address, words))
        return address

    def free(self, address: int, memory: str = "scratchpad"):
        """Release one allocation early (the tokens order its reuse after its last reader)."""
        for held in self.held:
            if held[0] == memory and held[1] == address:
                self.held.remove(held)
                self.allocators[memory].release(address, held[2])
                return

    def release(self):
        for memory, address, words in self.held:
            self.allocators[memory].release(address, words)
        self.held = []


class _Compiler:
    def __init__(self, network, batch, groups, numerics, parameters, fusion):
        self.net, self.batch, self.groups = network, batch, groups
        self.numerics, self.p, self.fusion = numerics, parameters, fusion
        self.k = IntegerKernels(numerics)
        self.mm = MemoryMap(operand_bytes=parameters.operand_bytes, accumulator_bytes=parameters.accumulator_bytes)
        self.builder = ProgramBuilder({**parameters.sizes()})
        self.shape = None
        self.notes = []
        self.allocators = {"scratchpad": _Allocator(parameters.scratchpad_elements, "scratchpad"),
                           "accumulator": _Allocator(parameters.accumulator_elements, "accumulator memory")}
        self.step_arena = _Arena(self.allocators)
        self.backward = False
        self.site_group = False
        self._plan()

    # -- planning ----------------------------------------------------------------------------------------
    def _plan(self):
        net = self.net
        self.input_name = net.layers[0].name
        self.virtual = {}
        # a ReLU that is a norm's only consumer takes its backward mask from the norm's input and NORM block
        # (NORM relu_mask), fused or not, so the backward needs the anchor only (the planner's minimal stash)
        self.masked = {}
        for layer in net.layers:
            if layer.op in _NORM:
                consumers = net.consumers(layer.name)
                if len(consumers) == 1 and net.layer(consumers[0]).op == "relu":
                    self.masked[consumers[0]] = layer.name
        if self.fusion:
            for layer in net.layers:
                if layer.op in _NORM:
                    self.virtual[layer.name] = (layer.name, False)
                    consumers = net.consumers(layer.name)
                    if len(consumers) == 1 and net.layer(consumers[0]).op == "relu":
                        self.virtual[consumers[0]] = (layer.name, True)
        # with fusion a ReLU of its own is a view too: applied on read, its input is what is kept
        self.relu_views = {layer.name for layer in net.layers
                           if self.fusion and layer.op == "relu" and layer.name not in self.virtual}
        self._regroup()
        # execution units: (group, "whole") for whole-batch BN layers, (group, "loop") for the rest
        schedule = Schedule(tuple(_GroupView(g.layers, g.sub_batch) for g in self.groups))
        self.whole = schedule.whole_batch_layers(net, self.batch)
        self.unit = {}
        for index, group in enumerate(self.groups):
            for name in group.layers:
                self.unit[name] = (index, "whole" if name in self.whole else "loop")
        # base tensors each layer's forward reads and each backward needs
        self.forward_bases = {layer.name: set() for layer in net.layers}
        self.stash = set()
        self.bn_anchors = set()  # read back only by a fused BN site's backward: a norm pass, not stash
        for layer in net.layers:
            for source in layer.inputs:
                self.forward_bases[layer.name] |= self._bases(source)
            needs = []
            if layer.op in (*_GEMM, "maxpool") or layer.op in _NORM:
                needs = [layer.inputs[0]]
            elif layer.op == "relu":
                needs = [self._norm_source(layer.name) if layer.name in self.masked else layer.inputs[0]]
            for name in needs:
                if self._bn_view(layer.name):
                    self.bn_anchors |= self._backward_bases(name)
                else:
                    self.stash |= self._backward_bases(name)
        # materialised tensors that go to DRAM: read by another unit, or needed by backward
        self.in_dram = {}
        for layer in net.layers:
            for base in self.forward_bases[layer.name]:
                if base == self.input_name:
                    continue
                if self.unit[base] != self.unit.get(layer.name):
                    self.in_dram.setdefault(base, "activations")
        for base in self.stash:
            if base != self.input_name:
                self.in_dram.setdefault(base, "stash")
        for base in self.bn_anchors:
            if base != self.input_name:
                self.in_dram.setdefault(base, "norm_passes")

    def _regroup(self):
        """Run every view of a split site (fused GN and its ReLU, a ReLU of its own) in the group that produces
        its base tensor: statistics on the producer's write, the view's backward where its anchor is produced.
        BN moves only into a whole-batch group (its statistics span the mini-batch). Marks the views whose site
        the planner counts as split (``golden.traffic``: a view or a reader outside the first view's group):
        their anchor is re-read for the backward (class ``norm_passes``) instead of stashed. A GN or ReLU site
        that is not split stays in its group, as in the planner (on chip, per sample): its readers' backward
        loads the anchor anyway, and the site's backward uses that copy (moved to the producer's group, it
        would load the anchor once more)."""
        from wavecore.golden.plan.traffic import NetworkModel

        net = self.net
        original = {name: index for index, group in enumerate(self.groups) for name in group.layers}
        model = NetworkModel(net)
        self.split_views = set()
        for site in model.sites:
            names = [model.names[p] for p in site.layers]
            home = original[names[0]]
            if site.batch_norm or any(original[model.names[p]] != home for p in site.layers + site.readers):
                self.split_views.update(names)
        target = dict(original)
        for name in list(self.virtual) + sorted(self.relu_views):
            if name not in self.split_views:  # every BN site is split
                continue
            norm = self.virtual.get(name, (name, False))[0]
            bases = self._bases(name)
            if len(bases) != 1:
                continue
            home = original[next(iter(bases))]
            # a BN's statistics span the mini-batch: it moves only into a group that runs it whole
            if net.layer(norm).op == "batchnorm" and self.groups[home].sub_batch < self.batch:
                continue
            target[name] = min(target[name], home)
        order = {layer.name: index for index, layer in enumerate(net.layers)}
        groups = []
        for index, group in enumerate(self.groups):
            layers = tuple(sorted((n for n, g in target.items() if g == index), key=order.get))
            if layers:
                groups.append(ExecutionGroup(layers, group.sub_batch, group.weights_resident,
                                             group.weight_grads_on_chip))
        self.groups = groups

    def _recomputed(self, name) -> bool:
        """Unfused schedules materialise norm and ReLU outputs in the forward pass only: the backward recomputes
        them from the pre-norm tensor (NORM affine) or the ReLU input (the planner's minimal stash)."""
        return not self.fusion and self.net.layer(name).op in (*_NORM, "relu")

    def _backward_bases(self, name):
        layer = self.net.layer(name)
        if self._recomputed(name):
            return self._backward_bases(layer.inputs[0])
        if layer.op in ("flatten", "concat") or name in self.virtual or name in self.relu_views:
            return set().union(*(self._backward_bases(source) for source in
                                 ([self._norm_source(name)] if name in self.virtual else layer.inputs)))
        return {name}

    def _bn_view(self, name) -> bool:
        """A fused BN layer or the fused ReLU after one (their site always round-trips through DRAM)."""
        return name in self.virtual and self.net.layer(self.virtual[name][0]).op == "batchnorm"

    def _norm_source(self, name):
        """The pre-norm tensor of a fused norm view or of a ReLU masked through its norm."""
        norm = self.masked[name] if name in self.masked else self.virtual[name][0]
        return self.net.layer(norm).inputs[0]

    def _bases(self, name):
        layer = self.net.layer(name)
        if name in self.virtual:
            return self._bases(self._norm_source(name))
        if layer.op == "flatten" or name in self.relu_views:
            return self._bases(layer.inputs[0])
        if layer.op == "concat":  # a view: producers keep their tensors, readers assemble on read
            return set().union(*(self._bases(source) for source in layer.inputs))
        return {name}

    # -- emission helpers -----------------------------------------------------------------------------------
    def emit(self, opcode, funct="none", note="", **fields):
        from wavecore.golden.core.isa import Instruction

        instruction = Instruction(opcode, funct, fields)
        reads, writes = accesses(instruction, self.shape or Shape(), self.p)
        self.builder.emit(opcode, funct, fields, reads=reads, writes=writes, note=note)

    def set_shape(self, note="", **values):
        shape = Shape(values)
        if shape != self.shape:
            self.shape = shape
            self.builder.emit("SHAPE", "none", dict(shape), note=note)

    def dma(self, opcode, cls, memory, dram_offset, chip_address, elements, samples=1, row_stride=None,
            note=""):
        """Move ``samples`` rows of ``elements`` (DRAM rows ``row_stride`` elements apart, dense on chip)."""
        if self.site_group and cls in ("activations", "stash", "activation_grads"):
            cls = "norm_passes"  # an unfused norm/ReLU layer run as a group of its own is a norm pass
        stride = elements if row_stride is None else row_stride
        size = self.p.operand_bytes if memory == "scratchpad" else self.p.accumulator_bytes
        if elements <= _MAX_LENGTH and samples <= 255 and stride < (1 << 16):
            pieces = [(dram_offset, chip_address, elements, samples)]
        else:  # one descriptor per row piece
            pieces = []
            for row in range(samples):
                for first in range(0, elements, _MAX_LENGTH):
                    length = min(_MAX_LENGTH, elements - first)
                    pieces.append((dram_offset + (row * stride + first) * size,
                                   chip_address + row * elements + first, length, 1))
        for address, chip, length, rows in pieces:
            self.emit(opcode, f"{cls}.{memory}", note=note, dram_address=address, scratch_address=chip,
                      length=length, count1=rows, stride1=stride if rows > 1 else 0, count2=1, stride2=0)

    # -- tensors ------------------------------------------------------------------------------------------
    def per_sample(self, name):
        return math.prod(self.net.layer(name).out_shape)

    def dims(self, name):
        shape = self.net.layer(name).out_shape
        return (shape[0], shape[1], shape[2]) if len(shape) == 3 else (shape[0], 1, 1)

    def region(self, name):
        """DRAM region of a materialised tensor (created on first use)."""
        key = "input" if name == self.input_name else f"act.{name}"
        if key not in self.mm:
            self.mm.add(key, "input" if name == self.input_name else "activation",
                        (self.batch, *self.net.layer(name).out_shape))
        return self.mm[key]

    def block_address(self, norm, lo):
        layer = self.net.layer(norm)
        kind = "bn" if layer.op == "batchnorm" else "gn"
        layout = norm_block(kind, layer.out_shape[0], layer.params.get("groups", 1))
        if norm not in self.blocks:
            count = 1 if kind == "bn" else self.batch
            self.blocks[norm] = self.step_arena.take("accumulator", count * layout["words"])
        return self.blocks[norm] + (0 if kind == "bn" else lo * layout["words"]), kind

    def norm_shape(self, norm, n):
        layer = self.net.layer(norm)
        c, h, w = layer.out_shape
        return dict(samples=n, channels=c, height=h, width=w, out_channels=c, out_height=h, out_width=w,
                    groups=layer.params.get("groups", 1))

    def fetch(self, name, lo, hi, tensors, arena, cls):
        """:meth:`_fetch`, leaving the SHAPE register as the caller set it (a recompute changes it)."""
        saved = self.shape
        address = self._fetch(name, lo, hi, tensors, arena, cls)
        if saved is not None and self.shape != saved:
            self.set_shape(**saved)
        return address

    def _fetch(self, name, lo, hi, tensors, arena, cls):
        """On-chip address of ``name``'s samples [lo, hi): produced here, recomputed (fused) or loaded."""
        if name in tensors:
            return tensors[name]
        layer = self.net.layer(name)
        n = hi - lo
        if self.backward and self._recomputed(name):
            source = self.fetch(layer.inputs[0], lo, hi, tensors, arena, cls)
            address = arena.take("scratchpad", n * self.per_sample(name))
            if layer.op == "relu":
                self.set_shape(**self.io_shape(layer, n))
                self.emit("VECTOR", "relu", f"{name} recomputed", dst=address, src0=source,
                          imm=self.relu_limit(name))
            else:
                block, kind = self.block_address(name, lo)
                self.set_shape(**self.norm_shape(name, n))
                self.emit("NORM", f"affine_{kind}", f"{name} recomputed", dst=address, src0=source, src1=block)
        elif layer.op == "flatten":
            address = self.fetch(layer.inputs[0], lo, hi, tensors, arena, cls)
        elif layer.op == "concat":
            address = arena.take("scratchpad", n * self.per_sample(name))
            offset = 0
            for source in layer.inputs:
                part = self.fetch(source, lo, hi, tensors, arena, cls)
                c, h, w = self.dims(source)
                self.set_shape(samples=n, channels=c, height=h, width=w, out_channels=layer.out_shape[0],
                               out_height=h, out_width=w)
                self.emit("VECTOR", "channel_insert", f"{name} assembled on read", dst=address, src0=part,
                          imm=offset)
                offset += c
        elif name in self.relu_views:
            source = self.fetch(layer.inputs[0], lo, hi, tensors, arena, cls)
            address = arena.take("scratchpad", n * self.per_sample(name))
            self.set_shape(**self.io_shape(layer, n))
            self.emit("VECTOR", "relu", f"{name} applied on read", dst=address, src0=source,
                      imm=self.relu_limit(name))
        elif name in self.virtual:
            norm, relu = self.virtual[name]
            source = self.fetch(self._norm_source(name), lo, hi, tensors, arena, cls)
            block, kind = self.block_address(norm, lo)
            address = arena.take("scratchpad", n * self.per_sample(name))
            limit = self.relu_limit(name) if relu else 0
            self.set_shape(**self.norm_shape(norm, n))
            self.emit("NORM", f"{'affine_relu' if relu else 'affine'}_{kind}", f"{name} recomputed on read",
                      dst=address, src0=source, src1=block, imm=limit)
        else:
            region = self.region(name)
            per = self.per_sample(name)
            address = arena.take("scratchpad", n * per)
            self.dma("LOAD", cls, "scratchpad", region.offset + lo * per * region.element_bytes, address, per,
                     n, note=f"{name}[{lo}:{hi}]")
        tensors[name] = address
        return address

    def relu_limit(self, name):
        limit = self.k._relu_limit(self.net.layer(name).params["max_value"])
        return 0 if limit is None else int(limit)

    def store_tensor(self, name, lo, hi, address):
        cls = self.in_dram[name]
        region = self.region(name)
        per = self.per_sample(name)
        self.stored[name] = region.name
        self.dma("STORE", cls, "scratchpad", region.offset + lo * per * region.element_bytes, address, per,
                 hi - lo, note=f"{name}[{lo}:{hi}]")

    def param_region(self, layer_name, key):
        name = f"param.{layer_name}.{key}"
        if name not in self.mm:
            layer = self.net.layer(layer_name)
            shape = layer.weight_shape if key == "weight" else layer.bias_shape
            self.mm.add(name, "parameter", shape)
            self.mm.add(f"velocity.{layer_name}.{key}", "velocity", shape)
        return self.mm[name]

    def load_params(self, layer_name, arena, cls="weights"):
        """Weight (and bias) of a GEMM layer or gamma, beta of a norm, adjacent on chip (weight first)."""
        layer = self.net.layer(layer_name)
        keys = ["weight"] + (["bias"] if layer.bias_shape is not None else [])
        regions = [self.param_region(layer_name, key) for key in keys]
        total = sum(r.elements for r in regions)
        address = arena.take("scratchpad", total)
        offset = address
        for key, region in zip(keys, regions):
            self.dma("LOAD", cls, "scratchpad", region.offset, offset, region.elements, 1,
                     note=f"{layer_name}.{key}")
            offset += region.elements
        return address

    # -- the step -----------------------------------------------------------------------------------------
    def compile(self):
        net = self.net
        self.stored = {}
        self.blocks = {}
        self.mm.add("input", "input", (self.batch, *net.input_shape))
        self.mm.add("labels", "labels", (self.batch,))
        for layer in net.layers:
            if layer.weight_shape is not None:
                self.param_region(layer.name, "weight")
                if layer.bias_shape is not None:
                    self.param_region(layer.name, "bias")
        self.mm.add("loss", "loss", (self.batch,), space="accumulator")
        self.mm.add("loss_mean", "loss", (1,), space="accumulator")
        self.mm.add("sgd_constants", "constants", (3,), space="accumulator")
        self.sgd_constants = self.step_arena.take("accumulator", 3)
        self.loss_mean = self.step_arena.take("accumulator", 1)
        self.dma("LOAD", "optimizer", "accumulator", self.mm["sgd_constants"].offset, self.sgd_constants, 3, 1,
                 note="SGD learning rate, momentum, weight decay")
        loss_layer = net.layers[-1]
        classes = self.net.layer(loss_layer.inputs[0]).out_shape[0]
        self.dlogits = self.step_arena.take("scratchpad", self.batch * classes)
        self.losses = self.step_arena.take("accumulator", self.batch)
        for index, group in enumerate(self.groups):
            self.forward_group(index, group)
        for index in reversed(range(len(self.groups))):
            self.backward_group(index, self.groups[index])
        self.set_shape(samples=self.batch, channels=1)
        self.emit("LOSS", "mean", "mean loss", dst=self.loss_mean, src0=self.losses)
        self.dma("STORE", "io", "accumulator", self.mm["loss"].offset, self.losses, self.batch, 1,
                 note="per-sample losses")
        self.dma("STORE", "io", "accumulator", self.mm["loss_mean"].offset, self.loss_mean, 1, 1,
                 note="mean loss")
        self.builder.emit("END", note="")
        program = self.builder.instructions()
        self.mm.add("program", "program", (len(program) * INSTRUCTION_BYTES,), space="bytes")
        return program

    def chunks(self, group):
        size = min(group.sub_batch, self.batch)
        return [(lo, min(lo + size, self.batch)) for lo in range(0, self.batch, size)]

    def is_site_group(self, group) -> bool:
        """An unfused group holding only norm/ReLU layers of split sites: its traffic is the site's passes."""
        return not self.fusion and all(
            self.net.layer(name).op in (*_NORM, "relu") and name in self.split_views for name in group.layers)

    def forward_group(self, index, group):
        self.backward = False
        self.site_group = self.is_site_group(group)
        weights = _Arena(self.allocators)
        resident = {}
        names = [n for n in group.layers if n != self.input_name]
        whole = [n for n in names if n in self.whole]
        loop = [n for n in names if n not in self.whole]
        for name in whole:
            self.forward_streamed_bn(name, group)
        for layers, spans in ((loop, self.chunks(group)),):
            if not layers:
                continue
            if group.weights_resident:
                for name in layers:
                    if self.net.layer(name).weight_shape is not None:
                        resident[name] = self.load_params(name, weights)
            last = self.last_uses(layers)
            for lo, hi in spans:
                arena = _Arena(self.allocators)
                tensors = {}
                for position, name in enumerate(layers):
                    self.forward_layer(name, lo, hi, tensors, arena, resident)
                    self.live = (tensors,)
                    for tensor in [t for t in tensors if last.get(t, -1) <= position]:
                        self.drop(arena, tensors, tensor)
                arena.release()
        weights.release()

    def forward_streamed_bn(self, name, group):
        """A BN opening a serialised group, over the group's sub-batches: statistics added up chunk by chunk,
        the constants once for the whole batch, then (unfused) the normalised tensor chunk by chunk."""
        layer = self.net.layer(name)
        chunks = self.chunks(group)
        block, _ = self.block_address(name, 0)
        for index, (lo, hi) in enumerate(chunks):
            arena = _Arena(self.allocators)
            x = self.fetch(layer.inputs[0], lo, hi, {}, arena, "activations")
            self.set_shape(**self.norm_shape(name, hi - lo))
            self.emit("NORM", "statistics_bn", name, dst=block, src0=x, imm=int(index > 0))
            arena.release()
        params_arena = _Arena(self.allocators)
        params = self.load_params(name, params_arena)
        self.set_shape(**self.norm_shape(name, self.batch))
        self.emit("NORM", "constants_bn", name, dst=block, src0=block, src1=params,
                  imm=self.k._norm(1).eps_fixed(layer.params["eps"]))
        params_arena.release()
        if name in self.virtual:
            return
        for lo, hi in chunks:
            arena = _Arena(self.allocators)
            x = self.fetch(layer.inputs[0], lo, hi, {}, arena, "activations")
            y = arena.take("scratchpad", (hi - lo) * self.per_sample(name))
            self.set_shape(**self.norm_shape(name, hi - lo))
            self.emit("NORM", "affine_bn", name, dst=y, src0=x, src1=block)
            if name in self.in_dram:
                self.store_tensor(name, lo, hi, y)
            arena.release()

    def backward_streamed_bn(self, name, group, index, accumulators, weights):
        """Its backward in two passes over the sub-batches: the reductions added up, the parameter gradients,
        then dx from the whole batch's reductions, each sub-batch's dx stored for the producer group."""
        layer = self.net.layer(name)
        source = layer.inputs[0]
        chunks = self.chunks(group)
        block, _ = self.block_address(name, 0)
        anchor = "norm_passes" if name in self.split_views and name in self.virtual else "stash"
        for step in ("reduce", "dx"):
            for chunk, (lo, hi) in enumerate(chunks):
                arena = _Arena(self.allocators)
                grads, tensors = {}, {}
                self.live = (grads, tensors)
                n = hi - lo
                dy = self.output_grad(name, lo, hi, grads, arena)
                x = self.fetch(source, lo, hi, tensors, arena, anchor)
                self.set_shape(**self.norm_shape(name, n))
                if step == "reduce":
                    self.emit("NORM", "backward_bn", f"d{name} reductions", dst=0, src0=dy, src1=x, src2=block,
                              imm=1 | (2 if chunk else 0))
                else:
                    dx = arena.take("scratchpad", n * self.per_sample(source))
                    self.emit("NORM", "backward_bn", f"d{source} from {name}", dst=dx, src0=dy, src1=x,
                              src2=block, imm=4 | self.batch << 3)
                    self.contribute(grads, source, dx, n, arena)
                    self.store_partials(grads, (index, "whole"), lo, hi)
                arena.release()
            if step == "reduce":
                acc = self.accumulator(accumulators, weights, name, "norm", 2 * layer.out_shape[0])
                self.set_shape(**self.norm_shape(name, self.batch))
                self.emit("NORM", "param_grads_bn", f"d{name}.weight, bias", dst=acc, src0=block)

    def store_partials(self, grads, unit, lo, hi):
        """Store the gradients of tensors another unit produces (one partial per consumer unit)."""
        for name, address in grads.items():
            if self.unit.get(name) != unit and name != self.input_name:
                region = self.grad_region(name, unit)
                per = self.per_sample(name)
                self.dma("STORE", "activation_grads", "scratchpad", region.offset + lo * per * region.element_bytes,
                         address, per, hi - lo, note=f"d{name}[{lo}:{hi}] from unit {unit}")

    def drop(self, arena, mapping, name):
        """Forget ``mapping[name]`` and free its space unless another live name still refers to it."""
        address = mapping.pop(name)
        if all(address not in live.values() for live in self.live):
            arena.free(address)

    def last_uses(self, layers):
        """Position of the last layer in ``layers`` that may read each tensor on chip (through flatten and
        fused-norm views); a layer's own output counts as used where it is produced."""
        last = {}
        for position, name in enumerate(layers):
            last[name] = max(last.get(name, -1), position)
            stack = list(self.net.layer(name).inputs)
            while stack:
                source = stack.pop()
                last[source] = position
                if self.net.layer(source).op == "flatten" or source in self.relu_views:
                    stack.append(self.net.layer(source).inputs[0])
                elif self.net.layer(source).op == "concat":
                    stack.extend(self.net.layer(source).inputs)
                elif source in self.virtual:
                    stack.append(self._norm_source(source))
        return last

    def params_on_chip(self, name, resident, arena):
        return resident[name] if name in resident else self.load_params(name, arena)

    def forward_layer(self, name, lo, hi, tensors, arena, resident):
        layer = self.net.layer(name)
        op, n = layer.op, hi - lo
        if op in ("flatten", "concat") or name in self.relu_views or (name in self.virtual and layer.op not in _NORM):
            return
        fetch = lambda source: self.fetch(source, lo, hi, tensors, arena, "activations")  # noqa: E731
        if op == "loss":
            logits = fetch(layer.inputs[0])
            labels = arena.take("scratchpad", n)
            self.dma("LOAD", "io", "scratchpad", self.mm["labels"].offset + lo * self.mm["labels"].element_bytes,
                     labels, n, 1, note=f"labels[{lo}:{hi}]")
            classes = self.net.layer(layer.inputs[0]).out_shape[0]
            self.set_shape(samples=n, channels=classes)
            self.emit("LOSS", "cross_entropy", "loss", dst=self.dlogits + lo * classes, src0=logits, src1=labels,
                      src2=self.losses + lo, imm=self.batch)
            return
        if op in _NORM:
            x = fetch(layer.inputs[0])
            block, kind = self.block_address(name, lo)
            params = self.params_on_chip(name, resident, arena)
            self.set_shape(**self.norm_shape(name, n))
            self.emit("NORM", f"statistics_{kind}", name, dst=block, src0=x)
            eps = self.k._norm(1).eps_fixed(layer.params["eps"])
            self.emit("NORM", f"constants_{kind}", name, dst=block, src0=block, src1=params, imm=eps)
            if name in self.virtual:
                return
            y = arena.take("scratchpad", n * self.per_sample(name))
            self.emit("NORM", f"affine_{kind}", name, dst=y, src0=x, src1=block)
        else:
            inputs = [fetch(source) for source in layer.inputs]
            y = arena.take("scratchpad", n * self.per_sample(name))
            if op in _GEMM:
                self.set_shape(**self.gemm_shape(layer, n))
                params = self.params_on_chip(name, resident, arena)
                has_bias = layer.bias_shape is not None
                weight_elements = math.prod(layer.weight_shape)
                self.emit("GEMM", "forward_bias" if has_bias else "forward", name, dst=y, src0=inputs[0],
                          src1=params, src2=params + weight_elements if has_bias else 0,
                          imm=self.numerics.weight_frac)
            else:
                self.vector_forward(layer, n, inputs, y)
        tensors[name] = y
        if name in self.in_dram:
            self.store_tensor(name, lo, hi, y)

    def gemm_shape(self, layer, n):
        if layer.op == "linear":
            in_features = math.prod(layer.in_shapes[0])
            return dict(samples=n, channels=in_features, height=1, width=1, out_channels=layer.out_shape[0],
                        out_height=1, out_width=1)
        p = layer.params
        c, h, w = layer.in_shapes[0]
        co, ho, wo = layer.out_shape
        return dict(samples=n, channels=c, height=h, width=w, out_channels=co, out_height=ho, out_width=wo,
                    kernel_height=p["kernel"][0], kernel_width=p["kernel"][1], stride_height=p["stride"][0],
                    stride_width=p["stride"][1], padding_height=p["padding"][0], padding_width=p["padding"][1],
                    groups=p["groups"])

    def io_shape(self, layer, n):
        c, h, w = self.dims(layer.inputs[0])
        co, ho, wo = self.dims(layer.name)
        p = layer.params
        kernel = p.get("kernel", (1, 1))
        stride = p.get("stride", (1, 1)) or kernel
        padding = p.get("padding", (0, 0))
        return dict(samples=n, channels=c, height=h, width=w, out_channels=co, out_height=ho, out_width=wo,
                    kernel_height=kernel[0], kernel_width=kernel[1], stride_height=stride[0],
                    stride_width=stride[1], padding_height=padding[0], padding_width=padding[1],
                    ceil_mode=int(bool(p.get("ceil_mode", False))))

    def vector_forward(self, layer, n, inputs, y):
        op = layer.op
        self.set_shape(**self.io_shape(layer, n))
        if op == "relu":
            self.emit("VECTOR", "relu", layer.name, dst=y, src0=inputs[0], imm=self.relu_limit(layer.name))
        elif op == "add":
            current = inputs[0]
            for index, other in enumerate(inputs[1:]):
                self.emit("VECTOR", "add_saturate", layer.name, dst=y, src0=current, src1=other)
                current = y
                if index < len(inputs) - 2:
                    raise ValueError(f"add {layer.name!r}: more than two inputs is not supported by the core")
        elif op in ("maxpool", "avgpool"):
            self.emit("VECTOR", f"{op}_forward", layer.name, dst=y, src0=inputs[0])
        elif op == "global_avgpool":
            self.emit("VECTOR", "global_pool_forward", layer.name, dst=y, src0=inputs[0])
        elif op == "concat":
            offset = 0
            total = layer.out_shape[0]
            for source, address in zip(layer.inputs, inputs):
                c, h, w = self.dims(source)
                self.set_shape(samples=n, channels=c, height=h, width=w, out_channels=total, out_height=h,
                               out_width=w)
                self.emit("VECTOR", "channel_insert", layer.name, dst=y, src0=address, imm=offset)
                offset += c
        else:
            raise ValueError(f"layer {layer.name!r}: op {op!r} is not supported by the core")

    # -- backward -----------------------------------------------------------------------------------------
    def grad_region(self, name, unit):
        key = f"grad.{name}.{unit[0]}.{unit[1]}"
        if key not in self.mm:
            self.mm.add(key, "gradient", (self.batch, *self.net.layer(name).out_shape))
        return self.mm[key]

    def backward_group(self, index, group):
        self.backward = True
        self.site_group = self.is_site_group(group)
        weights = _Arena(self.allocators)
        accumulators = {}
        resident = {}
        names = [n for n in group.layers if n != self.input_name]
        whole = [n for n in names if n in self.whole]
        loop = [n for n in names if n not in self.whole]
        for part, layers, spans in (("loop", loop, self.chunks(group)),):
            if not layers:
                continue
            if group.weights_resident:
                for name in layers:
                    layer = self.net.layer(name)
                    if layer.op in _GEMM:
                        resident[name] = self.load_params(name, weights)
            for chunk, (lo, hi) in enumerate(spans):
                arena = _Arena(self.allocators)
                grads = {}
                tensors = {}
                self.live = (grads, tensors)
                order = list(reversed(layers))
                last = self.last_uses(order)
                for position, name in enumerate(order):
                    self.backward_layer(name, lo, hi, chunk, len(spans), grads, tensors, arena, resident,
                                        accumulators, weights, group)
                    if name in grads and self.unit.get(name) == (index, part):
                        self.drop(arena, grads, name)  # consumed by its producer's backward
                    for tensor in [t for t in tensors if last.get(t, -1) <= position]:
                        self.drop(arena, tensors, tensor)
                self.store_partials(grads, (index, part), lo, hi)
                arena.release()
        for name in reversed(whole):
            self.backward_streamed_bn(name, group, index, accumulators, weights)
        self.update(group, accumulators, weights)
        weights.release()

    def contribute(self, grads, name, address, n, arena):
        """Add a gradient contribution (on chip), leaving the SHAPE register as the caller set it."""
        saved = self.shape
        self._contribute(grads, name, address, n, arena)
        if saved is not None and self.shape != saved:
            self.set_shape(**saved)

    def _contribute(self, grads, name, address, n, arena):
        if name == self.input_name:
            return
        layer = self.net.layer(name)
        if layer.op == "flatten":
            return self._contribute(grads, layer.inputs[0], address, n, arena)
        if layer.op == "concat":  # split at once into the inputs' gradients
            offset = 0
            for source in layer.inputs:
                c, h, w = self.dims(source)
                part = arena.take("scratchpad", n * self.per_sample(source))
                self.set_shape(samples=n, channels=layer.out_shape[0], height=h, width=w, out_channels=c,
                               out_height=h, out_width=w)
                self.emit("VECTOR", "channel_extract", f"d{source}", dst=part, src0=address, imm=offset)
                self._contribute(grads, source, part, n, arena)
                offset += c
            if all(address not in mapping.values() for mapping in self.live):
                arena.free(address)
            return
        if name not in grads:
            grads[name] = address
            return
        total = arena.take("scratchpad", n * self.per_sample(name))
        c, h, w = self.dims(name)
        self.set_shape(samples=n, channels=c, height=h, width=w, out_channels=c, out_height=h, out_width=w)
        self.emit("VECTOR", "add_exact", f"d{name}", dst=total, src0=grads[name], src1=address)
        self.drop(arena, grads, name)
        grads[name] = total
        if all(address not in mapping.values() for mapping in self.live):
            arena.free(address)

    def output_grad(self, name, lo, hi, grads, arena):
        """dy of ``name`` for [lo, hi): on-chip contributions plus partials other units stored."""
        n = hi - lo
        per = self.per_sample(name)
        for key, region in list(self.mm.regions.items()):
            if region.kind == "gradient" and key.startswith(f"grad.{name}."):
                address = arena.take("scratchpad", n * per)
                self.dma("LOAD", "activation_grads", "scratchpad", region.offset + lo * per * region.element_bytes,
                         address, per, n, note=f"d{name}[{lo}:{hi}] partial {key}")
                self.contribute(grads, name, address, n, arena)
        return grads.get(name)

    def accumulator(self, accumulators, weights, layer_name, key, words):
        slot = (layer_name, key)
        if slot not in accumulators:
            accumulators[slot] = weights.take("accumulator", words)
        return accumulators[slot]

    def backward_layer(self, name, lo, hi, chunk, chunks, grads, tensors, arena, resident, accumulators, weights,
                       group):
        layer = self.net.layer(name)
        op, n = layer.op, hi - lo
        if op in ("flatten", "concat"):  # views: their gradients went to their inputs on arrival
            return
        fetch = lambda source: self.fetch(source, lo, hi, tensors, arena, "stash")  # noqa: E731
        if op == "loss":
            classes = self.net.layer(layer.inputs[0]).out_shape[0]
            self.contribute(grads, layer.inputs[0], self.dlogits + lo * classes, n, arena)
            return
        dy = self.output_grad(name, lo, hi, grads, arena)
        if dy is None:
            raise AssertionError(f"no gradient reached {name}")
        first = chunk == 0
        source = layer.inputs[0]
        if op in _GEMM:
            x = fetch(source)
            params = self.params_on_chip(name, resident, arena)
            self.set_shape(**self.gemm_shape(layer, n))
            if source != self.input_name:
                dx = arena.take("scratchpad", n * self.per_sample(source))
                self.emit("GEMM", "backward_data", f"d{source} from {name}", dst=dx, src0=dy, src1=params,
                          imm=self.numerics.weight_frac)
            words = math.prod(layer.weight_shape)
            acc = self.accumulator(accumulators, weights, name, "weight", words)
            carry = not first
            if not group.weight_grads_on_chip and carry:
                region = self.weight_grad_region(name, "weight")
                self.dma("LOAD", "weight_grads", "accumulator", region.offset, acc, words, 1,
                         note=f"d{name}.weight partial")
            self.emit("GEMM", "backward_weight_accumulate" if carry else "backward_weight", f"d{name}.weight",
                      dst=acc, src0=dy, src1=x)
            if not group.weight_grads_on_chip and chunk < chunks - 1:
                region = self.weight_grad_region(name, "weight")
                self.dma("STORE", "weight_grads", "accumulator", region.offset, acc, words, 1,
                         note=f"d{name}.weight partial")
            if layer.bias_shape is not None:
                bias = self.accumulator(accumulators, weights, name, "bias", layer.out_shape[0])
                c, h, w = self.dims(name)
                self.set_shape(samples=n, channels=c, height=h, width=w, out_channels=c, out_height=h,
                               out_width=w)
                if not group.weight_grads_on_chip and carry:
                    region = self.weight_grad_region(name, "bias")
                    self.dma("LOAD", "weight_grads", "accumulator", region.offset, bias, c, 1,
                             note=f"d{name}.bias partial")
                self.emit("VECTOR", "channel_sum_accumulate" if carry else "channel_sum", f"d{name}.bias",
                          dst=bias, src0=dy)
                if not group.weight_grads_on_chip and chunk < chunks - 1:
                    region = self.weight_grad_region(name, "bias")
                    self.dma("STORE", "weight_grads", "accumulator", region.offset, bias, c, 1,
                             note=f"d{name}.bias partial")
            if source != self.input_name:
                self.contribute(grads, source, dx, n, arena)  # after the GEMMs: an add changes SHAPE
            return
        anchor = "norm_passes" if name in self.split_views and (name in self.virtual or name in self.relu_views) \
            else "stash"
        if op in _NORM:
            x = self.fetch(source, lo, hi, tensors, arena, anchor)
            block, kind = self.block_address(name, lo)
            self.set_shape(**self.norm_shape(name, n))
            dx = arena.take("scratchpad", n * self.per_sample(source))
            self.emit("NORM", f"backward_{kind}", f"d{source} from {name}", dst=dx, src0=dy, src1=x, src2=block)
            c = layer.out_shape[0]
            acc = self.accumulator(accumulators, weights, name, "norm", 2 * c)
            in_dram = not group.weight_grads_on_chip
            if in_dram and not first:  # dgamma then dbeta: the two regions' partials, back to back on chip
                for key, offset in (("weight", 0), ("bias", c)):
                    region = self.weight_grad_region(name, key)
                    self.dma("LOAD", "weight_grads", "accumulator", region.offset, acc + offset, c, 1,
                             note=f"d{name}.{key} partial")
            self.emit("NORM", f"param_grads_accumulate_{kind}" if not first else f"param_grads_{kind}",
                      f"d{name}.weight, bias", dst=acc, src0=block)
            if in_dram and chunk < chunks - 1:
                for key, offset in (("weight", 0), ("bias", c)):
                    region = self.weight_grad_region(name, key)
                    self.dma("STORE", "weight_grads", "accumulator", region.offset, acc + offset, c, 1,
                             note=f"d{name}.{key} partial")
            self.contribute(grads, source, dx, n, arena)
            return
        if op == "relu":
            if name in self.masked:
                norm = self.masked[name]
                x = self.fetch(self._norm_source(name), lo, hi, tensors, arena, anchor)
                block, kind = self.block_address(norm, lo)
                self.set_shape(**self.norm_shape(norm, n))
                dx = arena.take("scratchpad", n * self.per_sample(name))
                self.emit("NORM", f"relu_mask_{kind}", f"d{norm}", dst=dx, src0=dy, src1=x, src2=block,
                          imm=self.relu_limit(name))
            else:
                x = self.fetch(source, lo, hi, tensors, arena, anchor)
                self.set_shape(**self.io_shape(layer, n))
                dx = arena.take("scratchpad", n * self.per_sample(source))
                self.emit("VECTOR", "relu_mask", f"d{source}", dst=dx, src0=dy, src1=x, imm=self.relu_limit(name))
            self.contribute(grads, source, dx, n, arena)
            return
        if op == "add":
            for other in layer.inputs:
                self.contribute(grads, other, dy, n, arena)
            return
        self.set_shape(**self.io_shape(layer, n))
        dx = arena.take("scratchpad", n * self.per_sample(source))
        if op == "maxpool":
            self.emit("VECTOR", "maxpool_backward", f"d{source}", dst=dx, src0=dy, src1=fetch(source))
        elif op == "avgpool":
            self.emit("VECTOR", "avgpool_backward", f"d{source}", dst=dx, src0=dy)
        elif op == "global_avgpool":
            self.emit("VECTOR", "global_pool_backward", f"d{source}", dst=dx, src0=dy)
        else:
            raise ValueError(f"layer {name!r}: op {op!r} is not supported by the core")
        self.contribute(grads, source, dx, n, arena)

    def weight_grad_region(self, layer_name, key):
        name = f"weight_grad.{layer_name}.{key}"
        if name not in self.mm:
            layer = self.net.layer(layer_name)
            shape = layer.weight_shape if key == "weight" else layer.bias_shape
            self.mm.add(name, "weight_grad", shape, space="accumulator")
        return self.mm[name]

    def update(self, group, accumulators, weights):
        """Finish each parameter's gradient, store the accumulator, SGD on chip (golden order: any)."""
        k = self.k
        for name in group.layers:
            layer = self.net.layer(name)
            if layer.weight_shape is None:
                continue
            if layer.op in _GEMM:
                parts = [("weight", accumulators[(name, "weight")], k.grad_shift["gemm_weight"])]
                if layer.bias_shape is not None:
                    parts.append(("bias", accumulators[(name, "bias")], k.grad_shift["gemm_bias"]))
            else:
                c = layer.out_shape[0]
                base = accumulators[(name, "norm")]
                parts = [("weight", base, k.grad_shift["norm_weight"]), ("bias", base + c, k.grad_shift["norm_bias"])]
            for key, acc, shift in parts:
                arena = _Arena(self.allocators)
                param = self.param_region(name, key)
                velocity = self.mm[f"velocity.{name}.{key}"]
                words = param.elements
                grad_region = self.weight_grad_region(name, key)
                self.dma("STORE", "weight_grads", "accumulator", grad_region.offset, acc, words, 1,
                         note=f"d{name}.{key} accumulator")
                # the tensor's own dimensions (N, C, H, W padded with 1): every SHAPE field stays in range
                dims = (*(1,) * (4 - len(param.shape)), *param.shape)
                self.set_shape(samples=dims[0], channels=dims[1], height=dims[2], width=dims[3])
                gradient = arena.take("scratchpad", words)
                self.emit("VECTOR", "requantize", f"d{name}.{key} finished", dst=gradient, src0=acc, imm=shift)
                weights_address = arena.take("scratchpad", words)
                velocity_address = arena.take("scratchpad", words)
                self.dma("LOAD", "optimizer", "scratchpad", param.offset, weights_address, words, 1,
                         note=f"{name}.{key}")
                self.dma("LOAD", "optimizer", "scratchpad", velocity.offset, velocity_address, words, 1,
                         note=f"velocity {name}.{key}")
                self.emit("SGD", "momentum", f"{name}.{key}", dst=self.sgd_constants, src0=weights_address,
                          src1=velocity_address, src2=gradient)
                self.dma("STORE", "optimizer", "scratchpad", param.offset, weights_address, words, 1,
                         note=f"{name}.{key}")
                self.dma("STORE", "optimizer", "scratchpad", velocity.offset, velocity_address, words, 1,
                         note=f"velocity {name}.{key}")
                arena.release()


@dataclass(frozen=True)
class _GroupView:
    layers: tuple
    sub_batch: int


def compile_step(network, batch: int, groups, *, numerics: IntegerTraining, parameters: CoreParameters,
                 norm_fusion: bool = False) -> CompiledStep:
    """Compile one training step; ``groups`` is a list of :class:`ExecutionGroup` covering the network."""
    if not isinstance(numerics, IntegerTraining):
        raise TypeError(f"numerics must be an IntegerTraining, not {numerics!r}")
    if numerics.loss != "integer" or numerics.sgd != "integer":
        raise ValueError("numerics must use the on-chip loss and SGD (loss='integer', sgd='integer')")
    if (numerics.mac.in_width, numerics.mac.acc_width) != (parameters.in_width, parameters.acc_width):
        raise ValueError(f"parameters in_width/acc_width {parameters.in_width}/{parameters.acc_width} must equal "
                         f"the numerics' {numerics.mac.in_width}/{numerics.mac.acc_width}")
    compiler = _Compiler(network, batch, list(groups), numerics, parameters, norm_fusion)
    program = compiler.compile()
    notes = [entry.note for entry in compiler.builder.entries]
    expected = expected_figures(program, parameters)
    return CompiledStep(program, compiler.mm, notes, expected, parameters, dict(compiler.stored), list(groups))


def compile_tiled(network, batch: int, groups, **options) -> CompiledStep:
    """:func:`compile_step`, halving sub-batches until the step fits the scratchpad: first the planner's tiled
    (whole-batch, layer-by-layer) groups, which then run in sample tiles, then every group. With the weights
    resident and the weight gradients on chip (the group's flags are kept) the DRAM bytes of a group do not
    depend on its sub-batch, and the bits never do; the planner's footprint model is coarser than the
    compiler's allocation (views recomputed on read, gradients in flight), hence the fallback."""
    groups = list(groups)
    while True:
        try:
            return compile_step(network, batch, groups, **options)
        except ValueError as error:
            if "cannot hold" not in str(error):
                raise
            tiled = any(g.tiled and g.sub_batch > 1 for g in groups)
            if not tiled and not any(g.sub_batch > 1 for g in groups):
                raise
            groups = [replace(g, sub_batch=max(1, g.sub_batch // 2)) if g.tiled or not tiled else g
                      for g in groups]


def expected_figures(program, parameters: CoreParameters) -> dict:
    """Bytes per traffic class, instruction counts per opcode and queue, predicted cycles."""
    from wavecore.golden.core.isa import TRAFFIC_CLASSES
    from wavecore.golden.core.semantics import dma_rows

    per_class = dict.fromkeys(TRAFFIC_CLASSES, 0)
    counts, queues = {}, {}
    for instruction in program:
        counts[instruction.opcode] = counts.get(instruction.opcode, 0) + 1
        queues[instruction.queue] = queues.get(instruction.queue, 0) + 1
        if instruction.opcode in ("LOAD", "STORE"):
            rows, _ = dma_rows(instruction, parameters)
            per_class[instruction.funct.split(".")[0]] += sum(b - a for a, b in rows)
    _, total = makespan(program, parameters)
    return {"bytes": per_class, "instructions": counts, "queues": queues, "cycles": total,
            "program_bytes": len(program) * INSTRUCTION_BYTES}


def sgd_constants(numerics: IntegerTraining, optimizer) -> tuple[int, int, int]:
    """The SGD unit's fixed-point ``(lr, momentum, weight_decay)`` for a :class:`golden.train.SGD`."""
    unit = IntegerKernels(numerics).sgd_unit(optimizer)
    return unit.lr, unit.momentum, unit.weight_decay


def initial_image(step: CompiledStep, x_q, labels, params_q, *, sgd_constants, velocities=None) -> bytearray:
    """The DRAM image before the step: program, input, labels, parameters, velocities (zero if None) and
    the SGD unit's ``(lr, momentum, weight_decay)`` fixed-point constants."""
    mm = step.memory_map
    image = mm.image()
    mm.write(image, "sgd_constants", np.asarray(sgd_constants, dtype=np.int64))
    mm.write(image, "input", x_q)
    mm.write(image, "labels", np.asarray(labels, dtype=np.int64))
    for name, entry in params_q.items():
        for key, value in entry.items():
            mm.write(image, f"param.{name}.{key}", value)
            slot = f"{name}.{key}"
            velocity = None if velocities is None else velocities.get(slot)
            mm.write(image, f"velocity.{name}.{key}", np.zeros(np.size(value), np.int64) if velocity is None
                     else velocity)
    program = mm["program"]
    image[program.offset : program.offset + len(step.image)] = step.image
    return image
