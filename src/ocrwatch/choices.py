"""The closed sets of choices in ocrwatch's settings (modes, policies, output formats)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode

__all__ = [
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
