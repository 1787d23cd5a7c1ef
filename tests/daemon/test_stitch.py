"""Long documents in page ranges, stitched; worker path maps."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path

from ocrwatch.daemon import stash
from ocrwatch.daemon.celery_worker import map_paths
from ocrwatch.daemon.messages import Failure, PagesRead, ProbeTask, RecognizeTask, Result, Written
from ocrwatch.daemon.stitch import Stitcher, kept, split, spread
from ocrwatch.engines.base import Line, PageResult
from ocrwatch.recognition.pipeline import PageRecord
from ocrwatch.settings.choices import Mode
from ocrwatch.settings.model import load_settings
from ocrwatch.support.retry import Category


def task(tmp_path: Path, pages: tuple[int, int] | None = None) -> RecognizeTask:
    return RecognizeTask(
        "job", "long.pdf", str(tmp_path / "long.pdf"), 1, str(tmp_path / "out" / "long.pdf.txt"),
        "ab" * 32, "coord", pages=pages,
    )  # fmt: skip


def part(first: int, last: int, host: str) -> PagesRead:
    records = tuple(
        PageRecord(
            number=n,
            result=PageResult(lines=(Line(f"page {n}", 0.9),), engine="tesseract"),
            mode=Mode.PRINTED,
            preprocessing=(),
            attempts=1,
            seconds=0.1,
        )
        for n in range(first, last + 1)
    )
    return PagesRead(
        sha256="ab" * 32,
        size=100,
        format="pdf",
        records=records,
        engines=(("tesseract", "5"),),
        timings={"recognize": 0.1 * len(records)},
        processed_by={"host": host, "pid": first},
    )


class TestSplit:
    """A long PDF becomes page-range tasks; a short one stays whole."""

    def test_ranges(self, tmp_path: Path) -> None:
        """25 pages by 10: three ranges covering every page once."""
        parts = split(task(tmp_path), pages=25, per_task=10)
        assert [p.pages for p in parts] == [(1, 10), (11, 20), (21, 25)]
        assert split(task(tmp_path), pages=10, per_task=10) == [task(tmp_path)]


class TestSpread:
    """A local pool spreads a document over idle workers only when no other job waits."""

    def test_quiet_inbox_uses_every_idle_worker(self) -> None:
        """10 pages, 2 idle workers: two ranges of 5; 3 idle: ranges of 4."""
        assert spread(10, idle=2, waiting=0) == 5
        assert spread(10, idle=3, waiting=0) == 4

    def test_busy_inbox_keeps_files_whole(self) -> None:
        """Another job waiting, or one idle worker, or one page: the document stays whole."""
        assert spread(10, idle=2, waiting=1) == 10
        assert spread(10, idle=1, waiting=0) == 10
        assert spread(1, idle=2, waiting=0) == 1


class TestStitcher:
    """Ranges answered in any order give one document, written once, pages in order."""

    def test_stitched_in_page_order(self, tmp_path: Path) -> None:
        """The outputs are written, off the caller's thread, once the last range arrives."""
        stitcher = Stitcher(load_settings(overrides={}))
        stitcher.expect("job", 2)
        second = Result(task(tmp_path, (3, 4)), part(3, 4, "b"), seconds=1.0)
        first = Result(task(tmp_path, (1, 2)), part(1, 2, "a"), seconds=1.0)
        assert stitcher.add(second) is None
        assert not stitcher.busy
        assert stitcher.add(first) is None  # complete: being written in the background
        assert stitcher.busy
        deadline = time.monotonic() + 30
        done: list[Result] = []
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
            done = stitcher.finished()
        (whole,) = done
        stitcher.close()
        assert stitcher.finished() == [] and not stitcher.busy
        assert isinstance(whole.outcome, Written)
        assert whole.task.pages is None and whole.seconds == 2.0
        text = Path(whole.outcome.txt).read_text()
        assert text == "page 1\fpage 2\fpage 3\fpage 4\n"
        manifest = json.loads(Path(whole.outcome.manifest).read_text())
        assert manifest["pages"] == 4
        assert [b["host"] for b in manifest["pages_processed_by"]] == ["a", "b"]
        assert "job" not in stitcher

    def test_a_failed_range_fails_the_job(self, tmp_path: Path) -> None:
        """The first failure answers for the whole job; later ranges are dropped."""
        stitcher = Stitcher(load_settings(overrides={}))
        stitcher.expect("job", 2)
        failure = Failure(Category.TRANSIENT, "engine_transient", "503")
        answer = stitcher.add(Result(task(tmp_path, (1, 2)), failure))
        assert answer is not None and answer.failure == failure and answer.task.pages is None
        assert stitcher.add(Result(task(tmp_path, (3, 4)), part(3, 4, "b"))) is None
        assert not stitcher.busy and stitcher.finished() == []
        stitcher.close()

    def test_close_waits_for_a_write(self, tmp_path: Path) -> None:
        """A daemon that stops while a stitched document is being written lets it finish."""
        stitcher = Stitcher(load_settings(overrides={}))
        stitcher.expect("job", 1)
        stitcher.add(Result(task(tmp_path, (1, 2)), part(1, 2, "a"), seconds=1.0))
        stitcher.close()
        (whole,) = stitcher.finished()
        assert isinstance(whole.outcome, Written) and Path(whole.outcome.txt).exists()


