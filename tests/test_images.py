"""Image assembly without compilers: artifacts are put in the store by hand, images are planned
and assembled by the real code, then read back (and by skopeo where it matters)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from conftest import require_tool
from crossyard.errors import ConfigurationError, IntegrityError
from crossyard.images.assemble import Assembler, BuiltImage, lock_entry
from crossyard.images.assembly_plan import plan_images
from crossyard.images.base_images import CA_BUNDLE, CA_BUNDLE_PATH_IN_IMAGE, NONROOT
from crossyard.images.export import export_image
from crossyard.lock import Lock, compare_images, read_lock, write_lock
from crossyard.oci import media
from crossyard.oci.archive import tree_members, write_archive
from crossyard.oci.layout import OciLayout
from crossyard.platforms import ARM64, RISCV64, Platform
from crossyard.recipes import Recipe, load_catalog
from crossyard.records import BuildRecord
from crossyard.store import Store
from helpers.images import tiny_image
from helpers.oci_schema import validate as _validate

GO = 'name = "app"\nkind = "go"\nversion = "1.2.3"\nsource_date_epoch = 1700000000\n[source]\npath = "../src"\n'


def make_ws(tmp_path: Path, recipes: dict[str, str]) -> Path:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "README.md").write_text("read me\n")
    (ws / "recipes").mkdir()
    for name, text in recipes.items():
        (ws / "recipes" / f"{name}.toml").write_text(text)
    return ws


def put_artifacts(store: Store, tmp_path: Path, recipe: str = "app",
                  platforms: tuple[Platform, ...] = (RISCV64, ARM64)) -> dict[tuple[str, str], BuildRecord]:
    out = {}
    for platform in platforms:
        binary = tmp_path / f"{recipe}-{platform.slug}"
        binary.write_bytes(f"#!binary {recipe} for {platform}\n".encode())
        binary.chmod(0o755)
        stored = store.put_artifact(recipe=recipe, platform=platform, input_key="sha256:" + platform.slug.encode().hex().ljust(64, "0")[:64],
                                    files={recipe: binary})
        out[(recipe, platform.oci)] = stored
    return out


def assemble(ws: Path, store: Store, artifacts: Any, names: tuple[str, ...] = ()) -> list[BuiltImage]:
    catalog = load_catalog(ws / "recipes")
    recipes: list[Recipe] = catalog.select(names) if names else list(catalog.recipes.values())
    jobs = plan_images(recipes, platforms=None, epochs={"app": 1700000000})
    assembler = Assembler(store=store, workspace=ws)
    assembler.preflight(jobs)
    return assembler.run(jobs, records=artifacts)


def layer_members(layout: OciLayout, digest: str) -> dict[str, tarfile.TarInfo]:
    raw = gzip.decompress(layout.read_blob(digest))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: m for m in tar.getmembers()}


IMAGE = '''name = "app-image"
kind = "image"
version = "1.2.3"
[image]
name = "example/app"
base = "crossyard/static"
entrypoint = ["/usr/local/bin/app", "serve", ":8080"]
user = "nonroot"
env = { GREETING = "hi" }
ports = ["8080/tcp"]
labels = { "org.example.team" = "edge" }
workdir = "/home/nonroot"
[[image.files]]
artifact = "app"
dest = "/usr/local/bin/app"
mode = "0750"
[[image.files]]
src = "src/README.md"
dest = "/usr/share/doc/app/README"
'''


def test_static_base_image_shape_and_schema(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, {"app": GO, "app-image": IMAGE})
    store = Store(ws / ".crossyard" / "store")
    artifacts = put_artifacts(store, tmp_path)
    [built] = assemble(ws, store, artifacts)
    assert built.status == "assembled" and built.ref == "example/app:1.2.3"
    assert set(built.manifests) == {"linux/riscv64", "linux/arm64"}
    layout = store.layout
    assert built.index is not None
    index = layout.read_json(built.index.digest)
    _validate(index, "image-index-schema.json")
    notes = index["annotations"]
    assert notes[media.ANNOTATION_VERSION] == "1.2.3"
    assert notes[media.ANNOTATION_CREATED] == "2023-11-14T22:13:20Z"
    entry = store.resolve("example/app:1.2.3")
    assert entry is not None and entry.digest == built.index.digest
    for descriptor in index["manifests"]:
        manifest = layout.read_json(descriptor["digest"])
        _validate(manifest, "image-manifest-schema.json")
        config = layout.read_json(manifest["config"]["digest"])
        _validate(config, "config-schema.json")
        arch = descriptor["platform"]["architecture"]
        assert config["architecture"] == arch and config["os"] == "linux"
        assert config.get("variant") == ("v8" if arch == "arm64" else None)
        assert config["created"] == "2023-11-14T22:13:20Z"
        cfg = config["config"]
        assert cfg["Entrypoint"] == ["/usr/local/bin/app", "serve", ":8080"] and "Cmd" not in cfg
        assert cfg["User"] == "nonroot" and cfg["WorkingDir"] == "/home/nonroot"
        assert "GREETING=hi" in cfg["Env"] and any(e.startswith("PATH=/usr/local/sbin:") for e in cfg["Env"])
        assert cfg["ExposedPorts"] == {"8080/tcp": {}} and cfg["Labels"] == {"org.example.team": "edge"}
        assert len(config["history"]) == len(manifest["layers"]) == 2
        assert manifest["annotations"]["dev.crossyard.base.ca-bundle"].startswith("sha256:")
        base, own = (layer_members(layout, layer["digest"]) for layer in manifest["layers"])
        assert base["tmp"].mode == 0o1777 and base["home/nonroot"].uid == NONROOT
        assert CA_BUNDLE_PATH_IN_IMAGE in base
        passwd = base["etc/passwd"]
        assert passwd.size > 0
        assert own["usr/local/bin/app"].mode == 0o750 and own["usr/share/doc/app/README"].mode == 0o644
        assert all(m.mtime == 1700000000 for m in own.values())
    # the lock records every layer with its compressor
    locked = lock_entry(store, store.images()[0])
    assert locked.index == built.index.digest and locked.ca_bundle.startswith("sha256:")
    assert all(layer.compressor.startswith("python-zlib ") for p in locked.platforms for layer in p.layers)


def test_static_base_carries_the_shipped_ca_bundle_not_the_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's CA bundle is the Mozilla set crossyard ships, whatever this machine's /etc/ssl
    holds (local or proxy CAs would otherwise end up in every image); CROSSYARD_CA_BUNDLE swaps
    it, and the digest in the lock follows."""
    import ssl

    monkeypatch.delenv("CROSSYARD_CA_BUNDLE", raising=False)
    shipped = CA_BUNDLE.read_bytes()
    blocks = [b"-----BEGIN CERTIFICATE-----" + part for part in shipped.split(b"-----BEGIN CERTIFICATE-----")[1:]]
    assert len(blocks) > 100 and all(ssl.PEM_cert_to_DER_cert(b.decode()) for b in blocks)

    def bundle_in_image(ws_name: str) -> tuple[bytes, str]:
        ws = make_ws(tmp_path / ws_name, {"app": GO, "app-image": IMAGE})
        store = Store(ws / ".crossyard" / "store")
        [built] = assemble(ws, store, put_artifacts(store, ws))
        assert built.index is not None
        manifest = store.layout.read_json(store.layout.read_json(built.index.digest)["manifests"][0]["digest"])
        raw = gzip.decompress(store.layout.read_blob(manifest["layers"][0]["digest"]))
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            handle = tar.extractfile(CA_BUNDLE_PATH_IN_IMAGE)
            assert handle is not None
            return handle.read(), lock_entry(store, store.images()[0]).ca_bundle

    data, digest = bundle_in_image("shipped")
    assert data == shipped and digest == "sha256:" + hashlib.sha256(shipped).hexdigest()
    own = tmp_path / "own.pem"
    own.write_bytes(shipped[: shipped.index(b"-----END CERTIFICATE-----\n") + 26])
    monkeypatch.setenv("CROSSYARD_CA_BUNDLE", str(own))
    data, digest = bundle_in_image("own")
    assert data == own.read_bytes() and digest == "sha256:" + hashlib.sha256(own.read_bytes()).hexdigest()


