"""`crossyard build` on a cluster of real SSH nodes (tests/helpers/sshcluster.py: two amd64
network namespaces and a riscv64 one whose sessions run in the Debian riscv64 root under
qemu-user) plus this machine, through the command line, with `[[nodes]]` written from the
harness's addresses and keys. Every artifact is held against a build of the same workspace on
this machine alone; faults are real (sshd killed, link cut, a host key that does not match, a
node that is not the arch it is declared)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, build_summary, require_tool, run_cli
from crossyard import pipeline
from crossyard.executors.ssh import KEEPALIVE_COUNT, KEEPALIVE_INTERVAL_S
from crossyard.nodes import read_states, state_path
from crossyard.platforms import Platform
from crossyard.project import Project, load_settings
from crossyard.store import Store
from crossyard.toolchains import ProbeCache, Prober, load_definitions
from crossyard.workspace import Workspace
from helpers.sshcluster import Cluster, Node, NodeSpec, ssh_cluster
from test_ssh_executor import fingerprint, require_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RISCV64 = Platform.parse("linux/riscv64")
SYNTHETIC = 6  # C recipes, each for riscv64 and arm64: a dozen jobs
SLOW = 4  # C recipes whose Makefile sleeps first, so a fault lands while a job runs
SLEEP = "7"  # seconds; also how the sleep is told apart from anything else on a node
TINY_GO = """package main

import (
\t"fmt"
\t"runtime"
)

