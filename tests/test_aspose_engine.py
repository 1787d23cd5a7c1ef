"""The aspose engine on the real SDK, over real HTTP, against the local emulator."""

from __future__ import annotations

import base64
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina
import structlog
from PIL import Image

from cloud import make_settings
from imaging import render_lines, save
from ocrwatch.engines import EngineCache
from ocrwatch.engines.aspose import (
    AsposeEngine,
    AsposeRateLimited,
    AsposeUnavailable,
    retry_after_seconds,
)
from ocrwatch.exceptions import (
    ConfigError,
    PermanentEngineError,
    TransientEngineError,
)
from ocrwatch.recognition import pipeline
from ocrwatch.settings.choices import LogFormat, Mode
from ocrwatch.settings.model import load_settings
from ocrwatch.support.logsetup import configure
from ocrwatch.testing.aspose_emulator import AsposeEmulator, Endpoint, Fault

LINES = ["The quick brown fox", "jumps over the lazy dog"]
SECRET = "emulator-secret-Zq81xV"


@pytest.fixture(scope="module")
def local_engines() -> Iterator[EngineCache]:
    """The emulator's local engines, loaded once for the module."""
    cache = EngineCache(load_settings())
    yield cache
    cache.close()


@pytest.fixture
def emu(local_engines: EngineCache) -> Iterator[AsposeEmulator]:
    """A fresh emulator (fresh counters and faults) sharing the module's engines."""
    with AsposeEmulator(client_secret=SECRET, engines=local_engines, retry_after=0) as e:
        yield e


@pytest.fixture
def engine(emu: AsposeEmulator) -> Iterator[AsposeEngine]:
    """An aspose engine talking to ``emu``."""
    eng = AsposeEngine.from_settings(make_settings(emu))
    yield eng
    eng.close()


@pytest.fixture
def page() -> Image.Image:
    """A rendered page of two printed lines."""
    return render_lines(LINES)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged (debug and up, JSON lines) during the test."""
    buf = io.StringIO()
    configure(level="debug", fmt=LogFormat.JSON, stream=buf)
    yield buf
    structlog.reset_defaults()
    import logging

    for handler in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(handler)


def words(text: str) -> list[str]:
    """The text's lines, whitespace-normalized, empty ones dropped."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


class TestConfiguration:
    """Construction, credentials and the static answers."""

    def test_missing_credentials_name_the_variables(self) -> None:
        """Without client id and secret the engine refuses with the env variable names."""
        settings = load_settings(overrides={"aspose": {"client_id": None}})
        with pytest.raises(ConfigError) as info:
            AsposeEngine.from_settings(settings)
        assert "OCRWATCH_ASPOSE__CLIENT_ID" in str(info.value)
        assert "OCRWATCH_ASPOSE__CLIENT_SECRET" in str(info.value)

    def test_static_answers(self, engine: AsposeEngine) -> None:
        """Version, languages and capabilities are what the contract promises."""
        assert engine.version() == "aspose-ocr-cloud 24.11.0 (API v5.0)"
        assert {"eng", "spa", "deu", "fra", "ita", "por"} <= engine.languages()
        caps = engine.capabilities
        assert (caps.handwriting, caps.native_pdf, caps.network) == (True, True, True)
        assert caps.wants_preprocessing is False
        assert engine.check(["eng", "spa"]) == []
        assert "xyz" in engine.check(["xyz"])[0]

    def test_secret_from_secrets_dir(self, tmp_path: Path) -> None:
        """Client id and secret can come from files in the secrets directory."""
        (tmp_path / "aspose__client_id").write_text("cid\n")
        (tmp_path / "aspose__client_secret").write_text(SECRET + "\n")
        settings = load_settings(environ={"OCRWATCH_SECRETS_DIR": str(tmp_path)})
        assert settings.aspose.client_secret is not None
        assert settings.aspose.client_secret.get_secret_value() == SECRET
        assert settings.aspose.client_id == "cid"
        assert SECRET not in repr(settings)
        assert SECRET not in json.dumps(settings.masked())

    def test_retry_after_parsing(self) -> None:
        """Retry-After in seconds and as an HTTP date both give a wait in seconds."""
        assert retry_after_seconds("7") == 7.0
        assert retry_after_seconds(None) is None
        assert retry_after_seconds("soon") is None
        from datetime import UTC, datetime

        now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
        assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0


