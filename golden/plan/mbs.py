"""Mini-batch serialization (MBS) planning: greedy and optimal grouping with a sub-batch size per group.

After Lym et al., "Mini-batch Serialization: CNN Training with Inter-layer Data Reuse" (SysML 2019, arXiv
1810.00307), whose search is greedy over layer groups; the formalisation below is ours. The network is cut into
*units*: the blocks of :meth:`wavecore.golden.network.Network.blocks` (residual, Inception and dense modules are
never split), further cut before every ``batchnorm`` layer because BN needs whole-mini-batch statistics (GN does
not, which is why MBS trains with GroupNorm). A group is a contiguous run of units; its cost is
:meth:`wavecore.golden.plan.traffic.NetworkModel.group_traffic` at the cheapest feasible sub-batch, whose footprint
honours both the forward and the backward live set.

* :func:`plan_greedy` walks the units and extends the current group while its largest feasible sub-batch stays
  at or above ``options.min_sub_batch`` and the modelled traffic does not grow (extending costs no more than
  closing the group and starting a new one with the unit).
* :func:`plan_optimal` is a dynamic program over contiguous groups of units (``best[j] = min_i best[i] +
  cost(i..j)``), exact for this additive cost model, so it is never worse than the greedy plan.

A unit that does not fit the buffer even at sub-batch 1 runs layer by layer over the whole mini-batch, tiled
(each of its layers is a group of its own marked ``tiled``; the traffic is the baseline's for those layers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wavecore.golden.plan.traffic import NetworkModel, ScheduleTraffic, TrafficOptions, evaluate

__all__ = ["Plan", "plan_baseline", "plan_greedy", "plan_optimal", "units"]


@dataclass
class Plan:
    """A planned schedule: groups of layer names with their sub-batch, and the traffic model's verdict."""

    name: str
    network: object
    batch: int
    capacity: int | None
    groups: list  # [(tuple_of_layer_names, sub_batch)]
    tiled: set = field(default_factory=set)
    traffic: ScheduleTraffic | None = None

    def to_schedule(self, **schedule_options):
        """The plan as a :class:`wavecore.golden.schedule.Schedule` runnable by the golden executor.

        The schedule's ``norm_fusion``, ``stash`` and ``weight_grad_accumulation`` follow the traffic options
        the plan was made with (``auto`` maps to ``dram`` if any group accumulates ``dW`` in DRAM, else
        ``on_chip``); keyword arguments override them.
        """
        from wavecore.golden.schedule import Schedule

        options = self.traffic.options if self.traffic is not None else None
        if options is not None:
            policy = options.weight_grad_accumulation
            if policy == "auto":
                in_dram = any(not g.weight_grads_on_chip for g in self.traffic.groups)
                policy = "dram" if in_dram else "on_chip"
            defaults = {
                "norm_fusion": options.norm_variant == "fused",
                "stash": options.stash,
                "weight_grad_accumulation": policy,
            }
            schedule_options = {**defaults, **schedule_options}
        return Schedule.mbs(
            self.network, groups=[(list(names), b) for names, b in self.groups], **schedule_options
        )


def units(network, model: NetworkModel) -> list[tuple[int, int]]:
    """The blocks as position ranges ``[start, stop)``; the input layer (position 0) is outside every unit."""
    result = []
    for block in network.blocks():
        start = model.position[block.layers[0]]
        stop = model.position[block.layers[-1]] + 1
        start = max(start, 1)
        if start < stop:
            result.append((start, stop))
    return result


def _model(network, options, model):
    return model or NetworkModel(network, options or TrafficOptions())


def plan_baseline(network, batch: int, *, options: TrafficOptions | None = None, model=None) -> Plan:
    """Layer by layer over the whole mini-batch: one whole-batch group per block (``Schedule.baseline``),
    each executed layer by layer, tiled."""
    model = _model(network, options, model)
    groups = [(tuple(block.layers), batch) for block in network.blocks()]
    tiled = set(range(len(groups)))
    traffic = evaluate(
        network, groups, batch, options=model.options, name="baseline", model=model, tiled=tiled
    )
    return Plan("baseline", network, batch, None, groups, tiled, traffic)


