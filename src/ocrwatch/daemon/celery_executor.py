"""The Celery executor: tasks to ``ocrwatch worker`` processes on any host, answers back.

Decode probes stay on the coordinator's host (the stability gate is the coordinator's, and a
probe needs no engine): a small local pool runs them. At least once from the broker,
exactly once in effect here: every dispatch gets its own
Celery task id, and an answer for an id that is no longer in flight (late, duplicated, or
for a task sent again) is dropped. A started task whose heartbeat and answer stay away for
``celery.lease`` seconds is handed back as ``REQUEUED`` for the coordinator to send again,
and so is everything in flight when the broker has lost its data (an epoch key in the
result backend is gone). While the broker is unreachable the executor takes nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch.daemon.celery_worker import HEARTBEAT_STATE, TASK_NAME, make_app
from ocrwatch.daemon.local_executor import LocalExecutor
from ocrwatch.daemon.messages import Failure, ProbeTask, Result, Task, dumps, loads
from ocrwatch.support.retry import Category

if TYPE_CHECKING:
    from celery import Celery

    from ocrwatch.settings.model import Settings

__all__ = ["CeleryExecutor"]

log = structlog.get_logger()

_POLL_EVERY = 0.05
_EPOCH_EVERY = 2.0
_BROKER_RETRY = 2.0


@dataclass(slots=True)
class _Sent:
    task: Task
    sent_at: float
    beat_at: float | None = None
    beat: float | None = None


class CeleryExecutor:
    """Implements :class:`~ocrwatch.daemon.executor.Executor` over a Celery broker."""

    def __init__(self, settings: Settings, *, app: Celery | None = None) -> None:
        """Prepare the app (nothing is sent until :meth:`start`)."""
        self.settings = settings
        self.conf = settings.celery
        self.app = app or make_app(settings)
        self._probes = LocalExecutor(settings, size=1, timeout=settings.file_timeout)
        self._sent: dict[str, _Sent] = {}
        self._handed_back: list[Result] = []
        self._epoch_key = f"ocrwatch:epoch:{self.conf.queue}"
        self._epoch: str | None = None
        self._next_poll = 0.0
        self._next_epoch = 0.0
        self._next_lost_check = 0.0
        self._down_until = 0.0
        self._down_logged = False
        #: "host:pid" -> last heartbeat (wall time) of every worker seen.
        self._workers: dict[str, float] = {}
        self._broker_client: Any = None  # redis-py, made by the first queue check

    # --- the contract ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the probe pool; check the broker once (a broker that is down is waited for)."""
        self._probes.start()
        self._check_epoch(time.monotonic())

    @property
    def capacity(self) -> int:
        """Return how many more tasks may be sent now (0 while the broker is down)."""
        if time.monotonic() < self._down_until:
            return 0
        return max(0, self.conf.max_in_flight - len(self._sent))

    @property
    def probe_capacity(self) -> int:
        """Return how many more probes the local probe pool takes now."""
        return self._probes.capacity

    @property
    def in_flight(self) -> tuple[Task, ...]:
        """Return the tasks sent and not answered yet (probes included)."""
        return tuple(s.task for s in self._sent.values()) + self._probes.in_flight

    def submit(self, task: Task) -> None:
        """Publish ``task`` (a probe: to the local pool); a refused one comes back REQUEUED."""
        if isinstance(task, ProbeTask):
            self._probes.submit(task)
            return
        task_id = f"{task.job_id}-{secrets.token_hex(4)}"
        try:
            self.app.send_task(
                TASK_NAME, args=[dumps(task)], task_id=task_id, queue=self.conf.queue
            )
        except Exception as exc:  # kombu/redis/amqp errors: the broker is not there
            self._broker_down(exc)
            self._handed_back.append(_requeued(task, "broker unavailable"))
            return
        self._sent[task_id] = _Sent(task, sent_at=time.monotonic())

    def collect(self, timeout: float) -> list[Result]:
        """Return the answers that arrived, and tasks handed back (lease, lost broker)."""
        results, self._handed_back = self._handed_back, []
        results += self._probes.collect(0.0)
        now = time.monotonic()
        if now >= self._next_epoch:
            results += self._check_epoch(now)
        if self._sent and now >= self._next_poll:
            self._next_poll = now + _POLL_EVERY
            try:
                results += self._poll(now)
                if now >= self._next_lost_check:
                    self._next_lost_check = now + self.conf.lease / 2
                    results += self._lost_before_start(now)
            except Exception as exc:  # the backend is down: the epoch check decides later
                self._broker_down(exc)
        if not results and timeout > 0:
            time.sleep(min(timeout, _POLL_EVERY))
        return results

    def cancel(self, job_id: str) -> bool:
        """Forget (and revoke, best effort) the tasks of ``job_id``; return True if any."""
        ids = [tid for tid, s in self._sent.items() if s.task.job_id == job_id]
        for tid in ids:
            del self._sent[tid]
            self._revoke(tid)
        return bool(ids) or self._probes.cancel(job_id)

    @property
    def workers(self) -> Mapping[str, float]:
        """Return every worker seen, "host:pid" -> last heartbeat (wall time)."""
        return self._workers

    def close(self) -> None:
        """Stop the probe pool; recognitions in flight finish on their workers, dropped."""
        self._probes.close()
        self._sent.clear()
        if self._broker_client is not None:
            self._broker_client.close()
            self._broker_client = None

    # --- answers and heartbeats ------------------------------------------------------------
    def _poll(self, now: float) -> list[Result]:
        backend: Any = self.app.backend
        ids = list(self._sent)
        raw = backend.client.mget([backend.get_key_for_task(tid) for tid in ids])
        results: list[Result] = []
        for tid, value in zip(ids, raw, strict=True):
            sent = self._sent.get(tid)
            if sent is None:
                continue
            meta = backend.decode_result(value) if value else None
            if meta is not None:
                answer = self._read(tid, sent, meta)
                if answer is not None:
                    results.append(answer)
                    continue
            if sent.beat_at is not None and now - sent.beat_at > self.conf.lease:
                del self._sent[tid]
                self._revoke(tid)
                log.warning(
                    "task.lease_expired",
                    job_id=sent.task.job_id,
                    relpath=sent.task.relpath,
                    silent_s=round(now - sent.beat_at, 1),
                    detail="no heartbeat and no answer; sending it again",
                )
                results.append(_requeued(sent.task, "lease expired"))
        if results:
            self._forget([tid for tid in ids if tid not in self._sent])
        return results

    def _read(self, tid: str, sent: _Sent, meta: dict[str, Any]) -> Result | None:
        status = meta.get("status")
        if status in ("STARTED", HEARTBEAT_STATE):
            info = meta.get("result") or {}
            beat = info.get("beat") if isinstance(info, dict) else None
            # The lease runs from the last *new* heartbeat: a frozen worker's last state
            # stays in the backend and must not look alive.
            if sent.beat_at is None or (beat is not None and beat != sent.beat):
                sent.beat_at = time.monotonic()
                sent.beat = beat
            if isinstance(info, dict) and "host" in info and beat is not None:
                self._workers[f"{info['host']}:{info.get('pid')}"] = float(beat)
            return None
        if status == "SUCCESS":
            del self._sent[tid]
            try:
                answer = loads(meta["result"])
            except (ValueError, TypeError) as exc:
                return Result(sent.task, Failure(Category.BUG, "bad_answer", str(exc)))
            return answer if isinstance(answer, Result) else None
        if status in ("FAILURE", "REVOKED"):
            del self._sent[tid]
            return Result(sent.task, _failure(meta.get("result")))
        return None

    def _lost_before_start(self, now: float) -> list[Result]:
        """Hand back tasks a worker took and never started (it froze or died on receipt).

        A task not started after a lease is lost when it is neither in the broker's queue
        nor held by a worker that answers (Redis brokers; others rely on the broker's own
        redelivery).
        """
        stale = {
            tid
            for tid, s in self._sent.items()
            if s.beat_at is None and now - s.sent_at > self.conf.lease
        }
        queued = self._queued_ids() if stale else None
        if not stale or queued is None:
            return []
        stale -= queued
        if stale:
            stale -= self._held_by_workers()
        lost: list[Result] = []
        for tid in stale:
            sent = self._sent.pop(tid)
            self._revoke(tid)
            log.warning(
                "task.lost", job_id=sent.task.job_id, relpath=sent.task.relpath,
                detail="taken by a worker that never started it; sending it again",
            )  # fmt: skip
            lost.append(_requeued(sent.task, "taken by a worker that went silent"))
        return lost

    def _queued_ids(self) -> set[str] | None:
        """Return the task ids waiting in the broker's queue (None: not a Redis broker)."""
        url = self.conf.broker_url.get_secret_value()
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return None
        if self._broker_client is None:
            import redis

            self._broker_client = redis.Redis.from_url(url)  # its pool keeps the connection
        queued: list[bytes] = self._broker_client.lrange(self.conf.queue, 0, -1)
        return {json.loads(raw)["headers"]["id"] for raw in queued}

    def _held_by_workers(self) -> set[str]:
        """Return the ids of the tasks live workers hold (reserved or running)."""
        inspect = self.app.control.inspect(timeout=1.0)
        held: set[str] = set()
        for report in (inspect.active() or {}, inspect.reserved() or {}):
            for tasks in report.values():
                held.update(str(t.get("id")) for t in tasks)
        return held

    def _check_epoch(self, now: float) -> list[Result]:
        """Notice a broker that lost its data (restarted empty): hand back what was sent."""
        self._next_epoch = now + _EPOCH_EVERY
        try:
            client: Any = self.app.backend.client
            client.set(self._epoch_key, secrets.token_hex(8), nx=True)
            epoch = client.get(self._epoch_key)
        except Exception as exc:
            self._broker_down(exc)
            return []
        epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        if self._down_logged:
            log.warning("broker.available")
            self._down_logged = False
        self._down_until = 0.0
        lost: list[Result] = []
        if self._epoch is not None and epoch != self._epoch and self._sent:
            log.error(
                "broker.data_lost",
                in_flight=len(self._sent),
                detail="the broker restarted without its queue; sending everything again",
            )
            lost = [_requeued(s.task, "broker lost its queue") for s in self._sent.values()]
            self._sent.clear()
        self._epoch = epoch
        return lost

    def _broker_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + _BROKER_RETRY
        if not self._down_logged:
            log.error("broker.unavailable", error=str(exc), detail="waiting for it")
            self._down_logged = True

    def _revoke(self, tid: str) -> None:
        try:
            self.app.control.revoke(tid)
        except Exception as exc:  # best effort: a late answer is dropped anyway
            log.debug("task.revoke_failed", task_id=tid, error=str(exc))

    def _forget(self, ids: list[str]) -> None:
        backend: Any = self.app.backend
        try:
            backend.client.delete(*[backend.get_key_for_task(tid) for tid in ids])
        except Exception as exc:  # they expire anyway (result_expires)
            log.debug("task.forget_failed", error=str(exc))


def _failure(info: Any) -> Failure:
    """Return the failure for a task Celery reports as FAILURE (the worker process died)."""
    if isinstance(info, BaseException):  # the backend rebuilds the exception it stored
        kind, message = type(info).__name__, f"{type(info).__name__}: {info}"
    else:
        kind = info.get("exc_type", "") if isinstance(info, dict) else ""
        text = info.get("exc_message", info) if isinstance(info, dict) else info
        message = f"{kind}: {json.dumps(text, default=str)}" if kind else str(text)
    if kind in ("TimeLimitExceeded", "SoftTimeLimitExceeded"):
        return Failure(Category.CRASH, "engine_timeout", message)
    if kind in ("WorkerLostError", "Terminated"):
        return Failure(Category.CRASH, "engine_crash", message)
    return Failure(Category.BUG, "internal_error", message)


def _requeued(task: Task, why: str) -> Result:
    return Result(task, Failure(Category.REQUEUED, "requeued", why))
