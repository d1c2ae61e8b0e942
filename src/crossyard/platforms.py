"""The one place that knows how each ecosystem spells an architecture.

`Platform.parse("aarch64")` → `linux/arm64`. Go, Rust, GNU, Debian, ELF, `uname -m` and qemu-user
all spell the same machine differently; nothing outside this module converts between them.
"""

from __future__ import annotations

import platform as _stdlib_platform
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .errors import ConfigurationError


@dataclass(frozen=True, kw_only=True, order=True)
class Platform:
    """An OCI platform and all its other spellings."""

    os: str
    architecture: str
    variant: str | None = None
    goarch: str
    rust_triple: str
    gnu_triplet: str
    debian_arch: str
    elf_machine: int
    elf_class: int  # 1 = 32-bit, 2 = 64-bit
    uname_m: str
    qemu_arch: str

    def __str__(self) -> str:
        return self.oci

    @property
    def oci(self) -> str:
        """`linux/arm64`: the canonical spelling, used in recipes, the lock and the store."""
        return f"{self.os}/{self.architecture}"

    @property
    def slug(self) -> str:
        """`linux-arm64`: safe in file names, tags and nox session names."""
        return f"{self.os}-{self.architecture}"

    @property
    def qemu_binary(self) -> str:
        """The statically linked qemu-user emulator Debian's qemu-user-static installs."""
        return f"qemu-{self.qemu_arch}-static"

    @property
    def sysroot(self) -> str:
        """Where Debian's cross packages put this arch's libc (for `qemu -L`)."""
        return f"/usr/{self.gnu_triplet}"

    @property
    def oci_platform(self) -> dict[str, str]:
        """The `platform` object of an OCI descriptor."""
        out = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Accept the canonical form and the aliases users type; list the known ones otherwise."""
        key = text.strip().lower()
        found = _ALIASES.get(key)
        if found is None:
            raise ConfigurationError(
                f"unknown platform `{text}`; known platforms: {', '.join(sorted(PLATFORMS))} "
                f"(aliases: {', '.join(sorted(a for a in _ALIASES if '/' not in a))})"
            )
        return found

    @classmethod
    def from_descriptor(cls, platform: Mapping[str, Any]) -> Platform:
        """The platform an OCI `platform` object names (a descriptor's, or an image config's
        os/architecture/variant): arm64 with or without variant v8 is `linux/arm64`."""
        os_, arch, variant = platform.get("os"), platform.get("architecture"), platform.get("variant")
        for plat in PLATFORMS.values():
            if (plat.os, plat.architecture) == (os_, arch) and variant in (None, "", plat.variant):
                return plat
        raise ConfigurationError(
            f"unknown OCI platform `{_spelled(platform)}`; known platforms: "
            f"{', '.join(sorted(PLATFORMS))}"
        )

    @classmethod
    def from_elf_machine(cls, machine: int) -> Platform | None:
        for plat in PLATFORMS.values():
            if plat.elf_machine == machine:
                return plat
        return None

    @classmethod
    def host(cls) -> Platform:
        """The platform of the machine this Python runs on."""
        return cls.parse(_stdlib_platform.machine())


RISCV64: Final = Platform(
    os="linux",
    architecture="riscv64",
    goarch="riscv64",
    rust_triple="riscv64gc-unknown-linux-gnu",
    gnu_triplet="riscv64-linux-gnu",
    debian_arch="riscv64",
    elf_machine=243,
    elf_class=2,
    uname_m="riscv64",
    qemu_arch="riscv64",
)
ARM64: Final = Platform(
    os="linux",
    architecture="arm64",
    variant="v8",
    goarch="arm64",
    rust_triple="aarch64-unknown-linux-gnu",
    gnu_triplet="aarch64-linux-gnu",
    debian_arch="arm64",
    elf_machine=183,
    elf_class=2,
    uname_m="aarch64",
    qemu_arch="aarch64",
)
AMD64: Final = Platform(
    os="linux",
    architecture="amd64",
    goarch="amd64",
    rust_triple="x86_64-unknown-linux-gnu",
    gnu_triplet="x86_64-linux-gnu",
    debian_arch="amd64",
    elf_machine=62,
    elf_class=2,
    uname_m="x86_64",
    qemu_arch="x86_64",
)

PLATFORMS: Final[dict[str, Platform]] = {p.oci: p for p in (RISCV64, ARM64, AMD64)}

_ALIASES: Final[dict[str, Platform]] = {
    **PLATFORMS,
    "linux/arm64/v8": ARM64,
    "arm64/v8": ARM64,
    "linux/aarch64": ARM64,
    "linux/x86_64": AMD64,
    "linux/x86-64": AMD64,
    **{
        spelling: p
        for p in (RISCV64, ARM64, AMD64)
        for spelling in {p.architecture, p.goarch, p.debian_arch, p.uname_m, p.gnu_triplet, p.rust_triple}
    },
    "riscv64gc": RISCV64,
    "x86-64": AMD64,
}


def platform_label(platform: Mapping[str, Any] | None) -> str:
    """`os/arch` of an OCI `platform` object for messages and listings, never failing: a known
    platform in its canonical spelling (arm64/v8 → `linux/arm64`), any other as spelled, with its
    variant (`linux/arm/v7`) and `?` for a missing part."""
    platform = platform or {}
    try:
        return Platform.from_descriptor(platform).oci
    except ConfigurationError:
        return _spelled(platform)


def _spelled(platform: Mapping[str, Any]) -> str:
    parts = [str(platform.get("os") or "?"), str(platform.get("architecture") or "?")]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


def parse_platforms(values: list[str] | tuple[str, ...]) -> tuple[Platform, ...]:
    """Parse and de-duplicate, keeping the order given."""
    seen: dict[str, Platform] = {}
    for value in values:
        plat = Platform.parse(value)
        seen.setdefault(plat.oci, plat)
    return tuple(seen.values())
