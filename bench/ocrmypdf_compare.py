"""Side by side with OCRmyPDF on one 10-page scanned PDF: wall, CPU, peak memory, CER.

The PDF is made at run time from ``../shared/eval/printed/pages`` (read, never copied into
the repository): the four page scans in turn until there are ``--pages`` pages, each
wrapped losslessly at 300 dpi by img2pdf, like a scanner's image PDF. Its ground truth is
the pages' ground truths in the same order. Each round runs, in an order that rotates from
round to round (interleaved, so a change in the machine's load hits every tool alike):

- ``ocrmypdf``: ``ocrmypdf -l eng --output-type pdf --force-ocr --sidecar OUT.txt IN OUT``
  (its default ``--jobs``: every core; Debian's ghostscript installed);
- ``ocrwatch ocr``: ``ocrwatch ocr IN -o DIR --outputs pdf --mode printed -l eng`` (default
  ``--jobs``: from CPUs and memory);
- ``daemon``: ``ocrwatch run`` with the local pool (``--workers``, default from CPUs and
  memory), ``--outputs pdf``, mode printed, ``quiet_period`` 0.5 s; the PDF is renamed into
  the inbox once the daemon is ready and the wall time is from that rename to the sidecar
  ``.txt`` (the outputs are written as one set, the searchable PDF first); CPU and peak
  memory are the whole daemon run's, start-up and stop included.

Every command runs as a child of this process and is reaped with ``wait4``: CPU is user +
system time of the command and every process it waited for; peak memory is the largest
resident set among them (``ru_maxrss``: the largest process, not the sum). CER is on the
text sidecar against the ground truth (bench/metrics.py; strict and order-tolerant).
Usage::

    python -m bench.ocrmypdf_compare               # 3 rounds, about 4 min on 2 quiet cores
    python -m bench.ocrmypdf_compare --rounds 5 --tools ocrmypdf,ocr
    python -m bench.ocrmypdf_compare --set preprocess.printed.upscale=false
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import img2pdf
from rich.console import Console
from rich.table import Table

from bench import metrics
from bench.accuracy import items_in
from bench.common import DEFAULT_DATA, REPO_ROOT, run_metadata, write_json

TOOLS = ("ocrmypdf", "ocr", "daemon")


@dataclass(frozen=True, slots=True)
class Run:
    """One timed command: wall seconds, CPU seconds, largest process's peak RSS, its text."""

    tool: str
    wall: float
    cpu: float
    peak_mb: float
    text: str


def make_pdf(data: Path, folder: Path, *, pages: int) -> tuple[Path, str]:
    """Return (the scanned PDF of ``pages`` pages, its ground truth in page order)."""
    items = items_in(data / "printed" / "pages")
    chosen = [items[i % len(items)] for i in range(pages)]
    pdf = folder / f"scan-{pages}.pdf"
    layout = img2pdf.get_fixed_dpi_layout_fun((300, 300))
    pdf.write_bytes(img2pdf.convert([str(it.image) for it in chosen], layout_fun=layout))
    return pdf, "\n".join(it.truth.rstrip("\n") for it in chosen) + "\n"


