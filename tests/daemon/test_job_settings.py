"""The settings a job is read with are kept in the journal: round trip and migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ocrwatch.daemon.journal import Changes, Journal, State
from ocrwatch.daemon.messages import SCHEMA_VERSION, TaskSettings, dump_settings, load_settings
from ocrwatch.daemon.status import collect
from ocrwatch.settings.model import load_settings as load_config

#: The jobs table of a journal written before the settings were kept with each job.
_OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY, relpath TEXT NOT NULL, state TEXT NOT NULL, sha256 TEXT,
    size INTEGER, mtime_ns INTEGER, work_path TEXT, final_path TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, crashes INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL, last_error TEXT, reason TEXT, duplicate_of TEXT, outputs TEXT,
    pages INTEGER, engine TEXT, move_failures INTEGER NOT NULL DEFAULT 0,
    discovered_at REAL NOT NULL, updated_at REAL NOT NULL, finished_at REAL
);
INSERT INTO jobs (job_id, relpath, state, work_path, discovered_at, updated_at)
VALUES ('old', 'a.png', 'claimed', '/w/a.png', 1.0, 1.0);
"""


def spanish() -> TaskSettings:
    return TaskSettings.resolve(load_config(overrides={"languages": "spa"}), "x/a.png")


class TestKeptSettings:
    """TaskSettings survive the journal; an older journal gains the column."""

    def test_round_trip(self, tmp_path: Path) -> None:
        """The settings stored at claim come back equal, after the journal is reopened."""
        resolved = spanish()
        journal = Journal(tmp_path / "j.sqlite3")
        job = journal.add("x/a.png")
        assert job.settings is None
        journal.update(
            job.job_id, state=State.CLAIMED, changes=Changes(settings=dump_settings(resolved))
        )
        journal.close()
        again = Journal(tmp_path / "j.sqlite3")
        stored = again.get(job.job_id)
        assert stored is not None and stored.settings is not None
        assert load_settings(stored.settings) == resolved
        assert load_settings(stored.settings).languages == ("spa",)
        again.close()

    def test_old_journal_is_migrated(self, tmp_path: Path) -> None:
        """A journal without the column opens (read-only too); its jobs have no settings yet."""
        path = tmp_path / "j.sqlite3"
        with sqlite3.connect(path) as db:
            db.executescript(_OLD_SCHEMA)
        readonly = Journal(path, readonly=True)
        old = readonly.get("old")
        assert old is not None and old.settings is None
        readonly.close()
        journal = Journal(path)
        old = journal.get("old")
        assert old is not None and old.settings is None and old.state is State.CLAIMED
        journal.update("old", changes=Changes(settings=dump_settings(spanish())))
        old = journal.get("old")
        assert old is not None and old.settings is not None
        journal.close()

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("not json", "not ocrwatch task settings"),
            ('{"v":1,"settings":{}}', "version 1"),
            (f'{{"v":{SCHEMA_VERSION},"settings":{{"digest":3}}}}', "malformed"),
        ],
    )
    def test_unreadable(self, text: str, match: str) -> None:
        """Another version, garbage, or values that do not match their digest: ValueError."""
        with pytest.raises(ValueError, match=match):
            load_settings(text)

    def test_digest_must_match(self) -> None:
        """Values edited after they were resolved are not taken for the resolved ones."""
        text = dump_settings(spanish()).replace('"spa"', '"eng"')
        with pytest.raises(ValueError, match="digest"):
            load_settings(text)


def test_status_shows_what_a_retrying_file_is_read_with(tmp_path: Path) -> None:
    """``ocrwatch status`` names the kept profile and languages of a file waiting to retry."""
    profile = {"match": "es/**", "name": "spanish", "languages": "spa"}
    kept = TaskSettings.resolve(load_config(overrides={"profiles": [profile]}), "es/a.png")
    journal = Journal(tmp_path / "j.sqlite3")
    job = journal.add("es/a.png")
    journal.update(job.job_id, state=State.RETRY, changes=Changes(settings=dump_settings(kept)))
    other = journal.add("b.png")
    journal.update(other.job_id, state=State.RETRY, changes=Changes(settings="garbage"))
    rows = {f["relpath"]: f for f in collect(journal)["recent_failures"]}
    assert rows["es/a.png"]["read_with"] == {"profile": "spanish", "languages": ["spa"]}
    assert rows["b.png"]["read_with"] is None
    journal.close()