func main() { fmt.Printf("tiny %s/%s\\n", runtime.GOOS, runtime.GOARCH) }
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_cluster()
    for tool in ("riscv64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "go", "make"):
        require_tool(tool, "run .ci/install.d/00-apt.sh")
    specs = [NodeSpec(name="amd-a"), NodeSpec(name="amd-b"), NodeSpec(name="rv", arch="linux/riscv64")]
    with ssh_cluster(tmp_path_factory.mktemp("cluster"), specs) as made:
        yield made


def ssh_table(cluster: Cluster, name: str, **extra: Any) -> str:
    """The node's [[nodes]] table as a user would write it (host key pinned)."""
    node = cluster.nodes[name]
    values: dict[str, Any] = {
        "name": name, "transport": "ssh", "address": node.address, "user": "root",
        "identity": str(cluster.identity), "host_key": node.host_key, "arch": node.arch.oci,
        "workdir": str(node.workdir), "roots": node.roots, **extra,
    }
    return "[[nodes]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()) + "\n"


LOCAL = '[[nodes]]\nname = "here"\ntransport = "local"\nmax_jobs = 1\n\n'


def catalog(root: Path, *, slow: bool = False, sleep: str = SLEEP) -> Path:
    """A workspace: with `slow`, SLOW C recipes that sleep in their Makefile; else the example
    catalog's hello-c, libgreet and hello-go, SYNTHETIC small C recipes, and `tiny-rv`, Go for
    riscv64 that may be built natively or emulated (never cross)."""
    (root / "recipes").mkdir(parents=True)
    src = root / "src"

    def recipe(name: str, text: str, files: dict[str, str]) -> None:
        (src / name).mkdir(parents=True)
        for file, content in files.items():
            (src / name / file).write_text(content)
        (root / "recipes" / f"{name}.toml").write_text(
            f'name = "{name}"\nversion = "1.0.0"\nsource_date_epoch = 1767225600\n{text}'
            f'\n[source]\npath = "../src/{name}"\n')

    if slow:
        for n in range(1, SLOW + 1):
            name = f"slow-{n}"
            recipe(name, 'kind = "c"\nplatforms = ["linux/riscv64"]\n[c]\nbuild = "make"\n', {
                "main.c": f'#include <stdio.h>\nint main(void) {{ puts("{name}"); return 0; }}\n',
                "Makefile": f"{name}: main.c\n\tsleep {sleep}\n\t$(CC) $(CFLAGS) -static -o $@ main.c\n"})
        (root / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64"]\njobs = 2\n')
        return root

    for name in ("libgreet", "hello-c", "hello-go"):
        shutil.copytree(REPO / "services" / name, src / name)
        text = (REPO / "recipes" / "services" / f"{name}.toml").read_text()
        (root / "recipes" / f"{name}.toml").write_text(text.replace("../../services/", "../src/"))
    for n in range(1, SYNTHETIC + 1):
        recipe(f"syn-{n}", 'kind = "c"\nplatforms = ["linux/riscv64", "linux/arm64"]\n'
                           '[c]\nsources = ["main.c"]\nstatic = true\n',
               {"main.c": f'#include <stdio.h>\nint main(void) {{ printf("synthetic %d\\n", {n}); return 0; }}\n'})
    recipe("tiny-rv", 'kind = "go"\nplatforms = ["linux/riscv64"]\nstrategies = ["native", "emulated"]\n'
                      '[test]\nrun = ["tiny-rv"]\nexpect = "tiny linux/riscv64"\n',
           {"go.mod": "module tiny\n\ngo 1.19\n", "main.go": TINY_GO})
    (root / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64", "linux/arm64"]\njobs = 2\n')
    return root


def with_nodes(ws: Path, nodes: str) -> Path:
    config = ws / "crossyard.toml"
    config.write_text(config.read_text() + "\n" + nodes)
    return ws


def outputs(summary: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {job["id"]: job["outputs"] for job in summary["jobs"]}


def stored(ws: Path, summary: dict[str, Any]) -> dict[str, list[tuple[str, str, int]]]:
    """Each job's files as the workspace's store holds them, under its input key: name, digest
    and mode (a binary fetched from a node is as executable as one built here)."""
    store = Store(Workspace(root=ws).store_dir)
    found = {}
    for job in summary["jobs"]:
        record = store.find(job["input_key"], verify=True)
        assert record is not None, job["id"]
        found[job["id"]] = sorted((f.name, f.digest, f.mode) for f in record.outputs)
    return found


def placed(summary: dict[str, Any]) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for job in summary["jobs"]:
        where.setdefault(job["node"], []).append(job["id"])
    return where


@pytest.fixture(scope="module")
def slow_baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The slow catalog built on this machine alone (its workspace and summary): what every
    cluster run must give."""
    ws = catalog(tmp_path_factory.mktemp("slow-local") / "ws", slow=True)
    summary = build_summary(ws)
    assert summary["counts"]["built"] == SLOW
    return ws, summary


def test_nodes_probe_reads_each_ssh_node_with_the_identities_planning_uses(
    cluster: Cluster, tmp_path: Path
) -> None:
    ws = with_nodes(catalog(tmp_path / "ws"), "".join(ssh_table(cluster, n) for n in cluster.nodes))
    started = time.monotonic()
    result = run_cli("-C", str(ws), "nodes", "probe", "--json")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row["state"] for row in json.loads(result.stdout)["nodes"]}
    assert {n: s["status"] for n, s in rows.items()} == {"amd-a": "ok", "amd-b": "ok", "rv": "ok"}
    here = Prober(load_definitions(None), cache=ProbeCache(None))

    def tools(name: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {(t["name"], t["platform"]): t for t in rows[name]["facts"]["toolchains"]}

    rv = rows["rv"]["facts"]
    assert (rv["uname_m"], rv["arch"]) == ("riscv64", "linux/riscv64") and rv["cores"] >= 1
    go = tools("rv")[("go", "linux/riscv64")]
    emulated_here = here.probe(next(d for d in here.definitions if d.name == "go-emulated-riscv64"), RISCV64)
    # the riscv64 root's Go, run natively there, is the release the emulated one has here
    assert (go["strategy"], go["identity"], go["root"]) == ("native", emulated_here.identity, None)
    assert not any(t["kind"] == "c" for t in rv["toolchains"])  # no gcc in that root

    amd = tools("amd-a")
    for name, platform in (("gcc", "linux/riscv64"), ("go", "linux/arm64"), ("go-trixie", "linux/riscv64")):
        local = here.probe(next(d for d in here.definitions if d.name == name), Platform.parse(platform))
        assert amd[(name, platform)]["identity"] == local.identity
        assert amd[(name, platform)]["strategy"] == "cross"
    assert amd[("go-trixie", "linux/riscv64")]["root"] == f"{cluster.nodes['amd-a'].roots}/go-trixie-amd64"
    assert amd[("go-emulated-riscv64", "linux/riscv64")]["strategy"] == "emulated"
    kept = read_states(state_path(Workspace(root=ws)))
    assert kept["rv"].facts is not None and kept["rv"].facts.uname_m == "riscv64"
    print(f"\nprobed 3 ssh nodes in {took:.1f}s")


def test_a_build_spreads_over_the_cluster_and_gives_the_local_digests(cluster: Cluster, tmp_path: Path) -> None:
    nodes = LOCAL + ssh_table(cluster, "amd-a", max_jobs=2) + ssh_table(cluster, "amd-b", max_jobs=2) \
        + ssh_table(cluster, "rv", max_jobs=1)
    ws = with_nodes(catalog(tmp_path / "cluster"), nodes)
    alone = catalog(tmp_path / "alone")

    # Each build with toolchain caches of its own, cold as the nodes' are: times to compare.
    started = time.monotonic()
    spread = build_summary(ws, env={"CROSSYARD_CACHE_HOME": str(tmp_path / "cache-cluster")})
    cluster_s = time.monotonic() - started
    started = time.monotonic()
    local = build_summary(alone, env={"CROSSYARD_CACHE_HOME": str(tmp_path / "cache-alone")})
    local_s = time.monotonic() - started

    jobs = {job["id"]: job for job in spread["jobs"]}
    assert len(jobs) == 2 * 3 + 2 * SYNTHETIC + 1 and spread["counts"]["built"] == len(jobs)
    assert spread["node_warnings"] == []
    assert all(job["attempts"] == 1 for job in jobs.values())
    # the Go job that may not be cross-compiled ran natively on the riscv64 board
    tiny = jobs["tiny-rv@linux/riscv64"]
    assert (tiny["node"], tiny["strategy"]) == ("ssh:rv", "native"), tiny
    assert {j["strategy"] for j in local["jobs"] if j["id"] == tiny["id"]} == {"emulated"}
    where = placed(spread)
    assert len(where) >= 2, where
    assert set(where) <= {"ssh:amd-a", "ssh:amd-b", "ssh:rv"} | {n for n in where if n.startswith("local:")}
    # every artifact is the bytes this machine alone builds, under the same input key
    assert outputs(spread) == outputs(local)
    assert stored(ws, spread) == stored(alone, local)
    for node in cluster.nodes.values():
        assert node.jobs() == [], node.name
    print(f"\ncluster build {cluster_s:.1f}s (crossyard: {spread['seconds']}s), local-only {local_s:.1f}s "
          f"(crossyard: {local['seconds']}s)")
    for node, ids in sorted(where.items()):
        print(f"  {node}: {len(ids)} jobs: {', '.join(sorted(ids))}")
    print(f"  {tiny['id']}: {tiny['strategy']} on {tiny['node']} in {tiny['seconds']}s; locally "
          f"emulated in {next(j['seconds'] for j in local['jobs'] if j['id'] == tiny['id'])}s")


def fault_build(cluster: Cluster, ws: Path, victim: str, fault: Any, *,
                env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """`crossyard build --json` on `ws`; `fault(node)` once the victim runs a job's sleep.
    Returns the build's result and the seconds from the fault to its end."""
    node = cluster.nodes[victim]
    process = subprocess.Popen([sys.executable, "-m", "crossyard.cli", "-C", str(ws), "build", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 120
        while not any(c.split()[-2:] == ["sleep", SLEEP] for c in node.processes().values()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no job ever ran on the victim"
            time.sleep(0.05)
        assert len(node.jobs()) == 1
        fault(node)
        hit = time.monotonic()
        stdout, stderr = process.communicate(timeout=300)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), time.monotonic() - hit
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def check_recovered(result: subprocess.CompletedProcess[str], ws: Path, victim: str,
                    baseline: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    assert summary["counts"]["built"] == SLOW
    moved = [j for j in summary["jobs"] if j["attempts"] == 2]
    assert moved, summary["jobs"]
    for job in moved:  # the job lost with the node ran to the end elsewhere
        assert job["node"] != f"ssh:{victim}" and job["status"] == "built", job
    assert outputs(summary) == outputs(baseline[1])
    assert stored(ws, summary) == stored(*baseline)
    return summary


def restart(node: Node) -> None:
    node.set_link(True)
    node.kill_all()
    node.start_sshd()


def test_killing_a_nodes_sshd_mid_build_moves_its_job_and_keeps_the_digests(
    cluster: Cluster, tmp_path: Path, slow_baseline: tuple[Path, dict[str, Any]]
) -> None:
    nodes = LOCAL + ssh_table(cluster, "amd-a", max_jobs=1) + ssh_table(cluster, "amd-b", max_jobs=1)
    ws = with_nodes(catalog(tmp_path / "ws", slow=True), nodes)
    started = time.monotonic()
    try:
        result, after = fault_build(cluster, ws, "amd-a", Node.kill_sshd)
    finally:
        restart(cluster.nodes["amd-a"])
    summary = check_recovered(result, ws, "amd-a", slow_baseline)
    print(f"\nsshd of amd-a killed mid-job: build done {after:.1f}s later ({time.monotonic() - started:.1f}s "
          f"in all); {[(j['id'], j['node'], j['attempts']) for j in summary['jobs']]}")


def test_cutting_a_nodes_link_mid_build_moves_its_job_and_keeps_the_digests(
    cluster: Cluster, tmp_path: Path, slow_baseline: tuple[Path, dict[str, Any]]
) -> None:
    nodes = LOCAL + ssh_table(cluster, "amd-a", max_jobs=1) + ssh_table(cluster, "amd-b", max_jobs=1)
    ws = with_nodes(catalog(tmp_path / "ws", slow=True), nodes)
    node = cluster.nodes["amd-b"]
    started = time.monotonic()
    try:
        # keepalives every second: a silent link is noticed after three unanswered ones
        result, after = fault_build(cluster, ws, "amd-b", lambda n: n.set_link(False),
                                    env={"CROSSYARD_SSH_KEEPALIVE": "1"})
    finally:
        restart(node)
    summary = check_recovered(result, ws, "amd-b", slow_baseline)
    # noticed by keepalives a second apart: with the default interval the loss alone takes this
    assert after < KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT, after
    print(f"\nlink of amd-b cut mid-job: build done {after:.1f}s later ({time.monotonic() - started:.1f}s "
          f"in all); {[(j['id'], j['node'], j['attempts']) for j in summary['jobs']]}")


def test_a_node_declared_riscv64_that_is_x86_64_is_refused_exit_2(cluster: Cluster, tmp_path: Path) -> None:
    ws = with_nodes(catalog(tmp_path / "ws", slow=True, sleep="1"),
                    LOCAL + ssh_table(cluster, "amd-a", arch="linux/riscv64", workdir=str(tmp_path / "never")))
    node = cluster.nodes["amd-a"]
    result = run_cli("-C", str(ws), "nodes", "probe")
    assert result.returncode == 2, result.stderr
    assert (f"node `amd-a` (ssh://root@{node.address}:22) is declared linux/riscv64 but probes as x86_64 "
            "(linux/amd64); correct its `arch`") in result.stderr
    assert "Traceback" not in result.stderr
    assert read_states(state_path(Workspace(root=ws)))["amd-a"].status == "refused"
    # a build stops before anything runs: the inventory is wrong
    build = run_cli("-C", str(ws), "build")
    assert build.returncode == 2 and "is declared linux/riscv64 but probes as x86_64" in build.stderr
    assert not (tmp_path / "never").exists()


def test_a_host_key_that_does_not_match_refuses_the_node_and_nothing_runs_there(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.nodes["amd-a"], cluster.nodes["amd-b"]
    never = tmp_path / "never"
    ws = with_nodes(catalog(tmp_path / "ws", slow=True, sleep="1"),
                    LOCAL + ssh_table(cluster, "amd-a", host_key=b.host_key, workdir=str(never)))
    accepted = (a.state / "sshd.log").read_text().count("Accepted publickey")
    expected = f"Expected {fingerprint(b.host_key, tmp_path)} (pinned host_key)"
    offered = f"offered {fingerprint(a.host_key, tmp_path)}"

    probed = run_cli("-C", str(ws), "nodes", "probe")
    assert probed.returncode == 2, probed.stderr
    assert "ssh node `amd-a`" in probed.stderr and "host key does not match" in probed.stderr
    assert expected in probed.stderr and offered in probed.stderr and "Traceback" not in probed.stderr

    result = run_cli("-C", str(ws), "build", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (warning,) = summary["node_warnings"]
    assert warning.startswith("node amd-a left out of this run: ssh node `amd-a`")
    assert expected in warning and offered in warning
    assert {job["node"].split(":")[0] for job in summary["jobs"]} == {"local"}
    assert not never.exists()  # no work directory, no job directory on it
    assert (a.state / "sshd.log").read_text().count("Accepted publickey") == accepted  # never logged in


def test_a_build_ends_its_ssh_connections(cluster: Cluster, tmp_path: Path) -> None:
    """In-process, as nox sessions and other tools call it: once `pipeline.build` returns, the
    SSH executors' connections and their event-loop threads are gone."""
    node = cluster.nodes["amd-a"]
    ws = with_nodes(catalog(tmp_path / "ws", slow=True, sleep="1"), ssh_table(cluster, "amd-a"))

    def sessions() -> int:  # sshd processes on the node besides the listener
        return sum(1 for pid, command in node.processes().items() if "sshd" in command) - 1

    workspace = Workspace.find(explicit=ws)
    result = pipeline.build(Project(workspace, load_settings(workspace, environ={})), names=["slow-1"])
    assert [(r.status, r.node) for r in result.records] == [("built", "ssh:amd-a")]
    assert not [t.name for t in threading.enumerate() if t.name == "ssh-amd-a"]
    deadline = time.monotonic() + 10
    while sessions() > 0:
        assert time.monotonic() < deadline, node.processes()
        time.sleep(0.1)


def test_a_node_whose_sshd_is_down_is_unreachable_exit_1_and_left_out_of_a_build(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = cluster.nodes["amd-b"]
    ws = with_nodes(catalog(tmp_path / "ws", slow=True, sleep="1"), LOCAL + ssh_table(cluster, "amd-b"))
    node.kill_sshd()
    try:
        probed = run_cli("-C", str(ws), "nodes", "probe")
        assert probed.returncode == 1, probed.stderr
        assert f"cannot reach ssh node `amd-b` (root@{node.address}:22)" in probed.stderr
        assert read_states(state_path(Workspace(root=ws)))["amd-b"].status == "unreachable"
        summary = build_summary(ws)
    finally:
        restart(node)
    (warning,) = summary["node_warnings"]
    assert warning.startswith("node amd-b left out of this run: cannot reach ssh node `amd-b`")
    assert summary["counts"]["built"] == SLOW
    assert {job["node"].split(":")[0] for job in summary["jobs"]} == {"local"}
