"""Atomic file writes: temp file in the same directory, fsync, rename.

An interrupted build, push or rotation must leave the previous good state readable, so nothing
is ever written in place.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces `path` only if the block completes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    with atomic_writer(path, mode=mode) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode(), mode=mode)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def extract_tar(tar: tarfile.TarFile, into: Path) -> None:
    """Extract `tar` as the stdlib's `data` filter does: leading slashes stripped; names or link
    targets outside `into`, devices and fifos refused; setuid/setgid bits and ownership dropped.
    Python 3.11.4+ has the filter; Debian 12's python3 (3.11.2) does not, so the same checks
    are made here there. A refused member is a `tarfile.TarError`."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return
    root = os.path.realpath(into)
    members = []
    for member in tar.getmembers():
        name = member.name = member.name.lstrip("/")  # as the filter does: /etc/x lands in into/etc/x
        where = os.path.realpath(os.path.join(root, name))
        if where != root and not where.startswith(root + os.sep):
            raise tarfile.TarError(f"member {name!r} would be extracted outside the destination")
        if member.isdev() or member.isfifo():
            raise tarfile.TarError(f"member {name!r} is a device or fifo")
        if member.issym() or member.islnk():
            base = os.path.dirname(os.path.join(root, name)) if member.issym() else root
            target = os.path.realpath(os.path.join(base, member.linkname))
            if os.path.isabs(member.linkname) or not (target == root or target.startswith(root + os.sep)):
                raise tarfile.TarError(f"member {name!r} links outside the destination ({member.linkname!r})")
        member.mode &= 0o755  # no setuid/setgid/sticky, no group/other write
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        members.append(member)
    tar.extractall(into, members=members)
