"""Tests for ocrwatch.handwriting.typography: spaces around punctuation by the page's languages."""

from __future__ import annotations

import pytest

from ocrwatch.handwriting.typography import tidy_spacing


@pytest.mark.parametrize(
    ("read", "languages", "expected"),
    [
        # gaps before closing punctuation are not spaces, in any language
        ("telling , she said .", ["eng"], "telling, she said."),
        ("(Berochoth )", ["eng"], "(Berochoth)"),
        ("dijo , y se fue .", ["spa"], "dijo, y se fue."),
        ("il dit , puis .", ["fra"], "il dit, puis."),
        # a space after a comma or semicolon before a word, not inside numbers
        ("on,with adjournments;until", ["eng"], "on, with adjournments; until"),
        ("1,000 and 2,5", ["eng"], "1,000 and 2,5"),
        # an opening straight quote hugs its word; a closing one is left alone
        ('" wilful" and "Titanic"', ["eng"], '"wilful" and "Titanic"'),
        ('he said: " The end', ["eng"], 'he said: "The end'),
        # before ; : ! ? none in English and Spanish, one in French (not in 10:30)
        ("nature ; even so : yes ?", ["eng"], "nature; even so: yes?"),
        ("¿qué ? ¡no !", ["spa"], "¿qué? ¡no!"),
        ("la nature; même: oui? 10:30 !", ["fra"], "la nature ; même : oui ? 10:30 !"),
        # a page mixing French with another language keeps those four as read
        ("nature ; even:", ["eng", "fra"], "nature ; even:"),
        # a line that is only punctuation, or starts with it, is kept
        (", .", ["eng"], ",."),
        ("- extravagant -", ["eng"], "- extravagant -"),
    ],
)
def test_tidy_spacing(read: str, languages: list[str], expected: str) -> None:
    assert tidy_spacing(read, languages) == expected


def test_idempotent() -> None:
    """Tidying twice changes nothing more."""
    for text, languages in (("a , b ;c : d", ["eng"]), ("a ,b;c: d ! 10:30", ["fra"])):
        once = tidy_spacing(text, languages)
        assert tidy_spacing(once, languages) == once
