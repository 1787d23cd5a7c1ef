"""Headless Chromium (Debian's ``chromium``) reading a page as a person would: the DOM it
built, and the text it shows."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def _chromium(url: str, *extra: str, timeout: float = 90) -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/setup.sh --test installs it)")
    profile = tempfile.mkdtemp(prefix="ocrwatch-chromium-")
    try:
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def dump_dom(url: str) -> str:
    """Return the DOM Chromium built from ``url``, serialized."""
    return _chromium(url, "--dump-dom")


def screenshot(url: str, path: Path) -> Path:
    """Save what Chromium shows of ``url`` to ``path`` (PNG)."""
    _chromium(url, "--window-size=1200,1000", f"--screenshot={path}")
    return path


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.by_id: dict[str, list[str]] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("meta", "br", "link", "img", "input"):
            return
        ident = dict(attrs).get("id")
        self._open.append(ident)
        if ident:
            self.by_id[ident] = []

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for ident in self._open:
            if ident:
                self.by_id[ident].append(data)


class Page:
    """A DOM dump, parsed: its text, its tags, the text of each element with an id."""

    def __init__(self, dom: str) -> None:
        parser = _Dom()
        parser.feed(dom)
        self.dom = dom
        self.text = " ".join(parser.text)  # cells apart, as a reader sees them
        self.tags = parser.tags
        self.by_id = {k: "".join(v) for k, v in parser.by_id.items()}


def read(url: str) -> Page:
    """Return the page at ``url`` as headless Chromium built it."""
    return Page(dump_dom(url))
