"""The daemon's folders: where they are, whether they are safe, and whether they are there.

- work area: ``<inbox>/.ocrwatch-work/<instance-id>/<job-id>/<relpath>`` (on the inbox's
  filesystem: the claim is an atomic ``rename``);
- archive: ``<outbox>/.ocrwatch/archive/<relpath>``; quarantine:
  ``<outbox>/.ocrwatch/quarantine/<relpath>`` + ``<name>.reason.json``;
- state dir: ``$STATE_DIRECTORY`` or ``${XDG_STATE_HOME:-~/.local/state}/ocrwatch/<inbox>-<hash>``
  (local disk: SQLite's WAL does not work on network shares).

A share that goes away leaves an empty mount point that still looks like a folder, so
availability is proven by a marker file with a random volume id, written at start into the
inbox's work area and the outbox's private folder (:class:`Volume`). A marker folder deleted
while its folder is still the one of the start (same device and inode, not empty, writable)
is made again with the same id; only a folder that is really away pauses the daemon.
"""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ocrwatch.exceptions import ConfigError
from ocrwatch.support import fsutil

if TYPE_CHECKING:
    from ocrwatch.settings.model import Settings

__all__ = [
    "OUTBOX_PRIVATE",
    "WORK_DIR_NAME",
    "Layout",
    "Look",
    "Mounts",
    "Volume",
    "check_layout",
    "read_marker",
    "resolve_layout",
]

WORK_DIR_NAME = ".ocrwatch-work"
OUTBOX_PRIVATE = ".ocrwatch"
VOLUME_MARKER = ".volume"

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Layout:
    """The daemon's folders, absolute and resolved."""

    inbox: Path
    outbox: Path
    archive: Path
    quarantine: Path
    state_dir: Path

    @property
    def work_root(self) -> Path:
        """Return the work area root inside the inbox."""
        return self.inbox / WORK_DIR_NAME

    @property
    def log_file(self) -> Path:
        """Return the outbox's JSON-lines log of processed documents."""
        return self.outbox / "ocrwatch.log.jsonl"

    @property
    def inbox_marker(self) -> Path:
        """Return the file that proves the inbox's volume is the one we started on."""
        return self.work_root / VOLUME_MARKER

    @property
    def outbox_marker(self) -> Path:
        """Return the file that proves the outbox's volume is the one we started on."""
        return self.outbox / OUTBOX_PRIVATE / VOLUME_MARKER


def _default_state_dir(inbox: Path, environ: Mapping[str, str]) -> Path:
    base_env = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if base_env:
        base = Path(base_env)
    else:
        xdg = environ.get("XDG_STATE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "ocrwatch"
    digest = hashlib.sha256(os.fsencode(inbox)).hexdigest()[:8]
    return base / f"{inbox.name or 'root'}-{digest}"


def resolve_layout(settings: Settings, *, environ: Mapping[str, str] | None = None) -> Layout:
    """Return the folders for ``settings`` with defaults filled in (nothing is created).

    Raises ConfigError when inbox or outbox is not set.
    """
    env = os.environ if environ is None else environ
    if settings.inbox is None or settings.outbox is None:
        raise ConfigError("the daemon needs an inbox and an outbox (--inbox/--outbox)")
    inbox = settings.inbox.resolve()
    outbox = settings.outbox.resolve()
    private = outbox / OUTBOX_PRIVATE
    return Layout(
        inbox=inbox,
        outbox=outbox,
        archive=(settings.archive or private / "archive").resolve(),
        quarantine=(settings.quarantine or private / "quarantine").resolve(),
        state_dir=(settings.state_dir or _default_state_dir(inbox, env)).resolve(),
    )


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _check_writable(path: Path, what: str) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".ocrwatch-probe-", dir=path)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise ConfigError(f"{what} {path} is not writable ({exc.strerror})") from exc


