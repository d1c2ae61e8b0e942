"""`dockerfile` recipes built through BuildKit by `crossyard build`: the buildkitd the shared
fixture starts (amd64, as root, OCI worker), reached through BUILDKIT_HOST or a `[[nodes]]
transport = "buildkit"` entry over TCP with mutual TLS. The example workspace examples/dockerfile
(hello-go cross-built by crossyard, COPYed FROM scratch, a RUN step that runs it) for riscv64 and
arm64: one job per platform on buildkitd, the index assembled by crossyard, reproducible from
clean workspaces and a pruned daemon; `toolchains = ["docker"]` keeps the legacy builder. A
recipe whose artifacts come through BuildKit's named context builds its platforms in one solve."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import binfmt_registered, build_summary, require, require_tool, run_cli
from crossyard.annotations import ANNOTATION_INPUT_KEY, ANNOTATION_REPRODUCIBLE
from crossyard.buildkit.client import Client
from crossyard.lock import read_lock
from crossyard.oci.layout import OciLayout
from crossyard.platforms import ARM64, RISCV64
from helpers import dockerd
from helpers.buildkit_fixtures import Built, Daemon, answers
from helpers.dockerd import DockerdHandle, copy_example
from helpers.processes import stop, wait_started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

docker_engine = dockerd.docker_engine
PLATFORMS = (RISCV64, ARM64)
RECIPE = "hello-web"


def workspace(root: Path, built: Built) -> Path:
    """A fresh copy of examples/dockerfile, BuildKit's compiled API taken from the fixture's
    workspace (compiling it needs the Debian mirror, which one test run fetches once)."""
    for arch in ("riscv64", "aarch64"):
        require(binfmt_registered(arch), f"qemu-{arch} binfmt is not registered: run .ci/install.d/10-binfmt.sh")
    require_tool("go", "run .ci/install.d/00-apt.sh")
    ws = copy_example(root)
    shutil.copytree(built.ws.cache_dir / "buildkit-api", ws / ".crossyard" / "cache" / "buildkit-api")
    return ws


def on(daemon: Daemon) -> dict[str, str]:
    return {"BUILDKIT_HOST": daemon.address}


def jobs_of(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["id"]: j for j in summary["jobs"]}


def image_of(summary: dict[str, Any]) -> dict[str, Any]:
    [image] = [i for i in summary["images"] if i["recipe"] == RECIPE]
    return image


def set_toolchains(ws: Path, names: str | None) -> None:
    path = ws / "recipes" / f"{RECIPE}.toml"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("toolchains")]
    at = lines.index('depends = ["hello-go"]') + 1
    if names is not None:
        lines.insert(at, f"toolchains = {names}")
    path.write_text("\n".join(lines) + "\n")


def test_buildkit_image_is_reproducible_from_clean_workspaces(daemon: Daemon, built: Built, tmp_path: Path) -> None:
    first_ws = workspace(tmp_path / "a", built)
    first = build_summary(first_ws, env=on(daemon))
    jobs = jobs_of(first)
    store = OciLayout(first_ws / ".crossyard" / "store")
    for platform in PLATFORMS:
        job = jobs[f"{RECIPE}@{platform.oci}"]
        assert job["status"] == "built"
        assert job["toolchain"].startswith("buildkit v0.13.2 ")
        assert job["node"] == f"buildkit:{daemon.address}"
        assert job["strategy"] == "emulated"  # the amd64 daemon runs RUN under binfmt
        manifest = json.loads(store.read_blob(job["outputs"]["image"]))
        notes = manifest["annotations"]
        assert notes[ANNOTATION_REPRODUCIBLE] == "true" and notes[ANNOTATION_INPUT_KEY] == job["input_key"]
        config = json.loads(store.read_blob(manifest["config"]["digest"]))
        assert (config["os"], config["architecture"]) == ("linux", platform.architecture)
        # The frontend set TARGETPLATFORM itself; the recipe's build arg reached it.
        assert config["config"]["Labels"]["dev.crossyard.example.platform"] == platform.oci
        assert config["config"]["Labels"]["org.example.team"] == "edge"
        assert config["created"] == "2026-01-01T00:00:00Z"  # SOURCE_DATE_EPOCH, not the build time
        # The COPY layer holds exactly the binary crossyard cross-built for that platform.
        raw = gzip.decompress(store.read_blob(manifest["layers"][0]["digest"]))
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.getmember("usr/local/bin/hello-go")
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
        assert member.mtime == 1767225600 and member.mode & 0o777 == 0o755
        assert "sha256:" + hashlib.sha256(data).hexdigest() == jobs[f"hello-go@{platform.oci}"]["outputs"]["hello-go"]
        log = Path(job["log"]).read_text()
        assert f"hello from hello-go 0.1.0 on {platform.oci}" in log  # the RUN step ran, for that platform
        assert any(line.startswith("#") and "RUN" in line and line.endswith(" done") for line in log.splitlines())
    image = image_of(first)
    assert image["reproducible"] is True
    locked = read_lock(first_ws / "crossyard.lock")
    assert locked.images[f"{RECIPE}:0.1.0"].reproducible
    assert all(locked.entries[f"{RECIPE}@{p.oci}"].reproducible for p in PLATFORMS)
    assert "buildkit" in locked.images[f"{RECIPE}:0.1.0"].platforms[0].layers[0].compressor

    # Same workspace again: cached by input key, nothing sent to buildkitd.
    again = build_summary(first_ws, env=on(daemon))
    assert {j["status"] for j in again["jobs"]} == {"cached"}
    assert image_of(again)["digest"] == image["digest"]

    # Another clean workspace, buildkitd's cache pruned: the same bytes.
    subprocess.run([str(daemon.buildctl), "--addr", daemon.address, "prune", "--all"], check=True,
                   capture_output=True, timeout=120)
    second_ws = workspace(tmp_path / "b", built)
    second = build_summary(second_ws, env=on(daemon))
    assert {j["status"] for j in second["jobs"]} == {"built"}
    assert image_of(second)["digest"] == image["digest"]
    assert image_of(second)["manifests"] == image["manifests"]
    checked = build_summary(second_ws, "--locked", env=on(daemon))
    assert checked["ok"] and not checked["drift"]


NAMED = "hello-named"
NAMED_RECIPE = """name = "hello-named"
kind = "dockerfile"
version = "0.1.0"
platforms = ["linux/riscv64", "linux/arm64"]
depends = ["hello-go"]
source_date_epoch = 1767225600

