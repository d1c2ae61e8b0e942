"""The workspace PKI under `.crossyard/pki/`: which certificates exist, when they are renewed,
and how the CA is rotated without a moment where a client trusts neither CA.

    ca/ca.crt, ca/ca.key   the current CA
    ca/previous.crt        the CA being retired, kept during a CA rotation's overlap
    ca/bundle.crt          what clients trust: the current CA, plus the previous one during overlap
    ca/state.json          when the overlap ends (written by `rotate --ca`, read by `retire-ca`)
    <name>/tls.crt, .key   a leaf issued from profile certs/<name>.toml

A CA rotation writes the two-CA bundle before anything is signed by the new CA, so a client that
re-reads bundle.crt per connection trusts every certificate a server may present at any moment.
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
from typing import Concatenate, ParamSpec, TypeVar

from cryptography import x509

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
class Entry:
    """One row of `certs status`: a role (`ca`, `previous-ca`, or a leaf's name) and its cert."""

    name: str
    role: str
    info: certs.CertInfo
    key: Path | None = None

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


def _new_ca(
    profile: certprofiles.CaProfile, ca: CertPaths,
    *, permitted_dns: tuple[str, ...] | None = None, permitted_ips: tuple[str, ...] | None = None,
) -> x509.Certificate:
    cert, key = certs.build_ca(
        common_name=_ca_name(profile),
        lifetime=profile.lifetime,
        permitted_dns=profile.permitted_dns if permitted_dns is None else permitted_dns,
        permitted_ips=profile.permitted_ips if permitted_ips is None else permitted_ips,
        key_type=profile.key_type,
    )
    certs.write_pair(ca, cert, key)
    return cert


def _ca_name(profile: certprofiles.CaProfile) -> str:
    """The profile's name plus the creation time: during an overlap the two CAs (and which one
    issued a leaf) are told apart at a glance in `certs status`."""
    return f"{profile.common_name} {_now():%Y-%m-%d %H:%M:%S}"


def _write_bundle(pki: Pki, cas: list[x509.Certificate]) -> None:
    atomic_write_bytes(pki.bundle, b"".join(certs.pem(c) for c in cas))


def _current_bundle(pki: Pki) -> list[x509.Certificate]:
    """The current CA, then the previous one while it is kept."""
    fix = "run `crossyard certs init` to create the CA"
    cas = [certs.load_cert(pki.ca.cert, fix=fix)]
    if pki.previous_ca.exists():
        cas.append(certs.load_cert(pki.previous_ca, fix="run `crossyard certs retire-ca --force`"))
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
    no overlap, the old CA is forgotten, and leaves are re-issued by the next rotate/ensure."""
    pki = Pki.of(workspace)
    profile = certprofiles.load_ca(certs_dir(workspace))
    if pki.ca.cert.exists() and not force:
        _ensure_bundle(pki)
        return pki.ca, False
    if permitted_dns is not None:
        permitted_dns = tuple(
            "." * d.startswith(".") + certprofiles.classify_dns_subtree(d, file="--permit-dns")
            for d in permitted_dns
        )
    cert = _new_ca(profile, pki.ca, permitted_dns=permitted_dns, permitted_ips=permitted_ips)
    _write_bundle(pki, [cert])
    pki.previous_ca.unlink(missing_ok=True)
    pki.state.unlink(missing_ok=True)
    return pki.ca, True


def _ensure_bundle(pki: Pki) -> None:
    """bundle.crt holds exactly the current (and previous) CA; rewrite it if not."""
    cas = _current_bundle(pki)
    want = b"".join(certs.pem(c) for c in cas)
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
            f"{pki.state} is corrupt ({exc}); delete it and run `crossyard certs retire-ca "
            "--force` once the old CA is no longer needed"
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{pki.state} is corrupt (not an object); delete it")
    return {str(k): str(v) for k, v in data.items()}


def overlap_end(workspace: Workspace) -> datetime.datetime | None:
    """When the previous CA may be retired, or None when no CA rotation is in progress."""
    pki = Pki.of(workspace)
    if not pki.previous_ca.exists():
        return None
    value = _read_state(pki).get("overlap_end")
    if value is None:
        return None
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(f"{pki.state}: `overlap_end` {value!r} is not a time") from None


def _rotate_ca(workspace: Workspace, *, force: bool) -> None:
    pki = Pki.of(workspace)
    profile = certprofiles.load_ca(certs_dir(workspace))
    if not pki.ca.cert.exists():
        raise ConfigurationError(
            f"there is no CA at {pki.ca.cert} to rotate; run `crossyard certs init`"
        )
    end = overlap_end(workspace)
    if pki.previous_ca.exists() and not force:
        when = f" (overlap ends {end.isoformat(timespec='seconds')})" if end else ""
        raise ConfigurationError(
            f"a CA rotation is already in progress: {pki.previous_ca} is still trusted{when}; run "
            "`crossyard certs retire-ca` first, or pass --force to drop that CA now"
        )
    old = certs.load_cert(pki.ca.cert, fix="run `crossyard certs init --force`")
    new, new_key = certs.build_ca(
        common_name=_ca_name(profile), lifetime=profile.lifetime,
        permitted_dns=profile.permitted_dns, permitted_ips=profile.permitted_ips,
        key_type=profile.key_type,
    )
    # Every leaf must fit the new CA's name constraints before anything is written, or the
    # rotation would stop half-way with leaves the new CA refuses to sign.
    for name in pki.leaf_names():
        certs.check_constraints(new, profile_for(workspace, name).names)
    # Order matters: clients learn the new CA before anything signed by it can be served; the
    # previous CA stays trusted until retire-ca.
    _write_bundle(pki, [new, old])
    atomic_write_bytes(pki.previous_ca, certs.pem(old))
    atomic_write_text(
        pki.state,
        json.dumps(
            {
                "overlap_end": (_now() + profile.overlap).isoformat(timespec="seconds"),
                "previous_sha256": certs.info(old, pki.previous_ca).fingerprint,
            },
            indent=2, sort_keys=True,
        ) + "\n",
    )
    certs.write_pair(pki.ca, new, new_key)


@_locked
def retire_ca(workspace: Workspace, *, force: bool = False) -> None:
    """Drop the previous CA from the trust bundle once the overlap has ended (or `force`)."""
    pki = Pki.of(workspace)
    if not pki.previous_ca.exists():
        return
    end = overlap_end(workspace)
    now = _now()
    if end is not None and now < end and not force:
        raise ConfigurationError(
            f"the CA overlap lasts until {end.isoformat(timespec='seconds')} ({pki.state}); "
            "clients may still hold certificates from the previous CA. Run `crossyard certs "
            "retire-ca` after that, or pass --force if every client trusts the new CA"
        )
    current, _ = certs.load_ca(pki.ca)
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


# --- leaves -----------------------------------------------------------------------------------


def _leaf_cert(pki: Pki, name: str) -> x509.Certificate:
    return certs.load_cert(
        pki.leaf(name).cert, fix=f"re-issue it with `crossyard certs issue {name}`"
    )


def _issue(pki: Pki, profile: certprofiles.LeafProfile) -> CertPaths:
    return certs.issue_leaf(
        pki.ca, pki.root / profile.name, names=profile.names, lifetime=profile.lifetime,
        key_type=profile.key_type, usage=profile.usage, common_name=profile.common_name,
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


def _why_renew(
    pki: Pki, name: str, profile: certprofiles.LeafProfile, ca_cert: x509.Certificate,
    *, now: datetime.datetime, due: bool,
) -> str | None:
    """Why leaf `name` must be re-issued now, or None. `due`: also when past 2/3 of its life."""
    paths = pki.leaf(name)
    if not paths.cert.exists():
        return "missing"
    cert = _leaf_cert(pki, name)
    if not paths.key.exists():
        return "key missing"
    key = certs.load_private_key(paths.key, fix="run `crossyard certs rotate --force`")
    if not certs.key_matches(cert, key):
        return "key does not match certificate"
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
    ca = ensure_ca(workspace)
    pki = Pki.of(workspace)
    ca_cert, _ = certs.load_ca(ca)
    if _why_renew(pki, name, profile, ca_cert, now=_now(), due=False) is not None:
        _issue(pki, profile)
    return pki.leaf(name)


def plan_rotation(workspace: Workspace, *, force: bool = False) -> list[Renewal]:
    """Which issued leaves `rotate` would re-issue now, and why (reads only)."""
    pki = Pki.of(workspace)
    ca_cert, _ = certs.load_ca(pki.ca)
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
def rotate_plan(
    workspace: Workspace, *, force: bool = False, ca: bool = False
) -> list[Renewal]:
    """`rotate`, returning why each leaf was re-issued."""
    ensure_ca(workspace)
    if ca:
        _rotate_ca(workspace, force=force)
    plan = plan_rotation(workspace, force=force)
    pki = Pki.of(workspace)
    for renewal in plan:
        _issue(pki, profile_for(workspace, renewal.name))
    return plan


def rotate(workspace: Workspace, *, force: bool = False, ca: bool = False) -> list[str]:
    """Re-issue leaves past two thirds of their life (all with `force`); with `ca`, first make a
    new CA and publish old+new in bundle.crt, then re-issue every leaf from it. Returns the names
    re-issued. Certificates only: reloading servers is the caller's job."""
    return [r.name for r in rotate_plan(workspace, force=force, ca=ca)]


# --- status -----------------------------------------------------------------------------------


def entries(workspace: Workspace) -> list[Entry]:
    """Every certificate in the workspace PKI: the CA, the previous CA, then each leaf."""
    pki = Pki.of(workspace)
    if not pki.ca.cert.exists():
        raise ConfigurationError(
            f"no CA at {pki.ca.cert}; run `crossyard certs init` first"
        )
    rows = [Entry(name="ca", role="ca", info=certs.inspect(pki.ca.cert), key=pki.ca.key)]
    if pki.previous_ca.exists():
        rows.append(
            Entry(name="ca", role="previous-ca", info=certs.inspect(pki.previous_ca))
        )
    rows += [
        Entry(
            name=name, role="leaf", info=certs.inspect(pki.leaf(name).cert), key=pki.leaf(name).key
        )
        for name in pki.leaf_names()
    ]
    return rows
