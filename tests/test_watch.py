"""The watcher: junk filter, filesystem detection, a real observer on tmp_path."""

from __future__ import annotations

import queue
import time
from pathlib import Path, PurePosixPath

import pytest

from ocrwatch.daemon.watch import Watcher, choose_mode, filesystem_type, is_junk, scan
from ocrwatch.settings.choices import WatchMode


def wait_for(pred: object, *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


class TestJunk:
    """OS/NAS junk and in-progress names are ignored; real scans are not."""

    @pytest.mark.parametrize(
        "path",
        [
            "._scan.pdf",
            ".DS_Store",
            "Thumbs.db",
            "desktop.ini",
            "@eaDir/scan.pdf",
            "a/#recycle/x.png",
            ".stfolder/x",
            ".stversions/x.png",
            "__MACOSX/scan.png",
            ".Trash-1000/x.png",
            "scan.pdf.part",
            "scan.partial",
            "x.tmp",
            "x.TEMP",
            "~scan.pdf",
            "y.crdownload",
            "y.download",
            ".~lock.doc#",
            "z.swp",
            ".hidden.png",
            ".ocrwatch-work/abc/j/x.png",
        ],
    )
    def test_junk(self, path: str) -> None:
        """Each of these is ignored."""
        assert is_junk(PurePosixPath(path))

    @pytest.mark.parametrize("path", ["scan.pdf", "a/b/photo.JPG", "notes.docx", "2024 ~ x.png"])
    def test_not_junk(self, path: str) -> None:
        """Ordinary names pass (unsupported ones are quarantined later, not skipped)."""
        assert not is_junk(PurePosixPath(path))

    def test_extra_patterns(self) -> None:
        """settings.ignore_patterns extend the list."""
        assert is_junk(PurePosixPath("a/draft-1.png"), extra=["draft-*"])
        assert not is_junk(PurePosixPath("a/final.png"), extra=["draft-*"])

    def test_scan_skips_junk_and_work_area(self, tmp_path: Path) -> None:
        """scan() yields real files in subfolders only."""
        for rel in (
            "a.png",
            "s/b.pdf",
            ".DS_Store",
            "@eaDir/t.png",
            ".ocrwatch-work/x/y/z.png",
            "c.part",
        ):
            p = tmp_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
        found = sorted(p.relative_to(tmp_path).as_posix() for p in scan(tmp_path))
        assert found == ["a.png", "s/b.pdf"]


class TestFilesystem:
    """The event source is chosen by filesystem type from mountinfo."""

    def test_mountinfo_parsing(self, tmp_path: Path) -> None:
        """The longest matching mount point decides; network types mean polling."""
        info = tmp_path / "mountinfo"
        info.write_text(
            "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
            "40 22 0:50 / /mnt/share rw - cifs //nas/scans rw\n"
            "41 22 0:51 / /mnt/share\\040two rw - nfs4 nas:/x rw\n"
        )
        assert filesystem_type(Path("/mnt/share/in"), mountinfo=info) == "cifs"
        assert filesystem_type(Path("/mnt/share two/in"), mountinfo=info) == "nfs4"
        assert filesystem_type(Path("/mnt/sharex"), mountinfo=info) == "ext4"

    def test_choose_mode(self, tmp_path: Path) -> None:
        """tmp_path is local: auto picks inotify; explicit choices win."""
        assert choose_mode(WatchMode.AUTO, tmp_path)[0] is WatchMode.INOTIFY
        assert choose_mode(WatchMode.POLLING, tmp_path)[0] is WatchMode.POLLING


class TestObserver:
    """A real watchdog observer on tmp_path reports created files."""

    @pytest.mark.parametrize("mode", [WatchMode.AUTO, WatchMode.POLLING])
    def test_sees_created_file(self, tmp_path: Path, mode: WatchMode) -> None:
        """Files created and renamed into place after start are reported (canary passes)."""
        seen: queue.SimpleQueue[Path] = queue.SimpleQueue()
        watcher = Watcher(
            tmp_path, mode=mode, poll_interval=0.1, on_path=seen.put, on_overflow=lambda: None
        )
        try:
            used = watcher.start()
            assert used is (WatchMode.INOTIFY if mode is WatchMode.AUTO else WatchMode.POLLING)
            assert not list(tmp_path.iterdir()), "the canary must be removed"
            (tmp_path / "sub").mkdir()
            (tmp_path / "sub" / "new.png").write_bytes(b"x")
            (tmp_path / "tmpname").write_bytes(b"y")
            (tmp_path / "tmpname").rename(tmp_path / "moved.png")
            got: set[Path] = set()

            def both() -> bool:
                while True:
                    try:
                        got.add(seen.get_nowait())
                    except queue.Empty:
                        break
                return {tmp_path / "sub" / "new.png", tmp_path / "moved.png"} <= got

            assert wait_for(both), got
            assert watcher.alive()
        finally:
            watcher.stop()
        assert not watcher.alive()

    def test_dead_observer_restarts(self, tmp_path: Path) -> None:
        """After the observer dies, restart() brings back a working one."""
        seen: queue.SimpleQueue[Path] = queue.SimpleQueue()
        watcher = Watcher(
            tmp_path,
            mode=WatchMode.INOTIFY,
            poll_interval=0.1,
            on_path=seen.put,
            on_overflow=lambda: None,
        )
        try:
            watcher.start()
            watcher._observer.stop()  # type: ignore[union-attr]
            assert wait_for(lambda: not watcher.alive())
            watcher.restart()
            assert watcher.alive()
            (tmp_path / "after.png").write_bytes(b"x")
            assert wait_for(lambda: not seen.empty() and seen.get() == tmp_path / "after.png")
        finally:
            watcher.stop()


class TestOverflow:
    """watchdog only logs a kernel queue overflow; the watcher turns that into a rescan."""

    def test_overflow_log_requests_rescan(self, tmp_path: Path) -> None:
        """The record watchdog's inotify reader emits on IN_Q_OVERFLOW triggers on_overflow."""
        import logging

        calls: list[int] = []
        watcher = Watcher(
            tmp_path,
            mode=WatchMode.INOTIFY,
            poll_interval=0.1,
            on_path=lambda p: None,
            on_overflow=lambda: calls.append(1),
        )
        try:
            watcher.start()
            logging.getLogger("watchdog.observers.inotify_c").warning(
                "Inotify queue overflowed; filesystem events were lost"
            )
            logging.getLogger("watchdog.observers.inotify_c").warning("something else")
        finally:
            watcher.stop()
        assert calls == [1]
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        assert calls == [1], "the hook is removed on stop"


class TestInotifyLimits:
    """When inotify instances run out, the watcher says how to fix it and polls instead."""

    def test_instance_limit_falls_back_to_polling(self, tmp_path: Path) -> None:
        """With every inotify instance of this user taken, start() falls back to polling
        and still reports new files."""
        import ctypes
        import errno
        import os

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        held: list[int] = []
        seen: queue.SimpleQueue[Path] = queue.SimpleQueue()
        watcher = Watcher(
            tmp_path,
            mode=WatchMode.AUTO,
            poll_interval=0.1,
            on_path=seen.put,
            on_overflow=lambda: None,
        )
        try:
            # Take instances until the kernel refuses (max_user_instances, 128 by default).
            for _ in range(100_000):
                fd = libc.inotify_init()
                if fd < 0:
                    assert ctypes.get_errno() == errno.EMFILE
                    break
                held.append(fd)
            used = watcher.start()
        finally:
            for fd in held:
                os.close(fd)  # give the instances back at once: other processes need them
        try:
            assert used is WatchMode.POLLING
            assert "inotify unavailable" in watcher.reason
            (tmp_path / "x.png").write_bytes(b"x")
            assert wait_for(lambda: not seen.empty() and seen.get() == tmp_path / "x.png")
        finally:
            watcher.stop()
