"""Batch inference of rapidocr's text recognizer over line crops, decoded by our CTC search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ocrwatch.handwriting.ctc_search import beam_search, greedy
from ocrwatch.handwriting.lexicon import Lexicon
from ocrwatch.handwriting.scoring import BeamSettings

__all__ = ["recognize_crops"]


def recognize_crops(
    text_rec: Any,
    crops: Sequence[npt.NDArray[np.uint8]],
    *,
    lexicon: Lexicon | None,
    settings: BeamSettings = BeamSettings(),  # noqa: B008 - frozen
) -> tuple[list[str], list[float]]:
    """Read line crops with rapidocr's recognizer; return texts and confidences.

    ``text_rec`` is rapidocr's loaded ``TextRecognizer`` (its preprocessing, batching and
    onnxruntime session are used as they are); the output matrix is decoded here: greedy
    when ``lexicon`` is None, else by :func:`beam_search`. The confidence is the greedy
    path's mean character probability either way.
    """
    classes: Sequence[str] = text_rec.postprocess_op.character
    n = len(crops)
    texts = [""] * n
    scores = [0.0] * n
    order = np.argsort([c.shape[1] / float(c.shape[0]) for c in crops])
    _, height, width = text_rec.rec_image_shape[:3]
    step = text_rec.rec_batch_num
    for start in range(0, n, step):
        idx = order[start : start + step]
        ratio = max([width / height] + [crops[k].shape[1] / crops[k].shape[0] for k in idx])
        batch = np.stack([text_rec.resize_norm_img(crops[k], ratio) for k in idx])
        preds = text_rec.session(batch.astype(np.float32))
        for row, k in enumerate(idx):
            text, score = greedy(preds[row], classes)
            if lexicon is not None and text:
                text = beam_search(preds[row], classes, lexicon, settings)
            texts[k], scores[k] = text, score
    return texts, scores
