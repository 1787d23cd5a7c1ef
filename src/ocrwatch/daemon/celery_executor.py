"""The Celery executor: tasks to ``ocrwatch worker`` processes on any host, answers back.

Decode probes stay on the coordinator's host (the stability gate is the coordinator's, and a
probe needs no engine): a small local pool runs them. At least once from the broker,
exactly once in effect here: every dispatch gets its own
Celery task id, and an answer for an id that is no longer in flight (late, duplicated, or
for a task sent again) is dropped. A started task whose heartbeat and answer stay away for
``celery.lease`` seconds is handed back as ``REQUEUED`` for the coordinator to send again,
and so is everything in flight when the broker has lost its data (an epoch key in the
result backend is gone). While the broker is unreachable the executor takes nothing.

The coordinator's loop never waits on the broker for long: every Redis call is bounded by
``SOCKET_TIMEOUT``, a publish is tried once (a refused one comes back ``REQUEUED``), and
while the broker is down only one probe every few seconds touches it; revocations run on
a thread of their own. An outage logs ``broker.unavailable`` once (a warning: it recovers)
and ``broker.available`` when it ends; leases restart then (an outage is nobody's fault).
A task whose answer could not be stored because of an outage comes back ``REQUEUED``.

Every task sent is also recorded in Redis (``ocrwatch:sent:<queue>``): a restarted
coordinator takes up the tasks it had sent (same job, attempt, range and settings) and their
answers instead of sending them again. A task a worker refused goes to another worker's own queue
(Celery's ``worker_direct``) when a live one is known.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch.daemon.celery_worker import (
    HEARTBEAT_STATE,
    SOCKET_TIMEOUT,
    TASK_NAME,
    backend_url,
    make_app,
)
from ocrwatch.daemon.local_executor import LocalExecutor
from ocrwatch.daemon.messages import Failure, ProbeTask, RecognizeTask, Result, Task, dumps, loads
from ocrwatch.support.retry import Category

if TYPE_CHECKING:
    from celery import Celery

    from ocrwatch.settings.model import Settings

__all__ = ["CeleryExecutor"]

log = structlog.get_logger()

_POLL_EVERY = 0.05
_EPOCH_EVERY = 2.0
_BROKER_RETRY = 2.0
#: Exception names of a broker/backend outage: never the file's fault.
_OUTAGES = frozenset(
    {
        "ConnectionError", "TimeoutError", "OperationalError", "BackendStoreError",
        "BusyLoadingError", "ReadOnlyError", "RedisError", "ConnectionRefusedError",
        "ConnectionResetError", "BrokenPipeError", "RecoverableConnectionError",
    }
)  # fmt: skip


@dataclass(slots=True)
class _Sent:
    task: Task
    sent_at: float
    beat_at: float | None = None
    beat: float | None = None
    #: The worker's own queue it was routed to (a refused task), or "" (the shared queue).
    direct: str = ""


_AdoptionKey = tuple[str, int, tuple[int, int] | None, str | None]


def _adoption_key(task: Task) -> _AdoptionKey | None:
    """Return what a task sent before must share to be taken up: job, attempt, range, settings."""
    if not isinstance(task, RecognizeTask):
        return None
    digest = task.settings.digest if task.settings is not None else None
    return (task.job_id, task.attempt, task.pages, digest)


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
        #: Set while the broker is unreachable: the loop makes no broker call then; a thread
        #: pings it and sets ``_back`` when it answers.
        self._down = False
        self._back = threading.Event()
        self._pinger: threading.Thread | None = None
        #: "NAME@host" -> last heartbeat (wall time) of every worker seen.
        self._workers: dict[str, float] = {}
        #: Celery node name -> last heartbeat (wall time): where a refused task can go.
        self._nodes: dict[str, float] = {}
        self._broker_client: Any = None  # redis-py, made by the first queue check
        self._sent_key = f"ocrwatch:sent:{self.conf.queue}"
        #: Tasks an earlier run sent, by (job, attempt, range, settings digest) -> task id.
        self._adoptable: dict[_AdoptionKey, str] = {}
        self._adopt_until = 0.0
        self._loaded = False
        self._revocations: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._revoker: threading.Thread | None = None
        _no_result_subscriptions(self.app)

    # --- the contract ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the probe pool; check the broker once; load the tasks an earlier run sent."""
        self._probes.start()
        self._revoker = threading.Thread(target=self._revoke_loop, name="revoker", daemon=True)
        self._revoker.start()
        self._check_epoch(time.monotonic())

    @property
    def capacity(self) -> int:
        """Return how many more tasks may be sent now (0 while the broker is down)."""
        if self._down:
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
        if self._adopt(task):
            return
        task_id = f"{task.job_id}-{secrets.token_hex(4)}"
        node = self._elsewhere(task)
        route: dict[str, Any] = (
            {"exchange": "C.dq2", "routing_key": node} if node else {"queue": self.conf.queue}
        )
        body = dumps(task)
        try:
            if self._down:
                raise ConnectionError("the broker is unavailable")
            self.app.send_task(TASK_NAME, args=[body], task_id=task_id, retry=False, **route)
            self.app.backend.client.hset(self._sent_key, task_id, body)
        except Exception as exc:  # kombu/redis/amqp errors: the broker is not there
            self._broker_down(exc)
            self._handed_back.append(_requeued(task, "broker unavailable"))
            return
        direct = f"{node}.dq2" if node else ""
        self._sent[task_id] = _Sent(task, sent_at=time.monotonic(), direct=direct)

    def collect(self, timeout: float) -> list[Result]:
        """Return the answers that arrived, and tasks handed back (lease, lost broker)."""
        results, self._handed_back = self._handed_back, []
        results += self._probes.collect(0.0)
        now = time.monotonic()
        if self._down and self._back.is_set():
            self._next_epoch = now  # it answers again: check what it kept
        if now >= self._next_epoch and (not self._down or self._back.is_set()):
            results += self._check_epoch(now)
        if self._adoptable and now >= self._adopt_until and not self._down:
            self._drop_unadopted()
        if self._sent and now >= self._next_poll and not self._down:
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
        if ids:
            self._forget(ids)
        return bool(ids) or self._probes.cancel(job_id)

    @property
    def workers(self) -> Mapping[str, float]:
        """Return every worker seen, "NAME@host" -> last heartbeat (wall time)."""
        return self._workers

    def close(self) -> None:
        """Stop the probe pool; recognitions in flight finish on their workers, and the
        next start takes up their answers."""
        self._probes.close()
        self._sent.clear()
        self._revocations.put(None)
        if self._revoker is not None:
            self._revoker.join(timeout=2 * SOCKET_TIMEOUT)
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
                name = info.get("worker") or f"{info['host']}:{info.get('pid')}"
                self._workers[str(name)] = float(beat)
                if info.get("node"):
                    self._nodes[str(info["node"])] = float(beat)
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
        if lost:
            self._forget(list(stale))
        return lost

    def _queued_ids(self) -> set[str] | None:
        """Return the task ids waiting in the broker's queue (None: not a Redis broker)."""
        url = self.conf.broker_url.get_secret_value()
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return None
        if self._broker_client is None:
            import redis

            self._broker_client = redis.Redis.from_url(  # its pool keeps the connection
                url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
            )
        queued: list[bytes] = self._broker_client.lrange(self.conf.queue, 0, -1)
        alive = time.time() - self.conf.lease
        for direct in {s.direct for s in self._sent.values() if s.direct}:
            # A worker's own queue holds its tasks only while that worker lives.
            if self._nodes.get(direct.removesuffix(".dq2"), 0.0) >= alive:
                queued += self._broker_client.lrange(direct, 0, -1)
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
        if not self._loaded:
            self._load_sent()
        if self._down:
            log.info("broker.available", in_flight=len(self._sent))
            self._down = False
            for sent in self._sent.values():  # the outage silenced the heartbeats, not a worker
                sent.sent_at = now
                if sent.beat_at is not None:
                    sent.beat_at = now
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
        """Stop calling the broker from the loop; a thread pings it until it answers."""
        if self._down and not self._back.is_set():
            return
        if not self._down:
            log.warning(
                "broker.unavailable",
                error=str(exc) or type(exc).__name__,
                detail="sending nothing until it is back; watching and claiming go on",
            )
        self._down = True
        self._back.clear()
        if self._pinger is None or not self._pinger.is_alive():
            self._pinger = threading.Thread(target=self._ping_loop, name="broker-ping", daemon=True)
            self._pinger.start()

    def _ping_loop(self) -> None:
        """Ping the broker's Redis every few seconds until it answers (off the loop)."""
        import redis

        client = redis.Redis.from_url(
            backend_url(self.settings),
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
        try:
            while True:
                try:
                    if client.ping():
                        self._back.set()
                        return
                except Exception as exc:
                    log.debug("broker.ping_failed", error=str(exc))
                time.sleep(_BROKER_RETRY)
        finally:
            client.close()

    def _revoke(self, tid: str) -> None:
        """Revoke ``tid`` on a thread of its own (best effort: a late answer is dropped)."""
        self._revocations.put(tid)

    def _revoke_loop(self) -> None:
        while (tid := self._revocations.get()) is not None:
            try:
                self.app.control.revoke(tid)
            except Exception as exc:  # best effort: a late answer is dropped anyway
                log.debug("task.revoke_failed", task_id=tid, error=str(exc))

    def _forget(self, ids: list[str]) -> None:
        backend: Any = self.app.backend
        try:
            backend.client.delete(*[backend.get_key_for_task(tid) for tid in ids])
            backend.client.hdel(self._sent_key, *ids)
        except Exception as exc:  # they expire anyway (result_expires)
            log.debug("task.forget_failed", error=str(exc))

    # --- a restarted coordinator takes up what it had sent ----------------------------------
    def _load_sent(self) -> None:
        """Read the tasks an earlier run sent and did not see answered."""
        try:
            raw: dict[bytes, bytes] = self.app.backend.client.hgetall(self._sent_key)
        except Exception as exc:
            self._broker_down(exc)
            return
        self._loaded = True
        for tid, body in raw.items():
            try:
                task = loads(body)
            except ValueError:
                continue
            key = _adoption_key(task) if not isinstance(task, Result) else None
            if key is not None:
                self._adoptable[key] = tid.decode()
        # Jobs the journal does not send again (finished meanwhile) leave their entries.
        self._adopt_until = time.monotonic() + self.conf.lease
        if self._adoptable:
            log.info("tasks.adoptable", tasks=len(self._adoptable))

    def _adopt(self, task: Task) -> bool:
        """Take up an earlier run's task for the same job, attempt, range, settings; True if so."""
        key = _adoption_key(task)
        tid = self._adoptable.pop(key, None) if key is not None else None
        if tid is None:
            return False
        self._sent[tid] = _Sent(task, sent_at=time.monotonic())
        log.info("task.adopted", job_id=task.job_id, relpath=task.relpath, task_id=tid)
        return True

    def _drop_unadopted(self) -> None:
        ids = list(self._adoptable.values())
        self._adoptable.clear()
        for tid in ids:
            self._revoke(tid)
        self._forget(ids)

    def _elsewhere(self, task: Task) -> str:
        """Return a live worker's node for a task others refused ("" for the shared queue)."""
        refused = getattr(task, "refused_by", ())
        if not refused:
            return ""
        alive = time.time() - self.conf.lease
        nodes = {n: at for n, at in self._nodes.items() if at >= alive and n not in refused}
        if not nodes and not self._down:
            try:  # workers that have not run a task yet: ask who is there (bounded)
                replies = self.app.control.ping(timeout=1.0) or []
            except Exception:
                replies = []
            for reply in replies:
                self._nodes.update({n: time.time() for n in reply})
                nodes.update({n: time.time() for n in reply if n not in refused})
        return max(nodes, key=lambda n: nodes[n]) if nodes else ""


def _no_result_subscriptions(app: Celery) -> None:
    """Answers are polled (one MGET a turn): no pub/sub subscription per task sent.

    Celery's Redis backend subscribes to every task it sends; during an outage that
    subscription logs CRITICAL "must be restarted" over and over, though nothing is wrong.
    """
    backend: Any = app.backend
    backend.on_task_call = lambda producer, task_id: None


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
    if kind in _OUTAGES:  # the answer could not be stored: the broker's fault, not the file's
        return Failure(Category.REQUEUED, "requeued", f"broker outage: {message}")
    return Failure(Category.BUG, "internal_error", message)


def _requeued(task: Task, why: str) -> Result:
    return Result(task, Failure(Category.REQUEUED, "requeued", why))
