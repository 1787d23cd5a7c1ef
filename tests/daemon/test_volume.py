"""Tests for ocrwatch.daemon.folders.Volume: a share that hangs counts as away, at once."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

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
