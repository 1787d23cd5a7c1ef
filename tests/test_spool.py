"""Claiming by rename, layout checks, archive and quarantine moves."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path, PurePosixPath

import pytest

from ocrwatch.daemon.folders import Layout, check_layout, resolve_layout
from ocrwatch.daemon.spool import Spool
from ocrwatch.exceptions import ConfigError
from ocrwatch.settings.model import Settings
from ocrwatch.support.fsutil import durable_move


def make_layout(tmp_path: Path) -> Layout:
    inbox = tmp_path / "in"
    outbox = tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    settings = Settings(inbox=inbox, outbox=outbox, state_dir=tmp_path / "state")
    layout = resolve_layout(settings)
    check_layout(layout)
    return layout


def _claim_worker(inbox: str, outbox: str, state: str, instance: str, results: object) -> None:
    settings = Settings(inbox=Path(inbox), outbox=Path(outbox), state_dir=Path(state))
    spool = Spool(resolve_layout(settings), instance_id=instance)
    won = 0
    for i in range(50):
        try:
            spool.claim(Path(inbox) / f"f{i}.png", PurePosixPath(f"f{i}.png"), f"job{i}")
            won += 1
        except FileNotFoundError:
            pass
    results.put((instance, won))  # type: ignore[attr-defined]


class TestLayout:
    """Defaults are outside the inbox; unsafe layouts are refused with ConfigError."""

    def test_defaults(self, tmp_path: Path) -> None:
        """archive/quarantine default inside the outbox's .ocrwatch, state dir per inbox."""
        layout = make_layout(tmp_path)
        assert layout.archive == tmp_path / "out" / ".ocrwatch" / "archive"
        assert layout.quarantine == tmp_path / "out" / ".ocrwatch" / "quarantine"
        assert layout.archive.is_dir() and layout.quarantine.is_dir()
        env_default = resolve_layout(
            Settings(inbox=tmp_path / "in", outbox=tmp_path / "out"),
            environ={"STATE_DIRECTORY": str(tmp_path / "sd")},
        )
        assert env_default.state_dir.parent == tmp_path / "sd"

    @pytest.mark.parametrize("where", ["outbox", "archive", "quarantine", "state_dir"])
    def test_inside_inbox_refused(self, tmp_path: Path, where: str) -> None:
        """Any of our folders inside the inbox is a configuration error."""
        (tmp_path / "in").mkdir()
        (tmp_path / "out").mkdir()
        kw = {"inbox": tmp_path / "in", "outbox": tmp_path / "out", "state_dir": tmp_path / "s"}
        kw[where] = tmp_path / "in" / "x"
        (tmp_path / "in" / "x").mkdir()
        with pytest.raises(ConfigError, match="inside the inbox"):
            check_layout(resolve_layout(Settings(**kw)))

    def test_inbox_inside_outbox_refused(self, tmp_path: Path) -> None:
        """An inbox below the outbox is refused too."""
        (tmp_path / "out" / "in").mkdir(parents=True)
        settings = Settings(
            inbox=tmp_path / "out" / "in", outbox=tmp_path / "out", state_dir=tmp_path / "s"
        )
        with pytest.raises(ConfigError, match="inside the outbox"):
            check_layout(resolve_layout(settings))

    def test_missing_inbox_refused(self, tmp_path: Path) -> None:
        """A missing inbox is refused, not created."""
        (tmp_path / "out").mkdir()
        settings = Settings(
            inbox=tmp_path / "nope", outbox=tmp_path / "out", state_dir=tmp_path / "s"
        )
        with pytest.raises(ConfigError, match="does not exist"):
            check_layout(resolve_layout(settings))

    def test_escaping_symlink_refused(self, tmp_path: Path) -> None:
        """A symlink in the inbox pointing outside it stops the start."""
        layout = make_layout(tmp_path)
        (tmp_path / "secret.png").write_bytes(b"x")
        (layout.inbox / "link.png").symlink_to(tmp_path / "secret.png")
        with pytest.raises(ConfigError, match="symlink"):
            check_layout(layout)


