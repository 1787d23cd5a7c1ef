"""The embedded default runs without the extras; a setting that needs one stops naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imaging import render_lines, save
from ocrwatch.settings.model import load_settings
from ocrwatch.support.extras import check_extras

#: The top-level modules the extras bring (celery's own dependencies too).
EXTRA_MODULES = ("celery", "kombu", "billiard", "amqp", "vine", "redis", "limits",
                 "aspose_ocr_cloud")  # fmt: skip

# Runs ocrwatch with EXTRA_MODULES missing, as after `pip install ocrwatch`: an import hook
# refuses them (ModuleNotFoundError, as for a package that is not there) and notes every try.
_BLOCKED_RUN = """
import importlib.abc, json, sys
HIDDEN = set(sys.argv[1].split(","))
tried = []
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            tried.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
argv = sys.argv[2:]
if argv[0] == "--import":
    import importlib
    for module in argv[1:]:
        importlib.import_module(module)
    code = 0
else:
    from ocrwatch.cli import main
    code = main(argv)
sys.stderr.write("\\nTRIED " + json.dumps(sorted(set(tried))) + "\\n")
sys.exit(code)
"""


def run_without(
    hidden: tuple[str, ...], *argv: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``ocrwatch ARGV`` with ``hidden`` modules missing; return it and the imports tried."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OCRWATCH_")}
    full_env["OCRWATCH_LOG_FORMAT"] = "json"
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCKED_RUN, ",".join(hidden), *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=240,
        check=False,
    )
    marker = proc.stderr.rfind("TRIED ")
    assert marker >= 0, proc.stderr[-2000:]
    tried = json.loads(proc.stderr[marker + 6 :].splitlines()[0])
    return proc, tried


@pytest.fixture(scope="module")
def letter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A printed page."""
    d = tmp_path_factory.mktemp("extras")
    return save(render_lines(["Invoice number 4711", "Payment due in thirty days"]), d / "l.png")


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    """An inbox, an outbox and a state folder for `ocrwatch run`."""
    paths = {name: tmp_path / name for name in ("inbox", "outbox", "state")}
    for path in paths.values():
        path.mkdir()
    return {
        "OCRWATCH_INBOX": str(paths["inbox"]),
        "OCRWATCH_OUTBOX": str(paths["outbox"]),
        "OCRWATCH_STATE_DIR": str(paths["state"]),
    }


class TestEmbeddedDefault:
    """`pip install ocrwatch` (no extras) reads files and never imports an extra's module."""

    def test_ocr_reads_a_page_without_the_extras(self, letter: Path) -> None:
        """`ocrwatch ocr` with the default settings (auto mode) reads the page."""
        proc, tried = run_without(EXTRA_MODULES, "ocr", str(letter))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Invoice number 4711" in proc.stdout
        assert tried == []

    def test_daemon_modules_import_without_the_extras(self) -> None:
        """The daemon's default path (local executor) and the API import none of them."""
        modules = ["ocrwatch.cli", "ocrwatch.api", "ocrwatch.daemon.coordinator",
                   "ocrwatch.daemon.local_executor", "ocrwatch.daemon.execute",
                   "ocrwatch.daemon.status", "ocrwatch.engines.tesseract",
                   "ocrwatch.engines.paddle", "ocrwatch.outputs.writer"]  # fmt: skip
        proc, tried = run_without(EXTRA_MODULES, "--import", *modules)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert tried == []


class TestMissingExtra:
    """A setting that needs a missing extra stops at start (exit 4) naming the extra."""

    def test_engine_aspose(self, letter: Path) -> None:
        """`--engine aspose` without the SDK asks for ocrwatch[aspose]."""
        proc, _ = run_without(EXTRA_MODULES, "ocr", str(letter), "--engine", "aspose")
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert "engine 'aspose' needs the 'aspose' extra" in proc.stderr
        assert "pip install 'ocrwatch[aspose]'" in proc.stderr
        assert proc.stdout == ""

    def test_executor_celery(self, folders: dict[str, str]) -> None:
        """`ocrwatch run` with executor = celery asks for ocrwatch[celery] before it starts."""
        env = {**folders, "OCRWATCH_EXECUTOR": "celery"}
        proc, _ = run_without(EXTRA_MODULES, "run", env=env)
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert 'executor = "celery" needs the \'celery\' extra' in proc.stderr
        assert "pip install 'ocrwatch[celery]'" in proc.stderr
        assert not list(Path(folders["OCRWATCH_STATE_DIR"]).iterdir())  # no journal opened

    def test_worker(self) -> None:
        """`ocrwatch worker` asks for ocrwatch[celery]."""
        proc, _ = run_without(EXTRA_MODULES, "worker")
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert "ocrwatch worker needs the 'celery' extra" in proc.stderr
        assert "pip install 'ocrwatch[celery]'" in proc.stderr

    def test_daemon_with_aspose_for_printed_pages(self, folders: dict[str, str]) -> None:
        """An engine chosen per kind of page (printed_engine = aspose) is checked at start."""
        env = {**folders, "OCRWATCH_PRINTED_ENGINE": "aspose"}
        proc, _ = run_without(EXTRA_MODULES, "run", env=env)
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert "pip install 'ocrwatch[aspose]'" in proc.stderr

    def test_requests_per_second_needs_limits(self, folders: dict[str, str]) -> None:
        """aspose.requests_per_second without `limits` asks for ocrwatch[aspose]."""
        env = {**folders, "OCRWATCH_ENGINE": "aspose", "OCRWATCH_ASPOSE__REQUESTS_PER_SECOND": "2"}
        proc, _ = run_without(("limits",), "run", env=env)
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert "aspose.requests_per_second needs the 'aspose' extra (limits" in proc.stderr

    def test_throttle_needs_limits(self, letter: Path) -> None:
        """`ocrwatch ocr --engine aspose` with a request limit and no `limits` names it too."""
        env = {"OCRWATCH_ASPOSE__REQUESTS_PER_SECOND": "2"}
        proc, _ = run_without(("limits",), "ocr", str(letter), "--engine", "aspose", env=env)
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert "aspose.requests_per_second needs the 'aspose' extra (limits" in proc.stderr

    def test_default_settings_need_no_extra(self) -> None:
        """The default settings (local executor, local engines) ask for nothing."""
        check_extras(load_settings(environ={}))
