"""Trust material for registry clients, rendered from the workspace CA bundle. Pure: each renderer
returns {relative path: bytes} and the caller decides where it goes.

During a CA rotation the bundle holds two CAs (the new one first, then the old one) and every
format trusts both, so a node keeps pulling whichever certificate the registry presents; what is
rendered after `certs rotate --ca` stays exact through `certs switch-ca`:

- docker:     certs.d/<host:port>/ca.crt holding both CAs (Docker reads every *.crt there), plus
              client.cert/client.key for mTLS.
- containerd: certs.d/<host:port>/hosts.toml with `ca` as an array of paths (relative paths are
              resolved against the hosts.toml directory), the CA files beside it; no restart.
              Each CA file is named by its certificate's fingerprint, so rewriting the trust
              never changes a file an older hosts.toml points at: containerd reads hosts.toml
              and then each file per pull, and a fixed name (ca.crt holding "the newest CA")
              would, between the two writes, leave a node trusting only the new CA while the
              registry still serves the old one's leaf. hosts.toml comes last in the mapping.
- talos:      Talos 1.12+ takes registry trust as documents of their own: a multi-document
              talos-registry-tls.yaml with a `RegistryTLSConfig` (name = HOST:PORT, `ca` = the
              PEM bundle, `clientIdentity` for mTLS) and a `TrustedRootsConfig` (the bundle in
              the node's trusted roots). Older Talos reads the v1alpha1 patch
              talos-registry-patch.yaml (machine.registries.config."<host:port>".tls, base64).
              `--talos-version` picks one; without it both are written.
- k8s:        a ConfigMap holding the bundle as ca.crt, for workloads and node agents to mount.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .errors import ConfigurationError, suggest

_HOST_RE: Final = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::(?P<port>\d+))?$")
_K8S_NAME_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class ClientIdentity:
    """A client certificate and its key (PEM) for mTLS. The key is written 0600, never printed."""

    cert: bytes
    key: bytes


@dataclass(frozen=True, kw_only=True)
class TrustInput:
    host: str
    cas: tuple[bytes, ...]
    client: ClientIdentity | None = None
    namespace: str = "kube-system"
    name: str = "crossyard-registry-ca"
    talos_version: tuple[int, int] | None = None

    @property
    def bundle(self) -> bytes:
        return b"".join(_pem_block(ca) for ca in self.cas)


def _pem_block(pem: bytes) -> bytes:
    return pem.rstrip(b"\n") + b"\n"


def parse_host(text: str) -> str:
    """`host:port` as clients write it (`[v6]:port` for IPv6); raise naming the fix."""
    match = _HOST_RE.match(text.strip())
    fix = "give the registry as HOST:PORT the clients use, e.g. `registry.cluster.local:5000`"
    if match is None:
        raise ConfigurationError(f"--host {text!r} is not a registry host; {fix}")
    if match.group("v6"):
        try:
            ipaddress.IPv6Address(match.group("v6"))
        except ValueError:
            raise ConfigurationError(f"--host {text!r}: bad IPv6 address; {fix}") from None
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise ConfigurationError(f"--host {text!r}: port {port} is out of range; {fix}")
    return text.strip()


def _docker(t: TrustInput) -> dict[str, bytes]:
    base = f"certs.d/{t.host}"
    out = {f"{base}/ca.crt": t.bundle}
    if t.client is not None:
        out[f"{base}/client.cert"] = t.client.cert
        out[f"{base}/client.key"] = t.client.key
    return out


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


# The CA files `_containerd` writes (and a pre-fingerprint "ca.crt"/"ca-previous*.crt"), which
# the writer may remove once a newer hosts.toml no longer lists them.
CONTAINERD_CA_GLOB: Final = "ca*.crt"


def containerd_ca_name(pem: bytes) -> str:
    """`ca-<first 16 hex of the certificate's SHA-256>.crt`: content-named, never rewritten."""
    der = base64.b64decode(b"".join(
        line for line in pem.strip().splitlines() if not line.startswith(b"-----")
    ))
    return f"ca-{hashlib.sha256(der).hexdigest()[:16]}.crt"


def _containerd(t: TrustInput) -> dict[str, bytes]:
    base = f"certs.d/{t.host}"
    names = [containerd_ca_name(ca) for ca in t.cas]
    out = {f"{base}/{n}": _pem_block(ca) for n, ca in zip(names, t.cas, strict=True)}
    server = f"https://{t.host}"
    lines = [
        "# Written by `crossyard certs trust --format containerd`; paths are relative to this",
        "# directory. During a CA rotation both CAs are listed.",
        f"server = {_toml_str(server)}",
        "",
        f"[host.{_toml_str(server)}]",
        '  capabilities = ["pull", "resolve", "push"]',
        f"  ca = [{', '.join(_toml_str(n) for n in names)}]",
    ]
    if t.client is not None:
        lines.append('  client = [["client.cert", "client.key"]]')
        out[f"{base}/client.cert"] = t.client.cert
        out[f"{base}/client.key"] = t.client.key
    out[f"{base}/hosts.toml"] = ("\n".join(lines) + "\n").encode()
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# The first Talos that takes RegistryTLSConfig / TrustedRootsConfig documents.
TALOS_DOCUMENTS: Final = (1, 12)
_TALOS_VERSION_RE: Final = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?$")


def parse_talos_version(text: str) -> tuple[int, int]:
    match = _TALOS_VERSION_RE.match(text.strip())
    if match is None:
        raise ConfigurationError(
            f"--talos-version {text!r} is not a Talos version; give MAJOR.MINOR as "
            "`talosctl version` prints it, e.g. 1.12 (or 1.11 for the older patch)"
        )
    return int(match.group(1)), int(match.group(2))


def _talos_patch(t: TrustInput) -> bytes:
    lines = [
        "# Talos machine-config patch (v1alpha1, Talos before 1.12): trust the crossyard",
        "# registry CA bundle. Apply with",
        "# `talosctl patch machineconfig --patch @talos-registry-patch.yaml`.",
        "machine:",
        "  registries:",
        "    config:",
        f"      {json.dumps(t.host)}:",
        "        tls:",
        f"          ca: {_b64(t.bundle)}",
    ]
    if t.client is not None:
        lines += [
            "          clientIdentity:",
            f"            crt: {_b64(t.client.cert)}",
            f"            key: {_b64(t.client.key)}",
        ]
    return ("\n".join(lines) + "\n").encode()


def _block(pem: bytes, indent: int) -> list[str]:
    """A PEM text as the lines of a YAML literal block (`|-`) at `indent`."""
    return [" " * indent + line for line in pem.decode().strip("\n").splitlines()]


def _talos_documents(t: TrustInput) -> bytes:
    if not _K8S_NAME_RE.match(t.name) or len(t.name) > 63:
        raise ConfigurationError(
            f"--name {t.name!r} is not usable as the TrustedRootsConfig name (lowercase "
            "letters, digits, '-')"
        )
    lines = [
        "# Talos 1.12+ machine-config documents: trust the crossyard registry CA bundle (both",
        "# CAs during a CA rotation). Apply with",
        "# `talosctl patch machineconfig --patch @talos-registry-tls.yaml`.",
        "apiVersion: v1alpha1",
        "kind: RegistryTLSConfig",
        f"name: {json.dumps(t.host)}",
        "ca: |-",
        *_block(t.bundle, 2),
    ]
    if t.client is not None:
        lines += [
            "clientIdentity:",
            "  cert: |-", *_block(t.client.cert, 4),
            "  key: |-", *_block(t.client.key, 4),
        ]
    lines += [
        "---",
        "# The same CAs among the node's trusted roots, for what Talos itself fetches over TLS;",
        "# the CA's name constraints keep it from vouching for names outside the cluster.",
        "apiVersion: v1alpha1",
        "kind: TrustedRootsConfig",
        f"name: {t.name}",
        "certificates: |-",
        *_block(t.bundle, 2),
    ]
    return ("\n".join(lines) + "\n").encode()


def _talos(t: TrustInput) -> dict[str, bytes]:
    out = {}
    if t.talos_version is None or t.talos_version >= TALOS_DOCUMENTS:
        out["talos-registry-tls.yaml"] = _talos_documents(t)
    if t.talos_version is None or t.talos_version < TALOS_DOCUMENTS:
        out["talos-registry-patch.yaml"] = _talos_patch(t)
    return out


def _k8s(t: TrustInput) -> dict[str, bytes]:
    for what, value in (("--namespace", t.namespace), ("--name", t.name)):
        if not _K8S_NAME_RE.match(value) or len(value) > 63:
            raise ConfigurationError(
                f"{what} {value!r} is not a Kubernetes name (lowercase letters, digits, '-')"
            )
    if t.client is not None:
        raise ConfigurationError(
            "--client is not rendered for k8s: a ConfigMap must not hold a private key; create a "
            "kubernetes.io/tls Secret from .crossyard/pki/<name>/tls.{crt,key} instead"
        )
    pem = t.bundle.decode().rstrip("\n").splitlines()
    lines = [
        "# The crossyard registry CA bundle (both CAs during a CA rotation).",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: {t.name}",
        f"  namespace: {t.namespace}",
        "  labels:",
        "    app.kubernetes.io/managed-by: crossyard",
        "  annotations:",
        f"    crossyard.dev/registry: {json.dumps(t.host)}",
        "data:",
        "  ca.crt: |",
        *("    " + line for line in pem),
    ]
    return {"registry-ca-configmap.yaml": ("\n".join(lines) + "\n").encode()}


RENDERERS: Final[Mapping[str, Callable[[TrustInput], dict[str, bytes]]]] = {
    "docker": _docker,
    "containerd": _containerd,
    "talos": _talos,
    "k8s": _k8s,
}
FORMATS: Final = tuple(RENDERERS)


def render(
    fmt: str,
    *,
    host: str,
    cas: Sequence[bytes],
    client: ClientIdentity | None = None,
    namespace: str = "kube-system",
    name: str = "crossyard-registry-ca",
    talos_version: str | None = None,
) -> dict[str, bytes]:
    """{relative path: content} for `fmt`; `cas` are PEM CA certificates, newest first.
    `talos_version` (MAJOR.MINOR) picks the Talos form; None writes both."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ConfigurationError(
            f"unknown trust format {fmt!r}{suggest(fmt, FORMATS)}; use one of: {', '.join(FORMATS)}"
        )
    if not cas:
        raise ConfigurationError("the trust bundle is empty; run `crossyard certs init`")
    if talos_version is not None and fmt != "talos":
        raise ConfigurationError("--talos-version applies only to --format talos")
    return renderer(
        TrustInput(
            host=parse_host(host), cas=tuple(cas), client=client, namespace=namespace, name=name,
            talos_version=None if talos_version is None else parse_talos_version(talos_version),
        )
    )


def is_secret(relpath: str, content: bytes, client: ClientIdentity | None) -> bool:
    """Whether a rendered file holds a private key (written 0600, never printed)."""
    if relpath.endswith(".key"):
        return True
    if client is None:
        return False
    # A full-width line of the key's body, so an indented copy (a YAML block) is caught too;
    # a short last line could occur by chance in a certificate.
    body = [line for line in client.key.splitlines() if len(line.strip()) >= 48]
    return client.key in content or _b64(client.key).encode() in content or any(
        line.strip() in content for line in body
    )
