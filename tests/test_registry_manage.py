"""`crossyard registry up|down|status|user|k8s` against a real docker-registry, curl and openssl."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml

from conftest import require, require_tool, run_cli
from crossyard import certs
from crossyard.errors import ConfigurationError
from crossyard.oci.layout import OciLayout
from crossyard.registry import manager
from crossyard.registry.client import RegistryClient, RegistryError, add_query
from crossyard.workspace import Workspace
from helpers.images import lock_stored_images, random_image, tiny_image
from helpers.managed import free_addr, make_workspace, stopped_after, tmpfs


def _tls(bundle: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(bundle))


def _get(url: str, bundle: Path, auth: tuple[str, str] | None = None) -> int:
    return httpx.get(f"{url}/v2/", verify=_tls(bundle), auth=auth, timeout=10).status_code


def _owner_get(info: manager.RegistryInfo) -> int:
    """GET /v2/ as the registry's own user, trusting the workspace bundle: 200 when it serves."""
    return _get(info.url, info.ca_bundle, (info.username, info.password))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _up(ws: Workspace, addr: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("-C", str(ws.root), "registry", "up", "--addr", addr, env=env)


def _started(ws: Workspace) -> manager.RegistryInfo:
    """`registry up` on a free address; what the manager then says runs."""
    up = _up(ws, free_addr())
    assert up.returncode == 0, up.stderr
    info = manager.status(ws)
    assert info is not None
    return info


@contextmanager
def _running(tmp_path: Path) -> Iterator[tuple[Workspace, manager.RegistryInfo]]:
    """A workspace whose registry `registry up` started; stopped afterwards, pass or fail."""
    require_tool("docker-registry", "apt install docker-registry")
    ws = make_workspace(tmp_path)
    with stopped_after(ws):
        yield ws, _started(ws)


@pytest.mark.integration
def test_up_serves_tls_with_managed_users_then_down(tmp_path: Path) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    curl = require_tool("curl", "apt install curl")
    openssl = require_tool("openssl", "apt install openssl")
    ws = make_workspace(tmp_path)
    addr = free_addr()
    with stopped_after(ws):
        up = _up(ws, addr)
        assert up.returncode == 0, up.stderr
        info = manager.status(ws)
        assert info is not None
        assert info.url == f"https://{addr}" and info.host == addr
        for shown in (info.url, str(info.ca_bundle), str(info.password_file)):
            assert shown in up.stdout
        assert info.username == "crossyard"
        assert info.password_file.stat().st_mode & 0o777 == 0o600
        password = info.password_file.read_text().strip()
        assert password not in up.stdout + up.stderr

        assert _get(info.url, info.ca_bundle) == 401
        assert _get(info.url, info.ca_bundle, ("crossyard", password)) == 200
        assert _get(info.url, info.ca_bundle, ("crossyard", "wrong")) == 401
        with RegistryClient(info.url, ca_path=info.ca_bundle, username="crossyard",
                            password="wrong", retries=0) as bad, pytest.raises(
            ConfigurationError, match="refused credentials for crossyard"
        ):
            bad.ping()
        with RegistryClient(info.url, ca_path=info.ca_bundle, username="crossyard",
                            password=password) as good:
            good.ping()

        # The served leaf chains to the bundle for openssl too ...
        host, port = addr.rsplit(":", 1)
        served = tmp_path / "served.pem"
        served.write_text(ssl.get_server_certificate((host, int(port))))
        ok = subprocess.run([openssl, "verify", "-CAfile", str(info.ca_bundle), str(served)],
                            capture_output=True, text=True)
        assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
        # ... and a client without the CA refuses it (curl: 60, peer certificate not trusted).
        env = {k: v for k, v in os.environ.items() if k not in ("CURL_CA_BUNDLE", "SSL_CERT_FILE")}
        no_ca = subprocess.run([curl, "-sS", "-o", "/dev/null", f"{info.url}/v2/"],
                               capture_output=True, text=True, env=env)
        assert no_ca.returncode == 60, no_ca.stderr
        with_ca = subprocess.run(
            [curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
             str(info.ca_bundle), "-u", f"crossyard:{password}", f"{info.url}/v2/"],
            capture_output=True, text=True, env=env,
        )
        assert (with_ca.returncode, with_ca.stdout) == (0, "200"), with_ca.stderr

        status = run_cli("-C", str(ws.root), "registry", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "healthy" in status.stdout and "127.0.0.1" in status.stdout
        as_json = run_cli("-C", str(ws.root), "registry", "status", "--json")
        report = json.loads(as_json.stdout)
        assert report["healthy"] and report["certificate"]["verified"]
        assert "127.0.0.1" in report["certificate"]["sans"]
        assert report["backend_pid"] == info.backend_pid
        assert report["storage_free_bytes"] > 1 << 20 and "(FULL" not in status.stdout

        again = _up(ws, addr)
        assert again.returncode == 0 and "already running" in again.stdout
        assert manager.status(ws) == info

        down = run_cli("-C", str(ws.root), "registry", "down")
        assert down.returncode == 0, down.stderr
        after = run_cli("-C", str(ws.root), "registry", "status")
        assert after.returncode == 1 and "not running" in after.stdout
        assert not _alive(info.pid)
        assert info.backend_pid is not None and not _alive(info.backend_pid)
        with socket.socket() as s:  # the address is free again
            s.bind((host, int(port)))


@pytest.mark.integration
def test_status_into_a_pipe_whose_reader_left_stops_quietly(tmp_path: Path) -> None:
    """`crossyard registry status | head -1`: no traceback when head has gone."""
    require_tool("docker-registry", "apt install docker-registry")
    head = require_tool("head", "apt install coreutils")
    ws = make_workspace(tmp_path)
    cli = [sys.executable, "-m", "crossyard.cli", "-C", str(ws.root), "registry", "status"]
    with stopped_after(ws):
        _started(ws)
        piped = subprocess.run(f"{shlex.join(cli)} | {head} -1", shell=True, capture_output=True,
                               text=True, timeout=120)
        assert (piped.stdout, piped.stderr) == ("registry: running, healthy\n", "")
        for extra in ([], ["--json"]):
            # Made certain rather than raced: head takes its one line and exits first, so
            # every write status makes meets a pipe nobody reads.
            read, write = os.pipe()
            try:
                os.write(write, b"first line\n")
                first = subprocess.run([head, "-1"], stdin=read, capture_output=True, timeout=30)
                os.close(read)
                read = -1
                status = subprocess.run([*cli, *extra], stdout=write, stderr=subprocess.PIPE,
                                        text=True, timeout=120)
            finally:
                for fd in (read, write):
                    if fd >= 0:
                        os.close(fd)
            assert first.stdout == b"first line\n"
            assert (status.returncode, status.stderr) == (141, ""), status.stderr


@pytest.mark.integration
def test_a_full_registry_disk_says_so(tmp_path: Path) -> None:
    """The registry's storage on a 2 MiB tmpfs and a 5 MiB push: the error names the full disk
    and what to do, at once (no retries), instead of "HTTP 500"."""
    require_tool("docker-registry", "apt install docker-registry")
    require_tool("mount", "apt install mount")
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    ws = make_workspace(tmp_path)
    store = OciLayout(ws.store_dir).ensure()
    random_image(store, 5 << 20, "big:1")
    lock_stored_images(store, ws.lock_path)
    env = {"CROSSYARD_KEY_PASSWORD": "", "CROSSYARD_REGISTRY": ""}
    assert run_cli("-C", str(ws.root), "keys", "generate", env=env).returncode == 0
    storage = ws.state / "registry" / "storage"
    with tmpfs(storage, "2m"), stopped_after(ws):
        info = _started(ws)
        began = time.monotonic()
        published = run_cli("-C", str(ws.root), "publish", "--no-build", env=env)
        took = time.monotonic() - began
        assert published.returncode == 1, published.stdout + published.stderr
        error = published.stderr
        assert f"registry {info.host} is out of disk space" in error, error
        assert "no space left on device" in error and str(storage) in error
        assert "free space where it stores blobs" in error and "Traceback" not in error
        assert took < 5, f"{took:.1f}s: a full disk is not worth retrying"

        # Full now, the registry cannot even start an upload; it says so with a bare errno.
        small = OciLayout(tmp_path / "small").ensure()
        tiny_image(small, b"small\n", "small:1")
        with RegistryClient(info.url, ca_path=info.ca_bundle, username=info.username,
                            password=info.password) as client, pytest.raises(
            RegistryError, match=f"registry {info.host} is out of disk space"
        ):
            client.push_layout(small, "small:1", "small", "1")
        assert _owner_get(info) == 200
        status = run_cli("-C", str(ws.root), "registry", "status")
        assert status.returncode == 0 and "(FULL: pushes fail)" in status.stdout, status.stdout
        as_json = run_cli("-C", str(ws.root), "registry", "status", "--json")
        assert json.loads(as_json.stdout)["storage_free_bytes"] < 1 << 20


@pytest.mark.integration
def test_a_copied_workspace_does_not_control_the_originals_registry(tmp_path: Path) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    ws = make_workspace(tmp_path / "original")
    copy = Workspace(root=tmp_path / "copy")
    with stopped_after(ws), stopped_after(copy):
        info = _started(ws)
        subprocess.run(["cp", "-a", str(ws.root), str(copy.root)], check=True)
        for args in (["status"], ["status", "--json"], ["down"], ["reload"],
                     ["up", "--addr", info.host]):
            refused = run_cli("-C", str(copy.root), "registry", *args)
            assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
            assert "Traceback" not in refused.stderr
            assert (f"the registry at {info.host} (supervisor pid {info.pid}) belongs to "
                    f"workspace {ws.root}, not to {copy.root}") in refused.stderr
            assert f"crossyard -C {ws.root} registry down" in refused.stderr
            assert "registry up --addr" in refused.stderr
        # A user or a certificate changed in the copy is the copy's: the original is not reloaded.
        added = run_cli("-C", str(copy.root), "registry", "user", "add", "bob")
        assert added.returncode == 0 and "reloaded" not in added.stdout, added.stderr
        assert manager.status(ws) == info  # same supervisor, same backend: nothing was touched
        assert _owner_get(info) == 200
        assert run_cli("-C", str(ws.root), "registry", "status").returncode == 0

        # The copy runs its own registry on another port; each workspace then sees its own.
        own = _up(copy, free_addr())
        assert own.returncode == 0, own.stderr
        mine = manager.status(copy)
        assert mine is not None and mine.pid != info.pid and mine.host != info.host
        assert manager.status(ws) == info
        assert run_cli("-C", str(copy.root), "registry", "down").returncode == 0
        assert not _alive(mine.pid) and _alive(info.pid)
        assert _owner_get(info) == 200


@pytest.mark.integration
def test_user_add_and_rm_take_effect_on_the_running_registry(tmp_path: Path) -> None:
    with _running(tmp_path) as (ws, info):
        before = info.backend_pid
        added = run_cli("-C", str(ws.root), "registry", "user", "add", "bob",
                        env={"CROSSYARD_REGISTRY_PASSWORD": "pw-bob-1"})
        assert added.returncode == 0, added.stderr
        assert "reloaded" in added.stdout and "pw-bob-1" not in added.stdout
        assert _get(info.url, info.ca_bundle, ("bob", "pw-bob-1")) == 200
        assert _owner_get(info) == 200
        now = manager.status(ws)
        assert now is not None and now.backend_pid != before and now.pid == info.pid

        removed = run_cli("-C", str(ws.root), "registry", "user", "rm", "bob")
        assert removed.returncode == 0, removed.stderr
        assert _get(info.url, info.ca_bundle, ("bob", "pw-bob-1")) == 401
        missing = run_cli("-C", str(ws.root), "registry", "user", "rm", "bob")
        assert missing.returncode == 2 and "no registry user 'bob'" in missing.stderr
        bad = run_cli("-C", str(ws.root), "registry", "user", "add", "Bob:x")
        assert bad.returncode == 2 and "'Bob:x' is not valid" in bad.stderr


@pytest.mark.integration
def test_crashed_backend_is_replaced_and_a_killed_supervisor_leaves_nothing(
    tmp_path: Path,
) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    ws = make_workspace(tmp_path)
    addr = free_addr()
    src = OciLayout(tmp_path / "src").ensure()
    tiny_image(src, b"keep me\n" * 1000, "hello:1")
    with stopped_after(ws):
        assert _up(ws, addr).returncode == 0
        info = manager.status(ws)
        assert info is not None and info.backend_pid is not None
        with RegistryClient(info.url, ca_path=info.ca_bundle, username=info.username,
                            password=info.password) as client:
            digest = client.push_layout(src, "hello:1", "hello", "1")

        os.kill(info.backend_pid, signal.SIGKILL)
        _eventually(lambda: (manager.status(ws) or info).backend_pid != info.backend_pid,
                    "a new backend after the crash")
        assert _owner_get(info) == 200

        current = manager.status(ws)
        assert current is not None and current.backend_pid is not None
        os.kill(info.pid, signal.SIGKILL)
        _eventually(lambda: not _alive(current.backend_pid or 0), "backend exits with supervisor")
        assert manager.status(ws) is None
        assert run_cli("-C", str(ws.root), "registry", "status").returncode == 1

        assert _up(ws, addr).returncode == 0  # a stale state file does not block a new start
        again = manager.status(ws)
        assert again is not None and again.pid != info.pid
        with RegistryClient(again.url, ca_path=again.ca_bundle, username=again.username,
                            password=again.password) as client:
            assert client.pull("hello", "1", OciLayout(tmp_path / "dst").ensure()).digest == digest


@pytest.mark.integration
def test_upload_begun_before_a_reload_completes_after_it(tmp_path: Path) -> None:
    with _running(tmp_path) as (ws, info):
        data = os.urandom(300_000)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        auth = (info.username, info.password)
        with httpx.Client(verify=_tls(info.ca_bundle), auth=auth, timeout=30) as http:
            started = http.post(f"{info.url}/v2/big/blobs/uploads/")
            assert started.status_code == 202
            first = http.patch(
                add_query(started.headers["Location"], info.url), content=data[:100_000],
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": "0-99999"},
            )
            assert first.status_code == 202, first.text
            location = add_query(first.headers["Location"], info.url)

        reload = run_cli("-C", str(ws.root), "registry", "reload")
        assert reload.returncode == 0, reload.stderr
        after = manager.status(ws)
        assert after is not None and after.backend_pid != info.backend_pid

        with httpx.Client(verify=_tls(info.ca_bundle), auth=auth, timeout=30) as http:
            rest = http.patch(
                location, content=data[100_000:],
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": f"100000-{len(data) - 1}"},
            )
            assert rest.status_code == 202, rest.text
            done = http.put(add_query(rest.headers["Location"], info.url, digest=digest))
            assert done.status_code == 201, done.text
            assert http.get(f"{info.url}/v2/big/blobs/{digest}").content == data


@pytest.mark.integration
def test_a_reload_that_would_serve_an_untrusted_certificate_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    with _running(tmp_path) as (ws, info):
        host, port = info.host.rsplit(":", 1)
        served = ssl.get_server_certificate((host, int(port)))
        # A leaf from a CA nobody trusts lands where the registry's leaf lives.
        stranger = certs.create_ca(tmp_path / "stranger")
        certs.issue_leaf(stranger, ws.state / "pki" / "registry", names=("127.0.0.1",))

        reload = run_cli("-C", str(ws.root), "registry", "reload")
        assert reload.returncode == 1
        assert "reload failed, the previous certificate is still served" in reload.stderr
        assert "does not verify the new certificate" in reload.stderr
        assert ssl.get_server_certificate((host, int(port))) == served
        assert _owner_get(info) == 200
        status = run_cli("-C", str(ws.root), "registry", "status")
        assert status.returncode == 0 and "last reload FAILED" in status.stdout


# Upstream's image, named explicitly: these workspaces have not built the catalog's own.
UPSTREAM = ("--image", "docker.io/library/registry:2.8.3")


def _k8s(tmp_path: Path, *flags: str) -> tuple[Workspace, Path]:
    """`registry k8s -o DIR FLAGS` in a new workspace, which must succeed; (workspace, DIR)."""
    ws = make_workspace(tmp_path)
    out = tmp_path / "k8s"
    result = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out), *UPSTREAM, *flags)
    assert result.returncode == 0, result.stderr
    return ws, out


