"""The worker's side: failures classified at the boundary; messages as JSON; the pool."""

from __future__ import annotations

import errno
import hashlib
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
from ocrwatch.daemon.messages import Failure, ProbeReport, ProbeTask, RecognizeTask, Result, Written
from ocrwatch.exceptions import (
    CorruptFileError,
    EmptyFileError,
    EncryptedPdfError,
    OutputError,
    TransientEngineError,
    TransientOutputError,
    UnsupportedFormatError,
)
from ocrwatch.settings.model import load_settings
from ocrwatch.settings.resolve import settings_digest
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
        base = load_settings(overrides={"languages": "eng"})
        assert settings_digest(base) == settings_digest(
            load_settings(overrides={"languages": "eng", "workers": 3, "log_level": "debug"})
        )
        assert settings_digest(base) != settings_digest(
            load_settings(overrides={"languages": "spa"})
        )


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
