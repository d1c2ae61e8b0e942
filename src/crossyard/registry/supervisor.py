"""The managed registry's supervisor: `python -m crossyard.registry.supervisor` (started by
`crossyard registry up`, detached, in its own session).

It owns the public address with an L4 proxy (proxy.py) and runs CNCF distribution backends on
private loopback ports. distribution reads its TLS pair and htpasswd once, so a reload (SIGHUP)
starts a new backend generation from the current certificate and htpasswd, waits until it serves
that certificate over TLS verified with the trust bundle, switches the proxy to it for new
connections, and stops the old backend once its connections have drained (distribution's
`draintimeout` finishes what is still in flight). All generations share one storage directory, so
nothing stored is lost. A reload that fails leaves the current backend serving.

SIGTERM/SIGINT: stop accepting, stop every backend gracefully, remove the state file.
State (`state.json`) is rewritten atomically after every change; `manager.py` reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import hashlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..certs import CertPaths, key_matches, load_private_key
from ..errors import CrossyardError
from ..fsutil import atomic_write_bytes, atomic_write_text
from ..pki import Pki
from ..workspace import Workspace
from . import server
from .paths import RegistryPaths, template, trust_file
from .proxy import Proxy
from .settings import Address

log = logging.getLogger("crossyard.registry.supervisor")

DRAIN_TIMEOUT_S: Final = 5  # distribution's draintimeout: in-flight requests get this long
IDLE_CLOSE_S: Final = 10.0  # a retiring backend's keep-alive connection idle this long is closed
MAX_RETIRE_S: Final = 600.0  # a retiring backend is stopped after this even if still in use
READY_TIMEOUT_S: Final = 30.0
KEEP_LOGS: Final = 10
_PR_SET_PDEATHSIG: Final = 1


class BackendError(CrossyardError):
    """A backend generation did not come up."""


@dataclass(kw_only=True)
class Backend:
    generation: int
    port: int
    proc: subprocess.Popen[bytes]
    cert_sha256: str
    directory: Path
    log: Path

    @property
    def target(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def describe(self) -> dict[str, Any]:
        return {
            "generation": self.generation, "pid": self.proc.pid, "port": self.port,
            "cert_sha256": self.cert_sha256, "log": str(self.log),
        }


@dataclass(kw_only=True)
class Supervisor:
    workspace: Workspace
    instance: str  # from `up`; with the workspace's path, it ties this process to its state
    addr: Address
    cert_name: str
    sock: socket.socket
    paths: RegistryPaths = field(init=False)
    proxy: Proxy | None = None
    current: Backend | None = None
    retiring: list[Backend] = field(default_factory=list)
    generation: int = 0
    reloads: int = 0
    last_reload: dict[str, Any] | None = None
    status: str = "starting"
    error: str | None = None
    started: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    )

    def __post_init__(self) -> None:
        self.paths = RegistryPaths.of(self.workspace)

    # -- state ----------------------------------------------------------------------------
    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "instance": self.instance,
            "workspace": str(self.workspace.root),
            "addr": self.addr.listen,
            "url": self.addr.url,
            "cert": self.cert_name,
            "status": self.status,
            "error": self.error,
            "started": self.started,
            "backend": self.current.describe() if self.current else None,
            "backends": [b.proc.pid for b in self._all()],
            "reloads": self.reloads,
            "last_reload": self.last_reload,
        }
        atomic_write_text(self.paths.state, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def _all(self) -> list[Backend]:
        return ([self.current] if self.current else []) + self.retiring

    # -- backends -------------------------------------------------------------------------
    async def start_backend(self) -> Backend:
        last: Exception | None = None
        for _ in range(3):  # a free port can be taken between probing and binding
            self.generation += 1
            try:
                return await self._start_once(self.generation)
            except (OSError, ValueError) as exc:
                raise BackendError(f"cannot start a registry backend: {exc}") from exc
            except BackendError as exc:
                last = exc
                if "address already in use" not in str(exc):
                    raise
        assert last is not None
        raise last

    async def _start_once(self, generation: int) -> Backend:
        directory = self.paths.backend(generation)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        try:
            return await self._launch(generation, directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    async def _launch(self, generation: int, directory: Path) -> Backend:
        leaf = await _snapshot_pair(Pki.of(self.workspace).leaf(self.cert_name), directory)
        atomic_write_bytes(directory / "htpasswd", self.paths.htpasswd.read_bytes(), mode=0o600)
        port = server.free_port()
        config = directory / "config.yml"
        server.write_config(
            config,
            server.ServerConfig(
                addr=f"127.0.0.1:{port}", cert=leaf.cert, key=leaf.key,
                htpasswd=directory / "htpasswd", storage_dir=self.paths.storage,
                draintimeout_s=DRAIN_TIMEOUT_S,
                http_secret=self.paths.http_secret.read_text().strip(),
                log_level="info",  # access lines in logs/backend-N.log
            ),
            template(self.workspace.root, "config.yml"),
        )
        log_path = self.paths.backend_log(generation)
        proc = server.start_process(config, log_path, preexec_fn=_die_with_parent)
        cert_der = x509.load_pem_x509_certificate(leaf.cert.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        backend = Backend(
            generation=generation, port=port, proc=proc,
            cert_sha256=hashlib.sha256(cert_der).hexdigest(), directory=directory, log=log_path,
        )
        try:
            await asyncio.to_thread(
                _wait_serving, port, proc, trust_file(self.workspace), cert_der, log_path
            )
        except BaseException:
            await _stop(backend, timeout=5)
            raise
        log.info("backend %d ready on 127.0.0.1:%d (pid %d)", generation, port, proc.pid)
        return backend

    async def retire(self, old: Backend) -> None:
        """Stop `old` once the proxy has no connection to it.

        Clients that keep connections alive get them closed while idle between requests (see
        proxy.py); a connection busy for MAX_RETIRE_S is left to distribution's graceful stop.
        """
        self.retiring.append(old)
        self.write_state()
        try:
            assert self.proxy is not None
            deadline = time.monotonic() + MAX_RETIRE_S
            while self.proxy.open_connections(old.target) and time.monotonic() < deadline:
                self.proxy.close_idle(old.target, IDLE_CLOSE_S)
                await self.proxy.drained(old.target, 0.5)
            if self.proxy.open_connections(old.target):
                log.info("backend %d still busy after %.0fs; stopping it gracefully",
                         old.generation, MAX_RETIRE_S)
            await _stop(old, timeout=DRAIN_TIMEOUT_S + 10)
            shutil.rmtree(old.directory, ignore_errors=True)
            log.info("backend %d stopped", old.generation)
        finally:
            self.retiring.remove(old)
            self.write_state()
            _prune_logs(self.paths)

    # -- main loop ------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        reload_requested = asyncio.Event()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        self.write_state()
        # Backends of an earlier supervisor that died hold key copies: this one starts clean.
        shutil.rmtree(self.paths.backends, ignore_errors=True)
        try:
            self.current = await self.start_backend()
        except CrossyardError as exc:
            self.status, self.error = "failed", str(exc)
            self.write_state()
            log.error("registry did not start: %s", exc)
            return 1
        self.proxy = Proxy(self.current.target)
        await self.proxy.serve(self.sock)
        self.status = "ready"
        self.write_state()
        log.info("serving %s -> backend %d", self.addr.listen, self.current.generation)
        retirements: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            waiters = [asyncio.ensure_future(e.wait()) for e in (reload_requested, stop)]
            _, pending = await asyncio.wait(waiters, timeout=0.5,
                                            return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            if stop.is_set():
                break
            crashed = self.current.proc.poll() is not None
            if not reload_requested.is_set() and not crashed:
                continue
            reload_requested.clear()
            why = "backend exited unexpectedly" if crashed else "reload requested"
            old = self.current
            try:
                new = await self.start_backend()
            except CrossyardError as exc:
                log.error("%s; new backend failed, keeping backend %d: %s",
                          why, old.generation, exc)
                self.reloads += 1
                self.last_reload = {"ok": False, "error": str(exc), "generation": old.generation}
                if crashed:
                    self.status, self.error = "degraded", str(exc)
                self.write_state()
                if crashed:
                    await asyncio.sleep(2)  # do not spin on a backend that cannot start
                continue
            self.proxy.switch(new.target)
            self.current = new
            self.status, self.error = "ready", None
            self.reloads += 1
            self.last_reload = {"ok": True, "error": None, "generation": new.generation}
            log.info("%s: backend %d now serves %s", why, new.generation, self.addr.listen)
            task = asyncio.create_task(self.retire(old))
            retirements.add(task)
            task.add_done_callback(retirements.discard)
            self.write_state()
        return await self.shutdown(retirements)

    async def shutdown(self, retirements: set[asyncio.Task[None]]) -> int:
        self.status = "stopping"
        self.write_state()
        log.info("stopping")
        # Copied first: a cancelled retirement drops its backend from the list, and its
        # directory (a copy of the key) must still go.
        backends = self._all()
        for task in retirements:
            task.cancel()
        if self.proxy is not None:
            self.proxy.stop_accepting()
        await asyncio.gather(*(_stop(b, timeout=DRAIN_TIMEOUT_S + 10) for b in backends))
        await asyncio.gather(*retirements, return_exceptions=True)
        if self.proxy is not None:
            await self.proxy.close()
        for b in backends:
            shutil.rmtree(b.directory, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.paths.state.unlink()
        log.info("stopped")
        return 0


async def _snapshot_pair(source: CertPaths, directory: Path) -> CertPaths:
    """Copy the leaf pair for one backend; a pair read mid-rotation (cert and key from different
    issues) is read again."""
    snap = CertPaths(cert=directory / "tls.crt", key=directory / "tls.key")
    for _ in range(50):
        cert_pem, key_pem = source.cert.read_bytes(), source.key.read_bytes()
        atomic_write_bytes(snap.cert, cert_pem)
        atomic_write_bytes(snap.key, key_pem, mode=0o600)
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = load_private_key(snap.key, fix="run `crossyard certs rotate --force`")
        if key_matches(cert, key):
            return snap
        await asyncio.sleep(0.1)
    raise BackendError(
        f"{source.key} does not match {source.cert}; run `crossyard certs rotate --force`"
    )


def _wait_serving(
    port: int, proc: subprocess.Popen[bytes], bundle: Path, cert_der: bytes, log_path: Path
) -> None:
    """Block until the backend answers /v2/ over TLS verified with the bundle, serving cert_der."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    untrusted = 0
    while time.monotonic() < deadline:
        if untrusted >= 20:  # it answers, but clients trusting the bundle would refuse it
            raise BackendError(f"the bundle {bundle} does not verify the new certificate: {last}")
        if proc.poll() is not None:
            raise BackendError(
                f"docker-registry exited with status {proc.returncode}: {_tail(log_path)}"
            )
        ctx = ssl.create_default_context(cafile=str(bundle))
        ctx.check_hostname = False  # the chain is checked here; names were checked by `up`
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
        try:
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            assert conn.sock is not None
            served = conn.sock.getpeercert(binary_form=True)
            if status in (200, 401) and served == cert_der:
                return
            which = "the expected" if served == cert_der else "another"
            last = f"HTTP {status}, serving {which} certificate"
        except ssl.SSLCertVerificationError as exc:
            untrusted, last = untrusted + 1, str(exc)
        except (OSError, http.client.HTTPException) as exc:
            last = str(exc)
        finally:
            conn.close()
        time.sleep(0.05)
    raise BackendError(
        f"backend on 127.0.0.1:{port} not ready after {READY_TIMEOUT_S:.0f}s: {last}"
    )


async def _stop(backend: Backend, *, timeout: float) -> None:
    proc = backend.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return " | ".join(text) + f" (log: {path})"


def _prune_logs(paths: RegistryPaths) -> None:
    logs = sorted(paths.logs.glob("backend-*.log"), key=lambda p: p.stat().st_mtime)
    for old in logs[:-KEEP_LOGS]:
        with contextlib.suppress(OSError):
            old.unlink()


def _die_with_parent() -> None:
    """In the backend child: get SIGTERM if the supervisor dies (no orphaned registries)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossyard.registry.supervisor")
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--instance", required=True, help="random id `up` gave this supervisor")
    parser.add_argument("--addr", required=True)
    parser.add_argument("--cert", required=True, help="leaf profile name")
    parser.add_argument("--listen-fd", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s",
    )
    sock = socket.socket(fileno=args.listen_fd)
    sock.setblocking(False)
    supervisor = Supervisor(
        workspace=Workspace(root=args.workspace.resolve()),
        instance=args.instance,
        addr=Address.parse(args.addr, where="--addr"),
        cert_name=args.cert,
        sock=sock,
    )
    return asyncio.run(supervisor.run())


if __name__ == "__main__":
    sys.exit(main())