#: ``--set KEY=VALUE`` settings for ocrwatch's runs (environment form, OCRWATCH_A__B=VALUE).
SETTINGS: dict[str, str] = {}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRWATCH_")}
    env.update(SETTINGS)
    env.setdefault("TESSDATA_PREFIX", "/usr/share/tesseract-ocr/5/tessdata")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """Wait for ``proc``; return (exit status, CPU seconds, peak RSS in MB) of its tree."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run_command(tool: str, args: list[str], *, sidecar: Path, log: Path) -> Run:
    """Run ``args`` to the end; return its Run (``sidecar`` holds the text it wrote)."""
    with log.open("ab") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=_env())
        code, cpu, peak = _reap(proc)
        wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{tool} failed with exit code {code}; see {log}")
    return Run(tool, wall, cpu, peak, sidecar.read_text(encoding="utf-8"))


def ocrmypdf(pdf: Path, out: Path, log: Path) -> Run:
    """OCRmyPDF as a user runs it: searchable PDF plus a text sidecar, every core."""
    exe = Path(sys.executable).with_name("ocrmypdf")
    side = out / "ocrmypdf.txt"
    args = [str(exe), "-l", "eng", "--output-type", "pdf", "--force-ocr", "--sidecar", str(side)]
    return run_command(
        "ocrmypdf", [*args, str(pdf), str(out / "ocrmypdf.pdf")], sidecar=side, log=log
    )


def ocrwatch_ocr(pdf: Path, out: Path, log: Path) -> Run:
    """``ocrwatch ocr`` with a searchable PDF: the text sidecar is written beside it."""
    args = [sys.executable, "-m", "ocrwatch", "ocr", str(pdf), "-o", str(out)]
    args += ["--outputs", "pdf", "--mode", "printed", "-l", "eng", "--log-level", "warning"]
    return run_command("ocr", args, sidecar=out / f"{pdf.name}.txt", log=log)


def daemon(pdf: Path, out: Path, log: Path, *, timeout: float = 600) -> Run:
    """``ocrwatch run``: from the rename into the inbox to the sidecar; CPU of the whole run."""
    inbox, outbox = out / "inbox", out / "outbox"
    inbox.mkdir()
    outbox.mkdir()
    staged = out / pdf.name
    shutil.copyfile(pdf, staged)  # same filesystem: the rename into the inbox is atomic
    env = {**_env(), "OCRWATCH_QUIET_PERIOD": "0.5", "OCRWATCH_LOG_FORMAT": "json"}
    args = [sys.executable, "-m", "ocrwatch", "run", "--inbox", str(inbox), "--outbox"]
    args += [str(outbox), "--state-dir", str(out / "state"), "--outputs", "pdf", "-m", "printed"]
    args += ["-l", "eng"]
    sidecar = outbox / f"{pdf.name}.txt"
    with log.open("ab") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        _wait(lambda: '"event": "daemon.ready"' in log.read_text(errors="replace"), proc, timeout)
        t0 = time.perf_counter()
        staged.rename(inbox / pdf.name)
        _wait(sidecar.exists, proc, timeout)
        wall = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    code, cpu, peak = _reap(proc)
    if code != 0:
        raise SystemExit(f"daemon exited with {code}; see {log}")
    manifest = json.loads(sidecar.with_suffix(".json").read_text(encoding="utf-8"))
    ranges = len(manifest.get("pages_processed_by", [None]))
    print(f"  daemon: {ranges} page range(s) on the workers", flush=True)
    return Run("daemon", wall, cpu, peak, sidecar.read_text(encoding="utf-8"))


def _wait(done: Any, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"daemon ended or timed out (exit {proc.returncode})")
        time.sleep(0.02)


RUNNERS = {"ocrmypdf": ocrmypdf, "ocr": ocrwatch_ocr, "daemon": daemon}


def summarize(runs: list[Run], truth: str) -> list[dict[str, Any]]:
    """Return one row per tool: medians over its runs, CER of its last text."""
    rows = []
    for tool in dict.fromkeys(r.tool for r in runs):
        mine = [r for r in runs if r.tool == tool]
        score = metrics.score(truth, mine[-1].text)
        rows.append(
            {
                "tool": tool,
                "wall_s": round(statistics.median(r.wall for r in mine), 2),
                "wall_all": [round(r.wall, 2) for r in mine],
                "cpu_s": round(statistics.median(r.cpu for r in mine), 2),
                "peak_mb": round(max(r.peak_mb for r in mine), 1),
                "cer": round(score.cer, 4),
                "cer_ot": round(score.cer_ot, 4),
                "runs": len(mine),
            }
        )
    base = next((r["wall_s"] for r in rows if r["tool"] == "ocrmypdf"), None)
    for row in rows:
        row["vs_ocrmypdf"] = round(row["wall_s"] / base, 2) if base else None
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds, print the table, write bench/results/ocrmypdf_compare-*.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.ocrmypdf_compare")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"of {','.join(TOOLS)}")
    parser.add_argument("--out", type=Path, help="JSON results file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an ocrwatch setting for its runs, dotted (preprocess.printed.upscale=false)",
    )
    args = parser.parse_args(argv)
    for item in args.set:
        key, _, value = item.partition("=")
        SETTINGS["OCRWATCH_" + key.upper().replace(".", "__")] = value
    tools = [t for t in args.tools.split(",") if t]
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tools {sorted(unknown)}")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="ocrwatch-vs-ocrmypdf-") as tmp:
        root = Path(tmp)
        pdf, truth = make_pdf(args.data, root, pages=args.pages)
        log = root / "commands.log"
        for round_ in range(args.rounds):
            order = tools[round_ % len(tools) :] + tools[: round_ % len(tools)]
            for tool in order:
                out = root / f"{tool}-{round_}"
                out.mkdir()
                run = RUNNERS[tool](pdf, out, log)
                print(f"round {round_ + 1} {tool:9} wall {run.wall:6.2f} s  cpu {run.cpu:6.2f} s"
                      f"  peak {run.peak_mb:6.1f} MB", flush=True)  # fmt: skip
                runs.append(run)
    rows = summarize(runs, truth)
    table = Table("tool", "wall s (median)", "x OCRmyPDF", "CPU s", "peak MB", "CER", "CER ot")
    for r in rows:
        table.add_row(
            r["tool"], f"{r['wall_s']:.2f}", f"{r['vs_ocrmypdf'] or 0:.2f}", f"{r['cpu_s']:.2f}",
            f"{r['peak_mb']:.0f}", f"{r['cer']:.4f}", f"{r['cer_ot']:.4f}",
        )  # fmt: skip
    Console().print(table)
    load = os.getloadavg()
    meta = {**run_metadata(), "loadavg_at_end": [round(x, 2) for x in load]}
    path = write_json(
        {"meta": meta, "pages": args.pages, "settings": SETTINGS, "rows": rows},
        out=args.out,
        stem="ocrmypdf_compare",
    )
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
