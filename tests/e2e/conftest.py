"""Fixtures that run ``ocrwatch run`` as a real subprocess on tmp folders."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import pytest

from imaging import render_lines, save

TESSDATA = "/usr/share/tesseract-ocr/5/tessdata"

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def page(n: int) -> list[str]:
    """Return the lines of test document ``n`` (its number is recognizable in the text)."""
    return [f"Document {n}", f"{WORDS[n % len(WORDS)].upper()} REPORT"]


def write_doc(path: Path, n: int, *, size: int = 36) -> Path:
    """Render document ``n`` to ``path`` (format from the suffix)."""
    return save(render_lines(page(n), size=size), path)


def wait_until(pred: Callable[[], object], *, timeout: float, what: str) -> None:
    """Poll ``pred`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Folders:
    """The daemon's folders under tmp_path."""

    root: Path
    inbox: Path
    outbox: Path
    state: Path

    @property
    def archive(self) -> Path:
        return self.outbox / ".ocrwatch" / "archive"

    @property
    def quarantine(self) -> Path:
        return self.outbox / ".ocrwatch" / "quarantine"

    @property
    def work(self) -> Path:
        return self.inbox / ".ocrwatch-work"

    def claimed(self) -> list[Path]:
        """Return the files waiting in the work area (not the daemons' own markers)."""
        if not self.work.exists():
            return []
        # Job folders hold claimed files; the volume marker and heartbeats are dot-files.
        return [p for p in self.work.rglob("*") if p.is_file() and not p.name.startswith(".")]

    def sidecars(self, rel: str) -> list[Path]:
        """Return the sidecars of inbox file ``rel`` (``rel.txt`` or numbered ``rel.N.txt``)."""
        first = self.outbox / f"{rel}.txt"
        parent = first.parent
        if not parent.is_dir():
            return []
        name = Path(rel).name
        found = [first] if first.exists() else []
        found += [p for p in parent.glob(f"{name}.*.txt") if p.name[len(name) + 1 : -4].isdigit()]
        return found

    def quarantined(self, rel: str) -> list[Path]:
        """Return the quarantine entries (reason files) of inbox file ``rel``."""
        base = self.quarantine / rel
        if not base.parent.is_dir():
            return []
        stem = Path(rel).stem
        return [
            p
            for p in base.parent.glob("*.reason.json")
            if p.name == f"{Path(rel).name}.reason.json"
            or (p.name.startswith(stem + ".") and json.loads(p.read_text())["source"] == rel)
        ]

    def accounted(self, rels: list[str]) -> bool:
        """Return True when every input has a sidecar or a quarantine entry."""
        return all(self.sidecars(r) or self.quarantined(r) for r in rels)

    def log_lines(self) -> list[dict[str, object]]:
        path = self.outbox / "ocrwatch.log.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def spawn(
    args: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``python -m ocrwatch ARGS`` in its own process group (like a systemd unit or
    another host), stdout and stderr appended to ``log``."""
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "ocrwatch", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


@dataclass
class Daemon:
    """One ``ocrwatch run`` subprocess; stdout/stderr go to files."""

    folders: Folders
    env: dict[str, str]
    args: list[str]
    name: str = "daemon"
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self) -> Daemon:
        self.runs += 1
        out = self.folders.root / f"{self.name}-{self.runs}.log"
        self.logs.append(out)
        out.unlink(missing_ok=True)
        self.proc = spawn(["run", *self.args], env=self.env, log=out, cwd=self.folders.root)
        wait_until(
            lambda: self.event_seen("daemon.ready") or self.proc.poll() is not None,  # type: ignore[union-attr]
            timeout=60,
            what="daemon.ready",
        )
        assert self.proc.poll() is None, self.output()
        return self

    def event_seen(self, event: str) -> bool:
        return f'"event": "{event}"' in self.logs[-1].read_text(errors="replace")

    def count(self, event: str) -> int:
        """Return how often ``event`` was logged over all runs of this daemon."""
        needle = f'"event": "{event}"'
        return sum(p.read_text(errors="replace").count(needle) for p in self.logs)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-6000:] for p in self.logs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60, *, group: bool = False) -> int:
        """Send ``sig`` (to the whole process group with ``group``, as systemd does by
        default) and return the exit code."""
        assert self.proc is not None
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("daemon did not stop in time:\n" + self.output()) from None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """Run ``ocrwatch status`` (``--json`` via ``extra``) on this daemon's folders."""
        return subprocess.run(
            [sys.executable, "-m", "ocrwatch", "status", *extra, *self.args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    f = Folders(tmp_path, tmp_path / "inbox", tmp_path / "outbox", tmp_path / "state")
    f.inbox.mkdir()
    f.outbox.mkdir()
    return f


def base_env(tmp_path: Path, **settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRWATCH_")}
    env.update(
        {
            "TESSDATA_PREFIX": TESSDATA,
            "HOME": str(tmp_path),
            "PYTHONUNBUFFERED": "1",
            "OCRWATCH_LOG_FORMAT": "json",
            "OCRWATCH_QUIET_PERIOD": "0.5",
            "OCRWATCH_ENGINE": "tesseract",
            "OCRWATCH_WORKERS": "2",
            "OCRWATCH_RESCAN_INTERVAL": "30",
            "OCRWATCH_INCOMPLETE_TIMEOUT": "5",
            "OCRWATCH_RETRY__WAIT_INITIAL": "0.1",
            "OCRWATCH_RETRY__WAIT_MAX": "0.5",
            "OCRWATCH_RETRY__WAIT_JITTER": "0.1",
        }
    )
    env.pop("NOTIFY_SOCKET", None)
    for key, value in settings.items():
        if value is None:
            env.pop(f"OCRWATCH_{key.upper()}", None)
        else:
            env[f"OCRWATCH_{key.upper()}"] = str(value)
    return env


@pytest.fixture
def make_daemon(folders: Folders) -> Iterator[Callable[..., Daemon]]:
    """Build daemons on ``folders`` (settings as keyword args); all are killed at teardown."""
    made: list[Daemon] = []

    def factory(*, name: str = "daemon", state: Path | None = None, **settings: object) -> Daemon:
        args = [
            "--inbox",
            str(folders.inbox),
            "--outbox",
            str(folders.outbox),
            "--state-dir",
            str(state or folders.state),
        ]
        d = Daemon(folders, base_env(folders.root, **settings), args, name=name)
        made.append(d)
        return d

    yield factory
    for d in made:
        if d.alive():
            d.kill9()


class Background:
    """A daemon thread running :meth:`_run` from ``with`` entry to exit (``_stop`` is set)."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        raise NotImplementedError


class SidecarChecker(Background):
    """A thread that reads every sidecar as soon as it appears and records any partial one."""

    def __init__(self, outbox: Path) -> None:
        super().__init__("sidecar-checker")
        self.outbox = outbox
        self.problems: list[str] = []
        self.checked = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            for txt in self.outbox.rglob("*.txt"):
                if any(part.startswith(".") for part in txt.relative_to(self.outbox).parts):
                    continue
                self._check(txt)
            time.sleep(0.01)

    def _check(self, txt: Path) -> None:
        manifest = txt.with_suffix(".json")
        try:
            text = txt.read_text(encoding="utf-8")
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            # The manifest is written before the text; a txt without one is a bug.
            if txt.exists():
                self.problems.append(f"{txt}: no manifest beside it")
            return
        except (ValueError, UnicodeDecodeError) as exc:
            self.problems.append(f"{txt}: unreadable ({exc})")
            return
        self.checked += 1
        chars = sum(int(p["characters"]) for p in data["page_details"])
        expected = chars + max(len(data["page_details"]) - 1, 0)
        if data["text_file"] != txt.name or len(text) - expected not in (0, 1):
            self.problems.append(
                f"{txt}: text ({len(text)} chars) does not match its manifest ({expected})"
            )


@pytest.fixture
def make_tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Mount real tmpfs filesystems (``make_tmpfs(path, "2m")``, needs root as in CI) to
    fill up in disk-full tests; all are unmounted at teardown."""
    mounted: list[Path] = []

    def mount(mountpoint: Path, size: str) -> Path:
        mountpoint.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs for a disk-full test (run as root): {proc.stderr}")
        mounted.append(mountpoint)
        return mountpoint

    yield mount
    for mountpoint in reversed(mounted):
        # Lazy: a daemon killed at teardown may hold files open there for a moment longer.
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
