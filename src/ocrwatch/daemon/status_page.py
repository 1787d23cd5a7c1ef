"""The status page at ``/`` on the metrics port: plain HTML that refreshes itself, no script.

It shows the backlog by state, the age of the oldest pending file, recent documents, recent
failures and quarantines with their reasons, the workers seen, the version and the uptime.
The HTTP threads never touch the loop's journal connection: they read the journal through
their own read-only SQLite connection (WAL lets them while the daemon writes), and the
documents finished since start come from a small list the loop appends to under a lock.
Every name is escaped; no file content, path outside the inbox or setting is shown.
"""

from __future__ import annotations

import html
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from ocrwatch._version import __version__
from ocrwatch.daemon.journal import TERMINAL_STATES, Journal, State, iso_time
from ocrwatch.daemon.status import collect
from ocrwatch.support.fsutil import display

__all__ = ["Recent", "StatusPage"]

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Recent:
    """One document the daemon finished (a line of "recent documents")."""

    at: float
    relpath: str
    pages: int | None
    engine: str | None
    seconds: float | None
    outcome: str
    reason: str | None = None


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _table(cls: str, head: tuple[str, ...], rows: Sequence[Sequence[object]], empty: str) -> str:
    if not rows:
        return f'<p class="{cls} empty">{_e(empty)}</p>'
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2} .bad{color:#a00}
"""


class StatusPage:
    """Renders the page; :meth:`record` and :meth:`publish` are called by the loop."""

    def __init__(
        self,
        journal_path: Path,
        *,
        keep: int = 25,
        refresh_s: int = 10,
        started: float | None = None,
    ) -> None:
        """Read the journal at ``journal_path``; keep the last ``keep`` documents."""
        self.journal_path = journal_path
        self.refresh_s = refresh_s
        self.started = time.time() if started is None else started
        self.host = socket.gethostname()
        self._recent: deque[Recent] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._journal: Journal | None = None
        self._status = "starting"

    # --- called by the coordinator's loop --------------------------------------------------------
    def record(self, doc: Recent) -> None:
        """Add a finished document to "recent documents"."""
        with self._lock:
            self._recent.appendleft(doc)

    def publish(self, status: str) -> None:
        """Show ``status`` (the loop's one-line summary) on the page."""
        with self._lock:
            self._status = status

    def close(self) -> None:
        """Close the page's journal connection."""
        with self._lock:
            journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    # --- called by the HTTP threads ---------------------------------------------------------------
    def _data(self) -> dict[str, Any] | None:
        with self._lock:
            if self._journal is None and self.journal_path.is_file():
                self._journal = Journal(self.journal_path, readonly=True)
            journal = self._journal
        if journal is None:
            return None
        try:
            return collect(journal)
        except sqlite3.Error as exc:  # a full or locked state disk: say so, keep serving
            log.warning("status_page.journal_unreadable", error=str(exc))
            return None

    def html(self, now: float | None = None) -> str:
        """Return the page as an HTML document."""
        now = time.time() if now is None else now
        data = self._data()
        with self._lock:
            recent = list(self._recent)
            status = self._status
        head = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{int(self.refresh_s)}">'
            '<meta name="viewport" content="width=device-width">'
            f"<title>ocrwatch on {_e(self.host)}</title><style>{_STYLE}</style></head><body>"
        )
        top = (
            f"<h1>ocrwatch on {_e(self.host)}</h1>"
            f'<p id="about">version <span id="version">{_e(__version__)}</span>, up '
            f'<span id="uptime">{_e(_span(now - self.started))}</span>, as of '
            f"{_e(iso_time(now))} (this page refreshes every {int(self.refresh_s)} s; "
            'numbers for Prometheus at <a href="/metrics">/metrics</a>)</p>'
            f'<p id="status">{_e(status)}</p>'
        )
        recent_table = _table(
            "recent",
            ("finished", "file", "pages", "engine", "seconds", "outcome"),
            [
                (
                    iso_time(d.at),
                    display(d.relpath),
                    d.pages,
                    d.engine,
                    None if d.seconds is None else f"{d.seconds:.1f}",
                    d.outcome if not d.reason else f"{d.outcome} ({d.reason})",
                )
                for d in recent
            ],
            "No document finished since the daemon started.",
        )
        parts = [head, top]
        if data is None:
            parts.append('<p class="bad">The journal cannot be read right now.</p>')
            parts += ["<h2>Recent documents</h2>", recent_table]
        else:
            backlog, rest = self._journal_parts(data)
            parts += [*backlog, "<h2>Recent documents</h2>", recent_table, *rest]
        parts.append("</body></html>")
        return "".join(parts)

    def _journal_parts(self, data: dict[str, Any]) -> tuple[list[str], list[str]]:
        """Return the backlog part and the failures, workers and totals parts."""
        counts: dict[str, int] = data["counts"]
        backlog = [(s, counts[s]) for s in counts if State(s) not in TERMINAL_STATES]
        done = [(s, counts[s]) for s in counts if State(s) in TERMINAL_STATES]
        oldest = data["oldest_pending"]
        oldest_text = (
            f"oldest pending: {oldest['relpath']}, waiting {_span(oldest['age_s'])} "
            f"(since {oldest['since']})"
            if oldest
            else "nothing pending"
        )
        failures = [
            (
                f["at"],
                f["relpath"],
                f["state"],
                f["reason"],
                f["attempts"],
                f["error"],
                f["next_attempt_at"] or "",
            )
            for f in data["recent_failures"]
        ]
        workers = [(w["worker"], w["last_seen"], _span(w["age_s"])) for w in data["workers"]]
        top = [
            "<h2>Backlog</h2>",
            f'<p id="backlog">{_e(data["backlog"])} file(s) not finished; '
            f'<span id="oldest">{_e(oldest_text)}</span>; last success: '
            f"{_e(data['last_success'] or 'never')}</p>",
            _table("backlog", ("state", "files"), backlog, ""),
        ]
        rest = [
            "<h2>Recent failures and quarantines</h2>",
            _table(
                "failures",
                ("when", "file", "state", "reason", "attempts", "error", "next attempt"),
                failures,
                "No failure.",
            ),
            "<h2>Workers seen</h2>",
            _table("workers", ("worker", "last seen", "ago"), workers, "No worker seen yet."),
            "<h2>Finished (all time)</h2>",
            _table("finished", ("state", "files"), done, ""),
        ]
        return top, rest
