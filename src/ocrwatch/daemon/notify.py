"""Notifications through Apprise: typed events in, digests out, off the coordinator's loop.

The coordinator only calls :class:`Triggers` (which decide *when* something is worth telling:
a quarantine, a file still failing after ``attempts``, the oldest pending file older than
``pending_age``, a share away longer than ``away_after``, the daemon stopping on an error)
and :meth:`Notifications.enqueue` never blocks: events wait in a bounded queue. One sender
thread gathers the events of ``digest_window`` seconds into one message per URL (40 bad files
at once are one notification naming them), sends it with Apprise, retried with backoff
(stamina), and drops it with one ``notify.failed`` line when it cannot be sent. URLs hold
passwords: they are only ever logged as :func:`redact` makes them.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

import stamina
import structlog

from ocrwatch.exceptions import ConfigError
from ocrwatch.settings.resolve import notify_urls_for
from ocrwatch.support.fsutil import display

if TYPE_CHECKING:
    from ocrwatch.settings.model import Settings

__all__ = [
    "BacklogOld",
    "DaemonStopped",
    "Event",
    "Kind",
    "Notifications",
    "Quarantined",
    "SendFailed",
    "ShareAway",
    "ShareBack",
    "StillFailing",
    "Triggers",
    "check_urls",
    "redact",
    "render",
]

log = structlog.get_logger()

#: Names listed per kind in one digest; the rest are counted.
LIST_MAX = 25


class Kind(StrEnum):
    """What an event is about."""

    QUARANTINED = "quarantined"
    STILL_FAILING = "still_failing"
    BACKLOG_OLD = "backlog_old"
    SHARE_AWAY = "share_away"
    SHARE_BACK = "share_back"
    DAEMON_STOPPED = "daemon_stopped"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A file went to the quarantine."""

    kind: ClassVar[Kind] = Kind.QUARANTINED
    relpath: str
    reason: str
    message: str

    def line(self) -> str:
        """Return the event as one line of a message."""
        return f"{display(self.relpath)}: {self.reason} ({_first_line(self.message)})"


@dataclass(frozen=True, slots=True)
class StillFailing:
    """A file has failed ``attempts`` times and will be tried again."""

    kind: ClassVar[Kind] = Kind.STILL_FAILING
    relpath: str
    attempts: int
    reason: str | None
    message: str | None

    def line(self) -> str:
        """Return the event as one line of a message."""
        why = f"{self.reason} ({_first_line(self.message or '')})" if self.reason else "failing"
        return f"{display(self.relpath)}: {why}, {self.attempts} attempts so far"


@dataclass(frozen=True, slots=True)
class BacklogOld:
    """The oldest unfinished file has waited longer than ``pending_age``."""

    kind: ClassVar[Kind] = Kind.BACKLOG_OLD
    relpath: ClassVar[None] = None  # the whole daemon's: told to the global URLs
    age_s: float
    pending: int
    oldest: str | None = None

    def line(self) -> str:
        """Return the event as one line of a message."""
        which = f" ({display(self.oldest)})" if self.oldest else ""
        return (
            f"{self.pending} file(s) unfinished; the oldest{which} has waited {_span(self.age_s)}"
        )


@dataclass(frozen=True, slots=True)
class ShareAway:
    """The inbox or outbox has been away longer than ``away_after``."""

    kind: ClassVar[Kind] = Kind.SHARE_AWAY
    relpath: ClassVar[None] = None
    share: str
    path: str
    away_s: float

    def line(self) -> str:
        """Return the event as one line of a message."""
        return f"the {self.share} {display(self.path)} has been away for {_span(self.away_s)}"


@dataclass(frozen=True, slots=True)
class ShareBack:
    """A share reported away is back."""

    kind: ClassVar[Kind] = Kind.SHARE_BACK
    relpath: ClassVar[None] = None
    share: str
    path: str
    away_s: float

    def line(self) -> str:
        """Return the event as one line of a message."""
        return f"the {self.share} {display(self.path)} is back after {_span(self.away_s)}"


@dataclass(frozen=True, slots=True)
class DaemonStopped:
    """The daemon stops because of an error."""

    kind: ClassVar[Kind] = Kind.DAEMON_STOPPED
    relpath: ClassVar[None] = None
    error: str

    def line(self) -> str:
        """Return the event as one line of a message."""
        return f"ocrwatch stopped on an error: {_first_line(self.error)}"


Event = Quarantined | StillFailing | BacklogOld | ShareAway | ShareBack | DaemonStopped

