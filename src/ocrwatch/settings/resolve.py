"""The settings one file is read with: the global ones, or its hot-folder profile's over them.

The coordinator resolves them once per file (:func:`task_values`) and sends them with the
task; a worker reads with them (:func:`with_task_values`), not with its own.

Globs are fnmatch-style: ``*`` also crosses folders, so ``es/*`` and ``es/**`` both take
everything under ``es/``, and a leading ``**/`` also matches at the top.
"""

from __future__ import annotations

import hashlib
import json
from fnmatch import fnmatchcase
from pathlib import PurePath
from typing import Any

from ocrwatch.settings.choices import AfterSuccess
from ocrwatch.settings.model import Settings
from ocrwatch.settings.profiles import OVERRIDES, Profile

__all__ = [
    "TASK_KEYS",
    "after_success_for",
    "apply_profile",
    "effective_settings",
    "matching_profile",
    "notify_urls_for",
    "task_values",
    "values_digest",
    "with_task_values",
]


def _matches(pattern: str, relpath: str) -> bool:
    if fnmatchcase(relpath, pattern):
        return True
    return pattern.startswith("**/") and fnmatchcase(relpath, pattern[3:])


def matching_profile(profiles: list[Profile], relpath: str | PurePath) -> Profile | None:
    """Return the first profile whose ``match`` takes ``relpath``, or None."""
    rel = PurePath(relpath).as_posix()
    return next((p for p in profiles if _matches(p.match, rel)), None)


def after_success_for(settings: Settings, relpath: str | PurePath) -> AfterSuccess:
    """Return what happens to ``relpath``'s original after success (its profile, or global)."""
    profile = matching_profile(settings.profiles, relpath)
    if profile is not None and profile.after_success is not None:
        return profile.after_success
    return settings.after_success


def notify_urls_for(settings: Settings, relpath: str | PurePath | None) -> tuple[str, ...]:
    """Return the Apprise URLs told about ``relpath``: ``[notify] urls`` and its profile's.

    ``None`` (an event of the whole daemon) gets the global URLs only. Secrets: keep the
    result out of logs.
    """
    urls = [u.get_secret_value() for u in settings.notify.urls]
    profile = None if relpath is None else matching_profile(settings.profiles, relpath)
    if profile is not None and profile.notify:
        urls += [u.get_secret_value() for u in profile.notify]
    return tuple(dict.fromkeys(urls))


def effective_settings(settings: Settings, relpath: str | PurePath) -> tuple[Settings, str | None]:
    """Return the settings to read ``relpath`` with and the profile's label (None: global).

    Pure: ``settings`` is not changed. The overrides were validated when the settings were
    loaded, so this raises nothing for a loaded configuration.
    """
    profile = matching_profile(settings.profiles, relpath)
    if profile is None:
        return settings, None
    return apply_profile(settings, profile), profile.label


def apply_profile(settings: Settings, profile: Profile) -> Settings:
    """Return ``settings`` with ``profile``'s overrides."""
    update: dict[str, Any] = {
        key: getattr(profile, key) for key in OVERRIDES if getattr(profile, key) is not None
    }
    if profile.preprocess:
        merged = settings.preprocess.model_dump()
        for kind, table in profile.preprocess.items():
            merged[kind] = {**merged.get(kind, {}), **table}
        update["preprocess"] = type(settings.preprocess).model_validate(merged)
    return settings.model_copy(update=update)


#: What a task carries: every setting that decides what a recognition reads or writes, with
#: the profile already applied (so no profiles), and no secrets (each host keeps its own).
TASK_KEYS = frozenset(
    {
        "mode", "engine", "printed_engine", "handwritten_engine", "languages",
        "auto_printed_confidence", "spellcheck", "pdf_dpi", "max_pixels", "max_file_bytes",
        "max_pages", "preprocess", "tesseract", "paddle", "engines", "outputs",
    }
)  # fmt: skip


def task_values(settings: Settings, relpath: str | PurePath) -> tuple[dict[str, Any], str | None]:
    """Return the JSON-able settings ``relpath`` is read with and its profile's label."""
    effective, profile = effective_settings(settings, relpath)
    values = effective.model_dump(mode="json", include=set(TASK_KEYS))
    return values, profile


def with_task_values(settings: Settings, values: dict[str, Any]) -> Settings:
    """Return ``settings`` with the ``values`` a task carries (validated; profiles dropped).

    Raises ValueError when ``values`` are not valid settings (another ocrwatch version).
    """
    unknown = set(values) - TASK_KEYS
    if unknown:
        raise ValueError(f"unknown task settings: {', '.join(sorted(unknown))}")
    data = {**settings.model_dump(), **values, "profiles": []}
    return type(settings).model_validate(data)


def values_digest(values: dict[str, Any]) -> str:
    """Return a short digest of task settings (the same values give the same digest)."""
    raw = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]
