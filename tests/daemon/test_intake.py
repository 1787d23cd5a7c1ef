"""Intake: seen -> quiet -> probed -> claimed, or a rejection; the journal as it goes."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.conftest import Stages, build
from fsutil import fill_up
from imaging import render_lines, save
from ocrwatch.daemon.intake import Rejection
from ocrwatch.daemon.journal import State
from ocrwatch.daemon.messages import Failure, ProbeReport, ProbeTask, Result
from ocrwatch.support.retry import Category


def drop(stages: Stages, rel: str) -> Path:
    path = stages.layout.inbox / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(render_lines(["hello"], size=24), path)


def settle(stages: Stages, rel: str) -> ProbeTask:
    """Let ``rel`` pass the (zero) quiet period; return its probe task."""
    stages.intake.seen(stages.layout.inbox / rel)
    assert stages.intake.check_gate() == []  # first sample
    assert stages.intake.check_gate() == []  # unchanged: queued for a probe
    probe = stages.intake.next_probe()
    assert probe is not None and probe.relpath == rel
    return probe


def report(probe: ProbeTask) -> Result:
    return Result(probe, ProbeReport(sha256="ab" * 32, size=1, format="png", pages=1))


class TestClaim:
    """A stable, decodable file is claimed by rename and journaled on the way."""

    def test_probe_ok_claims_into_the_work_area(self, stages: Stages) -> None:
        """The answer of a good probe moves the file into the work area: CLAIMED."""
        drop(stages, "sub/a.png")
        probe = settle(stages, "sub/a.png")
        assert stages.journal.get(probe.job_id).state is State.STABLE  # type: ignore[union-attr]
        job = stages.intake.probe_answered(report(probe))
        assert not isinstance(job, Rejection) and job is not None
        assert job.state is State.CLAIMED and job.sha256 == "ab" * 32
        assert Path(job.work_path or "").is_file()
        assert not (stages.layout.inbox / "sub" / "a.png").exists()

    def test_name_that_is_not_utf8(self, stages: Stages) -> None:
        """A Latin-1 name is journaled and claimed like any other."""
        rel = os.fsdecode(b"caf\xe9.png")
        drop(stages, rel)
        job = stages.intake.probe_answered(report(settle(stages, rel)))
        assert job is not None and not isinstance(job, Rejection)
        assert job.relpath == rel and Path(job.work_path or "").is_file()

    def test_lost_claim_race_leaves_no_phantom(self, stages: Stages) -> None:
        """The file vanished before the rename (another daemon took it): no row is left."""
        path = drop(stages, "a.png")
        probe = settle(stages, "a.png")
        os.unlink(path)
        assert stages.intake.probe_answered(report(probe)) is None
        assert stages.journal.unfinished() == []


class TestRejections:
    """What will never be processed comes back as a rejection, already claimed."""

    def test_unsupported_extension(self, stages: Stages) -> None:
        """A .docx is claimed and returned with reason unsupported_format."""
        (stages.layout.inbox / "notes.docx").write_bytes(b"PK\x03\x04")
        stages.intake.seen(stages.layout.inbox / "notes.docx")
        stages.intake.check_gate()
        [rejection] = stages.intake.check_gate()
        assert rejection.reason == "unsupported_format"
        assert Path(rejection.job.work_path or "").is_file()

    def test_incomplete_probe_waits_then_rejects(self, tmp_path: Path) -> None:
        """A probe that fails as incomplete is retried until the window closes."""
        stages = build(tmp_path, incomplete_timeout=0.0)
        drop(stages, "zeros.png")
        probe = settle(stages, "zeros.png")
        failure = Failure(Category.INCOMPLETE, "unsupported_format", "only zero bytes so far")
        answer = stages.intake.probe_answered(Result(probe, failure))
        assert isinstance(answer, Rejection) and answer.reason == "unsupported_format"
        stages.journal.close()

    def test_incomplete_probe_is_retried(self, stages: Stages) -> None:
        """Within the window the file stays in the inbox, waiting for another probe."""
        drop(stages, "zeros.png")
        probe = settle(stages, "zeros.png")
        failure = Failure(Category.INCOMPLETE, "corrupt_file", "truncated")
        assert stages.intake.probe_answered(Result(probe, failure)) is None
        assert (stages.layout.inbox / "zeros.png").exists()
        assert stages.intake.gate.probe_failures("zeros.png") == 1


class TestFullStateDisk:
    """Arrivals wait in memory while the journal cannot be written."""

    def test_unjournaled_then_journaled(self, tmp_path: Path, small_tmpfs: Path) -> None:
        """journal_ok turns False on a full state disk and True again once space returns."""
        stages = build(tmp_path, state_dir=small_tmpfs / "state")
        fill_up(small_tmpfs)
        for i in range(3):
            drop(stages, f"f{i}.png")
            stages.intake.seen(stages.layout.inbox / f"f{i}.png")
        assert not stages.intake.journal_ok
        assert len(stages.intake.unjournaled) == 3
        (small_tmpfs / "ballast").unlink()
        stages.intake.retry_unjournaled()
        assert stages.intake.journal_ok
        assert len(stages.journal.unfinished()) == 3
        stages.journal.close()
