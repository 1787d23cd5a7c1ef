"""Tests of bench.synthnotes: held-out notes are deterministic, complete and honestly labelled."""

from __future__ import annotations

import hashlib
import json
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

# bench/ lives at the repo root, outside the installed package (see test_bench_photos.py).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bench import synthnotes as sn  # noqa: E402

PACKAGES = ("fonts-dkg-handwriting", "fonts-breip", "fonts-femkeklaver", "fonts-humor-sans")


def _by_id(note_id: str) -> sn.Note:
    return next(n for n in sn.NOTES if n.id == note_id)


def _text_lines(image: Image.Image, size: int) -> int:
    """Count lines of writing: peaks of the dark-pixel row profile at least a line apart."""
    dark = np.asarray(image.convert("L"), np.float32) < 128
    # The left half: lines start at the margin, and a slope drifts less over half a line.
    profile = dark[:, : dark.shape[1] // 2].sum(axis=1).astype(np.float32)
    k = max(1, size // 3)
    profile = np.convolve(profile, np.ones(k) / k, mode="same")
    peaks: list[int] = []
    for y in np.argsort(-profile, kind="stable"):
        if profile[y] < 0.1 * profile.max():
            break
        if all(abs(int(y) - p) > 1.1 * size for p in peaks):
            peaks.append(int(y))
    return len(peaks)


class TestNotes:
    """The note texts are what the brief asks for: office content, English and Spanish."""

    def test_counts_and_lengths(self) -> None:
        """24 English and 12 Spanish notes of 3 to 10 lines, with unique ids."""
        assert sum(n.language == "eng" for n in sn.NOTES) == 24
        assert sum(n.language == "spa" for n in sn.NOTES) == 12
        assert len({n.id for n in sn.NOTES}) == len(sn.NOTES)
        assert all(3 <= len(n.lines) <= 10 for n in sn.NOTES)
        assert all(line.strip() == line and line for n in sn.NOTES for line in n.lines)

    def test_spanish_uses_its_letters(self) -> None:
        """The Spanish notes contain ñ, the accented vowels and the opening ¿ and ¡."""
        text = "".join(line for n in sn.NOTES if n.language == "spa" for line in n.lines)
        assert set("ñáéíóú¿¡") <= set(text)
        assert unicodedata.is_normalized("NFC", text)


class TestRender:
    """A rendered note is deterministic and shows exactly its ground-truth lines."""

    def test_same_seed_same_pixels(self) -> None:
        """One seed gives identical pixels; another seed gives a different note."""
        note = _by_id("eng-02")
        one = sn.render_note(note, seed=3).image
        assert sn.render_note(note, seed=3).image.tobytes() == one.tobytes()
        assert sn.render_note(note, seed=4).image.tobytes() != one.tobytes()

    @pytest.mark.parametrize("note", sn.NOTES[::3], ids=lambda n: n.id)
    def test_rendered_line_count_equals_ground_truth(self, note: sn.Note) -> None:
        """The page has as many lines of writing as the ground truth has lines."""
        for family in range(len(sn.FONT_FAMILIES)):
            r = sn.render_note(
                note, seed=5, family=family, paper=sn.Paper.PLAIN, ink=sn.Ink.BLACK_PEN
            )
            assert len(r.lines) == len(note.lines)
            assert _text_lines(r.image, r.size) == len(r.lines), r.font

    def test_capitals_font_has_capital_ground_truth(self) -> None:
        """Humor Sans has no lower case, so its notes are upper-cased, truth included."""
        note = _by_id("eng-04")
        humor = [f.name for f in sn.FONT_FAMILIES].index("humor-sans")
        r = sn.render_note(note, seed=1, family=humor)
        assert r.font == "Humor-Sans.ttf"
        assert r.lines == tuple(line.upper() for line in note.lines)

    def test_spanish_never_in_a_font_that_drops_letters(self) -> None:
        """Fonts without ñ, ¿, ¡ or accents are skipped for the notes that need them."""
        for note in (n for n in sn.NOTES if n.language == "spa"):
            text = "".join(note.lines)
            for family in range(len(sn.FONT_FAMILIES)):
                r = sn.render_note(note, seed=0, family=family)
                if set("ñ¿¡áéíóúÍ") & set(text):
                    assert r.font != "Humor-Sans.ttf"
                if set("ñ¿¡") & set(text):
                    assert r.font != "femkeklaver.ttf"
                assert r.lines in (note.lines, tuple(line.upper() for line in note.lines))

    def test_paper_and_ink_overrides(self) -> None:
        """Pencil on a sticky note is yellowish paper with grey, lighter writing."""
        r = sn.render_note(_by_id("eng-05"), seed=2, paper=sn.Paper.STICKY, ink=sn.Ink.PENCIL)
        rgb = np.asarray(r.image, np.float32)
        paper = np.median(rgb.reshape(-1, 3), axis=0)
        assert paper[2] < paper[0] - 60  # yellow: little blue
        ink = rgb[rgb.sum(axis=2) == rgb.sum(axis=2).min()][0]
        assert ink.min() > 40 and np.ptp(ink) < 60  # grey, never black


class TestWriteNotes:
    """write_notes lays notes out like the eval folders, deterministically."""

    def test_scans_layout_and_determinism(self, tmp_path: Path) -> None:
        """<id>.png + <id>.gt.txt (UTF-8, one line per line, final newline), same bytes twice."""

        def digest(folder: Path) -> dict[str, str]:
            return {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            }

        images = sn.write_notes(tmp_path / "a", seed=7, limit=2)
        assert [p.name for p in images] == ["eng-01.png", "eng-02.png", "spa-01.png", "spa-02.png"]
        for image in images:
            truth = image.with_name(f"{image.stem}.gt.txt").read_text(encoding="utf-8")
            assert truth.endswith("\n") and not truth.endswith("\n\n")
            assert truth.splitlines() == list(_by_id(image.stem).lines) or truth.isupper()
            with Image.open(image) as img:
                assert img.format == "PNG"
                assert round(img.info["dpi"][0]) == 300
        manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
        assert [n["id"] for n in manifest["notes"]] == ["eng-01", "eng-02", "spa-01", "spa-02"]
        sn.write_notes(tmp_path / "b", seed=7, limit=2)
        assert digest(tmp_path / "a") == digest(tmp_path / "b")
        sn.write_notes(tmp_path / "c", seed=8, limit=2)
        assert digest(tmp_path / "c")["eng-01.png"] != digest(tmp_path / "a")["eng-01.png"]

    def test_hard_photo_has_exif_and_turns_upright(self, tmp_path: Path) -> None:
        """--photo hard gives a 12 MP JPEG whose EXIF orientation shows the note upright."""
        (image,) = sn.write_notes(
            tmp_path, seed=20261124, photo=sn.PhotoChoice.HARD, languages=("spa",), limit=1
        )
        assert image.name == "spa-01.jpg"
        assert (tmp_path / "spa-01.gt.txt").read_text(encoding="utf-8").startswith("Lista")
        with Image.open(image) as img:
            orientation = img.getexif()[0x0112]
            assert orientation in (1, 3, 6, 8)
            stored = img.size
            upright = ImageOps.exif_transpose(img)
        # The note is wider than tall: upright it is a landscape 4032 x 3024 frame.
        assert upright.size == (4032, 3024)
        # 6 and 8 store the sensor's portrait array (test_bench_photos checks the pixels).
        assert stored == ((3024, 4032) if orientation in (6, 8) else (4032, 3024))

    def test_cli(self, tmp_path: Path) -> None:
        """python -m bench.synthnotes --lang spa writes the 12 Spanish notes as PNGs."""
        assert sn.main(["--out", str(tmp_path), "--seed", "1", "--lang", "spa"]) == 0
        assert len(list(tmp_path.glob("spa-*.png"))) == 12
        assert len(list(tmp_path.glob("spa-*.gt.txt"))) == 12


class TestMissingFonts:
    """Without the handwriting fonts the error names the Debian packages to install."""

    def test_check_fonts_names_packages(self, tmp_path: Path) -> None:
        """An empty font folder: every package is named in the message."""
        with pytest.raises(sn.FontsMissingError) as err:
            sn.check_fonts(root=tmp_path)
        for package in PACKAGES:
            assert package in str(err.value)

    def test_one_missing_family_is_named(self, tmp_path: Path) -> None:
        """A folder with all but Breip names fonts-breip as the one to install."""
        for family in sn.FONT_FAMILIES:
            if family.name == "breip":
                continue
            for rel in family.files:
                (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / rel).symlink_to(sn.FONT_ROOT / rel)
        with pytest.raises(sn.FontsMissingError, match=r"install the Debian packages fonts-breip "):
            sn.check_fonts(root=tmp_path)

    def test_write_notes_fails_before_writing(self, tmp_path: Path) -> None:
        """No half-written set: the error comes before the output folder is made."""
        with pytest.raises(sn.FontsMissingError):
            sn.write_notes(tmp_path / "out", seed=0, root=tmp_path / "fonts")
        assert not (tmp_path / "out").exists()

    def test_cli_exit_code_and_message(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The CLI exits 2 and prints the packages on stderr, no traceback."""
        code = sn.main(["--out", str(tmp_path / "out"), "--font-root", str(tmp_path)])
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: handwriting fonts missing")
        assert all(package in err for package in PACKAGES)
