"""How the daemon notices files: watchdog observer (inotify or polling), canary, rescans, junk.

- The event source is inotify unless the inbox is on a network filesystem (detected from
  ``/proc/self/mountinfo``, not from the path) or ``watch_mode = polling``. With inotify, a
  canary file written into the inbox at start must produce an event within a few seconds,
  else we fall back to polling and log why.
- ``OSError(ENOSPC/EMFILE)`` from inotify (watch limits) is logged with the sysctl fix and
  also falls back to polling.
- watchdog drops nothing silently since 7.x but only *logs* a kernel queue overflow; we hook
  that log record and ask the daemon for an immediate full rescan. The periodic rescan
  (``rescan_interval``) is the safety net for anything else missed.
- The handler only enqueues paths (watchdog runs handlers on its dispatch thread; an
  exception there would end dispatch for good). :meth:`Watcher.alive` lets the daemon find a
  dead observer thread and restart it.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserverVFS

from ocrwatch.settings.choices import WatchMode

__all__ = [
    "CANARY_PREFIX",
    "JUNK_PATTERNS",
    "NETWORK_FILESYSTEMS",
    "Watcher",
    "choose_mode",
    "filesystem_type",
    "is_junk",
    "scan",
]

log = structlog.get_logger()

# The work area lives inside the watched inbox (a claim must be a rename on one
# filesystem), so job folders come and go under inotify; watchdog then re-adds a watch it
# already has and warns, harmlessly. Other warnings reach the log (logging.configure).
warnings.filterwarnings(
    "ignore", message=r"Callback with id .* already exists", category=RuntimeWarning
)

CANARY_PREFIX = ".ocrwatch-canary-"
CANARY_TIMEOUT = 3.0

#: Filesystems that inotify cannot see changes on (made by other hosts).
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "fuse.sshfs",
        "sshfs",
        "9p",
        "virtiofs",
        "fuse.gvfsd-fuse",
        "fuse.rclone",
        "fuse.s3fs",
        "afs",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "fuse.davfs2",
        "vboxsf",
        "vmhgfs",
        "fuse.vmhgfs-fuse",
        "ncpfs",
        "coda",
    }
)

#: OS/NAS junk and in-progress names; matched against every path component (names, not
#: paths). Dot-names are junk anyway (``.DS_Store``, ``._x``, ``.stfolder``, ``.~lock.*``).
JUNK_PATTERNS: tuple[str, ...] = (
    ".*",
    "Thumbs.db",
    "thumbs.db",
    "desktop.ini",
    "Desktop.ini",
    "@eaDir",
    "#recycle",
    "#snapshot",
    "__MACOSX",
    "$RECYCLE.BIN",
    "System Volume Information",
    "~*",
    "*.part",
    "*.partial",
    "*.tmp",
    "*.temp",
    "*.crdownload",
    "*.download",
    "*.swp",
    "*.filepart",
    "*.!ut",
)


def is_junk(relpath: PurePosixPath | str, *, extra: Iterable[str] = ()) -> bool:
    """Return True when any component of ``relpath`` is OS/NAS junk or an in-progress name."""
    patterns = (*JUNK_PATTERNS, *extra)
    for part in PurePosixPath(relpath).parts:
        if part in ("", "/"):
            continue
        for pattern in patterns:
            if fnmatch.fnmatchcase(part, pattern) or fnmatch.fnmatchcase(
                part.lower(), pattern.lower()
            ):
                return True
    return False


def filesystem_type(path: Path, *, mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """Return the filesystem type holding ``path`` (e.g. ``ext4``, ``cifs``), or None."""
    try:
        lines = mountinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best: tuple[int, str] | None = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        if len(fields) < 5:
            continue
        # Mount points escape spaces etc. as octal (\040).
        mount = fields[4].encode().decode("unicode_escape")
        fstype = right.split()[0] if right.split() else ""
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) >= best[0]):
            best = (len(mount), fstype)
    return None if best is None else best[1]


def choose_mode(requested: WatchMode, inbox: Path) -> tuple[WatchMode, str]:
    """Return the event source to use for ``inbox`` and why."""
    if requested is not WatchMode.AUTO:
        return requested, f"watch_mode = {requested.value}"
    fstype = filesystem_type(inbox)
    if fstype is not None and (fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse.")):
        return WatchMode.POLLING, f"inbox is on a network/FUSE filesystem ({fstype})"
    return WatchMode.INOTIFY, f"inbox is on a local filesystem ({fstype or 'unknown'})"


def scan(inbox: Path, *, extra: Iterable[str] = ()) -> Iterator[Path]:
    """Yield every non-junk file (and symlink) below ``inbox``, never following symlinks."""
    patterns = tuple(extra)
    try:
        walker = os.walk(inbox, followlinks=False, onerror=_walk_error)
        for root, dirs, files in walker:
            rel_root = PurePosixPath(Path(root).relative_to(inbox).as_posix())
            dirs[:] = [d for d in dirs if not is_junk(rel_root / d, extra=patterns)]
            for name in files:
                if not is_junk(PurePosixPath(name), extra=patterns):
                    yield Path(root) / name
            for name in dirs:
                # os.walk lists symlinked folders as dirs but does not enter them.
                if os.path.islink(os.path.join(root, name)):
                    yield Path(root) / name
    except OSError as exc:  # pragma: no cover - os.walk reports through onerror
        log.warning("watch.scan_failed", inbox=str(inbox), error=str(exc))


def _walk_error(exc: OSError) -> None:
    log.warning("watch.scan_error", path=getattr(exc, "filename", None), error=str(exc))


def _listdir_without_junk(path: str | None) -> Iterator[os.DirEntry[str]]:
    # The polling snapshot should not stat our work area or NAS junk every interval.
    with os.scandir(path) as entries:
        for entry in entries:
            if not entry.name.startswith(".") and not is_junk(entry.name):
                yield entry


class _Handler(FileSystemEventHandler):
    """Only enqueues: the daemon's loop does everything else."""

    def __init__(self, on_path: Callable[[Path], None], canary_seen: threading.Event) -> None:
        self._on_path = on_path
        self._canary_seen = canary_seen

    def on_any_event(self, event: FileSystemEvent) -> None:
        # A folder matters when it arrives (its files may have no events of their own);
        # "folder modified" fires for every file written in it and would mean a rescan each.
        if event.is_directory and event.event_type not in ("created", "moved"):
            return
        try:
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if not raw:
                    continue
                path = Path(os.fsdecode(raw))
                if path.name.startswith(CANARY_PREFIX):
                    self._canary_seen.set()
                    continue
                if event.event_type in ("opened", "closed_no_write"):
                    continue
                self._on_path(path)
        except Exception:  # pragma: no cover - a raising handler would end dispatch
            log.exception("watch.handler_failed")