class TestRecognize:
    """Happy paths: what is sent and what comes back."""

    def test_printed_english(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """A printed page comes back as its lines; the request carries the spec's settings."""
        result = engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        assert words(result.text) == LINES
        assert result.engine == "aspose"
        assert (result.width, result.height) == page.size
        assert all(line.confidence is None for line in result.lines)
        assert result.confidence is None
        sub = emu.submissions[-1]
        assert sub.resource == "RecognizeImage"
        assert sub.settings["language"] == "English"
        assert sub.settings["resultType"] == "Text"
        assert sub.settings["makeSkewCorrect"] is True
        assert Image.open(io.BytesIO(sub.data)).format == "PNG"
        assert emu.count("POST", "token") == 1

    def test_spanish_is_sent_as_spanish(self, engine: AsposeEngine, emu: AsposeEmulator) -> None:
        """Language code spa reaches the server as Spanish and is read as Spanish."""
        img = render_lines(["Mañana iré al médico"])
        result = engine.recognize(img, languages=["spa"], mode=Mode.PRINTED)
        assert emu.submissions[-1].settings["language"] == "Spanish"
        assert "Mañana" in result.text

    def test_handwritten_sends_hwt_eng(
        self,
        engine: AsposeEngine,
        emu: AsposeEmulator,
        captured_logs: io.StringIO,
    ) -> None:
        """Handwritten mode sends HWT_ENG, for Spanish too (with a warning logged once)."""
        small = render_lines(["jumps over"])
        result = engine.recognize(small, languages=["spa"], mode=Mode.HANDWRITTEN)
        engine.recognize(small, languages=["spa"], mode=Mode.HANDWRITTEN)
        assert [s.settings["language"] for s in emu.submissions] == ["HWT_ENG", "HWT_ENG"]
        assert words(result.text) == ["jumps over"]
        assert captured_logs.getvalue().count("aspose.handwriting_english_only") == 1

    def test_unsupported_language(self, engine: AsposeEngine, page: Image.Image) -> None:
        """A language Aspose cannot read is a ConfigError listing the valid ones."""
        with pytest.raises(ConfigError, match=r"available: .*eng"):
            engine.recognize(page, languages=["xyz"], mode=Mode.PRINTED)

    def test_pending_polls_then_success(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """N Pending/Processing replies are polled through until Completed."""
        emu.faults.set(pending_polls=4)
        result = engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        assert words(result.text) == LINES
        assert emu.count("GET", "RecognizeImage") == 5

    def test_pdf_goes_through_recognize_pdf(
        self, engine: AsposeEngine, emu: AsposeEmulator
    ) -> None:
        """A PDF is sent whole to RecognizePdf; form feeds split the pages."""
        first, second = render_lines(["First page here"]), render_lines(["Second page here"])
        buf = io.BytesIO()
        first.save(buf, format="PDF", save_all=True, append_images=[second], resolution=100)
        pages = engine.recognize_pdf(buf.getvalue(), languages=["eng"], mode=Mode.PRINTED)
        assert [words(p.text) for p in pages] == [["First page here"], ["Second page here"]]
        assert emu.count("POST", "RecognizePdf") == 1
        assert emu.count("POST", "RecognizeImage") == 0
        assert emu.submissions[-1].data.startswith(b"%PDF")

    def test_pdf_without_form_feeds_is_one_page(self, local_engines: EngineCache) -> None:
        """A reply without form feeds comes back as one PageResult for the document."""
        with AsposeEmulator(engines=local_engines, page_separator="\n") as emu:
            eng = AsposeEngine.from_settings(make_settings(emu))
            try:
                first, second = render_lines(["Alpha"]), render_lines(["Omega"])
                buf = io.BytesIO()
                first.save(buf, format="PDF", save_all=True, append_images=[second])
                pages = eng.recognize_pdf(buf.getvalue(), languages=["eng"], mode=Mode.PRINTED)
            finally:
                eng.close()
        assert len(pages) == 1
        assert words(pages[0].text) == ["Alpha", "Omega"]

    def test_pipeline_sends_pdfs_whole(self, emu: AsposeEmulator, tmp_path: Path) -> None:
        """Through the pipeline, a PDF reaches RecognizePdf once, not page by page."""
        pdf = tmp_path / "scan.pdf"
        render_lines(LINES).save(pdf, format="PDF", resolution=100)
        settings = make_settings(emu)
        engines = EngineCache(settings)
        try:
            doc = pipeline.recognize_file(pdf, settings=settings, engines=engines)
        finally:
            engines.close()
        assert words(doc.text) == LINES
        assert emu.count("POST", "RecognizePdf") == 1
        assert emu.count("POST", "RecognizeImage") == 0


class TestTransientFaults:
    """Failures worth retrying raise TransientEngineError; retries then succeed."""

    @pytest.mark.parametrize(
        ("fault", "cls", "hint"),
        [
            (Fault.RATE_LIMIT, AsposeRateLimited, 2.0),
            (Fault.RATE_LIMIT_BARE, AsposeRateLimited, None),
            (Fault.UNAVAILABLE, AsposeUnavailable, 2.0),
            (Fault.UNAVAILABLE_BARE, AsposeUnavailable, None),
            (Fault.SERVER_ERROR, AsposeUnavailable, None),
        ],
    )
    def test_http_faults_carry_the_wait_hint(
        self,
        engine: AsposeEngine,
        emu: AsposeEmulator,
        page: Image.Image,
        fault: Fault,
        cls: type[TransientEngineError],
        hint: float | None,
    ) -> None:
        """429/503/500 are transient; Retry-After becomes ``retry_after``; a retry succeeds."""
        emu.faults.set(retry_after=2)
        emu.faults.inject(fault, endpoint=Endpoint.SUBMIT)
        with pytest.raises(cls) as info:
            engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        assert info.value.retry_after == hint
        result = engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        assert words(result.text) == LINES

    @pytest.mark.parametrize(
        ("fault", "endpoint"),
        [
            (Fault.RATE_LIMIT, Endpoint.SUBMIT),
            (Fault.RATE_LIMIT_BARE, Endpoint.SUBMIT),
            (Fault.UNAVAILABLE, Endpoint.SUBMIT),
            (Fault.UNAVAILABLE_BARE, Endpoint.TOKEN),
            (Fault.SERVER_ERROR, Endpoint.TOKEN),
            (Fault.DROP, Endpoint.SUBMIT),
            (Fault.DROP, Endpoint.TOKEN),
            (Fault.MALFORMED_JSON, Endpoint.TOKEN),
            (Fault.MALFORMED_JSON, Endpoint.SUBMIT),
        ],
    )
    def test_pipeline_retry_recovers(
        self, emu: AsposeEmulator, tmp_path: Path, fault: Fault, endpoint: Endpoint
    ) -> None:
        """The pipeline's retry turns one transient fault into a correct result, 2 attempts."""
        src = save(render_lines(LINES), tmp_path / "scan.png")
        emu.faults.inject(fault, endpoint=endpoint)
        settings = make_settings(emu)
        engines = EngineCache(settings)
        try:
            with stamina.set_testing(True, attempts=3):
                doc = pipeline.recognize_file(src, settings=settings, engines=engines)
        finally:
            engines.close()
        assert words(doc.text) == LINES
        assert doc.attempts == 2

    def test_dropped_connection_is_transient(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """A connection closed without a reply is transient (no urllib3 retry behind it)."""
        emu.faults.inject(Fault.DROP, endpoint=Endpoint.SUBMIT)
        with pytest.raises(TransientEngineError, match="POST RecognizeImage"):
            engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        assert emu.count("POST", "RecognizeImage") == 1

    def test_malformed_json_is_transient(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """A 200 reply with broken JSON is transient."""
        emu.faults.inject(Fault.MALFORMED_JSON, endpoint=Endpoint.TOKEN)
        with pytest.raises(TransientEngineError, match="malformed"):
            engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)

    def test_failed_polls_are_polled_through(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """Garbled or refused polls do not abandon the task (no second, paid submission)."""
        for fault in (Fault.MALFORMED_JSON, Fault.BAD_ENUM, Fault.UNAVAILABLE, Fault.DROP):
            emu.faults.inject(fault, endpoint=Endpoint.FETCH)
        result = engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        assert words(result.text) == LINES
        assert emu.count("POST", "RecognizeImage") == 1
        assert emu.count("GET", "RecognizeImage") == 5

    def test_deadline_cancels_the_task(self, emu: AsposeEmulator, page: Image.Image) -> None:
        """A task still pending at the deadline is cancelled (DELETE) and is transient."""
        emu.faults.set(pending_polls=10**6)
        eng = AsposeEngine.from_settings(make_settings(emu, task_deadline=0.3, poll_interval=0.02))
        try:
            with pytest.raises(TransientEngineError, match="cancelled"):
                eng.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        finally:
            eng.close()
        assert emu.count("DELETE", "RecognizeImage") == 1
        assert emu.cancelled == [emu.submissions[-1].task_id]

    def test_garbled_polls_until_deadline(self, emu: AsposeEmulator, page: Image.Image) -> None:
        """Replies the SDK cannot parse until the deadline end transient, task cancelled."""
        emu.faults.inject(Fault.BAD_ENUM, endpoint=Endpoint.FETCH, times=10**6)
        eng = AsposeEngine.from_settings(make_settings(emu, task_deadline=0.3, poll_interval=0.02))
        try:
            with pytest.raises(TransientEngineError):
                eng.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        finally:
            eng.close()
        assert emu.count("DELETE", "RecognizeImage") == 1

    def test_slow_reply_times_out(self, emu: AsposeEmulator, page: Image.Image) -> None:
        """A reply slower than request_timeout is a transient timeout."""
        eng = AsposeEngine.from_settings(make_settings(emu, request_timeout=0.2))
        emu.faults.set(delay=1.0)
        try:
            with pytest.raises(TransientEngineError, match=r"[Tt]imeout|timed out"):
                eng.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        finally:
            eng.close()

    def test_connection_refused(self, page: Image.Image) -> None:
        """Nobody listening is transient."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = load_settings(
            overrides={
                "aspose": {
                    "base_url": f"http://127.0.0.1:{port}",
                    "client_id": "x",
                    "client_secret": SECRET,
                }
            }
        )
        eng = AsposeEngine.from_settings(settings)
        try:
            with pytest.raises(TransientEngineError, match="cannot reach"):
                eng.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        finally:
            eng.close()

    def test_random_failures_with_retries(self, emu: AsposeEmulator, tmp_path: Path) -> None:
        """At a 30% mixed failure rate, retried documents all come out right."""
        emu.faults.set(fail_rate=0.3, seed=7)
        settings = make_settings(emu)
        engines = EngineCache(settings)
        try:
            with stamina.set_testing(True, attempts=25):
                for i in range(3):
                    src = save(render_lines(LINES), tmp_path / f"scan{i}.png")
                    doc = pipeline.recognize_file(src, settings=settings, engines=engines)
                    assert words(doc.text) == LINES
        finally:
            engines.close()
        assert sum(emu.counts.values()) > 3 * 3


class TestTokens:
    """Token fetching, renewal and refresh on 401."""

    def test_token_rejected_mid_run_is_refreshed(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """A token the server stops accepting is replaced once and the task finishes."""
        emu.faults.set(token_max_calls=2, pending_polls=2)
        result = engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        assert words(result.text) == LINES
        assert emu.count("POST", "token") == 2

    def test_token_ttl_expiry(self, emu: AsposeEmulator, page: Image.Image) -> None:
        """A token that expires by time on the server is refreshed on the 401."""
        # Generous against a loaded CI machine: a fresh token must survive until its first use.
        emu.faults.set(token_ttl=0.6, pending_polls=4)
        eng = AsposeEngine.from_settings(make_settings(emu, poll_interval=0.25))
        try:
            result = eng.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        finally:
            eng.close()
        assert words(result.text) == LINES
        assert emu.count("POST", "token") >= 2

    def test_renewed_before_expiry(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """A token past expires_in (minus the margin) is renewed before the call, no 401."""
        emu.faults.set(expires_in=0)
        engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        api_calls = emu.count("POST", "RecognizeImage") + emu.count("GET", "RecognizeImage")
        assert emu.count("POST", "token") == api_calls

    def test_bad_credentials_are_permanent(self, emu: AsposeEmulator, page: Image.Image) -> None:
        """invalid_client at the token endpoint is permanent and says what to check."""
        settings = make_settings(emu, client_secret="wrong-secret-123")
        eng = AsposeEngine.from_settings(settings)
        try:
            with pytest.raises(PermanentEngineError, match="client_secret") as info:
                eng.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        finally:
            eng.close()
        assert "wrong-secret-123" not in str(info.value)

    @pytest.mark.parametrize("fault", [Fault.UNAUTHORIZED, Fault.FORBIDDEN])
    def test_rejected_after_refresh_is_permanent(
        self,
        engine: AsposeEngine,
        emu: AsposeEmulator,
        page: Image.Image,
        fault: Fault,
        captured_logs: io.StringIO,
    ) -> None:
        """401/403 twice (before and after one refresh) is permanent, secret-free."""
        emu.faults.inject(fault, endpoint=Endpoint.SUBMIT, times=2)
        with pytest.raises(PermanentEngineError, match="credentials rejected") as info:
            engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        assert emu.count("POST", "token") == 2
        assert emu.count("POST", "RecognizeImage") == 2
        text = str(info.value) + repr(info.value) + captured_logs.getvalue()
        for secret in [SECRET, *emu.tokens]:
            assert secret not in text


class TestPermanentFaults:
    """Failures that retrying cannot fix raise PermanentEngineError."""

    def test_task_error_carries_the_server_message(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """A task that ends in Error is permanent, with the server's messages."""
        emu.faults.set(task_error="image is too dark to read")
        with pytest.raises(PermanentEngineError, match="image is too dark to read"):
            engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)

    def test_bad_request_is_permanent(
        self, engine: AsposeEngine, emu: AsposeEmulator, page: Image.Image
    ) -> None:
        """400 is permanent and not retried by the pipeline."""
        emu.faults.inject(Fault.BAD_REQUEST, endpoint=Endpoint.SUBMIT)
        with pytest.raises(PermanentEngineError, match="HTTP 400"):
            engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)

    def test_pipeline_does_not_retry_permanent(self, emu: AsposeEmulator, tmp_path: Path) -> None:
        """Through the pipeline a 400 is raised at once, one submission only."""
        src = save(render_lines(LINES), tmp_path / "scan.png")
        emu.faults.inject(Fault.BAD_REQUEST, endpoint=Endpoint.SUBMIT, times=5)
        settings = make_settings(emu)
        engines = EngineCache(settings)
        try:
            with stamina.set_testing(True, attempts=5), pytest.raises(PermanentEngineError):
                pipeline.recognize_file(src, settings=settings, engines=engines)
        finally:
            engines.close()
        assert emu.count("POST", "RecognizeImage") == 1


class TestSecrets:
    """The client secret and tokens never show in logs, errors or reprs."""

    def test_nothing_leaks(
        self, emu: AsposeEmulator, page: Image.Image, captured_logs: io.StringIO
    ) -> None:
        """A run with refreshes and failures logs and raises nothing secret."""
        settings = make_settings(emu)
        eng = AsposeEngine.from_settings(settings)
        errors: list[str] = []
        try:
            emu.faults.set(token_max_calls=1, pending_polls=1)
            eng.recognize(page, languages=["eng"], mode=Mode.PRINTED)
            for fault in (Fault.UNAUTHORIZED, Fault.SERVER_ERROR, Fault.RATE_LIMIT):
                emu.faults.inject(fault, endpoint=Endpoint.SUBMIT, times=2)
                try:
                    eng.recognize(page, languages=["eng"], mode=Mode.PRINTED)
                except (TransientEngineError, PermanentEngineError) as exc:
                    errors.append(f"{exc} {exc!r} {exc.__cause__!r}")
        finally:
            eng.close()
        assert len(errors) == 3
        everything = (
            captured_logs.getvalue()
            + "".join(errors)
            + repr(settings)
            + repr(eng)
            + json.dumps(settings.masked())
        )
        assert len(emu.tokens) >= 2
        for secret in [SECRET, *emu.tokens]:
            assert secret not in everything
        assert base64.b64encode(SECRET.encode()).decode() not in everything
