"""The deterministic tar of a toolchain root (what the Docker and SSH executors ship, named by
its digest), read back by GNU tar; and `TarStream`, which hands a tar over in bounded chunks."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import require, require_tool
from crossyard.executors.shipping import QUEUE_DEPTH, TarStream, root_archive, write_root
from crossyard.hashing import CHUNK


def make_root(root: Path) -> Path:
    """A small root with what real ones hold: nested dirs, a setuid binary, a file of another
    owner, a hard link pair, a symlink, a FIFO and a character device."""
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    os.chmod(root / "usr" / "bin" / "tool", 0o4755)
    (root / "usr" / "bin" / "same").write_bytes(b"same bytes\n")
    os.link(root / "usr" / "bin" / "same", root / "usr" / "bin" / "also")
    (root / "usr" / "bin" / "link").symlink_to("tool")
    (root / "var" / "mail").mkdir(parents=True)
    os.chown(root / "var" / "mail", 0, 8)
    os.chmod(root / "var" / "mail", 0o2775)
    (root / "dev").mkdir()
    os.mkfifo(root / "dev" / "fifo")
    os.mknod(root / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(root / "dev" / "null", 0o666)  # past the umask
    return root


def listing(tar: Path) -> list[str]:
    """What GNU tar reads: one line per entry, in archive order."""
    out = subprocess.run(["tar", "-tv", "--numeric-owner", "--full-time", "-f", str(tar)], capture_output=True,
                         text=True, check=True).stdout
    return [" ".join(line.split()) for line in out.splitlines()]


def test_a_root_tar_is_sorted_numeric_and_keeps_what_a_root_needs(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "making device nodes and chown need root")
    require_tool("tar")
    root = make_root(tmp_path / "root")
    tar = tmp_path / "root.tar"
    with tar.open("wb") as out:
        write_root(root, out)
    epoch = "1970-01-01 00:00:00"
    assert listing(tar) == [
        f"drwxr-xr-x 0/0 0 {epoch} dev/",
        f"prw-r--r-- 0/0 0 {epoch} dev/fifo",
        f"crw-rw-rw- 0/0 1,3 {epoch} dev/null",
        f"drwxr-xr-x 0/0 0 {epoch} usr/",
        f"drwxr-xr-x 0/0 0 {epoch} usr/bin/",
        f"-rw-r--r-- 0/0 11 {epoch} usr/bin/also",
        f"lrwxrwxrwx 0/0 0 {epoch} usr/bin/link -> tool",
        f"hrw-r--r-- 0/0 0 {epoch} usr/bin/same link to usr/bin/also",
        f"-rwsr-xr-x 0/0 20 {epoch} usr/bin/tool",
        f"drwxr-xr-x 0/0 0 {epoch} var/",
        f"drwxrwsr-x 0/8 0 {epoch} var/mail/",
    ]


def test_the_digest_depends_on_content_not_on_times_and_is_remembered(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "making device nodes and chown need root")
    root = make_root(tmp_path / "root")
    first = root_archive(root)
    tar = tmp_path / "root.tar"
    with tar.open("wb") as out:
        write_root(root, out)
    assert (first.digest, first.size) == (f"sha256:{hashlib.sha256(tar.read_bytes()).hexdigest()}",
                                          tar.stat().st_size)
    assert root_archive(root) is first  # nothing changed: remembered
    os.utime(root / "usr" / "bin" / "tool", (1, 1))
    touched = root_archive(root)
    assert touched is not first and touched.digest == first.digest  # read again, same bytes
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho other\n")
    assert root_archive(root).digest != first.digest


def test_a_root_unpacked_by_gnu_tar_has_the_same_digest(tmp_path: Path) -> None:
    """What the SSH executor relies on: the copy a node unpacks is the same root."""
    require(os.geteuid() == 0, "making device nodes and chown need root")
    require_tool("tar")
    root = make_root(tmp_path / "root")
    tar = tmp_path / "root.tar"
    with tar.open("wb") as out:
        write_root(root, out)
    copy = tmp_path / "copy"
    copy.mkdir()
    subprocess.run(["tar", "-x", "--numeric-owner", "-p", "-f", str(tar), "-C", str(copy)], check=True)
    assert root_archive(copy).digest == root_archive(root).digest
    assert os.stat(copy / "usr" / "bin" / "same").st_ino == os.stat(copy / "usr" / "bin" / "also").st_ino


def test_a_tar_stream_hands_over_bounded_chunks_and_its_digest(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(CHUNK) * 20)
    produced: list[int] = []

    def write(out: object) -> None:
        with big.open("rb") as source:
            while chunk := source.read(CHUNK // 4):
                out.write(chunk)  # type: ignore[attr-defined]
                produced.append(len(chunk))

    with TarStream(write) as stream:
        chunks = iter(stream)
        first = next(chunks)
        time.sleep(0.5)  # the writer runs ahead, but only so far
        assert sum(produced) <= (QUEUE_DEPTH + 3) * CHUNK
        received = first + b"".join(chunks)
    assert received == big.read_bytes()
    assert stream.size == big.stat().st_size
    assert stream.digest == "sha256:" + hashlib.sha256(received).hexdigest()


def test_a_tar_stream_raises_the_writers_error_and_stops_the_writer_when_left(tmp_path: Path) -> None:
    def broken(out: object) -> None:
        out.write(b"x" * 10)  # type: ignore[attr-defined]
        raise OSError("disk gone")

    with TarStream(broken) as stream, pytest.raises(OSError, match="disk gone"):
        list(stream)

    def endless(out: object) -> None:
        while True:
            out.write(b"y" * CHUNK)  # type: ignore[attr-defined]

    before = threading.active_count()
    with TarStream(endless) as stream:
        next(iter(stream))
    assert threading.active_count() == before  # close() stopped and joined the writer
    with pytest.raises(RuntimeError, match="not read to its end"):
        _ = stream.digest
