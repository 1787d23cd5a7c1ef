"""A daemon's stages wired on tmp_path with a real SQLite journal (no processes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocrwatch.daemon.disposition import Disposition
from ocrwatch.daemon.folders import Layout, Mounts, check_layout, resolve_layout
from ocrwatch.daemon.intake import Intake
from ocrwatch.daemon.journal import JOURNAL_NAME, Journal
from ocrwatch.daemon.spool import Spool
from ocrwatch.settings.model import Settings, load_settings


@dataclass
class Stages:
    """Everything the coordinator wires, for one test."""

    settings: Settings
    layout: Layout
    mounts: Mounts
    journal: Journal
    spool: Spool
    intake: Intake
    disposition: Disposition


def build(tmp_path: Path, state_dir: Path | None = None, **overrides: object) -> Stages:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir(exist_ok=True)
    outbox.mkdir(exist_ok=True)
    values: dict[str, object] = {
        "inbox": str(inbox),
        "outbox": str(outbox),
        "state_dir": str(state_dir or tmp_path / "state"),
        "quiet_period": 0.0,
        "retry": {"wait_initial": 0.1, "wait_max": 0.2, "wait_jitter": 0.0, "file_crashes": 2},
    }
    values.update(overrides)
    settings = load_settings(config_file=None, overrides=values)
    layout = resolve_layout(settings)
    check_layout(layout)
    mounts = Mounts(layout)
    mounts.claim()
    journal = Journal(layout.state_dir / JOURNAL_NAME)
    spool = Spool(layout, instance_id="me")
    return Stages(
        settings=settings,
        layout=layout,
        mounts=mounts,
        journal=journal,
        spool=spool,
        intake=Intake(settings=settings, layout=layout, journal=journal, spool=spool),
        disposition=Disposition(
            settings=settings, layout=layout, journal=journal, spool=spool, mounts=mounts
        ),
    )


@pytest.fixture
def stages(tmp_path: Path) -> Iterator[Stages]:
    s = build(tmp_path)
    yield s
    s.journal.close()
