from __future__ import annotations

import pytest

from crossyard.errors import ConfigurationError
from crossyard.platforms import (
    AMD64,
    ARM64,
    PLATFORMS,
    RISCV64,
    Platform,
    parse_platforms,
    platform_label,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/riscv64", RISCV64), ("riscv64", RISCV64), ("riscv64gc-unknown-linux-gnu", RISCV64),
        ("riscv64-linux-gnu", RISCV64), ("linux/arm64", ARM64), ("aarch64", ARM64), ("arm64/v8", ARM64),
        ("linux/arm64/v8", ARM64), ("ARM64", ARM64), ("x86_64", AMD64), ("amd64", AMD64), ("linux/amd64", AMD64),
    ],
)
def test_aliases(text: str, expected: Platform) -> None:
    assert Platform.parse(text) is expected


def test_every_spelling_round_trips() -> None:
    for plat in PLATFORMS.values():
        for spelling in (plat.oci, plat.goarch, plat.rust_triple, plat.gnu_triplet, plat.debian_arch, plat.uname_m):
            assert Platform.parse(spelling) is plat
        assert Platform.from_elf_machine(plat.elf_machine) is plat


def test_known_spellings() -> None:
    assert (RISCV64.goarch, RISCV64.elf_machine, RISCV64.qemu_binary) == ("riscv64", 243, "qemu-riscv64-static")
    assert (ARM64.rust_triple, ARM64.elf_machine, ARM64.uname_m) == ("aarch64-unknown-linux-gnu", 183, "aarch64")
    assert ARM64.oci_platform == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert AMD64.elf_machine == 62


def test_unknown_platform_lists_known() -> None:
    with pytest.raises(ConfigurationError) as info:
        Platform.parse("mips64")
    assert "linux/riscv64" in str(info.value) and "linux/arm64" in str(info.value)
    assert info.value.return_code == 2


def test_parse_platforms_dedupes_in_order() -> None:
    assert parse_platforms(["aarch64", "riscv64", "linux/arm64"]) == (ARM64, RISCV64)


def test_from_descriptor_round_trips_every_platform() -> None:
    for plat in PLATFORMS.values():
        assert Platform.from_descriptor(plat.oci_platform) is plat
        assert platform_label(plat.oci_platform) == plat.oci


@pytest.mark.parametrize(
    "found",
    [
        {"os": "linux", "architecture": "arm64", "variant": "v8"},  # what OCI indexes say
        {"os": "linux", "architecture": "arm64"},  # what Docker configs often say
        {"os": "linux", "architecture": "arm64", "variant": ""},
    ],
)
def test_from_descriptor_arm64_variant_v8_is_linux_arm64(found: dict[str, str]) -> None:
    assert Platform.from_descriptor(found) is ARM64
    assert platform_label(found) == "linux/arm64"


@pytest.mark.parametrize(
    ("found", "named"),
    [
        ({"os": "linux", "architecture": "arm", "variant": "v7"}, "linux/arm/v7"),
        ({"os": "linux", "architecture": "arm64", "variant": "v9"}, "linux/arm64/v9"),
        ({"os": "windows", "architecture": "amd64"}, "windows/amd64"),
        ({"os": "unknown", "architecture": "unknown"}, "unknown/unknown"),
        ({}, "?/?"),
    ],
)
def test_from_descriptor_unknown_combination_is_named(found: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Platform.from_descriptor(found)
    assert f"`{named}`" in str(info.value) and "linux/arm64" in str(info.value)
    assert info.value.return_code == 2
    # Listings and messages show such a platform as spelled, variant included, and never fail.
    assert platform_label(found) == named


def test_platform_label_of_no_platform() -> None:
    assert platform_label(None) == "?/?"
