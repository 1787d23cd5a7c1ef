"""One multi-page PDF in a quiet inbox is read by every local worker, stitched in page order."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from e2e.conftest import Daemon, Folders, wait_until
from imaging import render_lines

pytestmark = pytest.mark.e2e

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


class TestSpread:
    """The local pool splits one document over its idle workers."""

    def test_one_pdf_on_two_workers(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """Both worker pids read a range; the sidecar has every page, in order."""
        lines = [f"Page {n} {word}" for n, word in enumerate(WORDS, start=1)]
        pages = [render_lines([line], size=36).convert("RGB") for line in lines]
        staged = folders.root / "six.pdf"
        pages[0].save(staged, save_all=True, append_images=pages[1:], resolution=150.0)
        daemon = make_daemon(workers=2).start()
        staged.rename(folders.inbox / "six.pdf")  # arrives whole, as a scanner's rename
        wait_until(lambda: folders.sidecars("six.pdf"), timeout=120, what="the sidecar")
        assert daemon.stop() == 0
        (txt,) = folders.sidecars("six.pdf")
        assert [p.strip() for p in txt.read_text().split("\f")] == lines
        manifest = json.loads(txt.with_suffix(".json").read_text())
        ranges = manifest["pages_processed_by"]
        assert len(ranges) == 2, manifest
        assert len({r["pid"] for r in ranges}) == 2, ranges
        assert manifest["pages"] == 6
        assert [p["number"] for p in manifest["page_details"]] == list(range(1, 7))
