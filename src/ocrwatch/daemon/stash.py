"""A recognition kept beside its claimed file while its outputs cannot be written.

The next attempt reads it back instead of recognizing the file again, when it is of the
very same file (same sha256).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path, PurePosixPath

from pydantic import TypeAdapter

from ocrwatch.daemon.messages import RecognizeTask
from ocrwatch.recognition.pipeline import DocumentResult
from ocrwatch.support import fsutil

__all__ = ["STASH_NAME", "keep", "stash_path", "stashed"]

_RESULT: TypeAdapter[DocumentResult] = TypeAdapter(DocumentResult)


#: A recognition kept beside its claimed file while its outputs cannot be written.
STASH_NAME = ".recognized.json"


def stash_path(task: RecognizeTask) -> Path | None:
    """Return where ``task``'s recognition is kept between attempts (None: keep mode)."""
    depth = len(PurePosixPath(task.relpath).parts)
    job_dir = Path(task.path).parents[depth - 1]
    if task.pages is not None or job_dir.name != task.job_id:
        return None  # claimed in place (keep mode), or one range of a split document
    return job_dir / STASH_NAME


def stashed(stash: Path | None, task: RecognizeTask) -> DocumentResult | None:
    """Return the kept recognition of this very file (same sha256), if any."""
    if stash is None or task.sha256 is None:
        return None
    try:
        result = _RESULT.validate_python(json.loads(stash.read_bytes()))
    except (OSError, ValueError):
        return None
    return result if result.source.sha256 == task.sha256 else None


def keep(stash: Path | None, result: DocumentResult) -> None:
    if stash is None:
        return
    # json.dumps, not pydantic's serializer: names that are not UTF-8 must survive.
    data = json.dumps(_RESULT.dump_python(result, mode="python"), default=str).encode()
    with contextlib.suppress(OSError):  # then the next attempt reads the file again
        fsutil.atomic_write(stash, data)
