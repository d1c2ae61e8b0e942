"""A cluster of SSH nodes the tests make themselves: one network namespace per node, each with a
real OpenSSH sshd on its own address; host keys and client keys generated per run.

Network: a bridge on this machine (`cyb<pid>-<n>`, pid in hex, n counting this process's
clusters) holds `<net>.1` of a free private /24; node i lives in namespace `cyssh-<pid>-<n>-<i>`,
linked to the bridge by a veth pair (this side `cyh<pid>-<n>-<i>`, the node's side `eth0` with
`<net>.<10+i>`). `set_link(False)` takes this side down, which cuts the
node off as a pulled cable would: no FIN, no RST, just silence.

Nodes: every sshd runs as `ip netns exec NS /usr/sbin/sshd -D -f CONFIG`, root login with a key
only, the node's state (its crossyard work directory) under the test's temp directory.
- An amd64 node is this machine seen through another address: its commands run on the host, its
  toolchain roots are the real prepared ones (/var/cache/crossyard/roots).
- A riscv64 node runs every session inside the Debian riscv64 root that `.ci/setup` prepares
  (go-trixie-riscv64), under qemu-user through binfmt, so `uname -m` says riscv64 and `go` is
  the riscv64 Go. Chosen: the host's sshd with a `ForceCommand` wrapper that enters the root with
  bubblewrap (read-only root, fresh /proc — Go needs it — /dev, a tmpfs /tmp, the node's state
  bound at its own path). Not `ChrootDirectory`: that needs /proc, /dev and a writable state
  directory mounted inside the shared root, which other tests use at the same time; bubblewrap
  leaves the root untouched and its mounts vanish with each session. SFTP requests are served by
  this machine's sftp-server; it sees the node's state at the same path as the node's commands.
- A second client key (`liar_identity`) gets sessions whose PATH starts with a `sha256sum` that
  lies about files under a job directory, and about uploads while `lie_about_uploads` exists:
  a node that reports digests it did not compute.

Teardown (also after a failed test, and for leftovers of a killed run, found by pid): every
process in each namespace killed, the namespaces, veths and the bridge deleted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from crossyard.executors.ssh import SshNode
from crossyard.platforms import Platform
from crossyard.toolchains import roots_dir

from .processes import stop, wait_started

PREFIX = "cyssh-"  # namespaces: cyssh-<creator pid>-<cluster>-<index>
START_TIMEOUT = 20.0
_SERIAL = itertools.count()
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
RISCV64_ROOT = "go-trixie-riscv64"
LIAR_SHA256SUM = """#!/bin/sh
# Reports a digest of zeros for any file in a job directory, and for an upload (*.part) when the
# file `lie-about-uploads` is next to this script; the truth for everything else.
lie() { for f in "$@"; do [ "$f" = "--" ] || echo "$(printf '0%.0s' $(seq 64))  $f"; done; }
case "$*" in
  */jobs/*) lie "$@" ;;
  *.part) if [ -e "$(dirname "$0")/lie-about-uploads" ]; then lie "$@"; else exec /usr/bin/sha256sum "$@"; fi ;;
  *) exec /usr/bin/sha256sum "$@" ;;
esac
"""


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    name: str
    arch: str = "linux/amd64"  # or linux/riscv64: sessions inside the riscv64 root
    max_sessions: int = 64  # sshd's MaxSessions (its default is 10)


@dataclass(kw_only=True)
class Node:
    name: str
    arch: Platform
    namespace: str
    link: str  # this side of the veth pair
    address: str
    state: Path  # the node's own directory: work dir, roots (riscv64), keys, config, log
    roots: str
    host_key: str  # the node's public host key line (`ssh-ed25519 AAAA…`)
    config: Path
    max_sessions: int = 64
    sshd: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def workdir(self) -> Path:
        return self.state / "work"

    def start_sshd(self) -> None:
        log = (self.state / "sshd.log").open("ab")
        with log:
            self.sshd = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, "/usr/sbin/sshd", "-D", "-e", "-f", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_started(self.sshd, lambda: _banner(self.address), what=f"sshd of node {self.name}",
                     log=lambda: (self.state / "sshd.log").read_text(errors="replace"), timeout=START_TIMEOUT)

    def kill_sshd(self) -> None:
        """SIGKILL the listener and every session it forked, as a crash or the OOM killer would."""
        for pid in self.pids():
            if _comm(pid).startswith("sshd"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.sshd is not None:
            self.sshd.wait(10)
            self.sshd = None

    def set_link(self, up: bool) -> None:
        subprocess.run(["ip", "link", "set", self.link, "up" if up else "down"], check=True)

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def processes(self) -> dict[int, str]:
        """pid → command line of every process on the node."""
        return {pid: _cmdline(pid) for pid in self.pids()}

    def kill_all(self) -> None:
        _kill_all(self.pids())
        self.sshd = None

    def jobs(self) -> list[str]:
        """The job directories on the node now."""
        jobs = self.workdir / "jobs"
        return sorted(p.name for p in jobs.iterdir()) if jobs.is_dir() else []


@dataclass(kw_only=True)
class Cluster:
    root: Path
    nodes: dict[str, Node]
    identity: Path
    liar_identity: Path
    lie_about_uploads: Path  # while this file exists, the liar's uploads hash wrong too

    def ssh_node(self, name: str, **changes: Any) -> SshNode:
        """The node as crossyard's inventory would declare it (host key pinned)."""
        node = self.nodes[name]
        declared = SshNode(name=node.name, host=node.address, arch=node.arch, identity=self.identity,
                           host_key=node.host_key, roots=node.roots, workdir=str(node.workdir))
        return replace(declared, **changes)


def _banner(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2) as conn:
            return conn.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_all(pids: Sequence[int], timeout: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(alive(p) for p in pids):
            return


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _free_subnet() -> ipaddress.IPv4Network:
    used = [ipaddress.ip_network(word, strict=False)
            for word in _ip("-4", "-o", "addr").stdout.split() if "/" in word and word[0].isdigit()]
    used += [ipaddress.ip_network(line.split()[0], strict=False)
             for line in _ip("-4", "route").stdout.splitlines() if line and line[0].isdigit()]
    for _ in range(100):
        net = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free private /24 for the test cluster")


def sweep_leftovers() -> None:
    """Remove what a killed test run left: namespaces and bridges of a pid that is gone."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        creator = name.removeprefix(PREFIX).split("-")[0]
        if name.startswith(PREFIX) and creator.isdigit() and not alive(int(creator)):
            _kill_all([int(p) for p in _ip("netns", "pids", name, check=False).stdout.split()])
            _ip("netns", "del", name, check=False)
    for line in _ip("-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        name = line.split(":")[1].strip()
        creator = name.removeprefix("cyb").split("-")[0]
        if re.fullmatch(r"cyb[0-9a-f]+-[0-9a-f]+", name) and not alive(int(creator, 16)):
            _ip("link", "del", name, check=False)


def _session_wrapper(path: Path, root: Path, state: Path) -> None:
    path.write_text(
        "#!/bin/sh\n"
        "# A riscv64 node's sessions: commands inside the riscv64 root (qemu-user via binfmt);\n"
        "# SFTP by this machine's sftp-server, which sees the node's state at the same path.\n"
        f'if [ "$SSH_ORIGINAL_COMMAND" = {SFTP_SERVER} ]; then exec {SFTP_SERVER}; fi\n'
        f"exec bwrap --ro-bind {root} / --proc /proc --dev /dev --tmpfs /tmp --bind {state} {state} "
        '--chdir / /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
    path.chmod(0o755)


def _sshd_config(node: Node, keys: Path, wrapper: Path | None) -> str:
    lines = [
        f"ListenAddress {node.address}",
        "Port 22",
        f"HostKey {node.state / 'host_ed25519'}",
        f"PidFile {node.state / 'sshd.pid'}",
        f"AuthorizedKeysFile {keys}",
        "AllowUsers root",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitUserEnvironment yes",  # the liar key's PATH
        "StrictModes no",  # the keys live under /tmp, whose sticky 1777 StrictModes rejects
        "UsePAM no",
        "X11Forwarding no",
        "PrintMotd no",
        f"MaxSessions {node.max_sessions}",
        f"Subsystem sftp {SFTP_SERVER}",
        "LogLevel VERBOSE",
    ]
    if wrapper is not None:
        lines.append(f"ForceCommand {wrapper}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def ssh_cluster(root: Path, specs: Sequence[NodeSpec]) -> Iterator[Cluster]:
    """Start the nodes; on leaving, stop and remove all of it (see the module's docstring)."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    sweep_leftovers()
    pid, serial = os.getpid(), next(_SERIAL)
    bridge = f"cyb{pid:x}-{serial:x}"  # at most 15 characters, as every interface name
    net = _free_subnet()
    hosts = list(net.hosts())
    root.mkdir(parents=True, exist_ok=True)
    identity, liar = root / "client_ed25519", root / "liar_ed25519"
    client_pub, liar_pub = _keygen(identity, "crossyard cluster client"), _keygen(liar, "crossyard liar")
    liar_bin = root / "liar-bin"
    liar_bin.mkdir()
    (liar_bin / "sha256sum").write_text(LIAR_SHA256SUM)
    (liar_bin / "sha256sum").chmod(0o755)
    keys = root / "authorized_keys"
    keys.write_text(f"{client_pub}\nenvironment=\"PATH={liar_bin}:/usr/bin:/bin\" {liar_pub}\n")
    nodes: dict[str, Node] = {}
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{hosts[0]}/{net.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for index, spec in enumerate(specs):
            namespace, link = f"{PREFIX}{pid}-{serial}-{index}", f"cyh{pid:x}-{serial:x}-{index}"
            state = root / spec.name
            (state / "work").mkdir(parents=True)
            arch = Platform.parse(spec.arch)
            wrapper = None
            roots = str(roots_dir())
            if arch != Platform.host():
                riscv_root = roots_dir() / RISCV64_ROOT
                if not (riscv_root / "usr").is_dir() or arch.architecture != "riscv64":
                    raise RuntimeError(f"a {arch} node needs the {riscv_root} root (.ci/install.d/61-go-roots.sh)")
                (state / "roots").mkdir()
                roots = str(state / "roots")
                wrapper = state / "session"
                _session_wrapper(wrapper, riscv_root, state)
            node = Node(name=spec.name, arch=arch, namespace=namespace, link=link,
                        address=str(hosts[9 + index]), state=state, roots=roots,
                        host_key=_keygen(state / "host_ed25519", f"crossyard node {spec.name}"),
                        config=state / "sshd_config", max_sessions=spec.max_sessions)
            nodes[spec.name] = node
            _ip("netns", "add", namespace)
            _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("link", "set", link, "master", bridge, "up")
            _ip("-n", namespace, "addr", "add", f"{node.address}/{net.prefixlen}", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            node.config.write_text(_sshd_config(node, keys, wrapper))
            node.start_sshd()
        yield Cluster(root=root, nodes=nodes, identity=identity, liar_identity=liar,
                      lie_about_uploads=liar_bin / "lie-about-uploads")
    finally:
        for node in nodes.values():
            if node.sshd is not None:
                stop(node.sshd, 5)
            node.kill_all()
            _ip("netns", "del", node.namespace, check=False)
            _ip("link", "del", node.link, check=False)
        _ip("link", "del", bridge, check=False)
        shutil.rmtree(liar_bin, ignore_errors=True)
