"""The workspace PKI under `.crossyard/pki/`: which certificates exist, when they are renewed,
and how the CA is rotated without a moment where a client trusts neither CA.

    ca/ca.crt, ca/ca.key   the current CA: it signs every leaf
    ca/next.crt, .key      phase 1: the new CA, staged (trusted, signs nothing yet)
    ca/previous.crt        phase 2: the old CA, still trusted until `retire-ca`
    ca/bundle.crt          what clients trust: newest CA first, both during a rotation
    ca/state.json          when each phase began and when the overlap ends
    <name>/tls.crt, .key   a leaf issued from profile certs/<name>.toml

A CA rotation goes in three explicit steps, the way trust-manager users roll a CA:

1. `certs rotate --ca` stages the new CA: the bundle holds new + old, every server keeps its
   leaf from the old CA, so a client still holding only the old trust keeps working. Now give
   every client the new bundle (`certs trust`).
2. `certs switch-ca` (or `certs rotate` once `switch_after` in certs/ca.toml has passed) makes
   the new CA current and re-issues every leaf from it. Clients without the new trust fail
   from here on; the bundle is unchanged, so what step 1 distributed is still right.
3. `certs retire-ca`, after the overlap, drops the old CA from the bundle.

Which phase holds is read from the files (next.crt, previous.crt), so an interrupted step is
seen, and a half-done switch is finished, by the next command.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, Final, ParamSpec, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import certprofiles, certs
from .certs import CertPaths
from .errors import ConfigurationError
from .fsutil import atomic_write_bytes, atomic_write_text
from .workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class Pki:
    root: Path

    @classmethod
    def of(cls, workspace: Workspace) -> Pki:
        return cls(root=workspace.pki_dir)

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def ca(self) -> CertPaths:
        return CertPaths(cert=self.ca_dir / "ca.crt", key=self.ca_dir / "ca.key")

    @property
    def next_ca(self) -> CertPaths:
        return CertPaths(cert=self.ca_dir / "next.crt", key=self.ca_dir / "next.key")

    @property
    def previous_ca(self) -> Path:
        return self.ca_dir / "previous.crt"

    @property
    def bundle(self) -> Path:
        return self.ca_dir / "bundle.crt"

    @property
    def state(self) -> Path:
        return self.ca_dir / "state.json"

    def leaf(self, name: str) -> CertPaths:
        return CertPaths(cert=self.root / name / "tls.crt", key=self.root / name / "tls.key")

    def leaf_names(self) -> tuple[str, ...]:
        """Every issued leaf (a directory holding tls.crt), sorted."""
        if not self.root.is_dir():
            return ()
        return tuple(
            sorted(
                p.name for p in self.root.iterdir()
                if p.name != "ca" and (p / "tls.crt").is_file()
            )
        )


@dataclass(frozen=True, kw_only=True)
class Renewal:
    """A leaf `rotate` re-issues, and why."""

    name: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class RotateResult:
    """What `rotate` did: the leaves it re-issued, and the CA step it took, if any."""

    renewals: tuple[Renewal, ...]
    staged: bool = False  # `--ca`: a new CA is staged (phase 1)
    switched: bool = False  # `switch_after` had passed: leaves now come from the new CA


PHASES = ("none", "staged", "switched")


@dataclass(frozen=True, kw_only=True)
class Rotation:
    """Where a CA rotation stands: phase 0 (none), 1 (new CA staged) or 2 (switched to it)."""

    phase: int
    since: datetime.datetime | None = None
    overlap_end: datetime.datetime | None = None
    switch_at: datetime.datetime | None = None  # `certs rotate` switches from then (phase 1)
    interrupted: bool = False  # a switch stopped half-way; the next command finishes it

    @property
    def name(self) -> str:
        return PHASES[self.phase]

    @property
    def next_command(self) -> str | None:
        """The command that takes the rotation one step further."""
        if self.interrupted:
            return "crossyard certs switch-ca"
        return (None, "crossyard certs switch-ca", "crossyard certs retire-ca")[self.phase]

    def advice(self, now: datetime.datetime) -> str:
        """What to do next, in words, naming the command."""
        if self.phase == 1:
            when = ""
            if self.switch_at is not None:
                when = (
                    "; `crossyard certs rotate` does it now" if now >= self.switch_at else
                    f"; `crossyard certs rotate` does it from {_iso(self.switch_at)}"
                )
            return (
                "give every client the trust bundle that now holds both CAs (`crossyard certs "
                "trust --format docker|containerd|talos|k8s --host HOST:PORT -o DIR`), then "
                f"run `crossyard certs switch-ca`{when}"
            )
        if self.phase == 2:
            if self.interrupted:
                return "a switch was interrupted: run `crossyard certs switch-ca` to finish it"
            if self.overlap_end is not None and now < self.overlap_end:
                return (
                    f"once every client has the new trust, after {_iso(self.overlap_end)}, run "
                    "`crossyard certs retire-ca`"
                )
            return "run `crossyard certs retire-ca` (the overlap has ended)"
        return "no CA rotation in progress; `crossyard certs rotate --ca` starts one"


def _iso(when: datetime.datetime) -> str:
    return when.isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One row of `certs status`: a role (`ca`, `next-ca`, `previous-ca`, `leaf`) and its cert.
    `key_problem`: why the private key cannot serve this certificate (None when it can)."""

    name: str
    role: str
    info: certs.CertInfo
    key: Path | None = None
    key_problem: str | None = None

    @property
    def key_exposed(self) -> bool:
        """The private key is group/other-accessible (crossyard refuses to load it)."""
        if self.key is None:
            return False
        try:
            return self.key.stat().st_mode & 0o077 != 0
        except FileNotFoundError:
            return False


