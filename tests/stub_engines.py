"""Engines for the many-host tests, registered through the ``ocrwatch.engines`` entry points.

:func:`stub_site` writes a throw-away dist-info whose entry points name the engines below; a
subprocess with that folder on ``PYTHONPATH`` can choose them like any third-party engine.

- ``stub`` reads one line naming the languages it was asked for ("read eng"), so a test
  sees which settings a page was read with. The languages it knows come from
  ``OCRWATCH_TEST_STUB_LANGUAGES`` (default ``eng,spa``): one host can lack one.
- ``OCRWATCH_TEST_STUB_SECONDS`` is its time per page (default 0).
- On a *marked* page (all black, see :func:`marked_page`) it kills its own process with
  SIGSEGV, as a native engine crashing on one input would.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from PIL import Image, ImageStat

from ocrwatch.engines.base import Capabilities, Engine, Line, PageResult

if TYPE_CHECKING:
    from ocrwatch.settings.choices import Mode

TESTS = Path(__file__).resolve().parent


class StubEngine(Engine):
    """Reads "read <languages>"; segfaults on an all-black page."""

    name: ClassVar[str] = "stub"
    capabilities: ClassVar[Capabilities] = Capabilities(handwriting=True)

    def version(self) -> str:
        return "stub 1"

    def languages(self) -> frozenset[str]:
        codes = os.environ.get("OCRWATCH_TEST_STUB_LANGUAGES", "eng,spa")
        return frozenset(c.strip() for c in codes.split(",") if c.strip())

    def recognize(self, page: Image.Image, *, languages: Sequence[str], mode: Mode) -> PageResult:
        if max(ImageStat.Stat(page.convert("L")).extrema[0]) < 16:  # the marked page
            os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(float(os.environ.get("OCRWATCH_TEST_STUB_SECONDS", "0")))
        missing = [code for code in languages if code not in self.languages()]
        if missing:
            from ocrwatch.exceptions import ConfigError

            raise ConfigError(f"stub: language(s) {', '.join(missing)} not available")
        text = f"read {'+'.join(languages)}"
        return PageResult(
            lines=(Line(text, 99.0),), engine=self.name, width=page.width, height=page.height
        )


def marked_page(path: Path) -> Path:
    """Write the page the stub engine crashes on (all black) to ``path``."""
    Image.new("L", (320, 120), 0).save(path)
    return path


def stub_site(root: Path) -> str:
    """Write the dist-info that registers the stub engine; return a PYTHONPATH for it."""
    dist = root / "ocrwatch_test_stub-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ocrwatch-test-stub\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[ocrwatch.engines]\nstub = stub_engines:StubEngine\n")
    parts = [str(root), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)
