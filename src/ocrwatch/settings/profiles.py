"""Hot folders: per-folder profiles (``[[profiles]]``), each a glob and its overrides.

Each profile has a ``match`` glob on the path relative to the inbox (POSIX separators) and
overrides for ``languages``, ``mode``, ``engine``, ``outputs``, ``after_success`` and
``preprocess`` (partial tables merged over the global ones), and ``notify``: Apprise URLs
told about this folder's files besides the global ones. The first profile that matches
wins; a file no profile matches is read with the global settings. Globs are fnmatch-style:
``*`` also crosses folders, so ``es/*`` and ``es/**`` both take everything under ``es/``, and
a leading ``**/`` also matches at the top (``**/*.jpg`` takes ``a.jpg``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from ocrwatch.settings.choices import AfterSuccess, Mode, OutputList, parse_languages
from ocrwatch.settings.sections import PreprocessSettings

__all__ = ["OVERRIDES", "Profile"]

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
    #: Apprise URLs told about this folder's files, besides ``[notify] urls`` (its own team).
    notify: list[SecretStr] | None = None
    #: Partial preprocessing tables, merged over the global ones: {"printed": {"deskew": false}}.
    preprocess: dict[str, dict[str, Any]] | None = None

    @property
    def label(self) -> str:
        """The profile's name, or its match pattern when it has none."""
        return self.name or self.match

    @field_validator("languages", mode="before")
    @classmethod
    def _languages(cls, v: Any) -> Any:
        return None if v is None else parse_languages(v)

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str | None) -> str | None:
        return None if v is None or not v.strip() else v.strip().lower()

    @field_validator("notify", mode="before")
    @classmethod
    def _notify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("preprocess")
    @classmethod
    def _preprocess(cls, v: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
        if v is not None:  # the same checks as the global tables, with defaults underneath
            PreprocessSettings.model_validate(v)
        return v
