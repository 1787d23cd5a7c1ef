"""Speed benchmark: engine time per page, daemon overhead, latency, throughput, memory, idle CPU.

Parts (each runs alone with ``--only NAME[,NAME]``):

- ``engines``: median seconds per page per engine, the pipeline called directly (warm).
- ``overhead``: the daemon (``python -m ocrwatch run``, 1 worker, quiet period 0.2 s) versus
  the pipeline in a loop on the same files; overhead = (daemon wall - quiet period) / direct
  wall - 1. Target <= 5 %.
- ``latency``: one page dropped into a warm daemon's inbox until its sidecar exists, with the
  default quiet period and with 0.2 s. Target <= engine time + 0.5 s (+ the quiet period).
- ``throughput``: pages per minute with OCRWATCH_WORKERS=1 and 2.
- ``backlog``: 10,000 small files already in the inbox at start: peak RSS summed over the
  daemon's process tree (target <= 500 MB) and time until the start-up scan is done.
- ``idle``: CPU used by an idle, warm daemon over 30 s (psutil cpu_times of the tree).
- ``ocrmypdf``: ``ocrmypdf --sidecar`` (its Python API, output type none) versus
  ``ocrwatch`` printed mode on the same printed eval images: time and CER.

Example: ``python -m bench.speed --quick`` or ``python -m bench.speed --only latency``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from bench import metrics
from bench.accuracy import Item, items_in
from bench.common import DEFAULT_DATA, engine_environment, run_metadata, write_json

__all__ = ["PARTS", "Daemon", "main"]

console = Console(stderr=True)
POLL = 0.02
#: The daemon's log event that says the start-up scan is complete (daemon.py).
SCAN_DONE = ("watch.rescanned", "startup")


# --- helpers -------------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = POLL
) -> float:
    """Poll ``condition`` until true; return seconds waited. Raises TimeoutError."""
    t0 = time.perf_counter()
    while not condition():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.perf_counter() - t0


def _settings(**overrides: Any) -> Any:
    from ocrwatch.settings.model import load_settings

    return load_settings(overrides=overrides)


def _sidecar(rel: Path, outbox: Path) -> Path:
    from ocrwatch.outputs.writer import sidecar_path

    return sidecar_path(rel, out_dir=outbox)


class Daemon:
    """``python -m ocrwatch run`` as a subprocess on its own inbox/outbox under ``root``."""

    def __init__(self, root: Path, *, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.inbox, self.outbox, self.stage = root / "inbox", root / "outbox", root / "stage"
        for d in (self.inbox, self.outbox, self.stage):
            d.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "OCRWATCH_LOG_FORMAT": "json",
            "OCRWATCH_STATE_DIR": str(root / "state"),
            "OCRWATCH_ARCHIVE": str(root / "archive"),
            "OCRWATCH_QUARANTINE": str(root / "quarantine"),
            **(env or {}),
        }
        self.log_path = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        """Start the daemon."""
        cmd = [sys.executable, "-m", "ocrwatch", "run", "--inbox", str(self.inbox)]
        cmd += ["--outbox", str(self.outbox)]
        self._log = self.log_path.open("wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        """Return whether the daemon process is running."""
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[psutil.Process]:
        """Return the daemon and all its descendants."""
        if not self.alive():
            return []
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        """Return the resident memory of the whole process tree in bytes."""
        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        """Return user+system CPU seconds used so far by the tree (children included)."""
        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def drop(self, src: Path, name: str | None = None) -> Path:
        """Place a copy of ``src`` in the inbox atomically (staged, then renamed); return it."""
        staged = self.stage / (name or src.name)
        shutil.copyfile(src, staged)
        target = self.inbox / staged.name
        os.replace(staged, target)
        return target

    def done(self, rel: Path) -> bool:
        """Return whether ``rel`` (relative to the inbox) has its sidecar, or was quarantined."""
        if _sidecar(rel, self.outbox).exists():
            return True
        q = self.root / "quarantine"
        return q.exists() and any(q.rglob(rel.name + "*"))

    def wait_done(self, rels: Sequence[Path], *, timeout: float) -> float:
        """Wait until every file in ``rels`` is done; return seconds waited."""
        pending = list(rels)

        def check() -> bool:
            if not self.alive():
                raise RuntimeError(f"daemon exited; see {self.log_path}")
            pending[:] = [r for r in pending if not self.done(r)]
            return not pending

        return wait_for(check, timeout=timeout, what=f"{len(rels)} sidecars")

    def events(self) -> Iterator[dict[str, Any]]:
        """Yield the daemon's JSON log events so far (other lines are skipped)."""
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    yield event

    def stop(self) -> int | None:
        """Stop with SIGTERM (SIGKILL after 60 s); return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def daemon(env: dict[str, str], *, warm: Sequence[Path] = ()) -> Iterator[Daemon]:
    """Run a daemon in a temp folder; with ``warm`` files, wait until they are processed."""
    with tempfile.TemporaryDirectory(prefix="ocrwatch-speed-") as tmp:
        d = Daemon(Path(tmp), env=env)
        d.start()
        try:
            rels = [Path(d.drop(p, f"warm{i}{p.suffix}").name) for i, p in enumerate(warm)]
            if rels:
                d.wait_done(rels, timeout=300)
            yield d
        finally:
            code = d.stop()
            if code not in (0, None):
                console.print(f"[yellow]daemon exit code {code}; log {d.log_path}")


def _direct_times(paths: Sequence[Path], *, settings: Any) -> list[float]:
    """Return seconds per file of the pipeline called directly (warm: the first is repeated)."""
    from ocrwatch.engines import EngineCache
    from ocrwatch.recognition.pipeline import recognize_file

    cache = EngineCache(settings)
    try:
        recognize_file(paths[0], settings=settings, engines=cache)  # load models
        out = []
        for p in paths:
            t0 = time.perf_counter()
            recognize_file(p, settings=settings, engines=cache)
            out.append(time.perf_counter() - t0)
        return out
    finally:
        cache.close()


@dataclass(frozen=True)
class Files:
    """The inputs of a run."""

    handwritten: list[Item]
    printed: list[Item]
    printed_lines: list[Item]


def load_files(data: Path, *, quick: bool) -> Files:
    """Return the eval files used for timing."""
    iam = items_in(data / "handwriting" / "iam_forms")
    return Files(
        handwritten=iam[: 3 if quick else 8],
        printed=items_in(data / "printed" / "pages"),
        printed_lines=items_in(data / "printed" / "lines"),
    )


# --- parts ---------------------------------------------------------------------------------


def part_engines(files: Files, *, quick: bool) -> list[dict[str, Any]]:
    """(a) Median s/page per engine on printed pages and handwritten pages."""
    rows = []
    for engine in ("tesseract", "paddle"):
        for kind, items in (("printed", files.printed), ("handwritten", files.handwritten)):
            settings = _settings(engine=engine, mode=kind)
            times = _direct_times([it.image for it in items], settings=settings)
            rows.append(
                {
                    "part": "engines",
                    "what": f"{engine} on {kind} pages",
                    "value": round(statistics.median(times), 3),
                    "unit": "s/page (median)",
                    "n": len(times),
                }
            )
    return rows


def part_overhead(files: Files, *, quick: bool) -> list[dict[str, Any]]:
    """(b) Daemon wall time versus the pipeline in a loop on the same files."""
    paths = [it.image for it in files.handwritten]
    quiet = 0.2
    direct = sum(_direct_times(paths, settings=_settings(mode="handwritten")))
    env = {"OCRWATCH_MODE": "handwritten", "OCRWATCH_WORKERS": "1", "OCRWATCH_QUIET_PERIOD": "0.2"}
    with daemon(env, warm=paths[:1]) as d:
        t0 = time.perf_counter()
        for p in paths:
            d.drop(p)
        d.wait_done([Path(p.name) for p in paths], timeout=600)
        wall = time.perf_counter() - t0
    overhead = (wall - quiet) / direct - 1
    return [
        {"part": "overhead", "what": "direct pipeline loop", "value": round(direct, 2),
         "unit": "s", "n": len(paths)},
        {"part": "overhead", "what": "daemon, drop to last sidecar", "value": round(wall, 2),
         "unit": "s", "n": len(paths)},
        {"part": "overhead", "what": "daemon overhead (quiet period subtracted)",
         "value": round(100 * overhead, 1), "unit": "% (target <= 5)", "n": len(paths)},
    ]  # fmt: skip


def part_latency(files: Files, *, quick: bool) -> list[dict[str, Any]]:
    """(c) Drop-to-sidecar latency of one page, default and small quiet period."""
    page = files.handwritten[0].image
    engine = statistics.median(_direct_times([page] * 3, settings=_settings(mode="handwritten")))
    default_quiet = _settings().quiet_period
    rows = [{"part": "latency", "what": "pipeline alone, same page", "value": round(engine, 2),
             "unit": "s", "n": 3}]  # fmt: skip
    for quiet in (default_quiet, 0.2):
        env = {"OCRWATCH_MODE": "handwritten", "OCRWATCH_WORKERS": "1",
               "OCRWATCH_QUIET_PERIOD": str(quiet)}  # fmt: skip
        lat = []
        with daemon(env, warm=[page]) as d:
            for i in range(2 if quick else 3):
                name = f"drop{i}{page.suffix}"
                t0 = time.perf_counter()
                d.drop(page, name)
                d.wait_done([Path(name)], timeout=300)
                lat.append(time.perf_counter() - t0)
        med = statistics.median(lat)
        rows.append({"part": "latency", "what": f"drop -> sidecar, quiet_period {quiet:g} s",
                     "value": round(med, 2), "unit": "s (median)", "n": len(lat)})  # fmt: skip
        rows.append({"part": "latency", "what": f"  minus engine and quiet period ({quiet:g} s)",
                     "value": round(med - engine - quiet, 2), "unit": "s (target <= 0.5)",
                     "n": len(lat)})  # fmt: skip
    return rows


def part_throughput(files: Files, *, quick: bool) -> list[dict[str, Any]]:
    """(d) Pages per minute with 1 and 2 workers."""
    paths = [it.image for it in files.handwritten]
    rows = []
    for workers in (1, 2):
        env = {"OCRWATCH_MODE": "handwritten", "OCRWATCH_WORKERS": str(workers),
               "OCRWATCH_QUIET_PERIOD": "0.2"}  # fmt: skip
        with daemon(env, warm=paths[:workers]) as d:
            t0 = time.perf_counter()
            for i, p in enumerate(paths):
                d.drop(p, f"t{i}{p.suffix}")
            d.wait_done([Path(f"t{i}{p.suffix}") for i, p in enumerate(paths)], timeout=900)
            wall = time.perf_counter() - t0
        rows.append({"part": "throughput", "what": f"{workers} worker(s), handwritten pages",
                     "value": round(60 * len(paths) / wall, 1), "unit": "pages/min",
                     "n": len(paths)})  # fmt: skip
    return rows


def _small_files(folder: Path, count: int) -> list[Path]:
    """Create ``count`` small PNGs (a rendered word each) in 100 subfolders; return them."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 24)
    out = []
    for i in range(count):
        sub = folder / f"d{i // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        img = Image.new("L", (220, 48), "white")
        ImageDraw.Draw(img).text((8, 10), f"note {i}", fill="black", font=font)
        path = sub / f"s{i:05d}.png"
        img.save(path, optimize=False, compress_level=1)
        out.append(path)
    return out