_TITLES = {
    Kind.QUARANTINED: "{n} file(s) quarantined",
    Kind.STILL_FAILING: "{n} file(s) still failing",
    Kind.BACKLOG_OLD: "backlog not moving",
    Kind.SHARE_AWAY: "share away",
    Kind.SHARE_BACK: "share back",
    Kind.DAEMON_STOPPED: "daemon stopped on an error",
}


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(events: list[Event], *, host: str) -> tuple[str, str]:
    """Return (title, body) of one message telling ``events`` (a digest when several)."""
    kinds = Counter(e.kind for e in events)
    order = [k for k in Kind if k in kinds]
    title = "ocrwatch on {}: {}".format(
        host, ", ".join(_TITLES[k].format(n=kinds[k]) for k in order)
    )
    parts: list[str] = []
    for kind in order:
        lines = [e.line() for e in events if e.kind is kind]
        if len(order) > 1 or len(lines) > 1:
            parts.append(f"{_TITLES[kind].format(n=len(lines))}:")
        parts += [f"- {ln}" for ln in lines[:LIST_MAX]]
        if len(lines) > LIST_MAX:
            parts.append(f"- ... and {len(lines) - LIST_MAX} more")
    return title, "\n".join(parts)


def redact(url: str) -> str:
    """Return ``url`` fit for a log: its scheme and host, never a user, password or token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable notify URL>"
    return f"{parts.scheme}://{host}{port}/..." if parts.scheme else "<notify URL>"


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


class _RedactUrls(logging.Filter):
    """Apprise logs URLs with the password half masked ("p...3"): log only :func:`redact`'s."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            record.msg = _URL.sub(lambda m: redact(m.group(0)), message)
            record.args = ()
        return True


def _guard_apprise_log() -> None:
    logger = logging.getLogger("apprise")
    if not any(isinstance(f, _RedactUrls) for f in logger.filters):
        logger.addFilter(_RedactUrls())


def _apprise_url_ok(url: str) -> bool:
    import apprise

    _guard_apprise_log()

    return bool(apprise.Apprise().add(url))


def check_urls(settings: Settings) -> None:
    """Check that Apprise understands every notify URL; raises ConfigError naming the key."""
    where = [(f"notify.urls[{i}]", u) for i, u in enumerate(settings.notify.urls)]
    for p in settings.profiles:
        where += [(f"profile {p.label!r} notify[{i}]", u) for i, u in enumerate(p.notify or [])]
    for key, url in where:
        if not _apprise_url_ok(url.get_secret_value()):
            raise ConfigError(
                f"invalid configuration: {key}: Apprise does not understand "
                f"{redact(url.get_secret_value())} (see https://appriseit.com/services/)"
            )


class SendFailed(Exception):
    """Apprise could not deliver a notification (retried, then dropped)."""


#: Sends (url, title, body); raises SendFailed when it was not delivered.
Sender = Callable[[str, str, str], None]


def apprise_send(url: str, title: str, body: str) -> None:
    """Send one notification to ``url`` with Apprise; raises SendFailed when it fails."""
    import apprise

    _guard_apprise_log()
    client = apprise.Apprise()
    if not client.add(url):
        raise SendFailed("not an Apprise URL")
    if not client.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT):
        raise SendFailed("not delivered (see the apprise log line before)")


_STOP = object()