def test_second_assembly_is_cached_and_identical(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, {"app": GO, "app-image": IMAGE})
    store = Store(ws / ".crossyard" / "store")
    artifacts = put_artifacts(store, tmp_path)
    [first] = assemble(ws, store, artifacts)
    [again] = assemble(ws, store, artifacts)
    assert again.status == "cached" and again.index == first.index
    # another store, same inputs: same digests (nothing host- or time-dependent)
    other = Store(tmp_path / "other-store")
    [second] = assemble(ws, other, put_artifacts(other, tmp_path))
    assert second.status == "assembled"
    assert first.index is not None and second.index is not None
    assert second.index.digest == first.index.digest
    # a changed input is a new key and a new image
    (ws / "src" / "README.md").write_text("changed\n")
    [third] = assemble(ws, store, artifacts)
    assert third.status == "assembled" and third.index is not None and third.index.digest != first.index.digest
    assert [i.ref for i in store.images()] == ["example/app:1.2.3"]  # the tag moved


def test_image_on_build_recipe_wraps_its_own_artifact(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, {"app": GO + '[image]\nentrypoint = ["/usr/local/bin/app"]\ncompression = "zstd"\n'})
    store = Store(ws / ".crossyard" / "store")
    [built] = assemble(ws, store, put_artifacts(store, tmp_path))
    assert built.ref == "app:1.2.3"
    index = store.layout.read_json(built.index.digest if built.index else "")
    manifest = store.layout.read_json(index["manifests"][0]["digest"])
    [layer] = manifest["layers"]  # scratch: one layer
    assert layer["mediaType"] == media.LAYER_ZSTD
    assert "zstd" in layer["annotations"]["dev.crossyard.compressor"]
    # docker-archive decompresses zstd and checks the diff_id
    out = export_image(store, "app", tmp_path / "app.tar", format="docker-archive", platform=RISCV64)
    with tarfile.open(out.path) as tar:
        document = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        with tarfile.open(fileobj=tar.extractfile(document[0]["Layers"][0])) as inner:
            assert inner.getmember("usr/local/bin/app").mode == 0o755
    assert document[0]["RepoTags"] == ["app:1.2.3"]


