"""The cluster's nodes: the inventory, what probing found on each, and the members a build runs on.

The inventory is `[[nodes]]` in crossyard.toml, read once into frozen `Node`s:

    [[nodes]]
    name = "rv1"                 # unique; how records, listings and CROSSYARD_NODES name it
    transport = "ssh"            # local | ssh | docker | buildkit
    address = "rv1.lab"          # ssh: host name or IP; docker: unix:///…, tcp://HOST:PORT, ssh://…;
                                 # buildkit: buildkitd's unix:///… or tcp://HOST:PORT
    port = 22                    # ssh only
    user = "build"               # ssh only
    identity = "keys/rv1"        # ssh only: the private key (0600), relative to crossyard.toml
    host_key = "ssh-ed25519 AAAA…"   # ssh only: the pinned host key, or known_hosts = "FILE"
    workdir = "/var/tmp/crossyard"   # ssh only: the node's content cache, job and cache dirs
    roots = "/var/cache/crossyard/roots"  # ssh only: prepared toolchain roots on the node
    keepalive = 10               # ssh only: seconds between keepalives (3 unanswered: lost)
    cert_path = "pki/docker"     # docker over tcp:// only: ca.pem, cert.pem, key.pem
    ca = "pki/ca.pem"            # buildkit over tcp:// only: the CA of buildkitd's certificate,
    cert = "pki/client.pem"      #   and crossyard's client certificate and key (`crossyard certs`)
    key = "pki/client-key.pem"
    arch = "linux/riscv64"       # declared; probing refuses a node that turns out otherwise
    max_jobs = 2                 # slots (default: local → [build] jobs, others → probed cores)
    labels = ["lab-a"]

No `[[nodes]]` means one implicit local node with `[build] jobs` slots, which is how crossyard
ran before it knew of nodes. `BUILDKIT_HOST` (buildctl's variable) adds an implicit `buildkit`
node named `buildkit-host`, its arch probed, unless a declared one has that address.
`CROSSYARD_NODES=a,b` keeps only the named nodes for one run;
`CROSSYARD_SSH_KEEPALIVE=SECONDS` sets every SSH node's keepalive interval for one run (a link
that goes silent is noticed after three unanswered ones).

Probing (`crossyard nodes probe`, and every remote node at the start of a build) goes through a
`NodeProber` per transport and reads `uname -m`, cores, memory, the toolchains there with their
normalized identities (what input keys hold) and whether a Docker engine answers; a `buildkit`
node is buildkitd alone: its identity (Info) and its workers' platforms (ListWorkers). The last
answer per node is kept in `.crossyard/nodes.json` for `crossyard nodes` to show.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import getpass
import json
import os
import posixpath
import re
import shlex
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from .buildkit.endpoints import HOST_ENV, Endpoint, from_environment
from .errors import ConfigurationError, NodeLost, NodeUnreachable, check_keys, suggest
from .fsutil import atomic_write_text
from .platforms import PLATFORMS, Platform
from .toolchains import (
    DEFAULT_ROOTS,
    Prober,
    ToolchainDef,
    ToolchainTarget,
    in_root,
    normalize_identity,
    roots_dir,
)

if TYPE_CHECKING:
    from .buildkit.client import Api, TlsFiles
    from .executors import Executor
    from .executors.ssh import SshNode
    from .workspace import Workspace

TRANSPORTS: Final = ("local", "ssh", "docker", "buildkit")
COMMON_KEYS: Final = ("name", "transport", "arch", "max_jobs", "labels")
TRANSPORT_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "local": (),
    "ssh": ("address", "port", "user", "identity", "host_key", "known_hosts", "workdir", "roots",
            "keepalive"),
    "docker": ("address", "cert_path"),
    "buildkit": ("address", "ca", "cert", "key"),
}
NODE_KEYS: Final = tuple(dict.fromkeys([*COMMON_KEYS, *(k for keys in TRANSPORT_KEYS.values() for k in keys)]))
# Why a key does not apply to a transport, said with the fix.
NOT_FOR: Final[Mapping[str, str]] = {
    "local": "a `local` node is this machine: it has no address or credentials",
    "ssh": "an `ssh` node takes address, port, user, identity, host_key or known_hosts, workdir, "
           "roots, keepalive",
    "docker": "a `docker` node's address is the engine's URL (unix:///…, tcp://HOST:PORT, ssh://USER@HOST), "
              "with cert_path for tcp://",
    "buildkit": "a `buildkit` node takes address (unix:///… or tcp://HOST:PORT) and, for tcp://, ca, cert, key",
}
NODES_ENV: Final = "CROSSYARD_NODES"
KEEPALIVE_ENV: Final = "CROSSYARD_SSH_KEEPALIVE"
IMPLICIT_NAME: Final = "local"
BUILDKIT_HOST_NAME: Final = "buildkit-host"  # the node BUILDKIT_HOST adds
DEFAULT_SSH_PORT: Final = 22
PROBE_TIMEOUT_S: Final = 30.0
ENGINE_TIMEOUT_S: Final = 10.0  # this machine's Docker engine, asked whether it is there
LABEL_PROBE: Final = "org.crossyard.probe"  # on a container that reads a root's toolchains
# Nodes are probed side by side, and the local and docker probers share planning's `Prober`
# (its cache is saved by each of them).
_PROBING: Final = threading.Lock()
STATE_VERSION: Final = 1
HOST_KEY_TYPES: Final = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})|\[?[0-9A-Fa-f:.]+\]?")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/=-]{0,62}")
_DOCKER_URL = re.compile(r"(unix:///\S+|tcp://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}|ssh://(\S+@)?[A-Za-z0-9_.\-\[\]:]+)")


@dataclass(frozen=True, kw_only=True)
class Node:
    """One machine that runs jobs, as declared (never trusted blindly: see `NodeFacts`)."""

    name: str
    transport: str  # local | ssh | docker
    arch: Platform  # declared
    address: str = ""
    port: int | None = None
    user: str = ""
    identity: Path | None = None  # ssh private key
    host_key: str = ""  # ssh: "TYPE BASE64", the one key the host may present
    known_hosts: Path | None = None  # ssh: a known_hosts file naming the host's key
    workdir: str = ""  # ssh: the node's work directory ("": executors.ssh's default)
    roots: str = ""  # ssh: the node's prepared toolchain roots ("": the default roots directory)
    keepalive: float | None = None  # ssh: seconds between keepalives (None: executors.ssh's default)
    cert_path: Path | None = None  # docker tcp://: ca.pem, cert.pem, key.pem
    tls: TlsFiles | None = None  # buildkit tcp://: buildkitd's CA, our client certificate and key
    max_jobs: int | None = None  # None: local → [build] jobs, others → probed cores
    labels: tuple[str, ...] = ()
    # Not declared: this machine when there are no [[nodes]]; BUILDKIT_HOST's buildkitd (its
    # arch is what the probe finds).
    implicit: bool = False

    @property
    def node_class(self) -> str:
        """transport/arch: nodes of one class build at about the same speed (durations)."""
        return f"{self.transport}/{self.arch.architecture}"

    @property
    def where(self) -> str:
        """How it is reached, for listings and messages."""
        if self.transport == "local":
            return "this machine"
        if self.transport == "ssh":
            user = f"{self.user}@" if self.user else ""
            host = f"[{self.address}]" if ":" in self.address else self.address
            return f"ssh://{user}{host}:{self.port or DEFAULT_SSH_PORT}"
        return self.address

    def docker_env(self) -> dict[str, str]:
        """What the docker SDK reads to reach a `docker` node's engine (as DOCKER_HOST etc.)."""
        env = {"DOCKER_HOST": self.address}
        if self.cert_path is not None:
            env |= {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.cert_path)}
        return env

    def endpoint(self) -> Endpoint:
        """A `buildkit` node's buildkitd, as the client reaches it."""
        return Endpoint(address=self.address, tls=self.tls,
                        where=HOST_ENV if self.name == BUILDKIT_HOST_NAME and self.implicit else f"node `{self.name}`")


