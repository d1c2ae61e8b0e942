"""The Kubernetes catalog (recipes/kubernetes/, the pod components' images in recipes/images/),
built by `crossyard build` for riscv64 and arm64 from Debian's source packages, then run:

- every component prints the version it was stamped with, under qemu-user;
- a control plane: Debian trixie's etcd, the catalog's riscv64 kube-apiserver under qemu on
  127.0.0.1 with certificates from crossyard's own CA; the catalog's riscv64 kubectl (1.32.3)
  gets /healthz = ok and creates a Job, the catalog's riscv64 kube-controller-manager makes the
  Job's Pod.

The whole catalog is built once per test session (`catalog`), in one workspace whose store both
tests read: a cold build is many minutes (field notes: ~7 min per architecture for 1.20.2, ~3 for
kubectl 1.32.3, on a quiet 2-core machine).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, require, require_tool, run_cli
from crossyard import elf
from crossyard.pki import Pki
from crossyard.platforms import Platform
from crossyard.toolchains import in_root
from crossyard.workspace import Workspace

# The first test also waits for the session's build (pytest-timeout counts fixture setup).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(4 * 3600)]

ROOTS = Path(os.environ.get("CROSSYARD_ROOTS", "/var/cache/crossyard/roots"))
ETCD_ROOT = ROOTS / "etcd-trixie-amd64"
PLATFORMS = ("linux/riscv64", "linux/arm64")
QEMU = {"linux/riscv64": "qemu-riscv64-static", "linux/arm64": "qemu-aarch64-static"}
POD_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
V1_20 = ("kubelet", "kube-proxy", "kubeadm", "kube-apiserver", "kube-controller-manager",
         "kube-scheduler", "kubectl-1.20")
# The upstream commits the Debian tarballs were made from (recipes' [source] commit).
COMMIT_1_20 = "faecb196815e248d3ecfb03c680a4507229c2a56"
COMMIT_1_32 = "32cc146f75aad04beaaa245a7157eb35063a9f99"
BUILD_TIMEOUT_S = 3 * 3600  # cold, both architectures, on a busy 2-core machine


@dataclass(frozen=True, kw_only=True)
class Catalog:
    ws: Path
    summary: dict[str, Any]

    def binary(self, recipe: str, platform: str, dest: Path) -> Path:
        """The recipe's output for `platform`, copied out of the store as an executable."""
        [job] = [j for j in self.summary["jobs"] if j["recipe"] == recipe and j["platform"] == platform]
        [(name, digest)] = job["outputs"].items()
        target = dest / platform.replace("/", "-") / recipe / name  # kubectl-1.20 makes a `kubectl` too
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.ws / ".crossyard" / "store" / "blobs" / "sha256" / digest.removeprefix("sha256:"),
                            target)
            target.chmod(0o755)
        return target


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """One workspace with the Kubernetes recipes and the pod components' images, built once."""
    for tool in ("bwrap", "gpgv", "dpkg-source", "patch", *QEMU.values()):
        require_tool(tool, "run .ci/install.d/00-apt.sh")
    for root in ("go-trixie-amd64", "go-k8s-trixie-amd64"):
        require((ROOTS / root / "usr" / "bin" / "go").exists(),
                f"toolchain root {ROOTS / root} is not prepared: run .ci/install.d/61-go-roots.sh")
    # CROSSYARD_TEST_K8S_WORKSPACE: a directory to keep the workspace in (its store reused when it
    # was built before: a second run of these tests is cached, as a user's second build is)
    kept = os.environ.get("CROSSYARD_TEST_K8S_WORKSPACE")
    ws = Path(kept) if kept else tmp_path_factory.mktemp("k8s")
    (ws / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64", "linux/arm64"]\n')
    shutil.rmtree(ws / "recipes", ignore_errors=True)
    shutil.copytree(REPO / "recipes" / "kubernetes", ws / "recipes" / "kubernetes")
    (ws / "recipes" / "images").mkdir()
    for name in POD_COMPONENTS:
        shutil.copy(REPO / "recipes" / "images" / f"{name}.toml", ws / "recipes" / "images")
    result = subprocess.run([sys.executable, "-m", "crossyard.cli", "-C", str(ws), "build", "--json"],
                            capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-5000:]
    return Catalog(ws=ws, summary=json.loads(result.stdout))


def run_under_qemu(binary: Path, platform: str, *args: str, timeout: float = 300) -> str:
    result = subprocess.run([require_tool(QEMU[platform]), str(binary), *args], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (binary, args, result.stdout, result.stderr)
    return result.stdout


def build_dates(catalog: Catalog) -> dict[str, str]:
    """buildDate as Kubernetes prints it, per Debian source version: SOURCE_DATE_EPOCH, which for
    a Debian source is the date of debian/changelog's last entry (read with dpkg's own parser)."""
    dates = {}
    for tree in (catalog.ws / ".crossyard" / "cache" / "debian" / "trees").iterdir():
        if tree.is_dir():
            fields = subprocess.run(["dpkg-parsechangelog", "-l", str(tree / "debian" / "changelog")],
                                    capture_output=True, text=True, check=True).stdout
            info = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
            when = datetime.datetime.fromtimestamp(int(info["Timestamp"]), datetime.UTC)
            dates[info["Version"]] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dates


def raw_version(text: str) -> dict[str, str]:
    """`--version=raw` prints version.Info with %#v (`version.Info{Major:"1", GitVersion:…}`):
    its fields under the JSON names `version -o json` uses (major, gitVersion, …)."""
    return {k[0].lower() + k[1:]: v for k, v in re.findall(r'(\w+):"([^"]*)"', text)}


def static_for(binary: Path, platform: str) -> None:
    assert elf.mismatch(binary, Platform.parse(platform)) is None, binary
    described = subprocess.run([require_tool("file"), "-b", str(binary)], capture_output=True, text=True,
                               check=True).stdout
    assert "statically linked" in described, (binary, described)


STAMPED = ("gitVersion", "major", "minor", "gitCommit", "gitTreeState", "buildDate", "platform")


def test_every_component_is_built_static_and_prints_its_stamped_version(catalog: Catalog, tmp_path: Path) -> None:
    jobs = {(j["recipe"], j["platform"]): j for j in catalog.summary["jobs"]}
    assert set(jobs) == {(r, p) for r in (*V1_20, "kubectl") for p in PLATFORMS}
    assert {j["status"] for j in jobs.values()} <= {"built", "cached"}
    dates = build_dates(catalog)
    for platform in PLATFORMS:
        want = {"gitVersion": "v1.20.2", "major": "1", "minor": "20", "gitCommit": COMMIT_1_20,
                "gitTreeState": "clean", "buildDate": dates["1.20.5+really1.20.2-1.1+deb12u1"], "platform": platform}
        for recipe in V1_20:
            binary = catalog.binary(recipe, platform, tmp_path)
            static_for(binary, platform)
            if recipe == "kubeadm":
                assert run_under_qemu(binary, platform, "version", "-o", "short") == "v1.20.2\n"
                stamped = json.loads(run_under_qemu(binary, platform, "version", "-o", "json"))["clientVersion"]
            elif recipe == "kubectl-1.20":
                stamped = json.loads(run_under_qemu(binary, platform, "version", "--client", "-o", "json")
                                     )["clientVersion"]
            else:
                assert run_under_qemu(binary, platform, "--version") == "Kubernetes v1.20.2\n"
                stamped = raw_version(run_under_qemu(binary, platform, "--version=raw"))
            assert {k: stamped.get(k) for k in STAMPED} == want, (recipe, platform, stamped)
        kubectl = catalog.binary("kubectl", platform, tmp_path)
        static_for(kubectl, platform)
        client = json.loads(run_under_qemu(kubectl, platform, "version", "--client", "-o", "json"))["clientVersion"]
        assert {k: client.get(k) for k in STAMPED} == {
            "gitVersion": "v1.32.3", "major": "1", "minor": "32", "gitCommit": COMMIT_1_32,
            "gitTreeState": "clean", "buildDate": dates["1.32.3+ds-2"], "platform": platform}
    # the pod components' images, one manifest per platform, each holding the binary built above
    images = {i["recipe"]: i for i in catalog.summary["images"]}
    assert set(images) == {f"{c}-image" for c in POD_COMPONENTS}
    for component in POD_COMPONENTS:
        image = images[f"{component}-image"]
        assert image["status"] in ("assembled", "cached") and image["ref"] == f"{component}:1.20.2", image
        assert set(image["manifests"]) == set(PLATFORMS), image



# -- a control plane --------------------------------------------------------------------------

CA_TOML = """\
common_name = "crossyard test cluster CA"
permitted_dns = ["localhost", "kubernetes.default.svc"]
permitted_ips = ["127.0.0.0/8"]
"""
PROFILES = {
    # kube-apiserver's serving certificate: clients reach it at 127.0.0.1
    "apiserver": 'names = ["127.0.0.1", "localhost"]\nusage = ["server"]\n',
    # the admin: O=system:masters is the group RBAC lets do everything
    "admin": 'names = ["localhost"]\nusage = ["client"]\ncommon_name = "kubernetes-admin"\n'
             'organization = ["system:masters"]\n',
    # the service-account key pair: the apiserver verifies tokens with the certificate's key,
    # signs them (and the token controller does) with the private key
    "service-accounts": 'names = ["localhost"]\nusage = ["client"]\ncommon_name = "service-accounts"\n',
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """The servers a test started, stopped in reverse order (kube-apiserver before etcd: under
    qemu it may hang on its shutdown once etcd is gone)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, process))
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            for _attempt in range(2):  # a second SIGTERM, then SIGKILL
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    try:
                        process.wait(20)
                    except subprocess.TimeoutExpired:
                        continue
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def wait_for(check: Any, *, what: str, timeout: float, log: Any) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f}s:\n{log()}")
        time.sleep(2)


def test_control_plane_runs_a_job_into_a_pod(catalog: Catalog, processes: Processes, tmp_path: Path) -> None:
    require((ETCD_ROOT / "usr" / "bin" / "etcd").exists(),
            f"{ETCD_ROOT} has no etcd: run .ci/install.d/62-etcd-root.sh")
    qemu = require_tool(QEMU["linux/riscv64"])
    # certificates from crossyard's own CA, issued from profiles as a user would
    (catalog.ws / "certs").mkdir(exist_ok=True)
    (catalog.ws / "certs" / "ca.toml").write_text(CA_TOML)
    for name, text in PROFILES.items():
        (catalog.ws / "certs" / f"{name}.toml").write_text(text)
        issued = run_cli("-C", str(catalog.ws), "certs", "issue", name)
        assert issued.returncode == 0, issued.stderr
    pki = Pki.of(Workspace(root=catalog.ws))
    ca = pki.bundle
    leaf = {name: (pki.leaf(name).cert, pki.leaf(name).key) for name in PROFILES}

    # etcd: Debian trixie's, in its root (bubblewrap), its data in the test's directory
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    data = tmp_path / "etcd"
    data.mkdir()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    processes.start("etcd", in_root(ETCD_ROOT, [
        "etcd", "--name=test", "--data-dir=/tmp/data", f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}", f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=test=http://127.0.0.1:{peer_port}"], binds=[(data, "/tmp/data")]))

    apiserver = catalog.binary("kube-apiserver", "linux/riscv64", tmp_path)
    processes.start("kube-apiserver", [
        qemu, str(apiserver), f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1",
        f"--secure-port={api_port}", "--insecure-port=0", f"--tls-cert-file={leaf['apiserver'][0]}",
        f"--tls-private-key-file={leaf['apiserver'][1]}", f"--client-ca-file={ca}",
        f"--service-account-key-file={leaf['service-accounts'][0]}",
        f"--service-account-signing-key-file={leaf['service-accounts'][1]}",
        "--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=Node,RBAC", "--endpoint-reconciler-type=none"])

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": f"https://127.0.0.1:{api_port}",
                                                  "certificate-authority": str(ca)}}],
        "users": [{"name": "admin", "user": {"client-certificate": str(leaf["admin"][0]),
                                             "client-key": str(leaf["admin"][1])}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
    }))
    kubectl = catalog.binary("kubectl", "linux/riscv64", tmp_path)

    def kubectl_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([qemu, str(kubectl), f"--kubeconfig={kubeconfig}", *args], capture_output=True,
                              text=True, timeout=120)

    def healthz() -> bool:
        result = kubectl_run("get", "--raw", "/healthz")
        return result.returncode == 0 and result.stdout == "ok"

    wait_for(healthz, what="kube-apiserver /healthz = ok", timeout=300,
             log=lambda: processes.log("kube-apiserver") + processes.log("etcd"))
    created = kubectl_run("create", "job", "crossyard-check", "--image=registry.invalid/check:1", "--", "true")
    assert created.returncode == 0 and "job.batch/crossyard-check created" in created.stdout, created.stderr

    processes.start("kube-controller-manager", [
        qemu, str(catalog.binary("kube-controller-manager", "linux/riscv64", tmp_path)),
        f"--kubeconfig={kubeconfig}", "--controllers=job,serviceaccount,serviceaccount-token",
        f"--service-account-private-key-file={leaf['service-accounts'][1]}", f"--root-ca-file={ca}",
        "--leader-elect=false", "--port=0", "--secure-port=0",
        f"--flex-volume-plugin-dir={tmp_path / 'flexvolume'}"])

    def pods() -> list[dict[str, Any]]:
        result = kubectl_run("get", "pods", "-l", "job-name=crossyard-check", "-o", "json")
        return json.loads(result.stdout)["items"] if result.returncode == 0 else []

    [pod] = wait_for(pods, what="a Pod for the Job", timeout=300,
                     log=lambda: processes.log("kube-controller-manager") + processes.log("kube-apiserver"))
    [owner] = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("Job", "crossyard-check")
    assert pod["spec"]["containers"][0]["image"] == "registry.invalid/check:1"
    assert pod["status"]["phase"] == "Pending"  # no scheduler, no kubelet: nothing runs it
    # the default ServiceAccount the serviceaccount controller made was admitted into the Pod
    assert pod["spec"]["serviceAccountName"] == "default"
