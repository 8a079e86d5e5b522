"""Every command example of ``README.md`` runs as printed (slow tier: ``make test-all``).

The commands are read from the README itself, so an edited example is covered: every inline code span and code
block line that starts with ``wavecore `` or ``.venv/bin/wavecore ``, plus the cheap ``make`` targets, plus the
Python API block. The README's notation is expanded the way a reader would: ``[...]`` is optional and dropped,
``a|b`` is two commands, ``COMMAND`` is every command. They run in README order in one temporary directory that
holds links to the checkout's folders (so ``configs/...`` and ``tests/...`` paths work and everything a command
writes lands in the temporary directory); later commands use what earlier ones wrote, as a reader following the
README would (``wavecore train --network net.yaml`` after ``wavecore import ... -o net.yaml``). The user's own
files the README names (``model.py:Net``, ``model.onnx``) are written first.

Each command must exit 0 and, where the README says what it prints or writes, print or write it. Commands that
need a board or take more than a few minutes are in :data:`SKIPPED`, each with its reason.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import wavecore
from wavecore import cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Folders of the checkout the README's commands name by relative path (linked into the temporary directory).
LINKED = ("configs", "tests", "hdl", "golden", "scripts", "verif", "boards", "benchmarks", "docs")
#: Per command; a command that has not finished by then has hung.
TIMEOUT_S = 900

#: Commands (after expansion) not run, with the reason: only a board or more than a few minutes.
SKIPPED = {
    "wavecore run": "the main job builds and simulates on Verilator, several minutes; `make run` is that job",
    "wavecore run -o build/run": "the main job (as `wavecore run`), several minutes",
    "wavecore mutate --subsystem array --sample 20 -o build/mutation": (
        "runs the tests of 20 mutants on Icarus, tens of minutes; tests/verif/test_mutate.py runs a sample"
    ),
    ".venv/bin/wavecore mutate --subsystem norm --sample 20 --seed 7 -o build/mutation-norm": (
        "runs the tests of 20 mutants on Icarus, tens of minutes"
    ),
    ".venv/bin/wavecore mutate --sample-each 130 --seed 2026 --jobs 2 -o build/mutation-sample": (
        "240 mutants, about an hour on 2 cores"
    ),
    ".venv/bin/wavecore mutate --changed HEAD~1 --sample 10 -o build/mutation-change": (
        "runs the tests of up to 10 mutants, minutes; tests/verif/test_mutate.py runs three"
    ),
    "wavecore pipeline --network tiny_resnet --norm none --target ulx3s-85f --chips 3 --capacity 6000 --simulate "
    "-o build/pipeline": "Verilator simulation of three stages plus one bitstream per stage, well over a few minutes",
    "wavecore pipeline --simulate -o DIR": "a pipeline simulation and bitstreams (as above), over a few minutes",
    "make run": "sets up and runs the main job, several minutes",
    "make test": "the test suite, about 11 minutes",
    "make test-all": "the whole suite and the full mutation run, hours",
    "make mutation": "the full mutation run, hours",
    "make coverage": "prints the coverage of an earlier test run, which this run need not have recorded",
}

#: ``model.py:Net`` for ``wavecore import model.py:Net --input 3x32x32``: a small network of the user's.
MODEL_PY = '''\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.norm(self.conv(x))))
        return self.fc(torch.flatten(x, 1))
'''


def _code_lines(text: str):
    """(in_code_block, language, line) for every line of ``text``."""
    fence, language = False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            fence, language = not fence, line[3:].strip()
            continue
        yield fence, language, line


def readme_examples(text: str) -> list[str]:
    """The shell command examples of the README, in order, as printed (before expansion)."""
    found = []
    for in_block, language, line in _code_lines(text):
        if in_block:
            if language not in ("sh", ""):
                continue
            command = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()  # a trailing comment is not the command
            if command.startswith(("wavecore ", ".venv/bin/wavecore ", "make ")):
                found.append(command)
        else:
            spans = re.findall(r"`([^`]+)`", line)
            # `wavecore NAME` alone names a command in prose ("`wavecore mutate` changes the generators"); an
            # example has arguments, or optional ones in brackets (`wavecore run [--config FILE]`)
            names = {f"wavecore {module.NAME}" for module in cli._command_modules()}
            found += [span for span in spans if span.startswith(("wavecore ", "make ")) and span not in names]
    return found


def expand(example: str) -> list[str]:
    """The commands a README example stands for: ``[...]`` dropped, ``a|b`` and ``COMMAND`` expanded."""
    command = re.sub(r"\s*\[[^\]]*\]", "", example).strip()
    words = []
    for word in command.split(" "):
        if word == "COMMAND":
            words.append([module.NAME for module in cli._command_modules()])
        elif "|" in word:
            words.append(word.split("|"))
        else:
            words.append([word])
    return [" ".join(choice) for choice in itertools.product(*words)]


def readme_commands() -> list[str]:
    commands = list(dict.fromkeys(c for example in readme_examples(README.read_text()) for c in expand(example)))
    return [command for command in commands if not command.startswith("make ") or command == "make lint"
            or command in SKIPPED]


def python_examples(text: str) -> list[str]:
    blocks, current = [], None
    for in_block, language, line in _code_lines(text):
        if in_block and language == "python":
            current = (current or []) + [line]
        elif current is not None:
            blocks.append("\n".join(current))
            current = None
    return blocks


def _option(words: list[str], *names: str, default: str | None = None) -> str | None:
    for name in names:
        if name in words:
            return words[words.index(name) + 1]
    return default


def expectations(command: str) -> tuple[list[str], list[str]]:
    """(files the README says the command writes, texts it says the command prints)."""
    words = shlex.split(command)
    if words[0].endswith("wavecore"):
        words = words[1:]
    name = words[0]
    out = _option(words, "-o", "--out", "--output")
    if name == "--version":
        return [], [wavecore.__version__]
    if name == "--help":
        return [], [module.NAME for module in cli._command_modules()]
    if len(words) > 1 and words[1] == "--help":
        return [], [f"wavecore {name}"]
    if name == "generate":
        block = words[1]
        return [f"{out}/{block}.{suffix}" for suffix in ("v", "json", "core", "f")], []
    if name == "train":
        return [], ["vs baseline"] if _option(words, "--check") == "baseline" else []
    if name == "import":
        return [out, out.removesuffix(".yaml") + ".weights.npz"], []
    if name == "export":
        return [out], []
    if name == "plan":
        topology = _option(words, "--network", default="").endswith(".csv")  # SCALE-Sim's: per layer, no report
        files = [] if "--no-report" in words or topology else [f"{out or 'build/plan'}/report.md"]
        csv = _option(words, "--csv")
        if csv:
            files += [f"{csv}/COMPUTE_REPORT.csv", f"{csv}/DETAILED_ACCESS_REPORT.csv"]
        return files, []
    if name == "schema":
        return [], ['"$schema"']
    if name == "compile":
        return [f"{out}/{f}" for f in ("program.bin", "program.lst", "memory_map.json", "expected.json")], []
    if name == "mutate" and "--list" in words:
        return [], ["hdl/array/multiplier.py"]
    if name == "synth":
        return [f"{out}/report.json", f"{out}/report.md"], []
    if name == "sweep":
        return [f"{out}/results.csv", f"{out}/report.md"], []
    if name == "pipeline":
        return [f"{out}/pipeline.md"], []
    return [], []


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A temporary directory that looks like the checkout to the README's commands and holds their output."""
    work = tmp_path_factory.mktemp("readme")
    for name in LINKED:
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    (work / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    (work / "model.py").write_text(MODEL_PY)
    _export_onnx(work)
    return work


def _export_onnx(work: Path) -> None:
    """``model.onnx`` for ``wavecore import model.onnx``: the same user network exported by PyTorch."""
    script = (
        "import torch, sys; sys.path.insert(0, '.'); from model import Net; "
        "torch.onnx.export(Net().eval(), (torch.zeros(1, 3, 32, 32),), 'model.onnx', dynamo=True, optimize=False,"
        " verbose=False)"
    )
    subprocess.run([sys.executable, "-c", script], cwd=work, check=True, capture_output=True, timeout=TIMEOUT_S)


def _environment() -> dict:
    environment = dict(os.environ)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    return environment


def _run(arguments, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(arguments, cwd=cwd, env=_environment(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def _check(result, command: str, work: Path) -> None:
    assert result.returncode == 0, (
        f"README command `{command}` exited {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
        f"stderr:\n{result.stderr[-3000:]}"
    )
    files, texts = expectations(command)
    missing = [f for f in files if not (work / f).exists()]
    assert not missing, f"README command `{command}` did not write {missing}"
    absent = [t for t in texts if t not in result.stdout]
    assert not absent, f"README command `{command}` did not print {absent}:\n{result.stdout[-3000:]}"


def test_the_readme_examples_are_found():
    """The extraction finds the README's commands (a format change of the README must not empty the list)."""
    commands = readme_commands()
    assert len(commands) >= 20 and "wavecore --version" in commands and "make lint" in commands
    assert {"wavecore schema accelerator", "wavecore schema network", "wavecore plan --help"} <= set(commands)
    assert all("[" not in c and "|" not in c for c in commands)
    stale = set(SKIPPED) - set(commands)
    assert not stale, f"skip-list entries no longer in README.md: {sorted(stale)}"
    assert python_examples(README.read_text())


@pytest.mark.slow
@pytest.mark.xdist_group("readme")
@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs_as_printed(command, request):
    if command in SKIPPED:
        pytest.skip(f"`{command}`: {SKIPPED[command]}")
    workspace = request.getfixturevalue("workspace")  # not set up for a skipped command
    if command.startswith("make "):  # a make target runs in the checkout; never let it (re)install the venv
        _check(_run(["make", "-o", ".venv/.wavecore-installed", *command.split()[1:]], ROOT), command, workspace)
        return
    _check(_run(["bash", "-c", command], workspace), command, workspace)


@pytest.mark.slow
@pytest.mark.xdist_group("readme")
@pytest.mark.parametrize("index", range(len(python_examples(README.read_text()))))
def test_readme_python_example_runs(index, workspace):
    code = python_examples(README.read_text())[index]
    result = _run([sys.executable, "-c", code], workspace)
    assert result.returncode == 0, f"README Python example:\n{code}\nfailed:\n{result.stderr[-3000:]}"
    for line in code.splitlines():  # `generate_files(..., "build/gen")   # systolic.v + systolic.json`
        directory = re.search(r'"(build/[^"]+)"\)', line)
        written = re.findall(r"[\w.-]+\.(?:v|json|core|f)\b", line.partition("#")[2])
        for name in written if directory else ():
            assert (workspace / directory.group(1) / name).is_file(), f"README Python example did not write {name}"
