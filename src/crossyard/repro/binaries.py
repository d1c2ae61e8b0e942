"""ELF: which sections differ, and whether a build path, a timestamp or a build id explains it.

Sections are hashed and scanned one by one from the file, never loaded whole (a Rust program's
symbol names, its .strtab up to 16 MiB, are read to compare them name by name)."""

from __future__ import annotations

import hashlib
import re
import struct
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final

from .. import elf
from .evidence import (
    Findings,
    Found,
    chunks,
    compare_found,
    explain_raw,
    fix_build_id,
    fix_c_runtime,
    fix_content,
    fix_rust_metadata,
    needle_dirs,
    read_at,
    scan,
)

_BUILD_ID_NOTES: Final = (".note.gnu.build-id", ".note.go.buildid")
_GO_SECTIONS: Final = (".go.buildinfo", ".note.go.buildid", ".gopclntab")
_GO_ID_MARK: Final = b'\xff Go build ID: "'
# What a symbol's name changes with when only its crate's hash does: the legacy mangling's
# `17h<16 hex>E` suffix, a codegen unit's `<crate>.<16 hex>-cgu.N`, a base-36 CGU name.
_RUST_HASHED: Final = (
    (re.compile(rb"17h[0-9a-f]{16}E"), b"17h#E"),
    (re.compile(rb"\.[0-9a-f]{16}-cgu\."), b".#-cgu."),
    (re.compile(rb"^[0-9a-z]{20,26}$"), b"#cgu"),
)
# Where symbol names are, and what follows from them (hash tables, the build id over it all).
_SYMBOL_SECTIONS: Final = (".strtab", ".symtab", ".dynstr", ".dynsym", ".gnu.hash",
                           ".note.gnu.build-id")
_STRTAB_MAX: Final = 16 << 20


def explain_elf(a: Path, b: Path, ctx: Findings) -> None:
    secs_a, secs_b = elf.read_sections(a), elf.read_sections(b)
    if secs_a is None or secs_b is None:
        ctx.detail("an ELF file whose section headers cannot be read: compared as bytes")
        explain_raw(a, b, ctx)
        return
    by_a, by_b = _by_name(secs_a), _by_name(secs_b)
    lang = _elf_language(a, by_a) or _elf_language(b, by_b)
    if read_at(a, 0, 64) != read_at(b, 0, 64):
        ctx.detail("ELF header differs (entry point or section layout moved)")
    differing: list[str] = []
    for name in [*by_a, *(n for n in by_b if n not in by_a)]:
        sa, sb = by_a.get(name), by_b.get(name)
        if sa is None or sb is None:
            side = ctx.left.label if sb is None else ctx.right.label
            ctx.detail(f"section {name} only in {side}'s output")
            differing.append(name)
        elif sa.memsize != sb.memsize or _section_digest(a, sa) != _section_digest(b, sb):
            ctx.detail(f"section {name} differs ({sa.memsize} vs {sb.memsize} bytes)")
            differing.append(name)
    if not differing:
        ctx.detail("every section is identical: the headers or the padding between them differ")
    needles = list(needle_dirs(ctx))
    for name in differing:
        if name in _BUILD_ID_NOTES:
            continue  # a path or time inside a build id is the build id's doing: see below
        sa, sb = by_a.get(name), by_b.get(name)
        fa = scan(a, sa.offset, sa.size, needles) if sa else Found()
        fb = scan(b, sb.offset, sb.size, needles) if sb else Found()
        compare_found(fa, fb, f"section {name}", ctx, lang)
    _package_notes(a, b, by_a, by_b, differing, ctx)
    if lang == "rust":
        _rust_symbol_hashes(a, b, by_a, by_b, differing, ctx)
    _elf_build_ids(a, b, by_a, by_b, differing, ctx, lang)
    if not ctx.causes:
        listed = ", ".join(differing[:8]) or "the ELF headers"
        ctx.cause("content", f"{listed} differ, with no build path, build id or timestamp found",
                  fix_content())


