"""``ocrwatch run`` on a really full disk (tmpfs): wait, retry, lose nothing, then finish."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.conftest import Daemon, Folders, SidecarChecker, sha256, wait_until, write_doc
from fsutil import fill_up
from ocrwatch.exceptions import ExitCode

pytestmark = pytest.mark.e2e


def events(daemon: Daemon) -> list[dict[str, object]]:
    """Return the daemon's JSON log lines (its stdout) over all its runs."""
    found = []
    for path in daemon.logs:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
    return found


def retried(daemon: Daemon) -> set[str]:
    """Return the relpaths the daemon scheduled a retry for."""
    return {str(e["relpath"]) for e in events(daemon) if e["event"] == "document.retry_scheduled"}


def hidden_files(root: Path) -> list[Path]:
    """Return temporary files under ``root`` that a failed write left behind."""
    return [p for p in root.rglob(".*.tmp") if p.is_file()]


def held(folders: Folders, digest: str) -> bool:
    """Return True when a file with ``digest`` is still in the work area or the inbox."""
    return any(p.is_file() and sha256(p) == digest for p in folders.inbox.rglob("*"))


def drop_inputs(folders: Folders) -> tuple[dict[str, str], dict[str, int], set[str]]:
    """Drop good, corrupt and unsupported files; return (sha256 by relpath, good, bad)."""
    good = {"a.png": 1, "sub/b.png": 2, "sub/deeper/c.png": 3, "d.jpg": 4}
    inputs = {rel: sha256(write_doc(folders.inbox / rel, n)) for rel, n in good.items()}
    whole = write_doc(folders.root / "whole.png", 9).read_bytes()
    (folders.inbox / "bad.png").write_bytes(whole[: len(whole) // 3])
    (folders.inbox / "notes.docx").write_bytes(b"PK\x03\x04 not really a docx")
    for rel in ("bad.png", "notes.docx"):
        inputs[rel] = sha256(folders.inbox / rel)
    return inputs, good, {"bad.png", "notes.docx"}


def assert_finished(folders: Folders, inputs: dict[str, str], good: dict[str, int]) -> None:
    """Good files: one sidecar with their text, archived; the rest: one quarantine entry."""
    for rel, digest in inputs.items():
        cars, quarantined = folders.sidecars(rel), folders.quarantined(rel)
        if rel in good:
            assert len(cars) == 1 and not quarantined, (rel, cars, quarantined)
            assert f"Document {good[rel]}" in cars[0].read_text()
            assert sha256(folders.archive / rel) == digest
        else:
            assert len(quarantined) == 1 and not cars, (rel, cars, quarantined)
            assert sha256(quarantined[0].with_name(Path(rel).name)) == digest
    assert not folders.claimed()


class TestFullOutbox:
    """The outbox filesystem (with the default archive and quarantine in it) fills up."""

    def test_waits_for_space_then_finishes(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        make_tmpfs: Callable[[Path, str], Path],
    ) -> None:
        """While the outbox is full the daemon keeps running, retries, writes no partial
        sidecar or temporary file, quarantines and loses nothing; once space returns every
        file gets its sidecar (or its quarantine entry) and the outbox log stays valid."""
        make_tmpfs(folders.outbox, "2m")
        daemon = make_daemon().start()
        # One file first, so the outbox log exists with room left in its last page: a
        # failed append must not leave half a line there.
        write_doc(folders.inbox / "first.png", 0)
        wait_until(
            lambda: any(x["event"] == "document.processed" for x in folders.log_lines()),
            timeout=60,
            what="the first file",
        )
        fill_up(folders.outbox)
        with SidecarChecker(folders.outbox) as checker:
            inputs, good, _bad = drop_inputs(folders)
            wait_until(
                lambda: retried(daemon) >= set(inputs), timeout=60, what="a retry of each file"
            )
            assert daemon.alive()
            for rel, digest in inputs.items():
                assert not folders.sidecars(rel) and not folders.quarantined(rel), rel
                assert held(folders, digest), f"{rel} is neither in the inbox nor the work area"
            assert not hidden_files(folders.outbox), hidden_files(folders.outbox)
            reasons = {
                str(e["reason"])
                for e in events(daemon)
                if e["event"] == "document.retry_scheduled" and e["relpath"] in good
            }
            assert reasons == {"output_transient"}, reasons
            folders.log_lines()  # every line still parses

            (folders.outbox / "ballast").unlink()
            wait_until(lambda: folders.accounted(list(inputs)), timeout=60, what="all files")
        assert daemon.stop() == 0
        assert not checker.problems, checker.problems[:5]
        assert_finished(folders, inputs, good)
        assert not hidden_files(folders.outbox), hidden_files(folders.outbox)
        lines = folders.log_lines()
        processed = [str(x["relpath"]) for x in lines if x["event"] == "document.processed"]
        assert sorted(processed) == sorted(["first.png", *good])
        quarantined = [str(x["relpath"]) for x in lines if x["event"] == "document.quarantined"]
        assert sorted(quarantined) == ["bad.png", "notes.docx"]
        assert not daemon.count("daemon.internal_error"), daemon.output()


class TestFullArchive:
    """Outputs can be written but the archive and quarantine filesystem is full."""

    def test_originals_wait_in_the_work_area(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        make_tmpfs: Callable[[Path, str], Path],
    ) -> None:
        """Sidecars are written once and not redone while the archive is full; originals
        (and files bound for the quarantine) wait in the work area and move once there is
        room again."""
        vault = make_tmpfs(folders.root / "vault", "1m")
        daemon = make_daemon(archive=vault / "archive", quarantine=vault / "quarantine")
        daemon.start()
        fill_up(vault)
        inputs, good, bad = drop_inputs(folders)
        wait_until(
            lambda: all(folders.sidecars(rel) for rel in good) and retried(daemon) >= set(inputs),
            timeout=60,
            what="sidecars written and a retry of each file",
        )
        assert daemon.alive()
        for rel, digest in inputs.items():
            assert held(folders, digest), f"{rel} is neither in the inbox nor the work area"
            assert not folders.quarantined(rel) if rel in bad else True
        assert not hidden_files(vault), hidden_files(vault)

        (vault / "ballast").unlink()
        wait_until(
            lambda: (
                all(list((vault / "archive").rglob(Path(r).name)) for r in good)
                and all(list((vault / "quarantine").glob(f"{r}.reason.json")) for r in bad)
            ),
            timeout=60,
            what="archive and quarantine",
        )
        assert daemon.stop() == 0
        for rel, n in good.items():
            cars = folders.sidecars(rel)
            assert len(cars) == 1 and f"Document {n}" in cars[0].read_text()
            manifest = json.loads(cars[0].with_suffix(".json").read_text())
            # Written once: retrying the archive step did not recognize the file again.
            assert manifest["job"]["attempt"] == 1, (rel, manifest["job"])
            assert sha256(vault / "archive" / rel) == inputs[rel]
        for rel in bad:
            assert sha256(vault / "quarantine" / rel) == inputs[rel]
            assert not folders.sidecars(rel)
        assert not folders.claimed()
        processed = [
            str(x["relpath"]) for x in folders.log_lines() if x["event"] == "document.processed"
        ]
        assert sorted(processed) == sorted(good)
        assert not daemon.count("daemon.internal_error"), daemon.output()


class TestFullStateDisk:
    """The state folder (the journal) has no room when the daemon starts."""

    def test_exits_for_a_restart_then_runs_once_space_returns(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        make_tmpfs: Callable[[Path, str], Path],
    ) -> None:
        """Exit 75 (systemd's Restart=on-failure starts it again; 3 and 4 it would not),
        saying the disk is full; the next start after space returns reads the inbox."""
        make_tmpfs(folders.state, "1m")
        fill_up(folders.state)
        daemon = make_daemon()
        write_doc(folders.inbox / "a.png", 1)
        proc = subprocess.run(
            [sys.executable, "-m", "ocrwatch", "run", *daemon.args],
            env=daemon.env,
            cwd=folders.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == int(ExitCode.TEMPFAIL) == 75, proc.stderr
        assert "disk is full" in proc.stderr, proc.stderr
        assert (folders.inbox / "a.png").exists() and not folders.sidecars("a.png")

        (folders.state / "ballast").unlink()
        daemon.start()
        wait_until(lambda: folders.sidecars("a.png"), timeout=60, what="the sidecar")
        assert daemon.stop() == 0
