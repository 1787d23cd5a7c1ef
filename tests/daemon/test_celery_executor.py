"""The Celery executor's decisions against a fake Celery app and result backend, on a fake clock.

The fakes implement what ``daemon/celery_executor.py`` uses of Celery and redis-py:
``app.send_task``, ``app.control.revoke`` / ``inspect``, and the Redis result backend
(``get_key_for_task``, ``decode_result``, its client's ``mget``/``set``/``get``/``delete``),
storing task metas as Celery's Redis backend does (JSON under ``celery-task-meta-<id>``). No
broker, no worker, no process (the probe pool is never started).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ocrwatch.daemon import celery_executor
from ocrwatch.daemon.celery_executor import CeleryExecutor
from ocrwatch.daemon.celery_worker import HEARTBEAT_STATE, TASK_NAME
from ocrwatch.daemon.messages import Failure, RecognizeTask, Result, Written, dumps, loads
from ocrwatch.settings.model import Settings, load_settings
from ocrwatch.support.retry import Category

LEASE = 10.0


class FakeClock:
    """Stands in for the ``time`` module inside celery_executor: time moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeRedis:
    """The result backend's redis-py client: the calls the executor makes, in a dict."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def mget(self, keys: list[bytes]) -> list[bytes | None]:
        self._check()
        return [self.data.get(k) for k in keys]

    def set(self, key: str, value: str, nx: bool = False) -> bool | None:
        self._check()
        if nx and key.encode() in self.data:
            return None
        self.data[key.encode()] = value.encode()
        return True

    def get(self, key: str) -> bytes | None:
        self._check()
        return self.data.get(key.encode())

    def delete(self, *keys: bytes) -> int:
        self._check()
        return sum(self.data.pop(k, None) is not None for k in keys)

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        """The broker's queue (a Redis list of kombu messages), for the lost-task check."""
        return [k for k in self.data.get(key.encode(), b"").split(b"\n") if k]

    def close(self) -> None:
        pass


class FakeBackend:
    """Celery's Redis result backend: metas as JSON under celery-task-meta-<id>."""

    def __init__(self) -> None:
        self.client = FakeRedis()

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
        return {"ocrwatch@w1": [{"id": tid} for tid in self.held]}

    def reserved(self) -> dict[str, list[dict[str, str]]]:
        return {}


class FakeControl:
    def __init__(self) -> None:
        self.revoked: list[str] = []
        self.held: list[str] = []

    def revoke(self, task_id: str) -> None:
        self.revoked.append(task_id)

    def inspect(self, timeout: float = 1.0) -> FakeInspect:
        return FakeInspect(self.held)


class FakeApp:
    """The Celery app: ``send_task`` publishes (or fails like a broker that is down)."""

    def __init__(self) -> None:
        self.backend = FakeBackend()
        self.control = FakeControl()
        self.sent: list[dict[str, Any]] = []
        self.down = False

    def send_task(self, name: str, *, args: list[str], task_id: str, queue: str) -> None:
        if self.down:
            raise ConnectionError("[Errno 111] Connection refused")
        self.sent.append({"name": name, "args": args, "task_id": task_id, "queue": queue})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(celery_executor, "time", fake)
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
def app() -> FakeApp:
    return FakeApp()


@pytest.fixture
def executor(settings: Settings, app: FakeApp, clock: FakeClock) -> Iterator[CeleryExecutor]:
    ex = CeleryExecutor(settings, app=app)  # type: ignore[arg-type]
    assert ex.collect(0.0) == []  # the first turn writes the broker's epoch
    yield ex
    ex.close()


def task(n: int = 1) -> RecognizeTask:
    return RecognizeTask(
        job_id=f"job{n}",
        relpath=f"{n}.png",
        path=f"/in/.ocrwatch-work/me/job{n}/{n}.png",
        attempt=1,
        out_txt=f"/out/{n}.png.txt",
        sha256="ab" * 32,
        coordinator="me",
    )


