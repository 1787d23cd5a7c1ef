"""Read several documents on every core: page ranges on worker processes, answers in order.

Pages do not read side by side well in one process (preprocessing and decoding hold the
GIL; libtesseract and onnxruntime bring threads of their own), so ranges run in
``spawn``-ed processes, as the daemon's workers do, each with one engine cache built on its
first range. A document of
several pages is cut into ranges small enough to keep every worker busy to the end; its
ranges are joined (:func:`~ocrwatch.recognition.pipeline.join_ranges`) in page order. A
range that fails raises, from :meth:`Outcome.result`, the exception the sequential read
would have raised: the first failing range in page order decides, as reading one page after
another would have.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ocrwatch.recognition import documents
from ocrwatch.recognition.pipeline import DocumentResult, check_engines, join_ranges

if TYPE_CHECKING:
    from ocrwatch.engines import EngineCache
    from ocrwatch.settings.model import Settings

__all__ = ["Outcome", "ParallelReader", "Unit", "plan"]

#: A long document is cut into about this many ranges per worker (single pages for up to
#: 16 pages on 2 workers), so that the workers' last ranges end close together.
RANGES_PER_WORKER = 8


@dataclass(frozen=True, slots=True)
class Unit:
    """One range of one document, read by one worker."""

    index: int  #: the document's place among those given
    path: Path
    pages: tuple[int, int] | None  #: first, last (inclusive); None: the whole file
    count: int  #: pages in it (for progress)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One document's answer: its joined result, or what its first failing range raised."""

    path: Path
    units: tuple[Unit, ...]
    futures: tuple[Future[DocumentResult], ...]

    def result(self) -> DocumentResult:
        """Return the document, its ranges joined in page order; raise the first failure."""
        parts = [future.result() for future in self.futures]  # raises in page order
        return parts[0] if len(parts) == 1 else join_ranges(parts)


def plan(
    paths: Sequence[Path], *, settings: Settings, jobs: int, split: bool = True
) -> list[tuple[Unit, ...]]:
    """Return each document's ranges: a multi-page one cut so that ``jobs`` workers share it.

    ``split`` False keeps every document whole (an engine that reads whole PDFs itself). A
    file that cannot be probed here is one unit: its worker raises what the read raises.
    """
    out: list[tuple[Unit, ...]] = []
    for index, path in enumerate(paths):
        try:
            pages = documents.probe(path, settings=settings, decode=False).page_count
        except Exception:  # reported by the worker that reads it, as the sequential read does
            out.append((Unit(index, path, None, 1),))
            continue
        if pages <= 1 or jobs <= 1 or not split:
            out.append((Unit(index, path, None, max(pages, 1)),))
            continue
        size = max(1, math.ceil(pages / (jobs * RANGES_PER_WORKER)))
        ranges = [(first, min(first + size - 1, pages)) for first in range(1, pages + 1, size)]
        out.append(tuple(Unit(index, path, r, r[1] - r[0] + 1) for r in ranges))
    return out


class ParallelReader:
    """A pool of ``jobs`` worker processes reading documents; use as a context manager."""

    def __init__(self, settings: Settings, *, jobs: int) -> None:
        """Prepare (not start) ``jobs`` workers reading with ``settings``."""
        self.settings = settings
        self.jobs = max(1, jobs)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ParallelReader:
        self._pool = ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.settings, self.jobs),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            # Ranges not started are dropped; running ones end (a few seconds at most).
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def read(
        self,
        units: Sequence[tuple[Unit, ...]],
        *,
        on_pages: Callable[[int, Path], None] | None = None,
    ) -> Iterator[Outcome]:
        """Start every range now; return an iterator of one Outcome per document, in order.

        Each Outcome comes as soon as all of its document is read. ``on_pages(count, path)``
        is called as each range finishes, in any order (progress).
        """
        assert self._pool is not None, "use ParallelReader as a context manager"
        futures: list[tuple[Future[DocumentResult], ...]] = []
        unit_of: dict[Future[DocumentResult], Unit] = {}
        for document in units:
            submitted = []
            for unit in document:
                future = self._pool.submit(_read_range, str(unit.path), unit.pages)
                unit_of[future] = unit
                submitted.append(future)
            futures.append(tuple(submitted))
        return self._outcomes(units, futures, unit_of, on_pages)

    @staticmethod
    def _outcomes(
        units: Sequence[tuple[Unit, ...]],
        futures: list[tuple[Future[DocumentResult], ...]],
        unit_of: dict[Future[DocumentResult], Unit],
        on_pages: Callable[[int, Path], None] | None,
    ) -> Iterator[Outcome]:
        pending = set(unit_of)
        for document, parts in zip(units, futures, strict=True):
            while not all(f.done() for f in parts):
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    if on_pages is not None:
                        on_pages(unit_of[future].count, unit_of[future].path)
            yield Outcome(path=document[0].path, units=document, futures=parts)


# --- the worker side --------------------------------------------------------------------


class _Worker:
    """What one worker process keeps between ranges."""

    settings: Settings | None = None
    engines: EngineCache | None = None
    share: int = 1


_WORKER = _Worker()


def _start_worker(settings: Settings, jobs: int) -> None:
    """Prepare a worker process: die with the parent, share the cores, log like it."""
    from ocrwatch.support import logsetup
    from ocrwatch.support.workers import die_with_parent

    die_with_parent()
    # Ctrl-C reaches the whole process group: the parent reports it, workers just end
    # (unless the parent ignores it, as a shell's background job does: then so do they).
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Each worker has its share of the cores: onnxruntime's threads would otherwise fight the
    # other workers for them (Tesseract runs on one thread already: engines/tesseract.py).
    cpus = os.cpu_count() or 1
    if settings.paddle.threads == 0:
        threads = max(1, cpus // jobs)
        settings = settings.model_copy(
            update={"paddle": settings.paddle.model_copy(update={"threads": threads})}
        )
    logsetup.configure(level=settings.log_level, fmt=settings.log_format, stream=sys.stderr)
    _WORKER.settings = settings
    _WORKER.share = jobs


def _read_range(path: str, pages: tuple[int, int] | None) -> DocumentResult:
    """Read ``pages`` of ``path`` in this worker (engines checked first, as the CLI does)."""
    from ocrwatch.engines import EngineCache
    from ocrwatch.recognition.pipeline import recognize_file
    from ocrwatch.support.throttle import Throttles

    settings = _WORKER.settings
    assert settings is not None, "the pool's initializer did not run"
    if _WORKER.engines is None:
        # The account's request rate (network engines), split among the workers.
        _WORKER.engines = EngineCache(settings, throttles=Throttles(share=_WORKER.share))
    check_engines(settings, _WORKER.engines)  # a bad engine or language before a bad file
    return recognize_file(Path(path), settings=settings, engines=_WORKER.engines, pages=pages)
