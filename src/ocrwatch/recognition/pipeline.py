"""Recognize one document: load pages -> preprocess -> recognize (with retry) -> result.

Both the CLI and the daemon drive this stage; it never writes (outputs.py does). Per page:
a forced ``engine`` reads every page; else ``printed_engine`` / ``handwritten_engine`` by
mode. In ``auto`` mode Tesseract reads first and its confidence against
``auto_printed_confidence`` decides the kind (a small image that falls short is read once
more, softened: enlarged bitmap fonts); why the threshold holds is in bench/README.md.
English handwriting read by PP-OCR gets the spelling pass (correct.py).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from ocrwatch.engines import Engine, EngineCache, PageResult
from ocrwatch.exceptions import ConfigError, TransientEngineError
from ocrwatch.handwriting.lexicon import english_only
from ocrwatch.recognition import correct, documents, geometry, preprocess
from ocrwatch.settings.choices import Mode
from ocrwatch.settings.model import Settings
from ocrwatch.settings.resolve import apply_profile
from ocrwatch.support.retry import call_with_retry

__all__ = [
    "DocumentResult",
    "PageRecord",
    "check_engines",
    "check_profiles",
    "engine_names_needed",
    "engines_needed",
    "join_ranges",
    "recognize_file",
]

log = structlog.get_logger()

#: Whose confidence decides printed or handwritten in auto mode (the threshold is its scale).
ROUTING_ENGINE = "tesseract"
#: The engine whose greedy readings the English spelling pass may correct.
_SPELLING_ENGINE = "paddle"
#: auto mode: images up to this many pixels get a second, softened routing pass.
SMALL_PAGE_PIXELS = 1_000_000
_SOFTEN_RADIUS = 1.5


@dataclass(frozen=True, slots=True)
class PageRecord:
    """How one page was read: the result plus the route taken (for the manifest)."""

    number: int
    result: PageResult
    mode: Mode
    preprocessing: tuple[str, ...]
    attempts: int
    seconds: float
    #: In auto mode: Tesseract's confidence that decided the route (0..1), else None.
    route_confidence: float | None = None
    #: Words changed by the spelling correction (English handwriting only).
    corrections: int = 0


@dataclass(frozen=True, slots=True)
class DocumentResult:
    """Everything recognized in one document, ready for the output writer."""

    source: documents.SourceInfo
    pages: tuple[PageRecord, ...]
    mode: Mode
    languages: tuple[str, ...]
    engines: dict[str, str]
    timings: dict[str, float]
    attempts: int = 1

    @property
    def text(self) -> str:
        """The document's text: lines kept, pages separated by form feed, final newline."""
        body = "\f".join(p.result.text for p in self.pages)
        return body if body.endswith("\n") else body + "\n"

    @property
    def confidence(self) -> float | None:
        """Mean page confidence over pages that have text (0..1), or None."""
        confs = [c for c in (p.result.confidence for p in self.pages) if c is not None]
        return sum(confs) / len(confs) if confs else None


class _Timer:
    """Accumulates named durations."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds


def _engine_for(settings: Settings, mode: Mode) -> str:
    """The engine that reads a page of kind ``mode``: the forced one, else the mode's own."""
    if settings.engine:
        return settings.engine
    return settings.handwritten_engine if mode is Mode.HANDWRITTEN else settings.printed_engine


def _run(
    page: documents.Page,
    engine: Engine,
    mode: Mode,
    *,
    settings: Settings,
    timer: _Timer,
    soften: bool = False,
) -> tuple[PageResult, tuple[str, ...], int]:
    """Preprocess ``page`` for ``mode`` (if the engine wants it) and read it with ``engine``."""
    source = page.image
    if soften:
        from PIL import ImageFilter

        source = source.filter(ImageFilter.GaussianBlur(_SOFTEN_RADIUS))
    if engine.capabilities.wants_preprocessing:
        t0 = time.perf_counter()
        profile = getattr(settings.preprocess, mode.value)
        prepared = preprocess.preprocess(source, profile=profile)
        timer.add("preprocess", time.perf_counter() - t0)
        image, steps, to_source = prepared.image, prepared.steps, prepared.to_source
    else:
        image, steps, to_source = source, (), geometry.IDENTITY
    if soften:
        steps = ("soften", *steps)
    t0 = time.perf_counter()
    langs = tuple(settings.languages)
    result, attempts = call_with_retry(
        lambda: engine.recognize(image, languages=langs, mode=mode), policy=settings.retry
    )
    timer.add("recognize", time.perf_counter() - t0)
    # Boxes on the page as loaded, not on the upscaled/deskewed/cropped copy.
    result = geometry.map_page(result, to_source, width=page.image.width, height=page.image.height)
    return result, steps, attempts


