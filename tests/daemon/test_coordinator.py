"""The coordinator's decisions against a fake executor: dispatch, answers, re-sends, refusals.

The coordinator is wired as ``ocrwatch run`` wires it (real journal, spool, intake and
disposition on tmp_path) with an executor that keeps what it is given and answers what the
test says; nothing starts (no watcher thread, no worker process, no signal handler).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import structlog

from daemon.conftest import Stages, build
from imaging import render_lines, save
from ocrwatch.daemon.coordinator import MAX_REFUSALS, Coordinator
from ocrwatch.daemon.executor import Executor
from ocrwatch.daemon.journal import Changes, Job, State
from ocrwatch.daemon.messages import (
    Failure,
    ProbeReport,
    ProbeTask,
    RecognizeTask,
    Refused,
    Result,
    Task,
    TaskSettings,
    Written,
    load_settings,
)
from ocrwatch.daemon.systemd import Notifier
from ocrwatch.settings.resolve import task_values, values_digest
from ocrwatch.support.retry import Category


class FakeExecutor:
    """The :class:`Executor` contract in memory: tasks are kept, answers come from the test."""

    def __init__(self, *, capacity: int = 2, probe_capacity: int = 1) -> None:
        self.slots = capacity
        self.probe_slots = probe_capacity
        self.submitted: list[Task] = []
        self.running: list[Task] = []
        self.answers: list[Result] = []
        self.cancelled: list[str] = []
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    @property
    def capacity(self) -> int:
        busy = sum(isinstance(t, RecognizeTask) for t in self.running)
        return max(0, self.slots - busy)

    @property
    def probe_capacity(self) -> int:
        busy = sum(isinstance(t, ProbeTask) for t in self.running)
        return max(0, self.probe_slots - busy)

    @property
    def in_flight(self) -> tuple[Task, ...]:
        return tuple(self.running)

    @property
    def workers(self) -> Mapping[str, float]:
        return {}

    def submit(self, task: Task) -> None:
        full = self.capacity if isinstance(task, RecognizeTask) else self.probe_capacity
        if full <= 0:
            raise RuntimeError("no capacity")  # the contract: never submitted beyond it
        self.submitted.append(task)
        self.running.append(task)

    def collect(self, timeout: float) -> list[Result]:
        answers, self.answers = self.answers, []
        for result in answers:
            if result.task in self.running:
                self.running.remove(result.task)
        return answers

    def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        mine = [t for t in self.running if t.job_id == job_id]
        for task in mine:
            self.running.remove(task)
        return bool(mine)

    def close(self) -> None:
        self.closed = True

    def answer(self, result: Result) -> None:
        """Queue ``result`` for the next :meth:`collect`."""
        self.answers.append(result)


def _is_executor(executor: Executor) -> Executor:
    return executor  # mypy checks here that FakeExecutor implements the contract


@pytest.fixture
def stages(tmp_path: Path) -> Iterator[Stages]:
    s = build(tmp_path)
    yield s
    s.journal.close()


@pytest.fixture
def fake() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
def coordinator(stages: Stages, fake: FakeExecutor) -> Coordinator:
    return Coordinator(
        stages.settings,
        layout=stages.layout,
        mounts=stages.mounts,
        journal=stages.journal,
        instance="me",
        executor=_is_executor(fake),
        notifier=Notifier.from_env({}),
    )


def claimed(coordinator: Coordinator, rel: str = "a.png") -> Job:
    """Return a CLAIMED job whose (real, small) image sits in the work area."""
    job = coordinator.journal.add(rel)
    work = coordinator.spool.work_path(PurePosixPath(rel), job.job_id)
    work.parent.mkdir(parents=True, exist_ok=True)
    save(render_lines(["hello"], size=24), work)
    return coordinator.journal.update(
        job.job_id, state=State.CLAIMED, changes=Changes(work_path=str(work))
    )


def written(task: RecognizeTask) -> Result:
    outcome = Written(
        sha256="ab" * 32,
        size=9,
        pages=1,
        engines=(("tesseract", "5"),),
        mode="printed",
        attempts=task.attempt,
        txt=task.out_txt,
        manifest=task.out_txt.removesuffix(".txt") + ".json",
    )
    return Result(task, outcome, seconds=0.5)


def state(coordinator: Coordinator, job: Job) -> State:
    now = coordinator.journal.get(job.job_id)
    assert now is not None
    return now.state


def recognitions(fake: FakeExecutor) -> list[RecognizeTask]:
    return [t for t in fake.submitted if isinstance(t, RecognizeTask)]


class TestDispatch:
    """Waiting jobs become recognition tasks while the executor has capacity."""

    def test_ready_job_is_sent(self, coordinator: Coordinator, fake: FakeExecutor) -> None:
        """A claimed job becomes one task: work file, outbox, attempt 1, its resolved settings."""
        job = claimed(coordinator, "sub/a.png")
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        [task] = recognitions(fake)
        assert task.job_id == job.job_id and task.relpath == "sub/a.png"
        assert task.path == job.work_path and task.attempt == 1
        assert task.out_txt == str(coordinator.layout.outbox / "sub" / "a.png.txt")
        assert task.coordinator == "me" and task.pages is None
        values, profile = task_values(coordinator.settings, "sub/a.png")
        assert task.settings == TaskSettings(values_digest(values), values, profile)
        assert task.settings.values["languages"] == list(coordinator.settings.languages)
        assert task.volume_id == coordinator.mounts.outbox.volume_id
        assert task.refused_by == ()
        assert not coordinator.ready

    def test_capacity_is_respected(self, coordinator: Coordinator, fake: FakeExecutor) -> None:
        """No more tasks than the executor takes; the rest wait in order until room frees."""
        fake.slots = 2
        jobs = [claimed(coordinator, f"{n}.png") for n in range(3)]
        coordinator.ready.extend(j.job_id for j in jobs)
        coordinator._dispatch()
        assert [t.job_id for t in recognitions(fake)] == [jobs[0].job_id, jobs[1].job_id]
        assert list(coordinator.ready) == [jobs[2].job_id]
        first = recognitions(fake)[0]
        fake.answer(written(first))
        for result in fake.collect(0.0):
            coordinator._handle(result)
        coordinator._dispatch()
        assert [t.job_id for t in recognitions(fake)][-1] == jobs[2].job_id
        assert not coordinator.ready

    def test_no_capacity_no_task(self, coordinator: Coordinator, fake: FakeExecutor) -> None:
        """An executor with no room (a broker that is down) gets nothing; the job waits."""
        fake.slots = 0
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        assert fake.submitted == [] and list(coordinator.ready) == [job.job_id]

    def test_queued_twice_sent_once(self, coordinator: Coordinator, fake: FakeExecutor) -> None:
        """A job queued twice (a resume) is not sent while it is in flight."""
        job = claimed(coordinator)
        coordinator.ready.extend([job.job_id, job.job_id])
        coordinator._dispatch()
        assert len(recognitions(fake)) == 1

    def test_probe_sent_when_there_is_room(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """A settled inbox file is probed; with no probe capacity it waits for room."""
        save(render_lines(["hello"], size=24), coordinator.layout.inbox / "new.png")
        coordinator.intake.seen(coordinator.layout.inbox / "new.png")
        coordinator.intake.check_gate()
        coordinator.intake.check_gate()
        fake.probe_slots = 0
        coordinator._dispatch()
        assert fake.submitted == []
        fake.probe_slots = 1
        coordinator._dispatch()
        [probe] = fake.submitted
        assert isinstance(probe, ProbeTask) and probe.relpath == "new.png"


class TestAnswers:
    """Each answer goes to the stage that decides; answers for finished jobs are dropped."""

    def test_written_is_archived(self, coordinator: Coordinator, fake: FakeExecutor) -> None:
        """A Written answer closes the job: ARCHIVED, the original in the archive."""
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        coordinator._handle(written(recognitions(fake)[0]))
        assert state(coordinator, job) is State.ARCHIVED
        assert (coordinator.layout.archive / "a.png").is_file()

    def test_answer_for_finished_job_is_dropped(
        self, coordinator: Coordinator, fake: FakeExecutor, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A late or duplicate answer for a job already done changes nothing."""
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        task = recognitions(fake)[0]
        coordinator._handle(written(task))
        archived = coordinator.journal.get(job.job_id)
        coordinator._handle(Result(task, Failure(Category.TRANSIENT, "engine_error", "late")))
        coordinator._handle(written(task))
        assert coordinator.journal.get(job.job_id) == archived
        assert coordinator.disposition.done == 1
        assert "result.dropped" in capsys.readouterr().out

    def test_transient_failure_is_retried_later(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """A transient failure schedules a retry in the journal; nothing is sent at once."""
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        task = recognitions(fake)[0]
        fake.running.remove(task)
        coordinator._handle(Result(task, Failure(Category.TRANSIENT, "engine_error", "429")))
        assert state(coordinator, job) is State.RETRY
        coordinator._dispatch()
        assert len(recognitions(fake)) == 1

    def test_permanent_failure_is_quarantined(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """A permanent failure quarantines the file with its reason."""
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        task = recognitions(fake)[0]
        coordinator._handle(Result(task, Failure(Category.PERMANENT, "corrupt_file", "bad")))
        assert state(coordinator, job) is State.QUARANTINED
        assert (coordinator.layout.quarantine / "a.png.reason.json").is_file()

    def test_probe_answer_claims_the_file(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """A good probe answer claims the file and queues the job for recognition."""
        save(render_lines(["hello"], size=24), coordinator.layout.inbox / "new.png")
        coordinator.intake.seen(coordinator.layout.inbox / "new.png")
        coordinator.intake.check_gate()
        coordinator.intake.check_gate()
        coordinator._dispatch()
        [probe] = fake.submitted
        assert isinstance(probe, ProbeTask)
        report = ProbeReport(sha256="cd" * 32, size=1, format="png", pages=1)
        coordinator._handle(Result(probe, report))
        assert list(coordinator.ready) == [probe.job_id]
        job = coordinator.journal.get(probe.job_id)
        assert job is not None and job.state is State.CLAIMED


class TestHandedBack:
    """A task handed back unrun (lease expired, broker lost) is sent again, not counted."""

    def test_requeued_is_sent_again(self, coordinator: Coordinator, fake: FakeExecutor) -> None:
        """REQUEUED: its other work is cancelled and the job goes first; same attempt."""
        job = claimed(coordinator)
        other = claimed(coordinator, "b.png")
        fake.slots = 1
        coordinator.ready.extend([job.job_id, other.job_id])
        coordinator._dispatch()
        first = recognitions(fake)[0]
        fake.running.remove(first)  # the executor gave it up (its lease expired)
        coordinator._handle(Result(first, Failure(Category.REQUEUED, "requeued", "lease")))
        assert fake.cancelled == [job.job_id]
        assert list(coordinator.ready) == [job.job_id, other.job_id]
        coordinator._dispatch()
        again = recognitions(fake)[1]
        assert again.job_id == job.job_id and again.attempt == first.attempt
        assert state(coordinator, job) is State.CLAIMED

    def test_requeued_while_stopping_stays_claimed(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """While draining, a handed-back task is left claimed for the next start."""
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        task = recognitions(fake)[0]
        fake.running.remove(task)
        coordinator._handle(
            Result(task, Failure(Category.REQUEUED, "requeued", "stop")), stopping=True
        )
        assert not coordinator.ready and fake.cancelled == []
        assert state(coordinator, job) is State.CLAIMED

    def test_requeued_probe_goes_back_to_the_gate(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """A probe handed back is probed again once the file passes the gate again."""
        save(render_lines(["hello"], size=24), coordinator.layout.inbox / "new.png")
        coordinator.intake.seen(coordinator.layout.inbox / "new.png")
        coordinator.intake.check_gate()
        coordinator.intake.check_gate()
        coordinator._dispatch()
        [probe] = fake.submitted
        fake.running.remove(probe)
        coordinator._handle(Result(probe, Failure(Category.REQUEUED, "requeued", "worker died")))
        assert "new.png" not in coordinator.intake.probing
        coordinator.intake.check_gate()
        coordinator.intake.check_gate()
        coordinator._dispatch()
        assert [t.relpath for t in fake.submitted] == ["new.png", "new.png"]


class TestTaskSettings:
    """Settings are resolved once per file (its hot-folder profile applied) and travel along."""

    def test_profile_travels_with_the_task(self, tmp_path: Path) -> None:
        """A file in a profile's folder is sent with that profile's languages and its label."""
        stages = build(
            tmp_path, profiles=[{"match": "es/**", "name": "spanish", "languages": "spa"}]
        )
        fake = FakeExecutor()
        coordinator = Coordinator(
            stages.settings, layout=stages.layout, mounts=stages.mounts, journal=stages.journal,
            instance="me", executor=_is_executor(fake), notifier=Notifier.from_env({}),
        )  # fmt: skip
        jobs = [claimed(coordinator, "es/a.png"), claimed(coordinator, "b.png")]
        coordinator.ready.extend(j.job_id for j in jobs)
        coordinator._dispatch()
        spanish, plain = recognitions(fake)
        assert spanish.settings is not None and plain.settings is not None
        assert spanish.settings.profile == "spanish" and spanish.settings.languages == ("spa",)
        assert plain.settings.profile is None
        assert plain.settings.languages == tuple(stages.settings.languages)
        assert spanish.settings.digest != plain.settings.digest
        stages.journal.close()

    def test_retry_carries_the_same_settings(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """A task sent again (handed back) carries the settings its first dispatch had."""
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        first = recognitions(fake)[0]
        fake.running.remove(first)
        coordinator._handle(Result(first, Failure(Category.REQUEUED, "requeued", "lease")))
        coordinator._dispatch()
        again = recognitions(fake)[1]
        assert again.settings is not None and again.settings is first.settings


def probed_and_claimed(coordinator: Coordinator, fake: FakeExecutor, rel: str) -> str:
    """Claim inbox file ``rel`` the way the daemon does (probe, answer); return its job id."""
    save(render_lines(["hola"], size=24), coordinator.layout.inbox / rel)
    coordinator.intake.seen(coordinator.layout.inbox / rel)
    coordinator.intake.check_gate()
    coordinator.intake.check_gate()
    coordinator._dispatch()
    probe = [t for t in fake.submitted if isinstance(t, ProbeTask)][-1]
    fake.running.remove(probe)
    report = ProbeReport(sha256="cd" * 32, size=1, format="png", pages=1)
    coordinator._handle(Result(probe, report))
    assert probe.job_id in coordinator.ready
    return probe.job_id


def restarted(tmp_path: Path, old: Stages, **overrides: Any) -> tuple[Coordinator, Stages]:
    """Return a new coordinator on ``old``'s journal and folders, with other settings."""
    old.journal.close()
    stages = build(tmp_path, **overrides)
    coordinator = Coordinator(
        stages.settings, layout=stages.layout, mounts=stages.mounts, journal=stages.journal,
        instance="me", executor=_is_executor(FakeExecutor()), notifier=Notifier.from_env({}),
    )  # fmt: skip
    return coordinator, stages


class TestKeptSettings:
    """The settings resolved at claim are kept in the journal: a restart sends the same."""

    def test_retry_after_restart_sends_the_original_settings(self, tmp_path: Path) -> None:
        """Claimed as spa, failed once, restarted with eng: the retry is still read as spa."""
        stages = build(tmp_path, languages="spa")
        fake = FakeExecutor()
        first_run = Coordinator(
            stages.settings, layout=stages.layout, mounts=stages.mounts, journal=stages.journal,
            instance="me", executor=_is_executor(fake), notifier=Notifier.from_env({}),
        )  # fmt: skip
        job_id = probed_and_claimed(first_run, fake, "a.png")
        first_run._dispatch()
        [first] = recognitions(fake)
        assert first.settings is not None and first.settings.languages == ("spa",)
        fake.running.remove(first)
        first_run._handle(Result(first, Failure(Category.TRANSIENT, "busy", "try later")))
        coordinator, stages = restarted(tmp_path, stages, languages="eng")
        assert stages.settings.languages == ["eng"]
        coordinator.ready.append(job_id)
        coordinator._dispatch()
        assert isinstance(coordinator.executor, FakeExecutor)
        [again] = recognitions(coordinator.executor)
        assert again.job_id == job_id and again.attempt == 2
        assert again.settings == first.settings
        assert again.settings is not None and again.settings.languages == ("spa",)
        stages.journal.close()

    def test_claimed_before_restart_keeps_its_profile(self, tmp_path: Path) -> None:
        """A file claimed in a profile's folder keeps that profile after it was removed."""
        profile = {"match": "es/**", "name": "spanish", "languages": "spa"}
        stages = build(tmp_path, profiles=[profile])
        fake = FakeExecutor()
        first_run = Coordinator(
            stages.settings, layout=stages.layout, mounts=stages.mounts, journal=stages.journal,
            instance="me", executor=_is_executor(fake), notifier=Notifier.from_env({}),
        )  # fmt: skip
        (stages.layout.inbox / "es").mkdir()
        job_id = probed_and_claimed(first_run, fake, "es/a.png")
        coordinator, stages = restarted(tmp_path, stages)
        coordinator.ready.append(job_id)
        coordinator._dispatch()
        assert isinstance(coordinator.executor, FakeExecutor)
        [task] = recognitions(coordinator.executor)
        assert task.settings is not None
        assert task.settings.profile == "spanish" and task.settings.languages == ("spa",)
        stages.journal.close()

    def test_old_row_is_resolved_once_and_kept(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """A job claimed without kept settings (an older journal) gets them at its dispatch."""
        job = claimed(coordinator)
        assert job.settings is None
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        [task] = recognitions(fake)
        kept = coordinator.journal.get(job.job_id)
        assert kept is not None and kept.settings is not None
        assert task.settings == load_settings(kept.settings)

    @pytest.mark.parametrize(
        "stored", ['{"v":1,"settings":{}}', "garbage", '{"v":2,"settings":{"digest":"x"}}']
    )
    def test_unreadable_settings_are_resolved_again(
        self, coordinator: Coordinator, fake: FakeExecutor, stored: str
    ) -> None:
        """Kept settings of another version or unreadable: resolved again, said once, kept."""
        job = claimed(coordinator)
        coordinator.journal.update(job.job_id, changes=Changes(settings=stored))
        coordinator.ready.append(job.job_id)
        with structlog.testing.capture_logs() as logs:
            coordinator._dispatch()
            [task] = recognitions(fake)
            fake.running.remove(task)
            coordinator._handle(Result(task, Failure(Category.REQUEUED, "requeued", "lease")))
            coordinator._dispatch()
        again = [e for e in logs if e["event"] == "job.settings_resolved_again"]
        assert len(again) == 1 and again[0]["log_level"] == "warning" and again[0]["reason"]
        values, profile = task_values(coordinator.settings, job.relpath)
        assert task.settings == TaskSettings(values_digest(values), values, profile)
        assert recognitions(fake)[1].settings == task.settings
        kept = coordinator.journal.get(job.job_id)
        assert kept is not None and kept.settings is not None
        assert load_settings(kept.settings) == task.settings


def refused(node: str) -> Refused:
    return Refused(
        worker=f"ocrwatch@{node}", reason="missing_language", message="no spa", node=node
    )


class TestRefused:
    """A worker that cannot honour a task's settings: sent elsewhere; after a few, quarantined."""

    def test_refused_goes_to_another_worker(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """A refusal is not an attempt: the job goes first again, naming who refused it."""
        job = claimed(coordinator)
        other = claimed(coordinator, "b.png")
        fake.slots = 1
        coordinator.ready.extend([job.job_id, other.job_id])
        coordinator._dispatch()
        first = recognitions(fake)[0]
        fake.running.remove(first)
        coordinator._handle(Result(first, refused("celery@h1")))
        assert fake.cancelled == [job.job_id]
        assert list(coordinator.ready) == [job.job_id, other.job_id]
        assert "ocrwatch@celery@h1" in coordinator.journal.worker_refusals()
        coordinator._dispatch()
        again = recognitions(fake)[1]
        assert again.job_id == job.job_id and again.attempt == first.attempt
        assert again.refused_by == ("celery@h1",)
        now = coordinator.journal.get(job.job_id)
        assert now is not None and now.state is State.CLAIMED and now.attempts == 0

    def test_quarantined_after_max_refusals(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """MAX_REFUSALS refusals quarantine the file as no_capable_worker; nothing more is sent."""
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        for n in range(MAX_REFUSALS):
            coordinator._dispatch()
            task = recognitions(fake)[-1]
            assert task.refused_by == tuple(f"celery@h{i}" for i in range(n))
            assert state(coordinator, job) is State.CLAIMED
            fake.running.remove(task)
            coordinator._handle(Result(task, refused(f"celery@h{n}")))
        assert state(coordinator, job) is State.QUARANTINED
        reason = json.loads((coordinator.layout.quarantine / "a.png.reason.json").read_text())
        assert reason["reason"] == "no_capable_worker"
        coordinator._dispatch()
        assert len(recognitions(fake)) == MAX_REFUSALS and not coordinator.ready


class TestCrashes:
    """A task whose worker died (CRASH) counts against the file; file_crashes of them quarantine."""

    def test_crashes_counted_then_quarantined(
        self, coordinator: Coordinator, fake: FakeExecutor
    ) -> None:
        """The first crash schedules a retry; the second (file_crashes=2) is engine_crash."""
        job = claimed(coordinator)
        coordinator.ready.append(job.job_id)
        coordinator._dispatch()
        task = recognitions(fake)[0]
        fake.running.remove(task)
        crash = Result(task, Failure(Category.CRASH, "engine_crash", "WorkerLostError"))
        coordinator._handle(crash)
        now = coordinator.journal.get(job.job_id)
        assert now is not None and now.state is State.RETRY and now.crashes == 1
        coordinator._handle(crash)
        assert state(coordinator, job) is State.QUARANTINED
        reason = json.loads((coordinator.layout.quarantine / "a.png.reason.json").read_text())
        assert reason["reason"] == "engine_crash"
