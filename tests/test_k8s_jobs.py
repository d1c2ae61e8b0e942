"""`crossyard nodes k8s-jobs`: the plan's jobs as Kubernetes Jobs. No API server runs here, so the
manifests are checked for shape (kinds, API versions, arch pinning, images and inputs pinned by
digest, the job spec round-tripping) and their three scripts are run on this machine — each in a
bubblewrap sandbox with the pod's mounts — against a real TLS registry with oras, which must
build the bytes a local build stored."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, require_tool, run_cli
from crossyard.jobspec import JobSpec
from crossyard.k8s_jobs import JOB_DIR, REGISTRY_DIR, SPEC_DIR, to_yaml
from crossyard.platforms import Platform
from helpers.registry import running_registry

pytestmark = [pytest.mark.integration]

PINNED = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
DIGEST = "sha256:" + hashlib.sha256(b"a toolchain image").hexdigest()
ORAS_IMAGE = "tools.example:5000/oras@sha256:" + hashlib.sha256(b"an oras image").hexdigest()


def _workspace(tmp_path: Path, platforms: str) -> Path:
    require_tool("riscv64-linux-gnu-gcc", "run .ci/install.d/00-apt.sh")
    require_tool("aarch64-linux-gnu-gcc", "run .ci/install.d/00-apt.sh")
    ws = tmp_path / "ws"
    (ws / "recipes").mkdir(parents=True)
    for name in ("libgreet", "hello-c"):
        shutil.copytree(REPO / "services" / name, ws / "src" / name)
        text = (REPO / "recipes" / "services" / f"{name}.toml").read_text()
        (ws / "recipes" / f"{name}.toml").write_text(text.replace("../../services/", "../src/"))
    (ws / "crossyard.toml").write_text(f"[build]\nplatforms = {platforms}\n")
    return ws


def _render(ws: Path, out: Path, *args: str, registry: str = "registry.example:5000") -> dict[str, Any]:
    done = run_cli("-C", str(ws), "nodes", "k8s-jobs", "-o", str(out), "--registry", registry,
                   "--image", f"gcc={DIGEST}", "--image", f"oras={ORAS_IMAGE}", "--json", *args)
    assert done.returncode == 0, done.stderr
    rendered: dict[str, Any] = json.loads(done.stdout)
    return rendered


def _documents(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    text = path.read_text()
    assert text.startswith("# ") and "kubectl apply -f " + path.name in text  # how to apply it
    config_map, job = yaml.safe_load_all(text)
    return config_map, job


def _planned_keys(ws: Path) -> dict[str, str | None]:
    done = run_cli("-C", str(ws), "plan", "--json")
    assert done.returncode == 0, done.stderr
    return {job["id"]: job["input_key"] for job in json.loads(done.stdout)["jobs"]}


def _check_shape(path: Path, job_id: str, key: str) -> tuple[JobSpec, dict[str, Any], dict[str, Any]]:
    config_map, job = _documents(path)
    assert (config_map["apiVersion"], config_map["kind"]) == ("v1", "ConfigMap")
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert config_map["metadata"]["name"] == job["metadata"]["name"] == path.stem
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", path.stem)
    raw = config_map["data"]["job.json"]
    spec = JobSpec.from_json(json.loads(raw))
    assert spec.to_bytes().decode() == raw  # round trip, byte for byte
    assert (spec.id, spec.input_key) == (job_id, key)
    pod = job["spec"]["template"]["spec"]
    # a cross job runs where its toolchain runs: this machine's arch (no root, no --cross-arch)
    expected_arch = Platform.host().goarch if spec.toolchain.strategy == "cross" else spec.platform.goarch
    assert pod["nodeSelector"] == {"kubernetes.io/arch": expected_arch, "kubernetes.io/os": "linux"}
    assert pod["restartPolicy"] == "Never"
    containers = pod["initContainers"] + pod["containers"]
    assert [c["name"] for c in containers] == ["fetch-inputs", "build", "push-outputs"]
    assert all(PINNED.match(c["image"]) for c in containers), [c["image"] for c in containers]
    assert containers[1]["image"] == f"registry.example:5000/crossyard-root/gcc@{DIGEST}"
    assert containers[0]["image"] == containers[2]["image"] == ORAS_IMAGE
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["spec"]["configMap"]["name"] == path.stem
    assert {m["mountPath"] for m in containers[1]["volumeMounts"]} == {JOB_DIR, SPEC_DIR}
    fetch = config_map["data"]["fetch.sh"]
    pulled = re.findall(r"oras pull \$auth -o \S+ (\S+)", fetch)
    assert pulled and all(PINNED.match(ref) for ref in pulled), pulled
    for item in spec.inputs:  # every dependency file checked against the spec's digest
        assert f"{item.digest.removeprefix('sha256:')}  {JOB_DIR}/deps/{item.recipe}/{item.name}" in fetch
    return spec, config_map, job


def test_renders_jobs_whose_dependencies_are_stored_and_lists_the_others(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, '["linux/riscv64", "linux/arm64"]')
    out = tmp_path / "k8s"

    refused = run_cli("-C", str(ws), "nodes", "k8s-jobs", "-o", str(out), "--registry", "registry.example:5000")
    assert refused.returncode == 2
    assert "`gcc` (libgreet@linux/riscv64, libgreet@linux/arm64)" in refused.stderr and "`oras`" in refused.stderr
    assert "Traceback" not in refused.stderr and not out.exists()  # nothing half-written
    tagged = run_cli("-C", str(ws), "nodes", "k8s-jobs", "-o", str(out), "--registry", "registry.example:5000",
                     "--image", "gcc=registry.example:5000/gcc:12", "--image", f"oras={ORAS_IMAGE}")
    assert tagged.returncode == 2 and "not pinned by digest" in tagged.stderr

    before = _render(ws, out)
    keys = _planned_keys(ws)
    assert {j["id"] for j in before["jobs"]} == {"libgreet@linux/riscv64", "libgreet@linux/arm64"}
    assert {w["id"]: w["after"] for w in before["waiting"]} == {
        "hello-c@linux/riscv64": ["libgreet@linux/riscv64"], "hello-c@linux/arm64": ["libgreet@linux/arm64"]}
    for job in before["jobs"]:
        spec, _, _ = _check_shape(Path(job["file"]), job["id"], keys[job["id"]] or "")
        assert spec.inputs == () and not job["cached"]

    built = run_cli("-C", str(ws), "build", "libgreet", "--json")
    assert built.returncode == 0, built.stderr
    stored = {j["id"]: j for j in json.loads(built.stdout)["jobs"]}
    after = _render(ws, out)
    keys = _planned_keys(ws)
    assert after["waiting"] == []
    assert {j["id"]: j["cached"] for j in after["jobs"]} == {
        "libgreet@linux/riscv64": True, "libgreet@linux/arm64": True,
        "hello-c@linux/riscv64": False, "hello-c@linux/arm64": False}
    manifests = {f"{e['recipe']}@{e['platform']}": e["digest"] for e in json.loads(
        run_cli("-C", str(ws), "store", "ls", "--json").stdout)["entries"] if e["type"] == "artifact"}
    for job in after["jobs"]:
        spec, config_map, _ = _check_shape(Path(job["file"]), job["id"], keys[job["id"]] or "")
        if job["id"].startswith("hello-c@"):
            dep = "libgreet@" + spec.platform.oci
            assert {i.name: i.digest for i in spec.inputs} == stored[dep]["outputs"]
            assert f"registry.example:5000/libgreet@{manifests[dep]}" in config_map["data"]["fetch.sh"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(Path(j["file"]).name for j in after["jobs"]), "inputs", "push-inputs.sh"])

    again = tmp_path / "again"
    _render(ws, again)
    for path in out.glob("*.yaml"):
        assert (again / path.name).read_bytes() == path.read_bytes()  # deterministic
    assert (again / "push-inputs.sh").read_bytes() == (out / "push-inputs.sh").read_bytes()

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    foreign = run_cli("-C", str(ws), "nodes", "k8s-jobs", "-o", str(tmp_path / "mine"), "--registry", "r.example:5000",
                      "--image", f"gcc={DIGEST}", "--image", f"oras={ORAS_IMAGE}")
    assert foreign.returncode == 2 and "notes.txt" in foreign.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_yaml_is_sorted_and_reads_back() -> None:
    value = {"b": ["x", {"z": 1, "a": True}], "a": {"k": "line one\nline two\n", "empty": {}, "n": None},
             "yes": "no", "odd key": "0755", "q": 'say "hi"\\'}
    text = to_yaml(value)
    assert yaml.safe_load(text) == value
    top = [line.split(":")[0].strip('"') for line in text.splitlines() if line[:1] not in (" ", "-", "")]
    assert top == sorted(value)  # sorted keys: the same value, the same bytes
    assert "k: |\n    line one\n    line two\n" in text  # scripts read as scripts


def test_the_jobs_scripts_build_the_stores_bytes_through_a_real_registry(tmp_path: Path) -> None:
    """fetch-inputs, build and push-outputs run as the pod would run them (bubblewrap gives each
    the pod's mounts; the toolchain image is this machine), after push-inputs.sh filled a real TLS
    registry; the pushed outputs are the bytes `crossyard build` stored."""
    oras = require_tool("oras", "run .ci/install.d/56-cosign.sh")
    bwrap = require_tool("bwrap", "run .ci/install.d/00-apt.sh")
    ws = _workspace(tmp_path, '["linux/riscv64"]')
    built = run_cli("-C", str(ws), "build", "--json")
    assert built.returncode == 0, built.stderr
    stored = {j["id"]: j for j in json.loads(built.stdout)["jobs"]}
    out = tmp_path / "k8s"
    with running_registry(tmp_path) as reg:
        rendered = _render(ws, out, "hello-c", registry=reg.host)
        (job,) = [j for j in rendered["jobs"] if j["id"] == "hello-c@linux/riscv64"]
        env = {"CROSSYARD_REGISTRY_CA": str(reg.ca_path), "CROSSYARD_REGISTRY_USERNAME": reg.username,
               "CROSSYARD_REGISTRY_PASSWORD": reg.password}
        pushed = subprocess.run(["sh", str(out / "push-inputs.sh")], capture_output=True, text=True,
                                env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env}, timeout=300)
        assert pushed.returncode == 0, pushed.stderr

        config_map, _ = _documents(Path(job["file"]))
        spec_dir, job_dir, secret = tmp_path / "spec", tmp_path / "job", tmp_path / "secret"
        for directory in (spec_dir, job_dir, secret):
            directory.mkdir()
        for name, text in config_map["data"].items():
            (spec_dir / name).write_text(text)
        shutil.copyfile(reg.ca_path, secret / "ca.crt")
        login = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        (secret / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": login}}}))

        def container(script: str, *, registry: bool) -> subprocess.CompletedProcess[str]:
            argv = [bwrap, "--die-with-parent", "--tmpfs", "/", "--ro-bind", "/usr", "/usr",
                    "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                    "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
                    "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                    "--bind", str(job_dir), JOB_DIR, "--ro-bind", str(spec_dir), SPEC_DIR,
                    *(["--ro-bind", str(secret), REGISTRY_DIR] if registry else []),
                    "--chdir", JOB_DIR, "--setenv", "HOME", "/tmp", "/bin/sh", f"{SPEC_DIR}/{script}"]
            return subprocess.run(argv, capture_output=True, text=True, timeout=300,
                                  env={"PATH": "/usr/local/bin:/usr/bin:/bin"})

        for script, registry in (("fetch.sh", True), ("build.sh", False), ("push.sh", True)):
            ran = container(script, registry=registry)
            assert ran.returncode == 0, (script, ran.stdout, ran.stderr)

        key = job["input_key"].removeprefix("sha256:")
        pulled = subprocess.run(
            [oras, "pull", "--ca-file", str(reg.ca_path), "-u", reg.username, "-p", reg.password,
             "-o", str(tmp_path / "pulled"), f"{reg.host}/hello-c:key-{key}"],
            capture_output=True, text=True, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        got = {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
               for p in (tmp_path / "pulled").iterdir()}
        assert got == stored["hello-c@linux/riscv64"]["outputs"]
        manifest = subprocess.run(
            [oras, "manifest", "fetch", "--ca-file", str(reg.ca_path), "-u", reg.username, "-p", reg.password,
             f"{reg.host}/hello-c:key-{key}"], capture_output=True, text=True, timeout=60)
        assert json.loads(manifest.stdout)["annotations"]["dev.crossyard.input-key"] == job["input_key"]

        # a damaged dependency in the registry is refused by the digest check, not built with
        (job_dir / "deps").rename(tmp_path / "old-deps")
        spec = JobSpec.from_json(json.loads(config_map["data"]["job.json"]))
        wrong = spec.inputs[0].digest.removeprefix("sha256:")
        fetch = (spec_dir / "fetch.sh").read_text()
        (spec_dir / "fetch.sh").write_text(fetch.replace(wrong, "0" * 64))
        refused = container("fetch.sh", registry=True)
        assert refused.returncode != 0 and "FAILED" in refused.stdout + refused.stderr