def part_backlog(files: Files, *, quick: bool) -> list[dict[str, Any]]:
    """(e) Peak RSS of the tree and start-up scan time with 10,000 files already waiting."""
    count = 10_000
    window = 60.0 if quick else 120.0
    with tempfile.TemporaryDirectory(prefix="ocrwatch-backlog-") as tmp:
        d = Daemon(Path(tmp), env={"OCRWATCH_MODE": "printed", "OCRWATCH_QUIET_PERIOD": "0.2"})
        _small_files(d.inbox, count)
        peak, scan_done = 0, None
        d.start()
        try:
            while time.perf_counter() - d.started < window and d.alive():
                peak = max(peak, d.rss())
                if scan_done is None and any(
                    (e.get("event"), e.get("why")) == SCAN_DONE for e in d.events()
                ):
                    scan_done = time.perf_counter() - d.started
                time.sleep(0.2)
            processed = sum(1 for _ in d.outbox.rglob("*.txt"))
        finally:
            d.stop()
    return [
        {"part": "backlog", "what": f"peak RSS of daemon tree, {count} files waiting, first "
         f"{window:.0f} s", "value": round(peak / 2**20), "unit": "MB (target <= 500)", "n": 1},
        {"part": "backlog", "what": "start-up scan done after (from process start)",
         "value": None if scan_done is None else round(scan_done, 2), "unit": "s", "n": 1},
        {"part": "backlog", "what": f"files done within {window:.0f} s", "value": processed,
         "unit": "files", "n": 1},
    ]  # fmt: skip


