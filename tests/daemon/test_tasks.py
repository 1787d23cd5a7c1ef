"""The worker's side: failures classified at the boundary; messages as JSON; the pool."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from pathlib import Path

import psutil
import pytest

from imaging import render_lines, save
from ocrwatch.daemon import messages
from ocrwatch.daemon.execute import execute
from ocrwatch.daemon.failures import classify
from ocrwatch.daemon.local_executor import LocalExecutor
from ocrwatch.daemon.messages import (
    Failure,
    ProbeReport,
    ProbeTask,
    RecognizeTask,
    Refused,
    Result,
    TaskSettings,
    Written,
)
from ocrwatch.exceptions import (
    CorruptFileError,
    EmptyFileError,
    EncryptedPdfError,
    OutputError,
    TransientEngineError,
    TransientOutputError,
    UnsupportedFormatError,
)
from ocrwatch.settings.model import Settings, load_settings
from ocrwatch.settings.resolve import task_values, values_digest, with_task_values
from ocrwatch.support.retry import Category


class TestClassify:
    """Exceptions become categories in one place."""

    @pytest.mark.parametrize(
        "exc",
        [CorruptFileError("x"), EmptyFileError("x"), UnsupportedFormatError("x", settled=False)],
    )
    def test_undecodable_while_probing_is_incomplete(self, exc: Exception) -> None:
        """While probing, a file that does not decode may still be being written."""
        assert classify(exc, probing=True)[0] is Category.INCOMPLETE
        assert classify(exc)[0] is Category.PERMANENT

    @pytest.mark.parametrize(
        ("exc", "category"),
        [
            (EncryptedPdfError("x"), Category.PERMANENT),
            (UnsupportedFormatError("content is plain text"), Category.PERMANENT),
            (TransientEngineError("503"), Category.TRANSIENT),
            (TransientOutputError("full"), Category.ENVIRONMENT),
            (OutputError("name"), Category.PERMANENT),
            (OSError(errno.ENOSPC, "full"), Category.ENVIRONMENT),
            (OSError(errno.ENAMETOOLONG, "long"), Category.PERMANENT),
            (OSError(errno.EILSEQ, "bytes"), Category.PERMANENT),
            (OSError(errno.ENOENT, "gone"), Category.TRANSIENT),
            (MemoryError(), Category.CRASH),
            (ValueError("bug"), Category.BUG),
        ],
    )
    def test_categories(self, exc: BaseException, category: Category) -> None:
        """Waiting helps environment and transient errors; nothing helps a name or a bad file."""
        assert classify(exc, probing=True)[0] is category


class TestMessages:
    """Every message survives JSON, odd names included; other versions are refused."""

    def test_round_trip(self) -> None:
        """Tasks and results come back equal, surrogate-escaped names too."""
        odd = os.fsdecode(b"caf\xe9.png")
        task = RecognizeTask("j", odd, "/w/" + odd, 2, "/o/x.txt", None, "inst", "/o/.v", "id")
        cases: list[messages.Message] = [
            ProbeTask("j", odd, "/in/" + odd),
            task,
            Result(task, Written("s", 1, 2, (("paddle", "3"),), "handwritten", 1, "t", "m"), 1.5),
            Result(task, Failure(Category.CRASH, "engine_crash", "died")),
            Result(ProbeTask("j", "a", "/a"), ProbeReport("s", 1, "png", 1)),
        ]
        for message in cases:
            text = messages.dumps(message)
            text.encode("ascii")  # travels as ASCII
            assert messages.loads(text) == message

    def test_refuses_other_versions_and_garbage(self) -> None:
        """A message of another version or shape is a ValueError, not a crash later."""
        text = messages.dumps(ProbeTask("j", "a", "/a")).replace('"v":2', '"v":3')
        with pytest.raises(ValueError, match="version 3"):
            messages.loads(text)
        with pytest.raises(ValueError):
            messages.loads(b"not json")
        with pytest.raises(ValueError):
            messages.loads('{"v":1,"message":{"type":"Nope"}}')


class TestLocalExecutor:
    """The process pool honours the executor contract with real worker processes."""

    def test_probe_crash_and_cancel(self, tmp_path: Path) -> None:
        """A probe answers; a killed worker's task comes back as a CRASH; cancel drops one."""
        settings = load_settings(overrides={"engine": "tesseract"})
        image = save(render_lines(["hello"], size=24), tmp_path / "a.png")
        pool = LocalExecutor(settings, size=1, timeout=60)
        pool.start()
        try:
            pool.submit(ProbeTask("j1", "a.png", str(image)))
            results = collect(pool, 1)
            assert isinstance(results[0].outcome, ProbeReport) and results[0].outcome.pages == 1
            pool.submit(ProbeTask("j2", "a.png", str(image)))
            pool.submit(ProbeTask("j3", "a.png", str(image)))
            assert pool.capacity == 0 and len(pool.in_flight) == 2
            assert pool.cancel("j2")
            (requeued,) = collect(pool, 1)
            assert requeued.task.job_id == "j3" and requeued.failure is not None
            assert requeued.failure.category is Category.REQUEUED
            pool.submit(ProbeTask("j4", "a.png", str(image)))
            for child in psutil.Process().children():
                if "spawn_main" in " ".join(child.cmdline()):
                    child.kill()
            (crashed,) = collect(pool, 1)
            assert crashed.failure is not None and crashed.failure.category is Category.CRASH
        finally:
            pool.close()


