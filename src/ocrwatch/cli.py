"""The ``ocrwatch`` command (ocr, check, run, status); exceptions become exit codes here.

Exit codes (see :class:`ocrwatch.exceptions.ExitCode`): 0 all files done; 2 bad usage;
3 bad configuration (unknown engine/language, invalid setting, unsafe folders); 4 a missing
dependency (engine, language pack, poppler); 5 an input file could not be read; 6 recognition
failed; 7 an output could not be written; 130 interrupted. With several files, each is tried
and the exit code is that of the first file that failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ocrwatch._version import __version__
from ocrwatch.exceptions import ConfigError, DependencyError, ExitCode, OcrwatchError
from ocrwatch.settings.choices import ExecutorKind, Mode, OutputFormat, WatchMode
from ocrwatch.settings.model import Settings, load_settings
from ocrwatch.support.extras import check_extras

if TYPE_CHECKING:
    from ocrwatch.recognition.parallel import Unit

__all__ = ["build_parser", "main"]

log = structlog.get_logger()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", type=Path, help="TOML config file (default: $OCRWATCH_CONFIG)"
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["auto", "json", "console"])


def _recognition(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m", "--mode", choices=[m.value for m in Mode], help="printed, handwritten or auto"
    )
    parser.add_argument(
        "-l",
        "--lang",
        action="append",
        metavar="LANG",
        help="language code(s): eng, spa, ... (repeat, or eng+spa)",
    )
    parser.add_argument("-e", "--engine", help="force an engine: tesseract, paddle, aspose, ...")


def _outputs(parser: argparse.ArgumentParser) -> None:
    names = ",".join(f.value for f in OutputFormat)
    parser.add_argument(
        "--outputs",
        metavar="LIST",
        help=f"what to write per file, of {names} (txt and json always are)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``ocrwatch`` command."""
    parser = argparse.ArgumentParser(
        prog="ocrwatch",
        description="Recognize text in scans and photos; watch a folder and write sidecars.",
        epilog="Exit codes: 0 ok, 2 usage, 3 config, 4 missing dependency, 5 input error, "
        "6 engine error, 7 output error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"ocrwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _ocr_parser(sub)
    check = sub.add_parser("check", help="verify engines, languages and tools are installed")
    _recognition(check)
    _common(check)
    _run_parser(sub)
    _worker_parser(sub)
    _status_parser(sub)
    return parser


def _ocr_parser(sub: Any) -> None:
    ocr = sub.add_parser(
        "ocr",
        help="recognize files now",
        description="Print the text of FILE (one file) or write sidecars with -o.",
    )
    ocr.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ocr.add_argument(
        "-o", "--output-dir", type=Path, help="write FILE.txt + FILE.json sidecars into this folder"
    )
    ocr.add_argument(
        "--json", action="store_true", help="print one JSON object per file (text + manifest)"
    )
    ocr.add_argument("--no-progress", action="store_true", help="no progress bar")
    ocr.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        metavar="N",
        help="worker processes reading pages and files at once (default: from CPUs and memory)",
    )
    _outputs(ocr)
    _recognition(ocr)
    _common(ocr)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="watch the inbox and process every file (the daemon)")
    run.add_argument("--inbox", type=Path)
    run.add_argument("--outbox", type=Path)
    run.add_argument("--archive", type=Path)
    run.add_argument("--quarantine", type=Path)
    run.add_argument("--state-dir", type=Path)
    run.add_argument("--watch-mode", choices=[w.value for w in WatchMode])
    run.add_argument("--workers", type=int)
    run.add_argument(
        "--metrics-port", type=int, help="serve Prometheus /metrics on this port (metrics_port)"
    )
    _outputs(run)
    _recognition(run)
    _common(run)


def _status_parser(sub: Any) -> None:
    status = sub.add_parser("status", help="show the journal: counts, backlog, failures")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--state-dir", type=Path)
    status.add_argument("--outbox", type=Path)
    status.add_argument("--inbox", type=Path)
    status.add_argument("--archive", type=Path)
    status.add_argument("--quarantine", type=Path)
    _common(status)


def _worker_parser(sub: Any) -> None:
    worker = sub.add_parser(
        "worker",
        help="recognize for a coordinator on another host (executor = celery)",
        description="A Celery worker: takes tasks from [celery] broker_url, recognizes, writes "
        "the outputs on the shared outbox, answers the coordinator.",
    )
    worker.add_argument(
        "--concurrency", type=int, help="worker processes (default: from CPUs and memory)"
    )
    _recognition(worker)
    _common(worker)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = {}
    for key in (
        "mode",
        "engine",
        "inbox",
        "outbox",
        "archive",
        "quarantine",
        "state_dir",
        "watch_mode",
        "workers",
        "log_level",
        "log_format",
        "outputs",
        "metrics_port",
    ):
        value = getattr(args, key, None)
        if value is not None:
            over[key] = value
    if getattr(args, "lang", None):
        over["languages"] = "+".join(args.lang)
    return over


