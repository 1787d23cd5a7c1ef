"""Retrying, in two layers on one library (stamina), with every limit a setting.

1. **Per engine call** (:func:`call_with_retry`): a transient engine error (timeout, 429,
   5xx, a dropped connection) is retried at once in the same attempt, bounded by
   ``retry.call_attempts`` and ``retry.call_timeout``, honouring a server's Retry-After.
2. **Per file, across attempts** (:class:`FilePolicy`): when an attempt fails, the daemon
   schedules the next one in its journal (no process sleeps) after :meth:`FilePolicy.backoff`,
   and gives up by category: crashes after ``retry.file_crashes``, transient failures after
   ``retry.file_attempts``, bugs after ``retry.bug_attempts``. Environment failures (disk
   full, a share gone) never give up, but their backoff keeps growing to ``retry.wait_max``.

Stacked, one page sees at most ``call_attempts x file_attempts`` engine calls.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

import stamina

from ocrwatch.exceptions import TransientEngineError

if TYPE_CHECKING:
    from ocrwatch.settings.sections import RetrySettings

__all__ = ["Category", "FilePolicy", "call_with_retry"]

T = TypeVar("T")


class Category(StrEnum):
    """How a failed task is treated (``ok`` for success)."""

    OK = "ok"
    PERMANENT = "permanent"  # quarantine at once
    INCOMPLETE = "incomplete"  # probe: may be a write in progress; retry for a while
    TRANSIENT = "transient"  # retry with backoff, bounded
    ENVIRONMENT = "environment"  # disk full, share gone, engine missing: retry, unbounded
    CRASH = "crash"  # worker died or timed out: retry, few times
    REQUEUED = "requeued"  # queued behind a crashed task: run again, no attempt counted
    BUG = "bug"  # unexpected exception: retry a few times, then quarantine


def _retry_hook(exc: BaseException) -> bool | float:
    """Retry transient engine errors; wait what the server asked for when it said so."""
    if isinstance(exc, TransientEngineError):
        return exc.retry_after if exc.retry_after is not None else True
    return False


def call_with_retry(fn: Callable[[], T], *, policy: RetrySettings) -> tuple[T, int]:
    """Call ``fn``, retrying TransientEngineError per ``policy``; return (result, attempts).

    Each retry is logged by stamina as one event; the last error is re-raised when attempts
    or time run out.
    """
    attempts = 0
    for attempt in stamina.retry_context(
        on=_retry_hook,
        attempts=policy.call_attempts,
        timeout=policy.call_timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ):
        with attempt:
            attempts += 1
            return fn(), attempts
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class FilePolicy:
    """When a file's next attempt comes, and when its failures mean quarantine."""

    settings: RetrySettings

    def backoff(self, attempt: int) -> float:
        """Return the wait in seconds before retry number ``attempt`` (capped, with jitter)."""
        s = self.settings
        base = min(max(s.wait_initial, 0.1) * 2.0 ** (max(attempt, 1) - 1), max(s.wait_max, 0.1))
        return base + random.uniform(0, s.wait_jitter)

    def gives_up(self, category: Category, *, attempts: int, crashes: int) -> bool:
        """Return True when a failure of ``category`` after so many tries means quarantine."""
        s = self.settings
        return (
            category is Category.PERMANENT
            or (category is Category.CRASH and crashes >= s.file_crashes)
            or (category is Category.TRANSIENT and attempts >= s.file_attempts)
            or (category is Category.BUG and attempts >= s.bug_attempts)
        )
