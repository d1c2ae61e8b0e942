"""Run a job on another machine over SSH, as the local executor runs one here.

The node is plain data (`SshNode`); its host key is always checked, against a pinned key or a
known_hosts file, and a key that does not match refuses the node before anything runs there. On
the node, everything lives under its work directory:

- `cas/<sha256 hex>`: the node's content cache. A job's inputs go there once per node and are
  named by their sha256: the source as a deterministic tar (entries sorted, modes 0755/0644,
  mtime 0, numeric owners; made here once per source digest), dependency files as they are in
  the store. Before sending, the node is asked which it already has; what is sent is uploaded
  under a temporary name, hashed on the node and renamed only if the hash matches.
- `jobs/job-XXXXXXXX/`: one directory per job (src, out, deps, home, tmp), removed afterwards,
  also when the build failed.
- `cache/<toolchain>/`: what a toolchain keeps between jobs (GOCACHE and the like).

A toolchain root the node lacks (`<roots>/<name>` without usr/) is shipped once from this
machine's roots directory: its deterministic tar (`shipping.write_root`, named by its digest) is
streamed into `tar -x` on the node and hashed there on the way, into a temporary directory that
becomes `<roots>/<name>` only when the hash is the digest (`.<name>.digest` beside it says
which). A root for another architecture than the node's is not shipped.

Steps run as local ones do: the same clean environment (`env -i`), a toolchain root under the
node's roots directory through the same bubblewrap call, each step in a session of its own
(`setsid`), whose id the executor keeps so `cancel` can signal the whole process group on the
node. Output streams into the local log as it arrives. Outputs are fetched over SFTP and hashed
here: the digest the store records is this machine's, and one the node reports that differs is
an `IntegrityError`. A connection that drops, a keepalive that goes unanswered, an sshd that
dies: `NodeLost`, which the scheduler may retry elsewhere; a failed step stays a `BuildError`.

asyncssh runs in a private event loop on a thread of its own, so the `Executor` protocol stays
synchronous; one connection per node carries every job's channels and one SFTP session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import asyncssh

from ..errors import BuildError, ConfigurationError, IntegrityError, NodeLost
from ..fsutil import atomic_writer
from ..hashing import sha256_file, split_digest
from ..jobspec import PLAIN_NAME_RE, Inputs, JobPaths, JobSpec, plain_name, unplain_input
from ..platforms import Platform
from ..sources import ResolvedSource
from ..toolchains import DEFAULT_ROOTS, roots_dir
from . import Outputs
from .local import CANCEL_GRACE_S, STANDARD_PATH, Command, commands, job_view, output_path, tail
from .shipping import RootArchive, root_archive, source_archive

DEFAULT_WORKDIR: Final = "/var/tmp/crossyard"
CONNECT_TIMEOUT_S: Final = 15.0
KEEPALIVE_INTERVAL_S: Final = 10.0
KEEPALIVE_COUNT: Final = 3  # unanswered keepalives before the node counts as lost
# sshd refuses a session past its MaxSessions (10 by default) with `open failed`, which would
# count as the node lost. A job holds one session at a time (a step holds one while it runs), so a
# connection carries at most JOBS_PER_CONNECTION jobs, and as many other sessions at once (a
# probe's version commands), plus its one SFTP session and one to kill process groups with: 6.
# The rest is margin: sshd frees a session only once its process is reaped, a moment after the
# client saw it close. A node with more slots gets more connections.
JOBS_PER_CONNECTION: Final = 4
CHUNK: Final = 1 << 16
# Facts an SSH job adds to its outputs (seconds as text, as every fact is).
FACT_SHIP_SECONDS: Final = "ssh.ship-seconds"
FACT_BUILD_SECONDS: Final = "ssh.build-seconds"
FACT_SENT: Final = "ssh.sent"  # blobs uploaded for this job
FACT_REUSED: Final = "ssh.reused"  # blobs the node already had
FACT_ROOT_SENT: Final = "ssh.root-bytes-sent"  # the toolchain root's tar, when this job shipped it
FACT_ROOT_SECONDS: Final = "ssh.root-seconds"

# One step, started by `setsid -w env -i … /bin/sh -c STEP sh CWD ARGV…`: the shell is the new
# session's leader, so its pid (the first line it prints) is the process group `cancel` signals.
_STEP: Final = 'echo "$$"; umask 022; cd "$1" || exit 126; shift; exec "$@" </dev/null 2>&1'

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class SshNode:
    """A machine reached by SSH, as the inventory declares it."""

    name: str
    host: str
    arch: Platform  # declared; `probe` says what the node really is
    port: int = 22
    user: str = "root"
    identity: Path | None = None  # private key file; None: asyncssh's defaults (~/.ssh, agent)
    host_key: str | None = None  # pinned, an OpenSSH public key line (`ssh-ed25519 AAAA… c`)
    known_hosts: Path | None = None  # or a known_hosts file that lists the node
    roots: str = DEFAULT_ROOTS  # prepared toolchain roots, on the node
    workdir: str = DEFAULT_WORKDIR  # the node's content cache, job and toolchain cache dirs

    def __post_init__(self) -> None:
        if self.host_key is None and self.known_hosts is None:
            raise ConfigurationError(
                f"ssh node `{self.name}` ({self.where}) has neither a pinned host key nor a "
                "known_hosts file: add `host_key` (its line from `ssh-keyscan -p PORT HOST`, "
                "checked out of band) or `known_hosts`; crossyard never connects unverified")
        for what, path in (("workdir", self.workdir), ("roots", self.roots)):
            if not path.startswith("/") or "\0" in path or posixpath.normpath(path) != path or path == "/":
                raise ConfigurationError(
                    f"ssh node `{self.name}`: `{what}` must be a normalized absolute directory "
                    f"other than /, not {path!r}")

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class NodeProbe:
    """What a node is, as it says itself."""

    node: str
    machine: str  # `uname -m`
    platform: Platform | None  # the machine as a platform, None if crossyard does not know it
    cores: int  # `nproc`
    memory: int  # bytes (MemTotal)
    versions: Mapping[str, str | None]  # first line of each version command; None: it failed
    docker: bool  # a `docker` command on the node's PATH
    roots: tuple[str, ...]  # prepared toolchain roots under the node's roots directory


@dataclass(frozen=True, kw_only=True)
class _Blob:
    hex: str
    local: Path


@dataclass(frozen=True, kw_only=True)
class _Shipped:
    sent: list[str]  # blobs uploaded for the job
    reused: list[str]  # blobs the node had


class _Client(asyncssh.SSHClient):
    """Remembers the host key a node offered when it was not the trusted one (asyncssh asks
    the client only then), and whether the connection is gone."""

    def __init__(self) -> None:
        self.offered: asyncssh.SSHKey | None = None
        self.closed = False
        self.reason: Exception | None = None  # why it closed ("not responding to keepalive")

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.offered = key
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed, self.reason = True, exc


@dataclass(eq=False, kw_only=True)
class _Lane:
    """One connection to the node, the jobs on it, and its sessions' limits."""

    conn: asyncssh.SSHClientConnection
    client: _Client
    jobs: int = 0
    sftp: asyncssh.SFTPClient | None = None
    sftp_starting: asyncio.Lock = field(default_factory=asyncio.Lock)
    sessions: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(JOBS_PER_CONNECTION))
    killing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    @property
    def lost(self) -> bool:
        return self.client.closed


