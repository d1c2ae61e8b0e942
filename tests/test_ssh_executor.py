"""The SSH executor against a cluster of real sshd nodes in network namespaces
(tests/helpers/sshcluster.py): two amd64 nodes and a riscv64 one whose sessions run in the Debian
riscv64 root under qemu-user. Real cross gcc and Go; faults made for real (sshd killed, link
cut, a node that misreports digests)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import REPO, binfmt_registered, require, require_tool
from crossyard.errors import BuildError, ConfigurationError, IntegrityError, NodeLost
from crossyard.executors.local import LocalExecutor
from crossyard.executors.shipping import root_archive, source_archive
from crossyard.executors.ssh import (
    FACT_REUSED,
    FACT_ROOT_SECONDS,
    FACT_ROOT_SENT,
    FACT_SENT,
    SshExecutor,
    probe,
)
from crossyard.hashing import sha256_file
from crossyard.jobspec import JobSpec, Step, ToolchainRequirement
from crossyard.platforms import Platform
from crossyard.project import Project, load_settings
from crossyard.scheduler import Scheduler, StoreInputs
from crossyard.toolchains import roots_dir
from crossyard.workspace import Workspace
from helpers.jobs import Background, TreeInputs, in_background, wait_for_text
from helpers.sshcluster import Cluster, NodeSpec, alive, ssh_cluster

pytestmark = [pytest.mark.integration]

HINT = "run .ci/install.d/21-ssh.sh (openssh-server, iproute2)"
LOST_PROMPTLY_S = 5.0
STARTED = "\nstarted\n"  # the step's output; the log's `$ sh -c echo started…` line is not it


def require_cluster() -> None:
    for tool in ("sshd", "ssh-keygen", "ip"):
        require_tool(tool, HINT)
    require_tool("bwrap", "apt-get install bubblewrap")
    require(os.geteuid() == 0, "the test cluster needs root (network namespaces, sshd)")
    require((roots_dir() / "go-trixie-riscv64" / "usr").is_dir(),
            "the go-trixie-riscv64 root is missing: run .ci/install.d/61-go-roots.sh")
    require(binfmt_registered("riscv64"), "binfmt has no qemu-riscv64 entry: run .ci/install.d/10-binfmt.sh")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_cluster()
    specs = [NodeSpec(name="amd-a"), NodeSpec(name="amd-b"), NodeSpec(name="rv", arch="linux/riscv64"),
             NodeSpec(name="amd-10", max_sessions=10)]  # sshd's default MaxSessions
    with ssh_cluster(tmp_path_factory.mktemp("cluster"), specs) as made:
        yield made


@dataclass(frozen=True, kw_only=True)
class CJob:
    spec: JobSpec
    inputs: StoreInputs
    digests: dict[str, str]  # what the local executor built


@pytest.fixture(scope="module")
def c_job(tmp_path_factory: pytest.TempPathFactory) -> CJob:
    """hello-c for riscv64, its libgreet dependency built here first (as tests/test_jobspec.py)."""
    require_tool("riscv64-linux-gnu-gcc", "apt-get install gcc-riscv64-linux-gnu")
    tmp = tmp_path_factory.mktemp("cjob")
    ws = tmp / "ws"
    (ws / "recipes").mkdir(parents=True)
    for name in ("libgreet", "hello-c"):
        shutil.copytree(REPO / "services" / name, ws / "src" / name)
        text = (REPO / "recipes" / "services" / f"{name}.toml").read_text()
        (ws / "recipes" / f"{name}.toml").write_text(text.replace("../../services/", "../src/"))
    (ws / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64"]\n')
    workspace = Workspace.find(explicit=ws)
    project = Project(workspace, load_settings(workspace, environ={}))
    graph = project.graph()
    report = Scheduler(store=project.store, resolver=project.resolver,
                       executors=[LocalExecutor(cache_root=tmp / "cache")],
                       logs_dir=tmp / "logs", jobs=1).run(graph)
    assert report.ok, [r.error for r in report.records]
    records = {r.id: r for r in report.records}
    app = records["hello-c@linux/riscv64"]
    job = graph.jobs["hello-c@linux/riscv64"]
    spec = job.spec(app.input_key, [records["libgreet@linux/riscv64"]])
    return CJob(spec=spec, inputs=StoreInputs(project.store, {spec.source: project.resolver.resolve(job.recipe)}),
                digests=dict(app.digests))


def shell_job(tmp_path: Path, script: str, *, text: str = "input\n",
              platform: str = "linux/amd64") -> tuple[JobSpec, TreeInputs]:
    """A job of one `sh -c SCRIPT` step in {src} (one file, `text`), output `x` at {out}/x."""
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "input.txt").write_text(text)
    inputs = TreeInputs(tree)
    spec = JobSpec(id=f"shell@{platform}", input_key="sha256:" + "0" * 64, platform=Platform.parse(platform),
                   source=inputs.resolved.digest, inputs=(),
                   toolchain=ToolchainRequirement(name="sh", identity="sh", strategy="native"),
                   source_date_epoch=0, steps=(Step(argv=("/bin/sh", "-c", script), cwd="{src}"),),
                   outputs={"x": "{out}/x"})
    return spec, inputs


def fingerprint(public_key_line: str, tmp_path: Path) -> str:
    """The key's SHA256 fingerprint as OpenSSH prints it (not asyncssh's own computation)."""
    path = tmp_path / f"key-{abs(hash(public_key_line))}.pub"
    path.write_text(public_key_line + "\n")
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[1]


def test_a_c_job_gives_the_local_digest_and_its_inputs_go_to_the_node_once(
    cluster: Cluster, c_job: CJob, tmp_path: Path
) -> None:
    node = cluster.nodes["amd-a"]
    shutil.rmtree(node.workdir / "cas", ignore_errors=True)  # whatever earlier tests shipped
    blobs = 1 + len({i.digest for i in c_job.spec.inputs})  # the source archive, libgreet's files
    with SshExecutor(cluster.ssh_node("amd-a"), scratch=tmp_path / "scratch") as executor:
        started = time.monotonic()
        with executor.run(c_job.spec, c_job.inputs, tmp_path / "first.log") as outputs:
            first_s = time.monotonic() - started
            assert dict(outputs.digests) == c_job.digests
            assert outputs.node == "ssh:amd-a"
            assert (outputs.facts[FACT_SENT], outputs.facts[FACT_REUSED]) == (str(blobs), "0")
            first = dict(outputs.facts)
            # the digest is this machine's own hash of the bytes it fetched
            assert {n: sha256_file(p) for n, p in outputs.files.items()} == c_job.digests
            # with the mode it was built with: SFTP alone would leave a binary 0644
            assert {n: p.stat().st_mode & 0o777 for n, p in outputs.files.items()} == {"hello-c": 0o755}
        assert len(executor.sent) == blobs
        log = (tmp_path / "first.log").read_text()
        assert log.startswith("$ /usr/bin/riscv64-linux-gnu-gcc") and "# exit 0" in log
        assert f"{node.workdir}/jobs/job-" in log  # the node's paths put in for the placeholders
    # The node's content cache holds each blob under its own sha256; the job directory is gone.
    cas = node.workdir / "cas"
    assert sorted(p.name for p in cas.iterdir()) == sorted(executor.sent)
    for blob in cas.iterdir():
        assert sha256_file(blob) == f"sha256:{blob.name}"
    assert node.jobs() == []

    # Another executor (nothing remembered here) asks the node, which has every input already.
    with SshExecutor(cluster.ssh_node("amd-a"), scratch=tmp_path / "scratch2") as again:
        started = time.monotonic()
        with again.run(c_job.spec, c_job.inputs, tmp_path / "second.log") as outputs:
            second_s = time.monotonic() - started
            assert dict(outputs.digests) == c_job.digests
            assert (outputs.facts[FACT_SENT], outputs.facts[FACT_REUSED]) == ("0", str(blobs))
            second = dict(outputs.facts)
        assert again.sent == []
    print(f"\nfirst job: {first_s:.2f}s ({first}); second job, inputs reused: {second_s:.2f}s ({second})")


def test_a_damaged_blob_in_the_nodes_cache_is_node_lost_and_sent_again(
    cluster: Cluster, c_job: CJob, tmp_path: Path
) -> None:
    node = cluster.nodes["amd-a"]
    with SshExecutor(cluster.ssh_node("amd-a")) as executor, \
            executor.run(c_job.spec, c_job.inputs, tmp_path / "first.log"):
        pass
    made_here = io.BytesIO()  # the archive is the same bytes whoever makes it
    source_archive(c_job.inputs.source(c_job.spec.source), made_here)
    archive = hashlib.sha256(made_here.getvalue()).hexdigest()
    assert (node.workdir / "cas" / archive).is_file()
    (node.workdir / "cas" / archive).write_bytes(b"not a tar\n")  # a bad disk, a stray write
    with SshExecutor(cluster.ssh_node("amd-a")) as executor:
        with pytest.raises(NodeLost, match="cannot prepare a job directory on ssh node `amd-a`"), \
                executor.run(c_job.spec, c_job.inputs, tmp_path / "second.log"):
            pytest.fail("a job ran on a damaged source")
        assert not (node.workdir / "cas" / archive).exists() and node.jobs() == []
        # the next job sends it again and builds the same bytes
        with executor.run(c_job.spec, c_job.inputs, tmp_path / "third.log") as outputs:
            assert dict(outputs.digests) == c_job.digests
            assert outputs.facts[FACT_SENT] != "0" and archive in executor.sent


def test_a_host_key_that_does_not_match_refuses_the_node_and_runs_nothing(
    cluster: Cluster, c_job: CJob, tmp_path: Path
) -> None:
    a, b = cluster.nodes["amd-a"], cluster.nodes["amd-b"]
    accepted = (a.state / "sshd.log").read_text().count("Accepted publickey")
    workdir = tmp_path / "never-made"
    impostor = cluster.ssh_node("amd-a", host_key=b.host_key, workdir=str(workdir))
    with SshExecutor(impostor) as executor:
        with pytest.raises(ConfigurationError) as refused:  # noqa: SIM117
            with executor.run(c_job.spec, c_job.inputs, tmp_path / "x.log"):
                pytest.fail("a job ran on a node whose host key does not match")
        message = str(refused.value)
        assert "ssh node `amd-a`" in message and "host key does not match" in message
        assert f"Expected {fingerprint(b.host_key, tmp_path)} (pinned host_key)" in message
        assert f"offered {fingerprint(a.host_key, tmp_path)}" in message
        assert "Nothing was run there" in message
        # the scheduler asks `refuses` first: it is told the same, and nothing is tried again
        assert executor.refuses(c_job.spec) == message
    with pytest.raises(ConfigurationError, match="host key does not match"):
        probe(impostor)
    assert not workdir.exists()
    assert executor.sent == []
    assert (a.state / "sshd.log").read_text().count("Accepted publickey") == accepted  # never logged in

    # A known_hosts file works the same way: the right entry connects, a wrong one refuses.
    known = tmp_path / "known_hosts"
    known.write_text(f"{a.address} {b.host_key}\n")
    via_file = replace(cluster.ssh_node("amd-a"), host_key=None, known_hosts=known)
    with pytest.raises(ConfigurationError) as refused:
        probe(via_file)
    assert f"Expected {fingerprint(b.host_key, tmp_path)} ({known})" in str(refused.value)
    known.write_text(f"{a.address} {a.host_key}\n")
    assert probe(via_file).machine == "x86_64"
    with pytest.raises(ConfigurationError, match="neither a pinned host key nor a known_hosts file"):
        replace(via_file, known_hosts=None)


def test_killing_the_nodes_sshd_mid_job_is_node_lost_promptly(cluster: Cluster, tmp_path: Path) -> None:
    node = cluster.nodes["amd-b"]
    spec, inputs = shell_job(tmp_path, "echo started; sleep 3003; echo never > {out}/x")
    executor = SshExecutor(cluster.ssh_node("amd-b"))
    log = tmp_path / "job.log"
    try:
        job = in_background(executor, spec, inputs, log)
        wait_for_text(log, STARTED, job)  # streamed back while the step runs
        killed = time.monotonic()
        node.kill_sshd()
        job.thread.join(30)
        assert not job.thread.is_alive()
        error = job.outcome.get("error")
        assert isinstance(error, NodeLost), job.outcome
        assert "lost ssh node `amd-b`" in str(error) and "outputs" not in job.outcome
        assert job.outcome["ended"] - killed < LOST_PROMPTLY_S
        print(f"\nNodeLost {job.outcome['ended'] - killed:.2f}s after sshd was killed: {error}")
        # A node that is down is NodeLost at connect, too (the scheduler leaves it out).
        with pytest.raises(NodeLost, match="cannot reach ssh node `amd-b`"):
            probe(cluster.ssh_node("amd-b"), connect_timeout=5)
    finally:
        executor.close()
        node.kill_all()
        node.start_sshd()


def test_a_cut_link_mid_job_is_node_lost_within_the_keepalive_timeout(cluster: Cluster, tmp_path: Path) -> None:
    node = cluster.nodes["amd-b"]
    interval, count = 1.0, 2
    spec, inputs = shell_job(tmp_path, "echo started; sleep 3004; echo never > {out}/x")
    executor = SshExecutor(cluster.ssh_node("amd-b"), keepalive_interval=interval, keepalive_count=count,
                           connect_timeout=3)
    log = tmp_path / "job.log"
    try:
        job = in_background(executor, spec, inputs, log)
        wait_for_text(log, STARTED, job)
        cut = time.monotonic()
        node.set_link(False)
        job.thread.join(60)
        assert not job.thread.is_alive()
        error = job.outcome.get("error")
        assert isinstance(error, NodeLost), job.outcome
        assert "keepalive" in str(error) and "outputs" not in job.outcome
        waited = job.outcome["ended"] - cut
        assert waited < interval * (count + 2) + 1, waited
        print(f"\nNodeLost {waited:.2f}s after the link went down (keepalive {interval}s x {count}): {error}")
        # The link back, the same executor connects again.
        node.set_link(True)
        assert executor.probe().machine == "x86_64"
    finally:
        executor.close()
        node.set_link(True)
        node.kill_all()
        node.start_sshd()


@pytest.mark.parametrize("name", ["amd-a", "rv"])
def test_cancel_kills_the_remote_process_group_and_removes_the_job_dir(
    cluster: Cluster, tmp_path: Path, name: str
) -> None:
    node = cluster.nodes[name]
    # a child in the background too: the whole group must go, not only the step's shell
    spec, inputs = shell_job(tmp_path, "sleep 3005 & echo started; sleep 3006; wait", platform=str(node.arch))
    with SshExecutor(cluster.ssh_node(name), cancel_grace=3) as executor:
        log = tmp_path / "job.log"
        job = in_background(executor, spec, inputs, log)
        wait_for_text(log, STARTED, job)

        def sleeping() -> list[str]:
            # under qemu-user a riscv64 process's command line starts with the interpreter
            return [c for c in node.processes().values() if c.split()[-2:] in (["sleep", "3005"], ["sleep", "3006"])]

        deadline = time.monotonic() + 10
        while len(sleeping()) < 2:
            assert time.monotonic() < deadline, node.processes()
            time.sleep(0.05)
        assert len(node.jobs()) == 1
        cancelled = time.monotonic()
        executor.cancel()  # from this thread, while the job's thread waits on the node
        job.thread.join(30)
        error = job.outcome.get("error")
        assert isinstance(error, BuildError) and not isinstance(error, NodeLost), job.outcome
        assert "cancelled" in str(error)
        print(f"\ncancelled in {job.outcome['ended'] - cancelled:.2f}s")
        assert sleeping() == []
        assert node.jobs() == []
        # and it refuses to start more
        with pytest.raises(BuildError, match="cancelled"), executor.run(spec, inputs, tmp_path / "after.log"):
            pass


def test_a_failed_build_is_a_build_error_not_node_lost_and_leaves_nothing(cluster: Cluster, tmp_path: Path) -> None:
    """The node is fine, the build is not: BuildError with the log's tail (stderr included, in
    order), no retry-worthy NodeLost; outputs that are missing or lead out of the job directory
    are refused as the local executor refuses them; every job directory is removed."""
    node = cluster.nodes["amd-a"]
    cases = {
        "echo compiling; echo 'x.c:1: error: oops' >&2; exit 3": ("exited with status 3 on amd-a",
                                                                   "    x.c:1: error: oops"),  # the tail
        "echo done": ("the build succeeded but did not produce `x`",),
        "ln -s /etc/hostname {out}/x": ("is a symlink to /etc/hostname on amd-a, outside the job directory",),
    }
    with SshExecutor(cluster.ssh_node("amd-a")) as executor:
        for index, (script, expected) in enumerate(cases.items()):
            spec, inputs = shell_job(tmp_path, script)
            log = tmp_path / f"job{index}.log"
            with pytest.raises(BuildError) as caught, executor.run(spec, inputs, log):
                pytest.fail("a failed build yielded outputs")
            assert not isinstance(caught.value, NodeLost | IntegrityError)
            assert all(text in str(caught.value) for text in expected), str(caught.value)
            assert node.jobs() == []
    assert "compiling\nx.c:1: error: oops\n# exit 3" in (tmp_path / "job0.log").read_text()


def test_ctrl_c_where_run_was_called_stops_the_step_on_the_node(cluster: Cluster, tmp_path: Path) -> None:
    """Without the scheduler (which calls `cancel`): an interrupt in the thread that called `run`
    still kills the step's process group on the node and removes its job directory."""
    node = cluster.nodes["amd-a"]
    spec, inputs = shell_job(tmp_path, "echo started; sleep 3007")
    log = tmp_path / "job.log"

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 60
        while STARTED not in (log.read_text() if log.is_file() else "") and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGALRM)

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with SshExecutor(cluster.ssh_node("amd-a")) as executor:
            threading.Thread(target=press_ctrl_c, daemon=True).start()
            with pytest.raises(KeyboardInterrupt), executor.run(spec, inputs, log):
                pytest.fail("the job finished")
            deadline = time.monotonic() + 10
            while "sleep 3007" in node.processes().values() or node.jobs():
                assert time.monotonic() < deadline, (node.processes(), node.jobs())
                time.sleep(0.05)
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_a_bad_identity_is_a_configuration_error_naming_the_node(cluster: Cluster, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key"
    with pytest.raises(ConfigurationError, match=f"ssh node `amd-a`: cannot use identity file {missing}"):
        probe(cluster.ssh_node("amd-a", identity=missing))
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(ConfigurationError, match=r"ssh node `amd-a` \(root@.*\) did not accept the key"):
        probe(cluster.ssh_node("amd-a", identity=stranger))


def test_a_node_that_misreports_a_digest_is_an_integrity_error(cluster: Cluster, tmp_path: Path) -> None:
    spec, inputs = shell_job(tmp_path, "echo built > {out}/x")
    liar = cluster.ssh_node("amd-a", identity=cluster.liar_identity)
    with SshExecutor(liar) as executor, pytest.raises(IntegrityError) as caught:  # noqa: SIM117
        with executor.run(spec, inputs, tmp_path / "job.log"):
            pytest.fail("outputs whose reported digest is wrong reached the caller")
    assert "output `x` from ssh node `amd-a` hashes to sha256:" in str(caught.value)
    assert f"node reported sha256:{'0' * 64}" in str(caught.value)
    assert cluster.nodes["amd-a"].jobs() == []

    # An upload the node hashes wrong is not kept under the name it was sent as.
    cluster.lie_about_uploads.touch()
    spec, inputs = shell_job(tmp_path, "echo built > {out}/x", text="a source never shipped before\n")
    try:
        with SshExecutor(liar) as executor, pytest.raises(IntegrityError) as caught:  # noqa: SIM117
            with executor.run(spec, inputs, tmp_path / "job2.log"):
                pytest.fail("a job ran on inputs whose upload did not check out")
    finally:
        cluster.lie_about_uploads.unlink()
    sent = str(caught.value).split("sha256:")[1].split()[0]
    assert f"sha256:{sent} was sent and arrived as sha256:{'0' * 64}" in str(caught.value)
    cas = cluster.nodes["amd-a"].workdir / "cas"
    assert not (cas / sent).exists() and not list(cas.glob(".*.part"))
    assert cluster.nodes["amd-a"].jobs() == []


def test_refuses_what_the_node_lacks(cluster: Cluster, c_job: CJob, tmp_path: Path) -> None:
    with SshExecutor(cluster.ssh_node("rv")) as rv, SshExecutor(cluster.ssh_node("amd-a")) as amd, \
            SshExecutor(cluster.ssh_node("rv"), local_roots=tmp_path / "none") as bare:
        rooted = replace(c_job.spec, toolchain=replace(c_job.spec.toolchain, name="go-trixie", root="go-trixie-amd64",
                                                       root_platform="linux/amd64"))
        lacking = f"toolchain root {cluster.nodes['rv'].roots}/go-trixie-amd64 is not prepared on rv"
        assert rv.refuses(rooted) == (f"{lacking}; the one here is linux/amd64 and would need emulation on a "
                                      "linux/riscv64 node")
        assert bare.refuses(rooted) == (f"{lacking}, nor here to ship it from ({tmp_path}/none/go-trixie-amd64: "
                                        "`crossyard toolchains prepare go-trixie`)")
        assert amd.refuses(rooted) is None  # the amd64 nodes have the prepared roots
        native = replace(c_job.spec, toolchain=replace(c_job.spec.toolchain, strategy="native"))
        assert amd.refuses(native) == "a native build for linux/riscv64 needs a linux/riscv64 node; amd-a is linux/amd64"
        assert rv.refuses(native) is None
        dockerfile = JobSpec.from_json({**c_job.spec.to_json(), "docker": {
            "context": ".", "dockerfile": "Dockerfile", "build_args": {}, "target": None, "placements": []}})
        assert rv.refuses(dockerfile) == "a Dockerfile build needs a Docker engine"


@pytest.mark.slow
def test_the_riscv64_node_builds_go_natively_with_the_cross_digest(cluster: Cluster, tmp_path: Path) -> None:
    """uname -m says riscv64 on that node; the Go release of its root, run there natively, gives
    the bytes the same release gives cross-compiling here, and on an amd64 node in its root."""
    from test_portable_key import workspace

    found = probe(cluster.ssh_node("rv"), {"go": ["go", "version"]})
    assert (found.machine, found.platform) == ("riscv64", Platform.parse("linux/riscv64"))
    assert found.cores >= 1 and found.memory > 0 and not found.docker and found.roots == ()
    assert found.versions["go"] is not None and found.versions["go"].endswith(" linux/riscv64")

    ws = workspace(tmp_path / "cross", "cross")
    project = Project(Workspace.find(explicit=ws), load_settings(Workspace.find(explicit=ws), environ={}))
    graph = project.graph()
    (job,) = graph.jobs.values()
    cross = job.spec(job.input_key({}), [])
    assert (cross.toolchain.strategy, cross.toolchain.root) == ("cross", "go-trixie-amd64")
    assert cross.toolchain.identity.startswith("go1.24.") and cross.toolchain.identity in found.versions["go"]
    inputs = StoreInputs(project.store, {cross.source: project.resolver.resolve(job.recipe)})
    native = replace(cross, toolchain=replace(cross.toolchain, strategy="native", root=None, root_platform=None))

    times: dict[str, float] = {}
    digests: dict[str, dict[str, str]] = {}
    started = time.monotonic()
    with LocalExecutor(cache_root=tmp_path / "cache").run(cross, inputs, tmp_path / "local.log") as outputs:
        digests["local cross"] = dict(outputs.digests)
    times["local cross"] = time.monotonic() - started
    for name, spec in (("amd-a", cross), ("rv", native)):
        with SshExecutor(cluster.ssh_node(name)) as executor:
            assert executor.refuses(spec) is None
            started = time.monotonic()
            with executor.run(spec, inputs, tmp_path / f"{name}.log") as outputs:
                digests[f"{name} {spec.toolchain.strategy}"] = dict(outputs.digests)
                facts = dict(outputs.facts)
            times[f"{name} {spec.toolchain.strategy}"] = time.monotonic() - started
            print(f"\n{name}: {json.dumps(facts)}")
        assert cluster.nodes[name].jobs() == []
    print(f"times: { {k: round(v, 1) for k, v in times.items()} }\ndigests: {digests}")
    assert len({json.dumps(d, sort_keys=True) for d in digests.values()}) == 1, digests


@pytest.mark.slow
def test_a_node_without_the_root_gets_it_shipped_once_and_builds_the_local_digest(
    cluster: Cluster, tmp_path: Path
) -> None:
    """An amd64 node whose roots directory is empty: the go-trixie job's root goes there once,
    streamed into `tar -x` on the node and checked by digest; the next job (and the next
    executor) finds it; the build gives the local digest; the node's copy is the same root."""
    from test_portable_key import workspace

    root = "go-trixie-amd64"
    node = cluster.nodes["amd-a"]
    shipped = node.state / "shipped-roots"
    shutil.rmtree(shipped, ignore_errors=True)
    remote = cluster.ssh_node("amd-a", roots=str(shipped))
    ws = workspace(tmp_path / "cross", "cross")
    project = Project(Workspace.find(explicit=ws), load_settings(Workspace.find(explicit=ws), environ={}))
    (job,) = project.graph().jobs.values()
    spec = job.spec(job.input_key({}), [])
    assert spec.toolchain.root == root
    inputs = StoreInputs(project.store, {spec.source: project.resolver.resolve(job.recipe)})
    with LocalExecutor(cache_root=tmp_path / "cache").run(spec, inputs, tmp_path / "local.log") as outputs:
        local = dict(outputs.digests)
    archive = root_archive(roots_dir() / root)

    with SshExecutor(remote, scratch=tmp_path / "scratch") as executor:
        assert executor.refuses(spec) is None  # the node lacks the root; this machine can ship it
        started = time.monotonic()
        with executor.run(spec, inputs, tmp_path / "first.log") as outputs:
            first_s = time.monotonic() - started
            assert dict(outputs.digests) == local
            assert all(os.access(p, os.X_OK) for p in outputs.files.values())  # a binary stays one
            assert outputs.facts[FACT_ROOT_SENT] == str(archive.size)
            first = dict(outputs.facts)
        with executor.run(spec, inputs, tmp_path / "second.log") as outputs:
            assert dict(outputs.digests) == local
            assert outputs.facts[FACT_ROOT_SENT] == "0"
        assert executor.roots_sent == [archive.digest]
    with SshExecutor(remote, scratch=tmp_path / "scratch2") as again:  # nothing remembered here
        with again.run(spec, inputs, tmp_path / "third.log") as outputs:
            assert dict(outputs.digests) == local
            assert outputs.facts[FACT_ROOT_SENT] == "0"
        assert again.roots_sent == []
    assert sorted(p.name for p in shipped.iterdir()) == [f".{root}.digest", root]  # no half-unpacked copy
    assert (shipped / f".{root}.digest").read_text().strip() == archive.digest
    assert root_archive(shipped / root).digest == archive.digest  # the node's copy is the same root
    assert node.jobs() == []
    print(f"\nroot {root}: {archive.digest}, {archive.size} bytes, shipped in {first[FACT_ROOT_SECONDS]}s; "
          f"first job {first_s:.1f}s {first}; digests {local}")


def test_the_cluster_leaves_nothing_behind_even_when_a_test_fails(tmp_path: Path) -> None:
    """Namespaces, veths, the bridge and every process on the nodes (sshd, its sessions, what
    they started) are gone after the cluster's block, also when it ends with an exception."""
    require_cluster()
    with pytest.raises(RuntimeError, match="a failing test"):  # noqa: SIM117
        with ssh_cluster(tmp_path / "cluster", [NodeSpec(name="solo")]) as made:
            node = made.nodes["solo"]
            executor = SshExecutor(made.ssh_node("solo"))
            spec, inputs = shell_job(tmp_path, "echo started; sleep 3009")
            job = in_background(executor, spec, inputs, tmp_path / "job.log")
            wait_for_text(tmp_path / "job.log", STARTED, job)
            pids, namespace, link = node.pids(), node.namespace, node.link
            bridge = subprocess.run(["ip", "-o", "link", "show", "dev", link], capture_output=True,
                                    text=True).stdout.split(" master ")[1].split()[0]
            assert any(c.split()[-2:] == ["sleep", "3009"] for c in node.processes().values())
            raise RuntimeError("a failing test")
    executor.close()
    assert namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for device in (link, bridge):
        assert subprocess.run(["ip", "link", "show", "dev", device], capture_output=True).returncode != 0
    assert [p for p in pids if alive(p)] == []



def test_eight_jobs_at_once_stay_under_sshds_default_max_sessions(cluster: Cluster, tmp_path: Path) -> None:
    """A node with max_jobs=8 behind an sshd at its default MaxSessions (10): eight jobs hold a
    step's session each at the same time, SFTP and the short commands around them need more, and
    a cancel needs one to kill with. sshd refuses a session past the limit (`open failed`), which
    would be NodeLost. All eight run at once and build; then eight more are cancelled mid-step."""
    node = cluster.nodes["amd-10"]
    release = tmp_path / "release"
    jobs = 8

    def start(round_: str, index: int) -> tuple[Background, Path]:
        work = tmp_path / round_ / str(index)
        work.mkdir(parents=True)
        spec, inputs = shell_job(work, f"echo started; while [ ! -e {release} ]; do sleep 0.05; done; "
                                       f"cp input.txt {{out}}/x", text=f"job {round_} {index}\n")
        log = work / "job.log"
        return in_background(executor, replace(spec, id=f"shell-{index}@linux/amd64"), inputs, log), log

    with SshExecutor(cluster.ssh_node("amd-10"), cancel_grace=2) as executor:
        running = [start("built", i) for i in range(jobs)]
        for job, log in running:
            wait_for_text(log, STARTED, job)
        assert len(node.jobs()) == jobs  # all eight at once, none waiting for a session
        release.touch()
        for index, (job, _) in enumerate(running):
            job.thread.join(60)
            assert "error" not in job.outcome, job.outcome
            expected = hashlib.sha256(f"job built {index}\n".encode()).hexdigest()
            assert dict(job.outcome["outputs"].digests) == {"x": f"sha256:{expected}"}
        release.unlink()
        cancelled = [start("cancelled", i) for i in range(jobs)]
        for job, log in cancelled:
            wait_for_text(log, STARTED, job)
        executor.cancel()
        for job, _ in cancelled:
            job.thread.join(120)  # a loaded 2-core machine: the kill, then 8 cleanups
            error = job.outcome.get("error")
            assert isinstance(error, BuildError) and not isinstance(error, NodeLost), job.outcome
            assert "cancelled" in str(error)
    assert node.jobs() == []
    refused = [line for line in (node.state / "sshd.log").read_text().splitlines() if "MaxSessions" in line
               or "no more sessions" in line]
    assert refused == []
