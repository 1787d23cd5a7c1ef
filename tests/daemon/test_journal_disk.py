"""The journal on a real small filesystem (tmpfs, as root) that fills up again and again."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsutil import fill_up
from ocrwatch.daemon.journal import Changes, State, open_journal


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root, as CI runs); unmounted at teardown."""
    disk = tmp_path / "disk"
    disk.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (run as root): {proc.stderr}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


class TestFillsAgain:
    """The WAL never keeps the disk full once space is freed."""

    def test_writes_resume_after_each_fill(self, small_disk: Path) -> None:
        """Five times: the disk fills (writes fail with SQLITE_FULL), space is freed, and
        170 jobs are journaled again. SQLite's own WAL (checkpointed only past 4 MB, never
        shrunk) grew into the freed space and failed every write from the third fill on."""
        journal, _ = open_journal(small_disk / "s" / "journal.sqlite3")
        try:
            for fill in range(5):
                fill_up(small_disk)
                with pytest.raises(sqlite3.OperationalError) as info:
                    for k in range(40):
                        journal.add(f"full{fill}-{k}.png", changes=Changes(sha256="x" * 64))
                assert info.value.sqlite_errorname == "SQLITE_FULL"
                (small_disk / "ballast").unlink()
                for k in range(170):
                    job = journal.add(f"free{fill}-{k}.png")
                    changes = Changes(sha256="x" * 64, outputs={"txt": "a" * 200})
                    journal.update(job.job_id, state=State.ARCHIVED, changes=changes)
                wal = small_disk / "s" / "journal.sqlite3-wal"
                assert os.path.getsize(wal) <= 64 * 4096 + 65536, os.path.getsize(wal)
        finally:
            journal.close()

    def test_worker_seen_on_a_full_disk_is_skipped(self, small_disk: Path) -> None:
        """Recording a worker (only for status) never fails a result on a full disk."""
        journal, _ = open_journal(small_disk / "s" / "journal.sqlite3")
        try:
            fill_up(small_disk)
            for i in range(200):
                journal.worker_seen(f"host:{i}", 1.0)
        finally:
            journal.close()
