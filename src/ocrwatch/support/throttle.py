"""One request rate for a cloud account, shared by every worker process on every host.

Aspose's quota is per account, not per host: with the Celery executor the moving window
lives in the result backend's Redis, so all workers count against one limit; with the local
executor each of the host's worker processes gets its share in memory. Built on ``limits``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ocrwatch.support.extras import require

__all__ = ["Throttle", "Throttles"]


class Throttle:
    """Blocks until one more request fits in ``rate`` requests per second."""

    def __init__(self, rate: float, *, storage_uri: str, key: str) -> None:
        """Allow ``rate`` requests per second under ``key`` in the ``storage_uri`` store."""
        from limits import RateLimitItemPerSecond  # an extra: see Throttles.for_engine
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        # limits counts whole requests per window: rate 0.5 becomes 1 per 2 seconds.
        per, seconds = (round(rate), 1) if rate >= 1 else (1, max(1, round(1 / rate)))
        self._item = RateLimitItemPerSecond(max(per, 1), seconds)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._key = key

    def wait(self) -> float:
        """Take one request from the window, sleeping until there is room; return the wait."""
        waited = 0.0
        while not self._limiter.hit(self._item, self._key):
            reset = self._limiter.get_window_stats(self._item, self._key).reset_time
            pause = min(max(reset - time.time(), 0.01), 1.0)
            time.sleep(pause)
            waited += pause
        return waited


@dataclass(frozen=True, slots=True)
class Throttles:
    """Where engines keep their request windows; built by the process that starts.

    The coordinator's local pool gives each of its ``share`` processes its part of the rate in
    memory; a Celery worker points ``storage_uri`` at the result backend's Redis, so every
    worker on every host counts against one window.
    """

    storage_uri: str = "memory://"
    share: int = 1

    def for_engine(self, name: str, section: Any) -> Throttle | None:
        """Return the throttle for engine ``name`` whose ``section`` sets ``requests_per_second``.

        None when it sets no limit. The key names the account (``client_id``) where there is one.
        Raises DependencyError when ``limits`` (the ``aspose`` extra) is not installed.
        """
        rate = getattr(section, "requests_per_second", None)
        if rate is None:
            return None
        require("aspose", needed_by=f"{name}.requests_per_second", modules=("limits",))
        if self.storage_uri == "memory://":
            share = float(rate) / max(self.share, 1)
            return Throttle(share, storage_uri=self.storage_uri, key=name)
        account = getattr(section, "client_id", None) or "default"
        uri = self.storage_uri
        uri = "redis+unix://" + uri.removeprefix("unix://") if uri.startswith("unix://") else uri
        return Throttle(float(rate), storage_uri=uri, key=f"ocrwatch-{name}-{account}")