def _k8s_objects(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) in the order `kubectl apply -f DIR` applies them: files by name."""
    return [(path.name, doc) for path in sorted(directory.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())]


def test_k8s_manifests_carry_the_leaf_and_parse(tmp_path: Path) -> None:
    ws, out = _k8s(tmp_path, "--namespace", "edge")
    docs = {}
    for path in sorted(out.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = (doc, path)
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == "edge"
    assert {kind for kind, _ in docs} == {
        "Namespace", "Deployment", "Service", "PersistentVolumeClaim", "Secret", "ConfigMap"}

    leaf = ws.state / "pki" / "registry"
    tls, tls_file = docs[("Secret", "registry-tls")]
    assert tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.crt"]) == (leaf / "tls.crt").read_bytes()
    assert base64.b64decode(tls["data"]["tls.key"]) == (leaf / "tls.key").read_bytes()
    assert b"BEGIN CERTIFICATE" in base64.b64decode(tls["data"]["ca.crt"])
    assert tls_file.stat().st_mode & 0o777 == 0o600
    auth, auth_file = docs[("Secret", "registry-auth")]
    assert auth_file.stat().st_mode & 0o777 == 0o600
    password = (ws.state / "registry" / "users" / "crossyard.password").read_text().strip()
    user, _, hashed = base64.b64decode(auth["data"]["htpasswd"]).decode().strip().partition(":")
    assert user == "crossyard" and bcrypt.checkpw(password.encode(), hashed.encode())
    assert docs[("ConfigMap", "registry-config")][1].stat().st_mode & 0o777 == 0o644

    config = yaml.safe_load(docs[("ConfigMap", "registry-config")][0]["data"]["config.yml"])
    assert config["http"]["tls"] == {"certificate": "/certs/tls.crt", "key": "/certs/tls.key"}
    assert config["auth"]["htpasswd"]["path"] == "/auth/htpasswd"
    assert config["storage"]["delete"]["enabled"] is True
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"

    deployment = docs[("Deployment", "registry")][0]
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "registry-config"
    assert volumes["tls"]["secret"]["secretName"] == "registry-tls"
    assert volumes["auth"]["secret"]["secretName"] == "registry-auth"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "registry-data"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["tls"] == "/certs" and mounts["auth"] == "/auth"
    service = docs[("Service", "registry")][0]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("namespace", [None, "edge"])
def test_k8s_manifests_declare_their_namespace_before_using_it(
    tmp_path: Path, namespace: str | None
) -> None:
    """`kubectl apply -f DIR` on a new cluster: the Namespace comes first, so nothing fails with
    "namespaces crossyard not found"."""
    _, out = _k8s(tmp_path, *(["--namespace", namespace] if namespace else []))
    objects = _k8s_objects(out)
    assert objects[0][0] == "00-namespace.yaml"
    declared: set[str] = set()
    for name, doc in objects:
        if doc["kind"] == "Namespace":
            assert "namespace" not in doc["metadata"]  # a Namespace is cluster-scoped
            declared.add(doc["metadata"]["name"])
        else:
            assert doc["metadata"]["namespace"] in declared, f"{name} uses an undeclared namespace"
    assert declared == {namespace or "crossyard"}


def test_k8s_manifests_leave_the_clusters_own_namespaces_alone(tmp_path: Path) -> None:
    _, out = _k8s(tmp_path, "--namespace", "kube-system")
    objects = _k8s_objects(out)
    assert objects and all(doc["kind"] != "Namespace" for _, doc in objects)
    assert {doc["metadata"]["namespace"] for _, doc in objects} == {"kube-system"}


def test_k8s_image_must_be_an_image_reference(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    out = tmp_path / "k8s"
    result = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out),
                     "--image", "docker.io/Library/registry:2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "crossyard: error: --image `docker.io/Library/registry:2`: repository `Library/registry`: uppercase "
        "letters are not allowed; expected [HOST[:PORT]/]REPOSITORY[:TAG][@sha256:<64 hex>]"]
    assert not out.exists()


def _deployment_image(directory: Path) -> str:
    [image] = [c["image"] for _, doc in _k8s_objects(directory) if doc["kind"] == "Deployment"
               for c in doc["spec"]["template"]["spec"]["containers"]]
    return str(image)


def test_k8s_without_the_catalog_image_built_says_to_build_it(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    out = tmp_path / "k8s"
    result = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out), env={"CROSSYARD_REGISTRY": ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"crossyard: error: {ws.lock_path} records no `registry` image: run `crossyard build "
        "registry-image` and `crossyard publish registry-image` first, so that the manifests run it by "
        "digest from the workspace's registry; or pass --image REF to run another registry image "
        "(docker.io/library/registry:2.8.3 is upstream's, which has no riscv64 build)"]
    assert not out.exists() and not (ws.state / "pki").exists()


def test_k8s_with_the_registry_unreachable_says_so(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    store = OciLayout(ws.store_dir).ensure()
    tiny_image(store, b"stands in for the registry binary\n", "registry:2.8.2")
    lock_stored_images(store, ws.lock_path)
    [entry] = store.manifests()
    addr, out = free_addr(), tmp_path / "k8s"  # nothing listens there
    result = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out), "--registry", addr)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"crossyard: error: --registry {addr} did not answer (registry {addr}: ")
    assert line.endswith(
        f"so whether it holds {addr}/registry@{entry.digest} is unknown: start it (`crossyard registry "
        "up`) and run `crossyard publish registry-image`; or pass --image REF to run another registry "
        "image (docker.io/library/registry:2.8.3 is upstream's, which has no riscv64 build)")
    assert not out.exists()


@pytest.mark.integration
def test_k8s_runs_the_catalog_image_by_digest_once_it_is_published(tmp_path: Path) -> None:
    """The lock records the catalog's `registry` image: `registry k8s` refuses while the
    workspace's registry lacks it, and names it there by digest once `publish` pushed it."""
    require_tool("docker-registry", "apt install docker-registry")
    ws = make_workspace(tmp_path)
    store = OciLayout(ws.store_dir).ensure()
    tiny_image(store, b"stands in for the registry binary\n", "registry:2.8.2")
    lock_stored_images(store, ws.lock_path)
    [entry] = store.manifests()
    env = {"CROSSYARD_KEY_PASSWORD": "", "CROSSYARD_REGISTRY": ""}
    out = tmp_path / "k8s"
    with stopped_after(ws):
        info = _started(ws)
        unpublished = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out), env=env)
        assert unpublished.returncode == 2
        assert unpublished.stderr.strip().splitlines() == [
            f"crossyard: error: {info.host}/registry@{entry.digest} (the `registry` image crossyard.lock "
            f"records) is not in the workspace's managed registry {info.host}: run `crossyard publish "
            "registry-image` first; or pass --image REF to run another registry image "
            "(docker.io/library/registry:2.8.3 is upstream's, which has no riscv64 build)"]
        assert not out.exists()

        assert run_cli("-C", str(ws.root), "keys", "generate", env=env).returncode == 0
        published = run_cli("-C", str(ws.root), "publish", "--no-build", env=env)
        assert published.returncode == 0, published.stderr
        done = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out), env=env)
        assert done.returncode == 0, done.stderr
        assert _deployment_image(out) == f"{info.host}/registry@{entry.digest}"

        explicit = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(tmp_path / "up"), *UPSTREAM)
        assert explicit.returncode == 0, explicit.stderr
        assert _deployment_image(tmp_path / "up") == "docker.io/library/registry:2.8.3"


