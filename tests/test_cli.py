"""The ``ocrwatch`` command end to end: real subprocess, real engines, real (bad) files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from imaging import FONT_DIR, render_lines, save

HANDWRITING_FONT = Path("/usr/share/fonts/truetype/fifthhorseman/dkg.ttf")
PRINTED = ["Invoice number 4711", "Payment due in thirty days"]
SPANISH = ["El niño comió mañana", "La reunión es el martes"]


def ocrwatch(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ocrwatch ARGS`` and return the finished process (never raises)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OCRWATCH_")}
    full_env["OCRWATCH_LOG_FORMAT"] = "json"
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=240,
        check=False,
    )


def cer(got: str, want: str) -> float:
    """Character error rate of ``got`` against ``want`` (whitespace-trimmed lines)."""
    norm = lambda s: "\n".join(line.strip() for line in s.strip().splitlines() if line.strip())  # noqa: E731
    return Levenshtein.distance(norm(got), norm(want)) / max(len(norm(want)), 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good and bad inputs made on the spot."""
    d = tmp_path_factory.mktemp("inputs")
    out: dict[str, Path] = {}
    out["printed"] = save(render_lines(PRINTED, size=36), d / "printed.png")
    out["spanish"] = save(render_lines(SPANISH, size=36), d / "spanish.jpg", quality=92)
    out["note"] = save(
        render_lines(
            ["Buy milk and bread", "Call Maria at five"], size=64, font_path=HANDWRITING_FONT
        ),
        d / "note.jpg",
        quality=90,
    )
    pdf_pages = [render_lines([f"Page {n} of the report"], size=36).convert("RGB") for n in (1, 2)]
    pdf_pages[0].save(
        d / "report.pdf", save_all=True, append_images=pdf_pages[1:], resolution=150.0
    )
    out["pdf"] = d / "report.pdf"
    # Bad inputs.
    out["empty"] = d / "empty.png"
    out["empty"].write_bytes(b"")
    full = (d / "printed.png").read_bytes()
    jpeg = (d / "spanish.jpg").read_bytes()
    out["truncated"] = d / "truncated.jpg"
    out["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    out["text_as_png"] = d / "notes.png"
    out["text_as_png"].write_text("this is not an image\n")
    out["pixel"] = save(Image.new("L", (1, 1), 255), d / "pixel.png")
    out["huge"] = save(Image.new("1", (40000, 40000), 1), d / "huge.png", optimize=True)
    subprocess.run(
        ["qpdf", "--encrypt", "user", "owner", "256", "--", str(out["pdf"]), str(d / "locked.pdf")],
        check=True,
    )
    out["locked"] = d / "locked.pdf"
    assert full  # the good file exists
    return out


class TestOneFile:
    """`ocrwatch ocr FILE` prints the text, and only the text, on stdout."""

    def test_printed_text_on_stdout(self, files: dict[str, Path]) -> None:
        """A printed image comes out with its line breaks; logs stay off stdout."""
        proc = ocrwatch("ocr", str(files["printed"]), "--mode", "printed")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == PRINTED
        assert "document.processed" in proc.stderr

    def test_spanish(self, files: dict[str, Path]) -> None:
        """Spanish text keeps its accents with --lang spa."""
        proc = ocrwatch("ocr", str(files["spanish"]), "--lang", "spa", "--mode", "printed")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == SPANISH

    def test_handwritten_mode(self, files: dict[str, Path]) -> None:
        """--mode handwritten reads a note in a handwriting font with few errors."""
        proc = ocrwatch("ocr", str(files["note"]), "--mode", "handwritten")
        assert proc.returncode == 0, proc.stderr
        assert cer(proc.stdout, "Buy milk and bread\nCall Maria at five") < 0.15, proc.stdout

    def test_pdf_pages_separated_by_form_feed(self, files: dict[str, Path]) -> None:
        """Every PDF page is read; pages are separated by a form feed."""
        proc = ocrwatch("ocr", str(files["pdf"]))
        assert proc.returncode == 0, proc.stderr
        pages = proc.stdout.split("\f")
        assert [p.strip() for p in pages] == ["Page 1 of the report", "Page 2 of the report"]

    def test_original_untouched(self, files: dict[str, Path]) -> None:
        """Recognizing a file never changes its bytes or mtime."""
        path = files["note"]
        before = (path.read_bytes(), path.stat().st_mtime_ns)
        assert ocrwatch("ocr", str(path)).returncode == 0
        assert (path.read_bytes(), path.stat().st_mtime_ns) == before

    def test_json(self, files: dict[str, Path]) -> None:
        """--json prints one JSON object with the text and the manifest fields."""
        proc = ocrwatch("ocr", str(files["printed"]), "--json", "--mode", "printed")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["text"].splitlines() == PRINTED
        assert data["engines"].keys() == {"tesseract"}
        assert 0.5 < data["confidence"] <= 1.0


class TestBatch:
    """Several files: sidecars in -o DIR, a bad file does not stop the others."""

    def test_sidecars_and_failures(self, files: dict[str, Path], tmp_path: Path) -> None:
        """Good files get sidecars + manifests; bad ones get one-line errors; exit 5."""
        out = tmp_path / "out"
        proc = ocrwatch(
            "ocr", str(files["printed"]), str(files["truncated"]), str(files["pdf"]), "-o", str(out)
        )
        assert proc.returncode == 5, proc.stderr
        assert proc.stdout == ""
        assert (out / "printed.png.txt").read_text().splitlines() == PRINTED
        manifest = json.loads((out / "report.pdf.json").read_text())
        assert manifest["pages"] == 2
        assert manifest["source"]["sha256"]
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ocrwatch: error:")]
        assert len(errors) == 1 and "truncated.jpg" in errors[0]
        assert not (out / "truncated.jpg.txt").exists()

    def test_same_name_two_folders(self, tmp_path: Path) -> None:
        """Two inputs with the same name never overwrite each other's sidecar."""
        for sub, words in (("a", "Alpha line"), ("b", "Bravo line")):
            save(render_lines([words], size=36), tmp_path / sub / "scan.png")
        out = tmp_path / "out"
        proc = ocrwatch(
            "ocr",
            str(tmp_path / "a/scan.png"),
            str(tmp_path / "b/scan.png"),
            "-o",
            str(out),
            "--mode",
            "printed",
        )
        assert proc.returncode == 0, proc.stderr
        assert (out / "scan.png.txt").read_text().strip() == "Alpha line"
        assert (out / "scan.png.2.txt").read_text().strip() == "Bravo line"


class TestBadInput:
    """Each kind of bad input gives a clear one-line error naming the file and exit 5."""

    @pytest.mark.parametrize(
        ("name", "words"),
        [
            ("empty", "empty"),
            ("truncated", "truncated"),
            ("text_as_png", "not an image"),
            ("pixel", "small"),
            ("huge", "max_pixels"),
            ("locked", "password"),
        ],
    )
    def test_bad_file(self, files: dict[str, Path], name: str, words: str) -> None:
        """The error line names the file and says what is wrong."""
        proc = ocrwatch("ocr", str(files[name]), str(files["printed"]), "--mode", "printed")
        assert proc.returncode == 5, proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ocrwatch: error:")]
        assert len(errors) == 1, proc.stderr
        assert str(files[name]) in errors[0]
        assert words in errors[0].lower()
        # The good file after it was still processed.
        assert PRINTED[0] in proc.stdout

    def test_missing_file(self, tmp_path: Path) -> None:
        """A path that does not exist is an input error, not a crash."""
        proc = ocrwatch("ocr", str(tmp_path / "nope.png"))
        assert proc.returncode == 5
        assert "nope.png" in proc.stderr


class TestUsageAndConfig:
    """Bad usage, configuration and missing dependencies have their own exit codes."""

    def test_unknown_engine_lists_valid(self, files: dict[str, Path]) -> None:
        """--engine with a wrong name exits 3 and lists the valid engines."""
        proc = ocrwatch("ocr", str(files["printed"]), "--engine", "abbyy")
        assert proc.returncode == 3
        assert "tesseract" in proc.stderr and "paddle" in proc.stderr

    def test_unknown_language_lists_valid(self, files: dict[str, Path]) -> None:
        """--lang with a language no engine has exits 3 and lists the available ones."""
        proc = ocrwatch("ocr", str(files["printed"]), "--lang", "xx", "--mode", "printed")
        assert proc.returncode == 3
        assert "xx" in proc.stderr and "eng" in proc.stderr

    def test_bad_setting(self, files: dict[str, Path]) -> None:
        """An invalid environment value exits 3 naming the key."""
        proc = ocrwatch("ocr", str(files["printed"]), env={"OCRWATCH_PDF_DPI": "10"})
        assert proc.returncode == 3
        assert "pdf_dpi" in proc.stderr

    def test_usage(self) -> None:
        """No file given is a usage error (exit 2)."""
        assert ocrwatch("ocr").returncode == 2

    def test_missing_poppler(self, files: dict[str, Path], tmp_path: Path) -> None:
        """Without poppler's tools a PDF gives exit 4 and an install hint."""
        bindir = tmp_path / "bin"
        bindir.mkdir()
        proc = ocrwatch("ocr", str(files["pdf"]), "--mode", "printed", env={"PATH": str(bindir)})
        assert proc.returncode == 4, proc.stderr
        assert "poppler" in proc.stderr

    def test_check(self) -> None:
        """`ocrwatch check` finds both local engines and their languages."""
        proc = ocrwatch("check", "--lang", "eng+spa")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "tesseract" in proc.stdout and "paddle" in proc.stdout

    def test_check_refuses_a_notify_url_apprise_does_not_know(self) -> None:
        """`ocrwatch check` refuses a notification URL as `run` would (exit 3), password hidden."""
        urls = '["json://127.0.0.1:9/hook", "nosuchscheme://user:s3cret@host"]'
        proc = ocrwatch("check", "--lang", "eng", env={"OCRWATCH_NOTIFY__URLS": urls})
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "notify.urls[1]" in proc.stdout
        assert "s3cret" not in proc.stdout + proc.stderr
        good = ocrwatch(
            "check", "--lang", "eng", env={"OCRWATCH_NOTIFY__URLS": '["json://127.0.0.1:9/hook"]'}
        )
        assert good.returncode == 0, good.stdout + good.stderr
        assert "notify" in good.stdout

    def test_version_and_module(self) -> None:
        """`python -m ocrwatch --version` works."""
        proc = ocrwatch("--version")
        assert proc.returncode == 0 and proc.stdout.startswith("ocrwatch ")


def test_quick_exit_leaves_profilers_their_report(files: dict[str, Path], tmp_path: Path) -> None:
    """``ocr`` ends without interpreter teardown, except under a profiler (cProfile here),
    which then still writes its report at exit."""
    stats = tmp_path / "ocr.prof"
    proc = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "ocrwatch", "ocr",
         str(files["printed"])],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Invoice number 4711" in proc.stdout, proc.stdout
    assert stats.stat().st_size > 0


def test_fonts_present() -> None:
    """The fonts the tests render with are installed (scripts/setup.sh --test)."""
    assert (FONT_DIR / "DejaVuSans.ttf").exists()
    assert HANDWRITING_FONT.exists()
