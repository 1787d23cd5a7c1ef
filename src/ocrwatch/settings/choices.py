"""The closed sets of choices in ocrwatch's settings (modes, policies, output formats)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode

__all__ = [
    "LANGUAGE_ALIASES",
    "AfterSuccess",
    "Binarize",
    "Decoder",
    "DuplicatePolicy",
    "ExecutorKind",
    "LogFormat",
    "Mode",
    "OutputFormat",
    "OutputList",
    "WatchMode",
    "parse_languages",
    "split_list",
    "with_sidecars",
]


class Mode(StrEnum):
    """What kind of writing to expect."""

    PRINTED = "printed"
    HANDWRITTEN = "handwritten"
    AUTO = "auto"


class Binarize(StrEnum):
    """Binarization method of the preprocessing stage."""

    OFF = "off"
    OTSU = "otsu"
    ADAPTIVE = "adaptive"


class LogFormat(StrEnum):
    """Log rendering: JSON lines, a console renderer, or auto (console only on a TTY)."""

    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class WatchMode(StrEnum):
    """How the daemon notices new files."""

    AUTO = "auto"
    INOTIFY = "inotify"
    POLLING = "polling"


class Decoder(StrEnum):
    """How the ``paddle`` engine decodes its recognizer's output."""

    GREEDY = "greedy"
    LEXICON = "lexicon"


class BoxScore(StrEnum):
    """How the ``paddle`` detector scores a box against its threshold (rapidocr's names)."""

    SLOW = "slow"  # inside the text's own outline
    FAST = "fast"  # inside its bounding rectangle


class RereadWith(StrEnum):
    """Which recognizer gives the ``paddle`` engine's second reading of a piece."""

    SAME = "same"  # the page's own recognizer, on a looser frame
    OTHER = "other"  # the other one (tuned <-> wheel), on the same looser frame


class ExecutorKind(StrEnum):
    """Where recognition runs for the daemon."""

    LOCAL = "local"  # worker processes on this host
    CELERY = "celery"  # ocrwatch worker processes on any host, through a Celery broker


class AfterSuccess(StrEnum):
    """What the daemon does with an original once its outputs are durable."""

    ARCHIVE = "archive"
    KEEP = "keep"
    DELETE = "delete"


class OutputFormat(StrEnum):
    """What is written for each document (txt and json always are)."""

    TXT = "txt"
    JSON = "json"
    PDF = "pdf"
    HOCR = "hocr"
    ALTO = "alto"


class DuplicatePolicy(StrEnum):
    """What the daemon does with a file whose content (sha256) was already processed."""

    PROCESS = "process"
    SKIP = "skip"


def split_list(v: Any) -> Any:
    """'a,b' or 'a+b' (CLI, environment) -> ['a', 'b']; lists pass."""
    if isinstance(v, str):
        return [p.strip() for p in v.replace("+", ",").split(",") if p.strip()]
    return v


def with_sidecars(v: list[OutputFormat]) -> list[OutputFormat]:
    """Keep the order given; txt and json are always written, so they are always listed."""
    return list(dict.fromkeys([OutputFormat.TXT, OutputFormat.JSON, *v]))


#: A list of output formats as a setting: "txt,pdf" from env/CLI, txt and json always in.
OutputList = Annotated[
    list[OutputFormat], NoDecode, BeforeValidator(split_list), AfterValidator(with_sidecars)
]


#: Language names and ISO 639-1 codes accepted for the Tesseract-style codes.
LANGUAGE_ALIASES: Mapping[str, str] = {
    "en": "eng",
    "english": "eng",
    "es": "spa",
    "spanish": "spa",
    "de": "deu",
    "german": "deu",
    "fr": "fra",
    "french": "fra",
    "it": "ita",
    "italian": "ita",
    "pt": "por",
    "portuguese": "por",
}


def parse_languages(v: Any) -> Any:
    """Return ``v`` ("eng+spa", "en,es", a JSON list, a list) as a list of unique codes.

    Raises ValueError for an empty list; other types are returned for pydantic to refuse.
    """
    if isinstance(v, str):
        v = v.strip()
        # A JSON list from the environment, or "eng+spa" / "eng,spa".
        v = json.loads(v) if v.startswith("[") else v.replace("+", ",").split(",")
    if isinstance(v, list | tuple):
        out: list[str] = []
        for item in v:
            code = str(item).strip().lower()
            if not code:
                continue
            code = LANGUAGE_ALIASES.get(code, code)
            if code not in out:
                out.append(code)
        if not out:
            raise ValueError("at least one language is needed, e.g. 'eng'")
        return out
    return v
