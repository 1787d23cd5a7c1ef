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

More outputs (``outputs`` setting): ``NAME.EXT.pdf`` (searchable PDF), ``NAME.EXT.hocr`` and
``NAME.EXT.alto.xml`` go beside the ``.txt`` under the same (possibly numbered) name, written
the same way after the manifest and before the ``.txt``; the manifest lists them under
``outputs``. The ``.txt`` and the manifest are always written: the manifest is how ocrwatch
knows which sidecars are its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch._version import __version__
from ocrwatch.exceptions import OutputError, TransientOutputError
from ocrwatch.settings.choices import OutputFormat
from ocrwatch.support import fsutil

if TYPE_CHECKING:
    from ocrwatch.recognition.pipeline import DocumentResult, PageRecord

__all__ = [
    "EXTRA_SUFFIXES",
    "MANIFEST_SCHEMA",
    "OutputPaths",
    "atomic_write",
    "build_manifest",
    "extra_path",
    "manifest_path_for",
    "sidecar_path",
    "write_outputs",
]

log = structlog.get_logger()

MANIFEST_SCHEMA = "ocrwatch.manifest/1"

_MAX_COLLISIONS = 10_000


@dataclass(frozen=True, slots=True)
class OutputPaths:
    """Where a document's outputs were written (``extra``: pdf, hocr, alto by format)."""

    txt: Path
    manifest: Path
    extra: dict[OutputFormat, Path] = field(default_factory=dict)


#: Name suffix (after the source's own name) of each output besides the .txt and manifest.
EXTRA_SUFFIXES: Mapping[OutputFormat, str] = {
    OutputFormat.PDF: ".pdf",
    OutputFormat.HOCR: ".hocr",
    OutputFormat.ALTO: ".alto.xml",
}


def extra_path(txt_path: Path, fmt: OutputFormat) -> Path:
    """Return the path of output ``fmt`` beside ``txt_path`` (``x.pdf.txt`` -> ``x.pdf.hocr``)."""
    return txt_path.with_name(txt_path.name[: -len(".txt")] + EXTRA_SUFFIXES[fmt])


def _renderer(fmt: OutputFormat) -> Callable[[DocumentResult], bytes]:
    from ocrwatch.outputs import alto, hocr, pdf

    return {
        OutputFormat.PDF: pdf.render_pdf,
        OutputFormat.HOCR: hocr.render_hocr,
        OutputFormat.ALTO: alto.render_alto,
    }[fmt]


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
    """Write ``data`` to ``path`` atomically (see :func:`ocrwatch.support.fsutil.atomic_write`).

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
        "page_details": [_page_detail(p) for p in result.pages],
        "attempts": result.attempts,
        "timings": dict(result.timings),
    }
    if extra:
        manifest.update(extra)
    return manifest


def _page_detail(p: PageRecord) -> dict[str, Any]:
    return {
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
    formats: Collection[OutputFormat] = (),
) -> OutputPaths:
    """Write the sidecar text, manifest and the other ``formats``; return where they went.

    ``source_id`` identifies the source across runs (the inbox-relative path for the daemon,
    the absolute path for the CLI); with the sha256 it decides whether an existing sidecar of
    the same name is ours to replace. A name that is not UTF-8 keeps its bytes where the
    outbox takes them; a share that refuses them gets U+FFFD in their place. Raises
    OutputError / TransientOutputError, and OSError when the source cannot be read again
    for a searchable PDF.
    """
    return fsutil.with_utf8_fallback(
        txt_path, lambda path: _write_outputs(result, path, source_id, extra, formats)
    )


def _write_outputs(
    result: DocumentResult,
    txt_path: Path,
    source_id: str,
    extra: Mapping[str, Any] | None,
    formats: Collection[OutputFormat],
) -> OutputPaths:
    # Render first: a failure must not leave a manifest without its outputs.
    bodies, failed = _render_all(result, formats)
    wanted = list(bodies)
    sha256 = result.source.sha256
    candidate = txt_path
    for n in range(2, _MAX_COLLISIONS):
        paths = OutputPaths(
            txt=candidate,
            manifest=manifest_path_for(candidate),
            extra={fmt: extra_path(candidate, fmt) for fmt in wanted},
        )
        taken, ours = _status(paths, source_id=source_id, sha256=sha256)
        if not taken or ours:
            names = {str(fmt): fsutil.display(p.name) for fmt, p in paths.extra.items()}
            manifest = build_manifest(
                result,
                source_id=source_id,
                txt_name=candidate.name,
                extra={**(extra or {}), "outputs": names, **failed},
            )
            try:
                _write_set(paths, manifest, bodies, text=result.text, ours=ours)
            except FileExistsError:
                candidate = _numbered(txt_path, n)
                continue
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


def _render_all(
    result: DocumentResult, formats: Collection[OutputFormat]
) -> tuple[dict[OutputFormat, bytes], dict[str, Any]]:
    """Render the extra ``formats``; return their bytes and ``output_errors`` for the manifest.

    A format that cannot be rendered (a PDF that poppler reads but pikepdf refuses) is left
    out and named in the manifest: the text is what the file was sent for. OSError is raised
    as it is (the source vanished or a share went away: waiting may fix it).
    """
    bodies: dict[OutputFormat, bytes] = {}
    errors: dict[str, str] = {}
    for fmt in (f for f in OutputFormat if f in formats and f in EXTRA_SUFFIXES):
        try:
            bodies[fmt] = _renderer(fmt)(result)
        except OSError:
            raise
        except Exception as exc:  # a renderer library's own error types, all of them
            errors[str(fmt)] = f"{type(exc).__name__}: {exc}"[:500]
            log.warning(
                "output.render_failed", path=str(result.source.path), format=str(fmt),
                error=errors[str(fmt)],
            )  # fmt: skip
    return bodies, ({"output_errors": errors} if errors else {})


def _status(paths: OutputPaths, *, source_id: str, sha256: str) -> tuple[bool, bool]:
    """Return (is any of the names taken, are they ours to replace)."""
    try:
        taken = any(p.exists() for p in (paths.txt, paths.manifest, *paths.extra.values()))
        return taken, taken and _owner_of(paths.txt) == (fsutil.display(source_id), sha256)
    except OSError as exc:
        raise _translate_os_error(exc, paths.txt) from exc


def _write_set(
    paths: OutputPaths,
    manifest: Mapping[str, Any],
    bodies: Mapping[OutputFormat, bytes],
    *,
    text: str,
    ours: bool,
) -> None:
    """Write manifest, extras, then the .txt; FileExistsError when the name was taken first."""
    body = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    # A new name is reserved by creating its manifest exclusively.
    atomic_write(paths.manifest, body, exclusive=not ours)
    written: list[Path] = []
    try:
        for fmt, path in paths.extra.items():
            atomic_write(path, bodies[fmt])
            written.append(path)
        atomic_write(paths.txt, text.encode("utf-8"))
    except OutputError:
        if not ours:
            # Give the reserved name back: no manifest without its outputs.
            for path in (*written, paths.manifest):
                path.unlink(missing_ok=True)
        raise
