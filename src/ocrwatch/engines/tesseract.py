"""The ``tesseract`` engine: Tesseract 5 in-process through tesserocr, with word boxes.

Language data: ``tesseract.tessdata``, else ``$TESSDATA_PREFIX``, else Debian's folder.
The page's DPI is deliberately not passed (Tesseract estimates it from the text size;
declared resolutions emptied some handwritten pages: bench/README.md). Initialized APIs are
pooled per language set, one thread each (tesserocr releases the GIL while reading). A
RuntimeError on pixels that decoded is permanent: the same pixels fail the same way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from ocrwatch.engines.base import Capabilities, Engine, EngineContext, Line, PageResult, Word
from ocrwatch.exceptions import ConfigError, DependencyError, PermanentEngineError
from ocrwatch.settings.sections import TesseractSettings

if TYPE_CHECKING:
    from PIL import Image
    from pydantic import BaseModel

    from ocrwatch.settings.choices import Mode

__all__ = ["DEBIAN_TESSDATA", "TesseractEngine", "resolve_tessdata"]

log = structlog.get_logger()

DEBIAN_TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")

# Debian's OpenMP-built Tesseract is 5-12x slower on 2 cores without this (gotcha 5); the
# wheel is not affected, but a system libtesseract picked up instead would be.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

# "Resolution unknown": Tesseract then estimates it from the text height (see module doc).
_UNKNOWN_DPI = 0


def resolve_tessdata(configured: Path | None) -> Path:
    """Return the tessdata folder to use: the setting, else $TESSDATA_PREFIX, else Debian's."""
    if configured is not None:
        return Path(configured).expanduser()
    env = os.environ.get("TESSDATA_PREFIX")
    if env:
        return Path(env).expanduser()
    return DEBIAN_TESSDATA