[source]
path = "../docker/hello-named"

[dockerfile]
artifacts = "named-context"
"""
# Each platform's hello-go through BuildKit's named context `artifacts` (one per platform), not
# the build context (one for every platform of a solve).
NAMED_DOCKERFILE = """FROM scratch
COPY --from=artifacts hello-go/hello-go /usr/local/bin/hello-go
RUN ["/usr/local/bin/hello-go"]
ENTRYPOINT ["/usr/local/bin/hello-go"]
"""


def with_named_recipe(ws: Path) -> Path:
    (ws / "recipes" / f"{NAMED}.toml").write_text(NAMED_RECIPE)
    (ws / "docker" / NAMED).mkdir(parents=True)
    (ws / "docker" / NAMED / "Dockerfile").write_text(NAMED_DOCKERFILE)
    return ws


def solve_of(job: dict[str, Any]) -> str:
    """The solve a BuildKit job's log names on its first line."""
    header = Path(job["log"]).read_text().splitlines()[0]
    return header.rpartition(", solve ")[2]


def test_a_recipes_platforms_share_one_solve_with_the_bytes_of_separate_ones(
        daemon: Daemon, built: Built, tmp_path: Path) -> None:
    """`artifacts = "named-context"`: both platforms of hello-named in one solve (buildkitd's own
    build history shows one build for linux/riscv64,linux/arm64, each platform's named context
    given), each platform's layer holding the hello-go built for it; hello-web, whose hello-go is
    in the build context, stays one solve per platform. A job built alone (another clean
    workspace, one platform) gives the manifest the shared solve gave it: same key, same bytes."""
    ws = with_named_recipe(workspace(tmp_path / "both", built))
    summary = build_summary(ws, env=on(daemon))
    jobs = jobs_of(summary)
    assert summary["ok"], summary
    named = [jobs[f"{NAMED}@{p.oci}"] for p in PLATFORMS]
    assert {j["status"] for j in named} == {"built"}
    [solve] = {solve_of(j) for j in named}
    per_platform = {solve_of(jobs[f"{RECIPE}@{p.oci}"]) for p in PLATFORMS}
    assert len(per_platform) == 2 and solve not in per_platform
    with Client(daemon.address, daemon.api) as client:
        [record] = client.history(solve)
        assert record.FrontendAttrs["platform"] == "linux/riscv64,linux/arm64"
        assert {k for k in record.FrontendAttrs if k.startswith("context:")} == {
            "context:artifacts::linux/riscv64", "context:artifacts::linux/arm64"}
        for web in per_platform:
            [alone] = client.history(web)
            assert "," not in alone.FrontendAttrs["platform"]
    store = OciLayout(ws / ".crossyard" / "store")
    for platform, job in zip(PLATFORMS, named, strict=True):
        manifest = json.loads(store.read_blob(job["outputs"]["image"]))
        assert manifest["annotations"][ANNOTATION_INPUT_KEY] == job["input_key"]
        config = json.loads(store.read_blob(manifest["config"]["digest"]))
        assert config["architecture"] == platform.architecture
        raw = gzip.decompress(store.read_blob(manifest["layers"][0]["digest"]))
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            data = tar.extractfile("usr/local/bin/hello-go").read()  # type: ignore[union-attr]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == jobs[f"hello-go@{platform.oci}"]["outputs"]["hello-go"]
        assert f"hello from hello-go 0.1.0 on {platform.oci}" in Path(job["log"]).read_text()
    [image] = [i for i in summary["images"] if i["recipe"] == NAMED]
    assert image["reproducible"] is True

    subprocess.run([str(daemon.buildctl), "--addr", daemon.address, "prune", "--all"], check=True,
                   capture_output=True, timeout=120)
    alone_ws = with_named_recipe(workspace(tmp_path / "alone", built))
    alone = jobs_of(build_summary(alone_ws, NAMED, "--platform", ARM64.oci, env=on(daemon)))
    arm64 = alone[f"{NAMED}@{ARM64.oci}"]
    assert f"{NAMED}@{RISCV64.oci}" not in alone
    assert Path(arm64["log"]).read_text().startswith(f"# {NAMED}@{ARM64.oci} on buildkitd")
    assert (arm64["input_key"], arm64["outputs"]) == (named[1]["input_key"], named[1]["outputs"])


