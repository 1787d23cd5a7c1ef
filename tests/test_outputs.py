"""Sidecar writer: names, atomicity, manifests, and never clobbering another source."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from fsutil import fill_up
from ocrwatch.engines import Line, PageResult
from ocrwatch.exceptions import OutputError, TransientOutputError
from ocrwatch.outputs.writer import atomic_write, sidecar_path, write_outputs
from ocrwatch.recognition.documents import SourceInfo
from ocrwatch.recognition.pipeline import DocumentResult, PageRecord
from ocrwatch.settings.choices import Mode, OutputFormat


def _result(
    text_pages: list[list[str]], *, sha: str = "a" * 64, path: str = "/in/x.png"
) -> DocumentResult:
    pages = tuple(
        PageRecord(
            number=i + 1,
            result=PageResult(
                lines=tuple(Line(t, 0.9, (0, 0, 10, 10)) for t in lines), engine="tesseract"
            ),
            mode=Mode.PRINTED,
            preprocessing=("grayscale",),
            attempts=1,
            seconds=0.1,
        )
        for i, lines in enumerate(text_pages)
    )
    return DocumentResult(
        source=SourceInfo(
            path=Path(path), size=10, sha256=sha, format="png", page_count=len(pages)
        ),
        pages=pages,
        mode=Mode.AUTO,
        languages=("eng", "spa"),
        engines={"tesseract": "tesseract 5.5.4"},
        timings={"total": 0.2},
    )


class TestNames:
    """Sidecar names mirror the source's relative path and keep its extension."""

    def test_mirrors_relpath(self, tmp_path: Path) -> None:
        """a/b/scan.pdf becomes OUT/a/b/scan.pdf.txt."""
        assert sidecar_path(Path("a/b/scan.pdf"), out_dir=tmp_path) == tmp_path / "a/b/scan.pdf.txt"

    @pytest.mark.parametrize("bad", ["/etc/passwd", "../escape.png", "a/../../b.png"])
    def test_refuses_escape(self, tmp_path: Path, bad: str) -> None:
        """A relative path may not leave the outbox."""
        with pytest.raises(ValueError):
            sidecar_path(Path(bad), out_dir=tmp_path)


class TestWrite:
    """write_outputs writes UTF-8 text, form-feed page breaks, and a complete manifest."""

    def test_text_and_manifest(self, tmp_path: Path) -> None:
        """Lines keep their breaks, pages are separated by form feeds, the manifest matches."""
        res = _result([["Hola señor", "línea dos"], ["page two"]])
        out = write_outputs(
            res, txt_path=tmp_path / "x.png.txt", source_id="x.png", extra={"job": "j1"}
        )
        assert out.txt.read_bytes().decode("utf-8") == "Hola señor\nlínea dos\fpage two\n"
        manifest = json.loads(out.manifest.read_text(encoding="utf-8"))
        assert out.manifest.name == "x.png.json"
        assert manifest["source"]["sha256"] == "a" * 64
        assert manifest["source"]["id"] == "x.png"
        assert manifest["pages"] == 2
        assert manifest["languages"] == ["eng", "spa"]
        assert manifest["engines"] == {"tesseract": "tesseract 5.5.4"}
        assert manifest["page_details"][0]["confidence"] == pytest.approx(0.9)
        assert manifest["job"] == "j1"
        assert manifest["ocrwatch_version"]
        assert manifest["text_file"] == "x.png.txt"

    def test_no_temp_files_left(self, tmp_path: Path) -> None:
        """After a write only the two outputs are in the folder."""
        write_outputs(_result([["a"]]), txt_path=tmp_path / "x.png.txt", source_id="x.png")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png.json", "x.png.txt"]

    def test_rerun_same_source_replaces(self, tmp_path: Path) -> None:
        """The same source (id + sha256) written again replaces its own sidecar."""
        write_outputs(_result([["old"]]), txt_path=tmp_path / "x.png.txt", source_id="x.png")
        out = write_outputs(_result([["new"]]), txt_path=tmp_path / "x.png.txt", source_id="x.png")
        assert out.txt == tmp_path / "x.png.txt"
        assert out.txt.read_text() == "new\n"
        assert len(list(tmp_path.iterdir())) == 2

    def test_other_source_never_clobbered(self, tmp_path: Path) -> None:
        """A different source with the same name gets a numbered sidecar; the first is kept."""
        first = write_outputs(
            _result([["first"]]), txt_path=tmp_path / "x.png.txt", source_id="a/x.png"
        )
        second = write_outputs(
            _result([["second"]], sha="b" * 64),
            txt_path=tmp_path / "x.png.txt",
            source_id="b/x.png",
        )
        third = write_outputs(
            _result([["third"]], sha="c" * 64), txt_path=tmp_path / "x.png.txt", source_id="a/x.png"
        )
        assert first.txt.read_text() == "first\n"
        assert second.txt.name == "x.png.2.txt" and second.txt.read_text() == "second\n"
        assert third.txt.name == "x.png.3.txt"
        assert json.loads(second.manifest.read_text())["source"]["id"] == "b/x.png"

    def test_foreign_file_not_clobbered(self, tmp_path: Path) -> None:
        """A .txt someone else put there (no manifest) is never overwritten."""
        (tmp_path / "x.png.txt").write_text("my notes")
        out = write_outputs(_result([["ocr"]]), txt_path=tmp_path / "x.png.txt", source_id="x.png")
        assert (tmp_path / "x.png.txt").read_text() == "my notes"
        assert out.txt.name == "x.png.2.txt"


