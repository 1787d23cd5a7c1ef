"""What happens to a claimed file after each attempt: archive it, retry it, or quarantine it.

- **written**: the outputs are durable, so the original is archived, deleted or kept
  (``after_success``) and the job is done; a failed move is retried later, never the OCR;
- **may pass** (engine busy, disk full, a crashed worker, an unexpected error): the next
  attempt is scheduled with backoff (``ocrwatch.support.retry.FilePolicy``); after too many the
  file is quarantined;
- **will not pass** (not an image, corrupt, rejected by the engine): the original goes to
  the quarantine with ``<name>.reason.json``;
- **duplicate** (``duplicates = skip``): finished like a processed file, without outputs.

Every file gets one canonical ``document.*`` line, on stdout and in the outbox's
``ocrwatch.log.jsonl``.
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch.daemon.journal import Changes, Job, Journal, State, iso_time
from ocrwatch.daemon.messages import Failure, Written
from ocrwatch.settings.choices import AfterSuccess, DuplicatePolicy
from ocrwatch.settings.resolve import after_success_for
from ocrwatch.support import fsutil
from ocrwatch.support.retry import Category, FilePolicy

if TYPE_CHECKING:
    from ocrwatch.daemon.folders import Layout, Mounts
    from ocrwatch.daemon.spool import Spool
    from ocrwatch.settings.model import Settings

__all__ = ["Disposition", "DocumentLine", "final_state"]

log = structlog.get_logger()


def final_state(policy: AfterSuccess) -> State:
    """Return the journal state a finished job ends in under ``after_success = policy``."""
    return {
        AfterSuccess.KEEP: State.KEPT,
        AfterSuccess.DELETE: State.DELETED,
        AfterSuccess.ARCHIVE: State.ARCHIVED,
    }[policy]


@dataclass(frozen=True, slots=True)
class DocumentLine:
    """The per-document fields of the canonical log line that the journal does not hold."""

    outcome: str
    reason: str | None = None
    error: str | None = None
    mode: str | None = None
    duration_s: float | None = None
    category: str | None = None
    retry_in_s: float | None = None
    duplicate_of: str | None = None
    quarantined_as: str | None = None
    processed_by: str | None = None


class Disposition:
    """Carries out what happens to claimed jobs; owns the retry schedule and the counters."""

    def __init__(
        self,
        *,
        settings: Settings,
        layout: Layout,
        journal: Journal,
        spool: Spool,
        mounts: Mounts,
        observer: Callable[[str, Job, DocumentLine], None] | None = None,
    ) -> None:
        """Act on ``journal``'s jobs, moving originals with ``spool`` while ``mounts`` allow.

        ``observer`` sees every canonical document line with its job (the metrics count
        them, the status page lists them, notifications are told).
        """
        self.settings = settings
        self.layout = layout
        self.mounts = mounts
        self.observer = observer
        self.journal = journal
        self.spool = spool
        self.policy = FilePolicy(settings.retry)
        #: (wall time, job id): jobs waiting for their next attempt.
        self.retries: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        self.done = 0
        self.quarantined = 0

    # --- the retry schedule ------------------------------------------------------------------
    def later(self, job_id: str, *, at: float) -> None:
        """Give job ``job_id`` back to the daemon at wall time ``at`` (replaces an earlier time)."""
        self._scheduled[job_id] = at
        heapq.heappush(self.retries, (at, job_id))

    def due(self, *, now: float, limit: int) -> list[str]:
        """Return (and forget) up to ``limit`` job ids whose retry time has come by ``now``."""
        ids: list[str] = []
        while self.retries and self.retries[0][0] <= now and len(ids) < limit:
            at, job_id = heapq.heappop(self.retries)
            if self._scheduled.get(job_id) == at:  # else: rescheduled since, a stale entry
                del self._scheduled[job_id]
                ids.append(job_id)
        return ids

    # --- before an attempt -------------------------------------------------------------------
    def admit(self, job: Job, *, in_flight_sha256: set[str]) -> Job | None:
        """Return ``job`` ready for a recognition attempt, or None when it was dealt with.

        A claimed file that is gone is closed (only while its folder is there: a share that
        blinked is not a deletion), a non-regular file is quarantined, and under
        ``duplicates = skip`` a file whose content was done before is finished unread.
        """
        assert job.work_path is not None
        try:
            st = os.lstat(job.work_path)
        except FileNotFoundError:
            if self.mounts.inbox.available():
                self.vanished(job)
            else:
                self.later(job.job_id, at=time.time() + self.policy.backoff(1))
            return None
        if not stat.S_ISREG(st.st_mode):
            self.quarantine(job, reason="not_a_regular_file", message="not a regular file")
            return None
        if self.settings.duplicates is DuplicatePolicy.SKIP and job.sha256:
            first = self.journal.done_with_sha256(job.sha256, exclude=job.job_id)
            if first is not None:
                self.duplicate(job, first)
                return None
            if job.sha256 in in_flight_sha256:
                # The same content is being read right now: decide once that one is done.
                self.later(job.job_id, at=time.time() + 1.0)
                return None
        if job.state is State.RETRY:
            job = self.journal.update(
                job.job_id, state=State.CLAIMED, changes=Changes(next_attempt_at=None)
            )
        return job

    # --- after a recognition -----------------------------------------------------------------
    def written(self, job: Job, written: Written, *, seconds: float) -> None:
        """Record durable outputs, then finish the job (a failed move is retried alone)."""
        job = self.journal.update(
            job.job_id,
            state=State.WRITTEN,
            changes=Changes(
                attempts=job.attempts + 1,
                sha256=written.sha256,
                size=written.size,
                pages=written.pages,
                engine=written.engine,
                outputs={"txt": written.txt, "manifest": written.manifest, **written.others},
                next_attempt_at=None,
            ),
        )
        by = written.processed_by
        line = DocumentLine(
            "ok",
            mode=written.mode,
            duration_s=round(seconds, 3),
            processed_by=f"{by.get('host')}:{by.get('pid')}" if by else None,
        )
        self.finish(job, line)

    def failed(self, job: Job, failure: Failure, *, seconds: float) -> None:
        """Retry or quarantine ``job`` after a failed attempt."""
        attempts = job.attempts + 1
        crashes = job.crashes + (1 if failure.category is Category.CRASH else 0)
        job = self.journal.update(
            job.job_id,
            changes=Changes(attempts=attempts, crashes=crashes, last_error=failure.message),
        )
        if self.policy.gives_up(failure.category, attempts=attempts, crashes=crashes):
            reason = "engine_crash" if failure.category is Category.CRASH else failure.reason
            self.quarantine(job, reason=reason, message=failure.message, duration_s=seconds)
        else:
            self.schedule(job, failure)

    def finish(self, job: Job, line: DocumentLine | None = None) -> None:
        """Archive, delete or keep a job whose outputs are durable; log its document line.

        A move that fails (disk full, share gone) leaves the job WRITTEN, counted and
        retried with backoff: the recognition is never run again.
        """
        assert job.work_path is not None
        work = Path(job.work_path)
        state = final_state(after_success_for(self.settings, job.relpath))
        try:
            self._check_outbox()
            final_path: str | None = str(work)
            if state is State.DELETED:
                self.spool.delete(work)
                final_path = None
            elif state is State.ARCHIVED:
                final_path = str(self.spool.archive(work, PurePosixPath(job.relpath)))
        except OSError as exc:
            self.move_failed(job, exc)
            return
        job = self.journal.update(job.job_id, state=state, changes=Changes(final_path=final_path))
        self._release(job)
        self.done += 1
        line = line or DocumentLine("ok")
        if job.duplicate_of:
            line = DocumentLine(
                "duplicate",
                reason=f"duplicate of {job.duplicate_of}",
                duplicate_of=job.duplicate_of,
            )
        self.document_line("document.processed", job, line, after=state.value)

    def duplicate(self, job: Job, first: Job) -> None:
        """Finish ``job`` without outputs: its content was already read as ``first``."""
        job = self.journal.update(
            job.job_id,
            state=State.WRITTEN,
            changes=Changes(duplicate_of=first.relpath, outputs=None),
        )
        self.finish(job)

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

        A move that fails leaves the file in the work area, counted and retried.
        """
        tries = job.attempts if attempts is None else attempts
        try:
            target = self._to_quarantine(job, reason=reason, message=message, attempts=tries)
        except OSError as exc:
            job = self.journal.update(
                job.job_id,
                state=State.REJECTED,
                changes=Changes(reason=reason, last_error=message, attempts=tries),
            )
            self.move_failed(job, exc, quarantine=True)
            return
        job = self.journal.update(
            job.job_id,
            state=State.QUARANTINED,
            changes=Changes(
                reason=reason, last_error=message, final_path=str(target), attempts=tries
            ),
        )
        self._release(job)
        self.quarantined += 1
        line = DocumentLine(
            "quarantined",
            reason=reason,
            error=message,
            duration_s=round(duration_s, 3),
            quarantined_as=fsutil.display(target),
        )
        self.document_line("document.quarantined", job, line)

    def _to_quarantine(self, job: Job, *, reason: str, message: str, attempts: int) -> Path:
        assert job.work_path is not None
        self._check_outbox()
        return self.spool.quarantine(
            Path(job.work_path),
            PurePosixPath(job.relpath),
            reason=reason,
            message=message,
            attempts=attempts,
            copy=self._keep(job),
            details={
                "first_seen_at": iso_time(job.discovered_at),
                "job_id": job.job_id,
                "sha256": job.sha256,
                "crashes": job.crashes,
            },
        )

    def schedule(self, job: Job, failure: Failure) -> None:
        """Try ``job`` again after a backoff."""
        delay = self.policy.backoff(job.attempts)
        at = time.time() + delay
        job = self.journal.update(
            job.job_id,
            state=State.RETRY,
            changes=Changes(next_attempt_at=at, reason=failure.reason, last_error=failure.message),
        )
        self.later(job.job_id, at=at)
        line = DocumentLine(
            "retry",
            reason=failure.reason,
            error=failure.message,
            category=failure.category.value,
            retry_in_s=round(delay, 2),
        )
        self.document_line("document.retry_scheduled", job, line)

    def move_failed(self, job: Job, exc: OSError, *, quarantine: bool = False) -> None:
        """Moving the original out failed: it stays where it is; retry the move with backoff.

        The failures are counted in the journal and the wait grows with them (one log line
        per failure, at a rate the backoff bounds).
        """
        failures = job.move_failures + 1
        delay = self.policy.backoff(failures)
        at = time.time() + delay
        job = self.journal.update(
            job.job_id,
            changes=Changes(move_failures=failures, next_attempt_at=at, last_error=str(exc)),
        )
        self.later(job.job_id, at=at)
        line = DocumentLine(
            "retry",
            reason="finish_failed",
            error=f"moving the original to the {'quarantine' if quarantine else 'archive'} "
            f"failed ({exc}); move failure {failures}, the recognition is not redone",
            category=Category.ENVIRONMENT.value,
            retry_in_s=round(delay, 2),
        )
        self.document_line("document.retry_scheduled", job, line)

    def resume(self, job: Job) -> None:
        """Retry the move of a job whose outputs are durable or whose verdict is given."""
        if job.state is State.REJECTED:
            self.quarantine(job, reason=job.reason or "bad_input", message=job.last_error or "")
        else:
            self.finish(job)

    def recovered(self, job: Job) -> None:
        """Log the document line of a job whose move had completed before a crash."""
        if job.state is State.QUARANTINED:
            line = DocumentLine(
                "quarantined",
                reason=job.reason,
                error=job.last_error,
                quarantined_as=job.final_path and fsutil.display(job.final_path),
            )
            self.document_line("document.quarantined", job, line)
        else:
            self.document_line("document.processed", job, DocumentLine("ok"), after=job.state)

    def vanished(self, job: Job) -> None:
        """Close ``job`` whose claimed file is gone from the work area (someone removed it)."""
        log.error("spool.missing", relpath=fsutil.display(job.relpath), work_path=job.work_path)
        self.journal.update(
            job.job_id,
            state=State.QUARANTINED,
            changes=Changes(reason="missing", last_error="claimed file vanished"),
        )

    def _check_outbox(self) -> None:
        # Moving into a vanished share would recreate its folders on the bare mount point.
        if not self.mounts.outbox.available():
            raise OSError(errno.ENOTCONN, "the outbox is unavailable", str(self.layout.outbox))

    def _keep(self, job: Job) -> bool:
        return after_success_for(self.settings, job.relpath) is AfterSuccess.KEEP

    def _release(self, job: Job) -> None:
        if not self._keep(job):  # keep mode claims in place: there is no work folder
            self.spool.release_job_dir(job.job_id)

    # --- the canonical log line --------------------------------------------------------------
    def document_line(
        self, event: str, job: Job, line: DocumentLine, *, after: str | None = None
    ) -> None:
        """Log ``event`` for ``job`` and append it to the outbox log (a full disk: warn)."""
        fields: dict[str, Any] = {
            "relpath": fsutil.display(job.relpath),
            "sha256": job.sha256,
            "pages": job.pages,
            "engine": job.engine,
            "mode": line.mode,
            "duration_s": line.duration_s,
            "outcome": line.outcome,
            "reason": line.reason,
            "attempts": job.attempts,
            "outputs": (
                {k: fsutil.display(v) for k, v in job.outputs.items()} if job.outputs else None
            ),
            "job_id": job.job_id,
        }
        keys = ("error", "category", "retry_in_s", "duplicate_of", "quarantined_as", "processed_by")
        for key in keys:
            value = getattr(line, key)
            if value is not None:
                fields[key] = fsutil.display(value) if isinstance(value, str) else value
        if after is not None:
            fields["after"] = after
        if self.observer is not None:
            self.observer(event, job, line)
        level = {"document.quarantined": log.error, "document.retry_scheduled": log.warning}
        level.get(event, log.info)(event, **fields)
        record = {"timestamp": datetime.now(UTC).isoformat(), "event": event, **fields}
        data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        try:
            fsutil.append_line(self.layout.log_file, data)
        except OSError as exc:
            log.warning("outbox.log_failed", path=str(self.layout.log_file), error=str(exc))
