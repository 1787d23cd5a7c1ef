"""The worker's side of a task: probe a file, or recognize it and write its outputs.

Runs wherever recognition runs (a local worker process or a Celery worker): it takes a task
message and returns its :class:`~ocrwatch.daemon.messages.Result`, never raising; exceptions
become categories in :mod:`ocrwatch.daemon.failures`. A recognition reads with the settings
the task carries; where this host cannot (an engine or a language it lacks) it answers
:class:`~ocrwatch.daemon.messages.Refused` and reads nothing.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import replace
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
    Refused,
    Result,
    Task,
    Written,
)
from ocrwatch.exceptions import ConfigError, DependencyError, TransientOutputError
from ocrwatch.recognition.pipeline import DocumentResult, engine_names_needed
from ocrwatch.settings.resolve import effective_settings, with_task_values
from ocrwatch.support.retry import Category

if TYPE_CHECKING:
    from ocrwatch.engines import EngineCache
    from ocrwatch.outputs.writer import OutputPaths
    from ocrwatch.settings.model import Settings

__all__ = ["execute", "processed_by", "refusal", "task_settings", "written"]


def execute(
    task: Task,
    *,
    settings: Settings,
    engines: EngineCache,
    worker: str = "",
    node: str = "",
    source_path: str | None = None,
) -> Result:
    """Run ``task`` and return its result (failures included: this never raises).

    ``worker`` and ``node`` name this worker in a refusal; ``source_path`` is the file's path
    as the coordinator sees it (the manifest's ``source.path`` when this host maps paths).
    """
    started = time.perf_counter()
    try:
        if isinstance(task, ProbeTask):
            outcome: ProbeReport | Written | PagesRead | Failure | Refused = _probe(task, settings)
        else:
            effective, profile = task_settings(task, settings)
            refused = refusal(effective, engines, worker=worker, node=node)
            if refused is not None:
                outcome = refused
            else:
                by = processed_by(worker)
                outcome = _recognize(task, effective, profile, engines, source_path, by)
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


def task_settings(task: RecognizeTask, settings: Settings) -> tuple[Settings, str | None]:
    """Return the settings ``task`` is read with and its profile: the ones it carries.

    A task without settings (from an older coordinator) is read with this host's own,
    its hot-folder profile applied here.
    """
    if task.settings is None:
        return effective_settings(settings, task.relpath)
    return with_task_values(settings, task.settings.values), task.settings.profile


def refusal(
    settings: Settings, engines: EngineCache, *, worker: str, node: str = ""
) -> Refused | None:
    """Return why this host cannot read with ``settings`` (None: it can).

    An engine that is not installed or cannot start here, or a language it lacks, is a
    refusal: the coordinator sends the task to another worker instead.
    """
    languages = list(settings.languages)
    for name in engine_names_needed(settings):
        try:
            problems = engines.get(name).check(languages)
        except (ConfigError, DependencyError) as exc:
            return Refused(worker, "engine_unavailable", f"{name}: {exc}", node)
        if problems:
            return Refused(worker, "language_unavailable", "; ".join(problems), node)
    return None


def _recognize(
    task: RecognizeTask,
    effective: Settings,
    profile: str | None,
    engines: EngineCache,
    source_path: str | None,
    by: dict[str, str | int],
) -> Written | PagesRead:
    from ocrwatch.outputs import writer as outputs
    from ocrwatch.recognition import pipeline

    _check_outbox(task)
    path = Path(task.path)
    kept = stash.stash_path(task)
    result = stash.stashed(kept, task)
    if result is None:
        result = pipeline.recognize_file(
            path, settings=effective, engines=engines, pages=task.pages
        )
    if source_path is not None and source_path != str(result.source.path):
        # Mapped paths: the manifest names the file as the coordinator sees it.
        result = replace(result, source=replace(result.source, path=Path(source_path)))
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


def processed_by(worker: str = "") -> dict[str, str | int]:
    """Return who recognizes here (the manifest's ``processed_by``; ``worker``: NAME@host)."""
    by: dict[str, str | int] = {"host": socket.gethostname(), "pid": os.getpid()}
    if worker:
        by["worker"] = worker
    return by


def _check_outbox(task: RecognizeTask) -> None:
    """Refuse to write while the outbox share is away (its mount point would take the files)."""
    if not task.outbox_marker or not task.volume_id:
        return
    if read_marker(Path(task.outbox_marker)) != task.volume_id:
        raise TransientOutputError(
            "the outbox is unavailable (share unmounted?)", path=task.out_txt
        )
