"""Write a document's sidecar ``.txt`` and JSON manifest atomically, never clobbering others.

Names keep the source's extension so that ``scan.pdf`` and ``scan.jpg`` in one folder get
``scan.pdf.txt`` and ``scan.jpg.txt``. Each file is written to a temporary name in the target
folder, flushed and fsynced, then renamed into place, and the folder is fsynced: a reader
never sees a partial sidecar. The manifest is written first and the ``.txt`` last, so a
``.txt`` always has its manifest beside it.

Collisions: an existing sidecar is replaced only when its manifest says it came from the same
source (same ``source_id`` and sha256: a re-run, or a retry after a crash). Otherwise the new
outputs take the next free name ``scan.pdf.2.txt``, ``scan.pdf.3.txt``, ... and the event is
logged, so another source's sidecar is never overwritten silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch import fsutil
from ocrwatch._version import __version__
from ocrwatch.exceptions import OutputError, TransientOutputError

if TYPE_CHECKING:
    from ocrwatch.pipeline import DocumentResult

__all__ = [
    "MANIFEST_SCHEMA",
    "OutputPaths",
    "atomic_write",
    "build_manifest",
    "manifest_path_for",
    "sidecar_path",
    "write_outputs",
]

log = structlog.get_logger()

MANIFEST_SCHEMA = "ocrwatch.manifest/1"

_MAX_COLLISIONS = 10_000


@dataclass(frozen=True, slots=True)
class OutputPaths:
    """Where a document's outputs were written."""

    txt: Path
    manifest: Path


def sidecar_path(relpath: Path | str, *, out_dir: Path) -> Path:
    """Return ``out_dir/relpath.txt`` (the extension of the source is kept in the name)."""
    rel = Path(relpath)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"relpath must be relative and inside the outbox: {rel}")
    # Room for the longest sibling name (".99999.alto.xml") on every filesystem.
    return out_dir / rel.parent / f"{fsutil.fit_name(rel.name, reserve=_SIBLING_ROOM)}.txt"


def manifest_path_for(txt_path: Path) -> Path:
    """Return the manifest path beside ``txt_path`` (``x.pdf.txt`` -> ``x.pdf.json``)."""
    return txt_path.with_suffix(".json")


#: Bytes a sidecar's name may grow by: a collision number plus the longest extension.
_SIBLING_ROOM = len(".99999.alto.xml")


def _numbered(txt_path: Path, n: int) -> Path:
    base = txt_path.name[: -len(".txt")]
    return txt_path.with_name(f"{base}.{n}.txt")


def _translate_os_error(exc: OSError, path: Path) -> OutputError:
    # Only the name itself is the file's fault; disk space, permissions, a file where a
    # folder should be are the operator's to fix, and the file waits for that.
    if exc.errno in fsutil.NAME_ERRNOS:
        return OutputError(f"cannot write output ({exc.strerror})", path=path)
    return TransientOutputError(f"cannot write output ({exc.strerror}); will retry", path=path)


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`ocrwatch.fsutil.atomic_write`).

    Raises FileExistsError (``exclusive``), TransientOutputError for errors that may pass
    (ENOSPC, EIO, a vanished share), OutputError otherwise.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # FileExistsError too: a file where the folder should be
        raise _translate_os_error(exc, path) from exc
    try:
        fsutil.atomic_write(path, data, exclusive=exclusive)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _translate_os_error(exc, path) from exc


