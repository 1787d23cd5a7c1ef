"""The seam between the coordinator and whoever recognizes: the :class:`Executor` contract.

The coordinator only submits task messages and collects results; it never knows whether a
local process pool or remote workers did the work. An executor reports a worker that died
or overran its time limit as a ``CRASH`` failure of the task it held, and tasks it had to
hand back unrun as ``REQUEUED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ocrwatch.daemon.messages import Result, Task

__all__ = ["Executor"]


class Executor(Protocol):
    """Runs probe and recognize tasks somewhere; used from the coordinator's thread only."""

    def start(self) -> None:
        """Start the workers (or connect to them)."""

    @property
    def capacity(self) -> int:
        """Return how many more recognition tasks may be submitted now."""

    @property
    def probe_capacity(self) -> int:
        """Return how many more probes may be submitted now (may share ``capacity``)."""

    @property
    def in_flight(self) -> tuple[Task, ...]:
        """Return the tasks submitted and not answered yet."""

    @property
    def workers(self) -> Mapping[str, float]:
        """Return the remote workers seen, "NAME@host" -> last heartbeat (wall time); {} local."""

    def submit(self, task: Task) -> None:
        """Hand ``task`` over (RuntimeError when there is no capacity)."""

    def collect(self, timeout: float) -> list[Result]:
        """Wait up to ``timeout`` seconds; return the results that arrived."""

    def cancel(self, job_id: str) -> bool:
        """Stop work on ``job_id`` if it is in flight (no result comes); return True if so."""

    def close(self) -> None:
        """Stop the workers; tasks still in flight stay claimed for the next start."""