def _setup_logging(settings: Settings, *, stream: Any) -> None:
    from ocrwatch.support.logsetup import configure

    configure(level=settings.log_level, fmt=settings.log_format, stream=stream)


def _error(message: str) -> None:
    print(f"ocrwatch: error: {message}", file=sys.stderr)


def entry() -> None:
    """The ``ocrwatch`` program: :func:`main`, ending ``ocr`` without interpreter teardown.

    A one-file ``ocrwatch ocr`` would spend a good part of its start-up budget again at exit,
    freeing its word lists and onnxruntime sessions (bench/README.md). Every output is written
    and synced by then, so the process flushes its streams and ends at once, unless a profiler
    or coverage is watching. Other commands exit as usual.
    """
    sys.exit(main(quick_exit=True))


def _exit_now(code: int) -> int:
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return code  # a profiler or coverage is watching: let it write its report at exit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            code = code or int(ExitCode.FAILURE)
    os._exit(code)


def main(argv: Sequence[str] | None = None, *, quick_exit: bool = False) -> int:
    """Run the ``ocrwatch`` command; return its exit code (``quick_exit``: see :func:`entry`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(config_file=args.config, overrides=_overrides(args))
        if args.command in ("run", "worker"):  # a setting that needs a missing extra
            check_extras(settings, worker=args.command == "worker")
        if args.command == "ocr":
            _setup_logging(settings, stream=_Stderr())
            code = _cmd_ocr(args, settings)
            return _exit_now(code) if quick_exit else code
        if args.command == "check":
            _setup_logging(settings, stream=_Stderr())
            return _cmd_check(args, settings)
        if args.command == "run":
            # The daemon logs to stdout: journald keeps it, one JSON line per event.
            _setup_logging(settings, stream=sys.stdout)
            from ocrwatch.daemon.coordinator import run

            _check_daemon_start(settings)
            return run(settings)
        if args.command == "worker":
            _setup_logging(settings, stream=sys.stdout)
            from ocrwatch.daemon.celery_worker import run_worker
            from ocrwatch.support.workers import default_workers

            return run_worker(settings, concurrency=args.concurrency or default_workers())
        if args.command == "status":
            _setup_logging(settings, stream=_Stderr())
            from ocrwatch.daemon.status import report

            return report(settings, as_json=args.json)
        parser.error(f"unknown command {args.command}")  # pragma: no cover
    except OcrwatchError as exc:
        _error(str(exc))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _error("interrupted")
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.FAILURE)  # pragma: no cover


class _Stderr:
    """A stream that always writes to the current ``sys.stderr`` (rich may redirect it)."""

    def write(self, data: str) -> int:
        return sys.stderr.write(data)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _check_pdf_libraries() -> int:
    """Print whether the searchable-PDF libraries import; return 1 if one does not."""
    from importlib.metadata import version

    try:
        import img2pdf  # noqa: F401
        import ocrmypdf.fpdf_renderer  # noqa: F401
        import pikepdf  # noqa: F401
    except ImportError as exc:
        print(f"{'MISSING':8} {'pdf':10} {exc}; pip install 'ocrmypdf>=17.13,<18' pikepdf img2pdf")
        return 1
    names = ", ".join(f"{n} {version(n)}" for n in ("ocrmypdf", "pikepdf", "img2pdf"))
    print(f"{'ok':8} {'pdf':10} {names}")
    return 0


def _check_profiles(settings: Settings) -> list[str]:
    """Raise ConfigError naming the first profile whose engines or languages are unusable."""
    from ocrwatch.engines import EngineCache
    from ocrwatch.recognition.pipeline import check_profiles

    engines = EngineCache(settings)
    try:
        return check_profiles(settings, engines)
    finally:
        engines.close()


def _check_daemon_start(settings: Settings) -> None:
    """Refuse at start what would fail every file: languages or profiles no engine reads.

    Raises ConfigError naming the language (and the profile), DependencyError when a
    profile's engine cannot be built. With the local executor the engines are asked; with
    Celery the workers hold them, so only the profiles are checked here. A global engine
    that cannot be built is left to the workers, which defer files until it can be.
    The engines are built in a forked child (nothing else runs yet): the daemon itself
    never reads a page, and a loaded recognizer would stay in its memory (about 100 MB).
    """
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_start_check, args=(settings, writer), name="ocrwatch-check")
    child.start()
    writer.close()
    try:
        kind, message = reader.recv()
    except EOFError:  # the child died (a native crash): the workers will say what is wrong
        kind, message = "", ""
    finally:
        reader.close()
        child.join()
    if kind == "config":
        raise ConfigError(message)
    if kind == "dependency":
        raise DependencyError(message)


def _start_check(settings: Settings, writer: Any) -> None:
    """In the child of :func:`_check_daemon_start`: send (kind, message) of the first problem."""
    from ocrwatch.engines import EngineCache
    from ocrwatch.recognition.pipeline import check_engines

    answer = ("", "")
    try:
        if settings.executor is ExecutorKind.LOCAL:
            engines = EngineCache(settings)
            try:
                check_engines(settings, engines)
            except DependencyError as exc:
                log.warning("engine.unavailable", error=str(exc), detail="files wait until it is")
            finally:
                engines.close()
        if settings.profiles:
            _check_profiles(settings)
    except ConfigError as exc:
        answer = ("config", exc.message)
    except DependencyError as exc:
        answer = ("dependency", exc.message)
    finally:
        writer.send(answer)
        writer.close()


def _prepare_engines(settings: Settings) -> Any:
    """Build the engines the settings need and fail fast on engine/language problems."""
    from ocrwatch.engines import EngineCache
    from ocrwatch.recognition.pipeline import check_engines

    engines = EngineCache(settings)
    check_engines(settings, engines)
    return engines


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Any]:
    """Yield ``advance(pages, name)`` for a progress bar of ``total`` pages, or None."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        task = progress.add_task("pages", total=total)
        yield lambda pages, name: progress.update(task, advance=pages, description=name)


