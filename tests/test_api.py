"""The tutorial's API (ocrwatch.OcrEngine) offline and against the Aspose emulator."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ocrwatch as ocr
from imaging import render_lines, save
from ocrwatch.engines import EngineCache
from ocrwatch.exceptions import ConfigError, InputError, PermanentEngineError
from ocrwatch.settings.model import load_settings
from ocrwatch.testing.aspose_emulator import AsposeEmulator

LINES = ["Hola mundo", "segunda linea"]
TUTORIAL = Path(__file__).resolve().parents[1] / "examples" / "tutorial.py"


def words(text: str) -> list[str]:
    """The text's non-empty lines, whitespace-normalized."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def fingerprint(path: Path) -> tuple[str, int, int]:
    """Content hash, mtime and mode: what 'never modified' means."""
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_mode


@pytest.fixture(autouse=True)
def _no_aspose_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from an environment without ocrwatch settings."""
    for key in list(os.environ):
        if key.startswith("OCRWATCH_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def local_engines() -> Iterator[EngineCache]:
    """Local engines for the module's emulators."""
    cache = EngineCache(load_settings(environ={}))
    yield cache
    cache.close()


@pytest.fixture
def emu(local_engines: EngineCache, monkeypatch: pytest.MonkeyPatch) -> Iterator[AsposeEmulator]:
    """An emulator, with quick polling set through the environment (env still applies)."""
    monkeypatch.setenv("OCRWATCH_ASPOSE__POLL_INTERVAL", "0.02")
    with AsposeEmulator(engines=local_engines) as e:
        yield e


@pytest.fixture
def note(tmp_path: Path) -> Path:
    """A rendered two-line Spanish note."""
    return save(render_lines(LINES), tmp_path / "note.png")


class TestOcrEngineLocal:
    """OcrEngine() runs offline on the local engines."""

    def test_printed(self, note: Path) -> None:
        """Printed mode reads the lines, keeps line breaks, ends with a newline."""
        before = fingerprint(note)
        with ocr.OcrEngine() as engine:
            engine.load_image(note)
            engine.set_recognition_mode(ocr.RecognitionMode.PRINTED)
            engine.set_language(ocr.Language.SPANISH)
            result = engine.recognize()
        assert words(result.text) == LINES
        assert result.text.endswith("\n")
        assert len(result.pages) == 1 and result.pages[0].engine == "tesseract"
        assert result.confidence is not None and 0 < result.confidence <= 1
        assert fingerprint(note) == before

    def test_handwritten_spanish(self, note: Path) -> None:
        """The tutorial's settings (handwritten, Spanish) run on PP-OCR locally."""
        engine = ocr.OcrEngine()
        engine.load_image(note)
        engine.set_recognition_mode(ocr.RecognitionMode.HANDWRITTEN)
        engine.set_language(ocr.Language.SPANISH)
        result = engine.recognize()
        engine.close()
        assert words(result.text) == LINES
        assert result.pages[0].engine == "paddle"
        assert result.document.mode == "handwritten"

    def test_pdf_pages_are_form_feed_separated(self, tmp_path: Path) -> None:
        """A two-page PDF gives two pages joined by a form feed."""
        pdf = tmp_path / "two.pdf"
        first, second = render_lines(["First page"]), render_lines(["Second page"])
        first.save(pdf, format="PDF", save_all=True, append_images=[second], resolution=100)
        with ocr.OcrEngine() as engine:
            engine.load_image(pdf)
            engine.set_recognition_mode("printed")
            result = engine.recognize()
        assert [words(p) for p in result.text.split("\f")] == [["First page"], ["Second page"]]

    def test_errors_are_ocr_exceptions(self, tmp_path: Path) -> None:
        """Bad files, missing files and no file at all raise OcrException subclasses."""
        engine = ocr.OcrEngine()
        with pytest.raises(InputError, match="load_image"):
            engine.recognize()
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
        before = fingerprint(bad)
        with pytest.raises(ocr.exceptions.OcrException):
            engine.load_image(bad)
        assert fingerprint(bad) == before
        with pytest.raises(InputError):
            engine.load_image(tmp_path / "missing.png")
        with pytest.raises(ValueError):
            engine.set_recognition_mode("sideways")


