"""A private containerd for trust tests, and `ctr content fetch` through a hosts.toml directory
as `crossyard certs trust --format containerd` writes it. Stable API: `running_containerd(tmp)`
yields the socket; `ctr_fetch(sock, hosts_dir, ref, creds)`; `untrusted(result)`."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.processes import stop, wait_started


@contextmanager
def running_containerd(tmp: Path) -> Iterator[Path]:
    """A private containerd (own root, state and socket; CRI off); yields its socket."""
    tmp.mkdir(parents=True, exist_ok=True)
    # A unix socket path must stay under ~108 bytes: keep it out of pytest's long tmp path.
    sock_dir = Path(tempfile.mkdtemp(prefix="cy-ctd-"))
    sock = sock_dir / "sock"
    config = tmp / "containerd.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{tmp / "ctd-root"}"\nstate = "{tmp / "ctd-state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n'
    )
    with (tmp / "containerd.log").open("wb") as log:
        proc = subprocess.Popen(
            ["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_started(proc, sock.exists, what="containerd",
                     log=lambda: (tmp / "containerd.log").read_text()[-2000:], timeout=20,
                     interval=0.05)
        yield sock
    finally:
        stop(proc, 10)
        shutil.rmtree(sock_dir, ignore_errors=True)


def ctr_fetch(sock: Path, hosts_dir: Path, ref: str, creds: str,
              platform: str = "linux/riscv64") -> subprocess.CompletedProcess[str]:
    """`ctr content fetch` of `ref`, trusting what hosts_dir/<host:port>/hosts.toml says."""
    return subprocess.run(
        ["ctr", "--address", str(sock), "content", "fetch", "--hosts-dir", str(hosts_dir),
         "--user", creds, "--platform", platform, ref],
        capture_output=True, text=True, timeout=120,
    )


def untrusted(result: subprocess.CompletedProcess[str]) -> bool:
    """The client refused the registry's certificate (Go's x509 wording, skopeo and ctr)."""
    text = (result.stdout + result.stderr).lower()
    return result.returncode != 0 and "x509: certificate signed by unknown authority" in text
