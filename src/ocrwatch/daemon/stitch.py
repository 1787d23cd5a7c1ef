"""Long documents in parts: split a job into page-range tasks, stitch the answers, write.

One 300-page PDF must not hold one worker for ten minutes: the coordinator sends its
pages in ranges of ``celery.pages_per_task`` to Celery workers, and to the local pool in as
many ranges as workers are idle when nothing else waits (:func:`spread`: a quiet inbox puts
every core on one document, a busy one keeps each worker on files of its own). It collects
each range's :class:`PagesRead`, and once all are in writes the outputs itself (the same
atomic writer the workers use), on a thread of its own: a searchable PDF of hundreds of
pages takes long enough to hold up the coordinator's loop (and its systemd watchdog). The
first failed range fails the job; its other ranges are cancelled.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ocrwatch.daemon import stash
from ocrwatch.daemon.execute import task_settings, written
from ocrwatch.daemon.failures import classify
from ocrwatch.daemon.messages import Failure, PagesRead, RecognizeTask, Result, Written
from ocrwatch.exceptions import OutputError, TransientOutputError
from ocrwatch.recognition.documents import SourceInfo
from ocrwatch.recognition.pipeline import DocumentResult, join_ranges
from ocrwatch.settings.choices import Mode

if TYPE_CHECKING:
    from ocrwatch.settings.model import Settings

__all__ = ["Stitcher", "kept", "split", "spread"]


def split(task: RecognizeTask, *, pages: int, per_task: int) -> list[RecognizeTask]:
    """Return ``task`` as page-range tasks (just ``task`` when it is short enough)."""
    if pages <= per_task:
        return [task]
    return [
        replace(task, pages=(first, min(first + per_task - 1, pages)))
        for first in range(1, pages + 1, per_task)
    ]


def kept(task: RecognizeTask) -> bool:
    """Whether an earlier attempt kept ``task``'s recognition (then it is sent whole)."""
    path = stash.stash_path(task)
    return path is not None and path.exists()


def spread(pages: int, *, idle: int, waiting: int) -> int:
    """Return pages per range for a local pool: ``pages`` (one task) unless it can spread.

    A document spreads over the ``idle`` workers only when no other job is ``waiting`` for
    one: then each idle worker gets one range, the ranges as even as the pages allow.
    """
    if waiting or idle < 2 or pages < 2:
        return pages
    return math.ceil(pages / idle)


@dataclass(slots=True)
class _Parts:
    expected: int
    got: dict[int, PagesRead] = field(default_factory=dict)
    seconds: float = 0.0


class Stitcher:
    """Collects the ranges of split jobs; answers with one Result per job.

    A failed range answers at once (from :meth:`add`); a complete job is written in the
    background and answers from :meth:`finished`. Call :meth:`close` when done.
    """

    def __init__(self, settings: Settings) -> None:
        """Write stitched outputs per ``settings``."""
        self.settings = settings
        self._jobs: dict[str, _Parts] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocrwatch-stitch")
        self._writing: list[tuple[Future[Written | Failure], RecognizeTask, float]] = []

    @property
    def busy(self) -> bool:
        """Whether a written job has not been taken from :meth:`finished` yet."""
        return bool(self._writing)

    def finished(self) -> list[Result]:
        """Return the Results of the jobs whose outputs are written (or failed to be)."""
        writing, self._writing = self._writing, []
        done: list[tuple[Future[Written | Failure], RecognizeTask, float]] = []
        for item in writing:  # each future asked once: one finishing meanwhile stays queued
            (done if item[0].done() else self._writing).append(item)
        return [Result(task, future.result(), seconds=seconds) for future, task, seconds in done]

    def close(self) -> None:
        """Wait for the writes in progress, then stop the writer thread."""
        self._writer.shutdown(wait=True)

    def expect(self, job_id: str, parts: int) -> None:
        """Start collecting ``parts`` ranges of ``job_id``."""
        self._jobs[job_id] = _Parts(expected=parts)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def drop(self, job_id: str) -> None:
        """Forget ``job_id`` (its ranges failed or it is sent again)."""
        self._jobs.pop(job_id, None)

    def add(self, result: Result) -> Result | None:
        """Take one range's answer; return the job's Result when a range failed.

        A complete job is written in the background: its Result comes from :meth:`finished`.
        """
        task = result.task
        assert isinstance(task, RecognizeTask) and task.pages is not None
        parts = self._jobs.get(task.job_id)
        if parts is None:
            return None  # the job failed or was re-sent meanwhile: a late range
        parts.seconds += result.seconds
        if not isinstance(result.outcome, PagesRead):
            self.drop(task.job_id)
            return Result(replace(task, pages=None), result.outcome, seconds=parts.seconds)
        parts.got[task.pages[0]] = result.outcome
        if len(parts.got) < parts.expected:
            return None
        self.drop(task.job_id)
        whole = replace(task, pages=None)
        ranges = [parts.got[k] for k in sorted(parts.got)]
        future = self._writer.submit(self._write, whole, ranges)
        self._writing.append((future, whole, parts.seconds))
        return None

    def _write(self, task: RecognizeTask, ranges: list[PagesRead]) -> Written | Failure:
        try:
            return self._write_outputs(task, ranges)
        except OutputError as exc:
            category, reason = classify(exc)
            return Failure(category, reason, exc.message)

    def _write_outputs(self, task: RecognizeTask, ranges: list[PagesRead]) -> Written:
        from ocrwatch.outputs import writer as outputs

        first = ranges[0]
        effective, profile = task_settings(task, self.settings)  # what the ranges were read with
        pages = sum(len(part.records) for part in ranges)
        source = SourceInfo(Path(task.path), first.size, first.sha256, first.format, pages)
        result = join_ranges(
            [
                DocumentResult(
                    source=source,
                    pages=part.records,
                    mode=Mode(effective.mode),
                    languages=tuple(effective.languages),
                    engines=dict(part.engines),
                    timings=dict(part.timings),
                    attempts=max((r.attempts for r in part.records), default=1),
                )
                for part in ranges
            ]
        )
        by = [dict(part.processed_by) for part in ranges]
        job = {"id": task.job_id, "attempt": task.attempt, "daemon": task.coordinator}
        try:
            paths = outputs.write_outputs(
                result,
                txt_path=Path(task.out_txt),
                source_id=task.relpath,
                extra={
                    "job": job,
                    "processed_by": by[0],
                    "pages_processed_by": by,
                    "profile": profile,
                },
                formats=effective.outputs,
            )
        except TransientOutputError:
            # The disk is full or the share away: the next attempt is sent whole and its
            # worker reads this back (see kept), never the pages again.
            stash.keep(stash.stash_path(task), result)
            raise
        return written(result, paths, first.processed_by)
