"""One SGD training step over a network DAG, in any execution order (``mbs_bn.md`` §1.4-1.5, §2.3, §6).

:func:`train_step` runs forward, loss, backward and the SGD update of a :class:`~golden.network.Network`
under a :class:`~golden.schedule.Schedule` (baseline, mini-batch serialisation, BN/GN fission-and-fusion)
and a numerics mode (``float64``, ``float32`` or :class:`~golden.numerics.IntegerTraining`). The API is
documented in ``docs/golden.md`` ("Training step").

Activations and gradients live in whole-mini-batch arrays (the golden model's "DRAM"); a group writes its
sub-batch slices into them. Every per-sample computation uses the same kernels whatever the sub-batch, so
with GN the serialised activations and input gradients are bit-identical to the baseline; only sums over
samples (weight, gamma and beta gradients, the loss) are re-associated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden import layers as L
from golden.integer import ExactKernels, IntegerKernels
from golden.network import Network
from golden.numerics import IntegerTraining, resolve_numerics
from golden.schedule import Schedule

__all__ = ["SGD", "StepResult", "Trainer", "init_params", "init_state", "train_step"]


@dataclass(frozen=True)
class SGD:
    """PyTorch's ``torch.optim.SGD`` (dampening 0, no Nesterov).

    ``d = g + weight_decay * p``; ``v = d`` on the first step, else ``v = momentum * v + d``; ``p -= lr * v``.
    """

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self):
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")

    def update(self, param, grad, velocity):
        """Returns ``(new_param, new_velocity)``; ``velocity`` is None before the first step."""
        step = grad + self.weight_decay * param if self.weight_decay else grad
        if self.momentum:
            velocity = step if velocity is None else self.momentum * velocity + step
            step = velocity
        return param - self.lr * step, velocity


@dataclass
class StepResult:
    """What one training step produced.

    Attributes
    ----------
    loss : float
        Mean softmax cross-entropy over the mini-batch.
    loss_q : int or None
        The integer mode's on-chip loss: the mean on Q.loss_frac as the core writes it to DRAM
        (``loss = loss_q * 2**-loss_frac``); None for the float modes and the host loss.
    grads : dict
        ``{layer: {"weight": array, "bias": array}}`` for every trainable layer.
    params, state : dict
        Updated parameters and state (BN running statistics, SGD velocities).
    activations : dict
        ``{layer: (N, ...) output}`` of every layer (fused norm/ReLU outputs materialised for reporting).
    input_grads : dict
        ``{layer: (N, ...) gradient of the loss w.r.t. the layer's output}`` (not for the input layer
        unless ``input_grad=True``).
    losses : ndarray
        Per-sample losses.
    stash_bytes : int
        Bytes kept for the backward pass under the schedule's stash policy (whole mini-batch).
    """

    loss: float
    grads: dict
    params: dict
    state: dict
    activations: dict
    input_grads: dict
    losses: np.ndarray
    stash_bytes: int = 0
    numerics: object = None
    loss_q: int | None = None
    extras: dict = field(default_factory=dict)


def init_params(network: Network, *, seed: int = 0, dtype=np.float64) -> dict:
    """Kaiming-uniform weights as PyTorch's defaults (conv/linear), gamma 1 and beta 0 for norms."""
    rng = np.random.default_rng(seed)
    params = {}
    for layer in network.layers:
        if layer.weight_shape is None:
            continue
        if layer.op in ("conv2d", "linear"):
            fan_in = int(np.prod(layer.weight_shape[1:]))
            bound = 1.0 / np.sqrt(fan_in)
            entry = {"weight": rng.uniform(-bound, bound, layer.weight_shape).astype(dtype)}
            if layer.bias_shape is not None:
                entry["bias"] = rng.uniform(-bound, bound, layer.bias_shape).astype(dtype)
        else:
            entry = {"weight": np.ones(layer.weight_shape, dtype), "bias": np.zeros(layer.bias_shape, dtype)}
        params[layer.name] = entry
    return params


def init_state(network: Network, *, dtype=np.float64) -> dict:
    """BN running statistics (mean 0, var 1, as PyTorch) and empty SGD velocities."""
    running = {}
    for layer in network.layers:
        if layer.op == "batchnorm":
            channels = layer.out_shape[0]
            running[layer.name] = {
                "running_mean": np.zeros(channels, dtype),
                "running_var": np.ones(channels, dtype),
                "num_batches_tracked": 0,
            }
    return {"running": running, "velocity": {}}


