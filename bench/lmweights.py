"""Tune the lexicon decoder's weights on copiste_fr validation-writer lines (never test ones).

Reads each line of the validation writers (cropped by its ``lines.tsv`` box) once with the
recognizer, keeps the output matrices, then decodes them greedily and with every weight
combination of the grid; prints case-insensitive CER per combination (best first) and writes
JSON. Lines, not pages, so the grid costs decoding time only.

Example: ``python -m bench.lmweights --alphas 0.2,0.35,0.5 --betas 0,1,2,3``
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DEFAULT_DATA, engine_environment, run_metadata, write_json
from bench.copiste import Part, line_boxes, pages

__all__ = ["main"]


def _floats(value: str) -> list[float]:
    return [float(v) for v in value.split(",") if v.strip()]


def matrices(
    folder: Path, part: Part, *, rec_model: Path | None
) -> tuple[list[np.ndarray], list[str], Any]:
    """Return the recognizer's (T, C) matrices for every line of ``part``, texts, classes."""
    from PIL import Image

    from ocrwatch.engines.paddle import PaddleEngine
    from ocrwatch.settings.model import load_settings

    overrides: dict[str, Any] = {"paddle": {"decoder": "greedy"}}
    if rec_model is not None:
        overrides["paddle"]["rec_model"] = str(rec_model)
    engine = PaddleEngine.from_settings(load_settings(overrides=overrides, environ={}))
    text_rec = engine._text_rec(["fra"])
    classes = text_rec.postprocess_op.character
    probs: list[np.ndarray] = []
    texts: list[str] = []
    for page in pages(folder, part):
        with Image.open(page) as im:
            rgb = np.asarray(im.convert("RGB"))[:, :, ::-1]
        for line in line_boxes(page):
            x0, y0, x1, y1 = line.box
            crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
            ratio = max(crop.shape[1] / crop.shape[0], 320 / 48)
            batch = text_rec.resize_norm_img(crop, ratio)[None].astype(np.float32)
            probs.append(text_rec.session(batch)[0])
            texts.append(line.text)
    engine.close()
    return probs, texts, classes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    from rapidfuzz.distance import Levenshtein

    from ocrwatch.handwriting.ctc_search import beam_search, greedy
    from ocrwatch.handwriting.lexicon import lexicon_for
    from ocrwatch.handwriting.scoring import BeamSettings

    parser = argparse.ArgumentParser(prog="python -m bench.lmweights", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--alphas", type=_floats, default=[0.2, 0.35, 0.5, 0.7])
    parser.add_argument("--betas", type=_floats, default=[0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--oovs", type=_floats, default=[1e-8])
    parser.add_argument("--prunes", type=_floats, default=[1e-3])
    parser.add_argument("--beam", type=int, default=12)
    parser.add_argument("--rec-model", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N lines only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    engine_environment()
    folder = args.data / "handwriting" / "copiste_fr"
    probs, texts, classes = matrices(folder, Part.VALIDATION, rec_model=args.rec_model)
    if args.limit:
        probs, texts = probs[: args.limit], texts[: args.limit]
    chars = sum(len(t) for t in texts)

    def cer(hyps: Sequence[str]) -> float:
        edits = sum(
            Levenshtein.distance(h.lower(), t.lower()) for h, t in zip(hyps, texts, strict=True)
        )
        return edits / chars

    rows: list[dict[str, Any]] = []
    greedy = [greedy(p, classes)[0] for p in probs]
    rows.append({"decoder": "greedy", "cer_ci": round(cer(greedy), 5)})
    lexicon = lexicon_for(["fra"])
    assert lexicon is not None
    grid = itertools.product(args.alphas, args.betas, args.oovs, args.prunes)
    for alpha, beta, oov, prune in grid:
        settings = BeamSettings(beam=args.beam, alpha=alpha, beta=beta, oov=oov, prune=prune)
        t0 = time.perf_counter()
        hyps = [beam_search(p, classes, lexicon, settings) for p in probs]
        rows.append(
            {
                "decoder": "lexicon",
                "alpha": alpha,
                "beta": beta,
                "oov": oov,
                "prune": prune,
                "beam": args.beam,
                "cer_ci": round(cer(hyps), 5),
                "ms_per_line": round(1000 * (time.perf_counter() - t0) / len(probs), 2),
            }
        )
        print(rows[-1], flush=True)
    rows.sort(key=lambda r: r["cer_ci"])
    print(f"{len(texts)} validation lines, {chars} characters; best first:")
    for r in rows[:10]:
        print(r)
    path = write_json(
        {**run_metadata(), "lines": len(texts), "rows": rows}, out=args.out, stem="lmweights"
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
