"""The container executor against a real private dockerd (tests/helpers/dockerd.py) whose TLS is
crossyard's own: its server certificate and the client's come from the workspace CA. Real roots
(go-trixie-amd64 under /var/cache/crossyard/roots), real Go, real faults (a cancelled job, a
dockerd stopped mid-job, a client certificate from another CA)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from conftest import require, require_tool, run_cli
from crossyard.errors import BuildError, ConfigurationError, NodeLost
from crossyard.executors.container import (
    FACT_ROOT_IMAGE,
    FACT_ROOT_SENT,
    LABEL_DIGEST,
    LABEL_JOB,
    ContainerExecutor,
    DockerNode,
)
from crossyard.executors.local import LocalExecutor
from crossyard.executors.shipping import root_archive
from crossyard.hashing import sha256_file
from crossyard.jobspec import JobSpec, Step, ToolchainRequirement
from crossyard.platforms import Platform
from crossyard.project import Project, load_settings
from crossyard.scheduler import StoreInputs
from crossyard.toolchains import roots_dir
from crossyard.workspace import Workspace
from helpers.dockerd import DockerdHandle, ServerTls, running_dockerd
from helpers.jobs import TreeInputs, in_background, wait_for_text

pytestmark = [pytest.mark.integration]

ROOT = "go-trixie-amd64"
STARTED = "\nstarted\n"  # a step's output (the log's `$ /bin/sh -c echo started…` line is not it)


def require_root() -> Path:
    root = roots_dir() / ROOT
    require((root / "usr").is_dir(), f"the {ROOT} root is missing: run .ci/install.d/61-go-roots.sh")
    require_tool("bwrap", "apt-get install bubblewrap")
    return root


@dataclass(frozen=True, kw_only=True)
class Pki:
    workspace: Path
    client: Path  # ca.pem, cert.pem, key.pem from `crossyard certs client`


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A workspace CA, the engine's server certificate for 127.0.0.1 and a client certificate,
    all through the CLI as a user would make them."""
    ws = tmp_path_factory.mktemp("pki")
    for args in (("certs", "init"), ("certs", "issue", "dockerd", "--san", "127.0.0.1"),
                 ("certs", "client", "builder", "-o", str(ws / "client"))):
        result = run_cli("-C", str(ws), *args)
        assert result.returncode == 0, result.stderr
    return Pki(workspace=ws, client=ws / "client")


@pytest.fixture(scope="module")
def engine(pki: Pki) -> Iterator[DockerdHandle]:
    """A private dockerd whose TLS is the workspace CA's: its certificate, and clients' from it."""
    leaf = pki.workspace / ".crossyard" / "pki" / "dockerd"
    bundle = pki.workspace / ".crossyard" / "pki" / "ca" / "bundle.crt"
    with running_dockerd(ServerTls(ca=bundle, cert=leaf / "tls.crt", key=leaf / "tls.key")) as handle:
        yield handle


def tls_node(engine: DockerdHandle, pki: Pki) -> DockerNode:
    return DockerNode(name="engine", host=engine.tls_host, cert_path=pki.client)


@dataclass(frozen=True, kw_only=True)
class GoJob:
    spec: JobSpec
    inputs: StoreInputs
    digests: dict[str, str]  # what the local executor built
    seconds: float


@pytest.fixture(scope="module")
def go_job(tmp_path_factory: pytest.TempPathFactory) -> GoJob:
    """test_portable_key's Go recipe planned for riscv64 with the go-trixie toolchain (its amd64
    root), built here by the local executor."""
    from test_portable_key import workspace

    require_root()
    tmp = tmp_path_factory.mktemp("gojob")
    ws = workspace(tmp / "ws", "cross")
    project = Project(Workspace.find(explicit=ws), load_settings(Workspace.find(explicit=ws), environ={}))
    (job,) = project.graph().jobs.values()
    spec = job.spec(job.input_key({}), [])
    assert (spec.toolchain.name, spec.toolchain.root, spec.toolchain.strategy) == ("go-trixie", ROOT, "cross")
    inputs = StoreInputs(project.store, {spec.source: project.resolver.resolve(job.recipe)})
    started = time.monotonic()
    with LocalExecutor(cache_root=tmp / "cache").run(spec, inputs, tmp / "local.log") as outputs:
        digests = dict(outputs.digests)
    return GoJob(spec=spec, inputs=inputs, digests=digests, seconds=time.monotonic() - started)


