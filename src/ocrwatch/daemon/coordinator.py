"""``ocrwatch run``: start-up checks, wiring, and the loop that dispatches between stages.

One thread owns all state. Each turn of the loop checks that inbox and outbox are really
there, feeds watcher events to intake, sends probes and recognition tasks to the executor,
and hands each result to the stage that decides about it (intake for probes, disposition
for recognitions). Watchdog threads only enqueue. Only this loop makes progress, so it is
the only place that sends ``WATCHDOG=1``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import signal
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from ocrwatch._version import __version__
from ocrwatch.daemon.disposition import Disposition
from ocrwatch.daemon.executor import Executor
from ocrwatch.daemon.folders import Layout, Mounts, check_layout, resolve_layout
from ocrwatch.daemon.intake import Intake, Rejection
from ocrwatch.daemon.journal import (
    JOURNAL_NAME,
    Changes,
    Job,
    Journal,
    State,
    is_full,
    open_journal,
    start_error,
)
from ocrwatch.daemon.local_executor import LocalExecutor, default_workers
from ocrwatch.daemon.messages import (
    Failure,
    ProbeTask,
    RecognizeTask,
    Refused,
    Result,
    TaskSettings,
    Written,
    dump_settings,
    load_settings,
)
from ocrwatch.daemon.metrics import Metrics
from ocrwatch.daemon.notify import Notifications, check_urls
from ocrwatch.daemon.recovery import recover
from ocrwatch.daemon.reporting import Reporting
from ocrwatch.daemon.spool import Spool
from ocrwatch.daemon.status_page import StatusPage
from ocrwatch.daemon.stitch import Stitcher, kept, split, spread
from ocrwatch.daemon.systemd import Notifier
from ocrwatch.daemon.watch import Watcher
from ocrwatch.exceptions import ConfigError
from ocrwatch.outputs.writer import sidecar_path
from ocrwatch.settings.choices import ExecutorKind
from ocrwatch.settings.model import Settings
from ocrwatch.settings.resolve import after_success_for
from ocrwatch.support import fsutil
from ocrwatch.support.fsutil import display
from ocrwatch.support.retry import Category

__all__ = ["Coordinator", "run"]

log = structlog.get_logger()

_TICK = 0.2
_STATUS_EVERY = 2.0
_HEARTBEAT_EVERY = 10.0
#: Refusals (workers without an engine or language the file needs) before the file fails.
MAX_REFUSALS = 3
_REPLAN_EVERY = 2.0
#: Journal states in which a job waits for the coordinator (an attempt or a move).
_WAITING = frozenset({State.CLAIMED, State.RETRY, State.WRITTEN, State.REJECTED})


def run(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit code (0 after a clean stop).

    Raises ConfigError (exit code 3) for an unsafe or unusable folder layout, or a journal
    that cannot be opened or written at start; StateFullError (75) when that is because its
    disk is full.
    """
    layout = resolve_layout(settings)
    check_layout(layout)
    mounts = Mounts(layout)
    mounts.claim()
    check_urls(settings)
    journal, instance = open_journal(layout.state_dir / JOURNAL_NAME)
    metrics = Metrics() if settings.metrics_port else None
    page = StatusPage(layout.state_dir / JOURNAL_NAME) if metrics is not None else None
    coordinator = Coordinator(
        settings,
        layout=layout,
        mounts=mounts,
        journal=journal,
        instance=instance,
        executor=make_executor(settings),
        notifier=Notifier.from_env(),
        metrics=metrics,
        notifications=Notifications(settings),
        page=page,
    )
    if metrics is not None and settings.metrics_port is not None:
        try:
            metrics.serve(
                settings.metrics_port,
                settings.metrics_address,
                page=page.html if page is not None else None,
            )
        except OSError as exc:
            journal.close()
            raise ConfigError(f"metrics_port {settings.metrics_port}: {exc.strerror}") from exc
    return coordinator.run()


