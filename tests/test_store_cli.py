"""The store through the real CLI, on real cross builds (riscv64 gcc, the smoke test under
qemu-user): damaged blobs are found and rebuilt, `store verify` and `store gc`, and a broken
index.json or a full disk ends in one clear message."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require
from helpers.appws import (
    app_workspace,
    blob,
    build,
    cli,
    flip,
    image_layer,
    intact,
    lock,
    set_version,
    store,
)

pytestmark = [pytest.mark.integration]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return app_workspace(tmp_path)


def reachable(ws: Path, roots: list[str]) -> set[str]:
    """Every digest under `roots`, walked here from the JSON itself (not with crossyard's code)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        digest = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            document = json.loads(blob(ws, digest).read_bytes())
        except (ValueError, UnicodeDecodeError):
            continue  # a layer or a file, not a manifest
        if not isinstance(document, dict) or document.get("schemaVersion") != 2:
            continue  # an image config, not a manifest or index
        refs = [document.get("config"), document.get("subject"),
                *document.get("layers", []), *document.get("manifests", [])]
        stack.extend(str(r["digest"]) for r in refs if isinstance(r, dict))
    return seen


def files(ws: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (ws / ".crossyard" / "store" / "blobs" / "sha256").iterdir()}


# -- item 8: a damaged cache is found and rebuilt --------------------------------------------------


@pytest.mark.parametrize("damaged", ["file", "manifest", "config"])
def test_a_corrupt_cached_artifact_is_rebuilt_not_trusted(ws: Path, damaged: str) -> None:
    first = build(ws)
    (job,) = first["jobs"]
    assert job["status"] == "built"
    entry = next(d for d in json.loads((ws / ".crossyard/store/index.json").read_text())["manifests"]
                 if d.get("artifactType"))
    manifest = json.loads(blob(ws, entry["digest"]).read_bytes())
    target = {"file": job["outputs"]["app"], "manifest": entry["digest"],
              "config": manifest["config"]["digest"]}[damaged]
    flip(blob(ws, target))

    found = cli(ws, "store", "verify", code=1).stdout
    assert f"blob {target} is corrupt" in found and "used by app:linux-riscv64" in found
    assert "fix: `crossyard build` rebuilds" in found

    again = build(ws, "--locked")  # same bytes again: the lock holds
    assert [j["status"] for j in again["jobs"]] == ["built"]
    assert again["jobs"][0]["outputs"] == job["outputs"]
    assert intact(blob(ws, target))  # writing it again replaced the damaged copy
    assert "intact, every reference resolves" in cli(ws, "store", "verify").stdout
    assert [j["status"] for j in build(ws, "--locked")["jobs"]] == ["cached"]


def test_a_corrupt_image_layer_fails_export_and_is_assembled_again(ws: Path, tmp_path: Path) -> None:
    assert build(ws)["images"][0]["status"] == "assembled"
    layer = image_layer(ws, "0.1.0")
    flip(blob(ws, layer))

    found = cli(ws, "store", "verify", code=1).stdout
    assert f"blob {layer} is corrupt" in found and "used by app:0.1.0" in found
    for fmt, out in (("docker-archive", tmp_path / "app.tar"), ("oci", tmp_path / "layout")):
        failed = cli(ws, "image", "export", "app:0.1.0", "--format", fmt, "-o", str(out), code=1)
        assert f"blob {layer} is corrupt" in failed.stderr and "crossyard store verify" in failed.stderr
        assert not out.exists()

    rebuilt = build(ws, "--locked")
    assert rebuilt["images"][0]["status"] == "assembled"  # not "cached" on a damaged layer
    assert intact(blob(ws, layer))
    cli(ws, "image", "export", "app:0.1.0", "--format", "docker-archive", "-o", str(tmp_path / "app.tar"))

    blob(ws, layer).unlink()
    missing = cli(ws, "store", "verify", code=1).stdout
    assert f"blob {layer} is missing; used by app:0.1.0" in missing


# -- item 5: store gc -------------------------------------------------------------------------------


def test_gc_needs_the_lock(ws: Path) -> None:
    result = cli(ws, "store", "gc", code=2)
    assert "crossyard.lock does not exist" in result.stderr and "crossyard build" in result.stderr


def test_gc_lists_then_drops_only_what_nothing_kept_needs(ws: Path) -> None:
    build(ws)
    old_index = next(i["index"] for i in lock(ws)["image"])
    old_layer = image_layer(ws, "0.1.0")
    set_version(ws, "0.2.0")
    build(ws)
    (new,) = lock(ws)["image"]
    layout = store(ws)
    # Referrers (an attestation-like artifact) of the new image and of the old one.
    empty = layout.write_blob(b"{}", "application/vnd.oci.empty.v1+json")
    referrers = {}
    for name, subject in (("new", new["index"]), ("old", old_index)):
        note = layout.write_blob(f"note on {name}".encode(), "text/plain")
        size = blob(ws, subject).stat().st_size
        referrers[name] = layout.write_json({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example.note", "config": empty.to_json(),
            "layers": [note.to_json()],
            "subject": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": subject, "size": size},
        }, "application/vnd.oci.image.manifest.v1+json")
    layout.update_index(lambda current: [*current, *referrers.values()])
    # Blobs nothing references: one just written (a build may be about to index it), one old,
    # and an old temp file of a write that never finished.
    fresh = layout.write_blob(b"being written", "text/plain").digest
    stale = layout.write_blob(b"left over", "text/plain").digest
    leftover = layout.blobs_dir / ".incoming-crashed"
    leftover.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    for path in (blob(ws, stale), leftover):
        os.utime(path, (hours_ago, hours_ago))

    recent = cli(ws, "store", "gc").stdout  # both builds are recent: only the old garbage goes
    assert "would remove 0 index entries and 2 blobs" in recent
    assert "built in the last 7 days (--keep-days 0 drops those too)" in recent

    before, index_before = files(ws), (ws / ".crossyard/store/index.json").read_bytes()
    dry = cli(ws, "store", "gc", "--keep-days", "0").stdout
    assert "would remove app:0.1.0 " + old_index in dry
    assert "would remove app@linux/riscv64 (older build" in dry
    assert f"would remove {referrers['old'].digest}" in dry
    assert "`crossyard store gc --keep-days 0 --apply` deletes them" in dry
    assert files(ws) == before and (ws / ".crossyard/store/index.json").read_bytes() == index_before

    (artifact,) = [d["digest"] for d in json.loads(index_before)["manifests"]
                   if (d.get("annotations") or {}).get("dev.crossyard.input-key") == lock(ws)["artifact"][0]["input_key"]]
    done = json.loads(cli(ws, "store", "gc", "--keep-days", "0", "--apply", "--json").stdout)
    after = files(ws)
    deleted = set(before) - set(after)
    assert {b["file"].removeprefix("blobs/sha256/") for b in done["blobs"]} == deleted
    assert done["bytes"] == sum(before[n] for n in deleted)
    assert {leftover.name, stale[7:], old_layer[7:], old_index[7:]} <= deleted
    assert fresh[7:] in after and done["in_flight"] == 1
    # What is kept: the lock's artifact and image, and the new image's referrer, whole.
    kept = json.loads((ws / ".crossyard/store/index.json").read_text())["manifests"]
    assert sorted(d["digest"] for d in kept) == sorted([new["index"], referrers["new"].digest, artifact])
    needed = reachable(ws, [d["digest"] for d in kept])
    assert needed <= {"sha256:" + n for n in after}  # nothing a kept entry reaches was deleted
    assert not list((ws / ".crossyard/store").glob(".index.json*"))  # rewritten atomically
    assert "intact, every reference resolves" in cli(ws, "store", "verify").stdout
    rebuilt = build(ws, "--locked")
    assert [j["status"] for j in rebuilt["jobs"]] == ["cached"]
    assert [i["status"] for i in rebuilt["images"]] == ["cached"]


# -- item 11: a broken index, a full disk ------------------------------------------------------------


@pytest.mark.parametrize(("content", "says"), [
    (b"", "is empty"),
    (b'{"schemaVersion": 2, "manifests": [', "is not valid JSON"),
    (b"[]", "is not an OCI image index"),
    (b'{"manifests": [{"digest": "sha256:abc"}]}', "has a broken entry (manifests[0]"),
])
def test_a_broken_index_is_one_clear_message(ws: Path, content: bytes, says: str) -> None:
    build(ws)
    index = ws / ".crossyard" / "store" / "index.json"
    index.write_bytes(content)
    for command in (["plan"], ["build"], ["store", "ls"], ["image", "ls"], ["store", "gc"],
                    ["image", "export", "app:0.1.0", "-o", str(ws / "out")]):
        error = cli(ws, *command, code=2).stderr
        assert error.startswith(f"crossyard: error: {index} {says}"), (command, error)
        assert f"remove {index.parent} and run `crossyard build`" in error
    assert index.read_bytes() == content  # nothing wrote over it
    report = cli(ws, "store", "verify", code=1).stdout
    assert f"{index} {says}" in report and f"fix: without its index the store is lost: remove {index.parent}" in report


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def fill(directory: Path) -> None:
    """Write a file until the filesystem is full."""
    with contextlib.suppress(OSError), (directory / "filler").open("wb", buffering=0) as handle:
        while True:
            handle.write(b"\0" * 4096)


def test_a_full_disk_under_the_store_is_reported_and_cleaned_up(ws: Path) -> None:
    root = ws / ".crossyard" / "store"
    # Room for the store's skeleton but not for the static riscv64 binary (~500 KiB).
    with tmpfs(root, "128k"):
        failed = cli(ws, "build", code=1).stderr
        assert f"no space left writing {root / 'blobs' / 'sha256'}" in failed
        assert f"the filesystem mounted on {root} is full" in failed
        assert not [p for p in (root / "blobs" / "sha256").iterdir() if p.name.startswith(".incoming-")]
        assert json.loads((root / "index.json").read_text())["manifests"] == []  # nothing recorded
        assert "intact" in cli(ws, "store", "verify").stdout
    # Full before anything is written: the store's own files (oci-layout, index.json) fail.
    with tmpfs(root, "64k"):
        fill(root)
        failed = cli(ws, "build", code=1).stderr
        assert "no space left writing" in failed and f"mounted on {root} is full" in failed
        assert sorted(p.name for p in root.iterdir() if p.is_file()) == ["filler"]  # no temp files