def check_layout(layout: Layout, *, create: bool = True) -> None:
    """Refuse unsafe or unusable folders; create archive, quarantine, state dir if missing.

    Raises ConfigError (exit code 3) with a one-line message saying what to fix.
    """
    for what, path in (("inbox", layout.inbox), ("outbox", layout.outbox)):
        if not path.is_dir():
            raise ConfigError(f"{what} {path} does not exist or is not a folder; create it")
    others = {
        "outbox": layout.outbox,
        "archive": layout.archive,
        "quarantine": layout.quarantine,
        "state_dir": layout.state_dir,
    }
    for what, path in others.items():
        if _inside(path, layout.inbox):
            raise ConfigError(
                f"{what} {path} is inside the inbox {layout.inbox}: outputs would be picked up "
                "as new scans; choose a folder outside the inbox"
            )
        if _inside(layout.inbox, path):
            raise ConfigError(
                f"the inbox {layout.inbox} is inside the {what} {path}; separate them"
            )
    for what in ("archive", "quarantine", "state_dir"):
        path = others[what]
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create {what} {path} ({exc.strerror})") from exc
        elif not path.is_dir():
            raise ConfigError(f"{what} {path} does not exist")
    if not os.access(layout.inbox, os.R_OK | os.X_OK):
        raise ConfigError(f"inbox {layout.inbox} is not readable")
    for what, path in (("inbox", layout.inbox), *others.items()):
        _check_writable(path, what)
    escaping = list(_escaping_symlinks(layout.inbox, limit=3))
    if escaping:
        shown = ", ".join(f"{p} -> {t}" for p, t in escaping)
        raise ConfigError(
            f"symlinks in the inbox point outside it ({shown}); ocrwatch never follows a "
            "symlink out of the inbox: remove them or move their targets into the inbox"
        )


def _escaping_symlinks(inbox: Path, *, limit: int) -> Iterator[tuple[Path, Path]]:
    found = 0
    for root, dirs, files in os.walk(inbox, followlinks=False):
        if Path(root) == inbox and WORK_DIR_NAME in dirs:
            dirs.remove(WORK_DIR_NAME)
        for name in (*dirs, *files):
            p = Path(root) / name
            if p.is_symlink():
                target = p.resolve()
                if not _inside(target, inbox):
                    yield p, target
                    found += 1
                    if found >= limit:
                        return


def read_marker(marker: Path) -> str:
    """Return the volume id in ``marker`` ("" when it cannot be read: the share is away)."""
    try:
        return marker.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _marker_missing(marker: Path) -> bool:
    """Return True when ``marker`` (or a folder above it) does not exist (not: unreadable)."""
    try:
        os.lstat(marker)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


@dataclass(frozen=True, slots=True)
class Look:
    """One look at a folder: there or not, why not, and whether its marker was made again."""

    ok: bool
    why: str = ""
    recreated: bool = False


#: Seconds a look at a share may take before it counts as away (a hard NFS mount that hangs).
LOOK_TIMEOUT = 10.0