def test_pgzip_is_an_option_the_image_key_and_lock_record(tmp_path: Path) -> None:
    """`compression = "pgzip"`: a gzip layer whatever the cores, its compressor in the lock;
    the default stays gzip, so images that do not ask keep their digests."""
    ws = make_ws(tmp_path, {"app": GO + '[image]\nentrypoint = ["/usr/local/bin/app"]\n'})
    store = Store(ws / ".crossyard" / "store")
    artifacts = put_artifacts(store, tmp_path)
    [plain] = assemble(ws, store, artifacts)
    (ws / "recipes" / "app.toml").write_text(
        GO + '[image]\nentrypoint = ["/usr/local/bin/app"]\ncompression = "pgzip"\n')
    [parallel] = assemble(ws, store, artifacts)
    assert parallel.status == "assembled" and parallel.index != plain.index  # a new key

    def first_layer(image: BuiltImage) -> dict[str, Any]:
        index = store.layout.read_json(image.index.digest if image.index else "")
        layer: dict[str, Any] = store.layout.read_json(index["manifests"][0]["digest"])["layers"][0]
        return layer

    plain_layer, layer = first_layer(plain), first_layer(parallel)
    assert layer["mediaType"] == media.LAYER_GZIP
    assert plain_layer["annotations"]["dev.crossyard.compressor"].startswith("python-zlib")
    [locked] = lock_entry(store, store.images()[0]).platforms[0].layers
    assert locked.blob == layer["digest"]
    assert locked.compressor.startswith("crossyard-pgzip 1 block=131072 level=6 zlib=")
    assert layer_members(store.layout, layer["digest"])["usr/local/bin/app"].mode == 0o755
    assert gzip.decompress(store.layout.read_blob(layer["digest"])) == \
        gzip.decompress(store.layout.read_blob(plain_layer["digest"]))