def written(t: RecognizeTask) -> Result:
    outcome = Written(
        sha256="ab" * 32, size=9, pages=1, engines=(("tesseract", "5"),), mode="printed",
        attempts=1, txt=t.out_txt, manifest=t.out_txt.removesuffix(".txt") + ".json",
        processed_by={"host": "w1", "pid": 7},
    )  # fmt: skip
    return Result(t, outcome, seconds=1.0)


def turn(executor: CeleryExecutor, clock: FakeClock, seconds: float = 0.1) -> list[Result]:
    """Let ``seconds`` pass, then collect what the executor has."""
    clock.advance(seconds)
    return executor.collect(0.0)


class TestDispatch:
    """A recognition is published as one JSON message with its own task id; capacity holds."""

    def test_published(self, executor: CeleryExecutor, app: FakeApp) -> None:
        """submit() sends the task message to the queue under a fresh id."""
        t = task()
        executor.submit(t)
        [sent] = app.sent
        assert sent["name"] == TASK_NAME and sent["queue"] == "q"
        assert loads(sent["args"][0]) == t
        assert sent["task_id"].startswith("job1-")
        assert executor.in_flight == (t,)

    def test_capacity(self, executor: CeleryExecutor) -> None:
        """max_in_flight tasks at once; an answer frees a place."""
        assert executor.capacity == 2
        executor.submit(task(1))
        executor.submit(task(2))
        assert executor.capacity == 0

    def test_each_dispatch_has_its_own_id(self, executor: CeleryExecutor, app: FakeApp) -> None:
        """The same job sent twice gets two task ids (a late answer can tell them apart)."""
        executor.submit(task())
        executor.cancel("job1")
        executor.submit(task())
        assert len({s["task_id"] for s in app.sent}) == 2