class TestClaim:
    """Claiming is an atomic rename into this daemon's work area."""

    def test_claim_moves_and_leftovers_lists(self, tmp_path: Path) -> None:
        """The file moves under work/<instance>/<job>/<relpath>; leftovers() finds it."""
        layout = make_layout(tmp_path)
        (layout.inbox / "a").mkdir()
        src = layout.inbox / "a" / "s.png"
        src.write_bytes(b"data")
        spool = Spool(layout, instance_id="me")
        work = spool.claim(src, PurePosixPath("a/s.png"), "j1")
        assert not src.exists() and work.read_bytes() == b"data"
        assert work == layout.inbox / ".ocrwatch-work" / "me" / "j1" / "a" / "s.png"
        assert list(spool.leftovers()) == [("j1", PurePosixPath("a/s.png"), work)]
        assert list(Spool(layout, instance_id="other").leftovers()) == []

    def test_claim_refuses_symlink(self, tmp_path: Path) -> None:
        """A symlink is never claimed (never followed)."""
        layout = make_layout(tmp_path)
        (layout.inbox / "t.png").write_bytes(b"x")
        (layout.inbox / "l.png").symlink_to(layout.inbox / "t.png")
        with pytest.raises(PermissionError):
            Spool(layout, instance_id="me").claim(
                layout.inbox / "l.png", PurePosixPath("l.png"), "j"
            )

    def test_two_claimers_one_wins(self, tmp_path: Path) -> None:
        """Two processes claiming the same 50 files: each file is won exactly once."""
        layout = make_layout(tmp_path)
        for i in range(50):
            (layout.inbox / f"f{i}.png").write_bytes(b"x")
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        procs = [
            ctx.Process(
                target=_claim_worker,
                args=(str(layout.inbox), str(layout.outbox), str(layout.state_dir), name, results),
            )
            for name in ("A", "B")
        ]
        for p in procs:
            p.start()
        won = dict(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=30)
        assert won["A"] + won["B"] == 50
        claimed = list((layout.inbox / ".ocrwatch-work").rglob("f*.png"))
        assert len(claimed) == 50
        assert not list(layout.inbox.glob("f*.png"))


class TestMoves:
    """Archive and quarantine never clobber; quarantine explains itself."""

    def test_archive_numbered_on_collision(self, tmp_path: Path) -> None:
        """A second original with the same relpath is archived as name.2.ext."""
        layout = make_layout(tmp_path)
        spool = Spool(layout, instance_id="me")
        for i, body in enumerate((b"one", b"two")):
            src = layout.inbox / "s.png"
            src.write_bytes(body)
            work = spool.claim(src, PurePosixPath("s.png"), f"j{i}")
            spool.archive(work, PurePosixPath("s.png"))
        assert (layout.archive / "s.png").read_bytes() == b"one"
        assert (layout.archive / "s.2.png").read_bytes() == b"two"

    def test_durable_move_across_filesystems(self, tmp_path: Path) -> None:
        """/dev/shm is another filesystem: the copy keeps the content, the source goes."""
        shm = Path("/dev/shm")
        if not shm.is_dir():  # pragma: no cover
            pytest.fail("/dev/shm is needed for the cross-device move test")
        src = shm / f"ocrwatch-test-{os.getpid()}.png"
        src.write_bytes(b"payload")
        try:
            dst = durable_move(src, tmp_path / "a" / "x.png")
        finally:
            src.unlink(missing_ok=True)
        assert dst.read_bytes() == b"payload" and not src.exists()
        assert not [p for p in dst.parent.iterdir() if p.name.endswith(".tmp")]

    def test_quarantine_with_reason(self, tmp_path: Path) -> None:
        """The original goes to quarantine/<relpath> with <name>.reason.json beside it."""
        layout = make_layout(tmp_path)
        spool = Spool(layout, instance_id="me")
        (layout.inbox / "d").mkdir()
        src = layout.inbox / "d" / "bad.pdf"
        src.write_bytes(b"%PDF-broken")
        work = spool.claim(src, PurePosixPath("d/bad.pdf"), "j")
        target = spool.quarantine(
            work, PurePosixPath("d/bad.pdf"), reason="corrupt_file", message="truncated", attempts=2
        )
        assert target == layout.quarantine / "d" / "bad.pdf"
        assert target.read_bytes() == b"%PDF-broken"
        reason = json.loads((layout.quarantine / "d" / "bad.pdf.reason.json").read_text())
        assert reason["reason"] == "corrupt_file" and reason["attempts"] == 2
        assert {"message", "quarantined_at", "ocrwatch_version", "source"} <= set(reason)

    def test_interrupted_move_is_finished_not_duplicated(self, tmp_path: Path) -> None:
        """A crash after linking into the archive but before unlinking the source: the redo
        reuses the archived copy instead of adding name.2.ext."""
        layout = make_layout(tmp_path)
        spool = Spool(layout, instance_id="me")
        src = layout.inbox / "s.png"
        src.write_bytes(b"scan")
        work = spool.claim(src, PurePosixPath("s.png"), "j")
        (layout.archive / "s.png").parent.mkdir(parents=True, exist_ok=True)
        os.link(work, layout.archive / "s.png")  # what the crashed run got done
        assert spool.archive(work, PurePosixPath("s.png")) == layout.archive / "s.png"
        assert not work.exists()
        assert sorted(p.name for p in layout.archive.iterdir()) == ["s.png"]
