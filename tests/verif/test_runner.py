"""The verification harness: builds, caching, parameters, seeds, stalls and failure reports."""

import time

import pytest
from stream_fifo_design import AffineFifo

from wavecore.verif.runner import SimulationFailed, build, simulator_params


@pytest.mark.parametrize("simulator", simulator_params())
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.4, 0.5)])
def test_stream_driver_and_sink_pass_every_value_under_stalls(simulator, idle, backpressure):
    design = build(AffineFifo(width=16), toplevel="affine_fifo", simulator=simulator)
    design.run("tb_stream_fifo", testcase="affine_under_stalls",
               params={"width": 16, "count": 300, "idle": idle, "backpressure": backpressure})


@pytest.mark.parametrize("simulator", simulator_params())
def test_identical_design_reuses_the_cached_build(simulator):
    first = build(AffineFifo(width=12), toplevel="affine_fifo", simulator=simulator)
    marker = first.build_dir / ".built"
    stamp = marker.stat().st_mtime_ns
    second = build(AffineFifo(width=12), toplevel="affine_fifo", simulator=simulator)
    assert second.build_dir == first.build_dir
    assert marker.stat().st_mtime_ns == stamp
    other = build(AffineFifo(width=13), toplevel="affine_fifo", simulator=simulator)
    assert other.build_dir != first.build_dir


@pytest.mark.parametrize("simulator", simulator_params())
def test_failure_names_testcase_seed_log_and_waveform_hint(simulator, monkeypatch):
    monkeypatch.setenv("WAVECORE_SEED", "1234")
    design = build(AffineFifo(width=16), toplevel="affine_fifo", simulator=simulator)
    with pytest.raises(SimulationFailed) as failure:
        design.run("tb_stream_fifo", testcase="deliberately_wrong", test_name="deliberately_wrong")
    message = str(failure.value)
    assert "deliberately_wrong" in message
    assert "seed: 1234 (rerun with WAVECORE_SEED=1234)" in message
    assert "log: " in message
    assert "WAVES=1" in message


