"""Push a 256 MiB single-layer image to a TLS registry: crossyard vs skopeo; peak memory; re-push.

Run: python benchmarks/bench_push.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

SIZE_MIB = int(os.environ.get("BENCH_SIZE_MIB", "256"))


def _child(url: str, ca: str, user: str, pw: str, layout_dir: str, repo: str) -> None:
    from crossyard.oci.layout import OciLayout
    from crossyard.registry.client import RegistryClient

    with RegistryClient(url, ca_path=Path(ca), username=user, password=pw) as client:
        start = time.perf_counter()
        client.push_layout(OciLayout(Path(layout_dir)), "big:1", repo, "1")
        print(f"{time.perf_counter() - start:.3f}")


def _run_child(*args: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    ).stdout
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return float(out.strip()), max(peak_kib, before) / 1024


def main() -> int:
    from tests.helpers.registry import running_registry
    from tests.test_publish_faults import _big_image

    from crossyard.oci.layout import OciLayout

    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        layout = OciLayout(tmp / "layout").ensure()
        _big_image(layout, SIZE_MIB << 20)
        with running_registry(tmp) as reg:
            args = (reg.url, str(reg.ca_path), reg.username, reg.password, str(layout.root))
            ours, peak = _run_child(*args, "bench-a")
            again, _ = _run_child(*args, "bench-a")
            certs = tmp / "certs"
            certs.mkdir()
            (certs / "ca.crt").write_bytes(reg.ca_path.read_bytes())
            start = time.perf_counter()
            subprocess.run(
                ["skopeo", "copy", "--quiet", f"oci:{layout.root}:big:1",
                 f"docker://{reg.host}/bench-b:1", "--dest-cert-dir", str(certs),
                 "--dest-creds", f"{reg.username}:{reg.password}"],
                check=True,
            )
            skopeo = time.perf_counter() - start
    print(f"{SIZE_MIB} MiB single-layer image to TLS registry (fresh repository each):")
    print(f"  crossyard push : {ours:.2f} s (peak RSS of the pushing process {peak:.0f} MiB)")
    print(f"  skopeo copy    : {skopeo:.2f} s")
    print(f"  no-change push : {again:.3f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:8])
        sys.exit(0)
    sys.exit(main())
