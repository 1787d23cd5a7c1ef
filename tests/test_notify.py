"""Notifications: triggers, digests, routing, and delivery to a real local HTTP endpoint
(Apprise json://) and a real local SMTP server (mailto://)."""

from __future__ import annotations

import errno
import logging
import signal
import socket
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from notifysinks import JsonSink, SmtpSink, wait_until
from ocrwatch.daemon.coordinator import Coordinator
from ocrwatch.daemon.folders import Mounts, check_layout, resolve_layout
from ocrwatch.daemon.journal import JOURNAL_NAME, Journal
from ocrwatch.daemon.local_executor import LocalExecutor
from ocrwatch.daemon.notify import (
    BacklogOld,
    DaemonStopped,
    Event,
    Notifications,
    Quarantined,
    ShareAway,
    ShareBack,
    StillFailing,
    Triggers,
    check_urls,
    redact,
    render,
)
from ocrwatch.daemon.systemd import Notifier
from ocrwatch.exceptions import ConfigError
from ocrwatch.settings.model import Settings, load_settings
from ocrwatch.settings.resolve import notify_urls_for
from redisserver import free_port

SECRET = "s3cr3t-pa55"


def settings(**notify: object) -> Settings:
    return load_settings(config_file=None, overrides={"notify": notify}, environ={})


def bad_files(n: int, folder: str = "scans") -> list[Quarantined]:
    return [
        Quarantined(f"{folder}/bad-{i:02d}.png", "not_an_image", "cannot identify image file")
        for i in range(n)
    ]


class TestRender:
    """One message tells one event, or a digest naming many."""

    def test_single_event(self) -> None:
        """One quarantine: the title names it, the body has name, reason and message."""
        title, body = render(bad_files(1), host="scanner")
        assert title == "ocrwatch on scanner: 1 file(s) quarantined"
        assert body == "- scans/bad-00.png: not_an_image (cannot identify image file)"

    def test_digest_lists_names_then_counts(self) -> None:
        """40 files: the first 25 are named, the rest counted; other kinds get their heading."""
        events: list[Event] = [*bad_files(40), StillFailing("x.pdf", 3, "engine_busy", "429")]
        title, body = render(events, host="h")
        assert title == "ocrwatch on h: 40 file(s) quarantined, 1 file(s) still failing"
        assert "- scans/bad-24.png" in body and "bad-25.png" not in body
        assert "- ... and 15 more" in body
        assert "1 file(s) still failing:\n- x.pdf: engine_busy (429), 3 attempts so far" in body

    def test_daemon_wide_events(self) -> None:
        """Share, backlog and stop events read as sentences."""
        _, body = render(
            [
                ShareAway("inbox", "/srv/in", 600),
                ShareBack("inbox", "/srv/in", 900),
                BacklogOld(age_s=7300, pending=12, oldest="in/old.pdf"),
                DaemonStopped("the journal cannot be written\nTraceback ..."),
            ],
            host="h",
        )
        assert "the inbox /srv/in has been away for 10 min" in body
        assert "is back after 15 min" in body
        assert "12 file(s) unfinished; the oldest (in/old.pdf) has waited 2.0 h" in body
        assert "ocrwatch stopped on an error: the journal cannot be written" in body
        assert "Traceback" not in body


class TestRedact:
    """URLs are logged as scheme and host only."""

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            (f"json://ops:{SECRET}@hooks.example.org:8443/x?token={SECRET}", "json://hooks.example.org:8443/..."),
            (f"mailto://ops:{SECRET}@mail.example.org?to=a@b.org", "mailto://mail.example.org/..."),
            (f"ntfy://{SECRET}@ntfy.sh/topic", "ntfy://ntfy.sh/..."),
            (f"slack://{SECRET}/{SECRET}/{SECRET}", f"slack://{SECRET.lower()}/..."),
        ],
    )  # fmt: skip
    def test_no_credentials(self, url: str, shown: str) -> None:
        """User, password, path and query never appear (a token as host is Apprise's own
        form for a few services: check_urls and the logs only ever show this)."""
        assert redact(url) == shown


