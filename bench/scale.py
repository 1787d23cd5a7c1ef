"""Many hosts, measured on one: throughput and costs of the Celery executor.

Starts a real redis-server on 127.0.0.1, one coordinator (``ocrwatch run``,
``executor = celery``) and N ``ocrwatch worker`` processes, drops files and times them.

    python -m bench.scale                          # stub engine: 1, 2, 4, 8, 16 workers
    python -m bench.scale --real --workers 1,2     # PP-OCR on IAM pages (../shared/eval)

The stub engine waits a fixed time per page and burns no CPU, so 16 workers on 2 cores
measure what the coordinator and the broker add, not the cores. Reports per worker count:
throughput, its share of linear (workers x the one-worker rate), the coordinator's CPU
seconds per document, and the latency a lone file pays beyond its recognition and quiet
period (queue and bookkeeping).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from bench.common import DEFAULT_DATA, REPO_ROOT, run_metadata, write_json

QUIET = 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise SystemExit(f"bench.scale: timed out waiting for {what}")


@contextmanager
def _redis(workdir: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def _stub_dist(root: Path) -> Path:
    """Make a dist-info that registers bench.stub_engine:SleepEngine as engine 'sleep'."""
    dist = root / "ocrwatch_bench_stub-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ocrwatch-bench-stub\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[ocrwatch.engines]\nsleep = bench.stub_engine:SleepEngine\n"
    )
    return root


def _env(root: Path, broker: str, *, engine: str, mode: str, stub_s: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRWATCH_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(_stub_dist(root / "site")), str(REPO_ROOT)]),
            "OCRWATCH_EXECUTOR": "celery",
            "OCRWATCH_CELERY__BROKER_URL": broker,
            "OCRWATCH_ENGINE": engine,
            "OCRWATCH_MODE": mode,
            "OCRWATCH_LOG_FORMAT": "json",
            "OCRWATCH_LOG_LEVEL": "warning",
            "OCRWATCH_QUIET_PERIOD": str(QUIET),
            "OCRWATCH_CELERY__MAX_IN_FLIGHT": "256",
            "OCRWATCH_BENCH_STUB_SECONDS": str(stub_s),
            "TESSDATA_PREFIX": "/usr/share/tesseract-ocr/5/tessdata",
            "OMP_THREAD_LIMIT": "1",
        }
    )
    return env


def _processed(outbox: Path) -> list[dict[str, object]]:
    log = outbox / "ocrwatch.log.jsonl"
    if not log.exists():
        return []
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return [x for x in lines if x["event"] == "document.processed"]


class Cluster:
    """A coordinator and its workers on temporary folders."""

    def __init__(self, root: Path, env: dict[str, str], workers: int) -> None:
        self.root, self.env = root, env
        self.inbox, self.outbox = root / "in", root / "out"
        self.inbox.mkdir()
        self.outbox.mkdir()
        logs = root / "logs"
        logs.mkdir()
        self.coordinator = self._spawn(
            ["run", "--inbox", str(self.inbox), "--outbox", str(self.outbox),
             "--state-dir", str(root / "state")], logs / "coordinator.log",
        )  # fmt: skip
        self.workers = [
            self._spawn(["worker", "--concurrency", "1"], logs / f"worker-{i}.log")
            for i in range(workers)
        ]
        time.sleep(2.0)

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as fh:
            return subprocess.Popen(
                [sys.executable, "-m", "ocrwatch", *args], stdout=fh, stderr=subprocess.STDOUT,
                env=self.env,
            )  # fmt: skip

    def warm_up(self, sample: Path) -> None:
        """One file per worker, so every worker has loaded its engine before timing."""
        for i in range(len(self.workers)):
            shutil.copy(sample, self.inbox / f"warm{i}{sample.suffix}")
        _wait(lambda: len(_processed(self.outbox)) >= len(self.workers), 600, "warm-up")

    def close(self) -> None:
        for proc in (*self.workers, self.coordinator):
            proc.terminate()
        for proc in (*self.workers, self.coordinator):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _drop(cluster: Cluster, samples: list[Path], count: int) -> float:
    staging = cluster.root / "staging"
    staging.mkdir(exist_ok=True)
    names = []
    for i in range(count):
        src = samples[i % len(samples)]
        name = f"doc{i:05d}{src.suffix}"
        shutil.copy(src, staging / name)
        names.append(name)
    started = time.monotonic()
    for name in names:
        os.rename(staging / name, cluster.inbox / name)
    return started


def measure(
    root: Path,
    broker: str,
    *,
    workers: int,
    docs: int,
    samples: list[Path],
    engine: str,
    mode: str,
    stub_s: float,
) -> dict[str, float]:
    """Time ``docs`` files through ``workers`` workers; return the figures."""
    env = _env(root, broker, engine=engine, mode=mode, stub_s=stub_s)
    cluster = Cluster(root, env, workers)
    try:
        cluster.warm_up(samples[0])
        before = len(_processed(cluster.outbox))
        coord = psutil.Process(cluster.coordinator.pid)
        cpu0 = sum(coord.cpu_times()[:2])
        started = _drop(cluster, samples, docs)
        _wait(lambda: len(_processed(cluster.outbox)) >= before + docs, 3600, "all documents")
        elapsed = time.monotonic() - started
        cpu = sum(coord.cpu_times()[:2]) - cpu0
        steady = _steady_rate(_processed(cluster.outbox)[before:])
        latency = _latency(cluster, samples[0], engine_s=stub_s if engine == "sleep" else None)
        return {
            "workers": workers,
            "documents": docs,
            "seconds": round(elapsed, 2),
            "docs_per_min": round(60 * docs / elapsed, 1),
            "steady_docs_per_min": steady,
            "coordinator_cpu_ms_per_doc": round(1000 * cpu / docs, 1),
            "lone_file_overhead_s": latency,
        }
    finally:
        cluster.close()


def _steady_rate(lines: list[dict[str, object]]) -> float:
    """Return docs/min between the 10th and 90th percent of completions (no ramp, no tail)."""
    from datetime import datetime

    stamps = sorted(datetime.fromisoformat(str(x["timestamp"])).timestamp() for x in lines)
    lo, hi = len(stamps) // 10, len(stamps) * 9 // 10
    span = stamps[hi] - stamps[lo]
    return round(60 * (hi - lo) / span, 1) if span > 0 else float("nan")


def _latency(cluster: Cluster, sample: Path, *, engine_s: float | None) -> float:
    """Median drop-to-log time of 5 lone files, less recognition time and quiet period."""
    costs = []
    for i in range(5):
        before = len(_processed(cluster.outbox))
        t0 = time.monotonic()
        shutil.copy(sample, cluster.inbox / f"lone{i}{sample.suffix}")
        _wait(lambda b=before: len(_processed(cluster.outbox)) > b, 600, "a lone file")
        total = time.monotonic() - t0
        line = _processed(cluster.outbox)[-1]
        recognized = engine_s if engine_s is not None else float(line["duration_s"] or 0)  # type: ignore[arg-type]
        costs.append(total - recognized - QUIET)
    return round(statistics.median(costs), 3)


def _samples(real: bool, data: Path, tmp: Path) -> list[Path]:
    if real:
        pages = sorted((data / "handwriting" / "iam_forms").glob("*.png"))
        if not pages:
            raise SystemExit(f"bench.scale: no IAM pages under {data}")
        return pages
    from PIL import Image, ImageDraw

    image = Image.new("L", (600, 200), 255)
    ImageDraw.Draw(image).text((20, 80), "stub page", fill=0)
    path = tmp / "stub.png"
    image.save(path)
    return [path]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table and write bench/results/scale*.json."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workers", default="1,2,4,8,16", help="worker counts (comma-separated)")
    parser.add_argument("--docs-per-worker", type=int, default=20)
    parser.add_argument("--stub-seconds", type=float, default=1.0, help="stub time per page")
    parser.add_argument("--real", action="store_true", help="PP-OCR on IAM pages, not the stub")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        raise SystemExit(
            "bench.scale: redis-server is not installed (apt-get install redis-server)"
        )
    counts = [int(x) for x in args.workers.split(",")]
    engine, mode = ("paddle", "handwritten") if args.real else ("sleep", "handwritten")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ocrwatch-scale-") as tmpdir:
        tmp = Path(tmpdir)
        samples = _samples(args.real, args.data, tmp)
        for n in counts:
            root = tmp / f"w{n}"
            root.mkdir()
            with _redis(root) as broker:
                row = measure(
                    root, broker, workers=n, docs=n * args.docs_per_worker, samples=samples,
                    engine=engine, mode=mode, stub_s=args.stub_seconds,
                )  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]["docs_per_min"] / rows[0]["workers"]
    steady = rows[0]["steady_docs_per_min"] / rows[0]["workers"]
    print("\nworkers  docs/min  of linear  steady docs/min  of linear  coord ms/doc  lone file s")
    for r in rows:
        r["share_of_linear"] = round(r["docs_per_min"] / (base * r["workers"]), 3)
        r["steady_share_of_linear"] = round(r["steady_docs_per_min"] / (steady * r["workers"]), 3)
        print(
            f"{r['workers']:>7}  {r['docs_per_min']:>8}  {r['share_of_linear']:>9.0%}  "
            f"{r['steady_docs_per_min']:>15}  {r['steady_share_of_linear']:>9.0%}  "
            f"{r['coordinator_cpu_ms_per_doc']:>12}  {r['lone_file_overhead_s']:>11}"
        )
    name = "scale-real" if args.real else "scale"
    path = write_json({"meta": run_metadata(), "engine": engine, "rows": rows}, out=None, stem=name)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