def test_toolchains_docker_keeps_the_legacy_builder(daemon: Daemon, built: Built, tmp_path: Path,
                                                    docker_engine: DockerdHandle) -> None:
    ws = workspace(tmp_path, built)
    env = {**docker_engine.env, **on(daemon)}
    started = time.monotonic()
    kit = build_summary(ws, env=env)
    kit_seconds = time.monotonic() - started
    set_toolchains(ws, '["docker"]')
    started = time.monotonic()
    legacy = build_summary(ws, env=env)
    legacy_seconds = time.monotonic() - started
    kit_jobs, legacy_jobs = jobs_of(kit), jobs_of(legacy)
    for platform in PLATFORMS:
        job_id = f"{RECIPE}@{platform.oci}"
        assert kit_jobs[job_id]["toolchain"].startswith("buildkit ")
        assert legacy_jobs[job_id]["status"] == "built"
        assert legacy_jobs[job_id]["toolchain"].startswith("docker ")
        assert legacy_jobs[job_id]["node"].startswith("docker:")
        assert legacy_jobs[job_id]["input_key"] != kit_jobs[job_id]["input_key"]  # another builder, another key
        assert legacy_jobs[f"hello-go@{platform.oci}"]["status"] == "cached"
    assert image_of(legacy)["reproducible"] is False
    assert image_of(legacy)["digest"] != image_of(kit)["digest"]
    # and back: BuildKit's images are still in the store under their keys
    set_toolchains(ws, '["buildkit"]')
    back = build_summary(ws, env=env)
    assert {j["status"] for j in back["jobs"]} == {"cached"}
    assert image_of(back)["digest"] == image_of(kit)["digest"]
    job_seconds = {name: sum(j["seconds"] for j in s["jobs"] if j["id"].startswith(RECIPE))
                   for name, s in (("buildkit", kit), ("legacy", legacy))}
    print(f"\nhello-web riscv64+arm64, cold: BuildKit run {kit_seconds:.1f}s (its jobs {job_seconds['buildkit']:.1f}s, "
          f"hello-go built too), legacy run {legacy_seconds:.1f}s (its jobs {job_seconds['legacy']:.1f}s)")


