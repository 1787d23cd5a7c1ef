"""Where a file waits until the scanner is done: the two-signal stability gate.

A file is *ready* when (1) no watcher event touched it for ``quiet_period`` seconds and
(2) its size and mtime stayed the same across at least ``quiet_period``. Then the caller
opens it for real (a decode probe); a probe failure that a still-running write can explain
(truncated, empty, zeros where the header will be) is retried with growing delays for
``probe_window`` seconds before the file is declared bad, while failures that waiting
cannot fix are final at once. A file that changes starts over. Close-write events are only
hints: some scanners close and reopen a file several times.

This module is pure logic: it never touches the filesystem. The caller samples
``os.lstat`` and passes a :class:`Signature`; time comes from an injectable clock, so the
gate is tested with a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

__all__ = ["Signature", "StabilityGate", "Verdict"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Signature:
    """What we compare across the quiet period: size and modification time."""

    size: int
    mtime_ns: int


class Verdict(StrEnum):
    """The gate's answer for one file."""

    WAIT = "wait"
    READY = "ready"
    GONE = "gone"


@dataclass(slots=True)
class _Entry:
    last_event: float
    signature: Signature | None = None
    signature_since: float = 0.0
    not_before: float = 0.0
    probe_failures: int = 0
    first_failure: float = 0.0


class StabilityGate(Generic[K]):
    """Tracks candidate files until they are quiet, unchanged and decodable."""

    def __init__(
        self,
        *,
        quiet_period: float,
        clock: Callable[[], float] = time.monotonic,
        probe_window: float = 60.0,
        probe_delay: float = 1.0,
        probe_delay_max: float = 30.0,
    ) -> None:
        """Create a gate; failed probes are retried for ``probe_window`` s, delays doubling."""
        self.quiet_period = quiet_period
        self.probe_window = probe_window
        self.probe_delay = probe_delay
        self.probe_delay_max = probe_delay_max
        self._clock = clock
        self._entries: dict[K, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def hint(self, key: K) -> None:
        """Record that an event touched ``key`` (starts tracking it; restarts its quiet time)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(last_event=now)
        else:
            entry.last_event = now

    def check(self, key: K, signature: Signature | None) -> Verdict:
        """Compare a fresh ``signature`` (None: the file is gone) and return the verdict."""
        now = self._clock()
        entry = self._entries.get(key)
        if signature is None:
            self._entries.pop(key, None)
            return Verdict.GONE
        if entry is None:
            entry = self._entries[key] = _Entry(last_event=now)
        if signature != entry.signature:
            if entry.signature is not None:
                # The file changed after a failed probe: the earlier failures say nothing.
                entry.probe_failures = 0
                entry.not_before = 0.0
            entry.signature = signature
            entry.signature_since = now
            return Verdict.WAIT
        if now >= self._next_check(entry):
            return Verdict.READY
        return Verdict.WAIT

    def due(self) -> list[K]:
        """Return the keys worth sampling now (their quiet time or backoff has passed)."""
        now = self._clock()
        return [k for k, e in self._entries.items() if now >= self._next_check(e)]

    def probe_failed(self, key: K, *, retryable: bool) -> float | None:
        """Record a failed decode probe; return the delay before the next one, or None.

        None means "give up": the failure is final (``retryable`` False) or the probe window
        since the first failure has passed. The key stays tracked until :meth:`forget`.
        """
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        entry.probe_failures += 1
        if entry.probe_failures == 1:
            entry.first_failure = now
        left = entry.first_failure + self.probe_window - now
        if not retryable or left <= 0:
            return None
        delay = min(self.probe_delay * 2.0 ** (entry.probe_failures - 1), self.probe_delay_max)
        delay = min(delay, left)  # the last probe comes when the window closes
        entry.not_before = now + delay
        return delay

    def defer(self, key: K, delay: float) -> None:
        """Do not offer ``key`` again for ``delay`` seconds (e.g. the work queue is full)."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.not_before = max(entry.not_before, self._clock() + delay)

    def again(self, key: K) -> None:
        """Offer ``key`` again at its next quiet check (a probe was lost, not failed)."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.not_before = 0.0

    def probe_failures(self, key: K) -> int:
        """Return how many probes of ``key`` failed so far."""
        entry = self._entries.get(key)
        return 0 if entry is None else entry.probe_failures

    def forget(self, key: K) -> None:
        """Stop tracking ``key`` (claimed, ignored or gone)."""
        self._entries.pop(key, None)

    def _next_check(self, entry: _Entry) -> float:
        if entry.signature is None:
            return entry.last_event  # never sampled: sample at once
        return max(
            entry.last_event + self.quiet_period,
            entry.signature_since + self.quiet_period,
            entry.not_before,
        )
