"""Every exception ocrwatch raises, grouped by what happens next, each with its exit code.

The tree::

    OcrwatchError                  exit 1  unexpected failure (a bug: please report it)
    ├── ConfigError                exit 3  bad setting or unsafe layout: fix config, restart
    ├── StateFullError             exit 75 no room for the journal at start: restarted later
    ├── DependencyError            exit 4  engine, language pack or tool not installed
    ├── InputError                 exit 5  this file cannot be read: quarantined, others go on
    │   ├── EmptyFileError
    │   ├── UnsupportedFormatError         (also: a file whose content does not match its name)
    │   ├── CorruptFileError               (truncated or undecodable)
    │   ├── ImageTooLargeError             (decompression bomb, too many pixels or bytes)
    │   ├── ImageTooSmallError             (nothing to recognize, e.g. a 1-pixel image)
    │   └── EncryptedPdfError              (needs a password)
    ├── EngineError                exit 6  recognition failed
    │   ├── TransientEngineError           retried with backoff, the file is kept
    │   └── PermanentEngineError           not retried: the file is quarantined
    └── OutputError                exit 7  a sidecar could not be written
        └── TransientOutputError           (disk full, share gone): retried

The CLI turns these into exit codes in one place (``cli.main``); the daemon's worker side
turns them into retry or quarantine categories in one place (``daemon.tasks.classify``).
``InterruptedError`` from a signal maps to 130.
"""

from __future__ import annotations

import errno
from enum import IntEnum
from pathlib import Path

__all__ = [
    "ENVIRONMENT_ERRNOS",
    "ConfigError",
    "CorruptFileError",
    "DependencyError",
    "EmptyFileError",
    "EncryptedPdfError",
    "EngineError",
    "ExitCode",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InputError",
    "OcrException",
    "OcrwatchError",
    "OutputError",
    "PermanentEngineError",
    "StateFullError",
    "TransientEngineError",
    "TransientOutputError",
    "UnsupportedFormatError",
]


class ExitCode(IntEnum):
    """Process exit codes of the ``ocrwatch`` command (documented in README)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    DEPENDENCY = 4
    INPUT = 5
    ENGINE = 6
    OUTPUT = 7
    TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL: try again later (systemd restarts the service)
    INTERRUPTED = 130


class OcrwatchError(Exception):
    """Base of every ocrwatch error; ``message`` is one line meant for a person."""

    exit_code: ExitCode = ExitCode.FAILURE
    #: A short, stable, machine-readable reason (quarantine reason files, manifests, logs).
    reason: str = "internal_error"

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.message = message
        self.path = None if path is None else Path(path)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.path is not None:
            return f"{self.path}: {self.message}"
        return self.message


#: The tutorial's name for the base exception (``ocrwatch.exceptions.OcrException``).
OcrException = OcrwatchError


class ConfigError(OcrwatchError):
    """A setting is invalid or the folder layout is unsafe; nothing is processed."""

    exit_code = ExitCode.CONFIG
    reason = "config_error"


class StateFullError(OcrwatchError):
    """The state folder has no room for the journal at start (disk or quota full).

    Not a configuration fault: it ends by itself once space is freed, so the exit code is
    one systemd restarts (``Restart=on-failure``), unlike 3 and 4.
    """

    exit_code = ExitCode.TEMPFAIL
    reason = "state_full"


class DependencyError(OcrwatchError):
    """An engine, language pack or external tool is missing; install it and rerun."""

    exit_code = ExitCode.DEPENDENCY
    reason = "missing_dependency"


class InputError(OcrwatchError):
    """The input file cannot be recognized as it is; waiting will not help."""

    exit_code = ExitCode.INPUT
    reason = "bad_input"


class EmptyFileError(InputError):
    """The file has zero bytes."""

    reason = "empty_file"


class UnsupportedFormatError(InputError):
    """Not an image or PDF we can read (or its content does not match its extension).

    ``settled`` is False when the content could still become a readable file (zeros or
    unrecognized bytes: a writer may not be done); text or another known format is settled.
    """

    reason = "unsupported_format"

    def __init__(
        self, message: str, *, path: Path | str | None = None, settled: bool = True
    ) -> None:
        self.settled = settled
        super().__init__(message, path=path)


class CorruptFileError(InputError):
    """The file is truncated or cannot be decoded."""

    reason = "corrupt_file"


class ImageTooLargeError(InputError):
    """Too many pixels or bytes (decompression-bomb protection)."""

    reason = "too_large"


class ImageTooSmallError(InputError):
    """Too small to hold any text."""

    reason = "too_small"


class EncryptedPdfError(InputError):
    """The PDF needs a password."""

    reason = "encrypted_pdf"


class EngineError(OcrwatchError):
    """The recognition engine failed."""

    exit_code = ExitCode.ENGINE
    reason = "engine_error"


class TransientEngineError(EngineError):
    """A failure that may pass (timeout, crash, rate limit, 5xx): retry with backoff.

    ``retry_after`` carries a server's wait hint in seconds (HTTP Retry-After), which the
    retry policy honours instead of its own backoff.
    """

    reason = "engine_transient"

    def __init__(
        self, message: str, *, path: Path | str | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, path=path)


class PermanentEngineError(EngineError):
    """A failure that will not pass by retrying (rejected request, bad credentials)."""

    reason = "engine_permanent"


class OutputError(OcrwatchError):
    """The sidecar or manifest could not be written."""

    exit_code = ExitCode.OUTPUT
    reason = "output_error"


class TransientOutputError(OutputError):
    """Writing failed for a reason that may pass (disk full, share unavailable, busy)."""

    reason = "output_transient"


#: OSError numbers that describe the environment (full disk, a share gone, busy, read-only
#: remount) rather than the file: waiting and retrying can help, quarantining cannot.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EBUSY,
        errno.EAGAIN,
        errno.ESTALE,
        errno.ENOTCONN,
        errno.ETIMEDOUT,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ECONNRESET,
        errno.EROFS,
    }
)
