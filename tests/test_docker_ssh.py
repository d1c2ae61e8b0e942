"""The `ssh://` Docker engine transport, for real: a private sshd in front of the private dockerd.

DOCKER_HOST=ssh://root@ALIAS:PORT makes the docker SDK run the OpenSSH client, which runs
`docker system dial-stdio` on the far side. Here the far side is this machine: a private sshd on a
free 127.0.0.1 port (its own host key, authorized_keys, pidfile), whose authorized key carries
`environment="DOCKER_HOST=unix://…"` so dial-stdio reaches the private dockerd of
tests/helpers/dockerd.py and nothing else.

OpenSSH reads ~/.ssh/config from the passwd entry, not $HOME, so the client side is an `ssh`
wrapper first on PATH that runs the real /usr/bin/ssh with `-F` our config (the host alias,
identity, a pinned known_hosts, StrictHostKeyChecking yes, BatchMode).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import binfmt_registered, require, require_tool, run_cli
from crossyard.registry.server import free_port
from helpers import dockerd
from helpers.dockerd import FOREIGN_ENV, DockerdHandle, copy_example
from helpers.processes import stop, wait_started

pytestmark = [pytest.mark.integration]

docker_engine = dockerd.docker_engine
ALIAS = "cy-engine"
DEAD_ALIAS = "cy-no-engine"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
PLATFORM = "linux/riscv64"
INSTALL_HINT = "run .ci/install.d/21-ssh.sh (apt-get install openssh-server openssh-client)"


@dataclass(frozen=True, kw_only=True)
class SshEngine:
    host: str  # ssh://root@ALIAS:PORT
    dead_host: str  # ssh://root@OTHER-ALIAS:PORT where nothing listens
    bin_dir: Path  # holds the `ssh` wrapper
    root: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for `run_cli`: the engine over ssh, found through the wrapper on PATH."""
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        return {**env, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.root / "docker-client")}




def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            return conn.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (sshd's per-connection children and their sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return path.with_suffix(".pub").read_text().strip()


@contextlib.contextmanager
def running_sshd(engine: DockerdHandle, root: Path) -> Iterator[SshEngine]:
    """A private sshd whose one authorized key talks to `engine`; stopped with all its children."""
    sshd = require_tool("sshd", INSTALL_HINT)
    ssh = require_tool("ssh", INSTALL_HINT)
    require_tool("ssh-keygen", INSTALL_HINT)
    require(os.geteuid() == 0, "the private sshd logs in as root to reach the private dockerd")
    # sshd refuses to start without its privilege separation directory (made by the init script).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port, dead_port = free_port(), free_port()
    host_pub = _keygen(root / "host_ed25519", "crossyard test sshd")
    client_pub = _keygen(root / "client_ed25519", "crossyard test client")
    (root / "docker-client").mkdir()
    remote_env = {"DOCKER_HOST": engine.host, "DOCKER_CONFIG": str(root / "docker-client")}
    options = ",".join(f'environment="{k}={v}"' for k, v in remote_env.items())
    (root / "authorized_keys").write_text(f"{options} {client_pub}\n")
    config = root / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {root / 'host_ed25519'}",
        f"PidFile {root / 'sshd.pid'}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}",
        "AllowUsers root",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitUserEnvironment yes",
        "StrictModes no",  # the key files live under /tmp, whose sticky 1777 StrictModes rejects
        "UsePAM no",
        "X11Forwarding no",
        "PrintMotd no",
        "LogLevel VERBOSE",
        "",
    ]))
    (root / "known_hosts").write_text(f"{ALIAS} {host_pub}\n")
    client_config = root / "ssh_config"
    client_config.write_text("\n".join([
        f"Host {ALIAS} {DEAD_ALIAS}",
        "  HostName 127.0.0.1",
        f"  HostKeyAlias {ALIAS}",
        f"  IdentityFile {root / 'client_ed25519'}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {root / 'known_hosts'}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  ConnectTimeout 10",
        "",
    ]))
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(ssh)} -F {shlex.quote(str(client_config))} "$@"\n')
    wrapper.chmod(0o755)
    log = root / "sshd.log"
    with log.open("w") as out:
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    # The port goes in the URL: the SDK passes `-p 22` when it has none, which beats the config's Port.
    handle = SshEngine(host=f"ssh://root@{ALIAS}:{port}", dead_host=f"ssh://root@{DEAD_ALIAS}:{dead_port}",
                       bin_dir=bin_dir, root=root)
    try:
        wait_started(process, lambda: _banner(port), what="private sshd", log=log.read_text,
                     timeout=START_TIMEOUT)
        yield handle
    finally:
        stop_sshd(process)


