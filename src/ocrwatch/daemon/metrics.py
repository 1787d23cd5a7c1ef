"""Prometheus metrics of the coordinator, served on ``/metrics`` when ``metrics_port`` is set.

Counters and the duration histogram follow the canonical document lines; the backlog
gauges are read from the journal every few seconds (plus ``unjournaled``: files seen in the
inbox and not journaled yet); workers are the ones whose answers or heartbeats were seen.
Prometheus conventions: base units, ``_total`` counters, labels with few and stable values
(a worker is ``NAME@host``, never a pid), a zero series for every outcome and backlog state
from the start, no ``_created`` series.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
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

    def serve(self, port: int, address: str) -> None:
        """Serve ``/metrics`` on ``address:port`` (a daemon thread of prometheus_client)."""
        start_http_server(port, addr=address, registry=self.registry)
        log.info("metrics.serving", address=address, port=port)

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
