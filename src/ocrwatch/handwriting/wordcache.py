"""Word data built from wheels (lexicons, the spelling dictionary), cached on disk.

Building them is pure Python and would be most of a one-file ``ocrwatch ocr`` start-up; a
cached copy loads in a fraction of that time (bench/README.md). Files live in
``$CACHE_DIRECTORY`` (systemd's ``CacheDirectory=``), else ``$XDG_CACHE_HOME/ocrwatch`` or
``~/.cache/ocrwatch``, and are named by a digest of everything they were built from (package
versions, Python's), so an upgrade builds new ones and removes the old. A folder that is not
private to this user is never read from; a cache that cannot be read or written is skipped
and the data built in memory as before.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

import structlog

from ocrwatch._version import __version__
from ocrwatch.support.fsutil import atomic_write

__all__ = ["cache_dir", "load_or_build"]

T = TypeVar("T")

_STALE = re.compile(r"-[0-9a-f]{16}\.bin")  # another digest of the same name

log = structlog.get_logger("ocrwatch.handwriting.wordcache")


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the folder cached word data goes in (not created here); None when there is
    none (no ``HOME`` and no account entry, as for an arbitrary uid in a container)."""
    env = os.environ if environ is None else environ
    systemd = env.get("CACHE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg:
        return Path(xdg) / "ocrwatch"
    try:
        home = Path(env.get("HOME") or Path.home())
    except RuntimeError:  # Path.home(): "Could not determine home directory."
        return None
    return home / ".cache" / "ocrwatch"


def _digest(packages: Sequence[str], key: Sequence[str]) -> str:
    parts = [__version__, sys.version, *key]
    for name in packages:
        try:
            parts.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name}=?")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _private(folder: Path) -> bool:
    """Whether ``folder`` is ours and nobody else can write in it (so its files are ours)."""
    try:
        st = folder.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def load_or_build(
    name: str,
    *,
    packages: Sequence[str],
    key: Sequence[str],
    build: Callable[[], T],
    dump: Callable[[T], bytes],
    load: Callable[[bytes], T],
    folder: Path | None = None,
) -> T:
    """Return ``load`` of the cached ``name`` for these inputs, else ``build()`` and cache it.

    ``packages`` are the distributions the data comes from (their versions are part of the
    file name's digest), ``key`` anything else it depends on.
    """
    folder = cache_dir() if folder is None else folder
    if folder is None:
        return build()
    path = folder / f"{name}-{_digest(packages, key)}.bin"
    if _private(folder):
        try:
            return load(path.read_bytes())
        except FileNotFoundError:
            pass
        except Exception as exc:  # a truncated or foreign file: rebuilt below
            log.warning("wordcache.unreadable", path=str(path), error=str(exc))
    value = build()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _private(folder):
            atomic_write(path, dump(value), mode=0o600)
            for old in folder.glob(f"{name}-*.bin"):
                if old != path and _STALE.fullmatch(old.name[len(name) :]):
                    old.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("wordcache.unwritable", path=str(path), error=str(exc))
    return value