def part_idle(files: Files, *, quick: bool) -> list[dict[str, Any]]:
    """(f) CPU share used by a warm, idle daemon."""
    span = 10.0 if quick else 30.0
    env = {"OCRWATCH_MODE": "handwritten"}
    with daemon(env, warm=[files.handwritten[0].image]) as d:
        c0, t0 = d.cpu_seconds(), time.perf_counter()
        wait_for(lambda: time.perf_counter() - t0 >= span, timeout=span + 5, what="idle span",
                 interval=0.5)  # fmt: skip
        cpu = d.cpu_seconds() - c0
        wall = time.perf_counter() - t0
        rss = d.rss()
    return [
        {"part": "idle", "what": f"idle daemon CPU over {wall:.0f} s", "value":
         round(100 * cpu / wall, 2), "unit": "% of one core", "n": 1},
        {"part": "idle", "what": "idle daemon RSS (tree, engines loaded)", "value":
         round(rss / 2**20), "unit": "MB", "n": 1},
    ]  # fmt: skip


def part_ocrmypdf(files: Files, *, quick: bool) -> list[dict[str, Any]]:
    """(g) OCRmyPDF --sidecar versus ocrwatch printed mode: time and CER."""
    import ocrmypdf

    items = files.printed + files.printed_lines[: 5 if quick else None]
    rows = []
    scores, times = [], []
    with tempfile.TemporaryDirectory(prefix="ocrwatch-ocrmypdf-") as tmp:
        # OCRmyPDF refuses images with an alpha channel (UnsupportedImageFormatError): both
        # tools get the same alpha-free copy of those.
        items = [_without_alpha(it, Path(tmp)) for it in items]
        for it in items:
            side = Path(tmp) / (it.image.name + ".txt")
            t0 = time.perf_counter()
            ocrmypdf.ocr(
                it.image, "-", sidecar=side, output_type="none", image_dpi=300,
                language=["eng"], progress_bar=False, jobs=1,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
            scores.append(metrics.score(it.truth, side.read_text(encoding="utf-8")))
        ours = _direct_items(items, settings=_settings(mode="printed"))
    for name, sc, ts in (("ocrmypdf --sidecar", scores, times), ("ocrwatch printed", *ours)):
        tot = metrics.total(sc)
        rows.append(
            {
                "part": "ocrmypdf",
                "what": f"{name}: CER / CER ot / BoW recall",
                "value": f"{tot.cer:.4f} / {tot.cer_ot:.4f} / {tot.bow_recall:.3f}",
                "unit": "",
                "n": len(items),
            }
        )
        rows.append(
            {
                "part": "ocrmypdf",
                "what": f"{name}: time per image",
                "value": round(statistics.median(ts), 3),
                "unit": "s (median)",
                "n": len(items),
            }
        )
    return rows  # fmt: skip


def _without_alpha(item: Item, folder: Path) -> Item:
    """Return ``item``, or a copy of it flattened onto white when its image has alpha."""
    from PIL import Image

    with Image.open(item.image) as img:
        if "A" not in img.getbands() and "transparency" not in img.info:
            return item
        rgba = img.convert("RGBA")
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    target = folder / f"noalpha-{item.image.stem}.png"
    flat.convert("L").save(target, dpi=(300, 300))
    return Item(target, item.truth)


def _direct_items(items: Sequence[Item], *, settings: Any) -> tuple[list[Any], list[float]]:
    from ocrwatch.engines import EngineCache
    from ocrwatch.recognition.pipeline import recognize_file

    cache = EngineCache(settings)
    scores, times = [], []
    try:
        recognize_file(items[0].image, settings=settings, engines=cache)
        for it in items:
            t0 = time.perf_counter()
            result = recognize_file(it.image, settings=settings, engines=cache)
            times.append(time.perf_counter() - t0)
            scores.append(metrics.score(it.truth, result.text))
    finally:
        cache.close()
    return scores, times


PARTS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "engines": part_engines,
    "overhead": part_overhead,
    "latency": part_latency,
    "throughput": part_throughput,
    "backlog": part_backlog,
    "idle": part_idle,
    "ocrmypdf": part_ocrmypdf,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (1 when a part failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="eval data root")
    parser.add_argument("--quick", action="store_true", help="fewer files, shorter spans")
    parser.add_argument(
        "--only",
        type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
        default=list(PARTS),
        help=f"parts: {', '.join(PARTS)}",
    )
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    args = parser.parse_args(argv)  # fmt: skip
    unknown = [p for p in args.only if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; valid: {', '.join(PARTS)}")

    engine_environment()
    meta = run_metadata()
    files = load_files(args.data, quick=args.quick)
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for name in args.only:
        console.print(f"[bold]{name}[/] ...")
        try:
            rows += PARTS[name](files, quick=args.quick)
        except Exception as exc:  # report the part as failed, run the others
            failed[name] = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]{name} failed: {failed[name]}")
    t = Table(title="ocrwatch speed" + (" (quick)" if args.quick else ""))
    for col in ("part", "what", "value", "unit", "n"):
        t.add_column(col, justify="right" if col in ("value", "n") else "left")
    for r in rows:
        t.add_row(r["part"], r["what"], str(r["value"]), r["unit"], str(r["n"]))
    out_console = Console(width=max(Console().width, 140))
    out_console.print(t)
    path = write_json({**meta, "rows": rows, "failed": failed}, out=args.out, stem="speed")
    out_console.print(f"results: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