class _OverflowHook(logging.Handler):
    """Turns watchdog's 'Inotify queue overflowed' log record into a rescan request."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" in record.getMessage().lower():
                self._on_overflow()
        except Exception:  # pragma: no cover - never break logging
            pass


_OVERFLOW_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


class Watcher:
    """Runs a watchdog observer on the inbox and feeds changed paths to ``on_path``."""

    def __init__(
        self,
        inbox: Path,
        *,
        mode: WatchMode,
        poll_interval: float,
        on_path: Callable[[Path], None],
        on_overflow: Callable[[], None],
        canary: bool = True,
    ) -> None:
        """Prepare a watcher (call :meth:`start`); callbacks run on watchdog's threads."""
        self.inbox = inbox
        self.requested = mode
        self.poll_interval = poll_interval
        self.mode: WatchMode = mode
        self.reason = ""
        self._on_path = on_path
        self._on_overflow = on_overflow
        self._canary = canary
        self._canary_seen = threading.Event()
        self._observer: BaseObserver | None = None
        self._hook = _OverflowHook(on_overflow)
        self.restarts = 0

    def start(self) -> WatchMode:
        """Start watching; return the mode in use (after any fallback to polling)."""
        for name in _OVERFLOW_LOGGERS:
            logging.getLogger(name).addHandler(self._hook)
        mode, why = choose_mode(self.requested, self.inbox)
        if mode is WatchMode.INOTIFY:
            try:
                self._observer = self._start_observer(WatchMode.INOTIFY)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENOSYS):
                    raise
                log.error(
                    "watch.inotify_limit",
                    error=str(exc),
                    hint="raise the limits, e.g. sysctl -w fs.inotify.max_user_watches=524288 "
                    "fs.inotify.max_user_instances=1024 (persist in /etc/sysctl.d/)",
                    fallback="polling",
                )
                mode, why = WatchMode.POLLING, f"inotify unavailable: {exc}"
            else:
                if self._canary and self.requested is WatchMode.AUTO and not self._canary_ok():
                    self._stop_observer()
                    mode = WatchMode.POLLING
                    why = f"no inotify event for a canary file within {CANARY_TIMEOUT:g} s"
                    log.warning("watch.canary_failed", inbox=str(self.inbox), fallback="polling")
        if mode is WatchMode.POLLING:
            self._observer = self._start_observer(WatchMode.POLLING)
        self.mode, self.reason = mode, why
        log.info("watch.started", inbox=str(self.inbox), mode=mode.value, why=why)
        return mode

    def _start_observer(self, mode: WatchMode) -> BaseObserver:
        observer: BaseObserver
        if mode is WatchMode.POLLING:
            observer = PollingObserverVFS(
                os.lstat, _listdir_without_junk, polling_interval=self.poll_interval
            )
        else:
            observer = InotifyObserver()
        observer.daemon = True
        observer.schedule(
            _Handler(self._on_path, self._canary_seen), str(self.inbox), recursive=True
        )
        observer.start()
        return observer

    def _canary_ok(self) -> bool:
        self._canary_seen.clear()
        canary = self.inbox / f"{CANARY_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            canary.write_bytes(b"ocrwatch canary: safe to delete\n")
            deadline = time.monotonic() + CANARY_TIMEOUT
            while time.monotonic() < deadline:
                if self._canary_seen.wait(0.05):
                    return True
            return False
        finally:
            canary.unlink(missing_ok=True)

    def alive(self) -> bool:
        """Return True when the observer and all its emitter threads are running."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        return all(e.is_alive() for e in observer.emitters)

    def restart(self) -> None:
        """Replace a dead observer with a new one of the same mode (raises OSError)."""
        self.restarts += 1
        self._stop_observer()
        log.warning("watch.restarted", mode=self.mode.value, restarts=self.restarts)
        self._observer = self._start_observer(self.mode)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            try:
                observer.stop()
                observer.join(timeout=5)
            except Exception as exc:  # a half-dead observer may fail to stop cleanly
                log.warning("watch.stop_failed", error=str(exc))

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        self._stop_observer()
        for name in _OVERFLOW_LOGGERS:
            logging.getLogger(name).removeHandler(self._hook)
