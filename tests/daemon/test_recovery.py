"""Recovery: every file in the work area is resumed; completed moves are closed and logged."""

from __future__ import annotations

import os
import time
from pathlib import PurePosixPath

from daemon.conftest import Stages
from ocrwatch.daemon.journal import Changes, State
from ocrwatch.daemon.recovery import recover
from ocrwatch.daemon.spool import HEARTBEAT, Spool
from ocrwatch.settings.choices import AfterSuccess


def plan(stages: Stages):  # type: ignore[no-untyped-def]
    return recover(stages.journal, stages.spool, after_success=lambda _rel: AfterSuccess.ARCHIVE)


class TestLeftovers:
    """Files in the work area are always taken up again."""

    def test_unknown_leftover_is_claimed(self, stages: Stages) -> None:
        """A work-area file with no journal row becomes a CLAIMED job, ready."""
        work = stages.spool.work_path(PurePosixPath("x/a.png"), "job1")
        work.parent.mkdir(parents=True)
        work.write_bytes(b"data")
        result = plan(stages)
        assert result.ready == ("job1",)
        job = stages.journal.get("job1")
        assert job is not None and job.relpath == "x/a.png" and job.state is State.CLAIMED

    def test_closed_while_share_was_away_is_resumed(self, stages: Stages) -> None:
        """A job closed as missing whose file is back in the work area is resumed."""
        job = stages.journal.add("a.png", job_id="job2")
        work = stages.spool.work_path(PurePosixPath("a.png"), "job2")
        stages.journal.update(
            "job2",
            state=State.QUARANTINED,
            changes=Changes(work_path=str(work), reason="missing"),
        )
        work.parent.mkdir(parents=True)
        work.write_bytes(b"data")
        assert plan(stages).ready == ("job2",)
        job = stages.journal.get("job2")  # type: ignore[assignment]
        assert job.state is State.CLAIMED and job.reason is None

    def test_written_and_moved_is_closed_with_its_path(self, stages: Stages) -> None:
        """Killed between the archive move and the journal: closed, final path found."""
        job = stages.journal.add("a.png", changes=Changes(sha256=None))
        work = stages.spool.work_path(PurePosixPath("a.png"), job.job_id)
        stages.journal.update(job.job_id, state=State.WRITTEN, changes=Changes(work_path=str(work)))
        (stages.layout.archive / "a.png").write_bytes(b"data")
        result = plan(stages)
        assert result.closed == (job.job_id,)
        done = stages.journal.get(job.job_id)
        assert done is not None and done.state is State.ARCHIVED
        assert done.final_path == str(stages.layout.archive / "a.png")


class TestPeers:
    """A peer whose heartbeat is older than the lease is dead: its jobs are adopted."""

    def test_dead_peer_adopted_live_peer_left(self, stages: Stages) -> None:
        """Only the silent peer's job folders move into ours."""
        for peer, age in (("dead", 600.0), ("live", 1.0)):
            other = Spool(stages.layout, instance_id=peer)
            work = other.work_path(PurePosixPath("p.png"), f"{peer}-job")
            work.parent.mkdir(parents=True)
            work.write_bytes(b"data")
            other.heartbeat()
            beat = other.work_dir / HEARTBEAT
            old = time.time() - age
            os.utime(beat, (old, old))
        assert stages.spool.adopt_dead_peers(lease=120) == ["dead-job"]
        assert (stages.spool.work_dir / "dead-job" / "p.png").is_file()
        assert plan(stages).ready == ("dead-job",)