class _Coster:
    def __init__(self, network, model, batch, capacity):
        self.model, self.batch, self.capacity = model, batch, capacity
        self.units = units(network, model)
        self.cache = {}
        # BN forces a group boundary: a batchnorm can only be the first layer of a serialised group
        # (wavecore.golden.schedule's rule); a unit with a batchnorm inside can only run whole-batch (tiled)
        self.opens_group = [model.op[start] == "batchnorm" for start, _ in self.units]
        self.inner_bn = [
            any(model.op[p] == "batchnorm" for p in range(start + 1, stop)) for start, stop in self.units
        ]

    def cost(self, i, j):
        """Best GroupTraffic for units i..j inclusive, or None if infeasible."""
        key = (i, j)
        if any(self.opens_group[k] for k in range(i + 1, j + 1)) or any(self.inner_bn[i : j + 1]):
            return None
        if key not in self.cache:
            start, stop = self.units[i][0], self.units[j][1]
            profile = self.model.profile(start, stop)
            self.cache[key] = self.model.best_sub_batch(profile, self.batch, self.capacity)
        return self.cache[key]

    def tiled_cost(self, i):
        if ("tiled", i) in self.cache:
            return self.cache[("tiled", i)]
        start, stop = self.units[i]
        total = 0
        for p in range(start, stop):
            total += self.model.group_traffic(
                self.model.profile(p, p + 1), self.batch, self.batch, None
            ).total
        self.cache[("tiled", i)] = total
        return total

    def alone(self, i):
        """Cheapest way to run unit i by itself: as a group, or tiled layer by layer (None = tiled)."""
        group = self.cost(i, i)
        tiled = self.tiled_cost(i)
        if group is None or tiled < group.total:
            return tiled, None
        return group.total, group.sub_batch


def _finish(name, network, batch, capacity, model, segments, coster):
    groups, tiled = [], set()
    for i, j, sub_batch in segments:
        start, stop = coster.units[i][0], coster.units[j][1]
        if start == 1:
            start = 0  # the input layer rides with the first group (wavecore.golden.schedule covers every layer)
        if sub_batch is None:  # whole-batch unit executed layer by layer (tiled)
            tiled.add(len(groups))
            sub_batch = batch
        groups.append((tuple(model.names[start:stop]), sub_batch))
    traffic = evaluate(
        network, groups, batch, capacity=capacity, options=model.options, name=name, model=model, tiled=tiled
    )
    return Plan(name, network, batch, capacity, groups, tiled, traffic)


def _check(batch, capacity):
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ValueError(f"capacity must be a positive number of bytes, not {capacity!r}")


def plan_greedy(
    network, batch: int, capacity: int, *, options: TrafficOptions | None = None, model=None
) -> Plan:
    """Greedy MBS grouping (section 1.3 steps 1-3)."""
    _check(batch, capacity)
    model = _model(network, options, model)
    coster = _Coster(network, model, batch, capacity)
    floor = model.options.min_sub_batch
    segments = []
    count = len(coster.units)
    i = 0
    while i < count:
        current = coster.cost(i, i)
        if current is None:
            segments.append((i, i, None))
            i += 1
            continue
        current_total, current_sub_batch = coster.alone(i)
        j = i
        while j + 1 < count:
            extended = coster.cost(i, j + 1)
            if extended is None or extended.sub_batch < floor:
                break
            if extended.total > current_total + coster.alone(j + 1)[0]:
                break
            current_total, current_sub_batch, j = extended.total, extended.sub_batch, j + 1
        segments.append((i, j, current_sub_batch))
        i = j + 1
    return _finish("mbs_greedy", network, batch, capacity, model, segments, coster)


def plan_optimal(
    network, batch: int, capacity: int, *, options: TrafficOptions | None = None, model=None
) -> Plan:
    """Optimal contiguous grouping by dynamic programming for the same cost model as :func:`plan_greedy`."""
    _check(batch, capacity)
    model = _model(network, options, model)
    coster = _Coster(network, model, batch, capacity)
    count = len(coster.units)
    floor = model.options.min_sub_batch
    best = [0] + [None] * count
    choice = [None] * (count + 1)
    for j in range(count):
        if best[j] is None:
            continue
        # groups starting at unit j
        candidate = best[j] + coster.tiled_cost(j)
        if best[j + 1] is None or candidate < best[j + 1]:
            best[j + 1], choice[j + 1] = candidate, (j, j, None)
        for k in range(j, count):
            group = coster.cost(j, k)
            if group is None:
                break  # live sets only grow as a group extends
            if k > j and group.sub_batch < floor:
                continue
            candidate = best[j] + group.total
            if best[k + 1] is None or candidate < best[k + 1]:
                best[k + 1], choice[k + 1] = candidate, (j, k, group.sub_batch)
    segments = []
    k = count
    while k > 0:
        j, end, sub_batch = choice[k]
        segments.append((j, end, sub_batch))
        k = j
    return _finish("mbs_optimal", network, batch, capacity, model, segments[::-1], coster)