class TestSettings:
    """[notify] from TOML or env, secrets masked, per-folder routing."""

    def test_env_json_list_and_masking(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OCRWATCH_NOTIFY__URLS is a JSON list; masked() never shows a URL."""
        urls = f'["json://u:{SECRET}@127.0.0.1:9/", "mailto://x.org"]'
        monkeypatch.setenv("OCRWATCH_NOTIFY__URLS", urls)
        s = load_settings(config_file=None, environ={})
        assert [u.get_secret_value() for u in s.notify.urls][1] == "mailto://x.org"
        assert SECRET not in str(s.masked()) and SECRET not in repr(s)

    def test_profile_urls_add_to_global(self) -> None:
        """A folder's own URLs hear about its files, beside the global ones; daemon events
        go to the global ones only."""
        s = load_settings(
            config_file=None,
            overrides={
                "notify": {"urls": ["json://admin/"]},
                "profiles": [{"match": "hr/**", "notify": "json://hr-team/"}],
            },
            environ={},
        )
        assert notify_urls_for(s, "hr/a.png") == ("json://admin/", "json://hr-team/")
        assert notify_urls_for(s, "b.png") == ("json://admin/",)
        assert notify_urls_for(s, None) == ("json://admin/",)
        assert "hr-team" not in str(s.masked())

    def test_unknown_scheme_is_a_config_error(self, caplog: pytest.LogCaptureFixture) -> None:
        """A URL Apprise does not understand stops the start, named, password not shown,
        not even half masked the way Apprise logs it ("s...5")."""
        s = settings(urls=["json://ok/", f"nosuchservice://u:{SECRET}@h/"])
        with pytest.raises(ConfigError, match=r"notify\.urls\[1\]") as err:
            check_urls(s)
        assert SECRET not in str(err.value)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "nosuchservice://h/..." in logged
        assert f"{SECRET[0]}...{SECRET[-1]}" not in logged and SECRET not in logged


class TestTriggers:
    """Each condition is told once per episode (a fake clock)."""

    def make(self, **notify: object) -> tuple[Triggers, list[Event]]:
        told: list[Event] = []
        return Triggers(settings(**notify), told.append), told

    def test_share_away_then_back(self) -> None:
        """Away longer than away_after: told once; back: told once."""
        t, told = self.make(away_after=300)
        for now in (0, 100, 299):
            t.share("inbox", ok=False, path="/in", now=now)
        assert told == []
        t.share("inbox", ok=False, path="/in", now=300)
        t.share("inbox", ok=False, path="/in", now=900)
        assert told == [ShareAway("inbox", "/in", 300)]
        t.share("inbox", ok=True, path="/in", now=1000)
        t.share("inbox", ok=True, path="/in", now=1100)
        assert told[1:] == [ShareBack("inbox", "/in", 1000)]

    def test_share_blink_is_not_told(self) -> None:
        """A share away shorter than away_after is neither told away nor back."""
        t, told = self.make(away_after=300)
        t.share("outbox", ok=False, path="/out", now=0)
        t.share("outbox", ok=True, path="/out", now=10)
        assert told == []

    def test_backlog_once_per_episode(self) -> None:
        """The oldest pending file over pending_age: once, again only after it recovered."""
        t, told = self.make(pending_age=600)
        t.backlog(oldest=1000.0, pending=3, now=1500.0)
        assert told == []
        t.backlog(oldest=1000.0, pending=3, now=1600.0, name=lambda: "in/old.pdf")
        t.backlog(oldest=1000.0, pending=4, now=1700.0, name=lambda: "in/old.pdf")
        assert told == [BacklogOld(age_s=600.0, pending=3, oldest="in/old.pdf")]
        t.backlog(oldest=None, pending=0, now=1800.0)
        t.backlog(oldest=1900.0, pending=1, now=2600.0)
        assert len(told) == 2

    def test_still_failing_once_at_n(self) -> None:
        """A file failing again and again is told once, when it reaches attempts."""
        t, told = self.make(attempts=3)
        for n in (1, 2, 3, 4, 5):
            t.retrying(job_id="j", relpath="a.pdf", attempts=n, reason="busy", message="429")
        assert told == [StillFailing("a.pdf", 3, "busy", "429")]

    def test_zero_switches_off(self) -> None:
        """pending_age = 0 and away_after = 0 tell nothing."""
        t, told = self.make(pending_age=0, away_after=0)
        t.backlog(oldest=0.0, pending=1, now=1e9)
        t.share("inbox", ok=False, path="/in", now=0)
        t.share("inbox", ok=False, path="/in", now=1e9)
        assert told == []


class TestJsonEndpoint:
    """Apprise json:// to a real HTTP server on 127.0.0.1."""

    def test_burst_is_one_digest(self) -> None:
        """40 bad files at once: one post naming them (count for the rest), not 40."""
        with JsonSink() as sink:
            n = Notifications(settings(urls=[sink.url], digest_window=1.0), host="h")
            n.start()
            for event in bad_files(40):
                n.enqueue(event)
            wait_until(lambda: sink.posts, timeout=30, what="the digest")
            n.close()
        assert len(sink.posts) == 1, sink.messages()
        text = sink.messages()[0]
        assert text.startswith("ocrwatch on h: 40 file(s) quarantined")
        assert "scans/bad-00.png: not_an_image (cannot identify image file)" in text
        assert "and 15 more" in text
        assert n.sent == 1 and n.failed == 0

    def test_folder_team_hears_only_its_folder(self) -> None:
        """The profile's endpoint gets its folder's files; the global one gets all."""
        with JsonSink() as admin, JsonSink() as team:
            s = load_settings(
                config_file=None,
                overrides={
                    "notify": {"urls": [admin.url], "digest_window": 0.5},
                    "profiles": [{"match": "hr/**", "notify": [team.url]}],
                },
                environ={},
            )
            n = Notifications(s, host="h")
            n.start()
            for event in [*bad_files(2, "hr"), *bad_files(3, "sales")]:
                n.enqueue(event)
            n.enqueue(ShareAway("inbox", "/srv/in", 400))
            wait_until(lambda: admin.posts and team.posts, timeout=30, what="both posts")
            n.close()
        team_text, admin_text = team.messages()[0], admin.messages()[0]
        assert "hr/bad-01.png" in team_text and "sales/" not in team_text
        assert "share away" not in team_text
        assert "hr/bad-01.png" in admin_text and "sales/bad-02.png" in admin_text
        assert "the inbox /srv/in has been away" in admin_text

    def test_close_sends_at_once(self) -> None:
        """Stopping sends what is gathered without waiting for the digest window."""
        with JsonSink() as sink:
            n = Notifications(settings(urls=[sink.url], digest_window=3600), host="h")
            n.start()
            n.enqueue(DaemonStopped("cannot write the journal"))
            n.close(timeout=30)
            assert sink.messages() == [
                "ocrwatch on h: daemon stopped on an error\n"
                "- ocrwatch stopped on an error: cannot write the journal"
            ]

    def test_failing_receiver_is_retried_then_dropped(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A receiver answering 500: send_attempts posts, then one notify.failed line with
        the URL redacted; the password is in no log record at all."""
        caplog.set_level(logging.DEBUG)
        with JsonSink() as sink, capture_logs() as logs:
            sink.status = 500
            url = f"json://ops:{SECRET}@127.0.0.1:{sink.port}/"
            n = Notifications(settings(urls=[url], digest_window=0, send_attempts=3), host="h")
            n.start()
            n.enqueue(bad_files(1)[0])
            wait_until(lambda: n.failed, timeout=60, what="the message dropped")
            n.close()
            assert len(sink.posts) == 3
            assert sink.posts[0].headers["Authorization"].startswith("Basic ")
        failed = [e for e in logs if e["event"] == "notify.failed"]
        assert len(failed) == 1 and failed[0]["url"] == f"json://127.0.0.1:{sink.port}/..."
        everything = repr(logs) + "\n".join(r.getMessage() for r in caplog.records)
        assert SECRET not in everything

    def test_unreachable_receiver_is_dropped(self) -> None:
        """Nothing listens: the message is dropped after its attempts, with a log line."""
        url = f"json://127.0.0.1:{free_port()}/"
        with capture_logs() as logs:
            n = Notifications(settings(urls=[url], digest_window=0, send_attempts=2), host="h")
            n.start()
            n.enqueue(bad_files(1)[0])
            wait_until(lambda: n.failed, timeout=60, what="the message dropped")
            n.close()
        assert [e["event"] for e in logs].count("notify.failed") == 1

    def test_stuck_receiver_does_not_block(self) -> None:
        """A receiver that takes the connection and never answers holds the sender thread:
        enqueue still returns at once, keeps queue_size events and drops the rest with a
        log line (were it to wait, this test would hang)."""
        with socket.socket() as stuck:
            stuck.bind(("127.0.0.1", 0))
            stuck.listen(16)  # connections complete in the kernel; nobody ever reads them
            url = f"json://127.0.0.1:{stuck.getsockname()[1]}/?rto=2"  # read time-out 2 s
            s = settings(urls=[url], digest_window=0, queue_size=3, send_attempts=1)
            with capture_logs() as logs:
                n = Notifications(s, host="h")
                n.start()
                n.enqueue(bad_files(1)[0])
                wait_until(lambda: n._queue.empty(), timeout=10, what="the sender busy")
                for event in bad_files(10):
                    n.enqueue(event)
                assert n.dropped == 7 and n._queue.qsize() == 3
                n.close(timeout=60)
        assert [e["event"] for e in logs].count("notify.dropped") == 7

    def test_full_queue_drops_with_a_log_line(self) -> None:
        """A full queue: the event is dropped and logged, enqueue does not wait."""
        n = Notifications(settings(urls=["json://127.0.0.1:9/"], queue_size=2), host="h")
        with capture_logs() as logs:
            for event in bad_files(3):  # the sender is not started: nothing drains the queue
                n.enqueue(event)
        assert n.dropped == 1
        assert [e["event"] for e in logs] == ["notify.dropped"]

    def test_no_urls_no_thread(self) -> None:
        """Without URLs nothing is queued and no thread starts."""
        n = Notifications(settings())
        n.start()
        n.enqueue(bad_files(1)[0])
        assert not n.enabled and n._queue.empty()
        n.close()


class TestSmtp:
    """Apprise mailto:// to a real SMTP server (aiosmtpd) on 127.0.0.1."""

    def test_digest_by_mail(self) -> None:
        """A burst of quarantines and a failing file arrive as one mail naming them."""
        with SmtpSink() as smtp:
            n = Notifications(settings(urls=[smtp.url()], digest_window=1.0), host="h")
            n.start()
            for event in [*bad_files(12), StillFailing("big.pdf", 3, "engine_busy", "HTTP 429")]:
                n.enqueue(event)
            wait_until(lambda: smtp.texts(), timeout=30, what="the mail")
            n.close()
        assert len(smtp.texts()) == 1
        mail = smtp.texts()[0]
        assert mail.startswith("ocrwatch on h: 12 file(s) quarantined, 1 file(s) still failing")
        assert "scans/bad-11.png: not_an_image" in mail
        assert "big.pdf: engine_busy (HTTP 429), 3 attempts so far" in mail
        assert smtp.recorder.envelopes == [("ocrwatch@example.org", ["ops@example.org"])]


class _BrokenExecutor(LocalExecutor):
    """The real local executor, failing to start its workers (out of file descriptors)."""

    def start(self) -> None:
        raise OSError(errno.EMFILE, "Too many open files")


class TestDaemonStopping:
    """The daemon stopping on an error tells before it exits."""

    def test_start_error_is_told(self, tmp_path: Path) -> None:
        """The coordinator's run raises: the error is sent at once, then re-raised."""
        (tmp_path / "in").mkdir()
        (tmp_path / "out").mkdir()
        with JsonSink() as sink:
            s = load_settings(
                config_file=None,
                overrides={
                    "inbox": str(tmp_path / "in"),
                    "outbox": str(tmp_path / "out"),
                    "state_dir": str(tmp_path / "state"),
                    "notify": {"urls": [sink.url], "digest_window": 3600},
                },
                environ={},
            )
            layout = resolve_layout(s)
            check_layout(layout)
            mounts = Mounts(layout)
            mounts.claim()
            journal = Journal(layout.state_dir / JOURNAL_NAME)
            coordinator = Coordinator(
                s,
                layout=layout,
                mounts=mounts,
                journal=journal,
                instance="me",
                executor=_BrokenExecutor(s, size=1, timeout=10),
                notifier=Notifier.from_env({}),
                notifications=Notifications(s, host="h"),
            )
            old = signal.getsignal(signal.SIGTERM)
            with pytest.raises(OSError, match="Too many open files"):
                coordinator.run()
            assert signal.getsignal(signal.SIGTERM) is old
            assert len(sink.posts) == 1
            assert (
                "ocrwatch stopped on an error: [Errno 24] Too many open files"
                in (sink.messages()[0])
            )
