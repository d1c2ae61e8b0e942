"""A docker node in real builds, through the command line: a workspace whose `[[nodes]]` are this
machine (one slot) and a private dockerd (tests/helpers/dockerd.py) reached over TLS with the
workspace CA's certificates (`crossyard certs issue` for the engine, `crossyard certs client` for
crossyard), Go recipes pinned to the go-trixie toolchain (its amd64 root under
/var/cache/crossyard/roots). `crossyard nodes probe` lists what the engine can run; `crossyard
build` puts jobs there, and every artifact is the bytes a build on this machine alone makes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import build_summary, require, require_tool, run_cli
from crossyard.executors.container import LABEL_JOB, LABEL_ROOT
from crossyard.nodes import LABEL_PROBE
from crossyard.platforms import Platform
from crossyard.store import Store
from crossyard.toolchains import ProbeCache, Prober, load_definitions, roots_dir
from crossyard.workspace import Workspace
from helpers.dockerd import DockerdHandle, ServerTls, running_dockerd

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = "go-trixie-amd64"
HOST = Platform.host()
PLATFORMS = ("linux/riscv64", "linux/arm64")
RECIPES = ("go-a", "go-b", "go-c")
MAIN = """package main

import (
\t"fmt"
\t"runtime"
)

func main() {{ fmt.Printf("{name} %s/%s\\n", runtime.GOOS, runtime.GOARCH) }}
"""


def catalog(root: Path) -> Path:
    """RECIPES, Go for PLATFORMS, cross-compiled by go-trixie: the host's `go` (another release,
    no root: a container could not run it) is hidden, as test_portable_key does."""
    (root / "recipes").mkdir(parents=True)
    for name in RECIPES:
        src = root / "src" / name
        src.mkdir(parents=True)
        (src / "go.mod").write_text(f"module {name}\n\ngo 1.19\n")
        (src / "main.go").write_text(MAIN.format(name=name))
        (root / "recipes" / f"{name}.toml").write_text(
            f'name = "{name}"\nkind = "go"\nversion = "1.0.0"\nplatforms = {json.dumps(list(PLATFORMS))}\n'
            f'strategies = ["cross"]\nsource_date_epoch = 1767225600\n[source]\npath = "../src/{name}"\n')
    (root / "toolchains").mkdir()
    (root / "toolchains" / "go.toml").write_text('[go]\nkind = "go"\ncommand = "go-hidden-by-this-test"\n')
    (root / "crossyard.toml").write_text(f"[build]\nplatforms = {json.dumps(list(PLATFORMS))}\njobs = 1\n")
    return root


@dataclass(frozen=True, kw_only=True)
class Yard:
    ws: Path  # with [[nodes]]: this machine (1 slot) and the engine
    engine: DockerdHandle


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    require((roots_dir() / ROOT / "usr").is_dir(), f"the {ROOT} root is missing: run .ci/install.d/61-go-roots.sh")
    require_tool("bwrap", "apt-get install bubblewrap")
    require(HOST.oci == "linux/amd64", f"the {ROOT} root needs an amd64 engine; this machine is {HOST.oci}")
    ws = catalog(tmp_path_factory.mktemp("yard") / "ws")
    for args in (("certs", "init"), ("certs", "issue", "dockerd", "--san", "127.0.0.1"),
                 ("certs", "client", "builder", "-o", str(ws / "docker-client"))):
        result = run_cli("-C", str(ws), *args)
        assert result.returncode == 0, result.stderr
    pki = ws / ".crossyard" / "pki"
    served = ServerTls(ca=pki / "ca" / "bundle.crt", cert=pki / "dockerd" / "tls.crt", key=pki / "dockerd" / "tls.key")
    with running_dockerd(served) as engine:
        config = ws / "crossyard.toml"
        config.write_text(config.read_text() + (
            '\n[[nodes]]\nname = "here"\ntransport = "local"\nmax_jobs = 1\n\n'
            f'[[nodes]]\nname = "engine"\ntransport = "docker"\naddress = "{engine.tls_host}"\n'
            f'cert_path = "docker-client"\narch = "{HOST.oci}"\nmax_jobs = 2\n'))
        yield Yard(ws=ws, engine=engine)


def probed(ws: Path, env: dict[str, str] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The engine node's toolchains from `crossyard nodes probe engine --json`, by name and platform."""
    result = run_cli("-C", str(ws), "nodes", "probe", "engine", "--json", env=env)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["nodes"]
    assert row["state"]["status"] == "ok", row
    tools = row["state"]["facts"]["toolchains"]
    found = {(t["name"], t["platform"]): t for t in tools}
    assert len(found) == len(tools)
    return found


def local_identity(ws: Path, name: str, platform: str) -> str:
    """What the plan keys a job of toolchain `name` with: this machine's prober's identity."""
    here = Prober(load_definitions(ws / "toolchains"), cache=ProbeCache(None))
    target = here.probe(next(d for d in here.definitions if d.name == name), Platform.parse(platform))
    assert target.available, target.reason
    return target.identity


