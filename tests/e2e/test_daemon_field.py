"""``ocrwatch run`` where offices run it: odd names, Docker bind mounts, shares that blink.

Real mounts (bind mounts, ``umount -l``, tmpfs: CI runs as root), real writers, real names.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.conftest import Daemon, Folders, sha256, wait_until, write_doc
from fsutil import fill_up

pytestmark = pytest.mark.e2e

LATIN1 = os.fsdecode(b"caf\xe9 r\xe9sum\xe9.png")  # what an old SMB client writes


class StatusReceiver:
    """The service manager's end of NOTIFY_SOCKET: the daemon's STATUS= lines, in order."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self._statuses: list[str] = []

    def statuses(self) -> list[str]:
        """Return every STATUS= text received so far (reads what is waiting, never blocks)."""
        while True:
            try:
                data = self.sock.recv(65536).decode("utf-8", errors="replace")
            except BlockingIOError:
                return self._statuses
            for line in data.splitlines():
                if line.startswith("STATUS="):
                    self._statuses.append(line.removeprefix("STATUS="))

    def close(self) -> None:
        self.sock.close()
        Path(self.address).unlink(missing_ok=True)


@pytest.fixture
def notify() -> Iterator[StatusReceiver]:
    """A notify socket (short path: sockaddr_un holds about 100 bytes)."""
    receiver = StatusReceiver(f"/tmp/ow-notify-{uuid.uuid4().hex}")
    yield receiver
    receiver.close()


def mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed (these tests need root): {proc.stderr}")


@pytest.fixture
def binds() -> Iterator[Callable[[Path, Path], None]]:
    """Bind-mount folders (``binds(source, target)``); all are unmounted at teardown."""
    targets: list[Path] = []

    def bind(source: Path, target: Path) -> None:
        source.mkdir(parents=True, exist_ok=True)
        target.mkdir(parents=True, exist_ok=True)
        mount("--bind", str(source), str(target))
        targets.append(target)

    yield bind
    for target in reversed(targets):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], check=True)


def events(daemon: Daemon, name: str) -> list[dict[str, object]]:
    found = []
    for path in daemon.logs:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"event": "{name}"' in line:
                found.append(json.loads(line))
    return found


def processed(folders: Folders) -> set[object]:
    """Return the relpaths with a document.processed line (logged after the archive move)."""
    return {x["relpath"] for x in folders.log_lines() if x["event"] == "document.processed"}


