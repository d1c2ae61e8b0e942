"""A throwaway workspace with certificate profiles, and small certificate probes, for the certs
tests. Stable API: `make_workspace(tmp_path, profiles={...})`, `serial(path)`, `openssl_verify`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509

from crossyard.workspace import Workspace

CA_TOML = """\
common_name = "test CA"
lifetime = "365d"
overlap = "1h"
permitted_dns = ["localhost", "cluster.local"]
permitted_ips = ["127.0.0.0/8", "10.0.0.0/8"]
"""

REGISTRY_TOML = """\
names = ["localhost", "127.0.0.1", "registry.cluster.local"]
usage = ["server"]
lifetime = "90d"
"""


def make_workspace(
    tmp_path: Path, *, profiles: dict[str, str] | None = None, ca: str | None = CA_TOML
) -> Workspace:
    """tmp_path/ws with certs/ca.toml (unless ca is None) and certs/<name>.toml per profile."""
    root = tmp_path / "ws"
    (root / "certs").mkdir(parents=True, exist_ok=True)
    (root / "recipes").mkdir(exist_ok=True)
    if ca is not None:
        (root / "certs" / "ca.toml").write_text(ca)
    for name, text in (profiles if profiles is not None else {"registry": REGISTRY_TOML}).items():
        (root / "certs" / f"{name}.toml").write_text(text)
    return Workspace(root=root)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def serial(path: Path) -> int:
    return load(path).serial_number


def openssl_verify(
    openssl: str, cafile: Path, cert: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [openssl, "verify", *extra, "-CAfile", str(cafile), str(cert)],
        capture_output=True, text=True,
    )
