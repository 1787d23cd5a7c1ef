"""``ocrwatch run``: start-up checks, wiring, the dispatcher loop, signals, systemd.

One thread (the main one) owns all state and runs the stages in turn: it drains paths
queued by the watcher into :mod:`ocrwatch.intake` (quiet period, decode probe, claim by
rename), sends probes and recognition tasks to the worker processes
(:mod:`ocrwatch.worker`), and hands every answer to :mod:`ocrwatch.outcomes` (retry,
archive, quarantine, the canonical log line). At start :mod:`ocrwatch.recovery` says what
an earlier run left unfinished. Watchdog threads only enqueue. Because only this loop makes
progress, it is the only place that sends ``WATCHDOG=1``.

Exactly once: a job's claim intent is journaled before the rename, its outputs are written
atomically (a re-run after a crash replaces its own sidecar, never adds a second one), and
the original is archived only after the journal says the outputs are durable. Restarting
after ``kill -9`` redoes the first unfinished step of every job. The canonical
``document.*`` log line of a job that was interrupted after writing may appear twice.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sqlite3
import stat
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Any

import structlog

from ocrwatch import __version__
from ocrwatch.config import DuplicatePolicy, Settings
from ocrwatch.exceptions import ConfigError
from ocrwatch.intake import Intake
from ocrwatch.journal import JOURNAL_NAME, Job, Journal, State
from ocrwatch.outcomes import Outcomes
from ocrwatch.outputs import sidecar_path
from ocrwatch.recovery import recover
from ocrwatch.spool import Layout, Spool, check_layout, resolve_layout
from ocrwatch.systemd import Notifier
from ocrwatch.watch import Watcher
from ocrwatch.worker import Category, Outcome, Task, TaskKind, WorkerPool, default_workers

__all__ = ["Daemon", "run"]

log = structlog.get_logger()

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


class Daemon:
    """The running daemon; build with :func:`run`."""

    def __init__(self, settings: Settings, layout: Layout, *, notifier: Notifier) -> None:
        """Wire the daemon for ``layout`` (nothing starts until :meth:`run`)."""
        self.settings = settings
        self.layout = layout
        self.notifier = notifier
        self._events: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._rescan = threading.Event()
        self._stop = threading.Event()
        self.ready: deque[str] = deque()  # claimed job ids waiting for a worker
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
        self.outcomes = Outcomes(
            settings=settings, layout=self.layout, journal=self.journal, spool=self.spool
        )
        self.intake = Intake(
            settings=settings,
            layout=self.layout,
            journal=self.journal,
            spool=self.spool,
            outcomes=self.outcomes,
        )
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
            self.intake.full_scan("startup")
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
        log.info("daemon.stopped", done=self.outcomes.done, quarantined=self.outcomes.quarantined)
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
        plan = recover(self.journal, self.spool, after_success=self.settings.after_success)
        for key, job_id in plan.rediscover:
            self.intake.rediscover(key, job_id)
        for job_id in plan.finish:
            job = self.journal.get(job_id)
            if job is None:
                continue
            try:
                self.outcomes.complete(job, recovered=True)
            except OSError as exc:
                self.outcomes.move_failed(job.job_id, job.relpath, exc)
        self.ready.extend(plan.ready)
        for at, job_id in plan.retries:
            self.outcomes.later(job_id, at=at)
        if plan.resumed:
            log.info("daemon.recovered", jobs=plan.resumed)

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
                    self.intake.full_scan("overflow" if self._rescan.is_set() else "periodic")
                self._rescan.clear()
                if settings.rescan_interval:
                    next_rescan = now + settings.rescan_interval
            with self._guard("watcher"):
                self._check_watcher()
            with self._guard("stabilize"):
                self.intake.check_gate(inbox_ok=self._inbox_ok)
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
            f"{len(self.intake.gate)} settling, "
            f"{self.outcomes.done} done, {self.outcomes.quarantined} quarantined; "
            f"watching {self.watcher.mode.value}"
        )

    # --- watching -------------------------------------------------------------------------------
    def _drain_events(self) -> None:
        for _ in range(10_000):
            try:
                path = self._events.get_nowait()
            except queue.Empty:
                return
            self.intake.seen(path)

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

    # --- dispatch ---------------------------------------------------------------------------------
    def _due_retries(self) -> None:
        room = self.settings.queue_size - len(self.ready)
        self.ready.extend(self.outcomes.due(now=time.time(), limit=room))

    def _dispatch(self) -> None:
        while self.pool.idle:
            if self.ready:
                job = self.journal.get(self.ready.popleft())
                if job is None or job.work_path is None:
                    continue
                try:
                    if job.state is State.WRITTEN:
                        self.outcomes.complete(job)  # outputs are durable: only the move left
                    else:
                        self._submit_process(job)
                except OSError as exc:
                    self.outcomes.move_failed(job.job_id, job.relpath, exc)
            elif len(self.ready) < self.settings.queue_size and (probe := self.intake.next_probe()):
                self.pool.submit(probe)
            else:
                return

    def _submit_process(self, job: Job) -> None:
        assert job.work_path is not None
        rel = PurePosixPath(job.relpath)
        path = Path(job.work_path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.outcomes.vanished(job)
            return
        if not stat.S_ISREG(st.st_mode):
            self.outcomes.quarantine(job, reason="not_a_regular_file", message="not a regular file")
            return
        if self.settings.duplicates is DuplicatePolicy.SKIP and job.sha256:
            first = self.journal.done_with_sha256(job.sha256, exclude=job.job_id)
            if first is not None:
                self.outcomes.duplicate(job, first)
                return
            if any(t.sha256 == job.sha256 for t in self.pool.busy):
                # The same content is being read right now: decide once that one is done.
                self.outcomes.later(job.job_id, at=time.time() + 1.0)
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

    # --- answers from the workers ---------------------------------------------------------------
    def _handle(self, outcome: Outcome, *, stopping: bool = False) -> None:
        try:
            if outcome.category is Category.REQUEUED:
                # Queued behind a task that crashed its worker: not this file's fault.
                if outcome.task.kind is TaskKind.PROBE:
                    self.intake.unprobe(outcome.task.relpath)
                elif not stopping:
                    self.ready.appendleft(outcome.task.job_id)
                return
            if outcome.task.kind is TaskKind.PROBE:
                if stopping:
                    self.intake.unprobe(outcome.task.relpath)
                elif (job_id := self.intake.probe_answered(outcome)) is not None:
                    self.ready.append(job_id)
            else:
                job = self.journal.get(outcome.task.job_id)
                if job is not None:
                    self.outcomes.recognized(job, outcome)
        except OSError as exc:
            # Moving the original failed (disk full, share gone): it stays, retried.
            self.outcomes.move_failed(outcome.task.job_id, outcome.task.relpath, exc)
