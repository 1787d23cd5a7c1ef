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

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from ocrwatch.choices import (
    AfterSuccess,
    Binarize,
    Decoder,
    DuplicatePolicy,
    ExecutorKind,
    LogFormat,
    Mode,
    OutputFormat,
    OutputList,
    WatchMode,
)
from ocrwatch.exceptions import ConfigError
from ocrwatch.profiles import Profile

__all__ = [
    "AfterSuccess",
    "AsposeSettings",
    "Binarize",
    "CelerySettings",
    "Decoder",
    "DuplicatePolicy",
    "ExecutorKind",
    "LogFormat",
    "Mode",
    "OutputFormat",
    "PaddleSettings",
    "PreprocessProfile",
    "PreprocessSettings",
    "Profile",
    "RetrySettings",
    "Settings",
    "TesseractSettings",
    "WatchMode",
    "default_config_file",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("/etc/ocrwatch/ocrwatch.toml")


class PreprocessProfile(BaseModel):
    """Preprocessing steps for one mode; each can be switched off."""

    model_config = {"extra": "forbid"}

    crop_sheet: bool = Field(
        False,
        description="Phone photos: find the sheet of paper, flatten its perspective, drop "
        "the table around it (a flat scan is left as it is).",
    )
    upscale: bool = Field(True, description="Upscale pages whose text is smaller than text_height.")
    text_height: int = Field(
        32, ge=8, le=200, description="Target x-height-ish text height in pixels for upscaling."
    )
    max_upscale: float = Field(3.0, ge=1.0, le=8.0, description="Never upscale more than this.")
    grayscale: bool = Field(True, description="Convert to 8-bit grayscale.")
    autocontrast: bool = Field(True, description="Stretch the histogram (cutoff 1%).")
    local_contrast: bool = Field(
        False,
        description="Phone photos (after crop_sheet found the sheet): even out contrast "
        "region by region (CLAHE) against glare and shadows; scans are left alone.",
    )
    median_filter: int = Field(
        0, ge=0, le=9, description="Median filter kernel size (odd, 3 or 5); 0 switches it off."
    )
    remove_rules: bool = Field(
        False,
        description="Lined paper: paint over long horizontal rules (after deskew) so the "
        "detector does not join lines along them nor read them as dashes.",
    )
    binarize: Binarize = Field(Binarize.OFF, description="off, otsu or adaptive.")
    deskew: bool = Field(True, description="Estimate and correct small page rotations.")
    max_deskew_degrees: float = Field(10.0, ge=0.0, le=45.0)

    @field_validator("median_filter")
    @classmethod
    def _odd_kernel(cls, v: int) -> int:
        if v not in (0, 3, 5, 7, 9):
            raise ValueError("must be 0 (off) or an odd kernel size 3, 5, 7 or 9")
        return v


def _printed_profile() -> PreprocessProfile:
    return PreprocessProfile(text_height=28, median_filter=0, binarize=Binarize.OFF)


def _handwritten_profile() -> PreprocessProfile:
    # Phone photos of handwriting: uneven light and pencil strokes suffer from hard
    # binarization; the neural engine prefers smoothed grayscale.
    # PP-OCR's recognizer rescales every line crop to 48 px, so the page is upscaled only
    # for small writing that the detector would miss (bench/README.md, lever table).
    # Lined paper is common under handwriting; rules joined lines for the detector, were
    # read as dashes and fooled the text-height estimate (bench/README.md, lever table).
    return PreprocessProfile(
        text_height=24,
        median_filter=3,
        binarize=Binarize.OFF,
        crop_sheet=True,
        remove_rules=True,
    )


class PreprocessSettings(BaseModel):
    """Preprocessing profiles per mode, plus loader limits."""

    model_config = {"extra": "forbid"}

    printed: PreprocessProfile = Field(default_factory=_printed_profile)
    handwritten: PreprocessProfile = Field(default_factory=_handwritten_profile)


class TesseractSettings(BaseModel):
    """The ``tesseract`` engine (Tesseract 5 through tesserocr)."""

    model_config = {"extra": "forbid"}

    tessdata: Path | None = Field(
        None, description="Folder of *.traineddata; default: $TESSDATA_PREFIX or Debian's."
    )
    psm: int = Field(3, ge=0, le=13, description="Page segmentation mode (3 = automatic).")


class PaddleSettings(BaseModel):
    """The ``paddle`` engine (PP-OCR through rapidocr + onnxruntime)."""

    model_config = {"extra": "forbid"}

    det_thresh: float = Field(0.2, gt=0.0, lt=1.0, description="Detector pixel threshold.")
    box_thresh: float = Field(0.45, gt=0.0, lt=1.0, description="Detector box threshold.")
    unclip_ratio: float = Field(1.4, gt=0.5, le=4.0, description="Detector box expansion.")
    use_angle_cls: bool = Field(
        False, description="Angle classifier; flips handwritten lines, keep off for upright scans."
    )
    threads: int = Field(0, ge=0, le=64, description="onnxruntime threads; 0 = library default.")
    reread_below: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Read a line piece again with a looser frame when the recognizer's "
        "confidence is under this; 0 = never, 1 = always (about +30 % time).",
    )
    decoder: Decoder = Field(
        Decoder.LEXICON,
        description="How the recognizer's character probabilities become text: 'lexicon' "
        "(beam search scored by wordfreq's word list of the page's languages; greedy for a "
        "language without one) or 'greedy' (the most likely character per frame).",
    )
    beam_width: int = Field(12, ge=1, le=256, description="Beams kept by the lexicon decoder.")
    lm_weight: float = Field(
        0.35, ge=0.0, le=5.0, description="Weight of ln(word frequency) in the lexicon decoder."
    )
    word_bonus: float = Field(
        2.0, ge=-20.0, le=20.0, description="Score added per word by the lexicon decoder."
    )
    oov_frequency: float = Field(
        1e-8, gt=0.0, lt=1.0, description="Frequency the lexicon decoder charges an unknown word."
    )
    rec_model: Path | None = Field(
        None,
        description="Tuned recognizer ONNX file for tuned_languages; default: the one shipped "
        "in ocrwatch/models when present (else those pages use the wheel's too).",
    )
    tuned_languages: list[str] = Field(
        ["fra"],
        description="Pages whose languages are all in this list are read by the tuned "
        "recognizer; others (and all, when the list is empty) by PP-OCRv6 small from the "
        "rapidocr wheel. The shipped one was tuned on French handwriting and read English "
        "worse (bench/README.md).",
    )


