"""The Celery executor's decisions against a fake Celery app and Redis, on a fake clock.

The fakes implement exactly what ``daemon/celery_executor.py`` calls: ``app.send_task``
(shared queue or a worker's direct queue), ``app.control.revoke`` / ``inspect`` / ``ping``,
Celery's Redis result backend (``get_key_for_task``, ``decode_result``, ``on_task_call``)
and one redis-py server behind the backend's client, the broker client and the broker ping
thread (``redis.Redis.from_url`` is the fake's: no socket is opened). Task metas are JSON
under ``celery-task-meta-<id>``, as Celery's Redis backend stores them; the broker's queue is
a list of kombu messages. No broker, no worker, no process (the probe pool is not started).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time as real_time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from ocrwatch.daemon import celery_executor
from ocrwatch.daemon.celery_executor import CeleryExecutor
from ocrwatch.daemon.celery_worker import HEARTBEAT_STATE, TASK_NAME
from ocrwatch.daemon.messages import (
    Failure,
    RecognizeTask,
    Refused,
    Result,
    TaskSettings,
    Written,
    dumps,
    loads,
)
from ocrwatch.settings.model import Settings, load_settings
from ocrwatch.support.retry import Category

LEASE = 10.0
SENT_KEY = b"ocrwatch:sent:q"
#: Real seconds a test waits for one of the executor's threads (revoker, broker ping).
DEADLINE = 10.0


def wait_for(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition`` until it holds (a thread of the executor did its part)."""
    end = real_time.monotonic() + DEADLINE
    while not condition():
        if real_time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        real_time.sleep(0.005)


class FakeClock:
    """Stands in for the ``time`` module inside celery_executor: time moves when told.

    The test's thread moves it (``advance``, or ``sleep`` on the loop); the executor's own
    threads (the broker ping) sleep until the test has moved it far enough.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self._moved = threading.Condition()
        self._main = threading.get_ident()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if threading.get_ident() == self._main:
            self.advance(seconds)
            return
        until = self.now + seconds
        with self._moved:
            while self.now < until:
                self._moved.wait(0.05)

    def advance(self, seconds: float) -> None:
        with self._moved:
            self.now += seconds
            self._moved.notify_all()


def _key(key: str | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.encode()


class FakeRedis:
    """One Redis server as redis-py clients see it: the calls the executor makes.

    ``down`` makes every call fail as redis-py does when the server is gone; ``calls``
    records (thread name, command) to tell the loop's calls from the ping thread's.
    """

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.hashes: dict[bytes, dict[bytes, bytes]] = {}
        self.lists: dict[bytes, list[bytes]] = {}
        self.down = False
        #: Commands that fail even while the server is up (a server still loading its data).
        self.failing: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.urls: list[str] = []

    def _call(self, command: str) -> None:
        self.calls.append((threading.current_thread().name, command))
        if self.down or command in self.failing:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Refused.")

    def from_url(self, url: str, **options: Any) -> FakeRedis:
        """``redis.Redis.from_url``: every Redis call is bounded (socket timeouts given)."""
        assert options.get("socket_timeout") and options.get("socket_connect_timeout")
        self.urls.append(url)
        return self

    def ping(self) -> bool:
        self._call("ping")
        return True

    def mget(self, keys: list[str | bytes]) -> list[bytes | None]:
        self._call("mget")
        return [self.data.get(_key(k)) for k in keys]

    def set(self, key: str, value: str, nx: bool = False) -> bool | None:
        self._call("set")
        if nx and _key(key) in self.data:
            return None
        self.data[_key(key)] = _key(value)
        return True

    def get(self, key: str) -> bytes | None:
        self._call("get")
        return self.data.get(_key(key))

    def delete(self, *keys: str | bytes) -> int:
        self._call("delete")
        return sum(self.data.pop(_key(k), None) is not None for k in keys)

    def hset(self, name: str, key: str, value: str) -> int:
        self._call("hset")
        self.hashes.setdefault(_key(name), {})[_key(key)] = _key(value)
        return 1

    def hdel(self, name: str, *keys: str) -> int:
        self._call("hdel")
        entries = self.hashes.get(_key(name), {})
        return sum(entries.pop(_key(k), None) is not None for k in keys)

    def hgetall(self, name: str) -> dict[bytes, bytes]:
        self._call("hgetall")
        return dict(self.hashes.get(_key(name), {}))

    def lrange(self, name: str, start: int, end: int) -> list[bytes]:
        self._call("lrange")
        assert (start, end) == (0, -1)
        return list(self.lists.get(_key(name), []))

    def close(self) -> None:
        pass

    def enqueue(self, queue: str, task_id: str) -> None:
        """A kombu message waiting in the broker's ``queue`` (a Redis list)."""
        message = {"body": "", "headers": {"id": task_id, "task": TASK_NAME}}
        self.lists.setdefault(_key(queue), []).append(json.dumps(message).encode())


