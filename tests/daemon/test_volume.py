"""Tests for ocrwatch.daemon.folders.Volume: a share that hangs counts as away, at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from daemon.conftest import Stages
from ocrwatch.daemon.folders import Volume


def test_a_hanging_look_is_away_and_the_loop_goes_on(tmp_path: Path) -> None:
    """A marker whose read blocks (a FIFO with no writer stands in for a hard NFS mount
    that hangs) makes the folder away after ``timeout``; later looks answer at once while
    the stuck one lasts; when it returns, looks are real again."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    marker = folder / ".volume"
    volume = Volume(folder, marker, timeout=0.3)
    volume_id = volume.claim()
    assert volume.available()

    marker.unlink()
    os.mkfifo(marker)
    t0 = time.monotonic()
    assert not volume.available()
    assert 0.3 <= time.monotonic() - t0 < 2
    before = threading.active_count()
    t0 = time.monotonic()
    for _ in range(20):
        assert not volume.available()
    assert time.monotonic() - t0 < 0.2
    assert threading.active_count() == before  # no new look while one is stuck

    with open(marker, "w") as writer:  # the share answers: the stuck read returns
        writer.write(volume_id + "\n")
    marker.unlink()
    marker.write_text(volume_id + "\n")
    deadline = time.monotonic() + 5
    while not volume.available() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert volume.available()


def test_bare_mount_point_is_away(tmp_path: Path) -> None:
    """The folder without its marker (an unmounted share's empty mount point) is away."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    volume = Volume(folder, folder / ".volume")
    volume.claim()
    (folder / ".volume").unlink()
    assert not volume.available()


def test_looks_share_one_thread(tmp_path: Path) -> None:
    """Every look of a volume runs on the same thread: the daemon's loop looks at both
    shares several times a second, for years."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    volume = Volume(folder, folder / ".volume")
    volume.claim()

    def lookers() -> set[int]:
        alive = threading.enumerate()
        return {t.ident or 0 for t in alive if t.name == "ocrwatch-volume"}

    before = lookers()
    assert all(volume.available() for _ in range(50))
    new = lookers() - before
    assert len(new) == 1
    assert all(volume.available() for _ in range(50))
    assert lookers() - before == new


class TestMarkerFolderDeleted:
    """A marker deleted while its folder stays is written again; a folder really away is not."""

    def test_marker_folder_deleted_is_made_again(self, tmp_path: Path) -> None:
        """The marker's folder removed from a folder that still holds files: the same id is
        written again and the look says so."""
        folder = tmp_path / "outbox"
        folder.mkdir()
        (folder / "a.png.txt").write_text("text")
        marker = folder / ".ocrwatch" / ".volume"
        volume = Volume(folder, marker)
        volume_id = volume.claim()
        shutil.rmtree(marker.parent)
        assert volume.available() and volume.last.recreated
        assert marker.read_text().strip() == volume_id
        assert volume.available() and not volume.last.recreated

    def test_another_folder_under_the_name_is_away(self, tmp_path: Path) -> None:
        """The folder renamed away and a new one (with files) made under its name: away, and
        nothing is written into the new one."""
        folder = tmp_path / "outbox"
        folder.mkdir()
        marker = folder / ".ocrwatch" / ".volume"
        volume = Volume(folder, marker)
        volume.claim()
        folder.rename(tmp_path / "outbox.old")
        folder.mkdir()
        (folder / "stranger.txt").write_text("x")
        assert not volume.available()
        assert "not the folder" in volume.last.why
        assert not marker.parent.exists()

    def test_unwritable_folder_is_away(self, tmp_path: Path) -> None:
        """The marker cannot be written again (a read-only folder): away, saying why."""
        folder = tmp_path / "outbox"
        folder.mkdir()
        (folder / "keep.txt").write_text("x")
        marker = folder / ".ocrwatch" / ".volume"
        volume = Volume(folder, marker)
        volume.claim()
        shutil.rmtree(marker.parent)
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            assert not volume.available()
            assert "cannot be written" in volume.last.why
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)

    def test_mounts_say_so_once_whoever_looked(self, stages: Stages) -> None:
        """A marker remade by another stage's look (disposition asks too) is still reported
        by the next refresh as the inbox come back (to look for the lost work area), once."""
        (stages.layout.inbox / "waiting.png").write_bytes(b"x")
        shutil.rmtree(stages.layout.work_root)
        assert stages.mounts.inbox.available()
        assert stages.mounts.refresh() == (True, False)
        assert stages.mounts.refresh() == (False, False)
        assert stages.layout.inbox_marker.is_file()
