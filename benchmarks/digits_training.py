"""Integer training learns on real data: scikit-learn's bundled 8x8 digits (issue 11).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/digits_training.py [--epochs 12] [--modes float32,int16,int8]``.
Trains ``configs/networks/digits_cnn.yaml`` (1-channel CNN) with the golden model's SGD step in each
numerics mode from the same initial parameters and the same mini-batch order; the integer modes use the
on-chip loss and SGD (:class:`golden.numerics.LossArithmetic`, :class:`golden.numerics.SgdArithmetic`).
Prints the held-out accuracy after every epoch (fixed split: 1,347 training / 450 test images, seed 0).
The images (integers 0..16) are scaled by 1/16 into [0, 1], exactly representable on every activation grid
with at least 4 fractional bits.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from golden.network import load_network
from golden.numerics import INTEGER_PRESETS
from golden.train import SGD, Trainer, _FloatKernels, init_params, init_state

NETWORK = Path(__file__).resolve().parent.parent / "configs" / "networks" / "digits_cnn.yaml"
TEST_IMAGES = 450
#: The emulated per-tensor power-of-two scale modes and their integer widths.
PER_TENSOR_MODES = {"int8-per-tensor": 8, "int16-per-tensor": 16}


@dataclass(frozen=True)
class Digits:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def load_digits_split(seed: int = 0) -> Digits:
    """The 1,797 digits as (N, 1, 8, 8) float64 in [0, 1], split by a seeded permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:TEST_IMAGES], order[TEST_IMAGES:]
    return Digits(x[train], digits.target[train], x[test], digits.target[test])


def calibrated_grids(preset: str, data: Digits, *, epochs: int, batch: int, optimizer: SGD, seed: int = 0,
                     headroom: int = 1):
    """``preset`` with per-class power-of-two grids chosen from a float64 run instead of the preset's.

    For each tensor class (activations, weights, activation gradients, weight gradients) the largest
    magnitude seen over ``epochs`` epochs of float64 training gives
    ``frac = floor(log2(max_int / largest)) - headroom``: the finest power-of-two grid that holds the class
    with ``headroom`` bits to spare. Fixed for the whole run, like the presets' grids; only how they are
    chosen differs.
    """
    network = load_network(NETWORK)
    trainer = Trainer(network, numerics="float64", optimizer=optimizer)
    params, state = init_params(network, seed=seed), init_state(network)
    largest = dict.fromkeys(("activation", "weight", "grad", "weight_grad"), 0.0)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(data.train_x)) for _ in range(epochs)]
    batches = [order[start : start + batch] for order in orders for start in range(0, len(order) - batch + 1, batch)]
    for chosen in batches:
        result = trainer.step(params, state, data.train_x[chosen], data.train_y[chosen])
        seen = {
            "activation": [v for k, v in result.activations.items() if k != network.layers[-1].name],
            "weight": [v for entry in params.values() for v in entry.values()],
            "grad": list(result.input_grads.values()),
            "weight_grad": [v for entry in result.grads.values() for v in entry.values()],
        }
        for name, tensors in seen.items():
            largest[name] = max(largest[name], *(float(np.abs(t).max()) for t in tensors))
        params, state = result.params, result.state
    base = INTEGER_PRESETS[preset]
    top = base.operand.max
    fracs = {name: max(0, int(np.floor(np.log2(top / value))) - headroom) for name, value in largest.items()}
    return replace(base, activation_frac=fracs["activation"], weight_frac=fracs["weight"],
                   grad_frac=fracs["grad"], weight_grad_frac=fracs["weight_grad"])


class PerTensorScaleKernels(_FloatKernels):
    """What int8 would need (a measurement, not the hardware mode): every tensor the integer mode rounds
    (inputs, parameters, layer outputs, dlogits, activation and weight gradients, updated weights and
    velocities) is rounded to ``width``-bit integers with its own power-of-two scale chosen from its
    largest magnitude at that step (``2**floor(log2(max_int / largest))``, round half to even). Products and
    sums run in float64, which is exact for 8-bit operands at these sizes; the loss and the SGD update run
    in float64 on the rounded values, their outputs rounded again."""

    def __init__(self, width: int = 8):
        super().__init__(np.float64)
        self.top = (1 << (width - 1)) - 1

    def round(self, values):
        values = np.asarray(values, dtype=np.float64)
        largest = float(np.abs(values).max()) if values.size else 0.0
        if largest == 0.0:
            return values
        scale = 2.0 ** np.floor(np.log2(self.top / largest))
        return np.clip(np.rint(values * scale), -self.top - 1, self.top) / scale

    def cast(self, array):
        return self.round(array)

    def prepare_params(self, params):
        return {name: {key: self.round(value) for key, value in entry.items()} for name, entry in params.items()}

    def conv_forward(self, layer, x, weight, bias):
        return self.round(super().conv_forward(layer, x, weight, bias))

    def linear_forward(self, layer, x, weight, bias):
        return self.round(super().linear_forward(layer, x, weight, bias))

    def _backward(self, results):
        dx, dw, db = results
        return (None if dx is None else self.round(dx)), dw, db  # dw, db rounded in finish_grads

    def conv_backward(self, layer, dy, x, weight, need_dx, acc_weight=None):
        return self._backward(super().conv_backward(layer, dy, x, weight, need_dx))

    def linear_backward(self, layer, dy, x, weight, need_dx, acc_weight=None):
        return self._backward(super().linear_backward(layer, dy, x, weight, need_dx))

    def loss_backward(self, probabilities, labels, batch):
        return self.round(super().loss_backward(probabilities, labels, batch))

    def finish_grads(self, grads):
        return {name: {key: self.round(value) for key, value in entry.items()} for name, entry in grads.items()}

    def sgd(self, optimizer, param, grad, velocity):
        param, velocity = optimizer.update(param, grad, velocity)
        return self.round(param), (None if velocity is None else self.round(velocity))


