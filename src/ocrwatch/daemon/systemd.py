"""sd_notify client: tell systemd we are ready, busy, alive, reloading or stopping.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (see sd_notify(3)), so this is written with the standard library alone:
the PyPI ``sdnotify`` package is unmaintained, and ``systemd-python`` builds against
libsystemd headers, which would turn a plain ``pip install`` into a compiler job.

Outside systemd (no ``$NOTIFY_SOCKET``) every method is a silent no-op, so the daemon calls
the :class:`Notifier` unconditionally. A failed send never raises: the first failure is
logged as ``systemd.notify_failed`` (warning), later ones at debug level, because a
notification is advisory and must not take down the daemon that sends it.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Mapping

import structlog

__all__ = ["Notifier"]

log = structlog.get_logger()

# A blocked notify socket (systemd stuck or its queue full) must not stall the progress loop
# forever; a dropped WATCHDOG=1 is resent on the next tick anyway.
_SEND_TIMEOUT = 2.0

_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _parse_positive_int(value: str | None) -> int | None:
    """Return ``value`` as a positive int, or None when unset or malformed."""
    if not value:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number > 0 else None


def _socket_address(value: str | None) -> str | None:
    """Return the address to ``sendto`` for a ``$NOTIFY_SOCKET`` value, or None if unusable."""
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        # Linux abstract namespace: leading NUL byte instead of '@'.
        return "\0" + value[1:]
    # e.g. 'vsock:CID:PORT' (systemd in a VM host); not something a file daemon needs.
    log.warning("systemd.notify_socket_unsupported", notify_socket=value)
    return None


class Notifier:
    """Sends sd_notify messages; a no-op when not started by systemd. Thread-safe."""

    def __init__(
        self,
        address: str | None = None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
    ) -> None:
        """Create a notifier for a socket ``address`` ('/path' or '\\0abstract'; None = off)."""
        self._address = address
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._failed_before = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Return a notifier configured from NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID."""
        env = os.environ if environ is None else environ
        return cls(
            _socket_address(env.get("NOTIFY_SOCKET")),
            watchdog_usec=_parse_positive_int(env.get("WATCHDOG_USEC")),
            watchdog_pid=_parse_positive_int(env.get("WATCHDOG_PID")),
        )

    @property
    def enabled(self) -> bool:
        """Return True when there is a notify socket to talk to."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Return how often to send WATCHDOG=1 in seconds (half of WatchdogSec=), or None.

        None when there is no notify socket, no watchdog, or WATCHDOG_PID names another
        process (e.g. we are a forked worker of the main process).
        """
        if self._address is None or self._watchdog_usec is None:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self) -> None:
        """Report that start-up checks passed and the daemon serves (READY=1)."""
        self.notify(READY=1)

    def status(self, text: str) -> None:
        """Set the one-line status shown by ``systemctl status`` (STATUS=...)."""
        self.notify(STATUS=text)

    def stopping(self) -> None:
        """Report that shutdown began (STOPPING=1)."""
        self.notify(STOPPING=1)

    def reloading(self) -> None:
        """Report that a reload began (RELOADING=1 + MONOTONIC_USEC); send ready() after it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def watchdog(self) -> None:
        """Tell the service manager we made progress (WATCHDOG=1)."""
        self.notify(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> None:
        """Ask for ``seconds`` more before the current start/stop timeout (EXTEND_TIMEOUT_USEC).

        Raises ValueError for a non-positive duration.
        """
        if not seconds > 0:
            raise ValueError(f"extend_timeout needs a positive duration, got {seconds!r}")
        self.notify(EXTEND_TIMEOUT_USEC=int(seconds * 1_000_000))

    def notify(self, **fields: str | int | float | bool) -> bool:
        """Send ``KEY=value`` fields in one datagram; return True if it was sent.

        Returns False (and logs) on any send failure, and when not under systemd.
        Raises ValueError only for a field name that is not an upper-case sd_notify key.
        """
        message = self._encode(fields)
        if self._address is None:
            return False
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.settimeout(_SEND_TIMEOUT)
                self._sock.sendto(message, self._address)
            except OSError as exc:
                self._report_failure(exc, fields)
                return False
        return True

    def close(self) -> None:
        """Close the socket; later notifications open a new one."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _encode(self, fields: Mapping[str, str | int | float | bool]) -> bytes:
        lines = []
        for key, value in fields.items():
            if not _FIELD_NAME.fullmatch(key):
                raise ValueError(f"not an sd_notify field name: {key!r}")
            if isinstance(value, bool):
                text = "1" if value else "0"
            else:
                # A newline would start a new (bogus) assignment in the datagram.
                text = " ".join(str(value).splitlines())
            lines.append(f"{key}={text}")
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _report_failure(self, exc: OSError, fields: Mapping[str, object]) -> None:
        # Called with the lock held. One warning per notifier: a dead socket would
        # otherwise log on every watchdog tick.
        level = log.debug if self._failed_before else log.warning
        self._failed_before = True
        level(
            "systemd.notify_failed",
            notify_socket=self._address.replace("\0", "@") if self._address else None,
            fields=sorted(fields),
            error=str(exc),
        )
