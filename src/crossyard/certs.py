"""The crossyard CA and the SAN certificates it issues (private keys written 0600, never printed)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crossyard.errors import ConfigurationError
from crossyard.fsutil import atomic_write_bytes

_UTC = datetime.UTC


@dataclass(frozen=True, kw_only=True)
class CertPaths:
    cert: Path
    key: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def create_ca(
    directory: Path,
    *,
    common_name: str = "crossyard CA",
    lifetime: datetime.timedelta = datetime.timedelta(days=3650),
    permitted_dns: tuple[str, ...] = (),
    permitted_ips: tuple[str, ...] = (),
) -> CertPaths:
    """Generate a CA (EC P-256) in `directory` as ca.crt / ca.key, optionally name-constrained."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
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
    cert = builder.sign(key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(cert=directory / "ca.crt", key=directory / "ca.key")
    atomic_write_bytes(paths.key, _key_pem(key), mode=0o600)
    atomic_write_bytes(paths.cert, cert.public_bytes(serialization.Encoding.PEM))
    return paths


def load_ca(ca: CertPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
        key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read CA {ca.cert}: {exc}; run `crossyard certs init` to create one"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{ca.key}: expected an EC private key")
    return cert, key


def _check_constraints(ca: x509.Certificate, names: tuple[str, ...]) -> None:
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
                    isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network))
                    and ipaddress.ip_address(n) in net
                )
            elif not _is_ip(n) and isinstance(sub, x509.DNSName):
                d = sub.value.lstrip(".")
                ok = ok or n == d or n.endswith("." + d)
        if not ok:
            raise ConfigurationError(
                f"name {n!r} is outside the CA's permitted names; add it to the CA profile "
                "and rotate the CA"
            )


def issue_leaf(
    ca: CertPaths,
    directory: Path,
    *,
    names: tuple[str, ...],
    lifetime: datetime.timedelta = datetime.timedelta(days=90),
    stem: str = "tls",
) -> CertPaths:
    """Issue a server certificate with `names` as SANs (DNS or IP) into directory/stem.{crt,key}."""
    if not names:
        raise ConfigurationError("a certificate needs at least one name (DNS or IP)")
    ca_cert, ca_key = load_ca(ca)
    _check_constraints(ca_cert, names)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in names
    ]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    atomic_write_bytes(paths.key, _key_pem(key), mode=0o600)
    atomic_write_bytes(paths.cert, cert.public_bytes(serialization.Encoding.PEM))
    return paths


def expiry(cert_path: Path) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert_path.read_bytes()).not_valid_after_utc
