"""The durable per-file journal: one SQLite row per document job, in WAL mode, in state_dir.

A *job* is one arrival of one file in the inbox. Its row records where it came from
(``relpath``, relative to the inbox), what it is (sha256, size), where it is now
(``work_path`` while claimed), what happened (state, attempts, last error, reason) and what
came out (output paths), and the settings it is read with (``settings``: the versioned JSON
of the TaskSettings resolved when it was claimed). Every transition is committed before the
daemon takes the next step, so after a crash the journal says which step to redo. WAL with
``synchronous=NORMAL``: a commit survives a killed process at once; after a power cut the
last few commits may roll back, which is safe because every step is redone idempotently
(outputs are replaced by their own source, claimed files are found again in the work area).
It is what ``ocrwatch status`` reads to answer "why wasn't my scan processed?".
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

import structlog

from ocrwatch.exceptions import ConfigError, OcrwatchError, StateFullError

__all__ = [
    "CHECKPOINT_EVERY",
    "JOURNAL_NAME",
    "TERMINAL_STATES",
    "UNSET",
    "Changes",
    "Job",
    "Journal",
    "State",
    "disk_full",
    "is_full",
    "iso_time",
    "open_journal",
    "start_error",
]

log = structlog.get_logger()

JOURNAL_NAME = "journal.sqlite3"

#: Seconds between two checkpoints of the WAL (see :meth:`Journal._write`).
CHECKPOINT_EVERY = 30.0
#: WAL pages after which SQLite checkpoints by itself (its default, 1000, is 4 MB).
_WAL_PAGES = 64


def is_full(exc: BaseException) -> bool:
    """Return True when ``exc`` says the journal's disk (or quota) is full."""
    if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
        return True
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)


class State(StrEnum):
    """Where a job is in its life; the last four are terminal."""

    DISCOVERED = "discovered"  # seen in the inbox, waiting until it is stable
    STABLE = "stable"  # quiet long enough and decodable
    CLAIMED = "claimed"  # renamed into our work area (or, keep mode: reserved in place)
    WRITTEN = "written"  # sidecar + manifest durable in the outbox; the move is left
    REJECTED = "rejected"  # will not pass: the move to the quarantine is left
    RETRY = "retry"  # a transient failure; next attempt at ``next_attempt_at``
    ARCHIVED = "archived"
    KEPT = "kept"
    DELETED = "deleted"
    QUARANTINED = "quarantined"


TERMINAL_STATES = frozenset({State.ARCHIVED, State.KEPT, State.DELETED, State.QUARANTINED})


def iso_time(ts: float | None) -> str | None:
    """Return a journal timestamp (epoch seconds) as ISO 8601 UTC, or None for None."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    relpath TEXT NOT NULL,
    state TEXT NOT NULL,
    sha256 TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    work_path TEXT,
    final_path TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_error TEXT,
    reason TEXT,
    duplicate_of TEXT,
    outputs TEXT,
    pages INTEGER,
    engine TEXT,
    move_failures INTEGER NOT NULL DEFAULT 0,
    settings TEXT,
    discovered_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_relpath ON jobs (relpath);
CREATE INDEX IF NOT EXISTS jobs_sha256 ON jobs (sha256);
CREATE TABLE IF NOT EXISTS workers (name TEXT PRIMARY KEY, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS worker_refusals (
    name TEXT PRIMARY KEY, at REAL NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL
);
"""

_FIELDS = (
    "job_id",
    "relpath",
    "state",
    "sha256",
    "size",
    "mtime_ns",
    "work_path",
    "final_path",
    "attempts",
    "crashes",
    "next_attempt_at",
    "last_error",
    "reason",
    "duplicate_of",
    "outputs",
    "pages",
    "engine",
    "move_failures",
    "settings",
    "discovered_at",
    "updated_at",
    "finished_at",
)


#: Columns holding file names: stored as TEXT when the name is UTF-8, else as its raw bytes
#: (a BLOB), so that any name a filesystem allows can be journaled and found again.
_PATH_FIELDS = ("relpath", "work_path", "final_path")