class FakeBackend:
    """Celery's Redis result backend: metas as JSON under celery-task-meta-<id>."""

    def __init__(self, server: FakeRedis) -> None:
        self.client = server
        self.subscribed: list[str] = []

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Celery's pub/sub subscription per task sent (the executor turns it off)."""
        self.subscribed.append(task_id)

    def get_key_for_task(self, task_id: str) -> bytes:
        return f"celery-task-meta-{task_id}".encode()

    def decode_result(self, payload: bytes) -> dict[str, Any]:
        meta: dict[str, Any] = json.loads(payload)
        return meta

    def store(self, task_id: str, status: str, result: Any) -> None:
        """What a worker writes: a state (STARTED, the heartbeat's, SUCCESS, FAILURE)."""
        meta = {"status": status, "result": result, "task_id": task_id}
        self.client.data[self.get_key_for_task(task_id)] = json.dumps(meta).encode()


class FakeInspect:
    def __init__(self, held: list[str]) -> None:
        self.held = held

    def active(self) -> dict[str, list[dict[str, str]]]:
        return {"celery@w1": [{"id": tid} for tid in self.held]}

    def reserved(self) -> dict[str, list[dict[str, str]]]:
        return {}


class FakeControl:
    """Celery's remote control: revoke, inspect and ping (bounded by a timeout)."""

    def __init__(self) -> None:
        self.revoked: list[str] = []
        self.held: list[str] = []
        self.nodes: list[str] = []  # what answers a ping
        self.pinged = 0

    def revoke(self, task_id: str) -> None:
        self.revoked.append(task_id)

    def inspect(self, timeout: float) -> FakeInspect:
        assert timeout <= 3.0
        return FakeInspect(self.held)

    def ping(self, timeout: float) -> list[dict[str, dict[str, str]]]:
        assert timeout <= 3.0
        self.pinged += 1
        return [{node: {"ok": "pong"}} for node in self.nodes]


class FakeApp:
    """The Celery app: ``send_task`` publishes (or fails like a broker that is down)."""

    def __init__(self, server: FakeRedis) -> None:
        self.server = server
        self.backend = FakeBackend(server)
        self.control = FakeControl()
        self.sent: list[dict[str, Any]] = []

    def send_task(
        self,
        name: str,
        *,
        args: list[str],
        task_id: str,
        retry: bool,
        queue: str | None = None,
        exchange: str | None = None,
        routing_key: str | None = None,
    ) -> None:
        assert retry is False  # tried once: the loop never waits on a broker that is away
        assert (queue is None) != (exchange is None)
        if self.server.down:
            raise ConnectionError("[Errno 111] Connection refused")
        self.backend.on_task_call(None, task_id)  # as Celery's send_task does
        route = {"queue": queue} if queue else {"exchange": exchange, "routing_key": routing_key}
        self.sent.append({"name": name, "args": args, "task_id": task_id, **route})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(celery_executor, "time", fake)
    return fake


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeRedis:
    fake = FakeRedis()
    monkeypatch.setattr(redis.Redis, "from_url", fake.from_url)
    return fake


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        overrides={
            "executor": "celery",
            "celery": {"lease": LEASE, "max_in_flight": 2, "queue": "q"},
        },
        environ={},
    )


