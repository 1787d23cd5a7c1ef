"""Filesystem primitives: names that fit, printable names, moves across bind mounts."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocrwatch.support import fsutil


class TestNames:
    """Names are fitted to 255 bytes and shown readably."""

    @pytest.mark.parametrize("name", ["n" * 300 + ".png", "漢" * 100 + ".jpeg", "x" * 255])
    def test_fit_name(self, name: str) -> None:
        """A long name keeps its start and suffix, gets a hash, and fits with its reserve."""
        fitted = fsutil.fit_name(name, reserve=15)
        raw = os.fsencode(fitted)
        assert len(raw) + 15 <= fsutil.NAME_MAX
        raw.decode("utf-8")  # never cut inside a character
        assert fitted[:3] == name[:3]
        if "." in name:
            assert fitted.endswith(name[name.rindex(".") :])
        assert fsutil.fit_name("other" + name, reserve=15) != fitted

    def test_short_names_unchanged(self) -> None:
        """A name that fits is returned as it is."""
        assert fsutil.fit_name("scan 01.pdf", reserve=15) == "scan 01.pdf"

    def test_display_and_utf8_path(self) -> None:
        """Bytes that are not UTF-8 print as \\xNN; utf8_path puts U+FFFD in their place."""
        odd = os.fsdecode(b"caf\xe9.png")
        assert fsutil.display(odd) == "caf\\xe9.png"
        assert fsutil.display("café.png") == "café.png"
        assert fsutil.utf8_path(Path(odd)) == Path("caf\ufffd.png")


@pytest.fixture
def bind_pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two bind mounts of one folder tree: one st_dev, yet link() across them is EXDEV."""
    disk = tmp_path / "disk"
    (disk / "a").mkdir(parents=True)
    (disk / "b").mkdir()
    mounts = [tmp_path / "ma", tmp_path / "mb"]
    for source, target in zip((disk / "a", disk / "b"), mounts, strict=True):
        target.mkdir()
        proc = subprocess.run(
            ["mount", "--bind", str(source), str(target)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.fail(f"bind mount failed (run as root, as CI does): {proc.stderr}")
    yield mounts[0], mounts[1]
    for target in mounts:
        subprocess.run(["umount", "-l", str(target)], check=False)


class TestMoves:
    """Moves are durable, never clobber, and fall back to copying when linking fails."""

    def test_move_across_bind_mounts(self, bind_pair: tuple[Path, Path]) -> None:
        """EXDEV with equal st_dev: the file is copied, fsynced and the source removed."""
        a, b = bind_pair
        assert os.stat(a).st_dev == os.stat(b).st_dev
        src = a / "scan.png"
        src.write_bytes(b"original")
        with pytest.raises(OSError):
            os.link(src, b / "probe")
        target = fsutil.durable_move(src, b / "scan.png")
        assert target == b / "scan.png" and target.read_bytes() == b"original"
        assert not src.exists()
        assert not [p for p in b.iterdir() if p.name.startswith(".")]

    def test_never_clobbers(self, tmp_path: Path) -> None:
        """A taken name gets .2; a target with the same content is reused (crash replay)."""
        (tmp_path / "x.png").write_bytes(b"other")
        src = tmp_path / "src.png"
        src.write_bytes(b"mine")
        assert fsutil.durable_move(src, tmp_path / "x.png") == tmp_path / "x.2.png"
        src.write_bytes(b"mine")
        assert fsutil.durable_move(src, tmp_path / "x.png") == tmp_path / "x.2.png"
        assert (tmp_path / "x.png").read_bytes() == b"other"

    def test_sweep_temp_removes_only_old_ones(self, tmp_path: Path) -> None:
        """Temporary files of killed writers go; fresh ones (a live writer's) stay."""
        old = fsutil.temp_path(tmp_path)
        new = fsutil.temp_path(tmp_path)
        for p in (old, new):
            p.write_bytes(b"x")
        past = time.time() - 3600
        os.utime(old, (past, past))
        (tmp_path / "keep.txt").write_bytes(b"x")
        assert fsutil.sweep_temp(tmp_path, older_than=600) == 1
        assert not old.exists() and new.exists() and (tmp_path / "keep.txt").exists()


class TestRefusedNames:
    """A name whose bytes a share refuses is written once more under its UTF-8 spelling."""

    def test_fallback_only_for_refused_names(self, tmp_path: Path) -> None:
        """EILSEQ on the Latin-1 name: the U+FFFD name; other errors pass through."""
        odd = tmp_path / os.fsdecode(b"caf\xe9.txt")
        tried: list[Path] = []

        def write(path: Path) -> Path:
            tried.append(path)
            if os.fsencode(path) != os.fsencode(path).decode("utf-8", "ignore").encode():
                raise OSError(errno.EILSEQ, "Invalid or incomplete multibyte", str(path))
            path.write_text("x")
            return path

        assert fsutil.with_utf8_fallback(odd, write) == tmp_path / "caf\ufffd.txt"
        assert tried == [odd, tmp_path / "caf\ufffd.txt"]

        def full(path: Path) -> Path:
            raise OSError(errno.ENOSPC, "full", str(path))

        with pytest.raises(OSError, match="full"):
            fsutil.with_utf8_fallback(odd, full)
