"""Certificate profiles: `certs/ca.toml` for the CA, `certs/<name>.toml` for each leaf.

A profile says which names a certificate carries, how long it lives, what it may be used for and
which key it gets. Reading is strict: an unknown key suggests the nearest known one, a bad SAN or
lifetime names the file and key. Profiles never hold private keys.

    # certs/ca.toml                              # certs/registry.toml
    common_name = "crossyard CA"                 names = ["localhost", "127.0.0.1"]
    key_type = "ecdsa-p256"    # or "rsa-3072"   usage = ["server"]      # and/or "client"
    lifetime = "3650d"                           lifetime = "90d"        # d, h, m or s
    overlap = "30d"            # old CA trusted this long after `rotate --ca`
    switch_after = "7d"        # optional: `certs rotate` switches to the staged CA this late
    permitted_dns = ["localhost", "local"]
    permitted_ips = ["127.0.0.0/8", "10.0.0.0/8"]
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .errors import ConfigurationError, check_keys, suggest
from .recipes import read_toml

KEY_TYPES: Final = ("ecdsa-p256", "rsa-3072")
USAGES: Final = ("server", "client")
CA_PROFILE: Final = "ca"

CA_KEYS: Final = (
    "common_name", "key_type", "lifetime", "overlap", "switch_after", "permitted_dns",
    "permitted_ips",
)
LEAF_KEYS: Final = ("names", "common_name", "organization", "usage", "lifetime", "key_type")

_UNITS: Final = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# 100 years: far beyond any sensible certificate, and still inside X.509's year-9999 limit.
MAX_LIFETIME_DAYS: Final = 36500
_LIFETIME_RE: Final = re.compile(r"^\s*(\d+)\s*([dhms])\s*$")
_LABEL_RE: Final = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

# Without certs/ca.toml the CA may only vouch for names that cannot be public: loopback, private
# ranges and the special-use suffixes clusters use. A leaked CA key then cannot impersonate
# anything on the internet.
DEFAULT_PERMITTED_DNS: Final = ("localhost", "local", "internal", "lan", "home.arpa")
DEFAULT_PERMITTED_IPS: Final = (
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8",
)


@dataclass(frozen=True, kw_only=True)
class CaProfile:
    common_name: str = "crossyard CA"
    key_type: str = "ecdsa-p256"
    lifetime: datetime.timedelta = datetime.timedelta(days=3650)
    overlap: datetime.timedelta = datetime.timedelta(days=30)
    # When set, `certs rotate` switches leaves to a staged CA this long after `rotate --ca`
    # (inside the overlap); without it only `certs switch-ca` does.
    switch_after: datetime.timedelta | None = None
    permitted_dns: tuple[str, ...] = DEFAULT_PERMITTED_DNS
    permitted_ips: tuple[str, ...] = DEFAULT_PERMITTED_IPS


@dataclass(frozen=True, kw_only=True)
class LeafProfile:
    name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    common_name: str
    usage: tuple[str, ...] = ("server",)
    lifetime: datetime.timedelta = datetime.timedelta(days=90)
    key_type: str = "ecdsa-p256"
    # The subject's O values: what Kubernetes reads as a client certificate's groups
    # (`organization = ["system:masters"]` for a cluster admin).
    organization: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every SAN, DNS names first (the order `certs.issue_leaf` takes)."""
        return self.dns_names + self.ip_addresses


def parse_lifetime(value: Any, *, key: str, file: Path | str) -> datetime.timedelta:
    """'90d', '12h', '15m', '30s' → timedelta; anything else names the file and key."""
    match = _LIFETIME_RE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ConfigurationError(
            f"{file}: `{key}` = {value!r} is not a lifetime; write a positive whole number "
            'followed by d, h, m or s, e.g. "90d", "12h" or "30s"'
        )
    return check_lifetime(
        int(match.group(1)) * _UNITS[match.group(2)], shown=repr(value), key=key, file=file
    )