_P = ParamSpec("_P")
_R = TypeVar("_R")
_GUARD = threading.RLock()
_DEPTH: dict[Path, int] = {}


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One PKI writer at a time: a cron `certs rotate` and a `registry up` issuing its leaf must
    not interleave. flock across processes; re-entrant within this thread."""
    root = root.resolve()
    with _GUARD:
        depth = _DEPTH.get(root, 0)
        if depth:
            _DEPTH[root] = depth + 1
            try:
                yield
            finally:
                _DEPTH[root] = depth
            return
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _DEPTH[root] = 1
            try:
                yield
            finally:
                del _DEPTH[root]
        finally:
            os.close(fd)


def _locked(
    fn: Callable[Concatenate[Workspace, _P], _R],
) -> Callable[Concatenate[Workspace, _P], _R]:
    @functools.wraps(fn)
    def wrapper(workspace: Workspace, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _exclusive(workspace.pki_dir):
            return fn(workspace, *args, **kwargs)

    return wrapper


def certs_dir(workspace: Workspace) -> Path:
    return workspace.root / "certs"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --- the CA -----------------------------------------------------------------------------------


def _ca_name(profile: certprofiles.CaProfile) -> str:
    """The profile's name plus the creation time: during an overlap the two CAs (and which one
    issued a leaf) are told apart at a glance in `certs status`."""
    return f"{profile.common_name} {_now():%Y-%m-%d %H:%M:%S}"


def _build_ca(
    profile: certprofiles.CaProfile,
    *, permitted_dns: tuple[str, ...] | None = None, permitted_ips: tuple[str, ...] | None = None,
) -> tuple[x509.Certificate, certs.PrivateKey]:
    return certs.build_ca(
        common_name=_ca_name(profile),
        lifetime=profile.lifetime,
        permitted_dns=profile.permitted_dns if permitted_dns is None else permitted_dns,
        permitted_ips=profile.permitted_ips if permitted_ips is None else permitted_ips,
        key_type=profile.key_type,
    )


def _ca_cert(pki: Pki) -> x509.Certificate:
    """The current CA's certificate (its key is needed only to sign)."""
    return certs.load_cert(pki.ca.cert, fix=certs.CA_CERT_FIX)


