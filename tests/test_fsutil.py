"""Safe tar extraction behaves the same with the stdlib's `data` filter (Python 3.11.4+) and
without it (Debian 12's python3 is 3.11.2)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from crossyard.fsutil import extract_tar


def archive(*members: tuple[tarfile.TarInfo, bytes]) -> tarfile.TarFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


def member(name: str, *, type: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = type, mode, link
    return info


# The fallback always; the stdlib's filter where this Python has it (3.11.4+).
VARIANTS = ["fallback", *(["stdlib filter"] if hasattr(tarfile, "data_filter") else [])]


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "fallback":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return str(request.param)


def test_good_archive_drops_special_bits(tmp_path: Path, variant: str) -> None:
    extract_tar(archive((member("pkg/run.sh", mode=0o4777), b"#!/bin/sh\n"),
                        (member("pkg/link", type=tarfile.SYMTYPE, link="run.sh"), b"")), tmp_path)
    assert (tmp_path / "pkg" / "run.sh").read_bytes() == b"#!/bin/sh\n"
    assert (tmp_path / "pkg" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (tmp_path / "pkg" / "link").resolve() == (tmp_path / "pkg" / "run.sh").resolve()


def test_absolute_names_land_inside(tmp_path: Path, variant: str) -> None:
    extract_tar(archive((member("/etc/evil"), b"x")), tmp_path)
    assert (tmp_path / "etc" / "evil").read_bytes() == b"x"


@pytest.mark.parametrize("bad", [
    member("../evil"),
    member("pkg/../../evil"),
    member("pkg/out", type=tarfile.SYMTYPE, link="/etc/passwd"),
    member("pkg/out", type=tarfile.SYMTYPE, link="../../etc/passwd"),
    member("pkg/hard", type=tarfile.LNKTYPE, link="../outside"),
    member("pkg/dev", type=tarfile.CHRTYPE),
], ids=["dotdot", "nested-dotdot", "symlink-absolute", "symlink-escapes", "hardlink-escapes",
        "device"])
def test_refused(tmp_path: Path, variant: str, bad: tarfile.TarInfo) -> None:
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(tarfile.TarError):
        extract_tar(archive((bad, b"")), into)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()