def _cmd_ocr(args: argparse.Namespace, settings: Settings) -> int:
    """Read every file, pages and files in parallel on ``--jobs`` workers; return the code."""
    from ocrwatch.support.workers import default_workers

    files: list[Path] = args.files
    if args.outputs and args.output_dir is None:
        _error("--outputs needs -o/--output-dir (stdout carries the text only)")
        return int(ExitCode.USAGE)
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    jobs = args.jobs or default_workers()
    show_progress = len(files) > 1 and not args.no_progress and sys.stderr.isatty()
    units: list[tuple[Unit, ...]] = []
    if jobs > 1 or show_progress:
        from ocrwatch.engines import reads_whole_pdfs
        from ocrwatch.recognition.parallel import plan

        split = not reads_whole_pdfs(settings.engine)
        units = plan(files, settings=settings, jobs=jobs, split=split)
    total = sum(u.count for doc in units for u in doc) if units else len(files)
    with _progress(total, enabled=show_progress) as advance:
        if jobs > 1 and sum(len(doc) for doc in units) > 1:
            return _ocr_parallel(args, settings, units, jobs=jobs, advance=advance)
        return _ocr_sequential(args, settings, advance=advance)


def _ocr_sequential(args: argparse.Namespace, settings: Settings, *, advance: Any) -> int:
    """Read the files one after another, in this process."""
    from ocrwatch.recognition.pipeline import recognize_file

    files: list[Path] = args.files
    engines = _prepare_engines(settings)
    first_failure: int | None = None
    try:
        for index, path in enumerate(files):
            on_page = None if advance is None else (lambda _r, name=path.name: advance(1, name))

            def read(path: Path = path, on_page: Any = on_page) -> Any:
                return recognize_file(path, settings=settings, engines=engines, on_page=on_page)

            code = _ocr_one(args, settings, path, read, first=index == 0)
            first_failure = first_failure or code
    finally:
        engines.close()
    return first_failure or int(ExitCode.OK)


def _ocr_parallel(
    args: argparse.Namespace,
    settings: Settings,
    units: list[tuple[Unit, ...]],
    *,
    jobs: int,
    advance: Any,
) -> int:
    """Read the files' page ranges on worker processes; print and write in file order."""
    from concurrent.futures.process import BrokenProcessPool

    from ocrwatch.recognition.parallel import ParallelReader

    first_failure: int | None = None
    size = min(jobs, sum(len(doc) for doc in units))
    on_pages = None if advance is None else (lambda n, path: advance(n, path.name))
    path: Path = args.files[0]
    with ParallelReader(settings, jobs=size) as reader:
        outcomes = reader.read(units, on_pages=on_pages)
        _preload_outputs(settings)  # while the workers start and read
        try:
            for index, outcome in enumerate(outcomes):
                path = outcome.path
                code = _ocr_one(args, settings, path, outcome.result, first=index == 0)
                first_failure = first_failure or code
        except BrokenProcessPool:
            # A worker died (a native crash, the OOM killer): the pool cannot go on.
            _error(f"{path}: a worker process ended abruptly; try --jobs 1")
            return first_failure or int(ExitCode.ENGINE)
    return first_failure or int(ExitCode.OK)


