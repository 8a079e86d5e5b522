"""``wavecore train --numerics int8|int16`` with the on-chip loss and SGD (default) or the host versions
(``--loss host``, ``--sgd host``): still learns, and bad choices give one line and status 2."""

from __future__ import annotations

import re

import pytest

from scripts.cli import main


def _losses(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    return out, [float(v) for v in re.findall(r"step \d+: loss ([0-9.]+)", out)]


@pytest.mark.parametrize("numerics", ["int16", "int8"])
def test_integer_training_with_on_chip_loss_and_sgd_learns(numerics, capsys):
    out, losses = _losses(capsys, ["train", "--network", "tiny_mobilenet", "--batch", "8", "--steps", "6",
                                   "--lr", "0.1", "--numerics", numerics])
    assert f"numerics {numerics}, loss integer, sgd integer" in out
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.2  # measured: 2.35 -> 2.09 (int8), 2.37 -> 1.84


def test_host_loss_and_sgd_flags(capsys):
    out, losses = _losses(capsys, ["train", "--network", "tiny_mobilenet", "--batch", "8", "--steps", "4",
                                   "--lr", "0.1", "--numerics", "int16", "--loss", "host", "--sgd", "host"])
    assert "numerics int16, loss host, sgd host" in out
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--numerics", "int8", "--loss", "cpu"], "--loss must be one of integer, host, not 'cpu'"),
        (["--numerics", "int8", "--sgd", "fpga"], "--sgd must be one of integer, host, not 'fpga'"),
        (["--numerics", "float32", "--sgd", "host"],
         "--sgd applies to the integer numerics (int16, int8) only, not --numerics float32"),
        (["--numerics", "int16", "--lr", "20"], "--lr: lr must be at most 16 (unsigned 24-bit Q.20), not 20.0"),
        (["--numerics", "int16", "--weight-decay", "1e-9"],
         "--weight-decay: weight_decay must be at least 4.76837e-07 (it rounds to 0 on Q.20), not 1e-09"),
    ],
)
def test_bad_unit_choices_give_one_line_and_status_2(args, message, capsys):
    assert main(["train", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err and captured.out == ""
