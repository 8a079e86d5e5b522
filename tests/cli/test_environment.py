"""scripts/environment.py and scripts/paths.py: cocotb's variable names beside wavecore's, which one wins, and
where simulator builds go."""

import pytest

from wavecore import environment
from wavecore.paths import build_root, builds_under
from wavecore.verif.runner import chosen_simulator, simulator_params
from wavecore.verif.seed import choose_seed

ALL = [variable for variables in environment.VARIABLES.values() for variable in variables]


@pytest.fixture
def clean(monkeypatch):
    for variable in ALL:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_seed_comes_from_wavecore_then_cocotb_variables(clean):
    clean.setenv("RANDOM_SEED", "11")
    assert choose_seed() == 11
    clean.setenv("COCOTB_RANDOM_SEED", "22")
    assert choose_seed() == 22
    clean.setenv("WAVECORE_SEED", "0x21")
    assert choose_seed() == 33
    clean.setenv("WAVECORE_SEED", "")  # empty counts as unset
    assert choose_seed() == 22
    clean.setenv("COCOTB_RANDOM_SEED", "seven")
    with pytest.raises(ValueError, match=r"^COCOTB_RANDOM_SEED must be an integer, not 'seven'$"):
        choose_seed()


def test_simulator_comes_from_wavecore_sim_then_sim(clean):
    assert chosen_simulator() is None
    assert [param.id for param in simulator_params()] == ["icarus", "verilator"]
    clean.setenv("SIM", "icarus")
    assert [param.id for param in simulator_params()] == ["icarus"]
    clean.setenv("WAVECORE_SIM", "verilator")
    assert chosen_simulator() == "verilator"
    clean.delenv("WAVECORE_SIM")
    clean.setenv("SIM", "questa")
    with pytest.raises(ValueError, match=r"^SIM must be one of icarus, verilator, not 'questa'$"):
        chosen_simulator()


def test_waves_flag_from_wavecore_waves_then_waves(clean):
    assert environment.flag("waves") is False
    clean.setenv("WAVES", "1")
    assert environment.flag("waves") is True
    clean.setenv("WAVECORE_WAVES", "off")
    assert environment.flag("waves") is False
    clean.setenv("WAVECORE_WAVES", "maybe")
    with pytest.raises(ValueError, match=r"^WAVECORE_WAVES must be 1 or 0"):
        environment.flag("waves")


def test_builds_go_under_the_command_output_unless_wavecore_build_dir(clean, tmp_path):
    default = build_root()
    with builds_under(tmp_path / "out") as root:
        assert root == build_root() == (tmp_path / "out").resolve()
        clean.setenv("WAVECORE_BUILD_DIR", str(tmp_path / "cache"))
        assert build_root() == (tmp_path / "cache").resolve()
        clean.delenv("WAVECORE_BUILD_DIR")
    assert build_root() == default