def accuracy(trainer: Trainer, params, state, x, y) -> float:
    logits = trainer.predict(params, state, x)
    return float((np.asarray(logits).argmax(axis=1) == y).mean())


def train(mode, data: Digits, *, epochs: int, batch: int, optimizer: SGD, seed: int = 0, steps=None,
          network=None, report=None, decay_epochs=()) -> list[float]:
    """Held-out accuracy after each epoch (``steps`` stops early: one "epoch" of that many steps); the
    learning rate is multiplied by 0.1 from each epoch in ``decay_epochs`` on."""
    network = network or load_network(NETWORK)
    numerics = INTEGER_PRESETS.get(mode, mode) if isinstance(mode, str) else mode
    dtype = np.float32 if mode == "float32" else np.float64
    per_tensor = PER_TENSOR_MODES.get(mode) if isinstance(mode, str) else None
    if per_tensor:
        numerics, dtype = "float64", np.float64
    trainer = Trainer(network, numerics=numerics, optimizer=optimizer)
    if per_tensor:
        trainer.kernels = PerTensorScaleKernels(per_tensor)
    params, state = init_params(network, seed=seed, dtype=dtype), init_state(network, dtype=dtype)
    rng = np.random.default_rng(seed)
    accuracies = []
    for epoch in range(1, epochs + 1):
        if epoch in decay_epochs:
            trainer.optimizer = replace(trainer.optimizer, lr=trainer.optimizer.lr * 0.1)
        order = rng.permutation(len(data.train_x))
        starts = range(0, len(order) - batch + 1, batch)
        for count, start in enumerate(starts):
            if steps is not None and count >= steps:
                break
            chosen = order[start : start + batch]
            result = trainer.step(params, state, data.train_x[chosen].astype(dtype), data.train_y[chosen])
            params, state = result.params, result.state
        accuracies.append(accuracy(trainer, params, state, data.test_x.astype(dtype), data.test_y))
        if report:
            report(epoch, accuracies[-1], result.loss)
    return accuracies


def _numerics(mode: str, data: Digits, args, optimizer: SGD, seed: int):
    """A --modes entry -> what :func:`train` takes."""
    if "@" in mode:  # fixed grids given by hand: int8@fa/fw/fg/fwg
        preset, fracs = mode.split("@")
        fa, fw, fg, fwg = (int(value) for value in fracs.split("/"))
        return replace(INTEGER_PRESETS[preset], activation_frac=fa, weight_frac=fw, grad_frac=fg,
                       weight_grad_frac=fwg)
    if mode.endswith("-calibrated"):
        numerics = calibrated_grids(mode.removesuffix("-calibrated"), data, epochs=args.epochs, batch=args.batch,
                                    optimizer=optimizer, seed=seed)
        print(f"{mode}: {numerics.describe()}, Q.{numerics.weight_grad_frac} weight grad")
        return numerics
    return mode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="float32,int16,int8,int8-per-tensor",
                        help="comma-separated: float32, float64, int16, int8 (presets); int8@fa/fw/fg/fwg (fixed "
                        "grids by hand); int8-calibrated (grids from a float64 run); int8-per-tensor, "
                        "int16-per-tensor (a power-of-two scale per tensor and step, emulated)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (each: split, initialisation, order)")
    parser.add_argument("--decay-epochs", default="", help="comma-separated epochs from which lr is 10x smaller")
    args = parser.parse_args()
    decay_epochs = tuple(int(value) for value in args.decay_epochs.split(",") if value)
    seeds = [int(value) for value in args.seeds.split(",")]
    optimizer = SGD(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    print(f"digits: {len(load_digits_split(0).train_x)} training / {TEST_IMAGES} test images, batch "
          f"{args.batch}, {optimizer}, lr x0.1 from epochs {list(decay_epochs)}, seeds {seeds}")
    for mode in args.modes.split(","):
        finals = []
        for seed in seeds:
            data = load_digits_split(seed)
            start = time.perf_counter()
            numerics = _numerics(mode, data, args, optimizer, seed)

            def report(epoch, value, loss, mode=mode, seed=seed):
                print(f"{mode:8s} seed {seed} epoch {epoch:2d}: test accuracy {100 * value:5.1f} %  "
                      f"(last loss {loss:.4f})")
                sys.stdout.flush()

            finals.append(train(numerics, data, epochs=args.epochs, batch=args.batch, optimizer=optimizer, seed=seed,
                                report=report, decay_epochs=decay_epochs)[-1])
            print(f"{mode:8s} seed {seed}: {time.perf_counter() - start:.1f} s")
        print(f"{mode:8s} final accuracy per seed {[round(100 * value, 1) for value in finals]}, mean "
              f"{100 * np.mean(finals):.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