def make_executor(settings: Settings) -> Executor:
    """Return the executor ``settings.executor`` names."""
    if settings.executor is ExecutorKind.CELERY:
        from ocrwatch.daemon.celery_executor import CeleryExecutor

        return CeleryExecutor(settings)
    size = settings.workers or default_workers()
    return LocalExecutor(settings, size=size, timeout=settings.file_timeout)


@dataclass(slots=True)
class _Timers:
    rescan: float
    status: float = 0.0
    watchdog: float = 0.0
    heartbeat: float = 0.0


class Coordinator:
    """The running daemon; build with :func:`run`."""

    def __init__(
        self,
        settings: Settings,
        *,
        layout: Layout,
        mounts: Mounts,
        journal: Journal,
        instance: str,
        executor: Executor,
        notifier: Notifier,
        metrics: Metrics | None = None,
        notifications: Notifications | None = None,
        page: StatusPage | None = None,
    ) -> None:
        """Wire the stages (nothing starts until :meth:`run`)."""
        self.settings = settings
        self.layout = layout
        self.mounts = mounts
        self.journal = journal
        self.instance = instance
        self.executor = executor
        self.notifier = notifier
        self.spool = Spool(layout, instance_id=instance)
        self.metrics = metrics
        self.reporting = Reporting(
            settings, metrics=metrics, page=page, notifications=notifications
        )
        self.disposition = Disposition(
            settings=settings,
            layout=layout,
            journal=journal,
            spool=self.spool,
            mounts=mounts,
            observer=self.reporting.document,
        )
        self.stitcher = Stitcher(settings)
        #: job id -> the settings its file is read with, resolved once (see _task_settings).
        self._resolved: dict[str, TaskSettings] = {}
        #: job id -> the workers that refused it (its next task goes elsewhere).
        self._refusals: dict[str, list[str]] = {}
        self._refusal_count: dict[str, int] = {}
        #: Ranges of split documents handed back unrun, to send again alone.
        self._lost_ranges: deque[RecognizeTask] = deque()
        from ocrwatch.engines import reads_whole_pdfs

        self.split = not reads_whole_pdfs(settings.engine)
        self.intake = Intake(settings=settings, layout=layout, journal=journal, spool=self.spool)
        self.ready: deque[str] = deque()  # claimed job ids waiting for the executor
        self._events: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._rescan = threading.Event()
        #: When to look again at what a full journal kept from being recorded (or None).
        self._replan_at: float | None = None
        self._stop = threading.Event()
        self._signals: deque[int] = deque()
        self.watcher = Watcher(
            layout.inbox,
            mode=settings.watch_mode,
            poll_interval=settings.poll_interval,
            on_path=self._events.put,
            on_overflow=self._overflow,
        )

    # --- life cycle ------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, loop until asked to stop, drain, and return 0."""
        log.info(
            "daemon.starting",
            version=__version__,
            pid=os.getpid(),
            instance=self.instance,
            inbox=display(self.layout.inbox),
            outbox=display(self.layout.outbox),
            archive=display(self.layout.archive),
            quarantine=display(self.layout.quarantine),
            state_dir=display(self.layout.state_dir),
            settings=self.settings.masked(),
        )
        old_handlers = self._install_signals()
        self.reporting.start()
        try:
            self.executor.start()
            self._sweep()
            self.spool.heartbeat()
            self._start_recovery()
            self.watcher.start()
            self.intake.full_scan("startup")
            self.notifier.ready()
            log.info("daemon.ready", watch_mode=self.watcher.mode.value, why=self.watcher.reason)
            self._loop()
            self._drain()
        except Exception as exc:
            self.reporting.stopped(exc)
            raise
        finally:
            self.reporting.close()
            self.watcher.stop()
            self.executor.close()
            self.stitcher.close()  # a write still running ends first; its job stays claimed
            self.journal.close()
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
        log.info(
            "daemon.stopped",
            done=self.disposition.done,
            quarantined=self.disposition.quarantined,
        )
        return 0

    def _sweep(self) -> None:
        """Remove temporary files that killed writers left (never a live writer's)."""
        every = {self.layout.outbox, self.layout.archive, self.layout.quarantine}
        every.add(self.layout.work_root)
        roots = [r for r in every if not any(o in r.parents for o in every)]
        older = self.settings.file_timeout + 60.0
        removed = sum(fsutil.sweep_temp(r, older_than=older) for r in roots if r.is_dir())
        if removed:
            log.info("outbox.swept", temporary_files=removed)

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

    def _start_recovery(self) -> None:
        try:
            self._recover()
        except sqlite3.Error as exc:
            what = f"cannot write the journal in {display(self.layout.state_dir)}"
            raise start_error(what, exc, self.layout.state_dir) from exc

    def _recover(self) -> None:
        """Redo the first unfinished step of every job left by an earlier run (or a peer)."""
        self.spool.adopt_dead_peers(lease=self.settings.peer_lease)
        policy = functools.partial(after_success_for, self.settings)
        plan = recover(self.journal, self.spool, after_success=policy)
        for key, job_id in plan.rediscover:
            self.intake.rediscover(key, job_id)
        for job_id in plan.finish:
            if (job := self.journal.get(job_id)) is not None:
                self.disposition.resume(job)
        waiting = set(self.ready)
        self.ready.extend(j for j in plan.ready if j not in waiting)
        for at, job_id in plan.retries:
            self.disposition.later(job_id, at=at)
        for job_id in plan.closed:
            if (job := self.journal.get(job_id)) is not None:
                self.disposition.recovered(job)
        if plan.resumed:
            log.info("daemon.recovered", jobs=plan.resumed)

    # --- the loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        now = time.monotonic()
        timers = _Timers(rescan=now + (self.settings.rescan_interval or float("inf")))
        while not self._stop.is_set():
            self._log_signals()
            with self._guard("mounts"):
                self._check_mounts()
            if self.mounts.inbox_ok:
                with self._guard("intake"):
                    self._intake(timers)
            with self._guard("dispatch"):
                self._due_retries()
                if self.mounts.ok:
                    self._dispatch()
            for result in self.executor.collect(_TICK):
                with self._guard("result"):
                    self._handle(result)
            self._stitched()
            self._tick(timers)

    def _stitched(self) -> None:
        for result in self.stitcher.finished():
            with self._guard("result"):
                self._finish(result)

    def _intake(self, timers: _Timers) -> None:
        self._drain_events()
        self.intake.retry_unjournaled()
        now = time.monotonic()
        if self._rescan.is_set() or now >= timers.rescan:
            why = "overflow" if self._rescan.is_set() else "periodic"
            self._rescan.clear()
            self.intake.full_scan(why)
            if self.settings.rescan_interval:
                timers.rescan = now + self.settings.rescan_interval
            self._adopt()
        if not self.watcher.alive():
            self.watcher.restart()
            self._rescan.set()
        self._reject(self.intake.check_gate())

    def _tick(self, timers: _Timers) -> None:
        now = time.monotonic()
        if self._replan_at is not None and now >= self._replan_at and self.mounts.inbox_ok:
            # A step the full journal refused (a result, a claim) is found again from the
            # journal and the work area, as after a restart, once a write works again.
            self._replan_at = now + _REPLAN_EVERY
            with self._guard("journal"):
                if self.journal.writable():
                    self._recover()
                    self._replan_at = None
        interval = self.notifier.watchdog_interval
        if interval is not None and now >= timers.watchdog:
            self.notifier.watchdog()
            timers.watchdog = now + interval
        if now >= timers.status:
            text = self._status_text()
            self.notifier.status(text)
            self.reporting.status(text)
            timers.status = now + _STATUS_EVERY
            with self._guard("workers"):
                self._workers()
            with self._guard("notify"):
                self.reporting.conditions(
                    now, layout=self.layout, mounts=self.mounts, journal=self.journal
                )
        beat = now >= timers.heartbeat and self.mounts.inbox_ok
        if beat:
            with self._guard("heartbeat"):
                self.spool.heartbeat()
            timers.heartbeat = now + _HEARTBEAT_EVERY
        if beat or (self.mounts.inbox_ok and time.time() >= self.spool.next_lease_end):
            # Peers are looked at with each heartbeat and when a live one's lease runs out:
            # a dead peer's claims are adopted after peer_lease, not at the next rescan.
            with self._guard("peers"):
                self._adopt()

    def _workers(self) -> None:
        """Journal the workers seen (for status) and refresh the metrics' gauges."""
        seen = self.executor.workers
        for name, at in seen.items():
            self.journal.worker_seen(name, at)
        if self.metrics is not None:
            workers = self.journal.workers()
            self.metrics.refresh(
                self.journal,
                in_flight=len(self.executor.in_flight),
                workers=workers,
                unjournaled=len(self.intake.gate) + len(self.intake.unjournaled),
            )

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
        except sqlite3.OperationalError as exc:
            if not is_full(exc):
                log.exception("daemon.internal_error", stage=stage)
            else:  # not a bug: the state disk is full; said once per outage
                if self._replan_at is None:
                    log.warning(
                        "journal.write_failed",
                        stage=stage,
                        error=str(exc),
                        detail="the state disk is full; what could not be recorded is "
                        "looked at again once it can be",
                    )
                self._replan_at = time.monotonic() + _REPLAN_EVERY
            time.sleep(_TICK)
        except Exception:
            log.exception("daemon.internal_error", stage=stage)
            time.sleep(_TICK)  # a persistent bug must not turn into a busy loop

    def _drain(self) -> None:
        """Stop intake; let in-flight tasks finish within stop_timeout; leave the rest claimed."""
        self._log_signals()
        self.notifier.stopping()
        self.watcher.stop()
        deadline = time.monotonic() + self.settings.stop_timeout
        in_flight = self.executor.in_flight
        log.info(
            "daemon.draining",
            recognizing=sum(isinstance(t, RecognizeTask) for t in in_flight),
            probing=sum(isinstance(t, ProbeTask) for t in in_flight),
            waiting=len(self.ready),
            timeout=self.settings.stop_timeout,
        )
        extended = 0.0
        while (self.executor.in_flight or self.stitcher.busy) and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= extended:
                with contextlib.suppress(ValueError):
                    self.notifier.extend_timeout(max(deadline - now, 0.0) + 10.0)
                if self.notifier.watchdog_interval is not None:
                    self.notifier.watchdog()  # draining is progress too
                extended = now + min(5.0, self.notifier.watchdog_interval or 5.0)
            for result in self.executor.collect(_TICK):
                with self._guard("result"):
                    self._handle(result, stopping=True)
            self._stitched()
        left = [display(t.relpath) for t in self.executor.in_flight]
        if left:
            log.warning("daemon.stop_timeout", left_claimed=left, detail="resumed at next start")

    def _status_text(self) -> str:
        paused = "" if self.mounts.ok and self.intake.journal_ok else "PAUSED; "
        return (
            f"{paused}{len(self.ready)} queued, {len(self.executor.in_flight)} in flight, "
            f"{len(self.intake.gate)} settling, "
            f"{self.disposition.done} done, {self.disposition.quarantined} quarantined; "
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

    def _check_mounts(self) -> None:
        inbox_back, _outbox_back = self.mounts.refresh()
        if inbox_back:
            # The old inotify watch died with the old mount: watch the new one, look at once.
            self.watcher.restart()
            self._rescan.set()
            self._recover()

    def _adopt(self) -> None:
        if self.spool.adopt_dead_peers(lease=self.settings.peer_lease):
            self._recover()

    # --- dispatch ---------------------------------------------------------------------------------
    def _due_retries(self) -> None:
        room = self.settings.queue_size - len(self.ready)
        self.ready.extend(self.disposition.due(now=time.time(), limit=room))

    def _dispatch(self) -> None:
        """Start waiting jobs first; probe new files while there is room for probes."""
        while self._lost_ranges and self.executor.capacity > 0:
            part = self._lost_ranges.popleft()
            if part.job_id in self.stitcher:
                self.executor.submit(part)
        while True:
            if self.ready and self.executor.capacity > 0:
                job = self.journal.get(self.ready.popleft())
                if job is not None and job.work_path is not None:
                    self._start(job)
            elif (
                len(self.ready) < self.settings.queue_size
                and self.executor.probe_capacity > 0
                and (probe := self.intake.next_probe())
            ):
                self.executor.submit(probe)
            else:
                return

    def _start(self, job: Job) -> None:
        if job.state not in _WAITING or any(
            t.job_id == job.job_id for t in self.executor.in_flight
        ):
            return  # finished meanwhile, or already on its way (queued twice after a resume)
        if job.state in (State.WRITTEN, State.REJECTED):
            self.disposition.resume(job)  # the decision is durable: only the move is left
            return
        in_flight = {t.sha256 for t in self.executor.in_flight if isinstance(t, RecognizeTask)}
        admitted = self.disposition.admit(job, in_flight_sha256={s for s in in_flight if s})
        if admitted is None:
            return
        out_txt = sidecar_path(Path(admitted.relpath), out_dir=self.layout.outbox)
        task = RecognizeTask(
            job_id=admitted.job_id,
            relpath=admitted.relpath,
            path=str(admitted.work_path),
            attempt=admitted.attempts + 1,
            out_txt=str(out_txt),
            sha256=admitted.sha256,
            coordinator=self.instance,
            outbox_marker=str(self.layout.outbox_marker),
            volume_id=self.mounts.outbox.volume_id,
            settings=self._task_settings(admitted),
            refused_by=tuple(self._refusals.get(admitted.job_id, ())),
        )
        parts = [task]
        if self.split and admitted.pages and not kept(task):
            parts = split(task, pages=admitted.pages, per_task=self._per_task(admitted.pages))
        if len(parts) > 1:
            self.stitcher.expect(task.job_id, len(parts))
        for part in parts:
            self.executor.submit(part)

    def _task_settings(self, job: Job) -> TaskSettings:
        """Return what decides ``job``'s result: the settings kept with it when it was claimed.

        The mode, languages, engines and their sections, outputs and the hot-folder profile
        travel with every task of the job (its retries and page ranges alike, and after a
        restart with other settings). A job claimed by an older ocrwatch (nothing kept) is
        resolved now and kept; one whose kept settings cannot be read is resolved again.
        """
        resolved = self._resolved.get(job.job_id)
        if resolved is not None:
            return resolved
        why = "not kept with the job"
        if job.settings is not None:
            try:
                resolved = load_settings(job.settings)
            except ValueError as exc:
                why = str(exc)
        if resolved is None:
            resolved = TaskSettings.resolve(self.settings, job.relpath)
            say = log.info if job.settings is None else log.warning
            say(
                "job.settings_resolved_again",
                job_id=job.job_id,
                relpath=display(job.relpath),
                reason=why,
            )
            try:
                self.journal.update(job.job_id, changes=Changes(settings=dump_settings(resolved)))
            except sqlite3.OperationalError as exc:  # kept in memory for this run
                log.warning("journal.write_failed", stage="settings", error=str(exc))
        self._resolved[job.job_id] = resolved
        return resolved

    def _refused(self, task: RecognizeTask, refused: Refused) -> None:
        """A worker cannot read ``task`` as resolved: send it elsewhere, or fail the file."""
        name = refused.worker or "local"
        self.journal.worker_refused(name, f"{refused.reason}: {refused.message}")
        by = self._refusals.setdefault(task.job_id, [])
        if (refused.node or refused.worker) not in by:
            by.append(refused.node or refused.worker)
        count = self._refusal_count.get(task.job_id, 0) + 1
        self._refusal_count[task.job_id] = count
        log.warning(
            "task.refused",
            job_id=task.job_id,
            relpath=display(task.relpath),
            worker=name,
            reason=refused.reason,
            refusals=count,
            detail=refused.message,
        )
        self.executor.cancel(task.job_id)
        self.stitcher.drop(task.job_id)
        if count < MAX_REFUSALS:
            if task.job_id not in self.ready:
                self.ready.appendleft(task.job_id)  # to a worker that has not refused it
            return
        job = self.journal.get(task.job_id)
        if job is not None and job.state in (State.CLAIMED, State.RETRY):
            message = f"refused {count} times ({refused.reason}); the last: {refused.message}"
            failure = Failure(Category.PERMANENT, "no_capable_worker", message)
            self.disposition.failed(job, failure, seconds=0.0)
        self._forget(task.job_id)

    def _forget(self, job_id: str) -> None:
        self._resolved.pop(job_id, None)
        self._refusals.pop(job_id, None)
        self._refusal_count.pop(job_id, None)

    def _per_task(self, pages: int) -> int:
        """Pages per range: Celery's setting, or as many ranges as local workers are idle."""
        if isinstance(self.executor, LocalExecutor):
            return spread(pages, idle=self.executor.idle, waiting=len(self.ready))
        return self.settings.celery.pages_per_task

    def _reject(self, rejections: list[Rejection]) -> None:
        for r in rejections:
            self.disposition.quarantine(
                r.job, reason=r.reason, message=r.message, attempts=r.attempts
            )

    def _seen(self, result: Result) -> None:
        by = getattr(result.outcome, "processed_by", None)
        if by:  # a worker's stable name (NAME@host); host:pid for the local executor
            name = by.get("worker") or f"{by.get('host')}:{by.get('pid')}"
            self.journal.worker_seen(str(name), time.time())

    # --- answers from the executor ---------------------------------------------------------
    def _handle(self, result: Result, *, stopping: bool = False) -> None:
        failure = result.failure
        task = result.task
        if failure is not None and failure.category is Category.REQUEUED:
            # Handed back unrun (a crashed neighbour, a lease, a lost broker): not the file's
            # fault; a lost range of a split document is sent again alone.
            if isinstance(task, ProbeTask):
                self.intake.unprobe(task.relpath)
            elif stopping:
                pass
            elif task.pages is not None and task.job_id in self.stitcher:
                self._lost_ranges.append(task)
            elif task.job_id not in self.ready:
                self.executor.cancel(task.job_id)
                self.stitcher.drop(task.job_id)
                self.ready.appendleft(task.job_id)
            return
        if isinstance(result.outcome, Refused):
            assert isinstance(task, RecognizeTask)
            if not stopping:
                self._refused(task, result.outcome)
            return
        if isinstance(task, ProbeTask):
            if stopping:
                self.intake.unprobe(task.relpath)
                return
            answer = self.intake.probe_answered(result)
            if isinstance(answer, Rejection):
                self._reject([answer])
            elif answer is not None:
                self.ready.append(answer.job_id)
            return
        if task.pages is not None:  # one range of a split document
            if failure is not None:
                self.executor.cancel(task.job_id)  # its other ranges: the job is redone whole
            stitched = self.stitcher.add(result)
            if stitched is None:
                return  # more ranges to come, or the whole is being written
            result = stitched
        self._finish(result)

    def _finish(self, result: Result) -> None:
        """Close a recognition: its outputs written (or not) and the original to move."""
        failure, task = result.failure, result.task
        self._seen(result)
        job = self.journal.get(task.job_id)
        if failure is None:
            self._forget(task.job_id)
        if job is None or job.state not in (State.CLAIMED, State.RETRY):
            log.warning("result.dropped", job_id=task.job_id, detail="job not waiting for it")
        elif failure is not None:
            self.disposition.failed(job, failure, seconds=result.seconds)
        else:
            assert isinstance(result.outcome, Written)
            self.disposition.written(job, result.outcome, seconds=result.seconds)
        after = self.journal.get(task.job_id) if failure is not None else None
        if after is not None and after.state not in _WAITING:
            self._forget(task.job_id)  # quarantined: nothing more is sent
