"""Many hosts on one machine: a coordinator, ``ocrwatch worker`` processes, a real Redis.

Redis (Debian's redis-server) runs on 127.0.0.1 without persistence, so killing it loses
its queue, as an unconfigured production broker would.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from e2e.conftest import Background, Daemon, Folders, base_env, sha256, spawn, wait_until, write_doc
from imaging import render_lines, save
from redisserver import RedisServer, free_port
from stub_engines import marked_page, stub_site

pytestmark = pytest.mark.e2e


@dataclass
class Worker:
    """One ``ocrwatch worker`` subprocess (its own process group, like its own host)."""

    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    pids: set[int] = field(default_factory=set)

    def start(self) -> Worker:
        self.proc = spawn(["worker", "--concurrency", "1"], env=self.env, log=self.log)
        wait_until(
            lambda: "ready." in self.log.read_text(errors="replace"), timeout=60, what="worker"
        )
        self.pids = {self.proc.pid, *_descendants(self.proc.pid)}
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=20)


_RECEIVED = re.compile(r"Task ocrwatch\.recognize\[([^\]]+)\] received")
_ENDED = re.compile(
    r"Task ocrwatch\.recognize\[([^\]]+)\] (?:succeeded|raised|ignored|rejected)"
    r"|Discarding revoked task: ocrwatch\.recognize\[([^\]]+)\]"
)


def deliveries(*workers: Worker) -> int:
    """Return how many recognize deliveries the workers received (a duplicate counts)."""
    return sum(len(_RECEIVED.findall(w.log.read_text(errors="replace"))) for w in workers)


def tasks_ended(*workers: Worker) -> bool:
    """Return True when every recognize task the workers received (each delivery) has
    ended in their logs: run to its answer, failed, or discarded as revoked."""
    received: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    for w in workers:
        text = w.log.read_text(errors="replace")
        received.update(m.group(1) for m in _RECEIVED.finditer(text))
        ended.update(m.group(1) or m.group(2) for m in _ENDED.finditer(text))
    return bool(received) and all(ended[tid] >= n for tid, n in received.items())


def _descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {c.pid for c in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


@dataclass
class Cluster:
    folders: Folders
    redis: RedisServer
    coordinator: Daemon
    metrics_port: int
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def worker(self, **settings: object) -> Worker:
        """Start one more worker; ``settings`` are its own (``languages="spa"``)."""
        env = dict(self.env)
        for key, value in settings.items():
            env[key if key.isupper() else f"OCRWATCH_{key.upper()}"] = str(value)
        w = Worker(env, self.folders.root / f"worker-{len(self.workers)}.log").start()
        self.workers.append(w)
        return w

    def queued(self) -> int:
        """Return how many task messages wait in the broker or are held unacknowledged."""
        client = self.redis.client()
        return int(client.llen("ocrwatch")) + int(client.hlen("unacked"))

    def processed(self) -> dict[str, dict[str, object]]:
        lines = self.folders.log_lines()
        return {str(x["relpath"]): x for x in lines if x["event"] == "document.processed"}


@pytest.fixture
def cluster(
    folders: Folders, make_daemon: Callable[..., Daemon], redis_server: RedisServer
) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def build(*, stub: bool = False, **settings: object) -> Cluster:
        """A coordinator (not started) on ``folders``; ``stub``: the stub engine is there."""
        knobs: dict[str, object] = {
            "executor": "celery",
            "celery__broker_url": redis_server.url,
            "celery__lease": 5,
            "celery__heartbeat": 1,
            **settings,
        }
        port = free_port()
        coordinator = make_daemon(metrics_port=port, **knobs)
        env = base_env(folders.root, **knobs)
        if stub:
            env["PYTHONPATH"] = coordinator.env["PYTHONPATH"] = stub_site(folders.root / "site")
        c = Cluster(folders, redis_server, coordinator, port, env)
        made.append(c)
        return c

    yield build
    for c in made:
        for w in c.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.signal(signal.SIGCONT)
                w.kill9()


class Duplicator(Background):
    """A thread that pushes a second copy of every message it sees in the queue."""

    def __init__(self, client: redis.Redis, queue: str = "ocrwatch") -> None:
        super().__init__("duplicator")
        self.client = client
        self.queue = queue
        self.seen: set[str] = set()
        self.recognize = 0

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                messages = self.client.lrange(self.queue, 0, -1)
            except redis.ConnectionError:
                continue
            for raw in messages:
                envelope = json.loads(raw)
                task_id = envelope["headers"]["id"]
                if task_id in self.seen:
                    continue
                self.seen.add(task_id)
                self.client.rpush(self.queue, raw)
                body = base64.b64decode(envelope["body"]).decode()
                self.recognize += '\\"kind\\":\\"recognize\\"' in body


def assert_once_by_workers(c: Cluster, inputs: dict[str, str]) -> None:
    """Exactly one sidecar per file, written by a worker, original archived intact."""
    coordinator_pid = c.coordinator.proc.pid if c.coordinator.proc else -1
    for rel, digest in inputs.items():
        cars = c.folders.sidecars(rel)
        assert len(cars) == 1, (rel, cars)
        manifest = json.loads(cars[0].with_suffix(".json").read_text())
        by = manifest["processed_by"]
        assert by["host"] == socket.gethostname() and by["pid"] != coordinator_pid, by
        assert sha256(c.folders.archive / rel) == digest
        assert not c.folders.quarantined(rel)
    assert not c.folders.claimed()


class TestCluster:
    """The coordinator's journal makes at-least-once delivery exactly once in effect."""

    def test_worker_and_broker_killed(self, cluster: Callable[..., Cluster]) -> None:
        """30 files; a worker SIGKILLed mid-run and another started; Redis SIGKILLed and
        restarted empty: each file ends with one sidecar by a worker, and /metrics serves."""
        c = cluster()
        c.coordinator.start()
        first, _second = c.worker(), c.worker()
        inputs = {
            f"c{i}.png": sha256(write_doc(c.folders.inbox / f"c{i}.png", i)) for i in range(30)
        }
        wait_until(lambda: len(c.processed()) >= 5, timeout=120, what="5 files")
        first.kill9()
        c.worker()
        wait_until(lambda: len(c.processed()) >= 12, timeout=120, what="12 files")
        c.redis.kill9()
        wait_until(
            lambda: c.coordinator.event_seen("broker.unavailable"), timeout=30, what="the outage"
        )
        c.redis.start()
        wait_until(lambda: len(c.processed()) == len(inputs), timeout=240, what="all files")
        assert_once_by_workers(c, inputs)
        assert c.coordinator.event_seen("broker.unavailable")
        body = urllib.request.urlopen(f"http://127.0.0.1:{c.metrics_port}/metrics").read().decode()
        for name in (
            'ocrwatch_documents_total{outcome="ok"} 30.0',
            "ocrwatch_backlog{",
            "ocrwatch_oldest_pending_age_seconds",
            "ocrwatch_document_duration_seconds_bucket",
            "ocrwatch_worker_last_heartbeat_timestamp_seconds{",
        ):
            assert name in body, name
        status = json.loads(c.coordinator.status("--json").stdout)
        assert status["workers"], status
        for w in c.workers:  # they reconnected to the new Redis: no warning per reconnect
            assert "DeprecationWarning" not in w.log.read_text(errors="replace"), w.log
        assert c.coordinator.count("broker.unavailable") == 1
        assert c.coordinator.stop() == 0

    def test_long_pdf_in_ranges(self, cluster: Callable[..., Cluster]) -> None:
        """A 5-page PDF with pages_per_task 2 goes out as three ranges to two workers and
        comes back as one document: pages in order in the sidecar and in the searchable PDF
        the coordinator writes (in the background), each range's worker in the manifest."""
        c = cluster(celery__pages_per_task=2, outputs="txt,json,pdf")
        c.coordinator.start()
        c.worker(), c.worker()
        pages = [render_lines([f"Page {n} of five"], size=36).convert("RGB") for n in range(5)]
        pdf = c.folders.root / "long.pdf"
        pages[0].save(pdf, save_all=True, append_images=pages[1:], resolution=150.0)
        digest = sha256(pdf)
        os.replace(pdf, c.folders.inbox / "long.pdf")
        wait_until(lambda: "long.pdf" in c.processed(), timeout=120, what="the long PDF")
        (sidecar,) = c.folders.sidecars("long.pdf")
        texts = sidecar.read_text().split("\f")
        assert [t.strip() for t in texts] == [f"Page {n} of five" for n in range(5)], texts
        manifest = json.loads(sidecar.with_suffix(".json").read_text())
        assert manifest["pages"] == 5 and len(manifest["pages_processed_by"]) == 3, manifest
        searchable = sidecar.with_suffix(".pdf")
        info = subprocess.run(["pdftotext", str(searchable), "-"], capture_output=True, text=True)
        assert [t.strip() for t in info.stdout.split("\f") if t.strip()] == [
            f"Page {n} of five" for n in range(5)
        ], info.stdout
        assert sha256(c.folders.archive / "long.pdf") == digest
        assert c.coordinator.stop() == 0

    def test_duplicate_delivery(self, cluster: Callable[..., Cluster]) -> None:
        """Every task the broker holds is delivered twice: still one sidecar and one log
        line per file (the duplicate answers are dropped, the outputs replaced in place)."""
        c = cluster()
        c.coordinator.start()
        worker = c.worker()
        with Duplicator(c.redis.client()) as dup:
            inputs = {
                f"d{i}.png": sha256(write_doc(c.folders.inbox / f"d{i}.png", i)) for i in range(8)
            }
            wait_until(lambda: len(c.processed()) == len(inputs), timeout=120, what="all files")
            # The duplicates run too, after their jobs finished: wait until every delivery
            # the worker received has ended, then nothing may have changed.
            wait_until(
                lambda: deliveries(worker) >= len(inputs) + dup.recognize and tasks_ended(worker),
                timeout=120,
                what="the duplicates run",
            )
        assert dup.recognize >= 1, "no recognize task was seen in the queue to duplicate"
        assert_once_by_workers(c, inputs)
        events = [x["event"] for x in c.folders.log_lines()]
        assert events.count("document.processed") == len(inputs), events
        assert c.coordinator.stop() == 0

    def test_worker_stopped_or_frozen_mid_task(self, cluster: Callable[..., Cluster]) -> None:
        """A worker frozen (SIGSTOP) on a long page loses it after the lease to another
        worker; when it wakes its late answer is dropped. A worker told to stop (SIGTERM)
        finishes its task first."""
        c = cluster()
        c.coordinator.start()
        frozen = c.worker()
        page = render_lines(
            [f"Line {i} of a long page with many words" for i in range(70)], size=40
        )
        digest = sha256(save(page, c.folders.inbox / "long.png"))
        wait_until(
            lambda: (
                "ocrwatch.recognize" in frozen.log.read_text(errors="replace")
                and "received" in frozen.log.read_text(errors="replace")
            ),
            timeout=60,
            what="the task to start",
        )
        frozen.signal(signal.SIGSTOP)
        rescuer = c.worker()
        wait_until(lambda: "long.png" in c.processed(), timeout=120, what="the rescued file")
        # Frozen after it started the task (its heartbeats stop) or just before (it never
        # starts it): either way the coordinator takes the task back.
        assert c.coordinator.event_seen("task.lease_expired") or c.coordinator.event_seen(
            "task.lost"
        )
        frozen.signal(signal.SIGCONT)
        inputs = {"long.png": digest}
        inputs["next.png"] = sha256(write_doc(c.folders.inbox / "next.png", 3))
        wait_until(lambda: "next.png" in c.processed(), timeout=120, what="the next file")
        rescuer.signal(signal.SIGTERM)
        assert rescuer.proc is not None and rescuer.proc.wait(timeout=60) == 0
        # The woken worker's late task has ended (answered and dropped, or discarded as
        # revoked): only then is "one sidecar, one log line" a result.
        wait_until(lambda: tasks_ended(frozen), timeout=120, what="the late task to end")
        assert_once_by_workers(c, inputs)
        assert [
            x["relpath"] for x in c.folders.log_lines() if x["event"] == "document.processed"
        ].count("long.png") == 1
        assert c.coordinator.stop() == 0


