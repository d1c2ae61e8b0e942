"""The crossyard CA and the SAN certificates it issues (private keys written 0600, never printed).

Certificate mechanics only: build, sign, write, load, inspect. Which certificates exist and when
they are renewed is `pki.py`'s job; what goes in them comes from `certprofiles.py`.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crossyard.errors import ConfigurationError
from crossyard.fsutil import atomic_write_bytes

_UTC = datetime.UTC

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
_MAX_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class CertPaths:
    cert: Path
    key: Path


@dataclass(frozen=True, kw_only=True)
class CertInfo:
    """What `certs status` shows about one certificate; never anything secret."""

    path: Path
    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    usage: tuple[str, ...]
    is_ca: bool
    not_before: datetime.datetime
    not_after: datetime.datetime
    fingerprint: str
    key_type: str

    @property
    def lifetime(self) -> datetime.timedelta:
        return self.not_after - self.not_before

    @property
    def requested_lifetime(self) -> datetime.timedelta:
        """The lifetime it was issued with, undoing the clock-skew backdating of not_before."""
        total = self.lifetime
        return total - _skew(total * 10 / 11)

    def remaining(self, now: datetime.datetime) -> datetime.timedelta:
        return self.not_after - now

    def renew_due(self, now: datetime.datetime) -> bool:
        """Past two thirds of its life (where step-ca and cert-manager renew)."""
        return now >= self.not_before + self.lifetime * 2 / 3


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


def _skew(lifetime: datetime.timedelta) -> datetime.timedelta:
    """How far not_before is backdated for clock skew: short certificates backdate less, so
    "two thirds of its life" still means two thirds of the lifetime asked for."""
    return min(_MAX_SKEW, lifetime / 10)


def generate_key(key_type: str = "ecdsa-p256") -> PrivateKey:
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ConfigurationError(f"unknown key type {key_type!r}; use ecdsa-p256 or rsa-3072")


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _key_usage(*, ca: bool, key: PrivateKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        # RSA TLS key exchange encrypts to the key; ECDSA never does.
        key_encipherment=not ca and isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


def build_ca(
    *,
    common_name: str = "crossyard CA",
    lifetime: datetime.timedelta = datetime.timedelta(days=3650),
    permitted_dns: tuple[str, ...] = (),
    permitted_ips: tuple[str, ...] = (),
    key_type: str = "ecdsa-p256",
) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed CA (pathlen 0), name-constrained when permitted_* are given. No I/O."""
    key = generate_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _skew(lifetime))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True, key=key), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if permitted_dns or permitted_ips:
        subtrees: list[x509.GeneralName] = [x509.DNSName(d) for d in permitted_dns]
        try:
            subtrees += [x509.IPAddress(ipaddress.ip_network(n)) for n in permitted_ips]
        except ValueError as exc:
            raise ConfigurationError(f"bad permitted IP range in CA profile: {exc}") from exc
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None),
            critical=True,
        )
    return builder.sign(key, hashes.SHA256()), key


def write_pair(paths: CertPaths, cert: x509.Certificate, key: PrivateKey) -> None:
    """Key first, then certificate, each atomically; the key is 0600."""
    paths.key.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(paths.key, _key_pem(key), mode=0o600)
    atomic_write_bytes(paths.cert, pem(cert))