def implicit_local(jobs: int) -> Node:
    return Node(name=IMPLICIT_NAME, transport="local", arch=Platform.host(), max_jobs=jobs, implicit=True)


# -- the inventory: [[nodes]] ----------------------------------------------------------------------


def load_nodes(value: object, *, file: Path, jobs: int,
               environ: Mapping[str, str] = os.environ) -> tuple[Node, ...]:
    """`[[nodes]]` (the `nodes` value of crossyard.toml, None when absent) as typed nodes, then
    `CROSSYARD_NODES` from `environ`. Each bad value is a `ConfigurationError` naming the file,
    the entry (`[[nodes]] #2 (rv1)`) and the key. Paths are relative to crossyard.toml."""
    if value is None:
        nodes: tuple[Node, ...] = (implicit_local(jobs),)
    else:
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise ConfigurationError(
                f"{file}: `nodes` must be an array of tables, one [[nodes]] per node (name, transport, …)"
            )
        nodes = tuple(_node(table, number=n, file=file, jobs=jobs) for n, table in enumerate(value, 1))
        seen: dict[str, int] = {}
        for n, node in enumerate(nodes, 1):
            if node.name in seen:
                raise ConfigurationError(
                    f"{file}: [[nodes]] #{n} ({node.name}): `name` is also node #{seen[node.name]}'s; "
                    "give each node its own name"
                )
            seen[node.name] = n
        local = [n for n, node in enumerate(nodes, 1) if node.transport == "local"]
        if len(local) > 1:
            raise ConfigurationError(
                f"{file}: [[nodes]] #{local[1]} ({nodes[local[1] - 1].name}): a second `local` node; this "
                "machine is one node (raise its max_jobs instead)"
            )
        if not nodes:
            raise ConfigurationError(f"{file}: `nodes` is empty; declare at least one [[nodes]] or leave it out")
    host = from_environment(environ)
    if host is not None and not any(n.transport == "buildkit" and n.address == host.address for n in nodes):
        # Its arch is unknown until probed: `connect` takes the probed one.
        nodes = (*nodes, Node(name=BUILDKIT_HOST_NAME, transport="buildkit", arch=Platform.host(),
                              address=host.address, implicit=True))
    if NODES_ENV in environ:
        nodes = _chosen(nodes, environ[NODES_ENV])
    if KEEPALIVE_ENV in environ:
        try:
            keepalive = _seconds(float(environ[KEEPALIVE_ENV]))
        except ValueError:
            keepalive = None
        if keepalive is None:
            raise ConfigurationError(f"{KEEPALIVE_ENV}={environ[KEEPALIVE_ENV]!r} must be the seconds between "
                                     "keepalives to SSH nodes, more than 0 (e.g. 5); or unset it")
        nodes = tuple(replace(n, keepalive=keepalive) if n.transport == "ssh" else n for n in nodes)
    return nodes