def collect(pool: LocalExecutor, n: int, timeout: float = 60) -> list[Result]:
    results: list[Result] = []
    deadline = time.monotonic() + timeout
    while len(results) < n and time.monotonic() < deadline:
        results += pool.collect(0.2)
    assert len(results) == n, results
    return results


class TestSettingsDigest:
    """Coordinator and workers compare what decides a recognition, nothing else."""

    def test_digest(self) -> None:
        """Languages change the digest; folders, logging and worker counts do not."""

        def digest(**overrides: object) -> str:
            return TaskSettings.resolve(load_settings(overrides=overrides), "a.png").digest

        assert digest(languages="eng") == digest(languages="eng", workers=3, log_level="debug")
        assert digest(languages="eng") != digest(languages="spa")


class TestKeptRecognition:
    """A recognition whose outputs could not be written is kept: retries never read twice."""

    def test_retry_after_full_outbox_reuses_the_reading(
        self, tmp_path: Path, small_tmpfs: Path
    ) -> None:
        """Outbox full: ENVIRONMENT failure, reading kept; the retry writes it without OCR
        (the claimed file is garbage by then, so a second reading would fail)."""
        from fsutil import fill_up
        from ocrwatch.engines import EngineCache

        settings = load_settings(overrides={"engine": "tesseract", "mode": "printed"})
        job_dir = tmp_path / "work" / "job1"
        image = save(render_lines(["Kept reading 42"], size=36), job_dir / "a.png")
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        task = RecognizeTask(
            "job1", "a.png", str(image), 1, str(small_tmpfs / "a.png.txt"), digest, "c"
        )
        engines = EngineCache(settings)
        try:
            fill_up(small_tmpfs)
            first = execute(task, settings=settings, engines=engines)
            assert first.failure is not None and first.failure.category is Category.ENVIRONMENT
            assert (job_dir / ".recognized.json").is_file()
            image.write_bytes(b"garbage now")
            (small_tmpfs / "ballast").unlink()
            second = execute(task, settings=settings, engines=engines)
        finally:
            engines.close()
        assert isinstance(second.outcome, Written), second.outcome
        assert "Kept reading 42" in (small_tmpfs / "a.png.txt").read_text()
        assert not (job_dir / ".recognized.json").exists()


class TestTaskSettings:
    """The task carries what decides its result; a worker reads with it or refuses."""

    def _task(self, image: Path, out: Path, settings: Settings, relpath: str) -> RecognizeTask:
        carried = TaskSettings.resolve(settings, relpath)
        return RecognizeTask("j", relpath, str(image), 1, str(out), None, "c", settings=carried)

    def test_round_trip_and_profile_applied_once(self) -> None:
        """TaskSettings and Refused survive JSON; the profile is resolved by the coordinator."""
        coordinator = load_settings(
            overrides={"languages": "eng", "profiles": [{"match": "es/**", "languages": "spa"}]}
        )
        values, profile = task_values(coordinator, "es/a.png")
        assert values["languages"] == ["spa"] and profile is not None
        assert "profiles" not in values and "aspose" not in values  # no secrets travel
        carried = TaskSettings(values_digest(values), values, profile)
        task = RecognizeTask("j", "es/a.png", "/w/a", 1, "/o/a.txt", None, "c", settings=carried)
        back = messages.loads(messages.dumps(task))
        assert back == task
        refused = Result(task, Refused("w@h", "language_unavailable", "no deu", "w.1@h"))
        assert messages.loads(messages.dumps(refused)) == refused
        worker = load_settings(overrides={"languages": "deu", "mode": "handwritten"})
        effective = with_task_values(worker, values)
        assert effective.languages == ["spa"] and effective.mode == coordinator.mode
        assert effective.profiles == []
        with pytest.raises(ValueError, match="unknown task settings"):
            with_task_values(worker, {**values, "inbox": "/x"})

    def test_worker_reads_with_the_task_settings_or_refuses(self, tmp_path: Path) -> None:
        """A worker configured for Spanish reads an English task in English; a task in a
        language its engine lacks is refused, nothing written."""
        from ocrwatch.engines import EngineCache

        image = save(render_lines(["Settings travel"], size=36), tmp_path / "a.png")
        coordinator = load_settings(
            overrides={"engine": "tesseract", "mode": "printed", "languages": "eng"}
        )
        worker = load_settings(
            overrides={"engine": "tesseract", "mode": "printed", "languages": "spa"}
        )
        engines = EngineCache(worker)
        try:
            task = self._task(image, tmp_path / "out" / "a.png.txt", coordinator, "a.png")
            result = execute(task, settings=worker, engines=engines, worker="w@h")
            assert isinstance(result.outcome, Written), result.outcome
            manifest = json.loads(Path(result.outcome.manifest).read_text())
            assert manifest["languages"] == ["eng"]
            assert result.outcome.processed_by["worker"] == "w@h"
            german = load_settings(
                overrides={"engine": "tesseract", "mode": "printed", "languages": "xx"}
            )
            task = self._task(image, tmp_path / "out" / "b.png.txt", german, "b.png")
            result = execute(task, settings=worker, engines=engines, worker="w@h", node="n")
        finally:
            engines.close()
        assert isinstance(result.outcome, Refused), result.outcome
        assert result.outcome.reason == "language_unavailable" and result.outcome.node == "n"
        assert "xx" in result.outcome.message
        assert not (tmp_path / "out" / "b.png.txt").exists()


