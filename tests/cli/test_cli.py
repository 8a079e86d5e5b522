"""The `wavecore` command shell: every command listed, one-line errors with status 2."""

import subprocess
import sys

from wavecore.cli import build_parser, main

EXPECTED_COMMANDS = {"generate", "run", "train", "plan", "synth", "pipeline", "schema"}


def _wavecore(*args):
    return subprocess.run([sys.executable, "-m", "wavecore", *args], capture_output=True, text=True, check=False)


def test_help_lists_every_command_module():
    import pkgutil

    from wavecore import commands

    modules = {m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")}
    help_text = build_parser().format_help()
    for module in modules:
        name = __import__(f"wavecore.commands.{module}", fromlist=["NAME"]).NAME
        assert name in help_text
    assert {
        __import__(f"wavecore.commands.{module}", fromlist=["NAME"]).NAME for module in modules
    } >= EXPECTED_COMMANDS


def test_unknown_command_is_one_line_status_2():
    result = _wavecore("frobnicate")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_no_command_prints_help_and_status_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_pipeline_plans_a_dag_network_into_stages(tmp_path):
    import json

    out = tmp_path / "pipe"
    result = _wavecore(
        "pipeline", "--network", "tiny_resnet", "--norm", "none", "--target", "ulx3s-85f", "--chips", "3",
        "--capacity", "6000",
        "--no-build", "-o", str(out),
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads((out / "plan.json").read_text())
    assert [stage["out_shape"] for stage in plan["stages"]] == [[8, 16, 16], [16, 4, 4], [10, 1, 1]]
    assert "stage 2: gap, flatten, fc, loss" in result.stdout
    # --no-build still writes pipeline.json / pipeline.md: every stage's cycles per frame, no simulation
    summary = json.loads((out / "pipeline.json").read_text())
    assert [row["cycles_per_frame"] for row in summary["stages"]] == [
        stage["cycles_per_frame"] for stage in plan["stages"]]
    assert all(row["status"] == "not built" for row in summary["stages"])
    assert summary["simulation"] is None and summary["distinct_bitstreams"] == 0
    markdown = (out / "pipeline.md").read_text()
    assert "Simulation: not run" in markdown and "no bitstreams built" in markdown
    for row in summary["stages"]:
        assert f"| {row['stage']} | {', '.join(row['layers'])} | {row['replicas']} | not built |" in markdown
        assert f"| {row['cycles_per_frame']} |" in markdown
    assert f"report: {out / 'pipeline.md'} and {out / 'pipeline.json'}" in result.stdout


def test_pipeline_bad_input_is_one_line_naming_the_option(tmp_path):
    cases = [
        (["--network", "tiny_resnet", "--norm", "none", "--chips", "3", "--capacity", "600"],
         "--capacity 600: 600 B per chip is too small for 'tiny_resnet' in at most 3 stage(s)"),
        (["--network", "nosuch", "--chips", "2"],
         "--network nosuch: network must be one of resnet18, resnet50, vgg16, densenet121, googlenet, "
         "mobilenet_v2, tiny_resnet, tiny_concat, tiny_mobilenet, tiny_chain or a YAML path, not 'nosuch'"),
        (["--network", "vgg16", "--chips", "2"], "--network vgg16: layer 'flatten': flatten needs a 1x1 frame"),
        (["--network", "tiny_resnet", "--chips", "0"], "--chips must be a positive integer, not 0"),
        # the network's own norm is kept: tiny_resnet's GN layers have no streaming engine
        (["--network", "tiny_resnet", "--chips", "3"],
         "--norm: tiny_resnet has gn layers (stem_norm, res1a_norm, res1b_norm, ...) and the stage engines have "
         "no norm unit; pass --norm none"),
    ]
    for arguments, message in cases:
        result = _wavecore("pipeline", "--target", "ulx3s-85f", "--no-build", "-o", str(tmp_path), *arguments)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_pipeline_simulate_checks_every_boundary_of_a_zoo_net(tmp_path):
    import json
    import os

    from wavecore.paths import build_root

    # same plan (seed 0) as tests/boards/test_pipeline.py's tiny_resnet chain: WAVECORE_BUILD_DIR (which wins over
    # the command's -o) shares that Verilator build
    environment = dict(os.environ, WAVECORE_BUILD_DIR=str(build_root()))
    result = subprocess.run([sys.executable, "-m", "wavecore", "pipeline", "--network", "tiny_resnet", "--norm",
                             "none", "--target", "ulx3s-85f", "--chips", "3", "--capacity", "6000", "--simulate",
                             "--frames", "1", "--no-build", "-o", str(tmp_path)],
                            capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "simulation: 1 frame(s) through 3 stages match the golden model at every boundary" in result.stdout
    summary = json.loads((tmp_path / "pipeline.json").read_text())
    plan = json.loads((tmp_path / "plan.json").read_text())
    simulation = summary["simulation"]
    assert simulation["result"] == "pass" and simulation["frames"] == 1
    assert simulation["model_cycles_per_frame"] == max(stage["cycles_per_frame"] for stage in plan["stages"])
    assert simulation["cycles"] >= simulation["model_cycles_per_frame"]  # one frame takes at least one period
    assert f"Simulation: **PASS**, 1 frame(s) match the golden model at every stage boundary in " \
           f"{simulation['cycles']} cycles" in (tmp_path / "pipeline.md").read_text()
    # progress went to stderr as timestamped lines (not a terminal), results stayed on stdout
    assert "simulate 3 stages, 1 frame(s): started" in result.stderr
    assert "started" not in result.stdout



def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    # `wavecore plan ... | head`: the reader leaves before the command writes; no traceback, exit status 0
    process = subprocess.Popen([sys.executable, "-m", "wavecore", "plan", "--network", "vgg16", "--batch", "8",
                                "--quiet", "-o", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the plan is printed: every write of the command hits a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
