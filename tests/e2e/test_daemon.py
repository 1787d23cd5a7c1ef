"""``ocrwatch run`` end to end: a real daemon subprocess, real files, signals and crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable

import psutil
import pytest

from e2e.conftest import (
    Daemon,
    Folders,
    SidecarChecker,
    base_env,
    sha256,
    wait_until,
    write_doc,
)
from imaging import render_lines, save
from redisserver import free_port

pytestmark = pytest.mark.e2e

#: How many files the "many at once" test drops (the issue asks for 200).
MANY = int(os.environ.get("OCRWATCH_E2E_MANY", "200"))


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_exactly_once(folders: Folders, inputs: dict[str, str], *, ok: set[str]) -> None:
    """Each input has exactly one sidecar (those in ``ok``) or one quarantine entry."""
    for rel, digest in inputs.items():
        cars = folders.sidecars(rel)
        quarantined = folders.quarantined(rel)
        if rel in ok:
            assert len(cars) == 1 and not quarantined, (rel, cars, quarantined)
            manifest = json.loads(cars[0].with_suffix(".json").read_text())
            assert manifest["source"]["sha256"] == digest  # the original was never modified
            archived = folders.archive / rel
            assert archived.exists() and sha256(archived) == digest
        else:
            assert len(quarantined) == 1 and not cars, (rel, cars, quarantined)
    assert not folders.claimed()


class TestStartupAndBasics:
    """Files present at start, nested folders, same names, junk and bad inputs."""

    def test_present_at_start(self, folders: Folders, make_daemon: Callable[..., Daemon]) -> None:
        """Every file gets one sidecar or a quarantine with a reason; junk is left alone."""
        inputs: dict[str, str] = {}
        for rel, n in (("a.png", 1), ("sub/a.png", 2), ("sub/deeper/c.jpg", 3), ("x/scan.tif", 4)):
            inputs[rel] = sha256(write_doc(folders.inbox / rel, n))
        bad = {
            "bad.png": b"this is not an image at all\n",
            "empty.png": b"",
            "trunc.png": (folders.root / "t.png").write_bytes(b"") or b"",
            "notes.docx": b"PK\x03\x04 not really a docx",
        }
        good_png = write_doc(folders.root / "full.png", 5).read_bytes()
        bad["trunc.png"] = good_png[: len(good_png) // 2]
        for rel, body in bad.items():
            (folders.inbox / rel).write_bytes(body)
            inputs[rel] = sha256(folders.inbox / rel)
        junk = [
            ".DS_Store",
            "Thumbs.db",
            "desktop.ini",
            "@eaDir/a.png",
            "._a.png",
            "scan.pdf.part",
            "~lock.png",
        ]
        for rel in junk:
            (folders.inbox / rel).parent.mkdir(parents=True, exist_ok=True)
            (folders.inbox / rel).write_bytes(b"junk")

        daemon = make_daemon().start()
        wait_until(lambda: folders.accounted(list(inputs)), timeout=90, what="all inputs handled")
        assert daemon.stop() == 0

        ok = {"a.png", "sub/a.png", "sub/deeper/c.jpg", "x/scan.tif"}
        assert_exactly_once(folders, inputs, ok=ok)
        for rel in ok:
            n = {"a.png": 1, "sub/a.png": 2, "sub/deeper/c.jpg": 3, "x/scan.tif": 4}[rel]
            text = folders.sidecars(rel)[0].read_text()
            assert f"Document {n}" in text, text
        reasons = {
            rel: json.loads(folders.quarantined(rel)[0].read_text())["reason"] for rel in bad
        }
        assert reasons["bad.png"] == "unsupported_format"
        assert reasons["empty.png"] == "empty_file"
        assert reasons["trunc.png"] == "corrupt_file"
        assert reasons["notes.docx"] == "unsupported_format"
        for rel in junk:
            assert (folders.inbox / rel).read_bytes() == b"junk", rel

        events = [line["event"] for line in folders.log_lines()]
        assert events.count("document.processed") == 4
        assert events.count("document.quarantined") == 4
        line = next(x for x in folders.log_lines() if x["event"] == "document.processed")
        assert {
            "relpath",
            "sha256",
            "pages",
            "engine",
            "mode",
            "duration_s",
            "outcome",
            "reason",
            "attempts",
            "outputs",
        } <= set(line)

        status = daemon.status("--json")
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert data["counts"]["archived"] == 4 and data["counts"]["quarantined"] == 4
        assert data["backlog"] == 0
        human = daemon.status()
        assert human.returncode == 0 and "quarantined" in human.stdout
        assert "empty_file" in human.stdout
        assert {f["relpath"] for f in data["recent_failures"]} == set(bad)

    def test_bad_config_exits_3(self, folders: Folders) -> None:
        """An outbox inside the inbox, or a missing inbox: exit 3 with a one-line message."""
        (folders.inbox / "out").mkdir()
        env = base_env(folders.root)
        for args in (
            ["--inbox", str(folders.inbox), "--outbox", str(folders.inbox / "out")],
            ["--inbox", str(folders.root / "missing"), "--outbox", str(folders.outbox)],
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "ocrwatch", "run", *args, "--state-dir", str(folders.state)],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 3, proc.stderr
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            assert len(lines) == 1 and "error" in lines[0], proc.stderr

    def test_metrics_port_flag(self, folders: Folders, make_daemon: Callable[..., Daemon]) -> None:
        """``run --metrics-port N`` serves /metrics there, counting the document it read."""
        port = free_port()
        daemon = make_daemon()
        daemon.args += ["--metrics-port", str(port)]
        daemon.start()
        write_doc(folders.inbox / "a.png", 1)
        wait_until(lambda: folders.sidecars("a.png"), timeout=60, what="sidecar")
        url = f"http://127.0.0.1:{port}/metrics"

        def counted() -> bool:
            body = urllib.request.urlopen(url, timeout=5).read().decode()
            return 'ocrwatch_documents_total{outcome="ok"} 1.0' in body

        wait_until(counted, timeout=20, what="the document counted in /metrics")
        assert daemon.stop() == 0


class TestArrivals:
    """Slow writers and rename-into-place, with inotify and with polling."""

    @pytest.mark.parametrize("mode", ["inotify", "polling"])
    def test_slow_writer_and_rename(
        self, folders: Folders, make_daemon: Callable[..., Daemon], mode: str
    ) -> None:
        """A file trickled in over ~3 s, one whose writer stalls longer than the quiet period
        (its truncated state fails the decode probe, which is retried) and one renamed into
        place are each read once, whole."""
        daemon = make_daemon(watch_mode=mode, poll_interval=0.2).start()
        data = write_doc(folders.root / "slow.png", 7, size=48).read_bytes()
        renamed = write_doc(folders.root / "renamed.png", 8).read_bytes()
        stalled = write_doc(folders.root / "stall.png", 9, size=48).read_bytes()
        with SidecarChecker(folders.outbox) as checker:
            (folders.inbox / "in").mkdir()
            target = folders.inbox / "in" / "slow.png"
            chunks = 10
            step = len(data) // chunks + 1
            with open(target, "wb") as fh:
                for i in range(chunks):
                    fh.write(data[i * step : (i + 1) * step])
                    fh.flush()
                    time.sleep(0.3)  # the writer's pace, not a wait for the daemon
            part = folders.inbox / "renamed.png.part"
            part.write_bytes(renamed)
            part.rename(folders.inbox / "renamed.png")
            with open(folders.inbox / "stall.png", "wb") as fh:
                fh.write(stalled[: len(stalled) // 2])
                fh.flush()
                time.sleep(2.0)  # the scanner stalls: longer than the quiet period
                fh.write(stalled[len(stalled) // 2 :])
            wait_until(
                lambda: folders.accounted(["in/slow.png", "renamed.png", "stall.png"]),
                timeout=60,
                what="both files handled",
            )
        assert daemon.stop() == 0
        assert not checker.problems, checker.problems
        assert_exactly_once(
            folders,
            {
                "in/slow.png": sha256(folders.root / "slow.png"),
                "renamed.png": sha256(folders.root / "renamed.png"),
                "stall.png": sha256(folders.root / "stall.png"),
            },
            ok={"in/slow.png", "renamed.png", "stall.png"},
        )
        assert "Document 9" in folders.sidecars("stall.png")[0].read_text()
        assert daemon.event_seen("file.probe_retry"), "the truncated state should fail a probe"
        assert "Document 7" in folders.sidecars("in/slow.png")[0].read_text()
        assert "Document 8" in folders.sidecars("renamed.png")[0].read_text()

    def test_folder_moved_in(self, folders: Folders, make_daemon: Callable[..., Daemon]) -> None:
        """A whole folder tree renamed into the inbox: every file in it is processed."""
        outside = folders.root / "batch"
        rels = ["batch/a.png", "batch/b.png", "batch/deep/c.png"]
        for n, rel in enumerate(rels):
            write_doc(folders.root / rel, n)
        daemon = make_daemon().start()
        outside.rename(folders.inbox / "batch")
        wait_until(lambda: folders.accounted(rels), timeout=60, what="the moved folder")
        assert daemon.stop() == 0
        assert all(len(folders.sidecars(r)) == 1 for r in rels)

    def test_many_files(self, folders: Folders, make_daemon: Callable[..., Daemon]) -> None:
        """MANY files dropped at once (nested, some same names) each get exactly one sidecar."""
        staging = folders.root / "staging"
        inputs: dict[str, str] = {}
        for i in range(MANY):
            rel = f"batch{i % 4}/doc{i // 2}.png"  # doc names repeat across folders
            inputs[rel] = sha256(write_doc(staging / rel, i, size=28))
        daemon = make_daemon().start()
        started = time.monotonic()
        with SidecarChecker(folders.outbox) as checker:
            for rel in inputs:
                dst = folders.inbox / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staging / rel, dst)
            wait_until(lambda: folders.accounted(list(inputs)), timeout=180, what=f"{MANY} files")
        elapsed = time.monotonic() - started
        assert daemon.stop() == 0
        assert not checker.problems, checker.problems[:5]
        assert checker.checked >= MANY
        assert_exactly_once(folders, inputs, ok=set(inputs))
        print(f"\n{MANY} files processed in {elapsed:.1f} s ({MANY / elapsed:.1f} files/s)")


class TestCrashesAndSignals:
    """kill -9 at random moments, SIGTERM with work in flight, crashing engines."""

    def test_kill9_then_restart(self, folders: Folders, make_daemon: Callable[..., Daemon]) -> None:
        """Killed three times mid-run: afterwards every input has exactly one outcome."""
        rng = random.Random(int(os.environ.get("OCRWATCH_E2E_SEED", "1234")))
        count = 40
        inputs: dict[str, str] = {}
        for i in range(count):
            rel = f"k{i % 3}/doc{i}.png"
            inputs[rel] = sha256(write_doc(folders.inbox / rel, i, size=30))
        whole = write_doc(folders.root / "whole.png", 99).read_bytes()
        (folders.inbox / "k0" / "broken.png").write_bytes(whole[:40])  # truncated for good
        inputs["k0/broken.png"] = sha256(folders.inbox / "k0" / "broken.png")
        daemon = make_daemon()
        with SidecarChecker(folders.outbox) as checker:
            for _round in range(3):
                daemon.start()
                children = psutil.Process(daemon.proc.pid).children(recursive=True)  # type: ignore[union-attr]
                time.sleep(rng.uniform(0.5, 2.5))  # a random moment to crash at
                daemon.kill9()
                # Workers die with the daemon (PR_SET_PDEATHSIG): no orphaned engines.
                assert children, "the daemon should have worker processes"
                wait_until(
                    lambda procs=children: not any(_running(c) for c in procs),  # type: ignore[misc]
                    timeout=10,
                    what="workers to die with the daemon",
                )
            daemon.start()
            wait_until(
                lambda: folders.accounted(list(inputs)),
                timeout=120,
                what="all inputs after restarts",
            )
            assert daemon.stop() == 0
        assert not checker.problems, checker.problems[:5]
        ok = set(inputs) - {"k0/broken.png"}
        assert_exactly_once(folders, inputs, ok=ok)

    def test_sigterm_leaves_claimed_for_next_start(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """SIGTERM to the whole process group mid-file (systemd's default KillMode) exits 0;
        what was claimed is finished by the next start."""
        big = render_lines([f"Line {i} of a long page with many words" for i in range(60)], size=40)
        inputs = {}
        for i in range(4):
            inputs[f"p{i}.png"] = sha256(save(big, folders.inbox / f"p{i}.png"))
        daemon = make_daemon(workers=1, stop_timeout=0.1).start()
        wait_until(
            lambda: folders.work.exists() and any(folders.work.rglob("p*.png")),
            timeout=30,
            what="a claimed file",
        )
        assert daemon.stop(group=True) == 0
        assert daemon.event_seen("daemon.stopped")
        leftovers = list(folders.work.rglob("p*.png"))
        daemon.start()
        wait_until(lambda: folders.accounted(list(inputs)), timeout=90, what="leftovers processed")
        assert daemon.stop() == 0
        assert_exactly_once(folders, inputs, ok=set(inputs))
        assert leftovers, "SIGTERM with stop_timeout 0.1 s should leave claimed files"

    def test_crashed_worker_is_replaced_and_file_retried(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """A worker killed mid-file (as a segfaulting engine would be) is replaced; the file is
        retried and processed, and the daemon keeps running."""
        big = render_lines([f"Line {i} of a long page with many words" for i in range(60)], size=40)
        save(big, folders.inbox / "big.png")
        daemon = make_daemon(workers=1).start()
        assert daemon.proc is not None
        wait_until(
            lambda: folders.work.exists() and any(folders.work.rglob("big.png")),
            timeout=30,
            what="the claim",
        )
        workers = [
            c
            for c in psutil.Process(daemon.proc.pid).children()
            if "resource_tracker" not in " ".join(c.cmdline())
        ]
        assert len(workers) == 1
        workers[0].kill()
        wait_until(lambda: folders.sidecars("big.png"), timeout=90, what="the retried file")
        assert daemon.alive()
        assert daemon.event_seen("worker.replaced")
        assert daemon.stop() == 0
        done = [x for x in folders.log_lines() if x["event"] == "document.processed"]
        assert len(done) == 1 and done[0]["attempts"] == 2
        retry = [x for x in folders.log_lines() if x["event"] == "document.retry_scheduled"]
        assert retry and retry[0]["reason"] == "engine_crash"

    def test_hung_engine_is_killed_and_quarantined(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """A file that always exceeds file_timeout kills its worker each time and ends in
        quarantine as engine_crash; a later file is still processed."""
        write_doc(folders.inbox / "slow.png", 1)
        daemon = make_daemon(workers=1, file_timeout=0.01).start()
        wait_until(lambda: folders.quarantined("slow.png"), timeout=90, what="quarantine")
        reason = json.loads(folders.quarantined("slow.png")[0].read_text())
        assert reason["reason"] == "engine_crash"
        assert daemon.stop() == 0
        daemon.env["OCRWATCH_FILE_TIMEOUT"] = "600"
        daemon.start()
        write_doc(folders.inbox / "fine.png", 2)
        wait_until(lambda: folders.sidecars("fine.png"), timeout=60, what="the next file")
        assert daemon.stop() == 0


class TestFailures:
    """Retry of what may pass, quarantine of what will not."""

    def test_blocked_output_is_retried_then_written(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """An output folder that cannot be created (a file is in the way) is retried with
        backoff, and the sidecar appears once the obstacle is gone."""
        (folders.outbox / "sub").write_text("in the way")
        daemon = make_daemon().start()
        write_doc(folders.inbox / "sub" / "r.png", 2)

        def retried() -> bool:
            return any(x["event"] == "document.retry_scheduled" for x in folders.log_lines())

        wait_until(retried, timeout=60, what="a scheduled retry")

        seen: list[dict[str, object]] = []

        def listed() -> bool:
            # Between attempts the job is in RETRY; while an attempt runs it is not listed.
            seen[:] = json.loads(daemon.status("--json").stdout)["recent_failures"]
            return bool(seen)

        wait_until(listed, timeout=60, what="the failure in ocrwatch status")
        assert seen[0]["relpath"] == "sub/r.png" and seen[0]["state"] == "retry"
        (folders.outbox / "sub").unlink()
        wait_until(lambda: folders.sidecars("sub/r.png"), timeout=60, what="the sidecar")
        assert daemon.stop() == 0
        done = [x for x in folders.log_lines() if x["event"] == "document.processed"]
        assert len(done) == 1 and int(done[0]["attempts"]) >= 2  # type: ignore[call-overload]

    def test_symlink_arriving_later_is_quarantined(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """A symlink dropped into the inbox is never followed, and no live link is kept in
        the quarantine: its reason file records the target."""
        secret = folders.root / "secret.png"
        write_doc(secret, 1)
        digest = sha256(secret)
        daemon = make_daemon().start()
        (folders.inbox / "link.png").symlink_to(secret)
        wait_until(lambda: folders.quarantined("link.png"), timeout=60, what="quarantine")
        assert daemon.stop() == 0
        reason = json.loads(folders.quarantined("link.png")[0].read_text())
        assert reason["reason"] == "not_a_regular_file"
        assert reason["special_file"] == "symlink" and reason["symlink_target"] == str(secret)
        assert not os.path.lexists(folders.quarantine / "link.png")
        assert not os.path.lexists(folders.inbox / "link.png") and not folders.claimed()
        assert sha256(secret) == digest and not folders.sidecars("link.png")


class TestDefaultEngine:
    """The default auto mode (Tesseract first, PP-OCR for low confidence) works in the daemon."""

    def test_auto_mode(self, folders: Folders, make_daemon: Callable[..., Daemon]) -> None:
        """A printed page in auto mode becomes a sidecar with its text."""
        daemon = make_daemon(engine=None, workers=1).start()
        write_doc(folders.inbox / "auto.png", 3)
        wait_until(lambda: folders.sidecars("auto.png"), timeout=120, what="the auto-mode sidecar")
        assert daemon.stop() == 0
        assert "Document 3" in folders.sidecars("auto.png")[0].read_text()
        manifest = json.loads(folders.sidecars("auto.png")[0].with_suffix(".json").read_text())
        assert manifest["mode"] == "auto" and manifest["job"]["attempt"] == 1


class TestPolicies:
    """after_success keep/delete and the duplicate policy."""

    def test_keep_mode_never_touches_or_repeats(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """keep: the original stays in place, unmodified, and a restart does not redo it."""
        digest = sha256(write_doc(folders.inbox / "k.png", 4))
        daemon = make_daemon(after_success="keep").start()
        wait_until(lambda: folders.sidecars("k.png"), timeout=60, what="the sidecar")
        assert daemon.stop() == 0
        daemon.start()
        # The start-up scan sees k.png before this new file; once the new one is done,
        # a repeat of k.png would have shown up in the log.
        write_doc(folders.inbox / "later.png", 5)
        wait_until(lambda: folders.sidecars("later.png"), timeout=60, what="the later file")
        assert daemon.stop() == 0
        assert sha256(folders.inbox / "k.png") == digest
        processed = [
            x["relpath"] for x in folders.log_lines() if x["event"] == "document.processed"
        ]
        assert processed.count("k.png") == 1
        assert len(folders.sidecars("k.png")) == 1
        assert not folders.work.exists() or not list(folders.work.rglob("*.png"))

    def test_duplicate_skipped_and_deleted(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """duplicates=skip: same content again gets no sidecar, a log line naming the first;
        after_success=delete removes both originals only after the outputs exist."""
        body = write_doc(folders.root / "orig.png", 6).read_bytes()
        daemon = make_daemon(after_success="delete", duplicates="skip").start()
        (folders.inbox / "first.png").write_bytes(body)
        wait_until(lambda: folders.sidecars("first.png"), timeout=60, what="the first sidecar")
        (folders.inbox / "sub").mkdir()
        (folders.inbox / "sub" / "again.png").write_bytes(body)

        def dup_line() -> dict[str, object] | None:
            return next(
                (x for x in folders.log_lines() if x.get("relpath") == "sub/again.png"), None
            )

        wait_until(dup_line, timeout=60, what="the duplicate's log line")
        assert daemon.stop() == 0
        line = dup_line()
        assert line is not None and line["outcome"] == "duplicate"
        assert line["duplicate_of"] == "first.png"
        assert not folders.sidecars("sub/again.png")
        assert not (folders.inbox / "first.png").exists()
        assert not (folders.inbox / "sub" / "again.png").exists()
        assert not list(folders.archive.rglob("*.png"))


class TestOperations:
    """systemd notifications, SIGHUP, a vanishing share, two daemons on one inbox."""

    def test_systemd_notify_and_sighup(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """READY, STATUS and WATCHDOG while running, STOPPING on SIGTERM; SIGHUP is survived."""
        sock_path = folders.root / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        sock.settimeout(0.2)
        received: list[str] = []
        stop = threading.Event()

        def collect() -> None:
            while not stop.is_set():
                try:
                    received.extend(sock.recv(4096).decode().splitlines())
                except TimeoutError:
                    continue

        thread = threading.Thread(target=collect, daemon=True)
        thread.start()
        try:
            daemon = make_daemon()
            daemon.env["NOTIFY_SOCKET"] = str(sock_path)
            daemon.env["WATCHDOG_USEC"] = "1000000"
            daemon.start()
            write_doc(folders.inbox / "n.png", 1)
            wait_until(lambda: folders.sidecars("n.png"), timeout=60, what="the sidecar")
            wait_until(
                lambda: sum(m == "WATCHDOG=1" for m in received) >= 2, timeout=10, what="pings"
            )
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: daemon.event_seen("daemon.reload_ignored"), timeout=10, what="HUP")
            assert daemon.alive()
            assert daemon.stop() == 0
            wait_until(lambda: "STOPPING=1" in received, timeout=5, what="STOPPING=1")
        finally:
            stop.set()
            thread.join(timeout=5)
            sock.close()
        assert "READY=1" in received
        assert any(m.startswith("STATUS=") and "done" in m for m in received)

    def test_share_vanishes_and_returns(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """Polling: the inbox disappears (share gone) and comes back: pause, then resume."""
        daemon = make_daemon(watch_mode="polling", poll_interval=0.2).start()
        away = folders.root / "inbox.away"
        folders.inbox.rename(away)
        wait_until(lambda: daemon.event_seen("inbox.unavailable"), timeout=20, what="the pause")
        write_doc(away / "while-away.png", 1)
        away.rename(folders.inbox)
        wait_until(lambda: daemon.event_seen("inbox.available"), timeout=20, what="the resume")
        write_doc(folders.inbox / "after.png", 2)
        wait_until(
            lambda: folders.accounted(["while-away.png", "after.png"]), timeout=60, what="both"
        )
        assert daemon.alive()
        assert daemon.stop() == 0
        assert folders.sidecars("while-away.png") and folders.sidecars("after.png")

    def test_two_daemons_share_one_inbox(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """Two daemons (own state dirs) on one inbox: each file is processed exactly once."""
        first = make_daemon(workers=1).start()
        second = make_daemon(workers=1, name="second", state=folders.root / "state2").start()
        staging = folders.root / "staging"
        inputs = {}
        for i in range(30):
            rel = f"d{i % 2}/f{i}.png"
            inputs[rel] = sha256(write_doc(staging / rel, i, size=28))
        for rel in inputs:
            (folders.inbox / rel).parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging / rel, folders.inbox / rel)
        wait_until(lambda: folders.accounted(list(inputs)), timeout=120, what="30 files")
        assert first.stop() == 0 and second.stop() == 0
        assert_exactly_once(folders, inputs, ok=set(inputs))
        processed = [
            x["relpath"] for x in folders.log_lines() if x["event"] == "document.processed"
        ]
        assert sorted(processed) == sorted(inputs)
        by_first = first.count("document.processed")
        by_second = second.count("document.processed")
        assert by_first + by_second == len(inputs)
        print(f"\nshared inbox: first daemon {by_first} files, second {by_second}")
