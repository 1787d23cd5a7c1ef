"""The tutorial's script on ocrwatch: read a handwritten Spanish note, keep its line breaks.

The tutorial was written for ``import asposeocrcloud as ocr``, an API no real package has;
only the import line differs here. Usage::

    python examples/tutorial.py NOTE.jpg

With ``OCRWATCH_ASPOSE__CLIENT_ID`` and ``OCRWATCH_ASPOSE__CLIENT_SECRET`` set, the note is
read by Aspose OCR Cloud (``OCRWATCH_ASPOSE__BASE_URL`` may point at the local emulator:
``python -m ocrwatch.testing.aspose_emulator``). Without them it runs offline on the local
engines.
"""

from __future__ import annotations

import os
import sys
import time

import ocrwatch as ocr  # the tutorial: import asposeocrcloud as ocr

ATTEMPTS = 3


def make_engine() -> ocr.OcrEngine:
    """Return an Aspose-backed engine when credentials are set, else the local one."""
    client_id = os.environ.get("OCRWATCH_ASPOSE__CLIENT_ID")
    client_secret = os.environ.get("OCRWATCH_ASPOSE__CLIENT_SECRET")
    if client_id and client_secret:
        return ocr.OcrEngine(
            client_id=client_id,
            client_secret=client_secret,
            base_url=os.environ.get("OCRWATCH_ASPOSE__BASE_URL"),
        )
    return ocr.OcrEngine()


def main(argv: list[str]) -> int:
    """Recognize the image named in ``argv[1]`` and print its text; return the exit code."""
    if len(argv) != 2:
        print(f"usage: {argv[0]} IMAGE", file=sys.stderr)
        return 2
    try:
        engine = make_engine()
        engine.load_image(argv[1])
    except ocr.exceptions.OcrException as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1

    engine.set_recognition_mode(ocr.RecognitionMode.HANDWRITTEN)
    engine.set_language(ocr.Language.SPANISH)

    with engine:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                result = engine.recognize()
                break
            except ocr.exceptions.OcrException as exc:
                # Only a transient failure (network, rate limit) is worth another try.
                if attempt == ATTEMPTS or not ocr.exceptions.is_transient(exc):
                    print(f"recognition failed: {exc}", file=sys.stderr)
                    return 1
                print(f"attempt {attempt} failed ({exc}); retrying", file=sys.stderr)
                time.sleep(2 * attempt)

    # Line breaks are kept as recognized; pages are separated by a form feed.
    print(result.text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
