"""The cloud account's request limit holds across worker processes (a real Redis)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ocrwatch.settings.model import load_settings
from ocrwatch.support.throttle import Throttle, Throttles
from redisserver import RedisServer

_TAKE = """
import sys, time
from ocrwatch.support.throttle import Throttle
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

    def test_the_starting_process_chooses_the_store(self, redis_server: RedisServer) -> None:
        """No limit set: no throttle; a Redis store: the whole rate; in memory: a share."""
        settings = load_settings(overrides={"aspose": {"requests_per_second": 4, "client_id": "a"}})
        assert Throttles().for_engine("aspose", load_settings().aspose) is None
        local = Throttles(share=2).for_engine("aspose", settings.aspose)
        assert isinstance(local, Throttle)
        remote = Throttles(storage_uri=redis_server.url).for_engine("aspose", settings.aspose)
        assert isinstance(remote, Throttle)
        assert remote.wait() == 0.0

    def test_engines_get_the_throttles_they_are_handed(self) -> None:
        """EngineCache hands its Throttles to the network engines it builds."""
        from ocrwatch.engines import EngineCache

        settings = load_settings(overrides={"aspose": {"requests_per_second": 4}})
        cache = EngineCache(settings, throttles=Throttles(share=4))
        assert cache.throttles == Throttles(share=4)


class TestEngineSections:
    """Each engine is built from its own section; an entry-point engine declares its own."""

    def test_entry_point_section(self) -> None:
        """[engines.NAME] is checked by the engine's settings model, errors name the key."""
        from pydantic import BaseModel

        from ocrwatch.exceptions import ConfigError

        class Knobs(BaseModel):
            model_config = {"extra": "forbid"}
            speed: int = 1

        settings = load_settings(overrides={"engines": {"stub": {"speed": 3}}})
        assert settings.engine_section("stub", Knobs) == Knobs(speed=3)
        assert settings.engine_section("paddle", Knobs) is settings.paddle
        bad = load_settings(overrides={"engines": {"stub": {"sped": 3}}})
        with pytest.raises(ConfigError, match=r"engines\.stub: sped: unknown setting"):
            bad.engine_section("stub", Knobs)
