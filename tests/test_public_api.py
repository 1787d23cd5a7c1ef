"""ocrwatch's public API: ``__all__`` is complete and every name in it is importable."""

from __future__ import annotations
import __future__

import importlib
import types

import pytest

import ocrwatch

MODULES = ["ocrwatch", "ocrwatch.api", "ocrwatch.testing", "ocrwatch.engines.aspose"]


def public_names(module: types.ModuleType) -> set[str]:
    """Module-level names that look public: no underscore, not a module or __future__ flag."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, __future__._Feature):
            continue
        if isinstance(value, types.ModuleType):
            continue  # submodules appear as attributes once imported anywhere
        names.add(name)
    return names


class TestAll:
    """Every ``__all__`` lists exactly the public API."""

    @pytest.mark.parametrize("name", MODULES)
    def test_every_listed_name_exists(self, name: str) -> None:
        """Each name in __all__ can be imported from the module."""
        module = importlib.import_module(name)
        for item in module.__all__:
            assert getattr(module, item) is not None, item

    def test_package_all_is_complete(self) -> None:
        """No public module-level name of ocrwatch is missing from __all__."""
        missing = public_names(ocrwatch) - set(ocrwatch.__all__)
        assert not missing, f"public but not in __all__: {sorted(missing)}"
        assert len(ocrwatch.__all__) == len(set(ocrwatch.__all__))

    @pytest.mark.parametrize("name", ["ocrwatch.api", "ocrwatch.engines.aspose"])
    def test_module_all_is_complete(self, name: str) -> None:
        """Public classes and functions defined in the module are in its __all__."""
        module = importlib.import_module(name)
        defined = {
            n
            for n in public_names(module)
            if getattr(getattr(module, n), "__module__", None) == name
        }
        assert defined <= set(module.__all__), sorted(defined - set(module.__all__))

    def test_star_import(self) -> None:
        """``from ocrwatch import *`` gives the tutorial's names."""
        namespace: dict[str, object] = {}
        exec("from ocrwatch import *", namespace)
        assert {"OcrEngine", "RecognitionMode", "Language", "exceptions"} <= set(namespace)


class TestTutorialNames:
    """The names the tutorial uses exist with the tutorial's spelling."""

    def test_tutorial_spelling(self) -> None:
        """RecognitionMode, Language and exceptions.OcrException are where it expects."""
        assert {"HANDWRITTEN", "PRINTED", "AUTO"} <= set(ocrwatch.RecognitionMode.__members__)
        langs = {"ENGLISH", "SPANISH", "GERMAN", "FRENCH", "ITALIAN", "PORTUGUESE"}
        assert langs <= set(ocrwatch.Language.__members__)
        assert ocrwatch.exceptions.OcrException is ocrwatch.OcrException
        assert issubclass(ocrwatch.exceptions.InputError, ocrwatch.exceptions.OcrException)

    def test_importing_is_light(self) -> None:
        """Importing ocrwatch loads no engine backend (onnxruntime, tesserocr, the SDK)."""
        import subprocess
        import sys

        code = (
            "import sys, ocrwatch; "
            "print(sorted(m for m in ('onnxruntime', 'tesserocr', 'aspose_ocr_cloud') "
            "if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "[]"

    def test_daemon_and_cli_skip_the_facade(self) -> None:
        """The daemon and the CLI never load the tutorial facade (the package is lazy)."""
        import subprocess
        import sys

        code = (
            "import sys, ocrwatch.cli, ocrwatch.daemon.coordinator, ocrwatch.daemon.status; "
            "print('ocrwatch.api' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "False"
