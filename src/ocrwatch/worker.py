"""Where text is recognized for the daemon: a pool of worker processes, one task each.

Engines are in-process libraries (libtesseract, onnxruntime) that can hang or segfault, so
they run in child processes (``spawn`` context: no inherited threads or locks). Each worker
builds one :class:`~ocrwatch.engines.EngineCache` and reuses it for every file. The daemon
talks to each worker over its own pipe and keeps up to two tasks queued there, so the next
file starts while the daemon does the bookkeeping of the last. A worker whose running task
outlives its deadline is killed and replaced, and so is one that dies (segfault, OOM). Both
come back to the daemon as an :class:`Outcome` of category ``CRASH``: the file is retried
and, after a few crashes, quarantined. Workers die with the daemon (``PR_SET_PDEATHSIG``),
so a ``kill -9`` of the daemon does not leave engines running.

Two kinds of task: ``probe`` (open and decode, before the claim: is the scanner done?) and
``process`` (recognize + write the sidecar and manifest atomically into the outbox).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch.exceptions import (
    ENVIRONMENT_ERRNOS,
    ConfigError,
    CorruptFileError,
    DependencyError,
    EmptyFileError,
    InputError,
    OutputError,
    PermanentEngineError,
    TransientEngineError,
    TransientOutputError,
)

if TYPE_CHECKING:
    from ocrwatch.config import Settings

__all__ = ["Category", "Outcome", "Task", "TaskKind", "WorkerPool", "classify", "default_workers"]

log = structlog.get_logger()

#: PP-OCR's models plus page buffers need about this much memory per worker.
BYTES_PER_WORKER = 1536 * 1024 * 1024


class TaskKind(StrEnum):
    """What a worker is asked to do."""

    PROBE = "probe"
    PROCESS = "process"


class Category(StrEnum):
    """How the daemon treats a task's failure (or success)."""

    OK = "ok"
    PERMANENT = "permanent"  # quarantine at once
    INCOMPLETE = "incomplete"  # probe: may be a write in progress; retry a few times
    TRANSIENT = "transient"  # retry with backoff, bounded
    ENVIRONMENT = "environment"  # disk full, share gone, engine missing: retry, unbounded
    CRASH = "crash"  # worker died or timed out: retry, few times
    REQUEUED = "requeued"  # queued behind a crashed task: run again, no attempt counted
    BUG = "bug"  # unexpected exception: retry a few times, then quarantine


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work for a worker."""

    kind: TaskKind
    job_id: str
    path: Path
    relpath: str
    out_txt: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of a task: ``data`` on success, else a category, reason and message."""

    task: Task
    category: Category
    reason: str = ""
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Return True when the task succeeded."""
        return self.category is Category.OK


def classify(exc: BaseException, *, probing: bool = False) -> tuple[Category, str]:
    """Return (category, reason code) for an exception raised by a task."""
    if probing and isinstance(exc, CorruptFileError | EmptyFileError):
        return Category.INCOMPLETE, exc.reason
    if isinstance(exc, InputError | PermanentEngineError):
        return Category.PERMANENT, exc.reason
    if isinstance(exc, TransientOutputError | DependencyError | ConfigError):
        return Category.ENVIRONMENT, exc.reason
    if isinstance(exc, TransientEngineError):
        return Category.TRANSIENT, exc.reason
    if isinstance(exc, OutputError):
        return Category.ENVIRONMENT, exc.reason  # e.g. permissions on the outbox: fixable
    if isinstance(exc, OSError):
        if exc.errno in ENVIRONMENT_ERRNOS:
            return Category.ENVIRONMENT, f"os_{errno.errorcode.get(exc.errno or 0, 'error')}"
        return Category.TRANSIENT, f"os_{errno.errorcode.get(exc.errno or 0, 'error').lower()}"
    if isinstance(exc, MemoryError):
        return Category.CRASH, "out_of_memory"
    return Category.BUG, "internal_error"


def default_workers() -> int:
    """Return a worker count from the CPUs we may use and the memory available."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    available = _mem_available()
    by_memory = max(1, available // BYTES_PER_WORKER) if available else cpus
    return max(1, min(cpus, by_memory))


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


# --- the child side ---------------------------------------------------------------------


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:  # not glibc Linux: orphans then end at EOF on their pipe
        pass


def _worker_main(conn: Connection, settings: Settings, parent_pid: int) -> None:
    """Serve tasks from ``conn`` until it closes; runs in the child process."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)
    # The daemon handles SIGINT/SIGTERM and finishes or hands back our work itself. systemd
    # sends SIGTERM to the whole cgroup (KillMode=control-group): a worker that died of it
    # would turn a graceful stop into a crash of the file in hand. Orphans still die, of
    # PR_SET_PDEATHSIG's SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    from ocrwatch import documents, outputs, pipeline
    from ocrwatch import logging as ocrlogging
    from ocrwatch.engines import EngineCache
    from ocrwatch.profiles import effective_settings

    ocrlogging.configure(level=settings.log_level, fmt=settings.log_format, stream=sys.stdout)
    engines = EngineCache(settings)
    try:
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return
            if task is None:
                return
            started = time.perf_counter()
            try:
                data: dict[str, Any]
                if task.kind is TaskKind.PROBE:
                    info = documents.probe(task.path, settings=settings)
                    data = {
                        "sha256": info.sha256,
                        "size": info.size,
                        "format": str(info.format),
                        "pages": info.page_count,
                    }
                else:
                    assert task.out_txt is not None
                    # Hot folders: the first [[profiles]] entry matching the relpath decides.
                    effective, profile = effective_settings(settings, task.relpath)
                    result = pipeline.recognize_file(task.path, settings=effective, engines=engines)
                    paths = outputs.write_outputs(
                        result,
                        txt_path=task.out_txt,
                        source_id=task.relpath,
                        extra={**task.extra, "profile": profile},
                        formats=effective.outputs,
                    )
                    data = {
                        "sha256": result.source.sha256,
                        "size": result.source.size,
                        "pages": len(result.pages),
                        "engine": ",".join(sorted(result.engines)) or None,
                        "engines": dict(result.engines),
                        "mode": str(result.mode),
                        "attempts": result.attempts,
                        "outputs": {
                            "txt": str(paths.txt),
                            "manifest": str(paths.manifest),
                            **{str(fmt): str(p) for fmt, p in paths.extra.items()},
                        },
                        "profile": profile,
                        "after_success": str(effective.after_success),
                    }
                reply = Outcome(task, Category.OK, data=data)
            except Exception as exc:
                category, reason = classify(exc, probing=task.kind is TaskKind.PROBE)
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                if category is Category.BUG:
                    message += "\n" + "".join(traceback.format_exception(exc)[-3:])
                reply = Outcome(task, category, reason=reason, message=str(message))
            reply = replace(reply, seconds=time.perf_counter() - started)
            try:
                conn.send(reply)
            except (EOFError, OSError):
                return
    finally:
        engines.close()


# --- the parent side --------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    number: int
    process: BaseProcess
    conn: Connection
    #: Sent and not answered yet; the worker serves them in order, the head is running.
    tasks: deque[Task] = field(default_factory=deque)
    deadline: float = 0.0
    started: float = 0.0


class WorkerPool:
    """A fixed number of worker processes; used from one thread (the daemon's loop).

    Each worker gets up to ``depth`` tasks at a time, so that it starts the next file while
    the daemon does the bookkeeping (journal, archive) of the previous one. The time limit
    applies to the running task only, from the moment the previous one was answered.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        size: int,
        timeout: float,
        probe_timeout: float = 120.0,
        depth: int = 2,
    ) -> None:
        """Create (not start) ``size`` workers; tasks get ``timeout`` seconds each."""
        self.settings = settings
        self.size = size
        self.timeout = timeout
        # A decode probe has its own limit: file_timeout is about recognition time.
        self.probe_timeout = probe_timeout
        self.depth = max(1, depth)
        self._ctx = multiprocessing.get_context("spawn")
        self._slots: list[_Slot] = []
        self._numbers = itertools.count(1)
        self.replaced = 0

    def start(self) -> None:
        """Start the worker processes."""
        for _ in range(self.size):
            self._slots.append(self._spawn())

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe(duplex=True)
        number = next(self._numbers)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self.settings, os.getpid()),
            name=f"ocrwatch-worker-{number}",
            daemon=True,
        )
        proc.start()
        child.close()
        return _Slot(number=number, process=proc, conn=parent)

    @property
    def idle(self) -> int:
        """Return how many more tasks the workers can take now."""
        return sum(self.depth - len(s.tasks) for s in self._slots)

    @property
    def running(self) -> int:
        """Return how many workers are working on a task."""
        return sum(1 for s in self._slots if s.tasks)

    @property
    def busy(self) -> list[Task]:
        """Return the tasks sent and not answered yet."""
        return [t for s in self._slots for t in s.tasks]

    def _limit(self, task: Task) -> float:
        return self.probe_timeout if task.kind is TaskKind.PROBE else self.timeout

    def submit(self, task: Task) -> None:
        """Give ``task`` to the least loaded worker (RuntimeError when all are full)."""
        candidates = [s for s in self._slots if len(s.tasks) < self.depth]
        if not candidates:
            raise RuntimeError("no idle worker")
        slot = min(candidates, key=lambda s: len(s.tasks))
        try:
            slot.conn.send(task)
        except OSError:
            if slot.tasks:
                # The worker died with work: poll() reports its running task as a crash
                # and this one, queued behind it, as requeued.
                slot.tasks.append(task)
                return
            index = self._slots.index(slot)
            self._replace(slot, reason="died while idle")
            slot = self._slots[index]
            slot.conn.send(task)
        if not slot.tasks:
            slot.started = time.monotonic()
            slot.deadline = slot.started + self._limit(task)
        slot.tasks.append(task)

    def poll(self, timeout: float) -> list[Outcome]:
        """Wait up to ``timeout`` s for results; return finished, crashed and timed-out tasks.

        When a worker dies or is killed, its running task comes back as ``CRASH`` and the
        tasks queued behind it as ``REQUEUED`` (not the file's fault).
        """
        busy = [s for s in self._slots if s.tasks]
        if not busy:
            if timeout > 0:
                time.sleep(timeout)
            return []
        now = time.monotonic()
        wait_for = min(timeout, max(0.0, min(s.deadline for s in busy) - now))
        waitables: list[Any] = [s.conn for s in busy] + [s.process.sentinel for s in busy]
        ready = set(multiprocessing.connection.wait(waitables, timeout=wait_for))
        results: list[Outcome] = []
        for slot in busy:
            if slot.conn in ready:
                try:
                    while slot.tasks and slot.conn.poll():
                        outcome: Outcome = slot.conn.recv()
                        slot.tasks.popleft()
                        results.append(outcome)
                        if slot.tasks:
                            slot.started = time.monotonic()
                            slot.deadline = slot.started + self._limit(slot.tasks[0])
                except (EOFError, OSError):
                    results += self._crashed(slot, "worker died before answering")
            elif slot.process.sentinel in ready:
                results += self._crashed(slot, "worker process died")
            elif time.monotonic() >= slot.deadline:
                limit = slot.deadline - slot.started
                results += self._crashed(slot, f"time limit of {limit:g} s exceeded", timeout=True)
        return results

    def _crashed(self, slot: _Slot, why: str, *, timeout: bool = False) -> list[Outcome]:
        if not slot.tasks:  # pragma: no cover - answered everything, then died
            self._replace(slot, reason=why)
            return []
        task, *queued = slot.tasks
        code = slot.process.exitcode
        if code is not None and code < 0:
            try:
                why += f" (signal {signal.Signals(-code).name})"
            except ValueError:
                why += f" (signal {-code})"
        elif code is not None:
            why += f" (exit code {code})"
        seconds = time.monotonic() - slot.started
        self._replace(slot, reason=why)
        reason = "engine_timeout" if timeout else "engine_crash"
        out = [Outcome(task, Category.CRASH, reason=reason, message=why, seconds=seconds)]
        out += [Outcome(t, Category.REQUEUED, reason="worker_replaced") for t in queued]
        return out

    def _replace(self, slot: _Slot, *, reason: str) -> None:
        self.replaced += 1
        log.warning("worker.replaced", worker=slot.number, pid=slot.process.pid, why=reason)
        self._kill(slot)
        index = self._slots.index(slot)
        self._slots[index] = self._spawn()

    @staticmethod
    def _kill(slot: _Slot) -> None:
        try:
            if slot.process.is_alive():
                slot.process.kill()
            slot.process.join(timeout=5)
        except (OSError, ValueError):
            pass
        slot.conn.close()
        with contextlib.suppress(ValueError):
            slot.process.close()

    def stop(self, *, grace: float = 5.0) -> None:
        """Ask idle workers to exit, kill the rest (their tasks stay claimed)."""
        for slot in self._slots:
            if not slot.tasks:
                with contextlib.suppress(OSError):
                    slot.conn.send(None)
        deadline = time.monotonic() + grace
        for slot in self._slots:
            if not slot.tasks:
                slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._kill(slot)
        self._slots.clear()
