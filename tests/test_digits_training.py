"""Integer training learns on real data: the short, default-tier version of benchmarks/digits_training.py
(scikit-learn's bundled 8x8 digits, configs/networks/digits_cnn.yaml, int16 with the on-chip loss and SGD).
The full benchmark and its figures: docs/benchmarks.md ("Integer training on the 8x8 digits")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "digits_training.py"
_SPEC = importlib.util.spec_from_file_location("digits_training", _PATH)
digits_training = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(digits_training)


def test_fixed_split_is_seeded_and_disjoint():
    data = digits_training.load_digits_split(0)
    assert data.train_x.shape == (1347, 1, 8, 8) and data.test_x.shape == (450, 1, 8, 8)
    assert data.train_x.min() == 0.0 and data.train_x.max() == 1.0
    again = digits_training.load_digits_split(0)
    assert np.array_equal(again.test_y, data.test_y)
    train_rows = {row.tobytes() for row in data.train_x}
    assert sum(row.tobytes() in train_rows for row in data.test_x) < 10  # the set has a few duplicate images


def test_int16_with_on_chip_loss_and_sgd_learns_the_digits_in_200_steps():
    """201 steps of batch 16 (2.4 epochs): chance is 10 %; measured 68.2, 86.7, 93.8 % after 67, 134, 201 steps
    (threshold 85 % at the end)."""
    data = digits_training.load_digits_split(0)
    accuracies = digits_training.train("int16", data, epochs=3, batch=16, steps=200 // 3 + 1,
                                       optimizer=digits_training.SGD(lr=0.05, momentum=0.9))
    assert accuracies[-1] >= 0.85, accuracies
