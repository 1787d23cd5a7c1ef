"""Accuracy benchmark: CER/WER/bag-of-words and s/page per data set x engine x mode.

Runs recognition through the product's real pipeline (``recognition.pipeline.recognize_file``)
on the evaluation scans in ``../shared/eval`` (read at run time, never copied), optionally on
synthetic phone photos made from them (``bench.photos``, fixed seed, in a temporary folder)
and on held-out handwritten-looking notes that share no text with them (``bench.synthnotes``,
``--held-out``), prints a table and writes JSON (command, git commit, versions, machine,
date, per-item results). Metrics and their normalization: ``bench/metrics.py``.

Example: ``python -m bench.accuracy --sets iam,notes --modes handwritten --limit 5``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import metrics
from bench.common import DEFAULT_DATA, engine_environment, run_metadata, write_json

__all__ = ["DATASETS", "DataSet", "Item", "Reading", "main", "run"]

PHOTO_SEED = 20261124
DEFAULT_ENGINE = "default"  # the product's own choice per mode (settings.engine = None)
MATCH = "match"  # the set's natural mode: handwritten for handwriting, printed for print


@dataclass(frozen=True, slots=True)
class DataSet:
    """One evaluation set: a folder of ``<id>.png`` + ``<id>.gt.txt`` (or generated photos)."""

    name: str
    folder: str | None  # relative to the data root; None: generated (photos, notes)
    languages: tuple[str, ...]
    kind: str  # "handwritten" or "printed": what ``--modes match`` means here
    photo: str = "mild"  # generated sets: "none" (scans), "mild" or "hard" (bench.photos)
    notes: str | None = None  # generated from bench.synthnotes' notes in this language
    part: str | None = None  # copiste_fr: only the pages of this part of bench.copiste's split
    source: str | None = None  # generated photos of this set's items (default: PHOTO_SOURCES)


DATASETS: dict[str, DataSet] = {
    s.name: s
    for s in (
        DataSet("handwriting/iam_forms", "handwriting/iam_forms", ("eng",), "handwritten"),
        DataSet("handwriting/notes_scheidl", "handwriting/notes_scheidl", ("eng",), "handwritten"),
        DataSet(
            "handwriting/spanish_lines_16c",
            "handwriting/spanish_lines_16c",
            ("spa",),
            "handwritten",
        ),
        DataSet(
            "copiste/test",
            "handwriting/copiste_fr",
            ("fra",),
            "handwritten",
            part="test",
        ),
        DataSet(
            "copiste/validation",
            "handwriting/copiste_fr",
            ("fra",),
            "handwritten",
            part="validation",
        ),
        DataSet("printed/pages", "printed/pages", ("eng",), "printed"),
        DataSet("printed/lines", "printed/lines", ("eng",), "printed"),
        DataSet("photos", None, ("eng",), "handwritten"),
        DataSet("photos-hard", None, ("eng",), "handwritten", photo="hard"),
        DataSet("synth/notes", None, ("eng",), "handwritten", photo="none", notes="eng"),
        DataSet("synth/notes-photos", None, ("eng",), "handwritten", photo="hard", notes="eng"),
        DataSet("synth/notes-spa", None, ("spa",), "handwritten", photo="hard", notes="spa"),
        DataSet("synth/notes-spa-scans", None, ("spa",), "handwritten", photo="none", notes="spa"),
        # Phone-photo versions of the handwriting sets (pages: bench.photos.HARD; lines: MILD),
        # for the gap between each scan and its photograph.
        DataSet(
            "photos/copiste-test",
            None,
            ("fra",),
            "handwritten",
            photo="hard",
            source="copiste/test",
        ),
        DataSet(
            "photos/copiste-validation",
            None,
            ("fra",),
            "handwritten",
            photo="hard",
            source="copiste/validation",
        ),
        DataSet(
            "photos/spanish",
            None,
            ("spa",),
            "handwritten",
            photo="mild",  # one line on a 12 MP frame is not how a line is photographed
            source="handwriting/spanish_lines_16c",
        ),
    )
}
REAL_SETS = [name for name, ds in DATASETS.items() if ds.folder is not None and ds.part is None]
#: Held out from the tuning data: text (synth notes) or photo conditions (photos-hard).
HELD_OUT_SETS = [
    name
    for name, ds in DATASETS.items()
    if ds.notes or (ds.photo == "hard" and ds.source is None and ds.folder is None)
]
ALIASES = {
    "iam": "handwriting/iam_forms",
    "notes": "handwriting/notes_scheidl",
    "spanish": "handwriting/spanish_lines_16c",
    "pages": "printed/pages",
    "lines": "printed/lines",
    "copiste": "copiste/test",
}
PHOTO_SOURCES = ("handwriting/iam_forms", "handwriting/notes_scheidl")


@dataclass(frozen=True, slots=True)
class Item:
    """One image and its ground truth."""

    image: Path
    truth: str


@dataclass(frozen=True, slots=True)
class Reading:
    """What a recognizer returned for one file."""

    text: str
    pages: int
    engines: dict[str, str]


Recognizer = Callable[[Path, Any, Any], Reading]


def pipeline_recognizer(path: Path, settings: Any, engines: Any) -> Reading:
    """Recognize ``path`` through ocrwatch's pipeline (the product as shipped)."""
    from ocrwatch.recognition.pipeline import recognize_file

    result = recognize_file(path, settings=settings, engines=engines)
    return Reading(result.text, max(len(result.pages), 1), dict(result.engines))


