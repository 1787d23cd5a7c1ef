"""Tests for the handwriting language model: word lists, scoring, CTC decoding."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pytest
from rapidfuzz.distance import Levenshtein

from imaging import HANDWRITING, render_lines
from ocrwatch.engines.paddle import PaddleEngine
from ocrwatch.handwriting import ctc_search, lexicon, scoring
from ocrwatch.settings.model import load_settings
from ocrwatch.settings.sections import PaddleSettings

CLASSES = ["blank", *"abcdefghijklmnopqrstuvwxyzOCR0123456789,.'", " "]
_INDEX = {c: i for i, c in enumerate(CLASSES)}


def matrix(frames: Sequence[Mapping[str, float]]) -> npt.NDArray[np.float32]:
    """Return a (T, C) probability matrix; ``_`` is the blank; the rest share what is left."""
    rows = []
    for frame in frames:
        row = np.full(len(CLASSES), 1e-6, np.float32)
        for ch, p in frame.items():
            row[0 if ch == "_" else _INDEX[ch]] = p
        rows.append(row / row.sum())
    return np.stack(rows)


def spell(text: str, p: float = 0.95) -> list[dict[str, float]]:
    """Frames writing ``text`` with confidence ``p``, a blank between repeated letters."""
    frames: list[dict[str, float]] = []
    for i, ch in enumerate(text):
        if i and text[i - 1] == ch:
            frames.append({"_": p})
        frames.append({ch: p})
    return frames


class TestGreedy:
    """Greedy decoding collapses repeats and drops blanks."""

    def test_best_path(self) -> None:
        """'hello' written with a blank between the two l's reads back as 'hello'."""
        text, score = ctc_search.greedy(matrix(spell("hello")), CLASSES)
        assert text == "hello"
        assert 0.9 < score <= 1.0

    def test_all_blank(self) -> None:
        """A matrix of blanks reads as the empty string with confidence 0."""
        assert ctc_search.greedy(matrix([{"_": 0.99}] * 4), CLASSES) == ("", 0.0)


class TestLexicon:
    """wordfreq's word lists become per-language lexicons."""

    def test_languages(self) -> None:
        """English, Spanish and French have lexicons with their own words; unknown codes none."""
        eng = lexicon.lexicon_for(["eng"])
        spa = lexicon.lexicon_for(["spa"])
        fra = lexicon.lexicon_for(["fra"])
        assert eng is not None and spa is not None and fra is not None
        assert eng.log_frequency("house") is not None
        assert spa.log_frequency("mañana") is not None
        assert fra.log_frequency("été") is not None
        assert eng.log_frequency("compétitions") is None
        assert lexicon.lexicon_for(["xyz"]) is None

    def test_apostrophe_parts_and_case(self) -> None:
        """ "don't" gives "don"; lookups ignore case; prefixes are known."""
        eng = lexicon.lexicon_for(["eng"])
        assert eng is not None
        assert eng.log_frequency("Don") is not None
        assert eng.is_prefix("hous")
        assert not eng.is_prefix("xqzv")


@pytest.fixture(scope="module")
def eng() -> lexicon.Lexicon:
    """The English lexicon."""
    found = lexicon.lexicon_for(["eng"])
    assert found is not None
    return found


class TestBeamSearch:
    """The lexicon beam search follows the image, and the lexicon where the image hesitates."""

    def test_hesitation_goes_to_the_word(self, eng: lexicon.Lexicon) -> None:
        """'huose' with u/o nearly tied reads 'house'; greedy keeps 'huose'."""
        frames = [
            *spell("the "),
            {"h": 0.9},
            {"u": 0.55, "o": 0.45},
            {"o": 0.55, "u": 0.45},
            *spell("se"),
        ]
        m = matrix(frames)
        assert ctc_search.greedy(m, CLASSES)[0] == "the huose"
        assert ctc_search.beam_search(m, CLASSES, eng) == "the house"

    def test_sure_unknown_word_stays(self, eng: lexicon.Lexicon) -> None:
        """A word the image is sure of stays, known or not, capitals and digits included."""
        for text in ("OCR 0037", "zqxv", "the cat."):
            assert ctc_search.beam_search(matrix(spell(text, 0.99)), CLASSES, eng) == text

    def test_previous_word_decides(self, eng: lexicon.Lexicon) -> None:
        """y/w tied before 'ork': 'new york' after 'new', 'the work' after 'the'.

        Alone, "work" is the commoner word; the English bigram model knows "new york".
        Without pairs the unigram lexicon reads 'new work'.
        """
        tied = [{"y": 0.5, "w": 0.5}, *spell("ork")]
        after_new = matrix([*spell("new "), *tied])
        assert ctc_search.beam_search(after_new, CLASSES, eng) == "new york"
        assert ctc_search.beam_search(matrix([*spell("the "), *tied]), CLASSES, eng) == "the work"
        unigram = scoring.BeamSettings(pairs=False)
        assert ctc_search.beam_search(after_new, CLASSES, eng, unigram) == "new work"

    def test_pairs_are_english_only(self, eng: lexicon.Lexicon) -> None:
        """English has a bigram model; French, Spanish and mixed English-Spanish pages are
        scored word by word (English pairs would favour English readings there)."""
        assert eng.has_pairs and eng.log_pair("New", "York") is not None
        for codes in (["fra"], ["spa"], ["eng", "spa"]):
            other = lexicon.lexicon_for(codes)
            assert other is not None and not other.has_pairs

    def test_repeated_letters(self, eng: lexicon.Lexicon) -> None:
        """Double letters separated by a blank survive ('letter')."""
        assert ctc_search.beam_search(matrix(spell("letter")), CLASSES, eng) == "letter"