def _path_in(value: str | Path | None) -> str | bytes | None:
    if value is None:
        return None
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def _path_out(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return os.fsdecode(value)
    return value


class _Unset(Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET


@dataclass(frozen=True, slots=True)
class Changes:
    """Fields to set on a job; the ones left UNSET keep their value (None clears one)."""

    sha256: str | _Unset | None = UNSET
    size: int | _Unset | None = UNSET
    mtime_ns: int | _Unset | None = UNSET
    work_path: str | _Unset | None = UNSET
    final_path: str | _Unset | None = UNSET
    attempts: int | _Unset = UNSET
    crashes: int | _Unset = UNSET
    move_failures: int | _Unset = UNSET
    next_attempt_at: float | _Unset | None = UNSET
    last_error: str | _Unset | None = UNSET
    reason: str | _Unset | None = UNSET
    duplicate_of: str | _Unset | None = UNSET
    outputs: Mapping[str, str] | _Unset | None = UNSET
    pages: int | _Unset | None = UNSET
    engine: str | _Unset | None = UNSET
    #: The job's resolved settings, as versioned JSON (``messages.dump_settings``).
    settings: str | _Unset | None = UNSET


def _encode(changes: Changes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(changes):
        value = getattr(changes, f.name)
        if value is UNSET:
            continue
        if f.name == "outputs" and value is not None:
            value = json.dumps({k: str(v) for k, v in dict(value).items()})
        elif f.name in _PATH_FIELDS:
            value = _path_in(value)
        out[f.name] = value
    return out


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the journal (a snapshot; change it through :class:`Journal`)."""

    job_id: str
    relpath: str
    state: State
    sha256: str | None
    size: int | None
    mtime_ns: int | None
    work_path: str | None
    final_path: str | None
    attempts: int
    crashes: int
    next_attempt_at: float | None
    last_error: str | None
    reason: str | None
    duplicate_of: str | None
    outputs: dict[str, str] | None
    pages: int | None
    engine: str | None
    move_failures: int
    settings: str | None
    discovered_at: float
    updated_at: float
    finished_at: float | None

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Job:
        names = row.keys()  # a journal not migrated yet (status reads it as it is)
        data: dict[str, Any] = {k: row[k] if k in names else None for k in _FIELDS}
        data["state"] = State(data["state"])
        for key in _PATH_FIELDS:
            data[key] = _path_out(data[key])
        data["outputs"] = json.loads(data["outputs"]) if data["outputs"] else None
        return cls(**data)


class Journal:
    """The SQLite journal; safe to share between threads of one process (one lock)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """Open (and create unless ``readonly``) the journal at ``path``; raises sqlite3.Error."""
        self.path = path
        self._lock = threading.Lock()
        self._next_checkpoint = time.monotonic() + CHECKPOINT_EVERY
        if readonly:
            uri = f"file:{path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=10)
        self._db.row_factory = sqlite3.Row
        if not readonly:
            # WAL: readers (ocrwatch status) never block the daemon. NORMAL instead of FULL
            # saves an fsync per transition; see the module docstring for why that is safe.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # A small WAL, shrunk after each checkpoint: see _write for why.
            self._db.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={_WAL_PAGES * 4096}")
            with self._db:
                self._db.executescript(_SCHEMA)
                self._migrate()

    def _migrate(self) -> None:
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "move_failures" not in columns:  # journals of ocrwatch 0.1
            self._db.execute("ALTER TABLE jobs ADD COLUMN move_failures INTEGER NOT NULL DEFAULT 0")
        if "settings" not in columns:  # older journals: each job's settings resolved on first use
            self._db.execute("ALTER TABLE jobs ADD COLUMN settings TEXT")
        self._db.execute("DELETE FROM jobs WHERE state = 'recognized'")  # never written

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """Hold the lock for one committed write; keep the WAL from holding the disk's space.

        By default SQLite checkpoints its WAL only past 1000 pages (4 MB) and never shrinks
        it. On a state disk that fills, the WAL then takes the space freed for it, and a
        checkpoint needs room in the database file that the WAL holds: the disk stays full
        for good (the second fill). So the WAL is checkpointed past 64 pages and shrunk
        after, every ``CHECKPOINT_EVERY`` seconds it is truncated, and at once when a write
        finds the disk full.
        """
        with self._lock:
            try:
                with self._db:
                    yield
            except sqlite3.OperationalError as exc:
                if is_full(exc):
                    self._checkpoint()  # give the WAL's space back; the caller pauses
                raise
            if time.monotonic() >= self._next_checkpoint:
                self._checkpoint()

    def _checkpoint(self) -> None:
        self._next_checkpoint = time.monotonic() + CHECKPOINT_EVERY
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:  # a reader in the way, or no room: next time
            log.debug("journal.checkpoint_failed", error=str(exc))

    def writable(self) -> bool:
        """Return True when a write commits (False on a full disk); writes a meta value."""
        try:
            self.set_meta("last_write_check", repr(time.time()))
        except sqlite3.OperationalError as exc:
            if not is_full(exc):
                raise
            return False
        return True

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (returns its space to the disk)."""
        with self._lock:
            self._checkpoint()

    # --- meta ----------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        """Return the meta value ``key`` or ``default``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Set the meta value ``key``."""
        with self._write():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def instance_id(self) -> str:
        """Return this state dir's stable daemon id (created on first use)."""
        value = self.meta("instance_id")
        if value is None:
            value = uuid.uuid4().hex[:12]
            self.set_meta("instance_id", value)
        return value

    # --- jobs ----------------------------------------------------------------------------
    def add(
        self,
        relpath: str,
        *,
        state: State = State.DISCOVERED,
        job_id: str | None = None,
        changes: Changes | None = None,
    ) -> Job:
        """Insert a new job for ``relpath`` (with ``changes`` set) and return it."""
        now = time.time()
        jid = job_id or uuid.uuid4().hex[:16]
        row: dict[str, Any] = {
            "job_id": jid,
            "relpath": _path_in(relpath),
            "state": State(state).value,
            "discovered_at": now,
            "updated_at": now,
        }
        row.update(_encode(changes or Changes()))
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._write():
            self._db.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", tuple(row.values()))
        job = self.get(jid)
        assert job is not None
        return job

    def update(
        self, job_id: str, *, state: State | None = None, changes: Changes | None = None
    ) -> Job:
        """Change ``job_id``'s state and the fields set in ``changes``; return the new row.

        Committed durably before it returns. Raises KeyError for an unknown job.
        """
        row = _encode(changes or Changes())
        now = time.time()
        row["updated_at"] = now
        if state is not None:
            row["state"] = State(state).value
            if state in TERMINAL_STATES:
                row["finished_at"] = now
        sets = ", ".join(f"{k} = ?" for k in row)
        with self._write():
            cur = self._db.execute(
                f"UPDATE jobs SET {sets} WHERE job_id = ?", (*row.values(), job_id)
            )
            if cur.rowcount != 1:
                raise KeyError(job_id)
        job = self.get(job_id)
        assert job is not None
        return job

    def remove(self, job_id: str) -> None:
        """Delete a job that never got past discovery (the file vanished or is not ours)."""
        with self._write():
            self._db.execute(
                "DELETE FROM jobs WHERE job_id = ? AND state IN (?, ?)",
                (job_id, State.DISCOVERED.value, State.STABLE.value),
            )

    def get(self, job_id: str) -> Job | None:
        """Return the job ``job_id`` or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else Job._from_row(row)

    def active_for(self, relpath: str) -> Job | None:
        """Return the unfinished job of ``relpath`` (an inbox path), or None."""
        terminal = tuple(s.value for s in TERMINAL_STATES)
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE relpath = ? AND state NOT IN (?, ?, ?, ?)"
                " ORDER BY discovered_at DESC LIMIT 1",
                (_path_in(relpath), *terminal),
            ).fetchone()
        return None if row is None else Job._from_row(row)

    def kept(self, relpath: str, *, size: int, mtime_ns: int) -> Job | None:
        """Return the finished keep-mode job for this exact file version, or None (ledger)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE relpath = ? AND size = ? AND mtime_ns = ?"
                " AND state IN (?, ?) ORDER BY finished_at DESC LIMIT 1",
                (_path_in(relpath), size, mtime_ns, State.KEPT.value, State.QUARANTINED.value),
            ).fetchone()
        return None if row is None else Job._from_row(row)

    def done_with_sha256(self, sha256: str, *, exclude: str) -> Job | None:
        """Return a successfully finished job with this content (not itself a duplicate)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE sha256 = ? AND job_id != ? AND state IN (?, ?, ?)"
                " AND duplicate_of IS NULL AND outputs IS NOT NULL"
                " ORDER BY finished_at LIMIT 1",
                (sha256, exclude, State.ARCHIVED.value, State.KEPT.value, State.DELETED.value),
            ).fetchone()
        return None if row is None else Job._from_row(row)

    def in_states(self, *states: State) -> list[Job]:
        """Return the jobs in any of ``states``, oldest first."""
        marks = ", ".join("?" for _ in states)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY discovered_at",
                tuple(s.value for s in states),
            ).fetchall()
        return [Job._from_row(r) for r in rows]

    def unfinished(self) -> list[Job]:
        """Return every job not in a terminal state, oldest first."""
        return self.in_states(*(s for s in State if s not in TERMINAL_STATES))

    def counts(self) -> dict[str, int]:
        """Return the number of jobs per state (every state present, zeros included)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            found = {r["state"]: int(r["n"]) for r in rows}
        return {s.value: found.get(s.value, 0) for s in State}

    def recent_failures(self, limit: int = 10) -> list[Job]:
        """Return the latest quarantined or retrying jobs, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY updated_at DESC LIMIT ?",
                (State.QUARANTINED.value, State.RETRY.value, limit),
            ).fetchall()
        return [Job._from_row(r) for r in rows]

    def oldest_unfinished(self) -> float | None:
        """Return when the oldest unfinished job was discovered (epoch seconds), or None."""
        terminal = tuple(s.value for s in TERMINAL_STATES)
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(discovered_at) AS t FROM jobs WHERE state NOT IN (?, ?, ?, ?)",
                terminal,
            ).fetchone()
        return None if row is None or row["t"] is None else float(row["t"])

    def worker_seen(self, name: str, at: float) -> None:
        """Record that worker ``name`` (host:pid) answered or beat at ``at``.

        Only for ``status``: on a full disk the record is skipped, never the result with it.
        """
        try:
            with self._write():
                self._db.execute(
                    "INSERT INTO workers (name, last_seen) VALUES (?, ?) ON CONFLICT(name) "
                    "DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)",
                    (name, at),
                )
        except sqlite3.OperationalError as exc:
            if not is_full(exc):
                raise

    def worker_refused(self, name: str, reason: str, at: float | None = None) -> None:
        """Record that worker ``name`` refused a task (it lacks an engine or a language)."""
        at = time.time() if at is None else at
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO worker_refusals (name, at, reason, count) VALUES (?, ?, ?, 1) "
                "ON CONFLICT(name) DO UPDATE SET at = excluded.at, reason = excluded.reason, "
                "count = count + 1",
                (name, at, reason),
            )

    def worker_refusals(self) -> dict[str, tuple[float, str, int]]:
        """Return each refusing worker's last refusal: (time, reason, how many in all)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM worker_refusals ORDER BY name").fetchall()
        return {str(r["name"]): (float(r["at"]), str(r["reason"]), int(r["count"])) for r in rows}

    def workers(self) -> dict[str, float]:
        """Return every worker seen with its last answer or heartbeat (epoch seconds)."""
        with self._lock:
            rows = self._db.execute("SELECT name, last_seen FROM workers ORDER BY name").fetchall()
        return {str(r["name"]): float(r["last_seen"]) for r in rows}

    def last_success(self) -> float | None:
        """Return the finish time of the latest successful job, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(finished_at) AS t FROM jobs WHERE state IN (?, ?, ?)",
                (State.ARCHIVED.value, State.KEPT.value, State.DELETED.value),
            ).fetchone()
        return None if row is None or row["t"] is None else float(row["t"])


def open_journal(path: Path) -> tuple[Journal, str]:
    """Open the daemon's journal at start; return it with the daemon's instance id.

    Raises StateFullError (exit 75: systemd starts the daemon again; the journal is kept)
    when its disk is full, ConfigError (exit 3) for anything else: a folder that cannot be
    written, a damaged file.
    """
    try:
        journal = Journal(path)
    except (sqlite3.Error, OSError) as exc:
        damaged = "if it is damaged, move it away: files already claimed are found again"
        raise start_error(f"cannot open the journal {path}", exc, path.parent, damaged) from exc
    try:
        return journal, journal.instance_id()
    except sqlite3.Error as exc:
        journal.close()
        raise start_error(f"cannot write the journal in {path.parent}", exc, path.parent) from exc


#: Below this much free space the state disk counts as full: SQLite then fails in ways that
#: do not say so (opening a journal whose shared-memory file cannot be made is an "I/O error").
_FULL_BELOW = 1 << 20


def disk_full(folder: Path) -> bool:
    """Return True when the filesystem holding ``folder`` has (almost) no space left."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _FULL_BELOW


def start_error(what: str, exc: Exception, state_dir: Path, hint: str = "") -> OcrwatchError:
    """Return the start-up error for journal failure ``exc``: StateFullError on a full disk.

    A full disk is not the journal's fault: the message says to free space and keeps the
    journal (moving it away would forget what was claimed); other failures get ``hint``.
    """
    if is_full(exc) or disk_full(state_dir):
        return StateFullError(
            f"{what} ({exc}): the disk is full; free space on {state_dir}'s disk, the journal "
            "is kept (systemd starts the daemon again by itself)"
        )
    return ConfigError(f"{what} ({exc}){'; ' + hint if hint else ''}")
