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

A task carries the settings its file is read with (the coordinator resolved them): a worker
reads with those, keeps an engine set per distinct engine settings, and answers ``Refused``
when it lacks an engine or a language they need. Node names are ``NAME.PID@host``, unique
for every worker (``celery.worker_name``); heartbeats carry ``NAME@host`` (a stable metrics
label) and the node name (a refused task is routed to another node's own queue). Every path
in an answer (all outputs, the manifest's source path) is mapped back through ``path_map``.
Every Redis call is bounded by :data:`SOCKET_TIMEOUT`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import warnings
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from celery import Celery

from ocrwatch.daemon.messages import (
    RecognizeTask,
    Refused,
    Result,
    Task,
    Written,
    dumps,
    loads,
)
from ocrwatch.exceptions import ConfigError

if TYPE_CHECKING:
    from ocrwatch.engines import EngineCache
    from ocrwatch.settings.model import Settings

__all__ = [
    "HEARTBEAT_STATE",
    "SOCKET_TIMEOUT",
    "TASK_NAME",
    "make_app",
    "map_paths",
    "run_worker",
    "worker_label",
]

log = structlog.get_logger()

TASK_NAME = "ocrwatch.recognize"
#: The task state a worker's heartbeat writes (meta: host, pid, beat time).
HEARTBEAT_STATE = "RUNNING"
#: Seconds any one Redis call may wait: a frozen broker must not hold a caller for long.
SOCKET_TIMEOUT = 3.0
#: Engine sets a worker process keeps (one per distinct engine settings in its tasks).
_ENGINE_SETS = 2


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
        broker_transport_options={
            "visibility_timeout": max(2 * settings.file_timeout, 3600),
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
        },
        redis_socket_timeout=SOCKET_TIMEOUT,
        redis_socket_connect_timeout=SOCKET_TIMEOUT,
        # A worker rides out a broker outage while it stores an answer or a heartbeat
        # (about a minute) instead of failing a good file.
        result_backend_always_retry=True,
        result_backend_max_retries=20,
        # Each worker also listens on its own queue: a refused task goes to another worker.
        worker_direct=True,
        result_expires=86400,
        task_soft_time_limit=settings.file_timeout,
        task_time_limit=settings.file_timeout + 30,
        worker_max_tasks_per_child=500,  # engines that leak memory are restarted now and then
        broker_connection_retry_on_startup=True,
        # Said explicitly (Celery warns at every reconnect otherwise): a running task keeps
        # running when the broker connection drops; the coordinator drops a second answer.
        worker_cancel_long_running_tasks_on_connection_loss=False,
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
            others={fmt: _translate(path, back) for fmt, path in outcome.others.items()},
        )
    return replace(result, task=sent, outcome=outcome)


def _engines(task: Task, settings: Settings) -> EngineCache:
    """Return this process's engines for ``task``'s settings (built after the fork, kept)."""
    from ocrwatch.daemon.execute import task_settings
    from ocrwatch.engines import EngineCache
    from ocrwatch.settings.resolve import values_digest
    from ocrwatch.support.throttle import Throttles

    effective = task_settings(task, settings)[0] if isinstance(task, RecognizeTask) else settings
    keys = {"languages", "spellcheck", "tesseract", "paddle", "engines"}
    key = values_digest(effective.model_dump(mode="json", include=keys))
    caches: OrderedDict[str, EngineCache] = _state.setdefault("engines", OrderedDict())
    if key in caches:
        caches.move_to_end(key)
        return caches[key]
    while len(caches) >= _ENGINE_SETS:
        caches.popitem(last=False)[1].close()
    # One request window for the account, in Redis, across every worker on every host.
    caches[key] = EngineCache(effective, throttles=Throttles(storage_uri=backend_url(settings)))
    return caches[key]


def worker_label(settings: Settings) -> str:
    """Return this worker's stable name, ``NAME@host`` (a metrics label: no pid)."""
    return f"{settings.celery.worker_name}@{socket.gethostname()}"


def _recognize(self: Any, message: str) -> str:
    """The Celery task: run one task message here and answer with its result message."""
    from ocrwatch.daemon.execute import execute

    settings: Settings = _state["settings"]
    sent = loads(message)
    assert not isinstance(sent, Result)
    task = map_paths(sent, settings.celery.path_map)
    node = str(self.request.hostname or "")
    label = worker_label(settings)
    stop = threading.Event()
    # The request is thread-local in Celery: hand the task id to the heartbeat thread.
    beat = threading.Thread(
        target=_heartbeat,
        args=(self, self.request.id, stop, settings.celery.heartbeat, label, node),
        daemon=True,
    )
    beat.start()
    try:
        result = execute(
            task,
            settings=settings,
            engines=_engines(task, settings),
            worker=label,
            node=node,
            source_path=sent.path,
        )
    finally:
        stop.set()
        beat.join()
    if isinstance(result.outcome, Refused):
        log.warning(
            "worker.refused",
            relpath=sent.relpath,
            reason=result.outcome.reason,
            detail=result.outcome.message,
        )
    return dumps(_answer(result, sent, settings.celery.path_map))


def _heartbeat(
    task: Any, task_id: str, stop: threading.Event, every: float, worker: str, node: str
) -> None:
    import time

    meta = {"host": socket.gethostname(), "pid": os.getpid(), "worker": worker, "node": node}
    failing = False
    while True:
        try:
            beat = {**meta, "beat": time.time()}
            task.update_state(task_id=task_id, state=HEARTBEAT_STATE, meta=beat)
        except Exception as exc:  # a broker hiccup must not fail the recognition
            if not failing:  # one warning per outage
                log.warning("worker.heartbeat_failed", error=str(exc))
            failing = True
        else:
            if failing:
                log.info("worker.heartbeat_resumed")
            failing = False
        if stop.wait(every):
            return


def run_worker(settings: Settings, *, concurrency: int) -> int:
    """Run ``ocrwatch worker`` until SIGTERM (warm shutdown: running tasks finish)."""
    _state["settings"] = settings
    app = make_app(settings)
    _quiet_logs()
    node = f"{settings.celery.worker_name}.{os.getpid()}@{socket.gethostname()}"
    log.info(
        "worker.starting",
        host=socket.gethostname(),
        worker=worker_label(settings),
        node=node,
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
            f"--hostname={node}",
        ]
    )
    return 0


class _NoAnswerBody(logging.Filter):
    """Drop the answer JSON from Celery's "succeeded" lines (one short line per task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict) and "return_value" in args:
            record.args = {**args, "return_value": "(answer sent)"}
        return True


def _quiet_logs() -> None:
    """Operator-grade worker logs: no answer bodies, no deprecation warning per reconnect."""
    from celery import signals

    logging.getLogger("celery.app.trace").addFilter(_NoAnswerBody())
    # Celery turns its own deprecation warnings to "always" when it sets up logging: after
    # that, they are turned off again (settings are explicit here; upgrades are tested).
    signals.celeryd_after_setup.connect(_no_celery_deprecations, weak=False)


def _no_celery_deprecations(**_: Any) -> None:
    from celery.exceptions import CDeprecationWarning, CPendingDeprecationWarning

    warnings.filterwarnings("ignore", category=CDeprecationWarning)
    warnings.filterwarnings("ignore", category=CPendingDeprecationWarning)
