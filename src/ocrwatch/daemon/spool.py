"""Where a claimed file waits: the work area, and the moves out of it.

A file is claimed by an atomic ``rename`` into ``<inbox>/.ocrwatch-work/<instance>/<job>/``
(of two daemons sharing an inbox, exactly one wins). Each instance keeps a heartbeat file in
its folder; a peer whose heartbeat is older than the lease is taken for dead, and its
claimed files are adopted by a live instance (again by rename: one adopter wins). Moves out
go through :mod:`ocrwatch.support.fsutil` (durable, never clobbering, link or copy).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from ocrwatch._version import __version__
from ocrwatch.daemon.folders import Layout
from ocrwatch.support import fsutil

__all__ = ["HEARTBEAT", "REASON_SUFFIX", "Spool"]

log = structlog.get_logger()

REASON_SUFFIX = ".reason.json"
HEARTBEAT = ".heartbeat"


class Spool:
    """Claims files by rename into this daemon's work area and routes them out of it."""

    def __init__(self, layout: Layout, *, instance_id: str) -> None:
        """Use ``layout``'s folders; ``instance_id`` names this daemon's work folder."""
        self.layout = layout
        self.instance_id = instance_id
        self.work_dir = layout.work_root / instance_id
        #: When a live peer's lease runs out (wall time): see :meth:`adopt_dead_peers`.
        self.next_lease_end = float("inf")

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
        fsutil.fsync_dir(dst.parent)
        fsutil.fsync_dir(src.parent)
        return dst

    def release_job_dir(self, job_id: str) -> None:
        """Remove job ``job_id``'s work folders (its file has left; a kept reading goes too)."""
        top = self.work_dir / job_id
        for root, _dirs, files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            for name in files:
                if name.startswith("."):
                    (Path(root) / name).unlink(missing_ok=True)
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
                    if name.startswith("."):
                        continue  # ours (a kept recognition); claimed files are never dot-files
                    path = Path(root) / name
                    rel = PurePosixPath(path.relative_to(job_dir).as_posix())
                    yield job_dir.name, rel, path

    # --- peers ---------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Tell peers sharing the inbox that this instance is alive (touch its heartbeat)."""
        # Never parents=True: with the share away that would rebuild the inbox's folders on
        # the bare mount point. A heartbeat that cannot be written is simply skipped.
        with contextlib.suppress(OSError):
            self.work_dir.mkdir(exist_ok=True)
            beat = self.work_dir / HEARTBEAT
            beat.touch()
            os.utime(beat)

    def adopt_dead_peers(self, *, lease: float, now: float | None = None) -> list[str]:
        """Move job folders of peers silent for ``lease`` seconds into ours; return job ids.

        Sets :attr:`next_lease_end` to when the first live peer's lease runs out (wall
        time; infinity when no peer lives), the moment to look again.
        """
        now = time.time() if now is None else now
        adopted: list[str] = []
        self.next_lease_end = float("inf")
        root = self.layout.work_root
        if not root.is_dir():
            return adopted
        for peer in sorted(root.iterdir()):
            if peer.name == self.instance_id or not peer.is_dir() or peer.is_symlink():
                continue
            try:
                last = os.stat(peer / HEARTBEAT).st_mtime
            except FileNotFoundError:
                last = os.stat(peer).st_mtime
            if now - last < lease:
                self.next_lease_end = min(self.next_lease_end, last + lease)
                continue
            for job_dir in sorted(p for p in peer.iterdir() if p.is_dir()):
                self.work_dir.mkdir(exist_ok=True)
                try:
                    os.rename(job_dir, self.work_dir / job_dir.name)  # one adopter wins
                except OSError:
                    continue
                adopted.append(job_dir.name)
                log.warning("spool.adopted", peer=peer.name, job_id=job_dir.name)
        return adopted

    # --- out of the work area ----------------------------------------------------------------
    def archive(self, path: Path, relpath: PurePosixPath) -> Path:
        """Move the processed original to the archive (mirroring subfolders); return it.

        A share that refuses the name's bytes gets it with U+FFFD in their place.
        """
        target = self.layout.archive / relpath
        target = target.with_name(fsutil.fit_name(target.name))
        return fsutil.with_utf8_fallback(target, lambda t: fsutil.durable_move(path, t))

    def delete(self, path: Path) -> None:
        """Remove the processed original (after_success = delete)."""
        os.unlink(path)
        fsutil.fsync_dir(path.parent)

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
        there. A symlink, FIFO or socket is never kept live: what it was (and a link's
        target) is recorded in the reason file and the entry removed. Returns the
        quarantined file's path (for those: the reason file). Raises OSError.
        """
        base = self.layout.quarantine / relpath
        base = base.with_name(fsutil.fit_name(base.name, reserve=len(REASON_SUFFIX) + 6))
        return fsutil.with_utf8_fallback(
            base,
            lambda b: self._quarantine(path, b, relpath, reason, message, attempts, details, copy),
        )

    def _quarantine(
        self,
        path: Path,
        base: Path,
        relpath: PurePosixPath,
        reason: str,
        message: str,
        attempts: int,
        details: Mapping[str, Any] | None,
        copy: bool,
    ) -> Path:
        base.parent.mkdir(parents=True, exist_ok=True)
        body: dict[str, Any] = {
            "reason": reason,
            "message": fsutil.display(message),
            "attempts": attempts,
            "source": fsutil.display(relpath),
            "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "ocrwatch_version": __version__,
            **(details or {}),
        }
        special = _special_kind(path)
        if special is not None:
            body["special_file"] = special
            if special == "symlink":
                body["symlink_target"] = fsutil.display(os.readlink(path))
        # Choose the final name first so the reason file sits beside the right file.
        for target in fsutil.candidates(base):
            reason_path = target.with_name(target.name + REASON_SUFFIX)
            if not os.path.lexists(target) and not os.path.lexists(reason_path):
                break
        data = (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        fsutil.atomic_write(reason_path, data)
        if special is not None:
            # A live link (or a pipe, a socket) in the quarantine would be a trap; it holds
            # no content, so the reason file is all that is kept of it.
            if not copy:
                os.unlink(path)
                fsutil.fsync_dir(path.parent)
            return reason_path
        try:
            return self._move_into_quarantine(path, target, copy=copy)
        except OSError:
            # The file stays in the work area and is quarantined again later, maybe under
            # another name: a reason file without its file would explain nothing.
            reason_path.unlink(missing_ok=True)
            raise

    @staticmethod
    def _move_into_quarantine(path: Path, target: Path, *, copy: bool) -> Path:
        if not copy:
            return fsutil.durable_move(path, target)
        fsutil.link_no_clobber(path, target, copy=True)  # leaves no partial copy
        fsutil.fsync_dir(target.parent)
        return target


def _special_kind(path: Path) -> str | None:
    """Return what ``path`` is when it is not a regular file (symlink, fifo, ...), or None."""
    mode = os.lstat(path).st_mode
    for kind, test in (
        ("symlink", stat.S_ISLNK),
        ("fifo", stat.S_ISFIFO),
        ("socket", stat.S_ISSOCK),
        ("block device", stat.S_ISBLK),
        ("character device", stat.S_ISCHR),
    ):
        if test(mode):
            return kind
    return None
