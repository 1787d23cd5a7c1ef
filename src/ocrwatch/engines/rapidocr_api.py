"""What the paddle engine uses of rapidocr beyond its public API, each use checked by name.

rapidocr's public API (``RapidOCR(params=...)(image)``) loads its models on first use and
returns decoded text; ocrwatch needs more: the models loaded at start (a broken file fails
there, not on a page), detection without rapidocr's own crops, and the recognizer's raw
character probabilities for the lexicon beam search. No public API gives those, so the
parts used are listed here (:data:`PIPELINE`, :data:`RECOGNIZER`) and checked before use: a
rapidocr that changed under ocrwatch becomes a :class:`~ocrwatch.exceptions.DependencyError`
naming what is gone, not an AttributeError deep inside a page. ``tests/test_rapidocr_api.py``
checks every entry against the installed rapidocr. The pin is exact (``rapidocr==3.10.0``).
"""

from __future__ import annotations

import inspect
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from ocrwatch.exceptions import DependencyError

__all__ = [
    "PIN",
    "PIPELINE",
    "PIPELINE_STATE",
    "RECOGNIZER",
    "check_pipeline",
    "check_pipeline_class",
    "check_recognizer",
]

#: The rapidocr release these uses were written against (pyproject.toml pins it).
PIN = "3.10.0"

#: ``RapidOCR`` methods used: name -> (parameters after self, what ocrwatch needs it for).
PIPELINE: dict[str, tuple[tuple[str, ...], str]] = {
    "_load_det_model": ((), "to load the text detector at start"),
    "_load_rec_model": ((), "to load the recognizers (the wheel's and the tuned one) at start"),
    "_load_cls_model": ((), "to load the angle classifier at start (paddle.use_angle_cls)"),
    "crop_text_regions": (
        ("img", "det_boxes"),
        "to skip the crops it cuts for its own recognizer (ocrwatch cuts its own)",
    ),
}

#: Attributes of a ``RapidOCR`` instance used: name -> what for.
PIPELINE_STATE: dict[str, str] = {
    "use_cls": "to know whether its angle classifier still needs its crops",
    "use_rec": "to know whether its recognizer still needs its crops",
    "text_rec": "to read line crops with the loaded recognizer",
}

#: Attributes of its ``TextRecognizer`` used (:mod:`.paddle_inference`): name -> what for.
RECOGNIZER: dict[str, str] = {
    "session": "to run the recognizer's onnxruntime session on a batch of line crops",
    "resize_norm_img": "to scale and normalize a line crop as the recognizer was trained",
    "rec_image_shape": "for the recognizer's input height and width",
    "rec_batch_num": "for the batch size",
    "postprocess_op.character": "for the characters of the output matrix's columns",
}


def _changed(what: str, why: str) -> DependencyError:
    try:
        installed = package_version("rapidocr")
    except PackageNotFoundError:  # pragma: no cover - imported, so installed
        installed = "(unknown version)"
    return DependencyError(
        f"rapidocr {installed} no longer has {what}; ocrwatch's paddle engine needs it {why}. "
        f"ocrwatch was written against rapidocr {PIN}: pip install 'rapidocr=={PIN}'"
    )


def check_pipeline_class(cls: type[Any]) -> None:
    """Raise DependencyError naming the first :data:`PIPELINE` method ``cls`` lacks or changed."""
    for name, (params, why) in PIPELINE.items():
        method = getattr(cls, name, None)
        if not callable(method):
            raise _changed(f"RapidOCR.{name}", why)
        try:
            have = tuple(inspect.signature(method).parameters)[1:]
        except (TypeError, ValueError):  # pragma: no cover - a builtin; nothing to compare
            continue
        if have != params:
            raise _changed(f"RapidOCR.{name}({', '.join(params)}) (it takes {have})", why)


def check_pipeline(ocr: Any) -> None:
    """Raise DependencyError naming the first :data:`PIPELINE_STATE` attribute ``ocr`` lacks."""
    for name, why in PIPELINE_STATE.items():
        if not hasattr(ocr, name):
            raise _changed(f"RapidOCR.{name}", why)


def check_recognizer(text_rec: Any) -> None:
    """Raise DependencyError naming the first :data:`RECOGNIZER` attribute ``text_rec`` lacks."""
    for dotted, why in RECOGNIZER.items():
        value = text_rec
        for part in dotted.split("."):
            value = getattr(value, part, None)
            if value is None:
                raise _changed(f"TextRecognizer.{dotted}", why)