def test_bad_buildkit_inputs_exit_2_with_one_line(built: Built, tmp_path: Path) -> None:
    ws = workspace(tmp_path, built)
    gone = f"unix://{tmp_path}/no-buildkitd.sock"
    cases = [
        ({"BUILDKIT_HOST": gone}, None, ["BUILDKIT_HOST", gone, "does not answer"]),
        ({"BUILDKIT_HOST": "tcp://127.0.0.1:1234"}, None, ["BUILDKIT_HOST", "mutual TLS", "[[nodes]]"]),
        ({"BUILDKIT_HOST": "http://buildkitd"}, None, ["BUILDKIT_HOST", "unix:///"]),
        ({"BUILDKIT_HOST": ""}, '["buildkit"]', [f"{RECIPE}.toml", "no buildkitd is configured", "BUILDKIT_HOST"]),
        ({"BUILDKIT_HOST": ""}, '["podman"]', [f"{RECIPE}.toml", "`podman`", "buildkit"]),
    ]
    for env, toolchains, words in cases:
        set_toolchains(ws, toolchains)
        result = run_cli("-C", str(ws), "build", env=env)
        assert result.returncode == 2, (env, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert all(w in lines[0] for w in words), lines[0]
    assert not (ws / "crossyard.lock").exists()  # nothing half-written
    set_toolchains(ws, None)
    # A named context is BuildKit's: no legacy fallback, and a recipe cannot ask for one.
    with_named_recipe(ws)
    result = run_cli("-C", str(ws), "build", NAMED, env={"BUILDKIT_HOST": ""})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert all(w in result.stderr for w in (f"{NAMED}.toml", 'artifacts = "named-context"', "BUILDKIT_HOST")), \
        result.stderr
    recipe = ws / "recipes" / f"{NAMED}.toml"
    recipe.write_text(NAMED_RECIPE.replace('depends = ["hello-go"]', 'depends = ["hello-go"]\ntoolchains = ["docker"]'))
    result = run_cli("-C", str(ws), "build", NAMED, env={"BUILDKIT_HOST": ""})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert all(w in result.stderr for w in (str(recipe), "`artifacts`", '["docker"]')), result.stderr
    recipe.write_text(NAMED_RECIPE.replace('"named-context"', '"named"'))
    result = run_cli("-C", str(ws), "build", NAMED, env={"BUILDKIT_HOST": ""})
    assert result.returncode == 2 and "named-context" in result.stderr and "Traceback" not in result.stderr
    recipe.unlink()
    # A build without Dockerfile jobs neither needs nor probes BUILDKIT_HOST.
    other = build_summary(ws, "hello-go", env={"BUILDKIT_HOST": gone})
    assert other["ok"] and other["node_warnings"] == [], other["node_warnings"]
    config = ws / "crossyard.toml"
    base = config.read_text()
    for node, words in [
        ('address = "tcp://127.0.0.1:1234"', ["[[nodes]] #1 (bk)", "`ca` is missing", "mutual TLS"]),
        (f'address = "unix://{tmp_path}/s.sock"\nca = "ca.pem"', ["`ca` applies to a tcp:// address only"]),
        ('address = "127.0.0.1:1234"', ["`address`", "unix:///"]),
    ]:
        config.write_text(f'{base}\n[[nodes]]\nname = "bk"\ntransport = "buildkit"\narch = "linux/amd64"\n{node}\n')
        result = run_cli("-C", str(ws), "build", env={"BUILDKIT_HOST": ""})
        assert result.returncode == 2, result.stderr
        assert str(config) in result.stderr and all(w in result.stderr for w in words), result.stderr


def test_a_buildkit_node_is_probed_builds_and_rebuilds(daemon: Daemon, built: Built, tmp_path: Path) -> None:
    """A `[[nodes]]` buildkitd over TCP with mutual TLS: `nodes probe` shows its identity and
    ListWorkers' platforms (its own first), `crossyard build` runs the Dockerfile jobs there, and
    `repro check` rebuilds one and finds the lock's manifest."""
    ws = workspace(tmp_path, built)
    tls = daemon.tls
    (ws / "crossyard.toml").write_text((ws / "crossyard.toml").read_text() + f"""
[[nodes]]
name = "here"
transport = "local"

[[nodes]]
name = "bk"
transport = "buildkit"
arch = "linux/amd64"
address = "{daemon.tcp}"
ca = "{tls.ca}"
cert = "{tls.cert}"
key = "{tls.key}"
""")
    env = {"BUILDKIT_HOST": ""}
    probed = run_cli("-C", str(ws), "nodes", "probe", "--json", env=env)
    assert probed.returncode == 0, probed.stderr
    rows = {row["name"]: row for row in json.loads(probed.stdout)["nodes"]}
    facts = rows["bk"]["state"]["facts"]
    assert facts["buildkit"].startswith("buildkit v0.13.2 ")
    assert facts["buildkit_platforms"][0] == "linux/amd64"
    assert {"linux/riscv64", "linux/arm64"} <= set(facts["buildkit_platforms"])
    summary = build_summary(ws, env=env)
    for platform in PLATFORMS:
        job = jobs_of(summary)[f"{RECIPE}@{platform.oci}"]
        assert job["node"] == f"buildkit:{daemon.tcp}" and job["strategy"] == "emulated"
        assert jobs_of(summary)[f"hello-go@{platform.oci}"]["node"].startswith("local:")
    assert image_of(summary)["reproducible"] is True

    # `repro check`: the control on one buildkitd, `node` on the other (the same daemon over its
    # unix socket, BUILDKIT_HOST), both held against the lock: one manifest.
    result = run_cli("-C", str(ws), "repro", "check", "--json", RECIPE, "-p", RISCV64.oci, "--vary", "node",
                     "--against-lock", env=on(daemon))
    assert result.returncode == 0, result.stderr
    [row] = [r for r in json.loads(result.stdout)["rows"]
             if r["id"] == f"{RECIPE}@{RISCV64.oci}" and r["kind"] == "artifact"]
    cells = {c["variation"]: c for c in row["cells"]}
    assert (row["control"]["status"], cells["node"]["state"], cells["lock"]["state"]) == ("built", "identical",
                                                                                        "identical"), row
    assert row["control"]["outputs"] == {"image": jobs_of(summary)[f"{RECIPE}@{RISCV64.oci}"]["outputs"]["image"]}
    assert {row["control"]["node"], cells["node"]["node"]} == {f"buildkit:{daemon.tcp}", f"buildkit:{daemon.address}"}


def test_foreign_platform_is_refused_when_buildkit_does_not_list_it(daemon: Daemon, built: Built,
                                                                    tmp_path: Path) -> None:
    """Placement holds a job to a buildkitd whose workers build its platform: a recipe for a
    platform buildkitd lacks (none here lists one crossyard does not know, so: `strategies =
    ["native"]`, which an amd64 daemon cannot give riscv64) is refused before anything runs."""
    ws = workspace(tmp_path, built)
    set_toolchains(ws, '["buildkit"]')
    path = ws / "recipes" / f"{RECIPE}.toml"
    path.write_text(path.read_text().replace('toolchains = ["buildkit"]',
                                             'toolchains = ["buildkit"]\nstrategies = ["native"]'))
    result = run_cli("-C", str(ws), "build", env=on(daemon))
    assert result.returncode == 2, result.stderr
    assert f"{RECIPE}.toml" in result.stderr and "emulated" in result.stderr, result.stderr


def test_a_riscv64_buildkitd_under_qemu_builds_riscv64_natively(daemon: Daemon, built: Built,
                                                                 tmp_path: Path) -> None:
    """The riscv64 buildkitd crossyard built, run here under qemu-user (it execs this machine's
    runc), is a riscv64 node: the riscv64 job goes there (strategy native: RUN runs as on a
    riscv64 board), the arm64 one to the amd64 daemon (BUILDKIT_HOST, emulated). Native and
    emulated share the key and give the same bytes (a workspace with the amd64 daemon alone)."""
    require(binfmt_registered("riscv64"), "qemu-riscv64 binfmt is not registered")
    tmp = tmp_path / "rv"
    tmp.mkdir()
    address = f"unix://{tmp}/buildkitd.sock"
    log = tmp / "buildkitd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            # riscv64 only: through binfmt it could emulate arm64 too, and the placer may then
            # give it the arm64 job and this riscv64 one to the amd64 daemon (seen once)
            [str(built.binary("buildkitd", RISCV64, tmp)), "--root", str(tmp / "root"), "--addr", address,
             "--oci-worker=true", "--oci-worker-platform", RISCV64.oci, "--containerd-worker=false"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_started(process, lambda: answers(daemon.buildctl, address), what="riscv64 buildkitd",
                     log=lambda: log.read_text(errors="replace"), timeout=240, interval=1)
        ws = workspace(tmp_path / "native", built)
        (ws / "crossyard.toml").write_text((ws / "crossyard.toml").read_text() + f"""
[[nodes]]
name = "here"
transport = "local"

[[nodes]]
name = "rv"
transport = "buildkit"
arch = "linux/riscv64"
address = "{address}"
""")
        summary = build_summary(ws, env=on(daemon))
    finally:
        stop(process)
    assert not summary["node_warnings"], summary["node_warnings"]  # the riscv64 daemon took part
    jobs = jobs_of(summary)
    native, emulated = jobs[f"{RECIPE}@{RISCV64.oci}"], jobs[f"{RECIPE}@{ARM64.oci}"]
    assert (native["node"], native["strategy"]) == (f"buildkit:{address}", "native"), (
        native, log.read_text(errors="replace")[-3000:])  # once seen on the amd64 daemon: why, if again
    assert (emulated["node"], emulated["strategy"]) == (f"buildkit:{daemon.address}", "emulated")
    assert "hello from hello-go 0.1.0 on linux/riscv64" in Path(native["log"]).read_text()
    alone = build_summary(workspace(tmp_path / "emulated", built), env=on(daemon))
    assert jobs_of(alone)[f"{RECIPE}@{RISCV64.oci}"]["strategy"] == "emulated"
    assert jobs_of(alone)[f"{RECIPE}@{RISCV64.oci}"]["input_key"] == native["input_key"]
    assert image_of(alone)["manifests"] == image_of(summary)["manifests"]
    assert image_of(alone)["digest"] == image_of(summary)["digest"]