def _write_bundle(pki: Pki, cas: list[x509.Certificate]) -> None:
    atomic_write_bytes(pki.bundle, b"".join(certs.pem(c) for c in cas))


def _bundle_certs(pki: Pki) -> list[x509.Certificate]:
    """What clients must trust now, newest CA first: the same two CAs in the same order in
    phases 1 and 2, so trust written during phase 1 is still exact after the switch."""
    staged = pki.next_ca.cert.exists()
    previous = pki.previous_ca.exists()
    newest = (
        certs.load_cert(pki.next_ca.cert, fix="run `crossyard certs rotate --ca --force`")
        if staged else _ca_cert(pki)
    )
    cas = [newest]
    if previous:
        cas.append(certs.load_cert(pki.previous_ca, fix="run `crossyard certs retire-ca --force`"))
    elif staged:
        cas.append(_ca_cert(pki))
    return cas


@_locked
def init_ca(
    workspace: Workspace,
    *,
    force: bool = False,
    permitted_dns: tuple[str, ...] | None = None,
    permitted_ips: tuple[str, ...] | None = None,
) -> tuple[CertPaths, bool]:
    """Create the CA from certs/ca.toml (or defaults); (paths, created). `force` starts over:
    no overlap, any rotation in progress is forgotten, and leaves are re-issued by the next
    rotate/ensure."""
    pki = Pki.of(workspace)
    profile = certprofiles.load_ca(certs_dir(workspace))
    if pki.ca.cert.exists() and not force:
        _settle(pki)
        return pki.ca, False
    if permitted_dns is not None:
        permitted_dns = tuple(
            "." * d.startswith(".") + certprofiles.classify_dns_subtree(d, file="--permit-dns")
            for d in permitted_dns
        )
    cert, key = _build_ca(profile, permitted_dns=permitted_dns, permitted_ips=permitted_ips)
    certs.write_pair(pki.ca, cert, key)
    _write_bundle(pki, [cert])
    for stale in (pki.next_ca.cert, pki.next_ca.key, pki.previous_ca, pki.state):
        stale.unlink(missing_ok=True)
    return pki.ca, True


def _settle(pki: Pki) -> None:
    """Finish a switch that was interrupted, then make bundle.crt hold exactly what the phase
    says (a stage interrupted before its bundle write is completed here too)."""
    if pki.next_ca.cert.exists() and pki.previous_ca.exists():
        _finish_switch(pki)
    elif not pki.next_ca.cert.exists():
        pki.next_ca.key.unlink(missing_ok=True)
    want = b"".join(certs.pem(c) for c in _bundle_certs(pki))
    try:
        have = pki.bundle.read_bytes()
    except FileNotFoundError:
        have = b""
    if have != want:
        atomic_write_bytes(pki.bundle, want)


def ensure_ca(workspace: Workspace) -> CertPaths:
    """Create the CA from certs/ca.toml (defaults if none) if missing; ensure ca/bundle.crt.
    Idempotent."""
    paths, _ = init_ca(workspace)
    return paths


