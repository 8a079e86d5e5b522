"""wavecore.files: outputs get the user's umask (0644 under 022), appear whole or not at all."""

import os
import stat

import pytest

from wavecore.files import atomic_path, default_mode, write_atomic, write_atomic_many


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_mode_is_what_open_gives(tmp_path, umask):
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert default_mode() == _mode(plain) == 0o666 & ~umask


def test_every_writer_gives_the_umask_permissions(tmp_path, umask):
    expected = 0o666 & ~umask
    assert _mode(write_atomic(tmp_path / "a.txt", "text")) == expected
    assert all(_mode(p) == expected for p in write_atomic_many([(tmp_path / "b.v", "v"), (tmp_path / "b.json", b"{}")]))
    with atomic_path(tmp_path / "c.png", suffix=".png") as temporary:
        temporary.write_bytes(b"png")
    assert _mode(tmp_path / "c.png") == expected
    if umask == 0o022:
        assert expected == 0o644


def test_generate_writes_verilog_and_json_readable_by_others(tmp_path, umask):
    from wavecore.hdl.registry import generate_files

    for path in generate_files({"block": "systolic", "rows": 2, "cols": 2}, tmp_path):
        assert _mode(path) == 0o666 & ~umask


def test_plan_report_files_get_the_umask(tmp_path, umask):
    from wavecore.cli import main

    assert main(["plan", "--network", "tiny_resnet", "--batch", "2", "-o", str(tmp_path / "plan")]) == 0
    written = [p for p in (tmp_path / "plan").rglob("*") if p.is_file()]
    assert written and all(_mode(p) == 0o666 & ~umask for p in written)


def test_a_failed_write_leaves_the_old_files_and_no_temporaries(tmp_path):
    old = write_atomic(tmp_path / "keep.v", "old")
    with pytest.raises(TypeError):
        write_atomic_many([(old, "new"), (tmp_path / "bad.json", 42)])
    assert old.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.v"]


def test_text_is_written_as_utf8_and_parents_are_created(tmp_path):
    path = write_atomic(tmp_path / "deep" / "dir" / "µ.txt", "µ")
    assert path.read_bytes() == "µ".encode()