def containers(engine: DockerdHandle, label: str) -> list[str]:
    return engine.docker("ps", "-a", "-q", "--filter", f"label={label}").stdout.split()


def stored(ws: Path, summary: dict[str, Any]) -> dict[str, list[tuple[str, str, int]]]:
    """Each job's files as the workspace's store holds them under its input key (name, digest,
    mode: a binary fetched from the engine is as executable as one built here)."""
    store = Store(Workspace(root=ws).store_dir)
    found = {}
    for job in summary["jobs"]:
        record = store.find(job["input_key"], verify=True)
        assert record is not None, job["id"]
        found[job["id"]] = sorted((f.name, f.digest, f.mode) for f in record.outputs)
    return found


def test_nodes_probe_lists_the_rooted_toolchains_of_the_engines_arch(yard: Yard) -> None:
    started = time.monotonic()
    tools = probed(yard.ws)
    took = time.monotonic() - started
    for platform in (*PLATFORMS, HOST.oci):
        go = tools[("go-trixie", platform)]
        strategy = "native" if platform == HOST.oci else "cross"
        assert (go["kind"], go["strategy"], go["root"]) == ("go", strategy, str(roots_dir() / ROOT))
        assert go["identity"] == local_identity(yard.ws, "go-trixie", platform)
    # Host toolchains (gcc, the host's go, qemu-user) never; nor a root of another arch (riscv64 Go).
    definitions = {d.name: d for d in load_definitions(yard.ws / "toolchains")}
    assert {name for name, _ in tools} <= {n for n, d in definitions.items() if d.root is not None}
    assert not [key for key in tools if key[0] == "go-emulated-riscv64"]
    assert containers(yard.engine, LABEL_PROBE) == []
    listed = sorted(f"{n} {p} {t['strategy']}" for (n, p), t in tools.items())
    print(f"\nprobed the engine in {took:.1f}s: {listed}")


def test_a_build_runs_go_jobs_on_the_docker_node_with_the_local_digests(yard: Yard, tmp_path: Path) -> None:
    started = time.monotonic()
    spread = build_summary(yard.ws)
    spread_s = time.monotonic() - started
    alone = catalog(tmp_path / "alone")
    started = time.monotonic()
    local = build_summary(alone)
    local_s = time.monotonic() - started

    jobs = {job["id"]: job for job in spread["jobs"]}
    assert len(jobs) == len(RECIPES) * len(PLATFORMS) and spread["counts"]["built"] == len(jobs)
    assert spread["node_warnings"] == []
    on_engine = [j for j in jobs.values() if j["node"] == "docker:engine"]
    assert on_engine, [(j["id"], j["node"]) for j in jobs.values()]
    assert {j["node"] for j in jobs.values()} <= {"docker:engine"} | {
        j["node"] for j in jobs.values() if j["node"].startswith("local:")}
    for job in on_engine:
        assert (job["strategy"], job["toolchain"], job["attempts"]) == (
            "cross", local_identity(yard.ws, "go-trixie", job["platform"]), 1), job
    # the same keys and the same bytes as this machine alone builds
    assert {j["id"]: (j["input_key"], j["outputs"]) for j in spread["jobs"]} == \
        {j["id"]: (j["input_key"], j["outputs"]) for j in local["jobs"]}
    assert stored(yard.ws, spread) == stored(alone, local)
    assert containers(yard.engine, LABEL_JOB) == []
    print(f"\ncluster build {spread_s:.1f}s (crossyard: {spread['seconds']}s), local-only {local_s:.1f}s "
          f"(crossyard: {local['seconds']}s); on the engine: {[(j['id'], j['seconds']) for j in on_engine]}")
    for job in on_engine:  # whether it imported the root, found it there, or waited for the import
        print(" ", job["id"], *(line for line in Path(job["log"]).read_text().splitlines()
                                if line.startswith(("# toolchain root", "# exit"))))

    # The engine now holds the root's image: a machine without the root prepared still finds
    # go-trixie there, probed in a container of that image, with the identity the plan keys with.
    (image,) = yard.engine.docker("images", "-q", "--filter", f"label={LABEL_ROOT}={ROOT}").stdout.split()
    empty = tmp_path / "no-roots"
    empty.mkdir()
    tools = probed(yard.ws, env={"CROSSYARD_ROOTS": str(empty)})
    assert {n for n, _ in tools} == {"go-trixie"}  # rust-trixie is prepared here, not there
    for platform in (*PLATFORMS, HOST.oci):
        go = tools[("go-trixie", platform)]
        assert (go["identity"], go["root"]) == (local_identity(yard.ws, "go-trixie", platform), str(empty / ROOT))
    assert containers(yard.engine, LABEL_PROBE) == []
    print(f"engine-only probe of image {image}: {sorted(tools)}")
