"""``ocrwatch run``: start-up checks, wiring, the dispatcher loop, signals, systemd.

One thread (the main one) owns all state: it drains paths queued by the watcher, asks the
stability gate which files are ready, sends decode probes and recognition tasks to the
worker processes, claims files by rename, records every transition in the journal, and
routes originals to the archive or the quarantine. Watchdog threads only enqueue. Because
only this loop makes progress, it is the only place that sends ``WATCHDOG=1``.

Exactly once: a job's claim intent is journaled before the rename, its outputs are written
atomically (a re-run after a crash replaces its own sidecar, never adds a second one), and
the original is archived only after the journal says the outputs are durable. Restarting
after ``kill -9`` redoes the first unfinished step of every job. The canonical
``document.*`` log line of a job that was interrupted after writing may appear twice.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import queue
import signal
import sqlite3
import stat
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Any

import structlog
from tenacity import RetryCallState, wait_exponential_jitter

from ocrwatch import __version__
from ocrwatch.config import AfterSuccess, DuplicatePolicy, Settings
from ocrwatch.documents import SUPPORTED_SUFFIXES
from ocrwatch.exceptions import ConfigError
from ocrwatch.journal import JOURNAL_NAME, Job, Journal, State
from ocrwatch.outputs import sidecar_path
from ocrwatch.spool import Layout, Spool, check_layout, resolve_layout
from ocrwatch.stabilize import Signature, StabilityGate, Verdict
from ocrwatch.systemd import Notifier
from ocrwatch.watch import Watcher, is_junk, scan
from ocrwatch.worker import Category, Outcome, Task, TaskKind, WorkerPool, default_workers

__all__ = ["MAX_CRASHES", "MAX_TRANSIENT_ATTEMPTS", "Daemon", "run"]

log = structlog.get_logger()

#: A file that crashes or hangs the engine this many times is quarantined (engine_crash).
MAX_CRASHES = 3
#: Transient engine failures (and unexpected errors) are retried this many times in all.
MAX_TRANSIENT_ATTEMPTS = 10
MAX_BUG_ATTEMPTS = 3
#: Decode probes of a file that may still be being written.
PROBE_ATTEMPTS = 5

_TICK = 0.2
_STATUS_EVERY = 2.0


def run(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit code (0 after a clean stop).

    Raises ConfigError (exit code 3) for an unsafe or unusable folder layout.
    """
    layout = resolve_layout(settings)
    check_layout(layout)
    daemon = Daemon(settings, layout, notifier=Notifier.from_env())
    return daemon.run()


