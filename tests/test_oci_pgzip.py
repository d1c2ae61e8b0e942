"""The parallel gzip for layers: the same bytes whatever the number of workers, one gzip stream
that gzip(1) and Python read back exactly, and memory that does not grow with the input."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import subprocess
import sys
import tarfile
import threading
import zlib
from pathlib import Path

import pytest

from conftest import require_tool
from crossyard.oci.layer import LayerEntry, compressor_identity, write_layer
from crossyard.oci.layout import OciLayout
from crossyard.oci.pgzip import BLOCK_SIZE, DICT_SIZE, ParallelGzipWriter

MIB = 1 << 20


def mixed(size: int, seed: int = 7) -> bytes:
    """Random stretches and repetitive text: blocks that deflate slowly and quickly, so workers
    finish out of order."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(rng.randint(1, 90_000)) if rng.random() < 0.5 else \
            b"the quick brown fox %d\n" % rng.randint(0, 99) * rng.randint(1, 4000)
    return bytes(out[:size])


def pgzip(data: bytes, *, workers: int, chunk: int = 65_536, **options: int) -> bytes:
    out = io.BytesIO()
    with ParallelGzipWriter(out, workers=workers, **options) as writer:
        for at in range(0, len(data), chunk):
            writer.write(data[at:at + chunk])
    return out.getvalue()


def test_same_bytes_whatever_the_workers_and_the_writes() -> None:
    data = mixed(6 * MIB + 12_345)
    reference = pgzip(data, workers=1)
    for workers, chunk in ((2, 1_000_003), (8, 4_097), (8, 65_536), (1, len(data))):
        assert pgzip(data, workers=workers, chunk=chunk) == reference, (workers, chunk)
    # and across runs
    assert pgzip(data, workers=8) == reference
    # the block size is part of what makes the bytes (it is in the identity)
    assert pgzip(data, workers=2, block_size=DICT_SIZE) != reference


@pytest.mark.parametrize("size", [0, 1, DICT_SIZE - 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1,
                                  2 * BLOCK_SIZE, 3 * MIB + 17])
def test_one_gzip_stream_that_gzip_and_python_read(size: int) -> None:
    gzip_tool = require_tool("gzip")
    data = mixed(size, seed=size)
    blob = pgzip(data, workers=2)
    assert blob[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no name or other fields
    assert blob[4:8] == b"\0\0\0\0" and blob[9] == 255  # mtime 0, OS unknown: nothing of the host
    assert subprocess.run([gzip_tool, "-dc"], input=blob, capture_output=True, check=True).stdout == data
    assert gzip.decompress(blob) == data
    # one member: a raw inflate of the body ends exactly at the 8-byte trailer
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    assert inflater.decompress(blob[10:]) == data and inflater.eof
    assert inflater.unused_data == zlib.crc32(data).to_bytes(4, "little") + len(data).to_bytes(4, "little")


def test_matches_reach_back_across_blocks() -> None:
    """Each block is primed with the 32 KiB before it: a repeat that spans a cut still costs
    little more than in one deflate stream (without the dictionary each of the 16 blocks would
    pay ~20 kB for its first copy of the piece)."""
    piece = random.Random(1).randbytes(20_000)
    data = piece * 100  # 2 MB: 16 blocks
    assert len(pgzip(data, workers=2)) < len(gzip.compress(data, compresslevel=6)) * 1.1


def test_a_failing_output_stops_the_workers_and_reaches_the_caller() -> None:
    class Full:
        writes = 0

        def write(self, data: bytes) -> int:
            self.writes += 1
            if self.writes > 3:
                raise OSError(28, "No space left on device")
            return len(data)

    data = mixed(4 * MIB)
    with pytest.raises(OSError, match="No space"), ParallelGzipWriter(Full(), workers=4) as writer:
        writer.write(data)
    assert not [t for t in threading.enumerate() if t.name.startswith("pgzip")]


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="window"):
        ParallelGzipWriter(io.BytesIO(), block_size=DICT_SIZE - 1)
    with pytest.raises(ValueError, match="level"):
        ParallelGzipWriter(io.BytesIO(), level=10)


def _entries(tmp_path: Path) -> list[LayerEntry]:
    (tmp_path / "big.bin").write_bytes(mixed(3 * MIB))
    (tmp_path / "exact.bin").write_bytes(mixed(BLOCK_SIZE, seed=2))
    return [
        LayerEntry(path="/usr/bin/tool", source=tmp_path / "big.bin", mode=0o755),
        LayerEntry(path="/usr/lib/exact", source=tmp_path / "exact.bin"),
        LayerEntry(path="/etc/motd", source=b"hello\n"),
        LayerEntry(path="/bin/sh", symlink="/usr/bin/tool"),
        LayerEntry(path="/tmp", mode=0o1777),
    ]


