"""Filesystem helpers for tests."""

from __future__ import annotations

from pathlib import Path


def fill_up(directory: Path) -> None:
    """Write into ``directory`` until its filesystem is full."""
    with open(directory / "ballast", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
