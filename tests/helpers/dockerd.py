"""A private Docker engine for the tests: its own dockerd, data root, exec root, pidfile, socket.

It runs next to any other dockerd on the machine without touching it: no bridge, no iptables or
masquerading rules, an empty daemon.json, everything under one temporary directory (short path:
unix sockets are limited to 108 bytes). Containers use `--network host`. The engine is stopped
and its directory removed when the session ends.

It also listens on tcp://127.0.0.1:PORT with `--tlsverify` (a throwaway CA, a server certificate
for 127.0.0.1 and a client certificate, made with openssl): `handle.tls_env` is what a docker
client needs to reach it the way a remote engine is reached (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
`running_dockerd(ServerTls(...))` serves another CA's certificate instead (crossyard's own).

Use the session fixture from a test module (pytest finds fixtures by module attribute):

    from helpers import dockerd
    docker_engine = dockerd.docker_engine
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, require, require_tool
from crossyard.registry.server import free_port
from helpers.processes import stop, wait_started

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# Variables that would send a docker client somewhere else than the private engine.
FOREIGN_ENV = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT", "DOCKER_CONFIG")


@dataclass(frozen=True, kw_only=True)
class ServerTls:
    """The engine's TLS files from elsewhere (crossyard's own CA) instead of the throwaway CA:
    what dockerd's --tlscacert (the CA clients' certificates must come from), --tlscert and
    --tlskey get. The throwaway client in `cert_path` then is a client from another CA."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, kw_only=True)
class DockerdHandle:
    host: str  # unix:///…/docker.sock
    tls_host: str  # tcp://127.0.0.1:PORT, client certificates required
    cert_path: Path  # ca.pem, cert.pem, key.pem for the client (DOCKER_CERT_PATH)
    root: Path
    pid: int
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for `run_cli` / the docker CLI: this engine and nothing else."""
        return {"DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.root / "client")}

    @property
    def tls_env(self) -> dict[str, str]:
        """The same engine over TCP with TLS client certificates."""
        return {"DOCKER_HOST": self.tls_host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.cert_path),
                "DOCKER_CONFIG": str(self.root / "client")}

    def client_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        return {**env, **self.env}

    def docker(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine."""
        result = subprocess.run(["docker", *args], env=self.client_env(), capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _unmount_under(root: Path) -> None:
    """dockerd leaves its default netns bind-mounted under the exec root; undo what is left."""
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as info:
        points = [line.split()[4] for line in info]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_tls(directory: Path) -> None:
    """CA, server certificate for 127.0.0.1/localhost, client certificate (docker's file names)."""
    directory.mkdir()
    days = "2"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", days,
             "-subj", "/CN=crossyard test docker CA", "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=directory)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                 "-days", days, "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=directory)
    client = directory / "client"
    client.mkdir()
    shutil.copy(directory / "ca.pem", client / "ca.pem")
    shutil.copy(directory / "client.pem", client / "cert.pem")
    shutil.copy(directory / "client-key.pem", client / "key.pem")
    (client / "key.pem").chmod(0o600)



def _ping(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(sock))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b"OK" in conn.recv(4096)
    except OSError:
        return False


@contextlib.contextmanager
def running_dockerd(server_tls: ServerTls | None = None) -> Iterator[DockerdHandle]:
    """Start a private dockerd; stop it and remove its directory when the block ends."""
    dockerd = require_tool("dockerd", "run .ci/install.d/20-docker.sh (apt-get install docker.io)")
    require_tool("docker", "run .ci/install.d/20-docker.sh (apt-get install docker.io)")
    require_tool("openssl", "apt-get install openssl")
    require(os.geteuid() == 0, "dockerd needs root")
    root = Path(tempfile.mkdtemp(prefix="cy-dockerd-", dir="/tmp"))
    (root / "client").mkdir()
    tls = root / "tls"
    make_tls(tls)
    served = server_tls or ServerTls(ca=tls / "ca.pem", cert=tls / "server.pem", key=tls / "server-key.pem")
    port = free_port()
    config = root / "daemon.json"
    config.write_text("{}\n")
    sock = root / "docker.sock"
    log = root / "dockerd.log"
    argv = [
        dockerd, "--config-file", str(config), "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "dockerd.pid"), "--host", f"unix://{sock}", "--host", f"tcp://127.0.0.1:{port}",
        "--tlsverify", "--tlscacert", str(served.ca), "--tlscert", str(served.cert), "--tlskey", str(served.key),
        "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--userland-proxy=false",
        "--log-level=warn",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    handle = DockerdHandle(host=f"unix://{sock}", tls_host=f"tcp://127.0.0.1:{port}", cert_path=tls / "client",
                           root=root, pid=process.pid, log=log)
    try:
        wait_started(process, lambda: _ping(sock), what="private dockerd", log=handle.log_tail,
                     timeout=START_TIMEOUT, interval=0.2)
        yield handle
    finally:
        stop(process, STOP_TIMEOUT)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerdHandle]:
    with running_dockerd() as handle:
        yield handle


def copy_example(root: Path) -> Path:
    """examples/dockerfile and the service it builds, at the same relative places."""
    shutil.copytree(REPO / "examples" / "dockerfile", root / "examples" / "dockerfile")
    shutil.copytree(REPO / "services" / "hello-go", root / "services" / "hello-go")
    return root / "examples" / "dockerfile"
