"""Deterministic tar archives of whole files: `oci-archive` and `docker save` tarballs.

Members are written in the order given (callers sort), with mtime 0, uid/gid 0, no owner names,
mode 0644 (0755 for directories), so the same files give the same archive bytes on any host.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ..fsutil import extract_tar
from ..hashing import CHUNK


def _info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def write_archive(out: IO[bytes], members: Iterable[tuple[str, Path | bytes]]) -> None:
    """Write `members` (archive name, file or bytes) as an uncompressed tar to `out`."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT, bufsize=CHUNK) as tar:
        for name, source in members:
            info = _info(name)
            if isinstance(source, bytes):
                info.size = len(source)
                tar.addfile(info, io.BytesIO(source))
            else:
                info.size = source.stat().st_size
                with source.open("rb") as handle:
                    tar.addfile(info, handle)


def tree_members(root: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file under `root`, as (relative posix name, path), sorted by name."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in files:
        yield path.relative_to(root).as_posix(), path


def safe_extract(archive: Path, into: Path) -> None:
    """Extract a tar refusing links, devices and paths that leave `into` (the `data` filter)."""
    try:
        with tarfile.open(archive) as tar:
            extract_tar(tar, into)
    except (tarfile.TarError, OSError) as error:
        from ..errors import ConfigurationError

        raise ConfigurationError(f"{archive}: not a readable tar archive ({error})") from None
