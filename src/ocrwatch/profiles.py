"""Hot folders: per-folder profiles (``[[profiles]]``) and the settings a file is read with.

Each profile has a ``match`` glob on the path relative to the inbox (POSIX separators) and
overrides for ``languages``, ``mode``, ``engine``, ``outputs``, ``after_success`` and
``preprocess`` (partial tables merged over the global ones). The first profile that matches
wins; a file no profile matches is read with the global settings. Globs are fnmatch-style:
``*`` also crosses folders, so ``es/*`` and ``es/**`` both take everything under ``es/``, and
a leading ``**/`` also matches at the top (``**/*.jpg`` takes ``a.jpg``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from ocrwatch.choices import AfterSuccess, Mode, OutputList

if TYPE_CHECKING:
    from ocrwatch.config import Settings
    from ocrwatch.engines import EngineCache

__all__ = [
    "Profile",
    "after_success_for",
    "check_profiles",
    "effective_settings",
    "matching_profile",
]

#: Settings a profile can override (besides preprocess, which is merged table by table).
OVERRIDES = ("languages", "mode", "engine", "outputs", "after_success")


class Profile(BaseModel):
    """A hot folder: files whose inbox-relative path matches ``match`` get these overrides."""

    model_config = {"extra": "forbid"}

    match: str = Field(min_length=1, description="Glob on the inbox-relative path, 'es/**'.")
    name: str | None = Field(None, description="Name in logs and manifests; default: match.")
    languages: Annotated[list[str] | None, NoDecode] = None
    mode: Mode | None = None
    engine: str | None = None
    outputs: OutputList | None = None
    after_success: AfterSuccess | None = None
    #: Partial preprocessing tables, merged over the global ones: {"printed": {"deskew": false}}.
    preprocess: dict[str, dict[str, Any]] | None = None

    @property
    def label(self) -> str:
        """The profile's name, or its match pattern when it has none."""
        return self.name or self.match

    @field_validator("languages", mode="before")
    @classmethod
    def _languages(cls, v: Any) -> Any:
        from ocrwatch.config import Settings

        return None if v is None else Settings._split_languages(v)

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str | None) -> str | None:
        return None if v is None or not v.strip() else v.strip().lower()

    @field_validator("preprocess")
    @classmethod
    def _preprocess(cls, v: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
        if v is not None:  # the same checks as the global tables, with defaults underneath
            from ocrwatch.config import PreprocessSettings

            PreprocessSettings.model_validate(v)
        return v


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


def effective_settings(settings: Settings, relpath: str | PurePath) -> tuple[Settings, str | None]:
    """Return the settings to read ``relpath`` with and the profile's label (None: global).

    Pure: ``settings`` is not changed. The overrides were validated when the settings were
    loaded, so this raises nothing for a loaded configuration.
    """
    profile = matching_profile(settings.profiles, relpath)
    if profile is None:
        return settings, None
    return _apply(settings, profile), profile.label


def _apply(settings: Settings, profile: Profile) -> Settings:
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


def check_profiles(settings: Settings, engines: EngineCache) -> list[str]:
    """Check that each profile's engines exist and read its languages; return one line each.

    Raises ConfigError naming the first bad profile (unknown engine, missing language),
    DependencyError when an engine cannot be built.
    """
    from ocrwatch.exceptions import ConfigError
    from ocrwatch.pipeline import check_engines

    report = []
    for profile in settings.profiles:
        effective = _apply(settings, profile)
        try:
            needed = check_engines(effective, engines)
        except ConfigError as exc:
            raise ConfigError(f"profile {profile.label!r}: {exc.message}") from exc
        names = ", ".join(e.name for e in needed)
        langs = "+".join(effective.languages)
        report.append(f"profile {profile.label!r}: {effective.mode} with {names}, {langs}")
    return report
