"""Searchable PDF, hOCR and ALTO from ``ocrwatch ocr --outputs``: real Tesseract, qpdf, poppler."""

from __future__ import annotations

import io
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import img2pdf
import numpy as np
import pikepdf
import pytest
import tesserocr
from PIL import Image

from imaging import render_lines, save
from test_cli import ocrwatch

PAGE = [
    "Invoice number 4711 from the harbour office",
    "was paid in full on the third of March.",
    "Please keep this letter with your records.",
]
Box = tuple[float, float, float, float]


def tesseract_words(image: Path) -> list[tuple[str, Box]]:
    """Tesseract's own word boxes on the image, in pixels."""
    words = []
    with tesserocr.PyTessBaseAPI(lang="eng") as api:
        api.SetImageFile(str(image))
        api.Recognize()
        for item in tesserocr.iterate_level(api.GetIterator(), tesserocr.RIL.WORD):
            text = (item.GetUTF8Text(tesserocr.RIL.WORD) or "").strip()
            if text:
                words.append((text, tuple(float(v) for v in item.BoundingBox(tesserocr.RIL.WORD))))
    return words


def pdf_words(pdf: Path) -> list[tuple[int, str, Box, tuple[float, float]]]:
    """pdftotext -bbox: (page, word, box in points, page size in points)."""
    html = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    out = []
    pages = re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', html, re.S)
    for n, (w, h, body) in enumerate(pages, start=1):
        for m in re.finditer(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>',
            body,
        ):
            box = tuple(float(m.group(i)) for i in range(1, 5))
            out.append((n, m.group(5), box, (float(w), float(h))))
    return out


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def assert_words_on_view(pdf: Path, expected: list[str]) -> None:
    """The PDF's words, in order, each on ink of page 1 as a viewer renders it (72 dpi)."""
    view = pdf.with_suffix(".view")
    args = ["pdftoppm", "-r", "72", "-png", "-f", "1", "-l", "1", str(pdf), str(view)]
    subprocess.run(args, check=True)
    ink = np.asarray(Image.open(f"{view}-1.png").convert("L")) < 128
    words = pdf_words(pdf)
    assert [w[1] for w in words] == expected
    for _, text, (x0, y0, x1, y1), _ in words:
        assert ink[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1].any(), text