def shell_job(tmp_path: Path, script: str) -> tuple[JobSpec, TreeInputs]:
    """One `/bin/sh -c SCRIPT` step of the go-trixie root in {src} (holding input.txt); output
    `x` at {out}/x."""
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "input.txt").write_text("input\n")
    inputs = TreeInputs(tree)
    spec = JobSpec(id="shell@linux/amd64", input_key="sha256:" + "0" * 64, platform=Platform.parse("linux/amd64"),
                   source=inputs.resolved.digest, inputs=(),
                   toolchain=ToolchainRequirement(name="go-trixie", identity="sh", strategy="cross", root=ROOT),
                   source_date_epoch=0, steps=(Step(argv=("/bin/sh", "-c", script), cwd="{src}"),),
                   outputs={"x": "{out}/x"})
    return spec, inputs


def failure(executor: ContainerExecutor, spec: JobSpec, inputs: Any, tmp_path: Path) -> str:
    """The BuildError (not a lost node) running `spec` ends in."""
    with pytest.raises(BuildError) as failed, executor.run(spec, inputs, tmp_path / "job.log"):
        pass
    assert not isinstance(failed.value, NodeLost)
    return str(failed.value)


def job_containers(engine: DockerdHandle) -> list[str]:
    """Every container a job made on the engine, running or not."""
    out = engine.docker("ps", "-a", "-q", "--filter", f"label={LABEL_JOB}").stdout
    return out.split()


@pytest.mark.slow
def test_a_go_job_over_tls_with_a_workspace_ca_client_certificate_gives_the_local_digest(
    engine: DockerdHandle, pki: Pki, go_job: GoJob, tmp_path: Path
) -> None:
    """The issue's must-show; the second job finds the root's image and sends nothing."""
    archive = root_archive(roots_dir() / ROOT)
    with ContainerExecutor(tls_node(engine, pki), temp_root=tmp_path) as executor:
        assert executor.refuses(go_job.spec) is None
        assert executor.engine_info().host == engine.tls_host
        started = time.monotonic()
        with executor.run(go_job.spec, go_job.inputs, tmp_path / "first.log") as outputs:
            first_s = time.monotonic() - started
            assert dict(outputs.digests) == go_job.digests
            assert {n: sha256_file(p) for n, p in outputs.files.items()} == go_job.digests
            assert all(os.access(p, os.X_OK) for p in outputs.files.values())  # the binary's mode came along
            assert outputs.node == "docker:engine"
            assert outputs.facts[FACT_ROOT_SENT] == str(archive.size)
            first = dict(outputs.facts)
        assert executor.imported == [archive.digest]
        log = (tmp_path / "first.log").read_text()
        assert "$ go build" in log and "# exit 0" in log and f"imported as {first[FACT_ROOT_IMAGE]}" in log

        started = time.monotonic()
        with executor.run(go_job.spec, go_job.inputs, tmp_path / "second.log") as outputs:
            second_s = time.monotonic() - started
            assert dict(outputs.digests) == go_job.digests
            assert outputs.facts[FACT_ROOT_SENT] == "0"
            second = dict(outputs.facts)
        assert executor.imported == [archive.digest]  # once
    # The engine's one layer of the image is the root's tar, by its own hash; no container is left.
    image = engine.docker("image", "inspect", "--format",
                          "{{json .RootFS.Layers}} {{index .Config.Labels \"" + LABEL_DIGEST + "\"}}",
                          first[FACT_ROOT_IMAGE]).stdout.split()
    assert image == [f'["{archive.digest}"]', archive.digest]
    assert job_containers(engine) == []
    print(f"\nroot {ROOT}: {archive.digest}, {archive.size} bytes; local build {go_job.seconds:.1f}s; "
          f"first docker job {first_s:.1f}s {first}; second {second_s:.1f}s {second}; digests {go_job.digests}")


def test_a_client_certificate_from_another_ca_is_refused_naming_the_engine(
    engine: DockerdHandle, pki: Pki, tmp_path: Path
) -> None:
    spec, inputs = shell_job(tmp_path, "echo never > {out}/x")
    # tests/helpers/dockerd.py's throwaway client certificate, from an openssl CA the engine does
    # not trust; the CA to check the engine with is the right one.
    stranger = tmp_path / "stranger"
    shutil.copytree(engine.cert_path, stranger)
    shutil.copy(pki.client / "ca.pem", stranger / "ca.pem")
    with ContainerExecutor(DockerNode(name="engine", host=engine.tls_host, cert_path=stranger)) as executor, \
            pytest.raises(ConfigurationError) as refused, executor.run(spec, inputs, tmp_path / "job.log"):
        pass
    message = str(refused.value)
    assert f"docker node `engine`: the Docker engine at {engine.tls_host} refused the client certificate " \
           f"{stranger}/cert.pem" in message
    assert "crossyard certs client" in message
    # And the other way round: a ca.pem that does not hold the CA of the engine's certificate.
    mixed = tmp_path / "mixed"
    shutil.copytree(pki.client, mixed)
    shutil.copy(engine.cert_path / "ca.pem", mixed / "ca.pem")
    with ContainerExecutor(DockerNode(name="engine", host=engine.tls_host, cert_path=mixed)) as executor:
        reason = executor.refuses(spec)
    assert reason is not None and "presented a server certificate that" in reason and str(mixed) in reason
    assert job_containers(engine) == []


