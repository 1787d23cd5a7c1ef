"""Shared bench helpers: data location, run metadata, environment defaults."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_DATA",
    "REPO_ROOT",
    "RESULTS_DIR",
    "engine_environment",
    "run_metadata",
    "write_json",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (REPO_ROOT / ".." / "shared" / "eval").resolve()
RESULTS_DIR = REPO_ROOT / "bench" / "results"

_PACKAGES = ("ocrwatch", "rapidocr", "onnxruntime", "tesserocr", "pillow", "numpy", "ocrmypdf")


def engine_environment(*, log_level: str = "warning") -> None:
    """Set the environment the engines need (before any is loaded); quiet ocrwatch's logs."""
    os.environ.setdefault("TESSDATA_PREFIX", "/usr/share/tesseract-ocr/5/tessdata")
    # Debian's OpenMP Tesseract is 5-12x slower on 2 cores without this (engines.md gotcha 5).
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    from ocrwatch.support.logsetup import configure

    # Per-page debug events would drown the table (and cost time); warnings still show.
    configure(level=log_level)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def run_metadata() -> dict[str, Any]:
    """Return the command, git commit, package versions, machine and date of this run."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "command": shlex.join([Path(sys.executable).name, "-m", _module_name(), *sys.argv[1:]]),
        "cwd": os.getcwd(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(dirty) if dirty is not None else None,
        "versions": versions,
        "machine": {
            "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else (sys.argv[0] or "?")


def write_json(data: dict[str, Any], *, out: Path | None, stem: str) -> Path:
    """Write ``data`` to ``out`` or ``bench/results/<stem>-<time>.json``; return the path."""
    if out is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS_DIR / f"{stem}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
