"""``ocrwatch run`` telling people: notifications to real local receivers (Apprise json:// and
mailto://) and the status page on the metrics port, read by headless Chromium."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from browser import read
from e2e.conftest import Daemon, Folders, wait_until, write_doc
from e2e.test_celery import Cluster, cluster  # noqa: F401 (a fixture: pytest finds it here)
from notifysinks import JsonSink, SmtpSink
from ocrwatch._version import __version__
from redisserver import free_port

pytestmark = pytest.mark.e2e

SECRET = "hunter2-notify"


def listening(pid: int, port: int) -> list[str]:
    """Return the addresses process ``pid`` listens on at ``port``."""
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port]


class TestNotifiedAndShown:
    """Bad files dropped into the inbox reach people and the status page."""

    def test_burst_of_bad_files(
        self, folders: Folders, make_daemon: Callable[..., Daemon], tmp_path: Path
    ) -> None:
        """Ten bad files at once: a digest (not ten posts) naming each with its reason, by
        webhook and by mail; the page shows them and the good document; the URL's password
        is in no log line; the page is bound to 127.0.0.1."""
        port = free_port()
        with JsonSink() as hook, SmtpSink() as smtp:
            hook_url = f"json://ops:{SECRET}@127.0.0.1:{hook.port}/"
            daemon = make_daemon(
                notify__urls=json.dumps([hook_url, smtp.url()]),
                notify__digest_window=3,
                metrics_port=port,
            )
            daemon.start()
            bad = [f"scans/broken-{i}.png" for i in range(10)]
            (folders.inbox / "scans").mkdir()
            for rel in bad:
                (folders.inbox / rel).write_bytes(b"this is not an image\n")
            write_doc(folders.inbox / "letter.png", 1)

            def told() -> bool:
                text = "\n".join(hook.messages())
                return all(rel in text for rel in bad) and bool(smtp.texts())

            wait_until(told, timeout=90, what="every bad file told by webhook and mail")
            wait_until(lambda: folders.sidecars("letter.png"), timeout=60, what="the letter")
            assert 1 <= len(hook.posts) <= 3, hook.messages()
            assert "unsupported_format" in hook.messages()[0]
            assert hook.posts[0].headers["Authorization"].startswith("Basic ")
            mail = "\n".join(smtp.texts())
            assert all(rel in mail for rel in bad)

            url = f"http://127.0.0.1:{port}/"

            def page_text() -> str:
                return " ".join(read(url).text.split())

            wait_until(
                lambda: "letter.png 1 tesseract" in page_text(),
                timeout=30,
                what="the letter among the recent documents on the page",
            )
            seen = read(url)
            text = " ".join(seen.text.split())
            assert seen.by_id["version"] == __version__
            assert "letter.png 1 tesseract" in text and " ok " in text
            for rel in bad:
                assert f"{rel} quarantined unsupported_format" in text, rel
            assert listening(daemon.proc.pid, port) == ["127.0.0.1"]  # type: ignore[union-attr]
            assert daemon.stop() == 0
        output = daemon.output()
        assert SECRET not in output
        assert '"event": "notify.sent"' in output


class TestWorkersOnThePage:
    """Celery workers seen, on the status page."""

    def test_worker_listed(self, cluster: Callable[..., Cluster]) -> None:  # noqa: F811
        """A coordinator and one ``ocrwatch worker``: the worker process that read the
        document (its manifest's processed_by) is listed under "Workers seen"."""
        c = cluster()
        c.coordinator.start()
        c.worker()
        write_doc(c.folders.inbox / "w.png", 3)
        wait_until(lambda: "w.png" in c.processed(), timeout=120, what="the document")
        by = json.loads(c.folders.sidecars("w.png")[0].with_suffix(".json").read_text())
        name = by["processed_by"]["worker"]  # NAME@host, as the worker's heartbeats say
        url = f"http://127.0.0.1:{c.metrics_port}/"

        def workers() -> str:
            text = " ".join(read(url).text.split())
            return text.split("Workers seen", 1)[-1].split("Finished (all time)", 1)[0]

        wait_until(lambda: name in workers(), timeout=30, what=f"{name} on the page")
        text = " ".join(read(url).text.split())
        assert "w.png 1 tesseract" in text
        assert c.coordinator.stop() == 0


@pytest.fixture
def bind_mounts() -> Iterator[list[Path]]:
    """Targets of bind mounts made by the test; all are unmounted at teardown."""
    targets: list[Path] = []
    yield targets
    for target in reversed(targets):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed (these tests need root): {proc.stderr}")


class TestShareAway:
    """A share that goes away for longer than away_after."""

    def test_inbox_away_and_back(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        bind_mounts: list[Path],
    ) -> None:
        """``umount -l`` of the inbox share: told once it has been away away_after seconds,
        told again when it is back."""
        share = folders.root / "nas"
        share.mkdir()
        _mount("--bind", str(share), str(folders.inbox))
        bind_mounts.append(folders.inbox)
        with JsonSink() as hook:
            daemon = make_daemon(
                notify__urls=json.dumps([hook.url]),
                notify__away_after=1,
                notify__digest_window=0.2,
            ).start()
            subprocess.run(["umount", "-l", str(folders.inbox)], check=True)
            wait_until(
                lambda: any("has been away" in m for m in hook.messages()),
                timeout=30,
                what="the share away told",
            )
            _mount("--bind", str(share), str(folders.inbox))
            wait_until(
                lambda: any("is back after" in m for m in hook.messages()),
                timeout=30,
                what="the share back told",
            )
            assert daemon.stop() == 0
        away = next(m for m in hook.messages() if "has been away" in m)
        assert f"the inbox {folders.inbox} has been away for" in away
        assert sum("has been away" in m for m in hook.messages()) == 1

    def test_outbox_away_backlog_waits(
        self,
        folders: Folders,
        make_daemon: Callable[..., Daemon],
        bind_mounts: list[Path],
    ) -> None:
        """The outbox share gone with a scan waiting: the share and then the backlog older
        than pending_age are told; once the share is back the scan is read."""
        share = folders.root / "nas-out"
        share.mkdir()
        _mount("--bind", str(share), str(folders.outbox))
        bind_mounts.append(folders.outbox)
        with JsonSink() as hook:
            daemon = make_daemon(
                notify__urls=json.dumps([hook.url]),
                notify__away_after=1,
                notify__pending_age=3,
                notify__digest_window=0.2,
            ).start()
            subprocess.run(["umount", "-l", str(folders.outbox)], check=True)
            wait_until(
                lambda: daemon.event_seen("outbox.unavailable"), timeout=20, what="the pause"
            )
            write_doc(folders.inbox / "waiting.png", 2)
            wait_until(
                lambda: any("backlog not moving" in m for m in hook.messages()),
                timeout=30,
                what="the backlog told",
            )
            _mount("--bind", str(share), str(folders.outbox))
            wait_until(lambda: (share / "waiting.png.txt").is_file(), timeout=60, what="read")
            wait_until(
                lambda: any("is back after" in m for m in hook.messages()),
                timeout=30,
                what="the share back told",
            )
            assert daemon.stop() == 0
        text = "\n".join(hook.messages())
        assert f"the outbox {folders.outbox} has been away for" in text
        assert "1 file(s) unfinished; the oldest (waiting.png) has waited" in text
        assert f"the outbox {folders.outbox} is back after" in text