def test_workspace_config_template_overrides_the_builtin(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    builtin = (Path(__file__).resolve().parent.parent / "registry" / "config.yml").read_text()
    (ws.root / "registry").mkdir()
    (ws.root / "registry" / "config.yml").write_text(
        builtin.replace("level: ${log_level}", "level: debug  # workspace override"))
    out = tmp_path / "k8s"
    assert run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out), *UPSTREAM).returncode == 0
    assert "level: debug  # workspace override" in (out / "configmap.yaml").read_text()

    (ws.root / "registry" / "config.yml").write_text(builtin + "\nextra: ${nope}\n")
    bad = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out), *UPSTREAM)
    assert bad.returncode == 2
    assert "registry/config.yml: unknown placeholder ${nope}" in bad.stderr


# -- bad input ---------------------------------------------------------------------------------
def test_unknown_registry_key_suggests_the_known_one(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, '[registry]\nadress = "127.0.0.1:5000"\n')
    result = _up(ws, free_addr())
    assert result.returncode == 2
    assert "unknown key `adress` in [registry]" in result.stderr
    assert "did you mean `addr`?" in result.stderr and "crossyard.toml" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("toml", "flag", "named"),
    [
        ('[registry]\naddr = "127.0.0.1"\n', None, "[registry] addr"),
        ('[registry]\naddr = "127.0.0.1:99999"\n', None, "port must be 1-65535"),
        ("", "local host:5000", "--addr"),
        ("", "127.0.0.1:http", "--addr"),
    ],
)
def test_malformed_addr_is_refused(tmp_path: Path, toml: str, flag: str | None, named: str) -> None:
    ws = make_workspace(tmp_path, toml)
    args = ["-C", str(ws.root), "registry", "up"] + (["--addr", flag] if flag else [])
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "malformed address" in result.stderr and named in result.stderr
    assert "HOST:PORT" in result.stderr
    assert not (ws.state / "registry" / "state.json").exists()


