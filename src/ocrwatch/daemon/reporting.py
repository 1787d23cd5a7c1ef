"""Who hears how each document and the daemon fare: metrics, the status page, notifications.

The coordinator reports facts here (a document's canonical line, its status text, how the
shares and the backlog are doing); each listener turns them into what it shows or sends.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ocrwatch.daemon.journal import TERMINAL_STATES, Job, Journal, State
from ocrwatch.daemon.notify import Notifications, Triggers
from ocrwatch.daemon.status_page import Recent, StatusPage
from ocrwatch.support.fsutil import display

if TYPE_CHECKING:
    from ocrwatch.daemon.disposition import DocumentLine
    from ocrwatch.daemon.folders import Layout, Mounts
    from ocrwatch.daemon.metrics import Metrics
    from ocrwatch.settings.model import Settings

__all__ = ["Reporting"]


class Reporting:
    """The metrics, the status page and the notifications of one running daemon."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        page: StatusPage | None = None,
        notifications: Notifications | None = None,
    ) -> None:
        """Report to ``metrics`` and ``page`` where given, and to ``settings``' notify URLs."""
        self.metrics = metrics
        self.page = page
        self.notifications = notifications or Notifications(settings)
        self.triggers = Triggers(settings, self.notifications.enqueue)

    def start(self) -> None:
        """Start the notification sender."""
        self.notifications.start()

    def close(self) -> None:
        """Send what is gathered, stop serving; safe to call twice."""
        self.notifications.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.page is not None:
            self.page.close()

    def document(self, event: str, job: Job, line: DocumentLine) -> None:
        """Report one canonical document line (``document.processed``, ...) of ``job``."""
        if self.metrics is not None:
            self.metrics.document(event, line.outcome, line.reason, line.duration_s)
        if event == "document.quarantined":
            why = line.reason or "quarantined"
            self.triggers.quarantined(
                job_id=job.job_id, relpath=job.relpath, reason=why, message=line.error or ""
            )
        elif event == "document.retry_scheduled" and line.reason != "finish_failed":
            self.triggers.retrying(
                job_id=job.job_id,
                relpath=job.relpath,
                attempts=job.attempts,
                reason=line.reason,
                message=line.error,
            )
        else:
            self.triggers.finished(job.job_id)
        if self.page is not None and event != "document.retry_scheduled":
            doc = Recent(
                at=time.time(),
                relpath=job.relpath,
                pages=job.pages,
                engine=job.engine,
                seconds=line.duration_s,
                outcome=line.outcome,
                reason=line.reason,
            )
            self.page.record(doc)

    def status(self, text: str) -> None:
        """Show the loop's one-line status on the page."""
        if self.page is not None:
            self.page.publish(text)

    def conditions(self, now: float, *, layout: Layout, mounts: Mounts, journal: Journal) -> None:
        """Tell the notification triggers how the shares and the backlog are doing."""
        if not self.notifications.enabled:
            return
        for share, ok in (("inbox", mounts.inbox_ok), ("outbox", mounts.outbox_ok)):
            path = display(getattr(layout, share))
            self.triggers.share(share, ok=ok, path=path, now=now)
        counts = journal.counts()
        pending = sum(n for s, n in counts.items() if State(s) not in TERMINAL_STATES)
        self.triggers.backlog(
            oldest=journal.oldest_unfinished(),
            pending=pending,
            now=time.time(),
            name=lambda: next((j.relpath for j in journal.unfinished()), None),
        )

    def stopped(self, exc: BaseException) -> None:
        """The daemon stops on ``exc``: tell whoever is to be told."""
        self.triggers.stopped(exc)
