"""Filesystem primitives that survive shares: durable writes, moves and names, in one place.

Everything that writes or moves a file goes through here (sidecars, manifests, the outbox
log, archive and quarantine moves), so the rules hold everywhere: temporary names are short
and hidden, nothing is ever clobbered, a move falls back from link to copy + fsync + unlink
whatever ``st_dev`` says (bind mounts report one device for two mounts), and a folder fsync
that a share refuses is not an error.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import hashlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import structlog

__all__ = [
    "NAME_ERRNOS",
    "NAME_MAX",
    "append_line",
    "atomic_write",
    "candidates",
    "display",
    "durable_move",
    "fit_name",
    "fsync_dir",
    "link_no_clobber",
    "sweep_temp",
    "temp_path",
    "utf8_path",
    "with_utf8_fallback",
]

T = TypeVar("T")

log = structlog.get_logger()

_TEMP_PREFIX = ".ocrwatch-"

#: Longest file name (in bytes) on every filesystem we write to (ext4, XFS, NTFS via SMB).
NAME_MAX = 255

#: errnos that mean "this name cannot be written here" (too long, or bytes the filesystem
#: cannot store, as an SMB share mounted with iocharset=utf8 refuses Latin-1).
NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})

#: errnos that mean "a hard link cannot be made here", whatever the reason: another
#: filesystem (also behind one st_dev, as with bind mounts), or no hard links at all.
_NO_LINK = frozenset(
    {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)


def display(name: str | os.PathLike[str]) -> str:
    """Return ``name`` printable as UTF-8: bytes that are not UTF-8 become ``\\xNN``."""
    text = os.fspath(name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def utf8_path(path: Path) -> Path:
    """Return ``path`` with bytes that are not UTF-8 replaced by U+FFFD (any share takes it)."""
    return Path(os.fsencode(path).decode("utf-8", "replace"))


def with_utf8_fallback(path: Path, attempt: Callable[[Path], T]) -> T:
    """Return ``attempt(path)``; if the filesystem refuses the name's bytes, try the UTF-8 name.

    A share mounted with ``iocharset=utf8`` refuses Latin-1 names (EILSEQ/EINVAL): the name
    then gets U+FFFD in place of the bytes it cannot store. The refusal is recognized on an
    OSError or on an error raised from one (``raise ... from exc``).
    """
    try:
        return attempt(path)
    except Exception as exc:
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        utf8 = utf8_path(path)
        if not isinstance(cause, OSError) or cause.errno not in NAME_ERRNOS or utf8 == path:
            raise
        log.warning("file.name_refused", wanted=display(path), using=str(utf8))
        return attempt(utf8)


def fit_name(name: str, *, reserve: int = 0) -> str:
    """Return ``name`` shortened (if needed) so that it plus ``reserve`` bytes fits NAME_MAX.

    A shortened name keeps its beginning and its last suffix and gets a short hash of the
    full name, so two long names that share a beginning stay apart.
    """
    raw = os.fsencode(name)
    if len(raw) + reserve <= NAME_MAX:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:8]
    dot = raw.rfind(b".")
    suffix = raw[dot:] if dot > 0 and len(raw) - dot <= 16 else b""
    room = NAME_MAX - reserve - len(suffix) - len(digest) - 1
    head = raw[: max(room, 1)]
    # Cut on a UTF-8 character boundary (continuation bytes are 0b10xxxxxx).
    while head and (head[-1] & 0xC0) == 0x80:
        head = head[:-1]
    if head and head[-1] >= 0xC0:
        head = head[:-1]
    return os.fsdecode(head + b"~" + digest.encode() + suffix)


def temp_path(directory: Path) -> Path:
    """Return a fresh hidden temporary name in ``directory`` (short whatever the target)."""
    return directory / f"{_TEMP_PREFIX}{secrets.token_hex(6)}.tmp"


def sweep_temp(root: Path, *, older_than: float, now: float | None = None) -> int:
    """Remove our temporary files under ``root`` older than ``older_than`` s; return how many.

    A killed writer leaves its temporary file behind; one this old belongs to nobody (a
    live writer, here or on a peer, finishes within its time limit).
    """
    now = time.time() if now is None else now
    removed = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if not (name.startswith(_TEMP_PREFIX) and name.endswith(".tmp")):
                continue
            path = Path(folder) / name
            with contextlib.suppress(OSError):
                if now - os.lstat(path).st_mtime > older_than:
                    path.unlink()
                    removed += 1
    return removed


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable, where the filesystem allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network filesystems refuse fsync on folders; the data fsync stands
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes, mode: int) -> Path:
    tmp = temp_path(directory)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # Created 0600; outputs are meant to be read by people and other tools (the
        # process umask still applies on top, as for any new file).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, mode & ~umask)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (temp file beside it, fsync, rename, folder fsync).

    With ``exclusive`` the file must not exist yet: FileExistsError if another writer got
    there first. Raises OSError; a failed write leaves no temporary file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path.parent, data, mode)
    try:
        if exclusive:
            link_no_clobber(tmp, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def link_no_clobber(src: Path, dst: Path, *, copy: bool = False) -> None:
    """Make ``dst`` a copy of ``src`` (a hard link unless ``copy``) without replacing ``dst``.

    ``src`` stays. Raises FileExistsError when ``dst`` exists, OSError otherwise. Where no
    hard link can be made the content is copied to a temporary name, fsynced and renamed
    after a check: racy only against another writer choosing the same name in that instant.
    """
    if not copy:
        try:
            os.link(src, dst, follow_symlinks=False)
            return
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
    staged = temp_path(dst.parent)
    try:
        shutil.copy2(src, staged, follow_symlinks=False)
        if not staged.is_symlink():
            with open(staged, "rb") as fh:
                os.fsync(fh.fileno())
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", str(dst))
        os.rename(staged, dst)
    finally:
        staged.unlink(missing_ok=True)


def candidates(path: Path) -> Iterator[Path]:
    """Yield ``path``, then ``stem.2.ext``, ``stem.3.ext``, ... (names fitted to NAME_MAX)."""
    yield path
    stem, suffix = (path.stem, path.suffix) if path.suffix else (path.name, "")
    for n in range(2, 100_000):
        yield path.with_name(fit_name(f"{stem}.{n}{suffix}"))


def _same_content(src: Path, target: Path) -> bool:
    try:
        if os.path.samefile(src, target):
            return True
        # Only regular files are compared: opening a FIFO would block.
        if not (stat.S_ISREG(os.lstat(src).st_mode) and stat.S_ISREG(os.lstat(target).st_mode)):
            return False
        return filecmp.cmp(src, target, shallow=False)
    except OSError:
        return False


def durable_move(src: Path, dst: Path) -> Path:
    """Move ``src`` to ``dst`` (or ``dst`` numbered ``name.2.ext`` if taken); return the target.

    A target that already holds the same content (a move interrupted by a crash) is reused.
    The target is durable before the source is removed, so a crash leaves the file in one
    place or both, never in none. Raises OSError.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    for target in candidates(dst):
        if _same_content(src, target):
            break  # an interrupted earlier move got this far: finish it
        try:
            link_no_clobber(src, target)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100k names taken
        raise OSError(errno.EEXIST, "no free name", str(dst))
    fsync_dir(target.parent)
    os.unlink(src)
    fsync_dir(src.parent)
    return target


def append_line(path: Path, data: bytes) -> None:
    """Append ``data`` (one whole line) to ``path``, or nothing at all; raises OSError.

    On a full disk a write can stop part-way: half a line would also spoil the next one.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        written = 0
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write", str(path))
        except OSError:
            # Take the fragment back, unless another writer appended after it meanwhile.
            if written and os.fstat(fd).st_size == start + written:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