def _seconds(value: object) -> float | None:
    """A positive number of seconds, less than a day; None if `value` is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 86400:
        return None
    return float(value)


def _chosen(nodes: tuple[Node, ...], text: str) -> tuple[Node, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    where = f"{NODES_ENV}={text!r}"
    if not names:
        raise ConfigurationError(f"{where} names no node; name some (comma-separated) or unset it")
    known = {node.name: node for node in nodes}
    for name in names:
        if name not in known:
            raise ConfigurationError(
                f"{where}: no node named `{name}`{suggest(name, known)}; nodes: {', '.join(known)}"
            )
    return tuple(node for node in nodes if node.name in names)


def _node(table: Mapping[str, Any], *, number: int, file: Path, jobs: int) -> Node:
    name = table.get("name")
    label = f"[[nodes]] #{number}" + (f" ({name})" if isinstance(name, str) and name else "")

    def bad(key: str, text: str) -> ConfigurationError:
        return ConfigurationError(f"{file}: {label}: `{key}` {text}")

    check_keys(table, NODE_KEYS, where=label, file=file)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad("name", f"= {name!r}: give each node a name of letters, digits, `.`, `_`, `-` "
                          '(at most 63, starting with a letter or digit), e.g. name = "rv1"')
    transport = table.get("transport")
    if transport not in TRANSPORTS:
        hint = suggest(transport, TRANSPORTS) if isinstance(transport, str) else ""
        raise bad("transport", f"= {transport!r}{hint}: must be one of {', '.join(TRANSPORTS)}")
    for key in table:
        if key not in COMMON_KEYS and key not in TRANSPORT_KEYS[transport]:
            raise bad(key, f"does not apply to a `{transport}` node: {NOT_FOR[transport]}")
    base = file.parent

    if "arch" in table:
        arch_text = table["arch"]
        if not isinstance(arch_text, str):
            raise bad("arch", f'= {arch_text!r} must be a platform, e.g. arch = "linux/riscv64"')
        try:
            arch = Platform.parse(arch_text)
        except ConfigurationError as error:
            raise bad("arch", f"= {arch_text!r}: {error}") from None
    elif transport == "local":
        arch = Platform.host()
    else:
        raise bad("arch", f"is missing: declare what the node is (one of {', '.join(PLATFORMS)}); "
                          "probing checks it")

    max_jobs = table.get("max_jobs")
    if max_jobs is not None and (isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1):
        raise bad("max_jobs", f"= {max_jobs!r} must be a whole number, 1 or more (the jobs it runs at once)")
    if max_jobs is None and transport == "local":
        max_jobs = jobs

    labels = table.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) and _LABEL.fullmatch(x) for x in labels):
        raise bad("labels", f"= {labels!r} must be a list of words (letters, digits, `._/=-`), "
                            'e.g. labels = ["lab-a"]')

    node = Node(name=name, transport=transport, arch=arch, max_jobs=max_jobs, labels=tuple(labels))
    if transport == "ssh":
        return _ssh(node, table, bad=bad, base=base)
    if transport == "docker":
        return _docker(node, table, bad=bad, base=base)
    if transport == "buildkit":
        return _buildkit(node, table, bad=bad, base=base)
    return node


def _path(value: object, *, key: str, base: Path, bad: Callable[[str, str], ConfigurationError]) -> Path:
    if not isinstance(value, str) or not value or "\0" in value:
        raise bad(key, f"= {value!r} must be a path (relative to crossyard.toml, or absolute)")
    return (base / Path(value).expanduser()).absolute()


def _ssh(node: Node, table: Mapping[str, Any], *, bad: Callable[[str, str], ConfigurationError],
         base: Path) -> Node:
    address = table.get("address")
    # Never an option: an address or user starting with `-` would be one to an ssh command line.
    if not isinstance(address, str) or not _HOST.fullmatch(address) or address.startswith("-"):
        raise bad("address", f"= {address!r} must be the node's host name or IP address "
                             '(no scheme, no user, no port), e.g. address = "rv1.lab"')
    port = table.get("port", DEFAULT_SSH_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise bad("port", f"= {port!r} must be a TCP port, 1-65535 (default 22)")
    user = table.get("user", "")
    if not isinstance(user, str) or (user and not _USER.fullmatch(user)):
        raise bad("user", f"= {user!r} must be a login name (letters, digits, `._-`)")
    identity = None
    if "identity" in table:
        identity = _path(table["identity"], key="identity", base=base, bad=bad)
        try:
            mode = identity.stat()
        except OSError as error:
            raise bad("identity", f"= {table['identity']!r}: cannot read {identity}: {error.strerror}; "
                                  "point it at the node's private key") from None
        if not stat.S_ISREG(mode.st_mode):
            raise bad("identity", f"= {table['identity']!r}: {identity} is not a file")
        if mode.st_mode & 0o077:
            raise bad("identity", f"= {table['identity']!r}: {identity} is readable by others "
                                  f"(mode {stat.S_IMODE(mode.st_mode):04o}); run `chmod 600 {identity}`")
    host_key = table.get("host_key", "")
    if host_key:
        host_key = _host_key(host_key, bad=bad)
    elif "host_key" in table:
        raise bad("host_key", "is empty: give the key (`ssh-keyscan` prints it) or use known_hosts")
    known_hosts = None
    if "known_hosts" in table:
        known_hosts = _path(table["known_hosts"], key="known_hosts", base=base, bad=bad)
        if not known_hosts.is_file():
            raise bad("known_hosts", f"= {table['known_hosts']!r}: {known_hosts} is not a file")
    if not host_key and known_hosts is None:
        raise bad("host_key", f"is missing: crossyard connects only to a host whose key it knows; pin it "
                              f'(host_key = "ssh-ed25519 AAAA…", from `ssh-keyscan -p {port} {address}`) '
                              "or name a known_hosts file")
    dirs = {}
    for key in ("workdir", "roots"):
        value = table.get(key, "")
        # Paths on the node, used in its shell commands: absolute, normalized, never / itself.
        if not isinstance(value, str) or (key in table and (
                not value.startswith("/") or "\0" in value or posixpath.normpath(value) != value or value == "/")):
            raise bad(key, f"= {value!r} must be a normalized absolute directory on the node, other than /")
        dirs[key] = value
    keepalive = None
    if "keepalive" in table:
        keepalive = _seconds(table["keepalive"])
        if keepalive is None:
            raise bad("keepalive", f"= {table['keepalive']!r} must be the seconds between keepalives, "
                                   "more than 0 (e.g. keepalive = 5)")
    return replace(node, address=address.strip("[]"), port=port, user=user, identity=identity,
                   host_key=host_key, known_hosts=known_hosts, keepalive=keepalive,
                   workdir=dirs["workdir"], roots=dirs["roots"])


def _host_key(value: object, *, bad: Callable[[str, str], ConfigurationError]) -> str:
    """`TYPE BASE64 [comment]`, its blob well-formed (it names its own type first): a key pasted
    whole from `ssh-keyscan` with the host name in front is the usual mistake, and said so."""
    hint = ('must be one public host key, "TYPE BASE64" as `ssh-keyscan` prints it after the host name, '
            'e.g. host_key = "ssh-ed25519 AAAAC3Nza…"')
    if not isinstance(value, str):
        raise bad("host_key", f"= {value!r} {hint}")
    words = value.split()
    if len(words) >= 3 and words[1] in HOST_KEY_TYPES:
        raise bad("host_key", f"starts with `{words[0]}`: leave out the host name; {hint}")
    if len(words) < 2 or words[0] not in HOST_KEY_TYPES:
        raise bad("host_key", f"= {value[:40]!r}…: {hint} (types: {', '.join(HOST_KEY_TYPES)})")
    try:
        blob = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        raise bad("host_key", f"= {value[:40]!r}…: the key is not valid base64; {hint}") from None
    length = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if blob[4:4 + length] != words[0].encode():
        raise bad("host_key", f"= {value[:40]!r}…: the key's data is not a {words[0]} key; {hint}")
    return f"{words[0]} {words[1]}"


def _docker(node: Node, table: Mapping[str, Any], *, bad: Callable[[str, str], ConfigurationError],
            base: Path) -> Node:
    address = table.get("address")
    if not isinstance(address, str) or not _DOCKER_URL.fullmatch(address):
        raise bad("address", f"= {address!r} must be the engine's URL: unix:///run/docker.sock, "
                             "tcp://HOST:2376 (with cert_path) or ssh://USER@HOST")
    cert_path = None
    if "cert_path" in table:
        if not address.startswith("tcp://"):
            raise bad("cert_path", "applies to a tcp:// address only (unix:// and ssh:// need no certificate)")
        cert_path = _path(table["cert_path"], key="cert_path", base=base, bad=bad)
        missing = [f for f in ("ca.pem", "cert.pem", "key.pem") if not (cert_path / f).is_file()]
        if missing:
            raise bad("cert_path", f"= {table['cert_path']!r}: {cert_path} lacks {', '.join(missing)} "
                                   "(the CA, and the client certificate and key the engine trusts)")
    elif address.startswith("tcp://"):
        raise bad("cert_path", "is missing: a tcp:// engine is reached only over TLS with a client "
                               "certificate; name the directory holding ca.pem, cert.pem and key.pem")
    return replace(node, address=address, cert_path=cert_path)


def _buildkit(node: Node, table: Mapping[str, Any], *, bad: Callable[[str, str], ConfigurationError],
              base: Path) -> Node:
    address = table.get("address")
    if not isinstance(address, str) or not re.fullmatch(r"unix:///\S+|tcp://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", address):
        raise bad("address", f"= {address!r} must be buildkitd's address: unix:///run/buildkit/buildkitd.sock "
                             "or tcp://HOST:PORT (with ca, cert, key)")
    given = [k for k in ("ca", "cert", "key") if k in table]
    if address.startswith("unix://"):
        if given:
            raise bad(given[0], "applies to a tcp:// address only (a unix socket needs no certificate)")
        return replace(node, address=address)
    missing = [k for k in ("ca", "cert", "key") if k not in table]
    if missing:
        raise bad(missing[0], "is missing: crossyard reaches buildkitd over TCP only with mutual TLS; give ca "
                              "(the CA of buildkitd's certificate), cert and key (a client certificate, "
                              "`crossyard certs`)")
    files = {}
    for key in ("ca", "cert", "key"):
        path = _path(table[key], key=key, base=base, bad=bad)
        if not path.is_file():
            raise bad(key, f"= {table[key]!r}: {path} is not a file")
        files[key] = path
    from .buildkit.client import TlsFiles

    return replace(node, address=address, tls=TlsFiles(ca=files["ca"], cert=files["cert"], key=files["key"]))


# -- what probing finds ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NodeFacts:
    """What a probe read on a node."""

    uname_m: str
    arch: Platform | None  # `uname_m` as a platform; None for a machine crossyard does not know
    cores: int
    memory: int  # bytes
    toolchains: tuple[ToolchainTarget, ...] = ()  # the available ones, as probed there
    docker: str | None = None  # the engine's identity (`docker 26.1.5 (linux/amd64)`), if one answers
    buildkit: str | None = None  # a buildkit node's identity (`buildkit v0.13.2 …`)
    buildkit_platforms: tuple[Platform, ...] = ()  # its workers' platforms, its own first

    def to_json(self) -> dict[str, Any]:
        return {
            "uname_m": self.uname_m, "arch": self.arch.oci if self.arch else None, "cores": self.cores,
            "memory": self.memory, "docker": self.docker, "buildkit": self.buildkit,
            "buildkit_platforms": [p.oci for p in self.buildkit_platforms],
            "toolchains": [{
                "name": t.name, "kind": t.kind, "platform": t.platform.oci, "strategy": t.strategy,
                "identity": t.identity, "command": t.command, "version": t.version,
                "root": str(t.root) if t.root else None, "sysroot": t.sysroot, "linker": t.linker,
                "env": dict(t.env),
            } for t in self.toolchains],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeFacts:
        return cls(
            uname_m=str(data["uname_m"]), arch=Platform.parse(data["arch"]) if data.get("arch") else None,
            cores=int(data["cores"]), memory=int(data["memory"]), docker=data.get("docker"),
            buildkit=data.get("buildkit"),
            buildkit_platforms=tuple(Platform.parse(p) for p in data.get("buildkit_platforms", ())),
            toolchains=tuple(ToolchainTarget(
                name=t["name"], kind=t["kind"], platform=Platform.parse(t["platform"]), strategy=t["strategy"],
                available=True, identity=t["identity"], command=t.get("command", ""),
                version=t.get("version", ""), root=Path(t["root"]) if t.get("root") else None,
                sysroot=t.get("sysroot", ""), linker=t.get("linker"), env=dict(t.get("env", {})),
            ) for t in data.get("toolchains", ())),
        )


@dataclass(frozen=True, kw_only=True)
class NodeState:
    """The last probe of one node: ok (facts), unreachable or refused (error)."""

    node: str
    status: str  # ok | unreachable | refused
    probed: str  # RFC 3339, UTC
    facts: NodeFacts | None = None
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "probed": self.probed, "error": self.error or None,
                "facts": self.facts.to_json() if self.facts else None}

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> NodeState:
        facts = data.get("facts")
        return cls(node=name, status=str(data["status"]), probed=str(data["probed"]),
                   error=str(data.get("error") or ""), facts=NodeFacts.from_json(facts) if facts else None)


def state_path(workspace: Workspace) -> Path:
    return workspace.state / "nodes.json"


def read_states(path: Path) -> dict[str, NodeState]:
    """The last probe of each node; an unreadable or older file is no knowledge, not an error
    (it is a cache of what `nodes probe` saw, rewritten by the next probe)."""
    try:
        data = json.loads(path.read_text())
        if data.get("version") != STATE_VERSION:
            return {}
        return {name: NodeState.from_json(name, entry) for name, entry in data["nodes"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigurationError):
        return {}


def write_states(path: Path, states: Iterable[NodeState]) -> None:
    """Record `states`, keeping what the file knows of other nodes."""
    merged = read_states(path) | {s.node: s for s in states}
    data = {"version": STATE_VERSION, "nodes": {n: merged[n].to_json() for n in sorted(merged)}}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


class NodeProber(Protocol):
    """Reads what a node is, over its transport."""

    def probe(self, node: Node) -> NodeFacts:
        """Connect and read uname -m, cores, memory, toolchain identities, Docker presence;
        `NodeUnreachable` (saying why) when the node cannot be reached."""
        ...


class LocalProber:
    """This machine: the toolchain prober that planning uses, the Docker engine DOCKER_HOST names."""

    def __init__(self, toolchains: Prober, *, engine: Callable[[], str | None] | None = None) -> None:
        self.toolchains = toolchains
        self.engine = engine or _local_engine

    def probe(self, node: Node) -> NodeFacts:
        machine = os.uname().machine
        with _PROBING:
            found = tuple(t for d in self.toolchains.definitions for p in PLATFORMS.values()
                          if (t := self.toolchains.probe(d, p)).available)
            self.toolchains.cache.save()
        return NodeFacts(uname_m=machine, arch=_platform(machine), cores=os.cpu_count() or 1,
                         memory=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                         toolchains=found, docker=self.engine())


def _local_engine() -> str | None:
    """The identity of the engine DOCKER_HOST names, None when none answers."""
    import docker.errors

    from .engine import DockerEngine

    try:
        with DockerEngine.from_env(timeout=ENGINE_TIMEOUT_S) as engine:
            return engine.info().identity_text
    except (ConfigurationError, docker.errors.DockerException, OSError):
        return None  # no engine here: Dockerfile jobs go elsewhere


class DockerProber:
    """A Docker engine node, through the docker SDK: the engine's host is the node. Its
    toolchains are the ones a job can use in a container there (executors/container.py): each
    definition with a Debian root of the engine's arch (`root_platform`, or this machine's for a
    root prepared here without one), prepared here (the first job that needs it ships it) or
    held by the engine (one image of it, from an earlier run). A root prepared here is probed
    here, by the prober planning uses: the identity the plan keys with. One only the engine
    holds is probed in a container of its image. Host toolchains never: a container cannot
    carry this machine's compiler. Roots of another arch neither (they would run emulated)."""

    def __init__(self, toolchains: Prober | None = None, *, timeout: float = PROBE_TIMEOUT_S) -> None:
        self.toolchains = toolchains
        self.timeout = timeout

    def probe(self, node: Node) -> NodeFacts:
        import docker.errors

        from .engine import DockerEngine

        try:
            with DockerEngine.from_env(node.docker_env(), timeout=self.timeout) as engine:
                info = engine.info()
                system = engine.client.info()
                machine = str(system.get("Architecture") or info.platform.uname_m)
                arch = _platform(machine)
                # One whose arch is not the declared one is refused: its toolchains do not matter.
                toolchains = self._toolchains(engine.client.api, arch) if arch == node.arch else ()
        except (ConfigurationError, docker.errors.DockerException, OSError) as error:
            raise NodeUnreachable(f"{node.name}: the Docker engine at {node.address} does not answer: "
                                  f"{_first_line(error)}") from None
        return NodeFacts(uname_m=machine, arch=arch, cores=int(system.get("NCPU") or 1),
                         memory=int(system.get("MemTotal") or 0), toolchains=toolchains,
                         docker=info.identity_text)

    def _toolchains(self, api: Any, arch: Platform) -> tuple[ToolchainTarget, ...]:
        from .executors.container import LABEL_DIGEST, LABEL_ROOT

        if self.toolchains is None:
            return ()
        held: dict[str, dict[str, str]] = {}  # root name → its digests on the engine → image id
        for image in api.images(filters={"label": LABEL_ROOT}):
            labels = image.get("Labels") or {}
            held.setdefault(str(labels[LABEL_ROOT]), {})[str(labels.get(LABEL_DIGEST))] = str(image["Id"])
        found: list[ToolchainTarget] = []
        engine_only: dict[str, list[ToolchainDef]] = {}  # image id → the definitions of its root
        with _PROBING:
            for d in self.toolchains.definitions:
                root = d.root_path()
                if root is None:
                    continue
                if (root / "usr").is_dir():
                    if (d.root_platform or self.toolchains.host) != arch:
                        continue
                    found += [replace(t, strategy="native" if p == arch else "cross") for p in d.targets
                              if (t := self.toolchains.probe(d, p)).available]
                # As the container executor finds a root it cannot ship: exactly one image of it.
                elif len(images := held.get(root.name, {})) == 1 and d.root_platform in (None, arch):
                    engine_only.setdefault(next(iter(images.values())), []).append(d)
            self.toolchains.cache.save()
        roots = str(roots_dir())
        for image, definitions in engine_only.items():
            targets = remote_targets(definitions, arch, roots=roots, in_container=True,
                                     prepared=[r.name for d in definitions if (r := d.root_path())])
            commands = {shlex.join(argv): argv for t in targets for argv in (*t.version, *t.checks)}
            found += read_targets(targets, _in_image(api, image, commands), roots=roots)
        return tuple(found)


