"""Inbox files on their way to a claim: seen, quiet, decodable, claimed by rename.

Every path the watcher reports (or a rescan finds) becomes a *pending* job in the journal.
The stability gate (:mod:`ocrwatch.stabilize`) says when its size and mtime have been quiet
long enough; then its extension is checked (symlinks, special files and unsupported types
are claimed straight into the quarantine) and a worker opens and decodes it (the *probe*:
a scanner that pauses mid-write leaves a file that does not decode yet). A file that
decodes is claimed by an atomic rename into the work area (:mod:`ocrwatch.spool`); the
daemon then queues it for recognition. A file that vanishes before its claim was renamed
away by the scanner or claimed by another daemon sharing the inbox: it is forgotten.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import structlog

from ocrwatch.config import AfterSuccess
from ocrwatch.documents import SUPPORTED_SUFFIXES
from ocrwatch.journal import Job, Journal, State
from ocrwatch.outcomes import Outcomes, backoff, failure_reason
from ocrwatch.stabilize import Signature, StabilityGate, Verdict
from ocrwatch.watch import is_junk, scan
from ocrwatch.worker import Category, Outcome, Task, TaskKind

if TYPE_CHECKING:
    from ocrwatch.config import Settings
    from ocrwatch.spool import Layout, Spool

__all__ = ["PROBE_ATTEMPTS", "Intake"]

log = structlog.get_logger()

#: Decode probes of a file that may still be being written.
PROBE_ATTEMPTS = 5


class Intake:
    """The files seen in the inbox and not claimed yet; owns the stability gate."""

    def __init__(
        self,
        *,
        settings: Settings,
        layout: Layout,
        journal: Journal,
        spool: Spool,
        outcomes: Outcomes,
    ) -> None:
        """Track ``layout.inbox``; claim into ``spool``; quarantine through ``outcomes``."""
        self.settings = settings
        self.layout = layout
        self.journal = journal
        self.spool = spool
        self.outcomes = outcomes
        self.keep = settings.after_success is AfterSuccess.KEEP
        self.extra_patterns = tuple(settings.ignore_patterns)
        self.gate: StabilityGate[str] = StabilityGate(
            quiet_period=settings.quiet_period,
            probe_attempts=PROBE_ATTEMPTS,
            probe_delay=max(settings.quiet_period, 0.5),
        )
        self.pending: dict[str, str] = {}  # relpath -> job id, not claimed yet
        self.probe_queue: deque[str] = deque()
        self.probing: set[str] = set()

    def rediscover(self, key: str, job_id: str) -> None:
        """Let ``key`` (job ``job_id``, not claimed) pass the stability gate again."""
        self.pending[key] = job_id
        self.gate.hint(key)

    def next_probe(self) -> Task | None:
        """Return the next decode probe to send to a worker, or None."""
        while self.probe_queue:
            key = self.probe_queue.popleft()
            job_id = self.pending.get(key)
            if job_id is None:
                self.probing.discard(key)
                continue
            return Task(TaskKind.PROBE, job_id, self.layout.inbox / key, key)
        return None

    def _relpath(self, path: Path) -> PurePosixPath | None:
        try:
            rel = path.relative_to(self.layout.inbox)
        except ValueError:
            return None
        if not rel.parts:
            return None
        return PurePosixPath(rel.as_posix())

    def seen(self, path: Path) -> None:
        """Note that ``path`` in the inbox was created or changed (folders: all files in it)."""
        rel = self._relpath(path)
        if rel is None or is_junk(rel, extra=self.extra_patterns):
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("watch.stat_failed", path=str(path), error=str(exc))
            return
        if stat.S_ISDIR(st.st_mode):
            # A folder moved or copied in: its files may have no events of their own.
            for child in scan(path, extra=self.extra_patterns):
                self.seen(child)
            return
        key = str(rel)
        if key in self.pending:
            if key not in self.probing:
                self.gate.hint(key)
            return
        if self.keep and self.journal.kept(key, size=st.st_size, mtime_ns=st.st_mtime_ns):
            return  # keep mode: this exact version was processed already (the ledger)
        active = self.journal.active_for(key)
        if active is not None and active.state not in (State.DISCOVERED, State.STABLE):
            if not self.keep:
                # Claimed earlier and a new file with the same name arrived: a new job.
                active = None
            else:
                return
        job_id = active.job_id if active else self.journal.add(key, size=st.st_size).job_id
        self.pending[key] = job_id
        self.gate.hint(key)

    def full_scan(self, why: str) -> None:
        """Look at every file in the inbox (start, kernel queue overflow, periodic)."""
        if not self.layout.inbox.is_dir():
            return
        count = 0
        for path in scan(self.layout.inbox, extra=self.extra_patterns):
            self.seen(path)
            count += 1
        log.info("watch.rescanned", why=why, files=count, pending=len(self.pending))

    def check_gate(self, *, inbox_ok: bool) -> None:
        """Stat the files whose quiet period is over; queue stable ones for a decode probe."""
        if not inbox_ok:
            return  # a vanished share is not a mass deletion: wait for it
        for key in self.gate.due():
            if key in self.probing:
                continue
            path = self.layout.inbox / key
            st: os.stat_result | None
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            except OSError as exc:
                log.warning("stabilize.stat_failed", path=str(path), error=str(exc))
                continue
            sig = None if st is None else Signature(st.st_size, st.st_mtime_ns)
            verdict = self.gate.check(key, sig)
            if verdict is Verdict.GONE:
                self._vanished(key)
            elif verdict is Verdict.READY and st is not None:
                self._ready(key, st)

    def _vanished(self, key: str) -> None:
        job_id = self.pending.pop(key, None)
        self.gate.forget(key)
        if job_id is not None:
            # Renamed away by the scanner, or claimed by another daemon: not ours.
            self.journal.remove(job_id)
        log.debug("file.vanished", relpath=key)

    def _ready(self, key: str, st: os.stat_result) -> None:
        job_id = self.pending[key]
        rel = PurePosixPath(key)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            self._reject(
                key,
                reason="not_a_regular_file",
                message="symlinks and special files are never read",
            )
            return
        if rel.suffix.lower() not in SUPPORTED_SUFFIXES:
            self._reject(
                key,
                reason="unsupported_format",
                message=f"extension {rel.suffix or '(none)'} is not one of "
                + ", ".join(sorted(SUPPORTED_SUFFIXES)),
            )
            return
        self.journal.update(job_id, state=State.STABLE, size=st.st_size, mtime_ns=st.st_mtime_ns)
        self.gate.defer(key, 3600.0)  # until the probe answers
        self.probing.add(key)
        self.probe_queue.append(key)

    def _claim(self, key: str, *, special: bool = False) -> Job | None:
        """Claim the inbox file ``key``; return its job, or None if someone else has it."""
        job_id = self.pending.pop(key)
        self.gate.forget(key)
        self.probing.discard(key)
        rel = PurePosixPath(key)
        src = self.layout.inbox / rel
        if self.keep:
            try:
                st = os.lstat(src)
            except FileNotFoundError:
                self.journal.remove(job_id)
                return None
            return self.journal.update(
                job_id,
                state=State.CLAIMED,
                work_path=str(src),
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
            )
        work = self.spool.work_path(rel, job_id)
        # Intent first: after a crash between these two lines, recovery looks in both places.
        self.journal.update(job_id, state=State.CLAIMED, work_path=str(work))
        try:
            self.spool.claim(src, rel, job_id, special=special)
        except FileNotFoundError:
            log.info("file.claimed_elsewhere", relpath=key)
            self.journal.remove(job_id)
            return None
        except OSError as exc:
            log.warning("file.claim_failed", relpath=key, error=str(exc))
            self.journal.update(job_id, state=State.DISCOVERED, work_path=None, last_error=str(exc))
            self.rediscover(key, job_id)
            self.gate.defer(key, backoff(1, self.settings))
            return None
        return self.journal.get(job_id)

    def _reject(self, key: str, *, reason: str, message: str) -> None:
        job = self._claim(key, special=reason == "not_a_regular_file")
        if job is not None:
            try:
                self.outcomes.quarantine(job, reason=reason, message=message)
            except OSError as exc:
                self.outcomes.move_failed(job.job_id, key, exc)

    def unprobe(self, key: str) -> None:
        """Put ``key`` back before the gate: its probe was lost (worker replaced, stopping)."""
        self.probing.discard(key)
        if key in self.pending:
            self.gate.hint(key)
            self.gate.defer(key, 0.0)

    def probe_answered(self, outcome: Outcome) -> str | None:
        """Act on a decode probe's answer; return the job id when the file was claimed.

        A file that will never decode is claimed and quarantined. Raises OSError when that
        move fails (the claimed file then waits in the work area).
        """
        key = outcome.task.relpath
        if key not in self.pending:
            self.probing.discard(key)
            return None
        if outcome.ok:
            path = self.layout.inbox / key
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self.probing.discard(key)
                self._vanished(key)
                return None
            job = self.journal.get(self.pending[key])
            if job is not None and (job.size, job.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self.unprobe(key)  # it changed while we probed: wait again
                return None
            job = self._claim(key)
            if job is None:
                return None
            return self.journal.update(job.job_id, sha256=outcome.data.get("sha256")).job_id
        retryable = outcome.category in (Category.INCOMPLETE, Category.CRASH, Category.TRANSIENT)
        if outcome.category is Category.ENVIRONMENT:
            self.probing.discard(key)
            self.gate.defer(key, backoff(1, self.settings))
            log.warning(
                "file.probe_deferred", relpath=key, reason=outcome.reason, error=outcome.message
            )
            return None
        delay = self.gate.probe_failed(key, retryable=retryable)
        if delay is not None:
            self.probing.discard(key)
            log.info(
                "file.probe_retry",
                relpath=key,
                reason=outcome.reason,
                error=outcome.message,
                failures=self.gate.probe_failures(key),
                delay_s=round(delay, 2),
            )
            return None
        attempts = self.gate.probe_failures(key)
        job = self._claim(key)
        if job is not None:
            self.outcomes.quarantine(
                job, reason=failure_reason(outcome), message=outcome.message, attempts=attempts
            )
        return None
