"""crossyard.elf.read_sections against binutils' readelf, on objects the cross gcc makes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from crossyard.elf import SHT_NOBITS, read_sections

CC = "riscv64-linux-gnu-gcc"


def readelf_sections(path: Path) -> list[tuple[str, int, int]]:
    """(name, offset, size) of each section as `readelf -SW` prints them."""
    out = subprocess.run(["readelf", "-SW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        # "[Nr] Name Type Addr Off Size …"; -W prints long names whole; section 0 has none
        match = re.match(r"\s*\[\s*\d+\] (\S*)\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)",
                         line)
        if match:
            name, offset, size = match.groups()
            rows.append((name, int(offset, 16), int(size, 16)))
    return rows


@pytest.mark.integration
@pytest.mark.parametrize("flags", [("-g", "-O1"), ("-march=rv32imac", "-mabi=ilp32", "-c")],
                         ids=["elf64-executable", "elf32-object"])
def test_sections_are_the_ones_readelf_lists(tmp_path: Path, flags: tuple[str, ...]):
    require_tool(CC, "apt-get install gcc-riscv64-linux-gnu")
    require_tool("readelf", "apt-get install binutils")
    (tmp_path / "m.c").write_text("int x = 1; char b[64];\nint main(void) { return x + b[0]; }\n")
    out = tmp_path / "m"
    subprocess.run([CC, *flags, "m.c", "-o", str(out)], cwd=tmp_path, check=True)

    sections = read_sections(out)

    assert sections is not None
    assert [(s.name, s.offset, s.memsize) for s in sections] == readelf_sections(out)
    assert all(s.size == 0 for s in sections if s.type == SHT_NOBITS)  # .bss: no file bytes
    assert any(s.name == ".bss" for s in sections)


def test_what_is_not_a_whole_elf_file_has_no_sections(tmp_path: Path):
    require_tool(CC, "apt-get install gcc-riscv64-linux-gnu")
    (tmp_path / "m.c").write_text("int main(void) { return 0; }\n")
    subprocess.run([CC, "m.c", "-o", "m"], cwd=tmp_path, check=True)
    whole = (tmp_path / "m").read_bytes()
    (tmp_path / "cut").write_bytes(whole[: len(whole) // 2])  # the section headers are at the end
    (tmp_path / "text").write_text("not an ELF file\n")

    assert read_sections(tmp_path / "cut") is None
    assert read_sections(tmp_path / "text") is None