class TestAtomicWrite:
    """atomic_write either replaces the file whole or leaves everything as it was."""

    def test_exclusive_refuses_existing(self, tmp_path: Path) -> None:
        """exclusive=True never replaces an existing file and leaves no temp file."""
        target = tmp_path / "f.json"
        target.write_text("keep")
        with pytest.raises(FileExistsError):
            atomic_write(target, b"new", exclusive=True)
        assert target.read_text() == "keep"
        assert os.listdir(tmp_path) == ["f.json"]

    def test_blocked_folder_waits_for_the_operator(self, tmp_path: Path) -> None:
        """An outbox path blocked by a plain file is the operator's to fix: transient."""
        (tmp_path / "blocker").write_text("a file, not a folder")
        with pytest.raises(TransientOutputError):
            atomic_write(tmp_path / "blocker" / "f.txt", b"x")

    def test_a_name_too_long_is_permanent(self, tmp_path: Path) -> None:
        """A name no filesystem takes is the file's fault: OutputError, not transient."""
        with pytest.raises(OutputError) as info:
            atomic_write(tmp_path / ("n" * 300), b"x")
        assert not isinstance(info.value, TransientOutputError)

    def test_long_source_names_fit(self, tmp_path: Path) -> None:
        """A 251-byte source name gets a sidecar name that fits, with room for siblings."""
        txt = sidecar_path("n" * 247 + ".png", out_dir=tmp_path)
        assert len(os.fsencode(txt.name)) + len(".99999.alto.xml") - len(".txt") <= 255
        paths = write_outputs(_result([["hello"]]), txt_path=txt, source_id="n" * 247 + ".png")
        assert paths.txt.read_text() == "hello\n"

    def test_full_disk_is_transient(self, small_tmpfs: Path) -> None:
        """A full filesystem gives TransientOutputError and leaves no partial file behind."""
        fill_up(small_tmpfs)
        before = sorted(os.listdir(small_tmpfs))
        with pytest.raises(TransientOutputError, match="will retry"):
            write_outputs(
                _result([["x" * 200_000]]), txt_path=small_tmpfs / "x.png.txt", source_id="x.png"
            )
        assert sorted(os.listdir(small_tmpfs)) == before

    def test_no_manifest_without_text(self, small_tmpfs: Path) -> None:
        """Room for the manifest but not the text: the reserved manifest is removed again."""
        (small_tmpfs / "gap").write_bytes(b"\0" * 16384)
        fill_up(small_tmpfs)
        (small_tmpfs / "gap").unlink()  # a few pages free: enough for a manifest only
        with pytest.raises(TransientOutputError):
            write_outputs(
                _result([["x" * 300_000]]), txt_path=small_tmpfs / "x.png.txt", source_id="x.png"
            )
        assert sorted(os.listdir(small_tmpfs)) == ["ballast"]


