"""The built wheel carries the licences: the project's, and the shipped model's with its NOTICE."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """``pip wheel --no-deps`` of a copy of the checkout (the build writes beside its sources)."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE"):
        shutil.copy2(REPO / name, tree / name)
    shutil.copytree(
        REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("ocrwatch-*.whl")
    return zipfile.ZipFile(path)


class TestWheelLicences:
    """LICENSE and NOTICE at the root and beside the model are in the wheel."""

    def test_project_licence(self, wheel: zipfile.ZipFile) -> None:
        """The Apache-2.0 text and the NOTICE are in .dist-info/licenses/, named in METADATA."""
        names = wheel.namelist()
        licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        text = wheel.read(licence).decode()
        assert "Apache License" in text and "Version 2.0, January 2004" in text
        assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a pointer
        assert any(n.endswith(".dist-info/licenses/NOTICE") for n in names)
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        assert b"License-Expression: Apache-2.0" in metadata
        assert b"License-File: LICENSE" in metadata

    def test_model_licence_and_notice(self, wheel: zipfile.ZipFile) -> None:
        """The model ships with its licence, its NOTICE (attributions) and its provenance."""
        names = set(wheel.namelist())
        for name in ("LICENSE", "NOTICE", "PROVENANCE.md", "ppocrv6_rec_hw.onnx"):
            assert f"ocrwatch/models/{name}" in names, name
        notice = wheel.read("ocrwatch/models/NOTICE").decode()
        credits = ("PaddleOCR", "RapidOCR", "Copiste d'un jour", "CC BY 4.0", "wordfreq",
                   "CC BY-SA 4.0", "SUBTLEX", "OpenSubtitles", "Google Books Ngrams")  # fmt: skip
        for credit in credits:
            assert credit in notice, credit
        provenance = wheel.read("ocrwatch/models/PROVENANCE.md").decode()
        assert "ShareAlike" in provenance

    def test_extras(self, wheel: zipfile.ZipFile) -> None:
        """Celery and the Aspose SDK are extras, not requirements of the embedded default."""
        names = wheel.namelist()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        required = [
            line for line in metadata.decode().splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]  # fmt: skip
        assert not [r for r in required if any(p in r for p in ("celery", "aspose", "limits"))]
        for extra in ("celery", "aspose", "all"):
            assert f"Provides-Extra: {extra}".encode() in metadata
