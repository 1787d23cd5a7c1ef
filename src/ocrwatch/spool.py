"""Where a file is claimed, and where it goes after: work area, archive, quarantine.

Folder layout (defaults chosen so that a systemd unit needs only the inbox and the outbox in
``ReadWritePaths=``, and so that nothing of ours can ever be mistaken for a scan):

- work area: ``<inbox>/.ocrwatch-work/<instance-id>/<job-id>/<relpath>``. It must be on the
  inbox's filesystem, because the claim is an atomic ``rename`` (the arbiter when several
  daemons share one inbox). Each daemon (state dir) has its own instance folder, so a daemon
  re-queues only its own leftovers at start. Dot-names are never picked up by the watcher.
- archive: ``<outbox>/.ocrwatch/archive/<relpath>`` (originals after success);
- quarantine: ``<outbox>/.ocrwatch/quarantine/<relpath>`` + ``<name>.reason.json``;
- state dir: ``$STATE_DIRECTORY`` (systemd ``StateDirectory=``) or
  ``${XDG_STATE_HOME:-~/.local/state}/ocrwatch``, plus ``/<inbox-name>-<hash>`` so that
  several inboxes never share a journal. Kept off the outbox because SQLite's WAL mode does
  not work on network filesystems, where outboxes often live.

Moves out of the work area are durable and never clobber: same filesystem -> hard link +
unlink (fails instead of overwriting); another filesystem -> copy to a temporary name,
fsync, link into place, fsync the folder, and only then remove the source.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch import __version__
from ocrwatch.exceptions import ConfigError
from ocrwatch.outputs import fsync_dir

if TYPE_CHECKING:
    from ocrwatch.config import Settings

__all__ = [
    "WORK_DIR_NAME",
    "Layout",
    "Spool",
    "check_layout",
    "durable_move",
    "resolve_layout",
]

log = structlog.get_logger()

WORK_DIR_NAME = ".ocrwatch-work"
OUTBOX_PRIVATE = ".ocrwatch"
REASON_SUFFIX = ".reason.json"


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


def _default_state_dir(inbox: Path, environ: Mapping[str, str]) -> Path:
    base_env = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if base_env:
        base = Path(base_env)
    else:
        xdg = environ.get("XDG_STATE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "ocrwatch"
    digest = hashlib.sha256(str(inbox).encode()).hexdigest()[:8]
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


def _candidates(path: Path) -> Iterator[Path]:
    yield path
    stem, suffix = (path.stem, path.suffix) if path.suffix else (path.name, "")
    for n in range(2, 100_000):
        yield path.with_name(f"{stem}.{n}{suffix}")


def _link_no_clobber(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` without ever replacing ``dst``; ``src`` stays too."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # Filesystems without hard links (some SMB mounts): check, then copy.
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from exc
        shutil.copy2(src, dst, follow_symlinks=False)


def _same_content(src: Path, target: Path) -> bool:
    try:
        if os.path.samefile(src, target):
            return True
        return filecmp.cmp(src, target, shallow=False)
    except OSError:
        return False


def durable_move(src: Path, dst: Path) -> Path:
    """Move ``src`` to ``dst`` (or ``dst`` numbered ``name.2.ext`` if taken); return the target.

    A target that already holds the same content (a move interrupted by a crash) is reused.
    The target is durable (fsynced, folder fsynced) before the source is removed, so a crash
    leaves the file in one place or both, never in none. Raises OSError.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    same_device = os.lstat(src).st_dev == os.stat(dst.parent).st_dev
    staged: Path | None = None
    try:
        if not same_device:
            fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
            os.close(fd)
            staged = Path(tmp)
            shutil.copy2(src, staged)
            with open(staged, "rb") as fh:
                os.fsync(fh.fileno())
        for target in _candidates(dst):
            if _same_content(src, target):
                break  # an interrupted earlier move got this far: finish it
            try:
                _link_no_clobber(staged or src, target)
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - 100k names taken
            raise OSError(errno.EEXIST, "no free name", str(dst))
    finally:
        if staged is not None:  # also after a failed copy (disk full): no half file left
            staged.unlink(missing_ok=True)
    fsync_dir(target.parent)
    os.unlink(src)
    fsync_dir(src.parent)
    return target


