from __future__ import annotations

import hashlib
import json
from pathlib import Path

from crossyard.annotations import ANNOTATION_FINISHED, ANNOTATION_NODE, ANNOTATION_STARTED
from crossyard.oci import media
from crossyard.platforms import ARM64, RISCV64
from crossyard.store import Store, artifact_ref


def files(tmp_path: Path, text: str) -> dict[str, Path]:
    binary = tmp_path / "bin"
    binary.write_text(text)
    binary.chmod(0o755)
    return {"hello": binary}


def test_put_find_and_ref_moves_to_newest(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = store.put_artifact(recipe="hello", platform=RISCV64, input_key="sha256:" + "1" * 64,
                               files=files(tmp_path, "one"))
    assert store.find("sha256:" + "1" * 64) == first
    assert first.outputs[0].mode == 0o755 and first.outputs[0].name == "hello"
    second = store.put_artifact(recipe="hello", platform=RISCV64, input_key="sha256:" + "2" * 64,
                                files=files(tmp_path, "two"))
    store.put_artifact(recipe="hello", platform=ARM64, input_key="sha256:" + "3" * 64, files=files(tmp_path, "x"))
    assert store.resolve(artifact_ref("hello", RISCV64)) == second.manifest
    # the older build stays findable by its key (switching back is free), without the ref
    older = store.find("sha256:" + "1" * 64)
    assert older is not None and older.manifest.digest == first.manifest.digest
    refs = [d.annotations.get(media.ANNOTATION_REF_NAME) for d in store.layout.manifests() if d.annotations]
    assert refs.count(artifact_ref("hello", RISCV64)) == 1


def test_artifact_manifest_shape(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    artifact = store.put_artifact(recipe="hello", platform=ARM64, input_key="sha256:" + "1" * 64,
                                  files=files(tmp_path, "bytes"))
    manifest = json.loads(store.layout.blob_path(artifact.manifest.digest).read_bytes())
    assert manifest["artifactType"] == media.ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == media.EMPTY and manifest["config"]["size"] == 2
    assert manifest["layers"][0]["annotations"][media.ANNOTATION_TITLE] == "hello"
    index = json.loads((tmp_path / "store" / "index.json").read_text())
    entry = index["manifests"][0]
    assert entry["platform"] == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert entry["annotations"][media.ANNOTATION_REF_NAME] == "hello:linux-arm64"


def test_run_details_stay_off_the_manifest(tmp_path: Path) -> None:
    """Two builds of the same bytes on other nodes at other times: same manifest digest; the
    node and times are on the index entry only, where provenance reads them."""
    store = Store(tmp_path / "store")
    key = "sha256:" + "1" * 64
    runs = [{ANNOTATION_NODE: f"local:{host}", ANNOTATION_STARTED: start,
             ANNOTATION_FINISHED: start} for host, start in (("a", "2026-01-01T00:00:00Z"),
                                                                    ("b", "2026-06-01T00:00:00Z"))]
    digests = []
    for run in runs:
        artifact = store.put_artifact(recipe="hello", platform=ARM64, input_key=key,
                                      files=files(tmp_path, "bytes"), run=run)
        digests.append(artifact.manifest.digest)
        manifest = json.loads(store.layout.blob_path(artifact.manifest.digest).read_bytes())
        assert ANNOTATION_NODE not in manifest["annotations"]
    assert digests[0] == digests[1]
    (entry,) = store.layout.manifests()  # the rebuild replaced the entry with the same key
    assert entry.annotations is not None and entry.annotations[ANNOTATION_NODE] == "local:b"


def test_missing_blob_is_not_a_cache_hit(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    artifact = store.put_artifact(recipe="hello", platform=ARM64, input_key="sha256:" + "1" * 64,
                                  files=files(tmp_path, "bytes"))
    store.file_path(artifact.outputs[0]).unlink()
    assert store.find("sha256:" + "1" * 64) is None


def test_put_image_tags_and_finds_by_key(tmp_path: Path) -> None:
    from crossyard.oci.image import ImageConfig, write_image, write_index
    from crossyard.oci.layer import LayerEntry, write_layer

    store = Store(tmp_path / "store")
    store.layout.ensure()
    layer = write_layer(store.layout, [LayerEntry(path="/x", source=b"x")], source_date_epoch=0)
    manifest = write_image(store.layout, platform=RISCV64, layers=[layer], config=ImageConfig(), source_date_epoch=0)
    index = write_index(store.layout, [manifest])
    image = store.put_image(name="team/x", version="1.0", recipe="x", key="sha256:" + "9" * 64, index=index)
    assert image.ref == "team/x:1.0" and image.reproducible
    assert store.find_image("sha256:" + "9" * 64) == image
    assert [i.ref for i in store.images()] == ["team/x:1.0"]
    unrepro = store.put_image(name="team/x", version="1.0", recipe="x", key="k", index=index, reproducible=False)
    assert [i.reproducible for i in store.images()] == [False] and unrepro.key == "k"
    assert store.find_image("sha256:" + "9" * 64) is None  # the tag moved to the newer entry
    store.layout.blob_path(layer.descriptor.digest).unlink()
    assert store.find_image("k") is None  # an incomplete tree is not a cache hit


def test_a_corrupt_blob_is_a_miss_only_when_verified_and_writing_it_again_repairs_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    key = "sha256:" + "1" * 64
    artifact = store.put_artifact(recipe="hello", platform=ARM64, input_key=key, files=files(tmp_path, "bytes"))
    path = store.file_path(artifact.outputs[0])
    path.write_bytes(b"bytez")  # same size, other bytes
    assert store.find(key) is not None  # existence only: what `plan` asks
    assert store.find(key, verify=True) is None  # what a build trusts as cached
    assert store.layout.check_blob(artifact.outputs[0].digest) == (
        "is corrupt: its bytes hash to sha256:" + hashlib.sha256(b"bytez").hexdigest())
    config = store.layout.blob_path("sha256:" + hashlib.sha256(b"{}").hexdigest())
    config.write_bytes(b"[]")
    store.put_artifact(recipe="hello", platform=ARM64, input_key=key, files=files(tmp_path, "bytes"))
    assert path.read_bytes() == b"bytes" and config.read_bytes() == b"{}"  # both replaced
    assert store.find(key, verify=True) is not None
    assert store.verify().ok
