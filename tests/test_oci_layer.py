from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

from crossyard.oci.layer import LayerEntry, _with_parents, add_entry, write_layer
from crossyard.oci.layout import OciLayout


def _entries(tmp_path: Path) -> list[LayerEntry]:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 300_000)
    return [
        LayerEntry(path="/usr/bin/hello", source=big, mode=0o755),
        LayerEntry(path="etc/motd", source=b"hi\n"),
        LayerEntry(path="/bin/sh", symlink="/usr/bin/hello"),
        LayerEntry(path="/tmp", mode=0o1777),
    ]


def test_layer_is_deterministic_and_well_formed(tmp_path: Path) -> None:
    a = OciLayout(tmp_path / "a").ensure()
    b = OciLayout(tmp_path / "b").ensure()
    la = write_layer(a, _entries(tmp_path), source_date_epoch=1700000000)
    lb = write_layer(b, list(reversed(_entries(tmp_path))), source_date_epoch=1700000000)
    assert la == lb
    blob = a.read_blob(la.descriptor.digest)
    assert blob[4:8] == b"\0\0\0\0"  # gzip mtime 0
    raw = gzip.decompress(blob)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == la.diff_id
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names == ["bin", "bin/sh", "etc", "etc/motd", "tmp", "usr", "usr/bin", "usr/bin/hello"]
    assert all(m.mtime == 1700000000 and m.uid == 0 and m.uname == "" for m in members)
    assert {m.name: m.mode for m in members}["tmp"] == 0o1777


def test_zstd_layer(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "z").ensure()
    layer = write_layer(
        layout, _entries(tmp_path), source_date_epoch=0, compression="zstd", level=3
    )
    assert layer.descriptor.media_type.endswith("+zstd")
    assert layout.has_blob(layer.descriptor.digest)


def test_tar_bytes_are_tarfile_stream_modes(tmp_path: Path) -> None:
    """The tar is written to the hashing sink directly (tarfile mode "w"), not through tarfile's
    stream buffer as before: the bytes, and so the diff_ids and digests in crossyard.lock, are
    the same. Names past 100 characters take GNU longname records."""
    entries = [*_entries(tmp_path), LayerEntry(path="/opt/" + "d" * 120 + "/" + "f" * 110, source=b"x")]
    layer = write_layer(OciLayout(tmp_path / "l").ensure(), entries, source_date_epoch=1700000000)
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for entry in _with_parents(entries):
            add_entry(tar, entry, mtime=1700000000)
    assert layer.diff_id == "sha256:" + hashlib.sha256(stream.getvalue()).hexdigest()
