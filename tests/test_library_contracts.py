"""Every use of a library's private API, checked against the installed library by name.

rapidocr (exact pin) and OCRmyPDF's text-layer renderer (``<18``) are used beyond their
public APIs (``engines/rapidocr_api.py``, ``outputs/pdf.py::RENDERER``). When an upgrade
changes one of them, the test of that use fails with a message naming what changed.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ocrwatch.engines import paddle
from ocrwatch.engines.rapidocr_api import (
    PIPELINE,
    PIPELINE_STATE,
    RECOGNIZER,
    check_pipeline,
    check_pipeline_class,
    check_recognizer,
)
from ocrwatch.exceptions import DependencyError
from ocrwatch.outputs import pdf
from ocrwatch.settings.sections import PaddleSettings


@pytest.fixture(scope="module")
def rapid() -> Any:
    """rapidocr's RapidOCR class, imported the way the engine imports it."""
    paddle._detector_class()
    from rapidocr import RapidOCR

    return RapidOCR


@pytest.fixture(scope="module")
def pipeline() -> Any:
    """A RapidOCR pipeline with ocrwatch's parameters (models not loaded yet)."""
    params = paddle.PaddleEngine.rapidocr_params(PaddleSettings())
    return paddle._detector_class()(params=params)


@pytest.fixture(scope="module")
def recognizer(pipeline: Any) -> Any:
    """The wheel's recognizer, loaded."""
    return pipeline._load_rec_model()


class TestRapidocr:
    """rapidocr still has each private part the paddle engine uses (engines/rapidocr_api.py)."""

    @pytest.mark.parametrize("name", list(PIPELINE))
    def test_pipeline_method(self, rapid: Any, name: str) -> None:
        """RapidOCR still has the method, with the parameters ocrwatch relies on."""
        params, why = PIPELINE[name]
        method = getattr(rapid, name, None)
        assert callable(method), (
            f"rapidocr no longer has RapidOCR.{name}; ocrwatch's paddle engine needs it {why} "
            "(engines/rapidocr_api.py)"
        )
        have = tuple(inspect.signature(method).parameters)[1:]
        assert have == params, (
            f"rapidocr's RapidOCR.{name} now takes {have}, not {params}; ocrwatch's paddle "
            f"engine needs it {why} (engines/rapidocr_api.py)"
        )

    @pytest.mark.parametrize("name", list(PIPELINE_STATE))
    def test_pipeline_attribute(self, pipeline: Any, name: str) -> None:
        """A RapidOCR instance still has the attribute."""
        assert hasattr(pipeline, name), (
            f"rapidocr no longer has RapidOCR.{name}; ocrwatch's paddle engine needs it "
            f"{PIPELINE_STATE[name]} (engines/rapidocr_api.py)"
        )

    @pytest.mark.parametrize("dotted", list(RECOGNIZER))
    def test_recognizer_attribute(self, recognizer: Any, dotted: str) -> None:
        """Its TextRecognizer still has the attribute."""
        value = recognizer
        for part in dotted.split("."):
            value = getattr(value, part, None)
            assert value is not None, (
                f"rapidocr no longer has TextRecognizer.{dotted}; ocrwatch's paddle engine "
                f"needs it {RECOGNIZER[dotted]} (engines/paddle_inference.py)"
            )

    def test_recognizer_output_is_a_matrix_over_its_characters(self, recognizer: Any) -> None:
        """session(batch) still gives one probability per character column and frame."""
        crop = np.full((48, 160, 3), 255, np.uint8)
        crop[20:28, 20:140] = 0
        _, height, width = recognizer.rec_image_shape[:3]
        batch = np.stack([recognizer.resize_norm_img(crop, width / height)]).astype(np.float32)
        preds = np.asarray(recognizer.session(batch))
        classes = len(recognizer.postprocess_op.character)
        assert preds.ndim == 3 and preds.shape[0] == 1 and preds.shape[2] == classes, (
            f"rapidocr's recognizer session now returns shape {preds.shape}, not (batch, "
            f"frames, {classes} characters); ocrwatch's CTC search decodes that matrix"
        )
        assert np.allclose(preds.sum(axis=2), 1.0, atol=1e-3), "no longer probabilities"

    @pytest.mark.parametrize("name", [paddle.DET_MODEL, paddle.REC_MODEL, paddle.CLS_MODEL])
    def test_wheel_ships_model(self, name: str) -> None:
        """The rapidocr wheel still ships the model file the engine loads by path."""
        assert (paddle._model_dir() / name).is_file(), (
            f"the rapidocr wheel no longer ships models/{name}; ocrwatch's paddle engine "
            "loads it by path (engines/paddle.py)"
        )

    def test_all_checks_pass(self, rapid: Any, pipeline: Any, recognizer: Any) -> None:
        """The engine's runtime checks accept the installed rapidocr."""
        check_pipeline_class(rapid)
        check_pipeline(pipeline)
        check_recognizer(recognizer)

    def test_changed_library_is_a_dependency_error(self, rapid: Any) -> None:
        """A rapidocr without one of them stops the engine with a message naming it."""
        changed = type("RapidOCR", (rapid,), {"_load_rec_model": None})
        message = r"no longer has RapidOCR\._load_rec_model; ocrwatch's paddle engine needs it"
        with pytest.raises(DependencyError, match=message):
            check_pipeline_class(changed)
        with pytest.raises(DependencyError, match=r"TextRecognizer\.session"):
            check_recognizer(object())