class AsposeSettings(BaseModel):
    """The optional ``aspose`` engine (Aspose OCR Cloud v5)."""

    model_config = {"extra": "forbid"}

    base_url: str = Field("https://api.aspose.cloud", description="API base URL, no trailing /.")
    client_id: str | None = Field(None, description="Client id (not a secret by itself).")
    client_secret: SecretStr | None = Field(None, description="Client secret.")
    request_timeout: float = Field(30.0, gt=0, le=600, description="Seconds per HTTP call.")
    poll_interval: float = Field(1.0, gt=0, le=60, description="Seconds between status polls.")
    task_deadline: float = Field(
        120.0, gt=0, le=3600, description="Give up (and cancel) a task after this many seconds."
    )
    requests_per_second: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="The account's request limit, shared by every worker on every host "
        "(through Redis with executor = celery); unset: no limit.",
    )

    @field_validator("client_id", "client_secret", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        # Secret files (systemd credentials, Docker secrets) usually end with a newline.
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        return v.strip() or None if isinstance(v, str) else v

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class CelerySettings(BaseModel):
    """The Celery executor: broker, queue, leases (``executor = "celery"``)."""

    model_config = {"extra": "forbid"}

    broker_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="Broker URL: redis://host:6379/0 or amqp://user:pass@host// (RabbitMQ).",
    )
    result_backend: SecretStr | None = Field(
        None,
        description="Where answers and heartbeats are kept (a Redis URL); default: the broker "
        "URL when it is Redis.",
    )
    queue: str = Field("ocrwatch", min_length=1, description="Queue the workers consume.")
    lease: float = Field(
        60.0,
        ge=5,
        le=3600,
        description="A started task with no heartbeat or answer for this long is sent again.",
    )
    heartbeat: float = Field(
        5.0, gt=0, le=600, description="Seconds between a worker's heartbeats for its task."
    )
    max_in_flight: int = Field(
        64, ge=1, le=100_000, description="Most tasks sent and not answered at once."
    )
    pages_per_task: int = Field(
        10, ge=1, le=10_000, description="A PDF with more pages is split into page ranges."
    )
    path_map: dict[str, str] = Field(
        default_factory=dict,
        description="Coordinator path prefix -> this host's path prefix (mount points that "
        'differ), e.g. {"/srv/scans" = "/mnt/scans"}; set on the workers.',
    )


class RetrySettings(BaseModel):
    """Both retry layers (see ocrwatch.retry): per engine call, and per file across attempts."""

    model_config = {"extra": "forbid"}

    call_attempts: int = Field(
        5, ge=1, le=100, description="Engine calls per page and attempt, the first included."
    )
    call_timeout: float = Field(
        300.0, gt=0, description="Stop retrying one engine call after this many seconds."
    )
    file_attempts: int = Field(
        10, ge=1, le=1000, description="Attempts of one file after transient engine failures."
    )
    file_crashes: int = Field(
        3, ge=1, le=100, description="Crashes or time-outs of one file before engine_crash."
    )
    bug_attempts: int = Field(
        3, ge=1, le=100, description="Attempts of one file after unexpected errors (bugs)."
    )
    wait_initial: float = Field(1.0, ge=0, description="First backoff in seconds.")
    wait_max: float = Field(60.0, ge=0, description="Backoff cap in seconds.")
    wait_jitter: float = Field(1.0, ge=0, description="Random extra wait, up to this many s.")


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
    LANGUAGE_ALIASES: ClassVar[Mapping[str, str]] = {
        "en": "eng",
        "english": "eng",
        "es": "spa",
        "spanish": "spa",
        "de": "deu",
        "german": "deu",
        "fr": "fra",
        "french": "fra",
        "it": "ita",
        "italian": "ita",
        "pt": "por",
        "portuguese": "por",
    }

    @field_validator("languages", mode="before")
    @classmethod
    def _split_languages(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):  # JSON list from the environment
                import json

                v = json.loads(v)
            else:
                v = v.replace("+", ",").split(",")
        if isinstance(v, list | tuple):
            out: list[str] = []
            for item in v:
                code = str(item).strip().lower()
                if not code:
                    continue
                code = cls.LANGUAGE_ALIASES.get(code, code)
                if code not in out:
                    out.append(code)
            if not out:
                raise ValueError("at least one language is needed, e.g. 'eng'")
            return out
        return v

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
