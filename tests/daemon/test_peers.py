"""Spool peers: when a live peer's lease runs out is known, so its claims wait no longer."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from daemon.conftest import Stages
from ocrwatch.daemon.spool import HEARTBEAT, Spool


class TestLeaseEnd:
    """adopt_dead_peers says when to look again: the first live peer's lease end."""

    def test_live_peer_lease_end_then_adopted(self, stages: Stages) -> None:
        """A peer that beat at t=1000 with lease 30: not adopted at 1029 (next look at 1030),
        adopted at 1030; with no live peer left the next look is never."""
        peer = Spool(stages.layout, instance_id="peer")
        src = stages.layout.inbox / "a.png"
        src.write_bytes(b"x")
        peer.claim(src, PurePosixPath("a.png"), "job1")
        beat = peer.work_dir / HEARTBEAT
        beat.touch()
        os.utime(beat, (1000.0, 1000.0))
        ours = stages.spool
        assert ours.adopt_dead_peers(lease=30, now=1029.0) == []
        assert ours.next_lease_end == 1030.0
        assert ours.adopt_dead_peers(lease=30, now=1030.0) == ["job1"]
        assert (ours.work_dir / "job1" / "a.png").is_file()
        assert ours.next_lease_end == float("inf")