def _in_image(api: Any, image: str, commands: Mapping[str, Sequence[str]]) -> dict[str, str | None]:
    """The first line each command prints (stdout, else stderr) in a container of `image` on the
    engine, in a clean environment, without network; None for one that fails (or cannot run)."""
    import docker.errors

    from .executors.container import EXIT_WAIT_S
    from .executors.local import STANDARD_PATH

    answers: dict[str, str | None] = dict.fromkeys(commands)
    host_config = api.create_host_config(network_mode="none", read_only=True,
                                         tmpfs={"/tmp": "rw,nosuid,nodev,mode=1777"})
    try:
        container = str(api.create_container(image, command=["sleep", "infinity"], host_config=host_config,
                                             user="0:0", working_dir="/", labels={LABEL_PROBE: "1"})["Id"])
    except docker.errors.APIError:
        return answers  # an image that cannot be run: no toolchain from it
    try:
        api.start(container)
        for key, argv in commands.items():
            execution = str(api.exec_create(container, ["/usr/bin/env", "-i", f"PATH={STANDARD_PATH}",
                                                        "LC_ALL=C.UTF-8", *argv], workdir="/tmp")["Id"])
            out, err = api.exec_start(execution, demux=True)
            deadline = time.monotonic() + EXIT_WAIT_S
            while (state := api.exec_inspect(execution)).get("Running") and time.monotonic() < deadline:
                time.sleep(0.05)  # the output can end a moment before the exit code is recorded
            if state.get("ExitCode") == 0:
                text = (out or err or b"").decode(errors="replace").strip()
                answers[key] = text.splitlines()[0] if text else "unknown"
    except docker.errors.APIError:
        pass  # the rest count as failed
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(container, force=True, v=True)
    return answers