class SshExecutor:
    """Runs jobs on one SSH node. `close()` (or `with`) ends its connections and the loop."""

    name = "ssh"

    def __init__(self, remote: SshNode, *, scratch: Path | None = None, local_roots: Path | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S,
                 keepalive_interval: float = KEEPALIVE_INTERVAL_S,
                 keepalive_count: int = KEEPALIVE_COUNT,
                 cancel_grace: float = CANCEL_GRACE_S) -> None:
        self.remote = remote
        self.node = f"ssh:{remote.name}"
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self.cancel_grace = cancel_grace
        # This machine's side, a directory of its own under `scratch` (or the temp dir) until
        # `close`: source archives (made once per source digest) and fetched outputs.
        self._scratch_parent = scratch
        self._scratch: Path | None = None
        self.sent: list[str] = []  # sha256 of every blob uploaded to the node, in order
        self.local_roots = local_roots or roots_dir()  # prepared here: shipped to a node lacking one
        self.roots_sent: list[str] = []  # digests of the toolchain roots shipped to the node
        self._lock = threading.Lock()
        self._archives: dict[str, _Blob] = {}
        self._pgids: set[int] = set()
        self._cancelled = False
        self._refusal: str | None = None  # a host key that did not match: nothing runs here
        self._roots: frozenset[str] | None = None
        # asyncssh objects below belong to the loop thread.
        self._lanes: dict[asyncssh.SSHClientConnection, _Lane] = {}  # the live connections
        self._connecting = asyncio.Lock()
        self._uploading: dict[str, asyncio.Lock] = {}
        self._present: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"ssh-{remote.name}",
                                        daemon=True)
        self._thread.start()

    # -- the synchronous face ---------------------------------------------------------------

    def __enter__(self) -> SshExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._disconnect(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def refuses(self, spec: JobSpec) -> str | None:
        if self._refusal is not None:
            return self._refusal
        if spec.docker is not None:
            return "a Dockerfile build needs a Docker engine"
        if spec.toolchain.strategy == "native" and spec.platform != self.remote.arch:
            return (f"a native build for {spec.platform} needs a {spec.platform} node; "
                    f"{self.remote.name} is {self.remote.arch}")
        if spec.toolchain.root is not None:
            try:
                roots = self._node_roots()
            except (ConfigurationError, NodeLost) as error:
                return str(error)
            if spec.toolchain.root not in roots:
                return self._unshippable(spec)
        return None

    def _unshippable(self, spec: JobSpec) -> str | None:
        """Why the spec's root, which the node lacks, cannot be shipped there (None: it can)."""
        tool = spec.toolchain
        assert tool.root is not None
        there = f"toolchain root {posixpath.join(self.remote.roots, tool.root)} is not prepared on {self.remote.name}"
        runs_on = Platform.parse(tool.root_platform) if tool.root_platform else Platform.host()
        if not plain_name(tool.root):
            return f"{there}, and {tool.root!r} is not a plain directory name to ship it as"
        if not (self.local_roots / tool.root / "usr").is_dir():
            return (f"{there}, nor here to ship it from ({self.local_roots / tool.root}: `crossyard "
                    f"toolchains prepare {tool.name}`)")
        if runs_on != self.remote.arch:
            return f"{there}; the one here is {runs_on} and would need emulation on a {self.remote.arch} node"
        return None

    def probe(self, versions: Mapping[str, Sequence[str]] | None = None) -> NodeProbe:
        """`uname -m`, cores, memory, Docker and prepared roots, and the first line of each
        version command (argv, run in a clean environment on the node's PATH)."""
        return self._call(self._probe(dict(versions or {})))

    def cancel(self) -> None:
        """Stop the jobs running now (SIGTERM to each step's process group on the node, SIGKILL
        after the grace period) and refuse new ones; the jobs fail and remove their directories."""
        with self._lock:
            self._cancelled = True
            pgids = sorted(self._pgids)
        if pgids and not self._loop.is_closed():
            with contextlib.suppress(ConfigurationError, BuildError, TimeoutError, OSError, asyncssh.Error):
                self._call(self._kill(pgids), timeout=self.cancel_grace + self.connect_timeout + 10)

    @contextlib.contextmanager
    def run(self, spec: JobSpec, inputs: Inputs, log: Path) -> Iterator[Outputs]:
        """Ship, build, fetch; yield the outputs (local files until the block ends)."""
        if self._cancelled:
            raise BuildError(f"{spec.id}: cancelled", log=log)
        self._call(self._connection())  # a host key that does not match stops here
        refused = self.refuses(spec)
        if refused is not None:
            raise BuildError(f"{spec.id}: {refused}")
        unplain = unplain_input(spec)
        if unplain is not None:
            raise BuildError(f"{spec.id}: {unplain}")
        if not PLAIN_NAME_RE.match(spec.toolchain.name):
            raise BuildError(f"{spec.id}: toolchain name {spec.toolchain.name!r} is not a plain name")
        archive = self._archive(inputs.source(spec.source))
        blobs = [archive, *(_Blob(hex=split_digest(i.digest)[1], local=inputs.file(i.digest))
                            for i in spec.inputs)]
        # The root's digest is taken here, not on the loop: seconds of reading for the first job.
        ship = None
        if spec.toolchain.root is not None and spec.toolchain.root not in self._node_roots():
            ship = root_archive(self.local_roots / spec.toolchain.root)
        fetched = Path(tempfile.mkdtemp(prefix="job-", dir=self._scratch_dir()))
        try:
            yield self._call(self._job(spec, archive, blobs, log, fetched, ship))
        finally:
            shutil.rmtree(fetched, ignore_errors=True)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()  # Ctrl-C here: the job's own cleanup runs on the loop
            raise

    def _scratch_dir(self) -> Path:
        with self._lock:
            if self._scratch is None:
                if self._scratch_parent is not None:
                    self._scratch_parent.mkdir(parents=True, exist_ok=True)
                self._scratch = Path(tempfile.mkdtemp(prefix=f"ssh-{self.remote.name}-",
                                                      dir=self._scratch_parent))
            return self._scratch

    def _archive(self, source: ResolvedSource) -> _Blob:
        """The source's deterministic tar on this machine, made once per source digest."""
        with self._lock:
            found = self._archives.get(source.digest)
        if found is not None:
            return found
        path = self._scratch_dir() / "archives" / f"{split_digest(source.digest)[1]}.tar"
        with atomic_writer(path) as out:
            source_archive(source, out)
        blob = _Blob(hex=split_digest(sha256_file(path))[1], local=path)
        with self._lock:
            return self._archives.setdefault(source.digest, blob)

    def _node_roots(self) -> frozenset[str]:
        if self._roots is None:
            self._roots = frozenset(self._call(self._list_roots()))
        return self._roots

    # -- on the loop ------------------------------------------------------------------------

    def _dirs(self) -> tuple[str, str, str]:
        work = self.remote.workdir
        return f"{work}/cas", f"{work}/jobs", f"{work}/cache"

    def _lost(self, conn: asyncssh.SSHClientConnection) -> bool:
        lane = self._lanes.get(conn)
        return lane is None or lane.lost

    async def _connection(self, *, job: bool = False) -> asyncssh.SSHClientConnection:
        """A live connection (the first, or a new one); `job`: one with room for another job,
        counted on it until `_release`."""
        async with self._connecting:
            for conn, old in list(self._lanes.items()):
                if old.lost:
                    del self._lanes[conn]
            lane = next((lane for lane in self._lanes.values() if not job or lane.jobs < JOBS_PER_CONNECTION),
                        None)
            if lane is None:
                lane = await self._connect()
                self._lanes[lane.conn] = lane
            lane.jobs += job
            return lane.conn

    def _release(self, conn: asyncssh.SSHClientConnection) -> None:
        """A job on `conn` ended."""
        lane = self._lanes.get(conn)
        if lane is not None:
            lane.jobs -= 1

    async def _connect(self) -> _Lane:
        if self._refusal is not None:
            raise ConfigurationError(self._refusal)
        node = self.remote
        client = _Client()
        try:
            conn = await asyncssh.connect(
                node.host, node.port, username=node.user, client_factory=lambda: client,
                known_hosts=self._trusted(), config=[], preferred_auth="publickey",
                client_keys=() if node.identity is None else [self._identity()],
                connect_timeout=self.connect_timeout,
                keepalive_interval=self.keepalive_interval,
                keepalive_count_max=self.keepalive_count,
            )
        except asyncssh.HostKeyNotVerifiable:
            self._refusal = self._mismatch(client.offered)
            raise ConfigurationError(self._refusal) from None
        except asyncssh.PermissionDenied:
            raise ConfigurationError(
                f"ssh node `{node.name}` ({node.where}) did not accept the key "
                f"{node.identity or '(asyncssh defaults)'}: add its public half to the node's "
                "authorized_keys, or set `identity`") from None
        except (OSError, asyncssh.Error) as error:  # refused, unreachable, timed out
            raise NodeLost(f"cannot reach ssh node `{node.name}` ({node.where}): "
                           f"{_reason(error)}") from None
        return _Lane(conn=conn, client=client)

    def _trusted(self) -> Any:
        """What asyncssh checks the node's host key against (never None: never unverified)."""
        node = self.remote
        if node.host_key is None:
            assert node.known_hosts is not None
            if not node.known_hosts.is_file():
                raise ConfigurationError(f"ssh node `{node.name}`: known_hosts file {node.known_hosts} "
                                         "does not exist")
            return str(node.known_hosts)
        return ([self._pinned()], [], [])

    def _identity(self) -> asyncssh.SSHKey:
        node = self.remote
        assert node.identity is not None
        try:
            return asyncssh.read_private_key(str(node.identity))
        except (OSError, asyncssh.KeyImportError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            raise ConfigurationError(f"ssh node `{node.name}`: cannot use identity file {node.identity}: "
                                     f"{reason} (an unencrypted OpenSSH private key, mode 0600)") from None

    def _pinned(self) -> asyncssh.SSHKey:
        node = self.remote
        assert node.host_key is not None
        try:
            return asyncssh.import_public_key(node.host_key)
        except (asyncssh.KeyImportError, ValueError):
            raise ConfigurationError(
                f"ssh node `{node.name}`: host_key is not an OpenSSH public key line "
                "(`ssh-ed25519 AAAA…`, as `ssh-keyscan` prints it without the host name)") from None

    def _expected(self) -> list[str]:
        node = self.remote
        if node.host_key is not None:
            return [f"{self._pinned().get_fingerprint()} (pinned host_key)"]
        assert node.known_hosts is not None
        listed = asyncssh.read_known_hosts(str(node.known_hosts)).match(node.host, "", node.port)[0]
        return [f"{key.get_fingerprint()} ({node.known_hosts})" for key in listed] or [
            f"none: {node.known_hosts} does not list {node.host} port {node.port}"]

    def _mismatch(self, offered: asyncssh.SSHKey | None) -> str:
        node = self.remote
        shown = offered.get_fingerprint() if offered is not None else "no key of the expected type"
        return (f"ssh node `{node.name}` ({node.where}) is refused: its host key does not match. "
                f"Expected {', '.join(self._expected())}; the node offered {shown}. Nothing was "
                "run there. If the node was reinstalled, check its new key out of band and update "
                "`host_key` (or its known_hosts line); if not, something else answers at that address")

    async def _disconnect(self) -> None:
        lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(lane.conn.wait_closed() for lane in lanes)), 5)

    async def _sftp_client(self, conn: asyncssh.SSHClientConnection) -> asyncssh.SFTPClient:
        """The SFTP session of `conn` (one per connection, shared by its jobs: jobs asking at once
        would each start one, and every one is a session under sshd's MaxSessions)."""
        lane = self._lane(conn)
        async with lane.sftp_starting:
            if lane.sftp is None:
                lane.sftp = await conn.start_sftp_client()
            return lane.sftp

    def _lane(self, conn: asyncssh.SSHClientConnection) -> _Lane:
        lane = self._lanes.get(conn)
        if lane is None:  # dropped since: the session fails as the connection did
            raise asyncssh.ConnectionLost("the connection to the node was lost")
        return lane

    @contextlib.asynccontextmanager
    async def _session(self, conn: asyncssh.SSHClientConnection, *, kill: bool = False) -> AsyncIterator[None]:
        """Room for one more session on `conn` (`kill`: the one kept for killing)."""
        lane = self._lane(conn)
        async with lane.killing if kill else lane.sessions:
            yield

    async def _sh(self, conn: asyncssh.SSHClientConnection, script: str, *, check: bool = True,
                  kill: bool = False) -> str:
        """Run `script` with the node's shell; its stdout. A failure is a `BuildError`."""
        async with self._session(conn, kill=kill):
            result = await conn.run(script, stdin=asyncssh.DEVNULL, encoding="utf-8", errors="replace")
        if result.exit_status is None and result.exit_signal is None:
            raise asyncssh.ConnectionLost("the session ended without an exit status")
        if check and result.exit_status != 0:
            raise BuildError(f"on ssh node `{self.remote.name}`: `{script.splitlines()[0][:80]}` "
                             f"exited with status {result.exit_status}: {str(result.stderr).strip()}")
        return str(result.stdout)

    async def _list_roots(self) -> list[str]:
        roots = shlex.quote(self.remote.roots)
        try:
            out = await self._sh(await self._connection(),
                                 f'for d in {roots}/*/usr; do [ -d "$d" ] && basename "$(dirname "$d")"; done; true')
        except (asyncssh.Error, ConnectionError, TimeoutError) as error:
            raise NodeLost(f"lost ssh node `{self.remote.name}` ({self.remote.where}): {_reason(error)}") from None
        return out.split()

    async def _probe(self, versions: dict[str, Sequence[str]]) -> NodeProbe:
        try:
            conn = await self._connection()
            out = await self._sh(conn, "uname -m; nproc; grep -i '^MemTotal:' /proc/meminfo; "
                                 "if command -v docker >/dev/null 2>&1; then echo docker; else echo none; fi")
            machine, cores, memory, docker = out.splitlines()[:4]
            roots = await self._list_roots()
            found = await asyncio.gather(*(self._version(conn, argv) for argv in versions.values()))
        except (asyncssh.Error, ConnectionError, TimeoutError) as error:
            raise NodeLost(f"lost ssh node `{self.remote.name}` ({self.remote.where}) during the probe: "
                           f"{_reason(error)}") from None
        try:
            platform: Platform | None = Platform.parse(machine)
        except ConfigurationError:
            platform = None
        return NodeProbe(node=self.node, machine=machine, platform=platform, cores=int(cores),
                         memory=int(memory.split()[1]) * 1024, versions=dict(zip(versions, found, strict=True)),
                         docker=docker == "docker", roots=tuple(sorted(roots)))

    async def _version(self, conn: asyncssh.SSHClientConnection, argv: Sequence[str]) -> str | None:
        command = shlex.join(["env", "-i", f"PATH={STANDARD_PATH}", "LC_ALL=C.UTF-8", *argv])
        async with self._session(conn):
            result = await conn.run(command, stdin=asyncssh.DEVNULL, encoding="utf-8", errors="replace")
        if result.exit_status != 0:
            return None
        text = (str(result.stdout) or str(result.stderr)).strip()
        return text.splitlines()[0] if text else "unknown"

    async def _kill(self, pgids: list[int]) -> None:
        """SIGTERM each process group, SIGKILL what is left after the grace period. `kill -SIG
        -PGID` without `--`: dash's builtin (the riscv64 root's /bin/sh) refuses `--`."""
        groups = " ".join(f"-{p}" for p in pgids)
        script = f"""for g in {groups}; do kill -TERM $g 2>/dev/null; done
i=0
while [ $i -lt {max(1, int(self.cancel_grace * 10))} ]; do
  alive=
  for g in {groups}; do kill -0 $g 2>/dev/null && alive=1; done
  [ -z "$alive" ] && exit 0
  sleep 0.1; i=$((i+1))
done
for g in {groups}; do kill -KILL $g 2>/dev/null; done
true"""
        await self._sh(await self._connection(), script, check=False, kill=True)

    async def _ship(self, conn: asyncssh.SSHClientConnection, blobs: list[_Blob]) -> _Shipped:
        """Put every blob into the node's content cache unless it is there already: one command
        asks which are there (and drops uploads an earlier lost connection left half-done), the
        rest go up over SFTP together and one more command checks and renames them."""
        cas = shlex.quote(self._dirs()[0])
        unique = {b.hex: b for b in blobs}
        listed = await self._sh(
            conn, f"mkdir -p {cas} && cd {cas} && find . -maxdepth 1 -name '.*.part' -mmin +60 -delete; "
                  f"for h in {' '.join(sorted(unique))}; do [ -f \"$h\" ] && echo \"$h\"; done; true")
        missing = sorted(set(unique) - set(listed.split()) - self._present)
        sent: list[_Blob] = []
        async with contextlib.AsyncExitStack() as held:
            for hexdigest in missing:  # in sorted order, so two jobs never wait on each other
                await held.enter_async_context(self._uploading.setdefault(hexdigest, asyncio.Lock()))
            sent = [unique[h] for h in missing if h not in self._present]  # or another job sent it
            if sent:
                await self._upload(conn, sent)
            self._present.update(unique)
        return _Shipped(sent=[b.hex for b in sent], reused=sorted(set(unique) - {b.hex for b in sent}))

    async def _upload(self, conn: asyncssh.SSHClientConnection, blobs: list[_Blob]) -> None:
        cas = self._dirs()[0]
        sftp = await self._sftp_client(conn)
        temps = {b.hex: f"{cas}/.{b.hex}.{os.urandom(4).hex()}.part" for b in blobs}
        await asyncio.gather(*(sftp.put(str(b.local), temps[b.hex]) for b in blobs))
        check = [f'h=$(sha256sum -- {shlex.quote(t)} | cut -d" " -f1); if [ "$h" = {h} ]; then '
                 f'mv -f -- {shlex.quote(t)} {shlex.quote(f"{cas}/{h}")}; else rm -f -- {shlex.quote(t)}; '
                 f'echo "{h} $h"; fi' for h, t in temps.items()]
        wrong = (await self._sh(conn, "\n".join(check))).split()  # pairs: sent, arrived
        if wrong:
            raise IntegrityError(f"ssh node `{self.remote.name}`: sha256:{wrong[0]} was sent and "
                                 f"arrived as sha256:{wrong[1] if len(wrong) > 1 else '?'}")
        self.sent.extend(b.hex for b in blobs)

    async def _job(self, spec: JobSpec, archive: _Blob, blobs: list[_Blob], log: Path,
                   fetched: Path, ship: RootArchive | None) -> Outputs:
        # One connection for the whole job: if it drops, the job is lost (no reconnecting to
        # clean up after it, which would only wait for the connect timeout on a dead link).
        conn = await self._connection(job=True)
        client = self._lanes[conn].client
        jobdir: str | None = None
        root_sent, root_seconds = 0, 0.0
        try:
            if ship is not None:
                started = time.monotonic()
                root_sent = await self._send_root(conn, spec, ship)
                root_seconds = time.monotonic() - started
            started = time.monotonic()
            shipped = await self._ship(conn, blobs)
            ship_seconds = time.monotonic() - started
            jobdir = await self._make_jobdir(conn, spec, archive, blobs)
            cache = f"{self._dirs()[2]}/{spec.toolchain.name}"
            root = None if spec.toolchain.root is None else Path(self.remote.roots) / spec.toolchain.root
            seen, binds = job_view(jobdir, cache, rooted=root is not None)
            started = time.monotonic()
            await self._steps(conn, spec, commands(spec, seen, root, binds), log)
            build_seconds = time.monotonic() - started
            files, digests = await self._fetch(conn, spec, seen, jobdir, log, fetched)
        except (asyncssh.Error, ConnectionError, TimeoutError) as error:
            # The connection's own reason first: a read cut short only knows it was.
            why = client.reason if client is not None and client.reason is not None else error
            raise NodeLost(f"{spec.id}: lost ssh node `{self.remote.name}` ({self.remote.where}): "
                           f"{_reason(why)}", log=log, tail=tail(log)) from None
        finally:
            if jobdir is not None and not self._lost(conn):  # a lost node keeps it
                with contextlib.suppress(asyncssh.Error, OSError):
                    await self._sh(conn, f"rm -rf -- {shlex.quote(jobdir)}", check=False)
            self._release(conn)
        facts = {FACT_SHIP_SECONDS: f"{ship_seconds:.3f}", FACT_BUILD_SECONDS: f"{build_seconds:.3f}",
                 FACT_SENT: str(len(shipped.sent)), FACT_REUSED: str(len(shipped.reused)),
                 FACT_ROOT_SENT: str(root_sent), FACT_ROOT_SECONDS: f"{root_seconds:.3f}"}
        return Outputs(files=files, digests=digests, node=self.node, facts=facts)

    async def _send_root(self, conn: asyncssh.SSHClientConnection, spec: JobSpec, root: RootArchive) -> int:
        """Unpack the root's tar into the node's roots directory, streamed from here straight
        into `tar -x` there (nothing stored on either side) and hashed there on the way; it
        becomes `<roots>/<name>` by a rename only when that hash is the root's digest. The bytes
        sent (0: another job shipped it meanwhile)."""
        async with self._uploading.setdefault(f"root:{root.name}", asyncio.Lock()):
            if root.name in await self._list_roots():
                return 0
            roots, name = shlex.quote(self.remote.roots), shlex.quote(root.name)
            partial = shlex.quote(f".{root.name}.part-")
            # A copy half unpacked when the node died (no trap ran) goes after an hour.
            script = f"""set -e
umask 022
mkdir -p {roots}
cd {roots}
find . -maxdepth 1 -name {partial}'*' -mmin +60 -exec rm -rf {{}} +
T=$(mktemp -d {partial}XXXXXXXX)
trap 'rm -rf "$T" "$T.fifo" "$T.sum"' EXIT
trap 'exit 1' HUP INT TERM
mkfifo "$T.fifo"
sha256sum < "$T.fifo" > "$T.sum" &
tee "$T.fifo" | tar -x --numeric-owner -p -f - -C "$T"
wait $!
read h rest < "$T.sum"
if [ "$h" != {root.hex} ]; then echo "$h"; exit 3; fi
if [ -d {name}/usr ]; then exit 0; fi
rm -rf {name}
mv "$T" {name}
echo {root.digest} > .{name}.digest"""
            loop = asyncio.get_running_loop()
            async with self._session(conn):
                process = await conn.create_process(script, stdin=asyncssh.PIPE, encoding=None)
                with root.stream() as stream:
                    chunks = iter(stream)
                    while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
                        process.stdin.write(chunk)
                        await process.stdin.drain()
                    process.stdin.write_eof()
                    result = await process.wait()
            if result.exit_status is None and result.exit_signal is None:
                raise asyncssh.ConnectionLost("the session ended without an exit status")
            if stream.digest != root.digest:
                raise IntegrityError(f"toolchain root {root.path} changed while it was sent to ssh node "
                                     f"`{self.remote.name}` (its tar was {root.digest}, now {stream.digest}); run again")
            if result.exit_status == 3:
                arrived = _text(result.stdout).strip()
                raise IntegrityError(f"ssh node `{self.remote.name}`: toolchain root {root.name} was sent as "
                                     f"{root.digest} and arrived as sha256:{arrived}")
            if result.exit_status != 0:
                reason = _text(result.stderr).strip()
                raise NodeLost(f"{spec.id}: cannot unpack toolchain root {root.name} on ssh node "
                               f"`{self.remote.name}`: {reason or f'exit status {result.exit_status}'}")
            self._roots = (self._roots or frozenset()) | {root.name}
            self.roots_sent.append(root.digest)
            return root.size

    async def _make_jobdir(self, conn: asyncssh.SSHClientConnection, spec: JobSpec, archive: _Blob,
                           blobs: list[_Blob]) -> str:
        """A fresh job directory with the source and the dependency files in place. If that fails
        the node is at fault (a full disk, a damaged cached blob): the directory and the blobs
        this job used are removed, so the next job sends them again, and the job is `NodeLost`."""
        cas, jobs, cache = (shlex.quote(d) for d in self._dirs())
        used = " ".join(f"{cas}/{b.hex}" for b in blobs)
        lines = [
            "set -e", "umask 022",
            f"mkdir -p {jobs} {cache}/{shlex.quote(spec.toolchain.name)}",
            f'J=$(mktemp -d {jobs}/job-XXXXXXXX)', f"trap 'rm -rf \"$J\" {used}' EXIT", 'cd "$J"',
            "mkdir src out deps home tmp",
            f"tar -x -m -f {cas}/{archive.hex} -C src",
        ]
        for item in spec.inputs:
            target = shlex.quote(f"deps/{item.recipe}/{item.name}")
            lines += [f"mkdir -p deps/{shlex.quote(item.recipe)}",
                      f"cp -- {cas}/{split_digest(item.digest)[1]} {target}",
                      f"chmod {'755' if item.mode & 0o111 else '644'} {target}"]
        lines += ["trap - EXIT", 'echo "$J"']
        async with self._session(conn):
            result = await conn.run("\n".join(lines), stdin=asyncssh.DEVNULL, encoding="utf-8", errors="replace")
        if result.exit_status != 0:
            if result.exit_status is None and result.exit_signal is None:
                raise asyncssh.ConnectionLost("the session ended without an exit status")
            self._present.difference_update(b.hex for b in blobs)
            raise NodeLost(f"{spec.id}: cannot prepare a job directory on ssh node `{self.remote.name}`: "
                           f"{str(result.stderr).strip() or f'exit status {result.exit_status}'}")
        return str(result.stdout).strip()

    async def _steps(self, conn: asyncssh.SSHClientConnection, spec: JobSpec, steps: list[Command],
                     log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            for step in steps:
                log.write(f"$ {' '.join(step.shown)}\n".encode())
                log.flush()
                started = time.monotonic()
                async with self._session(conn):  # held while the step runs
                    status = await self._step(conn, spec, step, log, log_path)
                log.write(f"# exit {status} after {time.monotonic() - started:.1f}s\n".encode())
                log.flush()
                if status != 0:
                    log.close()
                    if self._cancelled:
                        raise BuildError(f"{spec.id}: cancelled", log=log_path)
                    raise BuildError(
                        f"{spec.id}: `{' '.join(step.shown[:3])} …` exited with status {status} "
                        f"on {self.remote.name}", log=log_path, tail=tail(log_path))

    async def _step(self, conn: asyncssh.SSHClientConnection, spec: JobSpec, step: Command,
                    log: IO[bytes], log_path: Path) -> int:
        if self._cancelled:
            raise BuildError(f"{spec.id}: cancelled", log=log_path)
        command = "exec " + shlex.join(["setsid", "-w", "env", "-i", *(f"{k}={v}" for k, v in step.env.items()),
                                        "/bin/sh", "-c", _STEP, "sh", step.cwd or "/", *step.argv])
        process = await conn.create_process(command, stdin=asyncssh.DEVNULL, stderr=asyncssh.STDOUT,
                                            encoding=None)
        pgid: int | None = None
        try:
            head = b""
            while b"\n" not in head:
                chunk = await process.stdout.read(CHUNK)
                if not chunk:
                    break
                head += chunk
            first, _, rest = head.partition(b"\n")
            if first.strip().isdigit():
                pgid = int(first)
                with self._lock:
                    self._pgids.add(pgid)
                    cancelled = self._cancelled
                if cancelled:  # cancel ran before this step had a group to signal
                    await self._kill([pgid])
            else:
                rest = head
            log.write(rest)
            log.flush()
            while chunk := await process.stdout.read(CHUNK):
                log.write(chunk)
                log.flush()
            await process.wait()
        except asyncio.CancelledError:  # Ctrl-C where `run` was called: the step must not outlive it
            if pgid is not None:
                with contextlib.suppress(asyncssh.Error, OSError, BuildError):
                    await self._kill([pgid])
            raise
        finally:
            if pgid is not None:
                with self._lock:
                    self._pgids.discard(pgid)
            process.close()
        if process.exit_status is None and process.exit_signal is None:
            raise asyncssh.ConnectionLost("the session ended without an exit status")
        return process.returncode if process.returncode is not None else -1

    async def _fetch(self, conn: asyncssh.SSHClientConnection, spec: JobSpec, seen: JobPaths,
                     jobdir: str, log: Path, fetched: Path) -> tuple[dict[str, Path], dict[str, str]]:
        """Each output, resolved and hashed on the node, fetched and hashed again here."""
        wanted = {name: output_path(spec, seen, name) for name in spec.outputs}
        script = [f"J=$(readlink -f -- {shlex.quote(jobdir)})", 'printf "%s\\0" "$J"']
        for _, relative in wanted.values():
            path = shlex.quote(f"{jobdir}/{relative}")
            script.append(f'r=$(readlink -f -- {path}) || r=; h=-; if [ -n "$r" ] && [ -f "$r" ]; '
                          f'then h=$(sha256sum -- "$r" | cut -d" " -f1); fi; printf "%s\\0%s\\0" "$r" "$h"')
        fields = (await self._sh(conn, "\n".join(script))).split("\0")
        resolved_root = fields[0]
        sftp = await self._sftp_client(conn)
        files: dict[str, Path] = {}
        digests: dict[str, str] = {}
        for index, (name, (seen_path, _)) in enumerate(wanted.items()):
            resolved, reported = fields[1 + 2 * index], fields[2 + 2 * index]
            if resolved and not resolved.startswith(resolved_root + "/"):
                raise BuildError(
                    f"{spec.id}: output `{name}` ({seen_path}) is a symlink to {resolved} on "
                    f"{self.remote.name}, outside the job directory; outputs must be files the build made",
                    log=log, tail=tail(log))
            if reported == "-":
                raise BuildError(f"{spec.id}: the build succeeded but did not produce `{name}` ({seen_path})",
                                 log=log, tail=tail(log))
            local = fetched / name
            await sftp.get(resolved, str(local))
            # SFTP makes the local file by this umask: an executable output must stay one (the
            # store records its mode, and the artifact's manifest digest holds it).
            permissions = (await sftp.stat(resolved)).permissions or 0
            os.chmod(local, 0o755 if permissions & 0o111 else 0o644)
            here = split_digest(sha256_file(local))[1]
            if here != reported:
                raise IntegrityError(
                    f"{spec.id}: output `{name}` from ssh node `{self.remote.name}` hashes to "
                    f"sha256:{here} here, but the node reported sha256:{reported}")
            files[name], digests[name] = local, f"sha256:{here}"
        return files, digests


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else str(output or "")


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text or type(error).__name__


def probe(remote: SshNode, versions: Mapping[str, Sequence[str]] | None = None, *,
          connect_timeout: float = CONNECT_TIMEOUT_S) -> NodeProbe:
    """Connect to `remote` (host key checked), report what it is, disconnect."""
    with SshExecutor(remote, connect_timeout=connect_timeout) as executor:
        return executor.probe(versions)
