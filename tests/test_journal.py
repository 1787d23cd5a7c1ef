"""The SQLite journal: transitions, queries, and surviving a crash (reopen)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrwatch.daemon.journal import JOURNAL_NAME, TERMINAL_STATES, Changes, Journal, State


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / JOURNAL_NAME)
    yield j  # type: ignore[misc]
    j.close()


class TestTransitions:
    """Jobs move through states; fields are kept; terminal states get a finish time."""

    def test_add_and_update(self, journal: Journal) -> None:
        """A job goes discovered -> claimed -> written -> archived with its fields."""
        job = journal.add("a/scan.pdf", changes=Changes(size=10))
        assert job.state is State.DISCOVERED
        assert journal.active_for("a/scan.pdf") == job
        job = journal.update(job.job_id, state=State.CLAIMED, changes=Changes(work_path="/w/x"))
        assert job.work_path == "/w/x"
        job = journal.update(
            job.job_id,
            state=State.WRITTEN,
            changes=Changes(outputs={"txt": "/o/a.txt", "manifest": "/o/a.json"}, sha256="ab"),
        )
        assert job.outputs == {"txt": "/o/a.txt", "manifest": "/o/a.json"}
        assert job.finished_at is None
        job = journal.update(job.job_id, state=State.ARCHIVED)
        assert job.finished_at is not None
        assert journal.active_for("a/scan.pdf") is None
        assert journal.last_success() == job.finished_at

    def test_unknown_job_and_field(self, journal: Journal) -> None:
        """Updating a missing job raises KeyError; an unknown field raises TypeError."""
        with pytest.raises(KeyError):
            journal.update("nope", state=State.CLAIMED)
        with pytest.raises(TypeError):
            Changes(colour="red")  # type: ignore[call-arg]

    def test_names_that_are_not_utf8(self, journal: Journal) -> None:
        """A Latin-1 name (surrogate-escaped) is stored, found by name and read back intact."""
        name = os.fsdecode(b"caf\xe9/r\xe9sum\xe9.png")
        job = journal.add(name, changes=Changes(size=3))
        assert journal.active_for(name) == job and job.relpath == name
        work = os.fsdecode(b"/w/caf\xe9.png")
        job = journal.update(job.job_id, state=State.CLAIMED, changes=Changes(work_path=work))
        assert journal.get(job.job_id) == job and job.work_path == work
        assert journal.active_for("caf\u00e9/r\u00e9sum\u00e9.png") is None  # another name
        journal.update(job.job_id, state=State.KEPT, changes=Changes(mtime_ns=5))
        assert journal.kept(name, size=3, mtime_ns=5) is not None

    def test_counts_failures_and_unfinished(self, journal: Journal) -> None:
        """counts() lists every state; failures and unfinished are found."""
        a = journal.add("a.png")
        b = journal.add("b.png")
        c = journal.add("c.png")
        journal.update(a.job_id, state=State.QUARANTINED, changes=Changes(reason="corrupt_file"))
        journal.update(
            b.job_id, state=State.RETRY, changes=Changes(reason="os_enospc", next_attempt_at=1.0)
        )
        counts = journal.counts()
        assert set(counts) == {s.value for s in State}
        assert counts["quarantined"] == 1 and counts["retry"] == 1 and counts["discovered"] == 1
        assert {j.relpath for j in journal.recent_failures()} == {"a.png", "b.png"}
        assert [j.job_id for j in journal.unfinished()] == [b.job_id, c.job_id]
        assert all(s not in TERMINAL_STATES for s in (State.RETRY, State.CLAIMED))

    def test_duplicate_lookup_and_ledger(self, journal: Journal) -> None:
        """done_with_sha256 finds a finished original; kept() finds a file version."""
        a = journal.add("a.png", changes=Changes(sha256="h", size=3, mtime_ns=7))
        journal.update(a.job_id, state=State.KEPT, changes=Changes(outputs={"txt": "t"}))
        b = journal.add("b.png", changes=Changes(sha256="h"))
        assert journal.done_with_sha256("h", exclude=b.job_id) is not None
        assert journal.done_with_sha256("other", exclude=b.job_id) is None
        assert journal.kept("a.png", size=3, mtime_ns=7) is not None
        assert journal.kept("a.png", size=4, mtime_ns=7) is None

    def test_remove_only_undiscovered(self, journal: Journal) -> None:
        """remove() drops jobs that never got claimed and nothing else."""
        a = journal.add("a.png")
        b = journal.add("b.png", state=State.CLAIMED)
        journal.remove(a.job_id)
        journal.remove(b.job_id)
        assert journal.get(a.job_id) is None
        assert journal.get(b.job_id) is not None


class TestCrashSafety:
    """Committed transitions survive a killed process; the instance id is stable."""

    def test_reopen_after_kill(self, tmp_path: Path) -> None:
        """A child commits a transition and is SIGKILLed; the parent reads it back."""
        db = tmp_path / JOURNAL_NAME
        code = (
            "import os, signal, sys\n"
            "from pathlib import Path\n"
            "from ocrwatch.daemon.journal import Changes, Journal, State\n"
            f"j = Journal(Path({str(db)!r}))\n"
            "job = j.add('a.png')\n"
            "j.update(job.job_id, state=State.CLAIMED, changes=Changes(work_path='/w/a.png'))\n"
            "print(job.job_id, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == -9
        job_id = proc.stdout.strip()
        j = Journal(db)
        try:
            job = j.get(job_id)
            assert job is not None and job.state is State.CLAIMED and job.work_path == "/w/a.png"
            assert j.unfinished() == [job]
        finally:
            j.close()

    def test_instance_id_is_stable_and_readonly_works(self, tmp_path: Path) -> None:
        """The daemon id persists; a read-only reader sees the data."""
        db = tmp_path / JOURNAL_NAME
        j = Journal(db)
        first = j.instance_id()
        j.add("a.png")
        j.close()
        j = Journal(db)
        assert j.instance_id() == first
        j.close()
        ro = Journal(db, readonly=True)
        try:
            assert ro.counts()["discovered"] == 1
        finally:
            ro.close()
        assert os.path.exists(db)
