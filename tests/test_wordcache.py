"""Tests for handwriting.wordcache: word data built once, then loaded from a private folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocrwatch.handwriting import wordcache


class Builder:
    """Counts builds of a small value; dumps and loads it as JSON."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.builds = 0

    def __call__(self) -> object:
        self.builds += 1
        return self.value

    def get(self, folder: Path, *, name: str = "words", packages: tuple[str, ...] = ()) -> object:
        return wordcache.load_or_build(
            name,
            packages=packages,
            key=("k",),
            build=self,
            dump=lambda v: json.dumps(v).encode(),
            load=json.loads,
            folder=folder,
        )


def test_built_once_then_loaded(tmp_path: Path) -> None:
    """The second call loads the file the first one wrote (mode 0600 in a 0700 folder)."""
    folder = tmp_path / "cache"
    build = Builder({"a": 1.5})
    assert build.get(folder) == {"a": 1.5}
    assert build.get(folder) == {"a": 1.5}
    assert build.builds == 1
    (path,) = folder.iterdir()
    assert path.stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700


def test_new_inputs_replace_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another package version builds again and removes the stale file, not other names'."""
    build = Builder([1])
    build.get(tmp_path, packages=("wordfreq",))
    Builder([2]).get(tmp_path, name="words-fra")
    monkeypatch.setattr(wordcache, "version", lambda name: "999")
    assert build.get(tmp_path, packages=("wordfreq",)) == [1]
    assert build.builds == 2
    names = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.iterdir())
    assert names == ["words", "words-fra"]


def test_unreadable_file_is_rebuilt(tmp_path: Path) -> None:
    """A truncated cache file is built again and rewritten."""
    build = Builder({"a": 1})
    build.get(tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b'{"a"')
    assert build.get(tmp_path) == {"a": 1}
    assert build.builds == 2
    assert json.loads(path.read_bytes()) == {"a": 1}


def test_shared_folder_is_never_read(tmp_path: Path) -> None:
    """A folder others can write in (so its files could be anyone's) is neither read nor written."""
    tmp_path.chmod(0o777)
    (tmp_path / "words-0000000000000000.bin").write_text("[]")
    build = Builder({"a": 1})
    assert build.get(tmp_path) == {"a": 1}
    assert build.get(tmp_path) == {"a": 1}
    assert build.builds == 2
    assert [p.name for p in tmp_path.iterdir()] == ["words-0000000000000000.bin"]


def test_unwritable_place_still_returns_the_data(tmp_path: Path) -> None:
    """A cache folder that cannot be made (a file is in the way) costs a build, no error."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    build = Builder([3])
    assert build.get(blocker / "cache") == [3]
    assert build.get(blocker / "cache") == [3]
    assert build.builds == 2


def test_no_home_means_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HOME and no account entry (an arbitrary uid in a container): built, not cached."""

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert wordcache.cache_dir({}) is None
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    build = Builder([4])
    got = wordcache.load_or_build(
        "words", packages=(), key=(), build=build, dump=lambda v: b"", load=lambda b: None
    )
    assert got == [4] and build.builds == 1


def test_cache_dir_order() -> None:
    """systemd's CACHE_DIRECTORY first, then XDG_CACHE_HOME, then ~/.cache."""
    assert wordcache.cache_dir({"CACHE_DIRECTORY": "/var/cache/ocrwatch", "HOME": "/h"}) == Path(
        "/var/cache/ocrwatch"
    )
    assert wordcache.cache_dir({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/ocrwatch")
    assert wordcache.cache_dir({"HOME": "/h"}) == Path("/h/.cache/ocrwatch")