def pdftotext(pdf: Path, page: int) -> str:
    """The text layer of one page."""
    args = ["pdftotext", "-f", str(page), "-l", str(page), str(pdf), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def page_outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A printed page (300 dpi PNG) and the folder `ocrwatch ocr --outputs ...` wrote."""
    d = tmp_path_factory.mktemp("searchable")
    page = save(render_lines(PAGE, size=40), d / "page.png", dpi=(300, 300))
    out = d / "out"
    proc = ocrwatch("ocr", str(page), "-o", str(out), "--outputs", "txt,json,pdf,hocr,alto")
    assert proc.returncode == 0, proc.stderr
    return page, out


class TestImagePage:
    """A printed PNG: PDF valid, words where the image shows them, hOCR/ALTO with words."""

    def test_all_files_written(self, page_outputs: tuple[Path, Path]) -> None:
        """Every requested output is beside the .txt under the source's name."""
        _, out = page_outputs
        names = sorted(p.name for p in out.iterdir())
        assert names == [
            "page.png.alto.xml", "page.png.hocr", "page.png.json", "page.png.pdf", "page.png.txt",
        ]  # fmt: skip

    def test_qpdf_check(self, page_outputs: tuple[Path, Path]) -> None:
        """qpdf finds no syntax or stream errors."""
        _, out = page_outputs
        proc = subprocess.run(["qpdf", "--check", str(out / "page.png.pdf")], capture_output=True)
        assert proc.returncode == 0, proc.stdout

    def test_image_embedded_losslessly(self, page_outputs: tuple[Path, Path]) -> None:
        """The page's image has the PNG's pixels and size (Flate, not re-encoded lossy)."""
        page, out = page_outputs
        with pikepdf.open(out / "page.png.pdf") as pdf:
            (image,) = pdf.pages[0].get_images().values()
            pil = pikepdf.PdfImage(image).as_pil_image()
        with Image.open(page) as original:
            assert pil.size == original.size
            assert pil.convert("L").tobytes() == original.convert("L").tobytes()

    def test_words_where_tesseract_sees_them(self, page_outputs: tuple[Path, Path]) -> None:
        """Most PDF words overlap Tesseract's own box of the same word (IoU >= 0.5)."""
        page, out = page_outputs
        ours = pdf_words(out / "page.png.pdf")
        theirs = tesseract_words(page)
        with Image.open(page) as img:
            width_px = img.width
        assert len(ours) >= 15 and len(theirs) >= 15
        _, _, _, (width_pt, _) = ours[0]
        scale = width_px / width_pt
        placed = 0
        for _, text, box, _ in ours:
            px = tuple(v * scale for v in box)
            placed += any(t == text and iou(px, b) >= 0.5 for t, b in theirs)
        assert placed >= 0.8 * len(ours), (placed, len(ours))

    def test_pdfa_2b(self, page_outputs: tuple[Path, Path]) -> None:
        """An image's PDF declares PDF/A-2b (validated by pikepdf when written)."""
        _, out = page_outputs
        with pikepdf.open(out / "page.png.pdf") as pdf:
            assert pdf.open_metadata().pdfa_status == "2B"
            assert "/OutputIntents" in pdf.Root

    def test_hocr_parses_with_words(self, page_outputs: tuple[Path, Path]) -> None:
        """hOCR is well-formed XHTML with ocr_page, ocr_line and ocrx_word (bbox, x_wconf)."""
        _, out = page_outputs
        root = ET.parse(out / "page.png.hocr").getroot()
        spans = root.iter("{http://www.w3.org/1999/xhtml}span")
        words = [s for s in spans if s.get("class") == "ocrx_word"]
        assert [w.text for w in words][:3] == ["Invoice", "number", "4711"]
        title = re.compile(r"bbox \d+ \d+ \d+ \d+; x_wconf \d+$")
        assert all(title.match(w.get("title", "")) for w in words)

    def test_hocr_read_by_ocrmypdf(self, page_outputs: tuple[Path, Path]) -> None:
        """OCRmyPDF's own hOCR parser reads our file: page size, 3 lines, the same words."""
        from ocrmypdf.hocrtransform import HocrParser

        page, out = page_outputs
        parsed = HocrParser(out / "page.png.hocr").parse()
        with Image.open(page) as img:
            assert parsed.bbox is not None
            assert (parsed.bbox.right, parsed.bbox.bottom) == img.size
        lines = parsed.lines
        assert len(lines) == 3
        words = " ".join(w.text for ln in lines for w in ln.children)
        assert words == (out / "page.png.txt").read_text().replace("\n", " ").strip()

    def test_alto_parses_with_words(self, page_outputs: tuple[Path, Path]) -> None:
        """ALTO 4: Page > PrintSpace > TextBlock > TextLine > String with positions and WC."""
        _, out = page_outputs
        ns = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
        root = ET.parse(out / "page.png.alto.xml").getroot()
        lines = root.findall(".//a:Page/a:PrintSpace/a:TextBlock/a:TextLine", ns)
        assert len(lines) == 3
        strings = lines[0].findall("a:String", ns)
        assert [s.get("CONTENT") for s in strings][:3] == ["Invoice", "number", "4711"]
        for s in strings:
            assert int(s.get("WIDTH", "0")) > 0 and 0.0 <= float(s.get("WC", "-1")) <= 1.0

    def test_manifest_lists_outputs(self, page_outputs: tuple[Path, Path]) -> None:
        """The manifest names every extra output."""
        import json

        _, out = page_outputs
        manifest = json.loads((out / "page.png.json").read_text())
        assert manifest["outputs"] == {
            "pdf": "page.png.pdf", "hocr": "page.png.hocr", "alto": "page.png.alto.xml",
        }  # fmt: skip


class TestImageOnlyPdf:
    """A three-page scanned PDF: same pages and sizes, images untouched, text on each page."""

    SIZES = ((612.0, 792.0), (595.0, 842.0), (792.0, 612.0))

    @pytest.fixture(scope="class")
    @classmethod
    def scanned(cls, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
        d = tmp_path_factory.mktemp("scanned")
        jpegs = []
        for n, (w, h) in enumerate(cls.SIZES, start=1):
            # A page with a real page's share of ink: preprocessing's 1% autocontrast cutoff
            # turns JPEG noise on a nearly empty page into black specks.
            lines = [f"Report page {n} of three", f"Section {n} covers the budget", *PAGE * 3]
            img = render_lines(lines, size=40).convert("RGB")
            canvas = Image.new("RGB", (round(w * 150 / 72), round(h * 150 / 72)), "white")
            canvas.paste(img, (60, 60))
            buf = io.BytesIO()
            canvas.save(buf, format="JPEG", quality=85, dpi=(150, 150))
            jpegs.append(buf.getvalue())
        src = d / "scan.pdf"
        layout = [img2pdf.get_fixed_dpi_layout_fun((150, 150))]
        src.write_bytes(img2pdf.convert(jpegs, layout_fun=layout[0]))
        out = d / "out"
        proc = ocrwatch("ocr", str(src), "-o", str(out), "--outputs", "pdf", "--mode", "printed")
        assert proc.returncode == 0, proc.stderr
        return src, out / "scan.pdf.pdf"

    def test_pages_and_sizes_kept(self, scanned: tuple[Path, Path]) -> None:
        """Three pages out, each with the input page's media box; qpdf --check passes."""
        src, out = scanned
        with pikepdf.open(src) as a, pikepdf.open(out) as b:
            assert len(b.pages) == 3
            for pa, pb in zip(a.pages, b.pages, strict=True):
                assert [float(v) for v in pa.mediabox] == [float(v) for v in pb.mediabox]
        assert subprocess.run(["qpdf", "--check", str(out)], capture_output=True).returncode == 0

    def test_images_untouched_and_size(self, scanned: tuple[Path, Path]) -> None:
        """The JPEG streams are byte for byte the input's; growth is the text layer only."""
        src, out = scanned
        with pikepdf.open(src) as a, pikepdf.open(out) as b:
            for pa, pb in zip(a.pages, b.pages, strict=True):
                (ia,) = pa.get_images().values()
                (ib,) = pb.get_images().values()
                assert ia.read_raw_bytes() == ib.read_raw_bytes()
        grown = out.stat().st_size - src.stat().st_size
        # At most the text layer: a glyphless font and a few hundred bytes of text per page
        # (pikepdf may even save the untouched objects more compactly).
        assert grown < 20_000, grown

    def test_pdf_input_not_rewritten_as_pdfa(self, scanned: tuple[Path, Path]) -> None:
        """A PDF input keeps its own document info and makes no PDF/A claim."""
        src, out = scanned
        with pikepdf.open(src) as a, pikepdf.open(out) as b:
            assert b.open_metadata().pdfa_status == ""
            assert dict(b.docinfo) == dict(a.docinfo)
            assert "/OutputIntents" not in b.Root

    def test_each_page_has_its_text(self, scanned: tuple[Path, Path]) -> None:
        """pdftotext finds each page's own lines on that page."""
        _, out = scanned
        for n in (1, 2, 3):
            text = pdftotext(out, n)
            assert f"Report page {n} of three" in text
            assert f"Section {n} covers" in text


class TestImageKinds:
    """JPEG as it is, TIFF one page per frame, born-digital pages not layered twice."""

    def test_jpeg_embedded_as_is(self, tmp_path: Path) -> None:
        """The PDF's image stream is the JPEG file byte for byte (DCT, no re-encoding)."""
        jpg = save(render_lines(PAGE, size=40).convert("RGB"), tmp_path / "p.jpg", quality=80)
        proc = ocrwatch("ocr", str(jpg), "-o", str(tmp_path / "o"), "--outputs", "pdf")
        assert proc.returncode == 0, proc.stderr
        with pikepdf.open(tmp_path / "o" / "p.jpg.pdf") as pdf:
            (image,) = pdf.pages[0].get_images().values()
            assert image.Filter == pikepdf.Name.DCTDecode
            assert image.read_raw_bytes() == jpg.read_bytes()
        assert "harbour office" in pdftotext(tmp_path / "o" / "p.jpg.pdf", 1)

    def test_tiff_frames_are_pages(self, tmp_path: Path) -> None:
        """A two-frame TIFF gives two pages, each with its own text."""
        frames = [render_lines([f"Frame {n} of the scan", *PAGE[:2]], size=40) for n in (1, 2)]
        tif = tmp_path / "two.tif"
        frames[0].save(tif, save_all=True, append_images=frames[1:], compression="tiff_lzw")
        proc = ocrwatch("ocr", str(tif), "-o", str(tmp_path / "o"), "--outputs", "pdf")
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / "o" / "two.tif.pdf"
        with pikepdf.open(out) as pdf:
            assert len(pdf.pages) == 2
        for n in (1, 2):
            assert f"Frame {n} of the scan" in pdftotext(out, n)

    def test_born_digital_not_layered_twice(
        self, tmp_path: Path, page_outputs: tuple[Path, Path]
    ) -> None:
        """A PDF whose page already has text keeps its text once (policy: skip that page)."""
        _, out = page_outputs
        src = tmp_path / "digital.pdf"
        src.write_bytes((out / "page.png.pdf").read_bytes())
        proc = ocrwatch("ocr", str(src), "-o", str(tmp_path / "o"), "--outputs", "pdf")
        assert proc.returncode == 0, proc.stderr
        text = pdftotext(tmp_path / "o" / "digital.pdf.pdf", 1)
        assert text.count("harbour office") == 1, text
        assert "harbour office" in (tmp_path / "o" / "digital.pdf.txt").read_text()

    def test_outputs_need_an_output_dir(self, page_outputs: tuple[Path, Path]) -> None:
        """--outputs without -o is a usage error (exit 2), one line on stderr."""
        page, _ = page_outputs
        proc = ocrwatch("ocr", str(page), "--outputs", "pdf")
        assert proc.returncode == 2
        assert "--outputs needs -o" in proc.stderr

    def test_rotated_pdf_page(self, tmp_path: Path) -> None:
        """A page shown turned by /Rotate 90: its words are found where the viewer shows them."""
        lines = ["Rotated page with words", "second line of text here"]
        png = save(render_lines(lines, size=40).rotate(90, expand=True), tmp_path / "r.png")
        with pikepdf.open(io.BytesIO(img2pdf.convert(str(png)))) as pdf:
            pdf.pages[0].Rotate = 90
            pdf.save(tmp_path / "r.pdf")
        proc = ocrwatch(
            "ocr", str(tmp_path / "r.pdf"), "-o", str(tmp_path / "o"), "--outputs", "pdf"
        )
        assert proc.returncode == 0, proc.stderr
        assert_words_on_view(tmp_path / "o" / "r.pdf.pdf", " ".join(lines).split())

    def test_exif_rotated_jpeg(self, tmp_path: Path) -> None:
        """A JPEG stored sideways with EXIF orientation 6: kept as is, words where shown."""
        lines = ["Sideways phone photo text", "second line of the note"]
        stored = render_lines(lines, size=40).convert("RGB").rotate(90, expand=True)
        exif = Image.Exif()
        exif[0x0112] = 6  # shown turned 90 degrees clockwise
        jpg = save(stored, tmp_path / "e.jpg", exif=exif, quality=90)
        proc = ocrwatch("ocr", str(jpg), "-o", str(tmp_path / "o"), "--outputs", "pdf")
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / "o" / "e.jpg.pdf"
        with pikepdf.open(out) as pdf:
            (image,) = pdf.pages[0].get_images().values()
            assert image.read_raw_bytes() == jpg.read_bytes()
        assert_words_on_view(out, " ".join(lines).split())