def stop_sshd(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the listener and every session it forked (they live in their own sessions)."""
    pids = _descendants(process.pid)
    stop(process, STOP_TIMEOUT)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ssh_engine(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerdHandle) -> Iterator[SshEngine]:
    with running_sshd(docker_engine, tmp_path_factory.mktemp("sshd")) as handle:
        yield handle


def build(ws: Path, env: dict[str, str]) -> dict[str, Any]:
    result = run_cli("-C", str(ws), "build", "--json", "-p", PLATFORM, env=env)
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_the_ssh_side_reaches_only_the_private_engine(ssh_engine: SshEngine, docker_engine: DockerdHandle) -> None:
    """The plumbing itself: ssh with the pinned host key, dial-stdio lands on the private dockerd."""
    result = subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"], env=ssh_engine.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(docker_engine.root / "data")


def test_dockerfile_recipe_builds_over_ssh(
    tmp_path: Path, ssh_engine: SshEngine, docker_engine: DockerdHandle
) -> None:
    require_tool("go", "run .ci/install.d/00-apt.sh")
    require(binfmt_registered("riscv64"), "qemu-riscv64 binfmt is not registered: run .ci/install.d/10-binfmt.sh")
    ws = copy_example(tmp_path)
    over_ssh = {j["id"]: j for j in build(ws, ssh_engine.env)["jobs"]}
    job = over_ssh[f"hello-web@{PLATFORM}"]
    assert job["status"] == "built"
    assert job["toolchain"].startswith("docker ")
    assert f"# docker build on {ssh_engine.host} for {PLATFORM}" in Path(job["log"]).read_text()
    assert f"hello from hello-go 0.1.0 on {PLATFORM}" in Path(job["log"]).read_text()  # RUN under qemu
    index = json.loads((ws / ".crossyard" / "store" / "index.json").read_text())
    stored = {m["annotations"].get("org.opencontainers.image.ref.name"): m for m in index["manifests"]}
    assert stored["hello-web:linux-riscv64"]["digest"] == job["outputs"]["image"]
    assert stored["hello-web:linux-riscv64"]["annotations"]["dev.crossyard.input-key"] == job["input_key"]
    # The same engine through its unix socket has the same identity, hence the same key: cached.
    over_unix = {j["id"]: j for j in build(ws, docker_engine.client_env())["jobs"]}
    assert over_unix[f"hello-web@{PLATFORM}"]["status"] == "cached"
    assert over_unix[f"hello-web@{PLATFORM}"]["input_key"] == job["input_key"]


def test_unreachable_ssh_host_is_a_configuration_error(tmp_path: Path, ssh_engine: SshEngine) -> None:
    require_tool("go", "run .ci/install.d/00-apt.sh")
    ws = copy_example(tmp_path)
    result = run_cli("-C", str(ws), "plan", env={**ssh_engine.env, "DOCKER_HOST": ssh_engine.dead_host})
    assert result.returncode == 2, result.stderr
    assert f"cannot reach the Docker engine at {ssh_engine.dead_host} (DOCKER_HOST)" in result.stderr
    assert "ssh://USER@HOST" in result.stderr
    assert "Traceback" not in result.stderr


def test_sshd_leaves_no_process_behind(tmp_path: Path, docker_engine: DockerdHandle) -> None:
    """A private sshd with a live session, stopped: nothing it started survives."""
    with running_sshd(docker_engine, tmp_path) as handle:
        listener = int((tmp_path / "sshd.pid").read_text().split()[0])
        port = handle.host.rsplit(":", 1)[1]
        session = subprocess.Popen(["ssh", "-p", port, f"root@{ALIAS}", "sleep 300"], env=handle.env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not any("sleep 300" in _cmdline(p) for p in _descendants(listener)):
            assert session.poll() is None and time.monotonic() < deadline, "the ssh session never started"
            time.sleep(0.1)
        spawned = _descendants(listener)
    try:
        assert not _alive(listener)
        assert [p for p in spawned if _alive(p)] == []
    finally:
        session.kill()
        session.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""