def items_in(folder: Path) -> list[Item]:
    """Return the images of ``folder`` that have a ``.gt.txt`` beside them, sorted by name."""
    out = []
    for gt in sorted(folder.glob("*.gt.txt")):
        stem = gt.name[: -len(".gt.txt")]
        images = [p for p in folder.glob(f"{stem}.*") if p.suffix.lower() in (".png", ".jpg")]
        if images:
            out.append(Item(images[0], gt.read_text(encoding="utf-8")))
    return out


@contextmanager
def dataset_items(ds: DataSet, *, data: Path, limit: int | None) -> Iterator[list[Item]]:
    """Yield the items of ``ds``; photos and notes are generated into a temporary folder first."""
    if ds.folder is not None:
        items = items_in(data / ds.folder)
        if ds.part is not None:
            from bench.copiste import Part, part_of

            items = [it for it in items if part_of(it.image) == Part(ds.part)]
        yield items[:limit] if limit else items
        return
    from bench import photos, synthnotes

    with tempfile.TemporaryDirectory(prefix="ocrwatch-photos-") as tmp:
        if ds.notes is not None:
            synthnotes.write_notes(
                Path(tmp),
                seed=PHOTO_SEED,
                photo=synthnotes.PhotoChoice(ds.photo),
                languages=(ds.notes,),
                limit=limit,
            )
            yield items_in(Path(tmp))
            return
        sources: list[Path] = []
        if ds.source is not None:
            with dataset_items(DATASETS[ds.source], data=data, limit=limit) as scans:
                sources = [it.image for it in scans]
        for name in PHOTO_SOURCES if ds.source is None else ():
            found = [it.image for it in items_in(data / name)]
            sources += found[:limit] if limit else found
        params = photos.PRESETS[photos.Preset(ds.photo)]
        for src in sources:
            photos.photograph_file(src, out_dir=Path(tmp), seed=PHOTO_SEED, params=params)
        yield items_in(Path(tmp))


def _settings(mode: str, engine: str, languages: Sequence[str], overrides: dict[str, Any]) -> Any:
    from ocrwatch.settings.model import load_settings

    base: dict[str, Any] = {"mode": mode, "languages": list(languages)}
    if engine != DEFAULT_ENGINE:
        base["engine"] = engine
    return load_settings(overrides={**base, **overrides})


