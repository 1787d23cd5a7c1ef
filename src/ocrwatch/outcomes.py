"""What happens to a file after each attempt: retry it, archive it, or quarantine it.

The daemon hands every claimed job here once a worker has answered:

- **recognized**: the sidecar and manifest are durable, so the original is archived, deleted
  or kept (``after_success``) and the job is done;
- **may pass** (engine busy or unreachable, disk full, a crashed worker, an unexpected
  error): a retry is scheduled with capped exponential backoff and the original waits in the
  work area; after too many attempts or crashes the file is quarantined;
- **will not pass** (not an image, corrupt, encrypted, rejected by the engine): the original
  goes to the quarantine with ``<name>.reason.json`` saying why;
- **duplicate** (``duplicates = skip``, same content already done): no sidecar, the original
  is finished like a processed one and the log line names the first file.

When moving the original fails (the archive or quarantine disk is full, a share is gone) it
stays where it is and the move is retried. Outputs already written are never produced again:
a job whose outputs are durable (``WRITTEN``) retries only its move.

Every file gets one canonical ``document.*`` line, on stdout and appended to the outbox's
``ocrwatch.log.jsonl``: ``processed``, ``quarantined`` or ``retry_scheduled``.
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import structlog
from tenacity import RetryCallState, wait_exponential_jitter

from ocrwatch.config import AfterSuccess
from ocrwatch.journal import Job, Journal, State, iso_time
from ocrwatch.worker import Category, Outcome

if TYPE_CHECKING:
    from ocrwatch.config import Settings
    from ocrwatch.spool import Layout, Spool

__all__ = [
    "MAX_BUG_ATTEMPTS",
    "MAX_CRASHES",
    "MAX_TRANSIENT_ATTEMPTS",
    "Outcomes",
    "append_line",
    "backoff",
    "failure_reason",
    "final_state",
    "gives_up",
]

log = structlog.get_logger()

#: A file that crashes or hangs the engine this many times is quarantined (engine_crash).
MAX_CRASHES = 3
#: Transient engine failures are retried this many times in all.
MAX_TRANSIENT_ATTEMPTS = 10
#: Unexpected errors (bugs) are retried this many times in all.
MAX_BUG_ATTEMPTS = 3


def backoff(attempt: int, settings: Settings) -> float:
    """Return the wait in seconds before retry number ``attempt`` (capped, with jitter)."""
    retry = settings.retry
    wait = wait_exponential_jitter(
        initial=max(retry.wait_initial, 0.1), max=max(retry.wait_max, 0.1), jitter=retry.wait_jitter
    )
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    return float(wait(state))


def gives_up(category: Category, *, attempts: int, crashes: int) -> bool:
    """Return True when a failure of ``category`` after so many tries means quarantine.

    Environment failures (disk full, engine missing) never give up: they are not the file's
    fault, and the file waits until the environment is fixed.
    """
    return (
        category is Category.PERMANENT
        or (category is Category.CRASH and crashes >= MAX_CRASHES)
        or (category is Category.TRANSIENT and attempts >= MAX_TRANSIENT_ATTEMPTS)
        or (category is Category.BUG and attempts >= MAX_BUG_ATTEMPTS)
    )


def failure_reason(outcome: Outcome) -> str:
    """Return the reason code recorded for a failed task (crashes and hangs: engine_crash)."""
    return "engine_crash" if outcome.category is Category.CRASH else outcome.reason


def final_state(policy: AfterSuccess) -> State:
    """Return the journal state a finished job ends in under ``after_success = policy``."""
    return {
        AfterSuccess.KEEP: State.KEPT,
        AfterSuccess.DELETE: State.DELETED,
        AfterSuccess.ARCHIVE: State.ARCHIVED,
    }[policy]


def append_line(path: Path, data: bytes) -> None:
    """Append ``data`` (one whole line) to ``path``, or nothing at all; raises OSError.

    On a full disk a write can stop part-way: half a line would also spoil the next one.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        written = 0
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write", str(path))
        except OSError:
            # Take the fragment back, unless another writer appended after it meanwhile.
            if written and os.fstat(fd).st_size == start + written:
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