class Spool:
    """Claims files by rename into this daemon's work area and routes them out of it."""

    def __init__(self, layout: Layout, *, instance_id: str) -> None:
        """Use ``layout``'s folders; ``instance_id`` names this daemon's work folder."""
        self.layout = layout
        self.work_dir = layout.work_root / instance_id

    def work_path(self, relpath: PurePosixPath, job_id: str) -> Path:
        """Return where ``relpath`` lives while job ``job_id`` holds it."""
        return self.work_dir / job_id / relpath

    def claim(
        self, src: Path, relpath: PurePosixPath, job_id: str, *, special: bool = False
    ) -> Path:
        """Atomically rename ``src`` into the work area and return its new path.

        Only regular files are claimed, unless ``special`` (a symlink or device on its way
        to the quarantine: renaming moves the entry itself and never follows it).
        Raises FileNotFoundError when the file is gone (another daemon claimed it first),
        PermissionError when it is not a regular file, OSError for other failures.
        """
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode) or (not special and not stat.S_ISREG(st.st_mode)):
            raise PermissionError(errno.EPERM, "not a regular file", str(src))
        dst = self.work_path(relpath, job_id)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            # rename is atomic on one filesystem: of two daemons racing, exactly one wins.
            os.rename(src, dst)
        except FileNotFoundError:
            self.release_job_dir(job_id)
            raise
        fsync_dir(dst.parent)
        fsync_dir(src.parent)
        return dst

    def release_job_dir(self, job_id: str) -> None:
        """Remove job ``job_id``'s (now empty) work folders."""
        top = self.work_dir / job_id
        for root, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(root)

    def leftovers(self) -> Iterator[tuple[str, PurePosixPath, Path]]:
        """Yield (job id, relpath, path) for every file left in this daemon's work area."""
        if not self.work_dir.is_dir():
            return
        for job_dir in sorted(self.work_dir.iterdir()):
            if not job_dir.is_dir() or job_dir.is_symlink():
                continue
            for root, _dirs, files in os.walk(job_dir, followlinks=False):
                for name in files:
                    path = Path(root) / name
                    rel = PurePosixPath(path.relative_to(job_dir).as_posix())
                    yield job_dir.name, rel, path

    def archive(self, path: Path, relpath: PurePosixPath) -> Path:
        """Move the processed original to the archive (mirroring subfolders); return it."""
        return durable_move(path, self.layout.archive / relpath)

    def delete(self, path: Path) -> None:
        """Remove the processed original (after_success = delete)."""
        os.unlink(path)
        fsync_dir(path.parent)

    def quarantine(
        self,
        path: Path,
        relpath: PurePosixPath,
        *,
        reason: str,
        message: str,
        attempts: int,
        details: Mapping[str, Any] | None = None,
        copy: bool = False,
    ) -> Path:
        """Move (or ``copy``, keep mode) ``path`` to the quarantine with ``<name>.reason.json``.

        The reason file is written first, so a crash never leaves an unexplained file
        there. Returns the quarantined file's path. Raises OSError.
        """
        base = self.layout.quarantine / relpath
        base.parent.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        body: dict[str, Any] = {
            "reason": reason,
            "message": message,
            "attempts": attempts,
            "source": str(relpath),
            "quarantined_at": now,
            "ocrwatch_version": __version__,
        }
        if details:
            body.update(details)
        # Choose the final name first so the reason file sits beside the right file.
        for target in _candidates(base):
            reason_path = target.with_name(target.name + REASON_SUFFIX)
            if not target.exists() and not reason_path.exists():
                break
        data = (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{reason_path.name}.", dir=reason_path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, reason_path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)  # disk full: leave no half-written reason
            raise
        try:
            return self._move_into_quarantine(path, target, copy=copy)
        except OSError:
            # The file stays in the work area and is quarantined again later, maybe under
            # another name: a reason file without its file would explain nothing.
            reason_path.unlink(missing_ok=True)
            raise

    @staticmethod
    def _move_into_quarantine(path: Path, target: Path, *, copy: bool) -> Path:
        if copy:
            try:
                shutil.copy2(path, target, follow_symlinks=False)
            except OSError:
                target.unlink(missing_ok=True)  # a partial copy is no quarantined file
                raise
            fsync_dir(target.parent)
            return target
        if os.path.islink(path):
            # A symlink is moved as a link (never read through); across filesystems its
            # target path is recorded in the reason file instead.
            try:
                os.rename(path, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                os.unlink(path)
            fsync_dir(target.parent)
            return target
        return durable_move(path, target)