def _backoff(attempt: int, settings: Settings) -> float:
    """Return the wait before retry number ``attempt`` (capped exponential with jitter)."""
    retry = settings.retry
    wait = wait_exponential_jitter(
        initial=max(retry.wait_initial, 0.1), max=max(retry.wait_max, 0.1), jitter=retry.wait_jitter
    )
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    return float(wait(state))


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Daemon:
    """The running daemon; build with :func:`run`."""

    def __init__(self, settings: Settings, layout: Layout, *, notifier: Notifier) -> None:
        """Wire the daemon for ``layout`` (nothing starts until :meth:`run`)."""
        self.settings = settings
        self.layout = layout
        self.notifier = notifier
        self.keep = settings.after_success is AfterSuccess.KEEP
        self.extra_patterns = tuple(settings.ignore_patterns)
        self._events: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._rescan = threading.Event()
        self._stop = threading.Event()
        self.gate: StabilityGate[str] = StabilityGate(
            quiet_period=settings.quiet_period,
            probe_attempts=PROBE_ATTEMPTS,
            probe_delay=max(settings.quiet_period, 0.5),
        )
        self.pending: dict[str, str] = {}  # relpath -> job id, not claimed yet
        self.probe_queue: deque[str] = deque()
        self.probing: set[str] = set()
        self.ready: deque[str] = deque()  # claimed job ids waiting for a worker
        self.retries: list[tuple[float, str]] = []  # (wall time, job id)
        self.done = 0
        self.quarantined = 0
        self._inbox_ok = True
        self._signals: deque[int] = deque()

    # --- life cycle ------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, loop until asked to stop, drain, and return 0."""
        settings = self.settings
        journal_path = self.layout.state_dir / JOURNAL_NAME
        try:
            self.journal = Journal(journal_path)
        except sqlite3.Error as exc:
            raise ConfigError(
                f"cannot open the journal {journal_path} ({exc}); if it is damaged, move it "
                "away: files already claimed are found again in the work area"
            ) from exc
        self.instance = self.journal.instance_id()
        self.spool = Spool(self.layout, instance_id=self.instance)
        workers = settings.workers or default_workers()
        log.info(
            "daemon.starting",
            version=__version__,
            pid=os.getpid(),
            instance=self.instance,
            workers=workers,
            inbox=str(self.layout.inbox),
            outbox=str(self.layout.outbox),
            archive=str(self.layout.archive),
            quarantine=str(self.layout.quarantine),
            state_dir=str(self.layout.state_dir),
            settings=settings.masked(),
        )
        self.pool = WorkerPool(settings, size=workers, timeout=settings.file_timeout)
        self.watcher = Watcher(
            self.layout.inbox,
            mode=settings.watch_mode,
            poll_interval=settings.poll_interval,
            on_path=self._events.put,
            on_overflow=self._overflow,
        )
        old_handlers = self._install_signals()
        try:
            self.pool.start()
            self._recover()
            self.watcher.start()
            self._full_scan("startup")
            self.notifier.ready()
            log.info("daemon.ready", watch_mode=self.watcher.mode.value, why=self.watcher.reason)
            self._loop()
            self._drain()
        finally:
            self.watcher.stop()
            self.pool.stop()
            self.journal.close()
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
        log.info("daemon.stopped", done=self.done, quarantined=self.quarantined)
        return 0

    def _install_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}

        # Handlers only set flags: the loop logs and acts (no logging inside a handler).
        def stop(signum: int, _frame: FrameType | None) -> None:
            self._signals.append(signum)
            self._stop.set()

        def hup(signum: int, _frame: FrameType | None) -> None:
            self._signals.append(signum)

        for signum, handler in (
            (signal.SIGTERM, stop),
            (signal.SIGINT, stop),
            (signal.SIGHUP, hup),
        ):
            old[signum] = signal.signal(signum, handler)
        return old

    def _overflow(self) -> None:
        log.warning("watch.overflow", detail="kernel dropped events; rescanning the inbox")
        self._rescan.set()

    # --- recovery ----------------------------------------------------------------------------
    def _recover(self) -> None:
        """Redo the first unfinished step of every job left by an earlier run."""
        recovered = 0
        known: set[str] = set()
        for job in self.journal.unfinished():
            known.add(job.job_id)
            work = Path(job.work_path) if job.work_path else None
            if job.state in (State.DISCOVERED, State.STABLE):
                self.journal.update(job.job_id, state=State.DISCOVERED)
                self.pending[job.relpath] = job.job_id
                self.gate.hint(job.relpath)
            elif job.state is State.WRITTEN and work is not None and os.path.lexists(work):
                # Outputs are durable; only the archive/delete step is left to do.
                try:
                    final = self._finish(job)
                    self.done += 1
                    self._document_line(
                        "document.processed", job, outcome="ok", after=final.value, recovered=True
                    )
                except OSError as exc:
                    log.warning("daemon.finish_failed", relpath=job.relpath, error=str(exc))
                    self.ready.append(job.job_id)
                recovered += 1
            elif work is not None and os.path.lexists(work):
                if job.state is State.RETRY and job.next_attempt_at:
                    heapq.heappush(self.retries, (job.next_attempt_at, job.job_id))
                else:
                    self.ready.append(job.job_id)
                recovered += 1
            elif job.state is State.WRITTEN:
                # The original left the work area after the outputs were durable: the
                # archive/delete step completed, only its journal entry is missing.
                final = (
                    State.DELETED
                    if self.settings.after_success is AfterSuccess.DELETE
                    else State.ARCHIVED
                )
                self.journal.update(job.job_id, state=final, last_error="recovered after a crash")
            else:
                # Claim intent journaled but the rename never happened (or another daemon
                # won): rediscover from the inbox.
                self.journal.update(job.job_id, state=State.DISCOVERED, work_path=None)
                self.pending[job.relpath] = job.job_id
                self.gate.hint(job.relpath)
        for job_id, relpath, path in self.spool.leftovers():
            if job_id in known:
                continue
            existing = self.journal.get(job_id)
            if existing is not None and existing.state in (
                State.ARCHIVED,
                State.DELETED,
                State.KEPT,
                State.QUARANTINED,
            ):
                log.warning("spool.orphan", path=str(path), state=existing.state.value)
                continue
            st = os.lstat(path)
            self.journal.add(
                str(relpath),
                state=State.CLAIMED,
                job_id=job_id,
                work_path=str(path),
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                last_error="found in the work area without a journal entry",
            )
            self.ready.append(job_id)
            recovered += 1
        if recovered:
            log.info("daemon.recovered", jobs=recovered)

    # --- the loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        settings = self.settings
        now = time.monotonic()
        next_rescan = now + settings.rescan_interval if settings.rescan_interval else float("inf")
        next_status = now
        wd_interval = self.notifier.watchdog_interval
        next_watchdog = now
        while not self._stop.is_set():
            self._log_signals()
            with self._guard("intake"):
                self._drain_events()
            now = time.monotonic()
            if self._rescan.is_set() or now >= next_rescan:
                with self._guard("rescan"):
                    self._full_scan("overflow" if self._rescan.is_set() else "periodic")
                self._rescan.clear()
                if settings.rescan_interval:
                    next_rescan = now + settings.rescan_interval
            with self._guard("watcher"):
                self._check_watcher()
            with self._guard("stabilize"):
                self._check_gate()
            with self._guard("dispatch"):
                self._due_retries()
                self._dispatch()
            for outcome in self.pool.poll(_TICK):
                with self._guard("outcome"):
                    self._handle(outcome)
            now = time.monotonic()
            if wd_interval is not None and now >= next_watchdog:
                self.notifier.watchdog()
                next_watchdog = now + wd_interval
            if now >= next_status:
                self.notifier.status(self._status_text())
                next_status = now + _STATUS_EVERY

    def _log_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
            if signum == signal.SIGHUP:
                # Settings come from flags, env and files the CLI merged; reloading half of
                # them would be worse than none. A restart is cheap: claimed work resumes.
                log.warning("daemon.reload_ignored", detail="restart the service to apply")
            else:
                log.info("daemon.stop_requested", signal=signal.Signals(signum).name)

    @contextlib.contextmanager
    def _guard(self, stage: str) -> Iterator[None]:
        """Log and survive a bug in one stage: one file must never stop the daemon."""
        try:
            yield
        except Exception:
            log.exception("daemon.internal_error", stage=stage)
            time.sleep(_TICK)  # a persistent bug must not turn into a busy loop

    def _drain(self) -> None:
        """Stop intake; let in-flight tasks finish within stop_timeout; leave the rest claimed."""
        self._log_signals()
        self.notifier.stopping()
        self.watcher.stop()
        deadline = time.monotonic() + self.settings.stop_timeout
        in_flight = len(self.pool.busy)
        log.info(
            "daemon.draining",
            in_flight=in_flight,
            waiting=len(self.ready),
            timeout=self.settings.stop_timeout,
        )
        extended = 0.0
        while self.pool.busy and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= extended:
                with contextlib.suppress(ValueError):
                    self.notifier.extend_timeout(max(deadline - now, 0.0) + 10.0)
                if self.notifier.watchdog_interval is not None:
                    self.notifier.watchdog()  # draining is progress too
                extended = now + min(5.0, self.notifier.watchdog_interval or 5.0)
            for outcome in self.pool.poll(_TICK):
                self._handle(outcome, stopping=True)
        if self.pool.busy:
            log.warning(
                "daemon.stop_timeout",
                left_claimed=[t.relpath for t in self.pool.busy],
                detail="resumed at the next start",
            )

    def _status_text(self) -> str:
        return (
            f"{len(self.ready)} queued, {len(self.pool.busy)} in flight, "
            f"{len(self.gate)} settling, "
            f"{self.done} done, {self.quarantined} quarantined; watching {self.watcher.mode.value}"
        )

    # --- intake --------------------------------------------------------------------------------
    def _drain_events(self) -> None:
        for _ in range(10_000):
            try:
                path = self._events.get_nowait()
            except queue.Empty:
                return
            self._seen(path)

    def _relpath(self, path: Path) -> PurePosixPath | None:
        try:
            rel = path.relative_to(self.layout.inbox)
        except ValueError:
            return None
        if not rel.parts:
            return None
        return PurePosixPath(rel.as_posix())

    def _seen(self, path: Path) -> None:
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
                self._seen(child)
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

    def _full_scan(self, why: str) -> None:
        if not self.layout.inbox.is_dir():
            return
        count = 0
        for path in scan(self.layout.inbox, extra=self.extra_patterns):
            self._seen(path)
            count += 1
        log.info("watch.rescanned", why=why, files=count, pending=len(self.pending))

    def _check_watcher(self) -> None:
        inbox_ok = self.layout.inbox.is_dir()
        if inbox_ok != self._inbox_ok:
            self._inbox_ok = inbox_ok
            if inbox_ok:
                log.warning("inbox.available", inbox=str(self.layout.inbox))
                self._rescan.set()
            else:
                log.error("inbox.unavailable", inbox=str(self.layout.inbox), detail="paused")
        if inbox_ok and not self.watcher.alive():
            try:
                self.watcher.restart()
                self._rescan.set()
            except OSError as exc:
                log.error("watch.restart_failed", error=str(exc))

    def _check_gate(self) -> None:
        if not self._inbox_ok:
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

    # --- claiming ---------------------------------------------------------------------------------
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
            self.pending[key] = job_id
            self.gate.hint(key)
            self.gate.defer(key, _backoff(1, self.settings))
            return None
        return self.journal.get(job_id)

    def _reject(self, key: str, *, reason: str, message: str) -> None:
        job = self._claim(key, special=reason == "not_a_regular_file")
        if job is not None:
            self._quarantine(job, reason=reason, message=message)

    # --- dispatch ---------------------------------------------------------------------------------
    def _due_retries(self) -> None:
        now = time.time()
        while (
            self.retries
            and self.retries[0][0] <= now
            and len(self.ready) < self.settings.queue_size
        ):
            _, job_id = heapq.heappop(self.retries)
            self.ready.append(job_id)

    def _dispatch(self) -> None:
        while self.pool.idle:
            if self.ready:
                job = self.journal.get(self.ready.popleft())
                if job is None or job.work_path is None:
                    continue
                self._submit_process(job)
            elif self.probe_queue and len(self.ready) < self.settings.queue_size:
                key = self.probe_queue.popleft()
                job_id = self.pending.get(key)
                if job_id is None:
                    self.probing.discard(key)
                    continue
                self.pool.submit(Task(TaskKind.PROBE, job_id, self.layout.inbox / key, key))
            else:
                return

    def _submit_process(self, job: Job) -> None:
        assert job.work_path is not None
        rel = PurePosixPath(job.relpath)
        path = Path(job.work_path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            log.error("spool.missing", relpath=job.relpath, work_path=job.work_path)
            self.journal.update(
                job.job_id,
                state=State.QUARANTINED,
                reason="missing",
                last_error="claimed file vanished",
            )
            return
        if not stat.S_ISREG(st.st_mode):
            self._quarantine(job, reason="not_a_regular_file", message="not a regular file")
            return
        if self.settings.duplicates is DuplicatePolicy.SKIP and job.sha256:
            first = self.journal.done_with_sha256(job.sha256, exclude=job.job_id)
            if first is not None:
                self._duplicate(job, first)
                return
            if any(t.sha256 == job.sha256 for t in self.pool.busy):
                # The same content is being read right now: decide once that one is done.
                heapq.heappush(self.retries, (time.time() + 1.0, job.job_id))
                return
        if job.state is State.RETRY:
            job = self.journal.update(job.job_id, state=State.CLAIMED, next_attempt_at=None)
        extra = {"job": {"id": job.job_id, "attempt": job.attempts + 1, "daemon": self.instance}}
        self.pool.submit(
            Task(
                TaskKind.PROCESS,
                job.job_id,
                path,
                job.relpath,
                out_txt=sidecar_path(Path(rel), out_dir=self.layout.outbox),
                extra=extra,
                sha256=job.sha256,
            )
        )

    # --- outcomes ---------------------------------------------------------------------------------
    def _handle(self, outcome: Outcome, *, stopping: bool = False) -> None:
        try:
            if outcome.category is Category.REQUEUED:
                # Queued behind a task that crashed its worker: not this file's fault.
                if outcome.task.kind is TaskKind.PROBE:
                    self._unprobe(outcome.task.relpath)
                elif not stopping:
                    self.ready.appendleft(outcome.task.job_id)
                return
            if outcome.task.kind is TaskKind.PROBE:
                if not stopping:
                    self._handle_probe(outcome)
                else:
                    self._unprobe(outcome.task.relpath)
            else:
                self._handle_process(outcome)
        except OSError as exc:
            # Finishing failed (disk full, share gone): the file stays where it is, retried.
            log.error("daemon.finish_failed", relpath=outcome.task.relpath, error=str(exc))
            job = self.journal.get(outcome.task.job_id)
            if job is not None and job.state not in (State.DISCOVERED, State.STABLE):
                self._schedule(job, reason="finish_failed", message=str(exc))

    def _unprobe(self, key: str) -> None:
        self.probing.discard(key)
        if key in self.pending:
            self.gate.hint(key)
            self.gate.defer(key, 0.0)

    def _handle_probe(self, outcome: Outcome) -> None:
        key = outcome.task.relpath
        if key not in self.pending:
            self.probing.discard(key)
            return
        if outcome.ok:
            path = self.layout.inbox / key
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self.probing.discard(key)
                self._vanished(key)
                return
            job = self.journal.get(self.pending[key])
            if job is not None and (job.size, job.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._unprobe(key)  # it changed while we probed: wait again
                return
            job = self._claim(key)
            if job is None:
                return
            job = self.journal.update(job.job_id, sha256=outcome.data.get("sha256"))
            self.ready.append(job.job_id)
            return
        retryable = outcome.category in (Category.INCOMPLETE, Category.CRASH, Category.TRANSIENT)
        if outcome.category is Category.ENVIRONMENT:
            self.probing.discard(key)
            self.gate.defer(key, _backoff(1, self.settings))
            log.warning(
                "file.probe_deferred", relpath=key, reason=outcome.reason, error=outcome.message
            )
            return
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
            return
        attempts = self.gate.probe_failures(key)
        reason = "engine_crash" if outcome.category is Category.CRASH else outcome.reason
        job = self._claim(key)
        if job is not None:
            self._quarantine(job, reason=reason, message=outcome.message, attempts=attempts)

    def _handle_process(self, outcome: Outcome) -> None:
        job = self.journal.get(outcome.task.job_id)
        if job is None:
            return
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
            final = self._finish(job)
            self.done += 1
            self._document_line(
                "document.processed",
                job,
                outcome="ok",
                duration_s=round(outcome.seconds, 3),
                mode=data.get("mode"),
                after=final.value,
            )
            return
        attempts = job.attempts + 1
        crashes = job.crashes + (1 if outcome.category is Category.CRASH else 0)
        job = self.journal.update(
            job.job_id, attempts=attempts, crashes=crashes, last_error=outcome.message
        )
        give_up = (
            outcome.category is Category.PERMANENT
            or (outcome.category is Category.CRASH and crashes >= MAX_CRASHES)
            or (outcome.category is Category.TRANSIENT and attempts >= MAX_TRANSIENT_ATTEMPTS)
            or (outcome.category is Category.BUG and attempts >= MAX_BUG_ATTEMPTS)
        )
        if give_up:
            reason = "engine_crash" if outcome.category is Category.CRASH else outcome.reason
            self._quarantine(
                job, reason=reason, message=outcome.message, duration_s=outcome.seconds
            )
        else:
            self._schedule(
                job, reason=outcome.reason, message=outcome.message, category=outcome.category
            )

    def _schedule(
        self, job: Job, *, reason: str, message: str, category: Category | None = None
    ) -> None:
        delay = _backoff(job.attempts, self.settings)
        at = time.time() + delay
        job = self.journal.update(
            job.job_id, state=State.RETRY, next_attempt_at=at, reason=reason, last_error=message
        )
        heapq.heappush(self.retries, (at, job.job_id))
        self._document_line(
            "document.retry_scheduled",
            job,
            outcome="retry",
            reason=reason,
            error=message,
            category=category.value if category else None,
            retry_in_s=round(delay, 2),
        )

    def _finish(self, job: Job) -> State:
        """Archive, delete or keep the original now that its outputs are durable."""
        assert job.work_path is not None
        work = Path(job.work_path)
        rel = PurePosixPath(job.relpath)
        policy = self.settings.after_success
        if policy is AfterSuccess.KEEP:
            state, final_path = State.KEPT, str(work)
        elif policy is AfterSuccess.DELETE:
            self.spool.delete(work)
            state, final_path = State.DELETED, None
        else:
            state, final_path = State.ARCHIVED, str(self.spool.archive(work, rel))
        self.journal.update(job.job_id, state=state, final_path=final_path)
        if not self.keep:
            self.spool.release_job_dir(job.job_id)
        return state

    def _duplicate(self, job: Job, first: Job) -> None:
        self.journal.update(job.job_id, duplicate_of=first.relpath, outputs=None)
        job = self.journal.update(job.job_id, state=State.WRITTEN)
        final = self._finish(job)
        self.done += 1
        job = self.journal.get(job.job_id) or job
        self._document_line(
            "document.processed",
            job,
            outcome="duplicate",
            reason=f"duplicate of {first.relpath}",
            duplicate_of=first.relpath,
            after=final.value,
        )

    def _quarantine(
        self,
        job: Job,
        *,
        reason: str,
        message: str,
        attempts: int | None = None,
        duration_s: float = 0.0,
    ) -> None:
        assert job.work_path is not None
        rel = PurePosixPath(job.relpath)
        tries = job.attempts if attempts is None else attempts
        target = self.spool.quarantine(
            Path(job.work_path),
            rel,
            reason=reason,
            message=message,
            attempts=tries,
            copy=self.keep,
            details={
                "first_seen_at": _iso(job.discovered_at),
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
        if not self.keep:
            self.spool.release_job_dir(job.job_id)
        self.quarantined += 1
        self._document_line(
            "document.quarantined",
            job,
            outcome="quarantined",
            reason=reason,
            error=message,
            duration_s=round(duration_s, 3),
            quarantined_as=str(target),
        )

    # --- the canonical log line -------------------------------------------------------------------
    def _document_line(self, event: str, job: Job, **fields: Any) -> None:
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
        try:
            with open(self.layout.log_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:
            log.warning("outbox.log_failed", path=str(self.layout.log_file), error=str(exc))
