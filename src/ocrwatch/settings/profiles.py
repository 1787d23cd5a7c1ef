"""Hot folders: per-folder profiles (``[[profiles]]``), each a glob and its overrides.

Each profile has a ``match`` glob on the path relative to the inbox (POSIX separators) and
overrides for ``languages``, ``mode``, ``engine``, ``outputs``, ``after_success`` and
``preprocess`` (partial tables merged over the global ones), and ``notify``: Apprise URLs
told about this folder's files besides the global ones. The first profile that matches
wins; a file no profile matches is read with the global settings. Globs are fnmatch-style:
``*`` also crosses folders, so ``es/*`` and ``es/**`` both take everything under ``es/``, and
a leading ``**/`` also matches at the top (``**/*.jpg`` takes ``a.jpg``). A pattern that no
inbox-relative path can match (absolute, with ``..``, ``.`` or an empty part, ending in
``/``, an unclosed ``[``) is refused at start.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from ocrwatch.settings.choices import AfterSuccess, Mode, OutputList, parse_languages
from ocrwatch.settings.sections import PreprocessSettings

__all__ = ["OVERRIDES", "Profile", "never_matches"]

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

    @field_validator("match")
    @classmethod
    def _match(cls, v: str) -> str:
        problem = never_matches(v)
        if problem:
            raise ValueError(f"{v!r} {problem}")
        return v

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


def _unclosed_bracket(pattern: str) -> bool:
    """Return True when a ``[`` opens a set that no ``]`` closes (fnmatch's rules)."""
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1  # a "]" first in the set is one of its characters
            j = pattern.find("]", j)
            if j < 0:
                return True
            i = j
        i += 1
    return False


def never_matches(pattern: str) -> str:
    """Return why ``pattern`` can never take a file ("" when it can), said after the pattern.

    Paths are relative to the inbox with POSIX separators and no ``.``, ``..`` or empty
    parts, and name files (never ending in ``/``). fnmatch reads an unclosed ``[`` as a
    literal bracket, which is almost always a mistake: it is refused with the way to write one.
    """
    if pattern.startswith("/"):
        return "can never match: patterns are relative to the inbox, never absolute (e.g. 'es/**')"
    if pattern.endswith("/"):
        return f"can never match: it names a folder, not its files (write '{pattern}**')"
    parts = pattern.split("/")
    if ".." in parts:
        return "can never match: '..' leaves the inbox, and every file is inside it"
    if "." in parts:
        return "can never match: paths have no '.' part (write the pattern without './')"
    if "" in parts:
        return "can never match: paths have no empty part ('//')"
    if _unclosed_bracket(pattern):
        return "is not a valid glob: an unclosed '[' (write '[[]' for a literal bracket)"
    return ""