def create_ca(
    directory: Path,
    *,
    common_name: str = "crossyard CA",
    lifetime: datetime.timedelta = datetime.timedelta(days=3650),
    permitted_dns: tuple[str, ...] = (),
    permitted_ips: tuple[str, ...] = (),
    key_type: str = "ecdsa-p256",
    stem: str = "ca",
) -> CertPaths:
    """Generate a CA in `directory` as <stem>.crt / <stem>.key, optionally name-constrained."""
    cert, key = build_ca(
        common_name=common_name, lifetime=lifetime, permitted_dns=permitted_dns,
        permitted_ips=permitted_ips, key_type=key_type,
    )
    paths = CertPaths(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    write_pair(paths, cert, key)
    return paths


def load_private_key(path: Path, *, fix: str) -> PrivateKey:
    """Read a PEM private key, refusing one that group or others can read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigurationError(f"private key {path} is missing; {fix}") from None
    if mode & 0o077:
        how = "readable" if mode & 0o044 else "writable"
        raise ConfigurationError(
            f"private key {path} is {how} by group or others (mode "
            f"{stat.S_IMODE(mode):04o}); run `chmod 600 {path}` (and consider the key exposed: "
            "rotate it)"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or "not an unencrypted PEM private key"
        raise ConfigurationError(f"private key {path} cannot be read ({reason}); {fix}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigurationError(f"private key {path} is neither ECDSA nor RSA; {fix}")
    return key


def load_cert(path: Path, *, fix: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"certificate {path} is missing; {fix}") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"certificate {path} cannot be read ({exc}); {fix}") from None


def load_bundle(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in file order."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(
            f"trust bundle {path} is missing; run `crossyard certs init`"
        ) from None
    except ValueError as exc:
        raise ConfigurationError(
            f"trust bundle {path} is corrupt ({exc}); `crossyard certs init` rewrites it from the "
            "CA certificates"
        ) from None


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki))


# Ways out that do not lead back here: `certs init --force` never reads the old CA.
CA_CERT_FIX = (
    "restore it from your backup, or start over with `crossyard certs init --force` (a new CA "
    "at once: every certificate is re-issued from it, and each client fails until it has the "
    "new trust from `crossyard certs trust`)"
)
# Staging a new CA needs only the old certificate, so a lost key is replaced without downtime.
CA_KEY_FIX = (
    "restore it from your backup, or replace the CA without downtime: `crossyard certs rotate "
    "--ca` (needs only the CA certificate), give clients the new trust (`crossyard certs "
    "trust`), then `crossyard certs switch-ca`; or start over with `crossyard certs init "
    "--force` (clients fail until they trust the new CA)"
)


def load_ca(ca: CertPaths) -> tuple[x509.Certificate, PrivateKey]:
    cert = load_cert(ca.cert, fix=CA_CERT_FIX)
    key = load_private_key(ca.key, fix=CA_KEY_FIX)
    if not key_matches(cert, key):
        raise ConfigurationError(
            f"CA key {ca.key} does not belong to {ca.cert}; {CA_KEY_FIX}"
        )
    return cert, key


def check_constraints(ca: x509.Certificate, names: tuple[str, ...]) -> None:
    """Refuse names the CA's name constraints do not permit (verifiers would refuse them too)."""
    try:
        nc = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return
    permitted = nc.permitted_subtrees or []
    for n in names:
        ok = False
        for sub in permitted:
            if _is_ip(n) and isinstance(sub, x509.IPAddress):
                net = sub.value
                ok = ok or (
                    isinstance(net, ipaddress.IPv4Network | ipaddress.IPv6Network)
                    and ipaddress.ip_address(n) in net
                )
            elif not _is_ip(n) and isinstance(sub, x509.DNSName):
                d = sub.value.lstrip(".").lower()
                host = n.lower()
                ok = ok or host == d or host.endswith("." + d)
        if not ok:
            allowed = ", ".join(str(s.value) for s in permitted)
            raise ConfigurationError(
                f"name {n!r} is outside the CA's permitted names ({allowed}); add it to "
                "`permitted_dns`/`permitted_ips` in certs/ca.toml and run "
                "`crossyard certs rotate --ca`, or drop it from the certificate profile"
            )




def _check_names(names: tuple[str, ...], usage: tuple[str, ...], common_name: str | None) -> None:
    if not names and (tuple(usage) != ("client",) or not common_name):
        raise ConfigurationError("a certificate needs at least one name (DNS or IP)")


def build_leaf(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    *,
    names: tuple[str, ...],
    lifetime: datetime.timedelta,
    key_type: str = "ecdsa-p256",
    usage: tuple[str, ...] = ("server",),
    common_name: str | None = None,
    organization: tuple[str, ...] = (),
) -> tuple[x509.Certificate, PrivateKey]:
    """Sign a leaf for `names` (DNS or IP SANs) with the given EKUs. No I/O. A client-only leaf
    may have no names: a server checks its chain and EKU, and it is known by `common_name`."""
    _check_names(names, usage, common_name)
    unknown = [u for u in usage if u not in _EKU]
    if unknown or not usage:
        raise ConfigurationError(f"certificate usage {usage!r}: use server and/or client")
    check_constraints(ca_cert, names)
    key = generate_key(key_type)
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in names
    ]
    dns = [n for n in names if not _is_ip(n)]
    # OpenSSL checks a hostname-like CN against DNS name constraints when a certificate has no
    # DNS SAN, so an IP-only leaf gets a CN that is not a hostname.
    cn = common_name or (dns[0] if dns else f"crossyard {names[0]}")
    subject = [*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organization),
               x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _skew(lifetime))
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False, key=key), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = (
        builder
        .add_extension(x509.ExtendedKeyUsage([_EKU[u] for u in usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def issue_leaf(
    ca: CertPaths,
    directory: Path,
    *,
    names: tuple[str, ...],
    lifetime: datetime.timedelta = datetime.timedelta(days=90),
    stem: str = "tls",
    key_type: str = "ecdsa-p256",
    usage: tuple[str, ...] = ("server",),
    common_name: str | None = None,
    organization: tuple[str, ...] = (),
) -> CertPaths:
    """Issue a certificate with `names` as SANs (DNS or IP) into directory/stem.{crt,key}."""
    _check_names(names, usage, common_name)
    ca_cert, ca_key = load_ca(ca)
    cert, key = build_leaf(
        ca_cert, ca_key, names=names, lifetime=lifetime, key_type=key_type, usage=usage,
        common_name=common_name, organization=organization,
    )
    paths = CertPaths(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    write_pair(paths, cert, key)
    return paths


def issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether `ca_cert`'s key signed `cert` (a signature check, not a name comparison)."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def info(cert: x509.Certificate, path: Path) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usage = tuple(u for u, oid in _EKU.items() if oid in eku)
    except x509.ExtensionNotFound:
        usage = ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        path=path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        dns_names=dns,
        ip_addresses=ips,
        usage=usage,
        is_ca=is_ca,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        key_type="rsa-3072" if isinstance(cert.public_key(), rsa.RSAPublicKey) else "ecdsa-p256",
    )


def inspect(
    path: Path, *, fix: str = "re-issue it with `crossyard certs rotate --force`"
) -> CertInfo:
    return info(load_cert(path, fix=fix), path)


def expiry(cert_path: Path) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert_path.read_bytes()).not_valid_after_utc