def ssh_node(node: Node) -> SshNode:
    """An `ssh` node as the SSH executor takes it (the inventory checked every value already)."""
    from .executors.ssh import DEFAULT_WORKDIR, SshNode

    return SshNode(name=node.name, host=node.address, arch=node.arch, port=node.port or DEFAULT_SSH_PORT,
                   user=node.user or getpass.getuser(), identity=node.identity, host_key=node.host_key or None,
                   known_hosts=node.known_hosts, roots=node.roots or DEFAULT_ROOTS,
                   workdir=node.workdir or DEFAULT_WORKDIR)


# The target's std for a toolchain with `target_probe` (rustc --print target-libdir …): a
# directory that exists and is not empty, as `Prober` checks it here.
_NONEMPTY_DIR: Final = 'd=$("$@") && [ -d "$d" ] && [ -n "$(ls -A "$d")" ] && echo "$d"'
_WHERE: Final = 'command -v "$1"'


@dataclass(frozen=True, kw_only=True)
class _RemoteTarget:
    """One toolchain definition for one platform on an SSH node: the commands that decide it."""

    definition: ToolchainDef
    platform: Platform
    strategy: str
    command: str
    root: str | None  # on the node
    version: tuple[tuple[str, ...], ...]  # the version commands (in the root, with bubblewrap)
    checks: tuple[tuple[str, ...], ...]  # each must succeed: requires, the target's std, the linker
    where: tuple[str, ...] | None  # prints the command's path on the node (None: in a root)
    linker: str | None


