"""Execution orders over the same training math: the schedule objects the planner builds and
:mod:`wavecore.golden.train` runs: mini-batch serialization (Lym et al., arXiv 1810.00307) and BN fission-fusion
(Jung et al., arXiv 1807.01702).

A :class:`Schedule` is a sequence of :class:`Group` objects, each a contiguous run of whole blocks
(:meth:`wavecore.golden.network.Network.blocks`) with its own sub-batch size. Forward runs every sub-batch of a
group through all of its layers before the next group starts; backward runs the groups in reverse, sub-batch
by sub-batch, accumulating weight gradients. The layer-by-layer baseline is the schedule whose every group
has ``sub_batch == batch``.

Rules (checked by :meth:`Schedule.validate`, one-line :class:`ScheduleError`):

* the groups cover every layer of the network exactly once, in topological order, and each group is a
  union of whole blocks (a residual/concat module is never split);
* ``1 <= sub_batch <= batch``; the last sub-batch of a group may be smaller (``batch = 10, sub_batch = 4``
  runs 4, 4, 2);
* BatchNorm needs whole-mini-batch statistics, so a BN layer in a group with ``sub_batch < batch`` must take
  its input from an earlier group (in practice: it opens the group, i.e. there is a group boundary at that
  BN). It then runs over the whole mini-batch at the group boundary (statistics before the sub-batch loop,
  backward reductions after it) and the result is exact. The alternative, ``sub_batch_bn=True`` (per
  sub-batch statistics, "ghost BN"), changes the math and is never chosen silently.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "STASH_POLICIES",
    "WEIGHT_GRAD_ACCUMULATION",
    "Group",
    "Schedule",
    "ScheduleError",
]

#: ``all``: every layer output is kept for the backward pass; ``minimal``: only what a backward reads
#: (conv/linear/norm/ReLU/max-pool inputs); with ``norm_fusion`` the normalised and ReLU outputs are not
#: kept but recomputed from the pre-norm tensor on read (BNFF's "Z is never materialised").
STASH_POLICIES = ("all", "minimal")
#: Where partial weight gradients live between sub-batches. It does not change the golden model's numbers
#: (both accumulate in the working precision); the traffic model charges DRAM read-modify-writes for ``dram``.
WEIGHT_GRAD_ACCUMULATION = ("on_chip", "dram")


class ScheduleError(ValueError):
    """An invalid schedule; the message is one line naming the group/layer and the rule."""


@dataclass(frozen=True)
class Group:
    """A contiguous run of whole blocks executed sub-batch by sub-batch."""

    layers: tuple[str, ...]
    sub_batch: int

    def __post_init__(self):
        if not isinstance(self.layers, tuple):
            object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ScheduleError("group: layers must not be empty")
        if not isinstance(self.sub_batch, int) or isinstance(self.sub_batch, bool) or self.sub_batch < 1:
            raise ScheduleError(
                f"group {self.layers[0]!r}: sub_batch must be an integer >= 1, not {self.sub_batch!r}"
            )

    def sub_batches(self, batch: int) -> list[tuple[int, int]]:
        """``(start, stop)`` sample ranges in execution order; the last one may be smaller."""
        size = min(self.sub_batch, batch)
        return [(start, min(start + size, batch)) for start in range(0, batch, size)]


@dataclass(frozen=True)
class Schedule:
    """Groups plus the execution options.

    Parameters
    ----------
    groups : tuple of Group
        Cover the network in topological order.
    norm_fusion : bool
        BN/GN fission and fusion (Jung et al., arXiv 1807.01702): statistics on the producer's write, affine+ReLU on
        the consumer's read, backward reductions on the gradient write, ``dx = k1*dy + k2*x + k3``.
    sub_batch_bn : bool
        Allow BN inside a serialised group with per-sub-batch statistics (NOT equivalent to the baseline).
    stash : str
        One of :data:`STASH_POLICIES`.
    weight_grad_accumulation : str
        One of :data:`WEIGHT_GRAD_ACCUMULATION`.
    """

    groups: tuple[Group, ...]
    norm_fusion: bool = False
    sub_batch_bn: bool = False
    stash: str = "all"
    weight_grad_accumulation: str = "on_chip"

    def __post_init__(self):
        if not isinstance(self.groups, tuple):
            object.__setattr__(self, "groups", tuple(self.groups))
        for name in ("norm_fusion", "sub_batch_bn"):
            if not isinstance(getattr(self, name), bool):
                raise ScheduleError(f"schedule: {name} must be a bool, not {getattr(self, name)!r}")
        if self.stash not in STASH_POLICIES:
            raise ScheduleError(
                f"schedule: stash must be one of {', '.join(STASH_POLICIES)}, not {self.stash!r}"
            )
        if self.weight_grad_accumulation not in WEIGHT_GRAD_ACCUMULATION:
            raise ScheduleError(
                "schedule: weight_grad_accumulation must be one of "
                f"{', '.join(WEIGHT_GRAD_ACCUMULATION)}, not {self.weight_grad_accumulation!r}"
            )

    # -- constructors --------------------------------------------------------------------------------------
    @classmethod
    def baseline(cls, network, batch: int, **options) -> Schedule:
        """Layer by layer over the whole mini-batch: one group per block, ``sub_batch = batch``."""
        return cls(tuple(Group(block.layers, batch) for block in network.blocks()), **options)

    @classmethod
    def mbs(cls, network, groups, **options) -> Schedule:
        """From ``[(layer_names, sub_batch), ...]``; ``layer_names`` may also be a block name list."""
        built = []
        for layers, sub_batch in groups:
            built.append(Group(tuple(layers), sub_batch))
        return cls(tuple(built), **options)

    @classmethod
    def per_block(cls, network, sub_batch: int, **options) -> Schedule:
        """Every block its own group, all with the same ``sub_batch`` (handy for tests)."""
        return cls(tuple(Group(block.layers, sub_batch) for block in network.blocks()), **options)

    @classmethod
    def serialised(cls, network, batch: int, sub_batch: int, **options) -> Schedule:
        """Every block its own group with ``sub_batch``, except blocks holding a BatchNorm anywhere but at
        their start, which keep the whole batch (so the schedule is exact with BN: a boundary at each BN)."""
        groups = []
        for block in network.blocks():
            inner_bn = any(network.layer(name).op == "batchnorm" for name in block.layers[1:])
            groups.append(Group(block.layers, batch if inner_bn else min(sub_batch, batch)))
        return cls(tuple(groups), **options)

    @classmethod
    def from_boundaries(cls, network, batch: int, cuts, sub_batches, **options) -> Schedule:
        """Groups of whole blocks: ``cuts`` are block indices where a new group starts (after 0)."""
        blocks = network.blocks()
        starts = [0, *sorted(cuts)]
        if len(sub_batches) != len(starts):
            raise ScheduleError(
                f"schedule: {len(starts)} groups need as many sub-batch sizes, not {len(sub_batches)}"
            )
        groups = []
        for index, start in enumerate(starts):
            stop = starts[index + 1] if index + 1 < len(starts) else len(blocks)
            layers = tuple(name for block in blocks[start:stop] for name in block.layers)
            groups.append(Group(layers, min(sub_batches[index], batch)))
        return cls(tuple(groups), **options)

    # -- queries -------------------------------------------------------------------------------------------
    def group_of(self, layer: str) -> int:
        for index, group in enumerate(self.groups):
            if layer in group.layers:
                return index
        raise KeyError(layer)

    def whole_batch_layers(self, network, batch: int) -> set[str]:
        """BN layers that run over the whole mini-batch at their group boundary (see module docstring)."""
        result = set()
        if self.sub_batch_bn:
            return result
        for group in self.groups:
            if group.sub_batch >= batch:
                continue
            members = set(group.layers)
            for name in group.layers:
                layer = network.layer(name)
                if layer.op == "batchnorm" and not (set(layer.inputs) & members):
                    result.add(name)
        return result

    def is_baseline(self, batch: int) -> bool:
        return all(group.sub_batch >= batch for group in self.groups)

    def validate(self, network, batch: int) -> Schedule:
        """Check the schedule against ``network`` and ``batch``; returns ``self`` or raises ScheduleError."""
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ScheduleError(f"schedule: batch must be an integer >= 1, not {batch!r}")
        order = [layer.name for layer in network.layers]
        flat = [name for group in self.groups for name in group.layers]
        for name in flat:
            if name not in network:
                raise ScheduleError(f"schedule: layer {name!r} is not in network {network.name!r}")
        seen = set()
        for name in flat:
            if name in seen:
                raise ScheduleError(f"schedule: layer {name!r} appears in more than one group")
            seen.add(name)
        missing = [name for name in order if name not in seen]
        if missing:
            raise ScheduleError(
                f"schedule: layer {missing[0]!r} is in no group (groups must cover the network)"
            )
        if flat != order:
            position = next(i for i, (a, b) in enumerate(zip(flat, order)) if a != b)
            raise ScheduleError(
                f"schedule: layer {flat[position]!r} is out of topological order "
                f"(expected {order[position]!r}); groups must be contiguous"
            )
        starts = {block.layers[0] for block in network.blocks()}
        block_of = {name: block for block in network.blocks() for name in block.layers}
        for group in self.groups:
            if group.layers[0] not in starts:
                block = block_of[group.layers[0]]
                raise ScheduleError(
                    f"schedule: group starting at {group.layers[0]!r} splits block "
                    f"{block.name!r} (groups must hold whole blocks)"
                )
            if group.sub_batch > batch:
                raise ScheduleError(
                    f"schedule: group {group.layers[0]!r} sub_batch {group.sub_batch} "
                    f"exceeds the batch {batch}"
                )
        if not self.sub_batch_bn:
            whole = self.whole_batch_layers(network, batch)
            for group in self.groups:
                if group.sub_batch >= batch:
                    continue
                for name in group.layers:
                    if network.layer(name).op == "batchnorm" and name not in whole:
                        raise ScheduleError(
                            f"schedule: batchnorm {name!r} is inside group {group.layers[0]!r} "
                            f"with sub_batch "
                            f"{group.sub_batch} < batch {batch}; put a group boundary at it, use GN, or set "
                            "sub_batch_bn=True (not equivalent)"
                        )
        return self

    def describe(self) -> str:
        parts = [f"[{g.layers[0]}..{g.layers[-1]}]x{g.sub_batch}" for g in self.groups]
        flags = [f for f in ("norm_fusion", "sub_batch_bn") if getattr(self, f)]
        return " ".join(parts) + (f" ({', '.join(flags)})" if flags else "")