def _read_state(pki: Pki) -> dict[str, str]:
    try:
        data = json.loads(pki.state.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"{pki.state} is corrupt ({exc}); delete it (the rotation's phase is kept in the "
            "certificate files; only its times are lost)"
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{pki.state} is corrupt (not an object); delete it")
    return {str(k): str(v) for k, v in data.items()}


def _write_state(pki: Pki, state: dict[str, str]) -> None:
    atomic_write_text(pki.state, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _state_time(pki: Pki, state: dict[str, str], key: str) -> datetime.datetime | None:
    value = state.get(key)
    if value is None:
        return None
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(
            f"{pki.state}: `{key}` {value!r} is not a time; delete the file (only the "
            "rotation's times are lost)"
        ) from None


def rotation(workspace: Workspace) -> Rotation:
    """The CA rotation's phase, from the files; its times from state.json."""
    pki = Pki.of(workspace)
    staged = pki.next_ca.cert.exists()
    previous = pki.previous_ca.exists()
    if not staged and not previous:
        return Rotation(phase=0)
    state = _read_state(pki)
    phase = 2 if previous else 1
    return Rotation(
        phase=phase,
        since=_state_time(pki, state, "switched_at" if phase == 2 else "staged_at"),
        overlap_end=_state_time(pki, state, "overlap_end"),
        switch_at=_state_time(pki, state, "switch_at") if phase == 1 else None,
        interrupted=staged and previous,
    )


def overlap_end(workspace: Workspace) -> datetime.datetime | None:
    """When the previous CA may be retired, or None when no CA rotation is in progress."""
    return rotation(workspace).overlap_end


def _in_progress(current: Rotation) -> str:
    since = f" since {_iso(current.since)}" if current.since else ""
    return f"a CA rotation is in progress (phase {current.phase}, {current.name}{since})"


def _stage_ca(workspace: Workspace, *, force: bool) -> None:
    """Phase 1: create the new CA beside the current one and trust both. Signs nothing."""
    pki = Pki.of(workspace)
    profile = certprofiles.load_ca(certs_dir(workspace))
    current = rotation(workspace)
    now = _now()
    if current.phase and not force:
        raise ConfigurationError(
            f"{_in_progress(current)}; next: {current.advice(now)}. Pass --force to start a new "
            "rotation anyway (a staged CA is replaced, so clients must take the trust again; a "
            "previous CA is dropped at once)"
        )
    if current.phase == 2:
        _retire(pki)
    old = _ca_cert(pki)
    new, new_key = _build_ca(profile)
    # Every leaf must fit the new CA's name constraints before anything is written, or the
    # switch would stop half-way with leaves the new CA refuses to sign.
    for name in pki.leaf_names():
        certs.check_constraints(new, profile_for(workspace, name).names)
    state = {"staged_at": _iso(now), "overlap_end": _iso(now + profile.overlap)}
    if profile.switch_after is not None:
        state["switch_at"] = _iso(now + profile.switch_after)
    _write_state(pki, state)
    certs.write_pair(pki.next_ca, new, new_key)
    _write_bundle(pki, [new, old])


def _finish_switch(pki: Pki) -> None:
    """The part of a switch that is repeated until it completes: the staged pair becomes the
    current one, then the staged files go (certificate first: it is what marks phase 1)."""
    fix = "stage a new CA with `crossyard certs rotate --ca --force`"
    new = certs.load_cert(pki.next_ca.cert, fix=fix)
    key = certs.load_private_key(pki.next_ca.key, fix=fix)
    if not certs.key_matches(new, key):
        raise ConfigurationError(f"{pki.next_ca.key} does not belong to {pki.next_ca.cert}; {fix}")
    certs.write_pair(pki.ca, new, key)
    state = _read_state(pki)
    state.setdefault("switched_at", _iso(_now()))
    _write_state(pki, state)
    pki.next_ca.cert.unlink()
    pki.next_ca.key.unlink(missing_ok=True)


def _switch(workspace: Workspace) -> tuple[Renewal, ...]:
    pki = Pki.of(workspace)
    current = rotation(workspace)
    if current.phase == 0:
        raise ConfigurationError(
            "no new CA is staged, so there is nothing to switch to; start a CA rotation with "
            "`crossyard certs rotate --ca`"
        )
    if current.phase == 2 and not current.interrupted:
        raise ConfigurationError(f"{_in_progress(current)}; next: {current.advice(_now())}")
    if not current.interrupted:
        # Kept first: from here on the files say "phase 2", and the old CA stays trusted.
        atomic_write_bytes(pki.previous_ca, certs.pem(_ca_cert(pki)))
    _finish_switch(pki)
    plan = plan_rotation(workspace)
    for renewal in plan:
        _issue(pki, profile_for(workspace, renewal.name))
    return tuple(plan)


@_locked
def switch_ca(workspace: Workspace) -> tuple[Renewal, ...]:
    """Phase 2: the staged CA becomes current and every leaf is re-issued from it (the caller
    reloads servers). The bundle is unchanged: both CAs stay trusted until `retire_ca`."""
    return _switch(workspace)


def _retire(pki: Pki) -> None:
    current = _ca_cert(pki)
    previous = certs.load_cert(pki.previous_ca, fix="delete it")
    stale = [
        name for name in pki.leaf_names()
        if certs.issued_by(_leaf_cert(pki, name), previous)
        and not certs.issued_by(_leaf_cert(pki, name), current)
    ]
    if stale:
        raise ConfigurationError(
            f"leaf certificate(s) {', '.join(stale)} are still issued by the previous CA; run "
            "`crossyard certs rotate` to re-issue them before retiring it"
        )
    _write_bundle(pki, [current])
    pki.previous_ca.unlink()
    pki.state.unlink(missing_ok=True)


@_locked
def retire_ca(workspace: Workspace, *, force: bool = False) -> bool:
    """Phase 3: drop the previous CA from the trust bundle once the overlap has ended (or
    `force`). False when no CA rotation was in progress."""
    pki = Pki.of(workspace)
    current = rotation(workspace)
    now = _now()
    if current.phase == 0:
        return False
    if current.phase == 1:
        raise ConfigurationError(
            f"{_in_progress(current)}: the new CA signs nothing yet and the current one cannot "
            f"be retired; next: {current.advice(now)}"
        )
    if current.interrupted:
        _finish_switch(pki)
    end = current.overlap_end
    if end is not None and now < end and not force:
        raise ConfigurationError(
            f"the CA overlap lasts until {_iso(end)} ({pki.state}); clients may still hold "
            "certificates from the previous CA. Run `crossyard certs retire-ca` after that, or "
            "pass --force if every client trusts the new CA"
        )
    _retire(pki)
    return True


# --- leaves -----------------------------------------------------------------------------------


def _leaf_cert(pki: Pki, name: str) -> x509.Certificate:
    return certs.load_cert(
        pki.leaf(name).cert, fix=f"re-issue it with `crossyard certs issue {name}`"
    )


def _issue(pki: Pki, profile: certprofiles.LeafProfile) -> CertPaths:
    return certs.issue_leaf(
        pki.ca, pki.root / profile.name, names=profile.names, lifetime=profile.lifetime,
        key_type=profile.key_type, usage=profile.usage, common_name=profile.common_name,
        organization=profile.organization,
    )


def _profile_from_cert(name: str, info: certs.CertInfo) -> certprofiles.LeafProfile:
    """A leaf issued ad hoc (`certs issue NAME --san …`) renews with what it already carries."""
    cn = info.subject.removeprefix("CN=") if info.subject.startswith("CN=") else None
    return certprofiles.LeafProfile(
        name=name, dns_names=info.dns_names, ip_addresses=info.ip_addresses,
        common_name=cn or (info.dns_names + info.ip_addresses)[0],
        usage=info.usage or ("server",),
        lifetime=info.requested_lifetime,
        key_type=info.key_type,
    )


def profile_for(workspace: Workspace, name: str) -> certprofiles.LeafProfile:
    """certs/<name>.toml if present, else what the issued certificate already carries."""
    cdir = certs_dir(workspace)
    if certprofiles.profile_path(cdir, name).exists():
        return certprofiles.load_leaf(cdir, name)
    pki = Pki.of(workspace)
    if pki.leaf(name).cert.exists():
        return _profile_from_cert(name, certs.info(_leaf_cert(pki, name), pki.leaf(name).cert))
    return certprofiles.load_leaf(cdir, name)  # raises, naming the missing profile


@_locked
def issue(
    workspace: Workspace, name: str, *, profile: certprofiles.LeafProfile | None = None
) -> CertPaths:
    """(Re-)issue leaf `name` now from `profile` (default: certs/<name>.toml)."""
    certprofiles.check_name(name)
    if profile is None:
        profile = certprofiles.load_leaf(certs_dir(workspace), name)
    ensure_ca(workspace)
    return _issue(Pki.of(workspace), profile)


def key_problem(cert: x509.Certificate, path: Path) -> str | None:
    """Why the private key at `path` cannot serve `cert` ("key missing", "key unreadable",
    "key does not match certificate"), or None. Reads the key, never shows it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "key missing"
    except OSError:
        return "key unreadable"
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return "key unreadable"
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return "key unreadable"
    return None if certs.key_matches(cert, key) else "key does not match certificate"


def _why_renew(
    pki: Pki, name: str, profile: certprofiles.LeafProfile, ca_cert: x509.Certificate,
    *, now: datetime.datetime, due: bool,
) -> str | None:
    """Why leaf `name` must be re-issued now, or None. `due`: also when past 2/3 of its life."""
    paths = pki.leaf(name)
    if not paths.cert.exists():
        return "missing"
    try:
        cert = _leaf_cert(pki, name)
    except ConfigurationError:
        return "certificate unreadable"
    problem = key_problem(cert, paths.key)
    if problem is not None:
        return problem
    certs.load_private_key(paths.key, fix="run `crossyard certs rotate --force`")  # mode check
    if not certs.issued_by(cert, ca_cert):
        return "issued by a CA that is no longer current"
    info = certs.info(cert, paths.cert)
    if now >= info.not_after:
        return "expired"
    if (set(info.dns_names), set(info.ip_addresses), set(info.usage)) != (
        set(profile.dns_names), set(profile.ip_addresses), set(profile.usage)
    ):
        return "profile changed"
    if due and info.renew_due(now):
        return "past two thirds of its lifetime"
    return None


@_locked
def ensure_leaf(workspace: Workspace, name: str) -> CertPaths:
    """ensure_ca, then issue leaf `name` from certs/<name>.toml if it is missing, expired, no
    longer matches its profile or was issued by a CA that is no longer current."""
    certprofiles.check_name(name)
    profile = certprofiles.load_leaf(certs_dir(workspace), name)
    ensure_ca(workspace)
    pki = Pki.of(workspace)
    if _why_renew(pki, name, profile, _ca_cert(pki), now=_now(), due=False) is not None:
        _issue(pki, profile)
    return pki.leaf(name)


CLIENT_LIFETIME: Final = datetime.timedelta(days=90)


@_locked
def client_identity(
    workspace: Workspace, name: str, *, lifetime: datetime.timedelta = CLIENT_LIFETIME
) -> CertPaths:
    """Leaf `name` as a TLS client certificate (clientAuth; CN=name, no SAN: a server checks
    its chain and usage, not a name), from certs/<name>.toml when there is one. Kept while it is
    good for the first two thirds of its life, issued again otherwise. A leaf or profile by that
    name that is not for clients is refused rather than replaced."""
    certprofiles.check_name(name)
    pki = Pki.of(workspace)
    if certprofiles.profile_path(certs_dir(workspace), name).exists() or pki.leaf(name).cert.exists():
        profile = profile_for(workspace, name)
    else:
        profile = certprofiles.LeafProfile(
            name=name, dns_names=(), ip_addresses=(), common_name=name, usage=("client",),
            lifetime=lifetime,
        )
    if "client" not in profile.usage:
        profile_file = certprofiles.profile_path(certs_dir(workspace), name)
        fix = (f"add \"client\" to `usage` in {profile_file}" if profile_file.exists() else
               f"re-issue it with `crossyard certs issue {name} --san … --usage server --usage client`")
        raise ConfigurationError(
            f"certificate `{name}` is for {' and '.join(profile.usage)} use, not for a client; "
            f"pick another name for the client certificate, or {fix}"
        )
    ensure_ca(workspace)
    if _why_renew(pki, name, profile, _ca_cert(pki), now=_now(), due=True) is not None:
        _issue(pki, profile)
    return pki.leaf(name)


def docker_client_files(
    workspace: Workspace, name: str, *, lifetime: datetime.timedelta = CLIENT_LIFETIME
) -> dict[str, tuple[bytes, int]]:
    """What a docker client reads from DOCKER_CERT_PATH to reach a `tcp://` engine with TLS:
    ca.pem (the trust bundle: both CAs during a rotation), cert.pem and key.pem (0600) of the
    client certificate `name` (`client_identity`). File name → (content, mode)."""
    paths = client_identity(workspace, name, lifetime=lifetime)
    pki = Pki.of(workspace)
    fix = f"run `crossyard certs client {name}` again"
    certs.load_private_key(paths.key, fix=fix)  # refuses a key others can read
    return {
        "ca.pem": (b"".join(certs.pem(c) for c in certs.load_bundle(pki.bundle)), 0o644),
        "cert.pem": (certs.pem(certs.load_cert(paths.cert, fix=fix)), 0o644),
        "key.pem": (paths.key.read_bytes(), 0o600),
    }


def plan_rotation(workspace: Workspace, *, force: bool = False) -> list[Renewal]:
    """Which issued leaves `rotate` would re-issue now, and why (reads only; needs no CA key,
    so a lost key is found only when something must be signed)."""
    pki = Pki.of(workspace)
    ca_cert = _ca_cert(pki)
    now = _now()
    plan = []
    for name in pki.leaf_names():
        profile = profile_for(workspace, name)
        reason = _why_renew(pki, name, profile, ca_cert, now=now, due=True)
        if reason is None and force:
            reason = "forced"
        if reason is not None:
            plan.append(Renewal(name=name, reason=reason))
    return plan


@_locked
def rotate_plan(workspace: Workspace, *, force: bool = False, ca: bool = False) -> RotateResult:
    """`rotate`: with `ca`, stage a new CA (phase 1; `force` starts over during a rotation);
    without, switch to a staged CA whose `switch_at` has passed, then re-issue leaves past two
    thirds of their life (every leaf with `force`). Certificates only: reloading servers is
    the caller's job."""
    ensure_ca(workspace)
    switched: tuple[Renewal, ...] | None = None
    if ca:
        _stage_ca(workspace, force=force)
    else:
        current = rotation(workspace)
        if current.phase == 1 and current.switch_at is not None and _now() >= current.switch_at:
            switched = _switch(workspace)
    plan = plan_rotation(workspace, force=force and not ca)
    pki = Pki.of(workspace)
    for renewal in plan:
        _issue(pki, profile_for(workspace, renewal.name))
    return RotateResult(
        renewals=(switched or ()) + tuple(plan), staged=ca, switched=switched is not None
    )


def rotate(workspace: Workspace, *, force: bool = False, ca: bool = False) -> list[str]:
    """`rotate_plan`, returning the names re-issued."""
    return [r.name for r in rotate_plan(workspace, force=force, ca=ca).renewals]


# --- status -----------------------------------------------------------------------------------


def entries(workspace: Workspace) -> list[Entry]:
    """Every certificate in the workspace PKI: the CA, the staged or previous CA, then each
    leaf, each with what is wrong with its private key (if it has one)."""
    pki = Pki.of(workspace)
    if not pki.ca.cert.exists():
        raise ConfigurationError(
            f"no CA at {pki.ca.cert}; run `crossyard certs init` first"
        )

    def entry(name: str, role: str, cert_path: Path, key: Path | None, fix: str) -> Entry:
        cert = certs.load_cert(cert_path, fix=fix)
        return Entry(
            name=name, role=role, info=certs.info(cert, cert_path), key=key,
            key_problem=None if key is None else key_problem(cert, key),
        )

    rows = [entry("ca", "ca", pki.ca.cert, pki.ca.key, certs.CA_CERT_FIX)]
    if pki.next_ca.cert.exists():
        rows.append(entry("ca", "next-ca", pki.next_ca.cert, pki.next_ca.key,
                          "stage a new CA with `crossyard certs rotate --ca --force`"))
    if pki.previous_ca.exists():
        rows.append(entry("ca", "previous-ca", pki.previous_ca, None,
                          "run `crossyard certs retire-ca --force`"))
    rows += [
        entry(name, "leaf", pki.leaf(name).cert, pki.leaf(name).key,
              f"re-issue it with `crossyard certs issue {name}`")
        for name in pki.leaf_names()
    ]
    return rows