def test_recipe_base_and_oci_layout_base(tmp_path: Path) -> None:
    base_dir = tmp_path / "ws" / "bases" / "tiny"
    layout = OciLayout(base_dir).ensure()
    tiny_image(layout, b"tiny payload", "tiny:1")
    write_archive_path = tmp_path / "ws" / "bases" / "tiny.tar"
    recipes = {
        "app": GO.replace('version = "1.2.3"', 'version = "1.2.3"\nplatforms = ["linux/riscv64"]'),
        "a-top": 'kind = "image"\n[image]\nbase = "recipe:mid"\n[[image.files]]\nsrc = "src/README.md"\ndest = "/README"\n',
        "mid": 'kind = "image"\n[image]\nbase = "oci-layout:bases/tiny:tiny:1"\ncmd = ["/hello"]\n'
               '[[image.files]]\nartifact = "app"\n',
        "arch": 'kind = "image"\nplatforms = ["riscv64"]\n[image]\nbase = "oci-archive:bases/tiny.tar:tiny:1"\n',
    }
    ws = make_ws(tmp_path, recipes)
    with write_archive_path.open("wb") as handle:
        write_archive(handle, tree_members(base_dir))
    store = Store(ws / ".crossyard" / "store")
    built = {b.recipe: b for b in assemble(ws, store, put_artifacts(store, tmp_path, platforms=(RISCV64,)))}
    assert [b.status for b in built.values()] == ["assembled"] * 3
    tiny_manifest = layout.read_json(layout.manifests()[0].digest)
    tiny_layer = tiny_manifest["layers"][0]["digest"]

    def manifest_of(name: str) -> dict[str, Any]:
        return store.layout.read_json(built[name].manifests["linux/riscv64"])

    mid, top, arch = manifest_of("mid"), manifest_of("a-top"), manifest_of("arch")
    assert mid["layers"][0]["digest"] == tiny_layer and len(mid["layers"]) == 2
    assert [layer["digest"] for layer in top["layers"][:2]] == [layer["digest"] for layer in mid["layers"]]
    assert [layer["digest"] for layer in arch["layers"]] == [tiny_layer]
    top_config = store.layout.read_json(top["config"]["digest"])
    assert top_config["config"]["Cmd"] == ["/hello"]  # inherited from its base image
    assert top["annotations"]["dev.crossyard.base.digest"] == built["mid"].manifests["linux/riscv64"]


def test_corrupt_base_blob_is_refused(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, {"tiny": 'kind = "image"\nplatforms = ["riscv64"]\n[image]\nbase = "oci-layout:base"\n'})
    layout = OciLayout(ws / "base").ensure()
    tiny_image(layout, b"payload", "tiny:1")
    manifest = layout.read_json(layout.manifests()[0].digest)
    layout.blob_path(manifest["layers"][0]["digest"]).write_bytes(b"tampered")
    store = Store(ws / ".crossyard" / "store")
    with pytest.raises(IntegrityError):
        assemble(ws, store, {})
    assert store.images() == []


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ('kind = "image"\n[image]\nbase = "oci-layout:missing"\n', "is not an OCI image layout"),
        ('kind = "image"\n[image]\nbase = "oci-archive:missing.tar"\n', "does not exist"),
        ('kind = "image"\n[image]\n[[image.files]]\nsrc = "escape"\ndest = "/x"\n', "outside the workspace"),
        ('kind = "image"\n[image]\n[[image.files]]\nsrc = "src/nothing"\ndest = "/x"\n', "is not a file"),
        ('kind = "image"\nplatforms = ["linux/amd64"]\n[image]\n[[image.files]]\nartifact = "app"\n',
         "which it is not built for"),
        ('kind = "image"\n[image]\n[[image.files]]\nartifact = "app"\nfile = "other"\n', "is not in artifact `app`"),
        ('kind = "image"\n[image]\n[[image.files]]\nartifact = "app"\n[[image.files]]\nartifact = "app"\n',
         "places two files"),
    ],
)
def test_assembly_errors_leave_the_index_alone(tmp_path: Path, recipe: str, message: str) -> None:
    ws = make_ws(tmp_path, {"app": GO, "bad": recipe})
    (ws / "escape").symlink_to("/etc/passwd")
    store = Store(ws / ".crossyard" / "store")
    artifacts = put_artifacts(store, tmp_path)
    before = store.layout.index_path.read_bytes()
    with pytest.raises(ConfigurationError) as info:
        assemble(ws, store, artifacts, names=("bad",))
    assert message in str(info.value) and "bad.toml" in str(info.value)
    assert store.layout.index_path.read_bytes() == before