class TestLikelier:
    """Of two readings of one piece, the language model helps pick the likelier."""

    def test_text_score(self, eng: lexicon.Lexicon) -> None:
        """Known words outscore unknown ones; a known pair outscores the same words without
        pairs; text without words scores 0; the unknown-word floor bounds every word."""
        assert scoring.text_score("the house", eng) > scoring.text_score("tbe hcuse", eng)
        floor = np.log(scoring.BeamSettings().oov)
        assert scoring.text_score("zqxv qqzx", eng) == pytest.approx(floor)
        assert scoring.text_score("1914, 2.5 -", eng) == 0.0
        unigram = scoring.BeamSettings(pairs=False)
        york = scoring.text_score("new york", eng)
        assert york > scoring.text_score("new york", eng, unigram)
        assert york > scoring.text_score("new yolk", eng)

    def test_words_win_over_a_little_confidence(self, eng: lexicon.Lexicon) -> None:
        """'nat' read a little more confidently than 'not' loses with the default weight;
        with weight 0, or without a lexicon, the confidence alone decides."""
        weight = PaddleSettings().reread_lm_weight
        nat, not_ = ("it is nat here", 0.91), ("it is not here", 0.88)
        assert scoring.likelier(nat, not_, eng, weight=weight) == not_
        assert scoring.likelier(not_, nat, eng, weight=weight) == not_
        assert scoring.likelier(nat, not_, eng, weight=0.0) == nat
        assert scoring.likelier(nat, not_, None, weight=weight) == nat

    def test_only_variants_are_weighed(self, eng: lexicon.Lexicon) -> None:
        """A reading of one letter is no variant of the line's reading: its one common word
        does not beat the line, however much the words weigh (IAM n02-028 lost lines so)."""
        line, letter = ("he declared Sir Johns abominallefreatment", 0.70), ("a", 0.69)
        assert scoring.likelier(line, letter, eng, weight=1.0) == line
        assert scoring.likelier(letter, line, eng, weight=1.0) == line

    def test_confidence_decides_between_equals(self, eng: lexicon.Lexicon) -> None:
        """Between readings the model scores alike (unknown names), the surer one wins; a
        tie keeps the first."""
        sure, doubtful = ("Selpin Bawley", 0.95), ("Selpun Bawlay", 0.40)
        assert scoring.likelier(doubtful, sure, eng, weight=0.2) == sure
        assert scoring.likelier(sure, doubtful, eng, weight=0.2) == sure
        same = ("the house", 0.9)
        assert scoring.likelier(same, ("the house", 0.9), eng, weight=0.2) is same


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, PaddleEngine]]:
    """A greedy and a lexicon paddle engine."""
    out = {
        name: PaddleEngine.from_settings(
            load_settings(overrides={"paddle": {"decoder": name}}, environ={})
        )
        for name in ("greedy", "lexicon")
    }
    yield out
    for engine in out.values():
        engine.close()


class TestEngineDecoding:
    """The paddle engine reads real rendered handwriting through either decoder."""

    LINES = ("Please call the dentist before Friday", "and buy milk, bread and apples")

    def test_both_decoders_read_the_lines(self, engines: dict[str, PaddleEngine]) -> None:
        """Both decoders read a rendered handwritten note nearly verbatim."""
        image = render_lines(self.LINES, font_path=HANDWRITING, size=44)
        for engine in engines.values():
            page = engine.recognize(image, languages=["eng"], mode="handwritten")
            text = "\n".join(line.text for line in page.lines)
            assert Levenshtein.normalized_distance(text, "\n".join(self.LINES)) < 0.1, text

    def test_language_without_lexicon_is_greedy(self, engines: dict[str, PaddleEngine]) -> None:
        """A language wordfreq has no list for (Latin) reads exactly as greedy decoding does."""
        image = render_lines(self.LINES, font_path=HANDWRITING, size=44)
        greedy = engines["greedy"].recognize(image, languages=["lat"], mode="handwritten")
        lexicon = engines["lexicon"].recognize(image, languages=["lat"], mode="handwritten")
        assert [line.text for line in greedy.lines] == [line.text for line in lexicon.lines]