def _elf_build_ids(a: Path, b: Path, by_a: dict[str, elf.Section], by_b: dict[str, elf.Section],
                   differing: list[str], ctx: Findings, lang: str) -> None:
    """A build id that differs is the cause only when nothing else does: GNU build ids and
    Go's content ids are hashes of the rest, so they differ whenever anything else differs."""
    ids = []
    for label, get in (("GNU build id", _gnu_build_id), ("Go build id", _go_build_id)):
        ia, ib = get(a, by_a), get(b, by_b)
        if ia != ib:
            ids.append((label, ia, ib))
    if not ids:
        return
    for label, ia, ib in ids:
        ctx.detail(f"{label}: {_show(ia)} vs {_show(ib)}")
    if ctx.has("build-path", "timestamp"):
        ctx.detail("the build id follows from the differences above")
        return
    # where Go writes its id into .text as well ("\xff Go build ID: …"), that copy is part of
    # the build id too: a .text differing only there is no difference of its own
    go_a = _go_build_id(a, by_a) or b""
    go_b = _go_build_id(b, by_b) or b""
    others = [n for n in differing if n not in _BUILD_ID_NOTES]
    unexplained = [
        n for n in others
        if n not in by_a or n not in by_b
        or not _differs_only_by(a, by_a[n], go_a, b, by_b[n], go_b)
    ]
    if unexplained:
        ctx.detail(f"sections {', '.join(unexplained[:8])} differ beyond the build id, which "
                   "follows from them")
        return
    needles = needle_dirs(ctx)
    for label, ia, ib in ids:
        where = ".note.go.buildid" if label.startswith("Go") else ".note.gnu.build-id"
        inside = sorted({d.decode(errors="replace") for d in needles
                         for value in (ia, ib) if value and d in value})
        note = f" (it contains the build dir {', '.join(inside)})" if inside else ""
        ctx.cause("build-id", f"{label} {_show(ia)} vs {_show(ib)} in {where}{note}; nothing "
                  "else differs", fix_build_id("go" if label.startswith("Go") else lang))


def _package_notes(a: Path, b: Path, by_a: dict[str, elf.Section], by_b: dict[str, elf.Section],
                   differing: list[str], ctx: Findings) -> None:
    """A `.note.package` (FDO packaging metadata) that differs or is on one side only: the
    linker took an object (a C runtime's start file) from another package. The sections after
    it are renumbered, so .symtab, .dynsym and .shstrtab differ with it."""
    if ".note.package" not in differing:
        return
    notes = [_note_desc(path, by, ".note.package") for path, by in ((a, by_a), (b, by_b))]
    shown = [note.rstrip(b"\0").decode(errors="replace") if note is not None else "none"
             for note in notes]
    ctx.cause("c-runtime", f".note.package {shown[0]} in {ctx.left.label}'s output, {shown[1]} "
              f"in {ctx.right.label}'s", fix_c_runtime())


def _rust_symbol_hashes(a: Path, b: Path, by_a: dict[str, elf.Section],
                        by_b: dict[str, elf.Section], differing: list[str], ctx: Findings) -> None:
    """Symbol tables that differ only in Rust's crate hashes, and nothing else differing but
    what follows from symbol names: the crates' -C metadata differs."""
    if ".strtab" not in differing or not set(differing) <= set(_SYMBOL_SECTIONS):
        return
    names = [_strings(path, by[".strtab"]) for path, by in ((a, by_a), (b, by_b))]
    only_a, only_b = names[0] - names[1], names[1] - names[0]
    if not only_a or _unhashed(only_a) != _unhashed(only_b):
        return
    left, right = (min(side.elements(), key=_example) for side in (only_a, only_b))
    ctx.cause("rust-metadata", f".strtab: {left.decode(errors='replace')} in {ctx.left.label}'s "
              f"output is {right.decode(errors='replace')} in {ctx.right.label}'s; "
              f"{only_a.total()} names differ, each only in its hash", fix_rust_metadata())


def _example(name: bytes) -> tuple[bool, bytes, bytes]:
    """A mangled symbol before a codegen unit's name; the same pick on both sides."""
    return b"17h" not in name, _unhashed_name(name), name


def _strings(path: Path, section: elf.Section) -> Counter[bytes]:
    return Counter(read_at(path, section.offset, min(section.size, _STRTAB_MAX)).split(b"\0"))


def _unhashed_name(name: bytes) -> bytes:
    for pattern, stand_in in _RUST_HASHED:
        name = pattern.sub(stand_in, name)
    return name


def _unhashed(names: Counter[bytes]) -> Counter[bytes]:
    out: Counter[bytes] = Counter()
    for name, count in names.items():
        out[_unhashed_name(name)] += count
    return out


