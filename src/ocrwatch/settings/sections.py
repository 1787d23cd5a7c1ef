"""The sections of the settings: preprocessing profiles, engines, retry, many hosts.

Each is a typed pydantic model with bounds and descriptions; ``ocrwatch.settings.model.Settings``
holds one of each (``[preprocess.printed]``, ``[tesseract]``, ``[paddle]``, ``[aspose]``,
``[retry]``, ``[celery]``, ``[notify]``) and re-exports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from ocrwatch.settings.choices import (
    Binarize,
    BoxScore,
    Decoder,
    RereadWith,
)

__all__ = [
    "AsposeSettings",
    "CelerySettings",
    "NotifySettings",
    "PaddleSettings",
    "PreprocessProfile",
    "PreprocessSettings",
    "RetrySettings",
    "TesseractSettings",
]


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
    # Text under 16 px is enlarged to 16 px: chosen on the small-print development set
    # (bench/README.md, "Small print"); a larger target enlarges the scan's grain too.
    return PreprocessProfile(text_height=16, median_filter=0, binarize=Binarize.OFF)


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
    det_score_mode: BoxScore = Field(
        BoxScore.SLOW,
        description="How the detector scores a box against box_thresh: 'slow' averages its "
        "probability inside the text's own outline, 'fast' inside its bounding rectangle "
        "(which drops the curved lines of a curled sheet: half empty rectangles).",
    )
    use_angle_cls: bool = Field(
        False, description="Angle classifier; flips handwritten lines, keep off for upright scans."
    )
    threads: int = Field(0, ge=0, le=64, description="onnxruntime threads; 0 = library default.")
    reread_below: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Read a line piece again with a looser frame when the recognizer's "
        "confidence is under this (on pages in reread_languages); 0 = never, 1 = always.",
    )
    reread_languages: list[str] = Field(
        ["eng"],
        description="Pages whose languages are all in this list get the second reading "
        "(reread_below). English only by default: it helps French too, but makes dense "
        "French pages too slow (bench/README.md).",
    )
    reread_lm_weight: float = Field(
        0.05,
        ge=0.0,
        le=5.0,
        description="Of a piece's two readings, when they are variants of one text, the one "
        "with the higher confidence plus this times its words' mean log probability under "
        "the page's language model is kept (0 = confidence alone; lexicon decoder only).",
    )
    reread_with: RereadWith = Field(
        RereadWith.SAME,
        description="The recognizer of the second reading: 'same' (the page's own) or 'other' "
        "(the tuned one for pages the wheel's reads, and the reverse; 'same' when no tuned "
        "recognizer is shipped or configured).",
    )
    decoder: Decoder = Field(
        Decoder.LEXICON,
        description="How the recognizer's character probabilities become text: 'lexicon' "
        "(beam search scored by wordfreq's word list of the page's languages; greedy for a "
        "language without one) or 'greedy' (the most likely character per frame).",
    )
    beam_width: int = Field(12, ge=1, le=256, description="Beams kept by the lexicon decoder.")
    lm_weight: float = Field(
        0.35,
        ge=0.0,
        le=5.0,
        description="Weight of ln(word frequency) in the lexicon decoder (languages without a "
        "bigram model).",
    )
    word_bonus: float = Field(
        2.0, ge=-20.0, le=20.0, description="Score added per word by the lexicon decoder."
    )
    oov_frequency: float = Field(
        1e-8, gt=0.0, lt=1.0, description="Frequency the lexicon decoder charges an unknown word."
    )
    word_pairs: bool = Field(
        True,
        description="Score each word by the word before it where a bigram model ships for the "
        "language (English: wordsegment's word-pair counts); else by its own frequency.",
    )
    pair_lm_weight: float = Field(
        0.5,
        ge=0.0,
        le=5.0,
        description="Replaces lm_weight for a language with a bigram model (English).",
    )
    pair_backoff: float = Field(
        0.2,
        gt=0.0,
        le=1.0,
        description="Factor on a known word's frequency when the bigram model does not know "
        "its pair with the word before it.",
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
    worker_name: str = Field(
        "ocrwatch",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="This worker's name (ocrwatch worker): its metrics label is NAME@host and "
        "its Celery node name NAME.PID@host, unique even with several workers on one host.",
    )


class RetrySettings(BaseModel):
    """Both retry layers (support/retry.py): per engine call, and per file across attempts."""

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


class NotifySettings(BaseModel):
    """Notifications through Apprise (``[notify]``): where to, and when to tell."""

    model_config = {"extra": "forbid"}

    urls: list[SecretStr] = Field(
        default_factory=list,
        description="Apprise URLs told about every event (mailto://, json://, ntfy://, ...); "
        "env: OCRWATCH_NOTIFY__URLS as a JSON list. Secret: never logged or shown.",
    )
    attempts: int = Field(
        3, ge=1, le=1000, description="Tell when a file is still failing after this many attempts."
    )
    pending_age: float = Field(
        3600.0,
        ge=0,
        description="Tell when the oldest unfinished file is older than this (seconds; 0 = off).",
    )
    away_after: float = Field(
        300.0,
        ge=0,
        description="Tell when the inbox or outbox has been away this long (seconds; 0 = off).",
    )
    digest_window: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="Events within this many seconds of the first are sent as one digest.",
    )
    queue_size: int = Field(
        1000, ge=1, le=1_000_000, description="Events waiting to be sent; more are dropped."
    )
    send_attempts: int = Field(
        5, ge=1, le=100, description="Tries per notification and URL, with backoff."
    )
    send_timeout: float = Field(
        120.0, gt=0, le=3600, description="Stop retrying one notification after this many seconds."
    )

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        # A single URL in TOML or env is taken as a list of one.
        if isinstance(v, str):
            v = v.strip()
            return [v] if v else []
        return v
