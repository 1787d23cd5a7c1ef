"""``ocrwatch status``: counts per state, backlog, oldest, failures, and unjournaled files.

Reads the daemon's journal read-only (SQLite WAL lets it do so while the daemon runs), and
counts the inbox files the journal does not know yet (waiting for their quiet period, or
for a journal that cannot be written), so the backlog is true even then.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ocrwatch.daemon.folders import resolve_layout
from ocrwatch.daemon.journal import (
    JOURNAL_NAME,
    TERMINAL_STATES,
    Job,
    Journal,
    State,
    iso_time,
)
from ocrwatch.daemon.messages import load_settings
from ocrwatch.daemon.watch import scan
from ocrwatch.exceptions import ExitCode
from ocrwatch.support.fsutil import display

if TYPE_CHECKING:
    from ocrwatch.settings.model import Settings

__all__ = ["collect", "report", "unjournaled"]


def unjournaled(inbox: Path, pending: list[Job], *, extra: tuple[str, ...] = ()) -> int:
    """Return how many files wait in ``inbox`` without an unfinished journal entry."""
    known = {j.relpath for j in pending}
    count = 0
    for path in scan(inbox, extra=extra):
        if path.relative_to(inbox).as_posix() not in known:
            count += 1
    return count


def _read_with(job: Job) -> dict[str, Any] | None:
    """Return the profile and languages kept with ``job`` at its claim (None: none kept)."""
    if job.settings is None:
        return None
    try:
        kept = load_settings(job.settings)
    except ValueError:
        return None  # resolved again at its next attempt
    return {"profile": kept.profile, "languages": list(kept.languages)}


def _workers(journal: Journal) -> dict[str, float]:
    try:
        return journal.workers()
    except sqlite3.OperationalError:  # a journal of an older ocrwatch, opened read-only
        return {}


def _worker_rows(journal: Journal, now: float) -> list[dict[str, Any]]:
    """Return every worker seen, with its last refusal when it refused tasks."""
    seen = _workers(journal)
    try:
        refusals = journal.worker_refusals()
    except sqlite3.OperationalError:
        refusals = {}
    rows: list[dict[str, Any]] = []
    for name in sorted(set(seen) | set(refusals)):
        at = seen.get(name, refusals[name][0] if name in refusals else now)
        row: dict[str, Any] = {
            "worker": name,
            "last_seen": iso_time(at),
            "age_s": round(now - at, 1),
        }
        if name in refusals:
            when, reason, count = refusals[name]
            row.update(refuses=reason, refusals=count, last_refusal=iso_time(when))
        rows.append(row)
    return rows


def collect(
    journal: Journal, *, inbox: Path | None = None, now: float | None = None
) -> dict[str, Any]:
    """Return the status figures of ``journal`` (and ``inbox``) as JSON-able data."""
    now = time.time() if now is None else now
    counts = journal.counts()
    pending = journal.unfinished()
    waiting = unjournaled(inbox, pending) if inbox is not None and inbox.is_dir() else 0
    oldest = min((j.discovered_at for j in pending), default=None)
    failures = [
        {
            "relpath": display(j.relpath),
            "state": j.state.value,
            "reason": j.reason,
            "error": (j.last_error or "").splitlines()[0] if j.last_error else None,
            "attempts": j.attempts,
            "read_with": _read_with(j),
            "at": iso_time(j.updated_at),
            "next_attempt_at": iso_time(j.next_attempt_at) if j.state is State.RETRY else None,
            "quarantined_as": (
                display(j.final_path) if j.final_path and j.state is State.QUARANTINED else None
            ),
        }
        for j in journal.recent_failures()
    ]
    return {
        "journal": str(journal.path),
        "counts": counts,
        "unjournaled": waiting,
        "backlog": waiting + sum(n for s, n in counts.items() if State(s) not in TERMINAL_STATES),
        "oldest_pending": oldest
        and {
            "relpath": display(next(j.relpath for j in pending if j.discovered_at == oldest)),
            "since": iso_time(oldest),
            "age_s": round(now - oldest, 1),
        },
        "last_success": iso_time(journal.last_success()),
        "workers": _worker_rows(journal, now),
        "recent_failures": failures,
    }


def report(settings: Settings, *, as_json: bool) -> int:
    """Print the daemon's status for ``settings``; return 0, or 3 when there is no journal.

    Raises ConfigError when inbox/outbox are not set (the state dir default needs them).
    """
    layout = resolve_layout(settings)
    path = layout.state_dir / JOURNAL_NAME
    if not path.is_file():
        print(
            f"ocrwatch: error: no journal at {path}: the daemon has not run with these "
            "settings (check --state-dir/--inbox)",
            file=sys.stderr,
        )
        return int(ExitCode.CONFIG)
    journal = Journal(path, readonly=True)
    try:
        data = collect(journal, inbox=layout.inbox)
    finally:
        journal.close()
    data["folders"] = {
        "inbox": display(layout.inbox),
        "outbox": display(layout.outbox),
        "archive": display(layout.archive),
        "quarantine": display(layout.quarantine),
        "state_dir": display(layout.state_dir),
    }
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _print(data)
    return int(ExitCode.OK)


def _print(data: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="ocrwatch journal", show_header=True)
    table.add_column("state")
    table.add_column("files", justify="right")
    for state, n in data["counts"].items():
        table.add_row(state, str(n))
    console.print(table)
    console.print(f"backlog: {data['backlog']} file(s) not finished")
    if data["unjournaled"]:
        console.print(f"  of which {data['unjournaled']} in the inbox, not journaled yet")
    oldest = data["oldest_pending"]
    if oldest:
        console.print(
            f"oldest pending: {oldest['relpath']} since {oldest['since']} ({oldest['age_s']} s)"
        )
    console.print(f"last success: {data['last_success'] or 'never'}")
    if data["workers"]:
        workers = Table(title="workers seen", show_header=True)
        for col in ("worker", "last seen", "seconds ago", "refuses"):
            workers.add_column(col)
        for w in data["workers"]:
            refuses = f"{w['refusals']}x: {w['refuses']}" if w.get("refuses") else ""
            workers.add_row(w["worker"], w["last_seen"], str(w["age_s"]), refuses)
        console.print(workers)
    console.print(f"quarantine: {data['folders']['quarantine']}")
    if data["recent_failures"]:
        fails = Table(title="recent failures", show_header=True)
        for col in ("file", "state", "reason", "attempts", "read as", "error"):
            fails.add_column(col)
        for f in data["recent_failures"]:
            read = f["read_with"]
            read_as = "+".join(read["languages"]) if read else ""
            if read and read["profile"]:
                read_as = f"{read['profile']}: {read_as}"
            row = (f["relpath"], f["state"], f["reason"] or "", str(f["attempts"]), read_as)
            fails.add_row(*row, f["error"] or "")
        console.print(fails)