class TestOcrmypdfRenderer:
    """OCRmyPDF still has the renderer the searchable PDF uses (outputs/pdf.py)."""

    @pytest.mark.parametrize("dotted", list(pdf.RENDERER))
    def test_renderer_part(self, dotted: str) -> None:
        """The class is still there and takes the parameters ocrwatch passes."""
        import importlib

        params, why = pdf.RENDERER[dotted]
        module_name, _, name = dotted.rpartition(".")
        obj = getattr(importlib.import_module(module_name), name, None)
        assert obj is not None, (
            f"ocrmypdf no longer has {dotted}; ocrwatch's searchable PDF needs it {why} "
            "(outputs/pdf.py)"
        )
        have = set(inspect.signature(obj).parameters)
        assert set(params) <= have, (
            f"ocrmypdf's {dotted} no longer takes {params} (it takes {sorted(have)}); "
            f"ocrwatch's searchable PDF passes them {why}"
        )

    def test_renderer_draws_a_page(self, tmp_path: Path) -> None:
        """The checked renderer draws a page tree built from OCRmyPDF's public elements."""
        import pikepdf
        from ocrmypdf import BoundingBox, OcrClass, OcrElement

        font_manager, renderer = pdf.check_renderer()
        box = BoundingBox(left=10, top=10, right=90, bottom=30)
        word = OcrElement(ocr_class=OcrClass.WORD, bbox=box, text="hello", confidence=0.9)
        line = OcrElement(ocr_class=OcrClass.LINE, bbox=box, children=[word])
        page = OcrElement(
            ocr_class=OcrClass.PAGE,
            bbox=BoundingBox(left=0, top=0, right=100, bottom=40),
            children=[line],
        )
        out = tmp_path / "layer.pdf"
        renderer(pages_data=[(0, page, 72.0)], multi_font_manager=font_manager()).render(out)
        with pikepdf.open(out) as doc:
            assert len(doc.pages) == 1
            assert [float(v) for v in doc.pages[0].mediabox] == [0, 0, 100, 40]

    def test_changed_renderer_is_a_dependency_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An OCRmyPDF without the renderer fails the PDF output with a message naming it."""
        gone = {"ocrmypdf.fpdf_renderer.Fpdf3Renderer": ((), "to draw the text layer")}
        monkeypatch.setattr(pdf, "RENDERER", {**pdf.RENDERER, **gone})
        with pytest.raises(DependencyError, match=r"no longer has ocrmypdf\.fpdf_renderer\."
                           r"Fpdf3Renderer; ocrwatch's searchable PDF needs it"):  # fmt: skip
            pdf.check_renderer()
