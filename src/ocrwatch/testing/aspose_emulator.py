"""A local Aspose OCR Cloud v5.0 emulator: the real wire protocol, real recognition, faults.

It speaks what ``docs/aspose-cloud-v5.md`` describes, loopback only, so the real SDK and the
``aspose`` engine can be tested without Aspose: ``POST /connect/token`` (urlencoded and
multipart), ``POST``/``GET``/``DELETE /v5.0/ocr/RecognizeImage`` and ``RecognizePdf``,
``GET /v5.0/ocr/Utilities/GetTaskStatus``; paths match case-insensitively; Bearer tokens
(401 ProblemDetails otherwise); task ids as ``text/plain``; OCRResponse as JSON with enum
values from the spec only; ``NotExist``/``TaskNotFound`` for unknown ids. Recognition is
real: the decoded image is read by a local ocrwatch engine (``tesseract`` for printed
languages, ``paddle`` for ``HWT_ENG``; PDFs are rasterized with pdf2image, pages joined by
a form feed).

In a test::

    with AsposeEmulator(pending_polls=2) as emu:
        env = emu.environ()          # OCRWATCH_ASPOSE__BASE_URL / CLIENT_ID / CLIENT_SECRET
        emu.faults.inject(Fault.RATE_LIMIT, endpoint=Endpoint.SUBMIT)   # next POST gets 429
        ...
        assert emu.count("POST", "RecognizeImage") == 2
        assert emu.submissions[-1].settings["language"] == "HWT_ENG"

For users: ``python -m ocrwatch.testing.aspose_emulator --port 8080 --fail-rate 0.3``
prints the base URL and the credentials it accepts.

Fault knobs (constructor keywords, CLI flags, or ``emu.faults.set(name=value)`` at run time):

=================  ======================================================================
delay              seconds to wait before every reply (slow server)
pending_polls      GETs of a task answered Pending/Processing before it is Completed
token_ttl          a token is rejected (401) this many seconds after it was issued
token_max_calls    a token is rejected after this many API calls
expires_in         ``expires_in`` advertised with each token (default 3600)
task_error         every task ends in ``Error`` with this message
fail_rate          share of requests (0..1) that fail with a random transient fault:
                   429/503 with and without Retry-After, 500, dropped connection,
                   malformed JSON (seeded by ``seed``)
retry_after        seconds sent in Retry-After headers (default 1)
=================  ======================================================================

One-shot faults: ``emu.faults.inject(Fault.X, endpoint=Endpoint.Y, times=n)`` makes the next
``n`` requests to that endpoint fail with ``X`` (see :class:`Fault`). Counters: ``counts``
(``"POST RecognizeImage"`` -> n), ``count(method, name)``, ``submissions`` (what each POST
carried), ``cancelled`` (task ids). Valid credentials: ``client_id``/``client_secret``
given to the constructor (default ``emulator-client``/``emulator-secret``). Pass
``engines=EngineCache(settings)`` to share loaded engines between emulators (test fixtures).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import email.parser
import email.policy
import io
import json
import math
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from PIL import Image

    from ocrwatch.engines import EngineCache
    from ocrwatch.settings.model import Settings

__all__ = ["AsposeEmulator", "Endpoint", "Fault", "FaultPlan", "Submission", "main"]

API = "/v5.0/ocr/"
RESOURCES = ("RecognizeImage", "RecognizePdf")
STATUS_PATH = "/v5.0/ocr/utilities/gettaskstatus"
TOKEN_PATH = "/connect/token"

# The spec's enum values (aspose_ocr_cloud 24.11.0 models); anything else is a 400.
DSR_MODES = frozenset(
    {
        "Regions",
        "DsrNoFilter",
        "DsrAndFilter",
        "NoDsrNoFilter",
        "TextDetector",
        "DsrPlusDetector",
        "PolygonalTextDetector",
        "LineDetector",
    }
)
RESULT_TYPES = frozenset(
    {
        "Text",
        "Pdf",
        "TextAndPdf",
        "Hocr",
        "TextAndHocr",
        "PdfAndHocr",
        "TextAndPdfAndHocr",
        "ImagePNG",
        "JSON",
    }
)

# Aspose language name -> the local engine's code. HWT_ENG goes to the handwriting engine.
LOCAL_LANGUAGES = {
    "English": "eng",
    "Spanish": "spa",
    "German": "deu",
    "French": "fra",
    "Italian": "ita",
    "Portuguese": "por",
    "HWT_ENG": "eng",
}


class Fault(StrEnum):
    """A failure the emulator can answer a request with."""

    RATE_LIMIT = "429"  # with Retry-After
    RATE_LIMIT_BARE = "429-bare"  # without Retry-After
    UNAVAILABLE = "503"  # with Retry-After
    UNAVAILABLE_BARE = "503-bare"
    SERVER_ERROR = "500"
    BAD_REQUEST = "400"
    UNAUTHORIZED = "401"  # whatever the token
    FORBIDDEN = "403"
    MALFORMED_JSON = "malformed-json"  # 200, application/json, truncated body
    BAD_ENUM = "bad-enum"  # 200 OCRResponse with a taskStatus outside the spec
    DROP = "drop"  # close the connection without a reply


TRANSIENT_MIX = (
    Fault.RATE_LIMIT,
    Fault.RATE_LIMIT_BARE,
    Fault.UNAVAILABLE,
    Fault.UNAVAILABLE_BARE,
    Fault.SERVER_ERROR,
    Fault.DROP,
    Fault.MALFORMED_JSON,
)


class Endpoint(StrEnum):
    """Which requests a one-shot fault applies to."""

    ANY = "any"
    TOKEN = "token"  # POST /connect/token
    SUBMIT = "submit"  # POST a task
    FETCH = "fetch"  # GET a task's result
    CANCEL = "cancel"  # DELETE a task
    STATUS = "status"  # GET Utilities/GetTaskStatus


@dataclass
class FaultPlan:
    """The emulator's fault knobs; change them with :meth:`set` and :meth:`inject`."""

    delay: float = 0.0
    pending_polls: int = 0
    token_ttl: float | None = None
    token_max_calls: int | None = None
    expires_in: int = 3600
    task_error: str | None = None
    fail_rate: float = 0.0
    seed: int | None = None
    retry_after: float = 1.0
    _queue: list[list[Any]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    def set(self, **knobs: Any) -> None:
        """Change knobs by name (``delay=``, ``fail_rate=``, ...); unknown names raise."""
        with self._lock:
            for name, value in knobs.items():
                if name.startswith("_") or not hasattr(self, name):
                    raise TypeError(f"unknown fault knob {name!r}")
                setattr(self, name, value)
                if name == "seed":
                    self._random.seed(value)

    def inject(self, fault: Fault, *, endpoint: Endpoint = Endpoint.ANY, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``endpoint`` with ``fault``."""
        with self._lock:
            self._queue.append([Endpoint(endpoint), Fault(fault), times])

    def clear(self) -> None:
        """Drop pending one-shot faults and switch random failures off."""
        with self._lock:
            self._queue.clear()
            self.fail_rate = 0.0

    def pick(self, endpoint: Endpoint) -> Fault | None:
        """Return the fault for this request, if any (one-shot faults first)."""
        with self._lock:
            for item in self._queue:
                if item[0] in (Endpoint.ANY, endpoint):
                    item[2] -= 1
                    if item[2] <= 0:
                        self._queue.remove(item)
                    return Fault(item[1])
            if self.fail_rate > 0 and self._random.random() < self.fail_rate:
                return self._random.choice(TRANSIENT_MIX)
        return None


@dataclass(frozen=True)
class Submission:
    """What one task POST carried (settings as sent, decoded input bytes)."""

    resource: str
    task_id: str
    settings: dict[str, Any]
    data: bytes


@dataclass
class _Task:
    resource: str
    settings: dict[str, Any]
    data: bytes
    polls: int = 0
    text: str | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Token:
    issued: float
    calls: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: AsposeEmulator

    def __init__(self, address: tuple[str, int], emulator: AsposeEmulator) -> None:
        self.emulator = emulator
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # Idle keep-alive connections end after this long.
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.verbose:
            sys.stderr.write("aspose-emulator: " + (format % args) + "\n")

    def do_GET(self) -> None:
        self.server.emulator._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.emulator._dispatch(self, "POST")

    def do_DELETE(self) -> None:
        self.server.emulator._dispatch(self, "DELETE")


class AsposeEmulator:
    """An Aspose OCR Cloud v5.0 server on 127.0.0.1 backed by local ocrwatch engines."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = "emulator-client",
        client_secret: str = "emulator-secret",
        printed_engine: str = "tesseract",
        handwriting_engine: str = "paddle",
        settings: Settings | None = None,
        engines: EngineCache | None = None,
        pdf_dpi: int = 200,
        page_separator: str = "\f",
        verbose: bool = False,
        delay: float = 0.0,
        pending_polls: int = 0,
        token_ttl: float | None = None,
        token_max_calls: int | None = None,
        expires_in: int = 3600,
        task_error: str | None = None,
        fail_rate: float = 0.0,
        seed: int | None = None,
        retry_after: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.printed_engine = printed_engine
        self.handwriting_engine = handwriting_engine
        self.pdf_dpi = pdf_dpi
        self.page_separator = page_separator
        self.verbose = verbose
        self.faults = FaultPlan(
            delay=delay,
            pending_polls=pending_polls,
            token_ttl=token_ttl,
            token_max_calls=token_max_calls,
            expires_in=expires_in,
            task_error=task_error,
            fail_rate=fail_rate,
            seed=seed,
            retry_after=retry_after,
        )
        self.counts: Counter[str] = Counter()
        self.submissions: list[Submission] = []
        self.cancelled: list[str] = []
        self.token_requests: list[str] = []  # content types of token requests
        self._settings = settings
        # Engines given by the caller are shared (e.g. across tests) and not closed here.
        self._engines: EngineCache | None = engines
        self._own_engines = engines is None
        self._tasks: dict[str, _Task] = {}
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL to give ``aspose.base_url`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def environ(self) -> dict[str, str]:
        """Return the OCRWATCH_ASPOSE__* variables that point ocrwatch at this emulator."""
        return {
            "OCRWATCH_ASPOSE__BASE_URL": self.base_url,
            "OCRWATCH_ASPOSE__CLIENT_ID": self.client_id,
            "OCRWATCH_ASPOSE__CLIENT_SECRET": self.client_secret,
        }

    def start(self) -> AsposeEmulator:
        """Start serving in a daemon thread; return self."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="aspose-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and the engines. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            with server.sockets_lock:
                for sock in list(server.open_sockets):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._engines is not None and self._own_engines:
            self._engines.close()
            self._engines = None

    def __enter__(self) -> AsposeEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def tokens(self) -> list[str]:
        """Every access token issued so far (to check that none leaks into logs)."""
        with self._lock:
            return list(self._tokens)

    def count(self, method: str, name: str) -> int:
        """Return how many ``method`` requests reached ``name`` (token, RecognizeImage, ...)."""
        return self.counts[f"{method.upper()} {name}"]

    # --- request handling ----------------------------------------------------------------

    def _dispatch(self, h: _Handler, method: str) -> None:
        url = urlsplit(h.path)
        path = url.path.rstrip("/").lower()
        query = {k.lower(): v[0] for k, v in parse_qs(url.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""

        name, endpoint = self._route(method, path)
        with self._lock:
            self.counts[f"{method} {name}"] += 1
        delay = self.faults.delay
        if delay > 0:
            time.sleep(delay)
        if endpoint is None:
            self._problem(h, 404, "Not Found", f"no such endpoint: {method} {url.path}")
            return
        fault = self.faults.pick(endpoint)
        if fault is not None and self._apply_fault(h, fault, endpoint):
            return
        if endpoint is Endpoint.TOKEN:
            self._token(h, body)
            return
        if not self._authorized(h):
            return
        if endpoint is Endpoint.SUBMIT:
            self._submit(h, name, body)
        elif endpoint is Endpoint.CANCEL:
            task_id = query.get("id", "")
            with self._lock:
                if self._tasks.pop(task_id, None) is not None:
                    self.cancelled.append(task_id)
            self._reply(h, 200, b"", content_type=None)
        else:
            self._fetch(h, query.get("id", ""), with_results=endpoint is Endpoint.FETCH)

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, Endpoint | None]:
        if path == TOKEN_PATH:
            return "token", Endpoint.TOKEN if method == "POST" else None
        if path == STATUS_PATH:
            return "GetTaskStatus", Endpoint.STATUS if method == "GET" else None
        for resource in RESOURCES:
            if path == (API + resource).lower():
                ep = {"POST": Endpoint.SUBMIT, "GET": Endpoint.FETCH, "DELETE": Endpoint.CANCEL}
                return resource, ep.get(method)
        return path, None

    def _apply_fault(self, h: _Handler, fault: Fault, endpoint: Endpoint) -> bool:
        """Answer with ``fault``; return False when it does not apply to this endpoint."""
        wait = str(max(0, math.ceil(self.faults.retry_after)))
        if fault is Fault.DROP:
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
        elif fault in (Fault.RATE_LIMIT, Fault.RATE_LIMIT_BARE):
            headers = {"Retry-After": wait} if fault is Fault.RATE_LIMIT else {}
            self._problem(h, 429, "Too Many Requests", "rate limit exceeded", headers=headers)
        elif fault in (Fault.UNAVAILABLE, Fault.UNAVAILABLE_BARE):
            headers = {"Retry-After": wait} if fault is Fault.UNAVAILABLE else {}
            self._problem(h, 503, "Service Unavailable", "try again later", headers=headers)
        elif fault is Fault.SERVER_ERROR:
            self._problem(h, 500, "Internal Server Error", "unexpected error")
        elif fault is Fault.BAD_REQUEST:
            self._problem(h, 400, "Bad Request", "the request is invalid")
        elif fault is Fault.UNAUTHORIZED:
            self._problem(h, 401, "Unauthorized", "token rejected")
        elif fault is Fault.FORBIDDEN:
            self._problem(h, 403, "Forbidden", "not allowed")
        elif fault is Fault.MALFORMED_JSON:
            self._reply(
                h, 200, b'{"id": "x", "taskStatus": "Compl', content_type="application/json"
            )
        elif fault is Fault.BAD_ENUM:
            if endpoint not in (Endpoint.FETCH, Endpoint.STATUS):
                return False
            doc = {"id": "x", "taskStatus": "Finished", "responseStatusCode": "Ok", "results": None}
            self._json(h, 200, doc)
        return True

    def _token(self, h: _Handler, body: bytes) -> None:
        ctype = h.headers.get("Content-Type", "")
        self.token_requests.append(ctype.split(";")[0].strip())
        form = _parse_form(ctype, body)
        if form.get("grant_type") != "client_credentials":
            self._json(h, 400, {"error": "unsupported_grant_type"})
            return
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            self._json(h, 400, {"error": "invalid_client"})
            return
        token = base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
        with self._lock:
            self._tokens[token.rstrip("=")] = _Token(issued=time.monotonic())
        doc = {"access_token": token.rstrip("="), "expires_in": self.faults.expires_in}
        self._json(h, 200, {**doc, "token_type": "Bearer"})

    def _authorized(self, h: _Handler) -> bool:
        header = h.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        with self._lock:
            entry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            ok = entry is not None
            if entry is not None:
                entry.calls += 1
                ttl, most = self.faults.token_ttl, self.faults.token_max_calls
                if ttl is not None and time.monotonic() - entry.issued > ttl:
                    ok = False
                if most is not None and entry.calls > most:
                    ok = False
        if not ok:
            self._problem(h, 401, "Unauthorized", "missing, invalid or expired access token")
        return ok

    def _submit(self, h: _Handler, resource: str, body: bytes) -> None:
        try:
            doc = json.loads(body)
            image = doc["image"]
            settings = doc.get("settings") or {}
            if not isinstance(image, str) or not isinstance(settings, dict):
                raise TypeError("image must be a base64 string, settings an object")
            data = base64.b64decode(image, validate=True)
            problem = _check_settings(settings)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            self._problem(h, 400, "Bad Request", f"invalid request body: {exc}")
            return
        if problem:
            self._problem(h, 400, "Bad Request", problem)
            return
        task_id = str(uuid.uuid4())
        with self._lock:
            self._tasks[task_id] = _Task(resource=resource, settings=settings, data=data)
            self.submissions.append(Submission(resource, task_id, settings, data))
        self._reply(h, 200, task_id.encode(), content_type="text/plain; charset=utf-8")

    def _fetch(self, h: _Handler, task_id: str, *, with_results: bool) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
        doc: dict[str, Any] = {"id": task_id, "results": None, "error": None}
        if task is None:
            doc.update(taskStatus="NotExist", responseStatusCode="TaskNotFound")
            self._json(h, 200, doc)
            return
        with task.lock:
            task.polls += 1
            polls = task.polls
        pending = self.faults.pending_polls
        if polls <= pending:
            status = "Pending" if polls <= (pending + 1) // 2 else "Processing"
            doc.update(taskStatus=status, responseStatusCode="NotReady")
            self._json(h, 200, doc)
            return
        text, error = self._result(task)
        if error is not None:
            doc.update(
                taskStatus="Error",
                responseStatusCode="Error",
                error={"messages": [error], "warnings": []},
            )
        else:
            doc.update(taskStatus="Completed", responseStatusCode="Ok")
            if with_results:
                data = base64.b64encode((text or "").encode("utf-8")).decode("ascii")
                doc["results"] = [{"type": "Text", "data": data}]
        self._json(h, 200, doc)

    # --- recognition ---------------------------------------------------------------------

    def _result(self, task: _Task) -> tuple[str | None, str | None]:
        with task.lock:
            if task.text is None and task.error is None:
                if self.faults.task_error:
                    task.error = self.faults.task_error
                else:
                    try:
                        task.text = self._recognize(task)
                    except Exception as exc:
                        task.error = f"recognition failed: {type(exc).__name__}: {exc}"
            return task.text, task.error

    def _recognize(self, task: _Task) -> str:
        from ocrwatch.settings.choices import Mode

        language = str(task.settings.get("language") or "English")
        code = LOCAL_LANGUAGES.get(language)
        if code is None:
            raise ValueError(f"language {language} is not available in the emulator")
        handwritten = language == "HWT_ENG"
        engine = self._engine(self.handwriting_engine if handwritten else self.printed_engine)
        mode = Mode.HANDWRITTEN if handwritten else Mode.PRINTED
        pages = self._pages(task)
        texts = [engine.recognize(p, languages=[code], mode=mode).text for p in pages]
        return self.page_separator.join(texts)

    def _pages(self, task: _Task) -> list[Image.Image]:
        from PIL import Image

        if task.resource == "RecognizePdf":
            from pdf2image import convert_from_bytes

            return list(convert_from_bytes(task.data, dpi=self.pdf_dpi))
        with Image.open(io.BytesIO(task.data)) as img:
            img.load()
            return [img.convert("L") if img.mode not in ("L", "RGB") else img.copy()]

    def _engine(self, name: str) -> Any:
        with self._lock:
            if self._engines is None:
                from ocrwatch.engines import EngineCache
                from ocrwatch.settings.model import load_settings

                self._engines = EngineCache(self._settings or load_settings())
            engines = self._engines
        return engines.get(name)

    # --- replies -------------------------------------------------------------------------

    def _reply(
        self,
        h: _Handler,
        status: int,
        body: bytes,
        *,
        content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            h.send_response(status)
            if content_type:
                h.send_header("Content-Type", content_type)
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            h.close_connection = True  # the client went away; nothing to tell it

    def _json(self, h: _Handler, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self._reply(h, status, body, content_type="application/json; charset=utf-8")

    def _problem(
        self,
        h: _Handler,
        status: int,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        doc = {
            "type": f"https://httpstatuses.io/{status}",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": urlsplit(h.path).path,
        }
        body = json.dumps(doc).encode()
        self._reply(h, status, body, content_type="application/problem+json", headers=headers)


def _parse_form(ctype: str, body: bytes) -> dict[str, str]:
    """Return the fields of an urlencoded or multipart form."""
    if ctype.lower().startswith("multipart/form-data"):
        parser = email.parser.BytesParser(policy=email.policy.HTTP)
        msg = parser.parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        fields: dict[str, str] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload.decode("utf-8")
        return fields
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _check_settings(settings: dict[str, Any]) -> str | None:
    """Return why the settings are invalid (enum values outside the spec), or None."""
    from aspose_ocr_cloud.models.language import Language

    checks = {
        "language": frozenset(v.value for v in Language),
        "dsrMode": DSR_MODES,
        "resultType": RESULT_TYPES,
    }
    for key, allowed in checks.items():
        value = settings.get(key)
        if value is not None and value not in allowed:
            return f"settings.{key}: {value!r} is not a valid value"
    for key in ("Rotate", "rotate"):
        if key in settings and not isinstance(settings[key], int | None):
            return f"settings.{key}: must be an integer"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted; return the exit code."""
    p = argparse.ArgumentParser(
        prog="python -m ocrwatch.testing.aspose_emulator",
        description="Local Aspose OCR Cloud v5.0 emulator (loopback) with fault knobs.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--client-id", default="emulator-client")
    p.add_argument("--client-secret", default="emulator-secret")
    p.add_argument("--printed-engine", default="tesseract")
    p.add_argument("--handwriting-engine", default="paddle")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before every reply")
    p.add_argument("--pending-polls", type=int, default=0)
    p.add_argument("--token-ttl", type=float, default=None)
    p.add_argument("--token-max-calls", type=int, default=None)
    p.add_argument("--expires-in", type=int, default=3600)
    p.add_argument("--task-error", default=None, help="every task fails with this message")
    p.add_argument("--fail-rate", type=float, default=0.0, help="0..1 random transient faults")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = p.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0:
        p.error("--fail-rate must be between 0 and 1")
    emu = AsposeEmulator(
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        printed_engine=args.printed_engine,
        handwriting_engine=args.handwriting_engine,
        verbose=args.verbose,
        delay=args.delay,
        pending_polls=args.pending_polls,
        token_ttl=args.token_ttl,
        token_max_calls=args.token_max_calls,
        expires_in=args.expires_in,
        task_error=args.task_error,
        fail_rate=args.fail_rate,
        seed=args.seed,
        retry_after=args.retry_after,
    )
    stop = threading.Event()
    # Handlers, not KeyboardInterrupt: a signal right after start-up must stop cleanly too.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with emu:
        print(f"Aspose OCR Cloud emulator listening on {emu.base_url}")
        print(f"credentials: client_id={emu.client_id} client_secret={emu.client_secret}")
        for key, value in emu.environ().items():
            print(f"export {key}={value}")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
