"""The weights shipped in ocrwatch/models match what their provenance file says."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import ocrwatch

MODELS = Path(ocrwatch.__file__).resolve().parent / "models"


def test_provenance_names_the_shipped_weights() -> None:
    """Every shipped ONNX file has its sha256 in PROVENANCE.md, with the base model, the
    data's licence and the command that made it; its curve file is beside it."""
    provenance = (MODELS / "PROVENANCE.md").read_text(encoding="utf-8")
    weights = sorted(MODELS.glob("*.onnx"))
    assert weights
    for path in weights:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert re.search(rf"sha256: `{digest}`", provenance), f"{path.name}: {digest}"
        curve = json.loads(path.with_suffix(".curve.json").read_text(encoding="utf-8"))
        assert curve["curve"] and "best_val_cer" in curve
    for needed in ("Base model", "CC BY 4.0", "Attribution", "Command", "never IAM"):
        assert needed in provenance