class TestCeleryAnswers:
    """How the coordinator reads what Celery stored, and what a worker maps back."""

    def test_failures(self) -> None:
        """A lost worker process is a crash of the file (the backend hands back the
        exception object); a broker outage while storing is nobody's fault."""
        from billiard.exceptions import WorkerLostError

        from ocrwatch.daemon.celery_executor import _failure

        crash = _failure(WorkerLostError("Worker exited prematurely: signal 11 (SIGSEGV)"))
        assert (crash.category, crash.reason) == (Category.CRASH, "engine_crash")
        stored = _failure({"exc_type": "WorkerLostError", "exc_message": ["x"]})
        assert stored.category is Category.CRASH
        outage = _failure({"exc_type": "ConnectionError", "exc_message": ["refused"]})
        assert outage.category is Category.REQUEUED
        assert _failure(ValueError("bug")).category is Category.BUG

    def test_every_output_mapped_back(self) -> None:
        """path_map: txt, manifest and the other outputs come back in the coordinator's paths."""
        from ocrwatch.daemon.celery_worker import _answer, map_paths

        task = RecognizeTask("j", "a.png", "/srv/in/a.png", 1, "/srv/out/a.png.txt", None, "c")
        mapping = {"/srv": "/mnt/share"}
        mapped = map_paths(task, mapping)
        assert isinstance(mapped, RecognizeTask) and mapped.out_txt == "/mnt/share/out/a.png.txt"
        others = {"pdf": "/mnt/share/out/a.png.pdf", "hocr": "/mnt/share/out/a.png.hocr"}
        written = Written("s", 1, 1, (), "printed", 1, "/mnt/share/out/a.png.txt",
                          "/mnt/share/out/a.png.json", others)  # fmt: skip
        back = _answer(Result(mapped, written), task, mapping)
        assert back.task == task
        assert isinstance(back.outcome, Written)
        assert back.outcome.txt == "/srv/out/a.png.txt"
        assert back.outcome.others == {"pdf": "/srv/out/a.png.pdf", "hocr": "/srv/out/a.png.hocr"}


class TestMetrics:
    """Prometheus conventions: zero series, no _created, the unjournaled backlog."""

    def test_exposition(self, tmp_path: Path) -> None:
        from prometheus_client import generate_latest

        from ocrwatch.daemon.journal import open_journal
        from ocrwatch.daemon.metrics import Metrics

        metrics = Metrics()
        journal, _ = open_journal(tmp_path / "j.sqlite3")
        try:
            metrics.refresh(journal, in_flight=0, workers={"ocrwatch@h": 1.0}, unjournaled=4)
        finally:
            journal.close()
        body = generate_latest(metrics.registry).decode()
        for outcome in ("ok", "duplicate", "quarantined"):
            assert f'ocrwatch_documents_total{{outcome="{outcome}"}} 0.0' in body
        assert 'ocrwatch_backlog{state="unjournaled"} 4.0' in body
        assert 'ocrwatch_backlog{state="claimed"} 0.0' in body
        assert 'worker="ocrwatch@h"' in body
        assert "_created" not in body
