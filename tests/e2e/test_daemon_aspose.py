"""``ocrwatch run`` with the Aspose engine against the local emulator, faults included."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.conftest import Daemon, Folders, SidecarChecker, page, sha256, wait_until
from imaging import render_lines, save
from ocrwatch.engines import EngineCache
from ocrwatch.settings.model import load_settings
from ocrwatch.testing.aspose_emulator import AsposeEmulator

pytestmark = pytest.mark.e2e

#: Distinctive, so that a leak anywhere is found by a plain substring search.
SECRET = "sEcReT-7f3a9c1e-do-not-log"


def write_pdf(path: Path, first: int, second: int) -> Path:
    """Render a two-page PDF (pages ``first`` and ``second``) at 200 dpi to ``path``."""
    one, two = (render_lines(page(n), size=36) for n in (first, second))
    path.parent.mkdir(parents=True, exist_ok=True)
    one.save(path, save_all=True, append_images=[two], resolution=200.0)
    return path


def aspose_settings(emu: AsposeEmulator, **extra: object) -> dict[str, object]:
    """Return make_daemon settings that point the daemon at ``emu`` with quick retries."""
    settings: dict[str, object] = {
        key.removeprefix("OCRWATCH_").lower(): value for key, value in emu.environ().items()
    }
    settings.update(
        engine="aspose",
        workers=2,
        aspose__poll_interval=0.05,
        aspose__request_timeout=10,
        retry__call_attempts=10,
        retry__wait_initial=0.05,
        retry__wait_max=0.2,
        retry__wait_jitter=0.05,
    )
    settings.update(extra)
    return settings


def leaks(folders: Folders, daemon: Daemon, secrets: list[str]) -> list[str]:
    """Return where any of ``secrets`` shows up: daemon output, outbox files, journal."""
    places = [*daemon.logs, *(p for p in folders.outbox.rglob("*") if p.is_file())]
    places += [p for p in folders.state.rglob("*") if p.is_file()]
    found = []
    for path in places:
        body = path.read_bytes()
        found += [f"{path}: {s[:6]}..." for s in secrets if s.encode() in body]
    return found


@pytest.fixture(scope="module")
def local_engines() -> Iterator[EngineCache]:
    """Local engines shared by the module's emulators (loaded once)."""
    cache = EngineCache(load_settings(environ={}))
    yield cache
    cache.close()


class TestAsposeFaults:
    """The daemon with the emulator failing 30% of its calls still reads every file."""

    def test_every_file_gets_its_sidecar(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        local_engines: EngineCache,
    ) -> None:
        """20 images (some nested) and two 2-page PDFs: each ends with exactly one sidecar
        holding its rendered text, none is quarantined, faults were really injected and
        retried, and neither the secret nor a token appears in logs, manifests or journal."""
        images = {f"{'sub/' * (n % 3)}img{n}.png": n for n in range(20)}
        pdfs = {"pdfs/two.pdf": (40, 41), "three.pdf": (42, 43)}
        inputs: dict[str, str] = {}
        with AsposeEmulator(
            engines=local_engines, client_secret=SECRET, fail_rate=0.3, seed=1, retry_after=0
        ) as emu:
            daemon = make_daemon(**aspose_settings(emu)).start()
            with SidecarChecker(folders.outbox) as checker:
                for rel, n in images.items():
                    inputs[rel] = sha256(save(render_lines(page(n), size=36), folders.inbox / rel))
                for rel, (a, b) in pdfs.items():
                    inputs[rel] = sha256(write_pdf(folders.inbox / rel, a, b))
                wait_until(lambda: folders.accounted(list(inputs)), timeout=75, what="every input")
            assert daemon.alive()
            assert daemon.stop() == 0
            pdf_posts = emu.count("POST", "RecognizePdf")
            image_posts = emu.count("POST", "RecognizeImage")
            tokens = emu.tokens
        assert not checker.problems, checker.problems[:5]
        for rel, digest in inputs.items():
            cars = folders.sidecars(rel)
            assert len(cars) == 1 and not folders.quarantined(rel), (rel, cars)
            manifest = json.loads(cars[0].with_suffix(".json").read_text())
            assert manifest["source"]["sha256"] == digest
            assert sha256(folders.archive / rel) == digest
        for rel, n in images.items():
            text = folders.sidecars(rel)[0].read_text()
            assert all(line in text for line in page(n)), (rel, text)
        for rel, (a, b) in pdfs.items():
            pages = folders.sidecars(rel)[0].read_text().split("\f")
            assert len(pages) == 2, (rel, pages)
            assert all(line in pages[0] for line in page(a)), pages
            assert all(line in pages[1] for line in page(b)), pages
        assert pdf_posts >= len(pdfs)
        assert image_posts >= len(images)
        retried = (
            daemon.count("stamina.retry_scheduled")
            + daemon.count("aspose.poll_failed")
            + daemon.count("document.retry_scheduled")
        )
        assert retried > 0, "the emulator should have failed some calls"
        assert not folders.quarantine.exists() or not any(folders.quarantine.rglob("*"))
        assert tokens, "the daemon should have logged in"
        assert not leaks(folders, daemon, [SECRET, *tokens])
        processed = [x for x in folders.log_lines() if x["event"] == "document.processed"]
        assert sorted(str(x["relpath"]) for x in processed) == sorted(inputs)


class TestAsposePermanentFailures:
    """What Aspose refuses for good is quarantined with the reason; the daemon carries on."""

    def test_rejected_credentials_quarantine(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        local_engines: EngineCache,
    ) -> None:
        """Credentials the server rejects: the file is quarantined with a reason saying so,
        the wrong secret is not written anywhere, and the daemon keeps running."""
        wrong = "wrong-secret-0c4b2f9d"
        with AsposeEmulator(engines=local_engines, client_secret=SECRET) as emu:
            settings = aspose_settings(emu, aspose__client_secret=wrong)
            daemon = make_daemon(**settings).start()
            save(render_lines(page(1), size=36), folders.inbox / "creds.png")
            wait_until(lambda: folders.quarantined("creds.png"), timeout=60, what="quarantine")
            assert daemon.alive()
            reason = json.loads(folders.quarantined("creds.png")[0].read_text())
            assert "credentials rejected" in reason["message"], reason
            assert reason["reason"] == "engine_permanent"
            assert emu.count("POST", "token") >= 1 and not emu.submissions
            assert daemon.stop() == 0
        assert not folders.sidecars("creds.png")
        assert not leaks(folders, daemon, [wrong, SECRET])

    def test_task_error_quarantine(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        local_engines: EngineCache,
    ) -> None:
        """A task that ends in Error is quarantined with the server's message; once the
        server recovers the next file is read again."""
        message = "the page could not be recognized (emulated)"
        with AsposeEmulator(engines=local_engines, task_error=message) as emu:
            daemon = make_daemon(**aspose_settings(emu)).start()
            save(render_lines(page(2), size=36), folders.inbox / "err.png")
            wait_until(lambda: folders.quarantined("err.png"), timeout=60, what="quarantine")
            reason = json.loads(folders.quarantined("err.png")[0].read_text())
            assert message in reason["message"], reason
            assert reason["reason"] == "engine_permanent"
            assert daemon.alive()
            emu.faults.set(task_error=None)
            save(render_lines(page(3), size=36), folders.inbox / "fine.png")
            wait_until(lambda: folders.sidecars("fine.png"), timeout=60, what="the next file")
            assert daemon.stop() == 0
        assert "Document 3" in folders.sidecars("fine.png")[0].read_text()
        assert not folders.sidecars("err.png")
