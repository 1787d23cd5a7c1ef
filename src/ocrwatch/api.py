"""The tutorial's API: ``OcrEngine``, ``RecognitionMode``, ``Language`` over ocrwatch's pipeline.

The tutorial this product grew from was written against ``import asposeocrcloud as ocr``,
an API that exists in no real package. This facade gives that script a home::

    import ocrwatch as ocr

    engine = ocr.OcrEngine(client_id="...", client_secret="...")  # Aspose OCR Cloud
    engine = ocr.OcrEngine()                                      # or local engines
    engine.load_image("note.jpg")
    engine.set_recognition_mode(ocr.RecognitionMode.HANDWRITTEN)
    engine.set_language(ocr.Language.SPANISH)
    print(engine.recognize().text)

Recognition goes through :func:`ocrwatch.recognition.pipeline.recognize_file`, the same path as
``ocrwatch ocr`` and the daemon (loading, preprocessing, engine choice, retries). Settings
come from :func:`ocrwatch.settings.model.load_settings`, so ``OCRWATCH_*`` variables, the TOML file
and the secrets directory still apply; what the methods set wins. Every error raised is an
:class:`ocrwatch.exceptions.OcrException` (``OcrwatchError``) subclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch.engines import EngineCache, PageResult
from ocrwatch.exceptions import ConfigError, InputError
from ocrwatch.settings.choices import Mode
from ocrwatch.settings.model import Settings, load_settings

if TYPE_CHECKING:
    from ocrwatch.recognition.pipeline import DocumentResult

log = structlog.get_logger()

__all__ = ["Language", "OcrEngine", "RecognitionMode", "RecognitionResult"]


class RecognitionMode(StrEnum):
    """What kind of writing to expect (the tutorial's ``RecognitionMode``)."""

    PRINTED = "printed"
    HANDWRITTEN = "handwritten"
    AUTO = "auto"


class Language(StrEnum):
    """Languages by name; values are the Tesseract-style codes ocrwatch uses."""

    ENGLISH = "eng"
    SPANISH = "spa"
    GERMAN = "deu"
    FRENCH = "fra"
    ITALIAN = "ita"
    PORTUGUESE = "por"


@dataclass(frozen=True)
class RecognitionResult:
    """What :meth:`OcrEngine.recognize` returns."""

    #: The text: line breaks kept, pages separated by a form feed, final newline.
    text: str
    #: Each page's lines (with per-line confidence) in reading order.
    pages: tuple[PageResult, ...]
    #: Mean page confidence (0..1), or None when nothing was read.
    confidence: float | None
    #: The pipeline's full result (source sha256, engines and versions, timings, attempts).
    document: DocumentResult


class OcrEngine:
    """Recognize one image or PDF at a time, tutorial style.

    With ``client_id`` and ``client_secret`` the ``aspose`` engine (Aspose OCR Cloud) reads
    every page; ``base_url`` points it elsewhere (e.g. the local emulator). Without them the
    local engines are used as the settings say (Tesseract for print, PP-OCR for handwriting).

    Offline by default: when Aspose cannot be reached at all (no DNS, connection refused:
    a machine without internet), the first ``recognize()`` logs one warning and reads with
    the local engines instead; ``fallback_to_local=False`` raises the error instead. Rejected
    credentials or a server that answers with errors are never papered over.
    Raises ConfigError for an invalid setting (from the environment or config file too).
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        base_url: str | None = None,
        config_file: Path | str | None = None,
        fallback_to_local: bool = True,
    ) -> None:
        if not structlog.is_configured():
            # A library must not chatter on stdout (where the script prints its text).
            from ocrwatch.support.logsetup import configure

            configure(level="warning")
        self._config_file = None if config_file is None else Path(config_file)
        self._overrides: dict[str, Any] = {}
        if client_id is not None or client_secret is not None:
            aspose: dict[str, Any] = {"client_id": client_id, "client_secret": client_secret}
            if base_url is not None:
                aspose["base_url"] = base_url
            self._overrides["engine"] = "aspose"
            self._overrides["aspose"] = {k: v for k, v in aspose.items() if v is not None}
        elif base_url is not None:
            self._overrides["aspose"] = {"base_url": base_url}
        self._fallback_to_local = fallback_to_local
        self._cloud_checked = False
        self._path: Path | None = None
        self._engines: EngineCache | None = None
        self._engines_key: str | None = None
        # Fail now, not at the first recognize(), on a bad environment or config file.
        settings = self.settings()
        if settings.engine == "aspose" and not (
            settings.aspose.client_id and settings.aspose.client_secret
        ):
            raise ConfigError(
                "Aspose OCR Cloud needs both client_id and client_secret "
                "(or OCRWATCH_ASPOSE__CLIENT_ID / OCRWATCH_ASPOSE__CLIENT_SECRET)"
            )

    def __repr__(self) -> str:
        engine = self._overrides.get("engine", "local")
        return f"OcrEngine(engine={engine!r}, image={self._path!s})"

    def settings(self) -> Settings:
        """Return the effective settings (env < file < what this object was told)."""
        return load_settings(config_file=self._config_file, overrides=self._overrides)

    def load_image(self, path: Path | str) -> None:
        """Choose the image or PDF to read; it is validated (decoded) now and never modified.

        Raises InputError subclasses for a file that cannot be read as an image or PDF.
        """
        p = Path(path)
        from ocrwatch.recognition import documents

        try:
            documents.probe(p, settings=self.settings())
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror or exc}", path=p) from exc
        self._path = p

    def set_recognition_mode(self, mode: RecognitionMode | str) -> None:
        """Expect printed text, handwriting, or decide per page (``AUTO``)."""
        self._overrides["mode"] = Mode(RecognitionMode(mode).value)

    def set_language(self, *languages: Language | str) -> None:
        """Set the language(s) of the text, e.g. ``Language.SPANISH`` (or codes: ``"spa"``)."""
        if not languages:
            raise ValueError("set_language needs at least one language")
        self._overrides["languages"] = [str(lang) for lang in languages]

    def recognize(self) -> RecognitionResult:
        """Recognize the loaded file; return its text, pages and confidence.

        Raises InputError (no file loaded, unreadable file), ConfigError (language the engine
        cannot read, bad settings), DependencyError, or EngineError subclasses after the
        retry policy gave up on transient failures.
        """
        if self._path is None:
            raise InputError("no image loaded: call load_image(path) first")
        from ocrwatch.recognition import pipeline

        settings = self.settings()
        if settings.engine == "aspose" and not self._cloud_checked:
            settings = self._check_cloud(settings)
        try:
            doc = pipeline.recognize_file(
                self._path, settings=settings, engines=self._cache(settings)
            )
        except OSError as exc:
            raise InputError(
                f"cannot read the file: {exc.strerror or exc}", path=self._path
            ) from exc
        return RecognitionResult(
            text=doc.text,
            pages=tuple(record.result for record in doc.pages),
            confidence=doc.confidence,
            document=doc,
        )

    def _check_cloud(self, settings: Settings) -> Settings:
        """Reach Aspose once; on a machine where it cannot be reached, go local (see class)."""
        engine = self._cache(settings).get("aspose")  # DependencyError names the extra
        from ocrwatch.engines.aspose import AsposeUnreachable

        try:
            engine.connect()  # type: ignore[attr-defined]
        except AsposeUnreachable as exc:
            if not self._fallback_to_local:
                raise
            log.warning(
                "api.cloud_unreachable",
                error=exc.message,
                detail="Aspose OCR Cloud cannot be reached; recognizing with the local engines",
            )
            self._overrides["engine"] = None
            self._overrides.pop("aspose", None)
            settings = self.settings()
        self._cloud_checked = True
        return settings

    def close(self) -> None:
        """Release the engines (connections, models). Safe to call twice."""
        if self._engines is not None:
            self._engines.close()
            self._engines = None
            self._engines_key = None

    def __enter__(self) -> OcrEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _cache(self, settings: Settings) -> EngineCache:
        # Engines are built from the settings: rebuild them only when the settings change
        # (a new language or mode is passed per call and needs no rebuild).
        key = settings.model_dump_json(exclude={"mode", "languages"})
        if self._engines is None or key != self._engines_key:
            self.close()
            self._engines = EngineCache(settings)
            self._engines_key = key
        return self._engines