def _members(tar_bytes: bytes) -> list[tuple[str, int, int, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return [(m.name, m.mode, m.mtime, tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()]


def test_pgzip_layer_digest_equal_whatever_the_core_count(tmp_path: Path) -> None:
    gzip_tool = require_tool("gzip")
    entries = _entries(tmp_path)
    layers = [write_layer(OciLayout(tmp_path / f"w{workers}").ensure(), entries,
                          source_date_epoch=1700000000, compression="pgzip", workers=workers)
              for workers in (1, 2, 8)]
    assert layers[0] == layers[1] == layers[2]
    layer = layers[0]
    assert layer.descriptor.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert layer.compression == "pgzip"
    # the same tar as the default compressor's: only the compressed bytes differ
    plain_layout = OciLayout(tmp_path / "plain").ensure()
    plain = write_layer(plain_layout, entries, source_date_epoch=1700000000)
    assert plain.diff_id == layer.diff_id and plain.descriptor.digest != layer.descriptor.digest
    blob = OciLayout(tmp_path / "w2").blob_path(layer.descriptor.digest)
    tar_bytes = subprocess.run([gzip_tool, "-dc", str(blob)], capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(tar_bytes).hexdigest() == layer.diff_id
    members = _members(tar_bytes)
    assert members == _members(gzip.decompress(plain_layout.read_blob(plain.descriptor.digest)))
    assert [m[0] for m in members] == ["bin", "bin/sh", "etc", "etc/motd", "tmp", "usr", "usr/bin",
                                       "usr/bin/tool", "usr/lib", "usr/lib/exact"]
    assert dict((m[0], m[3]) for m in members)["usr/bin/tool"] == (tmp_path / "big.bin").read_bytes()
    assert compressor_identity("pgzip", 6) == (
        f"crossyard-pgzip 1 block={BLOCK_SIZE} level=6 zlib={zlib.ZLIB_RUNTIME_VERSION}")


# The child reports VmHWM, its own peak RSS: getrusage's ru_maxrss would start at pytest's peak,
# which a process spawned from it inherits at exec.
PEAK = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024"

WINDOW_CHILD = f"""
import hashlib, os
from crossyard.oci.pgzip import ParallelGzipWriter
class Sink:
    digest = hashlib.sha256()
    def write(self, data):
        self.digest.update(data)
        return len(data)
chunk = os.urandom(1 << 20)  # deflate sees 32 KiB back: repeating it keeps it incompressible
before = {PEAK}
with ParallelGzipWriter(Sink(), level=1, workers=8) as writer:
    for _ in range(64):
        writer.write(chunk)
print(before, {PEAK})
"""


def test_blocks_in_flight_are_bounded() -> None:
    """64 MiB written as fast as Python can into 8 workers: the writer holds a window of blocks,
    not the backlog (input is produced far faster than deflate takes it)."""
    before, peak = map(int, subprocess.run([sys.executable, "-c", WINDOW_CHILD], capture_output=True,
                                           text=True, check=True).stdout.split())
    # 32 blocks in flight (4 MiB in, as much out), 8 zlib states, the threads' malloc arenas:
    # +18 MiB here; with no window the backlog is most of the 64 MiB (measured: +87 MiB)
    assert peak - before < 32, (before, peak)
    assert peak < 64, peak


LAYER_CHILD = f"""
import sys
from pathlib import Path
from crossyard.oci.layer import LayerEntry, write_layer
from crossyard.oci.layout import OciLayout
layer = write_layer(OciLayout(Path(sys.argv[2])).ensure(),
                    [LayerEntry(path="blob.bin", source=Path(sys.argv[1]))],
                    source_date_epoch=0, compression="pgzip", workers=2)
print(layer.descriptor.size, {PEAK})
"""


@pytest.mark.slow
def test_256_mib_incompressible_layer_within_64_mib(tmp_path: Path) -> None:
    source = tmp_path / "blob.bin"
    rng = random.Random(5)
    with source.open("wb") as handle:
        for _ in range(256):
            handle.write(rng.randbytes(MIB))
    size, peak = map(int, subprocess.run(
        [sys.executable, "-c", LAYER_CHILD, str(source), str(tmp_path / "layout")],
        capture_output=True, text=True, check=True).stdout.split())
    assert size > 256 * MIB  # incompressible: nothing held back by a good ratio
    assert peak < 64, peak
