"""Hot folders end to end: ``ocrwatch run`` with [[profiles]] in its TOML file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from e2e.conftest import Daemon, Folders, base_env, wait_until
from imaging import render_lines, save
from stub_engines import stub_site

pytestmark = pytest.mark.e2e

SPANISH = ["La reunión con el señor Muñoz", "será el miércoles por la mañana."]

CONFIG = """\
languages = ["eng"]

[[profiles]]
name = "spanish letters"
match = "es/**"
languages = ["spa"]
mode = "printed"
outputs = ["txt", "json", "hocr"]
"""


def _manifest(folders: Folders, rel: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((folders.outbox / f"{rel}.json").read_text())
    return data


class TestProfiles:
    """A file under es/ is read with the Spanish profile; one at the top with the globals."""

    def test_es_profile(self, folders: Folders, make_daemon: Callable[..., Daemon]) -> None:
        """Manifests record the profile and its languages; only es/ gets the hOCR."""
        config = folders.root / "ocrwatch.toml"
        config.write_text(CONFIG)
        page = render_lines(SPANISH, size=40)
        save(page, folders.inbox / "es" / "carta.png")
        save(page, folders.inbox / "top.png")

        daemon = make_daemon(config=config).start()
        rels = ["es/carta.png", "top.png"]
        wait_until(lambda: folders.accounted(rels), timeout=90, what="both files handled")
        assert daemon.stop() == 0

        es, top = _manifest(folders, "es/carta.png"), _manifest(folders, "top.png")
        assert es["languages"] == ["spa"] and es["profile"] == "spanish letters"
        assert es["mode"] == "printed"
        assert top["languages"] == ["eng"] and top["profile"] is None
        assert (folders.outbox / "es" / "carta.png.hocr").is_file()
        assert not (folders.outbox / "top.png.hocr").exists()
        # Read in Spanish: the accents and the tilde survive (the English model has none).
        text = (folders.outbox / "es" / "carta.png.txt").read_text()
        assert "reunión" in text and "Muñoz" in text, text

    @pytest.mark.parametrize(
        ("profile", "named"),
        [
            ('match = "de/**"\nname = "german"\nlanguages = ["xx"]', "german"),
            ('match = "hw/**"\nmode = "scribbled"', "hw/**"),
        ],
    )
    def test_bad_profile_exits_3(self, folders: Folders, profile: str, named: str) -> None:
        """A profile with an unknown language or mode stops the start, naming the profile."""
        config = folders.root / "bad.toml"
        config.write_text(f"[[profiles]]\n{profile}\n")
        args = ["--inbox", str(folders.inbox), "--outbox", str(folders.outbox)]
        proc = subprocess.run(
            [sys.executable, "-m", "ocrwatch", "run", *args, "--state-dir", str(folders.state)],
            capture_output=True,
            text=True,
            env=base_env(folders.root, config=config),
            timeout=120,
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        assert f"profile {named!r}" in proc.stderr, proc.stderr
        check = subprocess.run(
            [sys.executable, "-m", "ocrwatch", "check", "--config", str(config)],
            capture_output=True,
            text=True,
            env=base_env(folders.root),
            timeout=120,
            check=False,
        )
        assert check.returncode == 3, check.stdout + check.stderr
        assert f"profile {named!r}" in check.stdout + check.stderr


class TestRestart:
    """What a claimed file is read with is decided once: a restart with other settings keeps it."""

    def test_claimed_file_keeps_its_languages(
        self, folders: Folders, make_daemon: Callable[..., Daemon]
    ) -> None:
        """Claimed as spa, held by a slow engine, restarted with eng: still read as spa."""
        site = stub_site(folders.root / "site")
        daemon = make_daemon(
            engine="stub", languages="spa", workers=1, stop_timeout=0.1,
            test_stub_seconds=120,
        )  # fmt: skip
        daemon.env["PYTHONPATH"] = site
        daemon.start()
        save(render_lines(["hola"], size=30), folders.inbox / "a.png")
        wait_until(
            lambda: folders.work.exists() and any(folders.work.rglob("a.png")),
            timeout=60,
            what="a.png claimed",
        )
        assert daemon.stop(group=True) == 0
        assert list(folders.work.rglob("a.png")), "a.png should be left claimed"

        daemon.env["OCRWATCH_LANGUAGES"] = "eng"
        daemon.env["OCRWATCH_TEST_STUB_SECONDS"] = "0"
        daemon.start()
        save(render_lines(["hello"], size=30), folders.inbox / "b.png")
        wait_until(lambda: folders.accounted(["a.png", "b.png"]), timeout=90, what="both read")
        assert daemon.stop() == 0
        assert (folders.outbox / "a.png.txt").read_text().strip() == "read spa"
        assert _manifest(folders, "a.png")["languages"] == ["spa"]
        assert (folders.outbox / "b.png.txt").read_text().strip() == "read eng"
        assert _manifest(folders, "b.png")["languages"] == ["eng"]
