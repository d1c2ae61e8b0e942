"""The workspace's managed registry: `up`, `down`, `status`, `reload_if_running`.

`up` starts a detached supervisor (supervisor.py) that owns the public address with an L4 proxy
and runs CNCF distribution behind it; a reload (after a certificate rotation or a user change)
swaps the backend without refusing a connection. The supervisor's state file is the only thing
this module reads to find it.

A running registry belongs to one workspace: `up` gives its supervisor the workspace's resolved
path and a random instance id on its command line, and the supervisor writes the id into its
state. A state file names a running registry only if the process at its pid is a supervisor
started with that id; the registry is this workspace's only if that supervisor's path is this
workspace's. So a copy of a workspace (`cp -a`, whose state file names the original's registry)
neither reports, stops nor reloads the original's.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import crossyard

from .. import pki
from ..errors import ConfigurationError, CrossyardError
from ..workspace import Workspace
from . import server, users
from .paths import RegistryPaths, trust_file
from .settings import Address, RegistrySettings, load

START_TIMEOUT_S: Final = 60.0
RELOAD_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
SUPERVISOR_MODULE: Final = "crossyard.registry.supervisor"


class RegistryStateError(CrossyardError):
    """The managed registry did not do what was asked (start, reload, stop)."""


class ForeignRegistryError(ConfigurationError):
    """The registry this workspace's state names runs for another workspace (this one is a copy
    or a move of it): not this workspace's to report on or stop."""


@dataclass(frozen=True, kw_only=True)
class RegistryInfo:
    url: str  # https://127.0.0.1:5000
    host: str  # 127.0.0.1:5000, as in image references
    ca_bundle: Path
    username: str
    password_file: Path
    pid: int  # the supervisor
    backend_pid: int | None = None
    storage: Path | None = None
    log: Path | None = None
    last_reload_error: str | None = None  # the newest reload failed: the old backend serves

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()


@dataclass(frozen=True, kw_only=True)
class ServedCertificate:
    subject: str
    sans: tuple[str, ...]
    not_after: datetime.datetime
    serial: int
    sha256: str
    verified: bool  # chains to the trust bundle and names the host


@dataclass(frozen=True, kw_only=True)
class Health:
    answering: bool  # GET /v2/ over TLS verified with the bundle gave 200 or 401
    http_status: int | None
    certificate: ServedCertificate | None
    error: str | None
    storage_free: int | None = None  # bytes free where the registry stores blobs


# -- public API -------------------------------------------------------------------------------
def up(workspace: Workspace, *, addr: str | None = None) -> RegistryInfo:
    """Start the managed registry (idempotent) and return once /v2/ answers over TLS."""
    settings = load(workspace, addr=addr)
    paths = RegistryPaths.of(workspace)
    with _locked(paths):
        running = _running_state(paths)
        if running is not None and _ours(workspace, running):
            info = _info(workspace, running)
            if info.host != settings.addr.authority:
                raise ConfigurationError(
                    f"the managed registry already runs at {info.host}; run "
                    f"`crossyard registry down` first to move it to {settings.addr.authority}"
                )
            return info
        if running is not None and str(running["addr"]) == settings.addr.listen:
            raise _foreign(workspace, running)
        # Another workspace's registry elsewhere is left alone; this one gets its own.
        server.find_binary()
        leaf = pki.ensure_leaf(workspace, settings.cert)
        _check_names(leaf.cert, settings)
        paths.root.mkdir(parents=True, exist_ok=True)
        os.chmod(paths.root, 0o700)
        paths.storage.mkdir(exist_ok=True)
        users.ensure_default(paths)
        users.ensure_http_secret(paths)
        with contextlib.suppress(FileNotFoundError):
            paths.state.unlink()
        sock = _bind(settings.addr)
        try:
            proc = _spawn(workspace, paths, settings, sock)
        finally:
            sock.close()
        try:
            state = _wait_started(paths, proc)
            info = _info(workspace, state)
            server.wait_ready(info.url, info.ca_bundle, timeout=START_TIMEOUT_S)
        except BaseException:
            _stop(paths, {"pid": proc.pid})  # nothing half-started stays behind
            proc.wait()
            raise
        return info