class TestAnswers:
    """Answers come back once; late, duplicate and cancelled ones are dropped."""

    def test_success(self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock) -> None:
        """A SUCCESS meta is the worker's Result; the place frees and its key is deleted."""
        t = task()
        executor.submit(t)
        tid = app.sent[0]["task_id"]
        app.backend.store(tid, "SUCCESS", dumps(written(t)))
        assert turn(executor, clock) == [written(t)]
        assert executor.in_flight == () and executor.capacity == 2
        assert app.backend.get_key_for_task(tid) not in app.backend.client.data

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
        """After a job is cancelled and sent again, only the new dispatch's answer counts."""
        t = task()
        executor.submit(t)
        old = app.sent[0]["task_id"]
        assert executor.cancel("job1")
        assert app.control.revoked == [old]
        executor.submit(t)
        new = app.sent[1]["task_id"]
        app.backend.store(old, "SUCCESS", dumps(written(t)))
        assert turn(executor, clock) == []
        app.backend.store(new, "SUCCESS", dumps(written(t)))
        assert turn(executor, clock) == [written(t)]

    @pytest.mark.parametrize(
        ("exc_type", "category", "reason"),
        [
            ("WorkerLostError", Category.CRASH, "engine_crash"),
            ("TimeLimitExceeded", Category.CRASH, "engine_timeout"),
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

    def test_bad_answer(self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock) -> None:
        """An answer that is not an ocrwatch message is a BUG failure of its task."""
        executor.submit(task())
        app.backend.store(app.sent[0]["task_id"], "SUCCESS", "not json")
        [result] = turn(executor, clock)
        assert result.failure is not None and result.failure.reason == "bad_answer"


class TestLease:
    """A started task whose heartbeat stops is handed back after the lease, and revoked."""

    def beat(self, app: FakeApp, tid: str, at: float) -> None:
        app.backend.store(tid, HEARTBEAT_STATE, {"host": "w1", "pid": 7, "beat": at})

    def test_beating_task_is_kept(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """While new heartbeats come, a long task stays in flight past the lease."""
        executor.submit(task())
        tid = app.sent[0]["task_id"]
        for n in range(5):
            self.beat(app, tid, at=float(n))
            assert turn(executor, clock, LEASE * 0.6) == []
        assert len(executor.in_flight) == 1
        assert executor.workers == {"w1:7": 4.0}

    def test_silent_task_is_handed_back(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """A frozen worker's last heartbeat stays in the backend: it does not keep the lease."""
        t = task()
        executor.submit(t)
        tid = app.sent[0]["task_id"]
        self.beat(app, tid, at=1.0)
        assert turn(executor, clock) == []
        assert turn(executor, clock, LEASE / 2) == []
        [result] = turn(executor, clock, LEASE / 2 + 1)
        assert result.task == t and result.failure is not None
        assert (result.failure.category, result.failure.message) == (
            Category.REQUEUED,
            "lease expired",
        )
        assert app.control.revoked == [tid]
        assert executor.in_flight == () and executor.capacity == 2

    def test_task_taken_and_never_started(
        self, settings: Settings, app: FakeApp, clock: FakeClock
    ) -> None:
        """A task no worker started, not in the queue and held by no live worker, is lost."""
        ex = CeleryExecutor(settings, app=app)  # type: ignore[arg-type]  # redis:// broker
        broker = FakeRedis()
        ex._broker_client = broker  # the broker's redis-py client (made on first use)
        ex.collect(0.0)
        t1, t2, t3 = task(1), task(2), task(3)
        for t in (t1, t2):
            ex.submit(t)
        waiting = app.sent[1]["task_id"]
        broker.data[b"q"] = json.dumps({"headers": {"id": waiting}}).encode()
        assert turn(ex, clock, LEASE / 2) == []  # not started yet, but within the lease
        [lost] = turn(ex, clock, LEASE / 2 + 1)
        assert lost.task == t1 and lost.failure is not None
        assert lost.failure.category is Category.REQUEUED
        assert app.control.revoked == [app.sent[0]["task_id"]]
        assert ex.in_flight == (t2,)  # still queued: the broker will deliver it
        ex.submit(t3)
        app.control.held.append(app.sent[2]["task_id"])  # reserved by a live worker
        assert turn(ex, clock, LEASE + 1) == []
        assert set(ex.in_flight) == {t2, t3}
        ex.close()


class TestBroker:
    """A broker that is down takes nothing; one that lost its queue gets everything again."""

    def test_down_takes_nothing(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """A refused publish hands the task back and closes capacity until the retry time."""
        app.down = True
        t = task()
        executor.submit(t)
        assert executor.capacity == 0
        [back] = executor.collect(0.0)
        assert back.task == t and back.failure is not None
        assert back.failure.category is Category.REQUEUED
        app.down = False
        clock.advance(celery_executor._BROKER_RETRY + 0.1)
        assert executor.capacity == 2

    def test_backend_down_is_waited_for(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """While the result backend does not answer, in-flight tasks are kept, not failed."""
        t = task()
        executor.submit(t)
        app.backend.client.down = True
        assert turn(executor, clock, celery_executor._EPOCH_EVERY + 0.1) == []
        assert executor.capacity == 0 and executor.in_flight == (t,)
        app.backend.client.down = False
        app.backend.store(app.sent[0]["task_id"], "SUCCESS", dumps(written(t)))
        assert turn(executor, clock, celery_executor._EPOCH_EVERY + 0.1) == [written(t)]

    def test_lost_queue_resends_everything(
        self, executor: CeleryExecutor, app: FakeApp, clock: FakeClock
    ) -> None:
        """A broker restarted empty (its epoch key gone): every task in flight comes back."""
        t1, t2 = task(1), task(2)
        executor.submit(t1)
        executor.submit(t2)
        app.backend.client.data.clear()  # Redis restarted without its data
        back = turn(executor, clock, celery_executor._EPOCH_EVERY + 0.1)
        assert {r.task.job_id for r in back} == {"job1", "job2"}
        assert all(r.failure is not None and r.failure.category is Category.REQUEUED for r in back)
        assert executor.in_flight == ()
