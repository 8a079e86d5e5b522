"""Packaging: one import package ``wavecore`` mapped onto the repository's folders, in every install mode.

The editable install (what ``make test`` sets up) is checked in the default tier; a wheel built with
``python -m build`` and a plain ``pip install .`` are installed into fresh virtual environments and run
``wavecore run`` in the slow tier.
"""

import ast
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import wavecore

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OLD_TOP_LEVEL = ("hdl", "golden", "verif", "boards", "scripts", "configs")


def _run(args, cwd, env=None, timeout=600):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_every_package_folder_is_listed_in_pyproject():
    setuptools = PYPROJECT["tool"]["setuptools"]
    folders = {}
    for package, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            folders[".".join([package, *relative.parts])] = init.parent
    # a mapped subpackage's folder is also found below the root's folder only if nested there: it is not
    assert set(folders) == set(setuptools["packages"]), "add new subpackages to [tool.setuptools] packages"


def test_wavecore_imports_from_any_directory_and_nothing_else_is_top_level(tmp_path):
    code = (
        "import importlib.util, json, wavecore, wavecore.hdl.array.systolic, wavecore.configs\n"
        f"print(json.dumps({{'file': wavecore.__file__, 'version': wavecore.__version__, "
        f"'leaked': [n for n in {OLD_TOP_LEVEL!r} if importlib.util.find_spec(n)]}}))"
    )
    result = _run([sys.executable, "-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert Path(found["file"]).resolve() == ROOT / "scripts" / "__init__.py"
    assert found["version"] == PYPROJECT["project"]["version"] == wavecore.__version__
    assert found["leaked"] == []


def test_version_flag_prints_the_distribution_version(tmp_path):
    result = _run([sys.executable, "-m", "wavecore", "--version"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wavecore {PYPROJECT['project']['version']}"


def test_no_module_imports_the_old_top_level_names():
    offenders = []
    for folder in ("hdl", "golden", "verif", "boards", "scripts", "configs", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                              if name.split(".")[0] in OLD_TOP_LEVEL]
    assert offenders == []


def _fresh_venv(tmp_path: Path) -> Path:
    """A new virtual environment that sees this environment's dependencies but not its wavecore."""
    venv = tmp_path / "venv"
    # without its own pip/setuptools: this environment's (current) ones come in through the .pth below
    result = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    # a plain path line: the dependencies become importable, but this environment's .pth files (the
    # editable finder of the checkout) are not executed
    (Path(site.stdout.strip()) / "wavecore_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    return python


def _check_installed(python: Path, tmp_path: Path):
    env = {**os.environ, "WAVECORE_BUILD_DIR": str(tmp_path / "build")}
    env.pop("PYTHONPATH", None)
    where = _run([str(python), "-c", "import wavecore; print(wavecore.__file__)"], cwd=tmp_path, env=env)
    assert where.returncode == 0, where.stderr
    assert str(tmp_path / "venv") in where.stdout, f"wavecore imported from {where.stdout.strip()}"
    run = _run([str(python), "-m", "wavecore", "run", "-o", str(tmp_path / "out")], cwd=tmp_path, env=env,
               timeout=1200)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


@pytest.mark.slow
def test_wheel_holds_only_wavecore_and_runs_the_main_job(tmp_path):
    built = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"),
                  str(ROOT)], cwd=tmp_path)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("wavecore-*.whl")
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in top if not t.endswith(".dist-info")} == {"wavecore"}
    assert "wavecore/configs/networks/tiny_resnet.yaml" in zipfile.ZipFile(wheel).namelist()
    python = _fresh_venv(tmp_path)
    result = _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _check_installed(python, tmp_path)


@pytest.mark.slow
def test_pip_install_of_the_source_tree_runs_the_main_job(tmp_path):
    python = _fresh_venv(tmp_path)
    result = _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(ROOT)],
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _check_installed(python, tmp_path)
