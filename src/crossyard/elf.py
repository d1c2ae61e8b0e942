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


SHT_NOBITS = 8  # .bss and friends: a size, no bytes in the file


@dataclass(frozen=True, kw_only=True)
class Section:
    name: str
    type: int
    offset: int
    size: int  # bytes in the file (0 for SHT_NOBITS)
    memsize: int  # sh_size as the header says


def read_sections(path: Path) -> tuple[Section, ...] | None:
    """The section headers of `path` with their names, or None when it is not a readable ELF
    file (not ELF, truncated, offsets outside the file). Only the headers and the section-name
    table are read, so a large binary costs a few kilobytes."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        ident = handle.read(64)
        if len(ident) < 52 or ident[:4] != ELF_MAGIC or ident[4] not in (1, 2):
            return None
        end = "<" if ident[5] == 1 else ">"
        wide = ident[4] == 2
        if wide:
            if len(ident) < 64:
                return None
            (shoff,) = struct.unpack(end + "Q", ident[0x28:0x30])
            shentsize, shnum, shstrndx = struct.unpack(end + "HHH", ident[0x3A:0x40])
            entry = struct.Struct(end + "IIQQQQIIQQ")
        else:
            (shoff,) = struct.unpack(end + "I", ident[0x20:0x24])
            shentsize, shnum, shstrndx = struct.unpack(end + "HHH", ident[0x2E:0x34])
            entry = struct.Struct(end + "IIIIIIIIII")
        if shoff == 0 or shentsize < entry.size or shoff + shentsize > size:
            return None

        def header(index: int) -> tuple[int, ...]:
            handle.seek(shoff + index * shentsize)
            raw = handle.read(entry.size)
            if len(raw) < entry.size:
                raise ValueError("truncated section header")
            return entry.unpack(raw)

        try:
            first = header(0)
            if shnum == 0:  # more than 0xff00 sections: the count is in section 0's sh_size
                shnum = first[5]
            if shstrndx == 0xFFFF:  # SHN_XINDEX: the index is in section 0's sh_link
                shstrndx = first[6]
            if shnum > (size - shoff) // shentsize or shstrndx >= shnum:
                return None
            headers = [header(i) for i in range(shnum)]
            names_at, names_size = headers[shstrndx][4], headers[shstrndx][5]
            if names_at + names_size > size:
                return None
            handle.seek(names_at)
            names = handle.read(names_size)
        except (ValueError, struct.error):
            return None
    sections = []
    for name_off, sh_type, _flags, _addr, offset, sh_size, *_ in headers:
        in_file = 0 if sh_type == SHT_NOBITS else sh_size
        if sh_type != SHT_NOBITS and offset + sh_size > size:
            return None
        name_end = names.find(b"\0", name_off)
        name = names[name_off : name_end if name_end >= 0 else len(names)]
        sections.append(
            Section(name=name.decode(errors="replace"), type=sh_type, offset=offset, size=in_file, memsize=sh_size)
        )
    return tuple(sections)
