"""Just enough ELF to check that an artifact was built for the platform it claims."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .platforms import Platform

ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True, kw_only=True)
class ElfHeader:
    elf_class: int  # 1 = 32-bit, 2 = 64-bit
    little_endian: bool
    machine: int
    type: int  # 2 = executable, 3 = shared object / PIE

    @property
    def platform(self) -> Platform | None:
        return Platform.from_elf_machine(self.machine)


def read_header(path: Path) -> ElfHeader | None:
    """The ELF header of `path`, or None when it is not an ELF file."""
    with path.open("rb") as handle:
        head = handle.read(20)
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        return None
    little = head[5] == 1
    e_type, e_machine = struct.unpack("<HH" if little else ">HH", head[16:20])
    return ElfHeader(elf_class=head[4], little_endian=little, machine=e_machine, type=e_type)


def mismatch(path: Path, platform: Platform) -> str | None:
    """Why `path` is not an ELF binary for `platform`, or None when it is (or is not ELF)."""
    header = read_header(path)
    if header is None:
        return None
    if header.machine != platform.elf_machine or header.elf_class != platform.elf_class:
        found = header.platform
        return (
            f"{path.name}: ELF e_machine {header.machine} ({found.oci if found else 'unknown'}), "
            f"class {header.elf_class}; expected {platform.elf_machine} ({platform.oci})"
        )
    return None