def _route_auto(
    page: documents.Page, *, settings: Settings, engines: EngineCache, timer: _Timer
) -> tuple[PageResult, tuple[str, ...], int, Mode, float]:
    """Read ``page`` in auto mode: Tesseract's confidence decides printed or handwritten.

    Returns (result, preprocessing steps, attempts, the route, the deciding confidence).
    A forced engine only changes who reads the page (Aspose gets HWT_ENG for handwriting).
    """
    tesseract = engines.get(ROUTING_ENGINE)
    result, steps, attempts = _run(page, tesseract, Mode.PRINTED, settings=settings, timer=timer)
    route_conf = result.confidence or 0.0
    printed = route_conf * 100 >= settings.auto_printed_confidence
    if not printed and page.image.width * page.image.height <= SMALL_PAGE_PIXELS:
        soft, soft_steps, more = _run(
            page, tesseract, Mode.PRINTED, settings=settings, timer=timer, soften=True
        )
        attempts += more
        if (soft.confidence or 0.0) * 100 >= settings.auto_printed_confidence:
            result, steps, route_conf, printed = soft, soft_steps, soft.confidence or 0.0, True
    mode = Mode.PRINTED if printed else Mode.HANDWRITTEN
    reader = _engine_for(settings, mode)
    if not (printed and reader == ROUTING_ENGINE):  # else Tesseract's reading stands
        result, steps, more = _run(page, engines.get(reader), mode, settings=settings, timer=timer)
        attempts += more
    log.debug("page.routed", page=page.number, printed_confidence=round(route_conf, 3), route=mode)
    return result, steps, attempts, mode, route_conf


def _read_page(
    page: documents.Page,
    *,
    settings: Settings,
    engines: EngineCache,
    timer: _Timer,
) -> PageRecord:
    """Route one page to the right engine(s) and return what was read."""
    langs = tuple(settings.languages)
    started = time.perf_counter()
    route_conf: float | None = None
    if settings.mode is Mode.AUTO:
        result, steps, attempts, mode, route_conf = _route_auto(
            page, settings=settings, engines=engines, timer=timer
        )
    else:
        mode = settings.mode
        engine = engines.get(_engine_for(settings, mode))
        result, steps, attempts = _run(page, engine, mode, settings=settings, timer=timer)
    corrections = 0
    # Only our own greedy-decoded readings: an engine with a language model of its own
    # (Aspose) or our lexicon decoder already chose its words from the image.
    if (
        mode is Mode.HANDWRITTEN
        and settings.spellcheck
        and english_only(langs)
        and result.engine == _SPELLING_ENGINE
    ):
        t0 = time.perf_counter()
        result, corrections = correct.correct_page(result)
        timer.add("correct", time.perf_counter() - t0)
    return PageRecord(
        number=page.number,
        result=result,
        mode=mode,
        preprocessing=steps,
        attempts=attempts,
        seconds=time.perf_counter() - started,
        route_confidence=route_conf,
        corrections=corrections,
    )


def _native_pdf_pages(
    engine: Engine, info: documents.SourceInfo, *, settings: Settings, timer: _Timer
) -> Iterator[PageRecord]:
    """Hand a whole PDF to an engine that takes PDFs itself (e.g. a cloud API)."""
    data = info.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != info.sha256:
        # The file changed between probe and read: the caller must not trust this result.
        raise TransientEngineError("file changed while being read", path=info.path)
    mode = settings.mode
    langs = tuple(settings.languages)
    t0 = time.perf_counter()
    results, attempts = call_with_retry(
        lambda: engine.recognize_pdf(data, languages=langs, mode=mode), policy=settings.retry
    )
    elapsed = time.perf_counter() - t0
    timer.add("recognize", elapsed)
    for number, result in enumerate(results, start=1):
        yield PageRecord(
            number=number,
            result=result,
            mode=mode,
            preprocessing=(),
            attempts=attempts,
            seconds=elapsed / max(len(results), 1),
        )


