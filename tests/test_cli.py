"""The `wavecore` command shell: every command listed, one-line errors with status 2."""

import subprocess
import sys

from scripts.cli import build_parser, main

EXPECTED_COMMANDS = {"generate", "run", "train", "plan", "synth", "pipeline"}


def _wavecore(*args):
    return subprocess.run([sys.executable, "-m", "scripts", *args], capture_output=True, text=True, check=False)


def test_help_lists_every_command_module():
    import pkgutil

    from scripts import commands

    modules = {m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")}
    help_text = build_parser().format_help()
    for module in modules:
        name = __import__(f"scripts.commands.{module}", fromlist=["NAME"]).NAME
        assert name in help_text
    assert {
        __import__(f"scripts.commands.{module}", fromlist=["NAME"]).NAME for module in modules
    } >= EXPECTED_COMMANDS


def test_unknown_command_is_one_line_status_2():
    result = _wavecore("frobnicate")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_no_command_prints_help_and_status_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
