"""Shared fixtures: thread-leak guard, instant retries, small rendered inputs."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina

from redisserver import RedisServer, free_port

os.environ.setdefault("TESSDATA_PREFIX", "/usr/share/tesseract-ocr/5/tessdata")
# Cached word data (ocrwatch.handwriting.wordcache) goes to a folder of this run, not ~/.cache.
_WORD_CACHE = tempfile.mkdtemp(prefix="ocrwatch-test-cache-")
atexit.register(shutil.rmtree, _WORD_CACHE, ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = _WORD_CACHE
os.environ.pop("CACHE_DIRECTORY", None)


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    """Retries in tests happen at once, with the configured number of attempts (up to 100)."""
    stamina.set_testing(True, attempts=100, cap=True)
    yield
    stamina.set_testing(False)


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    """A test must not leave non-daemon threads running behind it."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for t in leaked:
        t.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads leaked: {still}"


@pytest.fixture
def small_tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real 256 KiB tmpfs (needs root, as in CI), to fill up for disk-full tests."""
    mountpoint = tmp_path_factory.mktemp("tmpfs")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test (run as root): {proc.stderr}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 without persistence (killing it loses the queue)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (scripts/setup.sh --test installs it)")
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill9()
