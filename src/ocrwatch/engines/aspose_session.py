"""Aspose OCR Cloud's wire protocol: one authenticated session, every failure mapped.

The SDK (``aspose-ocr-cloud`` 24.11.0) only serializes requests; this session adds:

- **Token.** ``POST {base}/connect/token`` (``client_credentials``) through the SDK's own
  REST client (one urllib3 pool), renewed before expiry and once more on a 401; a second
  401/403 means the credentials are wrong. Each call carries its token with the SDK's
  ``_request_auth``, so we know which token the server rejected.
- **Tasks.** ``POST`` the base64 image or PDF, then ``GET ?id=`` every ``poll_interval``
  until ``Completed``; at the deadline the task is cancelled (``DELETE``). A failed poll is
  logged and polling goes on (the task is already paid for).
- **Timeouts** on every call; urllib3's own retries off (``retries=0``): the pipeline's
  retry is the only retry layer. 429/5xx carry the server's ``Retry-After``.
- **Rate limit.** An optional throttle (``ocrwatch.support.throttle``) before every call.

Error mapping (always ``raise ... from exc``): connection failures and timeouts, 408, 429,
5xx, garbled replies, ``NotExist``/``ResultDataLost`` -> transient; 400/404/413 and other
4xx, a task in ``Error``, credentials rejected twice -> permanent. Secrets never leave
here: messages are built from status and a redacted, shortened body, never from the SDK
exception's ``str()`` (it dumps headers).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
import structlog
import urllib3

# Import from the defining modules: the SDK's package __init__ re-exports implicitly.
from aspose_ocr_cloud.api.recognize_image_api import RecognizeImageApi
from aspose_ocr_cloud.api.recognize_pdf_api import RecognizePdfApi
from aspose_ocr_cloud.api_client import ApiClient
from aspose_ocr_cloud.configuration import Configuration
from aspose_ocr_cloud.exceptions import ApiException, OpenApiException
from aspose_ocr_cloud.models.language import Language as AsposeLanguage
from aspose_ocr_cloud.models.ocr_response import OCRResponse
from aspose_ocr_cloud.models.ocr_task_status import OCRTaskStatus
from aspose_ocr_cloud.models.response_status_code import ResponseStatusCode
from pydantic import SecretStr

from ocrwatch.exceptions import PermanentEngineError, TransientEngineError

if TYPE_CHECKING:
    from ocrwatch.support.throttle import Throttle

__all__ = [
    "AsposeRateLimited",
    "AsposeSession",
    "AsposeUnavailable",
    "AsposeUnreachable",
    "retry_after_seconds",
]

log = structlog.get_logger()

_T = TypeVar("_T")

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


class AsposeSession:
    """One client of one account: token, calls, tasks. Thread-safe."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        timeout: float,
        poll_interval: float,
        deadline: float,
        throttle: Throttle | None = None,
    ) -> None:
        """Prepare a session (nothing is sent until the first call)."""
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.timeout = timeout
        self._poll_interval = poll_interval
        self._deadline = deadline
        self._throttle = throttle
        self._redact = _Redactor()
        self._redact.add(client_secret.get_secret_value())
        # retries=0: the pipeline's retry policy is the only retry layer (module docstring).
        self._client = ApiClient(Configuration(host=self._base_url, retries=0))
        self.images = RecognizeImageApi(self._client)
        self.pdfs = RecognizePdfApi(self._client)
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_renew_at = 0.0

    def close(self) -> None:
        """Drop pooled connections and the token."""
        self._client.rest_client.pool_manager.clear()
        with self._token_lock:
            self._token = None

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
        status, retry_after, raw = self._post_token()
        if status in (400, 401, 403):
            log.error("aspose.token_rejected", status=status)
            raise PermanentEngineError(
                f"aspose: credentials rejected (HTTP {status} from {TOKEN_PATH}); "
                "check aspose.client_id / client_secret"
            )
        if status != 200:
            raise self._status_error(status, retry_after, raw, where=TOKEN_PATH)
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

    def _post_token(self) -> tuple[int, str | None, bytes]:
        """POST the client credentials; return (status, Retry-After, body)."""
        url = self._base_url + TOKEN_PATH
        fields = [
            ("grant_type", "client_credentials"),
            ("client_id", self._client_id),
            ("client_secret", self._client_secret.get_secret_value()),
        ]
        if self._throttle is not None:
            self._throttle.wait()
        try:
            resp = self._client.rest_client.request(  # type: ignore[no-untyped-call]
                "POST",
                url,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                post_params=fields,
                _request_timeout=self.timeout,
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
        return int(resp.status), resp.getheader("Retry-After"), bytes(raw)

    # --- calls and tasks ---------------------------------------------------------------

    def call(self, what: str, fn: Callable[[dict[str, Any]], _T]) -> _T:
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

    def run_task(
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
        task_id = str(self.call(f"POST {resource}", submit)).strip().strip('"')
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
            polls += 1
            text, wait = self._poll(resource, task_id, fetch)
            if text is not None:
                log.debug(
                    "aspose.task_completed",
                    resource=resource,
                    task=task_id,
                    polls=polls,
                    seconds=round(time.monotonic() - started, 3),
                )
                return text

    def _poll(
        self, resource: str, task_id: str, fetch: Callable[[str, dict[str, Any]], OCRResponse]
    ) -> tuple[str | None, float]:
        """Poll once; return (the text when Completed, else None; the wait before the next)."""
        try:
            response = self.call(f"GET {resource}", lambda auth: fetch(task_id, auth))
        except TransientEngineError as exc:
            # The task lives on; one failed poll is no reason to pay for a new one.
            hint = getattr(exc, "retry_after", None)
            log.warning("aspose.poll_failed", resource=resource, task=task_id, error=exc.message)
            return None, max(self._poll_interval, hint or 0.0)
        return self._outcome(resource, task_id, response), self._poll_interval

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
            self.call(f"DELETE {resource}", lambda auth: cancel(task_id, auth))
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
