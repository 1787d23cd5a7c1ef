"""structlog set-up: JSON lines when not on a TTY, a readable console renderer on a TTY.

Configure once at start with :func:`configure`; modules use ``log = structlog.get_logger()``.
Records from the standard library (libraries' warnings) go through the same processors.
Logs go to stderr by default so that ``ocrwatch ocr FILE`` keeps stdout for the text; the
daemon logs to stdout for journald.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from ocrwatch.settings.choices import LogFormat
from ocrwatch.support.fsutil import display

__all__ = ["configure"]


def _printable_value(value: Any) -> Any:
    if isinstance(value, str):
        return display(value)
    if isinstance(value, dict):
        return {k: _printable_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable_value(v) for v in value]
    return value


def _printable(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Make file names that are not UTF-8 printable (``\\xe9``): a log line must never fail."""
    return {k: _printable_value(v) for k, v in event_dict.items()}


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    _printable,
]


def configure(
    *, level: str = "info", fmt: LogFormat = LogFormat.AUTO, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to ``stream`` (default stderr) in one format."""
    out = stream if stream is not None else sys.stderr
    console = fmt is LogFormat.CONSOLE or (fmt is LogFormat.AUTO and out.isatty())
    renderer: Any
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        final: list[Any] = [renderer]
    else:
        final = [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    numeric = getattr(logging, level.upper(), logging.INFO)

    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_SHARED],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)  # library warnings as log lines, not bare console text
    # Chatty libraries: keep their warnings, drop their info chatter.
    for name in ("RapidOCR", "rapidocr", "urllib3", "PIL", "watchdog", "fontTools", "pikepdf"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))

    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