def check_lifetime(
    seconds: int, *, shown: str, key: str, file: Path | str
) -> datetime.timedelta:
    """A lifetime within 1s..MAX_LIFETIME_DAYS, or an error naming where it came from."""
    if not 0 < seconds <= MAX_LIFETIME_DAYS * _UNITS["d"]:
        raise ConfigurationError(
            f"{file}: `{key}` = {shown} is out of range; a lifetime is between 1s and "
            f'{MAX_LIFETIME_DAYS}d (100 years), e.g. "90d"'
        )
    return datetime.timedelta(seconds=seconds)


def classify_name(name: str, *, where: str) -> tuple[str, str]:
    """('dns'|'ip', normalized) for one SAN; a malformed one raises naming `where`."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{where}: {name!r} is not a name; give a DNS name or an IP")
    if ":" in name or re.fullmatch(r"[0-9.]+", name):
        try:
            return "ip", str(ipaddress.ip_address(name))
        except ValueError:
            raise ConfigurationError(
                f"{where}: {name!r} is not a valid IP address (each IPv4 part is 0-255, e.g. "
                "10.0.0.30); fix or remove it"
            ) from None
    labels = name.lower().rstrip(".").split(".")
    wildcard = labels[0] == "*"
    rest = labels[1:] if wildcard else labels
    bad = [label for label in rest if not _LABEL_RE.match(label)]
    if bad or not rest or len(name) > 253:
        hint = (
            "a wildcard may only be the whole leftmost label, e.g. `*.cluster.local`"
            if "*" in name
            else "use letters, digits and hyphens between dots, e.g. `registry.cluster.local`"
        )
        raise ConfigurationError(f"{where}: {name!r} is not a valid DNS name; {hint}")
    return "dns", ".".join(labels)


def _str_list(value: Any, *, key: str, file: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{file}: `{key}` must be a list of strings, got {value!r}")
    return tuple(value)


def _str(value: Any, *, key: str, file: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{file}: `{key}` must be a non-empty string, got {value!r}")
    return value


def _key_type(value: Any, *, file: Path) -> str:
    if value not in KEY_TYPES:
        raise ConfigurationError(
            f"{file}: `key_type` = {value!r} is not supported{suggest(str(value), KEY_TYPES)}; "
            f"use one of: {', '.join(KEY_TYPES)}"
        )
    return str(value)


def parse_ca(data: dict[str, Any], *, file: Path) -> CaProfile:
    check_keys(data, CA_KEYS, where="the CA profile", file=file)
    defaults = CaProfile()
    dns = defaults.permitted_dns
    if "permitted_dns" in data:
        dns = tuple(
            "." * d.startswith(".") + classify_dns_subtree(d, file=file)
            for d in _str_list(data["permitted_dns"], key="permitted_dns", file=file)
        )
    ips = defaults.permitted_ips
    if "permitted_ips" in data:
        ips = tuple(
            _network(n, file=file)
            for n in _str_list(data["permitted_ips"], key="permitted_ips", file=file)
        )
    if not dns and not ips:
        raise ConfigurationError(
            f"{file}: `permitted_dns` and `permitted_ips` are both empty, so the CA could sign "
            "nothing; list the cluster's DNS suffixes and IP ranges"
        )
    overlap = (
        parse_lifetime(data["overlap"], key="overlap", file=file)
        if "overlap" in data else defaults.overlap
    )
    switch_after = (
        parse_lifetime(data["switch_after"], key="switch_after", file=file)
        if "switch_after" in data else None
    )
    if switch_after is not None and switch_after >= overlap:
        raise ConfigurationError(
            f"{file}: `switch_after` = {data['switch_after']!r} must be shorter than `overlap` "
            f"({data.get('overlap', '30d')!r}): the switch to the new CA happens inside the "
            "overlap, while clients still trust the previous CA"
        )
    return CaProfile(
        common_name=_str(data.get("common_name", defaults.common_name), key="common_name", file=file),
        key_type=_key_type(data.get("key_type", defaults.key_type), file=file),
        lifetime=(
            parse_lifetime(data["lifetime"], key="lifetime", file=file)
            if "lifetime" in data else defaults.lifetime
        ),
        overlap=overlap,
        switch_after=switch_after,
        permitted_dns=dns,
        permitted_ips=ips,
    )


def classify_dns_subtree(value: str, *, file: Path | str) -> str:
    kind, norm = classify_name(value.lstrip("."), where=f"{file}: `permitted_dns`")
    if kind != "dns" or norm.startswith("*"):
        raise ConfigurationError(
            f"{file}: `permitted_dns` entry {value!r} must be a DNS suffix such as `cluster.local`"
            " (IP ranges go in `permitted_ips`)"
        )
    return norm


def _network(value: str, *, file: Path | str) -> str:
    try:
        return str(ipaddress.ip_network(value))
    except ValueError as exc:
        raise ConfigurationError(
            f"{file}: `permitted_ips` entry {value!r} is not an IP range ({exc}); write CIDR "
            "with the host bits zero, e.g. `10.0.0.0/8`"
        ) from None


def parse_leaf(data: dict[str, Any], *, name: str, file: Path) -> LeafProfile:
    check_keys(data, LEAF_KEYS, where="the certificate profile", file=file)
    raw = _str_list(data.get("names", []), key="names", file=file)
    if not raw:
        raise ConfigurationError(
            f"{file}: the profile has no `names`; add the DNS names and IPs clients use, e.g. "
            'names = ["registry.cluster.local", "10.0.0.5"]'
        )
    dns: list[str] = []
    ips: list[str] = []
    for entry in raw:
        kind, norm = classify_name(entry, where=f"{file}: `names`")
        target = dns if kind == "dns" else ips
        if norm not in target:
            target.append(norm)
    usage = _str_list(data.get("usage", ["server"]), key="usage", file=file)
    for u in usage:
        if u not in USAGES:
            raise ConfigurationError(
                f"{file}: `usage` entry {u!r} is unknown{suggest(u, USAGES)}; use "
                '["server"], ["client"] or both'
            )
    if not usage:
        raise ConfigurationError(f'{file}: `usage` is empty; use ["server"], ["client"] or both')
    return LeafProfile(
        name=name,
        dns_names=tuple(dns),
        ip_addresses=tuple(ips),
        common_name=_str(data.get("common_name", (dns or ips)[0]), key="common_name", file=file),
        usage=tuple(dict.fromkeys(usage)),
        lifetime=(
            parse_lifetime(data["lifetime"], key="lifetime", file=file)
            if "lifetime" in data else datetime.timedelta(days=90)
        ),
        key_type=_key_type(data.get("key_type", "ecdsa-p256"), file=file),
        organization=tuple(
            _str(o, key="organization", file=file)
            for o in _str_list(data.get("organization", []), key="organization", file=file)
        ),
    )


def profile_path(certs_dir: Path, name: str) -> Path:
    return certs_dir / f"{name}.toml"


def check_name(name: str) -> str:
    """A leaf name is a directory under .crossyard/pki/: keep it a plain, safe word."""
    if not _NAME_RE.match(name) or name == CA_PROFILE:
        raise ConfigurationError(
            f"certificate name {name!r} is not usable; use lowercase letters, digits, . _ - "
            "(and not `ca`, which is the CA's profile)"
        )
    return name


def load_ca(certs_dir: Path) -> CaProfile:
    """certs/ca.toml, or the defaults when the workspace has none."""
    file = profile_path(certs_dir, CA_PROFILE)
    if not file.exists():
        return CaProfile()
    return parse_ca(read_toml(file), file=file)


def load_leaf(certs_dir: Path, name: str) -> LeafProfile:
    file = profile_path(certs_dir, check_name(name))
    if not file.exists():
        raise ConfigurationError(
            f"no certificate profile {file}; create it with at least "
            'names = ["<dns name or ip>"] (see certs/registry.toml in the example workspace)'
        )
    return parse_leaf(read_toml(file), name=name, file=file)


def leaf_names(certs_dir: Path) -> tuple[str, ...]:
    """Names of every leaf profile in certs/ (all *.toml except ca.toml), sorted."""
    if not certs_dir.is_dir():
        return ()
    return tuple(sorted(p.stem for p in certs_dir.glob("*.toml") if p.stem != CA_PROFILE))