@pytest.fixture
def app(server: FakeRedis) -> FakeApp:
    return FakeApp(server)


Start = Callable[[], CeleryExecutor]


@pytest.fixture
def start(
    settings: Settings,
    app: FakeApp,
    server: FakeRedis,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Start]:
    """Start executors as the coordinator does (start(): epoch, sent tasks), no probe pool."""
    made: list[CeleryExecutor] = []

    def make() -> CeleryExecutor:
        ex = CeleryExecutor(settings, app=app)
        monkeypatch.setattr(ex._probes, "start", lambda: None)  # no probe process
        ex.start()
        made.append(ex)
        return ex

    yield make
    server.down = False  # a ping thread still waiting ends at its next try
    for ex in made:
        ex.close()
        pinger = ex._pinger
        if pinger is not None:

            def ended(thread: threading.Thread = pinger) -> bool:
                clock.advance(60.0)
                return not thread.is_alive()

            wait_for(ended, "the ping thread")


@pytest.fixture
def executor(start: Start) -> CeleryExecutor:
    return start()


SETTINGS = TaskSettings(digest="d1", values={"languages": ["eng", "deu"]}, profile="de")


def task(n: int = 1, *, attempt: int = 1, refused_by: tuple[str, ...] = ()) -> RecognizeTask:
    return RecognizeTask(
        job_id=f"job{n}",
        relpath=f"{n}.png",
        path=f"/in/.ocrwatch-work/me/job{n}/{n}.png",
        attempt=attempt,
        out_txt=f"/out/{n}.png.txt",
        sha256="ab" * 32,
        coordinator="me",
        settings=SETTINGS,
        refused_by=refused_by,
    )


def written(t: RecognizeTask) -> Result:
    outcome = Written(
        sha256="ab" * 32, size=9, pages=1, engines=(("tesseract", "5"),), mode="printed",
        attempts=1, txt=t.out_txt, manifest=t.out_txt.removesuffix(".txt") + ".json",
        processed_by={"host": "w1", "pid": 7},
    )  # fmt: skip
    return Result(t, outcome, seconds=1.0)


def beat(app: FakeApp, tid: str, at: float, node: str = "celery@w1") -> None:
    """A worker's heartbeat meta (its stable name, host, pid, Celery node, beat time)."""
    info = {"worker": f"ocrwatch@{node[7:]}", "host": node[7:], "pid": 7, "node": node, "beat": at}
    app.backend.store(tid, HEARTBEAT_STATE, info)


def turn(executor: CeleryExecutor, clock: FakeClock, seconds: float = 0.1) -> list[Result]:
    """Let ``seconds`` pass, then collect what the executor has."""
    clock.advance(seconds)
    return executor.collect(0.0)


def recover(executor: CeleryExecutor, server: FakeRedis, clock: FakeClock, capacity: int) -> None:
    """Bring the server back; turn until the executor takes tasks again (its ping answered)."""
    server.down = False

    def recovered() -> bool:
        clock.advance(celery_executor._BROKER_RETRY)  # the ping thread's next try is due
        assert executor.collect(0.0) == []
        return executor.capacity == capacity

    wait_for(recovered, "the broker's recovery")


