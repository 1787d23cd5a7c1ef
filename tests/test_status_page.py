"""The status page at / beside /metrics, read by headless Chromium from a real HTTP server."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import read, screenshot
from ocrwatch._version import __version__
from ocrwatch.daemon.journal import JOURNAL_NAME, Changes, Journal, State
from ocrwatch.daemon.metrics import Metrics
from ocrwatch.daemon.status_page import Recent, StatusPage
from redisserver import free_port

EVIL = "in/<script>alert(1)</script>&<b>bold</b>.png"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "state" / JOURNAL_NAME)
    yield j
    j.close()


@pytest.fixture
def served(journal: Journal) -> Iterator[tuple[str, StatusPage, Metrics]]:
    """A status page and /metrics on one real server on 127.0.0.1 (as the daemon serves)."""
    page = StatusPage(journal.path, started=time.time() - 3 * 3600)
    metrics = Metrics()
    port = free_port()
    metrics.serve(port, "127.0.0.1", page=page.html)
    yield f"http://127.0.0.1:{port}", page, metrics
    metrics.close()
    page.close()


def fill(journal: Journal, page: StatusPage) -> None:
    """Jobs in several states, a worker, and finished documents, as a daemon leaves them."""
    old = journal.add(EVIL, state=State.CLAIMED)
    with journal._lock, journal._db:  # discovered 2 h ago: the oldest pending file
        journal._db.execute(
            "UPDATE jobs SET discovered_at = ? WHERE job_id = ?", (time.time() - 7200, old.job_id)
        )
    journal.add("letters/b.pdf", state=State.RETRY, changes=Changes(attempts=2, reason="busy"))
    journal.add(
        "bad/not-an-image.png",
        state=State.QUARANTINED,
        changes=Changes(reason="not_an_image", last_error="cannot identify image file\nTrace"),
    )
    journal.worker_seen("ocr-2:4242", time.time() - 30)
    page.record(Recent(time.time(), "letters/a.pdf", 3, "tesseract", 4.25, "ok"))
    page.record(Recent(time.time(), EVIL, None, None, 0.1, "quarantined", "not_an_image"))
    page.publish("1 queued, 0 in flight, 0 settling, 1 done, 1 quarantined; watching inotify")


class TestInChromium:
    """What a person sees in a browser."""

    def test_shows_the_daemon(
        self, journal: Journal, served: tuple[str, StatusPage, Metrics], tmp_path: Path
    ) -> None:
        """Backlog by state, oldest pending age, recent documents with pages, engine and
        seconds, failures with reasons, workers, version and uptime."""
        url, page, _ = served
        fill(journal, page)
        seen = read(url + "/")
        assert seen.by_id["version"] == __version__
        assert seen.by_id["uptime"] == "3.0 h"
        assert seen.by_id["backlog"].startswith("2 file(s) not finished")
        assert f"oldest pending: {EVIL}, waiting 2.0 h" in seen.by_id["oldest"]
        assert seen.by_id["status"].startswith("1 queued, 0 in flight")
        text = " ".join(seen.text.split())
        assert "claimed 1" in text and "retry 1" in text and "quarantined 1" in text
        assert "letters/a.pdf 3 tesseract 4.2 ok" in text  # recent documents
        assert "bad/not-an-image.png quarantined not_an_image 0 cannot identify image file" in text
        assert "Trace" not in text  # the first line of an error only
        assert "letters/b.pdf retry busy 2" in text
        assert "ocr-2:4242" in text
        screenshot(url + "/", tmp_path / "status.png")  # to look at when it fails
        assert (tmp_path / "status.png").stat().st_size > 10_000

    def test_names_are_escaped(
        self, journal: Journal, served: tuple[str, StatusPage, Metrics]
    ) -> None:
        """A file named like markup is shown as its name, never run or rendered as markup."""
        url, page, _ = served
        fill(journal, page)
        seen = read(url + "/")
        assert EVIL in seen.text
        assert "script" not in seen.tags and "b" not in seen.tags
        assert "&lt;script&gt;" in seen.dom

    def test_refreshes_itself_without_javascript(
        self, journal: Journal, served: tuple[str, StatusPage, Metrics]
    ) -> None:
        """A meta refresh, no script element, and a policy that forbids scripts anyway."""
        url, _, _ = served
        seen = read(url + "/")
        assert '<meta http-equiv="refresh" content="10">' in seen.dom
        assert "script" not in seen.tags
        with urllib.request.urlopen(url + "/", timeout=10) as resp:
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"

    def test_before_the_journal_exists(self, tmp_path: Path) -> None:
        """No journal file yet: the page says so and still shows version and uptime."""
        page = StatusPage(tmp_path / "none" / JOURNAL_NAME)
        metrics = Metrics()
        port = free_port()
        metrics.serve(port, "127.0.0.1", page=page.html)
        try:
            seen = read(f"http://127.0.0.1:{port}/")
        finally:
            metrics.close()
        assert "The journal cannot be read right now." in seen.text
        assert seen.by_id["version"] == __version__


class TestServer:
    """One server: / and /metrics, nothing else."""

    def test_metrics_beside_the_page(self, served: tuple[str, StatusPage, Metrics]) -> None:
        """/metrics is still Prometheus' exposition, from the same port."""
        url, _, metrics = served
        metrics.documents.labels(outcome="ok").inc()
        with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
            body = resp.read().decode()
        assert 'ocrwatch_documents_total{outcome="ok"} 1.0' in body

    @pytest.mark.parametrize(
        "path", ["/journal.sqlite3", "/../state/journal.sqlite3", "/index.html", "/metrics/x"]
    )
    def test_nothing_else_is_served(
        self, served: tuple[str, StatusPage, Metrics], path: str
    ) -> None:
        """Any other path is 404: no file is ever served."""
        url, _, _ = served
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + path, timeout=10)
        assert err.value.code == 404

    def test_post_is_refused(self, served: tuple[str, StatusPage, Metrics]) -> None:
        """The page is read-only."""
        url, _, _ = served
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + "/", data=b"x=1", timeout=10)
        assert err.value.code == 405

    def test_reads_while_the_loop_writes(
        self, journal: Journal, served: tuple[str, StatusPage, Metrics]
    ) -> None:
        """Pages served while another thread writes the journal and records documents:
        every one is whole (the page has its own read-only connection)."""
        url, page, _ = served
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            n = 0
            try:
                while not stop.is_set():
                    job = journal.add(f"w/{n}.png", state=State.CLAIMED)
                    journal.update(job.job_id, state=State.ARCHIVED)
                    page.record(Recent(time.time(), f"w/{n}.png", 1, "tesseract", 0.5, "ok"))
                    n += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            bodies = []
            for _ in range(30):
                with urllib.request.urlopen(url + "/", timeout=10) as resp:
                    bodies.append(resp.read().decode())
        finally:
            stop.set()
            thread.join(timeout=10)
        assert not errors
        assert all(b.endswith("</body></html>") and "cannot be read" not in b for b in bodies)
