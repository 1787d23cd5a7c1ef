"""Hot-folder profiles: which settings a file is read with (pure, no engines)."""

from __future__ import annotations

import pytest

from ocrwatch.exceptions import ConfigError
from ocrwatch.settings.choices import AfterSuccess, Mode, OutputFormat
from ocrwatch.settings.model import Settings, load_settings
from ocrwatch.settings.resolve import effective_settings

PROFILES = [
    {"match": "es/**", "languages": "es", "name": "spanish"},
    {"match": "es/hw/**", "mode": "handwritten"},  # never reached: es/** comes first
    {"match": "notes/*", "mode": "handwritten", "after_success": "keep", "outputs": "pdf"},
    {"match": "**/*.tif", "preprocess": {"printed": {"deskew": False}}},
]


@pytest.fixture
def settings() -> Settings:
    return load_settings(overrides={"profiles": PROFILES, "languages": "eng"})


class TestEffectiveSettings:
    """First match wins; overrides apply; the global settings are not changed."""

    def test_first_match_wins(self, settings: Settings) -> None:
        """es/hw/x.png matches es/** first: Spanish, mode unchanged."""
        eff, name = effective_settings(settings, "es/hw/x.png")
        assert name == "spanish" and eff.languages == ["spa"] and eff.mode is Mode.AUTO

    def test_no_match_is_global(self, settings: Settings) -> None:
        """A top-level file gets the settings object itself and no profile name."""
        eff, name = effective_settings(settings, "letter.png")
        assert name is None and eff is settings

    def test_overrides(self, settings: Settings) -> None:
        """mode, after_success and outputs (txt/json always kept) come from the profile."""
        eff, name = effective_settings(settings, "notes/a/b.jpg")
        assert name == "notes/*"
        assert eff.mode is Mode.HANDWRITTEN and eff.after_success is AfterSuccess.KEEP
        assert eff.outputs == [OutputFormat.TXT, OutputFormat.JSON, OutputFormat.PDF]
        assert settings.mode is Mode.AUTO and settings.outputs == [
            OutputFormat.TXT,
            OutputFormat.JSON,
        ]

    def test_preprocess_merged(self, settings: Settings) -> None:
        """A partial preprocess table changes only its keys; a leading **/ matches at the top."""
        eff, _ = effective_settings(settings, "scan.tif")
        assert eff.preprocess.printed.deskew is False
        assert eff.preprocess.printed.text_height == settings.preprocess.printed.text_height
        assert settings.preprocess.printed.deskew is True


class TestValidation:
    """A bad profile is refused at load time, named by its name or match."""

    @pytest.mark.parametrize(
        ("profile", "words"),
        [
            ({"match": "a/**", "mode": "bogus"}, ["profile 'a/**'", "mode"]),
            ({"name": "x", "match": "b/**", "outputs": "pdf,docx"}, ["profile 'x'", "outputs"]),
            ({"match": "c/**", "colour": "red"}, ["profile 'c/**'", "colour: unknown setting"]),
            ({"match": "d/**", "preprocess": {"printed": {"median_filter": 2}}}, ["median_filter"]),
            ({"languages": "eng"}, ["profile 1", "match"]),
            ({"match": "/abs/**"}, ["profile '/abs/**'", "never match", "relative to the inbox"]),
            ({"name": "up", "match": "../**"}, ["profile 'up'", "never match", "'..'"]),
            ({"match": "["}, ["profile '['", "not a valid glob", "unclosed '['"]),
            ({"match": "scans/[!]x"}, ["unclosed '['"]),
            ({"match": "es/"}, ["never match", "'es/**'"]),
            ({"match": "./es/**"}, ["never match", "'.'"]),
            ({"match": "es//*"}, ["never match", "empty part"]),
        ],
    )
    def test_refused(self, profile: dict[str, object], words: list[str]) -> None:
        """load_settings raises ConfigError (exit 3) with the profile and the key."""
        with pytest.raises(ConfigError) as info:
            load_settings(overrides={"profiles": [profile]})
        assert info.value.exit_code == 3
        for word in words:
            assert word in str(info.value)

    @pytest.mark.parametrize("match", ["es/**", "**/*.jpg", "[[]draft]*", "[]]*", "[a-z]?/*"])
    def test_patterns_that_can_match_pass(self, match: str) -> None:
        """Globs a file can match (brackets closed, relative, file names) are accepted."""
        assert load_settings(overrides={"profiles": [{"match": match}]}).profiles[0].match == match

    def test_outputs_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OCRWATCH_OUTPUTS=pdf,alto works like --outputs."""
        monkeypatch.setenv("OCRWATCH_OUTPUTS", "pdf,alto")
        s = load_settings()
        assert s.outputs == [
            OutputFormat.TXT,
            OutputFormat.JSON,
            OutputFormat.PDF,
            OutputFormat.ALTO,
        ]