def _preload_outputs(settings: Settings) -> None:
    """Import the output writers now (about 0.5 s for the searchable PDF's libraries)."""
    from ocrwatch.outputs import writer  # noqa: F401

    if OutputFormat.PDF in settings.outputs:
        import ocrmypdf.fpdf_renderer  # noqa: F401
        import pikepdf.pdfa  # noqa: F401

        from ocrwatch.outputs import pdf  # noqa: F401


def _ocr_one(
    args: argparse.Namespace,
    settings: Settings,
    path: Path,
    read: Callable[[], Any],
    *,
    first: bool,
) -> int | None:
    """Take one file's reading from ``read``, write or print its outputs.

    Return its exit code when it failed; ConfigError and DependencyError end the command.
    """
    from ocrwatch.outputs.writer import sidecar_path, write_outputs

    bound = log.bind(path=str(path))
    source_id = str(path.resolve())
    try:
        result = read()
        outputs = None
        if args.output_dir is not None:
            outputs = write_outputs(
                result,
                txt_path=sidecar_path(path.name, out_dir=args.output_dir),
                source_id=source_id,
                formats=settings.outputs,
            )
        _emit(args, result, outputs, source_id=source_id, several=len(args.files) > 1, first=first)
        bound.info(
            "document.processed",
            pages=len(result.pages),
            engines=result.engines,
            confidence=None if result.confidence is None else round(result.confidence, 3),
            seconds=result.timings.get("total"),
            sidecar=None if outputs is None else str(outputs.txt),
        )
    except (ConfigError, DependencyError):
        raise
    except OcrwatchError as exc:
        bound.warning("document.failed", reason=exc.reason, error=exc.message)
        _error(str(exc))
        return int(exc.exit_code)
    except OSError as exc:
        bound.warning("document.failed", reason="unreadable", error=str(exc))
        _error(f"{path}: cannot read file ({exc.strerror or exc})")
        return int(ExitCode.INPUT)
    return None


def _emit(
    args: argparse.Namespace,
    result: Any,
    outputs: Any,
    *,
    source_id: str,
    several: bool,
    first: bool,
) -> None:
    """Write one file's result to stdout as the flags ask."""
    from ocrwatch.outputs.writer import build_manifest

    if args.json:
        manifest = build_manifest(
            result,
            source_id=source_id,
            txt_name="" if outputs is None else outputs.txt.name,
        )
        manifest["text"] = result.text
        print(json.dumps(manifest, ensure_ascii=False), flush=True)
        return
    if args.output_dir is not None:
        return
    if several:
        print(("" if first else "\n") + f"==> {result.source.path} <==", flush=True)
    sys.stdout.write(result.text)
    sys.stdout.flush()


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from ocrwatch.engines import engine_class

    names = (
        [settings.engine]
        if settings.engine
        else [*dict.fromkeys([settings.printed_engine, settings.handwritten_engine])]
    )
    failures = 0
    for tool in ("pdftoppm", "pdfinfo"):
        where = shutil.which(tool)
        print(
            f"{'ok' if where else 'MISSING':8} {tool:10} {where or 'apt-get install poppler-utils'}"
        )
        failures += where is None
    failures += _check_pdf_libraries()
    for name in names:
        try:
            engine = engine_class(name).from_settings(settings)
            problems = engine.check(settings.languages)
            langs = ", ".join(sorted(engine.languages()))
            status = "ok" if not problems else "MISSING"
            print(f"{status:8} {name:10} {engine.version()}; languages: {langs}")
            for problem in problems:
                print(f"{'':8} {'':10} {problem}")
            failures += bool(problems)
            engine.close()
        except ConfigError as exc:
            print(f"{'ERROR':8} {name:10} {exc}")
            return int(ExitCode.CONFIG)
        except DependencyError as exc:
            print(f"{'MISSING':8} {name:10} {exc}")
            failures += 1
    if settings.profiles:
        try:
            for line in _check_profiles(settings):
                print(f"{'ok':8} {line}")
        except ConfigError as exc:
            print(f"{'ERROR':8} {exc}")
            return int(ExitCode.CONFIG)
    if settings.notify.urls or any(p.notify for p in settings.profiles):
        from ocrwatch.daemon.notify import check_urls

        try:
            check_urls(settings)  # the same check `run` makes at start; URLs shown redacted
        except ConfigError as exc:
            print(f"{'ERROR':8} {'notify':10} {exc}")
            return int(ExitCode.CONFIG)
        print(f"{'ok':8} {'notify':10} every notification URL is one Apprise understands")
    return int(ExitCode.DEPENDENCY) if failures else int(ExitCode.OK)
