"""Optional extras (``pip install 'ocrwatch[celery]'``): which settings need one, and the stop.

``pip install ocrwatch`` is the embedded default: local engines, local worker processes.
Celery with redis-py (``executor = "celery"``, ``ocrwatch worker``), the Aspose SDK (engine
``aspose``) and ``limits`` (a ``requests_per_second`` cap) come with extras. Whether a package
is there is asked with :func:`importlib.util.find_spec`, which does not import it; a setting
that needs a missing one stops at start with a :class:`~ocrwatch.exceptions.DependencyError`
naming the extra.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ocrwatch.exceptions import DependencyError
from ocrwatch.settings.choices import ExecutorKind, Mode

if TYPE_CHECKING:
    from ocrwatch.settings.model import Settings

__all__ = ["EXTRAS", "check_extras", "missing", "require"]

#: Extra -> the modules it brings that ocrwatch imports (pyproject.toml's optional deps).
EXTRAS: dict[str, tuple[str, ...]] = {
    "celery": ("celery", "redis", "limits"),
    "aspose": ("aspose_ocr_cloud", "limits"),
}


def missing(modules: Iterable[str]) -> list[str]:
    """Return the ones of ``modules`` that cannot be imported (nothing is imported)."""
    gone = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # an import hook that refuses it, a broken parent
            found = False
        if not found:
            gone.append(name)
    return gone


def require(extra: str, *, needed_by: str, modules: Iterable[str] | None = None) -> None:
    """Raise DependencyError naming ``extra`` when its ``modules`` (default: all) are missing.

    ``needed_by`` says what asked for it: ``executor = "celery"``, ``engine 'aspose'``.
    """
    gone = missing(EXTRAS[extra] if modules is None else modules)
    if gone:
        names = ", ".join(gone)
        raise DependencyError(
            f"{needed_by} needs the {extra!r} extra ({names} not installed): "
            f"pip install 'ocrwatch[{extra}]'"
        )


def _engines_used(settings: Settings) -> set[str]:
    """Return the engine names the settings (with their profiles) may read pages with."""
    names = {p.engine for p in settings.profiles if p.engine}
    if settings.engine:
        return names | {settings.engine}
    modes = {settings.mode} | {p.mode for p in settings.profiles if p.mode is not None}
    if modes & {Mode.PRINTED, Mode.AUTO}:
        names.add(settings.printed_engine)
    if modes & {Mode.HANDWRITTEN, Mode.AUTO}:
        names.add(settings.handwritten_engine)
    return names


def check_extras(settings: Settings, *, worker: bool = False) -> None:
    """Stop at start when ``settings`` (or ``ocrwatch worker``) need an extra that is missing.

    Raises DependencyError naming the first extra that is needed and not installed.
    """
    if worker:
        require("celery", needed_by="ocrwatch worker", modules=("celery", "redis"))
    elif settings.executor is ExecutorKind.CELERY:
        require("celery", needed_by='executor = "celery"', modules=("celery", "redis"))
    if "aspose" in _engines_used(settings):
        require("aspose", needed_by="engine 'aspose'", modules=("aspose_ocr_cloud",))
        if settings.aspose.requests_per_second is not None:
            require("aspose", needed_by="aspose.requests_per_second", modules=("limits",))
