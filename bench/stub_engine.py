"""An engine that only waits: for measuring the daemon and its executors, not recognition.

Registered for the scale benchmark through an entry point in a throw-away dist-info folder
(``bench.scale`` makes it). ``OCRWATCH_BENCH_STUB_SECONDS`` is its time per page.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ocrwatch.engines.base import Capabilities, Engine, Line, PageResult

if TYPE_CHECKING:
    from PIL import Image

    from ocrwatch.settings.choices import Mode


class SleepEngine(Engine):
    """Waits a fixed time per page and reads one line, "stub"."""

    name: ClassVar[str] = "sleep"
    capabilities: ClassVar[Capabilities] = Capabilities(handwriting=True)

    def version(self) -> str:
        return "sleep 1"

    def languages(self) -> frozenset[str]:
        return frozenset({"eng", "spa", "fra"})

    def recognize(self, page: Image.Image, *, languages: Sequence[str], mode: Mode) -> PageResult:
        time.sleep(float(os.environ.get("OCRWATCH_BENCH_STUB_SECONDS", "1.0")))
        return PageResult(
            lines=(Line("stub", 1.0),), engine=self.name, width=page.width, height=page.height
        )
