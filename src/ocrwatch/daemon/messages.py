"""What travels between the coordinator and whoever recognizes: typed, frozen, JSON-able.

Tasks go out (:class:`ProbeTask`, :class:`RecognizeTask`); one :class:`Result` comes back
for each, carrying a :class:`ProbeReport`, a :class:`Written` or a :class:`Failure`. Paths
are strings (a remote worker maps them to its own mounts); names that are not UTF-8 survive
the trip as surrogate escapes. :func:`dumps` / :func:`loads` give the versioned JSON form.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from ocrwatch.retry import Category

__all__ = [
    "SCHEMA_VERSION",
    "Failure",
    "Message",
    "ProbeReport",
    "ProbeTask",
    "RecognizeTask",
    "Result",
    "Task",
    "TaskKind",
    "Written",
    "dumps",
    "loads",
]

SCHEMA_VERSION = 1


class TaskKind(StrEnum):
    """What a worker is asked to do."""

    PROBE = "probe"
    RECOGNIZE = "recognize"


@dataclass(frozen=True, slots=True)
class ProbeTask:
    """Open and fully decode an inbox file that looks complete (is it really?)."""

    job_id: str
    relpath: str
    path: str

    @property
    def kind(self) -> TaskKind:
        """Return TaskKind.PROBE."""
        return TaskKind.PROBE


@dataclass(frozen=True, slots=True)
class RecognizeTask:
    """Recognize a claimed file and write its outputs (``out_txt`` and siblings)."""

    job_id: str
    relpath: str
    path: str
    attempt: int
    out_txt: str
    sha256: str | None
    coordinator: str
    #: The outbox's volume marker and the id it must hold: no writing into a bare mount point.
    outbox_marker: str = ""
    volume_id: str = ""

    @property
    def kind(self) -> TaskKind:
        """Return TaskKind.RECOGNIZE."""
        return TaskKind.RECOGNIZE


Task = ProbeTask | RecognizeTask


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """A probe that decoded: what the file is."""

    sha256: str
    size: int
    format: str
    pages: int


@dataclass(frozen=True, slots=True)
class Written:
    """A recognition whose outputs are durable in the outbox."""

    sha256: str
    size: int
    pages: int
    engines: tuple[tuple[str, str], ...]
    mode: str
    attempts: int
    txt: str
    manifest: str

    @property
    def engine(self) -> str | None:
        """Return the engine names, comma-separated (None when no page was read)."""
        return ",".join(sorted(name for name, _ in self.engines)) or None


@dataclass(frozen=True, slots=True)
class Failure:
    """A task that did not succeed, classified by what should happen next."""

    category: Category
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to one task."""

    task: Task
    outcome: ProbeReport | Written | Failure
    seconds: float = 0.0

    @property
    def failure(self) -> Failure | None:
        """Return the failure, or None when the task succeeded."""
        return self.outcome if isinstance(self.outcome, Failure) else None


Message = Task | Result
_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (ProbeTask, RecognizeTask, ProbeReport, Written, Failure, Result)
}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any, hint: Any = None) -> Any:
    if isinstance(value, dict) and "type" in value:
        cls = _TYPES.get(value["type"])
        if cls is None:
            raise ValueError(f"unknown message type {value['type']!r}")
        hints = typing.get_type_hints(cls)
        kwargs = {k: _decode(v, hints.get(k)) for k, v in value.items() if k != "type"}
        return cls(**kwargs)
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    return value


def dumps(message: Message) -> str:
    """Return ``message`` as versioned JSON (ASCII: odd bytes in names are escaped)."""
    return json.dumps({"v": SCHEMA_VERSION, "message": _encode(message)}, separators=(",", ":"))


def loads(text: str | bytes) -> Message:
    """Return the message in ``text``; raises ValueError for another version or a bad body."""
    try:
        data = json.loads(text)
        version = data["v"]
        body = data["message"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not an ocrwatch message: {exc}") from exc
    if version != SCHEMA_VERSION:
        raise ValueError(f"message version {version} (this ocrwatch speaks {SCHEMA_VERSION})")
    try:
        message = _decode(body)
    except TypeError as exc:
        raise ValueError(f"malformed message: {exc}") from exc
    if not isinstance(message, ProbeTask | RecognizeTask | Result):
        raise ValueError("not a task or a result")
    return message