def remote_targets(definitions: Sequence[ToolchainDef], arch: Platform, *, roots: str,
                   prepared: Iterable[str], in_container: bool = False) -> list[_RemoteTarget]:
    """What to run on a node of `arch` to learn its toolchains, as `Prober` learns this
    machine's: each definition for each platform it targets, its strategy from the node's arch
    (native for the node's own platform, cross for another, emulated in a root of another arch),
    rooted ones only where the node has that root under `roots` (`prepared`: their names).
    `in_container`: the commands run in a container whose / is the root (a docker node's image
    of it), not under bubblewrap, and a path under the root is seen from /."""
    have = set(prepared)
    found = []
    for d in definitions:
        root_path = d.root_path(roots)
        if root_path is not None and root_path.name not in have:
            continue
        root = str(root_path) if root_path is not None else None
        runs_on = d.root_platform or arch
        for platform in d.targets:
            strategy = "emulated" if runs_on != arch else "native" if platform == arch else "cross"
            native_command = d.native_command if strategy == "native" else None
            command = d.render(native_command or d.command, platform, roots=roots)

            def inside(argv: Sequence[str], root: str | None = root) -> tuple[str, ...]:
                return tuple(argv) if in_container else tuple(in_root(Path(root) if root else None, argv))

            def seen(path: str, root: str | None = root) -> str:
                if in_container and root and (path + "/").startswith(root + "/"):
                    return "/" + path[len(root):].lstrip("/")
                return path

            version = tuple(inside([d.render(a, platform, command=command, roots=roots) for a in argv])
                            for argv in d.version)
            checks: list[tuple[str, ...]] = [] if native_command else [
                ("test", "-e", seen(d.render(r, platform, roots=roots))) for r in d.requires]
            if d.target_probe:
                checks.append(inside(["sh", "-c", _NONEMPTY_DIR, "sh",
                                      *(d.render(a, platform, roots=roots) for a in d.target_probe)]))
            linker = d.render(d.linker, platform, roots=roots) if d.linker and strategy == "cross" else None
            if linker is not None:
                checks.append(inside(["sh", "-c", _WHERE, "sh", linker]))
            found.append(_RemoteTarget(
                definition=d, platform=platform, strategy=strategy, command=command, root=root,
                version=version, checks=tuple(checks), linker=linker,
                where=None if root else ("sh", "-c", _WHERE, "sh", command)))
    return found


