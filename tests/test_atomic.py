"""Crash-safe writes: atomic_dir never leaves its target missing, nor half-written."""

from __future__ import annotations

import os

import pytest

from dmix_gym.utils import atomic
from dmix_gym.utils.atomic import atomic_dir, atomic_path


def _write(folder, text: str) -> None:
    (folder / "a.txt").write_text(text)
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text(text * 2)


def _read(folder) -> tuple[str, str]:
    return (folder / "a.txt").read_text(), (folder / "sub" / "b.txt").read_text()


@pytest.fixture(params=["exchange", "move-aside"])
def swap(request, monkeypatch):
    """Both ways atomic_dir replaces a folder: one atomic swap, or the portable move-aside fallback."""
    if request.param == "move-aside":
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    return request.param


def test_atomic_dir_creates_and_replaces_whole_folders(tmp_path, swap):
    target = tmp_path / "built"
    with atomic_dir(target) as tmp:
        _write(tmp, "old")
    with atomic_dir(target) as tmp:
        _write(tmp, "new")
    assert _read(target) == ("new", "newnew")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built"]  # no temporary or set-aside folder left


def test_a_failure_inside_the_block_keeps_the_old_folder(tmp_path, swap):
    target = tmp_path / "built"
    with atomic_dir(target) as tmp:
        _write(tmp, "old")
    with pytest.raises(RuntimeError, match="died"):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("died while writing")
    assert _read(target) == ("old", "oldold")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built"]


def test_a_failed_rename_in_the_fallback_restores_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "built"
    with atomic_dir(target) as tmp:
        _write(tmp, "old")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real_replace = os.replace

    def replace(src, dst):
        if str(dst) == str(target) and ".tmp" in str(src):  # the new folder cannot take the target's place
            raise OSError("disk went away")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="disk went away"):
        with atomic_dir(target) as tmp:
            _write(tmp, "new")
    assert _read(target) == ("old", "oldold")


def test_atomic_path_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    with atomic_path(target) as tmp:
        tmp.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise ValueError("no")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]
