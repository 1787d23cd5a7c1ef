"""The stability gate: quiet period, size+mtime across it, probe retries (fake clock)."""

from __future__ import annotations

import pytest

from ocrwatch.daemon.stabilize import Signature, StabilityGate, Verdict


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def gate(clock: FakeClock, quiet: float = 2.0, **kw: float) -> StabilityGate[str]:
    return StabilityGate(quiet_period=quiet, clock=clock, **kw)  # type: ignore[arg-type]


SIG = Signature(size=100, mtime_ns=5)


class TestQuietPeriod:
    """A file is ready only after no event and no change for the quiet period."""

    def test_unchanged_file_is_ready_after_quiet_period(self) -> None:
        """First sample starts the clock; the same signature a quiet period later is ready."""
        clock = FakeClock()
        g = gate(clock)
        g.hint("a")
        assert g.due() == ["a"]
        assert g.check("a", SIG) is Verdict.WAIT
        clock.advance(1.9)
        assert g.due() == []
        clock.advance(0.2)
        assert g.due() == ["a"]
        assert g.check("a", SIG) is Verdict.READY

    def test_event_restarts_quiet_period(self) -> None:
        """An event (e.g. a scanner reopening the file) postpones readiness."""
        clock = FakeClock()
        g = gate(clock)
        g.hint("a")
        g.check("a", SIG)
        clock.advance(1.5)
        g.hint("a")
        clock.advance(1.0)
        assert g.due() == []
        assert g.check("a", SIG) is Verdict.WAIT
        clock.advance(1.1)
        assert g.check("a", SIG) is Verdict.READY

    def test_growing_file_is_not_ready(self) -> None:
        """Size changes without events (network shares) still hold the file back."""
        clock = FakeClock()
        g = gate(clock)
        g.hint("a")
        size = 10
        for _ in range(5):
            assert g.check("a", Signature(size, 1)) is Verdict.WAIT
            clock.advance(2.5)
            size += 10
        # The last sample (size - 10) stayed the same across a quiet period: now ready.
        assert g.check("a", Signature(size - 10, 1)) is Verdict.READY

    def test_mtime_change_alone_resets(self) -> None:
        """Same size but a new mtime (rewritten in place) is a change."""
        clock = FakeClock()
        g = gate(clock)
        g.check("a", Signature(10, 1))
        clock.advance(3)
        assert g.check("a", Signature(10, 2)) is Verdict.WAIT
        clock.advance(3)
        assert g.check("a", Signature(10, 2)) is Verdict.READY

    def test_gone_file_is_forgotten(self) -> None:
        """A vanished file yields GONE and is no longer tracked."""
        clock = FakeClock()
        g = gate(clock)
        g.hint("a")
        assert g.check("a", None) is Verdict.GONE
        assert "a" not in g
        assert len(g) == 0

    def test_zero_quiet_period_needs_two_samples(self) -> None:
        """With quiet_period 0 the signature must still be seen twice."""
        clock = FakeClock()
        g = gate(clock, quiet=0.0)
        assert g.check("a", SIG) is Verdict.WAIT
        assert g.check("a", SIG) is Verdict.READY


class TestProbeRetry:
    """Decode probe failures: retried with doubling delays, or final at once."""

    def test_incomplete_is_retried_with_growing_delay(self) -> None:
        """A retryable failure defers the file; delays double until the window is spent."""
        clock = FakeClock()
        g = gate(clock, probe_window=7.0, probe_delay=1.0)
        g.check("a", SIG)
        clock.advance(2)
        assert g.check("a", SIG) is Verdict.READY
        delays = []
        for _ in range(3):
            delay = g.probe_failed("a", retryable=True)
            assert delay is not None
            delays.append(delay)
            clock.advance(delay - 0.01)
            assert g.due() == []
            clock.advance(0.02)
            assert g.check("a", SIG) is Verdict.READY
        assert delays == pytest.approx([1.0, 2.0, 4.0], abs=0.05)
        assert g.probe_failed("a", retryable=True) is None
        assert g.probe_failures("a") == 4

    def test_last_probe_comes_when_the_window_closes(self) -> None:
        """A pre-allocating writer gets a last look at the end of the window, not later."""
        clock = FakeClock()
        g = gate(clock, probe_window=5.0, probe_delay=1.0)
        g.check("a", SIG)
        delays = []
        while (delay := g.probe_failed("a", retryable=True)) is not None:
            delays.append(delay)
            clock.advance(delay)
        assert delays == [1.0, 2.0, 2.0]

    def test_final_failure_gives_up_at_once(self) -> None:
        """Encrypted/unsupported: no retry."""
        clock = FakeClock()
        g = gate(clock)
        g.check("a", SIG)
        assert g.probe_failed("a", retryable=False) is None

    def test_change_after_failure_resets_count(self) -> None:
        """A file that changes after a failed probe was still being written: start over."""
        clock = FakeClock()
        g = gate(clock, probe_window=2.0)
        g.check("a", SIG)
        assert g.probe_failed("a", retryable=True) is not None
        g.check("a", Signature(200, 6))
        assert g.probe_failures("a") == 0

    def test_again_lifts_a_deferral(self) -> None:
        """A probe that was lost (not failed) is offered again without waiting out the hold."""
        clock = FakeClock()
        g = gate(clock, quiet=0.0)
        g.check("a", SIG)
        g.defer("a", 3600.0)
        assert g.due() == []
        g.again("a")
        assert g.due() == ["a"]

    def test_defer_holds_back(self) -> None:
        """defer() keeps a ready file out of due() for the given time."""
        clock = FakeClock()
        g = gate(clock, quiet=0.0)
        g.check("a", SIG)
        g.defer("a", 5.0)
        assert g.due() == []
        clock.advance(5.0)
        assert g.due() == ["a"]