def test_export_oci_skopeo_and_lock_drift(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, {"app": GO, "app-image": IMAGE})
    store = Store(ws / ".crossyard" / "store")
    [built] = assemble(ws, store, put_artifacts(store, tmp_path))
    out = export_image(store, "example/app:1.2.3", tmp_path / "exported", format="oci")
    assert built.index is not None and out.digest == built.index.digest
    exported = OciLayout(tmp_path / "exported")
    [entry] = exported.manifests()
    assert entry.annotations == {media.ANNOTATION_REF_NAME: "example/app:1.2.3",
                                 "io.containerd.image.name": "example/app:1.2.3"}
    single = export_image(store, "example/app", tmp_path / "arm64.tar", format="oci", platform=ARM64)
    assert single.platforms == ("linux/arm64",) and tarfile.is_tarfile(single.path)
    with pytest.raises(ConfigurationError, match="not empty"):
        export_image(store, "example/app", tmp_path / "exported", format="oci")
    with pytest.raises(ConfigurationError, match="pass --platform"):
        export_image(store, "example/app", tmp_path / "x.tar", format="docker-archive")
    with pytest.raises(ConfigurationError, match="no image `nope`"):
        export_image(store, "nope", tmp_path / "y", format="oci")

    # lock round trip and drift explanations
    entry_locked = lock_entry(store, store.images()[0])
    write_lock(tmp_path / "crossyard.lock", Lock().merged([], [entry_locked]))
    lock = read_lock(tmp_path / "crossyard.lock")
    assert lock.images["example/app:1.2.3"] == entry_locked
    assert compare_images(lock, [entry_locked]) == ([], [])
    plat = entry_locked.platforms[0]
    recompressed = plat.layers[1].__class__(diff_id=plat.layers[1].diff_id, blob="sha256:" + "f" * 64,
                                            compressor="pigz 2.8")
    changed = entry_locked.__class__(**{
        **entry_locked.__dict__, "index": "sha256:" + "e" * 64,
        "platforms": (plat.__class__(platform=plat.platform, manifest="sha256:" + "d" * 64,
                                     layers=(plat.layers[0], recompressed)), *entry_locked.platforms[1:]),
    })
    drifts, warnings = compare_images(lock, [changed])
    assert not warnings and drifts[0].id == "example/app:1.2.3"
    assert "compression" in drifts[0].reason and "pigz 2.8" in drifts[0].reason
    unreproducible = Lock().merged([], [entry_locked.__class__(**{**entry_locked.__dict__, "reproducible": False})])
    drifts, warnings = compare_images(unreproducible, [changed])
    assert drifts == [] and len(warnings) == 1


@pytest.mark.integration
def test_skopeo_reads_the_export(tmp_path: Path) -> None:
    skopeo = require_tool("skopeo", "apt install skopeo")
    ws = make_ws(tmp_path, {"app": GO, "app-image": IMAGE})
    store = Store(ws / ".crossyard" / "store")
    assemble(ws, store, put_artifacts(store, tmp_path))
    export_image(store, "example/app:1.2.3", tmp_path / "oci", format="oci")
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{tmp_path / 'oci'}:example/app:1.2.3"],
                         check=True, capture_output=True).stdout
    assert {m["platform"]["architecture"] for m in json.loads(raw)["manifests"]} == {"riscv64", "arm64"}
    subprocess.run([skopeo, "copy", "--all", f"oci:{tmp_path / 'oci'}:example/app:1.2.3", f"dir:{tmp_path / 'dir'}"],
                   check=True, capture_output=True)
    export_image(store, "example/app:1.2.3", tmp_path / "image.tar", format="oci")
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci-archive:{tmp_path / 'image.tar'}:example/app:1.2.3"],
                         check=True, capture_output=True).stdout
    assert len(json.loads(raw)["manifests"]) == 2
    export_image(store, "example/app", tmp_path / "docker.tar", format="docker-archive", platform=RISCV64)
    info = json.loads(subprocess.run([skopeo, "inspect", f"docker-archive:{tmp_path / 'docker.tar'}"],
                                     check=True, capture_output=True).stdout)
    assert info["Architecture"] == "riscv64" and len(info["Layers"]) == 2


