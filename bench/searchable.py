"""Searchable PDF side by side: ocrwatch ``--outputs pdf`` versus OCRmyPDF on the same files.

Inputs, made at run time from ``../shared/eval/printed/pages`` (read, never copied into the
repository): each page image as it is (PNG), each page as a one-page image-only PDF (the PNG
wrapped losslessly by img2pdf at 300 dpi, like a scanner's PDF), and all pages as one
multi-page PDF. Both tools run in this process with their engines warm (one untimed run
first), one file at a time, Tesseract 5 with ``eng``:

- ocrwatch: ``recognize_file`` (mode printed) + ``write_outputs(formats=[pdf])``;
- OCRmyPDF: ``ocrmypdf.ocr(..., output_type="pdf", jobs=1)`` (``pdfa``, its default, needs
  Ghostscript, which this machine does not have; ``image_dpi=300`` for the PNGs).

Reported per input kind and tool: median seconds per file, total output bytes against total
input bytes, and the CER / order-tolerant CER of ``pdftotext`` on the output PDF against the
ground truth (the text layer a viewer's search and copy see), and the bag-of-words recall
(share of the ground truth's words found in it, order aside). Usage::

    python -m bench.searchable            # about 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import img2pdf
from rich.console import Console
from rich.table import Table

from bench import metrics
from bench.accuracy import Item, items_in
from bench.common import DEFAULT_DATA, engine_environment, run_metadata, write_json

Tool = Callable[[Path, Path], None]


def pdftotext(pdf: Path) -> str:
    """The text layer of ``pdf`` as poppler extracts it (reading order, no layout)."""
    args = ["pdftotext", "-enc", "UTF-8", str(pdf), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def ocrwatch_tool() -> tuple[Tool, Callable[[], None]]:
    """Return (run, close): run writes the searchable PDF of ``src`` to ``dst``."""
    from ocrwatch.engines import EngineCache
    from ocrwatch.outputs.writer import write_outputs
    from ocrwatch.recognition.pipeline import recognize_file
    from ocrwatch.settings.choices import OutputFormat
    from ocrwatch.settings.model import load_settings

    settings = load_settings(overrides={"mode": "printed", "languages": "eng"})
    cache = EngineCache(settings)

    def run(src: Path, dst: Path) -> None:
        result = recognize_file(src, settings=settings, engines=cache)
        paths = write_outputs(
            result, txt_path=dst.with_suffix(".txt"), source_id=str(src), formats=[OutputFormat.PDF]
        )
        paths.extra[OutputFormat.PDF].replace(dst)

    return run, cache.close


def ocrmypdf_tool(src: Path, dst: Path) -> None:
    """OCRmyPDF with a PDF (not PDF/A) output, one job."""
    import ocrmypdf

    extra: dict[str, Any] = {"image_dpi": 300} if src.suffix == ".png" else {}
    ocrmypdf.ocr(src, dst, output_type="pdf", language=["eng"], progress_bar=False, jobs=1, **extra)


def make_inputs(items: Sequence[Item], folder: Path) -> dict[str, list[tuple[Path, str]]]:
    """Return input kind -> [(file, ground truth)]: PNGs, one-page PDFs, one multi-page PDF."""
    layout = img2pdf.get_fixed_dpi_layout_fun((300, 300))
    pdfs = []
    for it in items:
        pdf = folder / f"{it.image.stem}.pdf"
        pdf.write_bytes(img2pdf.convert(str(it.image), layout_fun=layout))
        pdfs.append((pdf, it.truth))
    multi = folder / "all-pages.pdf"
    multi.write_bytes(img2pdf.convert([str(it.image) for it in items], layout_fun=layout))
    return {
        "PNG page": [(it.image, it.truth) for it in items],
        "1-page image PDF": pdfs,
        f"{len(items)}-page image PDF": [(multi, "\n".join(it.truth for it in items))],
    }


def measure(tool: Tool, files: list[tuple[Path, str]], out: Path) -> dict[str, Any]:
    """Run ``tool`` on every file; return time, sizes and text-layer scores."""
    times, scores, size_in, size_out = [], [], 0, 0
    for src, truth in files:
        dst = out / f"{src.name}.out.pdf"
        t0 = time.perf_counter()
        tool(src, dst)
        times.append(time.perf_counter() - t0)
        scores.append(metrics.score(truth, pdftotext(dst)))
        size_in += src.stat().st_size
        size_out += dst.stat().st_size
    tot = metrics.total(scores)
    return {
        "s_per_file": round(statistics.median(times), 3),
        "bytes_in": size_in,
        "bytes_out": size_out,
        "cer": round(tot.cer, 4),
        "cer_ot": round(tot.cer_ot, 4),
        "bow_recall": round(tot.bow_recall, 4),
        "n": len(files),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison, print the table, write bench/results/searchable.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.searchable")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    engine_environment()
    items = items_in(args.data / "printed" / "pages")
    ours, close = ocrwatch_tool()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="ocrwatch-searchable-") as tmp:
            inputs = make_inputs(items, Path(tmp))
            for name, tool in (("ocrwatch", ours), ("ocrmypdf", ocrmypdf_tool)):
                warm = Path(tmp) / f"warm-{name}"
                warm.mkdir()
                tool(items[0].image, warm / "warm.pdf")  # engines and fonts loaded, untimed
                for kind, files in inputs.items():
                    out = Path(tmp) / f"{name}-{len(rows)}"
                    out.mkdir()
                    rows.append({"tool": name, "input": kind, **measure(tool, files, out)})
    finally:
        close()
    table = Table(
        "input", "tool", "s/file", "bytes in", "bytes out", "CER", "CER ot", "BoW recall", "n"
    )
    for r in sorted(rows, key=lambda r: (r["input"], r["tool"])):
        table.add_row(
            r["input"], r["tool"], f"{r['s_per_file']:.2f}", str(r["bytes_in"]),
            str(r["bytes_out"]), f"{r['cer']:.4f}", f"{r['cer_ot']:.4f}",
            f"{r['bow_recall']:.3f}", str(r["n"]),
        )  # fmt: skip
    Console().print(table)
    path = write_json({"meta": run_metadata(), "rows": rows}, out=None, stem="searchable")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
