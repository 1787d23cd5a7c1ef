"""One-file start-up: wall time of ``ocrwatch ocr FILE`` minus the time spent recognizing.

Runs ``python -m ocrwatch ocr FILE --json`` as a fresh process (``--runs`` times, cold
imports and model loads every time), reads the manifest's ``timings`` (``recognize`` is the
engines' time on the pages, ``total`` the pipeline's) and reports per run: wall, recognize,
start-up = wall - recognize. The file defaults to the first note of
``handwriting/notes_scheidl``; any image works.

Example: ``python -m bench.startup --mode handwritten --runs 5``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_DATA, run_metadata, write_json

__all__ = ["main", "measure"]


def measure(
    path: Path, *, mode: str, languages: str, runs: int, cold_cache: bool = False
) -> list[dict[str, float]]:
    """Return wall, recognize and start-up seconds of ``runs`` one-file CLI runs on ``path``.

    With ``cold_cache`` every run gets an empty word-data cache (``handwriting.wordcache``): the
    first run on a new machine. Otherwise the cache is the user's, built by an untimed run.
    """
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    env.pop("CACHE_DIRECTORY", None)
    cmd = [sys.executable, "-m", "ocrwatch", "ocr", str(path), "--json", "--mode", mode]
    cmd += ["--lang", languages]
    if not cold_cache:
        subprocess.run(cmd, capture_output=True, env=env, check=True)
    out: list[dict[str, float]] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="ocrwatch-cold-") as empty:
            if cold_cache:
                env["XDG_CACHE_HOME"] = empty
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            wall = time.perf_counter() - t0
        doc: dict[str, Any] = json.loads(proc.stdout)
        manifest = doc.get("manifest", doc)
        timings = manifest["timings"]
        recognize = float(timings.get("recognize", 0.0))
        out.append(
            {
                "wall": round(wall, 3),
                "recognize": round(recognize, 3),
                "pipeline_total": round(float(timings.get("total", 0.0)), 3),
                "startup": round(wall - recognize, 3),
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    default = sorted((DEFAULT_DATA / "handwriting" / "notes_scheidl").glob("*.png"))
    parser.add_argument("file", type=Path, nargs="?", default=default[0] if default else None)
    parser.add_argument("--mode", default="handwritten")
    parser.add_argument("--lang", default="eng")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--cold-cache", action="store_true", help="an empty word-data cache for every run"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.file is None:
        raise SystemExit("no file given and no notes_scheidl image found")
    runs = measure(
        args.file, mode=args.mode, languages=args.lang, runs=args.runs, cold_cache=args.cold_cache
    )
    summary = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    for r in runs:
        print(json.dumps(r))
    print("median", json.dumps(summary))
    meta = run_metadata()
    path = write_json(
        {
            **meta,
            "file": str(args.file),
            "mode": args.mode,
            "cold_cache": args.cold_cache,
            "runs": runs,
            "median": summary,
        },
        out=args.out,
        stem="startup",
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
