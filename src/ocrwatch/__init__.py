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

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ocrwatch import exceptions
from ocrwatch.api import Language, OcrEngine, RecognitionMode, RecognitionResult
from ocrwatch.exceptions import OcrException

try:
    __version__ = _version("ocrwatch")
except _PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "Language",
    "OcrEngine",
    "OcrException",
    "RecognitionMode",
    "RecognitionResult",
    "__version__",
    "exceptions",
]