def test_env_addr_is_checked_too(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    result = run_cli("-C", str(ws.root), "registry", "up",
                     env={"CROSSYARD_REGISTRY_ADDR": "nope"})
    assert result.returncode == 2 and "CROSSYARD_REGISTRY_ADDR" in result.stderr


@pytest.mark.integration
def test_port_in_use_names_the_address(tmp_path: Path) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    ws = make_workspace(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        addr = f"127.0.0.1:{holder.getsockname()[1]}"
        result = _up(ws, addr)
    assert result.returncode == 2
    assert f"cannot listen on {addr}: the address is already in use" in result.stderr
    assert "--addr" in result.stderr
    assert manager.status(ws) is None
    assert not (ws.state / "registry" / "state.json").exists()


def test_missing_docker_registry_says_how_to_install(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _up(ws, free_addr(), PATH=str(empty))
    assert result.returncode == 2
    assert "`docker-registry`" in result.stderr
    assert "apt-get install -y docker-registry" in result.stderr


@pytest.mark.integration
def test_address_the_certificate_does_not_name_is_refused(tmp_path: Path) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    ws = make_workspace(tmp_path)
    result = _up(ws, free_addr().replace("127.0.0.1", "127.0.0.2"))
    assert result.returncode == 2
    assert "does not name 127.0.0.2" in result.stderr and "certs/registry.toml" in result.stderr


def test_addr_cascade_file_then_flag_then_env(tmp_path: Path) -> None:
    from crossyard.registry import settings

    ws = make_workspace(tmp_path, '[registry]\naddr = "0.0.0.0:5001"\ncert = "edge"\n')
    got = settings.load(ws, environ={})
    assert (got.addr.listen, got.addr.url, got.cert) == (
        "0.0.0.0:5001", "https://127.0.0.1:5001", "edge")
    assert settings.load(ws, addr="[::1]:5002", environ={}).addr.url == "https://[::1]:5002"
    env = {settings.ADDR_ENV: "localhost:5003"}
    assert settings.load(ws, addr="127.0.0.1:5002", environ=env).addr.authority == "localhost:5003"
    assert settings.load(make_workspace(tmp_path / "empty"), environ=env).addr.listen == "localhost:5003"
    plain = make_workspace(tmp_path / "plain")
    assert settings.load(plain, environ={settings.ADDR_ENV: ""}).addr.listen == "127.0.0.1:5000"
    with pytest.raises(ConfigurationError, match="cert must name a certificate profile"):
        settings.load(make_workspace(tmp_path / "bad", '[registry]\ncert = "../x"\n'), environ={})
