"""Shared pytest set-up: the shared test helpers (``tests/support``) on sys.path.

Test folders mirror the source tree and have no ``__init__.py`` (pytest puts each test file's folder on
``sys.path``), so every test file name is unique. The repository root is deliberately not put on
``sys.path``: the code under test is imported as the installed ``wavecore`` package only.
"""

import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

# A mutation run (``wavecore mutate``) names the mutant to test in WAVECORE_MUTANT: serve it before any test
# module imports the generator.
from wavecore.verif.mutate import install_from_environment  # noqa: E402

install_from_environment()


def pytest_sessionstart(session):
    # One functional-coverage report per test session: the controller (not an xdist worker) starts it afresh and
    # every simulation of the session adds its hits (wavecore.verif.coverage, under a file lock).
    if not hasattr(session.config, "workerinput"):
        from wavecore.verif.coverage import reset_report

        reset_report()


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return
    from wavecore.verif.coverage import coverage_directory

    report = coverage_directory() / "coverage.md"
    if report.exists():
        terminalreporter.write_sep("-", f"functional coverage ({report})")
        terminalreporter.write(report.read_text())
