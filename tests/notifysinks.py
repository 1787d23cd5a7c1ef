"""Real local receivers for notifications: an HTTP server for Apprise's json:// and an SMTP
server (aiosmtpd) for mailto://, both on 127.0.0.1, recording what they receive."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from aiosmtpd.controller import Controller

from redisserver import free_port


def wait_until(pred: Callable[[], object], *, timeout: float, what: str) -> None:
    """Poll ``pred`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class Post:
    """One request the JSON sink received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class JsonSink:
    """A real HTTP server on 127.0.0.1 that records the JSON posts Apprise's json:// sends.

    ``status`` is the HTTP status it answers with (500: a receiver that is down).
    """

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.status = 200
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    sink.posts.append(Post(self.path, dict(self.headers), json.loads(raw)))
                    status = sink.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The Apprise URL that posts here."""
        return f"json://127.0.0.1:{self.port}/"

    def messages(self) -> list[str]:
        """Return the title and message of every post received, joined by a newline."""
        with self._lock:
            return [f"{p.body.get('title', '')}\n{p.body.get('message', '')}" for p in self.posts]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@dataclass
class _Recorder:
    mails: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        message = email.message_from_bytes(data, policy=email.policy.default)
        self.mails.append(message)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps the mails it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.recorder = _Recorder()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)

    def url(self, *, to: str = "ops@example.org") -> str:
        """The Apprise URL that mails ``to`` through this server (plain SMTP, no login)."""
        return (
            f"mailto://127.0.0.1:{self.port}?smtp=127.0.0.1&mode=insecure"
            f"&from=ocrwatch@example.org&to={to}"
        )

    def texts(self) -> list[str]:
        """Return the subject and plain body of every mail received."""
        out = []
        for m in list(self.recorder.mails):
            part = m.get_body(preferencelist=("plain", "html"))
            body = part.get_content() if part is not None else ""
            out.append(f"{m['Subject']}\n{body}")
        return out

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