def down(workspace: Workspace) -> bool:
    """Stop the managed registry; False if none was running. Storage and users are kept."""
    paths = RegistryPaths.of(workspace)
    if not paths.state.exists():
        return False
    with _locked(paths):
        state = _read_state(paths)
        if state is None:
            return False
        owner = _started_for(state)
        if owner is not None and owner != str(_root(workspace)):
            raise _foreign(workspace, {**state, "workspace": owner})
        if owner is None:
            state = {**state, "pid": 0}  # whatever runs at that pid now is not this registry
        return _stop(paths, state)


def _stop(paths: RegistryPaths, state: dict[str, Any]) -> bool:
    pid = int(state.get("pid", 0))
    was_running = _supervisor_alive(pid)
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_dead(pid, STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_dead(pid, 5)
    # What the supervisor could not stop itself (it was killed, say) goes now.
    state = _read_state(paths) or state
    for backend_pid in state.get("backends", []):
        if _is_process(int(backend_pid), server.BINARY):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(backend_pid), signal.SIGTERM)
            if not _wait_dead(int(backend_pid), 15):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(backend_pid), signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        paths.state.unlink()
    return was_running


def status(workspace: Workspace) -> RegistryInfo | None:
    """The running managed registry, or None (no network check; see `probe`).
    ForeignRegistryError if the one the state names is another workspace's."""
    state = _running_state(RegistryPaths.of(workspace))
    if state is None:
        return None
    if not _ours(workspace, state):
        raise _foreign(workspace, state)
    return _info(workspace, state)


def reload_if_running(workspace: Workspace) -> bool:
    """Make a running managed registry serve the current leaf and htpasswd (False if none runs).

    Returns once the new backend serves the current certificate through the public address; a
    reload that fails raises and leaves the previous backend serving.
    """
    paths = RegistryPaths.of(workspace)
    state = _running_state(paths)
    if state is None or not _ours(workspace, state):
        return False  # another workspace's registry serves that one's certificate and users
    cert_name = str(state.get("cert", "registry"))
    before = int(state.get("reloads", 0))
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
        state = _read_state(paths)
        if state is None or not _supervisor_alive(pid):
            raise RegistryStateError(
                f"the managed registry stopped during a reload; see {paths.supervisor_log}"
            )
        if int(state.get("reloads", 0)) <= before:
            continue
        last = state.get("last_reload") or {}
        if not last.get("ok", False):
            # A failed reload may have a queued one behind it; only the newest result counts.
            if _settled(paths, int(state["reloads"])):
                raise RegistryStateError(
                    f"registry reload failed, the previous certificate is still served: "
                    f"{last.get('error')}"
                )
            continue
        want = _fingerprint(pki.Pki.of(workspace).leaf(cert_name).cert)
        if (state.get("backend") or {}).get("cert_sha256") != want:
            continue  # the leaf changed again since; the reload queued behind ours takes it
        with contextlib.suppress(OSError):
            if fetch_certificate(_info(workspace, state)).sha256 == want:
                return True
    raise RegistryStateError(
        f"the managed registry did not reload within {RELOAD_TIMEOUT_S:.0f}s; "
        f"see {paths.supervisor_log}"
    )


def probe(info: RegistryInfo) -> Health:
    """Ask the registry: GET /v2/ over TLS verified with the bundle, and the served certificate;
    and the disk: a full one answers /v2/ but refuses every push."""
    free = None
    if info.storage is not None:
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(info.storage).free
    try:
        cert = fetch_certificate(info)
    except OSError as exc:
        return Health(answering=False, http_status=None, certificate=None, error=str(exc),
                      storage_free=free)
    ctx = ssl.create_default_context(cafile=str(info.ca_bundle))
    host, port = _split(info.host)
    import http.client

    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
    try:
        conn.request("GET", "/v2/")
        code = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return Health(answering=False, http_status=None, certificate=cert, error=str(exc))
    finally:
        conn.close()
    ok = code in (200, 401)
    return Health(
        answering=ok, http_status=code, certificate=cert,
        error=None if ok else f"GET /v2/ gave HTTP {code}", storage_free=free,
    )


