"""Settings: one typed object from defaults < TOML file < secrets dir < environment < CLI flags.

Environment variables use the ``OCRWATCH_`` prefix and ``__`` for nesting
(``OCRWATCH_PADDLE__DET_THRESH=0.3``); secret files are named like the key
(``aspose__client_secret``). The TOML file is the one given with ``--config``, or
``OCRWATCH_CONFIG``, or ``/etc/ocrwatch/ocrwatch.toml`` when it exists. Secrets (the Aspose
client secret) can also come from files in a secrets directory: ``$CREDENTIALS_DIRECTORY``
(systemd ``LoadCredential=``) or ``OCRWATCH_SECRETS_DIR``. ``config/ocrwatch.example.toml``
documents every key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from ocrwatch.exceptions import ConfigError
from ocrwatch.settings.choices import (
    AfterSuccess,
    DuplicatePolicy,
    ExecutorKind,
    LogFormat,
    Mode,
    OutputFormat,
    OutputList,
    WatchMode,
    parse_languages,
)
from ocrwatch.settings.profiles import Profile
from ocrwatch.settings.sections import (
    AsposeSettings,
    CelerySettings,
    NotifySettings,
    PaddleSettings,
    PreprocessSettings,
    RetrySettings,
    TesseractSettings,
)

__all__ = [
    "Settings",
    "default_config_file",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("/etc/ocrwatch/ocrwatch.toml")


class Settings(BaseSettings):
    """All of ocrwatch's settings. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="OCRWATCH_",
        env_nested_delimiter="__",
        # Secret files are named like the key without the env prefix, nested with "__":
        # a file "aspose__client_secret" in $CREDENTIALS_DIRECTORY sets aspose.client_secret.
        secrets_nested_delimiter="__",
        secrets_prefix="",
        extra="forbid",
        validate_default=True,
        case_sensitive=False,
    )

    # --- recognition -----------------------------------------------------------------------
    mode: Mode = Field(Mode.AUTO, description="printed, handwritten or auto (decided per page).")
    engine: str | None = Field(
        None, description="Force one engine (tesseract, paddle, aspose, ...); default per mode."
    )
    printed_engine: str = Field("tesseract", description="The engine for printed pages.")
    handwritten_engine: str = Field("paddle", description="The engine for handwritten pages.")
    # NoDecode: env values are 'eng,spa' or 'eng+spa' (split below), not JSON.
    languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["eng"],
        description="Tesseract-style language codes: eng, spa, deu, fra, ... ('eng+spa' ok).",
    )
    auto_printed_confidence: float = Field(
        85.0,
        ge=0,
        le=100,
        description="auto mode: a page whose Tesseract mean word confidence reaches this is "
        "taken as printed; below it the page is read by the handwriting engine.",
    )

    spellcheck: bool = Field(
        True,
        description="Correct unknown words on handwritten pages read in English only "
        "(symspellpy's English frequency dictionary); numbers and known words never change.",
    )

    # --- loading -----------------------------------------------------------------------------
    pdf_dpi: int = Field(300, ge=72, le=600, description="Rasterization DPI for PDF pages.")
    max_pixels: int = Field(
        120_000_000, ge=1_000_000, description="Largest page in pixels (decompression bombs)."
    )
    max_file_bytes: int = Field(512 * 1024 * 1024, ge=1024, description="Largest input file.")
    max_pages: int = Field(500, ge=1, description="Most pages read from one document.")
    preprocess: PreprocessSettings = Field(default_factory=PreprocessSettings)

    # --- engines -----------------------------------------------------------------------------
    tesseract: TesseractSettings = Field(default_factory=TesseractSettings)
    paddle: PaddleSettings = Field(default_factory=PaddleSettings)
    aspose: AsposeSettings = Field(default_factory=AsposeSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    engines: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Sections of entry-point engines: [engines.NAME] tables, checked by the "
        "engine's own settings model.",
    )
    executor: ExecutorKind = Field(
        ExecutorKind.LOCAL, description="local (worker processes here) or celery (many hosts)."
    )
    celery: CelerySettings = Field(default_factory=CelerySettings)
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve Prometheus metrics over HTTP on this port (off when unset).",
    )
    metrics_address: str = Field("127.0.0.1", description="Address the metrics server binds.")
    notify: NotifySettings = Field(default_factory=NotifySettings)

    # --- outputs and hot folders --------------------------------------------------------------
    outputs: OutputList = Field(
        default_factory=lambda: [OutputFormat.TXT, OutputFormat.JSON],
        description="txt, json, pdf (searchable), hocr, alto; txt and json are always written.",
    )
    profiles: list[Profile] = Field(
        default_factory=list, description="Hot folders: [[profiles]] tables, first match wins."
    )

    # --- logging -----------------------------------------------------------------------------
    log_level: str = Field("info", description="debug, info, warning or error.")
    log_format: LogFormat = Field(LogFormat.AUTO, description="auto, json or console.")

    # --- daemon (ocrwatch run) ---------------------------------------------------------------
    inbox: Path | None = Field(None, description="Folder tree to watch (required for run).")
    outbox: Path | None = Field(None, description="Where sidecars go (required for run).")
    archive: Path | None = Field(
        None, description="Originals after success; default <outbox>/.ocrwatch/archive."
    )
    quarantine: Path | None = Field(
        None, description="Failed originals + reason; default <outbox>/.ocrwatch/quarantine."
    )
    state_dir: Path | None = Field(
        None,
        description="Journal; default $STATE_DIRECTORY or ~/.local/state/ocrwatch/<inbox>-<hash>.",
    )
    after_success: AfterSuccess = Field(AfterSuccess.ARCHIVE, description="archive, keep, delete.")
    duplicates: DuplicatePolicy = Field(
        DuplicatePolicy.PROCESS, description="process or skip files whose sha256 was seen."
    )
    watch_mode: WatchMode = Field(WatchMode.AUTO, description="auto, inotify or polling.")
    poll_interval: float = Field(5.0, gt=0, le=3600, description="Polling interval in seconds.")
    rescan_interval: float = Field(300.0, ge=0, description="Full rescan period; 0 = off.")
    quiet_period: float = Field(
        2.0, ge=0, le=3600, description="Seconds a file must stay unchanged before processing."
    )
    incomplete_timeout: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="Seconds a quiet file that does not decode yet (a scanner still writing, "
        "or one that pre-allocated zeros) is probed again before it is quarantined.",
    )
    peer_lease: float = Field(
        120.0,
        ge=5,
        description="Seconds without a heartbeat after which a peer daemon sharing the inbox "
        "is taken for dead and its claimed files are adopted.",
    )
    workers: int = Field(0, ge=0, le=64, description="Worker processes; 0 = from CPU count.")
    queue_size: int = Field(1000, ge=1, description="Most claimed files waiting for a worker.")
    file_timeout: float = Field(600.0, gt=0, description="Per-file time limit in seconds.")
    stop_timeout: float = Field(60.0, gt=0, description="Seconds to finish in-flight work on stop.")
    ignore_patterns: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Extra glob patterns to ignore (names, not paths)."
    )

    # Known languages Tesseract-style; engines decide which they can do.
    @field_validator("languages", mode="before")
    @classmethod
    def _split_languages(cls, v: Any) -> Any:
        return parse_languages(v)

    @field_validator("profiles", mode="before")
    @classmethod
    def _named_profiles(cls, v: Any) -> Any:
        # Name the bad profile by its name or match, not by its position in the list.
        if not isinstance(v, list):
            return v
        out = []
        for n, item in enumerate(v, start=1):
            if isinstance(item, Profile):
                out.append(item)
                continue
            label = (item.get("name") or item.get("match")) if isinstance(item, dict) else None
            try:
                out.append(Profile.model_validate(item))
            except ValidationError as exc:
                raise ValueError(
                    f"profile {label or n!r}: {_format_validation_error(exc, prefix='')}"
                ) from None
        return out

    @field_validator("ignore_patterns", mode="before")
    @classmethod
    def _split_patterns(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.lower()
        if v not in ("debug", "info", "warning", "error"):
            raise ValueError("must be one of debug, info, warning, error")
        return v

    @field_validator("engine", "printed_engine", "handwritten_engine")
    @classmethod
    def _engine_lower(cls, v: str | None) -> str | None:
        return None if v is None or not v.strip() else v.strip().lower()

    @model_validator(mode="after")
    def _resolve_relative_paths(self) -> Settings:
        for name in ("inbox", "outbox", "archive", "quarantine", "state_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())
        return self

    # Set per load by load_settings(); a class attribute so the sources hook can see it.
    _toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            NestedSecretsSettingsSource(file_secret_settings),
        ]
        toml_file = getattr(settings_cls, "_toml_file", None)
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def engine_section(self, name: str, model: type[BaseModel]) -> BaseModel:
        """Return engine ``name``'s settings section (a built-in's, or ``[engines.NAME]``).

        Raises ConfigError naming the key for an invalid ``[engines.NAME]`` table.
        """
        if name in ("tesseract", "paddle", "aspose"):
            section: BaseModel = getattr(self, name)
            return section
        try:
            return model.model_validate(self.engines.get(name, {}))
        except ValidationError as exc:
            message = _format_validation_error(exc, prefix="")
            raise ConfigError(f"invalid configuration: engines.{name}: {message}") from exc

    def masked(self) -> dict[str, Any]:
        """Return the effective settings as JSON-able data, secrets masked (for logs)."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********'


def default_config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the config file to read when none is given, or None."""
    env = os.environ if environ is None else environ
    if env.get("OCRWATCH_CONFIG"):
        return Path(env["OCRWATCH_CONFIG"]).expanduser()
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _secrets_dir(environ: Mapping[str, str]) -> Path | None:
    for var in ("OCRWATCH_SECRETS_DIR", "CREDENTIALS_DIRECTORY"):
        value = environ.get(var)
        if value and Path(value).is_dir():
            return Path(value)
    return None


def _format_validation_error(
    exc: ValidationError, *, prefix: str = "invalid configuration: "
) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err.get("loc", ())) or "<settings>"
        msg = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden":
            msg = "unknown setting"
        parts.append(f"{key}: {msg}")
    return prefix + "; ".join(parts)


def load_settings(
    *,
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from all sources; CLI ``overrides`` win (None values are dropped).

    Raises ConfigError naming the offending key for any invalid value or unreadable file.
    """
    env = os.environ if environ is None else environ
    path = config_file if config_file is not None else default_config_file(env)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
    Settings._toml_file = path
    init = {k: v for k, v in (overrides or {}).items() if v is not None}
    secrets = _secrets_dir(env)
    try:
        if secrets is not None:
            return Settings(_secrets_dir=secrets, **init)
        return Settings(**init)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from exc
    except SettingsError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    except (OSError, ValueError) as exc:  # TOML syntax errors are ValueErrors
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    finally:
        Settings._toml_file = None
