"""Settings: sources, precedence, validation messages, and the example file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ocrwatch.exceptions import ConfigError, ExitCode
from ocrwatch.settings.choices import Binarize, Mode
from ocrwatch.settings.model import Settings, load_settings
from ocrwatch.settings.profiles import Profile

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "ocrwatch.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("OCRWATCH_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)


class TestSources:
    """Defaults < TOML < environment < CLI overrides."""

    def test_defaults(self) -> None:
        """Without any source the documented defaults apply."""
        s = load_settings()
        assert s.mode is Mode.AUTO
        assert s.languages == ["eng"]
        assert s.preprocess.handwritten.median_filter == 3

    def test_precedence(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The environment beats the file and CLI overrides beat both."""
        cfg = tmp_path / "c.toml"
        cfg.write_text('mode = "printed"\nlanguages = ["spa"]\n[paddle]\ndet_thresh = 0.3\n')
        monkeypatch.setenv("OCRWATCH_PADDLE__DET_THRESH", "0.25")
        monkeypatch.setenv("OCRWATCH_LANGUAGES", "eng+spa")
        s = load_settings(config_file=cfg, overrides={"mode": "handwritten", "engine": None})
        assert s.mode is Mode.HANDWRITTEN
        assert s.languages == ["eng", "spa"]
        assert s.paddle.det_thresh == 0.25

    def test_config_from_env_var(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OCRWATCH_CONFIG names the file when --config is not given."""
        cfg = tmp_path / "c.toml"
        cfg.write_text('[preprocess.printed]\nbinarize = "otsu"\n')
        monkeypatch.setenv("OCRWATCH_CONFIG", str(cfg))
        assert load_settings().preprocess.printed.binarize is Binarize.OTSU

    def test_language_aliases(self) -> None:
        """Language names and two-letter codes become Tesseract codes, deduplicated."""
        s = load_settings(overrides={"languages": "en,Spanish,spa"})
        assert s.languages == ["eng", "spa"]


class TestErrors:
    """A bad value gives a ConfigError (exit 3) naming the key."""

    @pytest.mark.parametrize(
        ("env", "value", "key"),
        [
            ("OCRWATCH_PADDLE__DET_THRESH", "abc", "paddle.det_thresh"),
            ("OCRWATCH_MODE", "sideways", "mode"),
            (
                "OCRWATCH_PREPROCESS__PRINTED__MEDIAN_FILTER",
                "4",
                "preprocess.printed.median_filter",
            ),
            ("OCRWATCH_ASPOSE__BASE_URL", "ftp://x", "aspose.base_url"),
        ],
    )
    def test_bad_env_value(
        self, monkeypatch: pytest.MonkeyPatch, env: str, value: str, key: str
    ) -> None:
        """Each invalid environment value is reported with its dotted key."""
        monkeypatch.setenv(env, value)
        with pytest.raises(ConfigError) as info:
            load_settings()
        assert key in str(info.value)
        assert info.value.exit_code == ExitCode.CONFIG

    def test_unknown_key_in_file(self, tmp_path: Path) -> None:
        """A misspelt key in the TOML file is refused, not ignored."""
        cfg = tmp_path / "c.toml"
        cfg.write_text("[paddle]\ndet_treshold = 0.3\n")
        with pytest.raises(ConfigError, match=r"paddle\.det_treshold: unknown setting"):
            load_settings(config_file=cfg)

    def test_missing_and_broken_files(self, tmp_path: Path) -> None:
        """A missing or unparsable config file is a ConfigError naming the file."""
        with pytest.raises(ConfigError, match="not found"):
            load_settings(config_file=tmp_path / "nope.toml")
        bad = tmp_path / "bad.toml"
        bad.write_text("mode = \n")
        with pytest.raises(ConfigError, match=r"bad\.toml"):
            load_settings(config_file=bad)


class TestExampleFile:
    """config/ocrwatch.example.toml loads and documents every key."""

    def test_loads(self) -> None:
        """The example file is a valid configuration."""
        load_settings(config_file=EXAMPLE)

    def test_documents_every_key(self) -> None:
        """Every settings key appears in the example (set, or as a commented line)."""
        text = EXAMPLE.read_text()
        tomllib.loads(text)
        missing = []

        def walk(model: type, prefix: str) -> None:
            for name, field in model.model_fields.items():  # type: ignore[attr-defined]
                sub = field.annotation
                if isinstance(sub, type) and hasattr(sub, "model_fields"):
                    walk(sub, f"{prefix}{name}.")
                    continue
                section = prefix.rstrip(".")
                if section and f"[{section}]" not in text:
                    missing.append(f"[{section}]")
                if f"{name} =" not in text and f"# {name} =" not in text:
                    missing.append(prefix + name)

        walk(Settings, "")
        for name in Profile.model_fields:
            if f"# {name} =" not in text:
                missing.append(f"profiles.{name}")
        assert not missing, f"undocumented keys: {missing}"


class TestSecrets:
    """Secrets are masked wherever settings are shown."""

    def test_secret_masked(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The Aspose client secret never appears in repr or the logged configuration."""
        monkeypatch.setenv("OCRWATCH_ASPOSE__CLIENT_SECRET", "s3cr3t-value")
        s = load_settings()
        assert s.aspose.client_secret is not None
        assert s.aspose.client_secret.get_secret_value() == "s3cr3t-value"
        assert "s3cr3t-value" not in repr(s)
        assert "s3cr3t-value" not in str(s.masked())

    def test_secret_from_credentials_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A systemd credential file named aspose__client_secret sets the nested secret."""
        (tmp_path / "aspose__client_secret").write_text("from-a-file\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
        s = load_settings()
        assert s.aspose.client_secret is not None
        assert s.aspose.client_secret.get_secret_value() == "from-a-file"

    def test_environment_beats_secret_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The environment wins over the secrets directory, as documented."""
        (tmp_path / "aspose__client_secret").write_text("from-a-file")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
        monkeypatch.setenv("OCRWATCH_ASPOSE__CLIENT_SECRET", "from-env")
        assert load_settings().aspose.client_secret.get_secret_value() == "from-env"  # type: ignore[union-attr]
