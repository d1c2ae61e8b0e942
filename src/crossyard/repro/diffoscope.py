"""diffoscope's HTML diff, when Debian's `diffoscope` is installed.

crossyard's own explanations (explain.py) are always there; diffoscope adds the full, human
readable diff of two outputs. It is optional, so its absence is not an error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path


def html_diff(a: Path, b: Path, out_html: Path, *, timeout: float = 300) -> Path | None:
    """Write diffoscope's HTML comparison of `a` and `b` to `out_html` and return it; None when
    diffoscope is not installed, did not finish within `timeout` seconds, or failed (a missing
    diff page is not a finding: the caller still has crossyard's own explanation)."""
    program = shutil.which("diffoscope")
    if program is None:
        return None
    out_html.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out_html.parent, prefix=f".{out_html.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # its own process group, so a timeout also ends the tools diffoscope started (objdump …)
        # diffoscope's own --timeout (best effort: no further sub-archives after it) at half
        # the budget, so a big layer still gets a partial page before the hard stop below
        soft = str(max(1, int(timeout / 2)))
        process = subprocess.Popen(
            [program, "--no-progress", "--timeout", soft, "--html", str(tmp), str(a), str(b)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None
        # 0: identical, 1: differences found (the HTML is written in both cases), 2: error
        if code not in (0, 1) or tmp.stat().st_size == 0:
            return None
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_html)
        return out_html
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
