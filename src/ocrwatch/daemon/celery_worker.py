"""Many hosts: the Celery app, its one task, and ``ocrwatch worker``.

Celery's defaults are wrong for this work and are set here: JSON only, late acks, one
message prefetched, a visibility timeout above the file time limit. A worker process that
dies holding a task (a native crash on one input) is *not* handed back to the queue, where
it would crash the next worker forever: its task ends as a ``WorkerLostError`` failure that
the coordinator counts as a crash of that file (quarantined as ``engine_crash`` after
``retry.file_crashes``). A task carries one :mod:`~ocrwatch.daemon.messages` JSON string (paths,
never image bytes) and answers with one. While it runs, the worker writes a heartbeat into
the result backend; the coordinator's lease reads it. Workers hold no state and never retry
on their own: the coordinator's journal decides.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from celery import Celery

from ocrwatch.daemon.messages import RecognizeTask, Result, Task, Written, dumps, loads
from ocrwatch.exceptions import ConfigError

if TYPE_CHECKING:
    from ocrwatch.engines import EngineCache
    from ocrwatch.settings.model import Settings

__all__ = ["HEARTBEAT_STATE", "TASK_NAME", "make_app", "map_paths", "run_worker"]

log = structlog.get_logger()

TASK_NAME = "ocrwatch.recognize"
#: The task state a worker's heartbeat writes (meta: host, pid, beat time).
HEARTBEAT_STATE = "RUNNING"


def backend_url(settings: Settings) -> str:
    """Return the result backend URL (Redis); raises ConfigError when there is none."""
    conf = settings.celery
    if conf.result_backend is not None:
        url = conf.result_backend.get_secret_value()
    else:
        url = conf.broker_url.get_secret_value()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            "celery.result_backend: answers and heartbeats need a Redis URL "
            "(set it when the broker is RabbitMQ)"
        )
    return url


def make_app(settings: Settings) -> Celery:
    """Return the Celery app for ``settings`` (both sides use the same one)."""
    conf = settings.celery
    app = Celery(
        "ocrwatch",
        broker=conf.broker_url.get_secret_value(),
        backend=backend_url(settings),
        set_as_current=False,
    )
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        # A lost worker process: FAILURE (WorkerLostError) for the coordinator to count, and
        # the message acknowledged. True would requeue a poison file forever, uncounted.
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_default_queue=conf.queue,
        # Redis re-delivers an unacknowledged task after this; the coordinator's lease
        # (much shorter) is what normally recovers a lost task.
        broker_transport_options={"visibility_timeout": max(2 * settings.file_timeout, 3600)},
        result_expires=86400,
        task_soft_time_limit=settings.file_timeout,
        task_time_limit=settings.file_timeout + 30,
        worker_max_tasks_per_child=500,  # engines that leak memory are restarted now and then
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.task(name=TASK_NAME, bind=True)(_recognize)
    return app


# --- the worker side --------------------------------------------------------------------

_state: dict[str, Any] = {}  # per worker process: settings, engines


def _translate(path: str, mapping: dict[str, str]) -> str:
    for src, dst in mapping.items():
        src = src.rstrip("/")
        if path == src or path.startswith(src + "/"):
            return dst.rstrip("/") + path[len(src) :]
    return path


def map_paths(task: Task, mapping: dict[str, str]) -> Task:
    """Return ``task`` with its path prefixes translated through ``mapping``."""
    if not mapping:
        return task
    if isinstance(task, RecognizeTask):
        return replace(
            task,
            path=_translate(task.path, mapping),
            out_txt=_translate(task.out_txt, mapping),
            outbox_marker=_translate(task.outbox_marker, mapping),
        )
    return replace(task, path=_translate(task.path, mapping))


def _answer(result: Result, sent: Task, mapping: dict[str, str]) -> Result:
    """Return ``result`` for the coordinator: its own task, its own paths."""
    back = {dst: src for src, dst in mapping.items()}
    outcome = result.outcome
    if isinstance(outcome, Written) and back:
        outcome = replace(
            outcome,
            txt=_translate(outcome.txt, back),
            manifest=_translate(outcome.manifest, back),
        )
    return replace(result, task=sent, outcome=outcome)


def _engines() -> EngineCache:
    if "engines" not in _state:  # built after the fork, once per worker process
        from ocrwatch.engines import EngineCache
        from ocrwatch.support.throttle import Throttles

        settings = _state["settings"]
        # One request window for the account, in Redis, across every worker on every host.
        _state["engines"] = EngineCache(
            settings, throttles=Throttles(storage_uri=backend_url(settings))
        )
    engines: EngineCache = _state["engines"]
    return engines


def _recognize(self: Any, message: str) -> str:
    """The Celery task: run one task message here and answer with its result message."""
    from ocrwatch.daemon.execute import execute

    settings: Settings = _state["settings"]
    sent = loads(message)
    assert not isinstance(sent, Result)
    task = map_paths(sent, settings.celery.path_map)
    _compare_settings(sent, settings)
    stop = threading.Event()
    # The request is thread-local in Celery: hand the task id to the heartbeat thread.
    beat = threading.Thread(
        target=_heartbeat,
        args=(self, self.request.id, stop, settings.celery.heartbeat),
        daemon=True,
    )
    beat.start()
    try:
        result = execute(task, settings=settings, engines=_engines())
    finally:
        stop.set()
        beat.join()
    return dumps(_answer(result, sent, settings.celery.path_map))


def _compare_settings(task: Task, settings: Settings) -> None:
    """Say once per digest that this worker reads with other settings than the coordinator."""
    from ocrwatch.settings.resolve import settings_digest

    theirs = getattr(task, "settings_digest", "")
    seen: set[str] = _state.setdefault("digests_seen", set())
    if not theirs or theirs in seen:
        return
    seen.add(theirs)
    ours = settings_digest(settings)
    if theirs != ours:
        log.warning(
            "worker.settings_differ",
            coordinator=theirs,
            worker=ours,
            detail="this worker's recognition settings (engines, languages, preprocessing, "
            "outputs, profiles) differ from the coordinator's; use the same config file",
        )


def _heartbeat(task: Any, task_id: str, stop: threading.Event, every: float) -> None:
    import time

    meta = {"host": socket.gethostname(), "pid": os.getpid()}
    while True:
        try:
            beat = {**meta, "beat": time.time()}
            task.update_state(task_id=task_id, state=HEARTBEAT_STATE, meta=beat)
        except Exception as exc:  # a broker hiccup must not fail the recognition
            log.warning("worker.heartbeat_failed", error=str(exc))
        if stop.wait(every):
            return


def run_worker(settings: Settings, *, concurrency: int) -> int:
    """Run ``ocrwatch worker`` until SIGTERM (warm shutdown: running tasks finish)."""
    _state["settings"] = settings
    app = make_app(settings)
    log.info(
        "worker.starting",
        host=socket.gethostname(),
        queue=settings.celery.queue,
        concurrency=concurrency,
        settings=settings.masked(),
    )
    app.worker_main(
        argv=[
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={settings.celery.queue}",
            f"--loglevel={settings.log_level.upper()}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--hostname=ocrwatch@%h",
        ]
    )
    return 0