def build_manifest(
    result: DocumentResult,
    *,
    source_id: str,
    txt_name: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the JSON manifest of ``result`` (what, how, how well, how long)."""
    src = result.source
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "ocrwatch_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {
            "id": fsutil.display(source_id),
            "path": fsutil.display(src.path),
            "name": fsutil.display(Path(source_id).name),
            "sha256": src.sha256,
            "size": src.size,
            "format": src.format,
        },
        "text_file": fsutil.display(txt_name),
        "pages": len(result.pages),
        "mode": result.mode.value,
        "languages": list(result.languages),
        "engines": dict(result.engines),
        "confidence": _round(result.confidence),
        "page_details": [
            {
                "number": p.number,
                "engine": p.result.engine,
                "mode": p.mode.value,
                "confidence": _round(p.result.confidence),
                "route_confidence": _round(p.route_confidence),
                "lines": len(p.result.lines),
                "characters": len(p.result.text),
                "width": p.result.width,
                "height": p.result.height,
                "preprocessing": list(p.preprocessing),
                "corrections": p.corrections,
                "attempts": p.attempts,
                "seconds": round(p.seconds, 3),
            }
            for p in result.pages
        ],
        "attempts": result.attempts,
        "timings": dict(result.timings),
    }
    if extra:
        manifest.update(extra)
    return manifest


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _owner_of(txt_path: Path) -> tuple[str, str] | None:
    """Return (source id, sha256) recorded beside an existing sidecar, or None if unknown."""
    try:
        data = json.loads(manifest_path_for(txt_path).read_text(encoding="utf-8"))
        return str(data["source"]["id"]), str(data["source"]["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_outputs(
    result: DocumentResult,
    *,
    txt_path: Path,
    source_id: str,
    extra: Mapping[str, Any] | None = None,
) -> OutputPaths:
    """Write the sidecar text and manifest for ``result``; return where they went.

    ``source_id`` identifies the source across runs (the inbox-relative path for the daemon,
    the absolute path for the CLI); with the sha256 it decides whether an existing sidecar of
    the same name is ours to replace. A name that is not UTF-8 keeps its bytes where the
    outbox takes them; a share that refuses them gets the name with U+FFFD in their place.
    Raises OutputError / TransientOutputError.
    """
    try:
        return _write_outputs(result, txt_path=txt_path, source_id=source_id, extra=extra)
    except OutputError as exc:
        cause = exc.__cause__
        utf8 = fsutil.utf8_path(txt_path)
        if not isinstance(cause, OSError) or cause.errno not in fsutil.NAME_ERRNOS:
            raise
        if utf8 == txt_path:
            raise
        log.warning("output.name_refused", wanted=fsutil.display(txt_path), using=str(utf8))
        return _write_outputs(result, txt_path=utf8, source_id=source_id, extra=extra)


def _write_outputs(
    result: DocumentResult,
    *,
    txt_path: Path,
    source_id: str,
    extra: Mapping[str, Any] | None,
) -> OutputPaths:
    sha256 = result.source.sha256
    candidate = txt_path
    for n in range(2, _MAX_COLLISIONS):
        try:
            taken = candidate.exists() or manifest_path_for(candidate).exists()
            ours = taken and _owner_of(candidate) == (fsutil.display(source_id), sha256)
        except OSError as exc:
            raise _translate_os_error(exc, candidate) from exc
        if not taken or ours:
            paths = OutputPaths(txt=candidate, manifest=manifest_path_for(candidate))
            manifest = build_manifest(
                result, source_id=source_id, txt_name=candidate.name, extra=extra
            )
            body = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
            try:
                # A new name is reserved by creating its manifest exclusively.
                atomic_write(paths.manifest, body, exclusive=not ours)
            except FileExistsError:
                candidate = _numbered(txt_path, n)
                continue
            try:
                atomic_write(paths.txt, result.text.encode("utf-8"))
            except OutputError:
                if not ours:
                    # Give the reserved name back: no manifest without its text.
                    paths.manifest.unlink(missing_ok=True)
                raise
            if candidate != txt_path:
                log.warning(
                    "output.name_taken",
                    wanted=fsutil.display(txt_path),
                    using=fsutil.display(candidate),
                    detail="another source's sidecar already has this name; kept it",
                )
            return paths
        candidate = _numbered(txt_path, n)
    raise OutputError(f"more than {_MAX_COLLISIONS} sidecars with this name", path=txt_path)
