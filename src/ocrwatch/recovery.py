"""Picking up after a stop or a crash: the first unfinished step of every job, redone.

At start the daemon reads its journal and its work area and gets back a :class:`Recovery`:
which inbox files to look at again, which claimed jobs to run now or at their scheduled
retry, and which jobs only have their original left to move (outputs already durable).
Journal entries whose step is proven done are closed here. Because every step is
idempotent (a claim is a rename, outputs replace their own earlier copy, moves reuse a
target with the same content), redoing a step that had in fact completed is harmless.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from ocrwatch.config import AfterSuccess
from ocrwatch.journal import TERMINAL_STATES, Journal, State
from ocrwatch.spool import Spool

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

    @property
    def resumed(self) -> int:
        """Return how many claimed jobs are picked up again."""
        return len(self.ready) + len(self.retries) + len(self.finish)


def recover(journal: Journal, spool: Spool, *, after_success: AfterSuccess) -> Recovery:
    """Return what to redo for ``journal``'s unfinished jobs and ``spool``'s leftovers.

    Updates the journal: jobs back in the inbox become DISCOVERED, a job whose original left
    the work area after its outputs were written is closed, and leftovers in the work area
    without a journal entry get one (CLAIMED).
    """
    rediscover: list[tuple[str, str]] = []
    ready: list[str] = []
    retries: list[tuple[float, str]] = []
    finish: list[str] = []
    known: set[str] = set()
    for job in journal.unfinished():
        known.add(job.job_id)
        work = Path(job.work_path) if job.work_path else None
        claimed = work is not None and os.path.lexists(work)
        if job.state in (State.DISCOVERED, State.STABLE):
            journal.update(job.job_id, state=State.DISCOVERED)
            rediscover.append((job.relpath, job.job_id))
        elif job.state is State.WRITTEN and claimed:
            finish.append(job.job_id)
        elif claimed:
            if job.state is State.RETRY and job.next_attempt_at:
                retries.append((job.next_attempt_at, job.job_id))
            else:
                ready.append(job.job_id)
        elif job.state is State.WRITTEN:
            # The original left the work area after the outputs were durable: the
            # archive/delete step completed, only its journal entry is missing.
            final = State.DELETED if after_success is AfterSuccess.DELETE else State.ARCHIVED
            journal.update(job.job_id, state=final, last_error="recovered after a crash")
        else:
            # Claim intent journaled but the rename never happened (or another daemon
            # won): rediscover from the inbox.
            journal.update(job.job_id, state=State.DISCOVERED, work_path=None)
            rediscover.append((job.relpath, job.job_id))
    for job_id, relpath, path in spool.leftovers():
        if job_id in known:
            continue
        existing = journal.get(job_id)
        if existing is not None and existing.state in TERMINAL_STATES:
            log.warning("spool.orphan", path=str(path), state=existing.state.value)
            continue
        st = os.lstat(path)
        journal.add(
            str(relpath),
            state=State.CLAIMED,
            job_id=job_id,
            work_path=str(path),
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            last_error="found in the work area without a journal entry",
        )
        ready.append(job_id)
    return Recovery(
        rediscover=tuple(rediscover),
        ready=tuple(ready),
        retries=tuple(retries),
        finish=tuple(finish),
    )
