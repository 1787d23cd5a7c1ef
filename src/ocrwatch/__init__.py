"""ocrwatch: recognize scans and photos of handwriting into UTF-8 sidecar text files.

The daemon and CLI are ``ocrwatch run`` / ``ocrwatch ocr``. From Python, the tutorial's API::

    import ocrwatch as ocr

    engine = ocr.OcrEngine()  # local engines; OcrEngine(client_id=, client_secret=): Aspose
    engine.load_image("scan.png")
    engine.set_recognition_mode(ocr.RecognitionMode.HANDWRITTEN)
    engine.set_language(ocr.Language.SPANISH)
    try:
        print(engine.recognize().text)
    except ocr.exceptions.OcrException as exc:
        print("failed:", exc)
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ocrwatch._version import __version__

if _TYPE_CHECKING:
    from ocrwatch import exceptions
    from ocrwatch.api import Language, OcrEngine, RecognitionMode, RecognitionResult
    from ocrwatch.exceptions import OcrException

__all__ = [
    "Language",
    "OcrEngine",
    "OcrException",
    "RecognitionMode",
    "RecognitionResult",
    "__version__",
    "exceptions",
]

# The tutorial facade loads lazily (PEP 562): importing ocrwatch.daemon or ocrwatch.cli must
# not pay for it, and nothing below the CLI imports this package's names.
_LAZY = {
    "Language": "ocrwatch.api",
    "OcrEngine": "ocrwatch.api",
    "RecognitionMode": "ocrwatch.api",
    "RecognitionResult": "ocrwatch.api",
    "OcrException": "ocrwatch.exceptions",
}


def __getattr__(name: str) -> _Any:
    import importlib

    if name == "exceptions":
        return importlib.import_module("ocrwatch.exceptions")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ocrwatch' has no attribute {name!r}")