class TestDispatch:
    """A recognition is published once with its settings under its own id; capacity holds."""

    def test_published_with_its_settings(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis
    ) -> None:
        """submit() sends the schema-2 message, TaskSettings included, to the shared queue."""
        t = task()
        executor.submit(t)
        [sent] = app.sent
        assert sent["name"] == TASK_NAME and sent["queue"] == "q"
        assert json.loads(sent["args"][0])["v"] == 2
        assert loads(sent["args"][0]) == t
        assert loads(sent["args"][0]).settings == SETTINGS  # type: ignore[union-attr]
        assert sent["task_id"].startswith("job1-")
        assert executor.in_flight == (t,)
        assert app.backend.subscribed == []  # answers are polled: no pub/sub per task

    def test_recorded_in_the_sent_hash(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """Every task sent is in ocrwatch:sent:<queue> until its answer is read."""
        t = task()
        executor.submit(t)
        tid = app.sent[0]["task_id"]
        assert server.hashes[SENT_KEY] == {tid.encode(): app.sent[0]["args"][0].encode()}
        app.backend.store(tid, "SUCCESS", dumps(written(t)))
        assert turn(executor, clock) == [written(t)]
        assert server.hashes[SENT_KEY] == {}

    def test_capacity(self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock) -> None:
        """max_in_flight tasks at once; an answer frees a place."""
        assert executor.capacity == 2
        executor.submit(task(1))
        executor.submit(task(2))
        assert executor.capacity == 0
        app.backend.store(app.sent[0]["task_id"], "SUCCESS", dumps(written(task(1))))
        assert len(turn(executor, clock)) == 1
        assert executor.capacity == 1

    def test_each_dispatch_has_its_own_id(self, executor: CeleryExecutor, app: FakeApp) -> None:
        """The same job sent twice gets two task ids (a late answer can tell them apart)."""
        executor.submit(task())
        executor.cancel("job1")
        executor.submit(task())
        assert len({s["task_id"] for s in app.sent}) == 2


class TestAnswers:
    """Answers come back once; late, duplicate and cancelled ones are dropped."""

    def test_success(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """A SUCCESS meta is the worker's Result; the place frees and its key is deleted."""
        t = task()
        executor.submit(t)
        tid = app.sent[0]["task_id"]
        app.backend.store(tid, "SUCCESS", dumps(written(t)))
        assert turn(executor, clock) == [written(t)]
        assert executor.in_flight == () and executor.capacity == 2
        assert app.backend.get_key_for_task(tid) not in server.data

    def test_duplicate_answer_dropped(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """The broker delivers at least once: a second answer for the same id is not seen."""
        t = task()
        executor.submit(t)
        tid = app.sent[0]["task_id"]
        app.backend.store(tid, "SUCCESS", dumps(written(t)))
        assert len(turn(executor, clock)) == 1
        app.backend.store(tid, "SUCCESS", dumps(written(t)))  # redelivered, ran again
        executor.submit(task(2))  # something in flight, so the backend is polled
        assert turn(executor, clock) == []

    def test_late_answer_of_a_resent_task_dropped(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """After a job is cancelled (revoked) and sent again, only the new answer counts."""
        t = task()
        executor.submit(t)
        old = app.sent[0]["task_id"]
        assert executor.cancel("job1")
        wait_for(lambda: app.control.revoked == [old], "the revocation")
        executor.submit(t)
        new = app.sent[1]["task_id"]
        app.backend.store(old, "SUCCESS", dumps(written(t)))
        assert turn(executor, clock) == []
        app.backend.store(new, "SUCCESS", dumps(written(t)))
        assert turn(executor, clock) == [written(t)]

    def test_cancelled_answer_dropped(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """A cancelled task's answer is not returned, and its entries are forgotten."""
        t = task()
        executor.submit(t)
        tid = app.sent[0]["task_id"]
        assert executor.cancel("job1") and executor.in_flight == ()
        assert server.hashes[SENT_KEY] == {}
        executor.submit(task(2))
        app.backend.store(tid, "SUCCESS", dumps(written(t)))
        assert turn(executor, clock) == []

    @pytest.mark.parametrize(
        ("exc_type", "category", "reason"),
        [
            ("WorkerLostError", Category.CRASH, "engine_crash"),
            ("Terminated", Category.CRASH, "engine_crash"),
            ("TimeLimitExceeded", Category.CRASH, "engine_timeout"),
            ("ConnectionError", Category.REQUEUED, "requeued"),  # answer not stored: outage
            ("ValueError", Category.BUG, "internal_error"),
        ],
    )
    def test_failure(
        self,
        executor: CeleryExecutor,
        app: FakeApp,
        clock: FakeClock,
        exc_type: str,
        category: Category,
        reason: str,
    ) -> None:
        """A task Celery marks FAILURE is a failure of its category (a dead worker: CRASH)."""
        t = task()
        executor.submit(t)
        app.backend.store(
            app.sent[0]["task_id"], "FAILURE", {"exc_type": exc_type, "exc_message": ["x"]}
        )
        [result] = turn(executor, clock)
        assert result.task == t
        assert isinstance(result.outcome, Failure)
        assert (result.outcome.category, result.outcome.reason) == (category, reason)
        assert exc_type in result.outcome.message

    def test_bad_answer(self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock) -> None:
        """An answer that is not an ocrwatch message is a BUG failure of its task."""
        executor.submit(task())
        app.backend.store(app.sent[0]["task_id"], "SUCCESS", "not json")
        [result] = turn(executor, clock)
        assert result.failure is not None and result.failure.reason == "bad_answer"


class TestRefused:
    """A task a worker refused goes to another live worker's own queue (worker_direct)."""

    def test_refusal_is_returned_once(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """A worker's Refused answer reaches the coordinator as it is (it decides)."""
        t = task()
        executor.submit(t)
        answer = Result(t, Refused("ocrwatch@w1", "missing_language", "no deu", "celery@w1"))
        app.backend.store(app.sent[0]["task_id"], "SUCCESS", dumps(answer))
        assert turn(executor, clock) == [answer]
        assert turn(executor, clock) == [] and executor.in_flight == ()

    def test_rerouted_to_a_live_worker_that_did_not_refuse(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """refused_by names celery@w1: the task goes to celery@w2's direct queue."""
        executor.submit(task(1))
        executor.submit(task(2))
        beat(app, app.sent[0]["task_id"], at=clock.now, node="celery@w1")
        beat(app, app.sent[1]["task_id"], at=clock.now, node="celery@w2")
        assert turn(executor, clock) == []
        executor.cancel("job1")
        executor.submit(task(1, refused_by=("celery@w1",)))
        sent = app.sent[2]
        assert (sent["exchange"], sent["routing_key"]) == ("C.dq2", "celery@w2")
        assert app.control.pinged == 0  # the heartbeats told who is alive

    def test_rerouted_to_a_worker_that_answers_a_ping(
        self, executor: CeleryExecutor, app: FakeApp
    ) -> None:
        """With no worker seen at work, a ping (bounded) finds one; the refuser is skipped."""
        app.control.nodes = ["celery@w1", "celery@w3"]
        executor.submit(task(1, refused_by=("celery@w1",)))
        [sent] = app.sent
        assert (sent["exchange"], sent["routing_key"]) == ("C.dq2", "celery@w3")

    def test_no_other_worker_shared_queue(self, executor: CeleryExecutor, app: FakeApp) -> None:
        """When only the refuser answers, the task goes to the shared queue again."""
        app.control.nodes = ["celery@w1"]
        executor.submit(task(1, refused_by=("celery@w1",)))
        [sent] = app.sent
        assert sent["queue"] == "q"


class TestLease:
    """A started task whose heartbeat stops is handed back after the lease, and revoked."""

    def test_beating_task_is_kept(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """While new heartbeats come, a long task stays in flight past the lease."""
        executor.submit(task())
        tid = app.sent[0]["task_id"]
        for n in range(5):
            beat(app, tid, at=float(n))
            assert turn(executor, clock, LEASE * 0.6) == []
        assert len(executor.in_flight) == 1
        assert executor.workers == {"ocrwatch@w1": 4.0}

    def test_frozen_heartbeat_is_handed_back(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """A frozen worker's last heartbeat stays in the backend: it does not keep the lease."""
        t = task()
        executor.submit(t)
        tid = app.sent[0]["task_id"]
        beat(app, tid, at=1.0)
        assert turn(executor, clock) == []
        assert turn(executor, clock, LEASE / 2) == []
        [result] = turn(executor, clock, LEASE / 2 + 1)
        assert result.task == t and result.failure is not None
        assert (result.failure.category, result.failure.message) == (
            Category.REQUEUED,
            "lease expired",
        )
        wait_for(lambda: app.control.revoked == [tid], "the revocation")
        assert executor.in_flight == () and executor.capacity == 2

    def test_task_taken_and_never_started(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """A task no worker started, not in the queue and held by no live worker, is lost."""
        t1, t2, t3 = task(1), task(2), task(3)
        for t in (t1, t2):
            executor.submit(t)
        server.enqueue("q", app.sent[1]["task_id"])  # still waiting in the broker's queue
        assert turn(executor, clock, LEASE / 2) == []  # not started yet, but within the lease
        [lost] = turn(executor, clock, LEASE / 2 + 1)
        assert lost.task == t1 and lost.failure is not None
        assert lost.failure.category is Category.REQUEUED
        wait_for(lambda: app.control.revoked == [app.sent[0]["task_id"]], "the revocation")
        assert executor.in_flight == (t2,)  # still queued: the broker will deliver it
        executor.submit(t3)
        app.control.held.append(app.sent[2]["task_id"])  # reserved by a live worker
        assert turn(executor, clock, LEASE + 1) == []
        assert list(executor.in_flight) == [t2, t3]


class TestBroker:
    """An outage takes nothing, charges nothing to a file, logs once; a lost queue resends."""

    def test_outage(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """One broker.unavailable; the loop stops calling Redis; in flight kept; work resumes."""
        t1, t2 = task(1), task(2)
        executor.submit(t1)
        tid = app.sent[0]["task_id"]
        beat(app, tid, at=1.0)
        assert turn(executor, clock) == []
        with capture_logs() as logs:
            server.down = True
            executor.submit(t2)
            [back] = executor.collect(0.0)
            assert back.task == t2 and back.failure is not None
            assert back.failure.category is Category.REQUEUED  # not the file's fault
            assert executor.capacity == 0
            loop_calls = len([c for c in server.calls if c[0] != "broker-ping"])
            for _ in range(5):  # a long outage: leases would have run out many times
                assert turn(executor, clock, LEASE) == []
            assert len([c for c in server.calls if c[0] != "broker-ping"]) == loop_calls
            assert executor.in_flight == (t1,)
            recover(executor, server, clock, capacity=1)
        assert ("broker-ping", "ping") in server.calls  # the ping thread's client: the fake
        events = [e["event"] for e in logs if e["log_level"] != "debug"]
        assert events == ["broker.unavailable", "broker.available"]
        assert executor.in_flight == (t1,)  # its lease restarted: the outage was nobody's
        app.backend.store(tid, "SUCCESS", dumps(written(t1)))
        assert turn(executor, clock) == [written(t1)]
        executor.submit(t2)
        assert app.sent[-1]["queue"] == "q" and executor.in_flight == (t2,)

    def test_flapping_recovery_logged_once(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """A broker that answers pings but not yet commands stays one outage in the logs."""
        executor.submit(task())
        with capture_logs() as logs:
            server.down = True
            assert turn(executor, clock) == []
            server.failing = {"set"}  # pings answer, the epoch check still fails
            server.down = False

            def failed_again(seen: int = len(server.calls)) -> bool:
                clock.advance(celery_executor._BROKER_RETRY)
                assert executor.collect(0.0) == [] and executor.capacity == 0
                return ("MainThread", "set") in server.calls[seen:]

            wait_for(failed_again, "a recovery that fails")
            server.failing = set()
            recover(executor, server, clock, capacity=1)
        events = [e["event"] for e in logs if e["log_level"] != "debug"]
        assert events == ["broker.unavailable", "broker.available"]

    def test_lease_restarts_after_an_outage(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """A task whose heartbeats the outage silenced gets a full lease once it ends."""
        t = task()
        executor.submit(t)
        tid = app.sent[0]["task_id"]
        beat(app, tid, at=1.0)
        assert turn(executor, clock) == []
        server.down = True
        assert turn(executor, clock) == []
        clock.advance(3 * LEASE)
        recover(executor, server, clock, capacity=1)
        assert turn(executor, clock, LEASE / 2) == []
        beat(app, tid, at=2.0)
        assert turn(executor, clock, LEASE / 2 + 1) == []
        assert executor.in_flight == (t,)

    def test_lost_queue_resends_everything(
        self, executor: CeleryExecutor, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """A broker restarted empty (its epoch key gone): every task in flight comes back."""
        t1, t2 = task(1), task(2)
        executor.submit(t1)
        executor.submit(t2)
        server.data.clear()  # Redis restarted without its data
        back = turn(executor, clock, celery_executor._EPOCH_EVERY + 0.1)
        assert {r.task.job_id for r in back} == {"job1", "job2"}
        assert all(r.failure is not None and r.failure.category is Category.REQUEUED for r in back)
        assert executor.in_flight == ()


class TestAdoption:
    """A restarted coordinator takes up the tasks it had sent instead of sending them again."""

    def test_restart_adopts_the_task_sent(
        self, start: Start, app: FakeApp, clock: FakeClock
    ) -> None:
        """The same job, attempt and range is not sent again; the worker's answer is taken."""
        t = task()
        first = start()
        first.submit(t)
        tid = app.sent[0]["task_id"]
        first.close()  # the coordinator stops; the worker goes on
        app.backend.store(tid, "SUCCESS", dumps(written(t)))
        again = start()
        again.submit(t)  # the journal sends its claimed job again
        assert len(app.sent) == 1 and again.in_flight == (t,)
        assert turn(again, clock) == [written(t)]

    def test_another_attempt_is_sent(self, start: Start, app: FakeApp) -> None:
        """A task of another attempt is not the one sent before: it is published."""
        first = start()
        first.submit(task(attempt=1))
        first.close()
        again = start()
        again.submit(task(attempt=2))
        assert len(app.sent) == 2 and app.sent[1]["task_id"] != app.sent[0]["task_id"]

    def test_task_with_other_settings_is_sent(self, start: Start, app: FakeApp) -> None:
        """A task sent with other settings than the job's is not taken up: it is published."""
        first = start()
        first.submit(task())
        first.close()
        again = start()
        other = TaskSettings(digest="d2", values={"languages": ["eng"]}, profile=None)
        again.submit(dataclasses.replace(task(), settings=other))
        assert len(app.sent) == 2 and app.sent[1]["task_id"] != app.sent[0]["task_id"]

    def test_unadopted_tasks_dropped_after_a_lease(
        self, start: Start, app: FakeApp, server: FakeRedis, clock: FakeClock
    ) -> None:
        """A task no job takes up within a lease (finished meanwhile) is revoked, forgotten."""
        first = start()
        first.submit(task())
        tid = app.sent[0]["task_id"]
        first.close()
        again = start()
        assert turn(again, clock, LEASE / 2) == []
        assert server.hashes[SENT_KEY] != {}
        assert turn(again, clock, LEASE / 2 + 1) == []
        assert server.hashes[SENT_KEY] == {}
        wait_for(lambda: app.control.revoked == [tid], "the revocation")
        again.submit(task())
        assert len(app.sent) == 2