def recognize_file(
    path: Path,
    *,
    settings: Settings,
    engines: EngineCache,
    on_page: Callable[[PageRecord], None] | None = None,
    pages: tuple[int, int] | None = None,
) -> DocumentResult:
    """Recognize every page of the image or PDF at ``path``; the file is only read.

    ``on_page`` is called after each page (progress reporting, watchdog pings); ``pages``
    (first, last; inclusive) limits the pages read.
    Raises InputError subclasses for bad files, EngineError subclasses when recognition
    fails (after retries for transient ones), ConfigError/DependencyError for an unusable
    engine or language, OSError when the file cannot be read.
    """
    timer = _Timer()
    started = time.perf_counter()
    path = Path(path)

    t0 = time.perf_counter()
    # The pages are decoded by load_pages right after: one decode per attempt.
    info = documents.probe(path, settings=settings, decode=False)
    timer.add("probe", time.perf_counter() - t0)

    forced = engines.get(settings.engine) if settings.engine else None
    # Fail fast on a language the chosen engine(s) cannot do, before any page work.
    needed = check_engines(settings, engines)

    whole = pages is None or pages == (1, info.page_count)
    if forced is not None and forced.capabilities.native_pdf and info.format == "pdf" and whole:
        read = _native_pdf_pages(forced, info, settings=settings, timer=timer)
    else:
        read = _pages(info, settings=settings, engines=engines, timer=timer, pages=pages)
    records: list[PageRecord] = []
    for record in read:
        records.append(record)
        if on_page:
            on_page(record)
    used = {r.result.engine for r in records} or {e.name for e in needed}
    timer.add("total", time.perf_counter() - started)
    return DocumentResult(
        source=info,
        pages=tuple(records),
        mode=settings.mode,
        languages=tuple(settings.languages),
        engines={name: engines.get(name).version() for name in sorted(used)},
        timings={k: round(v, 4) for k, v in timer.totals.items()},
        attempts=max((r.attempts for r in records), default=1),
    )


def join_ranges(
    parts: Sequence[DocumentResult], *, source: documents.SourceInfo | None = None
) -> DocumentResult:
    """Return one document made of ``parts``, page ranges read apart, given in page order.

    Pages are concatenated, engines merged, timings summed, the attempts are the most any
    part took; mode and languages are the first part's, and so is the source unless
    ``source`` is given. Raises ValueError for no parts.
    """
    if not parts:
        raise ValueError("no page ranges to join")
    timings: dict[str, float] = {}
    for part in parts:
        for key, value in part.timings.items():
            timings[key] = round(timings.get(key, 0.0) + value, 4)
    return replace(
        parts[0],
        source=source or parts[0].source,
        pages=tuple(record for part in parts for record in part.pages),
        engines=dict(sorted({k: v for part in parts for k, v in part.engines.items()}.items())),
        timings=timings,
        attempts=max(part.attempts for part in parts),
    )


def _pages(
    info: documents.SourceInfo,
    *,
    settings: Settings,
    engines: EngineCache,
    timer: _Timer,
    pages: tuple[int, int] | None,
) -> Iterator[PageRecord]:
    """Load and read the document's pages one at a time (memory: one page)."""
    t_load = 0.0
    t0 = time.perf_counter()
    for page in documents.load_pages(info.path, settings=settings, info=info, pages=pages):
        t_load += time.perf_counter() - t0
        yield _read_page(page, settings=settings, engines=engines, timer=timer)
        t0 = time.perf_counter()
    timer.add("load", t_load)


def engine_names_needed(settings: Settings) -> list[str]:
    """Return the names of the engines a file read with ``settings`` may need, in order."""
    if settings.mode is Mode.AUTO:
        # Tesseract decides the page kind, then the reader of either kind may be needed.
        names = [ROUTING_ENGINE, *(_engine_for(settings, m) for m in Mode if m is not Mode.AUTO)]
    else:
        names = [_engine_for(settings, settings.mode)]
    return list(dict.fromkeys(names))


def engines_needed(settings: Settings, engines: EngineCache) -> list[Engine]:
    """Return the engines the settings will use (built on first use)."""
    return [engines.get(name) for name in engine_names_needed(settings)]


def check_engines(settings: Settings, engines: EngineCache) -> list[Engine]:
    """Return the engines the settings need, all able to read ``settings.languages``.

    Raises ConfigError listing every engine's problem (with the languages it does have),
    DependencyError when an engine cannot be built.
    """
    needed = engines_needed(settings, engines)
    problems = [p for engine in needed for p in engine.check(settings.languages)]
    if problems:
        raise ConfigError("; ".join(problems))
    return needed


def check_profiles(settings: Settings, engines: EngineCache) -> list[str]:
    """Check that each profile's engines exist and read its languages; return one line each.

    Raises ConfigError naming the first bad profile (unknown engine, missing language),
    DependencyError when an engine cannot be built.
    """
    report = []
    for profile in settings.profiles:
        effective = apply_profile(settings, profile)
        try:
            needed = check_engines(effective, engines)
        except ConfigError as exc:
            raise ConfigError(f"profile {profile.label!r}: {exc.message}") from exc
        names = ", ".join(e.name for e in needed)
        langs = "+".join(effective.languages)
        report.append(f"profile {profile.label!r}: {effective.mode} with {names}, {langs}")
    return report