class Notifications:
    """The bounded queue and the sender thread; :meth:`enqueue` never blocks nor raises."""

    def __init__(
        self,
        settings: Settings,
        *,
        send: Sender = apprise_send,
        host: str | None = None,
    ) -> None:
        """Tell ``settings``' notify URLs (nothing is sent until :meth:`start`)."""
        self.settings = settings
        self.config = settings.notify
        self.enabled = bool(settings.notify.urls) or any(p.notify for p in settings.profiles)
        self.host = host or socket.gethostname()
        self._send = send
        self._queue: queue.Queue[object] = queue.Queue(maxsize=self.config.queue_size)
        self._thread = threading.Thread(target=self._run, name="ocrwatch-notify", daemon=True)
        self._closing = threading.Event()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def start(self) -> None:
        """Start the sender thread (when there is any URL)."""
        if self.enabled:
            self._thread.start()

    def enqueue(self, event: Event) -> None:
        """Queue ``event`` for the next message; drop it with a log line when the queue is full."""
        if not self.enabled or self._closing.is_set():
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            log.warning("notify.dropped", kind=event.kind.value, detail="the queue is full")

    def close(self, timeout: float = 15.0) -> None:
        """Send what is gathered at once, then stop the thread (waiting ``timeout`` at most)."""
        if not self._thread.is_alive():
            return
        self._closing.set()
        with contextlib.suppress(queue.Full):  # the thread is busy: join's timeout decides
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("notify.unsent", detail=f"still sending after {timeout:g} s at stop")

    # --- the sender thread ---------------------------------------------------------------------
    def _run(self) -> None:
        gathered: list[Event] = []
        due = float("inf")
        while True:
            wait = max(0.0, due - time.monotonic()) if gathered else None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is _STOP:
                gathered += self._drain()
                self._flush(gathered)
                return
            if item is not None:
                if not gathered:
                    due = time.monotonic() + self.config.digest_window
                gathered.append(item)  # type: ignore[arg-type]
            if gathered and time.monotonic() >= due:
                gathered, batch = [], gathered
                self._flush(batch)

    def _drain(self) -> list[Event]:
        out: list[Event] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
            if item is not _STOP:
                out.append(item)  # type: ignore[arg-type]

    def _flush(self, events: list[Event]) -> None:
        """Send one message per URL with the events routed to it."""
        routed: dict[str, list[Event]] = {}
        for event in events:
            for url in notify_urls_for(self.settings, event.relpath):
                routed.setdefault(url, []).append(event)
        for url, mine in routed.items():
            title, body = render(mine, host=self.host)
            try:
                self._deliver(url, title, body)
            except SendFailed as exc:
                self.failed += 1
                log.error(
                    "notify.failed",
                    url=redact(url),
                    events=len(mine),
                    error=str(exc),
                    detail="dropped after retries",
                )
            except Exception:  # a bug in a plugin must not end the thread
                self.failed += 1
                log.exception("notify.failed", url=redact(url), events=len(mine))
            else:
                self.sent += 1
                log.info("notify.sent", url=redact(url), events=len(mine), title=title)

    def _deliver(self, url: str, title: str, body: str) -> None:
        for attempt in stamina.retry_context(
            on=SendFailed,
            attempts=self.config.send_attempts,
            timeout=self.config.send_timeout,
            wait_initial=1.0,
            wait_max=30.0,
        ):
            with attempt:
                self._send(url, title, body)


@dataclass
class _Away:
    since: float | None = None
    told: bool = False


class Triggers:
    """Decides when the loop's observations are worth telling; each is told once per episode."""

    def __init__(self, settings: Settings, enqueue: Callable[[Event], None]) -> None:
        """Tell ``enqueue`` what crosses ``settings.notify``'s thresholds."""
        self.settings = settings
        self.enqueue = enqueue
        self._failing: set[str] = set()
        self._backlog_told = False
        self._away: dict[str, _Away] = {}

    def quarantined(self, *, job_id: str, relpath: str, reason: str, message: str) -> None:
        """A file went to the quarantine."""
        self._failing.discard(job_id)
        self.enqueue(Quarantined(relpath=relpath, reason=reason, message=message))

    def retrying(
        self, *, job_id: str, relpath: str, attempts: int, reason: str | None, message: str | None
    ) -> None:
        """A file failed and is tried again: tell once when it reaches ``attempts``."""
        if attempts >= self.settings.notify.attempts and job_id not in self._failing:
            self._failing.add(job_id)
            self.enqueue(StillFailing(relpath, attempts, reason, message))

    def finished(self, job_id: str) -> None:
        """A file was processed: forget that it was failing."""
        self._failing.discard(job_id)

    def backlog(
        self,
        *,
        oldest: float | None,
        pending: int,
        now: float,
        name: Callable[[], str | None] = lambda: None,
    ) -> None:
        """The oldest unfinished file was discovered at ``oldest`` (epoch s; None: nothing).

        ``name()`` returns its name; it is called only when this is told.
        """
        limit = self.settings.notify.pending_age
        age = 0.0 if oldest is None else now - oldest
        if not limit or age < limit:
            self._backlog_told = False
        elif not self._backlog_told:
            self._backlog_told = True
            self.enqueue(BacklogOld(age_s=age, pending=pending, oldest=name()))

    def share(self, share: str, *, ok: bool, path: str, now: float) -> None:
        """``share`` (inbox or outbox) is there or not at monotonic time ``now``."""
        state = self._away.setdefault(share, _Away())
        limit = self.settings.notify.away_after
        if ok:
            if state.told and state.since is not None:
                self.enqueue(ShareBack(share=share, path=path, away_s=now - state.since))
            state.since, state.told = None, False
            return
        if state.since is None:
            state.since = now
        if limit and not state.told and now - state.since >= limit:
            state.told = True
            self.enqueue(ShareAway(share=share, path=path, away_s=now - state.since))

    def stopped(self, error: BaseException | str) -> None:
        """The daemon stops because of ``error``."""
        self.enqueue(DaemonStopped(error=str(error) or type(error).__name__))
