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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.network import load_network
from golden.numerics import INTEGER_PRESETS
from golden.train import SGD, Trainer, init_params, init_state

NETWORK = Path(__file__).resolve().parent.parent / "configs" / "networks" / "digits_cnn.yaml"
TEST_IMAGES = 450


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


def accuracy(trainer: Trainer, params, state, x, y) -> float:
    logits = trainer.predict(params, state, x)
    return float((np.asarray(logits).argmax(axis=1) == y).mean())


def train(mode, data: Digits, *, epochs: int, batch: int, optimizer: SGD, seed: int = 0, steps=None,
          network=None, report=None) -> list[float]:
    """Held-out accuracy after each epoch (``steps`` stops early: one "epoch" of that many steps)."""
    network = network or load_network(NETWORK)
    numerics = INTEGER_PRESETS.get(mode, mode) if isinstance(mode, str) else mode
    dtype = np.float32 if mode == "float32" else np.float64
    trainer = Trainer(network, numerics=numerics, optimizer=optimizer)
    params, state = init_params(network, seed=seed, dtype=dtype), init_state(network, dtype=dtype)
    rng = np.random.default_rng(seed)
    accuracies = []
    for epoch in range(1, epochs + 1):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="float32,int16,int8")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_digits_split(args.seed)
    optimizer = SGD(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    print(f"digits: {len(data.train_x)} training / {len(data.test_x)} test images, batch {args.batch}, "
          f"{optimizer}")
    for mode in args.modes.split(","):
        start = time.perf_counter()

        def report(epoch, value, loss, mode=mode):
            print(f"{mode:8s} epoch {epoch:2d}: test accuracy {100 * value:5.1f} %  (last loss {loss:.4f})")
            sys.stdout.flush()

        train(mode, data, epochs=args.epochs, batch=args.batch, optimizer=optimizer, seed=args.seed, report=report)
        print(f"{mode:8s} {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
