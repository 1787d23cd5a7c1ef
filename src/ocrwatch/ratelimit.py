"""One request rate for a cloud account, shared by every worker process on every host.

Aspose's quota is per account, not per host: with the Celery executor the moving window
lives in the result backend's Redis, so all workers count against one limit; with the local
executor each of the host's worker processes gets its share in memory. Built on ``limits``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

if TYPE_CHECKING:
    from ocrwatch.config import Settings

__all__ = ["Throttle", "for_engine"]


class Throttle:
    """Blocks until one more request fits in ``rate`` requests per second."""

    def __init__(self, rate: float, *, storage_uri: str, key: str) -> None:
        """Allow ``rate`` requests per second under ``key`` in the ``storage_uri`` store."""
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


def for_engine(settings: Settings, name: str, section: Any) -> Throttle | None:
    """Return the throttle for engine ``name`` whose ``section`` sets ``requests_per_second``.

    None when it sets no limit. The key names the account (``client_id``) where there is one.
    """
    rate = getattr(section, "requests_per_second", None)
    if rate is None:
        return None
    from ocrwatch.choices import ExecutorKind

    account = getattr(section, "client_id", None) or "default"
    if settings.executor is ExecutorKind.CELERY:
        from ocrwatch.daemon.broker import backend_url

        uri = backend_url(settings)
        uri = "redis+unix://" + uri.removeprefix("unix://") if uri.startswith("unix://") else uri
        return Throttle(float(rate), storage_uri=uri, key=f"ocrwatch-{name}-{account}")
    from ocrwatch.daemon.local import default_workers

    share = float(rate) / max(settings.workers or default_workers(), 1)
    return Throttle(share, storage_uri="memory://", key=name)
