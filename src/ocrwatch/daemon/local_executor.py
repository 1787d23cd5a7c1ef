"""The local executor: a pool of worker processes on this host, one task at a time each.

Engines are in-process libraries (libtesseract, onnxruntime) that can hang or segfault, so
they run in child processes (``spawn`` context). Each worker builds one engine cache and
reuses it; the coordinator keeps up to two tasks queued per worker. A worker whose running
task outlives its limit is killed and replaced, and so is one that dies: its task comes
back as a ``CRASH`` failure, those queued behind it as ``REQUEUED``. Workers die with the
daemon (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch.daemon.messages import Failure, ProbeTask, Result, Task, dumps, loads
from ocrwatch.support.retry import Category
from ocrwatch.support.workers import default_workers, die_with_parent

if TYPE_CHECKING:
    from ocrwatch.settings.model import Settings

__all__ = ["LocalExecutor", "default_workers"]

log = structlog.get_logger()


# --- the child side ---------------------------------------------------------------------


def _worker_main(conn: Connection, settings: Settings, parent_pid: int) -> None:
    """Serve tasks from ``conn`` until it closes; runs in the child process."""
    die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)
    # The daemon handles SIGINT/SIGTERM and finishes or hands back our work itself. systemd
    # sends SIGTERM to the whole cgroup (KillMode=control-group): a worker that died of it
    # would turn a graceful stop into a crash of the file in hand.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    from ocrwatch.daemon.execute import execute
    from ocrwatch.engines import EngineCache
    from ocrwatch.support import logsetup as ocrlogging
    from ocrwatch.support.throttle import Throttles

    ocrlogging.configure(level=settings.log_level, fmt=settings.log_format, stream=sys.stdout)
    # The account's request rate, split among this host's worker processes.
    share = settings.workers or default_workers()
    engines = EngineCache(settings, throttles=Throttles(share=share))
    try:
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                return
            if not data:  # the coordinator's "please exit"
                return
            task = loads(data)
            assert not isinstance(task, Result)
            try:
                conn.send_bytes(dumps(execute(task, settings=settings, engines=engines)).encode())
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


class LocalExecutor:
    """A fixed number of worker processes (the :class:`~ocrwatch.daemon.executor.Executor`).

    Each worker gets up to ``depth`` tasks at a time, so that it starts the next file while
    the coordinator does the bookkeeping of the previous one. The time limit applies to the
    running task only, from the moment the previous one was answered. Tasks and results
    cross the pipe as their JSON messages, as they would cross a network.
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
        self._orphans: list[Task] = []
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
    def capacity(self) -> int:
        """Return how many more tasks the workers can take now."""
        return sum(self.depth - len(s.tasks) for s in self._slots)

    @property
    def idle(self) -> int:
        """Return how many workers have no task at all (a document may spread over them)."""
        return sum(not s.tasks for s in self._slots)

    @property
    def probe_capacity(self) -> int:
        """Return :attr:`capacity`: probes and recognitions share the same workers."""
        return self.capacity

    @property
    def in_flight(self) -> tuple[Task, ...]:
        """Return the tasks sent and not answered yet."""
        return tuple(t for s in self._slots for t in s.tasks)

    @property
    def workers(self) -> Mapping[str, float]:
        """Return {}: the pool's processes are this host's, not remote workers."""
        return {}

    def _limit(self, task: Task) -> float:
        return self.probe_timeout if isinstance(task, ProbeTask) else self.timeout

    def submit(self, task: Task) -> None:
        """Give ``task`` to the least loaded worker (RuntimeError when all are full)."""
        candidates = [s for s in self._slots if len(s.tasks) < self.depth]
        if not candidates:
            raise RuntimeError("no idle worker")
        slot = min(candidates, key=lambda s: len(s.tasks))
        data = dumps(task).encode()
        try:
            slot.conn.send_bytes(data)
        except OSError:
            if slot.tasks:
                # The worker died with work: collect() reports its running task as a crash
                # and this one, queued behind it, as requeued.
                slot.tasks.append(task)
                return
            index = self._slots.index(slot)
            self._replace(slot, reason="died while idle")
            slot = self._slots[index]
            slot.conn.send_bytes(data)
        if not slot.tasks:
            slot.started = time.monotonic()
            slot.deadline = slot.started + self._limit(task)
        slot.tasks.append(task)

    def collect(self, timeout: float) -> list[Result]:
        """Wait up to ``timeout`` s; return finished, crashed and timed-out tasks' results."""
        if self._orphans:
            out = [_requeued(t) for t in self._orphans]
            self._orphans.clear()
            return out
        busy = [s for s in self._slots if s.tasks]
        if not busy:
            if timeout > 0:
                time.sleep(timeout)
            return []
        now = time.monotonic()
        wait_for = min(timeout, max(0.0, min(s.deadline for s in busy) - now))
        waitables: list[Any] = [s.conn for s in busy] + [s.process.sentinel for s in busy]
        ready = set(multiprocessing.connection.wait(waitables, timeout=wait_for))
        results: list[Result] = []
        for slot in busy:
            if slot.conn in ready:
                results += self._receive(slot)
            elif slot.process.sentinel in ready:
                results += self._crashed(slot, "worker process died")
            elif time.monotonic() >= slot.deadline:
                limit = slot.deadline - slot.started
                results += self._crashed(slot, f"time limit of {limit:g} s exceeded", timeout=True)
        return results

    def _receive(self, slot: _Slot) -> list[Result]:
        results: list[Result] = []
        try:
            while slot.tasks and slot.conn.poll():
                message = loads(slot.conn.recv_bytes())
                assert isinstance(message, Result)
                slot.tasks.popleft()
                results.append(message)
                if slot.tasks:
                    slot.started = time.monotonic()
                    slot.deadline = slot.started + self._limit(slot.tasks[0])
        except (EOFError, OSError):
            results += self._crashed(slot, "worker died before answering")
        return results

    def cancel(self, job_id: str) -> bool:
        """Kill the worker holding ``job_id``; tasks queued behind it come back REQUEUED."""
        for slot in self._slots:
            if any(t.job_id == job_id for t in slot.tasks):
                others = [t for t in slot.tasks if t.job_id != job_id]
                slot.tasks.clear()
                self._replace(slot, reason=f"job {job_id} cancelled")
                self._orphans.extend(others)
                return True
        return False

    def _crashed(self, slot: _Slot, why: str, *, timeout: bool = False) -> list[Result]:
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
        out = [Result(task, Failure(Category.CRASH, reason, why), seconds=seconds)]
        return out + [_requeued(t) for t in queued]

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

    def close(self, *, grace: float = 5.0) -> None:
        """Ask idle workers to exit, kill the rest (their tasks stay claimed)."""
        for slot in self._slots:
            if not slot.tasks:
                with contextlib.suppress(OSError):
                    slot.conn.send_bytes(b"")
        deadline = time.monotonic() + grace
        for slot in self._slots:
            if not slot.tasks:
                slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._kill(slot)
        self._slots.clear()


def _requeued(task: Task) -> Result:
    return Result(task, Failure(Category.REQUEUED, "worker_replaced", "handed back unrun"))
