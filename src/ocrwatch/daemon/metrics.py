"""Prometheus metrics of the coordinator, served on ``/metrics`` when ``metrics_port`` is set.

Counters and the duration histogram follow the canonical document lines; the backlog
gauges are read from the journal every few seconds (plus ``unjournaled``: files seen in the
inbox and not journaled yet); workers are the ones whose answers or heartbeats were seen.
Prometheus conventions: base units, ``_total`` counters, labels with few and stable values
(a worker is ``NAME@host``, never a pid), a zero series for every outcome and backlog state
from the start, no ``_created`` series. The same HTTP server serves the status page at ``/``
(``daemon/status_page.py``) and nothing else.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)

if TYPE_CHECKING:
    from ocrwatch.daemon.journal import Journal

__all__ = ["Metrics"]

log = structlog.get_logger()

_BUCKETS = (0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, float("inf"))
#: Every outcome of a canonical document line that counts a document.
OUTCOMES = ("ok", "duplicate", "quarantined")
#: The backlog's label for files in the inbox that the journal does not hold yet.
UNJOURNALED = "unjournaled"

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series: noise here


class Metrics:
    """The coordinator's metrics in their own registry (tests build several)."""

    def __init__(self) -> None:
        """Create the metrics (nothing is served until :meth:`serve`)."""
        self.registry = CollectorRegistry()
        self._server: WSGIServer | None = None
        r = self.registry
        self.documents = Counter(
            "ocrwatch_documents", "Documents finished, by outcome.", ["outcome"], registry=r
        )
        self.retries = Counter(
            "ocrwatch_retries", "Retries scheduled, by reason.", ["reason"], registry=r
        )
        self.backlog = Gauge(
            "ocrwatch_backlog", "Jobs not finished, by state.", ["state"], registry=r
        )
        self.oldest = Gauge(
            "ocrwatch_oldest_pending_age_seconds",
            "Age of the oldest unfinished job (0 when there is none).",
            registry=r,
        )
        self.duration = Histogram(
            "ocrwatch_document_duration_seconds",
            "Recognition time of processed documents.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "ocrwatch_last_success_timestamp_seconds",
            "When the last document was processed (Unix time).",
            registry=r,
        )
        self.worker_heartbeat = Gauge(
            "ocrwatch_worker_last_heartbeat_timestamp_seconds",
            "Last answer or heartbeat of each worker seen (Unix time).",
            ["worker"],
            registry=r,
        )
        self.in_flight = Gauge(
            "ocrwatch_tasks_in_flight", "Tasks sent to the executor, not answered.", registry=r
        )
        from ocrwatch.daemon.journal import TERMINAL_STATES, State

        for outcome in OUTCOMES:  # zero series: rate() and alerts work from the first scrape
            self.documents.labels(outcome=outcome)
        self._states = [s.value for s in State if s not in TERMINAL_STATES] + [UNJOURNALED]
        for state in self._states:
            self.backlog.labels(state=state).set(0)

    def serve(self, port: int, address: str, *, page: Callable[[], str] | None = None) -> None:
        """Serve ``/metrics`` (and ``page()`` at ``/``) on ``address:port`` from a thread.

        Raises OSError when the port cannot be bound.
        """
        family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("_Server", (_ThreadingServer,), {"address_family": family})
        app = _App(make_wsgi_app(self.registry), page)
        server: WSGIServer = make_server(address, port, app, server_class, handler_class=_Quiet)
        self._server = server
        thread = threading.Thread(target=server.serve_forever, name="ocrwatch-http", daemon=True)
        thread.start()
        log.info("metrics.serving", address=address, port=port, status_page=page is not None)

    def close(self) -> None:
        """Stop serving (when :meth:`serve` was called)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def document(self, event: str, outcome: str, reason: str | None, seconds: float | None) -> None:
        """Count one canonical document line."""
        if event == "document.retry_scheduled":
            self.retries.labels(reason=reason or "unknown").inc()
            return
        self.documents.labels(outcome=outcome).inc()
        if event == "document.processed":
            self.last_success.set(time.time())
            if seconds:
                self.duration.observe(seconds)

    def refresh(
        self,
        journal: Journal,
        *,
        in_flight: int,
        workers: dict[str, float],
        unjournaled: int = 0,
    ) -> None:
        """Update the gauges from the journal, the intake and the executor."""
        counts = {**journal.counts(), UNJOURNALED: unjournaled}
        for state in self._states:
            self.backlog.labels(state=state).set(counts.get(state, 0))
        oldest = journal.oldest_unfinished()
        self.oldest.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
        self.in_flight.set(in_flight)
        for name, beat in workers.items():
            self.worker_heartbeat.labels(worker=name).set(beat)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow client must not hold the daemon's exit


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a scraper every 15 s would drown the document lines."""


_HTML_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    # No script, no frame, no form: the page is text and one link to /metrics.
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _App:
    """``/metrics`` to prometheus_client, ``/`` to the status page, 404 for anything else."""

    def __init__(self, metrics: WsgiApp, page: Callable[[], str] | None) -> None:
        self.metrics = metrics
        self.page = page

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return list(self.metrics(environ, start_response))
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "only GET\n")
        if path != "/" or self.page is None:
            return _plain(start_response, "404 Not Found", "not found\n")
        try:
            body = self.page().encode("utf-8")
        except Exception:  # a bug in the page must not take /metrics down with it
            log.exception("status_page.failed")
            return _plain(start_response, "500 Internal Server Error", "status page failed\n")
        start_response("200 OK", [*_HTML_HEADERS, ("Content-Length", str(len(body)))])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _plain(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
