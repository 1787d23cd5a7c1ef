"""``ocrwatch run`` on one host: deleted marker folders, a state disk that fills, start checks.

Real daemon subprocesses, real signals, real tmpfs filesystems (CI runs as root).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.conftest import Daemon, Folders, base_env, wait_until, write_doc
from fsutil import fill_up
from ocrwatch.exceptions import ExitCode

pytestmark = pytest.mark.e2e


def processed(folders: Folders) -> set[object]:
    """Return the relpaths with a document.processed line (logged after the archive move)."""
    return {x["relpath"] for x in folders.log_lines() if x["event"] == "document.processed"}


def mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed (these tests need root): {proc.stderr}")


def start_once(daemon: Daemon, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``ocrwatch run`` for a start that is expected to end by itself."""
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", "run", *daemon.args, *extra],
        env=daemon.env,
        cwd=daemon.folders.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestMarkerFolders:
    """A marker folder deleted while its inbox or outbox stays is made again; work goes on."""

    @pytest.mark.parametrize("which", ["inbox", "outbox"])
    def test_deleted_marker_folder_is_made_again(
        self, folders: Folders, make_daemon: Callable[..., Daemon], which: str
    ) -> None:
        """``rm -rf INBOX/.ocrwatch-work`` (or ``OUTBOX/.ocrwatch``) while the daemon runs:
        the marker is written again (logged once), nothing pauses, new files are read."""
        daemon = make_daemon(rescan_interval=300).start()
        write_doc(folders.inbox / "first.png", 1)
        wait_until(lambda: processed(folders) >= {"first.png"}, timeout=60, what="first.png")
        marker_folder = folders.work if which == "inbox" else folders.outbox / ".ocrwatch"
        shutil.rmtree(marker_folder)
        inputs = [f"after{i}.png" for i in range(3)]
        for i, rel in enumerate(inputs):
            write_doc(folders.inbox / rel, i + 2)
        wait_until(lambda: processed(folders) >= set(inputs), timeout=60, what="new files")
        assert (marker_folder / ".volume").is_file()
        assert daemon.count("folder.marker_recreated") == 1, daemon.output()
        assert not daemon.count(f"{which}.unavailable"), daemon.output()
        for rel in inputs:
            assert len(folders.sidecars(rel)) == 1 and (folders.archive / rel).is_file(), rel
        assert daemon.alive() and daemon.stop() == 0
        assert not daemon.count("daemon.internal_error"), daemon.output()

    def test_share_really_gone_still_pauses(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """The outbox share unmounted and something written onto the bare mount point (not
        empty, but another folder): paused, no marker is written there; back on remount."""
        share = folders.root / "nas-out"
        share.mkdir()
        mount("--bind", str(share), str(folders.outbox))
        try:
            daemon = make_daemon().start()
            subprocess.run(["umount", "-l", str(folders.outbox)], check=True)
            wait_until(lambda: daemon.event_seen("outbox.unavailable"), timeout=20, what="pause")
            (folders.outbox / "local-file").write_text("on the mount point's own disk")
            for n in (1, 2):  # two turns of the loop (each starts with the mount check)
                daemon.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
                wait_until(
                    lambda n=n: daemon.count("daemon.reload_ignored") >= n,  # type: ignore[misc]
                    timeout=20,
                    what="a turn of the loop",
                )
            assert not (folders.outbox / ".ocrwatch").exists()
            assert not daemon.count("folder.marker_recreated"), daemon.output()
            mount("--bind", str(share), str(folders.outbox))
            wait_until(lambda: daemon.event_seen("outbox.available"), timeout=20, what="back")
            write_doc(folders.inbox / "a.png", 1)
            wait_until(lambda: processed(folders) >= {"a.png"}, timeout=60, what="a.png")
            assert (share / "a.png.txt").is_file()
            assert daemon.alive() and daemon.stop() == 0
        finally:
            subprocess.run(["umount", "-l", str(folders.outbox)], capture_output=True, check=False)


class TestStateDisk:
    """The journal's disk is full at a restart, or fills a second time."""

    def test_full_disk_at_restart_exits_75_and_keeps_the_journal(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        make_tmpfs: Callable[[Path, str], Path],
    ) -> None:
        """A restart on an existing journal with its disk full: exit 75 (systemd starts it
        again), a message saying to free space and that the journal is kept (not to move
        it away); once space returns the next start reads the inbox."""
        state = make_tmpfs(folders.root / "statefs", "1m")
        daemon = make_daemon(state=state / "s").start()
        write_doc(folders.inbox / "a.png", 1)
        wait_until(lambda: processed(folders) >= {"a.png"}, timeout=60, what="a.png")
        assert daemon.stop() == 0
        journal = state / "s" / "journal.sqlite3"
        assert journal.is_file()
        fill_up(state)
        write_doc(folders.inbox / "b.png", 2)
        proc = start_once(daemon)
        assert proc.returncode == int(ExitCode.TEMPFAIL) == 75, proc.stderr
        assert "journal is kept" in proc.stderr and "move" not in proc.stderr, proc.stderr
        assert str(state / "s") in proc.stderr, proc.stderr
        assert journal.is_file()
        (state / "ballast").unlink()
        daemon.start()
        wait_until(lambda: processed(folders) >= {"b.png"}, timeout=60, what="b.png")
        assert daemon.stop() == 0

    def test_second_fill_pauses_again(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        make_tmpfs: Callable[[Path, str], Path],
    ) -> None:
        """The state disk fills, is freed, fills again (four times): while it is full files
        wait (intake pauses with one warning, or the journal's WAL still has room), and once
        space returns every file is read; never an internal error loop. SQLite's own WAL grew
        into the freed space and kept the disk full for good from the third fill on."""
        state = make_tmpfs(folders.root / "statefs", "1m")
        daemon = make_daemon(state=state / "s").start()
        for fill in range(1, 5):
            fill_up(state)
            inputs = {f"r{fill}-{i}.png" for i in range(5)}
            pauses = daemon.count("journal.unavailable")
            for i, rel in enumerate(sorted(inputs)):
                write_doc(folders.inbox / rel, i)
            try:
                wait_until(
                    lambda i=inputs, n=pauses: (  # type: ignore[misc]
                        daemon.count("journal.unavailable") > n or processed(folders) >= i
                    ),
                    timeout=30,
                    what=f"a pause or the files, disk full ({fill})",
                )
                (state / "ballast").unlink()
                wait_until(
                    lambda i=inputs: processed(folders) >= i,  # type: ignore[misc]
                    timeout=60,
                    what=f"the files once space returned ({fill})",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{daemon.output()}") from None
            assert not daemon.count("daemon.internal_error"), daemon.output()
        assert daemon.count("journal.unavailable") >= 1
        assert daemon.count("journal.unavailable") == daemon.count("journal.available")
        assert daemon.alive() and daemon.stop() == 0
        assert not daemon.count("daemon.internal_error"), daemon.output()


class TestStartChecks:
    """Settings that can never work are refused at start (exit 3), naming what is wrong."""

    def test_unknown_language_refused(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """``run --lang xx`` exits 3 naming xx, as ``ocr`` and ``check`` do; no file is taken."""
        write_doc(folders.inbox / "a.png", 1)
        daemon = make_daemon()
        proc = start_once(daemon, "--lang", "xx")
        assert proc.returncode == int(ExitCode.CONFIG) == 3, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "xx" in lines[0], proc.stderr
        assert (folders.inbox / "a.png").is_file() and not folders.claimed()

    @pytest.mark.parametrize(
        ("pattern", "words"),
        [
            ("/abs/**", ["absolute"]),
            ("../**", [".."]),
            ("[", ["["]),
        ],
    )
    def test_pattern_that_never_matches_refused(
        self, folders: Folders, pattern: str, words: list[str]
    ) -> None:
        """A profile pattern no inbox path can match: exit 3 naming the profile and why."""
        config = folders.root / "ocrwatch.toml"
        config.write_text(
            f'[[profiles]]\nmatch = {json.dumps(pattern)}\nlanguages = "eng"\n',
            encoding="utf-8",
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "ocrwatch",
                "run",
                "--config",
                str(config),
                "--inbox",
                str(folders.inbox),
                "--outbox",
                str(folders.outbox),
                "--state-dir",
                str(folders.state),
            ],
            env=base_env(folders.root),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "profile" in lines[0], proc.stderr
        for word in words:
            assert word in lines[0], proc.stderr


class TestPeers:
    """A peer that dies holding claimed files."""

    def test_dead_peer_claims_adopted_at_the_lease(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """A peer alive when this daemon starts dies holding claimed files: they are adopted
        once its heartbeat is ``peer_lease`` old, not at the next periodic rescan (600 s)."""
        first = make_daemon(workers=1, file_timeout=600).start()
        inputs = [f"p{i}.png" for i in range(6)]
        for i, rel in enumerate(inputs):
            write_doc(folders.inbox / rel, i, size=30)
        wait_until(lambda: folders.claimed(), timeout=30, what="claimed files")
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGKILL)  # the daemon and its workers, at once
        first.proc.wait(timeout=30)
        stranded = folders.claimed()
        assert stranded
        second = make_daemon(
            name="second", state=folders.root / "state2", peer_lease=15, rescan_interval=600
        ).start()
        assert not second.count("spool.adopted"), "the peer was taken for dead at start"
        wait_until(lambda: processed(folders) >= set(inputs), timeout=60, what="every file")
        for rel in inputs:
            assert len(folders.sidecars(rel)) == 1, rel
        assert not folders.claimed()
        assert second.count("spool.adopted") >= 1
        assert second.stop() == 0