class TestKeptOnFullDisk:
    """A stitched document whose outputs cannot be written is kept, not read again."""

    def test_kept_then_sent_whole(self, tmp_path: Path, small_tmpfs: Path) -> None:
        """Disk full: a transient failure, the joined pages kept beside the claimed file."""
        with contextlib.suppress(OSError):  # more than fits: the disk is full
            (small_tmpfs / "filler").write_bytes(b"\0" * 400_000)
        work = tmp_path / "work" / "job"
        work.mkdir(parents=True)
        whole = RecognizeTask(
            "job", "long.pdf", str(work / "long.pdf"), 1, str(small_tmpfs / "long.pdf.txt"),
            "ab" * 32, "coord",
        )  # fmt: skip
        assert not kept(whole)
        stitcher = Stitcher(load_settings(overrides={}))
        stitcher.expect("job", 2)
        for first, host in ((1, "a"), (3, "b")):
            rng = replace(whole, pages=(first, first + 1))
            stitcher.add(Result(rng, part(first, first + 1, host), seconds=1.0))
        stitcher.close()
        (answer,) = stitcher.finished()
        assert answer.failure is not None and answer.failure.reason == "output_transient"
        assert kept(whole)
        again = stash.stashed(stash.stash_path(whole), whole)
        assert again is not None and again.text == "page 1\fpage 2\fpage 3\fpage 4\n"


class TestPathMap:
    """A worker that mounts the share elsewhere reads and writes through its own paths."""

    def test_map_both_ways(self, tmp_path: Path) -> None:
        """Coordinator prefixes become the worker's; other paths are left alone."""
        mapping = {"/srv/scans": "/mnt/nas/scans"}
        probe = map_paths(ProbeTask("j", "a.png", "/srv/scans/in/a.png"), mapping)
        assert probe.path == "/mnt/nas/scans/in/a.png"
        t = RecognizeTask(
            "j", "a.png", "/srv/scans/in/.w/a.png", 1, "/srv/scans/out/a.png.txt", None, "c",
            outbox_marker="/srv/scans/out/.ocrwatch/.volume",
        )  # fmt: skip
        mapped = map_paths(t, mapping)
        assert isinstance(mapped, RecognizeTask)
        assert mapped.out_txt == "/mnt/nas/scans/out/a.png.txt"
        assert mapped.outbox_marker == "/mnt/nas/scans/out/.ocrwatch/.volume"
        assert map_paths(ProbeTask("j", "a", "/srv/scansX/a"), mapping).path == "/srv/scansX/a"