class TestWhereThePartsMeet:
    """Issue 18: crashes, settings, a frozen broker, names, restarts, logs and metrics."""

    def test_file_that_kills_its_worker_is_quarantined(
        self, cluster: Callable[..., Cluster]
    ) -> None:
        """A page that segfaults the worker process is a crash of that file: counted by the
        coordinator, quarantined as engine_crash after file_crashes, no copy left queued."""
        c = cluster(stub=True, engine="stub", mode="printed", retry__file_crashes=2)
        c.coordinator.start()
        worker = c.worker()
        marked_page(c.folders.inbox / "poison.png")
        inputs = {
            f"g{i}.png": sha256(write_doc(c.folders.inbox / f"g{i}.png", i)) for i in range(2)
        }
        wait_until(lambda: c.folders.quarantined("poison.png"), timeout=120, what="quarantine")
        (reason_file,) = c.folders.quarantined("poison.png")
        reason = json.loads(reason_file.read_text())
        assert reason["reason"] == "engine_crash", reason
        assert reason["crashes"] == 2, reason
        wait_until(lambda: set(inputs) <= set(c.processed()), timeout=120, what="good files")
        # A file after the quarantine is read: the worker took everything queued before it.
        inputs["after.png"] = sha256(write_doc(c.folders.inbox / "after.png", 5))
        wait_until(lambda: "after.png" in c.processed(), timeout=120, what="the next file")
        assert c.queued() == 0
        crashes = worker.log.read_text(errors="replace").count("exited with 'signal 11")
        assert crashes == 2, worker.log.read_text(errors="replace")[-3000:]
        assert c.coordinator.stop() == 0

    def test_task_settings_win_and_a_worker_that_cannot_refuses(
        self, cluster: Callable[..., Cluster]
    ) -> None:
        """The coordinator decides how a file is read: a worker started with other languages
        reads the coordinator's files with the task's; a worker that lacks a language the
        task needs refuses (status shows it), the task goes to another worker, and with no
        capable worker the file fails after a few refusals instead of looping."""
        langs = "OCRWATCH_TEST_STUB_LANGUAGES"
        c = cluster(stub=True, engine="stub", mode="printed", languages="eng", outputs="pdf")
        c.coordinator.env[langs] = "eng,spa,deu"
        c.coordinator.start()
        c.worker(languages="spa", outputs="txt")  # its own settings: Spanish, no PDF
        for i in range(3):
            write_doc(c.folders.inbox / f"en{i}.png", i)
        wait_until(lambda: len(c.processed()) == 3, timeout=120, what="the English files")
        for i in range(3):
            (car,) = c.folders.sidecars(f"en{i}.png")
            assert car.read_text().strip() == "read eng", car.read_text()
            assert json.loads(car.with_suffix(".json").read_text())["languages"] == ["eng"]
            assert car.with_suffix(".pdf").is_file()  # the coordinator asked for it
        assert c.coordinator.stop() == 0

    def test_worker_without_a_language_refuses(self, cluster: Callable[..., Cluster]) -> None:
        """German is asked for; a worker without it refuses; alone, the file fails after a
        few refusals (no loop); with a capable worker beside it the file is read in German."""
        langs = "OCRWATCH_TEST_STUB_LANGUAGES"
        c = cluster(stub=True, engine="stub", mode="printed", languages="deu")
        c.coordinator.env[langs] = "eng,spa,deu"
        c.coordinator.start()
        lacking = c.worker(**{langs: "eng,spa"})
        write_doc(c.folders.inbox / "alone.png", 1)
        wait_until(lambda: c.folders.quarantined("alone.png"), timeout=120, what="quarantine")
        (reason_file,) = c.folders.quarantined("alone.png")
        reason = json.loads(reason_file.read_text())
        assert reason["reason"] == "no_capable_worker", reason
        assert "deu" in reason["message"], reason
        assert c.coordinator.count("task.refused") == 3
        assert "worker.refused" in lacking.log.read_text(errors="replace")
        status = json.loads(c.coordinator.status("--json").stdout)
        refusing = [w for w in status["workers"] if w.get("refuses")]
        assert refusing and "deu" in refusing[0]["refuses"], status["workers"]
        c.worker(**{langs: "eng,spa,deu"})
        for i in range(3):
            write_doc(c.folders.inbox / f"de{i}.png", i)
        wait_until(
            lambda: {f"de{i}.png" for i in range(3)} <= set(c.processed()),
            timeout=120,
            what="the German files",
        )
        for i in range(3):
            (car,) = c.folders.sidecars(f"de{i}.png")
            assert car.read_text().strip() == "read deu", car.read_text()
            assert not c.folders.quarantined(f"de{i}.png")
        assert c.coordinator.stop() == 0

    def test_frozen_broker_holds_nothing_up(self, cluster: Callable[..., Cluster]) -> None:
        """Redis frozen (SIGSTOP) while a worker reads a file: one broker.unavailable warning,
        new files are still claimed, and after SIGCONT everything is processed; the outage
        is charged to no file (no internal_error, no retry) and nothing logs CRITICAL."""
        c = cluster(stub=True, engine="stub", mode="printed")
        c.coordinator.start()
        worker = c.worker(OCRWATCH_TEST_STUB_SECONDS=3)
        write_doc(c.folders.inbox / "slow.png", 0)
        wait_until(
            lambda: "received" in worker.log.read_text(errors="replace"),
            timeout=60,
            what="the worker to take the file",
        )
        assert c.redis.proc is not None
        os.kill(c.redis.proc.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: c.coordinator.event_seen("broker.unavailable"),
                timeout=30,
                what="broker.unavailable",
            )
            for i in range(3):
                write_doc(c.folders.inbox / f"new{i}.png", i + 1)
            wait_until(
                lambda: {p.name for p in c.folders.claimed()} >= {f"new{i}.png" for i in range(3)},
                timeout=30,
                what="claims while the broker is frozen",
            )
        finally:
            os.kill(c.redis.proc.pid, signal.SIGCONT)
        wait_until(lambda: len(c.processed()) == 4, timeout=120, what="all files")
        assert c.coordinator.count("broker.unavailable") == 1
        assert c.coordinator.event_seen("broker.available")
        out = c.coordinator.output()
        assert "internal_error" not in out and "document.retry_scheduled" not in out, out
        assert '"level": "critical"' not in out.lower() and "CRITICAL" not in out
        assert not c.folders.quarantined("slow.png")
        assert c.coordinator.stop() == 0

    def test_restart_takes_up_tasks_already_sent(self, cluster: Callable[..., Cluster]) -> None:
        """A coordinator killed with tasks out and restarted takes up their answers by task
        id: every file is recognized once, not once per coordinator run."""
        c = cluster(stub=True, engine="stub", mode="printed")
        c.coordinator.start()
        worker = c.worker(OCRWATCH_TEST_STUB_SECONDS=1)
        for i in range(4):
            write_doc(c.folders.inbox / f"r{i}.png", i)
        wait_until(
            lambda: "received" in worker.log.read_text(errors="replace"),
            timeout=60,
            what="a task to reach the worker",
        )
        c.coordinator.kill9()
        c.coordinator.start()
        wait_until(lambda: len(c.processed()) == 4, timeout=120, what="all files")
        assert c.coordinator.event_seen("task.adopted")
        wait_until(lambda: c.queued() == 0, timeout=60, what="an empty queue")
        runs = worker.log.read_text(errors="replace").count("] succeeded in")
        assert runs == 4, runs
        assert c.coordinator.stop() == 0

    def test_two_workers_on_one_host_path_map_logs_and_metrics(
        self, cluster: Callable[..., Cluster]
    ) -> None:
        """Two workers on one host have their own node names and one stable metrics label
        (NAME@host, no pid); a worker that maps paths answers with the coordinator's paths
        for every output and the manifest's source; success lines carry no answer JSON;
        /metrics has a zero series per outcome, no _created series and the unjournaled
        backlog."""
        c = cluster(stub=True, engine="stub", mode="printed", outputs="txt,json,pdf,hocr,alto")
        alias = c.folders.root / "alias"
        alias.symlink_to(c.folders.root)
        c.coordinator.start()
        mapping = json.dumps({str(c.folders.root): str(alias)})
        first = c.worker(celery__path_map=mapping)
        second = c.worker(celery__path_map=mapping)
        nodes = []
        for w in (first, second):
            line = next(
                json.loads(x)
                for x in w.log.read_text(errors="replace").splitlines()
                if '"worker.starting"' in x
            )
            nodes.append(line["node"])
        assert nodes[0] != nodes[1], nodes
        for i in range(4):
            write_doc(c.folders.inbox / f"m{i}.png", i)
        wait_until(lambda: len(c.processed()) == 4, timeout=120, what="all files")
        for rel, line in c.processed().items():
            outputs = line["outputs"]
            assert isinstance(outputs, dict) and set(outputs) >= {"pdf", "hocr", "alto"}, line
            for path in outputs.values():
                assert str(path).startswith(str(c.folders.outbox)), (rel, outputs)
            (car,) = c.folders.sidecars(rel)
            source = json.loads(car.with_suffix(".json").read_text())["source"]["path"]
            assert source.startswith(str(c.folders.inbox)), source
        for w in (first, second):
            text = w.log.read_text(errors="replace")
            assert "DuplicateNodenameWarning" not in text
            assert '\\"outcome\\"' not in text and '"outcome"' not in text
        host = socket.gethostname()
        beat = f'ocrwatch_worker_last_heartbeat_timestamp_seconds{{worker="ocrwatch@{host}"}}'
        url = f"http://127.0.0.1:{c.metrics_port}/metrics"

        def scrape() -> str:
            return str(urllib.request.urlopen(url).read().decode())

        # The gauges are refreshed from the journal every few seconds: wait for the worker.
        wait_until(lambda: beat in scrape(), timeout=30, what="the worker's heartbeat series")
        body = scrape()
        assert 'ocrwatch_documents_total{outcome="quarantined"} 0.0' in body
        assert 'ocrwatch_backlog{state="unjournaled"}' in body
        assert "_created" not in body
        assert c.coordinator.stop() == 0

    def test_lost_range_is_redone_alone(self, cluster: Callable[..., Cluster]) -> None:
        """A worker frozen on one page range of a split PDF: that range alone is sent again
        after the lease; the other ranges are read once; the document is stitched in order."""
        c = cluster(stub=True, engine="stub", mode="printed", celery__pages_per_task=1)
        c.coordinator.start()
        frozen = c.worker(OCRWATCH_TEST_STUB_SECONDS=3)
        pages = [render_lines([f"Page {n}"], size=36).convert("RGB") for n in range(3)]
        pdf = c.folders.root / "three.pdf"
        pages[0].save(pdf, save_all=True, append_images=pages[1:], resolution=150.0)
        os.replace(pdf, c.folders.inbox / "three.pdf")
        wait_until(
            lambda: "received" in frozen.log.read_text(errors="replace"),
            timeout=60,
            what="the first range to reach the worker",
        )
        frozen.signal(signal.SIGSTOP)
        rescuer = c.worker(OCRWATCH_TEST_STUB_SECONDS=0.2)
        wait_until(lambda: "three.pdf" in c.processed(), timeout=120, what="the stitched PDF")
        (sidecar,) = c.folders.sidecars("three.pdf")
        assert sidecar.read_text().count("read eng") == 3, sidecar.read_text()
        runs = rescuer.log.read_text(errors="replace").count("] succeeded in")
        assert runs == 3, runs  # the two ranges left plus the lost one, not the whole again
        frozen.signal(signal.SIGCONT)
        assert c.coordinator.stop() == 0