class Outcomes:
    """Carries out what happens to claimed jobs; owns the retry schedule and the counters."""

    def __init__(
        self, *, settings: Settings, layout: Layout, journal: Journal, spool: Spool
    ) -> None:
        """Act on ``journal``'s jobs, moving originals with ``spool`` per ``settings``."""
        self.settings = settings
        self.layout = layout
        self.journal = journal
        self.spool = spool
        self.keep = settings.after_success is AfterSuccess.KEEP
        #: (wall time, job id): jobs waiting for their next attempt.
        self.retries: list[tuple[float, str]] = []
        self.done = 0
        self.quarantined = 0

    # --- the retry schedule ------------------------------------------------------------------
    def later(self, job_id: str, *, at: float) -> None:
        """Give job ``job_id`` back to the daemon at wall time ``at``."""
        heapq.heappush(self.retries, (at, job_id))

    def due(self, *, now: float, limit: int) -> list[str]:
        """Return (and forget) up to ``limit`` job ids whose retry time has come by ``now``."""
        ids: list[str] = []
        while self.retries and self.retries[0][0] <= now and len(ids) < limit:
            ids.append(heapq.heappop(self.retries)[1])
        return ids

    # --- after a recognition -----------------------------------------------------------------
    def recognized(self, job: Job, outcome: Outcome) -> None:
        """Finish ``job`` after its recognition task: done, retried or quarantined.

        Raises OSError when the original cannot be moved (see :meth:`move_failed`).
        """
        if outcome.ok:
            data = outcome.data
            job = self.journal.update(
                job.job_id,
                state=State.WRITTEN,
                attempts=job.attempts + 1,
                sha256=data.get("sha256"),
                size=data.get("size"),
                pages=data.get("pages"),
                engine=data.get("engine"),
                outputs=data.get("outputs"),
                next_attempt_at=None,
            )
            self.complete(job, duration_s=round(outcome.seconds, 3), mode=data.get("mode"))
            return
        attempts = job.attempts + 1
        crashes = job.crashes + (1 if outcome.category is Category.CRASH else 0)
        job = self.journal.update(
            job.job_id, attempts=attempts, crashes=crashes, last_error=outcome.message
        )
        if gives_up(outcome.category, attempts=attempts, crashes=crashes):
            self.quarantine(
                job,
                reason=failure_reason(outcome),
                message=outcome.message,
                duration_s=outcome.seconds,
            )
        else:
            self.schedule(
                job, reason=outcome.reason, message=outcome.message, category=outcome.category
            )

    def complete(self, job: Job, **fields: Any) -> None:
        """Archive, delete or keep a job whose outputs are durable; log its document line.

        Raises OSError when the original cannot be moved (the job stays WRITTEN).
        """
        assert job.work_path is not None
        work = Path(job.work_path)
        state = final_state(self.settings.after_success)
        final_path: str | None = str(work)
        if state is State.DELETED:
            self.spool.delete(work)
            final_path = None
        elif state is State.ARCHIVED:
            final_path = str(self.spool.archive(work, PurePosixPath(job.relpath)))
        job = self.journal.update(job.job_id, state=state, final_path=final_path)
        self._release(job)
        self.done += 1
        if job.duplicate_of:
            fields.update(
                outcome="duplicate",
                reason=f"duplicate of {job.duplicate_of}",
                duplicate_of=job.duplicate_of,
            )
        fields.setdefault("outcome", "ok")
        self.document_line("document.processed", job, after=state.value, **fields)

    def duplicate(self, job: Job, first: Job) -> None:
        """Finish ``job`` without outputs: its content was already read as ``first``.

        Raises OSError when the original cannot be moved (the job stays WRITTEN).
        """
        self.journal.update(job.job_id, duplicate_of=first.relpath, outputs=None)
        self.complete(self.journal.update(job.job_id, state=State.WRITTEN))

    def quarantine(
        self,
        job: Job,
        *,
        reason: str,
        message: str,
        attempts: int | None = None,
        duration_s: float = 0.0,
    ) -> None:
        """Move (keep mode: copy) ``job``'s file to the quarantine with its reason file.

        Raises OSError when it cannot be moved (the file stays in the work area).
        """
        assert job.work_path is not None
        tries = job.attempts if attempts is None else attempts
        target = self.spool.quarantine(
            Path(job.work_path),
            PurePosixPath(job.relpath),
            reason=reason,
            message=message,
            attempts=tries,
            copy=self.keep,
            details={
                "first_seen_at": iso_time(job.discovered_at),
                "job_id": job.job_id,
                "sha256": job.sha256,
                "crashes": job.crashes,
            },
        )
        job = self.journal.update(
            job.job_id,
            state=State.QUARANTINED,
            reason=reason,
            last_error=message,
            final_path=str(target),
            attempts=tries,
        )
        self._release(job)
        self.quarantined += 1
        self.document_line(
            "document.quarantined",
            job,
            outcome="quarantined",
            reason=reason,
            error=message,
            duration_s=round(duration_s, 3),
            quarantined_as=str(target),
        )

    def schedule(
        self, job: Job, *, reason: str, message: str, category: Category | None = None
    ) -> None:
        """Try ``job`` again after a backoff; a WRITTEN job retries only its move."""
        delay = backoff(job.attempts, self.settings)
        at = time.time() + delay
        state = State.WRITTEN if job.state is State.WRITTEN else State.RETRY
        job = self.journal.update(
            job.job_id, state=state, next_attempt_at=at, reason=reason, last_error=message
        )
        self.later(job.job_id, at=at)
        self.document_line(
            "document.retry_scheduled",
            job,
            outcome="retry",
            reason=reason,
            error=message,
            category=category.value if category else None,
            retry_in_s=round(delay, 2),
        )

    def vanished(self, job: Job) -> None:
        """Close ``job`` whose claimed file is gone from the work area (someone removed it)."""
        log.error("spool.missing", relpath=job.relpath, work_path=job.work_path)
        self.journal.update(
            job.job_id,
            state=State.QUARANTINED,
            reason="missing",
            last_error="claimed file vanished",
        )

    def move_failed(self, job_id: str, relpath: str, exc: OSError) -> None:
        """Moving a file out failed (disk full, share gone): it stays where it is, retried."""
        log.error("daemon.finish_failed", relpath=relpath, error=str(exc))
        job = self.journal.get(job_id)
        if job is not None and job.state not in (State.DISCOVERED, State.STABLE):
            self.schedule(job, reason="finish_failed", message=str(exc))

    def _release(self, job: Job) -> None:
        if not self.keep:  # keep mode claims in place: there is no work folder
            self.spool.release_job_dir(job.job_id)

    # --- the canonical log line --------------------------------------------------------------
    def document_line(self, event: str, job: Job, **fields: Any) -> None:
        """Log ``event`` for ``job`` and append it to the outbox log (a full disk: warn)."""
        line: dict[str, Any] = {
            "relpath": job.relpath,
            "sha256": job.sha256,
            "pages": job.pages,
            "engine": job.engine,
            "mode": None,
            "duration_s": None,
            "outcome": None,
            "reason": job.reason if event != "document.processed" else None,
            "attempts": job.attempts,
            "outputs": job.outputs,
            "job_id": job.job_id,
        }
        line.update(fields)
        if event == "document.quarantined":
            log.error(event, **line)
        elif event == "document.retry_scheduled":
            log.warning(event, **line)
        else:
            log.info(event, **line)
        record = {"timestamp": datetime.now(UTC).isoformat(), "event": event, **line}
        data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        try:
            append_line(self.layout.log_file, data)
        except OSError as exc:
            log.warning("outbox.log_failed", path=str(self.layout.log_file), error=str(exc))
