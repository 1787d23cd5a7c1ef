"""The optional ``aspose`` engine: Aspose OCR Cloud v5.0 through the official SDK.

Built on ``aspose-ocr-cloud`` 24.11.0 (``import aspose_ocr_cloud``). The SDK only serializes
requests, so this module adds what it lacks (see ``docs/aspose-cloud-v5.md``):

- **Token.** ``POST {base}/connect/token`` (``client_credentials``, urlencoded) through the
  SDK's own REST client, so all HTTP goes through one urllib3 pool. The token is renewed
  ``expires_in`` minus a margin after it was issued, and once more when a call answers 401;
  a second 401/403 means the credentials are wrong (:class:`PermanentEngineError`). Each call
  carries its token with the SDK's ``_request_auth`` (thread-safe, and we know which token
  the server rejected).
- **Tasks.** ``POST`` the base64 PNG (or PDF) and settings, then ``GET ?id=`` every
  ``aspose.poll_interval`` seconds until ``Completed``; after ``aspose.task_deadline``
  seconds the task is cancelled (``DELETE``) and :class:`TransientEngineError` raised. While
  polling, a transient failure of one poll (429, 5xx, dropped connection, garbled reply) is
  logged and polling goes on until the deadline: the task is already paid for on the
  server, and re-submitting it would cost another API call.
- **Timeouts.** Every SDK call gets ``_request_timeout=aspose.request_timeout``.

Retries: urllib3's built-in ``Retry(3)`` is switched off (``Configuration(retries=0)``). It
would otherwise silently repeat GET/DELETE answered 429/503 with ``Retry-After`` and every
connection error, stacked under the pipeline's stamina retry (up to 4 x attempts calls,
unlogged, ignoring our deadline). The pipeline's retry on :class:`TransientEngineError` is
the only retry layer: bounded, with backoff and one log event per retry. The engine itself
only repeats a call once after a token refresh, and polls. Rate limits and 503s raise
:class:`AsposeUnavailable` / :class:`AsposeRateLimited` whose ``retry_after`` carries the
server's ``Retry-After`` hint in seconds for the retry policy to honour.

Error mapping at the boundary (always ``raise ... from exc``):

=====================================================  ==================================
connection refused/reset/dropped, timeouts (urllib3)   TransientEngineError
429 (``retry_after`` from ``Retry-After``)             AsposeRateLimited (transient)
5xx (503 with ``Retry-After`` sets ``retry_after``)    AsposeUnavailable (transient)
unexpected content type (SDK status 0), malformed      TransientEngineError (a garbled
JSON, reply that fails the SDK's pydantic models       reply from a proxy or a hiccup)
task ``Error``                                         PermanentEngineError + server messages
task ``NotExist`` / ``ResultDataLost``                 TransientEngineError (submit again)
400, 404, 413, other 4xx                               PermanentEngineError
401/403 after one token refresh, bad credentials       PermanentEngineError
=====================================================  ==================================

Secrets never leave this module: the client secret is a ``SecretStr``, the token is private,
error messages are built from status, reason and a redacted, shortened body (never from the
SDK exception's ``str()``, which dumps headers and bodies).

Decisions: Aspose takes one language per task, so the first of ``languages`` is sent.
Handwriting exists only as ``HWT_ENG`` (handwritten English): handwritten mode with another
language still sends ``HWT_ENG`` and logs ``aspose.handwriting_english_only`` once per
language. The user asked for handwriting and Aspose has no other handwriting model (whether
it or a printed model reads Spanish cursive better is unmeasured: we cannot reach Aspose).
``auto`` is read as printed: Aspose has no automatic choice, and HWT_ENG on print would
mangle every non-English page. Aspose reports no confidence, so every line's confidence
is None (the manifest then shows ``"confidence": null``).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import io
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pydantic
import structlog
import urllib3

# Import from the defining modules: the SDK's package __init__ re-exports implicitly.
from aspose_ocr_cloud.api.recognize_image_api import RecognizeImageApi
from aspose_ocr_cloud.api.recognize_pdf_api import RecognizePdfApi
from aspose_ocr_cloud.api_client import ApiClient
from aspose_ocr_cloud.configuration import Configuration
from aspose_ocr_cloud.exceptions import ApiException, OpenApiException
from aspose_ocr_cloud.models.dsr_mode import DsrMode
from aspose_ocr_cloud.models.language import Language as AsposeLanguage
from aspose_ocr_cloud.models.ocr_recognize_image_body import OCRRecognizeImageBody
from aspose_ocr_cloud.models.ocr_recognize_pdf_body import OCRRecognizePdfBody
from aspose_ocr_cloud.models.ocr_response import OCRResponse
from aspose_ocr_cloud.models.ocr_settings_recognize_image import OCRSettingsRecognizeImage
from aspose_ocr_cloud.models.ocr_settings_recognize_pdf import OCRSettingsRecognizePdf
from aspose_ocr_cloud.models.ocr_task_status import OCRTaskStatus
from aspose_ocr_cloud.models.response_status_code import ResponseStatusCode
from aspose_ocr_cloud.models.result_type import ResultType

from ocrwatch import ratelimit
from ocrwatch.config import Mode
from ocrwatch.engines.base import Capabilities, Engine, Line, PageResult
from ocrwatch.exceptions import ConfigError, PermanentEngineError, TransientEngineError

if TYPE_CHECKING:
    from PIL import Image

    from ocrwatch.config import Settings

__all__ = [
    "LANGUAGES",
    "AsposeEngine",
    "AsposeRateLimited",
    "AsposeUnavailable",
    "AsposeUnreachable",
    "retry_after_seconds",
]

log = structlog.get_logger()

_T = TypeVar("_T")

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

TOKEN_PATH = "/connect/token"
# Renew this long before the token expires (capped at a tenth of its lifetime).
TOKEN_MARGIN = 60.0
_BODY_SNIPPET = 300


class AsposeUnavailable(TransientEngineError):
    """Aspose answered 5xx or could not be reached; ``retry_after`` is its wait hint (s)."""

    reason = "engine_unavailable"


class AsposeUnreachable(AsposeUnavailable):
    """No answer at all: name resolution, connection refused, TLS or socket failure."""

    reason = "engine_unreachable"


class AsposeRateLimited(AsposeUnavailable):
    """Aspose answered 429 Too Many Requests; ``retry_after`` is its wait hint (s)."""

    reason = "engine_rate_limited"


class _CredentialsRejected(PermanentEngineError):
    """401/403: the caller refreshes the token once before giving up."""


def _sdk_version() -> str:
    try:
        return dist_version("aspose-ocr-cloud")
    except PackageNotFoundError:  # pragma: no cover - the SDK is imported above
        return "unknown"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the wait of a ``Retry-After`` header (seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _Redactor:
    """Removes the client secret, tokens and credentials-looking fragments from text."""

    _PATTERNS = (
        re.compile(r"(?i)(bearer\s+)[^\s'\",}]+"),
        re.compile(r"(?i)(\"?access_token\"?\s*[:=]\s*\"?)[^\"&\s,}]+"),
        re.compile(r"(?i)(client_secret\"?\s*[:=]\s*\"?)[^\"&\s,}]+"),
    )

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        for pattern in self._PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text


class AsposeEngine(Engine):
    """Aspose OCR Cloud v5.0: printed text in many languages, handwritten English (HWT_ENG)."""

    name: ClassVar[str] = "aspose"
    capabilities: ClassVar[Capabilities] = Capabilities(
        handwriting=True, native_pdf=True, network=True, wants_preprocessing=False
    )

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        cfg = settings.aspose
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
        self._client_secret = cfg.client_secret
        self._timeout = float(cfg.request_timeout)
        self._poll_interval = float(cfg.poll_interval)
        self._deadline = float(cfg.task_deadline)
        self._redact = _Redactor()
        self._redact.add(self._client_secret.get_secret_value())

        # retries=0: the pipeline's retry policy is the only retry layer (module docstring).
        configuration = Configuration(host=self._base_url, retries=0)
        self._client = ApiClient(configuration)
        self._images = RecognizeImageApi(self._client)
        self._pdfs = RecognizePdfApi(self._client)

        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._warned_languages: set[str] = set()
        self._closed = False
        self._throttle = ratelimit.for_aspose(settings)

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
        text = self._run_task(
            "RecognizeImage",
            submit=lambda auth: self._images.post_recognize_image(
                body, _request_timeout=self._timeout, _request_auth=auth
            ),
            fetch=lambda task_id, auth: self._images.get_recognize_image(
                task_id, _request_timeout=self._timeout, _request_auth=auth
            ),
            cancel=lambda task_id, auth: self._images.cancel_recognize_image(
                task_id, _request_timeout=self._timeout, _request_auth=auth
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
        text = self._run_task(
            "RecognizePdf",
            submit=lambda auth: self._pdfs.post_recognize_pdf(
                body, _request_timeout=self._timeout, _request_auth=auth
            ),
            fetch=lambda task_id, auth: self._pdfs.get_recognize_pdf(
                task_id, _request_timeout=self._timeout, _request_auth=auth
            ),
            cancel=lambda task_id, auth: self._pdfs.cancel_recognize_pdf(
                task_id, _request_timeout=self._timeout, _request_auth=auth
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
        self._client.rest_client.pool_manager.clear()
        with self._token_lock:
            self._token = None

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

    # --- token -------------------------------------------------------------------------

    def connect(self) -> None:
        """Fetch an access token now (checks reachability and credentials).

        Raises AsposeUnreachable when nothing answers, PermanentEngineError for rejected
        credentials, other TransientEngineErrors for a server that answers badly.
        """
        self._auth()

    def _auth(self, *, rejected: str | None = None) -> dict[str, Any]:
        """Return the SDK's per-call auth setting, fetching a token when due."""
        with self._token_lock:
            stale = self._token is None or time.monotonic() >= self._token_renew_at
            if stale or (rejected is not None and rejected == self._token):
                self._token = self._fetch_token()
            token = self._token
        return {
            "type": "oauth2",
            "in": "header",
            "key": "Authorization",
            "value": f"Bearer {token}",
        }

    def _fetch_token(self) -> str:
        url = self._base_url + TOKEN_PATH
        fields = [
            ("grant_type", "client_credentials"),
            ("client_id", self._client_id),
            ("client_secret", self._client_secret.get_secret_value()),
        ]
        try:
            resp = self._client.rest_client.request(  # type: ignore[no-untyped-call]
                "POST",
                url,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                post_params=fields,
                _request_timeout=self._timeout,
            )
            raw = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise AsposeUnreachable(
                f"aspose: cannot reach {url}: {self._redact(type(exc).__name__ + ': ' + str(exc))}"
            ) from exc
        except ApiException as exc:
            raise TransientEngineError(
                f"aspose: token request failed: {self._describe(exc)}"
            ) from exc
        status = int(resp.status)
        if status in (400, 401, 403):
            log.error("aspose.token_rejected", status=status)
            raise PermanentEngineError(
                f"aspose: credentials rejected (HTTP {status} from {TOKEN_PATH}); "
                "check aspose.client_id / client_secret"
            )
        if status != 200:
            raise self._status_error(status, resp.getheader("Retry-After"), raw, where=TOKEN_PATH)
        try:
            payload = json.loads(raw.decode("utf-8"))
            token = str(payload["access_token"])
            expires_in = float(payload.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TransientEngineError(
                f"aspose: malformed token reply from {TOKEN_PATH}: {self._snippet(raw)}"
            ) from exc
        if not token:
            raise TransientEngineError(f"aspose: empty access token from {TOKEN_PATH}")
        self._redact.add(token)
        margin = min(TOKEN_MARGIN, expires_in / 10)
        self._token_renew_at = time.monotonic() + max(0.0, expires_in - margin)
        log.info("aspose.token_fetched", expires_in=expires_in)
        return token

    # --- calls and tasks ---------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[dict[str, Any]], _T]) -> _T:
        """Run one SDK call with a token; refresh the token once on 401/403."""
        auth = self._auth()
        try:
            return self._mapped(what, lambda: fn(auth))
        except _CredentialsRejected:
            log.info("aspose.token_refresh_on_401", call=what)
            auth = self._auth(rejected=auth["value"].removeprefix("Bearer "))
        try:
            return self._mapped(what, lambda: fn(auth))
        except _CredentialsRejected as exc:
            raise PermanentEngineError(
                "aspose: credentials rejected; check aspose.client_id / client_secret "
                f"({exc.message})"
            ) from exc

    def _mapped(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` and translate SDK, urllib3 and pydantic failures into our tree."""
        if self._throttle is not None:
            self._throttle.wait()  # the account's quota, shared with every other worker
        try:
            return fn()
        except ApiException as exc:
            status = int(exc.status or 0)
            headers = exc.headers or {}
            if status in (401, 403):
                raise _CredentialsRejected(
                    f"HTTP {status} on {what}: {self._describe(exc)}"
                ) from exc
            if status == 0:
                raise TransientEngineError(
                    f"aspose: unreadable reply to {what}: {self._describe(exc)}"
                ) from exc
            body = exc.body if isinstance(exc.body, str) else ""
            raise self._status_error(
                status, _header(headers, "Retry-After"), body.encode(), where=what
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientEngineError(
                f"aspose: {what} failed: {self._redact(type(exc).__name__ + ': ' + str(exc))}"
            ) from exc
        except (pydantic.ValidationError, ValueError) as exc:
            # A 200 body the SDK cannot parse (malformed JSON, unknown enum): a garbled
            # reply from a proxy or a hiccup; a real API change shows up as exhausted retries.
            raise TransientEngineError(
                f"aspose: malformed reply to {what}: {self._redact(_first_line(exc))}"
            ) from exc
        except OpenApiException as exc:
            raise PermanentEngineError(
                f"aspose: request for {what} rejected by the SDK: {self._redact(_first_line(exc))}"
            ) from exc

    def _status_error(
        self, status: int, retry_after: str | None, body: bytes, *, where: str
    ) -> TransientEngineError | PermanentEngineError:
        """Return the error for a non-2xx reply (429/408/5xx transient, other 4xx not)."""
        wait = retry_after_seconds(retry_after)
        detail = f"HTTP {status} from {where}: {self._snippet(body)}"
        if status == 429:
            return AsposeRateLimited(f"aspose: rate limited ({detail})", retry_after=wait)
        if status == 408 or 500 <= status <= 599:
            return AsposeUnavailable(f"aspose: server unavailable ({detail})", retry_after=wait)
        return PermanentEngineError(f"aspose: request rejected ({detail})")

    def _run_task(
        self,
        resource: str,
        *,
        submit: Callable[[dict[str, Any]], str],
        fetch: Callable[[str, dict[str, Any]], OCRResponse],
        cancel: Callable[[str, dict[str, Any]], None],
        language: AsposeLanguage,
    ) -> str:
        """Submit a task, poll it until Completed or the deadline; return its text."""
        started = time.monotonic()
        task_id = self._call(f"POST {resource}", submit)
        task_id = str(task_id).strip().strip('"')
        if not task_id:
            raise TransientEngineError(f"aspose: POST {resource} returned no task id")
        log.debug("aspose.task_submitted", resource=resource, task=task_id, language=language.value)
        deadline = started + self._deadline
        polls = 0
        # Recognition takes a second or more: wait before the first poll, too.
        wait = self._poll_interval
        while True:
            if time.monotonic() + wait > deadline:
                self._cancel(resource, task_id, cancel)
                raise TransientEngineError(
                    f"aspose: task {task_id} not finished after {self._deadline:g} s "
                    f"({polls} polls); cancelled"
                )
            time.sleep(wait)
            wait = self._poll_interval
            polls += 1
            try:
                response = self._call(f"GET {resource}", lambda auth: fetch(task_id, auth))
            except TransientEngineError as exc:
                # The task lives on; one failed poll is no reason to pay for a new one.
                hint = getattr(exc, "retry_after", None)
                if hint is not None:
                    wait = max(wait, hint)
                log.warning(
                    "aspose.poll_failed", resource=resource, task=task_id, error=exc.message
                )
                continue
            text = self._outcome(resource, task_id, response)
            if text is not None:
                log.debug(
                    "aspose.task_completed",
                    resource=resource,
                    task=task_id,
                    polls=polls,
                    seconds=round(time.monotonic() - started, 3),
                )
                return text

    def _outcome(self, resource: str, task_id: str, response: OCRResponse) -> str | None:
        """Return the task's text when Completed, None while it runs; raise on failure."""
        status = response.task_status
        if status in (OCRTaskStatus.PENDING, OCRTaskStatus.PROCESSING, None):
            return None
        if status is OCRTaskStatus.ERROR:
            messages = list(response.error.messages or []) if response.error else []
            raise PermanentEngineError(
                f"aspose: task {task_id} failed: "
                + (self._redact("; ".join(messages)) if messages else "no message from the server")
            )
        if status is OCRTaskStatus.NOTEXIST:
            raise TransientEngineError(f"aspose: task {task_id} unknown to the server (NotExist)")
        # Completed
        if response.response_status_code is ResponseStatusCode.RESULTDATALOST:
            raise TransientEngineError(f"aspose: task {task_id} lost its result (ResultDataLost)")
        return self._decode(task_id, response)

    def _decode(self, task_id: str, response: OCRResponse) -> str:
        parts: list[str] = []
        for result in response.results or []:
            if result.type is not None and result.type.lower() != "text":
                continue
            data = result.data
            if data is None:
                continue
            raw = data if isinstance(data, bytes) else data.encode("ascii", "replace")
            try:
                parts.append(base64.b64decode(raw, validate=True).decode("utf-8"))
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise TransientEngineError(
                    f"aspose: task {task_id} returned undecodable text data"
                ) from exc
        return "\n".join(parts)

    def _cancel(
        self, resource: str, task_id: str, cancel: Callable[[str, dict[str, Any]], None]
    ) -> None:
        try:
            self._call(f"DELETE {resource}", lambda auth: cancel(task_id, auth))
            log.warning("aspose.task_cancelled", resource=resource, task=task_id)
        except (TransientEngineError, PermanentEngineError) as exc:
            # The task expires on the server by itself; the deadline error matters more.
            log.warning("aspose.cancel_failed", resource=resource, task=task_id, error=exc.message)

    # --- text helpers --------------------------------------------------------------------

    def _snippet(self, body: bytes | str | None) -> str:
        if not body:
            return "(empty body)"
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        text = " ".join(text.split())
        if len(text) > _BODY_SNIPPET:
            text = text[:_BODY_SNIPPET] + "..."
        return self._redact(text)

    def _describe(self, exc: ApiException) -> str:
        # Never str(exc): the SDK dumps all headers and the whole body.
        reason = str(exc.reason or "").splitlines()
        body = exc.body if isinstance(exc.body, str) else None
        return self._redact(f"{exc.status} {' '.join(reason)}".strip()) + (
            f": {self._snippet(body)}" if body else ""
        )


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    return None if value is None else str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:_BODY_SNIPPET]


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