class Volume:
    """Says whether a folder is still the volume it was at start.

    Proof is a marker file holding a random id (a remounted share keeps it; a bare mount
    point or a new empty folder does not). A marker that is missing while the folder is the
    same one as at start (device and inode), holds something and can be written (someone
    deleted the marker folder) is written again with the same id: the look says
    ``recreated``. Where the marker cannot be written at start (a full disk), the folder's
    device and inode stand in for it. Looks run on one daemon thread of the volume's own:
    a look that has not come back within ``timeout`` (a hard NFS mount that hangs) makes
    the share away, and no new look starts until it returns, so the caller's loop (and its
    watchdog) keeps turning.
    """

    def __init__(self, folder: Path, marker: Path, *, timeout: float = LOOK_TIMEOUT) -> None:
        """Watch ``folder`` through ``marker`` (set up by :meth:`claim` at start)."""
        self.folder = folder
        self.marker = marker
        self.volume_id = ""
        self.timeout = timeout
        self._identity: tuple[int, int] | None = None
        self._requests: queue.SimpleQueue[queue.SimpleQueue[Look]] = queue.SimpleQueue()
        self._looker: threading.Thread | None = None
        self._hung: queue.SimpleQueue[Look] | None = None  # the answer still awaited
        #: The last look's answer (why the folder is away; whether its marker was remade).
        self.last = Look(ok=True)
        #: Set when a look wrote the marker again, until :class:`Mounts` has said so.
        self.remade = False

    def claim(self) -> str:
        """Read the marker, creating it if missing (at start the operator decided); return the id.

        Returns "" when no marker could be written (the folder's identity is used instead).
        """
        self.volume_id = read_marker(self.marker)
        if not self.volume_id:
            volume_id = secrets.token_hex(8)
            try:
                self.marker.parent.mkdir(parents=True, exist_ok=True)
                fsutil.atomic_write(self.marker, (volume_id + "\n").encode("ascii"))
                self.volume_id = volume_id
            except OSError as exc:
                log.warning(
                    "volume.no_marker",
                    marker=fsutil.display(self.marker),
                    error=str(exc),
                    detail="checking the folder's device and inode instead",
                )
        st = os.stat(self.folder)
        self._identity = (st.st_dev, st.st_ino)
        return self.volume_id

    def available(self) -> bool:
        """Return True when the folder is still the volume it was at start (see :attr:`last`)."""
        self.last = self.look()
        self.remade = self.remade or self.last.recreated
        return self.last.ok

    def look(self) -> Look:
        """Look at the folder (at most ``timeout`` seconds); return what was found."""
        if self._hung is not None:
            if self._hung.empty():
                return Look(False, "a look at it has not come back")  # stuck in the kernel
            self._hung = None
            log.warning("volume.answering", folder=fsutil.display(self.folder))
        if self._looker is None:
            self._looker = threading.Thread(target=self._serve, name="ocrwatch-volume", daemon=True)
            self._looker.start()
        answer: queue.SimpleQueue[Look] = queue.SimpleQueue()
        self._requests.put(answer)
        try:
            return answer.get(timeout=self.timeout)
        except queue.Empty:
            self._hung = answer
            log.error(
                "volume.hung",
                folder=fsutil.display(self.folder),
                timeout=self.timeout,
                detail="a look at the share has not come back (a hard mount that hangs?)",
            )
            return Look(False, "a look at it has not come back")

    def _serve(self) -> None:
        while True:
            self._requests.get().put(self._look())

    def _look(self) -> Look:
        if not self.volume_id:
            try:
                st = os.stat(self.folder)
            except OSError as exc:
                return Look(False, f"cannot be read ({exc.strerror})")
            if (st.st_dev, st.st_ino) == self._identity:
                return Look(True)
            return Look(False, "not the folder it was at start")
        found = read_marker(self.marker)
        if found == self.volume_id:
            return Look(True)
        if found:
            return Look(False, "its marker holds another volume id (another share?)")
        if not _marker_missing(self.marker):
            return Look(False, "its marker cannot be read")
        return self._remake()

    def _remake(self) -> Look:
        """The marker is gone: write it again if the folder is still the one of the start."""
        try:
            st = os.stat(self.folder)
            with os.scandir(self.folder) as entries:
                empty = next(entries, None) is None
        except OSError as exc:
            return Look(False, f"cannot be read ({exc.strerror})")
        if (st.st_dev, st.st_ino) != self._identity:
            # A share's mount point after the share left, or another folder under its name.
            return Look(False, "not the folder it was at start")
        if empty:
            return Look(False, "empty and without its marker (a bare mount point?)")
        try:
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            fsutil.atomic_write(self.marker, (self.volume_id + "\n").encode("ascii"))
        except OSError as exc:
            return Look(False, f"its marker cannot be written again ({exc.strerror})")
        return Look(True, recreated=True)


class Mounts:
    """Inbox and outbox availability, checked for real; says so once per change."""

    def __init__(self, layout: Layout) -> None:
        """Check ``layout``'s inbox and outbox (claim their markers with :meth:`claim`)."""
        self.layout = layout
        self.inbox = Volume(layout.inbox, layout.inbox_marker)
        self.outbox = Volume(layout.outbox, layout.outbox_marker)
        self.inbox_ok = True
        self.outbox_ok = True

    def claim(self) -> None:
        """Write or read both markers at start."""
        self.inbox.claim()
        self.outbox.claim()

    def refresh(self) -> tuple[bool, bool]:
        """Check both; return (inbox came back, outbox came back).

        A folder whose marker was made again counts as come back too: what was in the
        deleted marker folder (claimed files, a work area) must be looked for again.
        """
        back: list[bool] = []
        for what, volume, attr in (
            ("inbox", self.inbox, "inbox_ok"),
            ("outbox", self.outbox, "outbox_ok"),
        ):
            ok = volume.available()
            found, remade = volume.last, volume.remade  # remade: maybe by another caller's look
            volume.remade = False
            was = getattr(self, attr)
            setattr(self, attr, ok)
            if remade:
                log.warning(
                    "folder.marker_recreated",
                    folder=what,
                    path=fsutil.display(getattr(self.layout, what)),
                    marker=fsutil.display(volume.marker),
                    detail="its marker folder was deleted while the folder stayed; made again",
                )
            if ok and not was:
                log.warning(f"{what}.available", path=fsutil.display(getattr(self.layout, what)))
            elif was and not ok:
                log.error(
                    f"{what}.unavailable",
                    path=fsutil.display(getattr(self.layout, what)),
                    marker=fsutil.display(volume.marker),
                    why=found.why,
                    detail="paused until it is back (an unmounted share, a renamed folder?)",
                )
            back.append(ok and (not was or remade))
        return back[0], back[1]

    @property
    def ok(self) -> bool:
        """Return True when both inbox and outbox are there."""
        return self.inbox_ok and self.outbox_ok
