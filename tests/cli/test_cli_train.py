"""``wavecore train`` (scripts/commands/train.py): runs steps, prints losses, checks against the baseline."""

from __future__ import annotations

import re

import pytest

from wavecore.cli import main


def test_train_prints_loss_per_step_and_mbs_matches_baseline(capsys):
    status = main(
        [
            "train",
            "--network",
            "tiny_resnet",
            "--batch",
            "6",
            "--norm",
            "gn",
            "--schedule",
            "mbs",
            "--sub-batch",
            "2",
            "--numerics",
            "float64",
            "--steps",
            "2",
            "--check",
            "baseline",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    steps = re.findall(
        r"step (\d): loss ([0-9.]+)  max\|diff\| vs baseline: loss (\S+), activations (\S+), "
        r"input grads (\S+), weight grads (\S+), params (\S+)",
        out,
    )
    assert [s[0] for s in steps] == ["1", "2"]
    first = steps[0]
    # Step 1 starts from identical parameters: activations and input gradients bit-identical (GN).
    assert float(first[3]) == 0.0 and float(first[4]) == 0.0 and float(first[2]) < 1e-14
    assert float(first[5]) < 1e-12


def test_train_integer_mode_is_bit_identical_under_mbs_and_fusion(capsys):
    status = main(
        [
            "train",
            "--network",
            "tiny_concat",
            "--batch",
            "4",
            "--schedule",
            "mbs-fused",
            "--numerics",
            "int8",
            "--steps",
            "2",
            "--check",
            "baseline",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.count("activations 0, input grads 0, weight grads 0, params 0 (integer LSBs)") == 2


def test_train_loss_falls_on_a_fixed_batch(capsys):
    assert main(["train", "--network", "tiny_mobilenet", "--batch", "8", "--steps", "6", "--lr", "0.1"]) == 0
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", capsys.readouterr().out)]
    assert len(losses) == 6 and losses[-1] < losses[0]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--batch", "0"], "--batch must be a positive integer, not 0"),
        (["--schedule", "fast"], "--schedule must be one of baseline, mbs, fused, mbs-fused, not 'fast'"),
        (["--numerics", "int4"], "--numerics must be one of float64, float32, int16, int8, not 'int4'"),
        (["--network", "resnet19"], "--network: network must be one of resnet18"),
        (
            ["--network", "tiny_resnet", "--input", "1"],
            "--network: layer 'pool': kernel 2 is larger than the padded input (1 + 2*0)",
        ),
        (["--batch", "4", "--sub-batch", "5"], "--sub-batch must be at most --batch (4), not 5"),
        (["--norm", "ln"], "--norm must be one of bn, gn, none, not 'ln'"),
        (["--check", "torch"], "--check must be 'baseline', not 'torch'"),
        (["--steps", "x"], "argument --steps: invalid int value: 'x'"),
        (["--batch", "-1"], "--batch must be a positive integer, not -1"),
        (["--lr", "-1"], "--lr must be a finite number >= 0, not -1.0"),
        (["--momentum", "nan"], "--momentum must be a finite number >= 0, not nan"),
        (["--weight-decay", "inf"], "--weight-decay must be a finite number >= 0, not inf"),
        (["--gn-groups", "0"], "--gn-groups must be a positive integer, not 0"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(args, message, capsys):
    assert _status(["train", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def _status(argv):
    """Exit status of the CLI, whether argparse exits or a command returns."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


# A network file for each way a YAML can be wrong, and the one-line message naming the field.
BAD_NETWORK_FILES = [
    ("malformed.yaml", "name: x\ninput: [\n", "network YAML is not valid YAML at line 3"),
    ("empty.yaml", "", "network: the YAML document must be a mapping with name, input, layers"),
    (
        "cycle.yaml",
        "name: cyc\ninput: {name: input, shape: [3, 8, 8]}\nnum_classes: 10\nlayers:\n"
        "  - {name: a, op: relu, inputs: [b]}\n  - {name: b, op: relu, inputs: [a]}\n"
        "  - {name: f, op: flatten}\n  - {name: fc, op: linear, out_features: num_classes}\n"
        "  - {name: loss, op: loss}\n",
        "layer 'a': inputs form a cycle",
    ),
    (
        "field.yaml",
        "name: x\ninput: {name: input, shape: [3, 8, 8]}\nnum_classes: 10\nlayers:\n"
        "  - {name: c, op: conv2d, out_channels: 0, kernel: 3}\n",
        "layer 'c': out_channels must be an integer >= 1, not 0",
    ),
    (
        "op.yaml",
        "name: x\ninput: {name: input, shape: [3, 8, 8]}\nnum_classes: 10\nlayers:\n"
        "  - {name: c, op: conv9d}\n",
        "layer 'c': op must be one of conv2d, linear,",
    ),
]


@pytest.mark.parametrize(
    ("filename", "text", "message"), BAD_NETWORK_FILES, ids=[name for name, _, _ in BAD_NETWORK_FILES]
)
def test_bad_network_files_give_one_line_naming_the_field(tmp_path, capsys, filename, text, message):
    path = tmp_path / filename
    path.write_text(text)
    assert _status(["train", "--network", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and f"--network: {message}" in captured.err
    assert captured.out == ""


def test_missing_network_file_names_the_path(tmp_path, capsys):
    missing = tmp_path / "absent.yaml"
    assert _status(["train", "--network", str(missing)]) == 2
    err = capsys.readouterr().err
    expected = f"--network: network file {str(missing)!r} cannot be read: No such file or directory"
    assert err == f"wavecore train: error: {expected}\n"


def test_train_json_and_output_directory_hold_loss_differences_and_timing(capsys, tmp_path):
    import json

    import numpy as np

    from wavecore.golden.network import load_network
    from wavecore.golden.schedule import Schedule
    from wavecore.golden.train import SGD, Trainer, init_params, init_state

    arguments = ["train", "--network", "tiny_resnet", "--batch", "4", "--schedule", "mbs", "--sub-batch", "2",
                 "--numerics", "float64", "--steps", "3", "--check", "baseline", "--quiet"]
    assert main([*arguments, "--json", "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert captured.err == ""  # --quiet: no progress lines
    assert json.loads((tmp_path / "out" / "train.json").read_text()) == document
    # The same run through the library: losses of the planned schedule and of the baseline, step by step.
    network = load_network("tiny_resnet")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, *network.input_shape))
    labels = rng.integers(0, network.num_classes, 4)
    optimizer = SGD(lr=0.01, momentum=0.9, weight_decay=0.0)
    trainer = Trainer(network, schedule=Schedule.serialised(network, 4, 2), numerics="float64", optimizer=optimizer)
    baseline = Trainer(network, schedule=None, numerics="float64", optimizer=optimizer)
    params, state = init_params(network, seed=0, dtype=np.float64), init_state(network, dtype=np.float64)
    base_params, base_state = params, state
    assert [entry["step"] for entry in document["steps"]] == [1, 2, 3]
    for entry in document["steps"]:
        result = trainer.step(params, state, x, labels)
        reference = baseline.step(base_params, base_state, x, labels)
        assert entry["loss"] == result.loss and entry["baseline_loss"] == reference.loss
        differences = entry["max_abs_difference"]
        assert differences["loss"] == abs(result.loss - reference.loss)
        assert differences["params"] == max(
            float(np.abs(result.params[n][k] - v).max()) for n, e in reference.params.items() for k, v in e.items())
        assert entry["seconds"] > 0 and entry["baseline_seconds"] > 0
        params, state, base_params, base_state = result.params, result.state, reference.params, reference.state
    assert document["seconds"] >= sum(entry["seconds"] + entry["baseline_seconds"] for entry in document["steps"])
    assert (document["network"], document["batch"], document["sub_batches"]) == ("tiny_resnet", 4, [2])
    markdown = (tmp_path / "out" / "train.md").read_text()
    assert f"step 3: loss {document['steps'][2]['loss']:.6f}  max|diff| vs baseline: loss " in markdown
    # Without --quiet and not on a terminal, progress is timestamped lines on stderr.
    assert main(arguments[:-1]) == 0
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] train tiny_resnet: started, 3 steps", err[0])
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] train tiny_resnet: done after \d+\.\d s, 3/3 steps \(loss \d\.\d{4}\)",
                        err[-1])
