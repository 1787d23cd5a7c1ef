"""The engine contract: what every recognition engine takes and returns.

An engine turns one preprocessed page image into a :class:`PageResult` (lines in reading
order, each with text and a confidence in [0, 1]). It is constructed once from the
settings (its own section of them) and then called many times, possibly from several
threads, so implementations must be thread-safe (use a lock or per-thread state where the backend is
not). Engines translate their backend's exceptions at the boundary:

- :class:`~ocrwatch.exceptions.DependencyError` from the constructor or
  :meth:`Engine.check` when the backend, its weights or a language pack is missing;
- :class:`~ocrwatch.exceptions.ConfigError` for a language the engine cannot do (message
  lists the valid ones);
- :class:`~ocrwatch.exceptions.TransientEngineError` for failures worth retrying;
- :class:`~ocrwatch.exceptions.PermanentEngineError` for failures that will not pass.

Engines that can take a whole PDF themselves (a cloud API) set
``capabilities.native_pdf`` and implement :meth:`Engine.recognize_pdf`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from ocrwatch.support.throttle import Throttle, Throttles

if TYPE_CHECKING:
    from PIL import Image

    from ocrwatch.settings.choices import Mode
    from ocrwatch.settings.model import Settings

__all__ = [
    "Capabilities",
    "Engine",
    "EngineContext",
    "Line",
    "NoSettings",
    "PageResult",
    "Word",
]

#: An axis-aligned box in pixels: (left, top, right, bottom).
PixelBox = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a line with its box in pixels and a confidence in [0, 1] (or None).

    ``estimated`` is True when the box was derived from the line's box (split in proportion
    to the characters) rather than reported by the engine itself.
    """

    text: str
    box: PixelBox
    confidence: float | None = None
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """One line of text in reading order; ``box`` is (left, top, right, bottom) in pixels.

    ``confidence`` is in [0, 1], or None when the engine reports none (a cloud API).
    ``words`` are the line's words with their boxes, left to right; empty when the engine
    reports no positions.
    """

    text: str
    confidence: float | None
    box: PixelBox | None = None
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class PageResult:
    """The recognized lines of one page, in reading order, and who read them."""

    lines: tuple[Line, ...]
    engine: str
    width: int = 0
    height: int = 0

    @property
    def text(self) -> str:
        """The page's text, one line per line; blank lines between paragraphs are kept."""
        return "\n".join(line.text for line in self.lines)

    @property
    def confidence(self) -> float | None:
        """Mean line confidence weighted by characters; None for an empty page or no scores."""
        weights = [
            (max(len(ln.text.strip()), 1), ln.confidence)
            for ln in self.lines
            if ln.text and ln.confidence is not None
        ]
        if not weights:
            return None
        total = sum(w for w, _ in weights)
        return sum(w * c for w, c in weights) / total


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine can do; the defaults are the safe, conservative answers."""

    #: Good on handwriting (chosen for ``mode = handwritten``).
    handwriting: bool = False
    #: Takes a PDF as a whole (``recognize_pdf``) instead of rasterized pages.
    native_pdf: bool = False
    #: Talks to a network service (credentials, rate limits, latency).
    network: bool = False
    #: Wants preprocessed pages binarized/grayscale as the mode's profile says (False: raw RGB).
    wants_preprocessing: bool = True


class NoSettings(BaseModel):
    """The settings section of an engine that has none."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True, slots=True)
class EngineContext:
    """What an engine is built with: its own settings section, and what it will be asked.

    ``languages`` and ``spellcheck`` let an engine prepare (warm up) for the configured
    reading; ``throttle`` is the request limit of a network engine (shared across hosts).
    """

    section: Any = field(default_factory=NoSettings)
    languages: tuple[str, ...] = ("eng",)
    spellcheck: bool = False
    throttle: Throttle | None = None


class Engine(ABC):
    """Base class of recognition engines. Subclasses set ``name`` and ``capabilities``.

    An engine gets only its own settings section: ``[tesseract]``, ``[paddle]`` and
    ``[aspose]`` for the built-ins, ``[engines.NAME]`` validated by ``settings_model`` for
    an entry-point engine.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    settings_model: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, context: EngineContext) -> None:
        self.context = context

    @classmethod
    def from_settings(cls, settings: Settings, *, throttles: Throttles | None = None) -> Engine:
        """Build the engine from its section of ``settings``, its languages and ``throttles``.

        ``throttles`` says where a network engine keeps its request window (default: this
        process alone, in memory); the process that starts builds it and hands it down.
        """
        section = settings.engine_section(cls.name, cls.settings_model)
        throttle = None
        if cls.capabilities.network:
            throttle = (throttles or Throttles()).for_engine(cls.name, section)
        context = EngineContext(
            section=section,
            languages=tuple(settings.languages),
            spellcheck=settings.spellcheck,
            throttle=throttle,
        )
        return cls(context)

    @abstractmethod
    def version(self) -> str:
        """Return the engine and model version, e.g. ``tesseract 5.5.4``."""

    @abstractmethod
    def languages(self) -> frozenset[str]:
        """Return the Tesseract-style language codes this engine can read right now."""

    @abstractmethod
    def recognize(self, page: Image.Image, *, languages: Sequence[str], mode: Mode) -> PageResult:
        """Recognize one page image; return its lines in reading order.

        Raises ConfigError (unsupported language), TransientEngineError or
        PermanentEngineError.
        """

    def recognize_pdf(
        self, data: bytes, *, languages: Sequence[str], mode: Mode
    ) -> tuple[PageResult, ...]:
        """Recognize a whole PDF (only when ``capabilities.native_pdf``)."""
        raise NotImplementedError(f"engine {self.name} does not take PDFs directly")

    def check(self, languages: Sequence[str]) -> list[str]:
        """Return problems that stop this engine from reading ``languages`` (empty: ready)."""
        have = self.languages()
        missing = [code for code in languages if code not in have]
        if missing:
            return [
                f"{self.name}: language(s) {', '.join(missing)} not available; "
                f"available: {', '.join(sorted(have)) or 'none'}"
            ]
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release backend resources (sessions, handles). Safe to call twice."""
