"""`crossyard publish` end to end: a real build, a real TLS registry, oras and cosign."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import require_tool
from crossyard.cli import main
from crossyard.oci.layout import OciLayout
from crossyard.registry.client import RegistryClient
from crossyard.store import Store
from helpers.images import lock_stored_images, tiny_image
from helpers.registry import RegistryHandle, running_registry

IMAGE = """
[image]
name = "hello"
entrypoint = ["/hello"]

[[image.files]]
artifact = "hello"
dest = "/hello"
"""


def _env(monkeypatch: pytest.MonkeyPatch, reg: RegistryHandle, password: str | None = None) -> None:
    monkeypatch.setenv("CROSSYARD_REGISTRY", reg.host)
    monkeypatch.setenv("CROSSYARD_REGISTRY_CA", str(reg.ca_path))
    monkeypatch.setenv("CROSSYARD_REGISTRY_USERNAME", reg.username)
    monkeypatch.setenv("CROSSYARD_REGISTRY_PASSWORD", password or reg.password)


@pytest.mark.integration
def test_publish_builds_pushes_signs_attests_and_republishes_with_heads_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("go", "apt install golang-go")
    oras = require_tool("oras", "run .ci/install.d/56-cosign.sh")
    cosign = require_tool("cosign", "run .ci/install.d/56-cosign.sh")
    ws = tmp_path / "ws"
    assert main(["init", str(ws)]) == 0
    recipe = ws / "recipes" / "hello.toml"
    recipe.write_text(recipe.read_text() + IMAGE)
    monkeypatch.setenv("CROSSYARD_KEY_PASSWORD", "pw")
    assert main(["-C", str(ws), "keys", "generate"]) == 0
    assert stat.S_IMODE((ws / ".crossyard/keys/cosign.key").stat().st_mode) == 0o600
    pub = ws / ".crossyard/keys/cosign.pub"
    with running_registry(tmp_path) as reg:
        _env(monkeypatch, reg)
        capsys.readouterr()
        assert main(["-C", str(ws), "publish"]) == 0
        out = capsys.readouterr().out
        store = Store(ws / ".crossyard/store")
        image = next(i for i in store.images() if i.ref == "hello:0.1.0")
        assert f"docker pull {reg.host}/hello@{image.index.digest}" in out
        assert f"verify {reg.host}/hello:0.1.0 --key" in out
        assert f"{reg.host}/hello:0.1.0-linux-arm64" in out

        # oras pulls each platform's binary; its bytes are the store's.
        for artifact in store.artifacts():
            if not (artifact.manifest.annotations or {}).get("org.opencontainers.image.ref.name"):
                continue
            slug = artifact.platform.slug
            dest = tmp_path / "oras" / slug
            pulled = subprocess.run(
                [oras, "pull", "--ca-file", str(reg.ca_path), "-u", reg.username,
                 "-p", reg.password, "-o", str(dest), f"{reg.host}/hello:0.1.0-{slug}"],
                capture_output=True, text=True, timeout=60,
            )
            assert pulled.returncode == 0, pulled.stderr
            data = (dest / "hello").read_bytes()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == artifact.digests["hello"]
            # …and its detached signature verifies with cosign verify-blob.
            with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                                password=reg.password) as client:
                body, _ = client.get_manifest("hello", f"0.1.0-{slug}") or (b"", "")
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                sig_manifest, _ = client.get_manifest(
                    "hello", "sha256-" + digest[7:] + ".sig") or (b"", "")
            notes = json.loads(sig_manifest)["layers"][0]["annotations"]
            signature = json.loads(notes["dev.crossyard.files"])["hello"]["signature"]
            (dest / "hello.sig").write_text(signature)
            blob = subprocess.run(
                [cosign, "verify-blob", "--key", str(pub), "--insecure-ignore-tlog=true",
                 "--signature", str(dest / "hello.sig"), str(dest / "hello")],
                capture_output=True, text=True, timeout=60,
            )
            assert blob.returncode == 0, blob.stderr

        # The binaries' index resolves per platform, as `recipe:version` should on every arch.
        riscv = next(a for a in store.artifacts() if a.platform.oci == "linux/riscv64"
                     and (a.manifest.annotations or {}).get("org.opencontainers.image.ref.name"))
        pulled = subprocess.run(
            [oras, "pull", "--ca-file", str(reg.ca_path), "-u", reg.username, "-p", reg.password,
             "--platform", "linux/riscv64", "-o", str(tmp_path / "oras-index"),
             f"{reg.host}/hello:0.1.0-binaries"],
            capture_output=True, text=True, timeout=60,
        )
        assert pulled.returncode == 0, pulled.stderr
        data = (tmp_path / "oras-index" / "hello").read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == riscv.digests["hello"]

        # cosign verifies the image tag and the binaries' index; attestations too.
        for ref in ("hello:0.1.0", "hello:0.1.0-binaries", "hello:0.1.0-linux-riscv64"):
            for command in (["verify"], ["verify-attestation", "--type", "slsaprovenance1"]):
                done = subprocess.run(
                    [cosign, *command, "--key", str(pub), "--insecure-ignore-tlog=true",
                     f"{reg.host}/{ref}"],
                    capture_output=True, text=True, timeout=60,
                    env={"SSL_CERT_FILE": str(reg.ca_path), "DOCKER_CONFIG": str(_docker(tmp_path, reg)),
                         "HOME": str(tmp_path)},
                )
                assert done.returncode == 0, (ref, command, done.stderr)
        capsys.readouterr()
        assert main(["-C", str(ws), "verify", f"{reg.host}/hello:0.1.0-binaries",
                     "--provenance"]) == 0
        assert "2 file signature(s) ok" in capsys.readouterr().out

        # The image's provenance carries what the store recorded about each job.
        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            att, _ = client.get_manifest("hello", "sha256-" + image.index.digest[7:] + ".att") \
                or (b"", "")
            envelope = client.get_blob_bytes("hello", json.loads(att)["layers"][0]["digest"])
        import base64
        statement = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
        jobs = statement["predicate"]["buildDefinition"]["internalParameters"]["jobs"]
        assert sorted(j["platform"] for j in jobs) == ["linux/arm64", "linux/riscv64"]
        assert all(j["toolchain"] and j["strategy"] and j["inputKey"] for j in jobs)
        # where and when each job ran, from the store's index entries (never in a digest)
        assert all(j["node"].startswith("local:") for j in jobs)
        assert all(j["startedOn"] <= j["finishedOn"] for j in jobs)
        metadata = statement["predicate"]["runDetails"]["metadata"]
        assert metadata["startedOn"] == min(j["startedOn"] for j in jobs)
        assert metadata["finishedOn"] == max(j["finishedOn"] for j in jobs)
        deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert deps and deps[0]["digest"]["sha256"]

        # Re-publishing unchanged content: only HEAD, and GET for what must be read.
        methods: list[tuple[str, str]] = []
        real_init = httpx.Client.__init__

        def spy(self: httpx.Client, *args: object, **kwargs: object) -> None:
            hooks = dict(kwargs.pop("event_hooks", None) or {})  # type: ignore[call-overload]
            hooks["request"] = [*hooks.get("request", []),
                                lambda r: methods.append((r.method, r.url.path))]
            real_init(self, *args, event_hooks=hooks, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(httpx.Client, "__init__", spy)
        assert main(["-C", str(ws), "publish"]) == 0
        monkeypatch.undo()
        kinds = {m for m, _ in methods}
        assert kinds <= {"HEAD", "GET"}, sorted(kinds)
        gets = [p for m, p in methods if m == "GET"]
        assert all("/manifests/" in p or "/blobs/sha256:" in p or p == "/v2/" for p in gets), gets


def _docker(tmp_path: Path, reg: RegistryHandle) -> Path:
    import base64

    docker = tmp_path / "docker"
    docker.mkdir(exist_ok=True)
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    return docker


@pytest.mark.integration
def test_publish_and_verify_bad_input_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "crossyard.toml").write_text("")
    monkeypatch.setenv("CROSSYARD_KEY_PASSWORD", "pw")
    assert main(["--workspace", str(ws), "keys", "generate"]) == 0
    store = OciLayout(ws / ".crossyard" / "store").ensure()
    tiny_image(store, b"cli\n", "hello-go:0.1.0")
    # publish pushes what crossyard.lock records (not whatever the store holds): record it there
    lock_stored_images(store, ws / "crossyard.lock")

    def fails(*argv: str, says: str, code: int = 2) -> None:
        capsys.readouterr()
        assert main(["--workspace", str(ws), *argv]) == code, argv
        err = capsys.readouterr().err
        assert says in err, err
        assert "Traceback" not in err

    with running_registry(tmp_path) as reg:
        _env(monkeypatch, reg, password="wrong")
        fails("publish", says="refused credentials for tester")
        monkeypatch.setenv("CROSSYARD_KEY_PASSWORD", "not-the-passphrase")
        _env(monkeypatch, reg)
        fails("publish", says="wrong passphrase")
        monkeypatch.setenv("CROSSYARD_KEY_PASSWORD", "pw")
        capsys.readouterr()
        assert main(["--workspace", str(ws), "publish", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert [p["reference"].split("@")[0] for p in summary["published"]] == [
            f"{reg.host}/hello-go"]
        assert main(["--workspace", str(ws), "verify", "hello-go:0.1.0"]) == 0
        other = tmp_path / "other"
        assert main(["--workspace", str(ws), "keys", "generate", "--dir", str(other)]) == 0
        # A signature that does not verify is a finding (exit 1), not bad input.
        fails("verify", "hello-go:0.1.0", "--key", str(other / "cosign.pub"),
              says="verifies with this key", code=1)
        fails("verify", "no-such-image:1", says="not found in the registry")
        fails("publish", "no-such-recipe", says="unknown recipe or image name")
        # tampered payload: a signature layer whose payload names another image
        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            from crossyard import signing
            from crossyard.registry import push as pub

            key = signing.load_private_key(ws / ".crossyard/keys/cosign.key", password="pw")
            tiny_image(store, b"second\n", "second:1")
            digest = client.push_layout(store, "second:1", "second", "1")
            real = signing.simple_signing_payload(f"{reg.host}/second", digest)
            payload = real.replace(b"second", b"evil")
            pub.attach(client, "second", digest, "sig", payload, signing.SIMPLESIGNING_MEDIA_TYPE,
                       {signing.SIGNATURE_ANNOTATION: signing.sign_bytes(key, real)})
        fails("verify", "second:1", says="payload was changed", code=1)


@pytest.mark.integration
def test_image_on_a_registry_base_is_pulled_then_its_layers_mounted_not_uploaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("go", "apt install golang-go")
    ws = tmp_path / "ws"
    assert main(["init", str(ws)]) == 0
    monkeypatch.setenv("CROSSYARD_KEY_PASSWORD", "pw")
    assert main(["-C", str(ws), "keys", "generate"]) == 0
    base_src = OciLayout(tmp_path / "base").ensure()
    tiny_image(base_src, b"a base layer\n", "base:1")
    with running_registry(tmp_path) as reg:
        _env(monkeypatch, reg)
        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            base_digest = client.push_layout(base_src, "base:1", "library/base", "1")
            base_layer = json.loads(base_src.read_blob(base_digest))["layers"][0]["digest"]
        recipe = ws / "recipes" / "hello.toml"
        image = IMAGE.replace('entrypoint = ["/hello"]',
                              f'entrypoint = ["/hello"]\nbase = "{reg.host}/library/base:1"')
        recipe.write_text(recipe.read_text().replace('platforms = ["linux/riscv64", "linux/arm64"]',
                                                     'platforms = ["linux/riscv64"]') + image)
        # A tag-pinned base is refused before anything is built or pushed.
        capsys.readouterr()
        assert main(["-C", str(ws), "publish"]) == 2
        assert "sha256" in capsys.readouterr().err
        recipe.write_text(recipe.read_text().replace(
            f'base = "{reg.host}/library/base:1"', f'base = "{reg.host}/library/base@{base_digest}"'))
        seen: list[httpx.Request] = []
        real_init = httpx.Client.__init__

        def spy(self: httpx.Client, *args: object, **kwargs: object) -> None:
            hooks = dict(kwargs.pop("event_hooks", None) or {})  # type: ignore[call-overload]
            hooks["request"] = [*hooks.get("request", []), seen.append]
            real_init(self, *args, event_hooks=hooks, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(httpx.Client, "__init__", spy)
        assert main(["-C", str(ws), "publish"]) == 0
        monkeypatch.undo()
        mounts = [r for r in seen if r.method == "POST" and "mount=" in str(r.url)]
        assert [r.url.params["mount"] for r in mounts] == [base_layer]
        assert mounts[0].url.params["from"] == "library/base"
        uploads = [r for r in seen if r.method in ("PUT", "PATCH") and "/blobs/uploads/" in r.url.path]
        assert all(r.url.params.get("digest") != base_layer for r in uploads)
