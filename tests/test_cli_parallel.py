"""``ocrwatch ocr --jobs``: pages and files read on several processes, answers as before."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from explosive_engine import register
from imaging import render_lines
from test_cli import ocrwatch

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]


def make_pdf(path: Path, lines: list[str]) -> Path:
    """A PDF of one page per line of text (150 dpi), like a scanner's."""
    pages = [render_lines([line], size=36).convert("RGB") for line in lines]
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=150.0)
    return path


def pythonpath(root: Path) -> dict[str, str]:
    """The environment that registers the explosive engine for a subprocess."""
    here = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join(p for p in (register(root), here) if p)}


class TestPageOrder:
    """A multi-page PDF read by two workers comes back in page order."""

    def test_pages_in_order(self, tmp_path: Path) -> None:
        """Each page's own words, in order, on stdout and in the sidecar."""
        lines = [f"Page {n} says {word}" for n, word in enumerate(WORDS, start=1)]
        pdf = make_pdf(tmp_path / "seven.pdf", lines)
        proc = ocrwatch("ocr", str(pdf), "--mode", "printed", "--jobs", "2")
        assert proc.returncode == 0, proc.stderr
        assert [p.strip() for p in proc.stdout.split("\f")] == lines
        out = tmp_path / "out"
        proc = ocrwatch("ocr", str(pdf), "--mode", "printed", "-j", "2", "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert [p.strip() for p in (out / "seven.pdf.txt").read_text().split("\f")] == lines
        manifest = json.loads((out / "seven.pdf.json").read_text())
        assert [p["number"] for p in manifest["page_details"]] == list(range(1, 8))

    def test_files_in_order(self, tmp_path: Path) -> None:
        """Several files: printed under their headers in the order given."""
        pdfs = [
            make_pdf(tmp_path / f"{word}.pdf", [f"{word} one", f"{word} two"]) for word in WORDS[:3]
        ]
        proc = ocrwatch("ocr", *map(str, pdfs), "--mode", "printed", "-j", "2")
        assert proc.returncode == 0, proc.stderr
        headers = [ln for ln in proc.stdout.splitlines() if ln.startswith("==> ")]
        assert headers == [f"==> {p} <==" for p in pdfs]
        for word in WORDS[:3]:
            assert f"{word} one\f{word} two" in proc.stdout

    def test_bad_jobs(self, tmp_path: Path) -> None:
        """--jobs 0 is a usage error."""
        proc = ocrwatch("ocr", str(tmp_path / "x.pdf"), "--jobs", "0")
        assert proc.returncode == 2
        assert "--jobs" in proc.stderr


class TestPlan:
    """How documents are cut into ranges for the workers."""

    def test_ranges_cover_every_page_once(self, tmp_path: Path) -> None:
        """Short PDFs go page by page, long ones in even ranges; images and bad files whole."""
        from ocrwatch.recognition.parallel import plan
        from ocrwatch.settings.model import load_settings

        settings = load_settings(overrides={})
        short = make_pdf(tmp_path / "short.pdf", [f"page {n}" for n in range(1, 4)])
        long = make_pdf(tmp_path / "long.pdf", [f"page {n}" for n in range(1, 21)])
        image = tmp_path / "one.png"
        render_lines(["one page"], size=36).save(image)
        units = plan([short, long, image, tmp_path / "missing.pdf"], settings=settings, jobs=2)
        assert [u.pages for u in units[0]] == [(1, 1), (2, 2), (3, 3)]
        assert [u.pages for u in units[1]] == [(n, n + 1) for n in range(1, 21, 2)]
        assert [(u.pages, u.count) for u in units[2]] == [(None, 1)]
        assert [(u.pages, u.count) for u in units[3]] == [(None, 1)]
        assert [u.index for doc in units for u in doc[:1]] == [0, 1, 2, 3]
        whole = plan([long], settings=settings, jobs=2, split=False)
        assert [(u.pages, u.count) for u in whole[0]] == [(None, 20)]


class TestPageFailure:
    """A page that fails in a parallel read is reported as the sequential read reports it."""

    @pytest.fixture
    def marked(self, tmp_path: Path) -> Path:
        """Six pages; the 4th (and the 6th) say EXPLODE."""
        lines = ["Page one", "Page two", "Page three", "EXPLODE four", "Page five", "EXPLODE six"]
        return make_pdf(tmp_path / "marked.pdf", lines)

    def test_same_error_as_sequential(self, marked: Path, tmp_path: Path) -> None:
        """Same error line (the first bad page's) and exit code with 1 and 2 jobs; others done."""
        good = make_pdf(tmp_path / "good.pdf", ["Good page one", "Good page two"])
        env = pythonpath(tmp_path / "site")
        runs = {}
        for jobs in ("1", "2"):
            out = tmp_path / f"out{jobs}"
            runs[jobs] = proc = ocrwatch(
                "ocr", str(marked), str(good), "-e", "explosive", "-m", "printed",
                "-j", jobs, "-o", str(out), env=env,
            )  # fmt: skip
            assert proc.returncode == 6, proc.stderr
            assert (out / "good.pdf.txt").read_text().split("\f")[1].strip() == "Good page two"
            assert not (out / "marked.pdf.txt").exists()
        errors = {
            jobs: [ln for ln in proc.stderr.splitlines() if ln.startswith("ocrwatch: error:")]
            for jobs, proc in runs.items()
        }
        assert (
            errors["1"]
            == errors["2"]
            == ["ocrwatch: error: refused a page that says 'EXPLODE four'"]
        ), runs["2"].stderr

    def test_stdout_unchanged(self, marked: Path, tmp_path: Path) -> None:
        """One file to stdout: nothing printed for it, exit 6, as with one job."""
        env = pythonpath(tmp_path / "site")
        proc = ocrwatch("ocr", str(marked), "-e", "explosive", "-m", "printed", "-j", "2", env=env)
        assert proc.returncode == 6, proc.stderr
        assert proc.stdout == ""