def run(
    *,
    data: Path,
    sets: Sequence[str],
    engines: Sequence[str],
    modes: Sequence[str],
    limit: int | None,
    recognizer: Recognizer,
    overrides: dict[str, Any] | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run every set x engine x mode; return rows (totals) and items (per file) as data."""
    from ocrwatch.engines import EngineCache

    console = console or Console(stderr=True)
    rows: list[dict[str, Any]] = []
    per_item: list[dict[str, Any]] = []
    caches: dict[tuple[str, str, tuple[str, ...]], Any] = {}
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    try:
        with progress:
            for set_name in sets:
                ds = DATASETS[set_name]
                with dataset_items(ds, data=data, limit=limit) as items:
                    for engine in engines:
                        for mode_arg in modes:
                            mode = ds.kind if mode_arg == MATCH else mode_arg
                            settings = _settings(mode, engine, ds.languages, overrides or {})
                            key = (engine, mode, ds.languages)
                            if key not in caches:
                                caches[key] = EngineCache(settings)
                            cache = caches[key]
                            task = progress.add_task(
                                f"{set_name} {engine} {mode}", total=len(items)
                            )
                            scores: list[metrics.Score] = []
                            seconds: list[float] = []
                            used: dict[str, str] = {}
                            errors = 0
                            for item in items:
                                t0 = time.perf_counter()
                                try:
                                    reading = recognizer(item.image, settings, cache)
                                    error = None
                                except Exception as exc:  # one bad file must not stop a run
                                    reading = Reading("", 1, {})
                                    error = f"{type(exc).__name__}: {exc}"
                                    errors += 1
                                elapsed = time.perf_counter() - t0
                                s = metrics.score(item.truth, reading.text)
                                scores.append(s)
                                seconds.append(elapsed / reading.pages)
                                used.update(reading.engines)
                                per_item.append(
                                    {
                                        "set": set_name,
                                        "engine": engine,
                                        "mode": mode,
                                        "item": item.image.name,
                                        "seconds": round(elapsed, 3),
                                        "pages": reading.pages,
                                        "engines": reading.engines,
                                        "error": error,
                                        **s.as_dict(),
                                        "text": reading.text,
                                    }
                                )
                                progress.advance(task)
                            tot = metrics.total(scores)
                            rows.append(
                                {
                                    "set": set_name,
                                    "engine": engine,
                                    "mode": mode,
                                    "items": len(items),
                                    "errors": errors,
                                    "s_per_page_median": round(statistics.median(seconds), 3)
                                    if seconds
                                    else None,
                                    "engines_used": used,
                                    **tot.as_dict(),
                                }
                            )
    finally:
        for cache in caches.values():
            cache.close()
    return {"rows": rows, "items": per_item}


def table(rows: Sequence[dict[str, Any]], *, title: str) -> Table:
    """Return a rich table of result rows."""
    t = Table(title=title)
    cols = (
        "set",
        "engine",
        "mode",
        "items",
        "CER",
        "CER ci",
        "CER ot",
        "WER",
        "BoW rec",
        "BoW prec",
        "s/page",
    )
    for col in cols:
        t.add_column(col, justify="left" if col in ("set", "engine", "mode") else "right")
    for r in rows:
        t.add_row(
            r["set"],
            r["engine"],
            r["mode"],
            f"{r['items']}" + (f" ({r['errors']} err)" if r["errors"] else ""),
            f"{r['cer']:.4f}",
            f"{r['cer_ci']:.4f}",
            f"{r['cer_ot']:.4f}",
            f"{r['wer']:.4f}",
            f"{r['bow_recall']:.3f}",
            f"{r['bow_precision']:.3f}",
            "-" if r["s_per_page_median"] is None else f"{r['s_per_page_median']:.2f}",
        )
    return t


def setting_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Return load_settings overrides for ``KEY=VALUE`` pairs (dotted keys for nesting).

    A nested section is passed whole (its defaults with the changed keys), because a partial
    dict would replace the section's mode-specific defaults with the class defaults.
    """
    import json

    from ocrwatch.settings.model import load_settings

    if not pairs:
        return {}
    current = load_settings().model_dump(mode="json")
    touched: set[str] = set()
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set needs KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        *parents, leaf = key.strip().split(".")
        node = current
        for part in parents:
            node = node[part]
        if leaf not in node:
            raise SystemExit(f"unknown setting {key!r}")
        node[leaf] = value
        touched.add(parents[0] if parents else leaf)
    return {k: current[k] for k in touched}


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _resolve_sets(names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        name = ALIASES.get(name, name)
        if name not in DATASETS:
            valid = ", ".join([*DATASETS, *ALIASES])
            raise SystemExit(f"unknown set {name!r}; valid: {valid}")
        out.append(name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="eval data root")
    parser.add_argument(
        "--sets",
        type=_csv,
        default=REAL_SETS,
        help="comma-separated sets (aliases: iam, notes, spanish, pages, lines, photos, "
        "copiste (= copiste/test, held-out writers), copiste/validation; "
        "generated: photos-hard, synth/notes, synth/notes-photos, synth/notes-spa, "
        "synth/notes-spa-scans, photos/copiste-test, photos/copiste-validation, "
        "photos/spanish); default: the five real sets",
    )
    parser.add_argument("--photos", action="store_true", help="add the synthetic photo set")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="add the held-out sets: " + ", ".join(HELD_OUT_SETS),
    )
    parser.add_argument(
        "--engines",
        type=_csv,
        default=[DEFAULT_ENGINE],
        help="comma-separated engines; 'default' = the product's choice per mode",
    )
    parser.add_argument(
        "--modes",
        type=_csv,
        default=[MATCH],
        help="comma-separated: printed, handwritten, auto, match (= the set's kind)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N items of each set")
    parser.add_argument(
        "--variant",
        default="pipeline",
        help="recognizer: 'pipeline' (the product) or an experiment from bench.levers",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="product setting to override, dotted for nested ones "
        "(e.g. preprocess.handwritten.upscale=false, paddle.box_thresh=0.5); repeatable",
    )
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    args = parser.parse_args(argv)

    sets = _resolve_sets(args.sets)
    if args.photos and "photos" not in sets:
        sets.append("photos")
    if args.held_out:
        sets += [name for name in HELD_OUT_SETS if name not in sets]
    for mode in args.modes:
        if mode not in ("printed", "handwritten", "auto", MATCH):
            raise SystemExit(f"unknown mode {mode!r}; valid: printed, handwritten, auto, match")

    engine_environment()
    recognizer: Recognizer = pipeline_recognizer
    if args.variant != "pipeline":
        from bench import levers

        recognizer = levers.recognizer(args.variant)

    meta = run_metadata()
    started = time.perf_counter()
    result = run(
        data=args.data,
        sets=sets,
        engines=args.engines,
        modes=args.modes,
        limit=args.limit,
        recognizer=recognizer,
        overrides=setting_overrides(args.settings),
    )
    meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    out = {
        **meta,
        "variant": args.variant,
        "settings": args.settings,
        "photo_seed": PHOTO_SEED,
        "normalization": (metrics.__doc__ or "").strip(),
        **result,
    }
    console = Console(width=max(Console().width, 140))
    console.print(table(result["rows"], title=f"ocrwatch accuracy ({args.variant})"))
    path = write_json(out, out=args.out, stem="accuracy")
    console.print(f"wall {meta['wall_seconds']} s; results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