class TestNames:
    """Any name a filesystem allows is processed and shown readably."""

    def test_latin1_names_at_start_and_at_run_time(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """A Latin-1 name present at start and one arriving later are both processed; the
        sidecar keeps the name's bytes, log and manifest show it with \\xNN escapes."""
        write_doc(folders.inbox / LATIN1, 1)
        (folders.inbox / os.fsdecode(b"d\xfcr")).mkdir()
        daemon = make_daemon().start()
        later = os.fsdecode(b"d\xfcr/not\xe9.png")
        write_doc(folders.inbox / later, 2)
        wait_until(lambda: len(processed(folders)) == 2, timeout=60, what="both files")
        assert daemon.alive()
        for rel, n in ((LATIN1, 1), (later, 2)):
            cars = folders.sidecars(rel)
            assert len(cars) == 1 and f"Document {n}" in cars[0].read_text()
            manifest = json.loads(cars[0].with_suffix(".json").read_text(encoding="utf-8"))
            readable = os.fsencode(rel).decode("utf-8", "backslashreplace")
            assert manifest["source"]["id"] == readable
            assert (folders.archive / rel).is_file()
        assert processed(folders) == {"caf\\xe9 r\\xe9sum\\xe9.png", "d\\xfcr/not\\xe9.png"}
        status = daemon.status("--json")
        assert status.returncode == 0, status.stderr
        assert daemon.stop() == 0
        assert not daemon.count("daemon.internal_error"), daemon.output()

    def test_names_at_the_length_limit(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """A 251-byte name (and 79 CJK characters) gets a shortened sidecar name recorded in
        the manifest, once: no retry loop re-running the OCR."""
        long_ascii = "n" * 247 + ".png"
        long_cjk = "漢" * 79 + ".png"
        for i, rel in enumerate((long_ascii, long_cjk)):
            write_doc(folders.inbox / rel, i)
        daemon = make_daemon().start()

        def done() -> bool:
            lines = folders.log_lines()
            return sum(x["event"] == "document.processed" for x in lines) == 2

        wait_until(done, timeout=60, what="both long names")
        assert not [x for x in folders.log_lines() if x["event"] != "document.processed"]
        manifests = list(folders.outbox.glob("*.json"))
        assert len(manifests) == 2
        names = {json.loads(m.read_text())["source"]["name"] for m in manifests}
        assert names == {long_ascii, long_cjk}
        for m in manifests:
            assert len(os.fsencode(m.name)) <= 255
            data = json.loads(m.read_text())
            assert (folders.outbox / data["text_file"]).is_file()
        assert daemon.stop() == 0


class TestMounts:
    """Bind mounts (Docker ``-v``) and shares that go away and come back."""

    def test_bind_mounted_inbox_archives(
        self, folders: Folders, make_daemon: Callable[..., Daemon], binds: Callable[..., None]
    ) -> None:
        """Inbox and outbox are two bind mounts of one filesystem (one st_dev, but link()
        says EXDEV): every original is archived, byte-identical."""
        disk = folders.root / "disk"
        binds(disk / "in", folders.inbox)
        binds(disk / "out", folders.outbox)
        assert os.stat(folders.inbox).st_dev == os.stat(folders.outbox).st_dev
        daemon = make_daemon().start()
        inputs = {f"b{i}.png": sha256(write_doc(folders.inbox / f"b{i}.png", i)) for i in range(6)}
        wait_until(lambda: processed(folders) >= set(inputs), timeout=90, what="all files")
        for rel, digest in inputs.items():
            assert sha256(folders.archive / rel) == digest
        assert not folders.claimed()
        assert not [x for x in folders.log_lines() if x["event"] == "document.retry_scheduled"]
        assert daemon.stop() == 0

    def test_inbox_share_goes_away_and_returns(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        binds: Callable[..., None],
        notify: StatusReceiver,
    ) -> None:
        """``umount -l`` of the inbox share with files pending and claimed: the daemon
        pauses, closes nothing as missing, and on return re-watches and finishes them all
        within seconds (not at the next periodic rescan)."""
        share = folders.root / "nas"
        binds(share, folders.inbox)
        daemon = make_daemon(rescan_interval=300, workers=1)
        daemon.env["NOTIFY_SOCKET"] = notify.address
        daemon.start()
        inputs = [f"s{i}.png" for i in range(4)]
        for i, rel in enumerate(inputs):
            write_doc(folders.inbox / rel, i)
        wait_until(lambda: folders.claimed(), timeout=30, what="a claimed file")
        umount(folders.inbox)
        wait_until(lambda: daemon.event_seen("inbox.unavailable"), timeout=20, what="the pause")
        # The daemon keeps looking at the bare mount point: two turns of its loop that say
        # so (STATUS=PAUSED, every 2 s), then nothing may have been created there.
        mark = len(notify.statuses())
        wait_until(
            lambda: sum(t.startswith("PAUSED") for t in notify.statuses()[mark:]) >= 2,
            timeout=30,
            what="two paused turns",
        )
        assert not list(folders.inbox.iterdir()), "nothing may be created on the mount point"
        mount("--bind", str(share), str(folders.inbox))
        back = time.monotonic()
        wait_until(lambda: daemon.event_seen("inbox.available"), timeout=20, what="the resume")
        write_doc(folders.inbox / "after.png", 9)
        wait_until(
            lambda: processed(folders) >= {*inputs, "after.png"}, timeout=60, what="every file"
        )
        elapsed = time.monotonic() - back
        assert elapsed < 60, elapsed
        for rel in [*inputs, "after.png"]:
            assert len(folders.sidecars(rel)) == 1, rel
        assert not folders.claimed()
        assert not events(daemon, "spool.missing")
        assert daemon.alive() and daemon.stop() == 0

    def test_outbox_share_goes_away(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        binds: Callable[..., None],
        notify: StatusReceiver,
    ) -> None:
        """With the outbox share unmounted nothing is written onto the bare mount point and
        no original is archived; when it returns every sidecar lands on the share."""
        share = folders.root / "nas-out"
        binds(share, folders.outbox)
        daemon = make_daemon()
        daemon.env["NOTIFY_SOCKET"] = notify.address
        daemon.start()
        umount(folders.outbox)
        wait_until(lambda: daemon.event_seen("outbox.unavailable"), timeout=20, what="the pause")
        inputs = [f"o{i}.png" for i in range(3)]
        for i, rel in enumerate(inputs):
            write_doc(folders.inbox / rel, i)
        # The daemon has seen the three files and holds them (STATUS: paused, 3 settling).
        wait_until(
            lambda: any(
                t.startswith("PAUSED") and " 3 settling" in t for t in notify.statuses()
            ),
            timeout=30,
            what="the three files held",
        )
        assert not list(folders.outbox.iterdir()), list(folders.outbox.rglob("*"))
        assert sorted(p.name for p in folders.inbox.glob("o*.png")) == inputs  # none taken
        mount("--bind", str(share), str(folders.outbox))
        wait_until(lambda: processed(folders) >= set(inputs), timeout=60, what="on the share")
        for rel in inputs:
            assert len(folders.sidecars(rel)) == 1 and (share / f"{rel}.txt").is_file()
        assert daemon.stop() == 0


class TestWriters:
    """Writers that do not append politely."""

    def test_preallocating_writer_is_waited_for(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """A writer that sets the final size first (zeros) and stalls longer than the quiet
        period: the file is probed again, not quarantined, and read once it is written."""
        data = write_doc(folders.root / "real.png", 5).read_bytes()
        daemon = make_daemon(incomplete_timeout=30).start()
        target = folders.inbox / "prealloc.png"
        with open(target, "wb") as fh:
            fh.truncate(len(data))
        # Several probes see zeros and decide to wait (not to quarantine) before the writer
        # goes on.
        wait_until(
            lambda: daemon.count("file.probe_retry") >= 2, timeout=30, what="probes of zeros"
        )
        assert not folders.quarantined("prealloc.png")
        with open(target, "r+b") as fh:
            fh.write(data)
        wait_until(lambda: folders.accounted(["prealloc.png"]), timeout=60, what="the file")
        assert len(folders.sidecars("prealloc.png")) == 1
        assert not folders.quarantined("prealloc.png")
        assert daemon.stop() == 0

    def test_fifo_is_quarantined_without_blocking(
        self, folders: Folders, make_daemon: Callable[..., Daemon], make_tmpfs: Callable[..., Path]
    ) -> None:
        """A named pipe, with the quarantine on another filesystem: one reason file, the
        pipe is never opened, and the daemon goes on."""
        vault = make_tmpfs(folders.root / "vault", "4m")
        daemon = make_daemon(quarantine=vault / "q").start()
        os.mkfifo(folders.inbox / "pipe.png")
        write_doc(folders.inbox / "next.png", 3)
        wait_until(lambda: (vault / "q" / "pipe.png.reason.json").is_file(), timeout=30, what="q")
        wait_until(lambda: "next.png" in processed(folders), timeout=60, what="the next file")
        reason = json.loads((vault / "q" / "pipe.png.reason.json").read_text())
        assert reason["reason"] == "not_a_regular_file" and reason["special_file"] == "fifo"
        assert not folders.claimed()
        assert daemon.stop() == 0


class TestStateDisk:
    """The journal's disk fills up."""

    def test_full_state_disk_pauses_intake_and_resumes(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        make_tmpfs: Callable[..., Path],
    ) -> None:
        """Arrivals cannot be journaled: one warning, status counts them, and they are
        processed within seconds of space returning; a restart on the full disk is exit 75
        (systemd starts it again) keeping the journal, or a clean start, never a traceback."""
        state = make_tmpfs(folders.root / "statefs", "1m")
        daemon = make_daemon(state=state / "s").start()
        fill_up(state)
        inputs = [f"j{i}.png" for i in range(5)]
        for i, rel in enumerate(inputs):
            write_doc(folders.inbox / rel, i)
        wait_until(lambda: daemon.event_seen("journal.unavailable"), timeout=30, what="warning")
        status = json.loads(daemon.status("--json").stdout)
        assert status["unjournaled"] >= len(inputs) and status["backlog"] >= len(inputs)
        assert daemon.count("journal.unavailable") == 1
        (state / "ballast").unlink()
        freed = time.monotonic()
        wait_until(lambda: processed(folders) >= set(inputs), timeout=60, what="all files")
        assert time.monotonic() - freed < 60
        assert daemon.alive() and daemon.stop() == 0
        assert not daemon.count("daemon.internal_error"), daemon.output()
        # Restart on a full state disk, with a file waiting: a clean start or exit 75 with a
        # message naming the journal and keeping it; never a traceback.
        fill_up(state)
        write_doc(folders.inbox / "late.png", 9)
        restarted = make_daemon(state=state / "s", name="restart")
        restarted.proc = subprocess.Popen(
            [sys.executable, "-m", "ocrwatch", "run", *restarted.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=restarted.env,
            text=True,
        )
        try:
            code = restarted.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            restarted.proc.send_signal(signal.SIGTERM)
            code = restarted.proc.wait(timeout=60)
            assert code == 0
        else:
            out = restarted.proc.stdout.read() if restarted.proc.stdout else ""
            assert code == 75 and "journal is kept" in out and "Traceback" not in out, out


class TestPeers:
    """Two daemons on one inbox."""

    def test_dead_peer_files_are_adopted(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """A daemon killed with files claimed: a surviving peer takes them over after the
        lease, and each file ends with exactly one sidecar."""
        first = make_daemon(workers=1, file_timeout=600).start()
        inputs = [f"p{i}.png" for i in range(6)]
        for i, rel in enumerate(inputs):
            write_doc(folders.inbox / rel, i, size=30)
        wait_until(lambda: folders.claimed(), timeout=30, what="claimed files")
        first.kill9()
        stranded = folders.claimed()
        second = make_daemon(
            name="second", state=folders.root / "state2", peer_lease=5, rescan_interval=2
        ).start()
        wait_until(lambda: processed(folders) >= set(inputs), timeout=90, what="every file")
        for rel in inputs:
            assert len(folders.sidecars(rel)) == 1, rel
        assert not folders.claimed()
        assert stranded
        assert second.count("spool.adopted") >= 1
        assert second.stop() == 0
