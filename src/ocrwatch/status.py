"""``ocrwatch status``: what the journal says: counts per state, backlog, oldest, failures.

Reads the daemon's journal read-only (SQLite WAL lets it do so while the daemon runs).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ocrwatch.exceptions import ExitCode
from ocrwatch.journal import JOURNAL_NAME, TERMINAL_STATES, Journal, State, iso_time
from ocrwatch.spool import resolve_layout

if TYPE_CHECKING:
    from ocrwatch.config import Settings

__all__ = ["collect", "report"]


def collect(journal: Journal, *, now: float | None = None) -> dict[str, Any]:
    """Return the status figures of ``journal`` as JSON-able data."""
    now = time.time() if now is None else now
    counts = journal.counts()
    pending = journal.unfinished()
    oldest = min((j.discovered_at for j in pending), default=None)
    failures = [
        {
            "relpath": j.relpath,
            "state": j.state.value,
            "reason": j.reason,
            "error": (j.last_error or "").splitlines()[0] if j.last_error else None,
            "attempts": j.attempts,
            "at": iso_time(j.updated_at),
            "next_attempt_at": iso_time(j.next_attempt_at) if j.state is State.RETRY else None,
            "quarantined_as": j.final_path if j.state is State.QUARANTINED else None,
        }
        for j in journal.recent_failures()
    ]
    return {
        "journal": str(journal.path),
        "counts": counts,
        "backlog": sum(n for s, n in counts.items() if State(s) not in TERMINAL_STATES),
        "oldest_pending": oldest
        and {
            "relpath": next(j.relpath for j in pending if j.discovered_at == oldest),
            "since": iso_time(oldest),
            "age_s": round(now - oldest, 1),
        },
        "last_success": iso_time(journal.last_success()),
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
        data = collect(journal)
    finally:
        journal.close()
    data["folders"] = {
        "inbox": str(layout.inbox),
        "outbox": str(layout.outbox),
        "archive": str(layout.archive),
        "quarantine": str(layout.quarantine),
        "state_dir": str(layout.state_dir),
    }
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return int(ExitCode.OK)
    console = Console()
    table = Table(title="ocrwatch journal", show_header=True)
    table.add_column("state")
    table.add_column("files", justify="right")
    for state, n in data["counts"].items():
        table.add_row(state, str(n))
    console.print(table)
    console.print(f"backlog: {data['backlog']} file(s) not finished")
    oldest = data["oldest_pending"]
    if oldest:
        console.print(
            f"oldest pending: {oldest['relpath']} since {oldest['since']} ({oldest['age_s']} s)"
        )
    console.print(f"last success: {data['last_success'] or 'never'}")
    console.print(f"quarantine: {layout.quarantine}")
    if data["recent_failures"]:
        fails = Table(title="recent failures", show_header=True)
        for col in ("file", "state", "reason", "attempts", "error"):
            fails.add_column(col)
        for f in data["recent_failures"]:
            fails.add_row(
                f["relpath"], f["state"], f["reason"] or "", str(f["attempts"]), f["error"] or ""
            )
        console.print(fails)
    return int(ExitCode.OK)
