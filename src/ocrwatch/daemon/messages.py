"""What travels between the coordinator and whoever recognizes: typed, frozen, JSON-able.

Tasks go out (:class:`ProbeTask`, :class:`RecognizeTask`); one :class:`Result` comes back
for each, carrying a :class:`ProbeReport`, a :class:`Written`, the :class:`PagesRead` of a
page range, a :class:`Failure`, or a :class:`Refused` (a worker that cannot honour the
task's :class:`TaskSettings`). Every message names its ``kind``; paths are strings (a
remote worker maps them to its own mounts) and names that are not UTF-8 survive the trip
as surrogate escapes. :func:`dumps` / :func:`loads` give the versioned JSON form (pydantic
validates what comes back); :func:`dump_settings` / :func:`load_settings` the same for the
:class:`TaskSettings` the journal keeps with each job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from ocrwatch.recognition.pipeline import PageRecord
from ocrwatch.settings.resolve import task_values, values_digest
from ocrwatch.support.retry import Category

if TYPE_CHECKING:
    from ocrwatch.settings.model import Settings

__all__ = [
    "SCHEMA_VERSION",
    "Failure",
    "Message",
    "PagesRead",
    "ProbeReport",
    "ProbeTask",
    "RecognizeTask",
    "Refused",
    "Result",
    "Task",
    "TaskSettings",
    "Written",
    "dump_settings",
    "dumps",
    "load_settings",
    "loads",
]

#: 2: recognition tasks carry their settings; workers may answer Refused.
SCHEMA_VERSION = 2


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """What decides a recognition's result, resolved once by the coordinator for the file.

    ``values`` are the recognition settings (``ocrwatch.settings.resolve.TASK_KEYS``: mode,
    languages, engines and their sections, outputs, ...) with the file's hot-folder profile
    applied; ``profile`` names that profile. No secrets travel: each host keeps its own.
    """

    digest: str
    values: dict[str, Any]
    profile: str | None = None

    @classmethod
    def resolve(cls, settings: Settings, relpath: str | PurePath) -> TaskSettings:
        """Return what decides the result of the inbox file ``relpath`` under ``settings``."""
        values, profile = task_values(settings, relpath)
        return cls(values_digest(values), values, profile)

    @property
    def languages(self) -> tuple[str, ...]:
        """Return the languages the file is read in."""
        return tuple(self.values.get("languages") or ())


@dataclass(frozen=True, slots=True)
class ProbeTask:
    """Open and fully decode an inbox file that looks complete (is it really?)."""

    job_id: str
    relpath: str
    path: str
    kind: Literal["probe"] = "probe"


@dataclass(frozen=True, slots=True)
class RecognizeTask:
    """Recognize a claimed file and write its outputs (``out_txt`` and siblings).

    With ``pages`` (first, last) only that range is read and returned, not written: the
    coordinator stitches the ranges of a long PDF and writes the outputs itself.
    """

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
    pages: tuple[int, int] | None = None
    #: The settings to read with (a worker that cannot honour them answers Refused).
    settings: TaskSettings | None = None
    #: Workers that refused this file before (Celery node names): it is sent elsewhere.
    refused_by: tuple[str, ...] = ()
    kind: Literal["recognize"] = "recognize"


Task = Annotated[ProbeTask | RecognizeTask, Field(discriminator="kind")]


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """A probe that decoded: what the file is."""

    sha256: str
    size: int
    format: str
    pages: int
    kind: Literal["probed"] = "probed"


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
    #: The other outputs by format (pdf, hocr, alto).
    others: dict[str, str] = field(default_factory=dict)
    #: Who recognized it: {"host": ..., "pid": ...}.
    processed_by: dict[str, str | int] = field(default_factory=dict)
    kind: Literal["written"] = "written"

    @property
    def engine(self) -> str | None:
        """Return the engine names, comma-separated (None when no page was read)."""
        return ",".join(sorted(name for name, _ in self.engines)) or None


@dataclass(frozen=True, slots=True)
class PagesRead:
    """The pages of one range of a long document, for the coordinator to stitch."""

    sha256: str
    size: int
    format: str
    records: tuple[PageRecord, ...]
    engines: tuple[tuple[str, str], ...]
    timings: dict[str, float]
    processed_by: dict[str, str | int] = field(default_factory=dict)
    kind: Literal["pages"] = "pages"


@dataclass(frozen=True, slots=True)
class Failure:
    """A task that did not succeed, classified by what should happen next."""

    category: Category
    reason: str
    message: str
    kind: Literal["failure"] = "failure"


@dataclass(frozen=True, slots=True)
class Refused:
    """A worker that cannot read the task with its settings (a language or engine it lacks)."""

    #: The worker's stable name (NAME@host) and its Celery node (where tasks can be routed).
    worker: str
    reason: str
    message: str
    node: str = ""
    kind: Literal["refused"] = "refused"


Outcome = Annotated[
    ProbeReport | Written | PagesRead | Failure | Refused, Field(discriminator="kind")
]


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to one task."""

    task: Task
    outcome: Outcome
    seconds: float = 0.0
    kind: Literal["result"] = "result"

    @property
    def failure(self) -> Failure | None:
        """Return the failure, or None when the task succeeded."""
        return self.outcome if isinstance(self.outcome, Failure) else None


Message = Annotated[ProbeTask | RecognizeTask | Result, Field(discriminator="kind")]

_ADAPTER: TypeAdapter[ProbeTask | RecognizeTask | Result] = TypeAdapter(Message)


def _seal(key: str, body: Any) -> str:
    """Return ``body`` under ``key`` in the versioned JSON envelope."""
    return json.dumps({"v": SCHEMA_VERSION, key: body}, separators=(",", ":"))


def _open(text: str | bytes, key: str, what: str) -> Any:
    """Return the body under ``key`` of a versioned envelope; raises ValueError otherwise."""
    try:
        data = json.loads(text)
        version = data["v"]
        body = data[key]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not {what}: {exc}") from exc
    if version != SCHEMA_VERSION:
        raise ValueError(f"{key} version {version} (this ocrwatch speaks {SCHEMA_VERSION})")
    return body


def dumps(message: ProbeTask | RecognizeTask | Result) -> str:
    """Return ``message`` as versioned JSON (ASCII: odd bytes in names are escaped)."""
    return _seal("message", _ADAPTER.dump_python(message, mode="python"))


def loads(text: str | bytes) -> ProbeTask | RecognizeTask | Result:
    """Return the message in ``text``; raises ValueError for another version or a bad body."""
    body = _open(text, "message", "an ocrwatch message")
    try:
        return _ADAPTER.validate_python(body)
    except ValidationError as exc:
        raise ValueError(f"malformed message: {exc}") from exc


_SETTINGS: TypeAdapter[TaskSettings] = TypeAdapter(TaskSettings)


def dump_settings(settings: TaskSettings) -> str:
    """Return ``settings`` as versioned JSON (what the journal keeps with a job)."""
    return _seal("settings", _SETTINGS.dump_python(settings, mode="json"))


def load_settings(text: str) -> TaskSettings:
    """Return the settings in ``text``; raises ValueError for another version or a bad body.

    The digest must match the values: a row changed by hand is not read with the wrong one.
    """
    body = _open(text, "settings", "ocrwatch task settings")
    try:
        settings = _SETTINGS.validate_python(body)
    except ValidationError as exc:
        raise ValueError(f"malformed settings: {exc}") from exc
    if values_digest(settings.values) != settings.digest:
        raise ValueError("settings digest does not match their values")
    return settings
