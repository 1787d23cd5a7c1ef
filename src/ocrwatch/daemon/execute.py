"""The worker's side of a task: probe a file, or recognize it and write its outputs.

Runs wherever recognition runs (a local worker process or a Celery worker): it takes a task
message and returns its :class:`~ocrwatch.daemon.messages.Result`, never raising; exceptions
become categories in :mod:`ocrwatch.daemon.failures`.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from ocrwatch.daemon import stash
from ocrwatch.daemon.failures import classify
from ocrwatch.daemon.folders import read_marker
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
from ocrwatch.exceptions import TransientOutputError
from ocrwatch.recognition.pipeline import DocumentResult
from ocrwatch.settings.resolve import effective_settings
from ocrwatch.support.retry import Category

if TYPE_CHECKING:
    from ocrwatch.engines import EngineCache
    from ocrwatch.outputs.writer import OutputPaths
    from ocrwatch.settings.model import Settings

__all__ = ["execute", "processed_by", "written"]

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
    from ocrwatch.recognition import documents

    info = documents.probe(Path(task.path), settings=settings)
    return ProbeReport(
        sha256=info.sha256, size=info.size, format=str(info.format), pages=info.page_count
    )


def _recognize(
    task: RecognizeTask, settings: Settings, engines: EngineCache
) -> Written | PagesRead:
    from ocrwatch.outputs import writer as outputs
    from ocrwatch.recognition import pipeline

    _check_outbox(task)
    path = Path(task.path)
    # Hot folders: the first [[profiles]] entry matching the relpath decides.
    effective, profile = effective_settings(settings, task.relpath)
    kept = stash.stash_path(task)
    result = stash.stashed(kept, task)
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
        stash.keep(kept, result)  # the disk is full or the share away: never read it twice
        raise
    if kept is not None:
        kept.unlink(missing_ok=True)
    return written(result, paths, by)


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
