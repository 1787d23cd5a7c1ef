"""Engine registry: built-in engines by name, plus third-party ones from entry points.

Built-ins live in an explicit name -> "module:Class" map so that importing ocrwatch does not
load onnxruntime or libtesseract; an engine's module is imported on first use. Third parties
register engines in the ``ocrwatch.engines`` entry-point group (``name = "pkg.mod:Class"``).
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from ocrwatch.engines.base import Capabilities, Engine, Line, PageResult, Word
from ocrwatch.exceptions import ConfigError, DependencyError
from ocrwatch.support.extras import require
from ocrwatch.support.throttle import Throttles

if TYPE_CHECKING:
    from ocrwatch.settings.model import Settings

__all__ = [
    "BUILTIN_ENGINES",
    "Capabilities",
    "Engine",
    "EngineCache",
    "Line",
    "PageResult",
    "Word",
    "engine_class",
    "engine_names",
    "reads_whole_pdfs",
]

BUILTIN_ENGINES: dict[str, str] = {
    "tesseract": "ocrwatch.engines.tesseract:TesseractEngine",
    "paddle": "ocrwatch.engines.paddle:PaddleEngine",
    "aspose": "ocrwatch.engines.aspose:AsposeEngine",
}

#: Built-in engines whose backend comes with an extra (``pip install 'ocrwatch[aspose]'``):
#: name -> (extra, the modules of it the engine imports).
BUILTIN_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "aspose": ("aspose", ("aspose_ocr_cloud",)),
}

ENTRY_POINT_GROUP = "ocrwatch.engines"


def _plugin_engines() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def engine_names() -> list[str]:
    """Return every engine name that can be chosen, built-ins first."""
    names = list(BUILTIN_ENGINES)
    names += sorted(n for n in _plugin_engines() if n not in BUILTIN_ENGINES)
    return names


def engine_class(name: str) -> type[Engine]:
    """Return the engine class registered under ``name``.

    Raises ConfigError listing the valid names for an unknown one, DependencyError when the
    engine's module cannot be imported (its backend is not installed; for a built-in whose
    backend is an extra, the message names the extra).
    """
    target = BUILTIN_ENGINES.get(name) or _plugin_engines().get(name)
    if target is None:
        raise ConfigError(f"unknown engine {name!r}; valid engines: {', '.join(engine_names())}")
    module_name, _, attr = target.partition(":")
    if name in BUILTIN_EXTRAS:
        extra, modules = BUILTIN_EXTRAS[name]
        require(extra, needed_by=f"engine {name!r}", modules=modules)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DependencyError(
            f"engine {name!r} cannot be loaded ({exc}); run the README's set-up command"
        ) from exc
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise ConfigError(f"engine {name!r} ({target}) does not implement ocrwatch's Engine")
    return cls


def reads_whole_pdfs(engine: str | None) -> bool:
    """Return whether the forced ``engine`` reads whole PDFs itself (then no page ranges)."""
    return bool(engine) and engine_class(str(engine)).capabilities.native_pdf


class EngineCache:
    """Builds each engine once on first use and shares it (engines are thread-safe)."""

    def __init__(self, settings: Settings, *, throttles: Throttles | None = None) -> None:
        self.settings = settings
        self.throttles = throttles
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Engine:
        """Return the engine ``name``, constructing it on first use."""
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = engine_class(name).from_settings(
                    self.settings, throttles=self.throttles
                )
                self._engines[name] = engine
            return engine

    def put(self, engine: Engine) -> None:
        """Use the ready-built ``engine`` under its name (embedding, test doubles)."""
        with self._lock:
            self._engines[engine.name] = engine

    def close(self) -> None:
        """Close every engine built so far."""
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