def test_a_missing_key_file_is_a_configuration_error_naming_the_node(pki: Pki, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(pki.client, partial)
    (partial / "key.pem").unlink()
    spec, inputs = shell_job(tmp_path, "true")
    with ContainerExecutor(DockerNode(name="far", host="tcp://127.0.0.1:9", cert_path=partial)) as executor, \
            pytest.raises(ConfigurationError, match=r"docker node `far` \(tcp://127.0.0.1:9\): .*key.pem is missing"), \
            executor.run(spec, inputs, tmp_path / "job.log"):
        pass
    with pytest.raises(ConfigurationError, match="only with TLS client certificates"):
        DockerNode(name="plain", host="tcp://127.0.0.1:2375")


def test_refuses_what_a_container_cannot_run(engine: DockerdHandle, pki: Pki, tmp_path: Path) -> None:
    require_root()
    spec, _ = shell_job(tmp_path, "true")
    with ContainerExecutor(tls_node(engine, pki), roots=tmp_path / "no-roots") as executor:
        host = replace(spec, toolchain=replace(spec.toolchain, root=None))
        assert "is a toolchain of this machine's host" in (executor.refuses(host) or "")
        dockerfile = JobSpec.from_json({**spec.to_json(), "docker": {
            "context": ".", "dockerfile": "Dockerfile", "build_args": {}, "target": None, "placements": []}})
        assert executor.refuses(dockerfile) == "a Dockerfile build runs on an engine's builder, not in a toolchain container"
        native = replace(spec, platform=Platform.parse("linux/riscv64"),
                         toolchain=replace(spec.toolchain, strategy="native"))
        assert executor.refuses(native) == ("a native build for linux/riscv64 needs a linux/riscv64 engine; "
                                            "docker node `engine` is linux/amd64")
        foreign = replace(spec, toolchain=replace(spec.toolchain, root_platform="linux/riscv64"))
        assert executor.refuses(foreign) == ("toolchain root go-trixie-amd64 is linux/riscv64; docker node "
                                             "`engine` is linux/amd64 and would run it under emulation")
        other = replace(spec, toolchain=replace(spec.toolchain, root="rust-nowhere"))
        assert executor.refuses(other) == (
            f"toolchain root {tmp_path}/no-roots/rust-nowhere is not prepared here (`crossyard toolchains "
            "prepare go-trixie`), so it cannot be shipped to docker node `engine`, which has no "
            "crossyard-root/rust-nowhere image either")


def test_a_failed_step_is_a_build_error_with_its_tail_and_leaves_no_container(
    engine: DockerdHandle, pki: Pki, tmp_path: Path
) -> None:
    spec, inputs = shell_job(tmp_path, "echo 'compiler says no' >&2; exit 3")
    with ContainerExecutor(tls_node(engine, pki)) as executor, pytest.raises(BuildError) as failed, \
            executor.run(spec, inputs, tmp_path / "job.log"):
        pass
    assert not isinstance(failed.value, NodeLost)
    assert "exited with status 3 on docker node `engine`" in str(failed.value)
    assert "compiler says no" in failed.value.tail
    assert job_containers(engine) == []


def test_the_clean_environment_and_the_sandbox_are_a_local_jobs(
    engine: DockerdHandle, pki: Pki, tmp_path: Path
) -> None:
    """The step sees exactly the variables a local job sees, a read-only root, no network."""
    script = ("env | sort > {out}/x; echo --- >> {out}/x; "
              "(touch /usr/probe 2>/dev/null && echo root-writable || echo root-read-only) >> {out}/x; "
              "ls /sys/class/net >> {out}/x; cat input.txt >> {out}/x")
    spec, inputs = shell_job(tmp_path, script)
    with ContainerExecutor(tls_node(engine, pki)) as executor, \
            executor.run(spec, inputs, tmp_path / "docker.log") as outputs:
        seen_there = outputs.files["x"].read_text()
    with LocalExecutor(cache_root=tmp_path / "cache").run(spec, inputs, tmp_path / "local.log") as outputs:
        seen_here = outputs.files["x"].read_text()
    env_there, sandbox_there = seen_there.split("---\n")
    assert env_there == seen_here.split("---\n")[0]
    assert "HOSTNAME" not in env_there and "HOME=/tmp/build/home\n" in env_there
    assert sandbox_there == "root-read-only\nlo\ninput\n"  # --network none: a loopback only


def test_an_output_symlink_may_point_inside_the_job_directory_never_out(
    engine: DockerdHandle, pki: Pki, tmp_path: Path
) -> None:
    with ContainerExecutor(tls_node(engine, pki)) as executor:
        spec, inputs = shell_job(tmp_path, "ln -s ../src/input.txt {out}/x")
        with executor.run(spec, inputs, tmp_path / "inside.log") as outputs:
            assert outputs.files["x"].read_text() == "input\n"
        for target in ("/etc/passwd", "../../../../../etc/passwd"):
            spec, inputs = shell_job(tmp_path, f"ln -s {target} {{out}}/x")
            assert "is a symlink to /etc/passwd, outside the job directory" in failure(executor, spec, inputs, tmp_path)
        spec, inputs = shell_job(tmp_path, "ln -s /etc {out}/d")
        spec = replace(spec, outputs={"x": "{out}/d/passwd"})
        assert "is a symlink to /etc, outside the job directory" in failure(executor, spec, inputs, tmp_path)
        spec, inputs = shell_job(tmp_path, "true")
        assert "did not produce `x`" in failure(executor, spec, inputs, tmp_path)
    assert job_containers(engine) == []


def test_cancel_kills_the_container(engine: DockerdHandle, pki: Pki, tmp_path: Path) -> None:
    spec, inputs = shell_job(tmp_path, "echo started; sleep 3007")
    executor = ContainerExecutor(tls_node(engine, pki))
    job = in_background(executor, spec, inputs, tmp_path / "job.log")
    wait_for_text(tmp_path / "job.log", STARTED, job, timeout=300.0)
    (container,) = job_containers(engine)
    assert "sleep 3007" in engine.docker("top", container).stdout
    cancelled = time.monotonic()
    executor.cancel()
    job.thread.join(60)
    assert not job.thread.is_alive()
    error = job.outcome["error"]
    assert isinstance(error, BuildError) and not isinstance(error, NodeLost)
    assert "cancelled" in str(error)
    assert job.outcome["ended"] - cancelled < 10
    assert job_containers(engine) == []
    with pytest.raises(BuildError, match="cancelled"), executor.run(spec, inputs, tmp_path / "again.log"):  # and new jobs are refused
        pass
    executor.close()


@pytest.mark.slow
def test_stopping_the_engine_mid_job_is_node_lost(tmp_path: Path) -> None:
    """A dockerd of its own, reached by its unix socket, stopped (SIGTERM) under a running job."""
    require_root()
    spec, inputs = shell_job(tmp_path, "echo started; sleep 3011")
    with running_dockerd() as doomed:
        executor = ContainerExecutor(DockerNode(name="doomed", host=doomed.host))
        job = in_background(executor, spec, inputs, tmp_path / "job.log")
        wait_for_text(tmp_path / "job.log", STARTED, job, timeout=300.0)
        stopped = time.monotonic()
        os.kill(doomed.pid, signal.SIGTERM)
        job.thread.join(120)
        assert not job.thread.is_alive()
        error = job.outcome["error"]
        assert isinstance(error, NodeLost), error
        assert "docker node `doomed`" in str(error)
        print(f"\nNodeLost {job.outcome['ended'] - stopped:.1f}s after SIGTERM: {error}")
        with pytest.raises(NodeLost, match="cannot reach docker node `doomed`"), executor.run(spec, inputs, tmp_path / "next.log"):  # the next job
            pass
        executor.close()


@pytest.mark.slow
def test_a_go_job_on_an_engine_behind_ssh_gives_the_local_digest(
    engine: DockerdHandle, go_job: GoJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssh://: the docker SDK runs the OpenSSH client (test_docker_ssh.py's private sshd, whose
    key reaches this engine), which runs `docker system dial-stdio` on the far side."""
    from test_docker_ssh import running_sshd

    (tmp_path / "sshd").mkdir()
    with running_sshd(engine, tmp_path / "sshd") as ssh_engine:
        monkeypatch.setenv("PATH", f"{ssh_engine.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        with ContainerExecutor(DockerNode(name="far", host=ssh_engine.host)) as executor:
            assert executor.refuses(go_job.spec) is None
            with executor.run(go_job.spec, go_job.inputs, tmp_path / "job.log") as outputs:
                assert dict(outputs.digests) == go_job.digests
                assert outputs.node == "docker:far"
    assert job_containers(engine) == []
