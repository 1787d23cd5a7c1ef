"""Shared fixtures: thread-leak guard, instant retries, small rendered inputs."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import stamina

os.environ.setdefault("TESSDATA_PREFIX", "/usr/share/tesseract-ocr/5/tessdata")


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    """Retries in tests happen at once; attempts are still counted."""
    stamina.set_testing(True)
    yield
    stamina.set_testing(False)


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    """A test must not leave non-daemon threads running behind it."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.daemon
    ]
    for t in leaked:
        t.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads leaked: {still}"