def _show(value: bytes | None) -> str:
    if value is None:
        return "none"
    if value.isascii() and value.decode().isprintable():
        return repr(value.decode())
    return value.hex()


def _by_name(sections: Iterable[elf.Section]) -> dict[str, elf.Section]:
    out: dict[str, elf.Section] = {}
    for index, section in enumerate(sections):
        if index == 0 and not section.name:
            continue
        key = section.name if section.name not in out else f"{section.name}#{index}"
        out[key] = section
    return out


def _elf_language(path: Path, sections: Mapping[str, elf.Section]) -> str:
    if any(n in sections for n in _GO_SECTIONS):
        return "go"
    comment = sections.get(".comment")
    if comment is not None:
        text = read_at(path, comment.offset, min(comment.size, 64 << 10))
        if b"rustc" in text:
            return "rust"
        if b"GCC:" in text or b"clang" in text:
            return "c"
    return ""


def _notes(data: bytes, little: bool) -> Iterator[tuple[bytes, int, bytes]]:
    """(name, type, descriptor) of each note in a SHT_NOTE section's bytes."""
    end = "<" if little else ">"
    at = 0
    while at + 12 <= len(data):
        namesz, descsz, note_type = struct.unpack(end + "III", data[at : at + 12])
        name_at = at + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        desc_end = desc_at + descsz
        if desc_end > len(data):
            return
        yield data[name_at : name_at + namesz].rstrip(b"\0"), note_type, data[desc_at:desc_end]
        at = desc_at + (descsz + 3) // 4 * 4


def _note_desc(path: Path, sections: Mapping[str, elf.Section], name: str) -> bytes | None:
    section = sections.get(name)
    if section is None or section.size > 4096:
        return None
    little = read_at(path, 5, 1) == b"\x01"
    for _, _, desc in _notes(read_at(path, section.offset, section.size), little):
        return desc
    return None


def _gnu_build_id(path: Path, sections: Mapping[str, elf.Section]) -> bytes | None:
    return _note_desc(path, sections, ".note.gnu.build-id")


def _go_build_id(path: Path, sections: Mapping[str, elf.Section]) -> bytes | None:
    note = _note_desc(path, sections, ".note.go.buildid")
    if note is not None:
        return note
    text = sections.get(".text")
    if text is None:
        return None
    head = read_at(path, text.offset, min(text.size, 4096))
    at = head.find(_GO_ID_MARK)
    if at < 0:
        return None
    start = at + len(_GO_ID_MARK)
    end = head.find(b'"', start)
    return head[start:end] if end > 0 else None


def _section_digest(path: Path, section: elf.Section) -> str:
    digest = hashlib.sha256()
    for chunk in chunks(path, section.offset, section.size):
        digest.update(chunk)
    return digest.hexdigest()


def _differs_only_by(a: Path, sa: elf.Section, id_a: bytes, b: Path, sb: elf.Section,
                     id_b: bytes) -> bool:
    """Whether two sections are equal once every copy of the build id is blanked out: same
    size, the ids at the same offsets, every other byte the same."""
    if sa.size != sb.size or not id_a or len(id_a) != len(id_b):
        return False
    at_a = _occurrences(a, sa, id_a)
    if at_a != _occurrences(b, sb, id_b):
        return False
    offset = 0
    blank = b"\0" * len(id_a)
    for ca, cb in zip(chunks(a, sa.offset, sa.size), chunks(b, sb.offset, sb.size),
                      strict=True):
        if ca != cb:
            ma, mb = bytearray(ca), bytearray(cb)
            for at in at_a:
                lo, hi = max(at - offset, 0), min(at + len(id_a) - offset, len(ca))
                if lo < hi:
                    ma[lo:hi] = blank[: hi - lo]
                    mb[lo:hi] = blank[: hi - lo]
            if ma != mb:
                return False
        offset += len(ca)
    return True


def _occurrences(path: Path, section: elf.Section, needle: bytes, limit: int = 64) -> list[int]:
    found: list[int] = []
    offset = 0
    tail = b""
    for chunk in chunks(path, section.offset, section.size):
        window = tail + chunk
        base = offset - len(tail)
        at = window.find(needle)
        while at >= 0 and len(found) < limit:
            if base + at not in found:
                found.append(base + at)
            at = window.find(needle, at + 1)
        offset += len(chunk)
        tail = window[-(len(needle) - 1) :] if len(needle) > 1 else b""
    return found

