"""Disposition: archive after outputs, bounded retries, quarantine, moves that fail."""

from __future__ import annotations

import json
import time
from pathlib import Path, PurePosixPath

from daemon.conftest import Stages, build
from fsutil import fill_up
from ocrwatch.daemon.journal import Changes, Job, State
from ocrwatch.daemon.messages import Failure, Written
from ocrwatch.support.retry import Category


def claimed(stages: Stages, rel: str = "a.png", data: bytes = b"\x89PNG fake") -> Job:
    """Return a CLAIMED job whose file sits in the work area."""
    job = stages.journal.add(rel)
    work = stages.spool.work_path(PurePosixPath(rel), job.job_id)
    work.parent.mkdir(parents=True, exist_ok=True)
    work.write_bytes(data)
    return stages.journal.update(
        job.job_id, state=State.CLAIMED, changes=Changes(work_path=str(work))
    )


def written(rel: str = "a.png") -> Written:
    return Written(
        sha256="ab" * 32,
        size=9,
        pages=1,
        engines=(("tesseract", "5"),),
        mode="printed",
        attempts=1,
        txt=f"/out/{rel}.txt",
        manifest=f"/out/{rel}.json",
    )


def log_events(stages: Stages) -> list[dict[str, object]]:
    lines = stages.layout.log_file.read_text().splitlines()
    return [json.loads(line) for line in lines]


class TestSuccess:
    """Durable outputs: the original is archived and one document line is logged."""

    def test_archived_with_log_line(self, stages: Stages) -> None:
        """written() ends in ARCHIVED with the original in the archive, byte-identical."""
        job = claimed(stages)
        stages.disposition.written(job, written(), seconds=1.5)
        done = stages.journal.get(job.job_id)
        assert done is not None and done.state is State.ARCHIVED
        assert (stages.layout.archive / "a.png").read_bytes() == b"\x89PNG fake"
        [line] = log_events(stages)
        assert line["event"] == "document.processed" and line["outcome"] == "ok"
        assert line["mode"] == "printed" and line["engine"] == "tesseract"

    def test_failed_move_never_reruns_recognition(self, tmp_path: Path, small_tmpfs: Path) -> None:
        """A full archive leaves the job WRITTEN with a counted, growing backoff; once
        there is room, resume() moves it (no new recognition attempt)."""
        stages = build(tmp_path, archive=str(small_tmpfs / "archive"))
        fill_up(small_tmpfs)
        job = claimed(stages, data=b"x" * 100_000)
        stages.disposition.written(job, written(), seconds=1.0)
        job = stages.journal.get(job.job_id)  # type: ignore[assignment]
        assert job.state is State.WRITTEN and job.move_failures == 1 and job.attempts == 1
        stages.disposition.resume(job)
        job = stages.journal.get(job.job_id)  # type: ignore[assignment]
        assert job.state is State.WRITTEN and job.move_failures == 2
        retries = [x for x in log_events(stages) if x["event"] == "document.retry_scheduled"]
        assert [x["reason"] for x in retries] == ["finish_failed", "finish_failed"]
        (small_tmpfs / "ballast").unlink()
        stages.disposition.resume(job)
        job = stages.journal.get(job.job_id)  # type: ignore[assignment]
        assert job.state is State.ARCHIVED and job.attempts == 1
        stages.journal.close()


class TestFailures:
    """Failures by category: retried with backoff, or quarantined with a reason file."""

    def test_transient_is_scheduled(self, stages: Stages) -> None:
        """A transient failure sets RETRY and a due time; due() hands the job back later."""
        job = claimed(stages)
        failure = Failure(Category.TRANSIENT, "engine_transient", "503")
        stages.disposition.failed(job, failure, seconds=0.1)
        job = stages.journal.get(job.job_id)  # type: ignore[assignment]
        assert job.state is State.RETRY and job.attempts == 1
        assert job.next_attempt_at is not None
        assert stages.disposition.due(now=time.time(), limit=10) == []
        assert stages.disposition.due(now=job.next_attempt_at, limit=10) == [job.job_id]

    def test_crashes_end_in_quarantine(self, stages: Stages) -> None:
        """After retry.file_crashes crashes (2 here) the file is quarantined as engine_crash."""
        job = claimed(stages)
        crash = Failure(Category.CRASH, "engine_crash", "worker died (signal SIGKILL)")
        stages.disposition.failed(job, crash, seconds=1)
        stages.disposition.failed(stages.journal.get(job.job_id), crash, seconds=1)  # type: ignore[arg-type]
        job = stages.journal.get(job.job_id)  # type: ignore[assignment]
        assert job.state is State.QUARANTINED and job.reason == "engine_crash"
        reason = json.loads((stages.layout.quarantine / "a.png.reason.json").read_text())
        assert reason["reason"] == "engine_crash" and reason["crashes"] == 2

    def test_permanent_goes_at_once(self, stages: Stages) -> None:
        """A permanent failure is quarantined on its first attempt."""
        job = claimed(stages)
        stages.disposition.failed(
            job, Failure(Category.PERMANENT, "corrupt_file", "bad"), seconds=0
        )
        assert stages.journal.get(job.job_id).state is State.QUARANTINED  # type: ignore[union-attr]
        assert (stages.layout.quarantine / "a.png").read_bytes() == b"\x89PNG fake"


class TestAdmit:
    """Before an attempt: vanished files, shares that blinked, duplicates."""

    def test_vanished_with_inbox_there_is_closed(self, stages: Stages) -> None:
        """A claimed file removed by someone while the inbox is there: closed as missing."""
        job = claimed(stages)
        Path(job.work_path or "").unlink()
        assert stages.disposition.admit(job, in_flight_sha256=set()) is None
        assert stages.journal.get(job.job_id).reason == "missing"  # type: ignore[union-attr]

    def test_vanished_with_inbox_away_waits(self, stages: Stages) -> None:
        """The same while the inbox is away (another share's marker there): not closed."""
        job = claimed(stages)
        Path(job.work_path or "").unlink()
        stages.layout.inbox_marker.write_text("another-share\n")
        assert stages.disposition.admit(job, in_flight_sha256=set()) is None
        assert stages.journal.get(job.job_id).state is State.CLAIMED  # type: ignore[union-attr]
        assert stages.disposition.retries

    def test_outbox_away_moves_nothing(self, stages: Stages) -> None:
        """With the outbox away (another share's marker there) nothing is created there; the
        move is retried. (A marker merely deleted is written again: see test_volume.py.)"""
        job = claimed(stages)
        stages.layout.outbox_marker.write_text("another-share\n")
        stages.disposition.written(job, written(), seconds=1.0)
        assert not (stages.layout.archive / "a.png").exists()
        job = stages.journal.get(job.job_id)  # type: ignore[assignment]
        assert job.state is State.WRITTEN and job.move_failures == 1
        assert Path(job.work_path or "").is_file()