class TestExtraOutputs:
    """hOCR/ALTO beside the .txt: same name rules, listed in the manifest."""

    FORMATS = (OutputFormat.HOCR, OutputFormat.ALTO)

    def test_written_beside_and_listed(self, tmp_path: Path) -> None:
        """x.png.hocr and x.png.alto.xml appear with the .txt; the manifest names them."""
        out = write_outputs(
            _result([["one two"]]),
            txt_path=tmp_path / "x.png.txt",
            source_id="x.png",
            formats=self.FORMATS,
        )
        assert out.extra == {
            OutputFormat.HOCR: tmp_path / "x.png.hocr",
            OutputFormat.ALTO: tmp_path / "x.png.alto.xml",
        }
        assert b"ocrx_word" in out.extra[OutputFormat.HOCR].read_bytes()
        manifest = json.loads(out.manifest.read_text())
        assert manifest["outputs"] == {"hocr": "x.png.hocr", "alto": "x.png.alto.xml"}
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "x.png.alto.xml", "x.png.hocr", "x.png.json", "x.png.txt",
        ]  # fmt: skip

    def test_foreign_extra_not_clobbered(self, tmp_path: Path) -> None:
        """Someone's x.png.hocr is kept; all of our outputs move to the numbered name."""
        (tmp_path / "x.png.hocr").write_text("theirs")
        out = write_outputs(
            _result([["ocr"]]), txt_path=tmp_path / "x.png.txt", source_id="x.png",
            formats=self.FORMATS,
        )  # fmt: skip
        assert (tmp_path / "x.png.hocr").read_text() == "theirs"
        assert out.txt.name == "x.png.2.txt"
        assert out.extra[OutputFormat.HOCR].name == "x.png.2.hocr"
        assert out.extra[OutputFormat.ALTO].name == "x.png.2.alto.xml"

    def test_rerun_replaces_own_extras(self, tmp_path: Path) -> None:
        """A re-run of the same source replaces its hOCR instead of numbering it."""
        for words in (["old"], ["new"]):
            out = write_outputs(
                _result([words]), txt_path=tmp_path / "x.png.txt", source_id="x.png",
                formats=self.FORMATS,
            )  # fmt: skip
        assert out.extra[OutputFormat.HOCR].name == "x.png.hocr"
        assert b"new" in out.extra[OutputFormat.HOCR].read_bytes()

    def test_unrenderable_pdf_left_out(self, tmp_path: Path) -> None:
        """A source pikepdf cannot open: the PDF is skipped and named; text and hOCR written."""
        bad = tmp_path / "in" / "x.pdf"
        bad.parent.mkdir()
        bad.write_bytes(b"%PDF-1.4 this is no PDF body at all\n%%EOF\n")
        result = _result([["ocr text"]], path=str(bad))
        result = replace(result, source=replace(result.source, format="pdf"))
        out = write_outputs(
            result, txt_path=tmp_path / "x.pdf.txt", source_id="x.pdf",
            formats=(OutputFormat.PDF, OutputFormat.HOCR),
        )  # fmt: skip
        assert set(out.extra) == {OutputFormat.HOCR}
        assert not (tmp_path / "x.pdf.pdf").exists()
        manifest = json.loads(out.manifest.read_text())
        assert manifest["outputs"] == {"hocr": "x.pdf.hocr"}
        assert "pdf" in manifest["output_errors"]
        assert out.txt.read_text() == "ocr text\n"
