"""Score accuracy results by writer group: the writers weights were chosen on, and the rest.

The English decoder weights (``paddle.pair_lm_weight``, ``paddle.pair_backoff``) were chosen
on the **tuning** group: the first 12 IAM pages by name (12 writers) and the 7 notes; the
other 13 IAM pages (13 other writers) are **held out**. Reads the JSON files that
``python -m bench.accuracy --sets iam,notes --modes handwritten --out FILE`` writes and prints,
per file, pooled CER (character errors / reference characters, the set's normalization) per
group. Example: ``python -m bench.split base.json pairs.json``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["groups", "main"]

TUNING_IAM_PAGES = 12


def _cer(items: Sequence[dict[str, Any]]) -> float:
    chars = sum(int(x["chars"]) for x in items)
    return sum(int(x["char_errors"]) for x in items) / max(chars, 1)


def groups(items: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Return pooled CER of the tuning group, the held-out writers and each set."""
    iam = sorted((x for x in items if x["set"].endswith("iam_forms")), key=lambda x: x["item"])
    notes = [x for x in items if x["set"].endswith("notes_scheidl")]
    if len(iam) <= TUNING_IAM_PAGES or not notes:
        raise SystemExit("needs results of the whole iam and notes sets")
    tuning, held = iam[:TUNING_IAM_PAGES], iam[TUNING_IAM_PAGES:]
    return {
        "tuning (12 IAM writers + notes)": _cer(tuning + notes),
        "held out (13 IAM writers)": _cer(held),
        "iam": _cer(iam),
        "notes": _cer(notes),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the groups of every results file; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.split", description=__doc__)
    parser.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args(argv)
    for path in args.results:
        doc = json.loads(path.read_text(encoding="utf-8"))
        scores = groups(doc["items"])
        settings = " ".join(doc.get("settings") or []) or "(defaults)"
        cells = "  ".join(f"{name} {value:.4f}" for name, value in scores.items())
        print(f"{path.name}: {settings}\n  {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