def fetch_certificate(info: RegistryInfo) -> ServedCertificate:
    """The leaf the registry serves right now, and whether the bundle trusts it. One handshake
    decides both (the proxy may switch backends between two connections); only when it fails is
    the certificate read again without trusting it, to say what is served."""
    host, port = _split(info.host)
    der: bytes | None = None
    verified = True
    try:
        strict = ssl.create_default_context(cafile=str(info.ca_bundle))
        with socket.create_connection((host, port), timeout=5) as tcp, strict.wrap_socket(
            tcp, server_hostname=host
        ) as tls:
            der = tls.getpeercert(binary_form=True)
    except (ssl.SSLError, ssl.CertificateError):
        verified = False
        raw = ssl.create_default_context()
        raw.check_hostname = False
        raw.verify_mode = ssl.CERT_NONE  # only to report what is served; never trusted
        with socket.create_connection((host, port), timeout=5) as tcp, raw.wrap_socket(
            tcp, server_hostname=host
        ) as tls:
            der = tls.getpeercert(binary_form=True)
    if der is None:
        raise OSError(f"{info.host} sent no certificate")
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(
            [*san.get_values_for_type(x509.DNSName),
             *(str(a) for a in san.get_values_for_type(x509.IPAddress))]
        )
    except x509.ExtensionNotFound:
        sans = ()
    return ServedCertificate(
        subject=cert.subject.rfc4514_string(), sans=sans, not_after=cert.not_valid_after_utc,
        serial=cert.serial_number, sha256=hashlib.sha256(der).hexdigest(), verified=verified,
    )


# -- helpers ----------------------------------------------------------------------------------
def _info(workspace: Workspace, state: dict[str, Any]) -> RegistryInfo:
    paths = RegistryPaths.of(workspace)
    addr = Address.parse(str(state["addr"]), where=str(paths.state))
    user = users.default_user(paths) or users.DEFAULT_USER
    backend = state.get("backend") or {}
    last = state.get("last_reload") or {}
    return RegistryInfo(
        url=addr.url, host=addr.authority, ca_bundle=trust_file(workspace), username=user,
        password_file=paths.password_file(user), pid=int(state["pid"]),
        backend_pid=backend.get("pid"), storage=paths.storage, log=paths.supervisor_log,
        last_reload_error=None if last.get("ok", True) else str(last.get("error")),
    )


def _settled(paths: RegistryPaths, reloads: int) -> bool:
    """True if no further reload starts within a short while."""
    time.sleep(0.5)
    state = _read_state(paths) or {}
    return int(state.get("reloads", 0)) == reloads


def _check_names(cert_path: Path, settings: RegistrySettings) -> None:
    host = settings.addr.connect_host
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names: set[str] = set()
    else:
        names = {*san.get_values_for_type(x509.DNSName),
                 *(str(a) for a in san.get_values_for_type(x509.IPAddress))}
    if host not in names:
        raise ConfigurationError(
            f"the registry certificate ({cert_path}) does not name {host}, so clients would "
            f"refuse it; add {host!r} to `names` in certs/{settings.cert}.toml and run "
            f"`crossyard certs rotate --force`, or listen on one of: {', '.join(sorted(names))}"
        )


