"""Where a task's exceptions become failure categories: retry, wait, quarantine, or a bug.

This is the one boundary where exceptions of every layer are mapped (the tree is drawn in
:mod:`ocrwatch.exceptions`); the journal then decides what a category means for the file.
"""

from __future__ import annotations

import errno

from ocrwatch.exceptions import (
    ENVIRONMENT_ERRNOS,
    ConfigError,
    CorruptFileError,
    DependencyError,
    EmptyFileError,
    InputError,
    OutputError,
    PermanentEngineError,
    TransientEngineError,
    TransientOutputError,
    UnsupportedFormatError,
)
from ocrwatch.support.fsutil import NAME_ERRNOS
from ocrwatch.support.retry import Category

__all__ = ["classify"]


def classify(exc: BaseException, *, probing: bool = False) -> tuple[Category, str]:
    """Return (category, reason code) for an exception raised by a task.

    While probing, a file that does not decode yet may still be being written (a scanner
    that pre-allocates zeros, or pauses): that is INCOMPLETE, retried for a bounded time.
    Content that is plainly something else (text, a ZIP, a HEIC photo) is final at once.
    """
    unsettled = isinstance(exc, UnsupportedFormatError) and not exc.settled
    if probing and (isinstance(exc, CorruptFileError | EmptyFileError) or unsettled):
        assert isinstance(exc, InputError)
        return Category.INCOMPLETE, exc.reason
    if isinstance(exc, InputError | PermanentEngineError):
        return Category.PERMANENT, exc.reason
    if isinstance(exc, TransientOutputError | DependencyError | ConfigError):
        return Category.ENVIRONMENT, exc.reason
    if isinstance(exc, TransientEngineError):
        return Category.TRANSIENT, exc.reason
    if isinstance(exc, OutputError):
        return Category.PERMANENT, exc.reason
    if isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0, "error").lower()
        if exc.errno in ENVIRONMENT_ERRNOS:
            return Category.ENVIRONMENT, f"os_{name}"
        if exc.errno in NAME_ERRNOS:  # waiting never fixes a name
            return Category.PERMANENT, f"os_{name}"
        return Category.TRANSIENT, f"os_{name}"
    if isinstance(exc, MemoryError):
        return Category.CRASH, "out_of_memory"
    return Category.BUG, "internal_error"