@pytest.mark.parametrize("simulator", simulator_params())
def test_waves_are_written_per_test(simulator, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WAVES", "1")
    monkeypatch.delenv("WAVECORE_WAVES", raising=False)
    monkeypatch.setenv("WAVECORE_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("RANDOM_SEED", "4321")  # cocotb's name for the seed
    monkeypatch.delenv("WAVECORE_SEED", raising=False)
    monkeypatch.delenv("COCOTB_RANDOM_SEED", raising=False)
    design = build(AffineFifo(width=8), toplevel="affine_fifo", simulator=simulator)
    assert design.build_dir.is_relative_to(tmp_path)
    capsys.readouterr()
    design.run("tb_stream_fifo", testcase="affine_under_stalls", test_name="waves_probe",
               params={"width": 8, "count": 20, "idle": 0.2, "backpressure": 0.2})
    wave = design.build_dir / "tests" / "waves_probe" / ("dump.vcd" if simulator == "verilator" else "affine_fifo.fst")
    assert wave.exists() and wave.stat().st_size > 100
    printed = capsys.readouterr().out
    assert "1 cocotb test(s) passed, seed 4321" in printed  # the seed reached the run
    assert f"waveform: {wave}" in printed.splitlines()  # printed for a passing test too
    with pytest.raises(SimulationFailed, match="waveform: .*"):
        design.run("tb_stream_fifo", testcase="deliberately_wrong", test_name="waves_fail")


def test_wavecore_waves_zero_wins_over_cocotb_waves(monkeypatch, tmp_path):
    # cocotb's runner lets WAVES override its argument; WAVECORE_WAVES=0 must still switch the trace off.
    monkeypatch.setenv("WAVES", "1")
    monkeypatch.setenv("WAVECORE_WAVES", "0")
    monkeypatch.setenv("WAVECORE_BUILD_DIR", str(tmp_path))
    design = build(AffineFifo(width=8), toplevel="affine_fifo", simulator="icarus")
    assert design.waves is False
    design.run("tb_stream_fifo", testcase="affine_under_stalls", test_name="no_waves",
               params={"width": 8, "count": 10, "idle": 0.0, "backpressure": 0.0})
    assert not any((design.build_dir / "tests" / "no_waves").glob("*.fst"))


@pytest.mark.parametrize("simulator", simulator_params())
def test_a_silent_stream_peer_fails_within_its_cycle_limit_in_seconds(simulator):
    design = build(AffineFifo(width=16), toplevel="affine_fifo", simulator=simulator)
    start = time.monotonic()
    design.run("tb_stream_fifo", testcase=["silent_source_fails_within_the_limit", "stuck_sink_fails_within_the_limit"])
    assert time.monotonic() - start < 30


def _cached_builds(directory, ages, *, simulator="verilator"):
    """Fake finished builds in ``directory`` last used ``ages`` seconds before 1e9; returns their paths."""
    import os

    entries = []
    for index, age in enumerate(ages):
        entry = directory / f"{simulator}-{index:016x}"
        entry.mkdir(parents=True)
        (entry / "model.bin").write_bytes(b"x" * 10)
        marker = entry / ".built"
        marker.write_text("{}")
        os.utime(marker, (1e9 - age, 1e9 - age))
        entries.append(entry)
    return entries


def test_the_build_cache_keeps_the_most_recently_used_builds(tmp_path):
    from wavecore.verif.runner import CACHE_GRACE_SECONDS, evict_builds

    old = CACHE_GRACE_SECONDS + 10
    entries = _cached_builds(tmp_path, [old * 5, old, old * 3, old * 2, old * 4])
    other = _cached_builds(tmp_path, [old * 9], simulator="icarus")  # another simulator: not counted, not deleted
    unfinished = tmp_path / "verilator-ffffffffffffffff"
    unfinished.mkdir()  # being built (no .built): never deleted
    deleted = evict_builds(tmp_path, "verilator", keep=2, now=1e9)
    assert sorted(deleted) == sorted([entries[0], entries[2], entries[4]])
    assert [entry.exists() for entry in entries] == [False, True, False, True, False]
    assert other[0].exists() and unfinished.exists()


def test_the_build_cache_spares_a_build_used_within_the_grace_period_or_locked(tmp_path):
    from filelock import FileLock

    from wavecore.verif.runner import CACHE_GRACE_SECONDS, evict_builds

    entries = _cached_builds(tmp_path, [10, 20, CACHE_GRACE_SECONDS - 5, CACHE_GRACE_SECONDS + 5,
                                        CACHE_GRACE_SECONDS + 6])
    with FileLock(str(entries[4]) + ".lock"):  # held by "another test": still in use
        deleted = evict_builds(tmp_path, "verilator", keep=1, now=1e9)
    assert deleted == [entries[3]]
    assert [entry.exists() for entry in entries] == [True, True, True, False, True]


def test_the_build_cache_size_comes_from_the_environment(monkeypatch):
    from wavecore.verif.runner import CACHE_KEEP, cache_keep

    monkeypatch.delenv("WAVECORE_SIM_CACHE_KEEP", raising=False)
    assert cache_keep() == CACHE_KEEP == 12
    monkeypatch.setenv("WAVECORE_SIM_CACHE_KEEP", "3")
    assert cache_keep() == 3
    for bad in ("0", "many", "-2"):
        monkeypatch.setenv("WAVECORE_SIM_CACHE_KEEP", bad)
        with pytest.raises(ValueError, match=f"WAVECORE_SIM_CACHE_KEEP must be an integer of at least 1, not '{bad}'"):
            cache_keep()


def test_the_build_cache_counts_reuse_as_use(tmp_path):
    import os

    from wavecore.verif.runner import CACHE_GRACE_SECONDS, evict_builds

    old = CACHE_GRACE_SECONDS * 3
    entries = _cached_builds(tmp_path, [old, old * 2])
    used = entries[1] / ".used"  # built earlier but reused later than the other
    used.touch()
    os.utime(used, (1e9 - old / 2, 1e9 - old / 2))
    assert evict_builds(tmp_path, "verilator", keep=1, now=1e9) == [entries[0]]
