"""Time crossyard's layer assembly against `tar | gzip -n -6` on a 256 MiB tree.

Run: python benchmarks/bench_layer.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
from pathlib import Path
from crossyard.oci.layer import LayerEntry, write_layer
from crossyard.oci.layout import OciLayout
tree, out = Path(sys.argv[1]), Path(sys.argv[2])
entries = [LayerEntry(path=str(p.relative_to(tree)), source=p, mode=0o644)
           for p in sorted(tree.rglob("*")) if p.is_file()]
write_layer(OciLayout(out).ensure(), entries, source_date_epoch=0)
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        (tree / "small").mkdir(parents=True)
        with (tree / "big.bin").open("wb") as handle:
            for _ in range(256):
                handle.write(os.urandom(1 << 20))
        for i in range(2000):
            (tree / "small" / f"f{i:04d}.txt").write_bytes(f"file {i}\n".encode() * 20)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", CHILD, str(tree), str(Path(tmp) / "layout")], check=True)
        ours = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(
            f"tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C {tree} -cf - . "
            f"| gzip -n -6 > {tmp}/pipeline.tar.gz",
            shell=True,
            check=True,
        )
        pipeline = time.perf_counter() - start
    print(f"crossyard layer: {ours:.2f} s, peak RSS {peak_kib / 1024:.1f} MiB")
    print(f"tar | gzip -n -6: {pipeline:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
