"""Inbox files on their way to a claim: seen, quiet, decodable, claimed by rename.

Every path the watcher reports (or a rescan finds) becomes a *pending* job in the journal.
The stability gate (:mod:`ocrwatch.daemon.stabilize`) says when it has been quiet long
enough; then a worker decodes it (the *probe*). A file that decodes is claimed by an atomic
rename into the work area. Intake decides, the coordinator acts: what cannot be processed
comes back as a :class:`Rejection` for the coordinator to quarantine. While the journal
cannot be written (a full state disk) arrivals wait in memory and intake says so once.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import structlog

from ocrwatch.daemon.journal import Changes, Job, Journal, State
from ocrwatch.daemon.messages import ProbeReport, ProbeTask, Result, TaskSettings, dump_settings
from ocrwatch.daemon.stabilize import Signature, StabilityGate, Verdict
from ocrwatch.daemon.watch import is_junk, scan
from ocrwatch.recognition.documents import SUPPORTED_SUFFIXES
from ocrwatch.settings.choices import AfterSuccess
from ocrwatch.settings.resolve import after_success_for
from ocrwatch.support.fsutil import display
from ocrwatch.support.retry import Category, FilePolicy

if TYPE_CHECKING:
    from ocrwatch.daemon.folders import Layout
    from ocrwatch.daemon.spool import Spool
    from ocrwatch.settings.model import Settings

__all__ = ["Intake", "Rejection"]

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Rejection:
    """A claimed file that will not be processed, and why (for the quarantine)."""

    job: Job
    reason: str
    message: str
    attempts: int | None = None


class Intake:
    """The files seen in the inbox and not claimed yet; owns the stability gate."""

    def __init__(
        self, *, settings: Settings, layout: Layout, journal: Journal, spool: Spool
    ) -> None:
        """Track ``layout.inbox``; claim into ``spool``; record in ``journal``."""
        self.settings = settings
        self.layout = layout
        self.journal = journal
        self.spool = spool
        self.policy = FilePolicy(settings.retry)
        self.extra_patterns = tuple(settings.ignore_patterns)
        self.gate: StabilityGate[str] = StabilityGate(
            quiet_period=settings.quiet_period,
            probe_window=settings.incomplete_timeout,
            probe_delay=max(settings.quiet_period, 0.5),
        )
        self.pending: dict[str, str] = {}  # relpath -> job id, not claimed yet
        self.probe_queue: deque[str] = deque()
        self.probing: set[str] = set()
        #: Paths seen while the journal could not be written; retried by :meth:`retry_unjournaled`.
        self.unjournaled: dict[str, None] = {}
        self._journal_down = False

    def _keep(self, key: str) -> bool:
        """Return True when ``key``'s original stays in the inbox (keep mode, maybe by profile)."""
        return after_success_for(self.settings, key) is AfterSuccess.KEEP

    @property
    def journal_ok(self) -> bool:
        """Return False while arrivals wait for the journal (a full state disk)."""
        return not self.unjournaled and not self._journal_down

    def rediscover(self, key: str, job_id: str) -> None:
        """Let ``key`` (job ``job_id``, not claimed) pass the stability gate again."""
        self.pending[key] = job_id
        self.gate.hint(key)

    def next_probe(self) -> ProbeTask | None:
        """Return the next decode probe to send to a worker, or None."""
        while self.probe_queue:
            key = self.probe_queue.popleft()
            job_id = self.pending.get(key)
            if job_id is None:
                self.probing.discard(key)
                continue
            return ProbeTask(job_id=job_id, relpath=key, path=str(self.layout.inbox / key))
        return None

    # --- seeing files ----------------------------------------------------------------------
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
            log.warning("watch.stat_failed", path=display(path), error=str(exc))
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
        try:
            self._journal_arrival(key, st)
        except sqlite3.Error as exc:
            self._journal_failed(exc)
            self.unjournaled[key] = None
        else:
            self._journal_back()

    def _journal_failed(self, exc: sqlite3.Error) -> None:
        """Say once that the journal cannot be written (intake waits until it can)."""
        if not self._journal_down:
            self._journal_down = True
            log.error(
                "journal.unavailable",
                error=str(exc),
                detail="intake paused; files wait in the inbox until the journal can "
                "be written (is the state disk full?)",
            )

    def _journal_back(self) -> None:
        """Say once that the journal can be written again (after a write that worked)."""
        if self._journal_down and not self.unjournaled:
            self._journal_down = False
            log.warning("journal.available")

    def _journal_arrival(self, key: str, st: os.stat_result) -> None:
        keep = self._keep(key)
        if keep and self.journal.kept(key, size=st.st_size, mtime_ns=st.st_mtime_ns):
            return  # keep mode: this exact version was processed already (the ledger)
        active = self.journal.active_for(key)
        if active is not None and active.state not in (State.DISCOVERED, State.STABLE):
            if keep:
                return
            active = None  # claimed earlier and a new file with the same name arrived
        if active is None:
            active = self.journal.add(key, changes=Changes(size=st.st_size))
        self.pending[key] = active.job_id
        self.gate.hint(key)

    def retry_unjournaled(self) -> None:
        """Try again to journal the arrivals that waited for the journal."""
        if not self.unjournaled:
            return
        waiting = list(self.unjournaled)
        self.unjournaled.clear()
        for i, key in enumerate(waiting):
            self.seen(self.layout.inbox / key)
            if self.unjournaled:  # still failing: keep the rest for later
                self.unjournaled.update(dict.fromkeys(waiting[i + 1 :]))
                return
        self._journal_back()

    def full_scan(self, why: str) -> int:
        """Look at every file in the inbox (start, overflow, periodic); return the count."""
        if not self.layout.inbox.is_dir():
            return 0
        count = 0
        for path in scan(self.layout.inbox, extra=self.extra_patterns):
            self.seen(path)
            count += 1
        log.info("watch.rescanned", why=why, files=count, pending=len(self.pending))
        return count

    # --- the stability gate ------------------------------------------------------------------
    def check_gate(self) -> list[Rejection]:
        """Stat the files whose quiet period is over; queue stable ones for a decode probe."""
        rejections: list[Rejection] = []
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
                log.warning("stabilize.stat_failed", path=display(path), error=str(exc))
                continue
            sig = None if st is None else Signature(st.st_size, st.st_mtime_ns)
            verdict = self.gate.check(key, sig)
            if verdict is Verdict.GONE:
                self._vanished(key)
            elif verdict is Verdict.READY and st is not None:
                rejections += self._ready(key, st)
        return rejections

    def _vanished(self, key: str) -> None:
        job_id = self.pending.pop(key, None)
        self.gate.forget(key)
        if job_id is not None:
            # Renamed away by the scanner, or claimed by another daemon: not ours.
            self.journal.remove(job_id)
        log.debug("file.vanished", relpath=display(key))

    def _ready(self, key: str, st: os.stat_result) -> list[Rejection]:
        rel = PurePosixPath(key)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            message = "symlinks and special files are never read"
            return self._reject(key, "not_a_regular_file", message, special=True)
        if rel.suffix.lower() not in SUPPORTED_SUFFIXES:
            message = f"extension {display(rel.suffix) or '(none)'} is not one of " + ", ".join(
                sorted(SUPPORTED_SUFFIXES)
            )
            return self._reject(key, "unsupported_format", message)
        changes = Changes(size=st.st_size, mtime_ns=st.st_mtime_ns)
        try:
            self.journal.update(self.pending[key], state=State.STABLE, changes=changes)
        except sqlite3.OperationalError as exc:
            self._journal_failed(exc)
            self.gate.defer(key, self.policy.backoff(1))  # waits in the inbox, asked again
            return []
        self._journal_back()
        self.gate.defer(key, 3600.0)  # until the probe answers
        self.probing.add(key)
        self.probe_queue.append(key)
        return []

    def _reject(
        self, key: str, reason: str, message: str, *, special: bool = False, attempts: int = 0
    ) -> list[Rejection]:
        job = self._claim(key, special=special)
        if job is None:
            return []
        return [Rejection(job, reason, message, attempts=attempts or None)]

    # --- claiming ----------------------------------------------------------------------------
    def _claim(self, key: str, *, special: bool = False) -> Job | None:
        """Claim the inbox file ``key``; return its job, or None if someone else has it.

        While the journal cannot be written the file stays in the inbox, asked again later.
        """
        job_id = self.pending[key]
        try:
            job = self._claim_journaled(key, special=special)
        except sqlite3.OperationalError as exc:
            self._journal_failed(exc)
            if not os.path.lexists(self.spool.work_path(PurePosixPath(key), job_id)):
                self.rediscover(key, job_id)  # not renamed: it waits in the inbox
                self.gate.defer(key, self.policy.backoff(1))
            return None
        self._journal_back()
        return job

    def _claim_journaled(self, key: str, *, special: bool = False) -> Job | None:
        # What decides the result is resolved once, here, and kept with the job: its retries,
        # its page ranges and a restarted coordinator send exactly these settings.
        resolved = dump_settings(TaskSettings.resolve(self.settings, key))
        job_id = self.pending.pop(key)
        self.gate.forget(key)
        self.probing.discard(key)
        rel = PurePosixPath(key)
        src = self.layout.inbox / rel
        if self._keep(key):
            try:
                st = os.lstat(src)
            except FileNotFoundError:
                self.journal.remove(job_id)
                return None
            changes = Changes(
                work_path=str(src), size=st.st_size, mtime_ns=st.st_mtime_ns, settings=resolved
            )
            return self.journal.update(job_id, state=State.CLAIMED, changes=changes)
        work = self.spool.work_path(rel, job_id)
        # Intent first: after a crash between these two lines, recovery looks in both places.
        changes = Changes(work_path=str(work), settings=resolved)
        self.journal.update(job_id, state=State.CLAIMED, changes=changes)
        try:
            self.spool.claim(src, rel, job_id, special=special)
        except FileNotFoundError:
            log.info("file.claimed_elsewhere", relpath=display(key))
            self.journal.update(job_id, state=State.DISCOVERED, changes=Changes(work_path=None))
            self.journal.remove(job_id)
            return None
        except OSError as exc:
            log.warning("file.claim_failed", relpath=display(key), error=str(exc))
            changes = Changes(work_path=None, last_error=str(exc))
            self.journal.update(job_id, state=State.DISCOVERED, changes=changes)
            self.rediscover(key, job_id)
            self.gate.defer(key, self.policy.backoff(1))
            return None
        return self.journal.get(job_id)

    def unprobe(self, key: str) -> None:
        """Put ``key`` back before the gate: its probe was lost (worker replaced, stopping)."""
        self.probing.discard(key)
        if key in self.pending:
            self.gate.hint(key)
            self.gate.again(key)

    def probe_answered(self, result: Result) -> Job | Rejection | None:
        """Act on a decode probe's answer: the claimed job, a rejection, or None (wait)."""
        key = result.task.relpath
        if key not in self.pending:
            self.probing.discard(key)
            return None
        failure = result.failure
        if failure is None:
            assert isinstance(result.outcome, ProbeReport)
            return self._probe_ok(key, result.outcome)
        if failure.category is Category.ENVIRONMENT:
            self.probing.discard(key)
            self.gate.defer(key, self.policy.backoff(1))
            log.warning(
                "file.probe_deferred",
                relpath=display(key),
                reason=failure.reason,
                error=failure.message,
            )
            return None
        retryable = failure.category in (Category.INCOMPLETE, Category.CRASH, Category.TRANSIENT)
        delay = self.gate.probe_failed(key, retryable=retryable)
        if delay is not None:
            self.probing.discard(key)
            log.info(
                "file.probe_retry",
                relpath=display(key),
                reason=failure.reason,
                error=failure.message,
                failures=self.gate.probe_failures(key),
                delay_s=round(delay, 2),
            )
            return None
        reason = "engine_crash" if failure.category is Category.CRASH else failure.reason
        attempts = self.gate.probe_failures(key)
        rejected = self._reject(key, reason, failure.message, attempts=attempts)
        return rejected[0] if rejected else None

    def _probe_ok(self, key: str, report: ProbeReport) -> Job | None:
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
        try:
            return self.journal.update(
                job.job_id, changes=Changes(sha256=report.sha256, pages=report.pages)
            )
        except sqlite3.OperationalError as exc:
            self._journal_failed(exc)
            return job  # claimed: read without the probe's facts (the worker finds them)
