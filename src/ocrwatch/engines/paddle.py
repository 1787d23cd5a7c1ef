"""The ``paddle`` engine: PP-OCRv6 small (detector + recognizer) through rapidocr and onnxruntime.

Weights come only from the rapidocr wheel: the model paths are passed explicitly so rapidocr
never resolves (and never downloads) a model by name; a missing file is a DependencyError at
construction. The angle classifier is off by default because it flips handwritten lines 180
degrees (docs/engines.md, gotcha 1). rapidocr returns unordered segments; :mod:`.reading_order`
turns them into lines in reading order. Line crops are read with rapidocr's recognizer
(:mod:`.paddle_inference`) and decoded by :mod:`~ocrwatch.handwriting.ctc_search` (a lexicon
beam search for languages wordfreq has a word list for).
Pages whose languages are all in ``paddle.tuned_languages`` are read by the tuned recognizer in
``ocrwatch/models`` when the package ships it (``models/PROVENANCE.md``); other pages by the
wheel's.

Thread safety: rapidocr's pipeline keeps no per-call state once its models are loaded (model
loading is guarded by its own locks; we load eagerly in ``__init__``) and onnxruntime's
``InferenceSession.run`` may be called from several threads, so no lock is taken here.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import structlog

from ocrwatch.engines.base import Capabilities, Engine, EngineContext, Line, PageResult
from ocrwatch.engines.linecrops import LOOSE_MARGIN, box_pieces, flatten, frame_piece, latin_only
from ocrwatch.engines.paddle_inference import recognize_crops
from ocrwatch.engines.rapidocr_api import check_pipeline, check_pipeline_class, check_recognizer
from ocrwatch.engines.reading_order import Segment, bounding_box, reading_order
from ocrwatch.engines.wordboxes import words_from_segments
from ocrwatch.exceptions import (
    ConfigError,
    DependencyError,
    PermanentEngineError,
    TransientEngineError,
)
from ocrwatch.handwriting.lexicon import Lexicon, english_only, lexicon_for
from ocrwatch.handwriting.scoring import BeamSettings, likelier
from ocrwatch.handwriting.typography import tidy_spacing
from ocrwatch.settings.choices import Decoder, RereadWith
from ocrwatch.settings.sections import PaddleSettings

if TYPE_CHECKING:
    from PIL import Image
    from pydantic import BaseModel

    from ocrwatch.settings.choices import Mode

__all__ = ["LANGUAGE_LETTERS", "PaddleEngine"]

log = structlog.get_logger()

DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
#: Fine-tuned recognizer shipped in this package (training/README.md), used when present.
TUNED_REC_MODEL = Path(__file__).resolve().parent.parent / "models" / "ppocrv6_rec_hw.onnx"

#: Letters each language needs beyond ASCII. A language is offered only when the shipped
#: recognizer's character set holds all of them (checked at load). PP-OCRv6's multilingual
#: model covers these Latin-script languages; Cyrillic, Greek (accented) and Vietnamese
#: (precomposed tones) are missing from its dictionary, so they are not listed. Spanish's
#: inverted exclamation mark "¡" is absent from the dictionary; it is punctuation, not a
#: letter, so Spanish is still offered.
LANGUAGE_LETTERS: Mapping[str, str] = {
    "eng": "",
    "spa": "ñÑáéíóúÁÉÍÓÚüÜ¿",
    "fra": "àâæçéèêëîïôœùûüÿÀÂÆÇÉÈÊËÎÏÔŒÙÛÜŸ«»",
    "deu": "äöüßÄÖÜ",
    "ita": "àèéìíîòóùúÀÈÉÌÒÙ",
    "por": "ãõáâàçéêíóôúÃÕÁÂÀÇÉÊÍÓÔÚ",
    "nld": "ëïéèöüáóú",
    "cat": "àçèéíïòóúü·",
    "glg": "ñáéíóúÑÁÉÍÓÚ",
    "eus": "ñÑ",
    "dan": "æøåÆØÅ",
    "nor": "æøåÆØÅ",
    "swe": "åäöÅÄÖé",
    "fin": "äöåÄÖÅ",
    "isl": "áðéíóúýþæöÁÐÉÍÓÚÝÞÆÖ",
    "pol": "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ",
    "ces": "áčďéěíňóřšťúůýžÁČĎÉĚÍŇÓŘŠŤÚŮÝŽ",
    "slk": "áäčďéíĺľňóôŕšťúýžÁÄČĎÉÍĹĽŇÓÔŔŠŤÚÝŽ",
    "slv": "čšžČŠŽ",
    "hrv": "čćđšžČĆĐŠŽ",
    "hun": "áéíóöőúüűÁÉÍÓÖŐÚÜŰ",
    "ron": "ăâîșțĂÂÎȘȚ",
    "tur": "çğıöşüÇĞİÖŞÜ",
    "est": "äöõüšžÄÖÕÜŠŽ",
    "lit": "ąčęėįšųūžĄČĘĖĮŠŲŪŽ",
    "lav": "āčēģīķļņšūžĀČĒĢĪĶĻŅŠŪŽ",
    "lat": "",
}

# onnxruntime reports allocation failures with these words; anything else about a page
# (bad shape, invalid argument) fails the same way on every retry.
_TRANSIENT_MARKERS = ("bad_alloc", "allocate", "out of memory", "memory")


#: A piece read as nothing but dashes, dots or underscores is a rule of lined paper (or a
#: table border) the detector took for writing, not text.
_RULE_READING = re.compile(r"[\s\-_\u2013\u2014=.,:;~|'\"`]{4,}")


@dataclass(frozen=True, slots=True)
class _Result:
    """Recognized pieces: page quadrilaterals, texts and scores (rapidocr's output shape)."""

    boxes: Sequence[Any]
    txts: Sequence[str]
    scores: Sequence[float]


def _model_dir() -> Path:
    import rapidocr

    return Path(rapidocr.__file__).resolve().parent / "models"


def _bgr_and_gray(image: Image.Image) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Return ``image`` as the BGR array rapidocr takes (OpenCV order) and as grayscale."""
    array: npt.NDArray[np.uint8] = np.asarray(image)
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2)), array
    return np.ascontiguousarray(array[:, :, ::-1]), np.asarray(image.convert("L"))


def _check_models(cfg: PaddleSettings) -> Path:
    """Return the wheel's model folder; DependencyError naming any model file missing."""
    models = _model_dir()
    needed = [DET_MODEL, REC_MODEL] + ([CLS_MODEL] if cfg.use_angle_cls else [])
    missing = [name for name in needed if not (models / name).is_file()]
    rec = cfg.rec_model
    if rec is not None and not rec.is_file():
        missing.append(str(rec))
    if missing:
        raise DependencyError(
            f"PP-OCR model(s) {', '.join(missing)} missing from {models}; "
            "reinstall the wheel: pip install --force-reinstall 'rapidocr==3.10.0'"
        )
    return models


def _tuned_model(cfg: PaddleSettings) -> Path | None:
    """The tuned recognizer to use for ``tuned_languages``, None when there is none."""
    if not cfg.tuned_languages:
        return None
    if cfg.rec_model is not None:
        return cfg.rec_model
    return TUNED_REC_MODEL if TUNED_REC_MODEL.is_file() else None


_import_lock = threading.Lock()


@contextlib.contextmanager
def _yaml_read_once() -> Iterator[None]:
    """While rapidocr is imported, give the same parsed config to every load of one file.

    rapidocr 3.10.0 parses its 85 KB model table (``default_models.yaml``) with OmegaConf
    twice at import, a fifth of a second each; both copies are only read.
    """
    try:
        from omegaconf import OmegaConf
    except ImportError:  # rapidocr no longer uses OmegaConf: nothing to save then
        yield
        return
    load = getattr(OmegaConf, "load", None)
    if load is None:  # pragma: no cover - omegaconf renamed it: the shim only saves time
        yield
        return
    parsed: dict[str, Any] = {}

    def once(file_: Any) -> Any:
        key = os.fspath(file_) if isinstance(file_, str | os.PathLike) else None
        if key is None:
            return load(file_)
        if key not in parsed:
            parsed[key] = load(file_)
        return parsed[key]

    OmegaConf.load = once  # type: ignore[method-assign,assignment,unused-ignore]
    try:
        yield
    finally:
        OmegaConf.load = load  # type: ignore[method-assign,unused-ignore]


@cache
def _detector_class() -> type[Any]:
    """rapidocr's pipeline class, minus the crops it cuts for its own recognizer.

    Detection runs through ``RapidOCR.__call__`` with recognition off; the lines are cut by
    :mod:`.linecrops`, so the rotated crops rapidocr would cut of every box (and scale back to
    the original size) are never read: skipped unless its angle classifier needs them.
    """
    try:
        with _import_lock, _yaml_read_once():  # the shim is process-wide while it lasts
            from rapidocr import RapidOCR
    except ImportError as exc:
        raise DependencyError(
            f"rapidocr is not installed ({exc}); pip install 'rapidocr==3.10.0' onnxruntime"
        ) from exc

    check_pipeline_class(RapidOCR)  # what is used beyond its public API (.rapidocr_api)

    class Detector(RapidOCR):  # type: ignore[misc,unused-ignore]  # untyped library
        def crop_text_regions(self, img: Any, det_boxes: Any) -> list[Any]:
            if self.use_cls or self.use_rec:
                return list(super().crop_text_regions(img, det_boxes))
            return []

    return Detector


class PaddleEngine(Engine):
    """PP-OCRv6 small via rapidocr 3.x on onnxruntime; good on handwriting, offline."""

    name: ClassVar[str] = "paddle"
    capabilities: ClassVar[Capabilities] = Capabilities(handwriting=True)

    settings_model: ClassVar[type[BaseModel]] = PaddleSettings

    def __init__(self, context: EngineContext) -> None:
        """Load detector and recognizer from the rapidocr wheel (about 2 s).

        Raises DependencyError when rapidocr/onnxruntime or a model file is missing.
        """
        super().__init__(context)
        cfg: PaddleSettings = context.section
        detector = _detector_class()
        models = _check_models(cfg)
        self._params = self.rapidocr_params(cfg, models)
        try:
            ocr: Any = detector(params=dict(self._params))
            check_pipeline(ocr)
            # Load now so a broken model fails at start, not on a page (rapidocr's public
            # API loads on first use; these are checked in .rapidocr_api).
            ocr._load_det_model()
            check_recognizer(ocr._load_rec_model())
            if cfg.use_angle_cls:
                ocr._load_cls_model()
            self._charset = frozenset(ocr.text_rec.postprocess_op.character)
        except DependencyError:  # rapidocr changed under us: its own message says what
            raise
        except Exception as exc:  # onnxruntime raises its own types; translate them all
            raise DependencyError(f"cannot load PP-OCR models from {models}: {exc}") from exc
        tuned = _tuned_model(cfg)
        self._tuned = tuned
        self._tuned_rec: Any = None  # loaded by the first page that needs it (or the warm-up)
        self._tuned_lock = threading.Lock()
        self._tuned_name = None if tuned is None else tuned.name
        self._tuned_languages = frozenset(cfg.tuned_languages)
        self._languages = frozenset(
            code
            for code, letters in LANGUAGE_LETTERS.items()
            if all(ch in self._charset for ch in letters)
        )
        self._ocr: Any = ocr
        self._reread_below = cfg.reread_below
        self._reread_languages = frozenset(cfg.reread_languages)
        self._reread_lm_weight = cfg.reread_lm_weight
        self._reread_other = cfg.reread_with is RereadWith.OTHER and tuned is not None
        self._decoder = cfg.decoder
        self._beam = BeamSettings(
            beam=cfg.beam_width,
            alpha=cfg.lm_weight,
            beta=cfg.word_bonus,
            oov=cfg.oov_frequency,
            pairs=cfg.word_pairs,
            pair_alpha=cfg.pair_lm_weight,
            backoff=cfg.pair_backoff,
        )
        self._warm_up(context)
        log.info("engine.loaded", engine=self.name, version=self.version())

    def _warm_up(self, context: EngineContext) -> None:
        """Load what the first page will need in a daemon thread (start-up time).

        The tuned recognizer (when the languages are tuned for), the lexicon and the English
        spelling dictionary (when that pass will run) load beside the first page's detection
        (onnxruntime releases the GIL), so a one-file ``ocrwatch ocr`` waits less. Whoever
        needs them first waits on their locks, so nothing is read half-built.
        """
        languages = tuple(code for code in context.languages if code in self._languages)
        tuned = self._needs_tuned(languages)
        lexicon = self._decoder is Decoder.LEXICON
        spelling = context.spellcheck and english_only(languages)
        if not (tuned or lexicon or spelling):
            return

        def work() -> None:
            if tuned:
                with contextlib.suppress(DependencyError):  # raised again to the page
                    self._tuned_recognizer()
            if lexicon:
                lexicon_for(languages)
            if spelling:
                from ocrwatch.handwriting.spelling import preload

                preload()

        threading.Thread(target=work, name="ocrwatch-wordlists", daemon=True).start()

    @staticmethod
    def rapidocr_params(cfg: PaddleSettings, models: Path | None = None) -> dict[str, Any]:
        """Return the ``RapidOCR(params=...)`` mapping for ``cfg`` (explicit model paths)."""
        models = models or _model_dir()
        params: dict[str, Any] = {
            "Global.use_cls": cfg.use_angle_cls,
            # Calls detect only; lines are cropped by .linecrops and read with
            # recognize_txt() (no per-call flags: rapidocr stores them on the instance).
            "Global.use_rec": False,
            # rapidocr logs "detection result is empty" as a warning on every blank page,
            # outside structlog; errors still come through.
            "Global.log_level": "error",
            "Det.thresh": cfg.det_thresh,
            "Det.box_thresh": cfg.box_thresh,
            "Det.unclip_ratio": cfg.unclip_ratio,
            "Det.score_mode": str(cfg.det_score_mode),
            "Det.model_path": str(models / DET_MODEL),
            "Rec.model_path": str(models / REC_MODEL),
            "Cls.model_path": str(models / CLS_MODEL),
        }
        if cfg.threads > 0:
            # rapidocr ignores values above the CPU count; clamp so the setting is honoured.
            threads = min(cfg.threads, os.cpu_count() or 1)
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
        return params

    def version(self) -> str:
        """Return e.g. ``rapidocr 3.10.0 PP-OCRv6 small``."""
        try:
            rapid = package_version("rapidocr")
        except PackageNotFoundError:  # pragma: no cover - imported above, so installed
            rapid = "unknown"
        base = f"rapidocr {rapid} PP-OCRv6 small"
        tuned = getattr(self, "_tuned_name", None)
        if tuned is None:
            return base
        return f"{base}; {tuned} for {'+'.join(sorted(self._tuned_languages))}"

    def languages(self) -> frozenset[str]:
        """Return the Latin-script languages whose letters the recognizer's dictionary holds."""
        return self._languages

    def recognize(self, page: Image.Image, *, languages: Sequence[str], mode: Mode) -> PageResult:
        """Recognize ``page``; return its lines in reading order (none for a blank page).

        Raises ConfigError for a language not in :meth:`languages`, TransientEngineError for
        an onnxruntime memory allocation failure, PermanentEngineError for other failures.
        """
        unknown = [code for code in languages if code not in self._languages]
        if unknown:
            raise ConfigError(
                f"paddle cannot read language(s) {', '.join(unknown)}; "
                f"available: {', '.join(sorted(self._languages))}"
            )
        ocr = self._ocr
        if ocr is None:
            raise PermanentEngineError("paddle engine is closed")
        image = page if page.mode in ("RGB", "L") else page.convert("RGB")
        array, gray = _bgr_and_gray(image)
        try:
            result = self._read_page(ocr, array, gray, languages)
        except DependencyError:  # the tuned recognizer would not load: not this page's fault
            raise
        except MemoryError as exc:
            raise TransientEngineError(f"paddle ran out of memory: {exc}") from exc
        except Exception as exc:  # rapidocr/onnxruntime raise plain Exception subclasses
            text = str(exc).lower()
            if any(marker in text for marker in _TRANSIENT_MARKERS):
                raise TransientEngineError(f"paddle failed to allocate memory: {exc}") from exc
            raise PermanentEngineError(f"paddle failed on this page: {exc}") from exc
        return PageResult(
            lines=self._lines(result, width=image.width, height=image.height),
            engine=self.name,
            width=image.width,
            height=image.height,
        )

    def _read_page(
        self,
        ocr: Any,
        array: npt.NDArray[np.uint8],
        gray: npt.NDArray[np.uint8],
        languages: Sequence[str],
    ) -> _Result:
        """Detect, frame and read the lines of one page (errors are mapped by the caller)."""
        boxes = getattr(ocr(array), "boxes", None)
        if boxes is None:
            return _Result(boxes=[], txts=[], scores=[])
        flat = flatten(gray)
        crops, quads, lines = box_pieces(array, flat, boxes)
        lexicon = lexicon_for(languages) if self._decoder is Decoder.LEXICON else None
        text_rec = self._text_rec(languages)
        txts: list[str] = []
        scores: list[float] = []
        if crops:
            txts, scores = self._read(text_rec, crops, lexicon)
        if self._rereads(languages):
            self._reread(
                self._reread_rec(languages, text_rec), array, flat, lines, txts, scores, lexicon
            )
        txts = [tidy_spacing(latin_only(t), languages) for t in txts]
        return _Result(boxes=quads, txts=txts, scores=scores)

    def _reread(
        self,
        text_rec: Any,
        array: npt.NDArray[np.uint8],
        flat: npt.NDArray[np.uint8],
        lines: Sequence[npt.NDArray[np.float32]],
        txts: list[str],
        scores: list[float],
        lexicon: Lexicon | None,
    ) -> None:
        """Read doubtful pieces again with a looser frame; keep the likelier reading.

        The tight frame sometimes cuts a tall capital or a long descender: the same line
        (``lines``, one per piece) framed with more room above and below reads better then.
        ``text_rec`` is the page's recognizer, or the other one (``reread_with = "other"``).
        Of the two readings, the one with the higher confidence plus ``reread_lm_weight``
        times its words' mean log probability (:func:`likelier`) is kept. Updates
        ``txts``/``scores`` in place.
        """
        doubtful = [k for k, score in enumerate(scores) if score < self._reread_below]
        ks: list[int] = []
        crops: list[npt.NDArray[np.uint8]] = []
        for k in doubtful:
            piece = frame_piece(array, flat, lines[k], margin=LOOSE_MARGIN)
            if piece is not None:
                ks.append(k)
                crops.append(piece[0])
        if not crops:
            return
        new_txts, new_scores = self._read(text_rec, crops, lexicon)
        for k, txt, score in zip(ks, new_txts, new_scores, strict=True):
            txts[k], scores[k] = likelier(
                (txts[k], scores[k]),
                (txt, score),
                lexicon,
                weight=self._reread_lm_weight,
                settings=self._beam,
            )

    def check(self, languages: Sequence[str]) -> list[str]:
        """Also load the tuned recognizer when pages in ``languages`` will use it, so that a
        broken file shows at start (``ocrwatch check --lang fra``) rather than on a page."""
        problems = super().check(languages)
        if not problems and self._needs_tuned(languages):
            try:
                self._tuned_recognizer()
            except DependencyError as exc:
                problems.append(f"{self.name}: {exc}")
        return problems

    def _uses_tuned(self, languages: Sequence[str]) -> bool:
        tuned = self._tuned_languages
        return self._tuned is not None and bool(languages) and set(languages) <= tuned

    def _rereads(self, languages: Sequence[str]) -> bool:
        return self._reread_below > 0 and set(languages) <= self._reread_languages

    def _reread_rec(self, languages: Sequence[str], text_rec: Any) -> Any:
        """The recognizer of the second reading (``text_rec`` is the page's own)."""
        if self._rereads_tuned(languages):
            return self._tuned_recognizer()
        return self._ocr.text_rec if self._reread_other else text_rec

    def _rereads_tuned(self, languages: Sequence[str]) -> bool:
        """True when the second reading of a page in ``languages`` is the tuned recognizer's."""
        return self._reread_other and self._rereads(languages) and not self._uses_tuned(languages)

    def _needs_tuned(self, languages: Sequence[str]) -> bool:
        """True when a page in ``languages`` is read, or read again, by the tuned recognizer."""
        return self._uses_tuned(languages) or self._rereads_tuned(languages)

    def _text_rec(self, languages: Sequence[str]) -> Any:
        """The recognizer for a page in ``languages``: the tuned one when all are tuned for."""
        if not self._uses_tuned(languages):
            return self._ocr.text_rec
        return self._tuned_recognizer()

    def _tuned_recognizer(self) -> Any:
        """The tuned recognizer, loaded by the first page that needs it; DependencyError when
        it cannot be (the page is retried later, not quarantined)."""
        with self._tuned_lock:
            if self._tuned_rec is None:
                params = {**self._params, "Rec.model_path": str(self._tuned)}
                try:  # a second recognizer session only; detection stays with the first
                    tuned = _detector_class()(params=params)._load_rec_model()
                    check_recognizer(tuned)
                    self._tuned_rec = tuned
                except DependencyError:
                    raise
                except Exception as exc:  # onnxruntime's own types, translated
                    raise DependencyError(f"cannot load {self._tuned}: {exc}") from exc
            return self._tuned_rec

    def _read(
        self, text_rec: Any, crops: list[npt.NDArray[np.uint8]], lexicon: Lexicon | None
    ) -> tuple[list[str], list[float]]:
        return recognize_crops(text_rec, crops, lexicon=lexicon, settings=self._beam)

    @staticmethod
    def _lines(result: Any, *, width: int, height: int) -> tuple[Line, ...]:
        boxes = getattr(result, "boxes", None)
        txts = getattr(result, "txts", None)
        scores = getattr(result, "scores", None)
        if boxes is None or txts is None or scores is None or len(txts) == 0:
            return ()
        segments = [
            Segment(text=str(txt), confidence=float(score), box=bounding_box(quad))
            for quad, txt, score in zip(boxes, txts, scores, strict=True)
            if str(txt).strip() and not _RULE_READING.fullmatch(str(txt))
        ]
        lines = []
        for text_line in reading_order(segments):
            left, top, right, bottom = text_line.box
            box = (
                max(0, int(left)),
                max(0, int(top)),
                min(width, round(right)),
                min(height, round(bottom)),
            )
            confidence = min(1.0, max(0.0, text_line.confidence))
            words = words_from_segments(text_line.segments)
            lines.append(Line(text=text_line.text, confidence=confidence, box=box, words=words))
        return tuple(line for line in lines if line.text)

    def close(self) -> None:
        """Drop the onnxruntime sessions (safe to call twice)."""
        self._ocr = None
