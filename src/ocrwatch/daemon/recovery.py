"""Picking up after a stop or a crash: the first unfinished step of every job, redone.

At start the daemon reads its journal and its work area and gets back a :class:`Recovery`:
which inbox files to look at again, which claimed jobs to run now or at their scheduled
retry, and which jobs only have their original left to move (outputs already durable).
Journal entries whose step is proven done are closed here. Because every step is
idempotent (a claim is a rename, outputs replace their own earlier copy, moves reuse a
target with the same content), redoing a step that had in fact completed is harmless.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import structlog

from ocrwatch.daemon.journal import Changes, Job, Journal, State
from ocrwatch.daemon.spool import Spool
from ocrwatch.settings.choices import AfterSuccess
from ocrwatch.support import fsutil
from ocrwatch.support.fsutil import display

__all__ = ["Recovery", "recover"]

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Recovery:
    """What to do with the jobs an earlier run left unfinished."""

    #: (relpath, job id): wait in the inbox again (not claimed, or the claim never happened).
    rediscover: tuple[tuple[str, str], ...] = ()
    #: Claimed job ids to run now.
    ready: tuple[str, ...] = ()
    #: (wall time, job id): claimed jobs waiting for a scheduled retry.
    retries: tuple[tuple[float, str], ...] = ()
    #: Job ids whose outputs are durable: only the original is left to move.
    finish: tuple[str, ...] = ()
    #: Job ids closed here (the move had completed before the crash): log their line.
    closed: tuple[str, ...] = ()

    @property
    def resumed(self) -> int:
        """Return how many claimed jobs are picked up again."""
        return len(self.ready) + len(self.retries) + len(self.finish)


def recover(
    journal: Journal, spool: Spool, *, after_success: Callable[[str], AfterSuccess]
) -> Recovery:
    """Return what to redo for ``journal``'s unfinished jobs and ``spool``'s leftovers.

    Updates the journal: jobs back in the inbox become DISCOVERED, a job whose original left
    the work area after its outputs were written is closed, and every file in the work area
    is resumed: one without a journal entry (or whose entry was closed while its share was
    away, or which a dead peer left behind) is CLAIMED again.
    """
    plan = _Plan()
    known: set[str] = set()
    for job in journal.unfinished():
        known.add(job.job_id)
        _plan_job(plan, journal, spool, job, after_success)
    for job_id, relpath, path in spool.leftovers():
        if job_id not in known:
            plan.ready.append(_adopt(journal, job_id, relpath, path))
    return Recovery(
        rediscover=tuple(plan.rediscover),
        ready=tuple(plan.ready),
        retries=tuple(plan.retries),
        finish=tuple(plan.finish),
        closed=tuple(plan.closed),
    )


@dataclass(slots=True)
class _Plan:
    rediscover: list[tuple[str, str]] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    retries: list[tuple[float, str]] = field(default_factory=list)
    finish: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


def _plan_job(
    plan: _Plan,
    journal: Journal,
    spool: Spool,
    job: Job,
    after_success: Callable[[str], AfterSuccess],
) -> None:
    """Put ``job`` in the part of ``plan`` that redoes its first unfinished step."""
    work = Path(job.work_path) if job.work_path else None
    claimed = work is not None and os.path.lexists(work)
    if job.state in (State.DISCOVERED, State.STABLE):
        journal.update(job.job_id, state=State.DISCOVERED)
        plan.rediscover.append((job.relpath, job.job_id))
    elif job.state in (State.WRITTEN, State.REJECTED) and claimed:
        plan.finish.append(job.job_id)
    elif claimed:
        if job.state is State.RETRY and job.next_attempt_at:
            plan.retries.append((job.next_attempt_at, job.job_id))
        else:
            plan.ready.append(job.job_id)
    elif job.state in (State.WRITTEN, State.REJECTED):
        # The original left the work area after the decision was durable: the move
        # completed, only its journal entry is missing.
        state = _moved_state(job.state, after_success(job.relpath))
        final = _find_moved(spool, job) if state is not State.DELETED else None
        changes = Changes(last_error="recovered after a crash", final_path=final)
        journal.update(job.job_id, state=state, changes=changes)
        plan.closed.append(job.job_id)
    else:
        # Claim intent journaled but the rename never happened (or another daemon won):
        # rediscover from the inbox.
        journal.update(job.job_id, state=State.DISCOVERED, changes=Changes(work_path=None))
        plan.rediscover.append((job.relpath, job.job_id))


def _find_moved(spool: Spool, job: Job) -> str | None:
    """Return where an interrupted move put ``job``'s original (same sha256), if found."""
    root = spool.layout.quarantine if job.state is State.REJECTED else spool.layout.archive
    for candidate in itertools.islice(fsutil.candidates(root / job.relpath), 50):
        if not candidate.is_file():
            continue
        with candidate.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        if job.sha256 is None or digest == job.sha256:
            return str(candidate)
    return None


def _moved_state(state: State, after_success: AfterSuccess) -> State:
    if state is State.REJECTED:
        return State.QUARANTINED
    return State.DELETED if after_success is AfterSuccess.DELETE else State.ARCHIVED


def _adopt(journal: Journal, job_id: str, relpath: PurePosixPath, path: Path) -> str:
    """Make the work-area file ``path`` a CLAIMED job again; return its job id."""
    st = os.lstat(path)
    changes = Changes(
        work_path=str(path),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        final_path=None,
        reason=None,
        last_error="found in the work area; resumed",
    )
    existing = journal.get(job_id)
    if existing is None:
        journal.add(str(relpath), state=State.CLAIMED, job_id=job_id, changes=changes)
    else:
        # Closed while the file was out of reach (a share that blinked): it was never done.
        log.warning(
            "spool.resumed",
            relpath=display(existing.relpath),
            was=existing.state.value,
            reason=existing.reason,
        )
        journal.update(job_id, state=State.CLAIMED, changes=changes)
    return job_id