def read_targets(targets: Sequence[_RemoteTarget], answers: Mapping[str, str | None], *,
                 roots: str) -> tuple[ToolchainTarget, ...]:
    """The available toolchains among `targets`, from what their commands printed (`answers`,
    by `shlex.join` of each command; None: it failed), identities read as `Prober` reads them."""
    found = []
    for t in targets:
        d = t.definition
        lines = [answers[shlex.join(argv)] for argv in t.version]
        if any(line is None for line in lines) or any(answers[shlex.join(c)] is None for c in t.checks):
            continue
        text = [line for line in lines if line is not None]
        try:
            identity = normalize_identity(d.family, text)
        except ValueError:
            continue  # unreadable output: no identity, not usable (`nodes probe` locally says why)
        where = answers[shlex.join(t.where)] if t.where is not None else None
        found.append(ToolchainTarget(
            name=d.name, kind=d.kind, platform=t.platform, strategy=t.strategy, available=True,
            command=where if where and where.startswith("/") else t.command, version="; ".join(text),
            identity=identity, root=Path(t.root) if t.root else None,
            sysroot=d.render(d.sysroot, t.platform, roots=roots), linker=t.linker,
            env={k: d.render(v, t.platform, roots=roots) for k, v in d.env.items()},
        ))
    return tuple(found)


class SshProber:
    """An SSH node, through the SSH executor over one connection (its host key checked first:
    one that does not match is a `ConfigurationError` naming both fingerprints, and nothing
    runs there): what the machine is, then, if it is what it is declared, the version commands
    of every toolchain definition, run there in a clean environment."""

    def __init__(self, definitions: Sequence[ToolchainDef], *, connect_timeout: float | None = None) -> None:
        self.definitions = list(definitions)
        self.connect_timeout = connect_timeout

    def probe(self, node: Node) -> NodeFacts:
        from .executors.ssh import CONNECT_TIMEOUT_S, SshExecutor

        remote = ssh_node(node)
        try:
            with SshExecutor(remote, connect_timeout=self.connect_timeout or CONNECT_TIMEOUT_S) as executor:
                machine = executor.probe()
                toolchains: tuple[ToolchainTarget, ...] = ()
                if machine.platform == node.arch:  # otherwise refused: its toolchains do not matter
                    targets = remote_targets(self.definitions, node.arch, roots=remote.roots,
                                             prepared=machine.roots)
                    commands = {shlex.join(argv): argv for t in targets
                                for argv in (*t.version, *t.checks, *((t.where,) if t.where else ()))}
                    answers = executor.probe(commands).versions
                    toolchains = read_targets(targets, answers, roots=remote.roots)
        except NodeLost as error:
            raise NodeUnreachable(str(error)) from None
        return NodeFacts(uname_m=machine.machine, arch=machine.platform, cores=machine.cores,
                         memory=machine.memory, toolchains=toolchains)


class BuildKitProber:
    """A buildkitd: Info (its identity) and ListWorkers (its platforms, its own first: the node's
    arch). It runs builds, nothing else: no toolchains, no engine; its slots are `max_jobs` (1
    by default: buildkitd runs a solve's steps in parallel itself)."""

    def __init__(self, api: Callable[[], Api]) -> None:
        self.api = api

    def probe(self, node: Node) -> NodeFacts:
        from .buildkit.client import BuildKitError
        from .buildkit.endpoints import probe

        try:
            info = probe(node.endpoint(), self.api())
        except BuildKitError as error:
            raise NodeUnreachable(f"{node.name}: buildkitd at {node.address} does not answer: "
                                  f"{_first_line(str(error).partition(': ')[2] or error)}") from None
        native = info.native
        return NodeFacts(uname_m=native.uname_m if native else "unknown", arch=native, cores=1, memory=0,
                         buildkit=info.identity_text, buildkit_platforms=info.platforms)


def probers(toolchains: Prober, api: Callable[[], Api] | None = None) -> dict[str, NodeProber]:
    """The prober per transport (the plug-in table); `api`: BuildKit's, for `buildkit` nodes."""
    def no_api() -> Api:
        raise NodeUnreachable("BuildKit's API was not loaded for this probe")

    return {"local": LocalProber(toolchains), "docker": DockerProber(toolchains),
            "ssh": SshProber(toolchains.definitions), "buildkit": BuildKitProber(api or no_api)}


def _platform(machine: str) -> Platform | None:
    try:
        return Platform.parse(machine)
    except ConfigurationError:
        return None


def _first_line(error: object) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def probe_nodes(nodes: Sequence[Node], table: Mapping[str, NodeProber], *,
                timeout: float = PROBE_TIMEOUT_S) -> list[NodeState]:
    """Probe `nodes` side by side; each one's state, in their order. A node that does not answer
    within `timeout` is unreachable; one whose probed arch is not the declared one is refused, as
    is one that cannot be trusted or logged into (its host key, our key: a `ConfigurationError`)."""
    if not nodes:
        return []
    pool = ThreadPoolExecutor(max_workers=min(16, len(nodes)), thread_name_prefix="probe")
    try:
        futures = [pool.submit(table[node.transport].probe, node) for node in nodes]
        states = []
        deadline = time.monotonic() + timeout
        for node, future in zip(nodes, futures, strict=True):
            try:
                facts = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                states.append(NodeState(node=node.name, status="unreachable", probed=_now(),
                                        error=f"{node.name}: no answer from {node.where} within {timeout:.0f}s"))
                continue
            except NodeUnreachable as error:
                states.append(NodeState(node=node.name, status="unreachable", probed=_now(), error=str(error)))
                continue
            except ConfigurationError as error:  # a host key that does not match, a key not accepted
                states.append(NodeState(node=node.name, status="refused", probed=_now(), error=str(error)))
                continue
            states.append(_checked(node, facts))
        return states
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _checked(node: Node, facts: NodeFacts) -> NodeState:
    if facts.arch != node.arch and not node.implicit:  # BUILDKIT_HOST's arch is what it probes as
        known = facts.arch.oci if facts.arch else "unknown to crossyard"
        probed = f"{facts.uname_m} ({known})"
        return NodeState(node=node.name, status="refused", probed=_now(), facts=facts, error=(
            f"node `{node.name}` ({node.where}) is declared {node.arch.oci} but probes as {probed}; "
            "correct its `arch` in crossyard.toml, or its address if it points at the wrong machine"
        ))
    return NodeState(node=node.name, status="ok", probed=_now(), facts=facts)


