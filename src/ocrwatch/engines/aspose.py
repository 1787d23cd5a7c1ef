"""The optional ``aspose`` engine: Aspose OCR Cloud v5.0 adapted to the engine contract.

The wire (token, tasks, retries, error mapping, secrets) is :mod:`aspose_session`'s; this
module maps languages and modes onto Aspose's settings and turns its text into pages.

Decisions: Aspose takes one language per task, so the first of ``languages`` is sent.
Handwriting exists only as ``HWT_ENG``: handwritten mode with another language still sends
it and logs ``aspose.handwriting_english_only`` once per language. ``auto`` is read as
printed (HWT_ENG on print would mangle every non-English page). Aspose reports no
confidence, so every line's confidence is None.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

# Import from the defining modules: the SDK's package __init__ re-exports implicitly.
from aspose_ocr_cloud.models.dsr_mode import DsrMode
from aspose_ocr_cloud.models.language import Language as AsposeLanguage
from aspose_ocr_cloud.models.ocr_recognize_image_body import OCRRecognizeImageBody
from aspose_ocr_cloud.models.ocr_recognize_pdf_body import OCRRecognizePdfBody
from aspose_ocr_cloud.models.ocr_settings_recognize_image import OCRSettingsRecognizeImage
from aspose_ocr_cloud.models.ocr_settings_recognize_pdf import OCRSettingsRecognizePdf
from aspose_ocr_cloud.models.result_type import ResultType

from ocrwatch.engines.aspose_session import (
    AsposeRateLimited,
    AsposeSession,
    AsposeUnavailable,
    AsposeUnreachable,
    retry_after_seconds,
)
from ocrwatch.engines.base import Capabilities, Engine, EngineContext, Line, PageResult
from ocrwatch.exceptions import ConfigError
from ocrwatch.settings.choices import Mode
from ocrwatch.settings.sections import AsposeSettings

if TYPE_CHECKING:
    from PIL import Image
    from pydantic import BaseModel

__all__ = [
    "LANGUAGES",
    "AsposeEngine",
    "AsposeRateLimited",
    "AsposeUnavailable",
    "AsposeUnreachable",
    "retry_after_seconds",
]

log = structlog.get_logger()

#: Tesseract-style codes we map onto Aspose's language names.
LANGUAGES: Mapping[str, AsposeLanguage] = {
    "eng": AsposeLanguage.ENGLISH,
    "spa": AsposeLanguage.SPANISH,
    "deu": AsposeLanguage.GERMAN,
    "fra": AsposeLanguage.FRENCH,
    "ita": AsposeLanguage.ITALIAN,
    "por": AsposeLanguage.PORTUGUESE,
    "nld": AsposeLanguage.DUTCH,
    "cat": AsposeLanguage.CATALAN,
    "glg": AsposeLanguage.GALICIAN,
    "pol": AsposeLanguage.POLISH,
    "ces": AsposeLanguage.CZECH,
    "slk": AsposeLanguage.SLOVAK,
    "slv": AsposeLanguage.SLOVENE,
    "hrv": AsposeLanguage.CROATIAN,
    "ron": AsposeLanguage.ROMANIAN,
    "hun": AsposeLanguage.HUNGARIAN,
    "dan": AsposeLanguage.DANISH,
    "nor": AsposeLanguage.NORWEGIAN,
    "swe": AsposeLanguage.SWEDISH,
    "fin": AsposeLanguage.FINNISH,
    "est": AsposeLanguage.ESTONIAN,
    "lav": AsposeLanguage.LATVIAN,
    "lit": AsposeLanguage.LITHUANIAN,
    "lat": AsposeLanguage.LATIN,
    "tur": AsposeLanguage.TURKISH,
    "ell": AsposeLanguage.GREEK,
    "rus": AsposeLanguage.RUSSIAN,
    "ukr": AsposeLanguage.UKRAINAN,
    "bul": AsposeLanguage.BULGARIAN,
}

#: Line confidence given to Aspose's text: the API reports none (see the module docstring).


def _sdk_version() -> str:
    try:
        return dist_version("aspose-ocr-cloud")
    except PackageNotFoundError:  # pragma: no cover - the SDK is imported above
        return "unknown"


class AsposeEngine(Engine):
    """Aspose OCR Cloud v5.0: printed text in many languages, handwritten English (HWT_ENG)."""

    name: ClassVar[str] = "aspose"
    capabilities: ClassVar[Capabilities] = Capabilities(
        handwriting=True, native_pdf=True, network=True, wants_preprocessing=False
    )

    settings_model: ClassVar[type[BaseModel]] = AsposeSettings

    def __init__(self, context: EngineContext) -> None:
        super().__init__(context)
        cfg: AsposeSettings = context.section
        missing = [
            var
            for var, value in (
                ("OCRWATCH_ASPOSE__CLIENT_ID", cfg.client_id),
                ("OCRWATCH_ASPOSE__CLIENT_SECRET", cfg.client_secret),
            )
            if not value or (hasattr(value, "get_secret_value") and not value.get_secret_value())
        ]
        if missing:
            raise ConfigError(
                "the aspose engine needs credentials: set "
                + " and ".join(missing)
                + " (or aspose.client_id / aspose.client_secret in the config file)"
            )
        assert cfg.client_id is not None and cfg.client_secret is not None  # checked above
        self._base_url = cfg.base_url.rstrip("/")
        self._client_id = cfg.client_id
        self._session = AsposeSession(
            base_url=self._base_url,
            client_id=cfg.client_id,
            client_secret=cfg.client_secret,
            timeout=float(cfg.request_timeout),
            poll_interval=float(cfg.poll_interval),
            deadline=float(cfg.task_deadline),
            throttle=context.throttle,
        )
        self._warned_languages: set[str] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"AsposeEngine(base_url={self._base_url!r}, client_id={self._client_id!r})"

    # --- contract ------------------------------------------------------------------------

    def version(self) -> str:
        """Return ``aspose-ocr-cloud <sdk version> (API v5.0)``."""
        return f"aspose-ocr-cloud {_sdk_version()} (API v5.0)"

    def languages(self) -> frozenset[str]:
        """Return the language codes mapped onto Aspose's languages."""
        return frozenset(LANGUAGES)

    def recognize(self, page: Image.Image, *, languages: Sequence[str], mode: Mode) -> PageResult:
        """Recognize one page image through RecognizeImage; return its lines.

        Raises ConfigError (unsupported language), TransientEngineError (and its
        AsposeUnavailable / AsposeRateLimited subclasses) or PermanentEngineError.
        """
        language = self._language(languages, mode)
        settings = OCRSettingsRecognizeImage.model_validate(self._settings_for(language, mode))
        body = OCRRecognizeImageBody(image=_png_base64(page), settings=settings)
        text = self._session.run_task(
            "RecognizeImage",
            submit=lambda auth: self._session.images.post_recognize_image(
                body, _request_timeout=self._session.timeout, _request_auth=auth
            ),
            fetch=lambda task_id, auth: self._session.images.get_recognize_image(
                task_id, _request_timeout=self._session.timeout, _request_auth=auth
            ),
            cancel=lambda task_id, auth: self._session.images.cancel_recognize_image(
                task_id, _request_timeout=self._session.timeout, _request_auth=auth
            ),
            language=language,
        )
        width, height = page.size
        # A page is one page: form feeds inside it are not page breaks.
        return PageResult(
            lines=_lines(text.replace("\f", "\n")), engine=self.name, width=width, height=height
        )

    def recognize_pdf(
        self, data: bytes, *, languages: Sequence[str], mode: Mode
    ) -> tuple[PageResult, ...]:
        """Recognize a whole PDF through RecognizePdf; one PageResult per form-feed page.

        Without form feeds in the reply the document comes back as one PageResult.
        Raises like :meth:`recognize`.
        """
        language = self._language(languages, mode)
        settings = OCRSettingsRecognizePdf.model_validate(self._settings_for(language, mode))
        body = OCRRecognizePdfBody(image=base64.b64encode(data).decode("ascii"), settings=settings)
        text = self._session.run_task(
            "RecognizePdf",
            submit=lambda auth: self._session.pdfs.post_recognize_pdf(
                body, _request_timeout=self._session.timeout, _request_auth=auth
            ),
            fetch=lambda task_id, auth: self._session.pdfs.get_recognize_pdf(
                task_id, _request_timeout=self._session.timeout, _request_auth=auth
            ),
            cancel=lambda task_id, auth: self._session.pdfs.cancel_recognize_pdf(
                task_id, _request_timeout=self._session.timeout, _request_auth=auth
            ),
            language=language,
        )
        pages = text.split("\f")
        if len(pages) > 1 and not pages[-1].strip():
            pages.pop()  # a trailing form feed ends the last page, it starts none
        return tuple(PageResult(lines=_lines(p), engine=self.name) for p in pages)

    def close(self) -> None:
        """Drop pooled connections and the token. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._session.close()

    @staticmethod
    def _settings_for(language: AsposeLanguage, mode: Mode) -> dict[str, Any]:
        """Return the task settings (wire names); the server's defaults fill the rest."""
        return {
            "language": language,
            "makeSkewCorrect": True,
            "makeBinarization": False,
            "makeSpellCheck": False,
            # Phone photos of notes are often low in contrast; scans rarely are.
            "makeContrastCorrection": mode is Mode.HANDWRITTEN,
            "makeUpsampling": False,
            "dsrMode": DsrMode.DSRPLUSDETECTOR,
            "resultType": ResultType.TEXT,
        }

    # --- languages -----------------------------------------------------------------------

    def _language(self, languages: Sequence[str], mode: Mode) -> AsposeLanguage:
        codes = list(languages) or ["eng"]
        unknown = [c for c in codes if c not in LANGUAGES]
        if unknown:
            raise ConfigError(
                f"aspose: language(s) {', '.join(unknown)} not available; "
                f"available: {', '.join(sorted(LANGUAGES))}"
            )
        if mode is Mode.HANDWRITTEN:
            if codes[0] != "eng" and codes[0] not in self._warned_languages:
                self._warned_languages.add(codes[0])
                log.warning(
                    "aspose.handwriting_english_only",
                    language=codes[0],
                    sent="HWT_ENG",
                    detail="Aspose reads handwriting in English only",
                )
            return AsposeLanguage.HWT_ENG
        return LANGUAGES[codes[0]]

    def connect(self) -> None:
        """Fetch an access token now (checks reachability and credentials).

        Raises AsposeUnreachable when nothing answers, PermanentEngineError for rejected
        credentials, other TransientEngineErrors for a server that answers badly.
        """
        self._session.connect()


def _png_base64(page: Image.Image) -> str:
    image = page if page.mode in ("1", "L", "LA", "RGB", "RGBA", "P") else page.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _lines(text: str) -> tuple[Line, ...]:
    """Split a page's text into lines; surrounding blank lines go, inner ones stay."""
    rows = [row.rstrip() for row in _LINE_BREAK.split(text)]
    while rows and not rows[0]:
        rows.pop(0)
    while rows and not rows[-1]:
        rows.pop()
    return tuple(Line(text=row, confidence=None) for row in rows)
