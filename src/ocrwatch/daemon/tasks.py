"""The worker's side of a task: probe, or recognize and write; failures classified here.

Runs wherever recognition runs (a local worker process now, a remote worker later): it
takes a task message and returns its :class:`~ocrwatch.daemon.messages.Result`, never
raising. This is the boundary where exceptions become categories.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import time
import traceback
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from ocrwatch import fsutil
from ocrwatch.daemon.layout import read_marker
from ocrwatch.daemon.messages import (
    Failure,
    PagesRead,
    ProbeReport,
    ProbeTask,
    RecognizeTask,
    Result,
    Task,
    Written,
)
from ocrwatch.exceptions import (
    ENVIRONMENT_ERRNOS,
    ConfigError,
    CorruptFileError,
    DependencyError,
    EmptyFileError,
    InputError,
    OutputError,
    PermanentEngineError,
    TransientEngineError,
    TransientOutputError,
    UnsupportedFormatError,
)
from ocrwatch.fsutil import NAME_ERRNOS
from ocrwatch.pipeline import DocumentResult
from ocrwatch.profiles import effective_settings
from ocrwatch.retry import Category

if TYPE_CHECKING:
    from ocrwatch.config import Settings
    from ocrwatch.engines import EngineCache
    from ocrwatch.outputs import OutputPaths

__all__ = ["classify", "execute", "processed_by", "settings_digest", "written"]

#: The settings that change what a recognition reads or writes (not paths, not logging).
_RECOGNITION_KEYS = frozenset(
    {
        "mode", "engine", "languages", "auto_printed_confidence", "spellcheck", "pdf_dpi",
        "max_pixels", "max_file_bytes", "max_pages", "preprocess", "tesseract", "paddle",
        "outputs", "profiles",
    }
)  # fmt: skip


def settings_digest(settings: Settings) -> str:
    """Return a short digest of the settings that decide what a recognition produces."""
    data = settings.model_dump(mode="json", include=set(_RECOGNITION_KEYS))
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


_RESULT: TypeAdapter[DocumentResult] = TypeAdapter(DocumentResult)


def classify(exc: BaseException, *, probing: bool = False) -> tuple[Category, str]:
    """Return (category, reason code) for an exception raised by a task.

    While probing, a file that does not decode yet may still be being written (a scanner
    that pre-allocates zeros, or pauses): that is INCOMPLETE, retried for a bounded time.
    Content that is plainly something else (text, a ZIP, a HEIC photo) is final at once.
    """
    unsettled = isinstance(exc, UnsupportedFormatError) and not exc.settled
    if probing and (isinstance(exc, CorruptFileError | EmptyFileError) or unsettled):
        assert isinstance(exc, InputError)
        return Category.INCOMPLETE, exc.reason
    if isinstance(exc, InputError | PermanentEngineError):
        return Category.PERMANENT, exc.reason
    if isinstance(exc, TransientOutputError | DependencyError | ConfigError):
        return Category.ENVIRONMENT, exc.reason
    if isinstance(exc, TransientEngineError):
        return Category.TRANSIENT, exc.reason
    if isinstance(exc, OutputError):
        return Category.PERMANENT, exc.reason
    if isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0, "error").lower()
        if exc.errno in ENVIRONMENT_ERRNOS:
            return Category.ENVIRONMENT, f"os_{name}"
        if exc.errno in NAME_ERRNOS:  # waiting never fixes a name
            return Category.PERMANENT, f"os_{name}"
        return Category.TRANSIENT, f"os_{name}"
    if isinstance(exc, MemoryError):
        return Category.CRASH, "out_of_memory"
    return Category.BUG, "internal_error"


def execute(task: Task, *, settings: Settings, engines: EngineCache) -> Result:
    """Run ``task`` and return its result (failures included: this never raises)."""
    started = time.perf_counter()
    try:
        if isinstance(task, ProbeTask):
            outcome: ProbeReport | Written | PagesRead | Failure = _probe(task, settings)
        else:
            outcome = _recognize(task, settings, engines)
    except Exception as exc:
        category, reason = classify(exc, probing=isinstance(task, ProbeTask))
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        if category is Category.BUG:
            message += "\n" + "".join(traceback.format_exception(exc)[-3:])
        outcome = Failure(category, reason, str(message))
    return Result(task, outcome, seconds=time.perf_counter() - started)


def _probe(task: ProbeTask, settings: Settings) -> ProbeReport:
    from ocrwatch import documents

    info = documents.probe(Path(task.path), settings=settings)
    return ProbeReport(
        sha256=info.sha256, size=info.size, format=str(info.format), pages=info.page_count
    )


def _recognize(
    task: RecognizeTask, settings: Settings, engines: EngineCache
) -> Written | PagesRead:
    from ocrwatch import outputs, pipeline

    _check_outbox(task)
    path = Path(task.path)
    # Hot folders: the first [[profiles]] entry matching the relpath decides.
    effective, profile = effective_settings(settings, task.relpath)
    stash = _stash_path(task)
    result = _stashed(stash, task)
    if result is None:
        result = pipeline.recognize_file(
            path, settings=effective, engines=engines, pages=task.pages
        )
    by = processed_by()
    if task.pages is not None:  # one range of a long document: the coordinator stitches
        return PagesRead(
            sha256=result.source.sha256,
            size=result.source.size,
            format=str(result.source.format),
            records=result.pages,
            engines=tuple(sorted(result.engines.items())),
            timings=dict(result.timings),
            processed_by=by,
        )
    _check_outbox(task)
    job = {"id": task.job_id, "attempt": task.attempt, "daemon": task.coordinator}
    try:
        paths = outputs.write_outputs(
            result,
            txt_path=Path(task.out_txt),
            source_id=task.relpath,
            extra={"job": job, "processed_by": by, "profile": profile},
            formats=effective.outputs,
        )
    except TransientOutputError:
        _keep(stash, result)  # the disk is full or the share away: never read it twice
        raise
    if stash is not None:
        stash.unlink(missing_ok=True)
    return written(result, paths, by)


#: A recognition kept beside its claimed file while its outputs cannot be written.
STASH_NAME = ".recognized.json"


def _stash_path(task: RecognizeTask) -> Path | None:
    """Return where ``task``'s recognition is kept between attempts (None: keep mode)."""
    depth = len(PurePosixPath(task.relpath).parts)
    job_dir = Path(task.path).parents[depth - 1]
    if task.pages is not None or job_dir.name != task.job_id:
        return None  # claimed in place (keep mode), or one range of a split document
    return job_dir / STASH_NAME


