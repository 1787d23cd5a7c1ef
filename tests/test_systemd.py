"""systemd integration: the sd_notify client against real sockets, and the unit's hardening."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ocrwatch.daemon.systemd import Notifier
from ocrwatch.exceptions import ExitCode

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "ocrwatch.service"
WORKER_UNIT = REPO / "systemd" / "ocrwatch-worker.service"
INSTALL_SCRIPT = REPO / "scripts" / "install-service.sh"

#: What `systemd-analyze security --offline=true` scored the unit at when it was written
#: (systemd 252: 1.5). The cap leaves room for checks newer systemd versions add, not for
#: dropping hardening: REQUIRED_CHECKS below catches any single directive going missing.
MAX_EXPOSURE = 2.0

#: Security checks (as named by systemd-analyze) that must pass.
REQUIRED_CHECKS = (
    "ProtectSystem=",
    "NoNewPrivileges=",
    "PrivateTmp=",
    "PrivateDevices=",
    "ProtectHome=",
    "ProtectKernelTunables=",
    "ProtectKernelModules=",
    "ProtectKernelLogs=",
    "ProtectControlGroups=",
    "ProtectClock=",
    "ProtectHostname=",
    "ProtectProc=",
    "RestrictNamespaces=~user",
    "RestrictRealtime=",
    "RestrictSUIDSGID=",
    "LockPersonality=",
    "MemoryDenyWriteExecute=",
    "SystemCallArchitectures=",
    "RestrictAddressFamilies=~AF_PACKET",
    "RestrictAddressFamilies=~AF_NETLINK",
    "CapabilityBoundingSet=~CAP_SYS_ADMIN",
    "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)",
    "AmbientCapabilities=",
    "NotifyAccess=",
    "User=/DynamicUser=",
)

#: Every group @system-service denies (the first line of the SystemCallFilter checks).
REQUIRED_SYSCALL_DENIALS = ("@mount", "@module", "@reboot", "@swap", "@raw-io", "@debug")


class Receiver:
    """The service manager's end: a bound AF_UNIX datagram socket."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(10.0)  # a deadline for each message, not a sleep

    @property
    def notify_socket(self) -> str:
        """The NOTIFY_SOCKET value systemd would export for this address."""
        return "@" + self.address[1:] if self.address.startswith("\0") else self.address

    def message(self) -> dict[str, str]:
        """Wait for the next datagram and return its fields."""
        data = self.sock.recv(4096).decode("utf-8")
        assert data.endswith("\n")
        return dict(line.split("=", 1) for line in data.splitlines())

    def close(self) -> None:
        """Close (and unlink a path socket)."""
        self.sock.close()
        if not self.address.startswith("\0"):
            Path(self.address).unlink(missing_ok=True)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    """A notify socket bound in tmp_path, or in the abstract namespace."""
    if request.param == "path":
        address = str(tmp_path / "notify")
        if len(address) >= 100:  # sockaddr_un limit; pytest's names can be long
            address = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"ow-{uuid.uuid4().hex}")
    else:
        address = f"\0ocrwatch-test-{uuid.uuid4().hex}"
    recv = Receiver(address)
    yield recv
    recv.close()