def refuse_mismatched(states: Iterable[NodeState], *, file: Path) -> None:
    """A `ConfigurationError` (exit 2) naming every refused node: its probed arch is not the
    declared one, or (no facts) it was not trusted or did not let us in."""
    refused = [s.error for s in states if s.status == "refused"]
    if refused:
        raise ConfigurationError(f"{file}: " + "\n".join(refused))


# -- the members a build runs on -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Member:
    """A node taking part in a run: its slots, the executors that reach it, what it has."""

    node: Node
    slots: int
    executors: tuple[Executor, ...] = ()
    # None: the machine the plan was made on, whose toolchains are the plan's by construction.
    facts: NodeFacts | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def holds_store(self) -> bool:
        """Jobs here read their inputs from the store without any transfer."""
        return self.node.transport == "local"


@dataclass(frozen=True, kw_only=True)
class Cluster:
    members: tuple[Member, ...]
    warnings: tuple[str, ...] = ()  # nodes left out of this run, and why
    states: tuple[NodeState, ...] = ()

    def close(self) -> None:
        """End what the members' executors hold open (an SSH node's connection and its thread)."""
        for member in self.members:
            for executor in member.executors:
                close = getattr(executor, "close", None)
                if close is not None:
                    close()


class Transport(Protocol):
    def executors(self, node: Node, facts: NodeFacts, workspace: Workspace) -> tuple[Executor, ...]:
        """The executors that run jobs on `node` (empty: this build cannot run jobs there)."""
        ...


class _DockerTransport:
    def executors(self, node: Node, facts: NodeFacts, workspace: Workspace) -> tuple[Executor, ...]:
        from .engine import DockerEngine
        from .executors.container import ContainerExecutor, DockerNode
        from .executors.docker import EngineExecutor

        env = node.docker_env()
        # Dockerfile builds on the engine itself; toolchain jobs in a container of their root.
        executor = EngineExecutor(connect=lambda: DockerEngine.from_env(env))
        executor.node = f"docker:{node.name}"
        remote = DockerNode(name=node.name, host=node.address, cert_path=node.cert_path)
        return (executor, ContainerExecutor(remote))


class _BuildKitTransport:
    def executors(self, node: Node, facts: NodeFacts, workspace: Workspace) -> tuple[Executor, ...]:
        from .buildkit.endpoints import load_api
        from .executors.buildkit import BuildKitExecutor

        if facts.buildkit is None:
            return ()
        return (BuildKitExecutor(node.endpoint(), load_api(workspace), identity=facts.buildkit,
                                 platforms=facts.buildkit_platforms),)


class _SshTransport:
    def executors(self, node: Node, facts: NodeFacts, workspace: Workspace) -> tuple[Executor, ...]:
        from .executors.ssh import KEEPALIVE_INTERVAL_S, SshExecutor

        return (SshExecutor(ssh_node(node), scratch=workspace.state / "ssh",
                            keepalive_interval=node.keepalive or KEEPALIVE_INTERVAL_S),)


TRANSPORT_EXECUTORS: Final[Mapping[str, Transport]] = {
    "docker": _DockerTransport(), "ssh": _SshTransport(), "buildkit": _BuildKitTransport(),
}


def local_executors(workspace: Workspace) -> tuple[Executor, ...]:
    """This machine for toolchain jobs, the DOCKER_HOST engine for Dockerfile builds."""
    from .executors.docker import EngineExecutor
    from .executors.local import LocalExecutor

    return (LocalExecutor(cache_root=workspace.toolchain_cache_dir), EngineExecutor())


def connect(nodes: Sequence[Node], *, workspace: Workspace, toolchains: Prober,
            table: Mapping[str, NodeProber] | None = None,
            transports: Mapping[str, Transport] = TRANSPORT_EXECUTORS,
            timeout: float = PROBE_TIMEOUT_S) -> Cluster:
    """The members of a run: this machine as it is (the plan was made here), every other node
    probed now. A node that does not answer, that is not trusted (its host key) or that this
    build has no executor for is left out with a warning, and nothing runs there; one whose arch
    is not the declared one stops the run (exit 2: the inventory is wrong). `Cluster.close`
    ends the connections to the members when the run is over."""
    from .buildkit.endpoints import load_api

    remote = [n for n in nodes if n.transport != "local"]
    if table is None:
        table = probers(toolchains, lambda: load_api(workspace))
    states = probe_nodes(remote, table, timeout=timeout)
    if states:
        write_states(state_path(workspace), states)
    refuse_mismatched([s for s in states if s.facts is not None], file=workspace.config_path)
    by_name = {s.node: s for s in states}
    members: list[Member] = []
    warnings: list[str] = []
    for node in nodes:
        if node.transport == "local":
            members.append(Member(node=node, slots=node.max_jobs or os.cpu_count() or 1,
                                  executors=local_executors(workspace)))
            continue
        state = by_name[node.name]
        if state.facts is None:
            warnings.append(f"node {node.name} left out of this run: {state.error}")
            continue
        executors = transports[node.transport].executors(node, state.facts, workspace)
        if not executors:
            warnings.append(f"node {node.name} left out of this run: this build of crossyard cannot run "
                            f"jobs over `{node.transport}` yet")
            continue
        if node.implicit and state.facts.arch is not None:
            node = replace(node, arch=state.facts.arch)  # BUILDKIT_HOST: what it probed as
        members.append(Member(node=node, slots=node.max_jobs or state.facts.cores, executors=executors,
                              facts=state.facts))
    return Cluster(members=tuple(members), warnings=tuple(warnings), states=tuple(states))