class _FloatKernels(ExactKernels):
    """The float (float32/float64) arithmetic: straight calls into :mod:`golden.layers`."""

    integer = False

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    carries_accumulator = False

    def cast(self, array):
        return np.asarray(array, dtype=self.dtype)

    def prepare_params(self, params):
        return {
            name: {key: np.asarray(value, dtype=self.dtype) for key, value in entry.items()}
            for name, entry in params.items()
        }

    def conv_forward(self, layer, x, weight, bias):
        p = layer.params
        return L.conv2d_forward(x, weight, bias, stride=p["stride"], padding=p["padding"], groups=p["groups"])

    def conv_backward(self, layer, dy, x, weight, need_dx, acc_weight=None):
        p = layer.params
        return L.conv2d_backward(
            dy, x, weight, stride=p["stride"], padding=p["padding"], groups=p["groups"], bias=p["bias"]
        )

    def linear_forward(self, layer, x, weight, bias):
        return L.linear_forward(x, weight, bias)

    def linear_backward(self, layer, dy, x, weight, need_dx, acc_weight=None):
        return L.linear_backward(dy, x, weight, bias=layer.params["bias"])

    def relu_forward(self, layer, x):
        return L.relu_forward(x, layer.params["max_value"])

    def relu_backward(self, layer, dy, x):
        return L.relu_backward(dy, x, layer.params["max_value"])

    def avgpool_forward(self, layer, x):
        p = layer.params
        return L.avgpool_forward(x, kernel=p["kernel"], stride=p["stride"], padding=p["padding"])

    def avgpool_backward(self, layer, dy, x_shape):
        p = layer.params
        return L.avgpool_backward(
            dy,
            np.empty(x_shape, dtype=dy.dtype),
            kernel=p["kernel"],
            stride=p["stride"],
            padding=p["padding"],
        )

    def global_avgpool_forward(self, layer, x):
        return L.global_avgpool_forward(x)

    def global_avgpool_backward(self, layer, dy, x_shape):
        return np.broadcast_to(dy / np.asarray(x_shape[2] * x_shape[3], dtype=dy.dtype), x_shape).copy()

    def add_forward(self, layer, inputs):
        return L.add_forward(*inputs)

    def loss_forward(self, logits, labels):
        return L.softmax_cross_entropy(logits, labels)

    def loss_backward(self, probabilities, labels, batch):
        return L.softmax_cross_entropy_backward(probabilities, labels, batch)

    def loss_value(self, losses):
        return float(losses.mean()), None, losses

    def accumulate(self, total, part):
        return part if total is None else total + part

    # textbook normalisation
    def batchnorm_forward(self, layer, x, gamma, beta):
        return L.batchnorm_forward(x, gamma, beta, eps=layer.params["eps"])

    def batchnorm_backward(self, layer, dy, x, gamma):
        return L.batchnorm_backward(dy, x, gamma, eps=layer.params["eps"])

    def groupnorm_forward(self, layer, x, gamma, beta):
        return L.groupnorm_forward(x, gamma, beta, groups=layer.params["groups"], eps=layer.params["eps"])

    def groupnorm_backward(self, layer, dy, x, gamma):
        return L.groupnorm_backward(dy, x, gamma, groups=layer.params["groups"], eps=layer.params["eps"])

    # fission/fusion normalisation
    def fused_constants(self, layer, moments, gamma, beta):
        mean, var = moments
        groups = layer.params.get("groups")
        a, c = L.fused_norm_affine_constants(
            mean, var, gamma, beta, kind=layer.op, groups=groups, eps=layer.params["eps"]
        )
        return {"mean": mean, "var": var, "a": a, "c": c}

    def fused_read(self, x, constants, relu, max_value):
        return L.fused_norm_read(x, constants["a"], constants["c"], relu=relu, max_value=max_value)

    def fused_relu_mask_backward(self, dz, x, constants, max_value):
        pre = L.fused_norm_read(x, constants["a"], constants["c"], relu=False)
        mask = pre > 0 if max_value is None else (pre > 0) & (pre < max_value)
        return dz * mask

    def fused_backward(self, layer, dy, x, constants, gamma):
        kind = layer.op
        axes = (0, 2, 3) if kind == "batchnorm" else (2, 3)
        groups = layer.params.get("groups")
        centred = x - L._expand(constants["mean"], x, kind, groups)
        r1, r2 = dy.sum(axis=axes), (dy * centred).sum(axis=axes)
        count = (x.shape[0] if kind == "batchnorm" else x.shape[1] // groups) * x.shape[2] * x.shape[3]
        k1, k2, k3, dgamma, dbeta = L.fused_norm_backward_constants(
            r1,
            r2,
            constants["mean"],
            constants["var"],
            gamma,
            count=count,
            kind=kind,
            groups=groups,
            eps=layer.params["eps"],
        )
        return L.fused_norm_input_gradient(dy, x, k1, k2, k3), dgamma, dbeta

    def moments(self, layer, x):
        """Statistics of a whole chunk (BN: per channel, GN: per (n, group))."""
        moments = L.NormMoments(layer.op, layer.params.get("groups"))
        moments.write(x)
        return moments.finish()

    def sgd(self, optimizer, param, grad, velocity):
        return optimizer.update(param, grad, velocity)


class Trainer:
    """Runs training steps of ``network`` under ``schedule`` with ``numerics``.

    Parameters
    ----------
    network : Network
    schedule : Schedule or None
        ``None`` means the baseline for the batch of each step.
    numerics : str or IntegerTraining
        ``"float64"`` (default), ``"float32"`` or an :class:`~golden.numerics.IntegerTraining`.
    optimizer : SGD
    """

    def __init__(
        self,
        network: Network,
        *,
        schedule: Schedule | None = None,
        numerics="float64",
        optimizer: SGD | None = None,
    ):
        self.network = network
        self.schedule = schedule
        self.numerics = resolve_numerics(numerics)
        self.optimizer = optimizer or SGD()
        if isinstance(self.numerics, IntegerTraining):
            self.kernels = IntegerKernels(self.numerics)
        else:
            self.kernels = _FloatKernels(self.numerics)

    def step(self, params, state, x, labels, *, input_grad: bool = False) -> StepResult:
        return _Step(self, params, state, x, labels, input_grad).run()

    def predict(self, params, state, x) -> np.ndarray:
        """The logits of ``x`` from a forward pass in layer order with this trainer's numerics (integer mode:
        int64 on Q.activation_frac). Norms use the batch's statistics, as in training."""
        batch = np.asarray(x).shape[0]
        step = _Step(self, params, state, x, np.zeros(batch, dtype=np.int64), False,
                     schedule=Schedule.baseline(self.network, batch))
        return step.logits()


def train_step(
    network, params, state, x, labels, *, schedule=None, numerics="float64", optimizer=None, input_grad=False
) -> StepResult:
    """One SGD step; see :class:`Trainer` and :class:`StepResult`."""
    trainer = Trainer(network, schedule=schedule, numerics=numerics, optimizer=optimizer)
    return trainer.step(params, state, x, labels, input_grad=input_grad)


class _Step:
    """The state of one step: whole-batch tensors, gradient accumulators, fused norm constants."""

    def __init__(self, trainer: Trainer, params, state, x, labels, input_grad, schedule=None):
        self.net = trainer.network
        self.k = trainer.kernels
        self.optimizer = trainer.optimizer
        self.params = self.k.prepare_params(params)
        self.state = state
        self.labels = np.asarray(labels)
        self.x = self.k.cast(x)
        self.batch = self.x.shape[0]
        if self.x.shape[1:] != self.net.input_shape:
            raise ValueError(
                f"input must be (N, {', '.join(map(str, self.net.input_shape))}), not {self.x.shape}"
            )
        if self.labels.shape != (self.batch,):
            raise ValueError(f"labels must have shape ({self.batch},), not {self.labels.shape}")
        if not self.net.has_loss:
            raise ValueError(f"network {self.net.name!r} has no loss layer; training needs one")
        self.schedule = (schedule or trainer.schedule or Schedule.baseline(self.net, self.batch)).validate(
            self.net, self.batch
        )
        self.input_grad = input_grad
        self.fusion = self.schedule.norm_fusion
        self.whole = self.schedule.whole_batch_layers(self.net, self.batch)
        self.acts: dict[str, np.ndarray] = {}
        self.grads_act: dict[str, np.ndarray] = {}
        self.grads: dict[str, dict] = {}
        self.constants: dict[str, dict] = {}  # fused norms: per-chunk constants keyed by start sample
        self.running_updates: list = []
        self.losses = None  # per-sample losses (float, or int64 on the integer loss grid)
        self.loss_inputs = None  # what the loss backward needs: probabilities (float, host) or the logits
        self._plan_fusion()
        self._plan_stash()

    # -- planning ------------------------------------------------------------------------------------------
    def _plan_fusion(self):
        """Fused norms never materialise their output; a ReLU that is a fused norm's only consumer is
        applied on read too (``mbs_bn.md`` §2.3)."""
        self.virtual: dict[str, tuple[str, bool, object]] = {}  # tensor -> (norm, relu?, max_value)
        if not self.fusion:
            return
        for layer in self.net.layers:
            if layer.op not in ("batchnorm", "groupnorm"):
                continue
            self.virtual[layer.name] = (layer.name, False, None)
            consumers = self.net.consumers(layer.name)
            if len(consumers) == 1 and self.net.layer(consumers[0]).op == "relu":
                relu = self.net.layer(consumers[0])
                self.virtual[relu.name] = (layer.name, True, relu.params["max_value"])

    def _plan_stash(self):
        reads = {self.net.layers[-1].inputs[0]}
        for layer in self.net.layers:
            if layer.op in ("conv2d", "linear", "batchnorm", "groupnorm", "maxpool"):
                reads.update(layer.inputs)
            if layer.op == "relu":
                reads.add(layer.inputs[0] if layer.name not in self.virtual else layer.name)
        self.stashed = None if self.schedule.stash == "all" else reads

    # -- tensor access -------------------------------------------------------------------------------------
    def read(self, name, start, stop):
        """A tensor's slice; fused (virtual) tensors are recomputed from the pre-norm tensor on read."""
        if name in self.virtual:
            norm, relu, max_value = self.virtual[name]
            source = self.net.layer(norm).inputs[0]
            return self._piecewise(
                norm,
                start,
                stop,
                lambda lo, hi, constants: self.k.fused_read(
                    self.read(source, lo, hi), constants, relu, max_value
                ),
            )
        return self.acts[name][start:stop]

    def _piecewise(self, norm, start, stop, compute):
        """Apply ``compute(lo, hi, constants)`` over [start, stop), split where the norm's constants were
        computed per sub-batch (GN, sub-batch BN) in a group whose sub-batches differ from the reader's."""
        pieces = []
        for (first, last), constants in sorted(self.constants[norm], key=lambda item: item[0]):
            lo, hi = max(first, start), min(last, stop)
            if lo >= hi:
                continue
            if constants["a"].ndim > 1:  # per sample
                constants = {k: v[lo - first : hi - first] for k, v in constants.items()}
            pieces.append(compute(lo, hi, constants))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def write(self, name, start, stop, value):
        if name in self.virtual:
            return
        if name not in self.acts:
            self.acts[name] = np.empty((self.batch, *value.shape[1:]), dtype=value.dtype)
        self.acts[name][start:stop] = value

    def add_grad(self, name, start, stop, value):
        if name == self.net.layers[0].name and not self.input_grad:
            return
        if name not in self.grads_act:
            self.grads_act[name] = np.zeros((self.batch, *value.shape[1:]), dtype=value.dtype)
        self.grads_act[name][start:stop] += value

    def grad(self, name, start, stop):
        return self.grads_act[name][start:stop]

    def add_param_grad(self, layer, key, value):
        entry = self.grads.setdefault(layer, {})
        if (
            key == "weight"
            and self.k.carries_accumulator
            and self.net.layer(layer).op in ("conv2d", "linear")
        ):
            entry[key] = value  # the GEMM continued from the carried accumulator (integer mode)
            return
        entry[key] = self.k.accumulate(entry.get(key), value)

    def _carry(self, layer):
        """The weight-gradient accumulator so far (integer mode continues the GEMM from it)."""
        return self.grads.get(layer, {}).get("weight") if self.k.carries_accumulator else None

    def _constants(self, norm, start, stop):
        for (first, last), constants in self.constants[norm]:
            if first <= start and stop <= last:
                if constants["a"].ndim == 1:  # per channel (BN): shared by every sample
                    return constants
                return {k: v[start - first : stop - first] for k, v in constants.items()}
        raise AssertionError(f"no constants for {norm} [{start}, {stop})")

    # -- the step ------------------------------------------------------------------------------------------
    def run(self) -> StepResult:
        self.acts[self.net.layers[0].name] = self.x
        for group in self.schedule.groups:
            chunks = group.sub_batches(self.batch)
            for name in group.layers:
                if name in self.whole:
                    self.forward(self.net.layer(name), 0, self.batch)
            for start, stop in chunks:
                for name in group.layers:
                    if name not in self.whole and self.net.layer(name).op != "input":
                        self.forward(self.net.layer(name), start, stop)
        loss = self.k.loss_value(self.losses)
        for group in reversed(self.schedule.groups):
            for start, stop in group.sub_batches(self.batch):
                for name in reversed(group.layers):
                    if name not in self.whole:
                        self.backward(self.net.layer(name), start, stop)
            for name in reversed(group.layers):
                if name in self.whole:
                    self.backward(self.net.layer(name), 0, self.batch)
        return self._finish(loss)

    def logits(self) -> np.ndarray:
        """Forward only, whole batch in layer order: the loss layer's input."""
        self.acts[self.net.layers[0].name] = self.x
        for layer in self.net.layers[1:-1]:
            self.forward(layer, 0, self.batch)
        return self.read(self.net.layers[-1].inputs[0], 0, self.batch)

    def forward(self, layer, start, stop):
        op = layer.op
        k = self.k
        if op == "input":
            return
        if op == "loss":
            logits = self.read(layer.inputs[0], start, stop)
            losses, saved = k.loss_forward(logits, self.labels[start:stop])
            if self.losses is None:
                self.losses = np.zeros(self.batch, dtype=np.int64 if losses.dtype.kind == "i" else np.float64)
                self.loss_inputs = np.empty((self.batch, logits.shape[1]), dtype=saved.dtype)
            self.losses[start:stop] = losses
            self.loss_inputs[start:stop] = saved
            return
        inputs = [self.read(name, start, stop) for name in layer.inputs]
        x = inputs[0]
        p = self.params.get(layer.name, {})
        if op in ("batchnorm", "groupnorm"):
            if self.fusion:
                # Statistics over the whole tensor in one pass (a BN here always sees the whole batch), so
                # MBS with a boundary at the BN stays bit-exact; the chunked on-write merge the hardware does
                # is layers.NormMoments, checked against this in tests/test_golden_layers.py.
                constants = k.fused_constants(layer, k.moments(layer, x), p["weight"], p["bias"])
                self.constants.setdefault(layer.name, []).append(((start, stop), constants))
                if op == "batchnorm":
                    self.running_updates.append((layer, constants["mean"], constants["var"], stop - start, x))
                return
            if op == "batchnorm":
                y, mean, var = k.batchnorm_forward(layer, x, p["weight"], p["bias"])
                self.running_updates.append((layer, mean, var, stop - start, x))
            else:
                y = k.groupnorm_forward(layer, x, p["weight"], p["bias"])
        elif op == "conv2d":
            y = k.conv_forward(layer, x, p["weight"], p.get("bias"))
        elif op == "linear":
            y = k.linear_forward(layer, x, p["weight"], p.get("bias"))
        elif op == "relu":
            if layer.name in self.virtual:
                return
            y = k.relu_forward(layer, x)
        elif op == "maxpool":
            y = k.maxpool_forward(layer, x)
        elif op == "avgpool":
            y = k.avgpool_forward(layer, x)
        elif op == "global_avgpool":
            y = k.global_avgpool_forward(layer, x)
        elif op == "add":
            y = k.add_forward(layer, inputs)
        elif op == "concat":
            y = np.concatenate(inputs, axis=1)
        elif op == "flatten":
            y = x.reshape(x.shape[0], -1)
        else:
            raise AssertionError(op)
        self.write(layer.name, start, stop, y)

    def backward(self, layer, start, stop):
        op = layer.op
        k = self.k
        if op == "input":
            return
        if op == "loss":
            dlogits = k.loss_backward(self.loss_inputs[start:stop], self.labels[start:stop], self.batch)
            self.add_grad(layer.inputs[0], start, stop, dlogits)
            return
        if layer.name not in self.grads_act:  # e.g. a branch whose gradient never arrived: cannot happen
            raise AssertionError(f"no gradient reached {layer.name}")
        dy = self.grad(layer.name, start, stop)
        p = self.params.get(layer.name, {})
        source = layer.inputs[0]
        need_dx = source != self.net.layers[0].name or self.input_grad
        if op == "conv2d":
            x = self.read(source, start, stop)
            dx, dw, db = k.conv_backward(layer, dy, x, p["weight"], need_dx, self._carry(layer.name))
            self.add_param_grad(layer.name, "weight", dw)
            if db is not None:
                self.add_param_grad(layer.name, "bias", db)
            if need_dx:
                self.add_grad(source, start, stop, dx)
        elif op == "linear":
            x = self.read(source, start, stop)
            dx, dw, db = k.linear_backward(layer, dy, x, p["weight"], need_dx, self._carry(layer.name))
            self.add_param_grad(layer.name, "weight", dw)
            if db is not None:
                self.add_param_grad(layer.name, "bias", db)
            self.add_grad(source, start, stop, dx)
        elif op in ("batchnorm", "groupnorm"):
            x = self.read(source, start, stop)
            if self.fusion:
                dx, dgamma, dbeta = k.fused_backward(
                    layer, dy, x, self._constants(layer.name, start, stop), p["weight"]
                )
            elif op == "batchnorm":
                dx, dgamma, dbeta = k.batchnorm_backward(layer, dy, x, p["weight"])
            else:
                dx, dgamma, dbeta = k.groupnorm_backward(layer, dy, x, p["weight"])
            self.add_param_grad(layer.name, "weight", dgamma)
            self.add_param_grad(layer.name, "bias", dbeta)
            self.add_grad(source, start, stop, dx)
        elif op == "relu":
            if layer.name in self.virtual:
                norm = self.virtual[layer.name][0]
                source_of_norm = self.net.layer(norm).inputs[0]
                dx = self._piecewise(
                    norm,
                    start,
                    stop,
                    lambda lo, hi, constants: k.fused_relu_mask_backward(
                        self.grad(layer.name, lo, hi),
                        self.read(source_of_norm, lo, hi),
                        constants,
                        layer.params["max_value"],
                    ),
                )
            else:
                dx = k.relu_backward(layer, dy, self.read(source, start, stop))
            self.add_grad(source, start, stop, dx)
        elif op == "maxpool":
            self.add_grad(source, start, stop, k.maxpool_backward(layer, dy, self.read(source, start, stop)))
        elif op == "avgpool":
            shape = (stop - start, *layer.in_shapes[0])
            self.add_grad(source, start, stop, k.avgpool_backward(layer, dy, shape))
        elif op == "global_avgpool":
            shape = (stop - start, *layer.in_shapes[0])
            self.add_grad(source, start, stop, k.global_avgpool_backward(layer, dy, shape))
        elif op == "add":
            for name in layer.inputs:
                self.add_grad(name, start, stop, dy)
        elif op == "concat":
            offset = 0
            for name, shape in zip(layer.inputs, layer.in_shapes):
                self.add_grad(name, start, stop, dy[:, offset : offset + shape[0]])
                offset += shape[0]
        elif op == "flatten":
            self.add_grad(source, start, stop, dy.reshape(stop - start, *layer.in_shapes[0]))
        else:
            raise AssertionError(op)

    def _finish(self, loss_value) -> StepResult:
        k = self.k
        loss, loss_q, losses = loss_value
        grads = {name: dict(entry) for name, entry in self.grads.items()}
        grads = k.finish_grads(grads) if hasattr(k, "finish_grads") else grads
        new_params, velocity = {}, dict(self.state.get("velocity", {}))
        for name, entry in self.params.items():
            new_params[name] = {}
            for key, value in entry.items():
                slot = f"{name}.{key}"
                new_params[name][key], velocity[slot] = k.sgd(
                    self.optimizer, value, grads[name][key], velocity.get(slot)
                )
        running = {name: dict(v) for name, v in self.state.get("running", {}).items()}
        updated = {}
        for layer, mean, var, count_samples, x in self.running_updates:
            entry = running[layer.name]
            count = count_samples * x.shape[2] * x.shape[3]
            momentum = layer.params["momentum"]
            entry["running_mean"], entry["running_var"] = L.batchnorm_running_update(
                entry["running_mean"],
                entry["running_var"],
                mean,
                var,
                count,
                momentum,
            )
            if layer.name not in updated:
                entry["num_batches_tracked"] += 1
                updated[layer.name] = True
        activations = {}
        for layer in self.net.layers[:-1]:
            if layer.name in self.virtual:
                norm = self.virtual[layer.name][0]
                ranges = sorted(span for span, _ in self.constants[norm])
                activations[layer.name] = np.concatenate([self.read(layer.name, a, b) for a, b in ranges])
            elif layer.name in self.acts:
                activations[layer.name] = self.acts[layer.name]
        activations[self.net.layers[-1].name] = losses
        stash = 0
        for name, array in self.acts.items():
            if self.stashed is None or name in self.stashed:
                stash += array.nbytes
        return StepResult(
            loss=loss,
            grads=grads,
            params=new_params,
            state={"running": running, "velocity": velocity},
            activations=activations,
            input_grads=dict(self.grads_act),
            losses=np.array(losses, dtype=np.float64),
            stash_bytes=stash,
            numerics=self.k,
            loss_q=loss_q,
        )