class TestNotifierMessages:
    """Each Notifier method puts the right sd_notify fields on the socket."""

    def test_messages_arrive_as_sent(self, receiver: Receiver) -> None:
        """READY, STATUS, WATCHDOG, STOPPING and EXTEND_TIMEOUT_USEC arrive verbatim."""
        notifier = Notifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
        assert notifier.enabled
        notifier.ready()
        assert receiver.message() == {"READY": "1"}
        notifier.status("3 queued, oldest 12 s — ñandú.pdf")
        assert receiver.message() == {"STATUS": "3 queued, oldest 12 s — ñandú.pdf"}
        notifier.watchdog()
        assert receiver.message() == {"WATCHDOG": "1"}
        notifier.extend_timeout(2.5)
        assert receiver.message() == {"EXTEND_TIMEOUT_USEC": "2500000"}
        notifier.stopping()
        assert receiver.message() == {"STOPPING": "1"}
        notifier.close()

    def test_reloading_carries_monotonic_timestamp(self, receiver: Receiver) -> None:
        """RELOADING=1 comes with MONOTONIC_USEC from CLOCK_MONOTONIC (systemd 253+ needs it)."""
        notifier = Notifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier.reloading()
        fields = receiver.message()
        assert fields["RELOADING"] == "1"
        assert int(fields["MONOTONIC_USEC"]) >= before
        notifier.close()

    def test_notify_sends_fields_in_one_datagram(self, receiver: Receiver) -> None:
        """notify(**fields) sends several fields together; a newline cannot split a field."""
        notifier = Notifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
        assert notifier.notify(READY=1, STATUS="line one\nline two", ERRNO=0) is True
        assert receiver.message() == {"READY": "1", "STATUS": "line one line two", "ERRNO": "0"}
        notifier.close()

    def test_bad_field_name_is_a_programming_error(self, receiver: Receiver) -> None:
        """A lower-case or malformed field name raises ValueError instead of sending junk."""
        notifier = Notifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
        with pytest.raises(ValueError, match="field name"):
            notifier.notify(ready=1)
        with pytest.raises(ValueError, match="positive"):
            notifier.extend_timeout(0)
        notifier.close()

    def test_concurrent_senders_each_deliver_one_message(self, receiver: Receiver) -> None:
        """Threads sharing one Notifier each get their datagram through intact."""
        notifier = Notifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
        threads = [
            threading.Thread(target=notifier.status, args=(f"worker {i}",)) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = sorted(receiver.message()["STATUS"] for _ in threads)
        assert got == sorted(f"worker {i}" for i in range(8))
        notifier.close()

    def test_child_process_notifies_through_environment(self, receiver: Receiver) -> None:
        """A real process started with NOTIFY_SOCKET (as systemd starts us) reports READY=1."""
        env = {**os.environ, "NOTIFY_SOCKET": receiver.notify_socket}
        code = "from ocrwatch.daemon.systemd import Notifier; Notifier.from_env().ready()"
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
        assert receiver.message() == {"READY": "1"}


class TestNotifierOutsideSystemd:
    """Without a usable NOTIFY_SOCKET the notifier is a silent no-op."""

    def test_unset_socket_is_a_noop(self) -> None:
        """Every method returns quietly and notify() reports nothing was sent."""
        notifier = Notifier.from_env({})
        assert not notifier.enabled
        with capture_logs() as logs:
            notifier.ready()
            notifier.status("x")
            notifier.watchdog()
            notifier.reloading()
            notifier.extend_timeout(1)
            notifier.stopping()
            assert notifier.notify(READY=1) is False
        assert logs == []
        assert notifier.watchdog_interval is None

    def test_default_environ_is_os_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """from_env() without arguments reads the process environment."""
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        assert not Notifier.from_env().enabled
        monkeypatch.setenv("NOTIFY_SOCKET", "@somewhere")
        assert Notifier.from_env().enabled

    def test_unsupported_socket_kind_is_a_noop(self) -> None:
        """A vsock address (systemd in a VM) disables the notifier rather than failing."""
        with capture_logs() as logs:
            notifier = Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
        assert not notifier.enabled
        assert [e["event"] for e in logs] == ["systemd.notify_socket_unsupported"]

    def test_vanished_socket_does_not_raise(self, tmp_path: Path) -> None:
        """Sending to a socket that went away returns False and warns once, then debug."""
        recv = Receiver(str(tmp_path / "gone"))
        notifier = Notifier.from_env({"NOTIFY_SOCKET": recv.address})
        recv.close()
        with capture_logs() as logs:
            assert notifier.notify(WATCHDOG=1) is False
            notifier.watchdog()
            notifier.ready()
        assert [e["event"] for e in logs] == ["systemd.notify_failed"] * 3
        assert [e["log_level"] for e in logs] == ["warning", "debug", "debug"]
        assert logs[0]["fields"] == ["WATCHDOG"]
        notifier.close()


class TestWatchdogInterval:
    """watchdog_interval follows WATCHDOG_USEC and WATCHDOG_PID like sd_watchdog_enabled()."""

    SOCK = "@ocrwatch-wd-test"

    def test_half_of_watchdog_usec(self) -> None:
        """WatchdogSec=120 (WATCHDOG_USEC=120000000) means a ping every 60 s."""
        n = Notifier.from_env({"NOTIFY_SOCKET": self.SOCK, "WATCHDOG_USEC": "120000000"})
        assert n.watchdog_interval == 60.0

    def test_own_pid_enables(self) -> None:
        """WATCHDOG_PID naming this process keeps the watchdog on."""
        env = {
            "NOTIFY_SOCKET": self.SOCK,
            "WATCHDOG_USEC": "3000000",
            "WATCHDOG_PID": str(os.getpid()),
        }
        assert Notifier.from_env(env).watchdog_interval == 1.5

    def test_other_pid_disables(self) -> None:
        """WATCHDOG_PID naming another process (we are its child) turns it off."""
        env = {
            "NOTIFY_SOCKET": self.SOCK,
            "WATCHDOG_USEC": "3000000",
            "WATCHDOG_PID": str(os.getpid() + 1),
        }
        assert Notifier.from_env(env).watchdog_interval is None

    @pytest.mark.parametrize("value", [None, "", "0", "-5", "abc"])
    def test_missing_or_bad_usec_disables(self, value: str | None) -> None:
        """No, zero, negative or malformed WATCHDOG_USEC means no watchdog."""
        env = {"NOTIFY_SOCKET": self.SOCK}
        if value is not None:
            env["WATCHDOG_USEC"] = value
        assert Notifier.from_env(env).watchdog_interval is None

    def test_no_socket_no_watchdog(self) -> None:
        """A watchdog without a socket to ping cannot be served: None."""
        assert Notifier.from_env({"WATCHDOG_USEC": "3000000"}).watchdog_interval is None


def _systemd_analyze() -> str:
    """Return the path of systemd-analyze, failing (not skipping) when it is missing."""
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail(
            "systemd-analyze not found: install the Debian/Ubuntu package 'systemd' "
            "(apt-get install systemd; CI installs it). It works without systemd as PID 1."
        )
    return path


def _verifiable_unit(tmp_path: Path, source: Path = UNIT) -> Path:
    """Copy a unit to tmp_path with ExecStart pointing at an executable that exists here."""
    venv_ocrwatch = Path(sys.executable).parent / "ocrwatch"
    exe = venv_ocrwatch if venv_ocrwatch.exists() else Path(sys.executable)
    text = source.read_text(encoding="utf-8").replace("/opt/ocrwatch/venv/bin/ocrwatch", str(exe))
    unit = tmp_path / source.name
    unit.write_text(text, encoding="utf-8")
    return unit


def _unit_directives(source: Path = UNIT) -> dict[str, list[str]]:
    """Return a unit's directives (name -> values in order), comments skipped."""
    out: dict[str, list[str]] = {}
    for raw in source.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


class TestUnitFile:
    """systemd/ocrwatch.service and ocrwatch-worker.service load cleanly and stay hardened."""

    @pytest.mark.parametrize("source", [UNIT, WORKER_UNIT], ids=lambda p: p.name)
    def test_verify_passes(self, tmp_path: Path, source: Path) -> None:
        """`systemd-analyze verify` reports nothing about our unit.

        The ocrwatch user may not exist on the test machine (the install script creates it);
        a complaint about that account alone is not counted.
        """
        unit = _verifiable_unit(tmp_path, source)
        proc = subprocess.run(
            [_systemd_analyze(), "verify", str(unit)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = proc.stdout + proc.stderr
        about_unit = [line for line in output.splitlines() if source.name in line]
        # "ocrwatch.service: ... user/group ... ocrwatch ..." about the account, nothing else.
        account = re.compile(r"\b(user|group)\b.*\bocrwatch\b(?!\.service)", re.IGNORECASE)
        problems = [line for line in about_unit if not account.search(line)]
        assert problems == [], output
        assert proc.returncode == 0 or about_unit, output

    @pytest.mark.parametrize("source", [UNIT, WORKER_UNIT], ids=lambda p: p.name)
    def test_security_exposure_stays_low(self, tmp_path: Path, source: Path) -> None:
        """`systemd-analyze security --offline=true` scores <= MAX_EXPOSURE, key checks pass."""
        unit = _verifiable_unit(tmp_path, source)
        proc = subprocess.run(
            [_systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SYSTEMD_COLORS": "0"},
        )
        output = proc.stdout + proc.stderr
        match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
        assert match, f"no exposure line in:\n{output}"
        assert float(match.group(1)) <= MAX_EXPOSURE, output

        failed = {m.group(1) for m in re.finditer(r"^\s*✗\s+(\S+)", output, re.MULTILINE)}
        passed = {m.group(1) for m in re.finditer(r"^\s*✓\s+(\S+)", output, re.MULTILINE)}
        missing = [c for c in REQUIRED_CHECKS if c not in passed or c in failed]
        assert missing == [], f"hardening lost: {missing}\n{output}"
        lost_denials = [g for g in REQUIRED_SYSCALL_DENIALS if f"SystemCallFilter=~{g}" in failed]
        assert lost_denials == [], output

    def test_restart_prevented_for_config_and_dependency_errors(self) -> None:
        """RestartPreventExitStatus= names ExitCode.CONFIG and DEPENDENCY from exceptions.py."""
        directives = _unit_directives()
        codes = {int(c) for v in directives["RestartPreventExitStatus"] for c in v.split()}
        assert codes == {ExitCode.CONFIG, ExitCode.DEPENDENCY}
        assert directives["Restart"] == ["on-failure"]

    def test_notify_contract(self) -> None:
        """Type=notify with a watchdog, so the daemon's Notifier is what keeps it alive."""
        directives = _unit_directives()
        assert directives["Type"] == ["notify"]
        assert directives["NotifyAccess"] == ["main"]
        assert directives["WatchdogSec"] == ["120"]
        assert directives["ExecStart"][0].split()[1:] == [
            "run",
            "--config",
            "/etc/ocrwatch/ocrwatch.toml",
        ]

    def test_worker_unit_runs_the_worker(self) -> None:
        """The worker unit starts `ocrwatch worker` with the same config and a warm stop."""
        directives = _unit_directives(WORKER_UNIT)
        assert directives["ExecStart"][0].split()[1:] == [
            "worker",
            "--config",
            "/etc/ocrwatch/ocrwatch.toml",
        ]
        assert directives["KillMode"] == ["mixed"]
        codes = {int(c) for v in directives["RestartPreventExitStatus"] for c in v.split()}
        assert codes == {ExitCode.CONFIG, ExitCode.DEPENDENCY}


class TestInstallScript:
    """scripts/install-service.sh is valid shell and documents its flags."""

    def test_syntax_and_help(self) -> None:
        """`bash -n` accepts it and --help runs without root or side effects."""
        subprocess.run(["bash", "-n", str(INSTALL_SCRIPT)], check=True, timeout=30)
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        assert "--no-start" in proc.stdout
        assert "--prefix" in proc.stdout

    def test_unknown_flag_is_a_usage_error(self) -> None:
        """A typo in a flag stops the script before it touches anything (exit 2)."""
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), "--no-strat"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2
        assert "--no-strat" in proc.stderr