def _bind(addr: Address) -> socket.socket:
    family = socket.AF_INET6 if addr.is_ipv6 else socket.AF_INET
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot resolve registry address {addr.listen}: {exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
        sock.listen(512)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"cannot listen on {addr.listen}: the address is already in use (another "
                "registry or program holds it); stop that program or pick another address with "
                "`--addr HOST:PORT`, `[registry] addr` in crossyard.toml or CROSSYARD_REGISTRY_ADDR"
            ) from None
        raise ConfigurationError(f"cannot listen on {addr.listen}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _spawn(
    workspace: Workspace, paths: RegistryPaths, settings: RegistrySettings, sock: socket.socket
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The supervisor imports the same crossyard as we do, installed or not.
    package_parent = str(Path(crossyard.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    fd = sock.fileno()
    with paths.supervisor_log.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, "--workspace", str(_root(workspace)),
             "--instance", secrets.token_hex(16), "--addr", settings.addr.listen,
             "--cert", settings.cert, "--listen-fd", str(fd)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=(fd,),
            start_new_session=True, cwd=workspace.root, env=env,
        )


def _wait_started(paths: RegistryPaths, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = _read_state(paths)
        if state is not None and state.get("pid") == proc.pid:
            if state.get("status") == "ready":
                return state
            if state.get("status") == "failed":
                proc.wait(timeout=10)
                raise RegistryStateError(f"the registry did not start: {state.get('error')}")
        if proc.poll() is not None:
            raise RegistryStateError(
                f"the registry supervisor exited with status {proc.returncode}: "
                f"{_tail(paths.supervisor_log)}"
            )
        time.sleep(0.05)
    raise RegistryStateError(
        f"the registry did not start within {START_TIMEOUT_S:.0f}s; see {paths.supervisor_log}"
    )


def _read_state(paths: RegistryPaths) -> dict[str, Any] | None:
    try:
        data = json.loads(paths.state.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _running_state(paths: RegistryPaths) -> dict[str, Any] | None:
    """The state file if the supervisor it names serves, with `workspace` set to the workspace
    that supervisor was started for (see `_started_for`)."""
    state = _read_state(paths)
    if state is None or state.get("status") not in ("ready", "degraded"):
        return None
    owner = _started_for(state)
    return None if owner is None else {**state, "workspace": owner}


def _started_for(state: dict[str, Any]) -> str | None:
    """The workspace the supervisor `state` names was started for, from its command line: the
    kernel keeps that, and no copy of the state file changes it. None if that supervisor is
    gone (its pid dead, or now another process's, another supervisor's included)."""
    argv = _argv(int(state.get("pid", 0)))
    if argv is None or SUPERVISOR_MODULE not in argv:
        return None
    if _flag(argv, "--instance") != state.get("instance"):
        return None
    return _flag(argv, "--workspace")


def _root(workspace: Workspace) -> Path:
    return workspace.root.resolve()


def _ours(workspace: Workspace, running: dict[str, Any]) -> bool:
    return running.get("workspace") == str(_root(workspace))


def _foreign(workspace: Workspace, running: dict[str, Any]) -> ForeignRegistryError:
    owner, pid, here = running.get("workspace"), running.get("pid"), _root(workspace)
    host = Address.parse(str(running["addr"]), where=str(RegistryPaths.of(workspace).state))
    stop = (f"(a copy of it?): stop it from there with `crossyard -C {owner} registry down`"
            if owner and Path(owner).is_dir()
            else f"(moved here?): that workspace is gone, so stop it with `kill {pid}`")
    return ForeignRegistryError(
        f"the registry at {host.authority} (supervisor pid {pid}) belongs to workspace {owner}, "
        f"not to {here} {stop}; or run this workspace's own registry on another port with "
        f"`crossyard -C {here} registry up --addr HOST:PORT`"
    )


def _argv(pid: int) -> list[str] | None:
    """The command line of live (not zombie) process `pid`, or None."""
    if pid <= 0:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
        return None
    return cmdline.decode(errors="surrogateescape").split("\0")


def _flag(argv: list[str], name: str) -> str | None:
    """The value after `name` in `argv` (None if absent: a supervisor from before the flag)."""
    for i, arg in enumerate(argv[:-1]):
        if arg == name:
            return argv[i + 1]
    return None


def _is_process(pid: int, marker: str) -> bool:
    """`pid` is a live (not zombie) process whose command line mentions `marker`."""
    argv = _argv(pid)
    return argv is not None and marker in "\0".join(argv)


def _supervisor_alive(pid: int) -> bool:
    return _is_process(pid, SUPERVISOR_MODULE)


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or not _is_process(pid, ""):
            return True
        time.sleep(0.05)
    return False


def _fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _split(authority: str) -> tuple[str, int]:
    host, _, port = authority.rpartition(":")
    return host.strip("[]"), int(port)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return "\n" + "\n".join("    " + line for line in text) + f"\n  log: {path}"


@contextlib.contextmanager
def _locked(paths: RegistryPaths) -> Iterator[None]:
    """One `up`/`down` at a time per workspace."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with (paths.root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