class TestOcrEngineAspose:
    """OcrEngine(client_id=, client_secret=, base_url=) reads through the aspose engine."""

    def test_handwritten_spanish_sends_hwt_eng(self, emu: AsposeEmulator, note: Path) -> None:
        """The tutorial's settings reach Aspose as HWT_ENG; the text comes back whole."""
        with ocr.OcrEngine(
            client_id=emu.client_id, client_secret=emu.client_secret, base_url=emu.base_url
        ) as engine:
            engine.load_image(note)
            engine.set_recognition_mode(ocr.RecognitionMode.HANDWRITTEN)
            engine.set_language(ocr.Language.SPANISH)
            result = engine.recognize()
            engine.set_recognition_mode(ocr.RecognitionMode.PRINTED)
            printed = engine.recognize()
        assert words(result.text) == LINES and words(printed.text) == LINES
        assert [s.settings["language"] for s in emu.submissions] == ["HWT_ENG", "Spanish"]
        assert result.pages[0].engine == "aspose"

    def test_rejected_credentials(self, emu: AsposeEmulator, note: Path) -> None:
        """Wrong credentials raise a permanent OcrException that does not show the secret."""
        engine = ocr.OcrEngine(
            client_id=emu.client_id, client_secret="not-the-secret-42", base_url=emu.base_url
        )
        engine.load_image(note)
        with pytest.raises(PermanentEngineError) as info:
            engine.recognize()
        engine.close()
        assert isinstance(info.value, ocr.exceptions.OcrException)
        assert "not-the-secret-42" not in str(info.value)
        assert "not-the-secret-42" not in repr(engine.settings())

    def test_half_credentials(self) -> None:
        """A client id without a secret is a ConfigError at once, naming the variables."""
        with pytest.raises(ConfigError, match="OCRWATCH_ASPOSE__CLIENT_SECRET"):
            ocr.OcrEngine(client_id="someone")


def _closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestOfflineByDefault:
    """Credentials on a machine that cannot reach Aspose: local engines, one warning."""

    def test_unreachable_cloud_falls_back(self, note: Path) -> None:
        """Nothing listening at the base URL: the text still comes back, read locally."""
        engine = ocr.OcrEngine(
            client_id="YOUR_CLIENT_ID",
            client_secret="YOUR_CLIENT_SECRET",
            base_url=f"http://127.0.0.1:{_closed_port()}",
        )
        engine.load_image(note)
        with engine:
            result = engine.recognize()
        assert words(result.text) == LINES
        assert result.document is not None
        assert "aspose" not in result.document.engines

    def test_fallback_can_be_refused(self, note: Path) -> None:
        """fallback_to_local=False raises the transient 'unreachable' error instead."""
        from ocrwatch.engines.aspose import AsposeUnreachable

        engine = ocr.OcrEngine(
            client_id="id",
            client_secret="secret",
            base_url=f"http://127.0.0.1:{_closed_port()}",
            fallback_to_local=False,
        )
        engine.load_image(note)
        with engine, pytest.raises(AsposeUnreachable):
            engine.recognize()

    def test_rejected_credentials_never_fall_back(self, emu: AsposeEmulator, note: Path) -> None:
        """A cloud that answers 'bad credentials' is an error, not a reason to go local."""
        engine = ocr.OcrEngine(client_id="wrong", client_secret="wrong", base_url=emu.base_url)
        engine.load_image(note)
        with engine, pytest.raises(PermanentEngineError):
            engine.recognize()


class TestTutorialScript:
    """examples/tutorial.py runs as a user would run it."""

    def run(self, image: Path | None, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("OCRWATCH_")}
        args = [sys.executable, str(TUTORIAL)] + ([str(image)] if image else [])
        return subprocess.run(
            args, env={**base, **env}, capture_output=True, text=True, timeout=240
        )

    def test_offline(self, note: Path) -> None:
        """Without credentials it reads the note on the local engines and prints its lines."""
        proc = self.run(note, {})
        assert proc.returncode == 0, proc.stderr
        assert words(proc.stdout) == LINES

    def test_against_the_emulator(self, emu: AsposeEmulator, note: Path) -> None:
        """With OCRWATCH_ASPOSE__* set it goes through Aspose (the emulator) as HWT_ENG."""
        proc = self.run(note, {**emu.environ(), "OCRWATCH_ASPOSE__POLL_INTERVAL": "0.02"})
        assert proc.returncode == 0, proc.stderr
        assert words(proc.stdout) == LINES
        assert emu.count("POST", "RecognizeImage") == 1
        assert emu.submissions[0].settings["language"] == "HWT_ENG"
        assert emu.client_secret not in proc.stdout + proc.stderr

    def test_usage(self) -> None:
        """Without an image argument it prints usage and exits 2."""
        proc = self.run(None, {})
        assert proc.returncode == 2 and "usage" in proc.stderr
