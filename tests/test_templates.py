"""The one template grammar of recipes and toolchain definitions (crossyard.templates)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crossyard.errors import ConfigurationError
from crossyard.platforms import ARM64, RISCV64
from crossyard.templates import (
    RECIPE_PLACEHOLDERS,
    TemplateError,
    check,
    expand,
    placeholders,
    recipe_values,
)
from crossyard.toolchains import ToolchainDef


@pytest.mark.parametrize(("template", "expected"), [
    ("-X main.version={version}", "-X main.version=1.0"),
    ("{{version}}", "{version}"),  # doubled braces are literal, as in str.format
    ("{{{version}}}", "{1.0}"),
    ("a}}b{{c", "a}b{c"),
    ("{version}{version}", "1.01.0"),
    ("no braces", "no braces"),
    ("", ""),
])
def test_expand(template: str, expected: str) -> None:
    assert expand(template, {"version": "1.0"}) == expected


@pytest.mark.parametrize(("template", "error"), [
    ("{", "a lone `{` at character 1"),
    ("x}", "a lone `}` at character 2"),
    ("{a{b}", "a lone `{` at character 1"),
    ("${HOME", "a lone `{` at character 2"),
])
def test_malformed_templates(template: str, error: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(error)):
        placeholders(template)
    with pytest.raises(ConfigurationError) as info:
        check(template, RECIPE_PLACEHOLDERS, where="r.toml: [go] `ldflags`")
    assert str(info.value) == (f"r.toml: [go] `ldflags`: {template!r} is not a valid template ({error}); "
                               "write a literal brace as {{ or }}")
    assert info.value.return_code == 2


def test_expand_is_strict() -> None:
    """Unlike str.replace over known names, a placeholder without a value is never left in."""
    with pytest.raises(TemplateError, match=r"no value for \{comit\}"):
        expand("-X main.c={comit}", {"commit": "abc"})
    assert isinstance(TemplateError("x"), ValueError)


def test_check_names_the_placeholder_the_nearest_and_the_known() -> None:
    assert placeholders("{a}-{b}{{c}}") == {"a", "b"}
    check("{goarch}/{{literal}}", RECIPE_PLACEHOLDERS, where="w")
    with pytest.raises(ConfigurationError) as info:
        check("{gnu_triple}-gcc", ("gnu_triplet", "goarch"), where="f.toml: [c] `cflags`")
    assert str(info.value) == ("f.toml: [c] `cflags` uses unknown placeholder {gnu_triple} "
                               "(did you mean `gnu_triplet`?); known: {gnu_triplet}, {goarch}")


def test_recipe_values() -> None:
    values = recipe_values(name="x", version="1", commit=None, platform=RISCV64, source_date_epoch=1767225600)
    assert values["build_date"] == "2026-01-01T00:00:00Z" and values["platform"] == "linux/riscv64"
    assert values["goarch"] == "riscv64" and values["gnu_triplet"] == "riscv64-linux-gnu"
    assert "commit" not in values  # a recipe using {commit} without one is refused at load
    with_commit = recipe_values(name="x", version="1", commit="c" * 40, platform=ARM64, source_date_epoch=0)
    assert with_commit["commit"] == "c" * 40 and with_commit["rust_triple"] == "aarch64-unknown-linux-gnu"
    # Every recipe placeholder has a value, but the job's directories, which builders add.
    assert set(RECIPE_PLACEHOLDERS) - set(with_commit) == {"deps", "out"}


def test_toolchains_render_with_the_same_grammar() -> None:
    definition = ToolchainDef(name="cc", kind="c", family="gcc", file=Path("t.toml"), command="{gnu_triplet}-gcc")
    assert definition.render("{{x}}-{gnu_triplet}", RISCV64) == "{x}-riscv64-linux-gnu"
    with pytest.raises(TemplateError):  # a template never checked at load: not a KeyError
        definition.render("{gnu_triple}", RISCV64)