def test_dockerfile_images_are_indexed_not_reproducible(tmp_path: Path) -> None:
    from crossyard.oci.image import ImageConfig, write_image
    from crossyard.oci.layer import LayerEntry, write_layer

    ws = make_ws(tmp_path, {"web": 'kind = "dockerfile"\nversion = "0.3.0"\n[source]\npath = "../src"\n'
                                   '[image]\nname = "team/web"\n'})
    store = Store(ws / ".crossyard" / "store")
    store.layout.ensure()
    records = {}
    for platform in (RISCV64, ARM64):  # what a dockerfile job stores (Store.put_job_image)
        layer = write_layer(store.layout, [LayerEntry(path="/w", source=platform.oci.encode())], source_date_epoch=5)
        manifest = write_image(store.layout, platform=platform, layers=[layer], config=ImageConfig(),
                               source_date_epoch=5)
        records[("web", platform.oci)] = store.put_job_image(
            recipe="web", platform=platform, input_key="sha256:" + platform.slug.encode().hex()[:64].ljust(64, "0"),
            manifest=manifest)
    [built] = assemble(ws, store, records)
    assert built.ref == "team/web:0.3.0" and not built.reproducible and built.status == "assembled"
    # the image names the jobs it is made of, per platform, by input key
    assert built.inputs == {p: (records[("web", p)].input_key,) for p in ("linux/riscv64", "linux/arm64")}
    [image] = store.images()
    assert not image.reproducible and image.index.annotations is not None
    index = store.layout.read_json(image.index.digest)
    assert index["annotations"]["dev.crossyard.reproducible"] == "false"
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"riscv64", "arm64"}
    assert not lock_entry(store, image).reproducible
    [again] = assemble(ws, store, records)
    assert again.status == "cached"


def test_failed_inputs_skip_the_image(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, {"app": GO, "app-image": IMAGE})
    store = Store(ws / ".crossyard" / "store")
    artifacts = put_artifacts(store, tmp_path)
    catalog = load_catalog(ws / "recipes")
    jobs = plan_images(list(catalog.recipes.values()), platforms=[RISCV64], epochs={})
    assert [p.oci for p in jobs[0].platforms] == ["linux/riscv64"]
    [built] = Assembler(store=store, workspace=ws).run(jobs, records=artifacts,
                                                       unavailable={("app", "linux/riscv64")})
    assert built.status == "skipped" and "app@linux/riscv64" in (built.error or "")
    assert store.images() == []


def test_base_config_is_inherited_and_overridden(tmp_path: Path) -> None:
    from crossyard.oci.image import ImageConfig, tag, write_image, write_index
    from crossyard.oci.layer import LayerEntry, write_layer

    ws = make_ws(tmp_path, {"img": 'kind = "image"\nplatforms = ["riscv64"]\n[image]\nbase = "oci-layout:base:b:1"\n'
                                   'entrypoint = ["/new"]\nenv = { B = "ours" }\nlabels = { l2 = "two" }\n'})
    base = OciLayout(ws / "base").ensure()
    layer = write_layer(base, [LayerEntry(path="/old", source=b"old")], source_date_epoch=0)
    manifest = write_image(base, platform=RISCV64, layers=[layer], source_date_epoch=0, config=ImageConfig(
        entrypoint=("/old",), cmd=("--flag",), env={"A": "base", "B": "base", "PATH": "/opt/bin"}, user="1000",
        labels={"l1": "one"}, ports=("9090",)), inherited={"StopSignal": "SIGINT"})
    tag(base, write_index(base, [manifest]), "b:1")
    store = Store(ws / ".crossyard" / "store")
    [built] = assemble(ws, store, {})
    ours = store.layout.read_json(built.manifests["linux/riscv64"])
    config = store.layout.read_json(ours["config"]["digest"])["config"]
    assert config["Entrypoint"] == ["/new"] and "Cmd" not in config  # a new entrypoint resets cmd
    assert config["Env"] == ["A=base", "B=ours", "PATH=/opt/bin"] and config["User"] == "1000"
    assert config["Labels"] == {"l1": "one", "l2": "two"} and config["ExposedPorts"] == {"9090/tcp": {}}
    assert config["StopSignal"] == "SIGINT"
    assert len(ours["layers"]) == 1  # no files: only the base's layer (and an empty_layer history entry)
