"""The cloud account's request limit holds across worker processes (a real Redis)."""

from __future__ import annotations

import subprocess
import sys

from ocrwatch.config import load_settings
from ocrwatch.ratelimit import Throttle, for_aspose
from redisserver import RedisServer

_TAKE = """
import sys, time
from ocrwatch.ratelimit import Throttle
t = Throttle(float(sys.argv[1]), storage_uri=sys.argv[2], key="account")
for _ in range(int(sys.argv[3])):
    t.wait()
    print(time.time(), flush=True)
"""


class TestThrottle:
    """Requests from several processes never exceed the rate in any one-second window."""

    def test_shared_through_redis(self, redis_server: RedisServer) -> None:
        """Three processes take 4 requests each at 3/s: no second holds more than 3."""
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _TAKE, "3", redis_server.url, "4"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        stamps = sorted(float(x) for p in procs for x in p.communicate(timeout=60)[0].split())
        assert len(stamps) == 12
        # A moving window: any 4 consecutive requests span about a second (unshared, 3 processes
        # would take 9 requests at once). The window is kept to a few milliseconds.
        assert all(stamps[i + 3] - stamps[i] >= 0.95 for i in range(len(stamps) - 3)), stamps

    def test_settings_choose_the_store(self) -> None:
        """No limit set: no throttle; celery: Redis; local: each worker's share in memory."""
        assert for_aspose(load_settings(overrides={})) is None
        local = for_aspose(
            load_settings(overrides={"aspose": {"requests_per_second": 4}, "workers": 2})
        )
        assert isinstance(local, Throttle)
        remote = for_aspose(
            load_settings(
                overrides={
                    "executor": "celery",
                    "aspose": {"requests_per_second": 4, "client_id": "acct"},
                }
            )
        )
        assert isinstance(remote, Throttle)