class TesseractEngine(Engine):
    """Tesseract 5 (LSTM) through tesserocr; light, fast, best at printed page layout."""

    name: ClassVar[str] = "tesseract"
    capabilities: ClassVar[Capabilities] = Capabilities(handwriting=False)
    settings_model: ClassVar[type[BaseModel]] = TesseractSettings

    def __init__(self, context: EngineContext) -> None:
        """Find the language data and check that tesserocr loads.

        Raises DependencyError when tesserocr or the tessdata folder (or every language in
        it) is missing.
        """
        super().__init__(context)
        cfg: TesseractSettings = context.section
        try:
            import tesserocr
        except ImportError as exc:
            raise DependencyError(
                f"tesserocr is not installed ({exc}); pip install tesserocr"
            ) from exc
        self._tesserocr: Any = tesserocr
        self.tessdata = resolve_tessdata(cfg.tessdata)
        hint = "install language data, e.g. apt-get install tesseract-ocr-eng tesseract-ocr-spa"
        if not self.tessdata.is_dir():
            raise DependencyError(
                f"tessdata folder {self.tessdata} not found; {hint}, "
                "or set tesseract.tessdata / TESSDATA_PREFIX"
            )
        self._languages = frozenset(
            p.name.removesuffix(".traineddata")
            for p in self.tessdata.glob("*.traineddata")
            if p.name != "osd.traineddata"
        )
        if not self._languages:
            raise DependencyError(f"no *.traineddata in {self.tessdata}; {hint}")
        self._psm: int = cfg.psm
        self._pool: dict[str, list[Any]] = {}
        self._pool_lock = threading.Lock()
        self._closed = False
        version = tesserocr.tesseract_version().split()
        self._version = " ".join(version[:2]) if len(version) >= 2 else "tesseract unknown"
        log.info(
            "engine.loaded",
            engine=self.name,
            version=self._version,
            tessdata=str(self.tessdata),
            languages=sorted(self._languages),
        )

    def version(self) -> str:
        """Return e.g. ``tesseract 5.5.4``."""
        return self._version

    def languages(self) -> frozenset[str]:
        """Return the installed language codes (``osd`` excluded)."""
        return self._languages

    def _key(self, languages: Sequence[str]) -> str:
        codes = list(dict.fromkeys(languages)) or ["eng"]
        unknown = [code for code in codes if code not in self._languages]
        if unknown:
            raise ConfigError(
                f"tesseract has no language data for {', '.join(unknown)} in {self.tessdata}; "
                f"available: {', '.join(sorted(self._languages))} "
                f"(install more, e.g. apt-get install tesseract-ocr-{unknown[0]})"
            )
        # Tesseract treats its first language as the primary one, and the English model has
        # no accented letters: "eng+spa" reads "reunión" as "reunion". Putting eng last keeps
        # the accents and measured the same on English print (eval printed sets: CER 0.0538
        # with eng first, 0.0536 with spa first).
        codes.sort(key=lambda code: code == "eng")
        return "+".join(codes)

    @contextmanager
    def _api(self, key: str) -> Iterator[Any]:
        with self._pool_lock:
            if self._closed:
                raise PermanentEngineError("tesseract engine is closed")
            idle = self._pool.setdefault(key, [])
            api = idle.pop() if idle else None
        if api is None:
            try:
                api = self._tesserocr.PyTessBaseAPI(
                    path=str(self.tessdata) + os.sep, lang=key, psm=self._psm
                )
            except RuntimeError as exc:
                raise DependencyError(
                    f"tesseract cannot load {key} from {self.tessdata}: {exc}"
                ) from exc
        try:
            yield api
        finally:
            api.Clear()
            with self._pool_lock:
                if self._closed:
                    api.End()
                else:
                    self._pool.setdefault(key, []).append(api)

    def recognize(self, page: Image.Image, *, languages: Sequence[str], mode: Mode) -> PageResult:
        """Recognize ``page``; return Tesseract's text lines in its reading order.

        Raises ConfigError for a language without data, PermanentEngineError when
        Tesseract rejects the page.
        """
        key = self._key(languages)
        image = page if page.mode in ("RGB", "L", "1") else page.convert("RGB")
        with self._api(key) as api:
            try:
                api.SetImage(image)
                api.SetSourceResolution(_UNKNOWN_DPI)
                api.Recognize()
                lines = self._lines(api, width=image.width, height=image.height)
            except RuntimeError as exc:
                raise PermanentEngineError(f"tesseract failed on this page: {exc}") from exc
        return PageResult(lines=lines, engine=self.name, width=image.width, height=image.height)

    def _lines(self, api: Any, *, width: int, height: int) -> tuple[Line, ...]:
        """Walk the page word by word; a word that begins a text line opens a new Line."""
        ril = self._tesserocr.RIL
        iterator = api.GetIterator()
        if iterator is None:
            return ()

        def clip(bbox: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
            if bbox is None:
                return None
            left, top, right, bottom = bbox
            return (max(0, left), max(0, top), min(width, right), min(height, bottom))

        lines: list[tuple[str, float, tuple[int, int, int, int] | None, list[Word]]] = []
        for item in self._tesserocr.iterate_level(iterator, ril.WORD):
            try:
                if item.IsAtBeginningOf(ril.TEXTLINE):
                    text = (item.GetUTF8Text(ril.TEXTLINE) or "").strip()
                    conf = item.Confidence(ril.TEXTLINE) / 100.0
                    lines.append((text, conf, clip(item.BoundingBox(ril.TEXTLINE)), []))
                word = (item.GetUTF8Text(ril.WORD) or "").strip()
            except RuntimeError:  # tesserocr's way of saying "no text here" (blank page)
                continue
            box = clip(item.BoundingBox(ril.WORD))
            if word and box is not None and lines:
                conf = min(1.0, max(0.0, item.Confidence(ril.WORD) / 100.0))
                lines[-1][3].append(Word(text=word, box=box, confidence=conf))
        return tuple(
            Line(
                text=text,
                confidence=min(1.0, max(0.0, conf)),
                box=box,
                words=tuple(words),
            )
            for text, conf, box, words in lines
            if text
        )

    def close(self) -> None:
        """End every pooled Tesseract API (safe to call twice)."""
        with self._pool_lock:
            self._closed = True
            apis = [api for idle in self._pool.values() for api in idle]
            self._pool.clear()
        for api in apis:
            api.End()