def _stashed(stash: Path | None, task: RecognizeTask) -> DocumentResult | None:
    """Return the kept recognition of this very file (same sha256), if any."""
    if stash is None or task.sha256 is None:
        return None
    try:
        result = _RESULT.validate_python(json.loads(stash.read_bytes()))
    except (OSError, ValueError):
        return None
    return result if result.source.sha256 == task.sha256 else None


def _keep(stash: Path | None, result: DocumentResult) -> None:
    if stash is None:
        return
    # json.dumps, not pydantic's serializer: names that are not UTF-8 must survive.
    data = json.dumps(_RESULT.dump_python(result, mode="python"), default=str).encode()
    with contextlib.suppress(OSError):  # then the next attempt reads the file again
        fsutil.atomic_write(stash, data)


def written(result: DocumentResult, paths: OutputPaths, by: dict[str, str | int]) -> Written:
    """Return the Written answer for ``result`` whose outputs are at ``paths``."""
    return Written(
        sha256=result.source.sha256,
        size=result.source.size,
        pages=len(result.pages),
        engines=tuple(sorted(result.engines.items())),
        mode=str(result.mode),
        attempts=result.attempts,
        txt=str(paths.txt),
        manifest=str(paths.manifest),
        others={str(fmt): str(p) for fmt, p in paths.extra.items()},
        processed_by=by,
    )


def processed_by() -> dict[str, str | int]:
    """Return who recognizes here (the manifest's ``processed_by``)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _check_outbox(task: RecognizeTask) -> None:
    """Refuse to write while the outbox share is away (its mount point would take the files)."""
    if not task.outbox_marker or not task.volume_id:
        return
    if read_marker(Path(task.outbox_marker)) != task.volume_id:
        raise TransientOutputError(
            "the outbox is unavailable (share unmounted?)", path=task.out_txt
        )
